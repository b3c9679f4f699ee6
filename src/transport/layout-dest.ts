/**
 * The layout side of a copy: a planned image (or index) written into an OCI layout, every blob
 * streamed from the source's verified reads, the tag set last.
 *
 * Rules (as skopeo's oci destination, with boci's store guarantees):
 *  - a blob the layout already has is skipped (its name is trusted, as skopeo trusts it; `gc`
 *    and `validate` check contents); with a shared blob directory, every blob is looked for and
 *    stored there instead of in `blobs/`;
 *  - every other blob is streamed from the source's verified getBlob into putBlobStream and the
 *    digest and size stored are checked equal to the descriptor's;
 *  - a layer is re-encoded only when it must be (an uncompressed layer from a docker-archive)
 *    or when asked (`forceCompress` with a different compression); its diffID is checked
 *    against the config's while it is re-encoded;
 *  - Docker-typed manifests and lists become OCI ones (image/convert.ts); a manifest or index
 *    nothing changed in is stored with its exact source bytes, else written anew (go-json);
 *  - blobs move `concurrency` at a time (a BlobPool; 1 unless the source is a registry), each
 *    streamed; a blob two manifests share is fetched once;
 *  - from a source that serves raw bytes from an offset (a registry: cas/source.ts RangeReader)
 *    a blob is downloaded resumably (Layout.putBlobResumable: an interrupted pull continues on
 *    the rerun from the bytes already in `.boci-tmp`);
 *  - blobs are synced, then the tag is set under the index lock (updateIndex); the gc lock is
 *    held shared throughout, so a concurrent gc cannot take what is being written. The tag
 *    appears only when every blob is in.
 */
import * as fs from "node:fs";
import { Readable } from "node:stream";
import { InvalidError, addContext } from "../errors";
import { Layout, type BlobReader, initLayout, isRangeReader, setTag } from "../cas";
import {
  type Descriptor, type ImageConfig, type ImageIndex, type Manifest, MediaType, layerKind, toOciIndex, toOciManifest,
  isDockerMediaType,
} from "../image";
import type { Compression } from "../compress";
import { onInterrupt, removeTreeForce, yieldToSignals } from "../util/cleanup";
import type { CopyProgress } from "./types";

/** What the copy moves: the source's JSON documents read and parsed once, blobs by descriptor. */
export type Plan =
  | { kind: "index"; desc: Descriptor; bytes: Buffer; index: ImageIndex; children: Plan[] }
  | { kind: "manifest"; desc: Descriptor; bytes: Buffer; manifest: Manifest; configBytes: Buffer; config: ImageConfig }
  | { kind: "blob"; desc: Descriptor };

/** Blobs a plan moves (each JSON document and each blob counted once per appearance). */
export function planBlobs(p: Plan): number {
  if (p.kind === "blob") return 1;
  if (p.kind === "manifest") return 2 + p.manifest.layers.length;
  return 1 + p.children.reduce((n, c) => n + planBlobs(c), 0);
}

/** Counters and progress shared by one copy. */
export class CopyTally {
  blobsCopied = 0;
  blobsSkipped = 0;
  bytes = 0;
  private next = 0;
  constructor(readonly blobs: number, private readonly onProgress?: (p: CopyProgress) => void) {}

  /** Start blob `desc`: returns its number and a reporter of bytes moved. */
  begin(desc: Pick<Descriptor, "digest" | "size">): { skip(): void; moved(n: number): void; done(written: number): void } {
    const blob = ++this.next;
    let done = 0;
    const report = (state: CopyProgress["state"]) =>
      this.onProgress?.({ digest: desc.digest, done, size: desc.size, blob, blobs: this.blobs, state });
    return {
      skip: () => { this.blobsSkipped++; done = desc.size; report("skip"); },
      moved: (n) => { done += n; report("copy"); },
      done: (written) => { this.blobsCopied++; this.bytes += written; done = desc.size; report("done"); },
    };
  }

  /** A stream that reports what goes through it as bytes of the blob being moved. */
  static async *tap(src: AsyncIterable<Buffer>, moved: (n: number) => void): AsyncGenerator<Buffer> {
    for await (const c of src) {
      moved(c.length);
      yield c;
    }
  }
}

