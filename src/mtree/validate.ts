/**
 * `raw mtree-validate` as umoci 0.6.0 runs it: go-mtree's Check (the go-mtree umoci 0.6.0
 * vendors) over `keyword=value` strings, for every keyword go-mtree can walk.
 *
 * This is deliberately not the typed model that unpack and repack use (entry.ts): go-mtree
 * compares values as the strings they are (`mode=644` is not `mode=0644`, `time=5.0` is not
 * `time=5.000000000`), keeps keywords it cannot evaluate, and reads a manifest with its own rules
 * (a `/set` replaces the previous one, any `/unset` clears it, a path that climbs out is cut back
 * to the root). Reproducing that needs the strings.
 *
 * Rules reproduced (go-mtree check.go, compare.go, parse.go, walk.go, keyword*.go):
 * - A key present on one side only is a difference (`expected ; got X` or `expected X; got `),
 *   then differences in keys outside the requested keywords (by prefix: `xattr.user.a` → `xattr`)
 *   are dropped. So a keyword asked for that the manifest lacks reports every path the walk
 *   gives it a value for (sha1digest: regular files; uname: all; link: symlinks).
 * - `time` vs `tar_time`: when either side has `tar_time` and either has `time`, `time` is
 *   dropped from both and a side that had `time` but no `tar_time` gets `tar_time` = its seconds
 *   (`%d.%d` or an error). A difference in one counts when the other was asked for.
 * - `flags` yields nothing on Linux, but the walk's `/set` carries `flags=none`, so every walked
 *   path has it.
 * - umoci prints each delta's first key; go-mtree's order is Go map order (random). We print the
 *   first in keyword order, and deltas sorted by path (umoci's order is random too).
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { BociError, InvalidError, describeErrno } from "../errors";
import { formatMode, type MtreeEntry } from "./entry";
import { goQuote } from "./compare";
import { bytesToName, compareBytes, visDecode, visEncode } from "./vis";
import { walkTree, type EntryAt } from "./walk";
import { openRegularForRead } from "../rootfs/read";
import { closeFd, type Stat } from "../sys/at";
import { goPathClean } from "../util/go-path";
import { createOwnerNames } from "./owner-names";

/** keyword → value of one path (a bare word without `=` is keyword "" with value ""). */
export type KeyVals = Map<string, string>;

/** go-mtree's KeywordSynonym: the canonical name of a keyword. */
export function keywordSynonym(name: string): string {
  switch (name) {
    case "md5": return "md5digest";
    case "rmd160":
    case "rmd160digest": return "ripemd160digest";
    case "sha1": return "sha1digest";
    case "sha256": return "sha256digest";
    case "sha384": return "sha384digest";
    case "sha512": return "sha512digest";
    case "sha512256": return "sha512256digest";
    case "xattrs": return "xattr";
    default: return name;
  }
}

/** The part of a keyword before its first `.` (`xattr.user.a` → `xattr`). */
export function keywordPrefix(k: string): string {
  const dot = k.indexOf(".");
  return dot < 0 ? k : k.slice(0, dot);
}

/** Content digests: the key go-mtree writes for each keyword and the hash behind it. */
const DIGESTS: Record<string, { key: string; algo: string }> = {
  md5: { key: "md5digest", algo: "md5" },
  md5digest: { key: "md5digest", algo: "md5" },
  rmd160: { key: "ripemd160digest", algo: "ripemd160" },
  rmd160digest: { key: "ripemd160digest", algo: "ripemd160" },
  ripemd160digest: { key: "ripemd160digest", algo: "ripemd160" },
  sha1: { key: "sha1digest", algo: "sha1" },
  sha1digest: { key: "sha1digest", algo: "sha1" },
  sha256: { key: "sha256digest", algo: "sha256" },
  sha256digest: { key: "sha256digest", algo: "sha256" },
  sha384: { key: "sha384digest", algo: "sha384" },
  sha384digest: { key: "sha384digest", algo: "sha384" },
  sha512: { key: "sha512digest", algo: "sha512" },
  sha512digest: { key: "sha512digest", algo: "sha512" },
  // (go-mtree writes these under "sha512digest": a slip of its own, kept)
  sha512256: { key: "sha512digest", algo: "sha512-256" },
  sha512256digest: { key: "sha512digest", algo: "sha512-256" },
};

