/**
 * Benchmark fixtures, built in code from a seed (no downloads): deterministic file contents, layer
 * tars streamed to disk entry by entry (headers from the test helpers' tar writer), images made
 * with the binary under test (`init`, `new`, `raw add-layer --compress gzip`), cached in
 * /dev/shm/boci-bench/fixtures by name, seed, size and generator version.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { BLOCK, tarEntry } from "../../test/helpers/image";
import { rng as mulberry32 } from "../../test/helpers/rng";
import { BOCI, FIXTURES, MiB, fmtMiB, log, manifestLayers, rmrf, sh, writeAll } from "./common";

/** Bump when the bytes of any fixture change: cached fixtures of another version are dropped. */
export const GEN_VERSION = 3;
const MTIME = 1600000000;
const HISTORY_CREATED = "2020-09-13T12:26:40Z";

export const FIXTURE_NAMES = ["small", "many", "big", "distro", "layered"] as const;
export type FixtureName = (typeof FIXTURE_NAMES)[number];

export interface Sizes {
  smallFiles: number; smallDirs: number;
  manyFiles: number; manyDirs: number;
  bigFiles: number; bigFileSize: number;
  distroFiles: number; distroBig: number;
  layeredBase: number;
  /** the file the "+N MiB" repack adds */
  addSize: number;
}

export function sizesFor(quick: boolean): Sizes {
  return quick
    ? { smallFiles: 5000, smallDirs: 50, manyFiles: 20000, manyDirs: 2000, bigFiles: 4, bigFileSize: 32 * MiB, distroFiles: 2000, distroBig: 5, layeredBase: 1000, addSize: 16 * MiB }
    : { smallFiles: 50000, smallDirs: 200, manyFiles: 200000, manyDirs: 20000, bigFiles: 4, bigFileSize: 256 * MiB, distroFiles: 7000, distroBig: 20, layeredBase: 5000, addSize: 100 * MiB };
}

// ---------------------------------------------------------------------------------------------
// seeded PRNG: the test helpers' mulberry32, with the draws the generators need

export class Rng {
  private readonly next: () => number;
  constructor(seed: number) { this.next = mulberry32(seed); }
  /** uniform in [0, 1) */
  float(): number { return this.next(); }
  u32(): number { return (this.next() * 4294967296) >>> 0; }
  /** uniform integer in [lo, hi] */
  int(lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)); }
  /** log-uniform integer in [lo, hi] */
  logInt(lo: number, hi: number): number { return Math.floor(Math.exp(Math.log(lo) + this.next() * (Math.log(hi) - Math.log(lo)))); }
  pick<T>(xs: readonly T[]): T { return xs[Math.floor(this.next() * xs.length)]!; }
  /** fill with random bytes (32 bits per draw) */
  fill(buf: Uint8Array): void {
    const next = this.next;
    const words = buf.byteOffset % 4 === 0 ? buf.length >>> 2 : 0;
    if (words) {
      const u32 = new Uint32Array(buf.buffer, buf.byteOffset, words);
      for (let i = 0; i < words; i++) u32[i] = next() * 4294967296;
    }
    for (let i = words * 4; i < buf.length; i++) buf[i] = (next() * 256) | 0;
  }
}

// ---------------------------------------------------------------------------------------------
// file contents

/** A fixed pool of compressible text (pseudo-words), shared by every fixture of one seed. */
let textPoolCache: { seed: number; pool: Uint8Array } | null = null;
function textPool(seed: number): Uint8Array {
  if (textPoolCache?.seed === seed) return textPoolCache.pool;
  const rng = new Rng(seed ^ 0x7e57);
  const letters = "etaoinshrdlucmfwypvbgkqjxz";
  const words: Uint8Array[] = [];
  for (let i = 0; i < 600; i++) {
    let w = "";
    const n = rng.int(2, 10);
    for (let j = 0; j < n; j++) w += letters[Math.min(letters.length - 1, Math.floor(rng.float() ** 2 * letters.length))];
    words.push(new TextEncoder().encode(w));
  }
  const size = 8 * MiB;
  const pool = new Uint8Array(size);
  let pos = 0, col = 0;
  while (pos < size) {
    const w = rng.pick(words);
    const n = Math.min(w.length, size - pos);
    pool.set(w.subarray(0, n), pos);
    pos += n;
    col += n + 1;
    if (pos < size) pool[pos++] = col > 72 ? 10 : 32;
    if (col > 72) col = 0;
  }
  textPoolCache = { seed, pool };
  return pool;
}

