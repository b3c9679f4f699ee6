/**
 * Apply layer tars onto a root filesystem, as umoci's TarExtractor does: whiteouts, upper paths
 * and the dispatch of each entry. Everything that touches the disk is in src/rootfs/: names are
 * FileNames (bytes), directories are held as descriptors (rootfs/tree.ts), inodes are made
 * relative to their parent's descriptor (rootfs/inode.ts), directory times and rootless modes
 * settle after the layer on the inode they were taken from (rootfs/deferred.ts), and the xattr
 * and manifest rules are rootfs/xattr.ts and rootfs/record.ts.
 *
 * Safety (oci-reference.md §3 "Apply", §8 pitfalls 6–8; CVE-2021-29136): entry names are
 * cleaned lexically; an entry's parent is resolved inside the root as a chroot would (symlinks
 * followed within it); the final component is never followed; the root can only be a
 * directory; a hardlink target is resolved the same way and may not be a directory; a whiteout
 * names one component below its directory.
 *
 * One pass per byte: bodies are hashed as they are written and each entry is recorded in the
 * mtree recorder, so no second walk is needed.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { InvalidError, addContext } from "../errors";
import type { TarEntry, TarHeader } from "../tar";
import type { MtreeEntry } from "../mtree";
import { FROM_DISK, REFRESH, type ManifestSpool } from "../mtree/spool";
import { type MapOptions, toHost } from "./idmap";
import { cleanEntryPath, baseOf, joinPath as join, mtreePath, fromMtreePath, parentOf } from "../rootfs/path";
import { RootTree, isDir, type ResolveHooks } from "../rootfs/tree";
import { InodeWriter, PENDING_DIGEST, QUEUED, hostOwner, type Place } from "../rootfs/inode";
import { QueuedFileError } from "../rootfs/file-queue";
import type { FileStat } from "../rootfs/file-queue-layout";
import { DeferredDirs } from "../rootfs/deferred";
import { entryFromHeader, entryFromInode } from "../rootfs/record";
import { cname, displayName, fileName } from "../rootfs/name";
import { hashFd, openRegularAt } from "../rootfs/read";
import { chownAt, closeFd, linkAt, mkdirAt, openAt, readDirFd, readlinkAt, statAt, statFd } from "../sys/at";
import { O_CLOEXEC, O_DIRECTORY, O_RDONLY } from "../sys";
import { heapTick } from "../util/heap";

export { cleanEntryPath };

export interface ApplyOptions {
  mapOptions: MapOptions;
  keepDirlinks?: boolean;
  /** Record the extracted tree here (the bundle's mtree manifest), read back by manifest(). */
  recorder?: ManifestSpool;
  /**
   * With a recorder: the stat cache's key of a regular file (bundle/stat-cache.ts). Each file's
   * is taken as it is finished, and manifest() gives it with the entry (`statKey`); a file
   * changed later (a hardlink to it, a refresh) gets one from the disk at the end instead.
   */
  statKey?: (st: FileStat) => string;
  onWarning?: (code: string, msg: string) => void;
}

/** A manifest entry as manifest() gives it: a regular file's stat cache key with it (ApplyOptions.statKey). */
export type RecordedEntry = MtreeEntry & { statKey?: string };

const WHITEOUT_PREFIX = ".wh.";
const OPAQUE = ".wh..wh..opq";

/**
 * Extracts layers onto one rootfs. Create one per unpack; call `applyLayer` for each layer in
 * order, then `finish()` to fix up recorded metadata that only settles at the end.
 */
export class LayerApplier {
  readonly root: string;
  private readonly opts: ApplyOptions;
  private readonly rootless: boolean;
  private treeHandle: RootTree | null = null;
  private writerHandle: InodeWriter | null = null;
  private deferredHandle: DeferredDirs | null = null;
  /** real paths created by the current layer, and their ancestors (whiteouts must spare them) */
  private upper = new Set<string>();
  /** false while applying a first layer onto an empty root (see applyLayer) */
  private trackUpper = true;
  private layersApplied = 0;
  private readonly startedEmpty: boolean;
  /** a name was removed since the applier was made (a recorded parent may be gone) */
  private removedEver = false;
  private readonly euid = process.geteuid?.() ?? 0;
  private readonly egid = process.getegid?.() ?? 0;
  private readonly hooks: ResolveHooks;

