/**
 * File names that are not valid UTF-8, end to end through the real binary: a layer built in code
 * with raw-byte names (Latin-1 `caf\xe9` beside UTF-8 `caf\xc3\xa9`, `\xff\xfe`, a directory
 * `d\xe9/` with `x\x80` in it, a symlink to `caf\xe9`, a hardlink pair, and names that a lossy
 * decode would merge) is unpacked byte-exact (names, contents, link targets), recorded in the
 * bundle's mtree in go-mtree's vis encoding (`caf\351`) and validates clean; edits to raw-name
 * files repack into a layer whose PAX `path` records carry the raw bytes (and a `.wh.\377\376`
 * whiteout); boci and, where installed, Debian's umoci 0.4.7 unpack the results to the same
 * trees byte for byte; a repack with no change adds no layer.
 *
 * Needs root (unpack without --rootless keeps owners); skipped otherwise.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync, readdirSync, lstatSync, readlinkSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import * as zlib from "node:zlib";
import { boci, ok, scratch, sh, have, isRoot } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";
import { makeTar, file, dir, symlink, hardlink } from "../helpers/image";

const HAVE_UMOCI = have("umoci");
const HAVE_GNU_TAR = have("tar") && sh("tar --version").stdout.includes("GNU tar");
if (!isRoot) console.log("byte-names: not root; skipping (unpack without --rootless needs root)");
else if (!HAVE_UMOCI) console.log("byte-names: umoci not installed; skipping the umoci unpack comparisons");
if (isRoot && !HAVE_GNU_TAR) console.log("byte-names: GNU tar not installed; skipping the tar --list cross-check");

/** Bytes from latin1 text and byte arrays: B("caf", [0xe9]) is b"caf\xe9". */
function B(...parts: (string | number[])[]): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "latin1") : Buffer.from(p))));
}

