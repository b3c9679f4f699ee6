/**
 * Mutation fuzzer for boci's parsers.
 *
 *   bun scripts/fuzz.ts --seed N --seconds S [--bin dist/boci] [--keep]
 *
 * Builds a few tiny seed images, then until the time is up: picks a seed blob (a layer, a
 * manifest, a config or index.json), applies seeded random mutations (bit flips, byte
 * inserts/deletes, truncation, splicing, JSON value swaps; layers are mutated compressed or
 * decompressed-mutated-recompressed), writes it into a copy of the layout — half of the time
 * fixing up digests and sizes up to index.json so the mutation reaches the parsers instead of
 * the digest check — and runs `unpack`, `stat` and `validate` on it (10 s timeout each).
 *
 * A quarter of the iterations are structural instead ("swap"): a valid image built from a seed
 * image's layer entries, where a directory named in an earlier layer (or earlier in the same
 * layer) first gets entries that make `unpack` defer its metadata (its own entry with a mode
 * and an old mtime, a new file or subdirectory below it — `sub`, a name the sentinel also has —,
 * a whiteout, an opaque whiteout), then is replaced by a symlink pointing outside the bundle
 * (the sentinel's absolute path, or a `../..` chain), itself or one of its ancestors, followed
 * by more entries below the old name and whiteouts through symlinks. These unpack half of the
 * time with `--rootless` (which also defers modes and re-closes opened directories).
 *
 * A failure is: an exit code outside 0–6 or a signal (a crash), a stack trace on stderr, a
 * timeout (a hang), or an escape (the sentinel directory beside the bundle changed, or a file
 * appeared outside the bundle). Iteration i uses its own PRNG stream derived from (seed, i), so
 * a run is deterministic for a seed: `--seed N --only I` replays one iteration.
 * Prints "fuzz: N iterations, F failures" and exits 1 when F > 0.
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, lstatSync, readlinkSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as zlib from "node:zlib";
import { rng } from "../test/helpers/rng";
import { makeTar, makeImage, file, dir, symlink, hardlink, whiteout, sha256hex, MT, type Descriptor, type TarEntrySpec, type Compress } from "../test/helpers/image";

// ---------------------------------------------------------------------------------------------
// arguments

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const SEED = Number(argValue("--seed") ?? "1");
const SECONDS = Number(argValue("--seconds") ?? "60");
const BIN = resolve(argValue("--bin") ?? join(import.meta.dir, "../dist/boci"));
const ONLY = argValue("--only") !== undefined ? Number(argValue("--only")) : undefined;
const KEEP = process.argv.includes("--keep");
const CMD_TIMEOUT_MS = 10_000;
const MAX_FAILURES = 20;
if (!Number.isInteger(SEED) || !(SECONDS > 0)) {
  console.error("usage: bun scripts/fuzz.ts --seed N --seconds S [--bin dist/boci] [--only ITER] [--keep]");
  process.exit(2);
}
if (!existsSync(BIN)) {
  console.error(`fuzz: ${BIN} does not exist (build it with bun scripts/build.ts)`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// PRNG (mulberry32), one stream per iteration

type R = () => number;
const int = (r: R, n: number) => Math.floor(r() * n);
const pick = <T>(r: R, xs: readonly T[]): T => xs[int(r, xs.length)]!;

// ---------------------------------------------------------------------------------------------
// processes

interface Run { code: number | null; signal: string | null; stdout: string; stderr: string; timedOut: boolean; ms: number }

async function run(args: string[], cwd: string): Promise<Run> {
  const t0 = Date.now();
  const p = Bun.spawn([BIN, ...args], { cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; p.kill("SIGKILL"); }, CMD_TIMEOUT_MS);
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  await p.exited;
  clearTimeout(timer);
  return { code: p.exitCode, signal: p.signalCode === null ? null : String(p.signalCode), stdout, stderr, timedOut, ms: Date.now() - t0 };
}

function runSync(args: string[]): void {
  const p = Bun.spawnSync([BIN, ...args], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`boci ${args.join(" ")} exited ${p.exitCode}: ${p.stderr.toString()}`);
}

// ---------------------------------------------------------------------------------------------
// seed images

interface SeedBlob { kind: "layer" | "manifest" | "config"; digest: string; mediaType: string; tag: string }

const root = mkdtempSync(join(tmpdir(), "boci-fuzz-"));
const seedLayout = join(root, "seed");
runSync(["init", "--layout", seedLayout]);

const ownerEntries: TarEntrySpec[] = [
  dir("etc/"), file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"),
  file("etc/group", "root:x:0:\n"), dir("bin/"), file("bin/sh", "#!/bin/sh\necho hi\n", { mode: 0o755 }),
  symlink("bin/link", "sh"), hardlink("bin/hard", "bin/sh"), symlink("abs", "/etc/passwd"),
  file("long/".repeat(30) + "deep", "deep", {}), file("x", "x", { pax: { "SCHILY.xattr.user.k": Buffer.from([0, 1, 2, 0xff]) } }),
];
const upperEntries: TarEntrySpec[] = [whiteout("etc/.wh.group"), dir("etc/"), file("etc/new", "new\n"), whiteout(".wh.x"), dir("opq/"), whiteout("opq/.wh..wh..opq")];
const plainEntries: TarEntrySpec[] = [dir("usr/"), dir("usr/share/"), file("usr/share/doc", "doc ".repeat(200)), { name: "fifo", type: "6" }];
const ownerTar = makeTar(ownerEntries);
const upperTar = makeTar(upperEntries);
const plainTar = makeTar(plainEntries);
/** The layer entries of the seed images, for the structural (swap) mutation. */
const SEED_LAYERS: Record<string, TarEntrySpec[][]> = { a: [ownerEntries, upperEntries], b: [plainEntries], c: [plainEntries, ownerEntries], d: [] };

