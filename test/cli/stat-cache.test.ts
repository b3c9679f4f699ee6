/**
 * The stat cache (src/bundle/stat-cache.ts): repack skips re-reading files whose stat is what it
 * was at unpack, and still sees every kind of change. Each change is repacked twice from the same
 * bundle, with the cache and with BOCI_STAT_CACHE=0; the two layers must be byte-identical and
 * carry the change.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync, existsSync, readdirSync, utimesSync, statSync, chmodSync, chownSync, linkSync, renameSync, truncateSync, openSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { boci, ok, scratch, sh, isRoot } from "../helpers/cli";
import { makeTar, makeImage, dir, file } from "../helpers/image";

const T0 = 1500000000;

function setup(): { L: string; b: string; rootfs: string } {
  const s = scratch();
  const L = join(s, "l");
  ok(["init", "--layout", L]);
  makeImage(L, "t", [makeTar([
    dir("d"),
    file("d/a", "alpha-alpha\n", { mtime: T0, mode: 0o644 }),
    file("d/b", "bravo-bravo\n", { mtime: T0, mode: 0o644 }),
    file("d/c", "charlie-charlie\n", { mtime: T0, mode: 0o644 }),
    file("big", Buffer.alloc(3 << 20, 7), { mtime: T0, mode: 0o644 }),
  ])]);
  const b = join(s, "b");
  ok(["unpack", "--image", `${L}:t`, b]);
  return { L, b, rootfs: join(b, "rootfs") };
}

/** The newest layer's digest and the names in it. */
function lastLayer(L: string, tag: string): { digest: string; names: string[] } {
  const st = JSON.parse(ok(["stat", "--json", "--image", `${L}:${tag}`]).stdout);
  const layers = st.manifest.blob.layers as { digest: string }[];
  const d = layers[layers.length - 1]!.digest;
  const tar = gunzipSync(readFileSync(join(L, "blobs", "sha256", d.slice(7))));
  const names: string[] = [];
  for (let off = 0; off + 512 <= tar.length;) {
    const h = tar.subarray(off, off + 512);
    if (h.every((x) => x === 0)) break;
    const type = String.fromCharCode(h[156]!);
    if (type !== "x" && type !== "g") names.push(h.toString("latin1", 0, 100).replace(/\0.*$/s, ""));
    const size = parseInt(h.toString("latin1", 124, 136).replace(/\0.*$/s, "").trim() || "0", 8);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return { digest: d, names };
}

/** Repack with and without the cache (same bundle, no refresh); both layers must agree. */
function repackBoth(L: string, b: string): { digest: string; names: string[]; layers: number } {
  ok(["repack", "--image", `${L}:cached`, b]);
  ok(["repack", "--image", `${L}:plain`, b], { env: { BOCI_STAT_CACHE: "0" } });
  const a = lastLayer(L, "cached"), p = lastLayer(L, "plain");
  expect(a.digest).toBe(p.digest);
  const n = JSON.parse(ok(["stat", "--json", "--image", `${L}:cached`]).stdout).manifest.blob.layers.length;
  return { ...a, layers: n };
}

/** Rewrite a file in place, keeping its size and putting its mtime back. */
function rewriteSameSizeSameMtime(p: string, body: string): void {
  const before = statSync(p);
  expect(Buffer.byteLength(body)).toBe(before.size);
  const fd = openSync(p, "r+");
  writeSync(fd, body, 0);
  closeSync(fd);
  utimesSync(p, before.atime, before.mtime);
}

describe("stat cache", () => {
  test("unpack writes .boci-stat: a header naming the manifest's sha256 and one line per regular file", () => {
    const { b } = setup();
    const mt = readdirSync(b).find((n) => n.endsWith(".mtree"))!;
    const lines = readFileSync(join(b, ".boci-stat"), "utf8").trim().split("\n");
    const sha = new Bun.CryptoHasher("sha256").update(readFileSync(join(b, mt))).digest("hex");
    expect(lines[0]).toBe(`boci-stat 1 ${sha}`);
    expect(lines.slice(1).map((l) => JSON.parse(l.slice(l.indexOf('"')))).sort()).toEqual(["big", "d/a", "d/b", "d/c"]);
    // No change: no layer, with the cache.
    ok(["repack", "--image", `${b.replace(/b$/, "l")}:t2`, b]);
    expect(JSON.parse(ok(["stat", "--json", "--image", `${b.replace(/b$/, "l")}:t2`]).stdout).manifest.blob.layers).toHaveLength(1);
  });

  test("the cache is really used: a cache line rewritten to a changed file's new stat hides the change", () => {
    // The control for the tests below: proves that a trusted entry skips the read.
    const { L, b, rootfs } = setup();
    rewriteSameSizeSameMtime(join(rootfs, "d/a"), "ALPHA-ALPHA\n");
    forgeCacheLine(b, rootfs, "d/a");
    ok(["repack", "--image", `${L}:cached`, b]);
    expect(JSON.parse(ok(["stat", "--json", "--image", `${L}:cached`]).stdout).manifest.blob.layers).toHaveLength(1);
    ok(["repack", "--image", `${L}:plain`, b], { env: { BOCI_STAT_CACHE: "0" } });
    expect(lastLayer(L, "plain").names).toEqual(["d/a"]);
  });

  test("content rewritten with the same size and the old mtime is seen (ctime moved)", () => {
    const { L, b, rootfs } = setup();
    rewriteSameSizeSameMtime(join(rootfs, "d/a"), "ALPHA-ALPHA\n");
    rewriteSameSizeSameMtime(join(rootfs, "big"), "x".repeat(3 << 20));
    const r = repackBoth(L, b);
    expect(r.names).toEqual(["big", "d/a"]);
  });

  test("chmod, chown, a hardlink added: each seen", () => {
    const { L, b, rootfs } = setup();
    chmodSync(join(rootfs, "d/a"), 0o600);
    if (isRoot) chownSync(join(rootfs, "d/b"), 1234, 1234);
    linkSync(join(rootfs, "d/c"), join(rootfs, "c-link"));
    const r = repackBoth(L, b);
    // The root's mtime moved too (a name was added there).
    expect(r.names).toEqual([".", "c-link", "d/a", ...(isRoot ? ["d/b"] : []), "d/c"]);
  });

  test.skipIf(sh("command -v setfattr").code !== 0)("an xattr set on a file, then removed again: both seen", () => {
    const { L, b, rootfs } = setup();
    expect(sh(`setfattr -n user.k -v v1 ${JSON.stringify(join(rootfs, "d/b"))}`).code).toBe(0);
    expect(repackBoth(L, b).names).toEqual(["d/b"]);
    // Refresh so the xattr is in the manifest and the cache, then take it away.
    ok(["repack", "--refresh-bundle", "--image", `${L}:r`, b]);
    expect(sh(`setfattr -x user.k ${JSON.stringify(join(rootfs, "d/b"))}`).code).toBe(0);
    expect(repackBoth(L, b).names).toEqual(["d/b"]);
  });

  test("a file replaced by another of the same size and mtime (rename over it) is seen", () => {
    const { L, b, rootfs } = setup();
    const p = join(rootfs, "d/b");
    const st = statSync(p);
    writeFileSync(join(rootfs, "tmp"), "BRAVO-BRAVO\n");
    utimesSync(join(rootfs, "tmp"), st.atime, st.mtime);
    renameSync(join(rootfs, "tmp"), p);
    // (The root and d/ changed too: a name was created in one and renamed into the other.)
    expect(repackBoth(L, b).names).toEqual([".", "d/", "d/b"]);
  });

  test("truncated and rewritten with the same bytes: no content change, but the new mtime is seen", () => {
    const { L, b, rootfs } = setup();
    const p = join(rootfs, "d/c");
    const body = readFileSync(p);
    truncateSync(p, 0);
    writeFileSync(p, body);
    expect(repackBoth(L, b).names).toEqual(["d/c"]);
  });

  test("racy: an entry whose ctime is not before the cache's own mtime is not trusted", () => {
    const { L, b, rootfs } = setup();
    rewriteSameSizeSameMtime(join(rootfs, "d/a"), "ALPHA-ALPHA\n");
    forgeCacheLine(b, rootfs, "d/a");
    // As if the cache had been written in the same tick as the change (or before it).
    const ct = statSync(join(rootfs, "d/a")).ctimeMs / 1000;
    utimesSync(join(b, ".boci-stat"), ct - 5, ct);
    expect(repackBoth(L, b).names).toEqual(["d/a"]);
  });

  test("a cache for another manifest text is ignored", () => {
    const { L, b, rootfs } = setup();
    rewriteSameSizeSameMtime(join(rootfs, "d/a"), "ALPHA-ALPHA\n");
    forgeCacheLine(b, rootfs, "d/a");
    const mt = join(b, readdirSync(b).find((n) => n.endsWith(".mtree"))!);
    writeFileSync(mt, readFileSync(mt, "utf8") + "# edited\n");
    expect(repackBoth(L, b).names).toEqual(["d/a"]);
  });

  test("a malformed or foreign cache is ignored, never an error", () => {
    const { L, b, rootfs } = setup();
    chmodSync(join(rootfs, "d/a"), 0o600);
    for (const junk of ["", "garbage\n", readFileSync(join(b, ".boci-stat"), "utf8").replace(/ \d+ "/, ' x "'), "boci-stat 1 00\n1 2 3 4 5 \"d/a\"\n"]) {
      writeFileSync(join(b, ".boci-stat"), junk);
      expect(repackBoth(L, b).names).toEqual(["d/a"]);
    }
  });

  test("--refresh-bundle writes a cache for the new manifest: the next repack trusts it and still sees changes", () => {
    const { L, b, rootfs } = setup();
    writeFileSync(join(rootfs, "new"), "new file\n");
    ok(["repack", "--refresh-bundle", "--image", `${L}:r1`, b]);
    const mt = readdirSync(b).filter((n) => n.endsWith(".mtree"));
    expect(mt).toHaveLength(1);
    const sha = new Bun.CryptoHasher("sha256").update(readFileSync(join(b, mt[0]!))).digest("hex");
    const cache = readFileSync(join(b, ".boci-stat"), "utf8");
    expect(cache.split("\n")[0]).toBe(`boci-stat 1 ${sha}`);
    expect(cache).toContain('"new"');
    // Nothing changed since: no layer.
    ok(["repack", "--image", `${L}:r2`, b]);
    expect(JSON.parse(ok(["stat", "--json", "--image", `${L}:r2`]).stdout).manifest.blob.layers).toHaveLength(2);
    rewriteSameSizeSameMtime(join(rootfs, "new"), "NEW FILE\n");
    expect(repackBoth(L, b).names).toEqual(["new"]);
  });

  test("BOCI_STAT_CACHE=0: unpack writes no cache and repack reads none", () => {
    const s = scratch();
    const L = join(s, "l");
    ok(["init", "--layout", L]);
    makeImage(L, "t", [makeTar([file("f", "x")])]);
    ok(["unpack", "--image", `${L}:t`, join(s, "b")], { env: { BOCI_STAT_CACHE: "0" } });
    expect(existsSync(join(s, "b", ".boci-stat"))).toBe(false);
    expect(boci(["repack", "--image", `${L}:t2`, join(s, "b")]).code).toBe(0);
  });
});

/** Rewrite the cache line of `rel` to the file's current stat (cache written now, so trusted). */
function forgeCacheLine(b: string, rootfs: string, rel: string): void {
  const st = statSync(join(rootfs, rel), { bigint: true });
  const key = `${st.dev} ${st.ino} ${st.size} ${st.mtimeNs} ${st.ctimeNs}`;
  const lines = readFileSync(join(b, ".boci-stat"), "utf8").split("\n").map((l) => (l.endsWith(` ${JSON.stringify(rel)}`) ? `${key} ${JSON.stringify(rel)}` : l));
  // Written a moment later than the file's ctime, so the racy rule does not apply.
  Bun.sleepSync(20);
  writeFileSync(join(b, ".boci-stat"), lines.join("\n"));
}
