/**
 * Walk a real directory tree into mtree entries, as umoci does right after unpack and before repack.
 * Spec: oci-reference.md §5 "Keyword values"; umoci-behaviour.md §2 (rootless walk).
 */
import * as fs from "node:fs";
import { BociError, InvalidError } from "../errors";
import { normalizeKeywords, sameFields, type MtreeEntry } from "./entry";
import { bytesToName, compareBytes, hasRawBytes, nameToBytes } from "./vis";
import { entryFromInode, floorSeconds, mtreeType } from "../rootfs/record";
import { mtreeRecordsXattrs } from "../rootfs/xattr";
import { heapTick } from "../util/heap";

export interface WalkTreeOptions {
  keywords: readonly string[];
  /**
   * List a path's xattrs (called for regular files and directories only, as go-mtree on Linux).
   * The path is `root + "/" + relative path`; a name that is not valid UTF-8 carries
   * surrogate-escaped bytes — use `nameToBytes(p)` to get the real bytes.
   */
  listXattrs?: (p: string) => Map<string, Buffer>;
  /**
   * Rootless: a directory lacking u+rx is chmodded u+rwx and a file lacking u+r is chmodded u+r
   * for the walk; modes and atime/mtime are restored afterwards, even on error.
   */
  rootless?: boolean;
  /**
   * Hash a regular file (hex sha256), e.g. on a worker pool. Up to 8 run at once. Not used for
   * paths that are not valid UTF-8 (those are hashed inline).
   */
  hashFile?: (p: string, size: number) => Promise<string>;
  /**
   * A regular file known to be unchanged since it was recorded (the stat cache): its recorded
   * entry, whose digest and xattrs are taken as they are (neither is read again), or undefined
   * to read the file. Called with the relative path and the lstat before anything touches it.
   */
  cached?: (rel: string, st: fs.BigIntStats) => MtreeEntry | undefined;
  /** Called with each regular file's relative path and lstat (as taken by the walk). */
  onFile?: (rel: string, st: fs.BigIntStats) => void;
  /**
   * Take each entry once it is complete (a file hashed on the pool comes when its digest does,
   * so not always in walk order); walkTree then returns no entries. Lets a caller compare as the
   * walk goes instead of holding the whole tree.
   */
  onEntry?: (e: MtreeEntry) => void;
  /**
   * Called for every entry as it is made (before it is hashed or emitted) with its lstat and the
   * path to hand the kernel, e.g. to read keywords this walker does not record. In a rootless
   * walk a regular file is made readable (u+r) before the call, and restored with the rest.
   * Not called for files the `cached` option vouches for.
   */
  inspect?: (e: MtreeEntry, fsPath: string | Buffer, st: fs.BigIntStats) => void;
}

type FsPath = string | Buffer;

interface Restore {
  path: FsPath;
  mode: number;
  atimeNs: bigint;
  mtimeNs: bigint;
}

const HASH_CONCURRENCY = 8;
const CHUNK = 4 << 20;
/** One read buffer for the synchronous hasher (never shared across an await). */
let chunkBuf: Buffer | undefined;

/**
 * Walk `root` (lstat only, symlinks are not followed) and return one entry per path, the root as
 * ".", in go-mtree walk order. Throws BociError (with the OS error as cause) when a path cannot be
 * read, InvalidError when root is not a directory.
 */