const imgs = [
  { tag: "a", made: makeImage(seedLayout, "a", [ownerTar, upperTar], { compress: "gzip", config: { config: { User: "user", Env: ["A=1"], Cmd: ["/bin/sh"] } } }) },
  { tag: "b", made: makeImage(seedLayout, "b", [plainTar], { compress: "zstd" }) },
  { tag: "c", made: makeImage(seedLayout, "c", [plainTar, ownerTar], { compressEach: ["none", "gzip"] }) },
];
runSync(["new", "--image", `${seedLayout}:d`]);
runSync(["config", "--image", `${seedLayout}:d`, "--config.env", "D=1", "--config.label", "k=v"]);

const seeds: SeedBlob[] = [];
for (const { tag, made } of imgs) {
  seeds.push({ kind: "manifest", digest: made.manifest.digest, mediaType: made.manifest.mediaType, tag });
  seeds.push({ kind: "config", digest: made.config.digest, mediaType: made.config.mediaType, tag });
  for (const l of made.layers) seeds.push({ kind: "layer", digest: l.digest, mediaType: l.mediaType, tag });
}
{
  const ix = JSON.parse(readFileSync(join(seedLayout, "index.json"), "utf8"));
  const d = ix.manifests.find((m: Descriptor) => m.annotations?.["org.opencontainers.image.ref.name"] === "d");
  seeds.push({ kind: "manifest", digest: d.digest, mediaType: d.mediaType, tag: "d" });
  const m = JSON.parse(readFileSync(join(seedLayout, "blobs", ...d.digest.split(":") as [string, string]), "utf8"));
  seeds.push({ kind: "config", digest: m.config.digest, mediaType: m.config.mediaType, tag: "d" });
}
const INDEX = { kind: "index" as const };
const targets: (SeedBlob | typeof INDEX)[] = [...seeds, INDEX, INDEX];
const TAGS = ["a", "b", "c", "d"];

const blobPath = (l: string, digest: string) => join(l, "blobs", ...(digest.split(":") as [string, string]));
const seedBytes = (t: SeedBlob | typeof INDEX) => readFileSync(t.kind === "index" ? join(seedLayout, "index.json") : blobPath(seedLayout, t.digest));

// ---------------------------------------------------------------------------------------------
// mutations

