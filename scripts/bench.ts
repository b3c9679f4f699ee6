/**
 * Benchmark boci against umoci on the same images, side by side.
 *
 *   npm run bench                      # build dist/boci, then the full run (~25 min on 2 cores)
 *   bun scripts/bench.ts --quick       # smaller fixtures (~4 min)
 *   bun scripts/bench.ts --only small,distro --runs 3
 *
 * Options:
 *   --quick          smaller fixtures (5,000 small files, 128 MiB of big files, ...)
 *   --only A,B       only these fixtures: small, big, distro, layered
 *   --ops A,B        only these operations (by key): unpack, unpack-rootless, repack, repack-1pct,
 *                    repack-add, stat, config, gc, insert, floor
 *   --runs N         runs per operation and tool (default: 5 for fast operations, 3 for slow ones)
 *   --seed N         PRNG seed of the fixtures (default 1)
 *   --no-umoci       run boci only
 *   --clean          also drop the fixture cache at the end (it is kept in /dev/shm between runs)
 *
 * Fixtures are built in code from the seed (no downloads): each layer is a tar written by this
 * script, added with `dist/boci raw add-layer --compress gzip` to a layout made with
 * `dist/boci init` / `dist/boci new`. They are cached by name+seed+size in
 * /dev/shm/boci-bench/fixtures. Everything else happens in /dev/shm/boci-bench/work (tmpfs), which
 * is removed at the start and at the end.
 *
 * dist/boci is copied to /dev/shm/boci-bench/bin at the start, so a rebuild by someone else during
 * the run cannot change the binary being measured. The "+100 MiB" repack adds 16 MiB with --quick.
 *
 * Every measured command is its own process, run under `/usr/bin/time -f "%e %U %S %M"` (CPU time
 * and peak RSS); wall time is taken around the spawn. boci and umoci alternate run by run, each
 * run starting from an identical, freshly prepared (untimed) state. The script only reports: it
 * asserts nothing about the timings. Results go to bench/results.md and stdout.
 */
import {
  closeSync, copyFileSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync,
  renameSync, rmSync, writeFileSync, writeSync,
} from "node:fs";
import { join, dirname } from "node:path";
import { createHash } from "node:crypto";
import { cpus, loadavg, totalmem } from "node:os";

// ---------------------------------------------------------------------------------------------
// options

const ROOT = join(import.meta.dir, "..");
const BOCI_BUILT = join(ROOT, "dist/boci");
const BASE = "/dev/shm/boci-bench";
/** dist/boci is copied here at the start, so a rebuild during the run cannot change what is measured */
const BOCI = join(BASE, "bin", "boci");
const FIXTURES = join(BASE, "fixtures");
const WORK = join(BASE, "work");
const GEN_VERSION = 2;
const MTIME = 1600000000;
const HISTORY_CREATED = "2020-09-13T12:26:40Z";
const MiB = 1024 * 1024;

const FIXTURE_NAMES = ["small", "big", "distro", "layered"] as const;
type FixtureName = (typeof FIXTURE_NAMES)[number];
const OP_KEYS = ["unpack", "unpack-rootless", "repack", "repack-1pct", "repack-add", "stat", "config", "gc", "insert", "floor"] as const;
type OpKey = (typeof OP_KEYS)[number];

interface Options {
  quick: boolean; only: FixtureName[]; ops: OpKey[]; runs: number | null; seed: number; noUmoci: boolean; clean: boolean;
}

function usage(msg?: string): never {
  if (msg) console.error(`bench: ${msg}`);
  console.error("usage: bun scripts/bench.ts [--quick] [--only small,big,distro,layered] [--ops KEYS] [--runs N] [--seed N] [--no-umoci] [--clean]");
  process.exit(2);
}

function parseArgs(argv: string[]): Options {
  const o: Options = { quick: false, only: [...FIXTURE_NAMES], ops: [...OP_KEYS], runs: null, seed: 1, noUmoci: false, clean: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) usage(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--quick": o.quick = true; break;
      case "--no-umoci": o.noUmoci = true; break;
      case "--clean": o.clean = true; break;
      case "--only": {
        const names = value().split(",").map((s) => s.trim()).filter(Boolean);
        for (const n of names) if (!(FIXTURE_NAMES as readonly string[]).includes(n)) usage(`unknown fixture ${JSON.stringify(n)} (one of ${FIXTURE_NAMES.join(", ")})`);
        o.only = names as FixtureName[];
        break;
      }
      case "--ops": {
        const names = value().split(",").map((s) => s.trim()).filter(Boolean);
        for (const n of names) if (!(OP_KEYS as readonly string[]).includes(n)) usage(`unknown operation ${JSON.stringify(n)} (one of ${OP_KEYS.join(", ")})`);
        o.ops = names as OpKey[];
        break;
      }
      case "--runs": {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 1) usage("--runs needs a positive integer");
        o.runs = n;
        break;
      }
      case "--seed": {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 0) usage("--seed needs a non-negative integer");
        o.seed = n;
        break;
      }
      case "-h": case "--help": usage();
      default: usage(`unknown argument ${JSON.stringify(a)}`);
    }
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const SIZES = opts.quick
  ? { smallFiles: 5000, smallDirs: 50, bigFiles: 4, bigFileSize: 32 * MiB, distroFiles: 2000, distroBig: 5, layeredBase: 1000, addSize: 16 * MiB }
  : { smallFiles: 50000, smallDirs: 200, bigFiles: 4, bigFileSize: 256 * MiB, distroFiles: 7000, distroBig: 20, layeredBase: 5000, addSize: 100 * MiB };
const SIZE_KEY = opts.quick ? "quick" : "full";
const FAST_RUNS = opts.runs ?? 5;
const SLOW_RUNS = opts.runs ?? 3;

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// seeded PRNG (sfc32, seeded through splitmix32)