/**
 * Deterministic content of a file: "random" (incompressible), "text" (compressible) or "mixed"
 * (first half random, second half text), produced in chunks so big files never sit in memory.
 * The yielded chunk is reused: consume it before asking for the next one.
 */
export type ContentKind = "random" | "text" | "mixed";
export function* contentChunks(seed: number, size: number, kind: ContentKind, poolSeed: number, chunk = 1 * MiB): Generator<Uint8Array> {
  const rng = new Rng(seed);
  const pool = textPool(poolSeed);
  const randomPart = kind === "random" ? size : kind === "text" ? 0 : Math.floor(size / 2);
  let done = 0;
  const buf = new Uint8Array(Math.min(chunk, Math.max(size, 1)));
  while (done < size) {
    const n = Math.min(buf.length, size - done);
    const out = buf.subarray(0, n);
    let filled = 0;
    if (done < randomPart) {
      const r = Math.min(n, randomPart - done);
      rng.fill(out.subarray(0, r));
      filled = r;
    }
    while (filled < n) {
      const take = Math.min(n - filled, rng.int(4096, 65536));
      const off = rng.int(0, pool.length - take);
      out.set(pool.subarray(off, off + take), filled);
      filled += take;
    }
    done += n;
    yield out;
  }
}

export function contentBytes(seed: number, size: number, kind: ContentKind, poolSeed: number): Uint8Array {
  const out = new Uint8Array(size);
  let pos = 0;
  for (const c of contentChunks(seed, size, kind, poolSeed)) { out.set(c, pos); pos += c.length; }
  return out;
}

/** Write `size` bytes of "mixed" content to a file, chunk by chunk. */
export function writeContentFile(path: string, seed: number, size: number, poolSeed: number): void {
  const fd = openSync(path, "w");
  try {
    for (const c of contentChunks(seed, size, "mixed", poolSeed)) writeAll(fd, c);
  } finally { closeSync(fd); }
}

// ---------------------------------------------------------------------------------------------
// layer tars, streamed to a file entry by entry

export type EntryType = "file" | "dir" | "symlink" | "hardlink";
export interface Entry {
  path: string; // no leading "./" or "/", no trailing "/"
  type: EntryType;
  mode: number;
  uid?: number; gid?: number;
  size?: number;
  kind?: ContentKind;
  seed?: number;
  linkname?: string;
  xattrs?: Record<string, string>;
}

const TYPEFLAG: Record<EntryType, string> = { file: "0", dir: "5", symlink: "2", hardlink: "1" };
const ZEROS = new Uint8Array(BLOCK);

/**
 * A tar written to a file as it is produced: the headers of each entry (a PAX header for long
 * names and xattrs, then the ustar header) come from the test helpers' `tarEntry` (given the
 * size but no body), the body is streamed after them in chunks and padded to a block here.
 */
class TarFileWriter {
  private readonly fd: number;
  private readonly buf = new Uint8Array(4 * MiB);
  private pos = 0;
  bytes = 0;
  entries = 0;
  constructor(path: string) { this.fd = openSync(path, "w"); }

  private write(data: Uint8Array): void {
    this.bytes += data.length;
    if (data.length >= this.buf.length) { this.flush(); writeAll(this.fd, data); return; }
    if (this.pos + data.length > this.buf.length) this.flush();
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }
  private flush(): void { if (this.pos) { writeAll(this.fd, this.buf.subarray(0, this.pos)); this.pos = 0; } }

