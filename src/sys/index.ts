/**
 * Thin bun:ffi bindings to glibc for what node:fs lacks: xattrs on the link itself, mknod,
 * flock. libc is opened on first use. Errors are Node-style: an Error with `code` ("ENOTSUP"),
 * `errno` (positive number), `syscall` and `path`, message "lsetxattr PATH NAME: operation not
 * supported". Everything here is synchronous and blocks the calling thread.
 */
import type { Pointer } from "bun:ffi";
import type * as Ffi from "bun:ffi";
import type * as Os from "node:os";
import { closeSync } from "node:fs";

type Lib = {
  lgetxattr(path: Uint8Array, name: Uint8Array, value: Uint8Array | null, size: number): number | bigint;
  lsetxattr(path: Uint8Array, name: Uint8Array, value: Uint8Array | null, size: number, flags: number): number;
  llistxattr(path: Uint8Array, list: Uint8Array | null, size: number): number | bigint;
  lremovexattr(path: Uint8Array, name: Uint8Array): number;
  mknod(path: Uint8Array, mode: number, dev: bigint): number;
  flock(fd: number, op: number): number;
  openat(dirfd: number, path: Uint8Array, flags: number, mode: number): number;
  openat2(dirfd: number, path: Uint8Array, how: BigUint64Array): number;
  errno(): number;
  at: Record<string, (...a: unknown[]) => unknown>;
};

let lib: Lib | null = null;

/** SYS_openat2: the same number on every Linux architecture (added in 5.6). */
const SYS_OPENAT2 = 437;

