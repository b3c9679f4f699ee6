/**
 * Making one inode from a tar header, inside a directory held as a descriptor: the file body,
 * the owner (root: chown to the mapped IDs; rootless: the owner goes into the rootless xattr),
 * xattrs by the policy in xattr.ts, the mode (after chown, so set-id bits survive), and the
 * times. A regular file gets all of it through its own descriptor; every other type through its
 * parent's descriptor and its name, which this thread has just made or checked.
 */
import { write as fsWrite } from "node:fs";
import { BociError, InvalidError, describeErrno } from "../errors";
import type { TarEntry, TarHeader } from "../tar/types";
import { type MapOptions, toHost } from "../layer/idmap";
import {
  chmodAt, chmodFd, chownAt, chownFd, closeFd, fsetxattr, mknodAt, mkdirAt, statFd, symlinkAt, tryOpenAt, utimesAt, utimesFd, writeAll, openAt,
} from "../sys/at";
import { O_CLOEXEC, O_NOFOLLOW, makedev } from "../sys";
import { getPool } from "../worker/pool";
import { FileQueue, MAX_BODY, type FileDone } from "./file-queue";
import type { FileStat } from "./file-queue-layout";
import { isReleasable, release } from "../util/release";
import { cname, cnameExact } from "./name";
import { encodeRootlessOwner } from "./rootless-owner";
import { ROOTLESS_XATTR, removeBeforeSet, unpackVerdict } from "./xattr";
import type { RootTree } from "./tree";

const O_WRONLY = 1, O_CREAT = 0o100, O_EXCL = 0o200;
const CREATE_EXCLUSIVE = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
const S_IFCHR = 0o020000, S_IFBLK = 0o060000, S_IFIFO = 0o010000;
const EEXIST = 17;
/** Bodies up to this size are written from one buffer and hashed on this thread. */
const SMALL_BODY = 1 << 20;
/** Small files made inline before the second thread is started (a small image never pays for it). */
const QUEUE_AFTER = 256;

/** writeFile handed the file to the second thread: its `done` gets the digest later. */
export const QUEUED = Symbol("queued");

/** What writeFile gives back: the body's digest and the finished file's statx, each if asked. */
export interface FileResult { sha: string | undefined; st: FileStat | undefined }

/** Where an inode goes: its parent directory (descriptor and real path) and its name. */
export interface Place { dirfd: number; parentReal: string; name: string }

/** Root or rootless, the ID maps, and where warnings go. */
export interface Strategy {
  map: MapOptions;
  rootless: boolean;
  euid: number;
  umask: number;
  warn(code: string, msg: string): void;
}

/** The host owner of an entry (root bundles). */
export function hostOwner(hdr: TarHeader, map: MapOptions): { uid: number; gid: number } {
  return { uid: toHost(hdr.uid, map.uidMappings, "uid"), gid: toHost(hdr.gid, map.gidMappings, "gid") };
}

/** Writes inodes for one applier; keeps the warn-once state and the body buffers. */
export class InodeWriter {
  private warnedNotSup = false;
  private scratch: Buffer | undefined;
  /** placeholder in a recorded sha256 → the digest being computed on a worker */
  readonly pendingDigests = new Map<string, Promise<string>>();
  /** small files finished on a second thread (file-queue.ts), once QUEUE_AFTER were made here */
  private queue: FileQueue | null = null;
  private smallFiles = 0;

  constructor(private readonly tree: RootTree, private readonly s: Strategy) {}

  /** True once the filesystem refused an xattr as unsupported (records must then come from disk). */
  get xattrsUnsupported(): boolean {
    return this.warnedNotSup;
  }

