/**
 * Big unpacks and repacks run in the binary started again without JavaScriptCore's FTL tier
 * (src/util/jit.ts restartWithoutFtl: execve of itself with BUN_JSC_useFTLJIT=0): once an image
 * has 64 MiB of layers, once a bundle's mtree manifest has 4 MiB. The restart is seen in the
 * debug log of the process that runs the command ("running unpack without the FTL JIT"), which
 * only a process started with that option prints; the result must be the same as without it.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { closeSync, ftruncateSync, openSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { boci, ok, scratch } from "../helpers/cli";
import { makeTar } from "../helpers/image";

let dir: string;
beforeAll(() => {
  dir = scratch("boci-jit-");
  ok(["init", "--layout", join(dir, "img")]);
  ok(["new", "--image", `${join(dir, "img")}:base`]);
  // 65 MiB of layer: a sparse file inserted uncompressed (the blob is the tar itself)
  const big = join(dir, "big.bin");
  const fd = openSync(big, "w");
  ftruncateSync(fd, 65 << 20);
  closeSync(fd);
  ok(["insert", "--compress", "none", "--image", `${join(dir, "img")}:base`, "--tag", "big", big, "/big.bin"]);
  ok(["insert", "--image", `${join(dir, "img")}:base`, "--tag", "small", join(dir, "img", "oci-layout"), "/small"]);
  // 19,500 files with long names: a manifest of more than 4 MiB
  const names = Array.from({ length: 19_500 }, (_, i) => ({ name: `d/${String(i).padStart(6, "0")}-${"n".repeat(88)}`, body: "" }));
  writeFileSync(join(dir, "many.tar"), makeTar([{ name: "d/", type: "5", mode: 0o755 }, ...names]));
  ok(["raw", "add-layer", "--image", `${join(dir, "img")}:base`, "--tag", "many", join(dir, "many.tar")]);
});

const restarted = (stderr: string) => stderr.split("\n").filter((l) => /without the FTL JIT/.test(l));
// (the manifest past its header: the header names the tree and the time)
const mtreeOf = (bundle: string) => readFileSync(join(bundle, readdirSync(bundle).find((n) => n.endsWith(".mtree"))!), "utf8").split("\n").filter((l) => !l.startsWith("#")).join("\n");

describe("restart without the FTL tier", () => {
  test("unpack of an image with 65 MiB of layers restarts once, and unpacks the same bundle", () => {
    const r = ok(["--log", "debug", "unpack", "--image", `${join(dir, "img")}:big`, join(dir, "b1")]);
    expect(restarted(r.stderr)).toEqual(["boci: debug: restarting without the FTL JIT: 65 MiB of layers", "boci: debug: running unpack without the FTL JIT"]);
    // the option set by the caller: no restart, the same result
    const again = ok(["--log", "debug", "unpack", "--image", `${join(dir, "img")}:big`, join(dir, "b2")], { env: { BUN_JSC_useFTLJIT: "1" } });
    expect(restarted(again.stderr)).toEqual([]);
    expect(statSync(join(dir, "b1/rootfs/big.bin")).size).toBe(65 << 20);
    expect(mtreeOf(join(dir, "b1"))).toBe(mtreeOf(join(dir, "b2")));
  });

  test("raw unpack restarts too; a small image does not", () => {
    expect(restarted(ok(["--log", "debug", "raw", "unpack", "--image", `${join(dir, "img")}:big`, join(dir, "r1")]).stderr)).toHaveLength(2);
    expect(restarted(ok(["--log", "debug", "unpack", "--image", `${join(dir, "img")}:small`, join(dir, "b3")]).stderr)).toEqual([]);
  });

  test("repack of a bundle whose manifest has more than 4 MiB restarts once and writes its layer", () => {
    const bundle = join(dir, "b4");
    expect(restarted(ok(["--log", "debug", "unpack", "--image", `${join(dir, "img")}:many`, bundle]).stderr)).toEqual([]);
    const mtree = readdirSync(bundle).find((n) => n.endsWith(".mtree"))!;
    expect(statSync(join(bundle, mtree)).size).toBeGreaterThan(4 << 20);
    writeFileSync(join(bundle, "rootfs/added"), "x");
    const r = ok(["--log", "debug", "repack", "--image", `${join(dir, "img")}:repacked`, bundle]);
    expect(restarted(r.stderr)[0]).toMatch(/^boci: debug: restarting without the FTL JIT: a manifest of [4-9] MiB$/);
    expect(restarted(r.stderr)[1]).toBe("boci: debug: running repack without the FTL JIT");
    const ls = ok(["ls", "--layout", join(dir, "img")]).stdout.split("\n");
    expect(ls).toContain("repacked");
    // a usage error after the restart is still one line and exit 2
    const bad = boci(["repack", "--image", `${join(dir, "img")}:x`, bundle, "extra"]);
    expect(bad.code).toBe(2);
  });
});
