/**
 * The OCI image layout store (image-spec image-layout.md): blobs by digest, index.json, locks.
 *
 * Invariants:
 *  - a blob file under blobs/ is always complete: it is written to `.boci-tmp/`, fsynced and
 *    renamed into place; an existing blob is kept only when it is a regular file whose bytes
 *    hash to its name (a planted symlink or wrong file is replaced by rename, never followed);
 *  - every blob read is verified as umoci's verified reader (pkg/hardening) does: at most the
 *    descriptor's size is hashed (plus a one-byte probe for more), and a digest mismatch of those
 *    bytes is reported before any size mismatch (InvalidError, exit 4, naming the digest);
 *  - index.json is only replaced atomically, under the index lock (see lock.ts);
 *  - every JSON document is written as umoci 0.6 writes it (go-json.ts: Go's Encoder over the
 *    image-spec structs, trailing newline included);
 *  - run as root, everything created in the layout gets the owner of the layout's root
 *    (layoutOwner in layout-fs.ts), as umoci does;
 *  - every file is read, created and replaced by the rules of layout-fs.ts: no symlink in the
 *    layout is followed, no FIFO or device is read, temp files are created O_EXCL|O_NOFOLLOW in
 *    a real `.boci-tmp/` and registered for removal on SIGINT/SIGTERM.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { ClobberError, InvalidError, NotFoundError, UnsupportedError, addContext, cannotWrite } from "../errors";
import {
  type Descriptor, type ImageIndex, type Digest, MediaType, parseDigest, sha256Hex,
} from "../image";
import { parseJsonStrict } from "../util/json";
import { fsyncDir, randomName } from "../util/fs";
import { removeOnInterrupt } from "../util/cleanup";
import { type BlobReader, type JsonKind, MAX_JSON_BLOB, checkDescriptor, decodeIndexFile, decodeJsonBlob, embeddedData, readVerified, streamVerified } from "./source";
import { takeLock, GC_LOCK, INDEX_LOCK, type HeldLock, type LockMode } from "./lock";
import { release } from "../util/release";
import {
  CREATE_FLAGS, type Owner, checkLayoutDir, chownNewFile, fileMatchesSha256, layoutOwner, lstatOrNull, notA, openLayoutFile,
  readLayoutFile,
} from "./layout-fs";
import { GoImageLayout, GoIndex, encodeGoJson, goTypeFor } from "./go-json";


export const TMP_DIR = ".boci-tmp";
/** Largest `oci-layout` file read. */
const MAX_HEADER = 64 * 1024;
export interface BlobInfo { digest: Digest; size: number }

export interface OpenOptions { onWait?: (msg: string) => void }

/** Create a new layout at `p` (parents created). Fails with ClobberError if `p` exists. */
export function initLayout(p: string): void {
  if (fs.existsSync(p)) throw new ClobberError(`init layout ${p}: path already exists`);
  const parent = path.dirname(path.resolve(p));
  fs.mkdirSync(parent, { recursive: true });
  // Build in a sibling temporary directory and rename, so a half-made layout is never visible.
  const tmp = path.join(parent, `.${path.basename(p)}.boci-init-${randomName()}`);
  try {
    fs.mkdirSync(path.join(tmp, "blobs", "sha256"), { recursive: true, mode: 0o755 });
    // umoci 0.6's Create: both written by Go's Encoder (a trailing newline each).
    fs.writeFileSync(path.join(tmp, "oci-layout"), encodeGoJson({ imageLayoutVersion: "1.0.0" }, GoImageLayout));
    fs.writeFileSync(path.join(tmp, "index.json"), encodeGoJson({ schemaVersion: 2, mediaType: MediaType.index, manifests: [] }, GoIndex));
    fs.renameSync(tmp, p);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw addContext(`init layout ${p}`, e);
  }
  fsyncDir(parent);
}

export class Layout implements BlobReader {
  readonly path: string;
  private gcLock: HeldLock | null = null;
  private readonly onWait?: (msg: string) => void;
  private ownerCache: Owner | null | undefined;

  private constructor(p: string, opts: OpenOptions) {
    this.path = p;
    this.onWait = opts.onWait;
  }