  constructor(root: string, opts: ApplyOptions) {
    this.root = path.resolve(root);
    this.opts = opts;
    this.rootless = opts.mapOptions.rootless;
    let names: string[] = [""];
    try { names = fs.readdirSync(this.root); } catch { /* reported when the layer is applied */ }
    this.startedEmpty = names.length === 0;
    this.hooks = {
      makeDir: (dirfd, parentReal, name) => this.makeImplicitDir({ dirfd, parentReal, name }),
      remove: (dirfd, parentReal, name) => this.removeAll(join(parentReal, name), dirfd),
      locked: this.rootless ? (dirfd, parentReal, name, st) => this.deferred.openUp(join(parentReal, name), st, dirfd) : undefined,
      touched: (fd, real) => { if (!this.deferred.has(real)) this.deferred.touch(real, statFd(fd), null); },
    };
  }

  private get tree(): RootTree {
    return (this.treeHandle ??= new RootTree(this.root));
  }
  private get writer(): InodeWriter {
    const warn = (code: string, msg: string) => this.opts.onWarning?.(code, msg);
    return (this.writerHandle ??= new InodeWriter(this.tree, { map: this.opts.mapOptions, rootless: this.rootless, euid: this.euid, umask: process.umask(), warn }));
  }
  private get deferred(): DeferredDirs {
    return (this.deferredHandle ??= new DeferredDirs(this.tree, this.rootless));
  }

  /** Record the root directory as it is now (before the first layer). */
  recordRoot(): void {
    this.opts.recorder?.set({ path: ".", type: "dir" }, FROM_DISK);
  }

  /** Apply one layer's entries (already decompressed and parsed). */
  async applyLayer(entries: AsyncIterable<TarEntry>): Promise<void> {
    // The first layer onto an empty root has nothing below it: its whiteouts can only name its
    // own entries, which they must spare, so they remove nothing and no upper set is kept.
    this.trackUpper = !(this.layersApplied === 0 && this.startedEmpty);
    this.layersApplied++;
    this.upper = new Set();
    this.tree.invalidate();
    for await (const entry of entries) {
      // Keep the heap small on layers with many entries: JSC collects lazily by default.
      heapTick();
      try {
        await this.applyEntry(entry);
      } catch (e) {
        // (a file finished on the second thread names its own entry)
        throw e instanceof QueuedFileError ? e : addContext(`apply ${JSON.stringify(entry.header.name)}`, e);
      }
      this.tree.trim();
    }
    // Every file of the layer written and closed before anything is read back or settled.
    this.writer.drainQueue();
    this.deferred.settle((real, mode) => this.patchRecord(real, { mode }));
    this.tree.trim();
  }

  /** Wait for the files on the second thread and the digests of large files hashed on workers. */
  async finish(): Promise<void> {
    this.writer.drainQueue();
    this.writer.closeQueue();
    this.digests = await this.writer.digests();
    if (!this.opts.recorder) this.close();
  }
  private digests = new Map<string, string>();

  /**
   * The recorded tree in walk order, each entry final: what only settles at the end (a
   * directory's size and nlink, a hardlinked file's nlink, implicit parents) read from disk
   * now, digests of large files filled in. Releases the root's descriptors when done.
   */
  *manifest(): Generator<RecordedEntry> {
    const rec = this.opts.recorder;
    if (!rec) return;
    try {
      let n = 0;
      for (const { entry, flags, statKey } of rec.entries()) {
        if ((++n & 4095) === 0) this.tree.trim();
        if (entry.sha256?.startsWith(PENDING_DIGEST)) entry.sha256 = this.digests.get(entry.sha256);
        if (!(flags & (REFRESH | FROM_DISK))) {
          if (statKey) (entry as RecordedEntry).statKey = statKey;
          yield entry;
          continue;
        }
        const rel = fromMtreePath(entry.path);
        // Read only what is still reached from the root without a symlink.
        if (this.removedEver && rel !== "" && this.tree.tryDir(parentOf(rel)) < 0) continue;
        const prev = flags & FROM_DISK ? undefined : entry;
        let e: RecordedEntry | null;
        try {
          e = this.fromDisk(rel, prev);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (!this.rootless || (code !== "EACCES" && code !== "EPERM")) throw err;
          // Rootless: an ancestor locked by the image hides it; look with the ancestors opened up.
          e = null;
          this.deferred.withOpenAncestors(rel, () => { this.tree.invalidate(); e = this.fromDisk(rel, prev); });
        }
        if (e) yield e;
      }
    } finally {
      this.close();
    }
  }