/** An unambiguous printable form of raw bytes (for keys and failure messages): `caf\xe9`. */
function show(b: Buffer): string {
  let s = "";
  for (const c of b) s += c >= 0x20 && c < 0x7f && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, "0")}`;
  return s;
}

const N = {
  cafLatin1: B("caf", [0xe9]),
  cafUtf8: B("caf", [0xc3, 0xa9]),
  /** differs from cafLatin1 only in the invalid byte: a lossy decode makes both "caf\ufffd" */
  cafE8: B("caf", [0xe8]),
  /** the valid UTF-8 of U+FFFD: what a lossy decode of caf\xe9 would produce */
  cafReplacement: B("caf", [0xef, 0xbf, 0xbd]),
  /** the (invalid) WTF-8 bytes of the lone surrogate U+DCE9, which stands for byte 0xe9 inside boci */
  cafSurrogate: B("caf", [0xed, 0xb3, 0xa9]),
  fffe: B([0xff, 0xfe]),
  feff: B([0xfe, 0xff]),
  dir: B("d", [0xe9]),
  inDir: B("x", [0x80]),
  link: B("ln", [0xe9]),
  hard1: B("h", [0xe9], "1"),
  hard2: B("h", [0xfa], "2"),
  spaced: B("b\\", [0xe9], " x"),
  long: B("long-", "y".repeat(120), [0xe9]),
  newFile: B("n", [0xfe]),
  newInDir: B("y", [0xfa]),
};

const slash = (...p: Buffer[]): Buffer => Buffer.concat(p.flatMap((x, i) => (i ? [Buffer.from("/"), x] : [x])));

const LAYER = makeTar([
  file(N.cafLatin1, "latin-1 cafe\n"),
  file(N.cafUtf8, "utf-8 cafe\n"),
  file(N.cafE8, "e8\n"),
  file(N.cafReplacement, "replacement\n"),
  file(N.cafSurrogate, "surrogate\n"),
  file(N.fffe, "fffe\n"),
  file(N.feff, "feff\n"),
  dir(Buffer.concat([N.dir, Buffer.from("/")])),
  file(slash(N.dir, N.inDir), "x80\n"),
  symlink(N.link, N.cafLatin1),
  file(N.hard1, "hard\n"),
  hardlink(N.hard2, N.hard1),
  file(N.spaced, "spaced\n"),
  file(N.long, "long\n"),
]);

/** The top-level names of LAYER, as unpacked. */
const TOP = [N.cafLatin1, N.cafUtf8, N.cafE8, N.cafReplacement, N.cafSurrogate, N.fffe, N.feff, N.dir, N.link, N.hard1, N.hard2, N.spaced, N.long];

/**
 * Every path under `root` (names as raw bytes) → type, mode, owner, content or link target
 * bytes, and for files with nlink > 1 the first path (in byte order) sharing the inode.
 * Mtimes are left out: the edits give files the current time, which the tools carry to
 * different precisions.
 */
function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const inodes = new Map<number, string>();
  const walk = (abs: Buffer, rel: Buffer | null) => {
    const st = lstatSync(abs);
    const key = rel ? show(rel) : ".";
    const perm = (st.mode & 0o7777).toString(8);
    let v: string;
    if (st.isDirectory()) v = `dir ${perm} ${st.uid}:${st.gid}`;
    else if (st.isSymbolicLink()) v = `symlink ${st.uid}:${st.gid} -> ${show(readlinkSync(abs, { encoding: "buffer" }))}`;
    else if (st.isFile()) {
      v = `file ${perm} ${st.uid}:${st.gid} ${show(readFileSync(abs))}`;
      if (st.nlink > 1) {
        if (!inodes.has(st.ino)) inodes.set(st.ino, key);
        v += ` nlink=${st.nlink} same-inode-as=${inodes.get(st.ino)}`;
      }
    } else v = `other ${st.mode.toString(8)}`;
    out[key] = v;
    if (st.isDirectory()) {
      const names = readdirSync(abs, { encoding: "buffer" }).sort(Buffer.compare);
      for (const n of names) walk(slash(abs, n), rel ? slash(rel, n) : n);
    }
  };
  walk(Buffer.from(root), null);
  return out;
}

/** The raw top-level names of a directory, sorted by bytes, shown. */
function names(d: string | Buffer): string[] {
  return readdirSync(d, { encoding: "buffer" }).sort(Buffer.compare).map(show);
}

const sorted = (xs: Buffer[]): string[] => [...xs].sort(Buffer.compare).map(show);

interface TarItem { name: Buffer; type: string; linkname: Buffer; body: Buffer; paxPath?: Buffer; paxLinkpath?: Buffer }

/** A small, independent USTAR/PAX reader: names, link names and PAX path records as raw bytes. */
function parseTar(t: Buffer): TarItem[] {
  const out: TarItem[] = [];
  let pax: Map<string, Buffer> | null = null;
  let off = 0;
  while (off + 512 <= t.length) {
    const h = t.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const field = (a: number, l: number): Buffer => {
      const f = h.subarray(a, a + l);
      const z = f.indexOf(0);
      return Buffer.from(z < 0 ? f : f.subarray(0, z));
    };
    const size = parseInt(field(124, 12).toString("latin1").trim() || "0", 8);
    const type = String.fromCharCode(h[156] || 0x30);
    const body = Buffer.from(t.subarray(off + 512, off + 512 + size));
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === "x") {
      pax = new Map();
      let i = 0;
      while (i < body.length) {
        const sp = body.indexOf(0x20, i);
        const len = parseInt(body.subarray(i, sp).toString("latin1"), 10);
        const rec = body.subarray(sp + 1, i + len - 1);
        const eq = rec.indexOf(0x3d);
        pax.set(rec.subarray(0, eq).toString("latin1"), Buffer.from(rec.subarray(eq + 1)));
        i += len;
      }
      continue;
    }
    if (type === "g") continue;
    const prefix = field(345, 155);
    const hname = prefix.length ? slash(prefix, field(0, 100)) : field(0, 100);
    const paxPath = pax?.get("path");
    const paxLinkpath = pax?.get("linkpath");
    out.push({ name: paxPath ?? hname, type, linkname: paxLinkpath ?? field(157, 100), body, paxPath, paxLinkpath });
    pax = null;
  }
  return out;
}

/** An entry name without a leading "./" or trailing "/" (the root is "."). */
function clean(n: Buffer): Buffer {
  let s = n;
  while (s.length > 2 && s.subarray(0, 2).equals(Buffer.from("./"))) s = s.subarray(2);
  while (s.length > 1 && s[s.length - 1] === 0x2f) s = s.subarray(0, s.length - 1);
  return s.length === 0 || s.equals(Buffer.from("./")) ? Buffer.from(".") : s;
}

interface Stat { manifest: { blob: { layers: { digest: string }[] } } }
function layers(img: string): string[] {
  return (JSON.parse(ok(["stat", "--json", "--image", img]).stdout) as Stat).manifest.blob.layers.map((l) => l.digest);
}
function mtreeFile(bundle: string): string {
  const f = readdirSync(bundle).filter((n) => n.endsWith(".mtree"));
  if (f.length !== 1) throw new Error(`expected one mtree in ${bundle}: ${f.join(",")}`);
  return join(bundle, f[0]!);
}
/** `boci raw mtree-validate` of `dir` against bundle's mtree: "" and 0 when equal. */
function validate(bundle: string, d: string): { code: number; out: string } {
  const r = boci(["raw", "mtree-validate", "-f", mtreeFile(bundle), "-p", d]);
  return { code: r.code, out: r.stdout + r.stderr };
}
function umociUnpack(img: string, dest: string): void {
  const r = sh(`umoci unpack --image ${JSON.stringify(img)} ${JSON.stringify(dest)}`);
  if (r.code !== 0) throw new Error(`umoci unpack --image ${img} ${dest} exited ${r.code}: ${r.stderr}`);
}

interface Fx { s: string; L: string; bundle: string; R: string }

/** boci init, boci new, boci raw add-layer LAYER, boci unpack into s/bundle. */
function fixture(): Fx {
  const s = scratch("boci-bytenames-");
  const L = join(s, "layout");
  ok(["init", "--layout", L]);
  ok(["new", "--image", `${L}:t`]);
  const tarPath = join(s, "layer.tar");
  writeFileSync(tarPath, LAYER);
  ok(["raw", "add-layer", "--image", `${L}:t`, tarPath]);
  expect(checkLayout(L)).toEqual([]);
  const bundle = join(s, "bundle");
  ok(["unpack", "--no-progress", "--image", `${L}:t`, bundle]);
  return { s, L, bundle, R: join(bundle, "rootfs") };
}

const inR = (fx: Fx, ...p: Buffer[]): Buffer => slash(Buffer.from(fx.R), ...p);

/** The edits: rewrite one raw-name file, add two (one in the raw-name directory), delete one. */
function edit(fx: Fx): void {
  writeFileSync(inR(fx, N.cafLatin1), "rewritten\n");
  writeFileSync(inR(fx, N.newFile), "new\n");
  writeFileSync(inR(fx, N.dir, N.newInDir), "new in dir\n");
  unlinkSync(inR(fx, N.fffe));
}

describe.skipIf(!isRoot)("non-UTF-8 file names: unpack, mtree, repack, umoci", () => {
  test("unpack writes the names byte-exact; the mtree records them vis-encoded and validates clean", () => {
    const fx = fixture();
    expect(names(fx.R)).toEqual(sorted(TOP));
    expect(names(inR(fx, N.dir))).toEqual([show(N.inDir)]);
    // contents: the two cafés (and the names a lossy decode would merge) stay distinct files
    expect(readFileSync(inR(fx, N.cafLatin1), "utf8")).toBe("latin-1 cafe\n");
    expect(readFileSync(inR(fx, N.cafUtf8), "utf8")).toBe("utf-8 cafe\n");
    expect(readFileSync(inR(fx, N.cafE8), "utf8")).toBe("e8\n");
    expect(readFileSync(inR(fx, N.cafReplacement), "utf8")).toBe("replacement\n");
    expect(readFileSync(inR(fx, N.cafSurrogate), "utf8")).toBe("surrogate\n");
    expect(readFileSync(inR(fx, N.fffe), "utf8")).toBe("fffe\n");
    expect(readFileSync(inR(fx, N.feff), "utf8")).toBe("feff\n");
    expect(readFileSync(inR(fx, N.dir, N.inDir), "utf8")).toBe("x80\n");
    expect(readFileSync(inR(fx, N.long), "utf8")).toBe("long\n");
    expect(lstatSync(inR(fx, N.cafLatin1)).ino).not.toBe(lstatSync(inR(fx, N.cafUtf8)).ino);
    // the symlink's target bytes, and that it resolves to the Latin-1 file
    expect(show(readlinkSync(inR(fx, N.link), { encoding: "buffer" }))).toBe(show(N.cafLatin1));
    expect(readFileSync(inR(fx, N.link), "utf8")).toBe("latin-1 cafe\n");
    // the hardlink pair
    const h1 = lstatSync(inR(fx, N.hard1));
    const h2 = lstatSync(inR(fx, N.hard2));
    expect(h2.ino).toBe(h1.ino);
    expect(h1.nlink).toBe(2);
    expect(readFileSync(inR(fx, N.hard2), "utf8")).toBe("hard\n");

    // the mtree: go-mtree's vis encoding (octal escapes for every byte outside printable ASCII)
    const m = readFileSync(mtreeFile(fx.bundle), "latin1");
    const entry = (vis: string) => new RegExp(`^\\s*${vis.replace(/\\/g, "\\\\")} `, "m");
    expect(m).toMatch(entry("caf\\351"));
    expect(m).toMatch(entry("caf\\303\\251"));
    expect(m).toMatch(entry("caf\\350"));
    expect(m).toMatch(entry("caf\\357\\277\\275"));
    expect(m).toMatch(entry("caf\\355\\263\\251"));
    expect(m).toMatch(entry("\\377\\376"));
    expect(m).toMatch(entry("\\376\\377"));
    expect(m).toMatch(entry("d\\351"));
    expect(m).toMatch(entry("x\\200"));
    expect(m).toMatch(entry("h\\3511"));
    expect(m).toMatch(entry("h\\3722"));
    expect(m).toMatch(entry("b\\\\\\351\\040x"));
    expect(m).toMatch(/^\s*ln\\351 .*\blink=caf\\351\b/m);
    // the directory's own line and its child under it
    expect(m).toMatch(/^# d\\351\nd\\351 [^\n]*type=dir[^\n]*\n\s+x\\200 /m);
    // no raw (unescaped) byte above 0x7e anywhere in the file
    expect([...Buffer.from(m, "latin1")].filter((b) => b > 0x7e)).toEqual([]);
    const v = validate(fx.bundle, fx.R);
    expect(v.out).toBe("");
    expect(v.code).toBe(0);
  });

  test.skipIf(!HAVE_UMOCI)("umoci 0.4.7 unpacks the same image to the same tree", () => {
    const fx = fixture();
    const ub = join(fx.s, "umoci-bundle");
    umociUnpack(`${fx.L}:t`, ub);
    expect(tree(join(ub, "rootfs"))).toEqual(tree(fx.R));
    // and the tree umoci made validates against boci's mtree
    const v = validate(fx.bundle, join(ub, "rootfs"));
    expect(v.out).toBe("");
    expect(v.code).toBe(0);
  });

  test("repack of edits to raw-name files: raw PAX paths and a raw whiteout; boci reads it back; no change adds no layer", () => {
    const fx = fixture();
    edit(fx);
    const want = tree(fx.R);
    expect(Object.keys(want)).toContain(show(N.newFile));
    expect(Object.keys(want)).not.toContain(show(N.fffe));
    const before = layers(`${fx.L}:t`);
    ok(["repack", "--no-progress", "--image", `${fx.L}:t2`, fx.bundle]);
    expect(checkLayout(fx.L)).toEqual([]);
    const after = layers(`${fx.L}:t2`);
    expect(after.length).toBe(before.length + 1);
    expect(after.slice(0, -1)).toEqual(before);

    // (a) the new layer, read by this file's own tar reader
    const top = after.at(-1)!;
    const tar = zlib.gunzipSync(readFileSync(join(fx.L, "blobs", ...top.split(":"))));
    const items = parseTar(tar);
    const byName = new Map(items.map((e) => [show(clean(e.name)), e]));
    const wh = Buffer.concat([Buffer.from(".wh."), N.fffe]);
    const expected = [N.cafLatin1, N.newFile, N.dir, slash(N.dir, N.newInDir), wh];
    expect([...byName.keys()].filter((n) => n !== ".").sort()).toEqual(sorted(expected).sort());
    for (const n of expected) {
      const e = byName.get(show(n))!;
      // a name that is not ASCII goes into a PAX path record, byte-exact
      expect(e.paxPath === undefined ? "no PAX path" : show(clean(e.paxPath))).toBe(show(n));
    }
    expect(byName.get(show(N.cafLatin1))!.body.toString()).toBe("rewritten\n");
    expect(byName.get(show(N.newFile))!.body.toString()).toBe("new\n");
    expect(byName.get(show(slash(N.dir, N.newInDir)))!.body.toString()).toBe("new in dir\n");
    expect(byName.get(show(N.dir))!.type).toBe("5");
    expect(byName.get(show(wh))!.type).toBe("0");
    expect(byName.get(show(wh))!.body.length).toBe(0);
    // the unchanged raw names are not in the layer
    for (const n of [N.cafUtf8, N.cafE8, N.feff, N.link, N.hard1, N.hard2, slash(N.dir, N.inDir)]) expect(byName.has(show(n))).toBe(false);

    // GNU tar agrees on the raw names (an independent reader)
    if (HAVE_GNU_TAR) {
      const tf = join(fx.s, "top.tar");
      writeFileSync(tf, tar);
      const l = sh(`tar --list --quoting-style=escape -f ${JSON.stringify(tf)}`);
      expect(l.code).toBe(0);
      const listed = l.stdout.trim().split("\n").map((n) => n.replace(/^\.\//, "").replace(/\/$/, "")).filter((n) => n !== "." && n !== "");
      expect(listed.sort()).toEqual(["caf\\351", "d\\351", "d\\351/y\\372", "n\\376", ".wh.\\377\\376"].sort());
    }

    // boci unpacks the new image to the edited tree, byte for byte; the two cafés stay two files
    const b2 = join(fx.s, "bundle2");
    ok(["unpack", "--no-progress", "--image", `${fx.L}:t2`, b2]);
    const got = tree(join(b2, "rootfs"));
    expect(got).toEqual(want);
    expect(got[show(N.cafLatin1)]).toBe("file 644 0:0 rewritten\\x0a");
    expect(got[show(N.cafUtf8)]).toBe("file 644 0:0 utf-8 cafe\\x0a");
    expect(got[show(N.cafE8)]).toBe("file 644 0:0 e8\\x0a");
    expect(got[show(N.cafReplacement)]).toBe("file 644 0:0 replacement\\x0a");
    expect(got[show(N.cafSurrogate)]).toBe("file 644 0:0 surrogate\\x0a");
    expect(got[show(N.feff)]).toBe("file 644 0:0 feff\\x0a");
    expect(show(N.fffe) in got).toBe(false);
    const v = validate(b2, fx.R);
    expect(v.out).toBe("");
    expect(v.code).toBe(0);

    // (c) no change: repacking the fresh unpack of t2 adds no layer
    ok(["repack", "--no-progress", "--image", `${fx.L}:t3`, b2]);
    expect(checkLayout(fx.L)).toEqual([]);
    expect(layers(`${fx.L}:t3`)).toEqual(after);
    // nor does a second repack of the edited bundle once --refresh-bundle pointed it at its result
    ok(["repack", "--no-progress", "--refresh-bundle", "--image", `${fx.L}:t4`, fx.bundle]);
    const t4 = layers(`${fx.L}:t4`);
    expect(t4.length).toBe(before.length + 1);
    ok(["repack", "--no-progress", "--image", `${fx.L}:t5`, fx.bundle]);
    expect(checkLayout(fx.L)).toEqual([]);
    expect(layers(`${fx.L}:t5`)).toEqual(t4);
  });

  test.skipIf(!HAVE_UMOCI)("umoci 0.4.7 unpacks the repacked image to the edited tree byte for byte", () => {
    const fx = fixture();
    edit(fx);
    ok(["repack", "--no-progress", "--image", `${fx.L}:t2`, fx.bundle]);
    expect(checkLayout(fx.L)).toEqual([]);
    const ub = join(fx.s, "umoci-bundle");
    umociUnpack(`${fx.L}:t2`, ub);
    const got = tree(join(ub, "rootfs"));
    const want = tree(fx.R);
    expect(got).toEqual(want);
    expect(names(join(ub, "rootfs"))).toEqual(sorted([...TOP.filter((n) => !n.equals(N.fffe)), N.newFile]));
    expect(got[show(N.cafLatin1)]).toBe("file 644 0:0 rewritten\\x0a");
    expect(got[show(N.cafUtf8)]).toBe("file 644 0:0 utf-8 cafe\\x0a");
    expect(got[show(N.link)]).toBe(`symlink 0:0 -> ${show(N.cafLatin1)}`);
    expect(got[show(slash(N.dir, N.newInDir))]).toBe("file 644 0:0 new in dir\\x0a");
  });
});