/**
 * A bounded pool for blob transfers: at most `limit` tasks run at once, the rest wait in
 * order. After a task fails no queued task starts (it rejects with the same error). `all`
 * waits for every task it was given to settle, then throws the first failure, so nothing is
 * still writing when the caller cleans up. A limit of 1 runs everything in order.
 */
export class BlobPool {
  private active = 0;
  private readonly queue: (() => void)[] = [];
  private failure: { error: unknown } | null = null;
  /** transfers under way or done, by digest: a blob wanted twice is moved once */
  readonly inflight = new Map<string, Promise<unknown>>();
  constructor(readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`pool limit ${limit}`);
  }

  /** Run `fn` when a slot is free. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    // A finished task hands its slot straight to the next waiter, so no newcomer slips in between.
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.queue.push(resolve));
    else this.active++;
    try {
      if (this.failure) throw this.failure.error;
      return await fn();
    } catch (e) {
      this.failure ??= { error: e };
      throw e;
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.active--;
    }
  }

  /** `fn` over every item (in order when the limit is 1, else at once), every result awaited. */
  async all<I, T>(items: readonly I[], fn: (item: I, i: number) => Promise<T>): Promise<T[]> {
    if (this.limit === 1) {
      const out: T[] = [];
      for (let i = 0; i < items.length; i++) out.push(await fn(items[i]!, i));
      return out;
    }
    const settled = await Promise.allSettled(items.map((it, i) => fn(it, i)));
    const bad = settled.find((r) => r.status === "rejected");
    if (bad) throw (this.failure?.error ?? (bad as PromiseRejectedResult).reason);
    return settled.map((r) => (r as PromiseFulfilledResult<T>).value);
  }
}

export interface LayoutCopyOptions {
  /** blobs moved at once (default 1) */
  concurrency?: number;
  /** compression for layers that are re-encoded */
  compress: Compression;
  /** re-encode every layer not already in `compress` */
  forceCompress: boolean;
  /** uncompressed layers must be compressed (the source is a docker-archive) */
  compressPlain: boolean;
}

/** How the destination layout is opened. */
export interface PrepareLayoutOptions {
  /**
   * Every blob goes to `DIR/<alg>/<encoded>` instead of the layout's `blobs/` (skopeo's
   * `--dest-shared-blob-dir`; see cas/layout.ts OpenOptions). A created layout gets an empty
   * `blobs/`, as skopeo's. `abandon()` never removes anything from DIR: what a failed copy
   * stored there is complete and verified, as blobs it leaves in an existing layout are.
   */
  sharedBlobDir?: string;
}

/**
 * An OCI layout to copy into: opened when it exists; created (initLayout) when the directory is
 * missing or empty, as skopeo does. `abandon()` undoes the creation (the removal is also
 * registered for SIGINT/SIGTERM until `keep()`); a layout that existed is never removed.
 */
export function prepareLayout(p: string, opts: PrepareLayoutOptions = {}): { layout: Layout; abandon(): void; keep(): void } {
  const init = { sharedBlobDir: opts.sharedBlobDir };
  let st: fs.Stats | null = null;
  try { st = fs.lstatSync(p); } catch { /* missing */ }
  let created = false;
  let wasEmptyDir = false;
  if (!st) {
    initLayout(p, init);
    created = true;
  } else if (st.isDirectory() && fs.readdirSync(p).length === 0) {
    // initLayout builds beside and renames into place; rename(2) replaces an empty directory.
    fs.rmdirSync(p);
    wasEmptyDir = true;
    initLayout(p, init);
    created = true;
  }
  const undo = () => {
    if (!created) return;
    removeTreeForce(p);
    if (wasEmptyDir) fs.mkdirSync(p);
  };
  const unregister = created ? onInterrupt(undo) : () => {};
  let layout: Layout;
  try {
    layout = Layout.open(p, { sharedBlobDir: opts.sharedBlobDir });
  } catch (e) {
    unregister();
    undo();
    throw e;
  }
  return {
    layout,
    abandon: () => { unregister(); layout.close(); undo(); },
    keep: () => { unregister(); },
  };
}