  /** Release the root's descriptors (finish() does; call it when giving up early). */
  close(): void {
    // (files still on the second thread are finished first: their descriptors are the worker's)
    this.writerHandle?.closeQueue();
    this.treeHandle?.close();
    this.treeHandle = null;
    this.writerHandle = null;
    this.deferredHandle = null;
  }

  private async applyEntry(entry: TarEntry): Promise<void> {
    const hdr = entry.header;
    const rel = cleanEntryPath(hdr.name);
    const base = baseOf(rel);
    if (base.startsWith(WHITEOUT_PREFIX)) {
      await entry.drain();
      this.applyWhiteout(rel);
      return;
    }
    if (rel === "") {
      if (hdr.type !== "dir") throw new InvalidError(`refusing to change type of root directory to ${hdr.type}`);
      await entry.drain();
      this.writer.setMetadata({ dirfd: this.tree.rootFd, parentReal: "", name: "." }, hdr, true);
      this.deferred.set("", statFd(this.tree.rootFd), hdr.mtime, this.rootless ? hdr.mode : undefined);
      this.record("", hdr, undefined);
      return;
    }
    const parent = this.tree.resolve(parentOf(rel), this.hooks);
    const real = join(parent.real, base);
    const at: Place = { dirfd: parent.fd, parentReal: parent.real, name: base };
    // Upper paths are real paths: a later whiteout that reaches this path through a symlink
    // (d -> e, then d/.wh.new) names what this layer made, and spares it.
    if (this.trackUpper) this.markUpper(real);

    // A regular file is created first and looked at only if the name is taken.
    let fd = hdr.type === "file" ? this.writer.createFile(at, hdr) : -1;
    let existing = fd < 0 ? statAt(at.dirfd, cname(base), { missingOk: true }) : null;
    if (existing) {
      const keep =
        (hdr.type === "dir" && isDir(existing)) ||
        (hdr.type === "dir" && (existing.mode & 0o170000) === 0o120000 && this.opts.keepDirlinks && this.isDirLink(real)) ||
        (hdr.type === "link" && this.sameAsLinkTarget(real, hdr.linkname));
      if (!keep) { this.removeAll(real, at.dirfd); existing = null; }
      else if (hdr.type !== "dir" || !isDir(existing)) { await entry.drain(); return; }
    }
    switch (hdr.type) {
      case "dir":
        if (!existing) this.writer.mkdir(at);
        break;
      case "file": {
        if (fd < 0) fd = this.writer.createFile(at, hdr);
        // A small file may be finished on the second thread: recorded when it is, in its place in
        // the log (the sequence number is reserved now).
        const rec = this.opts.recorder;
        const seq = rec?.reserve();
        const want = { hash: !!rec, stat: !!(rec && this.opts.statKey) };
        const r = await this.writer.writeFile(fd, entry, hdr, want, (d, st) => this.record(real, hdr, d, seq, st));
        if (r === QUEUED) return;
        this.record(real, hdr, r.sha, seq, r.st);
        return;
      }
      case "symlink":
        await entry.drain();
        this.writer.symlink(at, hdr.linkname);
        break;
      case "link":
        await entry.drain();
        this.hardlink(at, real, hdr);
        return;
      case "char":
      case "block":
      case "fifo":
        await entry.drain();
        this.writer.mknod(at, hdr);
        break;
      default:
        throw new InvalidError(`unsupported entry type ${(hdr as TarHeader).type}`);
    }
    this.writer.setMetadata(at, hdr, !!existing);
    if (hdr.type === "dir") {
      const st = statAt(at.dirfd, cname(base))!;
      this.deferred.set(real, st, hdr.mtime, this.rootless ? hdr.mode : undefined);
    }
    this.record(real, hdr, undefined);
  }

