/** The compiled binary starts its worker threads (the pool hashes large files during repack). */
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, readFileSync, writeFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { boci, ok, scratch } from "../helpers/cli";
import { dir, file, hardlink, makeImage, makeTar } from "../helpers/image";
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

/** Random bytes (incompressible), from a seed. */
function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i + 4 <= n; i += 4) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; b.writeUInt32LE(x >>> 0, i); }
  return b;
}

describe("unpack of a large layer: blob, diffID and big files hashed on worker threads", () => {
  // 14 MiB of noise: the blob (> 8 MiB) and diffID are hashed on the pool, so are the bodies of
  // the files over 1 MiB, written asynchronously at their offsets.
  const bodies = [noise(9 << 20, 1), noise((3 << 20) + 5, 2), noise(1 << 20, 3), noise((1 << 20) + 1, 4), noise(100, 5)];
  const names = ["a/big", "a/mid", "b/exact1m", "b/just-over", "small"];
  const tar = makeTar([dir("a"), dir("b"), ...names.map((n, i) => file(n, bodies[i]!, { mode: 0o640, mtime: 1234567890 })),
    hardlink("a/big-link", "a/big")]);

  function setup(): { s: string; L: string; made: ReturnType<typeof makeImage> } {
    const s = scratch();
    const L = join(s, "l");
    ok(["init", "--layout", L]);
    const made = makeImage(L, "t", [tar]);
    return { s, L, made };
  }
  const mtreeOf = (b: string) => readFileSync(join(b, readdirSync(b).find((n) => n.endsWith(".mtree"))!), "utf8").split("\n").filter((l) => !l.startsWith("#")).join("\n");

  test("files are exact, the manifest validates and equals the inline (BOCI_WORKERS=1) one", () => {
    const { s, L } = setup();
    const pooled = join(s, "b1"), inline = join(s, "b2");
    ok(["unpack", "--image", `${L}:t`, pooled], { env: { BOCI_WORKERS: "2" } });
    ok(["unpack", "--image", `${L}:t`, inline], { env: { BOCI_WORKERS: "1" } });
    names.forEach((n, i) => {
      const got = readFileSync(join(pooled, "rootfs", n));
      expect(got.length).toBe(bodies[i]!.length);
      expect(Buffer.compare(got, bodies[i]!)).toBe(0);
      expect(lstatSync(join(pooled, "rootfs", n)).mode & 0o7777).toBe(0o640);
      expect(Math.floor(lstatSync(join(pooled, "rootfs", n)).mtimeMs / 1000)).toBe(1234567890);
    });
    expect(lstatSync(join(pooled, "rootfs/a/big-link")).ino).toBe(lstatSync(join(pooled, "rootfs/a/big")).ino);
    const mt = mtreeOf(pooled);
    expect(mt).toBe(mtreeOf(inline));
    expect(mt).not.toContain("pending");
    expect(mt).toContain(`sha256digest=${createHash("sha256").update(bodies[0]!).digest("hex")}`);
    const file = readdirSync(pooled).find((n) => n.endsWith(".mtree"))!;
    expect(ok(["raw", "mtree-validate", "-f", join(pooled, file), "-p", join(pooled, "rootfs")]).stdout).toBe("");
    // And a repack sees no change.
    ok(["repack", "--image", `${L}:t2`, pooled]);
    expect(JSON.parse(ok(["stat", "--json", "--image", `${L}:t2`]).stdout).manifest.blob.layers).toHaveLength(1);
  });

  test("a corrupt byte in the middle of the large blob fails the unpack and leaves no rootfs", () => {
    const { s, L, made } = setup();
    const p = join(L, "blobs", "sha256", made.layers[0]!.digest.slice(7));
    const blob = readFileSync(p);
    blob[blob.length >> 1] ^= 0xff;
    writeFileSync(p, blob);
    const r = boci(["unpack", "--image", `${L}:t`, join(s, "b")], { env: { BOCI_WORKERS: "2" } });
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/digest mismatch|corrupt|crc32/);
    expect(existsSync(join(s, "b", "rootfs"))).toBe(false);
    expect(existsSync(join(s, "b", "config.json"))).toBe(false);
  });

  test("a wrong diffID in the config of a large layer is refused", () => {
    const s = scratch();
    const L = join(s, "l");
    ok(["init", "--layout", L]);
    makeImage(L, "t", [tar], { diffIds: [`sha256:${"0".repeat(64)}`] });
    const r = boci(["unpack", "--image", `${L}:t`, join(s, "b")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("diffid mismatch");
    expect(existsSync(join(s, "b", "rootfs"))).toBe(false);
  });
});
