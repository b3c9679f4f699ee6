/**
 * The operations timed on each fixture (boci and umoci side by side) and the floor (the same
 * bytes through the plain tools), with their untimed preparation and checks.
 */
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { MiB, WORK, cpA, fmtMiB, log, manifestLayers, rmrf } from "./common";
import { Rng, contentBytes, type FixtureInfo, type Sizes } from "./fixtures";
import { HAVE_OPENSSL, TOOL_BIN, type Recorder, type Scale, type Tool } from "./measure";

export const OP_KEYS = ["unpack", "unpack-rootless", "repack", "repack-1pct", "repack-add", "stat", "config", "gc", "insert", "floor"] as const;
export type OpKey = (typeof OP_KEYS)[number];

export interface BenchConfig {
  seed: number;
  sizes: Sizes;
  ops: readonly OpKey[];
  /** runs per tool of fast operations (stat, config, gc, insert, /bin/true) and slow ones (unpack, repack, floor) */
  fastRuns: number;
  slowRuns: number;
}

/** Files made once per run and shared by the fixtures. */
export interface Shared { addFile: string; insertFile: string; gunzipScript: string }

/**
 * Bun's node:zlib gunzip stream of the given gzip files; with --stdout the decompressed bytes go
 * to stdout (for `| tar -x`), else they are counted and dropped.
 */
