/**
 * repack: turn the changes made to an unpacked bundle's rootfs into a new layer (umoci repack).
 *
 * The bundle's mtree manifest (recorded at unpack) is compared with a fresh walk of rootfs/;
 * masked paths (--mask-path, and the image's volumes unless --no-mask-volumes) are dropped; a
 * deleted path whose parent is deleted too, or whose parent is no longer a directory, needs no
 * whiteout of its own. The changes become a tar (sorted by path bytes), compressed and stored
 * in one pass; then config, manifest and the tag are committed. No change → no layer, only an
 * `empty_layer` history entry.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { InvalidError, NotFoundError } from "../errors";
import { recordInMtree } from "../rootfs/xattr";
import { readXattrsFd } from "../rootfs/read";
import type { Stat } from "../sys/at";
import type { Layout, DescriptorPath } from "../cas";
import { type Descriptor, type History, isManifestMediaType, sha256Digest, sha256Hex } from "../image";
import { Mutator } from "../mutate";
import {
  parseMtreeEach, walkTree, compareEntries, compareBytes, createMtreeStore, hashFileSync, normalizeKeywords, UMOCI_KEYWORDS,
  type Delta, type MtreeEntry, type MtreeStore,
} from "../mtree";
import { getPool } from "../worker/pool";
import { createTarWriter } from "../tar";
import { writeChanges, type Change } from "../layer/generate";
import { readMeta, writeMeta, type BundleMeta } from "./meta";
import { resolveBundleDir, writeMtreeFile } from "./unpack";
import { readRegularFile } from "../util/fs";
import { yieldToSignals } from "../util/cleanup";
import { readStatCache, removeStatCache, statCacheEnabled, statKeyNumbers, statKeyOfStat, writeStatCache } from "./stat-cache";
import { storeLayer, resolveCompression, tarLengthEstimate, type CompressChoice } from "./layer-blob";
import { createProgress, formatBytes } from "../util/progress";
import { cleanEntryPath } from "../rootfs/path";

export interface RepackOptions {
  tag: string;
  maskPaths: string[];
  maskVolumes: boolean;
  refreshBundle: boolean;
  compress: CompressChoice;
  /** null: --no-history */
  history: History | null;
  /** added to the new layer's descriptor (--layer.annotation) */
  layerAnnotations?: Record<string, string>;
  clampMtime: number | null;
  progress?: boolean;
  onWarning?: (msg: string) => void;
  now: string;
}

export interface RepackResult { manifest: Descriptor; layer: Descriptor | null; changes: number }

/** Files at least this large are hashed on the worker pool during the repack walk. */
const POOL_HASH_MIN = 4 << 20;

export function mtreeFileName(manifestDigest: string): string {
  return `sha256_${manifestDigest.split(":")[1]}.mtree`;
}

/** Read xattrs for the walk (files and directories), through the descriptor the walk holds. */
export function listXattrsOf(fd: number): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  for (const [n, v] of readXattrsFd(fd)) if (recordInMtree(n, v)) m.set(n, v);
  return m;
}

/** Turn deltas into the changes to archive: masks, simplification, type-change pruning. */
export function deltasToChanges(deltas: Delta[], masks: string[]): Change[] {
  const masked = (p: string) => masks.some((m) => m === "" || p === m || p.startsWith(m + "/"));
  const deleted = new Set<string>();
  const nonDir = new Set<string>();
  for (const d of deltas) {
    if (d.kind === "missing") deleted.add(d.path);
    if (d.kind !== "missing" && d.new && d.new.type !== "dir") nonDir.add(d.path);
  }
  const out: Change[] = [];
  for (const d of deltas) {
    const p = d.path;
    if (p !== "." && masked(p)) continue;
    if (d.kind === "missing") {
      // Covered by an ancestor's whiteout, or by an ancestor that is now a non-directory
      // (its full entry replaces the whole old subtree).
      let anc = parentOf(p);
      let covered = false;
      while (anc !== null) {
        if (deleted.has(anc) || nonDir.has(anc)) { covered = true; break; }
        anc = parentOf(anc);
      }
      if (!covered) out.push({ kind: "delete", path: p });
    } else {
      out.push({ kind: d.kind === "extra" ? "add" : "modify", path: p });
    }
  }
  out.sort((a, b) => compareBytes(a.path === "." ? "" : a.path, b.path === "." ? "" : b.path));
  return out;
}