/** Every keyword go-mtree's walk can evaluate (its KeywordFuncs), looked up by prefix. */
export const WALK_KEYWORDS: readonly string[] = Object.freeze([
  "size", "type", "time", "link", "uid", "gid", "nlink", "uname", "gname", "mode", "cksum",
  ...Object.keys(DIGESTS), "flags", "tar_time", "xattr", "xattrs",
]);
const WALKABLE = new Set(WALK_KEYWORDS);

/** umoci's -k / -K value: names split at commas and spaces, each made canonical. */
export function parseKeywordList(arg: string): string[] {
  return arg.split(/[, ]/).filter((s) => s !== "").map(keywordSynonym);
}

/**
 * The keywords umoci 0.6 compares: `use` (-k) if given, else `umoci` ones (--umoci-keywords) if
 * asked, else those the manifest uses; then `add` (-K) appended where missing, and `type` first
 * when absent ("necessary for any comparison to make sense").
 */
export function selectKeywords(opts: { use?: string[]; add?: string[]; umoci?: readonly string[]; manifest: string[] }): string[] {
  const out = [...(opts.use ?? opts.umoci ?? opts.manifest)];
  for (const k of opts.add ?? []) if (!out.includes(k)) out.push(k);
  if (!out.includes("type")) out.unshift("type");
  return out;
}

/** A parsed manifest: each path's keys (its `/set` under its own), and the keywords it uses. */
export interface Spec {
  entries: Map<string, KeyVals>;
  /** go-mtree's UsedKeywords: prefixes of every entry's and `/set`'s keys, canonical, in order. */
  usedKeywords: string[];
  /** The first entry whose name does not decode (go-mtree fails the comparison with it). */
  pathError?: string;
}

const GO_SPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;
/** Go's strings.Fields (Unicode white space). */
function fields(s: string): string[] {
  const f = s.split(GO_SPACE);
  if (f.length && f[0] === "") f.shift();
  if (f.length && f[f.length - 1] === "") f.pop();
  return f;
}

/** go-mtree's CleanPath: cleaned, and a relative path cannot climb above its start. */
function cleanPath(p: string): string {
  if (p === "") return "";
  p = goPathClean(p);
  if (!p.startsWith("/")) {
    const r = goPathClean("/" + p).slice(1);
    p = r === "" ? "." : r;
  }
  return p;
}

function splitKeyVal(kv: string): [string, string] {
  const eq = kv.indexOf("=");
  return eq < 0 ? ["", ""] : [kv.slice(0, eq), kv.slice(eq + 1)];
}

interface DirNode { name: string; parent: DirNode | null; path?: string | null }

const MAX_LINE = 64 * 1024;

/**
 * Read a manifest with go-mtree's ParseSpec rules: lines as bufio.Scanner gives them (a trailing
 * `\r` dropped; a line of 64 KiB or more is an error, as there), `#` comments after leading blanks,
 * special lines start with `/` in the first column (`/set` replaces the current set, `/unset`
 * with any keywords drops it), `..` leaves a directory, a trailing `\` joins the next line, a name
 * with a `/` is a full path; an entry enters a directory when its own last `type=` says `dir`.
 * Paths are decoded and cleaned as go-mtree's Entry.Path does; a path given twice keeps its last
 * entry. Throws InvalidError only for the over-long line.
 */
