/**
 * unpack: apply an image's layers onto a rootfs and write a runtime bundle (rootfs/,
 * config.json, the mtree manifest, umoci.json) in the format umoci writes.
 *
 * One pass per byte: each layer blob is read once (verified against its digest and size),
 * decompressed, hashed for its diffID, extracted, and recorded into the mtree manifest as it
 * streams. The bundle is built under a temporary name and moved into place at the end: a failure
 * or SIGINT/SIGTERM leaves no half-made bundle (see unpackBundle).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Readable } from "node:stream";
import { ClobberError, InvalidError, UnsupportedError, UsageError, addContext, cannotWrite } from "../errors";
import { type BlobReader, type DescriptorPath, manifestOf } from "../cas";
import { type Descriptor, type ImageConfig, type Manifest, artifactRefusal, layerKind } from "../image";
import { createDecompressor, sniffCompression, type Compression } from "../compress";
import { readTar } from "../tar";
import { writeMtreeSorted, UMOCI_KEYWORDS, type MtreeEntry } from "../mtree";
import { createManifestSpool } from "../mtree/spool";
import { LayerApplier, type RecordedEntry } from "../layer/apply";
import { type MapOptions, toHost } from "../layer/idmap";
import { generateRuntimeConfig, serializeRuntimeConfig } from "./runtime-config";
import { META_FILE, writeMeta } from "./meta";
import { STAT_CACHE_FILE, StatCacheDraft, statCacheEnabled, statKeyOfStat } from "./stat-cache";
import { heapTick } from "../util/heap";
import { ownedText, release } from "../util/release";
import { createProgress, formatBytes } from "../util/progress";
import { getPool, inlineHasher } from "../worker/pool";
import { onInterrupt, removeStaleTemps, removeTreeForce, yieldToSignals } from "../util/cleanup";
import { randomName, writeFileAtomicWith } from "../util/fs";

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

/**
 * Read and check the manifest and config an unpack needs. OCI and Docker schema-2 images alike:
 * the config may be typed OCI's or Docker's (the same JSON shape), the layers any type
 * layerKind knows (OCI tar/+gzip/+zstd, non-distributable, Docker rootfs.diff and foreign).
 * Throws UnsupportedError (exit 6) for another config or layer type, InvalidError for a
 * diff_ids count that does not match the layers.
 */
export function loadImage(layout: BlobReader, p: DescriptorPath): LoadedImage {
  const manifestDesc = manifestOf(p);
  const manifest = layout.readJson<Manifest>(manifestDesc, "manifest");
  const artifact = artifactRefusal(manifest, `manifest ${manifestDesc.digest}`);
  if (artifact) throw new UnsupportedError(artifact);
  const config = layout.readJson<ImageConfig>(manifest.config, "config");
  config.rootfs.diff_ids ??= [];
  if (config.rootfs.diff_ids.length !== manifest.layers.length)
    throw new InvalidError(`image has ${manifest.layers.length} layers but ${config.rootfs.diff_ids.length} diff_ids`);
  for (const [i, l] of manifest.layers.entries())
    if (!layerKind(l.mediaType)) throw new UnsupportedError(`layer ${i + 1}: unsupported media type ${l.mediaType}`);
  return { path: p, manifestDesc, manifest, config };
}

/**
 * Extract every layer of `img` onto `rootfs` (which must exist). With `record`, the extracted
 * tree is logged to a manifest spool in `record.spoolDir` as it is made; read it back (walk
 * order, final values) with the returned `manifest()`, then `close()` (which also removes the
 * spool). Without, nothing is returned.
 */
export async function unpackLayers(
  layout: BlobReader, img: LoadedImage, rootfs: string, opts: UnpackOptions & { record?: { spoolDir: string } },
): Promise<RecordedTree | undefined> {
  const recorder = opts.record ? createManifestSpool(opts.record.spoolDir) : undefined;
  const applier = new LayerApplier(rootfs, {
    mapOptions: opts.mapOptions,
    keepDirlinks: opts.keepDirlinks,
    recorder,
    // (each file's stat cache key is taken as it is finished, not by a second statx at the end)
    statKey: recorder && statCacheEnabled() ? statKeyOfStat : undefined,
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
          onWarning: (m) => opts.onWarning?.(`layer ${i + 1}: ${m}`),
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
        throw addContext(`unpack layer ${i + 1}`, e);
      }
    }
    await applier.finish();
  } catch (e) {
    applier.close();
    recorder?.close();
    throw e;
  } finally {
    progress.done();
  }
  if (!recorder) return undefined;
  return { manifest: () => applier.manifest(), close: () => { applier.close(); recorder.close(); } };
}

/**
 * What unpackLayers recorded: the manifest entries in walk order (each regular file with its
 * stat cache key), read once.
 */
