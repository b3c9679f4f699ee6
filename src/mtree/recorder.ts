/**
 * An incremental manifest, filled while a layer is extracted (one pass) and formatted at the end.
 *
 * Stored column-wise, not as one object per path: an unpack of 50,000 files held ~480 bytes of
 * JS heap per entry as objects (entry, path and hex digest strings, tree node), ~100 as columns
 * (the name in its directory's map, numbers in one Float64Array, the digest as 32 bytes). Entries
 * are materialized on demand, so a caller that reads them one at a time holds one at a time.
 */
import { InvalidError } from "../errors";
import { MTREE_TYPES, type MtreeEntry, type MtreeType } from "./entry";
import { checkPath } from "./format";
import { sortByBytes } from "./vis";

export interface MtreeRecorder {
  /**
   * Record (or replace) the entry at `entry.path`. A non-directory entry drops everything that was
   * recorded below that path (a file cannot have children); a directory keeps its children.
   * The entry's values are copied (its xattr map is kept by reference).
   */
  set(entry: MtreeEntry): void;
  /** Forget `path` and everything below it (whiteouts, replacements). Unknown paths are ignored. */
  delete(path: string): void;
  /** A fresh copy of the entry recorded at `path`, if any (changing it changes nothing here). */
  get(path: string): MtreeEntry | undefined;
  /** True when an entry is recorded at `path`. */
  has(path: string): boolean;
  /** Every recorded entry, parents before children (in no particular sibling order), each made as it is reached. */
  entries(): Generator<MtreeEntry>;
  /**
   * Every recorded path in go-mtree's walk order (per directory: the directory, its
   * non-directories by name bytes, then its subdirectories by name bytes, depth first), each
   * entry made as it is reached. Throws InvalidError, as formatMtree does, when a path has
   * children but no entry or an entry that is not a directory.
   */
  sorted(): Generator<MtreeEntry>;
  /** Replace each recorded sha256 for which `resolve` returns a digest (placeholders of pending hashes). */
  resolveDigests(resolve: (recorded: string) => string | undefined): void;
  /** Number of recorded entries. */
  readonly size: number;
}

/** The recorder's store with what repack needs of a manifest read back. */
export interface MtreeStore extends MtreeRecorder {
  /**
   * Keep a stat cache key (bundle/stat-cache.ts: dev, ino, size, mtimeNs, ctimeNs) for the entry
   * at `path`; ignored when nothing is recorded there.
   */
  setStat(path: string, key: readonly bigint[]): void;
  /** Forget every kept stat cache key. */
  clearStats(): void;
  /** True when a key was kept for `path` and `st` matches it in all five values. */
  sameStat(path: string, st: { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint; ctimeNs: bigint }): boolean;
  /** As get(), and mark the path as seen. */
  take(path: string): MtreeEntry | undefined;
  /** Every entry never returned by take(), in no particular order. */
  untaken(): Generator<MtreeEntry>;
}

export interface MtreeStoreOptions {
  /**
   * false: set() of a non-directory keeps what is recorded below it (a manifest read back keeps
   * every line; whether that makes a tree is the formatter's and the compare's business).
   */
  replaceSubtrees?: boolean;
}

// per-row presence bits
const HAS_ENTRY = 1, HAS_SIZE = 2, HAS_UID = 4, HAS_GID = 8, HAS_MODE = 16, HAS_NLINK = 32, HAS_TIME = 64, HAS_SHA = 128;
// numeric fields per row in `nums`
const F_SIZE = 0, F_UID = 1, F_GID = 2, F_MODE = 3, F_NLINK = 4, F_TIME = 5, NF = 6;
const HEX64 = /^[0-9a-f]{64}$/;
const TYPE_CODE = new Map<MtreeType, number>(MTREE_TYPES.map((t, i) => [t, i]));
const DIR = TYPE_CODE.get("dir")!;

/** Recorded values column by column, a row per path; row 0 is the root. */
class ColumnStore implements MtreeStore {
  private cap = 0;
  private rows = 0;
  private flags = new Uint8Array(0);
  private types = new Uint8Array(0);
  private nums = new Float64Array(0);
  private shas = Buffer.alloc(0);
  /** children of a row by name (rows with children only) */
  private kids: Array<Map<string, number> | undefined> = [];
  /** the rarer values: symlink targets, xattrs, digests that are not 64 hex digits */
  private links = new Map<number, string>();
  private xattrs = new Map<number, Map<string, Buffer>>();
  private shaText = new Map<number, string>();
  /** stat cache keys, five per row (allocated on first use); `hasStat` marks the rows that have one */
  private stats: BigInt64Array | null = null;
  private hasStat = new Uint8Array(0);
  private marks = new Uint8Array(0);
  private count = 0;
  private readonly replaceSubtrees: boolean;

