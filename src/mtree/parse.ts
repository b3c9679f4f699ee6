/**
 * Read go-mtree / BSD mtree spec text into entries with full relative paths.
 * Spec: oci-reference.md §5 "Lines", "Keyword values"; mtree(5).
 */
import { InvalidError } from "../errors";
import { MTREE_TYPES, type MtreeEntry, type MtreeType } from "./entry";
import { visDecode } from "./vis";
import { heapTick } from "../util/heap";

type KV = Map<string, string | null>;

/**
 * Parse mtree text. Handles the optional `#mtree` signature, comments, blank lines, `/set` (merged
 * over the previous set, as mtree(5) says) and `/unset` (named keywords, or `all`), `..`, relative
 * entries (a `type=dir` entry is entered) and full entries (a name containing `/`, resolved from
 * the root), and a trailing `\` continuing a line. Keywords without a slot in {@link MtreeEntry}
 * (`uname`, `flags`, `md5digest`, …) are ignored; `time` fills `tarTime` (truncated) when no
 * `tar_time` is given, matching how go-mtree compares the two.
 *
 * Returns entries in file order; a path given twice keeps its first position and its last value.
 * Throws InvalidError `mtree line N: …` on malformed input, including any path that would leave
 * the root.
 */
export function parseMtree(text: string): MtreeEntry[] {
  const byPath = new Map<string, number>();
  const out: MtreeEntry[] = [];
  parseMtreeEach(text, (entry) => {
    const at = byPath.get(entry.path);
    if (at === undefined) {
      byPath.set(entry.path, out.length);
      out.push(entry);
    } else {
      out[at] = entry;
    }
  });
  return out;
}

/**
 * As parseMtree, handing each entry to `emit` as it is read (a path given twice is emitted
 * twice), so a caller can keep them more compactly than as an array of objects.
 */
export function parseMtreeEach(text: string, emit: (entry: MtreeEntry) => void): void {
  // Written to allocate little per line (a manifest of a large tree has 100,000 lines or more):
  // lines are cut out one at a time, tokens scanned in place, and keywords applied straight onto
  // the entry (the /set defaults first, then the line's own), with no map per line.
  const set: KV = new Map();
  const dirs: string[] = []; // stack of entered directory paths
  const len = text.length;
  let pos = 0;
  let lineNo = 0;

  const nextLine = (): string | null => {
    if (pos > len) return null; // (as text.split("\n"): a trailing newline leaves one empty line)
    const nl = text.indexOf("\n", pos);
    const end = nl < 0 ? len : nl;
    const l = text.slice(pos, end);
    pos = nl < 0 ? len + 1 : nl + 1;
    lineNo++;
    return stripCR(l);
  };

  for (;;) {
    let line = nextLine();
    if (line === null) break;
    // Every line leaves a few short-lived strings; JSC collects lazily, so a large manifest
    // would grow the heap (and the peak) by several times what the entries keep.
    heapTick();
    const startLine = lineNo;
    const fail = (why: string): never => {
      throw new InvalidError(`mtree line ${startLine}: ${why}`);
    };
    let first = 0;
    while (first < line.length && (line.charCodeAt(first) === 0x20 || line.charCodeAt(first) === 0x09)) first++;
    if (first === line.length || line.charCodeAt(first) === 0x23 /* # */) continue;

    while (endsWithContinuation(line)) {
      const more = nextLine();
      if (more === null) fail("line continuation at end of input");
      line = line.slice(0, -1) + more;
    }

    const fields = tokens(line);
    const name = fields[0]!;

    if (name.charCodeAt(0) === 0x2f /* / */) {
      const kvs = parseKeyVals(fields, fail);
      if (name === "/set") {
        for (const [k, v] of kvs) set.set(k, v);
      } else if (name === "/unset") {
        for (const k of kvs.keys()) {
          if (k === "all") set.clear();
          else set.delete(k);
        }
      } else {
        fail(`unknown special command ${JSON.stringify(name)}`);
      }
      continue;
    }

    if (name === "..") {
      dirs.pop();
      continue;
    }

    let decoded: string;
    try {
      decoded = visDecode(name);
    } catch (err) {
      return fail(`bad name ${JSON.stringify(name)}: ${(err as Error).message}`);
    }
    if (decoded.includes("\0")) fail(`name contains a NUL byte`);

    // The line's own type (go-mtree enters a directory only when the entry itself says type=dir).
    let lineType: string | null | undefined;
    for (let f = 1; f < fields.length; f++) {
      const t = fields[f]!;
      if (t.startsWith("type=")) lineType = t.slice(5);
      else if (t === "type") lineType = null;
    }

    let path: string;
    if (name.includes("/")) {
      path = cleanFullPath(decoded) ?? fail(`path ${JSON.stringify(decoded)} leaves the root`);
    } else {
      if (decoded === "" || decoded === ".." || decoded.includes("/"))
        fail(`invalid name ${JSON.stringify(name)}`);
      const cur = dirs.length ? dirs[dirs.length - 1]! : null;
      if (decoded === ".") {
        if (cur !== null) fail(`"." inside directory ${JSON.stringify(cur)}`);
        path = ".";
      } else {
        path = cur === null || cur === "." ? decoded : cur + "/" + decoded;
      }
      if (lineType === "dir") dirs.push(path);
    }

    emit(toEntry(path, set, fields, fail));
  }
}

/** The blank-separated (space or tab) fields of a line. */
function tokens(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  const n = line.length;
  while (i < n) {
    while (i < n && (line.charCodeAt(i) === 0x20 || line.charCodeAt(i) === 0x09)) i++;
    if (i >= n) break;
    const s = i;
    while (i < n && line.charCodeAt(i) !== 0x20 && line.charCodeAt(i) !== 0x09) i++;
    out.push(line.slice(s, i));
  }
  return out;
}