const INTERESTING_BYTES = [0x00, 0xff, 0x7f, 0x80, 0x30, 0x37, 0x20, 0x0a, 0x2f, 0x2e];
const INTERESTING_JSON: unknown[] = [
  null, true, false, 0, -1, 1.5, 2 ** 31, 2 ** 53 + 2, -(2 ** 63), 1e300, "", "a", "sha256:", "sha256:abc",
  "sha256:" + "0".repeat(64), "sha999:" + "a".repeat(64), "../../../etc/passwd", "/", "\u0000", "\ud800", [], {}, [[[[[[]]]]]],
  { mediaType: MT.index }, MT.index, MT.manifest, MT.config, MT.layer + "+gzip", "application/x-foo", "x".repeat(5000),
];
const JSON_TEXT_TOKENS = ["1e400", "-0", "9".repeat(30), "0x10", "NaN", "\"\\ud800\"", "[".repeat(3000) + "]".repeat(3000), "{}", "\"\\u0000\"", "01"];

function bitflip(r: R, b: Buffer): Buffer {
  if (!b.length) return b;
  const c = Buffer.from(b);
  for (let n = 1 + int(r, 8); n > 0; n--) { const i = int(r, c.length); c[i] = c[i]! ^ (1 << int(r, 8)); }
  return c;
}
function insertBytes(r: R, b: Buffer): Buffer {
  const at = int(r, b.length + 1);
  const ins = Buffer.from(Array.from({ length: 1 + int(r, 16) }, () => (r() < 0.5 ? pick(r, INTERESTING_BYTES) : int(r, 256))));
  return Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
}
function deleteBytes(r: R, b: Buffer): Buffer {
  if (!b.length) return b;
  const at = int(r, b.length);
  return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + int(r, 64)))]);
}
function truncate(r: R, b: Buffer): Buffer {
  return b.subarray(0, int(r, b.length + 1));
}
function overwrite(r: R, b: Buffer): Buffer {
  if (!b.length) return b;
  const c = Buffer.from(b);
  const at = int(r, c.length);
  const v = pick(r, INTERESTING_BYTES);
  c.fill(v, at, Math.min(c.length, at + 1 + int(r, 12)));
  return c;
}
function splice(r: R, b: Buffer): Buffer {
  const other = seedBytes(pick(r, targets));
  if (!other.length) return b;
  const from = int(r, other.length);
  const chunk = other.subarray(from, from + 1 + int(r, 1024));
  const at = int(r, b.length + 1);
  return r() < 0.5 ? Buffer.concat([b.subarray(0, at), chunk, b.subarray(at)]) : Buffer.concat([b.subarray(0, at), chunk, b.subarray(at + chunk.length)]);
}
/** Tar-aware: damage one header field of a random 512-byte block. */
function tarField(r: R, b: Buffer): Buffer {
  if (b.length < 512) return bitflip(r, b);
  const c = Buffer.from(b);
  const blk = int(r, Math.floor(c.length / 512)) * 512;
  const fields: [number, number][] = [[0, 100], [100, 8], [124, 12], [136, 12], [148, 8], [156, 1], [157, 100], [257, 8], [329, 16], [345, 155]];
  const [off, len] = pick(r, fields);
  const mode = int(r, 4);
  for (let i = 0; i < len; i++) {
    c[blk + off + i] = mode === 0 ? 0xff : mode === 1 ? 0x37 : mode === 2 ? int(r, 256) : (i === 0 ? 0x80 : 0xff);
  }
  return c;
}

function jsonSwap(r: R, b: Buffer): Buffer {
  let obj: unknown;
  try { obj = JSON.parse(b.toString("utf8")); } catch { return bitflip(r, b); }
  if (r() < 0.3) {
    // text-level: replace a number or string token with a hostile token
    const text = b.toString("utf8");
    const toks = [...text.matchAll(/-?\d+(\.\d+)?([eE][+-]?\d+)?|"(?:[^"\\]|\\.)*"/g)];
    if (!toks.length) return b;
    const t = pick(r, toks);
    return Buffer.from(text.slice(0, t.index) + pick(r, JSON_TEXT_TOKENS) + text.slice(t.index! + t[0].length));
  }
  // value-level: pick a random node and replace / delete / duplicate it
  const nodes: { parent: Record<string, unknown> | unknown[]; key: string | number }[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach((x, i) => { nodes.push({ parent: v, key: i }); walk(x); });
    else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) { nodes.push({ parent: v as Record<string, unknown>, key: k }); walk(x); }
  };
  walk(obj);
  if (!nodes.length) return Buffer.from(JSON.stringify(pick(r, INTERESTING_JSON)));
  const n = pick(r, nodes);
  const p = n.parent as Record<string | number, unknown>;
  const op = int(r, 4);
  if (op === 0) p[n.key] = pick(r, INTERESTING_JSON);
  else if (op === 1) { if (Array.isArray(n.parent)) n.parent.splice(n.key as number, 1); else delete p[n.key]; }
  else if (op === 2) p[n.key] = structuredClone(pick(r, nodes).parent); // swap in a copy of another subtree
  else {
    // duplicate key: textual, since objects can't hold one
    const text = JSON.stringify(obj);
    if (typeof n.key === "string") {
      const needle = JSON.stringify(n.key) + ":";
      const i = text.indexOf(needle);
      if (i >= 0) return Buffer.from(text.slice(0, i) + needle + JSON.stringify(pick(r, INTERESTING_JSON)) + "," + text.slice(i));
    }
  }
  return Buffer.from(JSON.stringify(obj));
}