  add(e: Entry, content?: Iterable<Uint8Array>): void {
    const size = e.type === "file" ? (e.size ?? 0) : 0;
    const pax: Record<string, string> = {};
    for (const [k, v] of Object.entries(e.xattrs ?? {})) pax[`SCHILY.xattr.${k}`] = v;
    this.write(tarEntry({
      name: e.type === "dir" ? `${e.path}/` : e.path, type: TYPEFLAG[e.type], mode: e.mode & 0o7777,
      uid: e.uid ?? 0, gid: e.gid ?? 0, mtime: MTIME, linkname: e.linkname ?? "", size, pax,
    }));
    this.entries++;
    if (size > 0) {
      let n = 0;
      for (const c of content ?? []) { this.write(c); n += c.length; }
      if (n !== size) throw new Error(`tar: ${e.path}: wrote ${n} bytes, header says ${size}`);
      if (size % BLOCK) this.write(ZEROS.subarray(0, BLOCK - (size % BLOCK)));
    }
  }

  finish(): void { this.write(new Uint8Array(2 * BLOCK)); this.flush(); closeSync(this.fd); }
}

/** Write a layer: add missing parent directories, sort by name, stream file contents. */
export function writeLayer(path: string, entries: Entry[], poolSeed: number): { bytes: number; entries: number } {
  const byPath = new Map<string, Entry>();
  for (const e of entries) byPath.set(e.path, e);
  for (const e of [...byPath.values()]) {
    const parts = e.path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const p = parts.slice(0, i).join("/");
      if (!byPath.has(p)) byPath.set(p, { path: p, type: "dir", mode: 0o755 });
    }
  }
  const sorted = [...byPath.values()].sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  const w = new TarFileWriter(path);
  const written = new Set<string>();
  // a hardlink must follow its target: when a link sorts first, it takes the file's content and
  // the target (or a later link) becomes the link, as `tar --sort=name` would write the pair
  const movedTo = new Map<string, string>();
  for (let e of sorted) {
    if (e.type === "hardlink") {
      const target = e.linkname!;
      if (!written.has(target)) {
        const first = movedTo.get(target);
        if (first !== undefined) e = { ...e, linkname: first };
        else {
          const t = byPath.get(target);
          if (!t || t.type !== "file") throw new Error(`fixture: hardlink ${e.path} to ${target}, not a regular file`);
          movedTo.set(target, e.path);
          e = { ...t, path: e.path };
        }
      }
    } else if (e.type === "file" && movedTo.has(e.path)) {
      e = { path: e.path, type: "hardlink", mode: e.mode, uid: e.uid, gid: e.gid, linkname: movedTo.get(e.path)! };
    }
    const content = e.type === "file" && (e.size ?? 0) > 0 ? contentChunks(e.seed ?? 0, e.size!, e.kind ?? "random", poolSeed) : undefined;
    w.add(e, content);
    written.add(e.path);
  }
  w.finish();
  return { bytes: w.bytes, entries: w.entries };
}

// ---------------------------------------------------------------------------------------------
// the fixtures

export interface FixtureInfo {
  name: FixtureName;
  description: string;
  dir: string;
  image: string; // OCI layout path (tag "latest")
  layerTars: string[];
  blobs: string[]; // layer blob paths, in order
  /** regular files (and hardlinks written as files) over all layers */
  files: number;
  /** tar entries over all layers (PAX headers not counted): the unit of "µs per entry" */
  entries: number;
  /** uncompressed layer bytes (the tars), the unit of "MiB/s" */
  tarBytes: number;
  blobBytes: number;
}

export interface Spec { description: string; layers: Entry[][] }

function buildSmall(seed: number, S: Sizes): Spec {
  const rng = new Rng(seed * 1000 + 1);
  const top = Math.max(1, Math.round(S.smallDirs / 10));
  const dirs: string[] = [];
  for (let i = 0; i < top; i++) {
    const t = `data/d${String(i).padStart(2, "0")}`;
    dirs.push(t);
    for (let j = 0; j < 9 && dirs.length < S.smallDirs; j++) dirs.push(`${t}/s${j}`);
  }
  const entries: Entry[] = [];
  for (let i = 0; i < S.smallFiles; i++) {
    entries.push({
      path: `${rng.pick(dirs)}/f${String(i).padStart(5, "0")}`, type: "file", mode: 0o644,
      size: rng.int(1024, 8192), kind: rng.float() < 0.5 ? "text" : "random", seed: rng.u32(),
    });
  }
  return { description: `${S.smallFiles.toLocaleString("en")} files of 1–8 KiB in ${dirs.length} nested directories`, layers: [entries] };
}

