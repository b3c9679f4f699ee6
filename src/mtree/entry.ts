/**
 * The mtree data model and keyword registry shared by the formatter, parser, walker and compare.
 * Spec: oci-reference.md §5 "Keyword values".
 */
import { UnsupportedError } from "../errors";
import { visEncode } from "./vis";

export type MtreeType = "file" | "dir" | "link" | "char" | "block" | "fifo" | "socket";

export const MTREE_TYPES: readonly MtreeType[] = ["file", "dir", "link", "char", "block", "fifo", "socket"];

/** One path's recorded state. path is relative to the root, "." for the root, "/" separated, no leading "./". */
export interface MtreeEntry {
  path: string;
  type: MtreeType;
  size?: number;
  uid?: number;
  gid?: number;
  /** Permission and special bits only (`& 0o7777`). */
  mode?: number;
  nlink?: number;
  /** Symlink target (raw, not vis-encoded). */
  link?: string;
  /** Modification time in whole seconds. */
  tarTime?: number;
  /** Lowercase hex sha256 of the content; regular files only. */
  sha256?: string;
  /** Raw xattr values by name, in the order they were listed (the order the formatter writes). */
  xattrs?: Map<string, Buffer>;
}

/** The keywords umoci records and compares, in umoci's order. */
export const UMOCI_KEYWORDS: readonly string[] = Object.freeze([
  "size", "type", "uid", "gid", "mode", "link", "nlink", "tar_time", "sha256digest", "xattr",
]);

/** Keywords this module can write and compare (canonical spellings). */
export const SUPPORTED_KEYWORDS: readonly string[] = Object.freeze([
  "size", "type", "uid", "gid", "mode", "link", "nlink", "time", "tar_time", "sha256digest", "xattr",
]);

const ALIASES: Record<string, string> = { sha256: "sha256digest" };

/** Canonical keyword list (aliases resolved, duplicates dropped). Throws UnsupportedError on an unknown keyword. */
export function normalizeKeywords(keywords: readonly string[]): string[] {
  const out: string[] = [];
  for (const k of keywords) {
    const c = ALIASES[k] ?? k;
    if (!SUPPORTED_KEYWORDS.includes(c)) throw new UnsupportedError(`mtree: unsupported keyword ${JSON.stringify(k)}`);
    if (!out.includes(c)) out.push(c);
  }
  return out;
}

/** Go's `%#o`: `0` for zero, else a leading 0 and the octal digits (`0755`, `04755`). */
export function formatMode(mode: number): string {
  return mode === 0 ? "0" : "0" + mode.toString(8);
}

/** `<seconds>.000000000` as go-mtree writes tar_time. */
export function formatTarTime(seconds: number): string {
  return `${Math.trunc(seconds)}.000000000`;
}

/**
 * The `key=value` strings one keyword contributes for an entry, in go-mtree's spelling
 * (empty when the entry has no value for it). `xattr` yields one `xattr.<vis name>=<base64>` per xattr.
 */
export function keywordValues(e: MtreeEntry, keyword: string): string[] {
  switch (keyword) {
    case "size":
      return e.size === undefined ? [] : [`size=${e.size}`];
    case "type":
      return [`type=${e.type}`];
    case "uid":
      return e.uid === undefined ? [] : [`uid=${e.uid}`];
    case "gid":
      return e.gid === undefined ? [] : [`gid=${e.gid}`];
    case "mode":
      return e.mode === undefined ? [] : [`mode=${formatMode(e.mode)}`];
    case "link":
      return e.link === undefined ? [] : [`link=${visEncode(e.link)}`];
    case "nlink":
      return e.nlink === undefined ? [] : [`nlink=${e.nlink}`];
    case "tar_time":
      return e.tarTime === undefined ? [] : [`tar_time=${formatTarTime(e.tarTime)}`];
    case "time":
      return e.tarTime === undefined ? [] : [`time=${formatTarTime(e.tarTime)}`];
    case "sha256digest":
      return e.sha256 === undefined ? [] : [`sha256digest=${e.sha256}`];
    case "xattr": {
      if (!e.xattrs || e.xattrs.size === 0) return [];
      const out: string[] = [];
      for (const [k, v] of e.xattrs) out.push(`xattr.${visEncode(k)}=${v.toString("base64")}`);
      return out;
    }
    default:
      throw new UnsupportedError(`mtree: unsupported keyword ${JSON.stringify(keyword)}`);
  }
}

/**
 * True when every field either keyword formatter reads is identical: then no keyword can differ.
 * (Anything else goes the slow way, which decides exactly which keys differ.)
 */
export function sameFields(o: MtreeEntry, n: MtreeEntry): boolean {
  if (o.type !== n.type || o.size !== n.size || o.uid !== n.uid || o.gid !== n.gid || o.mode !== n.mode ||
    o.link !== n.link || o.nlink !== n.nlink || o.tarTime !== n.tarTime || o.sha256 !== n.sha256) return false;
  const ox = o.xattrs?.size ? o.xattrs : undefined;
  const nx = n.xattrs?.size ? n.xattrs : undefined;
  if (!ox || !nx) return ox === nx;
  if (ox.size !== nx.size) return false;
  for (const [k, v] of ox) {
    const w = nx.get(k);
    if (!w || !v.equals(w)) return false;
  }
  return true;
}

/** A deep copy of an entry (xattr map and buffers copied). */
export function cloneEntry(e: MtreeEntry): MtreeEntry {
  const c: MtreeEntry = { ...e };
  if (e.xattrs) c.xattrs = new Map([...e.xattrs].map(([k, v]) => [k, Buffer.from(v)]));
  return c;
}
