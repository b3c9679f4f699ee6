/**
 * What every image store that can be read offers (a layout, an oci-archive, a docker-archive;
 * see src/transport/), and the verified reads they share. A command that only reads an image
 * (stat, unpack, copy's source side) takes a BlobReader, never a Layout.
 *
 * The verification rules are umoci's verified reader (pkg/hardening): at most the descriptor's
 * size is read and hashed, then one byte more is tried; the digest of what was read is checked
 * first, then the size. A stream holds its last chunk back until the verdict, so a consumer
 * never sees the end of a bad blob. Every source reads its blobs through these functions, so
 * the rules live here once.
 */
import * as fs from "node:fs";
import { InvalidError } from "../errors";
import {
  type Descriptor, type ImageIndex, parseDigest, sha256Hex,
  validateIndex, validateManifest, validateConfig, assertValid, isIndexMediaType, isManifestMediaType,
} from "../image";
import { parseJsonStrict } from "../util/json";
import { markReleasable } from "../util/release";
import type * as PoolModule from "../worker/pool";

// Lazy: only blob streaming needs the worker pool (and short commands never load it).
const poolModule = () => require("../worker/pool") as typeof PoolModule;
/** Blobs at least this big are hashed on a worker thread while they stream. */
const OFFLOAD_HASH_MIN = 8 << 20;

/** The largest JSON blob (manifest, index, config) read whole. */
export const MAX_JSON_BLOB = 32 * 1024 * 1024;

export type JsonKind = "manifest" | "index" | "config";

/** A read-only image store. */
/** How BlobReader.getBlob streams a blob. */
export interface BlobStreamOptions {
  /** bytes per read (default 1 MiB) */
  chunkSize?: number;
  /**
   * the caller frees each chunk once done with it (util/release.ts), so a reader that can gives
   * every chunk a buffer of its own, marked
   */
  releasable?: boolean;
}

export interface BlobReader {
  /** for messages: the path as the user gave it */
  readonly path: string;
  /** the top-level index (index.json, or what stands for it in an archive) */
  readIndex(): ImageIndex;
  /** whether the store holds the blob (content not checked) */
  hasBlob(digest: string): boolean;
  /** a whole small blob, verified; embedded `data` is used when present */
  readBlob(desc: Pick<Descriptor, "digest" | "size" | "data">, maxSize?: number): Buffer;
  /** a verified stream of the blob */
  getBlob(desc: Pick<Descriptor, "digest" | "size">, opts?: BlobStreamOptions): AsyncGenerator<Buffer>;
  /** read, verify, parse and validate a JSON blob by kind */
  readJson<T>(desc: Descriptor, kind: JsonKind): T;
  /** hold the store against gc while reading (a no-op where nothing can collect) */
  lockGc(mode: "sh", opts?: { optional?: boolean }): void;
  close(): void;
}

export function sha256Digest(b: Uint8Array): string {
  const h = new Bun.CryptoHasher("sha256");
  h.update(b);
  return "sha256:" + h.digest("hex");
}

/**
 * The verdict of a verified read: the digest of the bytes read (at most `size`) first, then too
 * few bytes, then extra ones. Throws InvalidError.
 */
export function verifyRead(digest: string, size: number, got: string, read: number, extra: boolean): void {
  if (got !== digest) throw new InvalidError(`blob ${digest}: expected ${digest} not ${got}: verified reader digest mismatch`);
  if (read < size) throw new InvalidError(`blob ${digest}: expected ${size} bytes (only ${read} bytes in stream): verified reader size mismatch`);
  if (extra) throw new InvalidError(`blob ${digest}: expected ${size} bytes (extra bytes in stream): verified reader size mismatch`);
}

export function checkSize(desc: { size: number; digest: string }): void {
  if (typeof desc.size !== "number" || !Number.isSafeInteger(desc.size) || desc.size < 0)
    throw new InvalidError(`blob ${desc.digest}: invalid descriptor size ${JSON.stringify(desc.size)}`);
}

/** The checks every read starts with: a sha256 digest, a sane size. Returns the digest. */
export function checkDescriptor(desc: Pick<Descriptor, "digest" | "size">): string {
  const digest = parseDigest(desc.digest);
  sha256Hex(digest);
  checkSize(desc);
  return digest;
}

/**
 * The checks a whole-blob read starts with (every reader's readBlob, readVerified): a sha256
 * digest, a sane size, and at most `maxSize` bytes (InvalidError). Returns the digest.
 */