  /**
   * A new regular file's descriptor, or -1 when the name is taken (O_EXCL|O_NOFOLLOW: never opens
   * what is there). Created with its own mode when nothing can take bits away from it later.
   */
  createFile(at: Place, hdr: TarHeader): number {
    const r = tryOpenAt(at.dirfd, cname(at.name), CREATE_EXCLUSIVE, this.createMode(hdr));
    if (r.fd >= 0) return r.fd;
    if (r.errno === EEXIST) return -1;
    return openAt(at.dirfd, cname(at.name), CREATE_EXCLUSIVE, this.createMode(hdr)); // throws the error
  }

  private createMode(hdr: TarHeader): number {
    const m = hdr.mode & 0o7777;
    return (m & 0o7000) === 0 && (m & this.s.umask) === 0 && !this.s.rootless ? m : 0o600;
  }

  /**
   * Write `entry`'s body into `fd` (just made by createFile; closed here, or by the second thread)
   * and give the file its metadata through the descriptor. Gives back the body's sha256 when
   * `want.hash` (a placeholder resolved by `digests()` for large bodies hashed on a worker) and
   * the finished file's statx when `want.stat`. With `done`, a small file without xattrs may be
   * finished on the second thread instead (file-queue.ts): then QUEUED is returned and `done`
   * gets the two once it is.
   */
  async writeFile(fd: number, entry: TarEntry, hdr: TarHeader, want: { hash: boolean; stat: boolean }, done?: FileDone): Promise<FileResult | typeof QUEUED> {
    const hash = want.hash;
    let digest: string | undefined;
    let st: FileStat | undefined;
    let written = 0;
    let handedOver = false;
    // the mode still to set after the owner and xattrs (-1: created with it)
    const chmodTo = this.createMode(hdr) !== (hdr.mode & 0o7777) ? hdr.mode & 0o7777 : -1;
    try {
      if (hdr.size <= SMALL_BODY) {
        // (joined, when it spans decompressed chunks, in a buffer kept for that; used up before the next read)
        const buf = await entry.readAll((this.scratch ??= Buffer.allocUnsafeSlow(SMALL_BODY)));
        written = buf.length;
        checkSize(written, hdr);
        if (done && buf.length <= MAX_BODY && this.queueable(hdr)) {
          const q = this.queue ?? (++this.smallFiles > QUEUE_AFTER ? (this.queue = FileQueue.shared()) : null);
          if (q) {
            q.push({
              fd, body: buf, owner: this.s.rootless ? null : hostOwner(hdr, this.s.map),
              mode: chmodTo, mtime: hdr.mtime, hash, stat: want.stat, name: hdr.name,
            }, done);
            handedOver = true;
            return QUEUED;
          }
        }
        if (buf.length) writeAll(fd, buf);
        if (hash) digest = new Bun.CryptoHasher("sha256").update(buf).digest("hex");
      } else {
        // A large body is hashed on a worker as it is written (positional writes on the thread
        // pool, a few at a time, so this thread goes on parsing while the kernel copies).
        const h = hash ? getPool().hashStream() : null;
        const out = new OffsetWriter(fd);
        try {
          try {
            for await (const chunk of entry.body) {
              const wait = h?.update(chunk);
              // (a piece still marked is a whole decoded chunk the reader handed over: ours to
              // free once written, tar/reader.ts releaseChunks; its length is taken first)
              const n = chunk.length;
              await out.write(chunk, written, isReleasable(chunk));
              written += n;
              if (wait) await wait;
            }
          } finally {
            await out.drain();
          }
        } catch (e) {
          h?.abort();
          throw e;
        }
        if (h) {
          const p = h.digest();
          p.catch(() => { /* reported by digests() */ });
          digest = `${PENDING_DIGEST}${this.pendingDigests.size}`;
          this.pendingDigests.set(digest, p);
        }
        checkSize(written, hdr);
      }
      if (!this.s.rootless) {
        const o = hostOwner(hdr, this.s.map);
        chownFd(fd, o.uid, o.gid);
      }
      this.setXattrs({ fd }, hdr, false);
      if (chmodTo >= 0) chmodFd(fd, chmodTo);
      utimesFd(fd, hdr.mtime, hdr.mtime);
      if (want.stat) st = statFd(fd);
    } finally {
      if (!handedOver) closeFd(fd);
    }
    return { sha: digest, st };
  }

