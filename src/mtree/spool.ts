/**
 * A manifest recorded to disk as it is made: an unpack appends what each entry leaves (and what
 * later entries remove or change) to a log, in sorted runs of bounded size, and reads it back
 * merged in go-mtree's walk order at the end. Memory stays the same whatever the number of
 * entries (a run of RUN_SIZE records at a time, and one record per run while merging).
 *
 * The log holds three kinds of record, each with a sequence number:
 *  - set: the entry at a path (with flags: re-read it from disk at the end, or build it from disk);
 *  - delete: a path and everything below it is gone (whiteouts, replacements);
 *  - patch: a later change to the entry at a path (a rootless directory's mode, a re-read).
 * At a path the newest set wins unless a newer delete covers the path or an ancestor; patches
 * newer than that set apply to it.
 *
 * Order: go-mtree lists a directory, then its non-directories by name bytes, then its
 * subdirectories (depth first, by name bytes). A directory's own record sorts as the first of
 * its "section" (the directory's path), a non-directory in its parent's section, and sections
 * sort by their path compared component by component: exactly that walk order. A delete is
 * written twice, once where a non-directory at that path would sort and once as a cover of the
 * section of that path and every section below it.
 */
import * as fs from "node:fs";
import { join } from "node:path";
import { LineFileWriter, readLines } from "../util/line-file";
import { InvalidError } from "../errors";
import { MTREE_TYPES, type MtreeEntry, type MtreeType } from "./entry";
import { isAscii, nameToBytes } from "../rootfs/name";

/** Re-read the entry's stat-dependent values from disk at the end (keep the recorded rest). */
export const REFRESH = 1;
/** Build the whole entry from disk at the end. */
export const FROM_DISK = 2;

const RUN_SIZE = 4096;
const OP_SET = 0, OP_DEL = 1, OP_PATCH = 2;
/** rank within a section: a cover of the section, the directory itself, its non-directories */
const R_COVER = 0, R_SELF = 1, R_FILE = 2;

interface Rec {
  /** sort key (see makeRec): section, rank, name; string order is walk order */
  key: string;
  /** the section part of the key */
  sec: string;
  seq: number;
  op: number;
  line: string;
}

export interface ManifestLog {
  /**
   * Record the entry at `e.path` (mtree spelling, "." for the root); flags: REFRESH | FROM_DISK;
   * `seq`: a number from reserve() (the entry is ordered as of that call); `statKey`: a regular
   * file's stat cache key (no tab), given back with the entry.
   */
  set(e: MtreeEntry, flags?: number, seq?: number, statKey?: string): void;
  /** A sequence number for a later set(). */
  reserve(): number;
  /** Forget `path` and everything below it. */
  delete(path: string): void;
  /** Change the entry at `path` if one is recorded: its mode, and/or more flags. */
  patch(path: string, p: { mode?: number; flags?: number }): void;
}

/** A log in `dir` (created, must not exist; removed by close()). */
export function createManifestSpool(dir: string): ManifestSpool {
  return new ManifestSpool(dir);
}

/** A resolved entry: the entry and the flags that ask for disk values. */
export interface SpooledEntry { entry: MtreeEntry; flags: number; statKey?: string }

export class ManifestSpool implements ManifestLog {
  private seq = 0;
  private buf: Rec[] = [];
  private runs: string[] = [];
  private closed = false;

  constructor(private readonly dir: string) {
    fs.mkdirSync(dir, { mode: 0o700 });
  }

  /**
   * A sequence number for a set() that comes later (a file finished on another thread): the
   * entry then counts as recorded now, before anything logged after this call.
   */
  reserve(): number {
    return this.seq++;
  }

  set(e: MtreeEntry, flags = 0, seq?: number, statKey?: string): void {
    const isRoot = e.path === ".";
    const path = isRoot ? "" : e.path;
    const fields = [
      MTREE_TYPES.indexOf(e.type), flags, num(e.size), num(e.uid), num(e.gid), num(e.mode), num(e.nlink), num(e.tarTime),
      e.sha256 ?? "", e.link === undefined ? "" : JSON.stringify(e.link), e.xattrs?.size ? JSON.stringify([...e.xattrs].map(([k, v]) => [k, v.toString("base64")])) : "",
      statKey ?? "",
    ].join("\t");
    this.push(e.type === "dir" ? R_SELF : R_FILE, OP_SET, path, fields, seq);
  }

