/**
 * Garbage collection: mark every blob reachable from index.json (through indexes and
 * manifests: configs, layers, subjects) with the shared walk (walk.ts), then sweep the rest and
 * stale temporary files.
 *
 * Nothing is deleted unless the walk is complete: a reachable index, manifest or other blob that
 * is missing (exit 3), unreadable, corrupt or invalid (exit 4) makes gc refuse with one line
 * naming the first such blob and the route to it (umoci, too, refuses when a reachable blob is
 * missing). Without that rule the blobs only a missing manifest named would be swept. Leaves
 * (configs, layers) are checked for presence (a regular file, by lstat), not rehashed; a leaf
 * that carries `urls` (a foreign layer) or embedded `data` may be absent.
 *
 * The layout is hostile input (layout-fs.ts): gc refuses (exit 4, nothing removed) when
 * `blobs/`, a `blobs/<alg>` directory or `.boci-tmp` is a symlink, and it only ever removes
 *  - under `blobs/<alg>/`: regular files whose names are valid digests of an algorithm with a
 *    known encoding (sha256, sha512), found by lstat; other names are left alone (`validate`
 *    reports them);
 *  - in `.boci-tmp/`: regular files and real directories (a directory is removed without
 *    following any symlink inside it); anything else there is skipped with a warning;
 *  - at the top: regular `.tmp-index.json-*` files, and umoci's `.umoci-*` directories when
 *    nobody holds their flock.
 *
 * Referrers (image-spec 1.1 `subject`; referrers.ts) are index.json entries, so they are roots
 * and kept, with their blobs, as every entry is (umoci keeps every entry too). Their subject is a
 * strong edge: a referrer keeps the image it names, so after `rm` of that image's tag both stay
 * (nothing a user stored is deleted silently, and no referrer is left dangling); each such
 * untagged referrer is named in a warning and in `orphanReferrers`. A subject that is absent
 * from the layout is legal (a referrer may be stored before its subject): it is skipped, warned
 * about, and never makes gc refuse; a subject that is there but corrupt does, as any blob.
 *
 * Why a temporary file gc removes cannot belong to a live writer: every command that writes
 * blobs holds the gc lock shared from its first blob until index.json names them, and an
 * index.json update writes its temporary file under the index lock; gc holds the gc lock
 * exclusively and the index lock for the whole run, so no such writer is running. Temporary
 * blob names carry the writer's pid (`blob-<pid>-<random>`) only to say who left them.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { BociError, InvalidError, NotFoundError } from "../errors";
import { type Descriptor, type ImageIndex, type Manifest, isDigest } from "../image";
import { takeLock, INDEX_LOCK } from "./lock";
import { type Layout, TMP_DIR } from "./layout";
import { checkLayoutDir, fileTypeName, lstatOrNull, notA } from "./layout-fs";
import { refName } from "./refs";
import { isSubjectAbsent } from "./referrers";
import { DescriptorWalk, type WalkChild, type WalkProblem, kindOf } from "./walk";
import { flock } from "../sys";

export interface GcOptions {
  /** Work out what would be removed, and remove nothing. */
  dryRun?: boolean;
  /** Called for each file removed (not with dryRun). */
  onRemove?: (what: string) => void;
  /** Called for each oddity left alone. */
  onWarn?: (what: string) => void;
}

export interface GcResult {
  dryRun: boolean;
  /** Digests of the unreachable blobs removed (or that would be, with dryRun). */
  removedBlobs: string[];
  /** Temporary files and directories removed, relative to the layout root. */
  removedTemp: string[];
  /** Bytes of the unreachable blobs removed (or that would be, with dryRun). */
  bytesFreed: number;
  /** Reachable blob files kept. */
  kept: number;
  /** Names left alone because they are not regular files or directories. */
  skipped: string[];
  /**
   * Untagged referrers kept although what they refer to is reachable only through referrers
   * (its tag was removed), or is absent: kept with everything they name. In index.json order.
   */
  orphanReferrers: Array<{ digest: string; subject: string; where: string; subjectAbsent: boolean }>;
}