  constructor(opts: MtreeStoreOptions = {}) {
    this.replaceSubtrees = opts.replaceSubtrees !== false;
    this.grow(1024);
    this.newRow(); // the root
  }

  get size(): number {
    return this.count;
  }

  private grow(cap: number): void {
    const flags = new Uint8Array(cap);
    flags.set(this.flags);
    const types = new Uint8Array(cap);
    types.set(this.types);
    const nums = new Float64Array(cap * NF);
    nums.set(this.nums);
    const shas = Buffer.allocUnsafeSlow(cap * 32);
    this.shas.copy(shas);
    const marks = new Uint8Array(cap);
    marks.set(this.marks);
    this.marks = marks;
    const hasStat = new Uint8Array(cap);
    hasStat.set(this.hasStat);
    this.hasStat = hasStat;
    if (this.stats) {
      const stats = new BigInt64Array(cap * 5);
      stats.set(this.stats);
      this.stats = stats;
    }
    this.flags = flags;
    this.types = types;
    this.nums = nums;
    this.shas = shas;
    this.cap = cap;
  }

  private newRow(): number {
    if (this.rows === this.cap) this.grow(this.cap * 2);
    const r = this.rows++;
    this.flags[r] = 0;
    this.marks[r] = 0;
    this.hasStat[r] = 0;
    return r;
  }

  /** The row of a path, by the path itself for the last one asked (repack asks two or three times running). */
  private findPath(path: string): number | undefined {
    if (path === this.lastPath) return this.lastRow;
    const r = this.locate(path, false);
    this.lastPath = path;
    this.lastRow = r;
    return r;
  }
  private lastPath: string | undefined;
  private lastRow: number | undefined;
  /** the last parent directory looked up, and its row (paths come in directory order mostly) */
  private parentPath: string | undefined;
  private parentRow = 0;

  /** The row of `path`, made (with any missing parents) when `create` is set. */
  private locate(path: string, create: boolean): number | undefined {
    checkPath(path);
    if (path === ".") return 0;
    const slash = path.lastIndexOf("/");
    const parent = slash < 0 ? "" : path.slice(0, slash);
    let p: number | undefined;
    if (parent === this.parentPath) p = this.parentRow;
    else {
      p = 0;
      if (parent !== "") {
        for (const name of parent.split("/")) {
          p = this.child(p, name, create);
          if (p === undefined) return undefined;
        }
      }
      this.parentPath = parent;
      this.parentRow = p;
    }
    return this.child(p, slash < 0 ? path : path.slice(slash + 1), create);
  }

  private child(r: number, name: string, create: boolean): number | undefined {
    let k = this.kids[r];
    let c = k?.get(name);
    if (c === undefined && create) {
      if (!k) this.kids[r] = k = new Map();
      c = this.newRow();
      k.set(name, c);
    }
    return c;
  }

  /** Forget a row and everything below it; returns how many entries that removed. */
  private drop(row: number): number {
    this.parentPath = undefined;
    let n = 0;
    const stack = [row];
    while (stack.length) {
      const r = stack.pop()!;
      if (this.flags[r]! & HAS_ENTRY) n++;
      this.flags[r] = 0;
      this.clearBeside(r);
      const k = this.kids[r];
      if (k) {
        for (const c of k.values()) stack.push(c);
        this.kids[r] = undefined;
      }
    }
    return n;
  }

  /** Forget what a row keeps outside the columns. */
  private clearBeside(r: number): void {
    this.links.delete(r);
    this.xattrs.delete(r);
    this.shaText.delete(r);
    this.hasStat[r] = 0;
  }

