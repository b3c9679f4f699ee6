/**
 * A root filesystem reached only through directory descriptors.
 *
 * Every path inside the root is resolved by the kernel from the root's descriptor, and every
 * change (create, chown, chmod, utimes, xattrs, mknod, link, remove) is made relative to the
 * descriptor of the directory that holds the name. A name is never looked up again from the top
 * after it was decided where it lives, so a later entry of a layer cannot redirect an earlier
 * decision: there is no check-then-use window to guard at each call site.
 *
 * Two kinds of lookup:
 *  - `dir(real)`: a directory by its real path (no symlink anywhere on the way, never leaving
 *    the root): openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), or one
 *    openat(O_NOFOLLOW) per component where openat2 is missing (sys/openBeneath).
 *  - `resolve(logical)`: a directory by the path a tar entry names, symlinks inside the root
 *    followed as a chroot would (absolute targets restart at the root, `..` stops there), one
 *    component at a time from the nearest known directory descriptor, each step an openat of a
 *    name in a directory already held. This computes the real path too, which the manifest and
 *    the whiteout rules need (the kernel's RESOLVE_IN_ROOT resolves the same way but does not
 *    say where it arrived). The common case, a parent with no symlink on its way, is one
 *    openat2 call (`dir`), after which the answer is cached.
 *
 * Real paths are FileName strings relative to the root, "" for the root itself.
 * Descriptors are cached per real path; `invalidate()` drops them all (after any removal, when a
 * cached directory may have left the tree).
 */
import { existsSync } from "node:fs";
import {
  AT_SYMLINK_NOFOLLOW, chmodAt, closeFd, openAt, readDirFd, readlinkAt, statAt, statFd, tryOpenAt, unlinkAt, type Stat,
} from "../sys/at";
import { O_CLOEXEC, O_DIRECTORY, O_NOFOLLOW, O_PATH, O_RDONLY, openBeneath, openDirHandle, lsetxattr, lremovexattr } from "../sys";
import { readXattrs } from "./xattr";
import { InvalidError } from "../errors";
import { cname, cnameExact, displayName, fileName } from "./name";
import { baseOf, joinPath, parentOf } from "./path";

export const S_IFMT = 0o170000, S_IFDIR = 0o040000, S_IFLNK = 0o120000, S_IFREG = 0o100000;
export const isDir = (st: Stat): boolean => (st.mode & S_IFMT) === S_IFDIR;
export const isLink = (st: Stat): boolean => (st.mode & S_IFMT) === S_IFLNK;

const MAX_SYMLINKS = 255;
const MAX_CACHED = 512;
const DIR_PATH = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
/** errno codes meaning "not there (any more) as a directory reached without symlinks" */
const GONE = new Set(["ENOENT", "ELOOP", "ENOTDIR", "EXDEV"]);
const ENOENT = 2, ENOTDIR = 20, ELOOP = 40;

/** What `resolve` does when a component is missing, is not a directory, or (rootless) is locked. */
export interface ResolveHooks {
  /** Make the missing directory `name` in `real` (the parent's real path, held as `dirfd`). */
  makeDir(dirfd: number, parentReal: string, name: string): void;
  /** Remove the non-directory `name` in the way (then makeDir follows). */
  remove(dirfd: number, parentReal: string, name: string): void;
  /** Rootless: directory `name` lacks u+rwx (its stat given); open it up to be able to go on. */
  locked?(dirfd: number, parentReal: string, name: string, st: Stat): void;
  /** The directory `real` will get a new child: remember its time (and rootless, its mode). */
  touched?(dirfd: number, real: string): void;
}

/** A resolved directory: its real path and a descriptor valid until the next invalidate()/trim(). */
export interface DirRef { real: string; fd: number }

export class RootTree {
  readonly root: string;
  readonly rootFd: number;
  /** real path → O_PATH descriptor */
  private fds = new Map<string, number>();
  /** logical path → real path, for directories resolved since the last invalidate() */
  private resolved = new Map<string, string>();
  /** descriptors dropped by invalidate(), closed at the next trim() (a caller may still hold one) */
  private retired: number[] = [];
  private closed = false;

  constructor(root: string) {
    this.root = root;
    this.rootFd = openDirHandle(root);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.invalidate();
    this.trim();
    closeFd(this.rootFd);
  }