/** Digest algorithms whose encoding is known, so a name can be checked before a removal. */
const SWEEPABLE_ALGS = new Set(["sha256", "sha512"]);

export function gc(layout: Layout, opts: GcOptions = {}): GcResult {
  layout.lockGc("ex");
  const indexLock = takeLock(layout.path, INDEX_LOCK, "ex", { owner: layout.owner() });
  try {
    const root = layout.path;
    const algDirs = refuseHostile(() => blobDirs(root));
    const tmpOk = refuseHostile(() => checkLayoutDir(root, TMP_DIR));
    const ix = layout.readIndex();
    const graph: ReachGraph = { nodes: new Map(), absentSubjects: [] };
    const walk = markReachable(layout, ix, graph);
    if (!walk.complete) throw refusal(walk.problems[0]!);
    const orphanReferrers = findOrphanReferrers(ix, graph);
    const orphaned = new Set(orphanReferrers.map((o) => o.digest));
    for (const o of orphanReferrers) {
      opts.onWarn?.(o.subjectAbsent
        ? `gc: kept referrer ${o.digest} (${o.where}): its subject ${o.subject} is not in the layout`
        : `gc: kept referrer ${o.digest} (${o.where}) and its subject ${o.subject}, which no tag reaches any more`);
    }
    for (const a of graph.absentSubjects) {
      if (!orphaned.has(a.referrer)) opts.onWarn?.(`gc: subject ${a.subject} of ${a.where} is not in the layout (left as it is)`);
    }

    const skipped: string[] = [];
    const skip = (rel: string, st: fs.Stats) => {
      skipped.push(rel);
      opts.onWarn?.(`gc: left ${rel} alone: it is ${fileTypeName(st)}`);
    };

    const blobs: Array<{ digest: string; file: string; size: number }> = [];
    let kept = 0;
    for (const alg of algDirs) {
      for (const name of readdirSorted(path.join(root, "blobs", alg))) {
        const digest = `${alg}:${name}`;
        if (!SWEEPABLE_ALGS.has(alg) || !isDigest(digest)) continue;
        const file = path.join(root, "blobs", alg, name);
        const st = lstatOrNull(file);
        if (!st) continue;
        if (!st.isFile()) { skip(`blobs/${alg}/${name}`, st); continue; }
        if (walk.reachable.has(digest)) { kept++; continue; }
        blobs.push({ digest, file, size: st.size });
      }
    }

    const temps: Array<{ rel: string; dir: boolean }> = [];
    if (tmpOk) {
      for (const n of readdirSorted(path.join(root, TMP_DIR))) {
        const rel = `${TMP_DIR}/${n}`;
        const st = lstatOrNull(path.join(root, rel));
        if (!st) continue;
        if (st.isFile() || st.isDirectory()) temps.push({ rel, dir: st.isDirectory() });
        else skip(rel, st);
      }
    }
    for (const n of readdirSorted(root)) {
      const ours = n.startsWith(".tmp-index.json-");
      const umoci = n.startsWith(".umoci-");
      if (!ours && !umoci) continue;
      const st = lstatOrNull(path.join(root, n));
      if (!st) continue;
      if (ours && st.isFile()) temps.push({ rel: n, dir: false });
      else if (umoci && st.isDirectory()) { if (canLock(path.join(root, n))) temps.push({ rel: n, dir: true }); }
      else skip(n, st);
    }

    const result: GcResult = { dryRun: opts.dryRun ?? false, removedBlobs: [], removedTemp: [], bytesFreed: 0, kept, skipped, orphanReferrers };
    for (const b of blobs) {
      if (!opts.dryRun) {
        try { fs.unlinkSync(b.file); } catch (e) { if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e; }
        opts.onRemove?.(`removed unreachable blob ${b.digest}`);
      }
      result.removedBlobs.push(b.digest);
      result.bytesFreed += b.size;
    }
    for (const t of temps) {
      if (!opts.dryRun) {
        const p = path.join(root, t.rel);
        // rm of a directory never follows a symlink inside it; unlink never follows one.
        if (t.dir) fs.rmSync(p, { recursive: true, force: true });
        else try { fs.unlinkSync(p); } catch (e) { if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e; }
        opts.onRemove?.(`removed stale temporary file ${t.rel}`);
      }
      result.removedTemp.push(t.rel);
    }
    return result;
  } finally {
    indexLock.release();
  }
}