  set(e: MtreeEntry): void {
    this.lastPath = undefined;
    const r = this.locate(e.path, true)!;
    const kids = this.kids[r];
    if (e.type !== "dir" && kids && this.replaceSubtrees) {
      for (const c of kids.values()) this.count -= this.drop(c);
      this.kids[r] = undefined;
    }
    const code = TYPE_CODE.get(e.type);
    if (code === undefined) throw new InvalidError(`mtree recorder: unknown type ${JSON.stringify(e.type)}`);
    let f = this.flags[r]!;
    if (!(f & HAS_ENTRY)) this.count++;
    this.clearBeside(r);
    this.marks[r] = 0;
    f = HAS_ENTRY;
    const o = r * NF;
    const nums = this.nums;
    if (e.size !== undefined) { f |= HAS_SIZE; nums[o + F_SIZE] = e.size; }
    if (e.uid !== undefined) { f |= HAS_UID; nums[o + F_UID] = e.uid; }
    if (e.gid !== undefined) { f |= HAS_GID; nums[o + F_GID] = e.gid; }
    if (e.mode !== undefined) { f |= HAS_MODE; nums[o + F_MODE] = e.mode; }
    if (e.nlink !== undefined) { f |= HAS_NLINK; nums[o + F_NLINK] = e.nlink; }
    if (e.tarTime !== undefined) { f |= HAS_TIME; nums[o + F_TIME] = e.tarTime; }
    if (e.sha256 !== undefined) {
      if (HEX64.test(e.sha256)) { f |= HAS_SHA; this.shas.write(e.sha256, r * 32, 32, "hex"); }
      else this.shaText.set(r, e.sha256);
    }
    if (e.link !== undefined) this.links.set(r, e.link);
    if (e.xattrs !== undefined) this.xattrs.set(r, e.xattrs);
    this.flags[r] = f;
    this.types[r] = code;
  }

  delete(path: string): void {
    this.lastPath = undefined;
    checkPath(path);
    if (path === ".") throw new InvalidError("mtree recorder: cannot delete the root");
    const slash = path.lastIndexOf("/");
    const parent = slash < 0 ? 0 : this.locate(path.slice(0, slash), false);
    if (parent === undefined) return;
    const name = path.slice(slash + 1);
    const k = this.kids[parent];
    const r = k?.get(name);
    if (r === undefined) return;
    this.count -= this.drop(r);
    k!.delete(name);
  }

  /** The entry of a row (which must have one) under the path it is reached by. */
  private make(r: number, path: string): MtreeEntry {
    const f = this.flags[r]!;
    const e: MtreeEntry = { path, type: MTREE_TYPES[this.types[r]!]! };
    const o = r * NF;
    const nums = this.nums;
    if (f & HAS_SIZE) e.size = nums[o + F_SIZE]!;
    if (f & HAS_UID) e.uid = nums[o + F_UID]!;
    if (f & HAS_GID) e.gid = nums[o + F_GID]!;
    if (f & HAS_MODE) e.mode = nums[o + F_MODE]!;
    if (f & HAS_NLINK) e.nlink = nums[o + F_NLINK]!;
    if (f & HAS_TIME) e.tarTime = nums[o + F_TIME]!;
    if (f & HAS_SHA) e.sha256 = this.shas.toString("hex", r * 32, r * 32 + 32);
    else {
      const s = this.shaText.get(r);
      if (s !== undefined) e.sha256 = s;
    }
    const l = this.links.get(r);
    if (l !== undefined) e.link = l;
    const x = this.xattrs.get(r);
    if (x !== undefined) e.xattrs = x;
    return e;
  }

  setStat(path: string, key: readonly bigint[]): void {
    const r = this.findPath(path);
    if (r === undefined || !(this.flags[r]! & HAS_ENTRY) || key.length !== 5) return;
    this.stats ??= new BigInt64Array(this.cap * 5);
    this.stats.set(key, r * 5);
    this.hasStat[r] = 1;
  }

  clearStats(): void {
    this.hasStat.fill(0);
  }

  sameStat(path: string, st: { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint; ctimeNs: bigint }): boolean {
    const r = this.findPath(path);
    if (r === undefined || !this.hasStat[r] || !this.stats) return false;
    const o = r * 5;
    const k = this.stats;
    return k[o] === st.dev && k[o + 1] === st.ino && k[o + 2] === st.size && k[o + 3] === st.mtimeNs && k[o + 4] === st.ctimeNs;
  }

  take(path: string): MtreeEntry | undefined {
    const r = this.findPath(path);
    if (r === undefined || !(this.flags[r]! & HAS_ENTRY)) return undefined;
    this.marks[r] = 1;
    return this.make(r, path);
  }