const BYTE_MUTATORS = [bitflip, insertBytes, deleteBytes, truncate, overwrite, splice];

function mutateBytes(r: R, b: Buffer, isJson: boolean, isTar: boolean): { bytes: Buffer; ops: string[] } {
  let out = b;
  const ops: string[] = [];
  for (let n = 1 + int(r, 3); n > 0; n--) {
    let m: (r: R, b: Buffer) => Buffer;
    if (isJson && r() < 0.6) m = jsonSwap;
    else if (isTar && r() < 0.5) m = tarField;
    else m = pick(r, BYTE_MUTATORS);
    out = m(r, out);
    ops.push(m.name);
  }
  return { bytes: out, ops };
}

type Codec = "gzip" | "zstd" | "none";
function codecOf(mediaType: string): Codec {
  return mediaType.endsWith("+gzip") ? "gzip" : mediaType.endsWith("+zstd") ? "zstd" : "none";
}
function decode(c: Codec, b: Buffer): Buffer {
  return c === "gzip" ? zlib.gunzipSync(b) : c === "zstd" ? Buffer.from(zlib.zstdDecompressSync(b)) : b;
}
function encode(c: Codec, b: Buffer): Buffer {
  return c === "gzip" ? zlib.gzipSync(b) : c === "zstd" ? Buffer.from(zlib.zstdCompressSync(b)) : b;
}

// ---------------------------------------------------------------------------------------------
// structural mutation: a directory swapped for a symlink pointing outside the bundle

/** An mtime no fresh sentinel has: a deferred utimes that lands on the host shows as this. */
const OLD_MTIME = 1000000000;

const entryName = (e: TarEntrySpec) => (typeof e.name === "string" ? e.name : e.name.toString("latin1")).replace(/^\/+|\/+$/g, "");
const isWhiteoutName = (n: string) => n.slice(n.lastIndexOf("/") + 1).startsWith(".wh.");

/** Directories the given layers name: explicit directory entries and every entry's parents. */
function dirsOf(layers: TarEntrySpec[][]): string[] {
  const out = new Set<string>();
  for (const l of layers) for (const e of l) {
    const n = entryName(e);
    if (!n || n.split("/").includes("..")) continue;
    if ((e.type === "5") && !isWhiteoutName(n)) out.add(n);
    const parts = n.split("/");
    for (let k = 1; k < parts.length; k++) out.add(parts.slice(0, k).join("/"));
  }
  return [...out].sort();
}

/** A symlink target reaching `outside` from an entry at `at` (or a wrong-length `..` chain). */
function outsideTarget(r: R, outside: string, at: string): string {
  const depth = at.split("/").length;
  const k = int(r, 4);
  if (k === 0) return outside;
  if (k === 1) return `${outside}/${pick(r, ["sub", "", "secret"])}`.replace(/\/$/, "");
  if (k === 2) return "../".repeat(depth + 1) + "outside";
  return "../".repeat(1 + int(r, depth + 4)) + pick(r, ["outside", "outside/sub", "", ".."]);
}

/**
 * Build an image from seed image `tag`'s layers where one or two directories named earlier are
 * given deferred metadata, then swapped (themselves or an ancestor) for a symlink to outside,
 * then written below and whited out through. Returns the new layers and a description.
 */
