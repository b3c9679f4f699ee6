/**
 * The stat cache: what each regular file of the rootfs looked like (device, inode, size, mtime and
 * ctime in nanoseconds) when its digest in the mtree manifest was taken, so that repack only
 * re-reads files whose stat changed, as git's index does.
 *
 * A file counts as unchanged only when all five values are equal. Any write, truncate, chmod,
 * chown, xattr or link change moves ctime, which no user can set back (only a clock change can).
 * The "racy" rule covers a change made within the same clock tick as the cache itself: an entry
 * whose ctime is not strictly before the cache file's own mtime (same clock, same granularity) is
 * not trusted. The cache names the sha256 of the manifest text it belongs to, and is ignored
 * when that does not match (a manifest rewritten by umoci, say). A missing, stale or malformed
 * cache only costs a re-read; it is never needed for correctness. BOCI_STAT_CACHE=0 ignores it.
 *
 * Format (`.boci-stat` in the bundle, beside the mtree): a line `boci-stat 1 <mtree sha256>`,
 * then one line per file: `dev ino size mtimeNs ctimeNs <path as a JSON string>`.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { InvalidError } from "../errors";
import { readRegularFile, writeFileAtomicWith } from "../util/fs";
import { heapTick } from "../util/heap";
import { LineFileWriter } from "../util/line-file";
import { makedev } from "../sys";
import type { Stat } from "../sys/at";

export const STAT_CACHE_FILE = ".boci-stat";
const MAGIC = "boci-stat 1";

/** A file's identity and times as one string: "dev ino size mtimeNs ctimeNs" (kept compact). */
export function statKey(st: fs.BigIntStats): string {
  return `${st.dev} ${st.ino} ${st.size} ${st.mtimeNs} ${st.ctimeNs}`;
}

/** statKey from a statx result (rootfs/tree.ts): the same string an lstat of the file gives. */
export function statKeyOfStat(st: Pick<Stat, "devMajor" | "devMinor" | "ino" | "size" | "mtimeSec" | "mtimeNsec" | "ctimeSec" | "ctimeNsec">): string {
  useDev(st.devMajor, st.devMinor);
  return `${devText} ${st.ino} ${st.size} ${nsText(st.mtimeSec, st.mtimeNsec)} ${nsText(st.ctimeSec, st.ctimeNsec)}`;
}

/** sec * 10^9 + nsec in decimal (digits put together where both are non-negative: no BigInt). */
function nsText(sec: number, nsec: number): string {
  if (sec > 0 && nsec >= 0 && nsec < 1_000_000_000) return `${sec}${String(nsec).padStart(9, "0")}`;
  return (BigInt(sec) * 1_000_000_000n + BigInt(nsec)).toString();
}

/** The five numbers of a statx result's key (as statKeyOfStat), for MtreeStore.sameStat. */
export function statKeyNumbers(st: Stat): { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint; ctimeNs: bigint } {
  useDev(st.devMajor, st.devMinor);
  return {
    dev: devT, ino: BigInt(st.ino), size: BigInt(st.size),
    mtimeNs: BigInt(st.mtimeSec) * 1_000_000_000n + BigInt(st.mtimeNsec),
    ctimeNs: BigInt(st.ctimeSec) * 1_000_000_000n + BigInt(st.ctimeNsec),
  };
}

// The dev_t of the last device seen, and its text: a tree is mostly on one device, so it is made once.
let devMajor = -1, devMinor = -1, devT = 0n, devText = "";
function useDev(major: number, minor: number): void {
  if (major === devMajor && minor === devMinor) return;
  devMajor = major; devMinor = minor;
  devT = makedev(major, minor);
  devText = String(devT);
}

export function statCacheEnabled(): boolean {
  return process.env.BOCI_STAT_CACHE !== "0";
}

/**
 * Write the cache for `files` (path → stat) of the manifest whose text hashes to `mtreeSha256`,
 * replacing any previous cache (written beside under a temporary name, created O_EXCL|O_NOFOLLOW,
 * then renamed over it: a symlink planted there is replaced, never followed).
 */
export function writeStatCache(bundle: string, mtreeSha256: string, files: Iterable<[string, string]>, opts: { fsync?: boolean } = {}): void {
  writeStatCacheLines(bundle, mtreeSha256, (function* () { for (const [p, s] of files) yield statLine(p, s); })(), opts);
}

/** One cache line for `p` (its key from statKey / statKeyOfStat). */
export function statLine(p: string, key: string): string {
  return `${key} ${JSON.stringify(p)}`;
}

