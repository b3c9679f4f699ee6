/**
 * Safe file access inside a layout. The layout is hostile input: any name in it may be a
 * symlink, a FIFO, a device or a directory where a file belongs. The rules, for every path
 * below the layout's root (the root itself is the user's to choose):
 *
 *  - every directory on the way is a real directory, checked by lstat (a symlinked `blobs/`,
 *    `blobs/sha256` or `.boci-tmp` is refused, never followed);
 *  - a file is read only through `openLayoutFile`: O_RDONLY|O_NONBLOCK|O_NOFOLLOW (a FIFO
 *    cannot block the open, a final symlink is not followed), then refused unless fstat says it
 *    is a regular file;
 *  - a file is created with O_EXCL|O_NOFOLLOW, and a name is only ever replaced by rename(2),
 *    which replaces a symlink's name, never its target.
 *
 * Limit: node:fs has no openat(2), so the directory checks and the open are separate steps; a
 * process racing to swap a checked directory for a symlink is not defended against (a static
 * hostile layout is).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { InvalidError, addContext } from "../errors";

const C = fs.constants;
/** Flags for every read of a layout file. */
export const READ_FLAGS = C.O_RDONLY | C.O_NONBLOCK | C.O_NOFOLLOW;
/** Flags for every temporary file created in a layout. */
export const CREATE_FLAGS = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;

import { fileTypeName } from "../util/fs";
export { fileTypeName };

/** lstat, or null when the name does not exist (ENOENT or ENOTDIR). Other errors throw. */
export function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return null;
    throw e;
  }
}

/** The one error for a name in the layout that is not what it must be. */
export function notA(rel: string, want: "directory" | "regular file", st: fs.Stats): InvalidError {
  if (st.isSymbolicLink()) return new InvalidError(`layout is invalid: ${rel} is a symlink (not followed)`);
  return new InvalidError(`layout is invalid: ${rel} is not a ${want} (it is ${fileTypeName(st)})`);
}

/** A uid and gid. */
export interface Owner { uid: number; gid: number }

/**
 * The owner every file and directory boci creates in a layout gets: the layout root's (stat,
 * which follows a symlinked root: the root is the user's to choose), but only when running as
 * root; null otherwise (nothing is chowned). umoci 0.6's rule (oci/cas/dir `fchown`: "to avoid a
 * root umoci repack creating inaccessible files for the original user"); umoci applies it to
 * blobs and index.json, boci to everything it leaves in the layout (directories and lock files
 * too).
 */
export function layoutOwner(root: string): Owner | null {
  if (process.geteuid?.() !== 0) return null;
  const st = fs.statSync(root);
  return { uid: st.uid, gid: st.gid };
}

/**
 * Give a directory we just made the layout's owner, through a descriptor opened
 * O_DIRECTORY|O_NOFOLLOW (a name swapped for a symlink meanwhile is refused, not followed).
 */
export function chownNewDir(p: string, rel: string, owner: Owner): void {
  let fd: number;
  try {
    fd = fs.openSync(p, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW | C.O_NONBLOCK);
  } catch (e) {
    const st = lstatOrNull(p);
    if (st && !st.isDirectory()) throw notA(rel, "directory", st);
    throw addContext(`open ${rel}`, e);
  }
  try {
    fs.fchownSync(fd, owner.uid, owner.gid);
  } catch (e) {
    throw addContext(`fix ownership of ${rel}`, e);
  } finally {
    fs.closeSync(fd);
  }
}

/** fchown a file we just created to the layout's owner (no-op for null). */
export function chownNewFile(fd: number, rel: string, owner: Owner | null): void {
  if (!owner) return;
  try {
    fs.fchownSync(fd, owner.uid, owner.gid);
  } catch (e) {
    throw addContext(`fix ownership of ${rel}`, e);
  }
}

/**
 * Check that `rel` (a directory path relative to `root`, "/"-separated) and each directory above
 * it are real directories, by lstat. With `create`, missing ones are made (mode 0755, given
 * `owner` when one is passed) and looked at again. Returns false when one is missing (and not
 * created); throws InvalidError naming the first component that is a symlink or not a directory.
 */
