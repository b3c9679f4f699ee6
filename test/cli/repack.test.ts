/**
 * `repack` through the real binary: images are made with `boci init/new/unpack`, edited with shell
 * commands, repacked, and the layer blobs inspected (own small tar parser + GNU tar) and unpacked
 * again. Most tests need root (chown, security.* xattrs, mknod of FIFOs is fine unprivileged).
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync, existsSync, readdirSync, lstatSync, readlinkSync, statSync, rmSync } from "node:fs";
import { join } from "node:path";
import * as zlib from "node:zlib";
import { boci, ok, scratch, sh, isRoot } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";
import { CAP_HEX, REPACK_BASE, REPACK_EDITS } from "../helpers/repack-fixture";

// ---------------------------------------------------------------- helpers

const GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd";
const TAR = "application/vnd.oci.image.layer.v1.tar";

interface Desc { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }
interface Hist { created?: string; created_by?: string; author?: string; comment?: string; empty_layer?: boolean }
interface Stat { manifest: { descriptor: Desc; blob: { layers: Desc[] } }; config: { descriptor: Desc; blob: { author?: string; rootfs: { diff_ids: string[] }; history?: Hist[] } }; history: Hist[] | null }

function newLayout(): string {
  const l = join(scratch(), "layout");
  ok(["init", "--layout", l]);
  return l;
}
function stat(img: string): Stat { return JSON.parse(ok(["stat", "--json", "--image", img]).stdout) as Stat; }
function hist(img: string): Hist[] { return stat(img).config.blob.history ?? []; }
function layers(img: string): Desc[] { return stat(img).manifest.blob.layers; }
function indexBytes(l: string): Buffer { return readFileSync(join(l, "index.json")); }
/** Every regular file under a directory (relative paths, sorted). */
function filesOf(dir: string): string[] { return sh(`cd ${JSON.stringify(dir)} && find . -type f | LC_ALL=C sort`).stdout.split("\n").filter(Boolean); }
function blobPath(l: string, digest: string): string { return join(l, "blobs", ...digest.split(":")); }
function sha256(b: Uint8Array): string {
  const h = new Bun.CryptoHasher("sha256");
  h.update(b);
  return "sha256:" + h.digest("hex");
}
/** Unpack into a fresh bundle directory (its path is returned). */
function unpack(img: string, extra: string[] = []): string {
  const b = join(scratch(), "bundle");
  ok(["unpack", "--no-progress", ...extra, "--image", img, b]);
  return b;
}
function run(cmd: string, cwd: string): void {
  const r = sh(`set -e\n${cmd}`, { cwd });
  if (r.code !== 0) throw new Error(`shell failed (${r.code}): ${cmd}\n${r.stderr}`);
}
function repack(img: string, bundle: string, extra: string[] = [], env?: Record<string, string>) {
  return ok(["repack", "--no-progress", ...extra, "--image", img, bundle], { env });
}
function mtreeFiles(bundle: string): string[] { return readdirSync(bundle).filter((n) => n.endsWith(".mtree")); }
function mtreeFile(bundle: string): string {
  const f = mtreeFiles(bundle);
  if (f.length !== 1) throw new Error(`expected one mtree in ${bundle}, found ${f.join(",")}`);
  return join(bundle, f[0]!);
}
/** `raw mtree-validate` of `dir` against bundle `ref`'s mtree. */
function validate(refBundle: string, dir: string) {
  return boci(["raw", "mtree-validate", "-f", mtreeFile(refBundle), "-p", dir]);
}
function xattrHex(p: string, name: string): string {
  const r = sh(`getfattr -h --absolute-names -e hex -n ${name} ${JSON.stringify(p)}`);
  if (r.code !== 0) return "";
  const m = r.stdout.match(new RegExp(`^${name.replace(/\./g, "\\.")}=0x([0-9a-f]*)$`, "m"));
  return m ? m[1]! : "";
}

/** Decompress a layer blob according to its media type. */
function layerTar(l: string, d: Desc): Buffer {
  const b = readFileSync(blobPath(l, d.digest));
  if (d.mediaType.endsWith("+gzip")) return zlib.gunzipSync(b);
  if (d.mediaType.endsWith("+zstd")) return Buffer.from(Bun.zstdDecompressSync(b));
  return b;
}