/** Many small compressible files in many directories: per-entry costs, at 4× `small`'s entry count. */
function buildMany(seed: number, S: Sizes): Spec {
  const rng = new Rng(seed * 1000 + 5);
  // manyDirs/100 directories of 99 subdirectories each: manyDirs directories under data/
  const top = Math.max(1, Math.round(S.manyDirs / 100));
  const dirs: string[] = [];
  for (let i = 0; i < top; i++) {
    const t = `data/p${String(i).padStart(3, "0")}`;
    dirs.push(t);
    for (let j = 0; j < 99 && dirs.length < S.manyDirs; j++) dirs.push(`${t}/d${String(j).padStart(2, "0")}`);
  }
  const entries: Entry[] = [];
  for (let i = 0; i < S.manyFiles; i++) {
    entries.push({ path: `${rng.pick(dirs)}/f${String(i).padStart(6, "0")}`, type: "file", mode: 0o644, size: rng.int(0, 4096), kind: "text", seed: rng.u32() });
  }
  return { description: `${S.manyFiles.toLocaleString("en")} files of 0–4 KiB (text) in ${dirs.length.toLocaleString("en")} directories`, layers: [entries] };
}

function buildBig(seed: number, S: Sizes): Spec {
  const rng = new Rng(seed * 1000 + 2);
  const entries: Entry[] = [];
  for (let i = 0; i < S.bigFiles; i++) {
    entries.push({ path: `data/big${i}.bin`, type: "file", mode: 0o644, size: S.bigFileSize, kind: "mixed", seed: rng.u32() });
  }
  return {
    description: `${S.bigFiles} files of ${S.bigFileSize / MiB} MiB (${(S.bigFiles * S.bigFileSize) / MiB} MiB; half random bytes, half text)`,
    layers: [entries],
  };
}