/**
 * Write `plan` from `reader` into `layout` and tag it `tag` (the tag set last, under the index
 * lock). Returns the descriptor the tag names. The caller holds the layout's gc lock.
 * With `tag` null the top descriptor is listed in index.json without a name (a referrer: the
 * image layout lists those untagged), unless an entry with its digest is there already.
 * Throws InvalidError when a blob does not match its descriptor or a diffID, NotFoundError when
 * a source blob is missing; no tag is set then.
 */
export async function copyIntoLayout(
  reader: BlobReader, plan: Plan, layout: Layout, tag: string | null, opts: LayoutCopyOptions, tally: CopyTally,
): Promise<Descriptor> {
  const pool = new BlobPool(Math.max(1, opts.concurrency ?? 1));
  const top = await copyPlan(reader, plan, layout, opts, tally, pool);
  layout.syncBlobs();
  // A signal that came while the blobs were written is acted on before the tag appears.
  await yieldToSignals();
  const entry: Descriptor = { mediaType: top.mediaType, digest: top.digest, size: top.size };
  if (top.artifactType) entry.artifactType = top.artifactType;
  if (tag === null) {
    layout.updateIndex((ix) => (ix.manifests.some((d) => d.digest === entry.digest)
      ? { result: undefined }
      : { index: { ...ix, manifests: [...ix.manifests, entry] }, result: undefined }));
    return entry;
  }
  layout.updateIndex((ix) => ({ index: setTag(ix, tag, entry), result: undefined }));
  return entry;
}

async function copyPlan(reader: BlobReader, p: Plan, layout: Layout, opts: LayoutCopyOptions, tally: CopyTally, pool: BlobPool): Promise<Descriptor> {
  if (p.kind === "blob") {
    await copyBlob(reader, p.desc, layout, tally, pool);
    return p.desc;
  }
  if (p.kind === "manifest") return copyManifest(reader, p, layout, opts, tally, pool);
  const children = await pool.all(p.children, (c) => copyPlan(reader, c, layout, opts, tally, pool));
  const same = !isDockerMediaType(p.desc.mediaType) && children.every((c, i) => c.digest === p.index.manifests[i]!.digest && c.mediaType === p.index.manifests[i]!.mediaType);
  if (same) {
    storeJson(p.desc, p.bytes, layout, tally);
    return p.desc;
  }
  const ix = toOciIndex(p.index);
  ix.manifests = ix.manifests.map((m, i) => ({ ...m, mediaType: children[i]!.mediaType, digest: children[i]!.digest, size: children[i]!.size }));
  return putNewJson(ix, MediaType.index, layout, tally);
}

async function copyManifest(
  reader: BlobReader, p: Extract<Plan, { kind: "manifest" }>, layout: Layout, opts: LayoutCopyOptions, tally: CopyTally, pool: BlobPool,
): Promise<Descriptor> {
  const m = p.manifest;
  const diffIDs = p.config.rootfs?.diff_ids ?? [];
  let changed = isDockerMediaType(p.desc.mediaType) || isDockerMediaType(m.config.mediaType);
  const layers = await pool.all(m.layers, async (l, i) => {
    const kind = layerKind(l.mediaType);
    const reencode = kind !== undefined && (
      (opts.compressPlain && kind.compression === "none" && opts.compress !== "none") ||
      (opts.forceCompress && kind.compression !== opts.compress));
    if (!reencode) {
      await copyBlob(reader, l, layout, tally, pool);
      if (isDockerMediaType(l.mediaType)) changed = true;
      return l;
    }
    const diffID = diffIDs[i];
    if (diffID === undefined) throw new InvalidError(`manifest ${p.desc.digest}: layer ${i + 1} has no diff_id in the config`);
    changed = true;
    return pool.run(() => reencodeLayer(reader, l, kind!, diffID, i, layout, opts.compress, tally));
  });
  storeJson(m.config, p.configBytes, layout, tally);
  if (!changed) {
    storeJson(p.desc, p.bytes, layout, tally);
    return p.desc;
  }
  const om = toOciManifest(m);
  om.layers = om.layers.map((l, i) => (layers[i]!.digest === l.digest ? l : layers[i]!));
  return putNewJson(om, MediaType.manifest, layout, tally);
}

