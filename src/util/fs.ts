import * as fs from "node:fs";
import * as path from "node:path";

/** A short random hex string for temporary names. */
export function randomName(): string {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return Buffer.from(b).toString("hex");
}

/**
 * Write a file atomically: temp file in `tmpDir` (same filesystem), fsync, rename over `dest`.
 * Readers see either the old or the new content, never a mix.
 */
export function writeFileAtomic(dest: string, data: string | Uint8Array, opts: { tmpDir?: string; mode?: number } = {}): void {
  const dir = opts.tmpDir ?? path.dirname(dest);
  const tmp = path.join(dir, `.tmp-${path.basename(dest)}-${randomName()}`);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, opts.mode ?? 0o644);
  try {
    fs.writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, dest);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(path.dirname(dest));
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