function swapLayers(r: R, tag: string, outside: string): { layers: TarEntrySpec[][]; ops: string[] } {
  const layers = SEED_LAYERS[tag]!.map((l) => [...l]);
  const ops: string[] = [];
  for (let round = 1 + int(r, 2); round > 0; round--) {
    // append to an existing layer (dirs named earlier in it count) or to a new one
    const li = int(r, layers.length + 1);
    if (li === layers.length) layers.push([]);
    const layer = layers[li]!;
    const known = dirsOf(layers.slice(0, li + 1));
    let D: string;
    if (!known.length || r() < 0.15) {
      D = pick(r, ["fz", "fz/deep", "etc", "usr/share"]);
      layer.push(dir(`${D}/`, { mode: 0o755, mtime: OLD_MTIME }));
    } else D = pick(r, known);
    // 1. make the directory's (or a child's) metadata deferred
    for (let n = 1 + int(r, 3); n > 0; n--) {
      switch (int(r, 6)) {
        case 0: layer.push(dir(`${D}/`, { mode: pick(r, [0o777, 0o500, 0o700, 0o555, 0o000, 0o1777]), mtime: OLD_MTIME })); ops.push(`dir ${D}`); break;
        case 1: layer.push(file(`${D}/fz-new`, "n")); ops.push(`file ${D}/fz-new`); break;
        case 2: layer.push(dir(`${D}/sub/`, { mode: pick(r, [0o777, 0o500]), mtime: OLD_MTIME }), file(`${D}/sub/fz`, "s")); ops.push(`dir ${D}/sub`); break;
        case 3: layer.push(whiteout(`${D}/.wh.${pick(r, ["passwd", "doc", "share", "fz-new", "sub", "nothing"])}`)); ops.push(`wh ${D}/x`); break;
        case 4: layer.push(whiteout(`${D}/.wh..wh..opq`)); ops.push(`opq ${D}`); break;
        default: layer.push(dir(`${D}/sub/`, { mode: 0o777, mtime: OLD_MTIME }), dir(`${D}/sub/deeper/`, { mode: 0o500, mtime: OLD_MTIME })); ops.push(`dirs ${D}/sub/deeper`); break;
      }
    }
    // 2. the swap: the directory itself or one of its ancestors becomes a symlink to outside
    const parts = D.split("/");
    const S = r() < 0.7 ? D : parts.slice(0, 1 + int(r, parts.length)).join("/");
    const t = r() < 0.85 ? outsideTarget(r, outside, S) : pick(r, known.filter((k) => k !== S && !k.startsWith(`${S}/`)).concat(["etc"]));
    layer.push(symlink(S, t));
    ops.push(`swap ${S} -> ${t.startsWith(outside) ? "<outside>" + t.slice(outside.length) : t}`);
    // 3. more entries below the old name, and whiteouts through symlinks
    for (let n = int(r, 4); n > 0; n--) {
      switch (int(r, 8)) {
        case 0: layer.push(file(`${D}/after`, "a")); ops.push(`file ${D}/after`); break;
        case 1: layer.push(file(`${S}/secret`, "overwritten?")); ops.push(`file ${S}/secret`); break;
        case 2: layer.push(dir(`${S}/sub/`, { mode: 0o700, mtime: OLD_MTIME }), file(`${S}/sub/file`, "overwritten?")); ops.push(`dir ${S}/sub`); break;
        case 3: layer.push(whiteout(`${S}/.wh.${pick(r, ["secret", "sub"])}`)); ops.push(`wh ${S}/secret|sub`); break;
        case 4: layer.push(whiteout(`${S}/.wh..wh..opq`)); ops.push(`opq ${S}`); break;
        case 5: layer.push(dir(`${D}/`, { mode: 0o777, mtime: OLD_MTIME })); ops.push(`dir ${D} again`); break;
        default: {
          // a symlink inside the rootfs to another directory, then whiteouts through it
          const other = pick(r, known.length ? known : ["etc"]);
          const wl = `fzlink${int(r, 3)}`;
          layer.push(symlink(wl, r() < 0.5 ? other : `/${other}`), r() < 0.5 ? whiteout(`${wl}/.wh..wh..opq`) : whiteout(`${wl}/.wh.${pick(r, ["passwd", "doc", "new", "sub"])}`));
          ops.push(`wh via ${wl} -> ${other}`);
        }
      }
    }
  }
  return { layers, ops };
}

