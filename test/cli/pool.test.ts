/** The compiled binary starts its worker threads (the pool hashes large files during repack). */
import { expect, test } from "bun:test";
import { writeFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ok, scratch } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";

test("repack of large files through the worker pool gives the same tree on unpack", () => {
  const s = scratch();
  const L = join(s, "l");
  ok(["init", "--layout", L]);
  ok(["new", "--image", `${L}:t`]);
  ok(["unpack", "--image", `${L}:t`, join(s, "b")]);
  const big = Buffer.alloc(9 << 20);
  for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i * 2654435761 >>> 0, i);
  writeFileSync(join(s, "b/rootfs/big1"), big);
  writeFileSync(join(s, "b/rootfs/big2"), big.subarray(0, 5 << 20));
  // Run from another directory: the worker must not be looked up relative to the cwd.
  ok(["repack", "--image", `${L}:t`, join(s, "b")], { env: { BOCI_WORKERS: "2" }, cwd: s });
  ok(["unpack", "--image", `${L}:t`, join(s, "b2")]);
  const mt = readdirSync(join(s, "b2")).find((n) => n.endsWith(".mtree"))!;
  const v = ok(["raw", "mtree-validate", "-f", join(s, "b2", mt), "-p", join(s, "b/rootfs")]);
  expect(v.stdout).toBe("");
  // A second repack with the pool sees no change (its digests equal the recorded ones).
  ok(["repack", "--refresh-bundle", "--image", `${L}:t2`, join(s, "b2")], { env: { BOCI_WORKERS: "2" } });
  const st = JSON.parse(ok(["stat", "--json", "--image", `${L}:t2`]).stdout);
  expect(st.manifest.blob.layers).toHaveLength(1);
  expect(checkLayout(L)).toEqual([]);
});