function libc(): Lib {
  if (lib) return lib;
  if (process.platform !== "linux") throw Object.assign(new Error(`libc bindings need linux, not ${process.platform}`), { code: "ENOSYS" });
  // dlopen happens on first use so commands that never need libc pay nothing for it (not even
  // for loading bun:ffi: about 1 MiB of start-up RSS).
  const { dlopen, FFIType: T, read } = require("bun:ffi") as typeof Ffi;
  const en = osErrno();
  ENODATA = en.ENODATA ?? ENODATA; ERANGE = en.ERANGE ?? ERANGE; EINTR = en.EINTR ?? EINTR;
  EAGAIN = en.EAGAIN ?? EAGAIN; ENOSYS = en.ENOSYS ?? ENOSYS; EXDEV = en.EXDEV ?? EXDEV;
  const { symbols } = dlopen("libc.so.6", {
    lgetxattr: { args: [T.ptr, T.ptr, T.ptr, T.u64], returns: T.i64_fast },
    lsetxattr: { args: [T.ptr, T.ptr, T.ptr, T.u64, T.i32], returns: T.i32 },
    llistxattr: { args: [T.ptr, T.ptr, T.u64], returns: T.i64_fast },
    lremovexattr: { args: [T.ptr, T.ptr], returns: T.i32 },
    mknod: { args: [T.ptr, T.u32, T.u64], returns: T.i32 },
    flock: { args: [T.i32, T.i32], returns: T.i32 },
    execve: { args: [T.ptr, T.ptr, T.ptr], returns: T.i32 },
    openat: { args: [T.i32, T.ptr, T.i32, T.u32], returns: T.i32 },
    syscall: { args: [T.i64, T.i64, T.ptr, T.ptr, T.u64], returns: T.i64 },
    __errno_location: { args: [], returns: T.ptr },
    // the *at family (src/rootfs/ does every change to a rootfs through a parent directory fd)
    mkdirat: { args: [T.i32, T.ptr, T.u32], returns: T.i32 },
    symlinkat: { args: [T.ptr, T.i32, T.ptr], returns: T.i32 },
    linkat: { args: [T.i32, T.ptr, T.i32, T.ptr, T.i32], returns: T.i32 },
    mknodat: { args: [T.i32, T.ptr, T.u32, T.u64], returns: T.i32 },
    fchownat: { args: [T.i32, T.ptr, T.u32, T.u32, T.i32], returns: T.i32 },
    fchmodat: { args: [T.i32, T.ptr, T.u32, T.i32], returns: T.i32 },
    fchmod: { args: [T.i32, T.u32], returns: T.i32 },
    fchown: { args: [T.i32, T.u32, T.u32], returns: T.i32 },
    utimensat: { args: [T.i32, T.ptr, T.ptr, T.i32], returns: T.i32 },
    futimens: { args: [T.i32, T.ptr], returns: T.i32 },
    unlinkat: { args: [T.i32, T.ptr, T.i32], returns: T.i32 },
    readlinkat: { args: [T.i32, T.ptr, T.ptr, T.u64], returns: T.i64_fast },
    statx: { args: [T.i32, T.ptr, T.i32, T.u32, T.ptr], returns: T.i32 },
    close: { args: [T.i32], returns: T.i32 },
    write: { args: [T.i32, T.ptr, T.u64], returns: T.i64_fast },
    dup: { args: [T.i32], returns: T.i32 },
    fdopendir: { args: [T.i32], returns: T.ptr },
    readdir: { args: [T.ptr], returns: T.ptr },
    closedir: { args: [T.ptr], returns: T.i32 },
    fsetxattr: { args: [T.i32, T.ptr, T.ptr, T.u64, T.i32], returns: T.i32 },
    // (reading xattrs through a descriptor: the repack walk, layer/generate.ts)
    flistxattr: { args: [T.i32, T.ptr, T.u64], returns: T.i64_fast },
    fgetxattr: { args: [T.i32, T.ptr, T.ptr, T.u64], returns: T.i64_fast },
  });
  const s = symbols as unknown as Record<string, (...a: unknown[]) => unknown>;
  lib = {
    lgetxattr: (p, n, v, size) => s.lgetxattr!(p, n, v, size) as number | bigint,
    lsetxattr: (p, n, v, size, flags) => s.lsetxattr!(p, n, v, size, flags) as number,
    llistxattr: (p, l, size) => s.llistxattr!(p, l, size) as number | bigint,
    lremovexattr: (p, n) => s.lremovexattr!(p, n) as number,
    mknod: (p, mode, dev) => s.mknod!(p, mode, dev) as number,
    flock: (fd, op) => s.flock!(fd, op) as number,
    openat: (dirfd, p, flags, mode) => s.openat!(dirfd, p, flags, mode) as number,
    // openat2(2) has no glibc wrapper: syscall(SYS_openat2, dirfd, path, &how, sizeof how).
    openat2: (dirfd, p, how) => Number(s.syscall!(SYS_OPENAT2, dirfd, p, how, 24)),
    errno: () => read.i32(s.__errno_location!() as Pointer, 0),
    at: s,
  };
  return lib;
}

/** The libc symbols, loaded (for src/sys/at.ts). */
export function libcSymbols(): { call: Record<string, (...a: unknown[]) => unknown>; errno(): number } {
  const l = libc();
  return { call: l.at, errno: l.errno };
}

function checkNoNul(s: string): void {
  if (s.includes("\0")) throw Object.assign(new Error(`invalid argument ${JSON.stringify(s)}: contains a NUL byte`), { code: "EINVAL" });
}

/** A path as a C string: text is UTF-8 encoded; bytes (a raw file name) are taken as they are. */
function cstr(s: string | Uint8Array): Buffer {
  if (typeof s !== "string") {
    // (a C string, as rootfs/name.ts cname makes them: the name ends at the first NUL)
    const end = s.indexOf(0);
    if (end >= 0) return Buffer.from(s.buffer, s.byteOffset, end + 1);
    const b = Buffer.alloc(s.length + 1);
    b.set(s);
    return b;
  }
  checkNoNul(s);
  return Buffer.from(s + "\0", "utf8");
}

function pathText(p: string | Uint8Array): string {
  if (typeof p === "string") return p;
  const end = p.indexOf(0);
  return Buffer.from(end < 0 ? p : p.subarray(0, end)).toString("utf8");
}

