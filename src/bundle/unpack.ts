/**
 * unpack: apply an image's layers onto a rootfs and write a runtime bundle (rootfs/,
 * config.json, the mtree manifest, umoci.json) in the format umoci writes.
 *
 * One pass per byte: each layer blob is read once (verified against its digest and size),
 * decompressed, hashed for its diffID, extracted, and recorded into the mtree manifest as it
 * streams. On failure the rootfs and any bundle files this call created are removed.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Readable } from "node:stream";
import { ClobberError, InvalidError, UnsupportedError, UsageError, addContext } from "../errors";
import { type Layout, type DescriptorPath, manifestOf } from "../cas";
import { type Descriptor, type ImageConfig, type Manifest, MediaType, isLayerMediaType } from "../image";
import { compressionFromMediaType, createDecompressor, sniffCompression, type Compression } from "../compress";
import { readTar } from "../tar";
import { createMtreeRecorder, writeMtreeSorted, UMOCI_KEYWORDS, type MtreeRecorder, type MtreeEntry } from "../mtree";
import { LayerApplier } from "../layer/apply";
import { type MapOptions, toHost } from "../layer/idmap";
import { generateRuntimeConfig, serializeRuntimeConfig } from "./runtime-config";
import { writeMeta } from "./meta";
import { STAT_CACHE_FILE, statCacheEnabled, statKey, writeStatCache } from "./stat-cache";
import { createProgress, formatBytes } from "../util/progress";
import { getPool, inlineHasher } from "../worker/pool";

/** Layers (compressed) at least this big get their diffID hashed on a worker thread. */
const OFFLOAD_DIFFID_MIN = 4 << 20;

export interface UnpackOptions {
  mapOptions: MapOptions;
  keepDirlinks?: boolean;
  progress?: boolean;
  onWarning?: (msg: string) => void;
  /** Decompression-bomb bound per layer (uncompressed bytes); default: see layerByteLimit. */
  maxLayerBytes?: number;
}

export interface LoadedImage {
  path: DescriptorPath;
  manifestDesc: Descriptor;
  manifest: Manifest;
  config: ImageConfig;
}

/** Read and check the manifest and config an unpack needs. */
export function loadImage(layout: Layout, p: DescriptorPath): LoadedImage {
  const manifestDesc = manifestOf(p);
  const manifest = layout.readJson<Manifest>(manifestDesc, "manifest");
  if (manifest.config.mediaType !== MediaType.config)
    throw new UnsupportedError(`config media type ${manifest.config.mediaType} is not ${MediaType.config}`);
  const config = layout.readJson<ImageConfig>(manifest.config, "config");
  config.rootfs.diff_ids ??= [];
  if (config.rootfs.diff_ids.length !== manifest.layers.length)
    throw new InvalidError(`image has ${manifest.layers.length} layers but ${config.rootfs.diff_ids.length} diff_ids`);
  for (const [i, l] of manifest.layers.entries())
    if (!isLayerMediaType(l.mediaType)) throw new UnsupportedError(`layer ${i}: unsupported media type ${l.mediaType}`);
  return { path: p, manifestDesc, manifest, config };
}

/**
 * Extract every layer of `img` onto `rootfs` (which must exist). Returns the recorder holding
 * the extracted tree when `record` is set.
 */
export async function unpackLayers(layout: Layout, img: LoadedImage, rootfs: string, opts: UnpackOptions & { record?: boolean }): Promise<MtreeRecorder | undefined> {
  const recorder = opts.record ? createMtreeRecorder() : undefined;
  const applier = new LayerApplier(rootfs, {
    mapOptions: opts.mapOptions,
    keepDirlinks: opts.keepDirlinks,
    recorder,
    onWarning: (_code, msg) => opts.onWarning?.(msg),
  });
  applier.recordRoot();
  const progress = createProgress({ enabled: opts.progress !== false });
  const layers = img.manifest.layers;
  const totalBytes = layers.reduce((a, l) => a + l.size, 0);
  let doneBytes = 0;
  const start = performance.now();
  try {
    for (const [i, layer] of layers.entries()) {
      const want = img.config.rootfs.diff_ids[i]!;
      try {
        const diffID = await applyLayerBlob(layout, layer, applier, {
          onWarning: (m) => opts.onWarning?.(`layer ${i}: ${m}`),
          maxBytes: opts.maxLayerBytes ?? layerByteLimit(layer.size),
          onBytes: (n) => {
            doneBytes += n;
            progress.update(() => {
              const secs = (performance.now() - start) / 1000;
              return `unpack: layer ${i + 1} of ${layers.length}  ${formatBytes(doneBytes)} of ${formatBytes(totalBytes)}  ${formatBytes(doneBytes / Math.max(secs, 0.001))}/s`;
            });
          },
        });
        if (diffID !== want) throw new InvalidError(`diffid mismatch: layer ${layer.digest} unpacks to ${diffID}, config says ${want}`);
      } catch (e) {
        throw addContext(`unpack layer ${i}`, e);
      }
    }
    await applier.finish();
  } finally {
    progress.done();
  }
  return recorder;
}