export const GUNZIP_SCRIPT = `import { createReadStream } from "node:fs";
import { createGunzip } from "node:zlib";
const args = process.argv.slice(2);
const toStdout = args[0] === "--stdout";
if (toStdout) args.shift();
const drained = () => new Promise((resolve) => process.stdout.once("drain", resolve));
let n = 0;
for (const f of args) {
  for await (const c of createReadStream(f, { highWaterMark: 1 << 20 }).pipe(createGunzip({ chunkSize: 1 << 20 }))) {
    n += c.length;
    if (toStdout && !process.stdout.write(c)) await drained();
  }
}
if (n === 0) process.exit(1);
if (toStdout) await new Promise((resolve) => process.stdout.end(resolve));
`;

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

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Every operation and floor row of one fixture. */
export function benchFixture(rec: Recorder, cfg: BenchConfig, fx: FixtureInfo, tools: Tool[], shared: Shared): void {
  const want = (k: OpKey): boolean => cfg.ops.includes(k);
  const img = (dir: string): string => join(dir, "image");
  const fresh = (dir: string): string => { cpA(fx.image, img(dir)); return img(dir); };
  const scale: Scale = { entries: fx.entries, bytes: fx.tarBytes };
  const { slowRuns, fastRuns } = cfg;
  const op = (key: OpKey, label: string, runs: number, prepare: (t: Tool, d: string) => string[] | null, check: (d: string) => string, scaled = false): void => {
    rec.runOp(tools, { fixture: fx.name, key, op: label, runs, scale: scaled ? scale : undefined, prepare, check });
  };

  if (want("unpack")) op("unpack", "unpack", slowRuns, () => ["unpack", "--image", `${fx.image}:latest`, "bundle"], checkUnpack, true);
  if (want("unpack-rootless")) op("unpack-rootless", "unpack --rootless", slowRuns, () => ["unpack", "--rootless", "--image", `${fx.image}:latest`, "bundle"], checkUnpack, true);

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
    if (want("repack")) op("repack", "repack (no change)", slowRuns, (t, d) => prep(t, d), checkImage, true);
    if (want("repack-1pct")) {
      op("repack-1pct", `repack (every 100th file rewritten: ${changed.length}, ${fmtMiB(changedBytes)})`, slowRuns, (t, d) => prep(t, d, (rootfs) => {
        changed.forEach((rel, i) => {
          const p = join(rootfs, rel);
          if (!existsSync(p)) return;
          let data = newContent.get(rel);
          if (!data) { data = contentBytes(0xc0ffee + i, lstatSync(p).size, "mixed", cfg.seed); newContent.set(rel, data); }
          writeFileSync(p, data);
        });
      }), checkImage, true);
      newContent.clear();
    }
    if (want("repack-add")) {
      op("repack-add", `repack (+${cfg.sizes.addSize / MiB} MiB file)`, slowRuns, (t, d) => prep(t, d, (rootfs) => {
        mkdirSync(join(rootfs, "bench-added"), { recursive: true });
        copyFileSync(shared.addFile, join(rootfs, "bench-added", "added.bin"));
      }), checkImage, true);
    }
    for (const r of Object.values(refs)) rmrf(r);
  }

  if (want("stat")) op("stat", "stat", fastRuns, () => ["stat", "--image", `${fx.image}:latest`], checkNone);
  if (want("config")) op("config", "config --config.env A=B", fastRuns, (_, d) => ["config", "--image", `${fresh(d)}:latest`, "--config.env", "A=B"], checkImage);
  if (want("gc")) {
    // a layout with garbage: unreferenced blobs of assorted sizes, made once, copied each run
    const gcSrc = join(WORK, `gc-${fx.name}`);
    rmrf(gcSrc);
    cpA(fx.image, gcSrc);
    const rng = new Rng(cfg.seed ^ 0x9c);
    let garbage = 0;
    for (let i = 0; i < 24; i++) {
      const data = contentBytes(rng.u32(), i < 16 ? rng.int(200, 8192) : 4 * MiB, "mixed", cfg.seed);
      writeFileSync(join(gcSrc, "blobs", "sha256", createHash("sha256").update(data).digest("hex")), data);
      garbage += data.length;
    }
    op("gc", `gc (24 garbage blobs, ${fmtMiB(garbage)})`, fastRuns, (_, d) => { cpA(gcSrc, img(d)); return ["gc", "--layout", img(d)]; }, checkBlobs);
    rmrf(gcSrc);
  }
  if (want("insert")) op("insert", "insert (10 MiB file)", fastRuns, (_, d) => ["insert", "--image", `${fresh(d)}:latest`, shared.insertFile, "/opt/bench/inserted.bin"], checkImage);

  if (want("floor")) {
    const xattrs = fx.name === "distro" ? "--xattrs --xattrs-include='user.*' " : "";
    const nl = fx.layerTars.length;
    const layersLabel = `${nl} layer${nl > 1 ? "s" : ""}`;
    // floor (a): the decompression and the extraction as one pipeline, both processes running at
    // once; -i (--ignore-zeros) reads the layers' tars one after the other from the one stream
    rec.runFloor(fx.name, "gunzip-pipe-tar", `bun node:zlib gunzip stream piped into tar -xf - (${nl > 1 ? `${layersLabel}, ` : ""}one pipeline)`, fx.tarBytes, slowRuns,
      () => ["bash", "-c", `set -o pipefail; mkdir rootfs && ${q(process.execPath)} ${q(shared.gunzipScript)} --stdout ${fx.blobs.map(q).join(" ")} | tar ${xattrs}-i -xf - -C rootfs`], scale);
    const tarCmd = fx.layerTars.map((t) => `tar ${xattrs}-xf ${q(t)} -C rootfs`).join(" && ");
    rec.runFloor(fx.name, "tar-x", `tar -xf (${nl} uncompressed layer${nl > 1 ? "s" : ""})`, fx.tarBytes, slowRuns, () => ["sh", "-c", `mkdir rootfs && ${tarCmd}`], scale);
    rec.runFloor(fx.name, "gzip-dc", "gzip -dc (layer blobs) > /dev/null", fx.blobBytes, slowRuns, () => ["gzip", "-dc", ...fx.blobs]);
    rec.runFloor(fx.name, "bun-gunzip", "bun node:zlib gunzip stream (layer blobs)", fx.blobBytes, slowRuns, () => [process.execPath, shared.gunzipScript, ...fx.blobs]);
    rec.runFloor(fx.name, "sha256sum-blobs", "sha256sum (layer blobs)", fx.blobBytes, slowRuns, () => ["sha256sum", ...fx.blobs]);
    rec.runFloor(fx.name, "sha256sum-tars", "sha256sum (uncompressed layers)", fx.tarBytes, slowRuns, () => ["sha256sum", ...fx.layerTars]);
    // OpenSSL uses the CPU's SHA extensions, as boci's hasher (BoringSSL) does: the hashing floor.
    if (HAVE_OPENSSL) {
      rec.runFloor(fx.name, "openssl-blobs", "openssl sha256 (layer blobs)", fx.blobBytes, slowRuns, () => ["openssl", "dgst", "-sha256", ...fx.blobs]);
      rec.runFloor(fx.name, "openssl-tars", "openssl sha256 (uncompressed layers)", fx.tarBytes, slowRuns, () => ["openssl", "dgst", "-sha256", ...fx.layerTars]);
    }
  }
}

/** Floor rows that belong to no fixture: gzip compression of the added file, the harness itself. */
export function benchSharedFloor(rec: Recorder, cfg: BenchConfig, shared: Shared): void {
  if (!cfg.ops.includes("floor")) return;
  rec.runFloor("—", "gzip-6", `gzip -6 -c (the +${cfg.sizes.addSize / MiB} MiB file) > /dev/null`, cfg.sizes.addSize, cfg.slowRuns, () => ["gzip", "-6", "-c", shared.addFile]);
  // What the harness itself costs per command (spawn + /usr/bin/time): part of every wall time above.
  rec.runFloor("—", "true", "/bin/true (the harness: spawn and /usr/bin/time)", 0, cfg.fastRuns, () => ["/bin/true"]);
}