// os.constants is built on first access, which costs every command's start-up: the errno
// numbers below are Linux's generic ones until libc() reads the real table (every comparison
// with them is of a libc call's result, so after libc() ran).
let ENODATA = 61, ERANGE = 34, EINTR = 4, EAGAIN = 11, ENOSYS = 38, EXDEV = 18;
function osErrno(): Record<string, number> {
  return (require("node:os") as typeof Os).constants.errno as Record<string, number>;
}
let errnoNames: Map<number, string> | undefined;
function errnoName(num: number): string | undefined {
  if (!errnoNames) {
    errnoNames = new Map();
    for (const [name, n] of Object.entries(osErrno())) {
      // Prefer the common spellings where Linux has aliases.
      if (!errnoNames.has(n) || name === "ENOTSUP" || name === "EAGAIN") errnoNames.set(n, name);
    }
  }
  return errnoNames.get(num);
}

const messages: Record<string, string> = {
  EPERM: "operation not permitted",
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EEXIST: "file exists",
  ENOTDIR: "not a directory",
  EISDIR: "is a directory",
  EINVAL: "invalid argument",
  ENOSPC: "no space left on device",
  EROFS: "read-only file system",
  ENAMETOOLONG: "file name too long",
  ELOOP: "too many levels of symbolic links",
  ENOTSUP: "operation not supported",
  ENODATA: "no data available",
  ERANGE: "numerical result out of range",
  E2BIG: "argument list too long",
  EAGAIN: "resource temporarily unavailable",
  EBADF: "bad file descriptor",
  EINTR: "interrupted system call",
  EDQUOT: "disk quota exceeded",
};

/** A Node-style errno error (compatible with NodeJS.ErrnoException). */
export class SysError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  readonly path: string;
  constructor(syscall: string, errno: number, path: string, detail = "") {
    const code = errnoName(errno) ?? `E${errno}`;
    super(`${syscall} ${path}${detail ? " " + detail : ""}: ${messages[code] ?? code.toLowerCase()}`);
    this.name = "SysError";
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
    this.path = path;
  }
}


/** The value of xattr `name` on `path` itself (symlinks not followed); null if it is not set. */
export function lgetxattr(path: string | Uint8Array, name: string): Buffer | null {
  const l = libc();
  const p = cstr(path);
  const n = cstr(name);
  for (let attempt = 0; ; attempt++) {
    const size = Number(l.lgetxattr(p, n, null, 0));
    if (size < 0) {
      const e = l.errno();
      if (e === ENODATA) return null;
      throw new SysError("lgetxattr", e, pathText(path), name);
    }
    if (size === 0) return Buffer.alloc(0);
    const buf = Buffer.alloc(size);
    const got = Number(l.lgetxattr(p, n, buf, size));
    if (got >= 0) return buf.subarray(0, got);
    const e = l.errno();
    if (e === ENODATA) return null;
    if (e !== ERANGE || attempt > 8) throw new SysError("lgetxattr", e, pathText(path), name); // ERANGE: it grew; retry
  }
}

/** Set xattr `name` on `path` itself (created or replaced). */
export function lsetxattr(path: string | Uint8Array, name: string, value: Uint8Array): void {
  const l = libc();
  // A zero-length TypedArray may have no backing pointer; pass a 1-byte buffer with size 0.
  const v = value.length === 0 ? new Uint8Array(1) : value;
  if (l.lsetxattr(cstr(path), cstr(name), v, value.length, 0) !== 0) throw new SysError("lsetxattr", l.errno(), pathText(path), name);
}

/** Linux caps a name list and a value at 64 KiB (XATTR_LIST_MAX, XATTR_SIZE_MAX). */
const XATTR_MAX = 65536;
let scratchPath = Buffer.alloc(4096);
let scratchList: Buffer | null = null;

/** `path` as a NUL-terminated string in a reused buffer (valid until the next call). */
function scratchCstr(path: string | Uint8Array): Buffer {
  if (typeof path !== "string") return cstr(path);
  checkNoNul(path);
  const need = Buffer.byteLength(path, "utf8") + 1;
  if (need > scratchPath.length) scratchPath = Buffer.alloc(Math.max(need, scratchPath.length * 2));
  scratchPath.write(path, 0, "utf8");
  scratchPath[need - 1] = 0;
  return scratchPath;
}