export function parseSpec(data: Buffer | string): Spec {
  const buf = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  for (let start = 0; start < buf.length;) {
    const nl = buf.indexOf(0x0a, start);
    const end = nl < 0 ? buf.length : nl;
    if (end - start >= MAX_LINE) throw new InvalidError("bufio.Scanner: token too long");
    start = end + 1;
  }
  const text = bytesToName(buf);
  const lines = text.split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  let li = 0;
  const next = (): string | undefined => {
    if (li >= lines.length) return undefined;
    const l = lines[li++]!;
    return l.endsWith("\r") ? l.slice(0, -1) : l;
  };
  const joinContinued = (s: string): string => {
    while (s.endsWith("\\")) s = s.slice(0, -1) + (next() ?? "");
    return s;
  };

  const entries = new Map<string, KeyVals>();
  const used: string[] = [];
  const usedSet = new Set<string>();
  const noteUsed = (kvs: string[]): void => {
    for (const kv of kvs) {
      const k = keywordSynonym(keywordPrefix(splitKeyVal(kv)[0]));
      if (!usedSet.has(k)) { usedSet.add(k); used.push(k); }
    }
  };
  let set: KeyVals | null = null;
  let curDir: DirNode | null = null;
  let pathError: string | undefined;

  const dirPath = (d: DirNode): string | null => {
    if (d.path === undefined) d.path = entryPath(d.name, d.parent);
    return d.path;
  };
  const entryPath = (name: string, parent: DirNode | null, full = false): string | null => {
    let decoded: string;
    try {
      decoded = cleanPath(visDecode(name));
    } catch (err) {
      pathError ??= (err as Error).message;
      return null;
    }
    if (parent === null || full) return decoded;
    const pp = dirPath(parent);
    return pp === null ? null : cleanPath(goPathClean(pp + "/" + decoded));
  };

  for (let str = next(); str !== undefined; str = next()) {
    let t = 0;
    while (t < str.length && (str.charCodeAt(t) === 0x20 || str.charCodeAt(t) === 0x09)) t++;
    if (str.charCodeAt(t) === 0x23 /* # */ || str === "") continue;
    if (str.charCodeAt(0) === 0x2f /* / */) {
      const f = fields(joinContinued(str));
      if (f[0] === "/set") {
        const kvs = f.slice(1);
        set = new Map(kvs.map(splitKeyVal));
        noteUsed(kvs);
      } else if (f[0] === "/unset") {
        set = null;
      }
      continue;
    }
    const first = fields(str);
    if (first.length === 0) continue;
    if (first[0] === "..") {
      if (curDir) curDir = curDir.parent;
      continue;
    }
    const f = fields(joinContinued(str));
    const rawName = f[0]!;
    const kvs = f.slice(1);
    noteUsed(kvs);
    const keys: KeyVals = set ? new Map(set) : new Map();
    let isDir = false;
    for (const kv of kvs) {
      const [k, v] = splitKeyVal(kv);
      keys.set(k, v);
      if (k === "type") isDir = v === "dir";
    }
    const name = goPathClean(rawName);
    let path: string | null;
    if (rawName.includes("/")) {
      path = entryPath(name, null, true);
    } else {
      const node: DirNode = { name, parent: curDir };
      path = entryPath(name, curDir);
      node.path = path;
      if (isDir) curDir = node;
    }
    if (path !== null) entries.set(path, keys);
  }
  return { entries, usedKeywords: used, pathError };
}

/** POSIX cksum(1) CRC (polynomial 0x04C11DB7, MSB first, length appended, inverted). */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** A running cksum: feed bytes with `update`; `digest` gives the cksum value so far. */
export function createCksum(): { update(b: Uint8Array): void; digest(): number } {
  let crc = 0;
  let len = 0;
  const step = (c: number, b: number): number => ((c << 8) ^ CRC_TABLE[((c >>> 24) ^ b) & 0xff]!) >>> 0;
  return {
    update(b) {
      let c = crc;
      for (let i = 0; i < b.length; i++) c = step(c, b[i]!);
      crc = c;
      len += b.length;
    },
    digest() {
      // the length, low byte first, then inverted (as cksum(1)); the running state is kept
      let c = crc;
      let n = len;
      do { c = step(c, n % 256); n = Math.floor(n / 256); } while (n > 0);
      return ~c >>> 0;
    },
  };
}