interface TarEntry {
  name: string; type: string; mode: number; uid: number; gid: number; size: number; mtime: number;
  linkname: string; uname: string; gname: string; pax: Record<string, Buffer>;
}
function num(h: Buffer, off: number, len: number): number {
  if (h[off]! & 0x80) { let n = 0; for (let i = off + 1; i < off + len; i++) n = n * 256 + h[i]!; return n; }
  const s = h.subarray(off, off + len).toString("latin1").replace(/[\0 ].*$/s, "").trim();
  return s === "" ? 0 : parseInt(s, 8);
}
function str(h: Buffer, off: number, len: number): string {
  const e = h.indexOf(0, off);
  return h.subarray(off, e < 0 || e > off + len ? off + len : e).toString("utf8");
}
function parsePax(b: Buffer): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  let i = 0;
  while (i < b.length) {
    const sp = b.indexOf(0x20, i);
    const len = parseInt(b.subarray(i, sp).toString("latin1"), 10);
    const rec = b.subarray(sp + 1, i + len - 1);
    const eq = rec.indexOf(0x3d);
    out[rec.subarray(0, eq).toString("utf8")] = Buffer.from(rec.subarray(eq + 1));
    i += len;
  }
  return out;
}
/** A minimal tar reader (USTAR + PAX + GNU long names); PAX values kept as raw bytes. */
function parseTar(buf: Buffer): TarEntry[] {
  const out: TarEntry[] = [];
  let off = 0;
  let pax: Record<string, Buffer> = {};
  let longName: string | null = null;
  let longLink: string | null = null;
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512);
    if (h.every((x) => x === 0)) break;
    const size = num(h, 124, 12);
    const type = String.fromCharCode(h[156]! || 0x30);
    const body = buf.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === "x") { pax = { ...pax, ...parsePax(body) }; continue; }
    if (type === "g") continue;
    if (type === "L") { longName = str(body, 0, body.length); continue; }
    if (type === "K") { longLink = str(body, 0, body.length); continue; }
    const magic = h.subarray(257, 263).toString("latin1");
    const prefix = magic.startsWith("ustar\0") ? str(h, 345, 155) : "";
    let name = str(h, 0, 100);
    if (prefix) name = `${prefix}/${name}`;
    if (longName !== null) name = longName;
    if (pax.path) name = pax.path.toString("utf8");
    let linkname = longLink ?? str(h, 157, 100);
    if (pax.linkpath) linkname = pax.linkpath.toString("utf8");
    out.push({
      name, type, mode: num(h, 100, 8), uid: pax.uid ? Number(pax.uid.toString()) : num(h, 108, 8),
      gid: pax.gid ? Number(pax.gid.toString()) : num(h, 116, 8), size: pax.size ? Number(pax.size.toString()) : size,
      mtime: num(h, 136, 12), linkname, uname: str(h, 265, 32), gname: str(h, 297, 32), pax,
    });
    pax = {};
    longName = longLink = null;
  }
  return out;
}
function entriesOf(l: string, d: Desc): TarEntry[] { return parseTar(layerTar(l, d)); }
function lastLayerEntries(layout: string, img: string): TarEntry[] { return entriesOf(layout, layers(img).at(-1)!); }
function byName(es: TarEntry[]): Map<string, TarEntry> { return new Map(es.map((e) => [e.name, e])); }
function compareBytes(a: string, b: string): number { return Buffer.compare(Buffer.from(a), Buffer.from(b)); }

/** An image made through the CLI: new + one repacked layer with the base tree. */
function baseImage(script: string, tag = "base"): { layout: string; img: string } {
  const layout = newLayout();
  const img = `${layout}:${tag}`;
  ok(["new", "--image", img]);
  const b0 = unpack(img);
  run(script, join(b0, "rootfs"));
  repack(img, b0);
  expect(checkLayout(layout)).toEqual([]);
  return { layout, img };
}

const BASE = REPACK_BASE;
const EDITS = REPACK_EDITS;

// ---------------------------------------------------------------- tests

