/**
 * Directory metadata that can only be set after a layer: times (every child changes its
 * directory's mtime) and, rootless, modes (a directory must stay writable to us while the layer
 * fills it). Rootless, a directory lacking u+rwx is given it while we work below it and gets its
 * own mode (and times) back afterwards, by the one rule in open-up.ts.
 *
 * Each directory is remembered with its inode (dev, ino). After the layer it is reached again
 * through its parent's descriptor with no symlink followed, and changed only if it is still that
 * inode: a later entry that replaced it (by a symlink to anywhere, say) makes its deferred
 * metadata void, and nothing outside the root is ever touched.
 */
import { addContext } from "../errors";
import { chmodAt, utimesAt, type Stat } from "../sys/at";
import { cname } from "./name";
import { DIR_ADD, giveBackAt, lacks, openUpAt, recordOf, type Recorded } from "./open-up";
import { baseOf } from "./path";
import type { RootTree } from "./tree";

interface Pending { mtime: number; mtimeNsec?: number; mode?: number; dev: number; ino: number }

export class DeferredDirs {
  /** real dir → what to set after the layer */
  private times = new Map<string, Pending>();
  /** real dir opened up (rootless) → its own mode */
  private opened = new Map<string, Recorded>();

  constructor(private readonly tree: RootTree, private readonly rootless: boolean) {}

  has(real: string): boolean {
    return this.times.has(real);
  }

  /** After the layer: set `mtime` (and rootless `mode`) on `real`, the inode `st` describes. */
  set(real: string, st: Stat, mtime: number, mode?: number): void {
    this.times.set(real, { mtime, mode, dev: st.dev, ino: st.ino });
  }

  /**
   * `real` (held as `fd`, its stat in `st`) is about to get a child: keep its time as it is now,
   * and (rootless) open it up if it lacks u+rwx.
   */
  touch(real: string, st: Stat, dirfd: number | null): void {
    if (this.times.has(real)) return;
    this.times.set(real, { mtime: st.mtimeSec, mtimeNsec: st.mtimeNsec, dev: st.dev, ino: st.ino });
    if (this.rootless && lacks(st, DIR_ADD)) this.openUp(real, st, dirfd);
  }

  /** Rootless: give `real` u+rwx until the layer is done (through its parent `dirfd`, or found again). */
  openUp(real: string, st: Stat, dirfd: number | null): void {
    if (!this.opened.has(real) && !this.times.get(real)?.mode) this.opened.set(real, recordOf(st));
    // (rootfs/open-up.ts: the one rule)
    if (dirfd !== null && real !== "") openUpAt(dirfd, cname(baseOf(real)), st, DIR_ADD);
    else this.tree.withDir(real, st, (fd, name, cur) => openUpAt(fd, name, cur, DIR_ADD));
  }

  /** `real` was removed: what was deferred for it dies with it. */
  drop(real: string): void {
    this.times.delete(real);
    this.opened.delete(real);
  }

  /**
   * Set everything deferred, deepest first; then (rootless) give opened-up directories their
   * modes back. `onMode` hears of each directory whose rootless mode was set.
   */
  settle(onMode?: (real: string, mode: number) => void): void {
    const dirs = [...this.times.keys()].sort((a, b) => depth(b) - depth(a) || (a < b ? 1 : -1));
    for (const d of dirs) {
      const p = this.times.get(d)!;
      try {
        const done = this.tree.withDir(d, p, (fd, name) => {
          if (p.mode !== undefined) chmodAt(fd, name, p.mode & 0o7777);
          utimesAt(fd, name, p.mtime, p.mtime, p.mtimeNsec !== undefined ? { atime: p.mtimeNsec, mtime: p.mtimeNsec } : undefined);
        });
        if (done && p.mode !== undefined) {
          this.opened.delete(d);
          onMode?.(d, p.mode & 0o7777);
        }
      } catch (e) {
        throw addContext(`set times of ${d || "."}`, e);
      }
    }
    // (their own modes back; the times they have now, which the layer set, stay)
    for (const [d, o] of [...this.opened].sort(([a], [b]) => b.length - a.length)) {
      this.tree.withDir(d, o, (fd, name) => giveBackAt(fd, name, o, { keepTimes: true }));
    }
    this.opened.clear();
    this.times.clear();
  }

  /**
   * Run `fn` with every ancestor of real path `real` given u+rwx (rootless: an ancestor locked by
   * the image hides it), restoring their modes and times after. When an ancestor is not a
   * directory reached without symlinks, `fn` does not run.
   */
  withOpenAncestors(real: string, fn: () => void): void {
    const restore: Array<{ dir: string; rec: Recorded }> = [];
    try {
      let cur = "";
      const parts = real.split("/");
      parts.pop();
      for (const c of parts) {
        cur = cur === "" ? c : `${cur}/${c}`;
        const dir = cur;
        const reached = this.tree.withDir(dir, {}, (fd, name, st) => {
          if (lacks(st, DIR_ADD)) {
            openUpAt(fd, name, st, DIR_ADD);
            restore.push({ dir, rec: recordOf(st) });
          }
        });
        if (!reached) return;
      }
      fn();
    } finally {
      for (const { dir, rec } of restore.reverse()) {
        this.tree.withDir(dir, rec, (fd, name) => giveBackAt(fd, name, rec));
      }
    }
  }
}

function depth(p: string): number {
  let n = 0;
  for (let i = 0; i < p.length; i++) if (p.charCodeAt(i) === 0x2f) n++;
  return p === "" ? -1 : n;
}