// ---------------------------------------------------------------------------------------------
// writing a mutation into a layout copy

/** Store `bytes` in place of blob `old` and rewrite every descriptor naming it, up to index.json. */
function replaceWithFixup(l: string, old: string, bytes: Buffer): void {
  const hex = sha256hex(bytes);
  const nd = `sha256:${hex}`;
  writeFileSync(join(l, "blobs", "sha256", hex), bytes);
  const swap = (d: { digest?: unknown; size?: unknown } | null | undefined): boolean => {
    if (d && typeof d === "object" && d.digest === old) { d.digest = nd; d.size = bytes.length; return true; }
    return false;
  };
  // parents: the seed manifests (JSON we wrote ourselves) then index.json
  for (const s of seeds) {
    if (s.kind !== "manifest") continue;
    const p = blobPath(l, s.digest);
    const m = JSON.parse(readFileSync(p, "utf8"));
    let hit = swap(m.config);
    for (const x of m.layers ?? []) hit = swap(x) || hit;
    if (hit) replaceWithFixup(l, s.digest, Buffer.from(JSON.stringify(m)));
  }
  const ip = join(l, "index.json");
  const ix = JSON.parse(readFileSync(ip, "utf8"));
  let hit = false;
  for (const m of ix.manifests ?? []) hit = swap(m) || hit;
  if (hit) writeFileSync(ip, JSON.stringify(ix));
}

// ---------------------------------------------------------------------------------------------
// escape checks

