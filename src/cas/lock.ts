/**
 * Layout locks (umoci has none: its issue #146). Two flock(2) locks, always taken in this order:
 *
 *  - the *gc lock* (`.boci-gc.lock`): held shared by every command that writes blobs or relies on
 *    blobs staying present (from the first blob written until index.json names them), and
 *    exclusive by `gc`, so gc never sweeps a blob a live writer is about to reference;
 *  - the *index lock* (`.boci-index.lock`): held exclusive for each read-modify-write of
 *    index.json, so concurrent tag/config/repack never lose each other's updates.
 *
 * flock locks die with the process, so a killed command never leaves the layout locked.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { BociError } from "../errors";
import { flock } from "../sys";

export type LockMode = "sh" | "ex";

export interface HeldLock { release(): void }

export const GC_LOCK = ".boci-gc.lock";
export const INDEX_LOCK = ".boci-index.lock";

/**
 * Take a lock file in the layout. Tries without blocking first; if the layout is busy, calls
 * `onWait` once and then blocks until the lock is free. A reader that cannot create the lock
 * file (read-only layout) gets a no-op lock when `optional` is set.
 */
export function takeLock(layoutPath: string, name: string, mode: LockMode, opts: { onWait?: (msg: string) => void; optional?: boolean } = {}): HeldLock {
  const file = path.join(layoutPath, name);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  } catch (e) {
    try {
      fd = fs.openSync(file, fs.constants.O_RDONLY);
    } catch {
      if (opts.optional) return { release() {} };
      throw new BociError(`lock layout: open ${name}: ${(e as Error).message}`, { cause: e });
    }
  }
  try {
    if (!flock(fd, mode, { nonblock: true })) {
      opts.onWait?.(`layout is locked by another process; waiting for ${name === GC_LOCK ? "gc lock" : "index lock"}`);
      flock(fd, mode);
    }
  } catch (e) {
    fs.closeSync(fd);
    throw new BociError(`lock layout: ${(e as Error).message}`, { cause: e });
  }
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      try { flock(fd, "un"); } finally { fs.closeSync(fd); }
    },
  };
}