/**
 * What markReachable learnt about indexes and manifests, for the referrer rules: each one's
 * children that are indexes or manifests and its subject (when present in the layout), and the
 * subjects that are absent (skipped, not followed).
 */
export interface ReachGraph {
  nodes: Map<string, { kids: string[]; subject?: string }>;
  absentSubjects: Array<{ referrer: string; subject: string; where: string }>;
}

/**
 * Walk from every index.json entry with gc's reader: indexes and manifests are read and
 * verified (Layout.readJson), other blobs must be present. Stops at the first problem (gc then
 * deletes nothing), so `complete` is the verdict and `problems[0]` the reason. A subject absent
 * from the layout is not followed (image-spec: it may be), and noted in `graph`.
 */
export function markReachable(layout: Layout, ix: ImageIndex, graph?: ReachGraph): DescriptorWalk {
  const roots: WalkChild[] = ix.manifests.map((d, i) => {
    const tag = refName(d);
    return { desc: d, where: `index.json manifests[${i}]${tag !== undefined ? ` ${JSON.stringify(tag)}` : ""}` };
  });
  const walk = new DescriptorWalk(roots);
  const subjectKid = (owner: Descriptor, subject: Descriptor, what: string, where: string): WalkChild[] => {
    const node = graph?.nodes.get(owner.digest);
    if (isSubjectAbsent(layout, subject)) {
      graph?.absentSubjects.push({ referrer: owner.digest, subject: subject.digest, where: `${what} ${owner.digest} (${where})` });
      return [];
    }
    if (node) node.subject = subject.digest;
    return [{ desc: subject, where: `subject of ${what} ${owner.digest}`, kind: kindOf(subject) }];
  };
  for (let n = walk.next(); n; n = walk.next()) {
    const d = n.desc;
    try {
      if (n.kind === "index") {
        const child = layout.readJson<ImageIndex>(d, "index");
        const kids: WalkChild[] = (child.manifests ?? []).map((c, i) => ({ desc: c, where: `manifests[${i}] of index ${d.digest}` }));
        graph?.nodes.set(d.digest, { kids: kids.filter((k) => kindOf(k.desc) !== "blob").map((k) => k.desc.digest) });
        if (child.subject) kids.push(...subjectKid(d, child.subject, "index", n.where));
        walk.expand(n, kids);
      } else if (n.kind === "manifest") {
        const m = layout.readJson<Manifest>(d, "manifest");
        const kids: WalkChild[] = [{ desc: m.config, where: `config of manifest ${d.digest}`, kind: "blob" }];
        m.layers.forEach((l, i) => kids.push({ desc: l, where: `layer ${i + 1} of manifest ${d.digest}`, kind: "blob" }));
        graph?.nodes.set(d.digest, { kids: [] });
        if (m.subject) kids.push(...subjectKid(d, m.subject, "manifest", n.where));
        walk.expand(n, kids);
      } else {
        checkPresent(layout, d);
      }
    } catch (e) {
      if (!(e instanceof BociError)) throw e;
      walk.fail({ digest: d.digest, where: n.where, message: e instanceof NotFoundError ? "blob missing" : e.message, missing: e instanceof NotFoundError, error: e });
      break;
    }
  }
  return walk;
}

/**
 * The untagged referrer entries of index.json that nothing but referrers keeps: an entry is
 * anchored when it is tagged or is not a referrer, everything it reaches (children, subjects) is
 * anchored with it, and a manifest or index whose subject is anchored is anchored in turn (a
 * referrer of a referrer too). The untagged referrer entries left are the orphans gc keeps and
 * warns about.
 */
