/**
 * `unpack` of hostile layers. Every case checks: either a non-zero exit with a one-line error,
 * or a documented safe result; and nothing outside the rootfs changed (a sentinel directory
 * beside the bundle is unchanged, no new files appear in the scratch directory or on the host).
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync, existsSync, readdirSync, mkdirSync, lstatSync, readlinkSync } from "node:fs";
import { join, dirname } from "node:path";
import * as zlib from "node:zlib";
import { boci, ok, scratch, isRoot } from "../helpers/cli";
import { makeTar, makeImage, tarEntry, paxRecord, dir, file, symlink, hardlink, whiteout, sha256hex, type TarEntrySpec, BLOCK } from "../helpers/image";

const TAG = Math.random().toString(36).slice(2, 10);
/** Host paths that an escaping entry would create; checked absent after every case. */
const HOST_CANARIES = [`/boci-escape-${TAG}`, `/tmp/boci-escape-${TAG}`, `/escaped-${TAG}`];

interface Snap { [path: string]: string }
/** Everything under `dir` (except the bundle and layout) with type, mode, owner, size, times, inode, nlink and content hash. */
function snapshot(root: string): Snap {
  const out: Snap = {};
  const walk = (rel: string) => {
    const p = join(root, rel);
    const st = lstatSync(p);
    let extra = "";
    if (st.isFile()) extra = sha256hex(readFileSync(p));
    else if (st.isSymbolicLink()) extra = readlinkSync(p);
    // the scratch dir itself changes when the bundle directory is created: skip its own record
    if (rel) out[rel] = [st.mode.toString(8), st.uid, st.gid, st.size, st.mtimeMs, st.ino, st.nlink, extra].join(" ");
    if (st.isDirectory()) for (const n of readdirSync(p)) {
      if (rel === "" && (n === "bundle" || n === "layout")) continue;
      walk(rel ? `${rel}/${n}` : n);
    }
  };
  walk("");
  return out;
}

interface Case { s: string; bundle: string; R: string; code: number; stderr: string; stdout: string }

/**
 * Build an image from `layers` (entry lists or raw tars), unpack it into scratch/bundle beside
 * scratch/outside (a sentinel tree), and check that nothing outside the bundle changed.
 */
function run(layers: (TarEntrySpec[] | Buffer)[] | ((s: string) => (TarEntrySpec[] | Buffer)[]), opts: Parameters<typeof makeImage>[3] = {}): Case {
  const s = scratch("boci-hostile-");
  mkdirSync(join(s, "outside/sub"), { recursive: true });
  writeFileSync(join(s, "outside/secret"), "secret\n");
  writeFileSync(join(s, "outside/sub/file"), "file\n");
  const layout = join(s, "layout");
  ok(["init", "--layout", layout]);
  const ls = typeof layers === "function" ? layers(s) : layers;
  makeImage(layout, "t", ls.map((l) => (Buffer.isBuffer(l) ? l : makeTar(l))), opts);
  const before = snapshot(s);
  const parentBefore = readdirSync(dirname(s)).filter((n) => n.startsWith("boci-escape") || n.startsWith("escaped"));
  const bundle = join(s, "bundle");
  const r = boci(["unpack", "--no-progress", "--image", `${layout}:t`, bundle]);
  expect(snapshot(s)).toEqual(before);
  expect(readdirSync(dirname(s)).filter((n) => n.startsWith("boci-escape") || n.startsWith("escaped"))).toEqual(parentBefore);
  for (const c of HOST_CANARIES) expect(existsSync(c)).toBe(false);
  expect(readdirSync(s).sort()).toEqual(existsSync(bundle) ? ["bundle", "layout", "outside"] : ["layout", "outside"]);
  if (r.code !== 0) {
    expect(r.stderr.trim().split("\n").length).toBe(1);
    expect(existsSync(join(bundle, "rootfs"))).toBe(false);
  }
  return { s, bundle, R: join(bundle, "rootfs"), ...r };
}

function expectOk(c: Case): void {
  if (c.code !== 0) throw new Error(`unpack exited ${c.code}: ${c.stderr}`);
}

function expectError(c: Case, re?: RegExp): void {
  expect(c.code).not.toBe(0);
  if (re) expect(c.stderr).toMatch(re);
}