/** Names of all xattrs on `path` itself, in the kernel's order. */
export function llistxattr(path: string | Uint8Array): string[] {
  const l = libc();
  // One call into a 64 KiB buffer (the kernel's limit for the list): no size probe, no
  // allocation; the walk of a large tree makes this call once per file.
  const buf = (scratchList ??= Buffer.alloc(XATTR_MAX));
  const got = Number(l.llistxattr(scratchCstr(path), buf, XATTR_MAX));
  if (got >= 0) return splitNames(buf, got);
  const e = l.errno();
  if (e !== ERANGE) throw new SysError("llistxattr", e, pathText(path));
  return llistxattrSlow(path);
}

/** The names in the first `n` bytes of a NUL-separated xattr name list. */
function splitNames(buf: Buffer, n: number): string[] {
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

/** The probe-then-read path (only if a list ever exceeds the buffer). */
function llistxattrSlow(path: string | Uint8Array): string[] {
  const l = libc();
  const p = cstr(path);
  for (let attempt = 0; ; attempt++) {
    const size = Number(l.llistxattr(p, null, 0));
    if (size < 0) throw new SysError("llistxattr", l.errno(), pathText(path));
    if (size === 0) return [];
    const buf = Buffer.alloc(size);
    const got = Number(l.llistxattr(p, buf, size));
    if (got >= 0) return splitNames(buf, got);
    const e = l.errno();
    if (e !== ERANGE || attempt > 8) throw new SysError("llistxattr", e, pathText(path));
  }
}

/** Remove xattr `name` from `path` itself; throws ENODATA if it is not set. */
export function lremovexattr(path: string | Uint8Array, name: string): void {
  const l = libc();
  if (l.lremovexattr(cstr(path), cstr(name)) !== 0) throw new SysError("lremovexattr", l.errno(), pathText(path), name);
}

/** glibc's gnu_dev_makedev: the 64-bit dev_t for major:minor. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

/** Create a device node or FIFO. `mode` is S_IFCHR/S_IFBLK/S_IFIFO | permissions (umask applies). */
export function mknod(path: string, mode: number, major: number, minor: number): void {
  const l = libc();
  if (l.mknod(cstr(path), mode >>> 0, makedev(major, minor)) !== 0) throw new SysError("mknod", l.errno(), path);
}

const LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4, LOCK_UN = 8;

/**
 * flock(2) on an open fd. Returns true when the lock was taken (or released), false only with
 * `nonblock` when another open file description holds a conflicting lock. A blocking call
 * blocks the whole thread (the event loop too).
 */
export function flock(fd: number, op: "sh" | "ex" | "un", opts: { nonblock?: boolean } = {}): boolean {
  const l = libc();
  const code = (op === "sh" ? LOCK_SH : op === "ex" ? LOCK_EX : LOCK_UN) | (opts.nonblock ? LOCK_NB : 0);
  for (;;) {
    if (l.flock(fd, code) === 0) return true;
    const e = l.errno();
    if (e === EINTR) continue;
    if (e === EAGAIN && opts.nonblock) return false;
    throw new SysError("flock", e, `fd ${fd}`);
  }
}

/**
 * execve(2): this process (same pid, same descriptors) becomes `path` run with `argv` and `env`.
 * Returns only when the kernel refused, as a SysError.
 */
export function execve(path: string, argv: string[], env: Record<string, string | undefined>): never {
  const l = libc();
  const { ptr } = require("bun:ffi") as typeof Ffi;
  // (the strings stay referenced by `keep` until the call: the pointer arrays only hold addresses)
  const keep: Buffer[] = [];
  const list = (items: string[]): BigUint64Array => {
    const a = new BigUint64Array(items.length + 1);
    items.forEach((s, i) => { const b = cstr(s); keep.push(b); a[i] = BigInt(ptr(b)); });
    return a;
  };
  const envList = Object.entries(env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
  const p = cstr(path);
  l.at.execve!(p, list(argv), list(envList));
  throw new SysError("execve", l.errno(), path);
}

export function geteuid(): number {
  return process.geteuid?.() ?? 0;
}

export function getegid(): number {
  return process.getegid?.() ?? 0;
}

// ---- opening below a directory without following symlinks ------------------------------------

export const O_RDONLY = 0;
export const O_DIRECTORY = 0o200000;
export const O_NOFOLLOW = 0o400000;
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;
export const O_NONBLOCK = 0o4000;
const AT_FDCWD = -100;
const RESOLVE_NO_MAGICLINKS = 0x02;
const RESOLVE_NO_SYMLINKS = 0x04;
const RESOLVE_BENEATH = 0x08;

/** false once openat2 answered ENOSYS (kernels before 5.6), or when BOCI_NO_OPENAT2=1 forces the fallback. */
let haveOpenat2: boolean | undefined;

/** Whether openBeneath uses openat2(2) (true) or its component-by-component openat fallback. */
export function usesOpenat2(): boolean {
  haveOpenat2 ??= process.env.BOCI_NO_OPENAT2 !== "1";
  return haveOpenat2;
}

/** Open a directory by path (symlinks in `path` followed) as an O_PATH descriptor: a handle for openBeneath. */
export function openDirHandle(path: string): number {
  const l = libc();
  const fd = l.openat(AT_FDCWD, cstr(path), O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0) throw new SysError("open", l.errno(), path);
  return fd;
}

/**
 * Open `rel` (a clean relative path without `.`/`..` components, or "." for `dirfd` itself)
 * below the directory descriptor `dirfd`, following no symlink anywhere on the way, the last
 * component included, and never leaving `dirfd`. `flags` are open(2) flags (O_NOFOLLOW and
 * O_CLOEXEC are added). The kernel resolves it with openat2(2) RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS where it can; before Linux 5.6 each component is opened with
 * openat(O_NOFOLLOW) in turn, which is as strict. Throws SysError: ELOOP when a component is a
 * symlink, ENOTDIR, ENOENT, EXDEV for a `..`.
 */
export function openBeneath(dirfd: number, rel: string | Uint8Array, flags: number, mode = 0): number {
  const l = libc();
  const f = flags | O_NOFOLLOW | O_CLOEXEC;
  const path = cstr(rel);
  if (usesOpenat2()) {
    const how = new BigUint64Array([BigInt(f), BigInt(mode), BigInt(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)]);
    const fd = l.openat2(dirfd, path, how);
    if (fd >= 0) return fd;
    const e = l.errno();
    if (e !== ENOSYS) throw new SysError("openat2", e, pathText(rel));
    haveOpenat2 = false;
  }
  // (components as byte strings: a name need not be UTF-8)
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= path.length - 1; i++) {
    if (path[i] !== 0x2f && path[i] !== 0) continue;
    const c = path.subarray(start, i);
    start = i + 1;
    if (c.length === 0 || (c.length === 1 && c[0] === 0x2e)) continue;
    if (c.length === 2 && c[0] === 0x2e && c[1] === 0x2e) throw new SysError("openat", EXDEV, pathText(rel));
    const z = Buffer.alloc(c.length + 1);
    c.copy(z);
    parts.push(z);
  }
  if (parts.length === 0) parts.push(Buffer.from(".\0"));
  let cur = dirfd;
  try {
    for (let i = 0; i < parts.length; i++) {
      const last = i === parts.length - 1;
      const fd = l.openat(cur, parts[i]!, last ? f : O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, last ? mode : 0);
      if (fd < 0) {
        const e = l.errno();
        throw new SysError("openat", e, pathText(rel));
      }
      if (cur !== dirfd) closeFd(cur);
      cur = fd;
    }
    return cur;
  } catch (e) {
    if (cur !== dirfd) closeFd(cur);
    throw e;
  }
}

function closeFd(fd: number): void {
  try { closeSync(fd); } catch { /* already closed */ }
}