/**
 * The decompression-bomb bound for a layer: BOCI_MAX_LAYER_BYTES when set, else 2048 times the
 * compressed size plus 1 GiB. deflate cannot expand more than about 1032:1, so no real gzip layer
 * reaches it; zstd (and stacked tricks) can, and are stopped there.
 */
export function layerByteLimit(compressedSize: number): number {
  const env = process.env.BOCI_MAX_LAYER_BYTES;
  if (env !== undefined && env !== "") {
    const n = Number(env);
    if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`invalid BOCI_MAX_LAYER_BYTES ${JSON.stringify(env)}: a positive integer`);
    return n;
  }
  return compressedSize * 2048 + (1 << 30);
}

/** Stream one layer blob onto the applier; returns its diffID (sha256 of the uncompressed tar). */
async function applyLayerBlob(layout: Layout, layer: Descriptor, applier: LayerApplier, opts: { onWarning: (m: string) => void; maxBytes?: number; onBytes: (n: number) => void }): Promise<string> {
  let comp: Compression = compressionFromMediaType(layer.mediaType);
  const blob = layout.getBlob(layer);
  // Sniff the first chunk: layers labelled +gzip are sometimes plain tar or zstd.
  const first = await blob.next();
  const firstChunk = first.done ? Buffer.alloc(0) : first.value;
  if (firstChunk.length) {
    const sniffed = sniffCompression(firstChunk);
    if (sniffed !== "unknown" && sniffed !== comp) {
      opts.onWarning(`media type says ${comp} but the blob is ${sniffed}; decoding as ${sniffed}`);
      comp = sniffed;
    }
  }
  async function* source(): AsyncGenerator<Buffer> {
    if (firstChunk.length) { opts.onBytes(firstChunk.length); yield firstChunk; }
    for await (const c of blob) { opts.onBytes(c.length); yield c; }
  }
  const raw = Readable.from(source(), { objectMode: false, highWaterMark: 1 << 20 });
  const dec = createDecompressor(comp, { onWarning: opts.onWarning, maxOutputBytes: opts.maxBytes });
  raw.on("error", (e) => dec.destroy(e));
  raw.pipe(dec);
  // The diffID of a large layer is hashed on a worker thread (see WorkerPool.hashStream).
  const hasher = layer.size >= OFFLOAD_DIFFID_MIN ? getPool().hashStream() : inlineHasher();
  async function* tapped(): AsyncGenerator<Buffer> {
    for await (const chunk of dec) {
      const wait = hasher.update(chunk as Buffer);
      if (wait) await wait;
      yield chunk as Buffer;
    }
  }
  try {
    await applier.applyLayer(readTar(tapped()));
  } catch (e) {
    hasher.abort();
    throw e;
  } finally {
    raw.destroy();
    dec.destroy();
  }
  return "sha256:" + (await hasher.digest());
}

export interface BundleUnpackResult { mtreeFile: string }

