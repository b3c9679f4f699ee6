/**
 * The one open-up-then-restore rule for rootless (unpack's DeferredDirs, the repack walk,
 * mtree-validate --rootless): an inode we own but may not enter or read (a directory lacking
 * u+rx, a file lacking u+r) is given the bits it lacks through its parent's descriptor while we
 * work on it, and afterwards gets back its own mode and the atime/mtime it had, on the inode that
 * was recorded only (another inode that took its name is never touched).
 *
 * Two ways to reach it again: `giveBackAt` through a parent descriptor and the name, checked
 * against the recorded dev/ino (DeferredDirs, which reaches its directories again from the root
 * after a layer), and `OpenedUp` handles that hold an O_PATH descriptor of the inode itself (the
 * walk: nothing is looked up again at all; the chmod and utimens go through /proc/self/fd/N,
 * which the kernel resolves to exactly that inode).
 */
import { existsSync } from "node:fs";
import { chmodAt, closeFd, openAt, statAt, statFd, utimesAt, utimesFollow, type Stat } from "../sys/at";
import { O_CLOEXEC, O_DIRECTORY, O_NOFOLLOW, O_PATH } from "../sys";
import { S_IFMT } from "./tree";

/** A directory is entered and listed with u+rx; it is opened up to u+rwx (as umoci does). */
export const DIR_NEED = 0o500, DIR_ADD = 0o700;
/** A regular file is read with u+r. */
export const FILE_NEED = 0o400, FILE_ADD = 0o400;

const AT_FDCWD = -100;
const HAVE_PROC_FD = existsSync("/proc/self/fd");

/** What is given back: the inode's identity, its own permission bits and its times. */
export interface Recorded {
  dev: number; ino: number; type: number; mode: number;
  atimeSec: number; atimeNsec: number; mtimeSec: number; mtimeNsec: number;
}

export function recordOf(st: Stat): Recorded {
  return {
    dev: st.dev, ino: st.ino, type: st.mode & S_IFMT, mode: st.mode & 0o7777,
    atimeSec: st.atimeSec, atimeNsec: st.atimeNsec, mtimeSec: st.mtimeSec, mtimeNsec: st.mtimeNsec,
  };
}

/** Whether a rootless caller must open up an inode of stat `st` to have the bits `need`. */
export function lacks(st: Stat, need: number): boolean {
  return (st.mode & need) !== need;
}

/** chmod `name` in `dirfd` (its stat `st`, just taken there, not a symlink) to its mode plus `add`. */
export function openUpAt(dirfd: number, name: Uint8Array, st: Stat, add: number): void {
  chmodAt(dirfd, name, (st.mode & 0o7777) | add);
}

/**
 * Give `name` in `dirfd` its recorded mode and times back if it is still the inode `rec`
 * records (`keepTimes`: set the times it has now instead). Returns false, changing nothing,
 * when it is gone or another inode.
 */
export function giveBackAt(dirfd: number, name: Uint8Array, rec: Recorded, opts: { keepTimes?: boolean } = {}): boolean {
  const cur = statAt(dirfd, name, { missingOk: true });
  if (!cur || cur.ino !== rec.ino || cur.dev !== rec.dev || (cur.mode & S_IFMT) !== rec.type) return false;
  const t = opts.keepTimes ? cur : rec;
  chmodAt(dirfd, name, rec.mode);
  utimesAt(dirfd, name, t.atimeSec, t.mtimeSec, { atime: t.atimeNsec, mtime: t.mtimeNsec });
  return true;
}

/** An inode opened up and not yet given back (see openUpHeld). */
export interface OpenedUp {
  readonly rec: Recorded;
  /** O_PATH descriptor on the inode (with /proc), else on its parent directory */
  fd: number;
  /** without /proc: the name in the parent `fd` (checked against `rec` when given back) */
  readonly name: Uint8Array | null;
  done: boolean;
}

function procPath(fd: number): Buffer {
  return Buffer.from(`/proc/self/fd/${fd}\0`);
}

/**
 * Open up `name` in `dirfd` (stat `st`, just taken there) with `add`, holding a descriptor to
 * give it back with `giveBack` even after `dirfd` is closed. Throws (changing nothing) when the
 * name is no longer the inode `st` describes.
 */
export function openUpHeld(dirfd: number, name: Uint8Array, st: Stat, add: number): OpenedUp {
  const rec = recordOf(st);
  if (HAVE_PROC_FD) {
    const fd = openAt(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    try {
      const now = statFd(fd);
      if (now.ino !== rec.ino || now.dev !== rec.dev || (now.mode & S_IFMT) !== rec.type) throw new Error("changed while being read");
      chmodAt(AT_FDCWD, procPath(fd), rec.mode | add);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
    return { rec, fd, name: null, done: false };
  }
  // (no /proc, some build chroots: through the parent, the inode checked first)
  const parent = openAt(dirfd, Buffer.from(".\0"), O_PATH | O_DIRECTORY | O_CLOEXEC);
  const copy = Buffer.from(name.subarray(0, name.indexOf(0) + 1));
  try {
    const now = statAt(parent, copy);
    if (!now || now.ino !== rec.ino || now.dev !== rec.dev || (now.mode & S_IFMT) !== rec.type) throw new Error("changed while being read");
    openUpAt(parent, copy, st, add);
  } catch (e) {
    closeFd(parent);
    throw e;
  }
  return { rec, fd: parent, name: copy, done: false };
}

/** Give an opened-up inode its mode and times back and let go of its descriptor (once). */
export function giveBack(o: OpenedUp): void {
  if (o.done) return;
  o.done = true;
  try {
    if (o.name === null) {
      const p = procPath(o.fd);
      chmodAt(AT_FDCWD, p, o.rec.mode);
      utimesFollow(AT_FDCWD, p, o.rec.atimeSec, o.rec.mtimeSec, { atime: o.rec.atimeNsec, mtime: o.rec.mtimeNsec });
    } else {
      giveBackAt(o.fd, o.name, o.rec);
    }
  } finally {
    closeFd(o.fd);
  }
}

/**
 * Give back every handle in `held` not yet given back, the most recent first (a directory after
 * what was opened up inside it). Tries them all; throws the first error after.
 */
export function giveBackAll(held: OpenedUp[]): void {
  let first: unknown;
  for (let i = held.length - 1; i >= 0; i--) {
    try { giveBack(held[i]!); } catch (e) { first ??= e; }
  }
  held.length = 0;
  if (first !== undefined) throw first;
}
