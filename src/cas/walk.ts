/**
 * The one descriptor walk, shared by gc (marking), tag resolution (refs.ts) and `validate`.
 *
 * It owns the traversal, not the reading: the caller takes nodes with `next()`, reads each one
 * its own way, and hands back its children with `expand()` or records why it could not with
 * `fail()`. What the walk guarantees:
 *
 *  - each (kind, digest) is visited once, however often it is named: a DAG whose indexes each
 *    list the next level twice costs one visit per level, not 2^depth;
 *  - no recursion (an explicit stack), so a chain of any depth neither overflows nor needs a
 *    depth limit; the order is depth-first, children in the order listed;
 *  - `complete` is true only when no node failed: every descriptor reachable from the roots was
 *    read (indexes and manifests) or found present (other blobs). gc deletes nothing otherwise.
 *
 * A digest met as two kinds (say, a layer descriptor and a manifest descriptor naming the same
 * bytes) is visited as each, so a confusing blob cannot hide the children of the other reading.
 */
import { type Descriptor, isIndexMediaType, isManifestMediaType } from "../image";

/** How a node is read: an index and a manifest have children; a blob is a leaf. */
export type WalkKind = "index" | "manifest" | "blob";

/** A descriptor to visit, with where it was named (for messages: `layer 0 of manifest sha256:…`). */
export interface WalkChild { desc: Descriptor; where: string; kind?: WalkKind }

export interface WalkNode {
  desc: Descriptor;
  kind: WalkKind;
  where: string;
  parent: WalkNode | null;
}

export interface WalkProblem {
  digest: string;
  where: string;
  message: string;
  /** The blob is absent (exit 3), rather than unreadable or invalid (exit 4). */
  missing: boolean;
  /** The error behind it, when there was one (its exit code is kept). */
  error?: unknown;
}

/** The kind a descriptor's media type implies (anything but an index or manifest is a leaf). */
export function kindOf(d: unknown): WalkKind {
  const mt = d && typeof d === "object" ? (d as Descriptor).mediaType : undefined;
  if (isIndexMediaType(mt as string)) return "index";
  if (isManifestMediaType(mt as string)) return "manifest";
  return "blob";
}

export interface WalkOptions {
  /** The visit-once key (default `${kind} ${digest}`). */
  key?: (c: WalkChild & { kind: WalkKind }) => string;
}

export class DescriptorWalk {
  private readonly stack: WalkNode[] = [];
  private readonly seen = new Set<string>();
  private readonly keyOf: (c: WalkChild & { kind: WalkKind }) => string;
  /** Every problem recorded, in the order met. */
  readonly problems: WalkProblem[] = [];
  /** The digest of every node handed out (visited or failed). */
  readonly reachable = new Set<string>();

  constructor(roots: WalkChild[], opts: WalkOptions = {}) {
    this.keyOf = opts.key ?? ((c) => `${c.kind} ${c.desc.digest}`);
    this.push(null, roots);
  }

  /** The next node to read, or undefined when the walk is done. */
  next(): WalkNode | undefined {
    const n = this.stack.pop();
    if (n) this.reachable.add(n.desc.digest);
    return n;
  }

  /** Queue `node`'s children (those already seen are skipped). */
  expand(node: WalkNode, children: WalkChild[]): void {
    this.push(node, children);
  }

  /** Record that a node (or a leaf its reader checked inline) could not be read. */
  fail(p: WalkProblem): void {
    this.problems.push(p);
  }

  /** True when nothing failed so far (and, once `next()` returns undefined, for the whole walk). */
  get complete(): boolean {
    return this.problems.length === 0;
  }

  /** The descriptors from the root down to `node`. */
  static path(node: WalkNode): Descriptor[] {
    const out: Descriptor[] = [];
    for (let n: WalkNode | null = node; n; n = n.parent) out.push(n.desc);
    return out.reverse();
  }

  private push(parent: WalkNode | null, children: WalkChild[]): void {
    // Reversed onto the stack so that they come off in the order listed.
    const fresh: WalkNode[] = [];
    for (const c of children) {
      const kind = c.kind ?? kindOf(c.desc);
      const key = this.keyOf({ ...c, kind });
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      fresh.push({ desc: c.desc, kind, where: c.where, parent });
    }
    for (let i = fresh.length - 1; i >= 0; i--) this.stack.push(fresh[i]!);
  }
}