  *untaken(): Generator<MtreeEntry> {
    for (const [r, p] of this.recorded()) if (!this.marks[r]) yield this.make(r, p);
  }

  get(path: string): MtreeEntry | undefined {
    const r = this.findPath(path);
    return r !== undefined && this.flags[r]! & HAS_ENTRY ? this.make(r, path) : undefined;
  }

  has(path: string): boolean {
    const r = this.findPath(path);
    return r !== undefined && (this.flags[r]! & HAS_ENTRY) !== 0;
  }

  *entries(): Generator<MtreeEntry> {
    for (const [r, p] of this.recorded()) yield this.make(r, p);
  }

  /** Every row with an entry and its path, parents before children, in no sibling order. */
  private *recorded(): Generator<[number, string]> {
    const stack: Array<[number, string]> = [[0, "."]];
    while (stack.length) {
      const [r, p] = stack.pop()!;
      if (this.flags[r]! & HAS_ENTRY) yield [r, p];
      const k = this.kids[r];
      if (k) for (const [name, c] of k) stack.push([c, p === "." ? name : `${p}/${name}`]);
    }
  }

  *sorted(): Generator<MtreeEntry> {
    const hasKids = (r: number): boolean => (this.kids[r]?.size ?? 0) > 0;
    const isDirLike = (r: number): boolean => hasKids(r) || ((this.flags[r]! & HAS_ENTRY) !== 0 && this.types[r] === DIR);
    // a frame: a directory's subdirectories still to enter, in reverse order
    const stack: Array<Array<[string, number, string]>> = [];
    const enter = (r: number, path: string): MtreeEntry => {
      const k = this.kids[r];
      const files: Array<[string, number]> = [];
      const dirs: Array<[string, number, string]> = [];
      if (k) {
        for (const [name, c] of k) {
          if (isDirLike(c)) dirs.push([name, c, path === "." ? name : `${path}/${name}`]);
          else files.push([name, c]);
        }
      }
      sortByBytes(files, (x) => x[0]);
      sortByBytes(dirs, (x) => x[0]);
      dirs.reverse();
      pendingFiles = files;
      pendingDir = path;
      stack.push(dirs);
      // (as formatMtree's checks: a path with children must be a recorded directory)
      if (!(this.flags[r]! & HAS_ENTRY)) {
        if (r === 0) throw new InvalidError("mtree: no entry for the root directory \".\"");
        throw new InvalidError(`mtree: ${JSON.stringify(path)}: no entry for this parent directory`);
      }
      if (hasKids(r) && this.types[r] !== DIR) throw new InvalidError(`mtree: ${JSON.stringify(path)}: has children but is of type ${MTREE_TYPES[this.types[r]!]}`);
      return this.make(r, path);
    };
    let pendingFiles: Array<[string, number]> = [];
    let pendingDir = ".";
    yield enter(0, ".");
    for (;;) {
      for (const [name, c] of pendingFiles) {
        if (this.flags[c]! & HAS_ENTRY) yield this.make(c, pendingDir === "." ? name : `${pendingDir}/${name}`);
      }
      pendingFiles = [];
      let next: [string, number, string] | undefined;
      while (stack.length && !(next = stack[stack.length - 1]!.pop())) stack.pop();
      if (!next) return;
      yield enter(next[1], next[2]);
    }
  }

  resolveDigests(resolve: (recorded: string) => string | undefined): void {
    for (const [r, s] of this.shaText) {
      const d = resolve(s);
      if (d === undefined) continue;
      if (HEX64.test(d)) {
        this.shaText.delete(r);
        this.flags[r] = this.flags[r]! | HAS_SHA;
        this.shas.write(d, r * 32, 32, "hex");
      } else this.shaText.set(r, d);
    }
  }
}

/**
 * A store keyed by path: set/get are O(depth), delete of a subtree is O(size of the subtree),
 * entries() and sorted() are O(n). Throws InvalidError on a malformed path.
 */
export function createMtreeRecorder(): MtreeRecorder {
  return new ColumnStore();
}

/** A recorder with repack's extras (see MtreeStore). */
export function createMtreeStore(opts: MtreeStoreOptions = {}): MtreeStore {
  return new ColumnStore(opts);
}