export function findOrphanReferrers(ix: ImageIndex, graph: ReachGraph): GcResult["orphanReferrers"] {
  const anchored = new Set<string>();
  const absent = new Map(graph.absentSubjects.map((a) => [a.referrer, a.subject]));
  const subjectOf = (digest: string): string | undefined => graph.nodes.get(digest)?.subject ?? absent.get(digest);
  // Who names each digest as its subject: a manifest or index whose subject is anchored is
  // anchored too, listed in index.json or not (a referrer whose tag was removed, kept by a
  // referrer of its own). One pass, each digest anchored once.
  const referrersOf = new Map<string, string[]>();
  for (const [digest, n] of graph.nodes) {
    if (n.subject === undefined) continue;
    const l = referrersOf.get(n.subject);
    if (l) l.push(digest);
    else referrersOf.set(n.subject, [digest]);
  }
  const anchor = (start: string): void => {
    const todo = [start];
    while (todo.length) {
      const x = todo.pop()!;
      if (anchored.has(x)) continue;
      anchored.add(x);
      const node = graph.nodes.get(x);
      if (node) {
        todo.push(...node.kids);
        if (node.subject) todo.push(node.subject);
      }
      todo.push(...(referrersOf.get(x) ?? []));
    }
  };
  const referrers: Array<{ d: Descriptor; i: number; subject: string }> = [];
  ix.manifests.forEach((d, i) => {
    const subject = subjectOf(d.digest);
    if (subject === undefined || refName(d) !== undefined) anchor(d.digest);
    else referrers.push({ d, i, subject });
  });
  const out: GcResult["orphanReferrers"] = [];
  const seen = new Set<string>();
  for (const r of referrers) {
    if (anchored.has(r.d.digest) || seen.has(r.d.digest)) continue;
    seen.add(r.d.digest);
    out.push({ digest: r.d.digest, subject: r.subject, where: `index.json manifests[${r.i}]`, subjectAbsent: absent.has(r.d.digest) });
  }
  return out;
}

/** A leaf must be a regular file in the layout, unless it is embedded or stored elsewhere (urls). */
function checkPresent(layout: Layout, d: Descriptor): void {
  if (layout.hasBlob(d.digest)) return;
  const rel = layout.blobRel(d.digest);
  const st = lstatOrNull(path.join(layout.path, rel));
  if (st) throw notA(rel, "regular file", st);
  if (typeof d.data === "string" || (d.urls && d.urls.length)) return;
  throw new NotFoundError(`blob ${d.digest}: not found in layout`);
}

function refusal(p: WalkProblem): BociError {
  const msg = `gc: nothing removed: ${p.digest} (${p.where}): ${p.message}`;
  if (p.missing) return new NotFoundError(msg, { cause: p.error });
  const code = p.error instanceof BociError ? p.error.exitCode : 4;
  return new BociError(msg, { code: "EGCREFUSED", exitCode: code, cause: p.error });
}

/** Run a structure check; a hostile name becomes "gc: nothing removed: layout is invalid: …". */
function refuseHostile<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof InvalidError) throw new InvalidError(`gc: nothing removed: ${e.message}`, { cause: e });
    throw e;
  }
}

/** The `blobs/<alg>` directories; InvalidError when `blobs` or one of them is a symlink. */
function blobDirs(root: string): string[] {
  if (!checkLayoutDir(root, "blobs")) return [];
  const out: string[] = [];
  for (const n of readdirSorted(path.join(root, "blobs"))) {
    const st = lstatOrNull(path.join(root, "blobs", n));
    if (!st) continue;
    if (st.isSymbolicLink()) throw notA(`blobs/${n}`, "directory", st);
    if (st.isDirectory()) out.push(n);
  }
  return out;
}

function readdirSorted(p: string): string[] {
  try { return fs.readdirSync(p).sort(); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
}

/** Whether nobody holds a flock on directory `p` (umoci's temporary directories). */
function canLock(p: string): boolean {
  let fd = -1;
  try {
    fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
    const ok = flock(fd, "ex", { nonblock: true });
    if (ok) flock(fd, "un");
    return ok;
  } catch {
    return false;
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}
