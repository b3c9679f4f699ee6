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
 *
 * A lock file is opened with O_NOFOLLOW|O_NONBLOCK and must be a regular file: a planted
 * symlink would otherwise make `tag` create or open a file outside the layout, and a FIFO
 * would block the open.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { BociError } from "../errors";
import { flock } from "../sys";
import { withDefaultSignals } from "../util/cleanup";
import { type Owner, chownNewFile, lstatOrNull, notA } from "./layout-fs";

export type LockMode = "sh" | "ex";

export interface HeldLock { release(): void }

export const GC_LOCK = ".boci-gc.lock";
export const INDEX_LOCK = ".boci-index.lock";

/**
 * Take a lock file in the layout. Tries without blocking first; if the layout is busy, calls
 * `onWait` once and then blocks until the lock is free. A reader that cannot create the lock
 * file (read-only layout) gets a no-op lock when `optional` is set. A lock file this call
 * creates is given `owner` (the layout's owner when running as root: see layoutOwner).
 */
export function takeLock(layoutPath: string, name: string, mode: LockMode, opts: { onWait?: (msg: string) => void; optional?: boolean; owner?: Owner | null } = {}): HeldLock {
  const fd = openLockFile(layoutPath, name, opts.optional ?? false, opts.owner ?? null);
  if (fd === null) return { release() {} };
  try {
    if (!flock(fd, mode, { nonblock: true })) {
      opts.onWait?.(`layout is locked by another process; waiting for ${name === GC_LOCK ? "gc lock" : "index lock"}`);
      // (a signal while waiting stops the command at once: util/cleanup.ts withDefaultSignals)
      withDefaultSignals(() => flock(fd, mode));
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

const C = fs.constants;

/**
 * Open (creating if needed) a lock file in the layout root, never through a symlink. Falls back
 * to read-only for a read-only layout; returns null when even that fails and `optional` is set.
 * Throws InvalidError when the name is a symlink or not a regular file.
 */
function openLockFile(layoutPath: string, name: string, optional: boolean, owner: Owner | null): number | null {
  const file = path.join(layoutPath, name);
  const refuse = (e: unknown): never => {
    const st = lstatOrNull(file);
    if (st && !st.isFile()) throw notA(name, "regular file", st);
    throw new BociError(`lock layout: open ${name}: ${(e as Error).message}`, { cause: e });
  };
  const tryOpen = (flags: number): number | NodeJS.ErrnoException => {
    try { return fs.openSync(file, flags, 0o644); } catch (e) { return e as NodeJS.ErrnoException; }
  };
  const hostile = (e: NodeJS.ErrnoException) => e.code === "ELOOP" || e.code === "EISDIR" || e.code === "ENXIO";
  // O_EXCL first, to know whether this call made the file (and must give it the layout's owner).
  let fd = tryOpen(C.O_RDWR | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW | C.O_NONBLOCK);
  const created = typeof fd === "number";
  if (!created && (fd as NodeJS.ErrnoException).code === "EEXIST") fd = tryOpen(C.O_RDWR | C.O_CREAT | C.O_NOFOLLOW | C.O_NONBLOCK);
  if (typeof fd !== "number") {
    const first = fd;
    if (hostile(first)) return refuse(first);
    fd = tryOpen(C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    if (typeof fd !== "number") {
      if (hostile(fd)) return refuse(fd);
      if (optional) return null;
      return refuse(first);
    }
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile()) {
    fs.closeSync(fd);
    throw notA(name, "regular file", st);
  }
  if (created) {
    try { chownNewFile(fd, name, owner); } catch (e) { fs.closeSync(fd); throw e; }
  }
  return fd;
}