export function checkSmallBlob(desc: Pick<Descriptor, "digest" | "size">, maxSize: number): string {
  const digest = checkDescriptor(desc);
  if (desc.size > maxSize) throw new InvalidError(`blob ${digest}: size ${desc.size} exceeds the limit of ${maxSize} bytes for this kind of blob`);
  return digest;
}

/** Embedded descriptor data, verified (digest, then length) as umoci's GetVerifiedBlob does. */
export function embeddedData(desc: Pick<Descriptor, "digest" | "size" | "data">): Buffer | undefined {
  if (typeof desc.data !== "string") return undefined;
  const bytes = Buffer.from(desc.data, "base64");
  const got = sha256Digest(bytes);
  if (got !== desc.digest) throw new InvalidError(`blob ${desc.digest}: invalid embedded descriptor data: expected ${desc.digest} not ${got}: verified reader digest mismatch`);
  if (bytes.length !== desc.size) throw new InvalidError(`blob ${desc.digest}: invalid embedded descriptor data: expected ${desc.size} bytes not ${bytes.length} bytes: verified reader size mismatch`);
  return bytes;
}

function readAt(fd: number, buf: Buffer, off: number, len: number, pos: number | null): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, off, len, pos, (e, n) => (e ? reject(e) : resolve(n))));
}

/**
 * A verified stream of `desc` read from `fd`: from its current offset (`start` null, a plain
 * file) or from byte `start` on, never past `limit` (the end of an archive member: bytes beyond
 * it are not the blob's, so a short member reads as a short blob). The caller closes `fd`.
 * `releasable`: every chunk is a buffer of its own, marked for its last consumer to free.
 */
export async function* streamVerified(
  fd: number, desc: Pick<Descriptor, "digest" | "size">, opts: BlobStreamOptions & { start?: number | null; limit?: number } = {},
): AsyncGenerator<Buffer> {
  const digest = checkDescriptor(desc);
  // Large blobs are hashed on a worker thread (the bytes are copied there as they are read),
  // leaving this thread to the consumer (decompression, extraction).
  const h = desc.size >= OFFLOAD_HASH_MIN ? poolModule().getPool().hashStream() : poolModule().inlineHasher();
  let pos = opts.start ?? null;
  const end = opts.limit ?? Infinity;
  const avail = (n: number) => (pos === null ? n : Math.max(0, Math.min(n, end - pos)));
  let total = 0;
  let extra = false;
  const chunkSize = opts.chunkSize ?? 1 << 20;
  let pending: Buffer | null = null;
  let ok = false;
  try {
    for (;;) {
      const left = desc.size - total;
      if (left === 0) {
        // As the verified reader: one byte more says whether the blob is longer.
        extra = avail(1) > 0 && (await readAt(fd, Buffer.allocUnsafe(1), 0, 1, pos)) > 0;
        break;
      }
      const want = avail(Math.min(chunkSize, left));
      if (want === 0) break;
      // (releasable: each chunk its own buffer, freed by its last consumer: util/release.ts)
      const buf = opts.releasable ? markReleasable(Buffer.allocUnsafeSlow(want)) : Buffer.allocUnsafe(want);
      const bytesRead = await readAt(fd, buf, 0, want, pos);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (pos !== null) pos += bytesRead;
      const chunk = bytesRead === want ? buf : buf.subarray(0, bytesRead);
      const wait = h.update(chunk);
      if (wait) await wait;
      if (pending) yield pending;
      pending = chunk;
    }
    ok = true;
  } finally {
    if (!ok) h.abort();
  }
  verifyRead(digest, desc.size, "sha256:" + (await h.digest()), total, extra);
  if (pending) yield pending;
}

/**
 * A verified stream of `desc` over any source of its bytes (a registry's response body, a
 * network stream): the same rules as streamVerified. At most `desc.size` bytes are hashed and
 * passed on (a chunk running past it is cut, and counts as extra bytes); the source is read
 * once more after `size` bytes to find out whether the blob is longer; the digest is checked
 * first, then the size (too few, then extra), InvalidError either way; the last chunk is held
 * back until the verdict. The source is closed (`return()`) whenever the stream stops early.
 */
