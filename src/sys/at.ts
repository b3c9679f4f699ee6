/**
 * The *at system calls, relative to a directory descriptor: what src/rootfs/ builds every change
 * to a root filesystem on. Names are NUL-terminated byte strings (`Uint8Array`, see rootfs/name.ts
 * `cname`), so any byte sequence Linux allows is a name here. Errors are SysError (errno code,
 * syscall, and the name as text). Everything is synchronous.
 */
import type { Pointer } from "bun:ffi";
import type * as Ffi from "bun:ffi";

// bun:ffi is loaded on first use (start-up RSS of commands that never read a directory here).
let ffiToBuffer: typeof Ffi.toBuffer | undefined;
function toBuffer(p: Pointer, off: number, len: number): Buffer {
  ffiToBuffer ??= (require("bun:ffi") as typeof Ffi).toBuffer;
  return ffiToBuffer(p, off, len);
}
import { SysError, libcSymbols } from "./index";

export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;
export const AT_EMPTY_PATH = 0x1000;
const UTIME_OMIT = (1 << 30) - 2;
const STATX_BASIC = 0x7ff;

let sym: ReturnType<typeof libcSymbols> | null = null;
function c(): ReturnType<typeof libcSymbols> {
  return (sym ??= libcSymbols());
}

/** The name as text for an error message (NUL dropped; invalid bytes as U+FFFD). */
function shown(name: Uint8Array): string {
  let end = name.indexOf(0);
  if (end < 0) end = name.length;
  return Buffer.from(name.buffer, name.byteOffset, end).toString("utf8");
}

function fail(syscall: string, name: Uint8Array | string): never {
  throw new SysError(syscall, c().errno(), typeof name === "string" ? name : shown(name));
}

const EMPTY = new Uint8Array(1);

/** What statx(2) says of an inode, in plain numbers. */
export interface Stat {
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  /** (ino and dev as numbers: exact below 2^53, which is what identity checks need) */
  ino: number;
  dev: number;
  rdevMajor: number;
  rdevMinor: number;
  atimeSec: number;
  atimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
  devMajor: number;
  devMinor: number;
}

const statBuf = new Uint8Array(256);
const statView = new DataView(statBuf.buffer);

function u64(off: number): number {
  return statView.getUint32(off + 4, true) * 0x100000000 + statView.getUint32(off, true);
}
function i64(off: number): number {
  return statView.getInt32(off + 4, true) * 0x100000000 + statView.getUint32(off, true);
}

/** statx(dirfd, name, AT_SYMLINK_NOFOLLOW): the name itself, never what it points to. null: ENOENT. */
export function statAt(dirfd: number, name: Uint8Array, opts: { missingOk?: boolean } = {}): Stat | null {
  const s = c();
  if ((s.call.statx!(dirfd, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC, statBuf) as number) !== 0) {
    if (opts.missingOk && s.errno() === 2) return null;
    fail("statx", name);
  }
  return readStat();
}

/** fstat through statx(fd, "", AT_EMPTY_PATH): also works on O_PATH descriptors. */
export function statFd(fd: number): Stat {
  if ((c().call.statx!(fd, EMPTY, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC, statBuf) as number) !== 0) fail("statx", `fd ${fd}`);
  return readStat();
}

function readStat(): Stat {
  const v = statView;
  return {
    nlink: v.getUint32(16, true),
    uid: v.getUint32(20, true),
    gid: v.getUint32(24, true),
    mode: v.getUint16(28, true),
    ino: u64(32),
    size: u64(40),
    atimeSec: i64(64),
    atimeNsec: v.getUint32(72, true),
    mtimeSec: i64(112),
    mtimeNsec: v.getUint32(120, true),
    ctimeSec: i64(96),
    ctimeNsec: v.getUint32(104, true),
    devMajor: v.getUint32(136, true),
    devMinor: v.getUint32(140, true),
    rdevMajor: v.getUint32(128, true),
    rdevMinor: v.getUint32(132, true),
    dev: v.getUint32(136, true) * 0x100000 + v.getUint32(140, true),
  };
}

