/**
 * Read go-mtree / BSD mtree spec text into entries with full relative paths.
 * Spec: oci-reference.md §5 "Lines", "Keyword values"; mtree(5).
 */
import { InvalidError } from "../errors";
import { MTREE_TYPES, type MtreeEntry, type MtreeType } from "./entry";
import { visDecode } from "./vis";

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
  const lines = text.split("\n");
  const set: KV = new Map();
  const dirs: string[] = []; // stack of entered directory paths
  const byPath = new Map<string, number>();
  const out: MtreeEntry[] = [];

  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const fail = (why: string): never => {
      throw new InvalidError(`mtree line ${lineNo}: ${why}`);
    };
    let line = stripCR(lines[i]!);
    const trimmed = line.replace(/^[ \t]+/, "");
    if (trimmed === "" || trimmed.startsWith("#")) continue;

    while (endsWithContinuation(line)) {
      if (i + 1 >= lines.length) fail("line continuation at end of input");
      line = line.slice(0, -1) + stripCR(lines[++i]!);
    }

    const fields = line.trim().split(/[ \t]+/);
    const name = fields[0]!;
    const kvs = parseKeyVals(fields.slice(1), fail);

    if (name.startsWith("/")) {
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
      // go-mtree enters a directory only when the entry itself says type=dir.
      if (kvs.get("type") === "dir") dirs.push(path);
    }

    const merged: KV = new Map(set);
    for (const [k, v] of kvs) merged.set(k, v);
    const entry = toEntry(path, merged, fail);
    const at = byPath.get(path);
    if (at === undefined) {
      byPath.set(path, out.length);
      out.push(entry);
    } else {
      out[at] = entry;
    }
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

function parseKeyVals(fields: string[], fail: (why: string) => never): KV {
  const kv: KV = new Map();
  for (const f of fields) {
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

function toEntry(path: string, kv: KV, fail: (why: string) => never): MtreeEntry {
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

  const typeVal = kv.get("type");
  let type: MtreeType = "file";
  if (typeVal !== undefined && typeVal !== null) {
    if (!(MTREE_TYPES as readonly string[]).includes(typeVal)) fail(`unknown type ${JSON.stringify(typeVal)}`);
    type = typeVal as MtreeType;
  }
  const e: MtreeEntry = { path, type };
  let plainTime: number | undefined;
  for (const [k, v] of kv) {
    if (v === null) continue; // flag-style keywords (optional, nochange, ...) carry no state
    switch (k) {
      case "type":
        break;
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
  }
  if (e.tarTime === undefined && plainTime !== undefined) e.tarTime = plainTime;
  return e;
}