export function checkLayoutDir(root: string, rel: string, opts: { create?: boolean; owner?: Owner | null } = {}): boolean {
  let sofar = "";
  for (const part of rel.split("/")) {
    if (!part) continue;
    sofar = sofar ? `${sofar}/${part}` : part;
    const p = path.join(root, sofar);
    let st = lstatOrNull(p);
    if (!st) {
      if (!opts.create) return false;
      let made = false;
      try {
        fs.mkdirSync(p, { mode: 0o755 });
        made = true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw addContext(`create ${sofar}`, e);
      }
      if (made && opts.owner) chownNewDir(p, sofar, opts.owner);
      st = fs.lstatSync(p);
    }
    if (!st.isDirectory()) throw notA(sofar, "directory", st);
  }
  return true;
}

export interface OpenedFile { fd: number; size: number }

/**
 * Open a layout file for reading, safely (see the module comment): the directories above it are
 * checked, the open cannot block or follow a final symlink, and anything but a regular file is
 * refused with InvalidError ("layout is invalid: index.json is not a regular file (it is a
 * fifo)"). Returns null when the file (or a directory above it) does not exist. The caller
 * closes `fd`.
 */
export function openLayoutFile(root: string, rel: string): OpenedFile | null {
  const dir = path.posix.dirname(rel);
  if (dir !== "." && !checkLayoutDir(root, dir)) return null;
  const p = path.join(root, rel);
  let fd: number;
  try {
    fd = fs.openSync(p, READ_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return null;
    // ELOOP (a symlink), ENXIO (a socket) and the like: say what the name is.
    const st = lstatOrNull(p);
    if (st && !st.isFile()) throw notA(rel, "regular file", st);
    throw addContext(`open ${rel}`, e);
  }
  let st: fs.Stats;
  try {
    st = fs.fstatSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    throw addContext(`stat ${rel}`, e);
  }
  if (!st.isFile()) {
    fs.closeSync(fd);
    throw notA(rel, "regular file", st);
  }
  return { fd, size: st.size };
}

/**
 * Read a whole (small) layout file safely. Returns null when it does not exist; throws
 * InvalidError when it is not a regular file or is larger than `maxSize` bytes.
 */
export function readLayoutFile(root: string, rel: string, maxSize: number): Buffer | null {
  const f = openLayoutFile(root, rel);
  if (!f) return null;
  try {
    if (f.size > maxSize) throw new InvalidError(`${rel}: ${f.size} bytes is over the limit of ${maxSize} bytes`);
    return readUpTo(f.fd, maxSize);
  } finally {
    fs.closeSync(f.fd);
  }
}

/** Read from `fd` until EOF or just past `max` bytes (a file that grew is then seen as too big). */
export function readUpTo(fd: number, max: number): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const buf = Buffer.allocUnsafe(Math.min(1 << 20, max + 1 - total));
    const n = fs.readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    chunks.push(buf.subarray(0, n));
    total += n;
    if (total > max) break;
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}

/** fs.read as a promise (a FileHandle cannot be made from an fd). */
export function readFd(fd: number, buf: Buffer, offset: number, length: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, offset, length, null, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/**
 * Does the layout file `rel` hold exactly `size` bytes hashing to the sha256 `hex`? False for a
 * missing name, a symlink, anything not a regular file, or an unreadable file.
 */
export function fileMatchesSha256(root: string, rel: string, size: number, hex: string): boolean {
  let f: OpenedFile | null;
  try { f = openLayoutFile(root, rel); } catch { return false; }
  if (!f) return false;
  try {
    if (f.size !== size) return false;
    const h = new Bun.CryptoHasher("sha256");
    const buf = Buffer.allocUnsafe(1 << 20);
    let total = 0;
    for (;;) {
      const n = fs.readSync(f.fd, buf, 0, buf.length, null);
      if (n === 0) break;
      total += n;
      if (total > size) return false;
      h.update(buf.subarray(0, n));
    }
    return total === size && h.digest("hex") === hex;
  } catch {
    return false;
  } finally {
    fs.closeSync(f.fd);
  }
}