export async function* verifyChunks(src: AsyncIterable<Uint8Array>, desc: Pick<Descriptor, "digest" | "size">): AsyncGenerator<Buffer> {
  const digest = checkDescriptor(desc);
  const h = desc.size >= OFFLOAD_HASH_MIN ? poolModule().getPool().hashStream() : poolModule().inlineHasher();
  const it = src[Symbol.asyncIterator]();
  let total = 0;
  let extra = false;
  let pending: Buffer | null = null;
  let ok = false;
  let finished = false;
  try {
    for (;;) {
      const r = await it.next();
      if (r.done) { finished = true; break; }
      const v = r.value;
      if (v.length === 0) continue;
      let chunk = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      const left = desc.size - total;
      if (left === 0) { extra = true; break; }
      if (chunk.length > left) { extra = true; chunk = chunk.subarray(0, left); }
      total += chunk.length;
      const wait = h.update(chunk);
      if (wait) await wait;
      if (pending) yield pending;
      pending = chunk;
      if (extra) break;
    }
    ok = true;
  } finally {
    if (!ok) h.abort();
    if (!finished) await it.return?.();
  }
  verifyRead(digest, desc.size, "sha256:" + (await h.digest()), total, extra);
  if (pending) yield pending;
}

/**
 * A store that can also serve a blob's raw bytes from an offset (a registry, with `Range`): what
 * a resumable download into a layout (Layout.putBlobResumable) asks for. The bytes are NOT
 * verified; the caller verifies the whole blob.
 */
export interface RangeReader {
  getBlobFrom(desc: Pick<Descriptor, "digest" | "size">, offset: number): AsyncIterable<Buffer>;
}

/** Whether `r` serves raw bytes from an offset (RangeReader). */
export function isRangeReader(r: unknown): r is RangeReader {
  return typeof (r as Partial<RangeReader> | null)?.getBlobFrom === "function";
}

/**
 * A whole small blob read from `fd` (at `start`, within `limit`, as streamVerified), verified.
 * Refuses sizes over `maxSize`. The caller closes `fd`.
 */
export function readVerified(
  fd: number, desc: Pick<Descriptor, "digest" | "size">, opts: { start?: number | null; limit?: number; maxSize?: number } = {},
): Buffer {
  const digest = checkSmallBlob(desc, opts.maxSize ?? MAX_JSON_BLOB);
  // Up to size + 1 bytes: the one more is the verified reader's probe.
  let pos = opts.start ?? null;
  const end = opts.limit ?? Infinity;
  const cap = pos === null ? desc.size + 1 : Math.max(0, Math.min(desc.size + 1, end - pos));
  const buf = Buffer.allocUnsafe(cap);
  let n = 0;
  while (n < cap) {
    const r = fs.readSync(fd, buf, n, cap - n, pos);
    if (r === 0) break;
    n += r;
    if (pos !== null) pos += r;
  }
  const body = buf.subarray(0, Math.min(n, desc.size));
  verifyRead(digest, desc.size, sha256Digest(body), body.length, n > desc.size);
  return body;
}

/**
 * Parse and validate a JSON blob's verified bytes by kind, and check its media type against the
 * descriptor's (media-type confusion, CVE-2021-41190). Throws InvalidError.
 */
export function decodeJsonBlob<T>(bytes: Buffer, desc: Descriptor, kind: JsonKind): T {
  let obj: unknown;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    obj = parseJsonStrict(text);
  } catch (e) {
    throw new InvalidError(`${kind} ${desc.digest}: invalid JSON: ${(e as Error).message}`);
  }
  const v = kind === "manifest" ? validateManifest(obj) : kind === "index" ? validateIndex(obj) : validateConfig(obj);
  assertValid(v, `${kind} ${desc.digest}`);
  const own = (obj as { mediaType?: string }).mediaType;
  if (kind === "manifest" && !isManifestMediaType(desc.mediaType)) throw new InvalidError(`manifest ${desc.digest}: descriptor media type ${desc.mediaType} is not a manifest`);
  if (kind === "index" && !isIndexMediaType(desc.mediaType)) throw new InvalidError(`index ${desc.digest}: descriptor media type ${desc.mediaType} is not an index`);
  if (own !== undefined && kind !== "config" && own !== desc.mediaType) throw new InvalidError(`${kind} ${desc.digest}: media type ${own} does not match descriptor ${desc.mediaType}`);
  return obj as T;
}

/** Parse and validate an index.json's bytes ("manifests": null, as umoci 0.4.7 writes, reads as []). */
export function decodeIndexFile(bytes: Buffer, what = "index.json"): ImageIndex {
  let obj: unknown;
  try {
    obj = parseJsonStrict(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    if (e instanceof TypeError) throw new InvalidError(`read ${what}: not valid UTF-8`);
    throw new InvalidError(`read ${what}: ${(e as Error).message}`);
  }
  assertValid(validateIndex(obj, "index.json", [], { allowNullManifests: true }), what);
  const ix = obj as ImageIndex;
  if (ix.manifests === null) ix.manifests = [];
  return ix;
}
