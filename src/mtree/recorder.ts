/**
 * An incremental manifest, filled while a layer is extracted (one pass) and formatted at the end.
 */
import { InvalidError } from "../errors";
import type { MtreeEntry } from "./entry";
import { checkPath } from "./format";

export interface MtreeRecorder {
  /**
   * Record (or replace) the entry at `entry.path`. A non-directory entry drops everything that was
   * recorded below that path (a file cannot have children); a directory keeps its children.
   */
  set(entry: MtreeEntry): void;
  /** Forget `path` and everything below it (whiteouts, replacements). Unknown paths are ignored. */
  delete(path: string): void;
  /** The entry recorded at `path`, if any. */
  get(path: string): MtreeEntry | undefined;
  /** True when an entry is recorded at `path`. */
  has(path: string): boolean;
  /** Every recorded entry, parents before children (in no particular sibling order). */
  entries(): MtreeEntry[];
  /** Number of recorded entries. */
  readonly size: number;
}

interface Node {
  entry?: MtreeEntry;
  children?: Map<string, Node>;
}

/**
 * A tree-backed store keyed by path: set/get are O(depth), delete of a subtree is O(depth), and
 * entries() is O(n). Entries are stored by reference (not copied). Throws InvalidError on a
 * malformed path.
 */
export function createMtreeRecorder(): MtreeRecorder {
  const root: Node = {};
  let count = 0;

  const split = (path: string): string[] => {
    checkPath(path);
    return path === "." ? [] : path.split("/");
  };
  const find = (parts: string[]): Node | undefined => {
    let n: Node | undefined = root;
    for (const p of parts) {
      n = n.children?.get(p);
      if (!n) return undefined;
    }
    return n;
  };
  const countSubtree = (n: Node): number => {
    let c = 0;
    const stack: Node[] = [n];
    while (stack.length) {
      const x = stack.pop()!;
      if (x.entry) c++;
      if (x.children) for (const ch of x.children.values()) stack.push(ch);
    }
    return c;
  };

  return {
    set(entry) {
      const parts = split(entry.path);
      let n = root;
      for (const p of parts) {
        let c = (n.children ??= new Map()).get(p);
        if (!c) {
          c = {};
          n.children.set(p, c);
        }
        n = c;
      }
      if (entry.type !== "dir" && n.children) {
        for (const c of n.children.values()) count -= countSubtree(c);
        n.children = undefined;
      }
      if (!n.entry) count++;
      n.entry = entry;
    },
    delete(path) {
      const parts = split(path);
      if (!parts.length) throw new InvalidError("mtree recorder: cannot delete the root");
      const parent = find(parts.slice(0, -1));
      const name = parts[parts.length - 1]!;
      const n = parent?.children?.get(name);
      if (!n) return;
      count -= countSubtree(n);
      parent!.children!.delete(name);
    },
    get(path) {
      return find(split(path))?.entry;
    },
    has(path) {
      return find(split(path))?.entry !== undefined;
    },
    entries() {
      const out: MtreeEntry[] = [];
      const stack: Node[] = [root];
      while (stack.length) {
        const n = stack.pop()!;
        if (n.entry) out.push(n.entry);
        if (n.children) for (const c of n.children.values()) stack.push(c);
      }
      return out;
    },
    get size() {
      return count;
    },
  };
}