function parentOf(p: string): string | null {
  if (p === "." || p === "") return null;
  const i = p.lastIndexOf("/");
  return i < 0 ? "." : p.slice(0, i);
}

/**
 * The bundle's manifest, read into a store (a large tree is kept compactly), and the sha256 of
 * its text (the stat cache is bound to it).
 */
function readManifest(bundle: string, mtreePath: string): { old: MtreeStore; mtreeSha: string } {
  let text: string;
  // (a symlink or FIFO there is refused, exit 4: util/fs.ts readRegularFile)
  try { text = readRegularFile(mtreePath, `bundle ${bundle}: ${path.basename(mtreePath)}`).data.toString("utf8"); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new NotFoundError(`bundle ${bundle}: mtree manifest ${path.basename(mtreePath)} not found`);
    throw e;
  }
  const old = createMtreeStore({ replaceSubtrees: false });
  parseMtreeEach(text, (e) => old.set(e));
  if (!old.has(".")) throw new InvalidError(`${path.basename(mtreePath)}: no root entry (truncated manifest?)`);
  return { old, mtreeSha: sha256Hex(sha256Digest(text)) };
}

/**
 * Repack the bundle's changes as a new layer and point `opts.tag` at the new image. The bundle
 * is hostile input: a symlink at its name is resolved once, here; its files are read only if
 * they are regular files (never through a symlink, never a FIFO); rootfs must be a directory,
 * not a symlink. With --refresh-bundle its files are replaced by rename (refreshBundle).
 */