  delete(path: string): void {
    if (path === "." || path === "") throw new InvalidError("mtree spool: cannot delete the root");
    const seq = this.seq;
    this.push(R_FILE, OP_DEL, path, "", seq);
    this.push(R_COVER, OP_DEL, path, "", seq);
  }

  patch(path: string, p: { mode?: number; flags?: number }): void {
    const fields = `${num(p.mode)}\t${p.flags ?? 0}`;
    const real = path === "." ? "" : path;
    // (a patch of a directory goes to its own record, of anything else to its parent's section)
    this.push(R_SELF, OP_PATCH, real, fields);
    if (real !== "") this.push(R_FILE, OP_PATCH, real, fields, this.seq - 1);
  }

  private push(rank: number, op: number, path: string, fields: string, seq = this.seq++): void {
    if (seq >= this.seq) this.seq = seq + 1;
    this.buf.push(makeRec(rank, path, seq, op, `${seq}\t${op}\t${rank}\t${JSON.stringify(path)}\t${fields}`));
    if (this.buf.length >= RUN_SIZE) this.flush();
  }

  private flush(): void {
    if (!this.buf.length) return;
    this.buf.sort(compareRec);
    const run = new LineFileWriter(join(this.dir, `run-${this.runs.length}`));
    try {
      for (const r of this.buf) run.push(r.line);
    } finally {
      run.end();
    }
    this.runs.push(run.file);
    this.buf = [];
  }

  /**
   * Every surviving entry in walk order, with its flags (the caller re-reads from disk what they
   * ask for, and fills in placeholder digests). Throws
   * InvalidError, as formatMtree would, when a section has entries but no directory entry.
   */
  *entries(): Generator<SpooledEntry> {
    this.flush();
    const readers = this.runs.map((f) => new RunReader(f));
    const heap: Array<{ r: Rec; i: number }> = [];
    const pushFrom = (i: number) => { const r = readers[i]!.next(); if (r) heapPush(heap, { r, i }); };
    readers.forEach((_, i) => pushFrom(i));
    // covers of sections: a stack, each a prefix of the next
    const covers: Array<{ sec: string; seq: number }> = [];
    let curSec: string | null = null;
    let sectionHasDir = false;
    let group: Rec[] = [];
    const coveredSeq = (): number => (covers.length ? Math.max(...covers.map((c) => c.seq)) : -1);
    const resolveGroup = (): SpooledEntry | null => {
      // one key (section, rank, name): newest set, unless a newer delete or cover took it
      let set: Rec | null = null;
      let del = coveredSeq();
      for (const r of group) {
        if (r.op === OP_SET && (!set || r.seq > set.seq)) set = r;
        else if (r.op === OP_DEL && r.seq > del) del = r.seq;
      }
      if (!set || set.seq < del) return null;
      const out = parseSet(set.line);
      for (const r of group) {
        if (r.op !== OP_PATCH || r.seq < set.seq) continue;
        const f = r.line.split("\t");
        if (f[4] !== "") out.entry.mode = Number(f[4]);
        out.flags |= Number(f[5]);
      }
      return out;
    };
    for (;;) {
      const top = heap.length ? heapPop(heap) : null;
      if (top) pushFrom(top.i);
      const r = top?.r;
      if (group.length && (!r || group[0]!.key !== r.key)) {
        const g = resolveGroup();
        group = [];
        if (g) {
          if (g.entry.type === "dir") sectionHasDir = true;
          else if (!sectionHasDir) {
            const p = g.entry.path;
            throw new InvalidError(p.includes("/") ? `mtree: ${JSON.stringify(parentOf(p))}: no entry for this parent directory` : `mtree: no entry for the root directory "."`);
          }
          yield g;
        }
      }
      if (!r) break;
      if (curSec === null || curSec !== r.sec) {
        curSec = r.sec;
        sectionHasDir = false;
        while (covers.length && !isPrefix(covers[covers.length - 1]!.sec, r.sec)) covers.pop();
      }
      if (r.op === OP_DEL && r.key.charCodeAt(r.sec.length + 1) === R_COVER) {
        covers.push({ sec: r.sec, seq: r.seq });
        continue;
      }
      group.push(r);
    }
  }