export interface WalkSpecOptions {
  /** Rootless: open up unreadable directories and files for the walk (restored after). */
  rootless?: boolean;
  /** List a regular file's or directory's xattrs (an error lists none, as go-mtree). */
  listXattrs?: (p: string) => Map<string, Buffer>;
}

const CHUNK = 1 << 20;
/** go-mtree reads a name list and each value into 1024 bytes; more fails, and then lists none. */
const XATTR_BUF = 1024;

/**
 * An xattr lister with go-mtree's limits on Linux, over the given primitives (the caller's libc
 * bindings): a name list over 1024 bytes, a value over 1024 bytes, or any error gives no xattrs
 * for that path; empty values are kept.
 */
export function createGoXattrLister(list: (p: string) => string[], get: (p: string, name: string) => Buffer | null): (p: string) => Map<string, Buffer> {
  return (p) => {
    const m = new Map<string, Buffer>();
    try {
      const names = list(p);
      let bytes = 0;
      for (const n of names) bytes += Buffer.byteLength(n, "utf8") + 1;
      if (bytes > XATTR_BUF) return new Map();
      for (const n of names) {
        const v = get(p, n);
        if (v === null || v.length > XATTR_BUF) return new Map();
        m.set(n, v);
      }
    } catch {
      return new Map();
    }
    return m;
  };
}

function errnoText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e?.code ? describeErrno({ ...e, syscall: undefined, path: undefined } as NodeJS.ErrnoException) : String((e as Error)?.message ?? e);
}

/**
 * Walk `root` as go-mtree's Walk does for `keywords` and give each path's keys (the values the
 * walk's `/set` lends included). Throws BociError with go-mtree's messages: `X: Not a directory`,
 * `lstat R: …`, `unknown keyword "k" for file "R"`, `open R/f: …` (a regular file that cannot be
 * opened, whatever the keywords, unless rootless).
 */