describe.skipIf(!isRoot)("repack: round trip of every kind of change", () => {
  test("edits → repack → unpack gives the edited tree; layer has the expected entries", () => {
    const { layout, img } = baseImage(BASE);
    const before = layers(img).length;
    const b1 = unpack(img);
    const r1 = join(b1, "rootfs");
    run(EDITS, r1);
    repack(`${layout}:new`, b1);
    expect(checkLayout(layout)).toEqual([]);
    expect(layers(`${layout}:new`).length).toBe(before + 1);
    // the source tag is untouched
    expect(layers(img).length).toBe(before);

    const es = lastLayerEntries(layout, `${layout}:new`);
    const m = byName(es);
    const names = es.map((e) => e.name);
    // one whiteout for the deleted tree, none per child
    expect(names).toContain(".wh.deltree");
    expect(names.filter((n) => n.startsWith("deltree/"))).toEqual([]);
    expect(names).toContain(".wh.del-file");
    for (const n of ["added", "mod-content", "mod-mode", "mod-owner", "mod-mtime", "mod-xattr", "file2dir/", "file2dir/inner", "dir2link", "hl1", "hl2", "fifo", "suid", "capfile"]) {
      expect(names).toContain(n);
    }
    // unchanged paths are not in the layer
    expect(names).not.toContain("keep");
    expect(names).not.toContain("etc/");
    expect(names).not.toContain("etc/passwd");

    expect(m.get("dir2link")!.type).toBe("2");
    expect(m.get("dir2link")!.linkname).toBe("usr");
    expect(m.get("file2dir/")!.type).toBe("5");
    expect(m.get("fifo")!.type).toBe("6");
    expect(m.get("suid")!.mode & 0o7777).toBe(0o4755);
    expect(m.get("mod-mode")!.mode & 0o7777).toBe(0o600);
    expect(m.get("mod-owner")!.uid).toBe(1000);
    expect(m.get("mod-owner")!.gid).toBe(1000);
    expect(m.get("mod-mtime")!.mtime).toBe(Math.floor(new Date("2020-01-02T03:04:05").getTime() / 1000));
    expect(m.get("mod-xattr")!.pax["SCHILY.xattr.user.x"]?.toString()).toBe("hello");
    expect(m.get("capfile")!.pax["SCHILY.xattr.security.capability"]?.toString("hex")).toBe(CAP_HEX);
    // hardlink pair: first in full, second a link entry of size 0
    const [h1, h2] = [m.get("hl1")!, m.get("hl2")!];
    expect(h1.type).toBe("0");
    expect(h1.size).toBe(3);
    expect(h2.type).toBe("1");
    expect(h2.linkname).toBe("hl1");
    expect(h2.size).toBe(0);
    // GNU tar agrees about the link entry
    const tv = sh(`tar --numeric-owner -tvzf ${blobPath(layout, layers(`${layout}:new`).at(-1)!.digest)}`);
    expect(tv.code).toBe(0);
    expect(tv.stdout).toMatch(/^h.* hl2 link to hl1$/m);
    expect(tv.stdout).toMatch(/^p.* fifo$/m);

    // unpack elsewhere: same tree
    const b2 = unpack(`${layout}:new`);
    const r2 = join(b2, "rootfs");
    const v = validate(b2, r1);
    expect(v.stdout + v.stderr).toBe("");
    expect(v.code).toBe(0);
    // and the other direction: the edited bundle's view of the new rootfs
    expect(existsSync(join(r2, "deltree"))).toBe(false);
    expect(existsSync(join(r2, "del-file"))).toBe(false);
    expect(readlinkSync(join(r2, "dir2link"))).toBe("usr");
    expect(readFileSync(join(r2, "file2dir/inner"), "utf8")).toBe("in\n");
    expect(lstatSync(join(r2, "fifo")).isFIFO()).toBe(true);
    expect(lstatSync(join(r2, "suid")).mode & 0o7777).toBe(0o4755);
    expect(lstatSync(join(r2, "mod-owner")).uid).toBe(1000);
    expect(statSync(join(r2, "hl1")).ino).toBe(statSync(join(r2, "hl2")).ino);
    expect(xattrHex(join(r2, "capfile"), "security.capability")).toBe(CAP_HEX);
    expect(xattrHex(join(r2, "mod-xattr"), "user.x")).toBe(Buffer.from("hello").toString("hex"));
    expect(readFileSync(join(r2, "keep"), "utf8")).toBe("keep\n");
  });

  test("a directory replaced by a symlink does not let a child whiteout escape through the link", () => {
    // dir2link/x existed; dir2link becomes a symlink to etc, which has its own x. The layer
    // must not delete etc/x when it is unpacked (a whiteout dir2link/.wh.x would resolve through
    // the new symlink).
    const { layout, img } = baseImage(`mkdir -p etc dir2link; echo keep > etc/x; echo gone > dir2link/x`);
    const b1 = unpack(img);
    run(`rm -rf dir2link; ln -s etc dir2link`, join(b1, "rootfs"));
    repack(`${layout}:new`, b1);
    expect(checkLayout(layout)).toEqual([]);
    const b2 = unpack(`${layout}:new`);
    expect(readFileSync(join(b2, "rootfs/etc/x"), "utf8")).toBe("keep\n");
    expect(validate(b2, join(b1, "rootfs")).code).toBe(0);
  });
});