/** openat(2); `flags` as given (add O_NOFOLLOW yourself). Returns the fd; throws SysError. */
export function openAt(dirfd: number, name: Uint8Array, flags: number, mode = 0): number {
  const fd = c().call.openat!(dirfd, name, flags, mode) as number;
  if (fd < 0) fail("openat", name);
  return fd;
}

/** openat(2), or -1 with the errno returned instead of thrown (for EEXIST/ENOENT probes). */
export function tryOpenAt(dirfd: number, name: Uint8Array, flags: number, mode = 0): { fd: number; errno: number } {
  const s = c();
  const fd = s.call.openat!(dirfd, name, flags, mode) as number;
  return fd >= 0 ? { fd, errno: 0 } : { fd: -1, errno: s.errno() };
}

export function mkdirAt(dirfd: number, name: Uint8Array, mode: number): void {
  if ((c().call.mkdirat!(dirfd, name, mode) as number) !== 0) fail("mkdirat", name);
}

export function symlinkAt(target: Uint8Array, dirfd: number, name: Uint8Array): void {
  if ((c().call.symlinkat!(target, dirfd, name) as number) !== 0) fail("symlinkat", name);
}

/** linkat(2) without AT_SYMLINK_FOLLOW: a hard link to the inode `oldName` itself names. */
export function linkAt(oldDirfd: number, oldName: Uint8Array, newDirfd: number, newName: Uint8Array): void {
  if ((c().call.linkat!(oldDirfd, oldName, newDirfd, newName, 0) as number) !== 0) fail("linkat", newName);
}

export function mknodAt(dirfd: number, name: Uint8Array, mode: number, dev: bigint): void {
  if ((c().call.mknodat!(dirfd, name, mode >>> 0, dev) as number) !== 0) fail("mknodat", name);
}

/** fchownat(AT_SYMLINK_NOFOLLOW): the name itself. */
export function chownAt(dirfd: number, name: Uint8Array, uid: number, gid: number): void {
  if ((c().call.fchownat!(dirfd, name, uid >>> 0, gid >>> 0, AT_SYMLINK_NOFOLLOW) as number) !== 0) fail("fchownat", name);
}

/**
 * fchmodat(2). Linux follows a symlink here, so callers use it only on a name they have just
 * made or checked in this thread, never on a symlink (symlinks have no mode of their own).
 */
export function chmodAt(dirfd: number, name: Uint8Array, mode: number): void {
  if ((c().call.fchmodat!(dirfd, name, mode >>> 0, 0) as number) !== 0) fail("fchmodat", name);
}

export function chmodFd(fd: number, mode: number): void {
  if ((c().call.fchmod!(fd, mode >>> 0) as number) !== 0) fail("fchmod", `fd ${fd}`);
}

export function chownFd(fd: number, uid: number, gid: number): void {
  if ((c().call.fchown!(fd, uid >>> 0, gid >>> 0) as number) !== 0) fail("fchown", `fd ${fd}`);
}

const times = new Uint8Array(32);
const timesView = new DataView(times.buffer);
function setTime(off: number, sec: number, nsec: number): void {
  const hi = Math.floor(sec / 0x100000000);
  timesView.setUint32(off, sec - hi * 0x100000000, true);
  timesView.setInt32(off + 4, hi, true);
  timesView.setUint32(off + 8, nsec, true);
  timesView.setUint32(off + 12, 0, true);
}
function fillTimes(atime: number | null, mtime: number, atimeNsec = 0, mtimeNsec?: number): void {
  if (atime === null) setTime(0, 0, UTIME_OMIT);
  else setTime(0, Math.floor(atime), atimeNsec || Math.round((atime - Math.floor(atime)) * 1e9));
  setTime(16, Math.floor(mtime), mtimeNsec ?? Math.round((mtime - Math.floor(mtime)) * 1e9));
}

/**
 * utimensat(AT_SYMLINK_NOFOLLOW): set atime and mtime (seconds, may be fractional; atime null
 * leaves it). With explicit nanoseconds both are exact.
 */