export async function walkSpec(root: string, keywords: readonly string[], opts: WalkSpecOptions = {}): Promise<Map<string, KeyVals>> {
  try {
    if (!fs.statSync(root).isDirectory()) throw new BociError(`${nodePath.basename(root)}: Not a directory`);
  } catch (err) {
    if (err instanceof BociError) throw err;
  }
  try {
    fs.lstatSync(root);
  } catch (err) {
    throw new BociError(`lstat ${root}: ${errnoText(err)}`, { code: (err as NodeJS.ErrnoException).code, cause: err });
  }
  for (const k of keywords) {
    const p = keywordPrefix(k);
    if (!WALKABLE.has(p)) throw new BociError(`unknown keyword ${goQuote(p)} for file ${goQuote(root)}`);
  }
  const want = new Set(keywords.map(keywordPrefix));
  const digests: { key: string; algo: string }[] = [];
  for (const k of keywords) {
    const d = DIGESTS[keywordPrefix(k)];
    if (d) digests.push(d);
  }
  const algos = [...new Set(digests.map((d) => d.algo))];
  const wantCksum = want.has("cksum");
  const readsContent = algos.length > 0 || wantCksum;
  const wantXattr = want.has("xattr") || want.has("xattrs");
  const names = want.has("uname") || want.has("gname") ? createOwnerNames() : null;
  const out = new Map<string, KeyVals>();
  let buf: Buffer | undefined;

  const inspect = (e: MtreeEntry, at: EntryAt, st: Stat): void => {
    const kv: KeyVals = new Map();
    const isFile = e.type === "file";
    let sums: Map<string, string> | undefined;
    let crc: number | undefined;
    if (isFile) {
      // go-mtree opens every regular file once per keyword, whatever the keyword reads.
      let fd: number;
      try {
        fd = openRegularForRead(at.dirfd, at.name, nodePath.join(root, e.path));
      } catch (err) {
        const full = nodePath.join(root, e.path);
        throw new BociError(`open ${full}: ${errnoText(err)}`, { code: (err as NodeJS.ErrnoException).code, cause: err });
      }
      try {
        if (readsContent) {
          const hashers = algos.map((a) => new Bun.CryptoHasher(a as "sha256"));
          const ck = wantCksum ? createCksum() : null;
          buf ??= Buffer.allocUnsafe(CHUNK);
          for (;;) {
            const n = fs.readSync(fd, buf, 0, CHUNK, null);
            if (n <= 0) break;
            const chunk = n === CHUNK ? buf : buf.subarray(0, n);
            for (const h of hashers) h.update(chunk);
            ck?.update(chunk);
          }
          sums = new Map(algos.map((a, i) => [a, hashers[i]!.digest("hex")]));
          crc = ck?.digest();
        }
      } finally {
        closeFd(fd);
      }
    }
    // (statx: whole seconds rounded down, and the nanoseconds after them)
    const sec = st.mtimeSec;
    const nsec = st.mtimeNsec;
    for (const k of keywords) {
      const p = keywordPrefix(k);
      switch (p) {
        case "size": kv.set("size", String(st.size)); break;
        case "type": kv.set("type", e.type); break;
        case "time": kv.set("time", `${sec}.${String(nsec).padStart(9, "0")}`); break;
        case "tar_time": kv.set("tar_time", `${sec}.000000000`); break;
        case "link": if (e.link !== undefined) kv.set("link", visEncode(e.link)); break;
        case "uid": kv.set("uid", String(st.uid)); break;
        case "gid": kv.set("gid", String(st.gid)); break;
        case "nlink": kv.set("nlink", String(st.nlink)); break;
        case "uname": { const n = names!.user(Number(st.uid)); if (n !== undefined) kv.set("uname", n); break; }
        case "gname": { const n = names!.group(Number(st.gid)); if (n !== undefined) kv.set("gname", n); break; }
        case "mode": kv.set("mode", formatMode(Number(st.mode) & 0o7777)); break;
        case "cksum": if (crc !== undefined) kv.set("cksum", String(crc)); break;
        // the walk's /set says flags=none, and Linux has no flags to override it
        case "flags": kv.set("flags", "none"); break;
        case "xattr":
        case "xattrs":
          for (const [name, v] of e.xattrs ?? []) kv.set(`xattr.${visEncode(name)}`, v.toString("base64"));
          break;
        default: {
          const d = DIGESTS[p];
          if (d && sums) kv.set(d.key, sums.get(d.algo)!);
        }
      }
    }
    out.set(e.path, kv);
  };

  const typed = ["type"];
  if (want.has("link")) typed.push("link");
  if (wantXattr && opts.listXattrs) typed.push("xattr");
  await walkTree(root, { keywords: typed, listXattrs: opts.listXattrs, rootless: opts.rootless, inspect, onEntry: () => {} });
  return out;
}

/** One key that differs: missing from the walk, extra in it, or with another value. */
export interface KeyDelta { kind: "missing" | "extra" | "modified"; name: string; old: string; new: string }

/** One path that differs (keys: for "modified", in keyword order). */
export interface SpecDelta { kind: "missing" | "extra" | "modified"; path: string; keys?: KeyDelta[] }

/** go-mtree's convertToTarTime: `%d.%d` (nothing after) to `tar_time=<seconds>.000000000`. */
function toTarTime(v: string): string | null {
  const m = /^[+-]?(\d+)\.[+-]?\d+$/.exec(v);
  if (!m) return null;
  const sec = BigInt(v.slice(0, v.indexOf(".")));
  const big = sec > 0x7fffffffffffffffn || sec < -0x8000000000000000n;
  const nsec = v.slice(v.indexOf(".") + 1);
  if (big || BigInt(nsec) > 0x7fffffffffffffffn || BigInt(nsec) < -0x8000000000000000n) return null;
  return `${sec}.000000000`;
}

/**
 * The key differences of one path, before the keyword filter (go-mtree's compareEntry): throws
 * Error `old entry: …` / `new entry: …` for a `time` that cannot become a `tar_time`.
 */