function buildDistro(seed: number, S: Sizes): Spec {
  const rng = new Rng(seed * 1000 + 3);
  const taken = new Set<string>();
  const entries: Entry[] = [];
  const add = (e: Entry): Entry => {
    let p = e.path, k = 1;
    while (taken.has(p)) p = `${e.path}.${k++}`;
    taken.add(p);
    const out = { ...e, path: p };
    entries.push(out);
    return out;
  };
  const syll = ["lib", "core", "net", "util", "ssl", "xml", "gtk", "py", "perl", "sys", "io", "fs", "crypt", "z", "ext", "db", "dev", "gnu", "base", "tools"];
  const word = (): string => `${rng.pick(syll)}${rng.pick(syll)}${rng.int(0, 9)}`;
  const pkgs = Array.from({ length: Math.max(30, Math.round(S.distroFiles / 40)) }, word);
  const arch = "usr/lib/x86_64-linux-gnu";
  const regular: Entry[] = [];
  const bins: Entry[] = [];
  const libs: Entry[] = [];
  const nSmall = S.distroFiles - S.distroBig;
  for (let i = 0; i < nSmall; i++) {
    const pkg = rng.pick(pkgs);
    const r = rng.float();
    let e: Entry;
    if (r < 0.3) e = { path: `usr/share/doc/${pkg}/${word()}`, type: "file", mode: 0o644, size: rng.logInt(200, 8192), kind: "text" };
    else if (r < 0.5) e = { path: `${arch}/${pkg}/lib${word()}.so.${rng.int(0, 9)}.${rng.int(0, 20)}`, type: "file", mode: 0o644, size: rng.logInt(4096, 256 * 1024), kind: "mixed" };
    else if (r < 0.6) e = { path: `usr/bin/${word()}`, type: "file", mode: 0o755, size: rng.logInt(8192, 512 * 1024), kind: "mixed" };
    else if (r < 0.7) e = { path: `etc/${pkg}/${word()}.conf`, type: "file", mode: 0o644, size: rng.logInt(100, 4096), kind: "text" };
    else if (r < 0.85) e = { path: `usr/share/${pkg}/${word()}`, type: "file", mode: 0o644, size: rng.logInt(100, 64 * 1024), kind: rng.float() < 0.5 ? "text" : "random" };
    else if (r < 0.95) e = { path: `var/lib/dpkg/info/${pkg}.${rng.pick(["list", "md5sums", "postinst", "conffiles"])}`, type: "file", mode: 0o644, size: rng.logInt(64, 16 * 1024), kind: "text" };
    else if (r < 0.98) e = { path: `home/user/${word()}/${word()}`, type: "file", mode: 0o640, uid: 1000, gid: 1000, size: rng.logInt(64, 32 * 1024), kind: "text" };
    else e = { path: `var/log/${word()}.log`, type: "file", mode: 0o640, uid: 0, gid: 4, size: rng.logInt(64, 64 * 1024), kind: "text" };
    if (i === 0 || rng.float() < 0.01) e.size = 0; // a few empty files
    e.seed = rng.u32();
    const added = add(e);
    regular.push(added);
    if (added.path.startsWith("usr/bin/")) bins.push(added);
    if (added.path.startsWith(`${arch}/`)) libs.push(added);
  }
  for (let i = 0; i < S.distroBig; i++) {
    regular.push(add({ path: `${arch}/big/lib${word()}.so`, type: "file", mode: 0o644, size: rng.int(1 * MiB, 10 * MiB), kind: "mixed", seed: rng.u32() }));
  }
  // setuid / setgid binaries
  for (let i = 0; i < Math.min(10, bins.length); i++) bins[i]!.mode = 0o4755;
  for (let i = 10; i < Math.min(15, bins.length); i++) { bins[i]!.mode = 0o2755; bins[i]!.gid = 42; }
  // user.* xattrs
  const nx = Math.round(S.distroFiles / 70);
  for (let i = 0; i < nx; i++) {
    const e = regular[rng.int(0, regular.length - 1)]!;
    e.xattrs = { "user.bench.origin": `pkg-${rng.int(0, 999)}`, ...(rng.float() < 0.5 ? { "user.mime_type": "application/octet-stream" } : {}) };
  }
  // hardlinks
  const nh = Math.round(S.distroFiles / 70);
  for (let i = 0; i < nh && bins.length; i++) {
    const t = rng.pick(bins);
    add({ path: `usr/bin/${word()}-hl`, type: "hardlink", mode: t.mode, linkname: t.path });
  }
  // symlinks: usrmerge-style directory links, .so links, dangling absolute alternatives links
  add({ path: "bin", type: "symlink", mode: 0o777, linkname: "usr/bin" });
  add({ path: "sbin", type: "symlink", mode: 0o777, linkname: "usr/sbin" });
  add({ path: "lib", type: "symlink", mode: 0o777, linkname: "usr/lib" });
  const ns = Math.round(S.distroFiles / 14);
  for (let i = 0; i < ns; i++) {
    const r = rng.float();
    if (r < 0.6 && libs.length) {
      const t = rng.pick(libs);
      const base = t.path.split("/").pop()!;
      add({ path: `${dirname(t.path)}/${base.replace(/\.so\..*$/, ".so")}`, type: "symlink", mode: 0o777, linkname: base });
    } else if (r < 0.85) {
      add({ path: `usr/bin/${word()}`, type: "symlink", mode: 0o777, linkname: `/etc/alternatives/${word()}` });
    } else if (bins.length) {
      add({ path: `usr/sbin/${word()}`, type: "symlink", mode: 0o777, linkname: `../bin/${rng.pick(bins).path.split("/").pop()!}` });
    }
  }
  add({ path: "tmp", type: "dir", mode: 0o1777 });
  add({ path: "root", type: "dir", mode: 0o700 });
  add({ path: "home/user", type: "dir", mode: 0o750, uid: 1000, gid: 1000 });
  return {
    description: `distribution-like: ${S.distroFiles.toLocaleString("en")} files (mostly small, ${S.distroBig} of 1–10 MiB), ${ns + 3} symlinks, ${nh} hardlinks, setuid/setgid files, user.* xattrs, non-root owners`,
    layers: [entries],
  };
}