export async function walkTree(root: string, opts: WalkTreeOptions): Promise<MtreeEntry[]> {
  const kw = new Set(normalizeKeywords(opts.keywords));
  const wantHash = kw.has("sha256digest");
  const wantXattr = kw.has("xattr") && opts.listXattrs !== undefined;
  const wantTime = kw.has("tar_time") || kw.has("time");
  const rootless = opts.rootless === true;
  const restores: Restore[] = [];
  const entries: MtreeEntry[] = [];
  const pending = new Set<Promise<void>>();
  let firstError: unknown;

  const fail = (what: string, rel: string, err: unknown): never => {
    // A caller's own verdict (a BociError from a callback, with its exit code) passes as it is.
    if (err instanceof BociError) throw err;
    throw new BociError(`mtree walk: ${what} ${rel}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  };

  const makeEntry = (rel: string, fsPath: FsPath, strPath: string, st: fs.BigIntStats, known?: MtreeEntry): MtreeEntry => {
    // (the one rule for what an inode records: rootfs/record.ts; this walk keeps the keywords asked for)
    const full = entryFromInode(rel, {
      mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), nlink: Number(st.nlink), size: Number(st.size), mtimeSec: floorSeconds(st.mtimeNs),
    });
    const type = full.type;
    const e: MtreeEntry = { path: rel, type };
    if (kw.has("size")) e.size = full.size;
    if (kw.has("uid")) e.uid = full.uid;
    if (kw.has("gid")) e.gid = full.gid;
    if (kw.has("mode")) e.mode = full.mode;
    if (kw.has("nlink")) e.nlink = full.nlink;
    if (wantTime) e.tarTime = full.tarTime;
    if (type === "link" && kw.has("link")) {
      try {
        e.link = bytesToName(fs.readlinkSync(fsPath, { encoding: "buffer" }));
      } catch (err) {
        fail("readlink", rel, err);
      }
    }
    if (known) {
      if (wantXattr && known.xattrs?.size) e.xattrs = new Map(known.xattrs);
    } else if (wantXattr && mtreeRecordsXattrs(type)) {
      let x: Map<string, Buffer>;
      try {
        x = opts.listXattrs!(strPath);
      } catch (err) {
        return fail("list xattrs of", rel, err);
      }
      if (x.size) e.xattrs = new Map(x);
    }
    if (opts.inspect && !known) {
      if (rootless && type === "file") makeAccessible(fsPath, st, 0o400, 0o400);
      opts.inspect(e, fsPath, st);
    }
    return e;
  };

  const emit = opts.onEntry ?? ((e: MtreeEntry) => { entries.push(e); });
  /** Hash a file's entry; true when that goes on in the background (the entry is emitted then). */
  const hash = async (e: MtreeEntry, fsPath: FsPath, size: number): Promise<boolean> => {
    if (opts.hashFile && typeof fsPath === "string") {
      while (pending.size >= HASH_CONCURRENCY) await Promise.race(pending);
      const p: Promise<void> = opts
        .hashFile(fsPath, size)
        .then(
          (h) => {
            e.sha256 = h;
            if (opts.onEntry && !firstError) opts.onEntry(e);
          },
          (err) => {
            firstError ??= new BociError(`mtree walk: hash ${e.path}: ${(err as Error)?.message ?? err}`, { cause: err });
          },
        )
        .finally(() => pending.delete(p));
      pending.add(p);
      return true;
    }
    try {
      e.sha256 = hashFileSync(fsPath);
    } catch (err) {
      fail("hash", e.path, err);
    }
    return false;
  };

  const makeAccessible = (fsPath: FsPath, st: fs.BigIntStats, need: number, add: number): void => {
    const mode = Number(st.mode) & 0o7777;
    if ((mode & need) === need) return;
    try {
      fs.chmodSync(fsPath, mode | add);
    } catch (err) {
      fail("make accessible", typeof fsPath === "string" ? fsPath : bytesToName(fsPath), err);
    }
    restores.push({ path: fsPath, mode, atimeNs: st.atimeNs, mtimeNs: st.mtimeNs });
  };

  try {
    let rootSt: fs.BigIntStats;
    try {
      rootSt = fs.lstatSync(root, { bigint: true });
    } catch (err) {
      return fail("lstat", root, err);
    }
    if (mtreeType(Number(rootSt.mode)) !== "dir") throw new InvalidError(`mtree walk: ${root} is not a directory`);

    type Dir = { rel: string; fsPath: FsPath; st: fs.BigIntStats };
    const stack: Dir[] = [{ rel: ".", fsPath: root, st: rootSt }];
    while (stack.length) {
      if (firstError) throw firstError;
      const dir = stack.pop()!;
      const strDir = dir.rel === "." ? root : root + "/" + dir.rel;
      emit(makeEntry(dir.rel, dir.fsPath, strDir, dir.st));
      if (rootless) makeAccessible(dir.fsPath, dir.st, 0o500, 0o700);

      let names: string[];
      try {
        names = readNames(dir.fsPath);
      } catch (err) {
        return fail("read directory", dir.rel, err);
      }
      const files: { name: string; st: fs.BigIntStats; fsPath: FsPath }[] = [];
      const dirs: Dir[] = [];
      for (const name of names) {
        const rel = dir.rel === "." ? name : dir.rel + "/" + name;
        const fsPath = joinFs(dir.fsPath, name);
        let st: fs.BigIntStats;
        try {
          st = fs.lstatSync(fsPath, { bigint: true });
        } catch (err) {
          return fail("lstat", rel, err);
        }
        if (mtreeType(Number(st.mode)) === "dir") dirs.push({ rel, fsPath, st });
        else files.push({ name, st, fsPath });
      }
      const byName = (a: { rel?: string; name?: string }, b: { rel?: string; name?: string }) =>
        compareBytes(a.name ?? a.rel!, b.name ?? b.rel!);
      files.sort(byName);
      for (const f of files) {
        // Each lstat leaves a BigInt-laden stats object behind: collect now and then, or a walk
        // of a large tree grows the heap far beyond what its entries keep.
        heapTick();
        const rel = dir.rel === "." ? f.name : dir.rel + "/" + f.name;
        const known = opts.cached && mtreeType(Number(f.st.mode)) === "file" ? opts.cached(rel, f.st) : undefined;
        let e = makeEntry(rel, f.fsPath, root + "/" + rel, f.st, known);
        if (wantHash && known?.sha256 !== undefined) {
          e.sha256 = known.sha256;
          // An unchanged file whose recorded entry says all the walk would say: keep that entry
          // itself (a large tree then holds one set of entries, not two).
          if (sameFields(known, e)) e = known;
        }
        if (!opts.onEntry) entries.push(e);
        if (wantHash && e.type === "file" && e.sha256 === undefined) {
          if (rootless) makeAccessible(f.fsPath, f.st, 0o400, 0o400);
          // (a background hash hands the entry on when it is done)
          if (!(await hash(e, f.fsPath, Number(f.st.size)))) opts.onEntry?.(e);
        } else if (opts.onEntry) opts.onEntry(e);
        if (e.type === "file") opts.onFile?.(rel, f.st);
      }
      dirs.sort(byName);
      for (let i = dirs.length - 1; i >= 0; i--) stack.push(dirs[i]!);
    }
    while (pending.size) await Promise.race(pending);
    if (firstError) throw firstError;
    return entries;
  } finally {
    while (pending.size) await Promise.allSettled([...pending]);
    restoreAll(restores);
  }
}

/**
 * Open a file of a tree boci did not make for reading: the name itself is never followed
 * (O_NOFOLLOW), a FIFO or device never blocks (O_NONBLOCK), and anything but a regular file is
 * refused (InvalidError) — it may have changed since it was looked at.
 */
export function openRegularForRead(p: FsPath): number {
  const c = fs.constants;
  const fd = fs.openSync(p, c.O_RDONLY | c.O_NOFOLLOW | c.O_NONBLOCK);
  let ok = false;
  try {
    ok = fs.fstatSync(fd).isFile();
  } finally {
    if (!ok) fs.closeSync(fd);
  }
  if (!ok) throw new InvalidError(`${typeof p === "string" ? p : bytesToName(p)}: not a regular file`);
  return fd;
}

/** sha256 of a regular file (never follows the name, never blocks on a FIFO), read in large chunks. */
export function hashFileSync(p: FsPath): string {
  const h = new Bun.CryptoHasher("sha256");
  const fd = openRegularForRead(p);
  try {
    const buf = (chunkBuf ??= Buffer.allocUnsafe(CHUNK));
    for (;;) {
      const n = fs.readSync(fd, buf, 0, CHUNK, null);
      if (n <= 0) break;
      h.update(n === CHUNK ? buf : buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}

function restoreAll(restores: Restore[]): void {
  let first: unknown;
  for (let i = restores.length - 1; i >= 0; i--) {
    const r = restores[i]!;
    try {
      fs.chmodSync(r.path, r.mode);
      fs.utimesSync(r.path, nsToSeconds(r.atimeNs), nsToSeconds(r.mtimeNs));
    } catch (err) {
      first ??= err;
    }
  }
  if (first) throw new BociError(`mtree walk: restore permissions: ${(first as Error).message}`, { cause: first });
}

function nsToSeconds(ns: bigint): number {
  const s = ns / 1_000_000_000n;
  return Number(s) + Number(ns - s * 1_000_000_000n) / 1e9;
}

/** Directory entry names; names that are not valid UTF-8 come back surrogate-escaped. */
function readNames(p: FsPath): string[] {
  const names = fs.readdirSync(p);
  if (!names.some((n) => n.includes("\uFFFD"))) return names;
  return fs.readdirSync(p, { encoding: "buffer" }).map((b) => bytesToName(b));
}

function joinFs(dir: FsPath, name: string): FsPath {
  if (typeof dir === "string" && !hasRawBytes(name)) return dir + "/" + name;
  const d = typeof dir === "string" ? Buffer.from(dir, "utf8") : dir;
  return Buffer.concat([d, Buffer.from("/"), nameToBytes(name)]);
}