/** `umoci unpack`: the full bundle. Refuses a bundle that already has rootfs/ or config.json. */
export async function unpackBundle(layout: Layout, img: LoadedImage, bundle: string, opts: UnpackOptions): Promise<BundleUnpackResult> {
  if (img.config.os !== "linux") throw new UnsupportedError(`unsupported OS: ${img.config.os}`);
  const rootfs = path.join(bundle, "rootfs");
  const configPath = path.join(bundle, "config.json");
  for (const p of [rootfs, configPath]) {
    if (fs.existsSync(p)) throw new ClobberError(`bundle ${bundle}: ${path.basename(p)} already exists; refusing to overwrite`);
  }
  fs.mkdirSync(bundle, { recursive: true, mode: 0o700 });
  fs.chmodSync(bundle, 0o700);
  const hex = img.manifestDesc.digest.split(":")[1]!;
  const mtreeFile = path.join(bundle, `sha256_${hex}.mtree`);
  if (fs.existsSync(mtreeFile)) throw new ClobberError(`bundle ${bundle}: ${path.basename(mtreeFile)} already exists`);
  const created: string[] = [];
  try {
    createRootfsDir(rootfs, opts.mapOptions);
    created.push(rootfs);
    const recorder = (await unpackLayers(layout, img, rootfs, { ...opts, record: true }))!;
    // Drop the extraction's garbage (decompressed chunks, stat results) before the manifest is
    // formatted, so the two never add up in the peak.
    Bun.gc(true);
    const cfg = generateRuntimeConfig(img.config, {
      rootfsName: "rootfs",
      rootfsPath: rootfs,
      mapOptions: opts.mapOptions,
      onWarning: opts.onWarning,
    });
    fs.writeFileSync(configPath, serializeRuntimeConfig(cfg), { flag: "wx", mode: 0o644 });
    created.push(configPath);
    const mtreeSha = writeMtreeFile(mtreeFile, recorder.sorted(), rootfs);
    created.push(mtreeFile);
    if (statCacheEnabled()) {
      // The files as they are now, every layer applied (stat-cache.ts).
      created.push(path.join(bundle, STAT_CACHE_FILE));
      writeStatCache(bundle, mtreeSha, (function* () {
        let n = 0;
        for (const e of recorder.entries()) {
          if (e.type !== "file") continue;
          // Each BigInt lstat result is garbage at once: collect as we go.
          if ((++n & 8191) === 0) Bun.gc(true);
          let st: fs.BigIntStats;
          try { st = fs.lstatSync(path.join(rootfs, e.path), { bigint: true }); } catch { continue; }
          if (st.isFile()) yield [e.path, statKey(st)] as [string, string];
        }
      })());
    }
    writeMeta(bundle, { descriptorWalk: img.path.walk, mapOptions: opts.mapOptions });
    return { mtreeFile };
  } catch (e) {
    for (const p of created.reverse()) removeTree(p);
    throw e;
  }
}

/**
 * Write a manifest file (created exclusively) in pieces, as go-mtree text with umoci's keywords,
 * from entries in walk order (a recorder's sorted()). Returns the sha256 (hex) of the text
 * written (the stat cache names the manifest by it).
 */
export function writeMtreeFile(file: string, entries: Iterable<MtreeEntry>, tree: string, opts: { exclusive?: boolean } = {}): string {
  const fd = fs.openSync(file, opts.exclusive === false ? "w" : "wx", 0o644);
  const h = new Bun.CryptoHasher("sha256");
  try {
    writeMtreeSorted(entries, { keywords: UMOCI_KEYWORDS, tree }, (chunk) => {
      const b = Buffer.from(chunk, "utf8");
      h.update(b);
      fs.writeSync(fd, b);
      // Formatting makes short-lived strings fast; collect after every piece (4,096 lines) to
      // keep the peak down (every other piece: ~6 MiB more at 50,000 files).
      Bun.gc(true);
    });
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}

/** The rootfs directory: mode 0755, owned by container root's host IDs, times at the epoch. */
export function createRootfsDir(rootfs: string, mapOptions: MapOptions): void {
  fs.mkdirSync(rootfs, { mode: 0o755 });
  fs.chmodSync(rootfs, 0o755);
  if (!mapOptions.rootless) fs.lchownSync(rootfs, toHost(0, mapOptions.uidMappings, "uid"), toHost(0, mapOptions.gidMappings, "gid"));
  fs.utimesSync(rootfs, 0, 0);
}

/** rm -rf that also copes with directories a rootless unpack left without u+rwx. */
export function removeTree(p: string): void {
  try {
    fs.rmSync(p, { recursive: true, force: true });
  } catch {
    const open = (q: string) => {
      let st: fs.Stats;
      try { st = fs.lstatSync(q); } catch { return; }
      if (!st.isDirectory()) return;
      try { fs.chmodSync(q, (st.mode & 0o7777) | 0o700); } catch { /* not ours */ }
      for (const n of safeReaddir(q)) open(path.join(q, n));
    };
    open(p);
    fs.rmSync(p, { recursive: true, force: true });
  }
}

function safeReaddir(p: string): string[] {
  try { return fs.readdirSync(p); } catch { return []; }
}