class Rng {
  private a: number; private b: number; private c: number; private d: number;
  constructor(seed: number) {
    let s = seed >>> 0;
    const sm = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = sm(); this.b = sm(); this.c = sm(); this.d = sm();
    for (let i = 0; i < 12; i++) this.u32();
  }
  u32(): number {
    const t0 = (this.a + this.b) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.d = (this.d + 1) | 0;
    const t = (t0 + this.d) | 0;
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** uniform integer in [lo, hi] */
  int(lo: number, hi: number): number { return lo + Math.floor((this.u32() / 4294967296) * (hi - lo + 1)); }
  float(): number { return this.u32() / 4294967296; }
  /** log-uniform integer in [lo, hi] */
  logInt(lo: number, hi: number): number { return Math.floor(Math.exp(Math.log(lo) + this.float() * (Math.log(hi) - Math.log(lo)))); }
  pick<T>(xs: readonly T[]): T { return xs[Math.floor(this.float() * xs.length)]!; }
  fill(buf: Uint8Array): void {
    const words = buf.length >>> 2;
    const u32 = buf.byteOffset % 4 === 0 ? new Uint32Array(buf.buffer, buf.byteOffset, words) : null;
    if (u32) {
      let { a, b, c, d } = this;
      for (let i = 0; i < words; i++) {
        const t0 = (a + b) | 0;
        a = b ^ (b >>> 9);
        b = (c + (c << 3)) | 0;
        c = (c << 21) | (c >>> 11);
        d = (d + 1) | 0;
        const t = (t0 + d) | 0;
        c = (c + t) | 0;
        u32[i] = t;
      }
      this.a = a; this.b = b; this.c = c; this.d = d;
      for (let i = words * 4; i < buf.length; i++) buf[i] = this.u32() & 0xff;
    } else {
      for (let i = 0; i < buf.length; i++) buf[i] = this.u32() & 0xff;
    }
  }
}

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
 */
type ContentKind = "random" | "text" | "mixed";
function* contentChunks(seed: number, size: number, kind: ContentKind, poolSeed: number, chunk = 1 * MiB): Generator<Uint8Array> {
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

function contentBytes(seed: number, size: number, kind: ContentKind, poolSeed: number): Uint8Array {
  const out = new Uint8Array(size);
  let pos = 0;
  for (const c of contentChunks(seed, size, kind, poolSeed)) { out.set(c, pos); pos += c.length; }
  return out;
}

// ---------------------------------------------------------------------------------------------
// tar writer (ustar headers, PAX records for long names and xattrs)

type EntryType = "file" | "dir" | "symlink" | "hardlink";
interface Entry {
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

const enc = new TextEncoder();

class TarWriter {
  private fd: number;
  private buf = new Uint8Array(4 * MiB);
  private pos = 0;
  bytes = 0;
  constructor(path: string) { this.fd = openSync(path, "w"); }
  private write(data: Uint8Array): void {
    this.bytes += data.length;
    if (data.length >= this.buf.length) { this.flush(); writeAll(this.fd, data); return; }
    if (this.pos + data.length > this.buf.length) this.flush();
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }
  private flush(): void { if (this.pos) { writeAll(this.fd, this.buf.subarray(0, this.pos)); this.pos = 0; } }
  private pad(size: number): void { const r = size % 512; if (r) this.write(new Uint8Array(512 - r)); }

  private header(name: string, mode: number, uid: number, gid: number, size: number, type: string, linkname: string): Uint8Array {
    const h = new Uint8Array(512);
    const str = (off: number, len: number, s: string): void => { const b = enc.encode(s); h.set(b.subarray(0, len), off); };
    const oct = (off: number, len: number, n: number): void => str(off, len, n.toString(8).padStart(len - 1, "0") + "\0");
    str(0, 100, name);
    oct(100, 8, mode & 0o7777);
    oct(108, 8, uid);
    oct(116, 8, gid);
    oct(124, 12, size);
    oct(136, 12, MTIME);
    str(148, 8, "        ");
    str(156, 1, type);
    str(157, 100, linkname);
    str(257, 6, "ustar\0");
    str(263, 2, "00");
    let sum = 0;
    for (const b of h) sum += b;
    str(148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
    return h;
  }

  add(e: Entry, content?: Iterable<Uint8Array>): void {
    const name = e.type === "dir" ? `${e.path}/` : e.path;
    const link = e.linkname ?? "";
    const pax: [string, string][] = [];
    if (enc.encode(name).length > 100) pax.push(["path", name]);
    if (enc.encode(link).length > 100) pax.push(["linkpath", link]);
    for (const [k, v] of Object.entries(e.xattrs ?? {})) pax.push([`SCHILY.xattr.${k}`, v]);
    if (pax.length) {
      let body = "";
      for (const [k, v] of pax) {
        const rest = ` ${k}=${v}\n`;
        const restLen = enc.encode(rest).length;
        let len = restLen + 1;
        while (String(len).length + restLen !== len) len = String(len).length + restLen;
        body += `${len}${rest}`;
      }
      const data = enc.encode(body);
      this.write(this.header(`PaxHeader/${e.path.split("/").pop()!.slice(0, 80)}`, 0o644, 0, 0, data.length, "x", ""));
      this.write(data);
      this.pad(data.length);
    }
    const size = e.type === "file" ? (e.size ?? 0) : 0;
    const type = e.type === "file" ? "0" : e.type === "dir" ? "5" : e.type === "symlink" ? "2" : "1";
    this.write(this.header(name.slice(0, 100), e.mode, e.uid ?? 0, e.gid ?? 0, size, type, link.slice(0, 100)));
    if (size > 0) {
      let n = 0;
      for (const c of content ?? []) { this.write(c); n += c.length; }
      if (n !== size) throw new Error(`tar: ${e.path}: wrote ${n} bytes, header says ${size}`);
      this.pad(size);
    }
  }

  finish(): void { this.write(new Uint8Array(1024)); this.flush(); closeSync(this.fd); }
}

function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
}

/** Write a layer: add missing parent directories, sort by name, stream file contents. */
function writeLayer(path: string, entries: Entry[], poolSeed: number): number {
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
  const w = new TarWriter(path);
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
  return w.bytes;
}

// ---------------------------------------------------------------------------------------------
// fixtures

interface FixtureInfo {
  name: FixtureName;
  description: string;
  dir: string;
  image: string; // OCI layout path (tag "latest")
  layerTars: string[];
  blobs: string[]; // layer blob paths, in order
  files: number;
  tarBytes: number;
  blobBytes: number;
}

function paths(dir: string) { return { image: join(dir, "image"), layer: (i: number) => join(dir, `layer${i}.tar`) }; }

function sh(argv: string[], what: string): string {
  const p = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${what} failed (${argv.join(" ")}): ${p.stderr.toString().trim().slice(-2000)}`);
  return p.stdout.toString();
}

function manifestLayers(image: string): { digest: string; size: number }[] {
  const index = JSON.parse(readFileSync(join(image, "index.json"), "utf8")) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const m = index.manifests.find((d) => d.annotations?.["org.opencontainers.image.ref.name"] === "latest") ?? index.manifests[0];
  if (!m) throw new Error(`${image}: no manifest`);
  const blob = (d: string): string => join(image, "blobs", ...d.split(":"));
  const manifest = JSON.parse(readFileSync(blob(m.digest), "utf8")) as { layers: { digest: string; size: number }[] };
  return manifest.layers.map((l) => ({ digest: l.digest, size: l.size }));
}

function buildSmall(seed: number): { description: string; layers: Entry[][] } {
  const rng = new Rng(seed * 1000 + 1);
  const top = Math.max(1, Math.round(SIZES.smallDirs / 10));
  const dirs: string[] = [];
  for (let i = 0; i < top; i++) {
    const t = `data/d${String(i).padStart(2, "0")}`;
    dirs.push(t);
    for (let j = 0; j < 9 && dirs.length < SIZES.smallDirs; j++) dirs.push(`${t}/s${j}`);
  }
  const entries: Entry[] = [];
  for (let i = 0; i < SIZES.smallFiles; i++) {
    entries.push({
      path: `${rng.pick(dirs)}/f${String(i).padStart(5, "0")}`, type: "file", mode: 0o644,
      size: rng.int(1024, 8192), kind: rng.float() < 0.5 ? "text" : "random", seed: rng.u32(),
    });
  }
  return { description: `${SIZES.smallFiles.toLocaleString("en")} files of 1–8 KiB in ${dirs.length} nested directories`, layers: [entries] };
}

function buildBig(seed: number): { description: string; layers: Entry[][] } {
  const rng = new Rng(seed * 1000 + 2);
  const entries: Entry[] = [];
  for (let i = 0; i < SIZES.bigFiles; i++) {
    entries.push({ path: `data/big${i}.bin`, type: "file", mode: 0o644, size: SIZES.bigFileSize, kind: "mixed", seed: rng.u32() });
  }
  return {
    description: `${SIZES.bigFiles} files of ${SIZES.bigFileSize / MiB} MiB (${(SIZES.bigFiles * SIZES.bigFileSize) / MiB} MiB; half random bytes, half text)`,
    layers: [entries],
  };
}

function buildDistro(seed: number): { description: string; layers: Entry[][] } {
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
  const pkgs = Array.from({ length: Math.max(30, Math.round(SIZES.distroFiles / 40)) }, word);
  const arch = "usr/lib/x86_64-linux-gnu";
  const regular: Entry[] = [];
  const bins: Entry[] = [];
  const libs: Entry[] = [];
  const nSmall = SIZES.distroFiles - SIZES.distroBig;
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
  for (let i = 0; i < SIZES.distroBig; i++) {
    regular.push(add({ path: `${arch}/big/lib${word()}.so`, type: "file", mode: 0o644, size: rng.int(1 * MiB, 10 * MiB), kind: "mixed", seed: rng.u32() }));
  }
  // setuid / setgid binaries
  for (let i = 0; i < Math.min(10, bins.length); i++) bins[i]!.mode = 0o4755;
  for (let i = 10; i < Math.min(15, bins.length); i++) { bins[i]!.mode = 0o2755; bins[i]!.gid = 42; }
  // user.* xattrs
  const nx = Math.round(SIZES.distroFiles / 70);
  for (let i = 0; i < nx; i++) {
    const e = regular[rng.int(0, regular.length - 1)]!;
    e.xattrs = { "user.bench.origin": `pkg-${rng.int(0, 999)}`, ...(rng.float() < 0.5 ? { "user.mime_type": "application/octet-stream" } : {}) };
  }
  // hardlinks
  const nh = Math.round(SIZES.distroFiles / 70);
  for (let i = 0; i < nh && bins.length; i++) {
    const t = rng.pick(bins);
    add({ path: `usr/bin/${word()}-hl`, type: "hardlink", mode: t.mode, linkname: t.path });
  }
  // symlinks: usrmerge-style directory links, .so links, dangling absolute alternatives links
  add({ path: "bin", type: "symlink", mode: 0o777, linkname: "usr/bin" });
  add({ path: "sbin", type: "symlink", mode: 0o777, linkname: "usr/sbin" });
  add({ path: "lib", type: "symlink", mode: 0o777, linkname: "usr/lib" });
  const ns = Math.round(SIZES.distroFiles / 14);
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
    description: `distribution-like: ${SIZES.distroFiles.toLocaleString("en")} files (mostly small, ${SIZES.distroBig} of 1–10 MiB), ${ns + 3} symlinks, ${nh} hardlinks, setuid/setgid files, user.* xattrs, non-root owners`,
    layers: [entries],
  };
}

function buildLayered(seed: number): { description: string; layers: Entry[][] } {
  const rng = new Rng(seed * 1000 + 4);
  const n = SIZES.layeredBase;
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

const BUILDERS: Record<FixtureName, (seed: number) => { description: string; layers: Entry[][] }> = {
  small: buildSmall, big: buildBig, distro: buildDistro, layered: buildLayered,
};

function fixture(name: FixtureName, seed: number): FixtureInfo {
  const dir = join(FIXTURES, `${name}-seed${seed}-${SIZE_KEY}-v${GEN_VERSION}`);
  const ready = join(dir, "ready.json");
  if (existsSync(ready)) {
    const info = JSON.parse(readFileSync(ready, "utf8")) as FixtureInfo;
    log(`fixture ${name}: cached in ${dir}`);
    return info;
  }
  const t0 = performance.now();
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  log(`fixture ${name}: generating in ${dir} ...`);
  const spec = BUILDERS[name](seed);
  const p = paths(tmp);
  sh([BOCI, "init", "--layout", p.image], "boci init");
  sh([BOCI, "new", "--image", `${p.image}:latest`], "boci new");
  let tarBytes = 0, files = 0;
  const layerTars: string[] = [];
  spec.layers.forEach((entries, i) => {
    const tar = p.layer(i + 1);
    tarBytes += writeLayer(tar, entries, seed);
    files += entries.filter((e) => e.type === "file").length;
    sh([BOCI, "raw", "add-layer", "--compress", "gzip", "--history.created", HISTORY_CREATED, "--history.created_by", `bench fixture ${name} layer ${i + 1}`,
      "--image", `${p.image}:latest`, tar], "boci raw add-layer");
    layerTars.push(join(dir, `layer${i + 1}.tar`));
  });
  const layers = manifestLayers(p.image);
  const info: FixtureInfo = {
    name, description: spec.description, dir, image: join(dir, "image"), layerTars,
    blobs: layers.map((l) => join(dir, "image", "blobs", ...l.digest.split(":"))),
    files, tarBytes, blobBytes: layers.reduce((s, l) => s + l.size, 0),
  };
  writeFileSync(join(tmp, "ready.json"), JSON.stringify(info, null, 2));
  renameSync(tmp, dir);
  log(`fixture ${name}: ${files} files, ${fmtMiB(tarBytes)} tar, ${fmtMiB(info.blobBytes)} gzip, in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return info;
}

// ---------------------------------------------------------------------------------------------
// measuring

interface Sample { wall: number; cpu: number; rss: number /* KiB */ }
interface Series { samples: Sample[]; failures: number; lastError: string }

const HAVE_TIME = existsSync("/usr/bin/time");
const HAVE_OPENSSL = Bun.spawnSync(["openssl", "version"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;

function measure(argv: string[], cwd = WORK): { sample: Sample | null; error: string } {
  const tf = join(WORK, ".time");
  rmSync(tf, { force: true });
  const full = HAVE_TIME ? ["/usr/bin/time", "-f", "%e %U %S %M", "-o", tf, ...argv] : argv;
  const t0 = performance.now();
  const p = Bun.spawnSync(full, { cwd, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const wall = (performance.now() - t0) / 1000;
  if (p.exitCode !== 0) return { sample: null, error: `exit ${p.exitCode}: ${p.stderr.toString().trim().slice(-600)}` };
  if (HAVE_TIME) {
    const lines = readFileSync(tf, "utf8").trim().split("\n");
    const f = lines[lines.length - 1]!.trim().split(/\s+/).map(Number);
    return { sample: { wall, cpu: (f[1] ?? 0) + (f[2] ?? 0), rss: f[3] ?? 0 }, error: "" };
  }
  const ru = p.resourceUsage;
  return { sample: { wall, cpu: Number(ru.cpuTime.user + ru.cpuTime.system) / 1e6, rss: ru.maxRSS }, error: "" };
}

function emptySeries(): Series { return { samples: [], failures: 0, lastError: "" }; }

function record(s: Series, r: { sample: Sample | null; error: string }, label: string): void {
  if (r.sample) {
    s.samples.push(r.sample);
    log(`  ${label}: ${r.sample.wall.toFixed(3)} s wall, ${r.sample.cpu.toFixed(2)} s cpu, ${(r.sample.rss / 1024).toFixed(0)} MiB`);
  } else {
    s.failures++;
    s.lastError = r.error;
    log(`  ${label}: FAILED ${r.error}`);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function fmtSec(x: number): string { return x < 10 ? x.toFixed(3) : x < 100 ? x.toFixed(2) : x.toFixed(1); }
function fmtMiB(bytes: number): string { return `${(bytes / MiB).toFixed(bytes < 10 * MiB ? 1 : 0)} MiB`; }

function fmtWall(s: Series | undefined): string {
  if (!s) return "—";
  if (!s.samples.length) return s.failures ? `FAIL (${s.failures}/${s.failures})` : "—";
  const w = s.samples.map((x) => x.wall);
  const fail = s.failures ? ` FAIL ${s.failures}/${s.failures + s.samples.length}` : "";
  return `${fmtSec(median(w))} s (${fmtSec(Math.min(...w))}–${fmtSec(Math.max(...w))})${fail}`;
}
function fmtCpu(s: Series | undefined): string { return s?.samples.length ? `${fmtSec(median(s.samples.map((x) => x.cpu)))} s` : "—"; }
function fmtRss(s: Series | undefined): string { return s?.samples.length ? `${(median(s.samples.map((x) => x.rss)) / 1024).toFixed(0)} MiB` : "—"; }
function fmtRatio(a: Series | undefined, b: Series | undefined): string {
  if (!a?.samples.length || !b?.samples.length) return "—";
  return `${(median(a.samples.map((x) => x.wall)) / median(b.samples.map((x) => x.wall))).toFixed(2)}×`;
}

// ---------------------------------------------------------------------------------------------
// operations

type Tool = "boci" | "umoci";
const TOOL_BIN: Record<Tool, string> = { boci: BOCI, umoci: "umoci" };

interface OpRow { fixture: string; op: string; results: Partial<Record<Tool, Series>>; checks: Partial<Record<Tool, Set<string>>> }
interface FloorRow { fixture: string; op: string; bytes: number; series: Series }

const rows: OpRow[] = [];
const floorRows: FloorRow[] = [];

function cpA(src: string, dst: string): void { sh(["cp", "-a", src, dst], "cp -a"); }
function rmrf(p: string): void { rmSync(p, { recursive: true, force: true }); }

/** Regular files under a directory (lstat, no symlinks followed), sorted by path. */
function regularFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    const names = readdirSync(join(root, rel)).sort();
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const st = lstatSync(join(root, r));
      if (st.isDirectory()) walk(r);
      else if (st.isFile()) out.push(r);
    }
  };
  walk("");
  return out;
}

/**
 * Run one operation `runs` times per tool, alternating boci and umoci. `prepare` builds the
 * run's starting state (untimed) and returns the argv tail; `check` describes what the run left (untimed); the run directory is then removed.
 */
function runOp(fx: string, op: string, tools: Tool[], runs: number,
  prepare: (tool: Tool, dir: string) => string[] | null, check: (dir: string) => string): void {
  log(`[${fx}] ${op} (${runs} runs)`);
  const row: OpRow = { fixture: fx, op, results: {}, checks: {} };
  for (const t of tools) { row.results[t] = emptySeries(); row.checks[t] = new Set(); }
  for (let i = 0; i < runs; i++) {
    for (const t of tools) {
      const dir = join(WORK, "run");
      rmrf(dir);
      mkdirSync(dir, { recursive: true });
      const args = prepare(t, dir);
      const s = row.results[t]!;
      if (!args) { s.failures++; s.lastError = "preparation failed"; continue; }
      const r = measure([TOOL_BIN[t], ...args], dir);
      record(s, r, `${t} #${i + 1}`);
      if (r.sample) {
        // untimed: what the run produced, so a too-good-to-be-true time can be told from a real one
        let c: string;
        try { c = check(dir); } catch (e) { c = `check failed: ${(e as Error).message}`; }
        row.checks[t]!.add(c);
      }
      rmrf(dir);
    }
    sampleLoad();
  }
  rows.push(row);
}

function runFloor(fx: string, op: string, bytes: number, runs: number, argv: (dir: string) => string[]): void {
  log(`[${fx}] floor: ${op}`);
  const s = emptySeries();
  for (let i = 0; i < runs; i++) {
    const dir = join(WORK, "floor");
    rmrf(dir);
    mkdirSync(dir, { recursive: true });
    record(s, measure(argv(dir), dir), `#${i + 1}`);
    rmrf(dir);
  }
  floorRows.push({ fixture: fx, op, bytes, series: s });
}

/**
 * `cp -a` gives every file a new inode and ctime, which voids boci's stat cache (`.boci-stat`);
 * a bundle a user unpacks and repacks in place keeps it valid. So the copy's cache is rewritten
 * with the copy's stats (untimed), as the unpack would have left it. Without a cache the repack
 * reads every file (`BOCI_STAT_CACHE=0`).
 */
function restatCache(bundle: string): void {
  const file = join(bundle, ".boci-stat");
  if (!existsSync(file)) return;
  const lines = readFileSync(file, "utf8").split("\n");
  const out = [lines[0]!];
  for (const l of lines.slice(1)) {
    if (!l) continue;
    const rel = JSON.parse(l.slice(l.indexOf('"'))) as string;
    const st = lstatSync(join(bundle, "rootfs", rel), { bigint: true });
    out.push(`${st.dev} ${st.ino} ${st.size} ${st.mtimeNs} ${st.ctimeNs} ${JSON.stringify(rel)}`);
  }
  Bun.sleepSync(5); // the cache must be written after the files' ctimes (the racy rule)
  writeFileSync(file, out.join("\n") + "\n");
}

/** Entries under a directory (lstat, not following symlinks). */
function countEntries(root: string): number {
  let n = 0;
  const walk = (p: string): void => {
    for (const name of readdirSync(p)) {
      n++;
      const q = join(p, name);
      if (lstatSync(q).isDirectory()) walk(q);
    }
  };
  walk(root);
  return n;
}

function checkUnpack(dir: string): string { return `rootfs: ${countEntries(join(dir, "bundle", "rootfs")).toLocaleString("en")} entries`; }
function checkImage(dir: string): string {
  const layers = manifestLayers(join(dir, "image"));
  const last = layers[layers.length - 1];
  return `${layers.length} layers, last ${last ? fmtMiB(last.size) : "—"}`;
}
function checkBlobs(dir: string): string { return `${readdirSync(join(dir, "image", "blobs", "sha256")).length} blobs left`; }
function checkNone(): string { return "exit 0"; }

const GUNZIP_SCRIPT = `import { createReadStream } from "node:fs";
import { createGunzip } from "node:zlib";
let n = 0;
for (const f of process.argv.slice(2)) {
  for await (const c of createReadStream(f, { highWaterMark: 1 << 20 }).pipe(createGunzip({ chunkSize: 1 << 20 }))) n += c.length;
}
if (n === 0) process.exit(1);
`;

function benchFixture(fx: FixtureInfo, tools: Tool[], shared: { addFile: string; insertFile: string; gunzipScript: string }): void {
  const want = (k: OpKey): boolean => opts.ops.includes(k);
  const img = (dir: string): string => join(dir, "image");
  const fresh = (dir: string): string => { cpA(fx.image, img(dir)); return img(dir); };

  if (want("unpack")) runOp(fx.name, "unpack", tools, SLOW_RUNS, () => ["unpack", "--image", `${fx.image}:latest`, "bundle"], checkUnpack);
  if (want("unpack-rootless")) runOp(fx.name, "unpack --rootless", tools, SLOW_RUNS, () => ["unpack", "--rootless", "--image", `${fx.image}:latest`, "bundle"], checkUnpack);

  // reference bundles for repack: each tool repacks a bundle it unpacked itself
  const repackOps = (["repack", "repack-1pct", "repack-add"] as const).filter(want);
  if (repackOps.length) {
    const refs: Partial<Record<Tool, string>> = {};
    for (const t of tools) {
      const ref = join(WORK, `ref-${fx.name}-${t}`);
      rmrf(ref);
      const p = Bun.spawnSync([TOOL_BIN[t], "unpack", "--image", `${fx.image}:latest`, ref], { stdout: "ignore", stderr: "pipe" });
      if (p.exitCode === 0) refs[t] = ref;
      else log(`[${fx.name}] ${t} unpack of the reference bundle failed: ${p.stderr.toString().trim().slice(-600)}`);
    }
    const firstRef = Object.values(refs)[0];
    const changed = firstRef ? regularFiles(join(firstRef, "rootfs")).filter((_, i) => i % 100 === 0) : [];
    const newContent = new Map<string, Uint8Array>();
    const changedBytes = firstRef ? changed.reduce((s, rel) => s + lstatSync(join(firstRef, "rootfs", rel)).size, 0) : 0;
    const prep = (tool: Tool, dir: string, mutate?: (rootfs: string) => void): string[] | null => {
      const ref = refs[tool];
      if (!ref) return null;
      fresh(dir);
      cpA(ref, join(dir, "bundle"));
      if (tool === "boci") restatCache(join(dir, "bundle"));
      mutate?.(join(dir, "bundle", "rootfs"));
      return ["repack", "--image", `${img(dir)}:latest`, "bundle"];
    };
    if (want("repack")) runOp(fx.name, "repack (no change)", tools, SLOW_RUNS, (t, d) => prep(t, d), checkImage);
    if (want("repack-1pct")) {
      runOp(fx.name, `repack (every 100th file rewritten: ${changed.length}, ${fmtMiB(changedBytes)})`, tools, SLOW_RUNS, (t, d) => prep(t, d, (rootfs) => {
        changed.forEach((rel, i) => {
          const p = join(rootfs, rel);
          if (!existsSync(p)) return;
          let data = newContent.get(rel);
          if (!data) { data = contentBytes(0xc0ffee + i, lstatSync(p).size, "mixed", opts.seed); newContent.set(rel, data); }
          writeFileSync(p, data);
        });
      }), checkImage);
      newContent.clear();
    }
    if (want("repack-add")) {
      runOp(fx.name, `repack (+${SIZES.addSize / MiB} MiB file)`, tools, SLOW_RUNS, (t, d) => prep(t, d, (rootfs) => {
        mkdirSync(join(rootfs, "bench-added"), { recursive: true });
        copyFileSync(shared.addFile, join(rootfs, "bench-added", "added.bin"));
      }), checkImage);
    }
    for (const r of Object.values(refs)) rmrf(r);
  }

  if (want("stat")) runOp(fx.name, "stat", tools, FAST_RUNS, () => ["stat", "--image", `${fx.image}:latest`], checkNone);
  if (want("config")) runOp(fx.name, "config --config.env A=B", tools, FAST_RUNS, (_, d) => ["config", "--image", `${fresh(d)}:latest`, "--config.env", "A=B"], checkImage);
  if (want("gc")) {
    // a layout with garbage: unreferenced blobs of assorted sizes, made once, copied each run
    const gcSrc = join(WORK, `gc-${fx.name}`);
    rmrf(gcSrc);
    cpA(fx.image, gcSrc);
    const rng = new Rng(opts.seed ^ 0x9c);
    let garbage = 0;
    for (let i = 0; i < 24; i++) {
      const data = contentBytes(rng.u32(), i < 16 ? rng.int(200, 8192) : 4 * MiB, "mixed", opts.seed);
      writeFileSync(join(gcSrc, "blobs", "sha256", createHash("sha256").update(data).digest("hex")), data);
      garbage += data.length;
    }
    runOp(fx.name, `gc (24 garbage blobs, ${fmtMiB(garbage)})`, tools, FAST_RUNS, (_, d) => { cpA(gcSrc, img(d)); return ["gc", "--layout", img(d)]; }, checkBlobs);
    rmrf(gcSrc);
  }
  if (want("insert")) runOp(fx.name, "insert (10 MiB file)", tools, FAST_RUNS, (_, d) => ["insert", "--image", `${fresh(d)}:latest`, shared.insertFile, "/opt/bench/inserted.bin"], checkImage);

  if (want("floor")) {
    const xattrs = fx.name === "distro" ? ["--xattrs", "--xattrs-include=user.*"] : [];
    const tarCmd = fx.layerTars.map((t) => `tar ${xattrs.join(" ")} -xf '${t}' -C rootfs`).join(" && ");
    runFloor(fx.name, `tar -xf (${fx.layerTars.length} uncompressed layer${fx.layerTars.length > 1 ? "s" : ""})`, fx.tarBytes, SLOW_RUNS, () => ["sh", "-c", `mkdir rootfs && ${tarCmd}`]);
    runFloor(fx.name, "gzip -dc (layer blobs) > /dev/null", fx.blobBytes, SLOW_RUNS, () => ["gzip", "-dc", ...fx.blobs]);
    runFloor(fx.name, "bun node:zlib gunzip stream (layer blobs)", fx.blobBytes, SLOW_RUNS, () => [process.execPath, shared.gunzipScript, ...fx.blobs]);
    runFloor(fx.name, "sha256sum (layer blobs)", fx.blobBytes, SLOW_RUNS, () => ["sha256sum", ...fx.blobs]);
    runFloor(fx.name, "sha256sum (uncompressed layers)", fx.tarBytes, SLOW_RUNS, () => ["sha256sum", ...fx.layerTars]);
    // OpenSSL uses the CPU's SHA extensions, as boci's hasher (BoringSSL) does: the hashing floor.
    if (HAVE_OPENSSL) {
      runFloor(fx.name, "openssl sha256 (layer blobs)", fx.blobBytes, SLOW_RUNS, () => ["openssl", "dgst", "-sha256", ...fx.blobs]);
      runFloor(fx.name, "openssl sha256 (uncompressed layers)", fx.tarBytes, SLOW_RUNS, () => ["openssl", "dgst", "-sha256", ...fx.layerTars]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// machine description and report

function firstLine(argv: string[]): string {
  try {
    const p = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
    return (p.stdout.toString() + p.stderr.toString()).trim().split("\n")[0] ?? "";
  } catch { return ""; }
}

const loadStart = loadavg()[0]!.toFixed(2);
let bociVersion = "?";
let loadMax = loadavg()[0]!;
function sampleLoad(): void { loadMax = Math.max(loadMax, loadavg()[0]!); }

function machine(umociVersion: string | null): string[] {
  const cpuModel = (() => {
    try { return /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? cpus()[0]?.model ?? "?"; } catch { return "?"; }
  })();
  return [
    `- CPU: ${cpuModel}; nproc: ${firstLine(["nproc"]) || cpus().length}`,
    `- memory: ${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    `- kernel: ${firstLine(["uname", "-sr"])}`,
    `- bun: ${Bun.version}; boci: ${bociVersion} (dist/boci, copied at the start of the run)`,
    `- umoci: ${umociVersion ?? "not installed (boci only)"}`,
    `- gzip: ${firstLine(["gzip", "--version"])}; tar: ${firstLine(["tar", "--version"])}`,
    `- work directory: ${BASE} (tmpfs)`,
    `- load average (1 min) at start / max / end: ${loadStart} / ${loadMax.toFixed(2)} / ${loadavg()[0]!.toFixed(2)}${loadMax > cpus().length + 1.5 ? " — **other processes were using the CPU during the run: timings are inflated and noisy**" : ""}`,
  ];
}

function report(fixtures: FixtureInfo[], umociVersion: string | null, started: Date, seconds: number): string {
  const cmd = `bun scripts/bench.ts${process.argv.length > 2 ? " " + process.argv.slice(2).join(" ") : ""}`;
  const out: string[] = [];
  out.push("# boci benchmark results", "");
  out.push(`Command: \`${cmd}\` (\`npm run bench\` = build + full run). Started ${started.toISOString()}, took ${(seconds / 60).toFixed(1)} min.`, "");
  out.push("## Machine", "", ...machine(umociVersion), "");
  out.push("## Fixtures", "", `Seed ${opts.seed}, ${opts.quick ? "--quick sizes" : "full sizes"}. Layers are gzip blobs written by \`boci raw add-layer --compress gzip\`.`, "");
  out.push("| Fixture | Content | Layers | Files | Uncompressed | gzip |", "| --- | --- | --- | --- | --- | --- |");
  for (const f of fixtures) out.push(`| ${f.name} | ${f.description} | ${f.layerTars.length} | ${f.files.toLocaleString("en")} | ${fmtMiB(f.tarBytes)} | ${fmtMiB(f.blobBytes)} |`);
  out.push("");
  out.push("## boci vs umoci", "");
  out.push(`Wall time median (min–max) over ${opts.runs ?? "3 (unpack/repack) or 5 (other)"} runs per tool, runs alternating boci/umoci, each from a fresh copy of the same state; CPU = user+sys (median); peak RSS = max resident set (median). Ratio = boci / umoci median wall time (below 1 = boci faster).`, "");
  if (!umociVersion) out.push("**umoci is not installed: boci only.**", "");
  out.push("| Fixture | Operation | boci median (spread) | umoci median (spread) | ratio | boci CPU | umoci CPU | boci peak RSS | umoci peak RSS |");
  out.push("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const r of rows) {
    const b = r.results.boci, u = r.results.umoci;
    out.push(`| ${r.fixture} | ${r.op} | ${fmtWall(b)} | ${fmtWall(u)} | ${fmtRatio(b, u)} | ${fmtCpu(b)} | ${fmtCpu(u)} | ${fmtRss(b)} | ${fmtRss(u)} |`);
  }
  out.push("");
  const errors = rows.flatMap((r) => (Object.entries(r.results) as [Tool, Series][]).filter(([, s]) => s.failures).map(([t, s]) => `- ${r.fixture} / ${r.op} / ${t}: ${s.lastError.replace(/\s+/g, " ").slice(0, 300)}`));
  if (umociVersion) {
    out.push("What each run left behind (untimed check after the run; one value when all runs agree). A repack or insert whose new layer is much smaller than the other tool's did not do the same work.", "");
    out.push("| Fixture | Operation | boci result | umoci result |", "| --- | --- | --- | --- |");
    for (const r of rows) out.push(`| ${r.fixture} | ${r.op} | ${[...(r.checks.boci ?? [])].join("; ") || "—"} | ${[...(r.checks.umoci ?? [])].join("; ") || "—"} |`);
    out.push("");
  }
  for (const f of floorRows) if (f.series.failures) errors.push(`- floor ${f.fixture} / ${f.op}: ${f.series.lastError.replace(/\s+/g, " ").slice(0, 300)}`);
  if (errors.length) out.push("Failures:", "", ...errors, "");
  if (floorRows.length) {
    out.push("## Floor: the same data through the plain tools", "");
    out.push("What the hardware does with the same bytes, without any image logic: extracting the uncompressed layer tars (GNU tar into tmpfs), decompressing the layer blobs (gzip, Bun's node:zlib), hashing (coreutils sha256sum, and OpenSSL, which uses the CPU's SHA instructions as boci's hasher does).", "");
    out.push("| Fixture | Operation | median (spread) | CPU | peak RSS | data | throughput |", "| --- | --- | --- | --- | --- | --- | --- |");
    for (const f of floorRows) {
      const w = f.series.samples.length ? median(f.series.samples.map((x) => x.wall)) : 0;
      out.push(`| ${f.fixture} | ${f.op} | ${fmtWall(f.series)} | ${fmtCpu(f.series)} | ${fmtRss(f.series)} | ${f.bytes ? fmtMiB(f.bytes) : "—"} | ${w && f.bytes ? `${(f.bytes / MiB / w).toFixed(0)} MiB/s` : "—"} |`);
    }
    out.push("");
    // boci's unpack against two floors: decompress + extract (what tar | gunzip would do), and
    // that plus the hashing a verified unpack with an mtree manifest cannot skip (the blob, the
    // diffID and every file: the uncompressed bytes twice), as serial sums on one core.
    const med = (fx: string, op: string) => {
      const f = floorRows.find((r) => r.fixture === fx && r.op.startsWith(op));
      return f?.series.samples.length ? median(f.series.samples.map((x) => x.wall)) : NaN;
    };
    const lines: string[] = [];
    for (const fx of fixtures) {
      const unpack = rows.find((r) => r.fixture === fx.name && r.op === "unpack")?.results.boci;
      if (!unpack?.samples.length) continue;
      const u = median(unpack.samples.map((x) => x.wall));
      const base = med(fx.name, "bun node:zlib gunzip") + med(fx.name, "tar -xf");
      const hashed = base + med(fx.name, "openssl sha256 (layer blobs)") + 2 * med(fx.name, "openssl sha256 (uncompressed");
      if (!Number.isFinite(base)) continue;
      lines.push(`| ${fx.name} | ${fmtSec(u)} s | ${fmtSec(base)} s | ${(u / base).toFixed(2)}× | ${Number.isFinite(hashed) ? `${fmtSec(hashed)} s` : "—"} | ${Number.isFinite(hashed) ? `${(u / hashed).toFixed(2)}×` : "—"} |`);
    }
    if (lines.length) {
      out.push("boci unpack against the floor: (a) Bun's gunzip stream + GNU tar -x, one after the other; (b) that plus the sha256 work an unpack must do (the blob once, the uncompressed layer twice: diffID and the mtree's file digests), serial on one core. boci spreads this over both cores.", "");
      out.push("| Fixture | boci unpack | floor (a) | boci / (a) | floor (b) | boci / (b) |", "| --- | --- | --- | --- | --- | --- |", ...lines, "");
    }
  }
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------------
// main

async function main(): Promise<void> {
  const started = new Date();
  const t0 = performance.now();
  if (!existsSync(BOCI_BUILT)) usage(`${BOCI_BUILT} not found: run \`bun scripts/build.ts\` first (npm run bench does)`);
  if (!HAVE_TIME) log("bench: /usr/bin/time not found; CPU and RSS come from Bun's resourceUsage (apt-get install time for the usual tool)");
  const umociVersion = opts.noUmoci ? null : firstLine(["umoci", "--version"]) || null;
  if (!umociVersion && !opts.noUmoci) log("bench: umoci not found: running boci only");
  const tools: Tool[] = umociVersion ? ["boci", "umoci"] : ["boci"];

  // tmpfs work area: removed at start and end; fixtures are kept (cached by seed and size)
  mkdirSync(BASE, { recursive: true });
  for (const n of readdirSync(BASE)) if (n !== "fixtures") rmrf(join(BASE, n));
  mkdirSync(FIXTURES, { recursive: true });
  // drop half-built fixtures and those of another generator version (they can never be reused)
  for (const n of readdirSync(FIXTURES)) if (n.endsWith(".tmp") || !n.endsWith(`-v${GEN_VERSION}`)) rmrf(join(FIXTURES, n));
  mkdirSync(WORK, { recursive: true });
  mkdirSync(dirname(BOCI), { recursive: true });
  copyFileSync(BOCI_BUILT, BOCI);
  sh(["chmod", "755", BOCI], "chmod");
  const commit = firstLine(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]);
  const dirty = firstLine(["git", "-C", ROOT, "status", "--porcelain", "--", "src"]) ? ", src/ modified" : "";
  bociVersion = `${firstLine([BOCI, "--version"])}, commit ${commit || "?"}${dirty}`;

  try {
    const shared = { addFile: join(WORK, "added.bin"), insertFile: join(WORK, "insert.bin"), gunzipScript: join(WORK, "gunzip.ts") };
    const writeContent = (path: string, seed: number, size: number): void => {
      const fd = openSync(path, "w");
      for (const c of contentChunks(seed, size, "mixed", opts.seed)) writeAll(fd, c);
      closeSync(fd);
    };
    writeContent(shared.addFile, opts.seed ^ 0xadd, SIZES.addSize);
    writeContent(shared.insertFile, opts.seed ^ 0x1e5, 10 * MiB);
    writeFileSync(shared.gunzipScript, GUNZIP_SCRIPT);

    const fixtures: FixtureInfo[] = [];
    for (const name of opts.only) {
      const fx = fixture(name, opts.seed);
      fixtures.push(fx);
      benchFixture(fx, tools, shared);
    }
    if (opts.ops.includes("floor")) {
      runFloor("—", `gzip -6 -c (the +${SIZES.addSize / MiB} MiB file) > /dev/null`, SIZES.addSize, SLOW_RUNS, () => ["gzip", "-6", "-c", shared.addFile]);
      // What the harness itself costs per command (spawn + /usr/bin/time): part of every wall time above.
      runFloor("—", "/bin/true (the harness: spawn and /usr/bin/time)", 0, FAST_RUNS, () => ["/bin/true"]);
    }
    const md = report(fixtures, umociVersion, started, (performance.now() - t0) / 1000);
    mkdirSync(join(ROOT, "bench"), { recursive: true });
    writeFileSync(join(ROOT, "bench", "results.md"), md + "\n");
    console.log(md);
    log(`bench: wrote bench/results.md (${((performance.now() - t0) / 60000).toFixed(1)} min)`);
  } finally {
    rmrf(WORK);
    rmrf(dirname(BOCI));
    if (opts.clean) rmrf(BASE);
  }
}

await main();