export function utimesAt(dirfd: number, name: Uint8Array, atime: number | null, mtime: number, ns?: { atime: number; mtime: number }): void {
  fillTimes(atime, mtime, ns?.atime, ns?.mtime);
  if ((c().call.utimensat!(dirfd, name, times, AT_SYMLINK_NOFOLLOW) as number) !== 0) fail("utimensat", name);
}

export function utimesFd(fd: number, atime: number | null, mtime: number, ns?: { atime: number; mtime: number }): void {
  fillTimes(atime, mtime, ns?.atime, ns?.mtime);
  if ((c().call.futimens!(fd, times) as number) !== 0) fail("futimens", `fd ${fd}`);
}

export function unlinkAt(dirfd: number, name: Uint8Array, opts: { dir?: boolean } = {}): void {
  if ((c().call.unlinkat!(dirfd, name, opts.dir ? AT_REMOVEDIR : 0) as number) !== 0) fail("unlinkat", name);
}

let linkBuf: Buffer | null = null;
/** readlinkat(2): the target's bytes. */
export function readlinkAt(dirfd: number, name: Uint8Array): Buffer {
  const buf = (linkBuf ??= Buffer.alloc(4097));
  const n = Number(c().call.readlinkat!(dirfd, name, buf, 4096));
  if (n < 0) fail("readlinkat", name);
  return Buffer.from(buf.subarray(0, n));
}

export function closeFd(fd: number): void {
  c().call.close!(fd);
}

/** write(2) of all of `buf` (a regular file: short writes only on error or a full disk). */
export function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) {
    const n = Number(c().call.write!(fd, off === 0 ? buf : buf.subarray(off), buf.length - off));
    if (n < 0) {
      if (c().errno() === 4) continue;
      fail("write", `fd ${fd}`);
    }
    off += n;
  }
}

/**
 * The names in directory `fd` (not . or ..), as raw bytes, with their d_type (DT_DIR 4, DT_LNK
 * 10, DT_REG 8, 0 unknown). `fd` stays open and its position is not moved (a dup is read).
 */
export function readDirFd(fd: number): Array<{ name: Buffer; type: number }> {
  const s = c();
  const d2 = s.call.dup!(fd) as number;
  if (d2 < 0) fail("dup", `fd ${fd}`);
  const dir = s.call.fdopendir!(d2) as Pointer | null;
  if (!dir) {
    closeFd(d2);
    fail("fdopendir", `fd ${fd}`);
  }
  const out: Array<{ name: Buffer; type: number }> = [];
  try {
    for (;;) {
      const ent = s.call.readdir!(dir) as Pointer | null;
      if (!ent) break;
      // struct dirent (glibc, 64-bit): d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name[]
      const head = toBuffer(ent, 0, 19);
      const reclen = head.readUInt16LE(16);
      const type = head[18]!;
      const raw = toBuffer(ent, 19, Math.max(1, reclen - 19));
      let end = raw.indexOf(0);
      if (end < 0) end = raw.length;
      if ((end === 1 && raw[0] === 0x2e) || (end === 2 && raw[0] === 0x2e && raw[1] === 0x2e)) continue;
      out.push({ name: Buffer.from(raw.subarray(0, end)), type });
    }
  } finally {
    s.call.closedir!(dir);
  }
  return out;
}

// ---- xattrs through a descriptor ---------------------------------------------------------------

function cText(s: string): Buffer {
  return Buffer.from(s + "\0", "utf8");
}

/** Set xattr `name` on the file `fd` is open on (not O_PATH). */
export function fsetxattr(fd: number, name: string, value: Uint8Array): void {
  const v = value.length === 0 ? new Uint8Array(1) : value;
  if ((c().call.fsetxattr!(fd, cText(name), v, value.length, 0) as number) !== 0) fail("fsetxattr", name);
}

const XATTR_MAX = 65536;
let xattrList: Buffer | null = null;

/**
 * Names of the xattrs of the file `fd` is open on (not O_PATH: the kernel refuses f*xattr on
 * those), in the kernel's order. One call into a 64 KiB buffer (the kernel's limit for a list).
 */