  /** Open an existing layout, checking oci-layout, index.json and blobs/. */
  static open(p: string, opts: OpenOptions = {}): Layout {
    let st: fs.Stats;
    try { st = fs.statSync(p); } catch { throw new NotFoundError(`open layout ${p}: no such directory`); }
    if (!st.isDirectory()) throw new NotFoundError(`open layout ${p}: not a directory`);
    let header: unknown;
    let bytes: Buffer | null;
    try {
      bytes = readLayoutFile(p, "oci-layout", MAX_HEADER);
    } catch (e) {
      throw addContext(`open layout ${p}`, e);
    }
    if (!bytes) throw new NotFoundError(`open layout ${p}: not an OCI layout (no oci-layout file)`);
    try {
      header = parseJsonStrict(bytes.toString("utf8"));
    } catch (e) {
      throw new InvalidError(`open layout ${p}: oci-layout: ${(e as Error).message}`);
    }
    const ver = (header as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
    if (ver !== "1.0.0") throw new UnsupportedError(`open layout ${p}: unsupported imageLayoutVersion ${JSON.stringify(ver)}`);
    if (!lstatOrNull(path.join(p, "index.json"))) throw new InvalidError(`open layout ${p}: missing index.json`);
    try {
      if (!checkLayoutDir(p, "blobs")) throw new InvalidError(`open layout ${p}: missing blobs directory`);
    } catch (e) {
      throw addContext(`open layout ${p}`, e);
    }
    return new Layout(p, opts);
  }

  /**
   * Hold the gc lock (shared for writers and readers, exclusive for gc) until `close()`.
   * Readers pass optional so a read-only layout still works.
   */
  lockGc(mode: LockMode, opts: { optional?: boolean } = {}): void {
    if (this.gcLock) return;
    this.gcLock = takeLock(this.path, GC_LOCK, mode, { onWait: this.onWait, optional: opts.optional, owner: this.owner() });
  }

  /**
   * The owner given to everything this process creates in the layout: the layout root's when
   * running as root, else null (nothing chowned). Looked up once.
   */
  owner(): Owner | null {
    if (this.ownerCache === undefined) this.ownerCache = layoutOwner(this.path);
    return this.ownerCache;
  }

  close(): void {
    this.gcLock?.release();
    this.gcLock = null;
  }

  /** The blob's path relative to the layout root: `blobs/<alg>/<encoded>` (the digest is checked). */
  blobRel(digest: string): string {
    const d = parseDigest(digest);
    return `blobs/${d.slice(0, d.indexOf(":"))}/${d.slice(d.indexOf(":") + 1)}`;
  }

  blobPath(digest: string): string {
    return path.join(this.path, this.blobRel(digest));
  }

  /**
   * Whether the blob's name is a regular file under real directories (lstat; nothing followed).
   * Its content is not checked. Throws InvalidError when `blobs/<alg>` is a symlink.
   */
  hasBlob(digest: string): boolean {
    const rel = this.blobRel(digest);
    if (!checkLayoutDir(this.path, path.posix.dirname(rel))) return false;
    return lstatOrNull(path.join(this.path, rel))?.isFile() ?? false;
  }

  /**
   * A fresh temporary name in `.boci-tmp/` (a real directory; made if missing), registered for
   * removal on SIGINT/SIGTERM. The name carries our pid (see gc.ts on stale files).
   */
  private tmpFile(): { tmp: string; unregister: () => void } {
    const tmp = path.join(this.ensureTmpDir(), `blob-${process.pid}-${randomName()}`);
    return { tmp, unregister: removeOnInterrupt(tmp) };
  }

  /**
   * Move a complete, fsynced temp file into blobs/ under its digest. A name already there is
   * kept only when it is a regular file of the right size whose bytes hash to the digest;
   * anything else (a planted symlink, a wrong or short file, a FIFO) is replaced by the rename,
   * which replaces the name itself and never writes through it. A directory there is refused.
   */
  private install(tmp: string, digest: Digest, size: number): void {
    const rel = this.blobRel(digest);
    try {
      checkLayoutDir(this.path, path.posix.dirname(rel), { create: true, owner: this.owner() });
      const dest = path.join(this.path, rel);
      const st = lstatOrNull(dest);
      if (st?.isFile() && fileMatchesSha256(this.path, rel, size, sha256Hex(digest))) {
        fs.unlinkSync(tmp);
        return;
      }
      if (st?.isDirectory()) throw notA(rel, "regular file", st);
      fs.renameSync(tmp, dest);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw addContext(`store blob ${digest}`, e);
    }
  }

  /** Refuse to write when `blobs/sha256` or `.boci-tmp` is not a real directory (made if missing). */
  private checkWritable(): void {
    checkLayoutDir(this.path, "blobs/sha256", { create: true, owner: this.owner() });
    this.ensureTmpDir();
  }

  /** Store bytes as a blob; returns its digest and size. Idempotent. */
  putBlobBytes(data: Uint8Array): BlobInfo {
    const h = new Bun.CryptoHasher("sha256");
    h.update(data);
    const hex = h.digest("hex");
    const digest = ("sha256:" + hex) as Digest;
    this.checkWritable();
    // A blob already stored is trusted only after a look at its bytes (small: JSON blobs).
    if (fileMatchesSha256(this.path, this.blobRel(digest), data.length, hex)) return { digest, size: data.length };
    const { tmp, unregister } = this.tmpFile();
    try {
      const fd = fs.openSync(tmp, CREATE_FLAGS, 0o644);
      try {
        writeAll(fd, data);
        chownNewFile(fd, `${TMP_DIR}/${path.basename(tmp)}`, this.owner());
        fs.fdatasyncSync(fd);
      } finally { fs.closeSync(fd); }
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      unregister();
      throw writeError(this.path, `store blob ${digest}`, e);
    }
    try {
      this.install(tmp, digest, data.length);
    } finally { unregister(); }
    return { digest, size: data.length };
  }

  /**
   * Stream chunks into a blob, hashing as they are written; fsync then rename. Also returns the
   * digest; the source is fully consumed. On error the temp file is removed.
   */
  async putBlobStream(src: AsyncIterable<Uint8Array>): Promise<BlobInfo> {
    this.checkWritable();
    const { tmp, unregister } = this.tmpFile();
    const h = new Bun.CryptoHasher("sha256");
    let size = 0;
    // Created synchronously: an open on the thread pool could create the file after a signal
    // handler had already removed the name, and the process would exit leaving it behind.
    let fd: number;
    try {
      fd = fs.openSync(tmp, CREATE_FLAGS, 0o644);
    } catch (e) {
      unregister();
      throw writeError(this.path, `create temporary blob in ${TMP_DIR}`, e);
    }
    try {
      try {
        for await (const chunk of src) {
          h.update(chunk);
          size += chunk.length;
          let off = 0;
          while (off < chunk.length) off += await writeAsync(fd, chunk, off, chunk.length - off);
          // The last use of a chunk its producer marked as ours to free (util/release.ts).
          release(chunk);
        }
        chownNewFile(fd, `${TMP_DIR}/${path.basename(tmp)}`, this.owner());
        await fdatasyncAsync(fd);
      } finally { fs.closeSync(fd); }
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      unregister();
      throw e;
    }
    const digest = ("sha256:" + h.digest("hex")) as Digest;
    try {
      this.install(tmp, digest, size);
    } finally { unregister(); }
    return { digest, size };
  }

  /**
   * Serialise as umoci 0.6 would (go-json.ts: the image-spec struct for `mediaType`, fields it
   * lacks dropped, maps sorted, a trailing newline) and store; returns a descriptor of the given
   * media type.
   */
  putJson(obj: unknown, mediaType: string): Descriptor {
    const bytes = Buffer.from(encodeGoJson(obj, goTypeFor(mediaType)));
    const { digest, size } = this.putBlobBytes(bytes);
    return { mediaType, digest, size };
  }

  /** Make the blobs written so far durable (one directory fsync) before index.json names them. */
  syncBlobs(): void {
    fsyncDir(path.join(this.path, "blobs", "sha256"));
  }

  /**
   * A verified stream of a blob (source.ts streamVerified: umoci's verified reader; digest
   * mismatch before size mismatch, both InvalidError; the last chunk held back until then).
   */
  async *getBlob(desc: Pick<Descriptor, "digest" | "size">, opts: { chunkSize?: number } = {}): AsyncGenerator<Buffer> {
    const digest = checkDescriptor(desc);
    const opened = openLayoutFile(this.path, this.blobRel(digest));
    if (!opened) throw new NotFoundError(`blob ${digest}: not found in layout`);
    try {
      yield* streamVerified(opened.fd, desc, opts);
    } finally {
      fs.closeSync(opened.fd);
    }
  }

  /**
   * Read a whole (small) blob, verified as getBlob does. Refuses sizes over `maxSize`. Uses
   * embedded `data` when present (its digest, then its length, checked as umoci's
   * GetVerifiedBlob does).
   */
  readBlob(desc: Pick<Descriptor, "digest" | "size" | "data">, maxSize = MAX_JSON_BLOB): Buffer {
    const digest = checkDescriptor(desc);
    if (desc.size > maxSize) throw new InvalidError(`blob ${digest}: size ${desc.size} exceeds the limit of ${maxSize} bytes for this kind of blob`);
    const embedded = embeddedData(desc);
    if (embedded) return embedded;
    const opened = openLayoutFile(this.path, this.blobRel(digest));
    if (!opened) throw new NotFoundError(`blob ${digest}: not found in layout`);
    try {
      return readVerified(opened.fd, desc, { maxSize });
    } finally { fs.closeSync(opened.fd); }
  }

  /** Read, verify, parse and validate a JSON blob by kind (source.ts decodeJsonBlob). */
  readJson<T>(desc: Descriptor, kind: JsonKind): T {
    return decodeJsonBlob<T>(this.readBlob(desc), desc, kind);
  }

  /** Read and validate index.json ("manifests": null, as umoci 0.4.7 writes, reads as []). */
  readIndex(): ImageIndex {
    // Not a regular file (a FIFO would block a plain read forever), a symlink: InvalidError.
    const bytes = readLayoutFile(this.path, "index.json", MAX_JSON_BLOB);
    if (!bytes) throw new InvalidError(`read index.json: missing`);
    return decodeIndexFile(bytes);
  }

  /**
   * Read-modify-write index.json under the exclusive index lock. `fn` gets the current index and
   * returns the new one (or undefined for no change). The write is atomic.
   */
  updateIndex<T>(fn: (ix: ImageIndex) => { index?: ImageIndex; result: T }): T {
    const lock = takeLock(this.path, INDEX_LOCK, "ex", { onWait: this.onWait, owner: this.owner() });
    try {
      const { index, result } = fn(this.readIndex());
      // As umoci's PutIndex: the media type is always set, the rest is Go's Encoder over ispec.Index.
      if (index) this.writeIndexFile(encodeGoJson({ ...index, mediaType: MediaType.index }, GoIndex));
      return result;
    } finally {
      lock.release();
    }
  }

  /**
   * Replace index.json atomically: a temporary file in `.boci-tmp/` (O_EXCL|O_NOFOLLOW,
   * registered for SIGINT/SIGTERM), written, given the layout's owner, fsynced and renamed over
   * index.json (a symlink there is replaced, not followed); then the root is fsynced.
   */
  private writeIndexFile(text: string): void {
    const name = `index-${process.pid}-${randomName()}`;
    const tmp = path.join(this.ensureTmpDir(), name);
    const unregister = removeOnInterrupt(tmp);
    try {
      const fd = fs.openSync(tmp, CREATE_FLAGS, 0o644);
      try {
        writeAll(fd, Buffer.from(text));
        chownNewFile(fd, `${TMP_DIR}/${name}`, this.owner());
        fs.fsyncSync(fd);
      } finally { fs.closeSync(fd); }
      fs.renameSync(tmp, path.join(this.path, "index.json"));
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw writeError(this.path, "write index.json", e);
    } finally {
      unregister();
    }
    fsyncDir(this.path);
  }

  /** `.boci-tmp/`, made if missing; InvalidError when it is a symlink or not a directory. */
  ensureTmpDir(): string {
    try {
      checkLayoutDir(this.path, TMP_DIR, { create: true, owner: this.owner() });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw code === "EACCES" || code === "EPERM" || code === "EROFS" ? cannotWrite(this.path, e) : e;
    }
    return path.join(this.path, TMP_DIR);
  }
}

/** A permission error names the layout ("cannot write L: permission denied"); others get `context`. */
function writeError(layout: string, context: string, e: unknown): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "EACCES" || code === "EPERM" || code === "EROFS") return cannotWrite(layout, e);
  return addContext(context, e);
}

/** write(2) until every byte is written. */
function writeAll(fd: number, data: Uint8Array): void {
  for (let off = 0; off < data.length;) off += fs.writeSync(fd, data, off, data.length - off);
}

/** One write(2) on the thread pool; the bytes written. */
function writeAsync(fd: number, b: Uint8Array, off: number, len: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, b, off, len, null, (e, n) => (e ? reject(e) : resolve(n))));
}
const fdatasyncAsync = promisify(fs.fdatasync);




