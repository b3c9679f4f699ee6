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

/** Values per directory in DirTable's columns: mtime, mtimeNsec, mode (NaN: none), dev, ino. */
const NCOL = 5;

/**
 * Directories by real path, each with its Pending values, in columns instead of a Map of
 * objects: a layer of 20,000 directories held 3.4 MiB in the Map's table alone and ~1 MiB in
 * its value objects (a heap snapshot of a 200,000-file unpack), and the table's doubling at
 * 16,384 entries raised that unpack's peak by ~9 MiB. Here a path is a slot: its key in `keys`,
 * its values in one Float64Array, found through an open-addressing index of slot numbers.
 */
export class DirTable {
  private keys: Array<string | null> = [];
  private cols = new Float64Array(64 * NCOL);
  /** slot + 1 per bucket; 0 empty, -1 a dropped slot's bucket */
  private index = new Int32Array(128);
  private live = 0;
  private used = 0;

  get size(): number { return this.live; }

  private bucket(key: string): number {
    let h = 0x811c9dc5;
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
    const mask = this.index.length - 1;
    for (let b = h & mask; ; b = (b + 1) & mask) {
      const v = this.index[b]!;
      if (v === 0 || (v > 0 && this.keys[v - 1] === key)) return b;
    }
  }

  private slot(key: string): number {
    return this.index[this.bucket(key)]! - 1;
  }

  has(key: string): boolean { return this.slot(key) >= 0; }

  get(key: string): Pending | undefined {
    const i = this.slot(key);
    return i < 0 ? undefined : this.at(i);
  }

  private at(i: number): Pending {
    const c = this.cols, o = i * NCOL;
    const p: Pending = { mtime: c[o]!, dev: c[o + 3]!, ino: c[o + 4]! };
    if (!Number.isNaN(c[o + 1]!)) p.mtimeNsec = c[o + 1]!;
    if (!Number.isNaN(c[o + 2]!)) p.mode = c[o + 2]!;
    return p;
  }

  set(key: string, p: Pending): void {
    let b = this.bucket(key);
    let i = this.index[b]! - 1;
    if (i < 0) {
      if ((this.used + 1) * 2 > this.index.length) { this.rehash(); b = this.bucket(key); }
      i = this.keys.length;
      this.keys.push(key);
      if ((i + 1) * NCOL > this.cols.length) {
        const cols = new Float64Array(this.cols.length * 2);
        cols.set(this.cols);
        this.cols = cols;
      }
      this.index[b] = i + 1;
      this.live++;
      this.used++;
    }
    const c = this.cols, o = i * NCOL;
    c[o] = p.mtime;
    c[o + 1] = p.mtimeNsec ?? NaN;
    c[o + 2] = p.mode ?? NaN;
    c[o + 3] = p.dev;
    c[o + 4] = p.ino;
  }

  delete(key: string): void {
    const b = this.bucket(key);
    const i = this.index[b]! - 1;
    if (i < 0) return;
    this.keys[i] = null;
    this.index[b] = -1;
    this.live--;
  }

  /** Every live key with its values, in the order `compare` gives the keys. */
  *sorted(compare: (a: string, b: string) => number): Generator<[string, Pending]> {
    const slots: number[] = [];
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] != null) slots.push(i);
    const keys = this.keys as string[];
    slots.sort((a, b) => compare(keys[a]!, keys[b]!));
    for (const i of slots) yield [keys[i]!, this.at(i)];
  }

  clear(): void {
    this.keys = [];
    this.cols = new Float64Array(64 * NCOL);
    this.index = new Int32Array(128);
    this.live = this.used = 0;
  }

  /** A bigger index when half full (dropped buckets count until now: they are left out here). */
  private rehash(): void {
    let size = this.index.length;
    while (size < (this.live + 1) * 4) size *= 2;
    this.index = new Int32Array(size);
    this.used = 0;
    for (let i = 0; i < this.keys.length; i++) {
      const k = this.keys[i];
      if (k == null) continue;
      this.index[this.bucket(k)] = i + 1;
      this.used++;
    }
  }
}

export class DeferredDirs {
  /** real dir → what to set after the layer */
  private times = new DirTable();
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
    for (const [d, p] of this.times.sorted((a, b) => depth(b) - depth(a) || (a < b ? 1 : -1))) {
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