export interface RecordedTree { manifest(): Generator<RecordedEntry>; close(): void }

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
async function applyLayerBlob(layout: BlobReader, layer: Descriptor, applier: LayerApplier, opts: { onWarning: (m: string) => void; maxBytes?: number; onBytes: (n: number) => void }): Promise<string> {
  const kind = layerKind(layer.mediaType);
  if (!kind) throw new UnsupportedError(`unsupported layer media type ${layer.mediaType}`);
  let comp: Compression = kind.compression;
  // Every buffer on the way (blob chunks, decompressed chunks) is freed by its last user as soon
  // as it is done (util/release.ts), not left for the collector to find: the decoder frees the
  // blob's chunks, the tar reader the decoded ones (collections cost ~15 % of a many-file unpack).
  const blob = layout.getBlob(layer, { releasable: true });
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
  const dec = createDecompressor(comp, { onWarning: opts.onWarning, maxOutputBytes: opts.maxBytes, releaseInput: true, releasable: true });
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
    await applier.applyLayer(readTar(tapped(), { releaseChunks: true }));
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

/** The marker in the names of unpack's temporary directories: `.NAME.boci-unpack-PID-RANDOM`. */
const TEMP_MARK = ".boci-unpack-";

/**
 * `umoci unpack`: the full bundle. Refuses a bundle that already has rootfs/, config.json or the
 * manifest's mtree file (exit 5).
 *
 * The bundle is built in a temporary directory (mode 0700) and moved into place at the end, so
 * an interrupted or failed unpack leaves nothing half-made:
 * - no `bundle`: built in `.NAME.boci-unpack-PID-RANDOM` beside it, renamed to it at the end;
 * - an existing directory (empty, or with other files): built in `.boci-unpack-PID-RANDOM`
 *   inside it, and its five entries (rootfs last) moved up by rename. Building inside keeps
 *   working where the parent is not writable or the bundle is a mount point, and the directory
 *   keeps its identity; it is made mode 0700 as the bundle always is.
 * The temporary directory is registered with util/cleanup.ts (removed on SIGINT/SIGTERM) and
 * removed on failure, with any parent directories this call created. Temporary directories
 * of a process that is gone (SIGKILL) are removed first. A symlink at `bundle` is resolved once,
 * here (a dangling one is refused); nothing in the bundle records its path, so renaming is safe.
 */
export async function unpackBundle(layout: BlobReader, img: LoadedImage, bundleArg: string, opts: UnpackOptions): Promise<BundleUnpackResult> {
  if (img.config.os !== "linux") throw new UnsupportedError(`unsupported OS: ${img.config.os}`);
  const bundle = resolveBundleDir(bundleArg);
  const abs = path.resolve(bundle);
  const parent = path.dirname(abs);
  const name = path.basename(abs);
  const mtreeName = `sha256_${img.manifestDesc.digest.split(":")[1]!}.mtree`;
  const existing = lstatOrUndefined(abs);
  if (existing && !existing.isDirectory()) throw new ClobberError(`bundle ${bundle} exists and is not a directory`);
  const refuseExisting = () => {
    for (const n of ["rootfs", "config.json", mtreeName]) {
      if (lstatOrUndefined(path.join(abs, n))) throw new ClobberError(`bundle ${bundle}: ${n} already exists; refusing to overwrite`);
    }
  };
  if (existing) refuseExisting();
  // What a killed unpack of this bundle left behind (beside it, or inside it).
  removeStaleTemps(parent, tempPid(`.${name}${TEMP_MARK}`));
  if (existing) removeStaleTemps(abs, tempPid(TEMP_MARK));

  const { tmp, undo, unregister } = existing
    ? makeStaging(abs, `${TEMP_MARK}${process.pid}-${randomName()}`, 0o700, bundle, false)
    : makeStaging(parent, `.${name}${TEMP_MARK}${process.pid}-${randomName()}`, 0o700, bundle, true);
  try {
    fs.chmodSync(tmp, 0o700);
    if (existing) {
      try { fs.chmodSync(abs, 0o700); } catch (e) { throw addContext(`bundle ${bundle}: cannot make it mode 0700`, e); }
    }
    const rootfs = path.join(tmp, "rootfs");
    createRootfsDir(rootfs, opts.mapOptions);
    const recorded = (await unpackLayers(layout, img, rootfs, { ...opts, record: { spoolDir: path.join(tmp, ".boci-mtree-spool") } }))!;
    try {
      // Drop the extraction's garbage (decompressed chunks, stat results) before the manifest is
      // formatted, so the two never add up in the peak.
      Bun.gc(true);
      const cfg = generateRuntimeConfig(img.config, {
        rootfsName: "rootfs",
        rootfsPath: rootfs,
        mapOptions: opts.mapOptions,
        onWarning: opts.onWarning,
      });
      writeNewFile(path.join(tmp, "config.json"), serializeRuntimeConfig(cfg));
      // The stat cache (stat-cache.ts) takes each regular file as it is now, every layer applied,
      // as the manifest goes by; its header gets the manifest's digest once that is known.
      const stats = statCacheEnabled() ? new StatCacheDraft(tmp) : null;
      const entries = function* (): Generator<MtreeEntry> {
        for (const e of recorded.manifest()) {
          // (every regular file's key comes with it, taken as it was made or read at the end; a
          // file without one would only cost repack a read)
          if (stats && e.type === "file" && e.statKey) stats.push(e.path, e.statKey);
          yield e;
        }
      };
      try {
        // (the header names the rootfs where it will be, not where it is built)
        const mtreeSha = writeMtreeFile(path.join(tmp, mtreeName), entries(), rootfs, { treeName: path.join(bundle, "rootfs") });
        stats?.finish(mtreeSha);
      } finally {
        stats?.end();
      }
    } finally {
      recorded.close();
    }
    writeMeta(tmp, { descriptorWalk: img.path.walk, mapOptions: opts.mapOptions }, { fsync: false });
    // A signal that came during the synchronous tail above is handled now, before the bundle
    // appears (an interrupted unpack leaves no bundle).
    await yieldToSignals();
    // Into place: synchronous from here to unregister(), so a signal sees all or nothing.
    if (existing) {
      refuseExisting();
      const names = [STAT_CACHE_FILE, META_FILE, mtreeName, "config.json", "rootfs"].filter((n) => lstatOrUndefined(path.join(tmp, n)));
      moveEntries(tmp, abs, names);
      fs.rmdirSync(tmp);
    } else {
      renameIntoPlace(tmp, abs, `bundle ${bundle}`);
    }
    unregister();
    return { mtreeFile: path.join(bundle, mtreeName) };
  } catch (e) {
    abandonStaging(tmp, undo, unregister, opts.onWarning);
    throw e;
  }
}

/**
 * The directory a bundle argument names: a symlink there is resolved once (realpath), so every
 * later step works on one directory. A dangling symlink is refused (exit 5), or with
 * `keepDangling` returned as it is (a reader then finds nothing there).
 */
export function resolveBundleDir(bundle: string, opts: { keepDangling?: boolean } = {}): string {
  const st = lstatOrUndefined(bundle);
  if (!st?.isSymbolicLink()) return bundle;
  try {
    return fs.realpathSync(bundle);
  } catch (e) {
    if (opts.keepDangling) return bundle;
    throw new ClobberError(`bundle ${bundle} is a symbolic link that does not resolve; refusing to follow or replace it`, { cause: e });
  }
}

/**
 * `raw unpack`: only the root filesystem. A new directory is built as unpackBundle builds a
 * bundle (beside it under a temporary name, renamed at the end; removed on failure or signal).
 * An existing directory is extracted in place: that cannot be atomic, and what was extracted
 * before a failure or a signal stays (the command still exits cleanly).
 */
export async function unpackRootfs(layout: BlobReader, img: LoadedImage, dirArg: string, opts: UnpackOptions): Promise<void> {
  const dir = resolveBundleDir(dirArg);
  const st = lstatOrUndefined(dir);
  if (st) {
    if (!st.isDirectory()) throw new UsageError(`raw unpack: ${dirArg} is not a directory`);
    await unpackLayers(layout, img, dir, opts);
    return;
  }
  const abs = path.resolve(dir);
  const parent = path.dirname(abs);
  const name = path.basename(abs);
  removeStaleTemps(parent, tempPid(`.${name}${TEMP_MARK}`));
  const { tmp, undo, unregister } = makeStaging(parent, `.${name}${TEMP_MARK}${process.pid}-${randomName()}`, 0o755, dirArg, true);
  try {
    await unpackLayers(layout, img, tmp, opts);
    await yieldToSignals();
    renameIntoPlace(tmp, abs, `raw unpack: ${dirArg}`);
    unregister();
  } catch (e) {
    abandonStaging(tmp, undo, unregister, opts.onWarning);
    throw e;
  }
}

/**
 * Make the temporary directory `dir/name` (mode `mode`) a bundle or rootfs is built in, with
 * `dir`'s missing parents first when `makeParents`; registered for removal on SIGINT/SIGTERM.
 * `undo` removes it and the parents this made. A location we may not write is "cannot write
 * WHAT" (errors.ts cannotWrite).
 */
function makeStaging(dir: string, name: string, mode: number, what: string, makeParents: boolean): { tmp: string; undo: () => void; unregister: () => void } {
  let madeParents: string | undefined;
  if (makeParents) {
    try { madeParents = fs.mkdirSync(dir, { recursive: true, mode: 0o755 }); } catch (e) { throw cannotWrite(what, e); }
  }
  const tmp = path.join(dir, name);
  const dropParents = () => { if (madeParents !== undefined) removeEmptyParents(dir, madeParents); };
  try { fs.mkdirSync(tmp, { mode }); } catch (e) {
    dropParents();
    throw cannotWrite(what, e);
  }
  const undo = () => { removeTreeForce(tmp); dropParents(); };
  return { tmp, undo, unregister: onInterrupt(undo) };
}

/** After a failure: stop the signal clean-up and remove the staging directory (a warning if that fails). */
function abandonStaging(tmp: string, undo: () => void, unregister: () => void, onWarning?: (msg: string) => void): void {
  unregister();
  try { undo(); } catch (c) {
    onWarning?.(`could not remove the temporary directory ${tmp}: ${(c as Error).message}`);
  }
}

/** Rename the finished staging directory to `abs`; a name someone made meanwhile is not replaced (exit 5). */
function renameIntoPlace(tmp: string, abs: string, what: string): void {
  try { fs.renameSync(tmp, abs); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOTEMPTY" || code === "EEXIST" || code === "ENOTDIR") throw new ClobberError(`${what} was created by someone else while unpacking; refusing to overwrite it`, { cause: e });
    throw e;
  }
}

/** The pid in a temporary name `PREFIX<pid>-<16 hex>`, for removeStaleTemps. */
function tempPid(prefix: string): (name: string) => number | undefined {
  return (n) => {
    if (!n.startsWith(prefix)) return undefined;
    const m = /^(\d+)-[0-9a-f]{16}$/.exec(n.slice(prefix.length));
    return m ? Number(m[1]) : undefined;
  };
}

/** Move `names` from `from` to `to` by rename, in order; on failure move back what was moved. */
function moveEntries(from: string, to: string, names: string[]): void {
  const moved: string[] = [];
  try {
    for (const n of names) {
      fs.renameSync(path.join(from, n), path.join(to, n));
      moved.push(n);
    }
  } catch (e) {
    for (const n of moved.reverse()) {
      try { fs.renameSync(path.join(to, n), path.join(from, n)); } catch { /* the undo is best effort */ }
    }
    throw e;
  }
}

/** rmdir `dir` and its parents up to `top` (the first directory mkdir -p made), while empty. */
function removeEmptyParents(dir: string, top: string): void {
  for (let p = dir; ; p = path.dirname(p)) {
    try { fs.rmdirSync(p); } catch { return; }
    if (p === top || path.dirname(p) === p) return;
  }
}

function lstatOrUndefined(p: string): fs.Stats | undefined {
  try { return fs.lstatSync(p); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}


/** Create a file that must not exist yet (O_EXCL|O_NOFOLLOW: nothing planted there is followed). */
function writeNewFile(file: string, data: string): void {
  const c = fs.constants;
  const fd = fs.openSync(file, c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, 0o644);
  try { fs.writeFileSync(fd, data); } finally { fs.closeSync(fd); }
}

/**
 * Write a manifest file as go-mtree text with umoci's keywords, from entries in walk order (a
 * recorder's sorted()), in pieces. Created exclusively (O_EXCL|O_NOFOLLOW) by default; with
 * `replace`, written beside and renamed over `file` (a symlink there is replaced, not
 * followed). `treeName` is the header's `tree:` (default `tree`). Returns the sha256 (hex) of
 * the text written (the stat cache names the manifest by it).
 */
export function writeMtreeFile(file: string, entries: Iterable<MtreeEntry>, tree: string, opts: { replace?: boolean; treeName?: string } = {}): string {
  const h = new Bun.CryptoHasher("sha256");
  const fill = (write: (b: Uint8Array) => void) => {
    writeMtreeSorted(entries, { keywords: UMOCI_KEYWORDS, tree: opts.treeName ?? tree }, (chunk) => {
      // (a buffer of its own, freed once written: only the text is left to the collector)
      const b = ownedText(chunk);
      h.update(b);
      write(b);
      release(b);
      // Formatting makes short-lived strings fast: heapTick per piece of 2,048 lines, so a full
      // collection every other piece and a young one between (util/heap.ts). Full ones every
      // other piece of 4,096: ~6 MiB more at 50,000 files; every piece of 2,048: the same peak
      // as this at +3-4 % time; every piece of 4,096 with no young ones: 84-86 MiB against
      // 77-78, the same time.
      heapTick(2048);
    });
  };
  if (opts.replace) {
    writeFileAtomicWith(file, fill, { mode: 0o644 });
  } else {
    const c = fs.constants;
    const fd = fs.openSync(file, c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, 0o644);
    try {
      fill((b) => { for (let off = 0; off < b.length;) off += fs.writeSync(fd, b, off); });
    } finally {
      fs.closeSync(fd);
    }
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
export const removeTree = removeTreeForce;
