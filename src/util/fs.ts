import * as fs from "node:fs";
import * as path from "node:path";
import { ClobberError, InvalidError } from "../errors";
import { removeOnInterrupt } from "./cleanup";

/** A short random hex string for temporary names. */
export function randomName(): string {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return Buffer.from(b).toString("hex");
}

export interface AtomicWriteOptions {
  /** Where the temporary file goes (same filesystem as `dest`); default: beside `dest`. */
  tmpDir?: string;
  mode?: number;
  /** fsync the file and its directory (default true). */
  fsync?: boolean;
}

/**
 * Write a file atomically: a temporary file (`.tmp-NAME-PID-RANDOM`, created O_EXCL|O_NOFOLLOW,
 * so nothing planted there is followed) in `tmpDir`, fsynced, renamed over `dest`. Readers see
 * either the old or the new content, never a mix; a symlink at `dest` is replaced, never
 * followed. The temporary file is removed on failure and on SIGINT/SIGTERM (util/cleanup.ts).
 */
export function writeFileAtomic(dest: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): void {
  writeFileAtomicWith(dest, (write) => write(typeof data === "string" ? Buffer.from(data) : data), opts);
}

/** As writeFileAtomic, with the content handed to `write` in pieces by `fill`. */
export function writeFileAtomicWith(dest: string, fill: (write: (b: Uint8Array) => void) => void, opts: AtomicWriteOptions = {}): void {
  const dir = opts.tmpDir ?? path.dirname(dest);
  const tmp = path.join(dir, `.tmp-${path.basename(dest)}-${process.pid}-${randomName()}`);
  const sync = opts.fsync !== false;
  const c = fs.constants;
  const fd = fs.openSync(tmp, c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, opts.mode ?? 0o644);
  const unregister = removeOnInterrupt(tmp);
  try {
    try {
      fill((b) => { for (let off = 0; off < b.length;) off += fs.writeSync(fd, b, off); });
      if (sync) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, dest);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  } finally {
    unregister();
  }
  if (sync) fsyncDir(path.dirname(dest));
}

/**
 * Write a file a user named, atomically (writeFileAtomic), refusing (ClobberError, exit 5) to
 * replace anything at `dest` that is not a regular file: a symlink is neither followed nor
 * replaced (`/dev/stdout` is one), a FIFO or device is not written into.
 */
export function writeRegularFileAtomic(dest: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): void {
  let st: fs.Stats | undefined;
  try { st = fs.lstatSync(dest); } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  if (st && !st.isFile()) throw new ClobberError(`${dest} exists and is not a regular file (${st.isSymbolicLink() ? "a symbolic link" : "a " + fileTypeName(st).replace(/^an? /, "")}); refusing to replace it`);
  writeFileAtomic(dest, data, opts);
}

/**
 * Read a file that someone else may control (a file of a bundle): opened
 * O_RDONLY|O_NONBLOCK|O_NOFOLLOW, so a symlink is not followed and a FIFO cannot hang us, and
 * read only if fstat says it is a regular file. A symlink or any other kind of file is an
 * InvalidError (exit 4) naming `what`, as is one above `maxBytes`; errors from open (ENOENT,
 * EACCES) are thrown as they are.
 */
export function readRegularFile(p: string, what: string = p, opts: { maxBytes?: number } = {}): { data: Buffer; stat: fs.BigIntStats } {
  const c = fs.constants;
  let fd: number;
  try {
    fd = fs.openSync(p, c.O_RDONLY | c.O_NONBLOCK | c.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // ELOOP: the name is a symlink. ENXIO: a socket (or a FIFO without a writer, for O_WRONLY).
    if (code === "ELOOP") throw new InvalidError(`${what} is a symbolic link; refusing to follow it`, { cause: e });
    if (code === "ENXIO") throw new InvalidError(`${what} is not a regular file`, { cause: e });
    throw e;
  }
  try {
    const stat = fs.fstatSync(fd, { bigint: true });
    if (!stat.isFile()) throw new InvalidError(`${what} is not a regular file (${fileTypeName(stat)})`);
    if (opts.maxBytes !== undefined && stat.size > BigInt(opts.maxBytes)) throw new InvalidError(`${what} is larger than ${opts.maxBytes} bytes; refusing to read it`);
    return { data: fs.readFileSync(fd), stat };
  } finally {
    fs.closeSync(fd);
  }
}

/** "a symlink", "a fifo", ... for messages about a file that is not what was expected. */
export function fileTypeName(st: fs.BigIntStats | fs.Stats): string {
  if (st.isSymbolicLink()) return "a symlink";
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a fifo";
  if (st.isSocket()) return "a socket";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isFile()) return "a regular file";
  return "an unknown file type";
}

/** fsync a directory so a rename inside it is durable. Errors are ignored (some filesystems refuse). */
export function fsyncDir(dir: string): void {
  let fd = -1;
  try {
    fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    fs.fsyncSync(fd);
  } catch {
    /* best effort */
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}