function buildLayered(seed: number, S: Sizes): Spec {
  const rng = new Rng(seed * 1000 + 4);
  const n = S.layeredBase;
  const base: Entry[] = [];
  const nmods = Math.max(4, Math.round(n / 125));
  for (let i = 0; i < n; i++) {
    base.push({ path: `app/mod${String(i % nmods).padStart(2, "0")}/file${String(i).padStart(5, "0")}`, type: "file", mode: 0o644, size: rng.logInt(512, 32 * 1024), kind: rng.float() < 0.5 ? "text" : "random", seed: rng.u32() });
  }
  for (let i = 0; i < 10; i++) base.push({ path: `app/blobs/blob${i}.bin`, type: "file", mode: 0o644, size: rng.int(1 * MiB, 4 * MiB), kind: "mixed", seed: rng.u32() });
  for (let i = 0; i < 200; i++) base.push({ path: `opt/replaced/old${String(i).padStart(3, "0")}`, type: "file", mode: 0o644, size: rng.logInt(256, 16 * 1024), kind: "text", seed: rng.u32() });
  for (let i = 0; i < 100; i++) base.push({ path: `var/cache/c${i % 5}/entry${i}`, type: "file", mode: 0o644, size: rng.logInt(256, 8 * 1024), kind: "random", seed: rng.u32() });
  const baseFiles = base.filter((e) => e.path.startsWith("app/mod"));

  // layer 2: modify 10%, delete 5% (whiteouts), add new files, make opt/replaced opaque
  const l2: Entry[] = [];
  const deleted2: Entry[] = [];
  const shuffled = baseFiles.map((e) => ({ e, k: rng.u32() })).sort((a, b) => a.k - b.k).map((x) => x.e);
  const nMod = Math.round(baseFiles.length * 0.1), nDel = Math.round(baseFiles.length * 0.05);
  for (const e of shuffled.slice(0, nMod)) l2.push({ ...e, size: rng.logInt(512, 32 * 1024), seed: rng.u32() });
  for (const e of shuffled.slice(nMod, nMod + nDel)) {
    deleted2.push(e);
    l2.push({ path: `${dirname(e.path)}/.wh.${e.path.split("/").pop()!}`, type: "file", mode: 0o644, size: 0 });
  }
  const new2: Entry[] = [];
  for (let i = 0; i < Math.max(30, Math.round(n * 0.06)); i++) {
    const e: Entry = { path: `app/new/n${String(i).padStart(4, "0")}`, type: "file", mode: 0o644, size: rng.logInt(512, 16 * 1024), kind: "text", seed: rng.u32() };
    new2.push(e);
    l2.push(e);
  }
  l2.push({ path: "opt/replaced/.wh..wh..opq", type: "file", mode: 0o644, size: 0 });
  for (let i = 0; i < 50; i++) l2.push({ path: `opt/replaced/new${String(i).padStart(3, "0")}`, type: "file", mode: 0o644, size: rng.logInt(256, 16 * 1024), kind: "text", seed: rng.u32() });

  // layer 3: modify 5% (including files from layer 2), whiteout a whole directory, delete some of
  // layer 2's files, re-add some files deleted by layer 2, turn a few files into symlinks
  const l3: Entry[] = [];
  const rest = shuffled.slice(nMod + nDel);
  const nMod3 = Math.round(baseFiles.length * 0.05);
  for (const e of rest.slice(0, nMod3)) l3.push({ ...e, size: rng.logInt(512, 32 * 1024), seed: rng.u32() });
  for (const e of new2.slice(0, 10)) l3.push({ ...e, size: rng.logInt(512, 16 * 1024), seed: rng.u32() });
  l3.push({ path: "var/.wh.cache", type: "file", mode: 0o644, size: 0 });
  for (const e of new2.slice(10, 30)) l3.push({ path: `app/new/.wh.${e.path.split("/").pop()!}`, type: "file", mode: 0o644, size: 0 });
  for (const e of deleted2.slice(0, 10)) l3.push({ ...e, seed: rng.u32() });
  for (const e of rest.slice(nMod3, nMod3 + 10)) l3.push({ path: e.path, type: "symlink", mode: 0o777, linkname: `../../${shuffled[0]!.path}` });
  return {
    description: `3 layers: ${(base.length).toLocaleString("en")} base files; then ${nMod} modified, ${nDel} whiteouts, ${new2.length} new, an opaque directory; then ${nMod3 + 10} modified, a directory whiteout, file→symlink changes, re-added files`,
    layers: [base, l2, l3],
  };
}

