/**
 * Compare a recorded manifest with a fresh walk, the way go-mtree's Compare does for umoci.
 * Spec: oci-reference.md §5 "Compare", "gomtree validate".
 */
import { keywordValues, normalizeKeywords, sameFields, type MtreeEntry } from "./entry";
import { compareBytes } from "./vis";

export type Delta = {
  kind: "missing" | "extra" | "modified";
  path: string;
  old?: MtreeEntry;
  new?: MtreeEntry;
  /** For "modified": the differing keys (`mode`, `tar_time`, `xattr.user.foo`, …). */
  keys?: string[];
};

/**
 * Compare `oldEntries` (the manifest) with `newEntries` (the walk) on `keywords`.
 *
 * - missing: in old only; extra: in new only; modified: some compared key differs.
 * - As in the go-mtree umoci 0.6 uses, a key with a value on one side only is a change (0.4.7's
 *   go-mtree ignored such keys, except `tar_time` / `time` and `xattr.*`). A directory's `size`
 *   is compared although it depends on the filesystem; umoci does the same, and a moved
 *   directory size only re-includes that directory in the layer.
 * - `time` and `tar_time` are one key, compared on whole seconds (the typed model keeps no
 *   nanoseconds; `raw mtree-validate` compares go-mtree's strings: validate.ts).
 * - `xattr` covers every xattr name on either side.
 *
 * Deltas are sorted by path byte order; `keys` follow the order of `keywords` (xattrs by name).
 */
export function compareMtree(oldEntries: MtreeEntry[], newEntries: MtreeEntry[], keywords: readonly string[]): Delta[] {
  const kw = normalizeKeywords(keywords);
  const oldMap = new Map<string, MtreeEntry>();
  for (const e of oldEntries) oldMap.set(e.path, e);
  const newMap = new Map<string, MtreeEntry>();
  for (const e of newEntries) newMap.set(e.path, e);

  const deltas: Delta[] = [];
  for (const [path, o] of oldMap) {
    const n = newMap.get(path);
    if (!n) {
      deltas.push({ kind: "missing", path, old: o });
      continue;
    }
    const keys = compareEntries(o, n, kw);
    if (keys.length) deltas.push({ kind: "modified", path, old: o, new: n, keys });
  }
  for (const [path, n] of newMap) if (!oldMap.has(path)) deltas.push({ kind: "extra", path, new: n });
  deltas.sort((a, b) => compareBytes(a.path, b.path));
  return deltas;
}

/** The `key → value` pairs of an entry for the given canonical keywords. */
export function entryKeyValues(e: MtreeEntry, kw: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  const timeKey = timeKeyword(kw);
  for (const k of kw) {
    if (k === "time" || k === "tar_time") continue;
    for (const s of keywordValues(e, k)) {
      const eq = s.indexOf("=");
      m.set(s.slice(0, eq), s.slice(eq + 1));
    }
  }
  if (timeKey) for (const s of keywordValues(e, timeKey)) m.set(timeKey, s.slice(timeKey.length + 1));
  return m;
}

function timeKeyword(kw: readonly string[]): string | undefined {
  return kw.includes("tar_time") ? "tar_time" : kw.includes("time") ? "time" : undefined;
}

/**
 * The keys that differ between a manifest entry and a walked one (as compareMtree reports them),
 * `kw` canonical (normalizeKeywords); empty when they are the same.
 */
export function compareEntries(o: MtreeEntry, n: MtreeEntry, kw: readonly string[]): string[] {
  if (sameFields(o, n)) return [];
  const ov = entryKeyValues(o, kw);
  const nv = entryKeyValues(n, kw);
  const changed: string[] = [];
  const xattrs = new Set<string>();
  for (const k of new Set([...ov.keys(), ...nv.keys()])) {
    const a = ov.get(k);
    const b = nv.get(k);
    if (a === b) continue;
    if (k.startsWith("xattr.")) xattrs.add(k);
    else changed.push(k);
  }
  changed.sort((a, b) => kw.indexOf(a) - kw.indexOf(b));
  return [...changed, ...[...xattrs].sort(compareBytes)];
}

/**
 * One line like `gomtree validate`'s bsd output (the first differing key only):
 * `"a": keyword "mode": expected 0644; got 0600`, `"x": unexpected path`, `"y": missing path`.
 * A key set on one side only prints an empty value on the other.
 */
export function formatDelta(d: Delta): string {
  const p = goQuote(d.path);
  switch (d.kind) {
    case "extra":
      return `${p}: unexpected path`;
    case "missing":
      return `${p}: missing path`;
    case "modified": {
      const k = d.keys?.[0] ?? "";
      const kw = k.startsWith("xattr.") ? ["xattr"] : [k];
      const safe = (e: MtreeEntry | undefined): string => {
        if (!e || !k) return "";
        try {
          return entryKeyValues(e, kw).get(k) ?? "";
        } catch {
          return "";
        }
      };
      return `${p}: keyword ${goQuote(k)}: expected ${safe(d.old)}; got ${safe(d.new)}`;
    }
  }
}

/** Go's %q for a string: backslash escapes, \xHH for raw bytes and control characters. */
export function goQuote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ch = s[i]!;
    if (ch === '"' || ch === "\\") out += "\\" + ch;
    else if (c === 0x07) out += "\\a";
    else if (c === 0x08) out += "\\b";
    else if (c === 0x0c) out += "\\f";
    else if (c === 0x0a) out += "\\n";
    else if (c === 0x0d) out += "\\r";
    else if (c === 0x09) out += "\\t";
    else if (c === 0x0b) out += "\\v";
    else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else if (c >= 0xdc80 && c <= 0xdcff && !(i > 0 && s.charCodeAt(i - 1) >= 0xd800 && s.charCodeAt(i - 1) <= 0xdbff))
      out += "\\x" + (c - 0xdc00).toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + '"';
}