  /** Remove the log's files (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function num(n: number | undefined): string {
  return n === undefined ? "" : String(n);
}

function parentOf(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? "" : p.slice(0, i);
}
function baseOf(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}

/**
 * A path's bytes as a string whose code-unit order is the byte order of its components: each
 * byte one char ("latin1"), byte 0x01 as "\x01\x01" and "/" as "\x01\x00", so a separator sorts
 * below every name byte and "\x00" alone below both (it ends a section in a key).
 */
function keyPart(p: string): string {
  let s = isAscii(p) ? p : nameToBytes(p).toString("latin1");
  if (s.includes("\x01")) s = s.replaceAll("\x01", "\x01\x01");
  return s.includes("/") ? s.replaceAll("/", "\x01\x00") : s;
}

function makeRec(rank: number, path: string, seq: number, op: number, line: string): Rec {
  // section: the directory itself (its own record, a cover), or the parent (anything else)
  const sec = keyPart(rank === R_FILE ? parentOf(path) : path);
  const key = `${sec}\x00${String.fromCharCode(rank)}${rank === R_FILE ? keyPart(baseOf(path)) : ""}`;
  return { key, sec, seq, op, line };
}

/** `a` is `b` or an ancestor section of `b` (section keys). */
function isPrefix(a: string, b: string): boolean {
  if (a.length === 0) return true;
  return b.startsWith(a) && (a.length === b.length || (b.charCodeAt(a.length) === 1 && b.charCodeAt(a.length + 1) === 0));
}

function compareRec(a: Rec, b: Rec): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : a.seq - b.seq;
}

function parseSet(line: string): SpooledEntry {
  // seq, op, rank, path, type, flags, size, uid, gid, mode, nlink, time, sha256, link, xattrs, stat key
  const f = line.split("\t");
  const path = JSON.parse(f[3]!) as string;
  const e: MtreeEntry = { path: path === "" ? "." : path, type: MTREE_TYPES[Number(f[4])] as MtreeType };
  const n = (i: number): number | undefined => (f[i] === "" ? undefined : Number(f[i]));
  const size = n(6), uid = n(7), gid = n(8), mode = n(9), nlink = n(10), time = n(11);
  if (size !== undefined) e.size = size;
  if (uid !== undefined) e.uid = uid;
  if (gid !== undefined) e.gid = gid;
  if (mode !== undefined) e.mode = mode;
  if (nlink !== undefined) e.nlink = nlink;
  if (time !== undefined) e.tarTime = time;
  if (f[12]) e.sha256 = f[12];
  if (f[13]) e.link = JSON.parse(f[13]) as string;
  if (f[14]) e.xattrs = new Map((JSON.parse(f[14]) as Array<[string, string]>).map(([k, v]) => [k, Buffer.from(v, "base64")]));
  return f[15] ? { entry: e, flags: Number(f[5]), statKey: f[15] } : { entry: e, flags: Number(f[5]) };
}

/** Reads one sorted run back, record by record. */
class RunReader {
  private readonly lines: Generator<string>;
  constructor(file: string) {
    this.lines = readLines(file);
  }
  next(): Rec | null {
    const r = this.lines.next();
    return r.done ? null : toRec(r.value);
  }
}

function toRec(line: string): Rec {
  const t1 = line.indexOf("\t"), t2 = line.indexOf("\t", t1 + 1), t3 = line.indexOf("\t", t2 + 1), t4 = line.indexOf("\t", t3 + 1);
  const path = JSON.parse(line.slice(t3 + 1, t4 < 0 ? undefined : t4)) as string;
  return makeRec(Number(line.slice(t2 + 1, t3)), path, Number(line.slice(0, t1)), Number(line.slice(t1 + 1, t2)), line);
}

function heapPush(h: Array<{ r: Rec; i: number }>, x: { r: Rec; i: number }): void {
  h.push(x);
  let i = h.length - 1;
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (compareRec(h[p]!.r, h[i]!.r) <= 0) break;
    [h[p], h[i]] = [h[i]!, h[p]!];
    i = p;
  }
}

function heapPop(h: Array<{ r: Rec; i: number }>): { r: Rec; i: number } {
  const top = h[0]!;
  const last = h.pop()!;
  if (h.length) {
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < h.length && compareRec(h[l]!.r, h[m]!.r) < 0) m = l;
      if (r < h.length && compareRec(h[r]!.r, h[m]!.r) < 0) m = r;
      if (m === i) break;
      [h[m], h[i]] = [h[i]!, h[m]!];
      i = m;
    }
  }
  return top;
}
