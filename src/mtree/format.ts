/**
 * Write entries as go-mtree spec text, byte-identical to what umoci 0.4.7 writes (header aside).
 * Spec: oci-reference.md §5 "Header", "Lines", "Per directory", "/set".
 */
import { readFileSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import { InvalidError } from "../errors";
import { keywordValues, normalizeKeywords, type MtreeEntry } from "./entry";
import { isAscii, nameToBytes, sortByBytes, visEncode } from "./vis";

export interface FormatMtreeOptions {
  keywords: readonly string[];
  /** Header `user:`; defaults to the current user name. */
  user?: string;
  /** Header `machine:`; defaults to the host name. */
  machine?: string;
  /** Header `tree:` (the walked root as the caller names it); defaults to "". */
  tree?: string;
  /** Header `date:` (Go's ANSIC layout, local time); defaults to now. */
  date?: Date;
}

/** A directory (or the path of one named as a parent); non-directories are kept as bare entries. */
interface Node {
  name: string;
  entry?: MtreeEntry;
  children: Node[];
  /** Non-directory entries directly below (their own paths give their names). */
  files: MtreeEntry[];
  /** Raw bytes of a non-ASCII name, for byte-order sorting. */
  key?: Buffer;
}

/**
 * Format entries (any order) as go-mtree text. The walk order is go-mtree's: per directory the
 * non-directories sorted by name bytes, then the subdirectories sorted the same way, depth first.
 *
 * Throws InvalidError when there is no "." directory entry, a path is malformed, a path has no
 * entry for its parent directory, or a non-directory has children. Does not mutate the entries.
 */
export function formatMtree(entries: Iterable<MtreeEntry>, opts: FormatMtreeOptions): string {
  const parts: string[] = [];
  writeMtree(entries, opts, (s) => parts.push(s));
  return parts.join("");
}

/**
 * As formatMtree, but hands the text to `write` in pieces of a few thousand lines, so a manifest
 * of a large tree is never held whole in memory.
 */
export function writeMtree(entries: Iterable<MtreeEntry>, opts: FormatMtreeOptions, write: (chunk: string) => void): void {
  writeMtreeSorted(walkOrder(buildTree(entries)), opts, write);
}

/** Lines per piece handed to `write` (unpack collects garbage per piece: bundle/unpack.ts). */
const PIECE_LINES = 2048;

/**
 * As writeMtree, for entries that already come in go-mtree's walk order (as walkTree and the
 * recorder's sorted() give them): formatted as they arrive, nothing is held but the open
 * directories. Throws InvalidError when an entry is out of that order.
 */
export function writeMtreeSorted(entries: Iterable<MtreeEntry>, opts: FormatMtreeOptions, write: (chunk: string) => void): void {
  const keywords = normalizeKeywords(opts.keywords);

  let buf: string[] = [];
  const out = {
    push(line: string): void {
      buf.push(line);
      if (buf.length >= PIECE_LINES) { write(buf.join("\n") + "\n"); buf = []; }
    },
  };
  out.push(headerLine("user", opts.user ?? safeUser()));
  out.push(headerLine("machine", opts.machine ?? hostname()));
  out.push(headerLine("tree", opts.tree ?? ""));
  out.push(headerLine("date", formatAnsic(opts.date ?? new Date())));
  out.push(headerLine("keywords", keywords.join(",")));

  // go-mtree's default /set keywords, restricted to the requested ones, then uid/gid of the directory.
  const defaultSet: string[] = [];
  if (keywords.includes("type")) defaultSet.push("type=file");
  if (keywords.includes("nlink")) defaultSet.push("nlink=1");
  if (keywords.includes("mode")) defaultSet.push("mode=0664");
  const setKeywords = ["uid", "gid"].filter((k) => keywords.includes(k));

  let curSet: Set<string> | null = null;

  const line = (name: string, e: MtreeEntry, set: Set<string>): string => {
    let s = visEncode(name);
    for (const k of keywords) {
      for (const kv of keywordValues(e, k)) if (!set.has(kv)) s += " " + kv;
    }
    return s;
  };

  // The open directories, root first; each is closed by "..".
  const open: string[] = [];
  const outOfOrder = (p: string): never => {
    throw new InvalidError(`mtree: ${JSON.stringify(p)}: entries are not in walk order`);
  };
  for (const e of entries) {
    const p = e.path;
    if (open.length === 0) {
      if (p !== ".") throw new InvalidError("mtree: no entry for the root directory \".\"");
    } else {
      if (p === ".") outOfOrder(p);
      checkPath(p);
    }
    const slash = p.lastIndexOf("/");
    const parent = p === "." ? "" : slash < 0 ? "." : p.slice(0, slash);
    const name = p === "." ? "." : p.slice(slash + 1);
    if (p === "." || e.type === "dir") {
      if (p !== ".") {
        while (open.length && open[open.length - 1] !== parent) { out.push(".."); open.pop(); }
        if (!open.length) outOfOrder(p);
      }
      out.push("");
      out.push("# " + commentPath(p));
      const klist: string[] = [];
      for (const k of setKeywords) klist.push(...keywordValues(e, k));
      if (curSet === null || klist.some((kv) => !curSet!.has(kv))) {
        const set = [...defaultSet, ...klist];
        out.push(set.length ? "/set " + set.join(" ") : "/set");
        curSet = new Set(set);
      }
      out.push(line(name, e, curSet));
      open.push(p);
    } else {
      if (open[open.length - 1] !== parent) outOfOrder(p);
      out.push("    " + line(name, e, curSet!));
    }
  }
  if (!open.length) throw new InvalidError("mtree: no entry for the root directory \".\"");
  while (open.length) { out.push(".."); open.pop(); }
  if (buf.length) write(buf.join("\n") + "\n");
}

/** The entries of a tree in go-mtree's walk order. */
function* walkOrder(root: Node): Generator<MtreeEntry> {
  // Depth-first with an explicit stack so very deep trees cannot overflow the call stack.
  const stack: Node[][] = [];
  const enter = function* (node: Node): Generator<MtreeEntry> {
    yield node.entry!;
    sortFiles(node.files);
    yield* node.files;
    sortChildren(node.children);
    stack.push([...node.children].reverse());
  };
  yield* enter(root);
  while (stack.length) {
    const next = stack[stack.length - 1]!.pop();
    if (next) yield* enter(next);
    else stack.pop();
  }
}

/**
 * The directory skeleton: one Node per directory (and per path named as a parent); files hang
 * off their parent as bare entries, so a tree of many files costs little beyond the entries.
 */
function buildTree(entries: Iterable<MtreeEntry>): Node {
  const nodes = new Map<string, Node>();
  const getNode = (path: string): Node => {
    let n = nodes.get(path);
    if (n) return n;
    // Create the missing chain bottom-up without recursion.
    const chain: string[] = [];
    let p = path;
    while (!nodes.has(p)) {
      chain.push(p);
      if (p === ".") break;
      const slash = p.lastIndexOf("/");
      p = slash < 0 ? "." : p.slice(0, slash);
    }
    for (let i = chain.length - 1; i >= 0; i--) {
      const cp = chain[i]!;
      const slash = cp.lastIndexOf("/");
      const name = cp === "." ? "." : cp.slice(slash + 1);
      const node: Node = { name, children: [], files: [] };
      if (!isAscii(name)) node.key = nameToBytes(name);
      nodes.set(cp, node);
      if (cp !== ".") nodes.get(slash < 0 ? "." : cp.slice(0, slash))!.children.push(node);
    }
    return nodes.get(path)!;
  };
  const others: MtreeEntry[] = [];
  for (const e of entries) {
    checkPath(e.path);
    if (e.type === "dir" || e.path === ".") getNode(e.path).entry = e;
    else others.push(e);
  }
  for (const e of others) {
    // A non-directory that is also some entry's parent: keep it as a node, reported below.
    const asParent = nodes.get(e.path);
    if (asParent) { asParent.entry = e; continue; }
    const slash = e.path.lastIndexOf("/");
    getNode(slash < 0 ? "." : e.path.slice(0, slash)).files.push(e);
  }
  const root = nodes.get(".");
  if (!root?.entry) throw new InvalidError("mtree: no entry for the root directory \".\"");
  for (const [p, n] of nodes) {
    if (!n.entry) throw new InvalidError(`mtree: ${JSON.stringify(p)}: no entry for this parent directory`);
    if ((n.children.length || n.files.length) && n.entry.type !== "dir")
      throw new InvalidError(`mtree: ${JSON.stringify(p)}: has children but is of type ${n.entry.type}`);
  }
  return root;
}

/** Paths are "." or "/"-joined non-empty components other than "." and "..". */
export function checkPath(p: string): void {
  if (p === ".") return;
  // No empty, "." or ".." component (checked without splitting: this runs once per entry).
  if (p.length === 0 || p.includes("\0") || BAD_COMPONENT.test(p)) throw new InvalidError(`mtree: invalid entry path ${JSON.stringify(p)}`);
}
const BAD_COMPONENT = /(?:^|\/)\.{0,2}(?:\/|$)/;

/** Files of one directory by name bytes: with a shared parent, comparing whole paths is the same. */
function sortFiles(files: MtreeEntry[]): void {
  sortByBytes(files, (f) => f.path);
}

function sortChildren(children: Node[]): void {
  children.sort((a, b) => {
    if (!a.key && !b.key) return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
    return Buffer.compare(a.key ?? Buffer.from(a.name), b.key ?? Buffer.from(b.name));
  });
}

/**
 * go-mtree writes the directory comment raw. A newline there would split the comment and be read
 * back as an entry, so (deliberately unlike go-mtree) line breaks and non-UTF-8 bytes are
 * vis-encoded; every other path is written exactly as go-mtree does.
 */
function commentPath(p: string): string {
  return p.replace(/[\n\r]|(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/g, (m) => visEncode(m));
}

function headerLine(key: string, value: string): string {
  return "#" + `${key}: `.padStart(16, " ") + value;
}

/** The current user's name, like Go's user.Current(): passwd entry by uid (Bun's userInfo may say "unknown"). */
function safeUser(): string {
  const uid = process.getuid?.() ?? -1;
  try {
    for (const l of readFileSync("/etc/passwd", "utf8").split("\n")) {
      const f = l.split(":");
      if (f.length > 2 && Number(f[2]) === uid && f[2] !== "") return f[0]!;
    }
  } catch {
    // no passwd file: fall through
  }
  try {
    const n = userInfo().username;
    if (n && n !== "unknown") return n;
  } catch {
    // fall through
  }
  return uid >= 0 ? String(uid) : "";
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Go's time.ANSIC layout, "Mon Jan _2 15:04:05 2006", in local time. */
export function formatAnsic(d: Date): string {
  const p2 = (n: number) => String(n).padStart(2, "0");
  return (
    `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, " ")} ` +
    `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${d.getFullYear()}`
  );
}