/**
 * Stream a blob the layout lacks from the source's verified read (resumably from a RangeReader);
 * check what was stored. A blob another task of this copy is already moving is waited for and
 * counted as skipped.
 */
async function copyBlob(reader: BlobReader, d: Descriptor, layout: Layout, tally: CopyTally, pool: BlobPool): Promise<void> {
  const running = pool.inflight.get(d.digest);
  if (running) {
    await running;
    tally.begin(d).skip();
    return;
  }
  const task = pool.run(async () => {
    const t = tally.begin(d);
    if (layout.hasBlob(d.digest)) { t.skip(); return; }
    const info = isRangeReader(reader)
      ? await addContextAsync(`copy from ${reader.path}`, () => layout.putBlobResumable(d, (off) => reader.getBlobFrom(d, off), { onBytes: t.moved }))
      : await addContextAsync(`copy blob ${d.digest}`, () => layout.putBlobStream(CopyTally.tap(reader.getBlob(d), t.moved)));
    if (info.digest !== d.digest || info.size !== d.size)
      throw new InvalidError(`copy blob ${d.digest}: stored ${info.digest} (${info.size} bytes), expected ${d.digest} (${d.size} bytes)`);
    t.done(info.size);
  });
  pool.inflight.set(d.digest, task.catch(() => undefined));
  await task;
}

/** A small JSON blob stored with its exact (already verified) source bytes. */
function storeJson(d: Descriptor, bytes: Buffer, layout: Layout, tally: CopyTally): void {
  const t = tally.begin(d);
  if (layout.hasBlob(d.digest)) { t.skip(); return; }
  const info = layout.putBlobBytes(bytes);
  if (info.digest !== d.digest) throw new InvalidError(`copy blob ${d.digest}: stored ${info.digest}`);
  t.done(info.size);
}

/** A rewritten document (converted or with re-encoded layers), stored as umoci writes JSON. */
function putNewJson(obj: unknown, mediaType: string, layout: Layout, tally: CopyTally): Descriptor {
  const d = layout.putJson(obj, mediaType);
  tally.begin(d).done(d.size);
  return d;
}

/**
 * Decompress a layer from its verified stream and store it compressed with `compression`
 * (bundle/layer-blob.ts storeLayer: one pass, the diffID hashed on the way); the diffID must be
 * the config's.
 */
async function reencodeLayer(
  reader: BlobReader, l: Descriptor, kind: NonNullable<ReturnType<typeof layerKind>>, diffID: string, i: number,
  layout: Layout, compression: Compression, tally: CopyTally,
): Promise<Descriptor> {
  const { storeLayer } = require("../bundle/layer-blob") as typeof import("../bundle/layer-blob");
  const { createDecompressor } = require("../compress") as typeof import("../compress");
  const t = tally.begin(l);
  const src = Readable.from(CopyTally.tap(reader.getBlob(l), t.moved), { objectMode: false });
  const dec = createDecompressor(kind.compression);
  src.on("error", (e) => dec.destroy(e));
  src.pipe(dec);
  const stored = await addContextAsync(`copy layer ${i + 1} ${l.digest}`, () => storeLayer(layout, dec, compression));
  if (stored.diffID !== diffID) throw new InvalidError(`copy layer ${i + 1} ${l.digest}: its uncompressed digest is ${stored.diffID}, the config's diff_id says ${diffID}`);
  const mediaType = (kind.nondistributable ? MediaType.layerNondist : MediaType.layer) + (compression === "none" ? "" : `+${compression}`);
  const d: Descriptor = { mediaType, digest: stored.descriptor.digest, size: stored.descriptor.size };
  if (l.urls) d.urls = l.urls;
  if (l.annotations) d.annotations = l.annotations;
  t.done(stored.descriptor.size);
  return d;
}

async function addContextAsync<T>(context: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw addContext(context, e);
  }
}
