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
 *    a real `.boci-tmp/` and registered for removal on SIGINT/SIGTERM;
 *  - a layout opened with a shared blob directory (skopeo's `--dest-shared-blob-dir`, as
 *    containers/image's oci transport keeps it) reads and writes every blob as
 *    `DIR/<alg>/<encoded>` instead of `blobs/<alg>/<encoded>`, by the same rules with DIR as the
 *    root (DIR itself is the user's to choose; below it nothing is followed); temp files stay in
 *    the layout's `.boci-tmp/`, so DIR must be on the layout's filesystem (a rename across
 *    filesystems is refused with one line naming both paths). index.json, oci-layout and the
 *    locks stay in the layout; the shared directory has no lock of its own (gc, which sweeps
 *    `blobs/` only, never removes anything from it).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { BociError, ClobberError, InvalidError, NotFoundError, UnsupportedError, addContext, cannotWrite } from "../errors";
import {
  type Descriptor, type ImageIndex, type Digest, MediaType, parseDigest, sha256Hex,
} from "../image";
import { parseJsonStrict } from "../util/json";
import { fsyncDir, randomName } from "../util/fs";
import { removeOnInterrupt } from "../util/cleanup";
import { type BlobReader, type BlobStreamOptions, type JsonKind, MAX_JSON_BLOB, checkDescriptor, checkSmallBlob, verifyChunks, verifyRead, decodeIndexFile, decodeJsonBlob, embeddedData, readVerified, streamVerified } from "./source";
import { takeLock, GC_LOCK, INDEX_LOCK, type HeldLock, type LockMode } from "./lock";
import { release } from "../util/release";
import { GcBudget } from "../util/heap";
import { flock } from "../sys";
import type * as PoolModule from "../worker/pool";
import type { StreamHasher } from "../worker/pool";
import {
  CREATE_FLAGS, type Owner, checkLayoutDir, chownNewFile, fileMatchesSha256, layoutOwner, lstatOrNull, notA, openLayoutFile,
  readLayoutFile,
} from "./layout-fs";
import { GoImageLayout, GoIndex, encodeGoJson, goTypeFor } from "./go-json";


export const TMP_DIR = ".boci-tmp";
/** Largest `oci-layout` file read. */
const MAX_HEADER = 64 * 1024;
export interface BlobInfo { digest: Digest; size: number }

export interface OpenOptions {
  onWait?: (msg: string) => void;
  /**
   * Keep every blob in `DIR/<alg>/<encoded>` instead of the layout's `blobs/<alg>/<encoded>`
   * (skopeo's `--dest-shared-blob-dir DIR`). DIR is made (with its parents) on the first write.
   */
  sharedBlobDir?: string;
}

export interface InitOptions {
  /**
   * The layout will keep its blobs in this directory (see OpenOptions): `blobs/` is made empty,
   * as skopeo makes it, with no `blobs/sha256/`. The directory itself is not touched.
   */
  sharedBlobDir?: string;
}

/** Create a new layout at `p` (parents created). Fails with ClobberError if `p` exists. */
export function initLayout(p: string, opts: InitOptions = {}): void {
  if (fs.existsSync(p)) throw new ClobberError(`init layout ${p}: path already exists`);
  const parent = path.dirname(path.resolve(p));
  fs.mkdirSync(parent, { recursive: true });
  // Build in a sibling temporary directory and rename, so a half-made layout is never visible.
  const tmp = path.join(parent, `.${path.basename(p)}.boci-init-${randomName()}`);
  try {
    fs.mkdirSync(opts.sharedBlobDir !== undefined ? path.join(tmp, "blobs") : path.join(tmp, "blobs", "sha256"), { recursive: true, mode: 0o755 });
    // umoci 0.6's Create: both written by Go's Encoder (a trailing newline each).
    fs.writeFileSync(path.join(tmp, "oci-layout"), encodeGoJson({ imageLayoutVersion: "1.0.0" }, GoImageLayout));
    fs.writeFileSync(path.join(tmp, "index.json"), encodeGoJson({ schemaVersion: 2, mediaType: MediaType.index, manifests: [] }, GoIndex));
    fs.renameSync(tmp, p);
  } catch (e) {
    // (a parent we may not write leaves nothing to remove, and that failure must not hide the first)
    try { fs.rmSync(tmp, { recursive: true, force: true }); } catch { /* nothing was made */ }
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM" || code === "EROFS") throw cannotWrite(parent, e);
    throw addContext(`init layout ${p}`, e);
  }
  fsyncDir(parent);
}

export class Layout implements BlobReader {
  readonly path: string;
  /** The blobs this handle stored that were not there before, and their bytes (for --json). */
  readonly written = { blobs: 0, bytes: 0 };
  private gcLock: HeldLock | null = null;
  private readonly onWait?: (msg: string) => void;
  private ownerCache: Owner | null | undefined;
  /** The directory blob names are relative to: the layout, or the shared blob directory. */
  private readonly blobRoot: string;
  /** What goes before `<alg>/<encoded>` under blobRoot: `blobs/`, or nothing for a shared directory. */
  private readonly blobPrefix: string;
  /** The shared blob directory as given, if any. */
  readonly sharedBlobDir: string | undefined;
  /** Whether the shared directory's `<alg>` was found on the filesystem of `.boci-tmp`. */
  private sharedChecked = false;

  private constructor(p: string, opts: OpenOptions) {
    this.path = p;
    this.onWait = opts.onWait;
    this.sharedBlobDir = opts.sharedBlobDir;
    this.blobRoot = opts.sharedBlobDir ?? p;
    this.blobPrefix = opts.sharedBlobDir !== undefined ? "" : "blobs/";
  }

  /**
   * Open an existing layout, checking oci-layout, index.json and blobs/ (which must be there,
   * empty or not, with a shared blob directory too). The shared directory is not looked at
   * until a blob is. Throws NotFoundError, InvalidError or UnsupportedError (the version).
   */
  static open(p: string, opts: OpenOptions = {}): Layout {
    if (opts.sharedBlobDir === "") throw new InvalidError(`open layout ${p}: the shared blob directory is an empty path`);
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

  /**
   * Where the layout itself keeps a blob, relative to its root: `blobs/<alg>/<encoded>` (the
   * digest is checked). With a shared blob directory the blob is not there: see blobPath.
   */
  blobRel(digest: string): string {
    return `blobs/${this.blobName(digest)}`;
  }

  /** `<alg>/<encoded>` (the digest is checked). */
  private blobName(digest: string): string {
    const d = parseDigest(digest);
    return `${d.slice(0, d.indexOf(":"))}/${d.slice(d.indexOf(":") + 1)}`;
  }

  /** The blob's name relative to blobRoot. */
  private blobKey(digest: string): string {
    return this.blobPrefix + this.blobName(digest);
  }

  /** The blob's path: in `blobs/` or, with one, in the shared blob directory. */
  blobPath(digest: string): string {
    return path.join(this.blobRoot, this.blobKey(digest));
  }

  /** A hostile name in the shared blob directory is reported as being there, not in the layout. */
  private inBlobRoot<T>(fn: () => T): T {
    if (this.sharedBlobDir === undefined) return fn();
    try {
      return fn();
    } catch (e) {
      throw addContext(`shared blob directory ${this.sharedBlobDir}`, e);
    }
  }

  /** "not found in layout" or "not found in shared blob directory D". */
  private notFound(digest: string): NotFoundError {
    const where = this.sharedBlobDir === undefined ? "layout" : `shared blob directory ${this.sharedBlobDir}`;
    return new NotFoundError(`blob ${digest}: not found in ${where}`);
  }

  /**
   * Whether the blob's name is a regular file under real directories (lstat; nothing followed),
   * in `blobs/` or the shared blob directory. Its content is not checked. Throws InvalidError
   * when `<alg>` (or `blobs/`) is a symlink or not a directory.
   */
  hasBlob(digest: string): boolean {
    const key = this.blobKey(digest);
    return this.inBlobRoot(() => {
      if (!checkLayoutDir(this.blobRoot, path.posix.dirname(key))) return false;
      return lstatOrNull(path.join(this.blobRoot, key))?.isFile() ?? false;
    });
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
   * A rename across filesystems (a shared blob directory elsewhere) fails naming both paths.
   */
  private install(tmp: string, digest: Digest, size: number): void {
    const key = this.blobKey(digest);
    try {
      const dest = path.join(this.blobRoot, key);
      const st = this.inBlobRoot(() => {
        checkLayoutDir(this.blobRoot, path.posix.dirname(key), { create: true, owner: this.owner() });
        const found = lstatOrNull(dest);
        if (found?.isDirectory()) throw notA(key, "regular file", found);
        return found;
      });
      if (st?.isFile() && fileMatchesSha256(this.blobRoot, key, size, sha256Hex(digest))) {
        fs.unlinkSync(tmp);
        return;
      }
      try {
        fs.renameSync(tmp, dest);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EXDEV") throw crossDevice(tmp, dest, e);
        throw e;
      }
      this.written.blobs++;
      this.written.bytes += size;
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw addContext(`store blob ${digest}`, e);
    }
  }

  /**
   * Refuse to write when `blobs/sha256` (or the shared directory's `sha256`) or `.boci-tmp` is
   * not a real directory (made if missing; a missing shared directory is made with its parents,
   * as skopeo makes it). The first time, a shared `sha256` on another filesystem than
   * `.boci-tmp` is refused (naming both) before anything is written.
   */
  private checkWritable(): void {
    const shared = this.sharedBlobDir;
    if (shared !== undefined && !lstatOrNull(shared)) {
      try {
        fs.mkdirSync(shared, { recursive: true, mode: 0o755 });
      } catch (e) {
        throw writeError(shared, `create shared blob directory ${shared}`, e);
      }
    }
    const algDir = `${this.blobPrefix}sha256`;
    this.inBlobRoot(() => checkLayoutDir(this.blobRoot, algDir, { create: true, owner: this.owner() }));
    const tmpDir = this.ensureTmpDir();
    if (shared !== undefined && !this.sharedChecked) {
      const alg = path.join(this.blobRoot, algDir);
      if (fs.statSync(alg).dev !== fs.statSync(tmpDir).dev) throw crossDevice(tmpDir, alg);
      this.sharedChecked = true;
    }
  }

  /** Store bytes as a blob; returns its digest and size. Idempotent. */
  putBlobBytes(data: Uint8Array): BlobInfo {
    const h = new Bun.CryptoHasher("sha256");
    h.update(data);
    const hex = h.digest("hex");
    const digest = ("sha256:" + hex) as Digest;
    this.checkWritable();
    // A blob already stored is trusted only after a look at its bytes (small: JSON blobs).
    if (fileMatchesSha256(this.blobRoot, this.blobKey(digest), data.length, hex)) return { digest, size: data.length };
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
   * Download blob `desc` so that an interrupted download resumes: the bytes go to
   * `.boci-tmp/partial-<alg>-<hex>`, which is kept across runs (a kill, a network failure after
   * the fetcher's retries, SIGINT: it is deliberately not removed on a signal). A later call
   * first hashes the bytes already there, then asks `fetchFrom(offset)` for the rest only (the
   * fetcher sends a `Range` request; its bytes are raw, verified here). When all `desc.size`
   * bytes are in, the digest is checked first, then the size (InvalidError); a complete blob is
   * fdatasynced and renamed into `blobs/` (install's rules) while the partial's flock is held, so
   * no other writer ever appends to an installed blob. Wrong bytes after a resume: the partial is
   * emptied and the whole blob fetched once more from 0; wrong again (or wrong from 0): the
   * partial is removed and InvalidError thrown. Another process downloading the same blob into
   * the same layout (the partial's flock is taken) makes this one download into a private
   * temporary file instead (putBlobStream over a verified stream). `onBytes` hears the bytes
   * already there (once, at start) and each chunk fetched. Returns the digest and size, the
   * offset the download resumed from and the bytes fetched by this call. The caller holds the gc
   * lock; gc (which runs only when no writer holds it) removes partials as other temporary files.
   */
  async putBlobResumable(
    desc: Pick<Descriptor, "digest" | "size">, fetchFrom: (offset: number) => AsyncIterable<Uint8Array>, opts: { onBytes?: (n: number) => void } = {},
  ): Promise<BlobInfo & { resumedFrom: number; fetched: number }> {
    const digest = checkDescriptor(desc) as Digest;
    const alg = digest.slice(0, digest.indexOf(":"));
    const hex = digest.slice(digest.indexOf(":") + 1);
    this.checkWritable();
    const name = `partial-${alg}-${hex}`;
    const rel = `${TMP_DIR}/${name}`;
    const p = path.join(this.ensureTmpDir(), name);
    const fd = this.openPartial(p, rel);
    if (fd === null) {
      // Someone else is resuming this very blob: fetch it whole, privately.
      const counted = async function* () {
        for await (const c of verifyChunks(fetchFrom(0), desc)) { opts.onBytes?.(c.length); yield c; }
      };
      const info = await this.putBlobStream(counted());
      return { ...info, resumedFrom: 0, fetched: info.size };
    }
    let fetched = 0;
    let resumedFrom = 0;
    try {
      for (let attempt = 0; ; attempt++) {
        let have = fs.fstatSync(fd).size;
        if (have > desc.size) { fs.ftruncateSync(fd, 0); have = 0; }
        // Hashed inline: a worker would need every byte copied to it, which cost more than it
        // saved on a loopback pull (the writes, not the hash, overlap the download).
        const h = poolModule().inlineHasher();
        let hashed = false;
        let pos = have;
        let extra = false;
        try {
          await hashFdPrefix(fd, have, h);
          resumedFrom = have;
          if (have > 0) opts.onBytes?.(have);
          if (pos < desc.size) {
            // Writes go out in order on the thread pool while the next chunk is read and hashed;
            // at most WRITE_AHEAD bytes wait, so memory stays bounded.
            let writeErr: { e: unknown } | null = null;
            let tail: Promise<void> = Promise.resolve();
            let queued = 0;
            // A fetched body's chunks are freed only by the collector (util/heap.ts). Every
            // 16 MiB, not 4: on a 384 MiB pull 0.15 s less CPU at the same peak RSS (two blobs
            // at once: 98-106 MiB either way).
            const gc = new GcBudget(16 << 20);
            const enqueue = (chunk: Uint8Array, at: number) => {
              queued += chunk.length;
              tail = tail.then(async () => {
                try {
                  if (writeErr) return;
                  for (let off = 0; off < chunk.length;) off += await writeAtAsync(fd, chunk, off, chunk.length - off, at + off);
                } catch (e) {
                  writeErr ??= { e };
                } finally {
                  queued -= chunk.length;
                  gc.add(chunk.length);
                }
              });
            };
            const it = fetchFrom(pos)[Symbol.asyncIterator]();
            let finished = false;
            try {
              for (;;) {
                const r = await it.next();
                if (r.done) { finished = true; break; }
                let chunk = r.value;
                if (chunk.length === 0) continue;
                const left = desc.size - pos;
                if (left === 0) { extra = true; break; }
                if (chunk.length > left) { extra = true; chunk = chunk.subarray(0, left); }
                enqueue(chunk, pos);
                const wait = h.update(chunk);
                if (wait) await wait;
                pos += chunk.length;
                fetched += chunk.length;
                opts.onBytes?.(chunk.length);
                if (queued > WRITE_AHEAD) await tail;
                if (writeErr) throw (writeErr as { e: unknown }).e;
                if (extra) break;
              }
            } finally {
              if (!finished) await it.return?.();
              await tail;
            }
            if (writeErr) throw (writeErr as { e: unknown }).e;
          }
          hashed = true;
        } finally {
          if (!hashed) h.abort();
        }
        const got = "sha256:" + (await h.digest());
        try {
          verifyRead(digest, desc.size, got, pos, extra);
        } catch (e) {
          // A resumed download may have built on stale bytes: once more, from nothing.
          fs.ftruncateSync(fd, 0);
          if (attempt === 0 && have > 0) continue;
          fs.rmSync(p, { force: true });
          throw e;
        }
        chownNewFile(fd, rel, this.owner());
        await fdatasyncAsync(fd);
        // Renamed while the flock is held: a waiting writer then finds the name gone (openPartial).
        this.install(p, digest, desc.size);
        return { digest, size: desc.size, resumedFrom, fetched };
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * The partial download at `p`, opened read-write (created if missing) and flocked
   * exclusively; null when another process holds it. A name there that is not a regular file
   * (a planted symlink, a FIFO, a directory) is removed and replaced; a partial renamed into
   * `blobs/` after it was opened here (the inode no longer at `p`) is let go and `p` opened anew.
   */
  private openPartial(p: string, rel: string): number | null {
    const C = fs.constants;
    for (let i = 0; i < 8; i++) {
      let fd: number;
      try {
        fd = fs.openSync(p, C.O_RDWR | C.O_CREAT | C.O_NOFOLLOW | C.O_NONBLOCK, 0o644);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "ELOOP" || code === "EISDIR" || code === "ENXIO") { fs.rmSync(p, { recursive: true, force: true }); continue; }
        throw writeError(this.path, `open ${rel}`, e);
      }
      const st = fs.fstatSync(fd);
      if (!st.isFile()) { fs.closeSync(fd); fs.rmSync(p, { recursive: true, force: true }); continue; }
      if (!flock(fd, "ex", { nonblock: true })) { fs.closeSync(fd); return null; }
      const now = lstatOrNull(p);
      if (!now || now.ino !== st.ino || now.dev !== st.dev) { fs.closeSync(fd); continue; }
      return fd;
    }
    throw new InvalidError(`layout is invalid: ${rel} keeps changing under a download`);
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

  /**
   * Make the blobs written so far durable (one directory fsync: `blobs/sha256`, or the shared
   * directory's `sha256`) before index.json names them.
   */
  syncBlobs(): void {
    const dir = path.join(this.blobRoot, `${this.blobPrefix}sha256`);
    // A copy that had every blob already may never have made a shared directory's sha256.
    if (this.sharedBlobDir !== undefined && !lstatOrNull(dir)) return;
    fsyncDir(dir);
  }

  /**
   * A verified stream of a blob (source.ts streamVerified: umoci's verified reader; digest
   * mismatch before size mismatch, both InvalidError; the last chunk held back until then).
   */
  async *getBlob(desc: Pick<Descriptor, "digest" | "size">, opts: BlobStreamOptions = {}): AsyncGenerator<Buffer> {
    const digest = checkDescriptor(desc);
    const opened = this.inBlobRoot(() => openLayoutFile(this.blobRoot, this.blobKey(digest)));
    if (!opened) throw this.notFound(digest);
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
    const digest = checkSmallBlob(desc, maxSize);
    const embedded = embeddedData(desc);
    if (embedded) return embedded;
    const opened = this.inBlobRoot(() => openLayoutFile(this.blobRoot, this.blobKey(digest)));
    if (!opened) throw this.notFound(digest);
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

/**
 * The one line for a blob that cannot be renamed into place because its temporary file (in the
 * layout's `.boci-tmp/`) and its name are on different filesystems (EXDEV).
 */
function crossDevice(from: string, to: string, cause?: unknown): BociError {
  return new BociError(`cannot move ${from} to ${to}: not on the same filesystem (a shared blob directory must be on the layout's filesystem)`, { code: "EXDEV", cause });
}

/** write(2) until every byte is written. */
function writeAll(fd: number, data: Uint8Array): void {
  for (let off = 0; off < data.length;) off += fs.writeSync(fd, data, off, data.length - off);
}

/** One write(2) on the thread pool; the bytes written. */
function writeAsync(fd: number, b: Uint8Array, off: number, len: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, b, off, len, null, (e, n) => (e ? reject(e) : resolve(n))));
}
// (not util.promisify: loading node:util costs start-up RSS for every command)
function fdatasyncAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (e) => (e ? reject(e) : resolve())));
}

/** Bytes of a resumable download waiting to be written before the reader waits for them. */
const WRITE_AHEAD = 16 << 20;
// Lazy, as in source.ts (only the StreamHasher interface is used here).
const poolModule = () => require("../worker/pool") as typeof PoolModule;

/** One positioned write(2) on the thread pool; the bytes written. */
function writeAtAsync(fd: number, b: Uint8Array, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, b, off, len, pos, (e, n) => (e ? reject(e) : resolve(n))));
}

/** Feed the first `n` bytes of `fd` to `h` (1 MiB reads); a file shorter than `n` is an error. */
async function hashFdPrefix(fd: number, n: number, h: StreamHasher): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(n, 1 << 20));
  for (let pos = 0; pos < n;) {
    const want = Math.min(buf.length, n - pos);
    const got = await new Promise<number>((resolve, reject) => fs.read(fd, buf, 0, want, pos, (e, r) => (e ? reject(e) : resolve(r))));
    if (got === 0) throw new InvalidError(`partial download shrank while it was read`);
    const wait = h.update(buf.subarray(0, got));
    if (wait) await wait;
    pos += got;
  }
}