export function compareKeyVals(oldKeys: KeyVals, newKeys: KeyVals): KeyDelta[] {
  let o = oldKeys;
  let n = newKeys;
  if ((o.has("tar_time") || n.has("tar_time")) && (o.has("time") || n.has("time"))) {
    o = new Map(o);
    n = new Map(n);
    const oTime = o.get("time");
    o.delete("time");
    const nTime = n.get("time");
    n.delete("time");
    const bad = (v: string) => new Error(`failed to parse "time" key: invalid format ${goQuote(v)}`);
    if (oTime !== undefined && !o.has("tar_time")) {
      const t = toTarTime(oTime);
      if (t === null) throw new Error(`old entry: ${bad(oTime).message}`);
      o.set("tar_time", t);
    } else if (nTime !== undefined && !n.has("tar_time")) {
      const t = toTarTime(nTime);
      if (t === null) throw new Error(`new entry: ${bad(nTime).message}`);
      n.set("tar_time", t);
    }
  }
  const out: KeyDelta[] = [];
  for (const [k, v] of n) {
    const w = o.get(k);
    if (w === undefined) out.push({ kind: "extra", name: k, old: "", new: v });
    else if (w !== v) out.push({ kind: "modified", name: k, old: w, new: v });
  }
  for (const [k, w] of o) if (!n.has(k)) out.push({ kind: "missing", name: k, old: w, new: "" });
  return out;
}

/**
 * Compare a manifest's paths with a walk's on `keys` (go-mtree's Compare): missing, extra and
 * modified paths sorted by path bytes. Throws BociError `comparison failed PATH: …`.
 */
export function compareSpecs(oldEntries: Map<string, KeyVals>, newEntries: Map<string, KeyVals>, keys: readonly string[]): SpecDelta[] {
  const rank = (name: string): number => {
    const p = keywordPrefix(name);
    let i = keys.indexOf(p);
    if (i < 0 && p === "time") i = keys.indexOf("tar_time");
    if (i < 0 && p === "tar_time") i = keys.indexOf("time");
    return i;
  };
  const out: SpecDelta[] = [];
  for (const [path, o] of oldEntries) {
    const n = newEntries.get(path);
    if (!n) { out.push({ kind: "missing", path }); continue; }
    let changed: KeyDelta[];
    try {
      changed = compareKeyVals(o, n);
    } catch (err) {
      throw new BociError(`comparison failed ${path}: ${(err as Error).message}`, { cause: err });
    }
    changed = changed.filter((d) => rank(d.name) >= 0);
    if (changed.length) {
      changed.sort((a, b) => rank(a.name) - rank(b.name) || compareBytes(a.name, b.name));
      out.push({ kind: "modified", path, keys: changed });
    }
  }
  for (const path of newEntries.keys()) if (!oldEntries.has(path)) out.push({ kind: "extra", path });
  out.sort((a, b) => compareBytes(a.path, b.path));
  return out;
}

/** umoci's line for a delta (go-mtree's InodeDelta.String: the first differing key only). */
export function formatSpecDelta(d: SpecDelta): string {
  const p = goQuote(d.path);
  if (d.kind === "extra") return `${p}: unexpected path`;
  if (d.kind === "missing") return `${p}: missing path`;
  const k = d.keys![0]!;
  return `${p}: keyword ${goQuote(k.name)}: expected ${k.old}; got ${k.new}`;
}

/**
 * go-mtree's Check: walk `root` for `keywords` and compare with the manifest. Throws BociError
 * with go-mtree's message (the caller adds umoci's `check mtree manifest … against root …`).
 */
export async function checkSpec(root: string, spec: Spec, keywords: readonly string[], opts: WalkSpecOptions = {}): Promise<SpecDelta[]> {
  const walked = await walkSpec(root, keywords, opts);
  if (spec.pathError !== undefined) throw new BociError(spec.pathError);
  return compareSpecs(spec.entries, walked, keywords);
}