  /** A file with nothing for setXattrs to do (no xattrs; rootless: owned by container root). */
  private queueable(hdr: TarHeader): boolean {
    return hdr.xattrs.size === 0 && (!this.s.rootless || encodeRootlessOwner(hdr.uid, hdr.gid) === null);
  }

  /** Wait for the files on the second thread and run their `done`; throws the first failure. */
  drainQueue(): void {
    this.queue?.drain();
  }

  /** Wait for the second thread's jobs (no `done` runs) and let the queue go to its next user. */
  closeQueue(): void {
    this.queue?.close();
    this.queue = null;
  }

  /** Every pending digest, resolved (placeholder → hex). */
  async digests(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const [k, p] of this.pendingDigests) out.set(k, await p);
    this.pendingDigests.clear();
    return out;
  }

  /** A new directory, mode 0700 until its metadata is set. */
  mkdir(at: Place): void {
    mkdirAt(at.dirfd, cname(at.name), 0o700);
  }

  symlink(at: Place, target: string): void {
    symlinkAt(Buffer.from(cnameExact(target, 1)), at.dirfd, cname(at.name));
  }

  /** A device node or FIFO; rootless (or refused), a device becomes an empty file, with a warning. */
  mknod(at: Place, hdr: TarHeader): void {
    const kind = hdr.type === "char" ? S_IFCHR : hdr.type === "block" ? S_IFBLK : S_IFIFO;
    const empty = () => closeFd(openAt(at.dirfd, cname(at.name), CREATE_EXCLUSIVE, 0));
    if (this.s.rootless && hdr.type !== "fifo") {
      this.s.warn("rootless-device", `rootless: ${hdr.type} device ${hdr.name} (${hdr.devmajor}:${hdr.devminor}) created as an empty file`);
      empty();
      return;
    }
    try {
      mknodAt(at.dirfd, cname(at.name), kind | 0o600, makedev(hdr.devmajor, hdr.devminor));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code === "EPERM" || code === "EACCES") && hdr.type !== "fifo") {
        this.s.warn("device-eperm", `cannot create ${hdr.type} device ${hdr.name} (${describeErrno(e as NodeJS.ErrnoException)}); created as an empty file`);
        empty();
        return;
      }
      throw e;
    }
  }

  /**
   * Owner, xattrs, mode and (not for directories, whose times settle after the layer) times of a
   * non-file inode just made or merged at `at`. `existing`: it was there before (its xattrs go).
   */
  setMetadata(at: Place, hdr: TarHeader, existing: boolean): void {
    const name = cname(at.name);
    if (!this.s.rootless) {
      const o = hostOwner(hdr, this.s.map);
      chownAt(at.dirfd, name, o.uid, o.gid);
    }
    // xattrs before chmod: a rootless caller needs write permission to set user.* xattrs
    this.setXattrs({ at }, hdr, existing);
    if (hdr.type !== "symlink") {
      let mode = hdr.mode & 0o7777;
      // rootless: directories stay open to ourselves until the layer is done
      if (this.s.rootless && hdr.type === "dir") mode |= 0o700;
      chmodAt(at.dirfd, cname(at.name), mode);
    }
    if (hdr.type !== "dir") utimesAt(at.dirfd, cname(at.name), hdr.mtime, hdr.mtime);
  }

  private setXattrs(target: { fd?: number; at?: Place }, hdr: TarHeader, existing: boolean): void {
    const { fd, at } = target;
    const set = (k: string, v: Uint8Array) => {
      try {
        if (fd !== undefined) fsetxattr(fd, k, v);
        else this.tree.setXattr(at!.dirfd, at!.parentReal, at!.name, k, v);
      } catch (e) { this.xattrError(e, k, hdr.name, "set"); }
    };
    if (existing && at) {
      for (const k of this.tree.listXattrs(at.dirfd, at.parentReal, at.name).keys()) {
        if (!removeBeforeSet(k, this.s.rootless)) continue;
        try { this.tree.removeXattr(at.dirfd, at.parentReal, at.name, k); } catch (e) { this.xattrError(e, k, hdr.name, "remove"); }
      }
    }
    for (const [k, v] of hdr.xattrs) {
      switch (unpackVerdict(k, v, hdr.type, this.s.rootless)) {
        case "forbidden":
          this.s.warn("xattr-forbidden", `ignoring forbidden xattr ${k} on ${hdr.name}`);
          break;
        case "rootless-ignored":
          this.s.warn("xattr-rootless", `ignoring ${ROOTLESS_XATTR} xattr in layer on ${hdr.name}`);
          break;
        case "rootless-foreign":
          this.s.warn("xattr-rootless", `layer carries a ${ROOTLESS_XATTR} xattr on ${hdr.name}`);
          set(k, v);
          break;
        case "set":
          set(k, v);
          break;
      }
    }
    if (this.s.rootless && hdr.type !== "symlink") {
      const payload = encodeRootlessOwner(hdr.uid, hdr.gid);
      if (payload) set(ROOTLESS_XATTR, payload);
      else if (existing && at) { try { this.tree.removeXattr(at.dirfd, at.parentReal, at.name, ROOTLESS_XATTR); } catch { /* absent */ } }
    }
  }

  private xattrError(e: unknown, name: string, entry: string, op: string): void {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOTSUP" || code === "EOPNOTSUPP") {
      if (!this.warnedNotSup) this.s.warn("xattr-notsup", `xattrs not supported on this filesystem (${op} ${name}); ignoring`);
      this.warnedNotSup = true;
      return;
    }
    if ((code === "EPERM" || code === "EACCES") && (this.s.rootless || this.s.euid !== 0)) {
      this.s.warn("xattr-eperm", `cannot ${op} xattr ${name} on ${entry}: permission denied; ignoring`);
      return;
    }
    throw new BociError(`${op} xattr ${name}: ${describeErrno(e as NodeJS.ErrnoException)}`, { cause: e });
  }
}