  /** A hard link: shares its target's inode and metadata (nlink is re-read for both at the end). */
  private hardlink(at: Place, real: string, hdr: TarHeader): void {
    const linkRel = cleanEntryPath(hdr.linkname);
    if (linkRel === "") throw new InvalidError(`hardlink to the root directory`);
    const src = this.tree.resolve(parentOf(linkRel), null);
    const srcName = baseOf(linkRel);
    const st = statAt(src.fd, cname(srcName), { missingOk: true });
    if (!st) throw new InvalidError(`hardlink target ${JSON.stringify(hdr.linkname)} does not exist`);
    if (isDir(st)) throw new InvalidError(`hardlink target ${JSON.stringify(hdr.linkname)} is a directory`);
    linkAt(src.fd, cname(srcName, 1), at.dirfd, cname(at.name));
    // (both names' nlink settles at the end; the new name is read from disk then)
    this.opts.recorder?.patch(mtreePath(join(src.real, srcName)), { flags: REFRESH });
    this.opts.recorder?.set({ path: mtreePath(real), type: "file" }, FROM_DISK);
  }

  /** A parent directory the layer did not name: 0755, owned by container root, recorded. */
  private makeImplicitDir(at: Place): void {
    mkdirAt(at.dirfd, cname(at.name), 0o755);
    if (!this.rootless) {
      chownAt(at.dirfd, cname(at.name), toHost(0, this.opts.mapOptions.uidMappings, "uid"), toHost(0, this.opts.mapOptions.gidMappings, "gid"));
    }
    this.opts.recorder?.set({ path: mtreePath(join(at.parentReal, at.name)), type: "dir" }, FROM_DISK);
  }

  private isDirLink(real: string): boolean {
    try { this.tree.resolve(real, null); return true; } catch { return false; }
  }

  private sameAsLinkTarget(real: string, linkname: string): boolean {
    const linkRel = cleanEntryPath(linkname);
    try { return join(this.tree.resolve(parentOf(linkRel), null).real, baseOf(linkRel)) === real; } catch { return false; }
  }

  private markUpper(rel: string): void {
    for (let p = rel; p !== "" && !this.upper.has(p); p = parentOf(p)) this.upper.add(p);
  }

  // ---- whiteouts -------------------------------------------------------------------------------

  private applyWhiteout(rel: string): void {
    const base = baseOf(rel);
    const isOpaque = base === OPAQUE;
    if (!isOpaque) {
      if (base === WHITEOUT_PREFIX) throw new InvalidError(`invalid whiteout ${JSON.stringify(rel)}: empty name`);
      if (base === ".wh..wh.plnk" || base === ".wh..wh.aufs") return; // AUFS metadata
      const name = base.slice(WHITEOUT_PREFIX.length);
      if (name === "." || name === "..") throw new InvalidError(`invalid whiteout ${JSON.stringify(rel)}`);
    }
    if (!this.trackUpper) return; // nothing below this layer
    let dir;
    try { dir = this.tree.resolve(parentOf(rel), null); } catch { return; }
    if (isOpaque) {
      this.touchDir(dir.real, dir.fd);
      this.removeLower(dir.real);
      return;
    }
    // The path as named, its directory resolved inside the root, the last component not
    // followed; what this layer made there stays (upper paths are real paths).
    const name = base.slice(WHITEOUT_PREFIX.length);
    const real = join(dir.real, name);
    const st = statAt(dir.fd, cname(name), { missingOk: true });
    if (!st) return;
    if (this.upper.has(real)) {
      // This layer made it (or something below it): as umoci, only what it did not make goes.
      if (isDir(st)) { this.touchDir(real, this.tree.dir(real)); this.removeLower(real); }
      return;
    }
    this.touchDir(dir.real, dir.fd);
    this.removeAll(real, dir.fd);
  }