/** writeStatCache from lines made by statLine (the one writer of the file). */
function writeStatCacheLines(bundle: string, mtreeSha256: string, lines: Iterable<string>, opts: { fsync?: boolean } = {}): void {
  writeFileAtomicWith(path.join(bundle, STAT_CACHE_FILE), (write) => {
    let out: string[] = [`${MAGIC} ${mtreeSha256}`];
    const flush = () => { write(Buffer.from(out.join("\n") + "\n")); out = []; };
    for (const l of lines) {
      out.push(l);
      if (out.length >= 8192) { flush(); heapTick(8192); }
    }
    if (out.length) flush();
  }, { mode: 0o600, fsync: opts.fsync });
}

/**
 * The stat cache of a bundle being built (unpack's staging directory, which nothing else sees
 * until it is moved into place): lines written as the manifest goes by, under a header whose
 * digest is written in by finish() once the manifest's is known. Created O_EXCL|O_NOFOLLOW,
 * mode 0600 (util/line-file.ts). A draft never finished is removed with its staging directory.
 */
export class StatCacheDraft {
  private readonly w: LineFileWriter;
  constructor(bundle: string) {
    this.w = new LineFileWriter(path.join(bundle, STAT_CACHE_FILE));
    this.w.push(`${MAGIC} ${"0".repeat(64)}`);
  }
  /** A regular file's key (statKey / statKeyOfStat). */
  push(p: string, key: string): void {
    this.w.push(statLine(p, key));
  }
  /** Close the file (idempotent). */
  end(): void {
    this.w.end();
  }
  /** Close it with the manifest's digest (hex) in its header. */
  finish(mtreeSha256: string): void {
    if (!/^[0-9a-f]{64}$/.test(mtreeSha256)) throw new InvalidError(`stat cache: not a sha256: ${mtreeSha256}`);
    this.w.end();
    const fd = fs.openSync(this.w.file, fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW);
    try {
      fs.writeSync(fd, Buffer.from(mtreeSha256, "ascii"), 0, 64, MAGIC.length + 1);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/**
 * The trusted entries of the bundle's cache for the manifest text hashing to `mtreeSha256`,
 * handed to `each` as path and key (dev, ino, size, mtimeNs, ctimeNs); racy entries are left
 * out. False, before any, when there is no usable cache (none, another manifest's, unreadable,
 * disabled); false after some when it turns out malformed (the caller must then forget them).
 * Throws InvalidError (exit 4) when `.boci-stat` is not a regular file (a symlink, a FIFO).
 */
export function readStatCache(bundle: string, mtreeSha256: string, each: (path: string, key: bigint[]) => void): boolean {
  if (!statCacheEnabled()) return false;
  const file = path.join(bundle, STAT_CACHE_FILE);
  let text: string;
  let stamp: bigint;
  try {
    const r = readRegularFile(file, `bundle ${bundle}: ${STAT_CACHE_FILE}`);
    stamp = r.stat.mtimeNs;
    text = r.data.toString("utf8");
  } catch (e) {
    // A cache that is a symlink, a FIFO, a directory: the bundle was tampered with (refused,
    // as for umoci.json and the manifest). Missing or unreadable: only costs a re-read.
    if (e instanceof InvalidError) throw e;
    return false;
  }
  let pos = text.indexOf("\n");
  if (pos < 0 || text.slice(0, pos) !== `${MAGIC} ${mtreeSha256}`) return false;
  const stampMs = Number(stamp / 1000n) / 1000;
  try {
    while (pos + 1 < text.length) {
      const end = text.indexOf("\n", pos + 1);
      const l = text.slice(pos + 1, end < 0 ? text.length : end);
      pos = end < 0 ? text.length : end;
      if (l === "") continue;
      // Five numbers, then the path as a JSON string.
      let at = -1;
      for (let k = 0; k < 5; k++) { at = l.indexOf(" ", at + 1); if (at < 0) return false; }
      const key = l.slice(0, at);
      if (!/^\d+ \d+ \d+ -?\d+ -?\d+$/.test(key)) return false;
      const p = JSON.parse(l.slice(at + 1)) as unknown;
      if (typeof p !== "string") return false;
      // Racy: changed in the same tick as the cache was written (or later): not trusted. (In
      // milliseconds, with a millisecond of margin: a near miss only costs a re-read.)
      if (Number(key.slice(key.lastIndexOf(" ") + 1)) / 1e6 >= stampMs - 1) continue;
      // Each line leaves a few strings and BigInts behind: collect now and then (as parseMtree).
      heapTick();
      const nums = key.split(" ").map((x) => BigInt(x));
      if (nums.some((x) => x > MAX_I64)) return false;
      each(p, nums);
    }
  } catch {
    return false;
  }
  return true;
}

const MAX_I64 = (1n << 63n) - 1n;

/** Remove the bundle's cache (when the manifest it belongs to is replaced without one). */
export function removeStatCache(bundle: string): void {
  fs.rmSync(path.join(bundle, STAT_CACHE_FILE), { force: true });
}