describe.skipIf(!isRoot)("repack: layer format", () => {
  test("entries sorted by path, dirs end in '/', root is '.', no uname/gname, whole-second times", () => {
    const { layout, img } = baseImage(BASE);
    const b1 = unpack(img);
    run(EDITS + `\nmkdir -p 'z dir/a-b' 'z dir/a' a.b; echo 1 > 'z dir/a-b/f'; echo 2 > 'z dir/a/f'; echo 3 > a.b/c`, join(b1, "rootfs"));
    repack(img, b1);
    expect(checkLayout(layout)).toEqual([]);
    const es = lastLayerEntries(layout, img);
    expect(es[0]!.name).toBe("."); // as umoci names the root
    // order: by the path the entry is about (a whiteout sorts where its target was)
    const key = (n: string) => n.replace(/\/$/, "").replace(/(^|\/)\.wh\./, "$1");
    const keys = es.map((e) => key(e.name));
    expect([...keys].sort(compareBytes)).toEqual(keys);
    expect(new Set(keys).size).toBe(keys.length);
    for (const e of es) {
      if (e.type === "5" && e.name !== ".") expect(e.name.endsWith("/")).toBe(true);
      else expect(e.name.endsWith("/")).toBe(false);
      expect(e.name.startsWith("/")).toBe(false);
      expect(e.uname).toBe("");
      expect(e.gname).toBe("");
      for (const k of ["uname", "gname", "atime", "ctime"]) expect(e.pax[k]).toBeUndefined();
      if (e.pax.mtime) expect(e.pax.mtime.toString()).toMatch(/^\d+$/);
      expect(Number.isInteger(e.mtime)).toBe(true);
    }
    // GNU tar lists it too, numerically, with empty owner names
    const tv = sh(`tar --numeric-owner -tvzf ${blobPath(layout, layers(img).at(-1)!.digest)}`);
    expect(tv.code).toBe(0);
    expect(tv.stdout).toContain("z dir/a-b/f");
  });

  test("a hard link to a symlink is one inode: repacked as a link entry and unpacked as one inode again", () => {
    const { layout, img } = baseImage(BASE);
    const b1 = unpack(img);
    run(`ln -s target sym && ln -P sym hard`, join(b1, "rootfs"));
    expect(lstatSync(join(b1, "rootfs/hard")).ino).toBe(lstatSync(join(b1, "rootfs/sym")).ino);
    repack(img, b1);
    expect(checkLayout(layout)).toEqual([]);
    const es = lastLayerEntries(layout, img).filter((e) => e.name === "hard" || e.name === "sym");
    // the first name (by path) is the symlink, the second a hard link to it
    expect(es.map((e) => [e.name, e.type, e.linkname])).toEqual([["hard", "2", "target"], ["sym", "1", "hard"]]);
    const b2 = unpack(img);
    const h = lstatSync(join(b2, "rootfs/hard"));
    expect(h.isSymbolicLink()).toBe(true);
    expect(h.ino).toBe(lstatSync(join(b2, "rootfs/sym")).ino);
    expect(h.nlink).toBe(2);
    expect(readlinkSync(join(b2, "rootfs/sym"))).toBe("target");
  });

  test("a name that is not valid UTF-8 in the rootfs is archived byte-exact (and unpacks so again)", () => {
    const { layout, img } = baseImage(BASE);
    const b1 = unpack(img);
    run(`printf 'raw' > "$(printf 'caf\\351')"`, join(b1, "rootfs"));
    repack(img, b1);
    expect(checkLayout(layout)).toEqual([]);
    const b2 = unpack(img);
    const raw = Buffer.from([0x63, 0x61, 0x66, 0xe9]);
    const names = readdirSync(join(b2, "rootfs"), { encoding: "buffer" });
    expect(names.filter((n) => n.equals(raw)).length).toBe(1);
    expect(readFileSync(Buffer.concat([Buffer.from(join(b2, "rootfs") + "/"), raw]), "utf8")).toBe("raw");
  });

  test("whiteout entries are empty regular files", () => {
    const { layout, img } = baseImage(BASE);
    const b1 = unpack(img);
    run(`rm del-file`, join(b1, "rootfs"));
    repack(img, b1);
    const wh = byName(lastLayerEntries(layout, img)).get(".wh.del-file")!;
    expect(wh).toBeDefined();
    expect(wh.type).toBe("0");
    expect(wh.size).toBe(0);
  });

  test("a real '.wh.' file in the rootfs makes repack fail with one line; the tag is unchanged", () => {
    const { layout, img } = baseImage(BASE);
    const b1 = unpack(img);
    run(`echo x > etc/.wh.foo; echo y > other`, join(b1, "rootfs"));
    const before = indexBytes(layout);
    const files = filesOf(layout);
    const r = boci(["repack", "--no-progress", "--image", img, b1]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n")[0]).toContain(".wh.");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    // no temporary blob left behind
    expect(filesOf(layout)).toEqual(files);
    expect(r.stderr).not.toContain("    at ");
    expect(indexBytes(layout)).toEqual(before);
    expect(checkLayout(layout)).toEqual([]);
    // and to a new tag: nothing is created
    expect(boci(["repack", "--no-progress", "--image", `${layout}:other`, b1]).code).not.toBe(0);
    expect(ok(["ls", "--layout", layout]).stdout).toBe("base\n");
  });
});

describe.skipIf(!isRoot)("repack: no change", () => {
  test("no new layer, one empty_layer history entry, new manifest", () => {
    const { layout, img } = baseImage(BASE);
    const s0 = stat(img);
    const b1 = unpack(img);
    repack(`${layout}:same`, b1);
    expect(checkLayout(layout)).toEqual([]);
    const s1 = stat(`${layout}:same`);
    expect(s1.manifest.blob.layers).toEqual(s0.manifest.blob.layers);
    expect(s1.config.blob.rootfs.diff_ids).toEqual(s0.config.blob.rootfs.diff_ids);
    const h0 = s0.config.blob.history ?? [];
    const h1 = s1.config.blob.history ?? [];
    expect(h1.length).toBe(h0.length + 1);
    expect(h1.at(-1)!.empty_layer).toBe(true);
    expect(h1.at(-1)!.created_by).toBe("boci repack");
    expect(s1.manifest.descriptor.digest).not.toBe(s0.manifest.descriptor.digest);
  });

  test("top layer adds a root-level file without a './' entry: unpack keeps the root mtime, repack adds no layer", () => {
    const { layout, img } = baseImage(BASE + `\ntouch -d @1600000000 .`);
    const src = join(scratch(), "f");
    writeFileSync(src, "x\n");
    ok(["insert", "--image", img, src, "/rootfile"]);
    expect(checkLayout(layout)).toEqual([]);
    expect(lastLayerEntries(layout, img).map((e) => e.name)).toEqual(["rootfile"]);
    const b = unpack(img);
    // the root's time comes from the lower layer; adding rootfile must not bump it
    expect(lstatSync(join(b, "rootfs")).mtimeMs).toBe(1600000000 * 1000);
    const v = validate(b, join(b, "rootfs"));
    expect(v.stdout + v.stderr).toBe("");
    const n = layers(img).length;
    repack(img, b);
    expect(checkLayout(layout)).toEqual([]);
    expect(layers(img).length).toBe(n);
  });

  test("property: unpack then repack of random trees adds no layer", () => {
    let seed = 12345;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
    const names = ["a", "b c", "ü", "x*y", "long-" + "n".repeat(120), "d#1", ".hidden", "tab\tname"];
    for (let iter = 0; iter < 6; iter++) {
      const lines: string[] = [];
      const paths: string[] = ["."];
      for (let i = 0; i < 12; i++) {
        const parent = paths[rnd(paths.length)]!;
        const p = `${parent}/${names[rnd(names.length)]}${i}`;
        const q = JSON.stringify(p).replace(/\$/g, "\\$");
        const kind = rnd(6);
        if (kind === 0) { lines.push(`mkdir -p ${q}; chmod ${["755", "700", "1777"][rnd(3)]} ${q}`); paths.push(p); }
        else if (kind === 1) lines.push(`ln -s ${JSON.stringify(names[rnd(names.length)]!)} ${q}`);
        else if (kind === 2) lines.push(`printf '%s' ${i}${"z".repeat(rnd(2000))} > ${q}; chmod ${["644", "600", "4755", "2711"][rnd(4)]} ${q}; chown ${rnd(3000)}:${rnd(3000)} ${q}`);
        else if (kind === 3) lines.push(`echo h > ${q}; ln ${q} ${q}.link`);
        else if (kind === 4) lines.push(`mkfifo ${q}`);
        else lines.push(`echo x > ${q}; setfattr -n user.k${i} -v v${rnd(100)} ${q}; touch -d @${rnd(2e9)} ${q}`);
      }
      const { layout, img } = baseImage(lines.join("\n"));
      const n = layers(img).length;
      const b = unpack(img);
      repack(img, b);
      expect(checkLayout(layout)).toEqual([]);
      expect({ iter, layers: layers(img).length }).toEqual({ iter, layers: n });
    }
  });
});

describe.skipIf(!isRoot)("repack: masks", () => {
  test("--mask-path /etc leaves etc changes out", () => {
    const { layout, img } = baseImage(BASE);
    const b1 = unpack(img);
    run(`echo changed >> etc/passwd; echo new > etc/new; mkdir etc/d; echo 1 > top`, join(b1, "rootfs"));
    repack(img, b1, ["--mask-path", "/etc"]);
    expect(checkLayout(layout)).toEqual([]);
    const names = lastLayerEntries(layout, img).map((e) => e.name);
    expect(names).toContain("top");
    expect(names.filter((n) => n === "etc" || n.startsWith("etc/"))).toEqual([]);
  });

  test("--mask-path given twice; a mask does not cover a sibling with the same prefix", () => {
    const { layout, img } = baseImage(BASE + `\nmkdir -p etc2 var`);
    const b1 = unpack(img);
    run(`echo 1 > etc/a; echo 2 > etc2/b; echo 3 > var/c`, join(b1, "rootfs"));
    repack(img, b1, ["--mask-path", "/etc", "--mask-path", "var"]);
    const names = lastLayerEntries(layout, img).map((e) => e.name);
    expect(names).toContain("etc2/b");
    expect(names.filter((n) => n.startsWith("etc/") || n.startsWith("var/"))).toEqual([]);
  });

  test("volumes are masked by default; --no-mask-volumes includes them", () => {
    const { layout, img } = baseImage(BASE);
    ok(["config", "--image", img, "--config.volume", "/data"]);
    const b1 = unpack(img);
    run(`mkdir -p data; echo x > data/x; echo y > outside`, join(b1, "rootfs"));
    repack(`${layout}:masked`, b1);
    repack(`${layout}:unmasked`, b1, ["--no-mask-volumes"]);
    expect(checkLayout(layout)).toEqual([]);
    const masked = lastLayerEntries(layout, `${layout}:masked`).map((e) => e.name);
    expect(masked).toContain("outside");
    expect(masked.filter((n) => n.startsWith("data"))).toEqual([]);
    const unmasked = lastLayerEntries(layout, `${layout}:unmasked`).map((e) => e.name);
    expect(unmasked).toContain("data/");
    expect(unmasked).toContain("data/x");
  });
});

describe.skipIf(!isRoot)("repack: compression", () => {
  for (const [flag, mt] of [["gzip", GZIP], ["zstd", ZSTD], ["none", TAR], ["auto", GZIP]] as const) {
    test(`--compress ${flag} → ${mt}; diffID and size annotation`, () => {
      const { layout, img } = baseImage(BASE);
      const b1 = unpack(img);
      run(EDITS, join(b1, "rootfs"));
      repack(img, b1, ["--compress", flag]);
      expect(checkLayout(layout)).toEqual([]);
      const s = stat(img);
      const d = s.manifest.blob.layers.at(-1)!;
      expect(d.mediaType).toBe(mt);
      const tar = layerTar(layout, d);
      expect(s.config.blob.rootfs.diff_ids.at(-1)).toBe(sha256(tar));
      if (flag === "none") {
        expect(d.annotations?.["ci.umo.uncompressed_blob_size"]).toBeUndefined();
        expect(sha256(tar)).toBe(d.digest);
      } else {
        expect(d.annotations?.["ci.umo.uncompressed_blob_size"]).toBe(String(tar.length));
      }
      // the tar is complete and readable by GNU tar
      const f = join(scratch(), "l.tar");
      writeFileSync(f, tar);
      expect(sh(`tar -tf ${f}`).code).toBe(0);
      // and unpacks to the edited tree
      const b2 = unpack(img);
      expect(validate(b2, join(b1, "rootfs")).code).toBe(0);
    });
  }

  test("auto follows the newest layer (zstd → zstd, none → gzip)", () => {
    const { layout, img } = baseImage(BASE);
    const b1 = unpack(img);
    run(`echo 1 > one`, join(b1, "rootfs"));
    repack(img, b1, ["--compress", "zstd", "--refresh-bundle"]);
    run(`echo 2 > two`, join(b1, "rootfs"));
    repack(img, b1, ["--compress", "auto", "--refresh-bundle"]);
    run(`echo 3 > three`, join(b1, "rootfs"));
    repack(img, b1, ["--refresh-bundle"]);
    expect(layers(img).map((d) => d.mediaType).slice(-3)).toEqual([ZSTD, ZSTD, ZSTD]);
    run(`echo 4 > four`, join(b1, "rootfs"));
    repack(img, b1, ["--compress", "none", "--refresh-bundle"]);
    run(`echo 5 > five`, join(b1, "rootfs"));
    repack(img, b1, ["--refresh-bundle"]);
    expect(layers(img).map((d) => d.mediaType).slice(-2)).toEqual([TAR, GZIP]);
    expect(checkLayout(layout)).toEqual([]);
    const b2 = unpack(img);
    expect(validate(b2, join(b1, "rootfs")).code).toBe(0);
  });

  test("gzip header: mtime 0, no FNAME", () => {
    const { layout, img } = baseImage(BASE);
    const d = layers(img).at(-1)!;
    const b = readFileSync(blobPath(layout, d.digest));
    expect(b[0]).toBe(0x1f);
    expect(b[1]).toBe(0x8b);
    expect(b.readUInt32LE(4)).toBe(0);
    expect(b[3]! & 0x08).toBe(0);
  });

  test("bad --compress value is a usage error", () => {
    const { layout, img } = baseImage(BASE);
    const b1 = unpack(img);
    run(`echo 1 > one`, join(b1, "rootfs"));
    const before = indexBytes(layout);
    expect(boci(["repack", "--compress", "bzip2", "--image", img, b1]).code).toBe(2);
    expect(indexBytes(layout)).toEqual(before);
  });
});

describe.skipIf(!isRoot)("repack: history flags", () => {
  test("--history.* land in the new entry", () => {
    const { layout, img } = baseImage(BASE);
    const b1 = unpack(img);
    run(`echo 1 > one`, join(b1, "rootfs"));
    repack(img, b1, ["--history.author", "Ann <a@x>", "--history.comment", "a comment", "--history.created", "2020-02-03T04:05:06Z", "--history.created_by", "make it"]);
    expect(checkLayout(layout)).toEqual([]);
    const h = hist(img).at(-1)!;
    expect(h.author).toBe("Ann <a@x>");
    expect(h.comment).toBe("a comment");
    expect(h.created).toBe("2020-02-03T04:05:06Z");
    expect(h.created_by).toBe("make it");
    expect(h.empty_layer ?? false).toBe(false);
  });

  test("defaults: created_by 'boci repack', author = the image's author", () => {
    const { layout, img } = baseImage(BASE);
    ok(["config", "--image", img, "--author", "Img Author"]);
    const b1 = unpack(img);
    run(`echo 1 > one`, join(b1, "rootfs"));
    repack(img, b1);
    expect(checkLayout(layout)).toEqual([]);
    const h = hist(img).at(-1)!;
    expect(h.created_by).toBe("boci repack");
    expect(h.author).toBe("Img Author");
    expect(typeof h.created).toBe("string");
  });

  test("--no-history adds a layer but no history entry", () => {
    const { layout, img } = baseImage(BASE);
    const h0 = hist(img).length;
    const n0 = layers(img).length;
    const b1 = unpack(img);
    run(`echo 1 > one`, join(b1, "rootfs"));
    repack(img, b1, ["--no-history"]);
    expect(checkLayout(layout)).toEqual([]);
    expect(layers(img).length).toBe(n0 + 1);
    expect(hist(img).length).toBe(h0);
  });

  test("--no-history with --history.comment is a usage error; nothing changes", () => {
    const { layout, img } = baseImage(BASE);
    const b1 = unpack(img);
    run(`echo 1 > one`, join(b1, "rootfs"));
    const before = indexBytes(layout);
    const r = boci(["repack", "--no-history", "--history.comment", "x", "--image", img, b1]);
    expect(r.code).toBe(2);
    expect(indexBytes(layout)).toEqual(before);
  });
});

describe.skipIf(!isRoot)("repack: reproducibility and SOURCE_DATE_EPOCH", () => {
  test("same tree repacked twice with SDE gives identical layer, config and manifest digests; mtimes clamped", () => {
    const { layout, img } = baseImage(BASE);
    const b1 = unpack(img);
    run(EDITS + `\necho future > future; touch -d '2030-01-01 00:00:00' future; echo past > past; touch -d @946684800 past`, join(b1, "rootfs"));
    const dir2 = scratch();
    const layout2 = join(dir2, "layout");
    const b2 = join(dir2, "bundle");
    run(`cp -a ${JSON.stringify(layout)} ${JSON.stringify(layout2)}; cp -a ${JSON.stringify(b1)} ${JSON.stringify(b2)}`, dir2);
    const env = { SOURCE_DATE_EPOCH: "1700000000" };
    repack(`${layout}:r`, b1, [], env);
    repack(`${layout2}:r`, b2, [], env);
    expect(checkLayout(layout)).toEqual([]);
    expect(checkLayout(layout2)).toEqual([]);
    const s1 = stat(`${layout}:r`);
    const s2 = stat(`${layout2}:r`);
    expect(s2.manifest.blob.layers.at(-1)!.digest).toBe(s1.manifest.blob.layers.at(-1)!.digest);
    expect(s2.config.descriptor.digest).toBe(s1.config.descriptor.digest);
    expect(s2.manifest.descriptor.digest).toBe(s1.manifest.descriptor.digest);
    expect(s1.config.blob.history!.at(-1)!.created).toBe("2023-11-14T22:13:20Z");
    const m = byName(lastLayerEntries(layout, `${layout}:r`));
    expect(m.get("future")!.mtime).toBe(1700000000);
    expect(m.get("past")!.mtime).toBe(946684800);
    for (const e of m.values()) expect(e.mtime).toBeLessThanOrEqual(1700000000);
  });
});

describe.skipIf(!isRoot)("repack: --refresh-bundle", () => {
  test("mtree renamed to the new manifest, umoci.json updated, next repack is relative to it", () => {
    const { layout, img } = baseImage(BASE);
    const b1 = unpack(img);
    const oldMtree = mtreeFile(b1);
    run(`echo 1 > one`, join(b1, "rootfs"));
    repack(img, b1, ["--refresh-bundle"]);
    expect(checkLayout(layout)).toEqual([]);
    const s = stat(img);
    const hex = s.manifest.descriptor.digest.split(":")[1]!;
    expect(mtreeFiles(b1)).toEqual([`sha256_${hex}.mtree`]);
    expect(existsSync(oldMtree)).toBe(false);
    const meta = JSON.parse(readFileSync(join(b1, "umoci.json"), "utf8"));
    expect(meta.from_descriptor_path.descriptor_walk.at(-1).digest).toBe(s.manifest.descriptor.digest);
    // the refreshed mtree matches the tree
    expect(validate(b1, join(b1, "rootfs")).code).toBe(0);
    const n = layers(img).length;
    // no change → no layer
    repack(img, b1, ["--refresh-bundle"]);
    expect(layers(img).length).toBe(n);
    // one change → a layer with only that change (plus the root)
    run(`echo 2 > two`, join(b1, "rootfs"));
    repack(img, b1, ["--refresh-bundle"]);
    expect(checkLayout(layout)).toEqual([]);
    expect(layers(img).length).toBe(n + 1);
    // (the root's tar_time may not have moved within the same second)
    expect(lastLayerEntries(layout, img).map((e) => e.name).filter((n) => n !== ".")).toEqual(["two"]);
  });

  test("without --refresh-bundle the bundle is left alone", () => {
    const { img } = baseImage(BASE);
    const b1 = unpack(img);
    const files = readdirSync(b1).sort();
    const meta = readFileSync(join(b1, "umoci.json"));
    run(`echo 1 > one`, join(b1, "rootfs"));
    repack(img, b1);
    expect(readdirSync(b1).sort()).toEqual(files);
    expect(readFileSync(join(b1, "umoci.json"))).toEqual(meta);
  });
});

describe.skipIf(!isRoot)("repack: refuses bad bundles", () => {
  test("no umoci.json → exit 3", () => {
    const { layout, img } = baseImage(BASE);
    const b1 = unpack(img);
    rmSync(join(b1, "umoci.json"));
    const before = indexBytes(layout);
    const r = boci(["repack", "--image", img, b1]);
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(indexBytes(layout)).toEqual(before);
  });

  test("umoci_version \"3\" → exit 4", () => {
    const { layout, img } = baseImage(BASE);
    const b1 = unpack(img);
    const p = join(b1, "umoci.json");
    const meta = JSON.parse(readFileSync(p, "utf8"));
    meta.umoci_version = "3";
    writeFileSync(p, JSON.stringify(meta) + "\n");
    const before = indexBytes(layout);
    const r = boci(["repack", "--image", img, b1]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain("umoci_version");
    expect(indexBytes(layout)).toEqual(before);
  });

  test("truncated mtree → clear one-line error, tag unchanged", () => {
    const { layout, img } = baseImage(BASE);
    const b1 = unpack(img);
    const f = mtreeFile(b1);
    writeFileSync(f, readFileSync(f, "utf8").split("\n").slice(0, 3).join("\n") + "\n");
    run(`echo 1 > one`, join(b1, "rootfs"));
    const before = indexBytes(layout);
    const r = boci(["repack", "--image", img, b1]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("mtree");
    expect(indexBytes(layout)).toEqual(before);
    expect(checkLayout(layout)).toEqual([]);
  });

  test("missing mtree → exit 3; wrong arg count → exit 2; unknown tag layout → error", () => {
    const { layout, img } = baseImage(BASE);
    const b1 = unpack(img);
    rmSync(mtreeFile(b1));
    expect(boci(["repack", "--image", img, b1]).code).toBe(3);
    expect(boci(["repack", "--image", img]).code).toBe(2);
    expect(boci(["repack", "--image", img, b1, "extra"]).code).toBe(2);
    expect(boci(["repack", b1]).code).toBe(2);
    expect(boci(["repack", "--image", img, join(scratch(), "nobundle")]).code).toBe(3);
    expect(checkLayout(layout)).toEqual([]);
  });
});

describe.skipIf(!isRoot)("repack: rootless bundles", () => {
  test("user.rootlesscontainers gives the owner and is not stored in the layer", () => {
    const { layout, img } = baseImage(BASE);
    const b1 = unpack(img, ["--rootless"]);
    const meta = JSON.parse(readFileSync(join(b1, "umoci.json"), "utf8"));
    expect(meta.map_options.rootless).toBe(true);
    run(`setfattr -n user.rootlesscontainers -v 0x08e80710e807 keep; echo n > newfile`, join(b1, "rootfs"));
    repack(`${layout}:rl`, b1);
    expect(checkLayout(layout)).toEqual([]);
    const d = layers(`${layout}:rl`).at(-1)!;
    const tar = layerTar(layout, d);
    expect(tar.includes(Buffer.from("rootlesscontainers"))).toBe(false);
    const m = byName(parseTar(tar));
    expect(m.get("keep")).toBeDefined();
    expect([m.get("keep")!.uid, m.get("keep")!.gid]).toEqual([1000, 1000]);
    expect([m.get("newfile")!.uid, m.get("newfile")!.gid]).toEqual([0, 0]);
    const tv = sh(`tar --numeric-owner -tvzf ${blobPath(layout, d.digest)}`);
    expect(tv.stdout).toMatch(/ 1000\/1000 .* keep$/m);
    // unpacked normally, the owner is real
    const b2 = unpack(`${layout}:rl`);
    expect(lstatSync(join(b2, "rootfs/keep")).uid).toBe(1000);
    expect(xattrHex(join(b2, "rootfs/keep"), "user.rootlesscontainers")).toBe("");
  });
});