  /**
   * Forget every cached descriptor and resolution (a name on some path may have changed). The
   * descriptors stay open until the next trim(), so one a caller holds remains usable.
   */
  invalidate(): void {
    for (const fd of this.fds.values()) this.retired.push(fd);
    this.fds.clear();
    this.resolved.clear();
  }

  /** Close what invalidate() dropped and keep the cache bounded; call between entries. */
  trim(): void {
    if (this.fds.size > MAX_CACHED) this.invalidate();
    for (const fd of this.retired) closeFd(fd);
    this.retired.length = 0;
  }

  /** The real path `real` as a kernel path for messages and the rare path-only call. */
  abs(real: string): string {
    return real === "" ? this.root : `${this.root}/${real}`;
  }

  /**
   * The O_PATH descriptor of directory `real`, reached with no symlink; throws SysError (ELOOP,
   * ENOTDIR, ENOENT) when it is not such a directory.
   */
  dir(real: string): number {
    if (real === "") return this.rootFd;
    const have = this.fds.get(real);
    if (have !== undefined) return have;
    const fd = openBeneath(this.rootFd, cname(real), DIR_PATH);
    this.fds.set(real, fd);
    return fd;
  }

  /** dir(), or -1 when `real` is not (any more) a directory reached without symlinks. */
  tryDir(real: string): number {
    try {
      return this.dir(real);
    } catch (e) {
      if (GONE.has((e as NodeJS.ErrnoException).code ?? "")) return -1;
      throw e;
    }
  }

  /** The parent's descriptor and the last component of real path `real` (not ""). */
  parentOf(real: string): { dirfd: number; name: string } {
    return { dirfd: this.dir(parentOf(real)), name: baseOf(real) };
  }

  /**
   * Resolve a logical directory path (a cleaned entry name's directory) inside the root.
   * Without hooks a missing or non-directory component is an InvalidError; with hooks it is
   * made or replaced (as umoci's MkdirAll does for an entry's parents).
   */
  resolve(logical: string, hooks: ResolveHooks | null): DirRef {
    if (logical === "") {
      hooks?.touched?.(this.rootFd, "");
      return { real: "", fd: this.rootFd };
    }
    const known = this.resolved.get(logical);
    if (known !== undefined) {
      const fd = this.tryDir(known);
      if (fd >= 0) {
        // (resolved before, perhaps without hooks: the directory's time is still to be kept)
        hooks?.touched?.(fd, known);
        return { real: known, fd };
      }
      this.resolved.delete(logical);
    }
    // The common case: no symlink on the way, every component there (one system call).
    if (!hooks?.locked) {
      const fd = this.tryDir(logical);
      if (fd >= 0) {
        this.resolved.set(logical, logical);
        hooks?.touched?.(fd, logical);
        return { real: logical, fd };
      }
    }
    const real = this.walk(logical, hooks);
    this.resolved.set(logical, real);
    const fd = this.dir(real);
    hooks?.touched?.(fd, real);
    return { real, fd };
  }

  /** Component by component from the root, symlinks followed inside the root. */
  private walk(logical: string, hooks: ResolveHooks | null): string {
    const pending = logical.split("/").reverse();
    const resolved: string[] = [];
    let fd = this.rootFd;
    let links = 0;
    const walked: string[] = [];
    while (pending.length) {
      const c = pending.pop()!;
      if (c === "" || c === ".") continue;
      const here = resolved.join("/");
      if (c === "..") {
        resolved.pop();
        fd = this.dir(resolved.join("/"));
        continue;
      }
      walked.push(c);
      const st = statAt(fd, cname(c), { missingOk: true });
      if (st && isLink(st)) {
        if (++links > MAX_SYMLINKS) throw new InvalidError(`too many levels of symbolic links resolving ${JSON.stringify(displayName(logical))}`);
        const target = fileName(readlinkAt(fd, cname(c)));
        if (target.startsWith("/")) {
          resolved.length = 0;
          fd = this.rootFd;
        }
        for (const t of target.split("/").reverse()) pending.push(t);
        continue;
      }
      if (!st || !isDir(st)) {
        if (!hooks) throw new InvalidError(`${JSON.stringify(displayName(walked.join("/")))} ${st ? "is not a directory" : "does not exist"}`);
        hooks.touched?.(fd, here);
        if (st) hooks.remove(fd, here, c);
        hooks.makeDir(fd, here, c);
      } else if (hooks?.locked && (st.mode & 0o700) !== 0o700) {
        hooks.locked(fd, here, c, st);
      }
      resolved.push(c);
      fd = this.dir(resolved.join("/"));
    }
    return resolved.join("/");
  }