const BUILDERS: Record<FixtureName, (seed: number, sizes: Sizes) => Spec> = {
  small: buildSmall, many: buildMany, big: buildBig, distro: buildDistro, layered: buildLayered,
};

/** The entries of a fixture's layers (for tests of the generator; `fixture` builds the image). */
export function fixtureSpec(name: FixtureName, seed: number, sizes: Sizes): Spec { return BUILDERS[name](seed, sizes); }

/** Create the cache directory; drop half-built fixtures and those of another generator version. */
export function pruneFixtureCache(): void {
  mkdirSync(FIXTURES, { recursive: true });
  for (const n of readdirSync(FIXTURES)) if (n.endsWith(".tmp") || !n.endsWith(`-v${GEN_VERSION}`)) rmrf(join(FIXTURES, n));
}

/** The fixture `name` for this seed and size, from the cache or generated now (with the binary under test). */
export function fixture(name: FixtureName, seed: number, sizes: Sizes, sizeKey: string): FixtureInfo {
  const dir = join(FIXTURES, `${name}-seed${seed}-${sizeKey}-v${GEN_VERSION}`);
  const ready = join(dir, "ready.json");
  if (existsSync(ready)) {
    const info = JSON.parse(readFileSync(ready, "utf8")) as FixtureInfo;
    log(`fixture ${name}: cached in ${dir}`);
    return info;
  }
  const t0 = performance.now();
  const tmp = `${dir}.tmp`;
  rmrf(tmp);
  rmrf(dir);
  mkdirSync(tmp, { recursive: true });
  log(`fixture ${name}: generating in ${dir} ...`);
  const spec = fixtureSpec(name, seed, sizes);
  const image = join(tmp, "image");
  sh([BOCI, "init", "--layout", image], "boci init");
  sh([BOCI, "new", "--image", `${image}:latest`], "boci new");
  let tarBytes = 0, files = 0, entries = 0;
  const layerTars: string[] = [];
  spec.layers.forEach((layer, i) => {
    const tar = join(tmp, `layer${i + 1}.tar`);
    const w = writeLayer(tar, layer, seed);
    tarBytes += w.bytes;
    entries += w.entries;
    files += layer.filter((e) => e.type === "file").length;
    sh([BOCI, "raw", "add-layer", "--compress", "gzip", "--history.created", HISTORY_CREATED, "--history.created_by", `bench fixture ${name} layer ${i + 1}`,
      "--image", `${image}:latest`, tar], "boci raw add-layer");
    layerTars.push(join(dir, `layer${i + 1}.tar`));
  });
  const layers = manifestLayers(image);
  const info: FixtureInfo = {
    name, description: spec.description, dir, image: join(dir, "image"), layerTars,
    blobs: layers.map((l) => join(dir, "image", "blobs", ...l.digest.split(":"))),
    files, entries, tarBytes, blobBytes: layers.reduce((s, l) => s + l.size, 0),
  };
  writeFileSync(join(tmp, "ready.json"), JSON.stringify(info, null, 2));
  renameSync(tmp, dir);
  log(`fixture ${name}: ${files.toLocaleString("en")} files, ${entries.toLocaleString("en")} entries, ${fmtMiB(tarBytes)} tar, ${fmtMiB(info.blobBytes)} gzip, in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return info;
}