export function flistxattr(fd: number): string[] {
  const buf = (xattrList ??= Buffer.alloc(XATTR_MAX));
  const n = Number(c().call.flistxattr!(fd, buf, XATTR_MAX));
  if (n < 0) fail("flistxattr", `fd ${fd}`);
  const names: string[] = [];
  let start = 0;
  for (let i = 0; i < n; i++) {
    if (buf[i] === 0) {
      if (i > start) names.push(buf.toString("utf8", start, i));
      start = i + 1;
    }
  }
  return names;
}

/** The value of xattr `name` of the file `fd` is open on; null when it is not set (ENODATA). */
export function fgetxattr(fd: number, name: string): Buffer | null {
  const s = c();
  const n = cText(name);
  for (let attempt = 0; ; attempt++) {
    const size = Number(s.call.fgetxattr!(fd, n, null, 0));
    if (size < 0) {
      if (s.errno() === 61) return null;
      fail("fgetxattr", name);
    }
    if (size === 0) return Buffer.alloc(0);
    const buf = Buffer.alloc(size);
    const got = Number(s.call.fgetxattr!(fd, n, buf, size));
    if (got >= 0) return buf.subarray(0, got);
    const e = s.errno();
    if (e === 61) return null;
    // ERANGE: it grew between the calls; ask again
    if (e !== 34 || attempt > 8) fail("fgetxattr", name);
  }
}

/**
 * utimensat(2) following the last component (for `/proc/self/fd/N`, which names the inode a
 * descriptor holds, O_PATH ones included); utimesAt never follows.
 */
export function utimesFollow(dirfd: number, name: Uint8Array, atime: number | null, mtime: number, ns?: { atime: number; mtime: number }): void {
  fillTimes(atime, mtime, ns?.atime, ns?.mtime);
  if ((c().call.utimensat!(dirfd, name, times, 0) as number) !== 0) fail("utimensat", name);
}

/** getdents64's number per architecture (no glibc wrapper before 2.30). */
const SYS_GETDENTS64: Record<string, number> = { x64: 217, arm64: 61, riscv64: 61, loong64: 61, ppc64: 202, s390x: 220 };
let dentsBuf: Buffer | null = null;

/**
 * The names in directory `fd` (an O_RDONLY | O_DIRECTORY descriptor just opened: read from its
 * offset, which is moved), not . or .., as raw bytes (`name`, and `cname` the same with a NUL
 * after it) with their d_type: as readDirFd, with one
 * getdents64 system call per 64 KiB of entries instead of a readdir call per entry (the repack
 * walk lists every directory of a tree). Falls back to readDirFd where the call is unknown.
 */
export function listDirFd(fd: number): Array<{ name: Buffer; cname: Buffer; type: number }> {
  const nr = SYS_GETDENTS64[process.arch];
  if (nr === undefined) {
    return readDirFd(fd).map((e) => {
      const z = Buffer.alloc(e.name.length + 1);
      e.name.copy(z);
      return { name: z.subarray(0, e.name.length), cname: z, type: e.type };
    });
  }
  const s = c();
  const buf = (dentsBuf ??= Buffer.alloc(65536));
  const out: Array<{ name: Buffer; cname: Buffer; type: number }> = [];
  for (;;) {
    // (syscall(nr, fd, buf, count): the count goes in a pointer-sized argument)
    const n = Number(s.call.syscall!(nr, fd, buf, buf.length, 0));
    if (n === 0) break;
    if (n < 0) {
      if (s.errno() === 4) continue;
      fail("getdents64", `fd ${fd}`);
    }
    let off = 0;
    while (off < n) {
      // struct linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name[]
      const reclen = buf.readUInt16LE(off + 16);
      const type = buf[off + 18]!;
      let end = buf.indexOf(0, off + 19);
      if (end < 0 || end > off + reclen) end = off + reclen;
      const len = end - off - 19;
      if (!((len === 1 && buf[off + 19] === 0x2e) || (len === 2 && buf[off + 19] === 0x2e && buf[off + 20] === 0x2e))) {
        // (one copy: the name with its NUL, for the kernel, and a view of the name)
        const z = Buffer.from(buf.subarray(off + 19, end + 1));
        z[len] = 0;
        out.push({ name: z.subarray(0, len), cname: z, type });
      }
      off += reclen;
    }
  }
  return out;
}