  /** lstat of real path `real` (null when missing; ENOTDIR/ELOOP on the way count as missing). */
  stat(real: string): Stat | null {
    if (real === "") return statFd(this.rootFd);
    const dirfd = this.tryDir(parentOf(real));
    if (dirfd < 0) return null;
    return statAt(dirfd, cname(baseOf(real)), { missingOk: true });
  }

  /**
   * Run `fn` on directory `real` through its parent's descriptor if it is still the inode `want`
   * names (dev, ino; any directory when not given), reached without symlinks. Returns false,
   * changing nothing, when it is gone or another inode.
   */
  withDir(real: string, want: { dev?: number; ino?: number }, fn: (dirfd: number, name: Buffer, st: Stat) => void): boolean {
    let dirfd: number, name: Buffer;
    if (real === "") {
      // the root: through itself (O_PATH fds take "." relative calls)
      dirfd = this.rootFd;
      name = Buffer.from(".\0");
    } else {
      dirfd = this.tryDir(parentOf(real));
      if (dirfd < 0) return false;
      name = Buffer.from(cnameExact(baseOf(real), 2));
    }
    const st = statAt(dirfd, name, { missingOk: true });
    if (!st || !isDir(st)) return false;
    if (want.ino !== undefined && (st.ino !== want.ino || st.dev !== want.dev)) return false;
    fn(dirfd, name, st);
    return true;
  }

  /**
   * Remove `name` in directory `dirfd` and everything below it, relative to descriptors only
   * (nothing below is reached by a path). Directories lacking u+rwx are opened up first (a
   * rootless caller cannot list or empty them otherwise). Missing: nothing happens.
   */
  removeAll(dirfd: number, name: string): void {
    removeAt(dirfd, Buffer.from(cnameExact(name, 1)));
  }

  /** The xattrs of `name` in `dirfd` (not followed): names and values, in the kernel's order. */
  listXattrs(dirfd: number, parentReal: string, name: string): Map<string, Buffer> {
    return readXattrs(this.xattrPath(dirfd, parentReal, name));
  }

  setXattr(dirfd: number, parentReal: string, name: string, key: string, value: Uint8Array): void {
    lsetxattr(this.xattrPath(dirfd, parentReal, name), key, value);
  }

  removeXattr(dirfd: number, parentReal: string, name: string, key: string): void {
    lremovexattr(this.xattrPath(dirfd, parentReal, name), key);
  }

  /**
   * A path for the l*xattr calls that names `name` in the directory held as `dirfd`: through
   * /proc/self/fd (the kernel follows our own descriptor, then looks up the one name, not
   * following it). Without /proc (some build chroots) the root-relative path, which the caller
   * has just resolved in this thread.
   */
  private xattrPath(dirfd: number, parentReal: string, name: string): Buffer {
    const bytes = cnameExact(name, 1);
    const head = HAVE_PROC_FD ? `/proc/self/fd/${dirfd}/` : `${this.abs(parentReal)}/`;
    return Buffer.concat([Buffer.from(head), bytes.subarray(0, bytes.length - 1)]);
  }
}

const HAVE_PROC_FD = existsSync("/proc/self/fd");

function removeAt(dirfd: number, name: Buffer): void {
  const st = statAt(dirfd, name, { missingOk: true });
  if (!st) return;
  if (!isDir(st)) {
    unlinkAt(dirfd, name);
    return;
  }
  if ((st.mode & 0o700) !== 0o700) chmodAt(dirfd, name, (st.mode & 0o7777) | 0o700);
  const r = tryOpenAt(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (r.fd < 0) {
    if (r.errno === ENOENT) return;
    if (r.errno === ENOTDIR || r.errno === ELOOP) { unlinkAt(dirfd, name); return; }
    openAt(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC); // throws the error
  }
  try {
    for (const ent of readDirFd(r.fd)) {
      const child = Buffer.alloc(ent.name.length + 1);
      ent.name.copy(child);
      // (d_type saves a stat for files; a directory or an unknown type goes the full way)
      if (ent.type === 8 || ent.type === 10) {
        try { unlinkAt(r.fd, child); continue; } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "ENOENT") continue;
          throw e;
        }
      }
      removeAt(r.fd, child);
    }
  } finally {
    closeFd(r.fd);
  }
  unlinkAt(dirfd, name, { dir: true });
}

export { AT_SYMLINK_NOFOLLOW, joinPath };