export async function repackBundle(layout: Layout, bundleArg: string, opts: RepackOptions): Promise<RepackResult> {
  const bundle = resolveBundleDir(bundleArg, { keepDangling: true });
  const meta = readMeta(bundle);
  const walk = meta.descriptorWalk;
  const manifestDesc = walk[walk.length - 1]!;
  if (!isManifestMediaType(manifestDesc.mediaType)) throw new InvalidError(`umoci.json: descriptor walk does not end in a manifest`);
  const mtreePath = path.join(bundle, mtreeFileName(manifestDesc.digest));
  const { old, mtreeSha } = readManifest(bundle, mtreePath);
  const rootfs = path.join(bundle, "rootfs");
  let rootSt: fs.Stats;
  try { rootSt = fs.lstatSync(rootfs); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new NotFoundError(`bundle ${bundle}: no rootfs directory`);
    throw e;
  }
  if (!rootSt.isDirectory()) throw new InvalidError(`bundle ${bundle}: rootfs is not a directory${rootSt.isSymbolicLink() ? " (a symbolic link; refusing to follow it)" : ""}`);

  const m = new Mutator(layout, { walk } as DescriptorPath);
  const progress = createProgress({ enabled: opts.progress !== false });
  try {
    progress.update(() => `repack: scanning ${rootfs}`);
    let scanned = 0, scannedBytes = 0;
    const scanStart = performance.now();
    // Large files are hashed on the worker pool (both cores), small ones inline.
    const pool = getPool();
    // The stat cache: files whose stat is what it was when the manifest's digest was taken are
    // not read again (stat-cache.ts says why that is safe).
    let cached: ((rel: string, st: Stat) => MtreeEntry | undefined) | undefined;
    let lastTaken: MtreeEntry | undefined;
    {
      // Keys go into the manifest's store, as numbers.
      let keys = 0;
      const ok = readStatCache(bundle, mtreeSha, (p, key) => { old.setStat(p, key); keys++; });
      // (a cache found malformed part way is not used at all)
      if (!ok && keys) old.clearStats();
      if (ok) {
        cached = (rel, st) => {
          // (taken now: the walk reports this path next, and onEntry reuses the entry)
          const e = (lastTaken = old.take(rel));
          return e?.type === "file" && e.sha256 !== undefined && old.sameStat(rel, statKeyNumbers(st)) ? e : undefined;
        };
      }
    }
    // The walk is compared with the manifest as it goes; only what differs is kept (and, for
    // --refresh-bundle, the new tree in a store of its own).
    const kw = normalizeKeywords(UMOCI_KEYWORDS);
    const deltas: Delta[] = [];
    const fresh = opts.refreshBundle ? createMtreeStore() : null;
    const walkStats = fresh && statCacheEnabled() ? new Map<string, string>() : null;
    await walkTree(rootfs, {
      keywords: UMOCI_KEYWORDS,
      listXattrsFd: listXattrsOf,
      rootless: meta.mapOptions.rootless,
      cached,
      onFile: walkStats ? (rel, st) => walkStats.set(rel, statKeyOfStat(st)) : undefined,
      onEntry: (n) => {
        const o = lastTaken?.path === n.path ? lastTaken : old.take(n.path);
        lastTaken = undefined;
        if (!o) deltas.push({ kind: "extra", path: n.path, new: n });
        else {
          const keys = compareEntries(o, n, kw);
          if (keys.length) deltas.push({ kind: "modified", path: n.path, old: o, new: n, keys });
        }
        fresh?.set(n);
      },
      hashFile: (fd, size) => {
        scanned++;
        scannedBytes += size;
        progress.update(() => `repack: scanned ${scanned} files, ${formatBytes(scannedBytes)}, ${formatBytes(scannedBytes / Math.max((performance.now() - scanStart) / 1000, 0.001))}/s`);
        return size >= POOL_HASH_MIN && pool.size > 1 ? pool.hashFd(fd) : Promise.resolve(hashFileSync(fd));
      },
    });
    for (const o of old.untaken()) deltas.push({ kind: "missing", path: o.path, old: o });
    deltas.sort((a, b) => compareBytes(a.path, b.path));
    const masks = [...opts.maskPaths];
    if (opts.maskVolumes) masks.push(...Object.keys(m.config.config?.Volumes ?? {}));
    const changes = deltasToChanges(deltas, masks.map((x) => cleanEntryPath(x)).filter((x) => x !== ""));

    let layer: Descriptor | null = null;
    // History defaults as umoci: created now (or SOURCE_DATE_EPOCH), author the image's.
    const history = opts.history ? { ...opts.history, created: opts.history.created ?? opts.now, author: opts.history.author ?? m.config.author } : null;
    if (changes.length === 0) {
      if (history) m.addHistory({ ...history, empty_layer: true });
    } else {
      const tar = createTarWriter();
      let bytes = 0;
      const start = performance.now();
      const producer = (async () => {
        try {
          await writeChanges(rootfs, changes, tar, {
            mapOptions: meta.mapOptions, clampMtime: opts.clampMtime, onWarning: opts.onWarning,
            onBytes: (n) => {
              bytes += n;
              progress.update(() => `repack: writing ${changes.length} changed paths, ${formatBytes(bytes)} written, ${formatBytes(bytes / Math.max((performance.now() - start) / 1000, 0.001))}/s`);
            },
          });
          await tar.finish();
        } catch (e) {
          tar.abort(e as Error);
          throw e;
        }
      })();
      const compression = resolveCompression(opts.compress, m.manifest.layers);
      // (about the tar's length: what the walk found new or changed)
      let entries = 0, content = 0;
      for (const d of deltas) if (d.new) { entries++; content += d.new.type === "file" ? d.new.size ?? 0 : 0; }
      const [stored] = await Promise.all([storeLayer(layout, tar.output, compression, { expectedBytes: tarLengthEstimate(entries, content) }), producer]);
      layer = stored.descriptor;
      m.addLayer(stored.descriptor, stored.diffID, history, opts.layerAnnotations);
    }
    await yieldToSignals();
    const result = m.commit(opts.tag);
    if (fresh) refreshBundle(bundle, meta, result.walk, fresh, rootfs, mtreePath, walkStats);
    return { manifest: result.manifest, layer, changes: changes.length };
  } finally {
    progress.done();
  }
}

/**
 * Point the bundle at the new image: a new mtree (the tree as it is now), its stat cache and
 * umoci.json, each written beside under a temporary name (O_EXCL|O_NOFOLLOW, removed on
 * SIGINT/SIGTERM) and renamed over the old name, so a symlink planted there is replaced and
 * never followed. Synchronous: a signal is handled before or after, never in the middle.
 */
function refreshBundle(bundle: string, meta: BundleMeta, newWalk: Descriptor[], tree: MtreeStore, rootfs: string, oldMtree: string, stats: Map<string, string> | null): void {
  const manifest = newWalk[newWalk.length - 1]!;
  const file = path.join(bundle, mtreeFileName(manifest.digest));
  // The old cache goes first: it must never sit beside a manifest it does not describe.
  removeStatCache(bundle);
  const mtreeSha = writeMtreeFile(file, tree.sorted(), rootfs, { replace: true });
  if (stats) writeStatCache(bundle, mtreeSha, stats);
  writeMeta(bundle, { descriptorWalk: newWalk, mapOptions: meta.mapOptions });
  if (file !== oldMtree) fs.rmSync(oldMtree, { force: true });
}