  /** Opaque whiteout: remove everything under a directory that this layer did not add. */
  private removeLower(realDir: string): void {
    const dirfd = this.tree.tryDir(realDir);
    if (dirfd < 0) return;
    let names: string[];
    try {
      const fd = openAt(dirfd, cname("."), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      try { names = readDirFd(fd).map((e) => fileName(e.name)); } finally { closeFd(fd); }
    } catch { return; }
    for (const n of names) {
      const real = join(realDir, n);
      if (!this.upper.has(real)) { this.removeAll(real, this.tree.dir(realDir)); continue; }
      const st = statAt(this.tree.dir(realDir), cname(n), { missingOk: true });
      if (!st || !isDir(st)) continue;
      this.touchDir(real, this.tree.dir(real));
      this.removeLower(real);
    }
  }

  /** Note a directory whose contents change, so its mtime is restored after the layer. */
  private touchDir(real: string, fd: number): void {
    if (!this.deferred.has(real)) this.deferred.touch(real, statFd(fd), null);
  }

  /** Remove real path `real` (in directory `dirfd`) and everything below it. */
  private removeAll(real: string, dirfd: number): void {
    if (real === "") throw new InvalidError("refusing to remove the root directory");
    this.tree.invalidate();
    // Its deferred metadata dies with it (entries below it fail their inode check).
    this.deferred.drop(real);
    this.removedEver = true;
    this.tree.removeAll(dirfd, baseOf(real));
    this.opts.recorder?.delete(mtreePath(real));
  }

  // ---- mtree recording -------------------------------------------------------------------------

  private record(real: string, hdr: TarHeader, sha: string | undefined, seq?: number, st?: FileStat): void {
    const rec = this.opts.recorder;
    if (!rec) return;
    const owner = this.rootless ? { uid: this.euid, gid: this.egid } : hostOwner(hdr, this.opts.mapOptions);
    const key = st && this.opts.statKey ? this.opts.statKey(st) : undefined;
    rec.set(entryFromHeader(mtreePath(real), hdr, { rootless: this.rootless, ...owner, sha256: sha }), hdr.type === "dir" || this.writer.xattrsUnsupported ? REFRESH : 0, seq, key);
  }

  private patchRecord(real: string, patch: { mode: number }): void {
    this.opts.recorder?.patch(mtreePath(real), patch);
  }

  /**
   * The entry of real path `real` as it is on disk, keeping from `prev` (its recorded entry) what
   * the disk cannot say: the digest, a directory's header time and (rootless) mode, the xattrs
   * the layer set. null when it is gone.
   */
  private fromDisk(real: string, prev: MtreeEntry | undefined): RecordedEntry | null {
    const p = mtreePath(real);
    const st = this.tree.stat(real);
    if (!st) return null;
    const dirfd = real === "" ? this.tree.rootFd : this.tree.dir(parentOf(real));
    const name = real === "" ? "." : baseOf(real);
    const type = st.mode & 0o170000;
    const e = entryFromInode(p, st, {
      link: type === 0o120000 ? fileName(readlinkAt(dirfd, cname(name))) : undefined,
      sha256: type === 0o100000 ? (prev?.type === "file" && prev.sha256 ? prev.sha256 : hashAt(dirfd, name)) : undefined,
      xattrs: prev?.xattrs ?? (type === 0o120000 ? undefined : this.tree.listXattrs(dirfd, parentOf(real), name)),
    });
    if (e.type === "file" && this.opts.statKey) (e as RecordedEntry).statKey = this.opts.statKey(st);
    if (e.type === "dir" && prev?.type === "dir" && prev.tarTime !== undefined) e.tarTime = prev.tarTime;
    if (e.type === "dir" && prev?.type === "dir" && prev.mode !== undefined && this.rootless) e.mode = prev.mode;
    if (prev?.xattrs) e.xattrs = prev.xattrs;
    return e;
  }
}

/** sha256 of regular file `name` in `dirfd` (never followed, never blocking on a FIFO). */
function hashAt(dirfd: number, name: string): string {
  const { fd } = openRegularAt(dirfd, cname(name), displayName(name));
  try { return hashFd(fd); } finally { closeFd(fd); }
}
