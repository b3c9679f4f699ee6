/**
 * Reading a tree boci did not make (the repack walk, the layer generator, mtree-validate): every
 * inode is reached as a name in a directory descriptor already held, never by a path from the
 * top, and never followed: a regular file is opened `O_NOFOLLOW | O_NONBLOCK` in its parent
 * (a FIFO or device never blocks) and refused unless fstat says it is a regular file; its
 * content and xattrs are then read through that descriptor.
 */
import * as fs from "node:fs";
import { InvalidError } from "../errors";
import { closeFd, fgetxattr, flistxattr, openAt, statFd, type Stat } from "../sys/at";
import { O_CLOEXEC, O_NOFOLLOW, O_NONBLOCK, O_RDONLY } from "../sys";
import { S_IFMT, S_IFREG } from "./tree";

/**
 * Open `name` (a NUL-terminated byte string, rootfs/name.ts `cname`) in directory `dirfd` for
 * reading: the name itself is never followed (O_NOFOLLOW), a FIFO or device never blocks
 * (O_NONBLOCK), and anything but a regular file is refused (InvalidError `SHOWN: not a regular
 * file`; it may have changed since it was looked at). `shown` names it in messages. Returns the
 * descriptor and its fstat; the caller closes it (closeFd).
 */
export function openRegularAt(dirfd: number, name: Uint8Array, shown: string): { fd: number; st: Stat } {
  const fd = openAt(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  let st: Stat;
  try {
    st = statFd(fd);
  } catch (e) {
    closeFd(fd);
    throw e;
  }
  if ((st.mode & S_IFMT) !== S_IFREG) {
    closeFd(fd);
    throw new InvalidError(`${shown}: not a regular file`);
  }
  return { fd, st };
}

/** openRegularAt, the descriptor only (the old `openRegularForRead`, relative to a directory). */
export function openRegularForRead(dirfd: number, name: Uint8Array, shown: string): number {
  return openRegularAt(dirfd, name, shown).fd;
}

/**
 * Every xattr of the file or directory `fd` is open on (O_RDONLY; an O_PATH descriptor cannot
 * be asked), names in the kernel's order; none where the filesystem has no xattrs.
 */
export function readXattrsFd(fd: number): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let names: string[];
  try { names = flistxattr(fd); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOTSUP" || code === "EOPNOTSUPP") return out;
    throw e;
  }
  for (const n of names) {
    const v = fgetxattr(fd, n);
    if (v) out.set(n, v);
  }
  return out;
}

const CHUNK = 4 << 20;
/** One read buffer for the synchronous hasher (never shared across an await). */
let chunkBuf: Buffer | undefined;

/**
 * sha256 (hex) of the content of the regular file `fd` is open on, read from offset 0 with
 * pread (the descriptor's own offset is neither used nor moved), in large chunks.
 */
export function hashFd(fd: number): string {
  const h = new Bun.CryptoHasher("sha256");
  const buf = (chunkBuf ??= Buffer.allocUnsafe(CHUNK));
  let pos = 0;
  for (;;) {
    const n = fs.readSync(fd, buf, 0, CHUNK, pos);
    if (n <= 0) break;
    pos += n;
    h.update(n === CHUNK ? buf : buf.subarray(0, n));
  }
  return h.digest("hex");
}