function checkSize(written: number, hdr: TarHeader): void {
  if (written !== hdr.size) throw new InvalidError(`file body is ${written} bytes, header says ${hdr.size}`);
}

/** Prefix of a recorded sha256 that is still being computed (never valid hex). */
export const PENDING_DIGEST = "pending:";

/**
 * Positional writes to one descriptor on the thread pool, at most `limit` in flight. The buffers
 * must stay unchanged until drain() returns (decompressor output is never reused in place).
 */
class OffsetWriter {
  private inFlight = 0;
  private error: Error | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly fd: number, private readonly limit = 4) {}

  /** Write all of `buf` at `pos` (a few writes at a time); `free`: release(buf) once written. */
  async write(buf: Uint8Array, pos: number, free = false): Promise<void> {
    while (this.inFlight >= this.limit) await new Promise<void>((r) => { this.wake = r; });
    if (this.error) throw this.error;
    this.inFlight++;
    const step = (off: number): void => {
      fsWrite(this.fd, buf, off, buf.length - off, pos + off, (err, n) => {
        if (!err && n > 0 && off + n < buf.length) return step(off + n);
        if (free) release(buf);
        if (err) this.error ??= err;
        else if (n === 0 && off < buf.length) this.error ??= new Error("write returned 0 bytes");
        this.inFlight--;
        const w = this.wake;
        this.wake = null;
        w?.();
      });
    };
    step(0);
  }

  /** Wait for every write; throws the first error. */
  async drain(): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>((r) => { this.wake = r; });
    if (this.error) throw this.error;
  }
}