function snapshot(p: string): string {
  const out: string[] = [];
  const walk = (rel: string) => {
    const f = rel ? join(p, rel) : p;
    const st = lstatSync(f);
    out.push([rel || ".", st.mode.toString(8), st.size, st.mtimeMs, st.ino, st.isFile() ? sha256hex(readFileSync(f)) : st.isSymbolicLink() ? readlinkSync(f) : ""].join(" "));
    if (st.isDirectory()) for (const n of readdirSync(f).sort()) walk(rel ? `${rel}/${n}` : n);
  };
  walk("");
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------------
// the loop

interface Failure { iter: number; what: string; cmd: string; detail: string }
const failures: Failure[] = [];
const codes = new Map<string, number>();
const EXPECTED_ROOT = new Set(["seed"]);
/** Share of iterations that build a directory-to-symlink swap image instead of mutating bytes. */
const SWAP_SHARE = 0.25;
const SWAP_TAG = "fz";

async function iteration(i: number): Promise<Failure[]> {
  const r = rng((SEED * 1_000_003 + i * 7919) >>> 0 ^ 0x9e3779b9);
  const it = join(root, `it${i}`);
  const L = join(it, "layout");
  const bundle = join(it, "bundle");
  const outside = join(it, "outside");
  const cwd = join(it, "cwd");
  mkdirSync(join(outside, "sub"), { recursive: true });
  mkdirSync(cwd);
  writeFileSync(join(outside, "secret"), "secret\n");
  writeFileSync(join(outside, "sub", "file"), "file\n");
  cpSync(seedLayout, L, { recursive: true });

  const swap = r() < SWAP_SHARE;
  const target = pick(r, targets);
  const fixup = r() < 0.5;
  const orig = seedBytes(target);
  let desc: string;
  let tag = "";
  let rootless = false;
  if (swap) {
    const from = pick(r, TAGS);
    const { layers, ops } = swapLayers(r, from, outside);
    makeImage(L, SWAP_TAG, layers.map((l) => makeTar(l)), { compress: pick(r, ["gzip", "zstd", "none"] as Compress[]) });
    rootless = r() < 0.5;
    tag = SWAP_TAG;
    desc = `swap from ${from}${rootless ? " rootless" : ""}: ${ops.join(", ")}`;
  } else if (target.kind === "index") {
    const { bytes, ops } = mutateBytes(r, orig, true, false);
    writeFileSync(join(L, "index.json"), bytes);
    desc = `index.json ${ops.join("+")}`;
  } else {
    let bytes: Buffer;
    let ops: string[];
    if (target.kind === "layer" && codecOf(target.mediaType) !== "none" && r() < 0.5) {
      // mutate the tar inside, recompress: the codec accepts it, the tar reader must not crash
      const codec = codecOf(target.mediaType);
      const m = mutateBytes(r, decode(codec, orig), false, true);
      bytes = encode(codec, m.bytes);
      ops = ["inner", ...m.ops];
    } else {
      const m = mutateBytes(r, orig, target.kind !== "layer", target.kind === "layer");
      bytes = m.bytes;
      ops = m.ops;
    }
    if (fixup) replaceWithFixup(L, target.digest, bytes);
    else writeFileSync(blobPath(L, target.digest), bytes);
    desc = `${target.kind} ${target.digest.slice(7, 19)} (${target.tag}) ${ops.join("+")}${fixup ? " fixup" : ""}`;
  }
  if (!swap) tag = target.kind === "index" ? pick(r, TAGS) : target.tag;
  const before = snapshot(outside);

  const cmds: string[][] = [
    ["unpack", ...(rootless ? ["--rootless"] : []), "--no-progress", "--image", `${L}:${tag}`, bundle],
    ["stat", "--image", `${L}:${tag}`],
    ["validate", "--layout", L],
  ];
  const results = await Promise.all(cmds.map((c) => run(c, cwd)));
  const out: Failure[] = [];
  const fail = (what: string, cmd: string[], detail: string) => out.push({ iter: i, what: `${what} [${desc}]`, cmd: `${BIN} ${cmd.join(" ")}`, detail });
  results.forEach((res, k) => {
    const c = cmds[k]!;
    const key = `${c[0]}=${res.code ?? res.signal}`;
    codes.set(key, (codes.get(key) ?? 0) + 1);
    if (res.timedOut) fail("timeout", c, `killed after ${CMD_TIMEOUT_MS} ms`);
    else if (res.signal !== null || res.code === null || res.code < 0 || res.code > 6) fail("crash", c, `exit ${res.code} signal ${res.signal}: ${res.stderr.slice(0, 1500)}`);
    if (/^ {4}at /m.test(res.stderr)) fail("stack trace", c, res.stderr.slice(0, 1500));
  });
  const after = snapshot(outside);
  if (after !== before) {
    const was = new Set(before.split("\n")), now = new Set(after.split("\n"));
    const lines = [...before.split("\n").filter((l) => !now.has(l)).map((l) => `was: ${l}`), ...after.split("\n").filter((l) => !was.has(l)).map((l) => `now: ${l}`)];
    fail("escape: sentinel changed", cmds[0]!, lines.join("\n"));
  }
  const extra = readdirSync(it).filter((n) => !["layout", "bundle", "outside", "cwd"].includes(n));
  if (extra.length) fail("escape: files beside the bundle", cmds[0]!, extra.join(", "));
  if (readdirSync(cwd).length) fail("escape: files in the working directory", cmds[0]!, readdirSync(cwd).join(", "));
  const strayRoot = readdirSync(root).filter((n) => !EXPECTED_ROOT.has(n) && n !== `it${i}`);
  if (strayRoot.length) fail("escape: files beside the iteration directory", cmds[0]!, strayRoot.join(", "));
  if (out.length && KEEP) console.error(`fuzz: kept ${it}`);
  else rmSync(it, { recursive: true, force: true });
  return out;
}

const deadline = Date.now() + SECONDS * 1000;
let iters = 0;
try {
  if (ONLY !== undefined) {
    failures.push(...(await iteration(ONLY)));
    iters = 1;
  } else {
    for (let i = 0; Date.now() < deadline && failures.length < MAX_FAILURES; i++) {
      failures.push(...(await iteration(i)));
      iters++;
    }
  }
} finally {
  if (!KEEP) rmSync(root, { recursive: true, force: true });
}
for (const f of failures) {
  console.error(`FAIL seed ${SEED} iteration ${f.iter}: ${f.what}\n  command: ${f.cmd}\n  replay: bun scripts/fuzz.ts --seed ${SEED} --only ${f.iter} --keep\n  ${f.detail.trim().split("\n").join("\n  ")}`);
}
console.log(`fuzz: exit codes ${[...codes].sort().map(([k, v]) => `${k}:${v}`).join(" ")}`);
console.log(`fuzz: ${iters} iterations, ${failures.length} failures`);
process.exit(failures.length ? 1 : 0);