function stripCR(s: string): string {
  return s.endsWith("\r") ? s.slice(0, -1) : s;
}

/** A trailing backslash continues the line unless it is itself escaped (`\\`). */
function endsWithContinuation(s: string): boolean {
  let n = 0;
  for (let j = s.length - 1; j >= 0 && s.charCodeAt(j) === 0x5c; j--) n++;
  return n % 2 === 1;
}

/** The keywords of a `/set` or `/unset` line (fields[0] is the command). */
function parseKeyVals(fields: string[], fail: (why: string) => never): KV {
  const kv: KV = new Map();
  for (let i = 1; i < fields.length; i++) {
    const f = fields[i]!;
    if (f === "") continue;
    const eq = f.indexOf("=");
    if (eq === 0) fail(`bad keyword ${JSON.stringify(f)}`);
    if (eq < 0) kv.set(f, null);
    else kv.set(f.slice(0, eq), f.slice(eq + 1));
  }
  return kv;
}

/** Resolve a full-path entry name against the root; null when it escapes the root. */
function cleanFullPath(p: string): string | null {
  const parts: string[] = [];
  for (const c of p.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") {
      if (!parts.length) return null;
      parts.pop();
    } else parts.push(c);
  }
  return parts.length ? parts.join("/") : ".";
}

/**
 * The entry for a line: the /set defaults, then the line's own keywords over them (the same as
 * merging the two into one map: a later value wins, an xattr keeps its first position).
 */
function toEntry(path: string, set: KV, fields: string[], fail: (why: string) => never): MtreeEntry {
  const num = (k: string, v: string): number => {
    if (!/^\d+$/.test(v)) fail(`keyword ${k}: invalid number ${JSON.stringify(v)}`);
    const n = Number(v);
    if (!Number.isSafeInteger(n)) fail(`keyword ${k}: number out of range ${JSON.stringify(v)}`);
    return n;
  };
  const time = (k: string, v: string): number => {
    const m = /^(-?\d+)(\.\d*)?$/.exec(v);
    if (!m) fail(`keyword ${k}: invalid time ${JSON.stringify(v)}`);
    const n = Number(m![1]);
    if (!Number.isSafeInteger(n)) fail(`keyword ${k}: time out of range ${JSON.stringify(v)}`);
    return n;
  };

  const e: MtreeEntry = { path, type: "file" };
  let plainTime: number | undefined;
  // "type" given as a bare flag (no value) means the default again, as a null in a merged map did.
  let typeVal: string | null | undefined;
  const apply = (k: string, v: string | null): void => {
    if (k === "type") { typeVal = v; return; }
    if (v === null) return; // flag-style keywords (optional, nochange, ...) carry no state
    switch (k) {
      case "size":
        e.size = num(k, v);
        break;
      case "uid":
        e.uid = num(k, v);
        break;
      case "gid":
        e.gid = num(k, v);
        break;
      case "nlink":
        e.nlink = num(k, v);
        break;
      case "mode":
        if (!/^[0-7]+$/.test(v)) fail(`keyword mode: invalid octal ${JSON.stringify(v)}`);
        e.mode = parseInt(v, 8) & 0o7777;
        break;
      case "link":
        try {
          e.link = visDecode(v);
        } catch (err) {
          fail(`keyword link: ${(err as Error).message}`);
        }
        break;
      case "tar_time":
        e.tarTime = time(k, v);
        break;
      case "time":
        plainTime = time(k, v);
        break;
      case "sha256digest":
      case "sha256":
        if (!/^[0-9a-fA-F]{64}$/.test(v)) fail(`keyword ${k}: invalid digest ${JSON.stringify(v)}`);
        e.sha256 = v.toLowerCase();
        break;
      default:
        if (k.startsWith("xattr.")) {
          let name: string;
          try {
            name = visDecode(k.slice(6));
          } catch (err) {
            return fail(`keyword ${k}: ${(err as Error).message}`);
          }
          if (name === "") fail(`keyword ${k}: empty xattr name`);
          if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0)
            fail(`keyword ${k}: invalid base64 value`);
          (e.xattrs ??= new Map()).set(name, Buffer.from(v, "base64"));
        }
        // other keywords (uname, gname, flags, digests we do not record) are ignored
        break;
    }
  };
  // The line's keywords, each once: its first position, its last value.
  const keys: (string | null)[] = [];
  const vals: (string | null)[] = [];
  for (let i = 1; i < fields.length; i++) {
    const f = fields[i]!;
    const eq = f.indexOf("=");
    if (eq === 0) fail(`bad keyword ${JSON.stringify(f)}`);
    const k = eq < 0 ? f : f.slice(0, eq);
    const v = eq < 0 ? null : f.slice(eq + 1);
    const j = keys.indexOf(k);
    if (j >= 0) vals[j] = v;
    else { keys.push(k); vals.push(v); }
  }
  // As one merged map would order them: the /set keywords first (the line's value where it has
  // one), then the line's other keywords.
  for (const [k, v] of set) {
    const j = keys.indexOf(k);
    if (j >= 0) { apply(k, vals[j]!); keys[j] = null; } else apply(k, v);
  }
  for (let j = 0; j < keys.length; j++) if (keys[j] !== null) apply(keys[j]!, vals[j]!);
  if (typeVal !== undefined && typeVal !== null) {
    if (!(MTREE_TYPES as readonly string[]).includes(typeVal)) fail(`unknown type ${JSON.stringify(typeVal)}`);
    e.type = typeVal as MtreeType;
  }
  if (e.tarTime === undefined && plainTime !== undefined) e.tarTime = plainTime;
  return e;
}