/** No file in the rootfs shares an inode with the sentinel's files. */
function noSharedInodes(c: Case): void {
  const outside = new Set([lstatSync(join(c.s, "outside/secret")).ino, lstatSync(join(c.s, "outside/sub/file")).ino]);
  expect(lstatSync(join(c.s, "outside/secret")).nlink).toBe(1);
  if (!existsSync(c.R)) return;
  const walk = (p: string) => {
    const st = lstatSync(p);
    expect(outside.has(st.ino)).toBe(false);
    if (st.isDirectory()) for (const n of readdirSync(p)) walk(join(p, n));
  };
  walk(c.R);
}

describe.skipIf(!isRoot)("unpack: hostile layers", () => {
  test("'../../escape' names are rooted", () => {
    const c = run([[file(`../../boci-escape-${TAG}`, "x"), file(`a/../../../../boci-escape-${TAG}-2`, "y"), dir("../"), file("../../../tmp/boci-escape-" + TAG, "z")]]);
    expectOk(c);
    expect(readFileSync(join(c.R, `boci-escape-${TAG}`), "utf8")).toBe("x");
    expect(readFileSync(join(c.R, `boci-escape-${TAG}-2`), "utf8")).toBe("y");
    expect(readFileSync(join(c.R, `tmp/boci-escape-${TAG}`), "utf8")).toBe("z");
  });

  test("absolute '/escape' names are rooted", () => {
    const c = run((s) => [[file(`/boci-escape-${TAG}`, "x"), file(`${s}/outside/secret`, "overwritten?"), file(`/escaped-${TAG}`, "e")]]);
    expectOk(c);
    expect(readFileSync(join(c.R, `boci-escape-${TAG}`), "utf8")).toBe("x");
    expect(readFileSync(join(c.R, c.s.slice(1), "outside/secret"), "utf8")).toBe("overwritten?");
  });

  test("symlink 'evil -> /' then 'evil/escaped' lands inside the rootfs", () => {
    const c = run((s) => [[symlink("evil", "/"), file(`evil/escaped-${TAG}`, "in"), symlink("evil2", "../../../../.."), file(`evil2/boci-escape-${TAG}`, "in2"),
      symlink("evil3", `${s}/outside`), file("evil3/secret", "overwritten?")]]);
    if (c.code === 0) {
      expect(readFileSync(join(c.R, `escaped-${TAG}`), "utf8")).toBe("in");
      expect(readFileSync(join(c.R, `boci-escape-${TAG}`), "utf8")).toBe("in2");
      expect(readFileSync(join(c.R, c.s.slice(1), "outside/secret"), "utf8")).toBe("overwritten?");
      expect(readlinkSync(join(c.R, "evil"))).toBe("/");
    }
  });

  test("symlink 'evil -> /' in one layer, 'evil/escaped' in the next", () => {
    const c = run((s) => [[symlink("evil", "/"), symlink("out", `${s}/outside`)], [file(`evil/escaped-${TAG}`, "in"), file("out/secret", "overwritten?"), dir("out/sub/"), file("out/sub/file", "x")]]);
    if (c.code === 0) expect(readFileSync(join(c.R, `escaped-${TAG}`), "utf8")).toBe("in");
  });

  test("symlink to outside, then a hardlink through it", () => {
    const c = run((s) => [[symlink("out", `${s}/outside`), symlink("rel", "../../outside"), hardlink("stolen", "out/secret"), hardlink("stolen2", "rel/secret")]]);
    expectError(c);
    noSharedInodes(c);
  });

  test("hardlink with linkname '../../outside/secret' does not link the outside file", () => {
    const c = run([[hardlink("stolen", "../../outside/secret")]]);
    expectError(c, /does not exist|no such/);
    noSharedInodes(c);
  });

  test("hardlink with an absolute linkname to the outside file does not link it", () => {
    const c = run((s) => [[hardlink("stolen", `${s}/outside/secret`)]]);
    expectError(c);
    noSharedInodes(c);
  });

  test("hardlink with linkname climbing out resolves inside the rootfs when the target exists there", () => {
    const c = run([[dir("outside/"), file("outside/secret", "inner")], [hardlink("stolen", "../../outside/secret")]]);
    expectOk(c);
    noSharedInodes(c);
    expect(lstatSync(join(c.R, "stolen")).ino).toBe(lstatSync(join(c.R, "outside/secret")).ino);
    expect(readFileSync(join(c.R, "stolen"), "utf8")).toBe("inner");
  });

  test("symlink chain created across two layers", () => {
    const c = run((s) => [[symlink("a", "b"), dir("c/"), symlink("c/d", "../a")], [symlink("b", `${s}/outside`), file("a/pwned", "p"), file("c/d/pwned2", "p2"), symlink("b2", "../../../../..")], [symlink("b", "b2"), file("a/pwned3", "p3")]]);
    if (c.code === 0) {
      expect(readFileSync(join(c.R, c.s.slice(1), "outside/pwned"), "utf8")).toBe("p");
      expect(readFileSync(join(c.R, c.s.slice(1), "outside/pwned2"), "utf8")).toBe("p2");
      expect(readFileSync(join(c.R, "pwned3"), "utf8")).toBe("p3");
    }
  });

  test("an entry named '.' that is a symlink is refused (CVE-2021-29136)", () => {
    const c = run([[file("f", "x")], [symlink(".", "/tmp")], [file(`tmp/boci-escape-${TAG}`, "x")]]);
    expectError(c, /refusing to change type of root directory/);
  });

  test("an entry named '/' that is a symlink is refused", () => {
    const c = run([[symlink("/", "/tmp"), file(`boci-escape-${TAG}`, "x")]]);
    expectError(c, /refusing to change type of root directory/);
  });

  test("entries named './', '..' and 'a/..' that are not directories are refused", () => {
    expectError(run([[file("./", "x")]]), /refusing to change type of root directory/);
    expectError(run([[symlink("..", "/")]]), /refusing to change type of root directory/);
    expectError(run([[dir("a/"), hardlink("a/..", "a")]]), /refusing to change type of root directory|hardlink/);
  });

  test("whiteout '.wh...' (names '..') is refused or harmless", () => {
    const c = run([[dir("a/"), file("a/f", "x")], [whiteout("a/.wh..")]]);
    if (c.code === 0) expect(readFileSync(join(c.R, "a/f"), "utf8")).toBe("x");
    const c2 = run([[file("f", "x")], [whiteout(".wh..")]]);
    if (c2.code === 0) expect(readFileSync(join(c2.R, "f"), "utf8")).toBe("x");
  });

  test("whiteout '../.wh.x' and '.wh.' names with '..' components stay in the rootfs", () => {
    const c = run([[file("x", "x"), file("outside", "inner"), dir("a/"), file("a/keep", "k")], [whiteout("../.wh.x"), whiteout("../../.wh.outside"), whiteout("a/../../../.wh.layout")]]);
    expectOk(c);
    expect(existsSync(join(c.R, "x"))).toBe(false);
    expect(existsSync(join(c.R, "outside"))).toBe(false);
    expect(readFileSync(join(c.R, "a/keep"), "utf8")).toBe("k");
  });

  test("whiteout through a symlink to outside does not remove outside files", () => {
    const c = run((s) => [[symlink("out", `${s}/outside`), symlink("rel", "../../outside")], [whiteout("out/.wh.secret"), whiteout("rel/.wh.sub"), whiteout("out/.wh..wh..opq")]]);
    expectOk(c);
  });

  test("symlink loops (a->b, b->a, then a/file) are an error", () => {
    const c = run([[symlink("a", "b"), symlink("b", "a"), file("a/file", "x")]]);
    expectError(c, /symbolic links|loop/);
  });

  test("a self-referencing symlink used as a parent is an error", () => {
    const c = run([[symlink("self", "self/x"), file("self/file", "x")]]);
    expectError(c);
  });

  test("hardlink to a whited-out file", () => {
    const c = run([[file("victim", "v"), file("other", "o")], [whiteout(".wh.victim"), hardlink("h", "victim")]]);
    if (c.code === 0) {
      expect(existsSync(join(c.R, "victim"))).toBe(false);
    } else {
      expect(c.stderr).toMatch(/victim/);
    }
    noSharedInodes(c);
  });

  test("hardlink to a file that is whited out later in the same layer keeps the link", () => {
    const c = run([[file("victim", "v")], [hardlink("h", "victim"), whiteout(".wh.victim")]]);
    expectOk(c);
    expect(readFileSync(join(c.R, "h"), "utf8")).toBe("v");
  });

  test("4096-byte names (PAX path)", () => {
    const comps: string[] = [];
    let total = 0;
    while (total < 4096 - 256) { const n = "c".repeat(250); comps.push(n); total += n.length + 1; }
    let name = comps.join("/") + "/";
    name += "f".repeat(4096 - name.length);
    expect(Buffer.byteLength(name)).toBe(4096);
    const c = run([[file(name, "long")]]);
    // (a path beyond PATH_MAX: extraction is relative to directory descriptors, so it may
    // succeed; read it back one directory at a time)
    if (c.code === 0) {
      const leaf = name.slice(name.lastIndexOf("/") + 1);
      const r = Bun.spawnSync(["sh", "-c", `cd "$1" && for d in ${comps.join(" ")}; do cd "$d" || exit 1; done && cat "$2"`, "sh", c.R, leaf]);
      expect(r.stdout.toString()).toBe("long");
    }
    else expect(c.stderr).toMatch(/too long|name/);
  });

  test("names with newlines", () => {
    const c = run([[dir("with\nnewline/"), file("with\nnewline/f\n", "n"), symlink("l\nk", "t\na\nrget")]]);
    expectOk(c);
    expect(readFileSync(join(c.R, "with\nnewline/f\n"), "utf8")).toBe("n");
    expect(readlinkSync(join(c.R, "l\nk"))).toBe("t\na\nrget");
    const mt = readdirSync(c.bundle).find((n) => n.endsWith(".mtree"))!;
    const r = boci(["raw", "mtree-validate", "-f", join(c.bundle, mt), "-p", c.R]);
    expect(r.stdout + r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  test("invalid UTF-8 names are extracted byte-exact inside the rootfs", () => {
    const bad = Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0x2d, 0xc3, 0x28]);
    // a second name that differs only in its invalid bytes: it must not collide with the first
    const bad2 = Buffer.from([0x62, 0x61, 0x64, 0xfe, 0xff, 0x2d, 0xc3, 0x28]);
    const c = run([[file(bad, "bytes"), file(bad2, "bytes2"), dir("d/"), file(Buffer.concat([Buffer.from("d/"), bad, Buffer.from("/x")]), "y")]]);
    // names are bytes: they unpack exactly as written, never refused and never silently renamed
    expectOk(c);
    const names = readdirSync(c.R, { encoding: "buffer" }).map((b) => b.toString("hex")).sort();
    expect(names).toEqual([Buffer.from("d").toString("hex"), bad.toString("hex"), bad2.toString("hex")].sort());
    const dnames = readdirSync(join(c.R, "d"), { encoding: "buffer" }).map((b) => b.toString("hex"));
    expect(dnames).toEqual([bad.toString("hex")]);
    expect(readFileSync(Buffer.concat([Buffer.from(c.R + "/"), bad])).toString()).toBe("bytes");
    expect(readFileSync(Buffer.concat([Buffer.from(c.R + "/"), bad2])).toString()).toBe("bytes2");
    expect(readFileSync(Buffer.concat([Buffer.from(c.R + "/d/"), bad, Buffer.from("/x")])).toString()).toBe("y");
  });

  test("a truncated gzip layer", () => {
    const t = makeTar([file("a", "x".repeat(10000))]);
    const gz = zlib.gzipSync(t);
    const c = run([t], { rawBlobs: [gz.subarray(0, Math.floor(gz.length / 2))] });
    expectError(c);
  });

  test("a truncated tar inside a valid gzip", () => {
    const t = makeTar([file("a", "x".repeat(10000))]);
    const c = run([t.subarray(0, 3000)]);
    expectError(c, /truncated/);
  });

  test("a wrong diff_id", () => {
    const c = run([[file("a", "x")]], { diffIds: [`sha256:${"1".repeat(64)}`] });
    expectError(c, /diffid mismatch/);
    expect(c.code).toBe(4);
  });

  test("a sparse 'S' entry is an error", () => {
    const c = run([[{ name: "sparse", type: "S", body: "x".repeat(512) }]]);
    expectError(c, /sparse/);
  });

  test("GNU.sparse PAX records are an error (never written raw)", () => {
    const c = run([[{ name: "GNUSparseFile.0/sparse", type: "0", body: "1\n0\n5\nhello", pax: { "GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "sparse", "GNU.sparse.realsize": "5" } }]]);
    if (c.code === 0) {
      // if accepted, the file must not contain the raw sparse map
      const p = existsSync(join(c.R, "sparse")) ? join(c.R, "sparse") : null;
      if (p) expect(readFileSync(p, "utf8")).toBe("hello");
      else throw new Error("GNU sparse entry extracted under an unexpected name");
    } else expectError(c, /sparse/);
  });

  test("an unknown typeflag is an error", () => {
    const c = run([[{ name: "weird", type: "Z" }]]);
    expectError(c, /type|typeflag/);
  });

  test("a socket-like or contiguous-file typeflag", () => {
    // '7' (contiguous file) is a regular file
    const c = run([[{ name: "cont", type: "7", body: "contig" }]]);
    expectOk(c);
    expect(readFileSync(join(c.R, "cont"), "utf8")).toBe("contig");
  });

  test("a bad header checksum is an error", () => {
    const c = run([[file("ok", "x"), file("bad", "y", { badChecksum: true })]]);
    expectError(c, /checksum/);
  });

  test("a PAX record with a bad length is an error", () => {
    const good = paxRecord("path", "renamed");
    const badLen = Buffer.from("99 path=renamed\n");
    const c = run([[{ name: "f", body: "x", rawPax: badLen }]]);
    expectError(c, /pax/);
    const c2 = run([[{ name: "f", body: "x", rawPax: Buffer.from("5 path=x\n") }]]);
    expectError(c2, /pax/);
    const c3 = run([[{ name: "f", body: "x", rawPax: Buffer.from("abc path=x\n") }]]);
    expectError(c3, /pax/);
    void good;
  });

  test("a binary SCHILY.xattr value with '=' and newlines is kept byte-exact", () => {
    const v = Buffer.from([0x3d, 0x0a, 0x00, 0xff, 0x31, 0x32, 0x20, 0x0a]);
    const c = run([[file("f", "x", { pax: { "SCHILY.xattr.user.bin": v } })]]);
    expectOk(c);
    const r = Bun.spawnSync(["getfattr", "--absolute-names", "-e", "hex", "-n", "user.bin", join(c.R, "f")]);
    expect(r.stdout.toString()).toContain(`user.bin=0x${v.toString("hex")}`);
  });

  test("a file body shorter than its size (truncated archive) is an error", () => {
    const entry = tarEntry(file("f", "x".repeat(2000)));
    const c = run([entry.subarray(0, BLOCK + 1024)]);
    expectError(c, /truncated/);
  });

  test("a hardlink to a directory is an error", () => {
    const c = run([[dir("d/"), hardlink("h", "d")]]);
    expectError(c, /directory/);
  });

  test("a hardlink to itself / the root is an error", () => {
    expectError(run([[hardlink("h", "h")]]));
    expectError(run([[hardlink("h", "/")]]));
  });

  test("a device node named over the root or through a symlink stays inside", () => {
    const c = run((s) => [[symlink("out", `${s}/outside`), { name: "out/null", type: "3", devmajor: 1, devminor: 3, mode: 0o666 }, { name: "out/fifo", type: "6" }]]);
    expectOk(c);
    expect(lstatSync(join(c.R, c.s.slice(1), "outside/null")).isCharacterDevice()).toBe(true);
  });

  test("a layer replacing a lower directory with a symlink to outside, then writing into it", () => {
    const c = run((s) => [[dir("etc/"), file("etc/passwd", "root:x:0:0::/:/bin/sh\n")], [symlink("etc", `${s}/outside`), file("etc/secret", "overwritten?")]]);
    expectOk(c);
    expect(lstatSync(join(c.R, "etc")).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(c.R, c.s.slice(1), "outside/secret"), "utf8")).toBe("overwritten?");
  });
});
