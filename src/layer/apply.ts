/**
 * Apply layer tars onto a root filesystem, as umoci's TarExtractor does, with path safety first.
 *
 * Safety invariants (oci-reference.md §3 "Apply", §8 pitfalls 6–8; CVE-2021-29136):
 *  - every entry name is cleaned lexically and rooted: `..` and leading `/` never leave the root;
 *  - the parent of every entry is resolved inside the root, chroot-style: symlinks met on the way
 *    are followed *within* the root (absolute targets restart at the root, `..` stops there); the
 *    final component is never followed;
 *  - the root itself can only be a directory; a hardlink target is resolved the same way and may
 *    not be a directory;
 *  - whiteouts only name one component below their directory (no `..`, `.` or `/`).
 *
 * One pass per byte: the caller streams the decompressed tar through `applyEntries`; file bodies
 * are hashed (sha256) as they are written, and each entry is recorded in the mtree recorder, so no
 * second walk of the tree is needed. Directory times (and, rootless, directory modes) are set
 * after the layer's last entry, deepest first, so children do not disturb them.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { BociError, InvalidError, addContext, describeErrno } from "../errors";
import type { TarEntry, TarHeader } from "../tar";
import type { MtreeEntry, MtreeRecorder } from "../mtree";
import { hashFileSync } from "../mtree/walk";
import { lsetxattr, llistxattr, lremovexattr, lgetxattr, mknod, openBeneath, openDirHandle, O_RDONLY, O_DIRECTORY, O_PATH } from "../sys";
import { type MapOptions, toHost } from "./idmap";
import { ROOTLESS_XATTR, encodeRootlessOwner } from "./rootless-xattr";
import { cleanEntryPath } from "../tar/clean-path";
import { getPool } from "../worker/pool";
import { openUpTree } from "../util/cleanup";

export interface ApplyOptions {
  mapOptions: MapOptions;
  keepDirlinks?: boolean;
  /** Record the extracted tree here (the bundle's mtree manifest). */
  recorder?: MtreeRecorder;
  onWarning?: (code: string, msg: string) => void;
}

const WHITEOUT_PREFIX = ".wh.";
const OPAQUE = ".wh..wh..opq";
const MAX_SYMLINKS = 255;
/** xattrs umoci never sets (and warns about). */
const FORBIDDEN_XATTRS = new Set(["security.selinux", "system.nfs4_acl"]);

const S_IFCHR = 0o020000, S_IFBLK = 0o060000, S_IFIFO = 0o010000;

export { cleanEntryPath };

function parentOf(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? "" : p.slice(0, i);
}
function baseOf(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}
function join(a: string, b: string): string {
  return a === "" ? b : b === "" ? a : `${a}/${b}`;
}

/**
 * Metadata set on a directory after the layer: its mtime, (rootless) its mode, and the inode it
 * was taken from (dev, ino), so it is applied to that directory and no other.
 */
interface DirState { mtime: number; mode?: number; dev?: number; ino?: number }
/** A directory opened up (rootless) and the mode to give it back. */
interface OpenedDir { mode: number; dev: number; ino: number }

/** errno codes meaning "that directory is not there any more as a directory reached without symlinks". */
const GONE = new Set(["ENOENT", "ELOOP", "ENOTDIR", "EXDEV"]);

/**
 * Extracts layers onto one rootfs. Create one per unpack; call `applyLayer` for each layer in
 * order, then `finish()` to fix up recorded metadata that only settles at the end.
 */
export class LayerApplier {
  readonly root: string;
  private readonly opts: ApplyOptions;
  private readonly rootless: boolean;
  /** logical dir path → resolved real relative path, for dirs verified during this layer */
  private dirCache = new Map<string, string>();
  /** paths created by the current layer, and their ancestors (whiteouts must spare them) */
  private upper = new Set<string>();
  /** false while applying a first layer onto an empty root (see applyLayer) */
  private trackUpper = true;
  private layersApplied = 0;
  /** the root had no entries when this applier was made */
  private readonly startedEmpty: boolean;
  /** real dirs whose times (and modes, rootless) are set after the current layer */
  private dirTimes = new Map<string, DirState>();
  /** real dirs temporarily opened up (rootless) → their original mode and inode */
  private openedDirs = new Map<string, OpenedDir>();
  /** O_PATH descriptor of the root: deferred metadata is set on directories reached from it without symlinks */
  private rootHandle = -1;
  /**
   * Whether any name was removed (removeAll) in the current layer / since the applier was made.
   * Only a removal lets a name that was a directory become anything else (a symlink cannot be
   * made over an existing name, and tar has no rename), so until one happens every recorded
   * real path still names the directory it named, through directories only.
   */
  private removedInLayer = false;
  private removedEver = false;
  /** real paths whose recorded nlink/size/owner must be re-read at the end */
  private restat = new Set<string>();
  private readonly euid: number;
  private readonly egid: number;
  private readonly umask: number;
  private warnedNotSup = false;
  /** placeholder in a recorded sha256 → the digest being computed on a worker */
  private pendingDigests = new Map<string, Promise<string>>();
  /** set by writeFile when it already applied owner, mode and times through the fd */
  private fdMetadataDone = false;
  /** where a small file's body is joined when it spans chunks (writeFile) */
  private scratch: Buffer | undefined;

  constructor(root: string, opts: ApplyOptions) {
    this.root = path.resolve(root);
    this.opts = opts;
    this.rootless = opts.mapOptions.rootless;
    this.euid = process.geteuid?.() ?? 0;
    this.egid = process.getegid?.() ?? 0;
    this.umask = process.umask();
    let names: string[] = [""];
    try { names = fs.readdirSync(this.root); } catch { /* reported when the layer is applied */ }
    this.startedEmpty = names.length === 0;
  }

  private abs(rel: string): string {
    return rel === "" ? this.root : `${this.root}/${rel}`;
  }

  private warn(code: string, msg: string): void {
    this.opts.onWarning?.(code, msg);
  }

  /** Record the root directory as it is now (before the first layer). */
  recordRoot(): void {
    this.recordFromDisk("");
    this.restat.add("");
  }

  /** Apply one layer's entries (already decompressed and parsed). */
  async applyLayer(entries: AsyncIterable<TarEntry>): Promise<void> {
    // The first layer onto an empty root has nothing below it: its whiteouts can only name its
    // own entries, which they must spare, so they remove nothing and no upper set is kept
    // (for a 50,000-file layer that set is about 8 MiB).
    this.trackUpper = !(this.layersApplied === 0 && this.startedEmpty);
    this.layersApplied++;
    this.upper = new Set();
    this.dirCache = new Map();
    this.dirTimes = new Map();
    this.removedInLayer = false;
    let n = 0;
    for await (const entry of entries) {
      // Keep the heap small on layers with many entries: JSC collects lazily by default.
      // (Every 4,096: 50,000-file unpack peaks ~4 MiB lower than at 8,192, for ~1 % more time.)
      if ((++n & 4095) === 0) Bun.gc(true);
      try {
        await this.applyEntry(entry);
      } catch (e) {
        throw addContext(`apply ${JSON.stringify(entry.header.name)}`, e);
      }
    }
    this.settleDirs();
  }

  /**
   * Re-read what only settles at the end (nlink of hardlinked files, dir sizes and nlinks), and
   * fill in the digests of large files hashed on worker threads.
   */
  async finish(): Promise<void> {
    const rec = this.opts.recorder;
    if (!rec) { this.closeRoot(); return; }
    const digests = new Map<string, string>();
    for (const [k, p] of this.pendingDigests) digests.set(k, await p);
    this.pendingDigests.clear();
    for (const rel of this.restat) {
      if (!rec.get(rel === "" ? "." : rel)) continue;
      // Read only what is still reached from the root without a symlink (a later entry may have
      // replaced an ancestor by a link to anywhere).
      if (this.removedEver && rel !== "" && !this.isRealDir(parentOf(rel))) { rec.delete(rel); continue; }
      try {
        this.recordFromDisk(rel);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (!this.rootless || (code !== "EACCES" && code !== "EPERM")) throw e;
        // Rootless: a locked ancestor (mode 0000 in the image) hides it; look with the
        // ancestors opened up, then put them back as they were.
        this.withOpenAncestors(rel, () => this.recordFromDisk(rel));
      }
    }
    this.restat.clear();
    this.closeRoot();
    if (digests.size) rec.resolveDigests((s) => (s.startsWith(PENDING_DIGEST) ? digests.get(s) : undefined));
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
      this.applyMetadata("", hdr, { existing: true });
      this.dirTimes.set("", { mtime: hdr.mtime, mode: this.rootless ? hdr.mode : undefined });
      this.record("", hdr, undefined);
      return;
    }

    const parentReal = this.resolveParent(parentOf(rel), true);
    const real = join(parentReal, base);
    const target = this.abs(real);
    // Upper paths are real paths: a later whiteout that reaches this path through a symlink
    // (d -> e, then d/.wh.new) names what this layer made, and spares it.
    if (this.trackUpper) this.markUpper(real);

    // A regular file is created first and looked at only if the name is taken (a new path is the
    // common case: one system call instead of two). O_EXCL|O_NOFOLLOW: never opens what is there.
    let fd = hdr.type === "file" ? createExclusive(target, this.createMode(hdr)) : undefined;

    // Existing path: merge dir over dir, keep a dirlink if asked, otherwise replace.
    let existing: fs.Stats | null = null;
    // (throwIfNoEntry: a new path, the common case, costs no exception)
    if (fd === undefined) try { existing = fs.lstatSync(target, { throwIfNoEntry: false }) ?? null; } catch { existing = null; }
    if (existing) {
      if (hdr.type === "dir" && existing.isDirectory()) {
        // merge: keep contents, update metadata below
      } else if (hdr.type === "dir" && existing.isSymbolicLink() && this.opts.keepDirlinks && this.isDirLink(real)) {
        await entry.drain();
        return;
      } else if (hdr.type === "link" && this.sameAsLinkTarget(real, hdr.linkname)) {
        await entry.drain();
        return;
      } else {
        this.removeAll(real);
        existing = null;
      }
    }

    let sha: string | undefined;
    switch (hdr.type) {
      case "dir":
        if (!existing) {
          fs.mkdirSync(target, { mode: 0o700 });
        }
        this.dirCache.set(rel, real);
        break;
      case "file":
        fd ??= fs.openSync(target, CREATE_EXCLUSIVE, this.createMode(hdr));
        sha = await this.writeFile(fd, entry, hdr);
        break;
      case "symlink":
        await entry.drain();
        fs.symlinkSync(hdr.linkname, target);
        break;
      case "link": {
        await entry.drain();
        const linkRel = cleanEntryPath(hdr.linkname);
        if (linkRel === "") throw new InvalidError(`hardlink to the root directory`);
        const srcReal = join(this.resolveParent(parentOf(linkRel), false), baseOf(linkRel));
        let st: fs.Stats;
        try { st = fs.lstatSync(this.abs(srcReal)); } catch {
          throw new InvalidError(`hardlink target ${JSON.stringify(hdr.linkname)} does not exist`);
        }
        if (st.isDirectory()) throw new InvalidError(`hardlink target ${JSON.stringify(hdr.linkname)} is a directory`);
        fs.linkSync(this.abs(srcReal), target);
        // A hardlink has no metadata of its own: it shares the target's inode (nlink is
        // re-read for both names at the end).
        this.restat.add(srcReal);
        this.restat.add(real);
        const rec = this.opts.recorder;
        const srcRec = rec?.get(srcReal);
        if (rec && srcRec) rec.set({ ...srcRec, path: real });
        else this.recordFromDisk(real);
        return;
      }
      case "char":
      case "block":
      case "fifo":
        await entry.drain();
        this.makeNode(target, hdr);
        break;
      default:
        throw new InvalidError(`unsupported entry type ${(hdr as TarHeader).type}`);
    }

    if (this.fdMetadataDone) this.fdMetadataDone = false;
    else this.applyMetadata(real, hdr, { existing: !!existing });
    if (hdr.type === "dir") {
      const dst = existing ?? fs.lstatSync(target);
      this.dirTimes.set(real, { mtime: hdr.mtime, mode: this.rootless ? hdr.mode : undefined, dev: dst.dev, ino: dst.ino });
    }
    this.record(real, hdr, sha);
  }

  /**
   * The mode a regular file is created with: its own when the umask leaves it whole and a chown
   * cannot clear it (no set-id or sticky bit; then no fchmod is needed), else 0600 until set.
   */
  private createMode(hdr: TarHeader): number {
    const m = hdr.mode & 0o7777;
    return (m & 0o7000) === 0 && (m & this.umask) === 0 && !this.rootless ? m : 0o600;
  }

  /** Write the body into `fd` (just created, closed here), and the metadata when it can go through fd. */
  private async writeFile(fd: number, entry: TarEntry, hdr: TarHeader): Promise<string | undefined> {
    const wantHash = !!this.opts.recorder;
    let digest: string | undefined;
    let written = 0;
    try {
      if (hdr.size <= 1 << 20) {
        // (joined, when it spans decompressed chunks, in a buffer kept for that: fresh pages
        // for every such file cost more than the copy; used up before the next read)
        const buf = await entry.readAll((this.scratch ??= Buffer.allocUnsafeSlow(1 << 20)));
        if (buf.length) writeFully(fd, buf);
        written = buf.length;
        if (wantHash) digest = new Bun.CryptoHasher("sha256").update(buf).digest("hex");
      } else {
        // A large body is hashed on a worker thread as it is written; the manifest entry holds
        // a placeholder until finish() fills in the digest.
        // The writes go to the thread pool, a few at a time at their offsets, so this thread
        // goes on parsing while the kernel copies.
        const h = wantHash ? getPool().hashStream() : null;
        const out = new OffsetWriter(fd);
        try {
          try {
            for await (const chunk of entry.body) {
              const wait = h?.update(chunk);
              await out.write(chunk, written);
              written += chunk.length;
              if (wait) await wait;
            }
          } finally {
            await out.drain();
          }
        } catch (e) {
          h?.abort();
          throw e;
        }
        if (h) {
          const p = h.digest();
          p.catch(() => { /* reported by finish() */ });
          digest = `${PENDING_DIGEST}${this.pendingDigests.size}`;
          this.pendingDigests.set(digest, p);
        }
      }
      if (written !== hdr.size) throw new InvalidError(`file body is ${written} bytes, header says ${hdr.size}`);
      // Metadata through the open descriptor: no path lookups (the common case, no xattrs).
      if (hdr.xattrs.size === 0 && !this.rootless) {
        fs.fchownSync(fd, toHost(hdr.uid, this.opts.mapOptions.uidMappings, "uid"), toHost(hdr.gid, this.opts.mapOptions.gidMappings, "gid"));
        if (this.createMode(hdr) !== (hdr.mode & 0o7777)) fs.fchmodSync(fd, hdr.mode & 0o7777);
        fs.futimesSync(fd, hdr.mtime, hdr.mtime);
        this.fdMetadataDone = true;
      }
    } finally {
      fs.closeSync(fd);
    }
    return digest;
  }

  private makeNode(target: string, hdr: TarHeader): void {
    const kind = hdr.type === "char" ? S_IFCHR : hdr.type === "block" ? S_IFBLK : S_IFIFO;
    if (this.rootless && hdr.type !== "fifo") {
      this.warn("rootless-device", `rootless: ${hdr.type} device ${hdr.name} (${hdr.devmajor}:${hdr.devminor}) created as an empty file`);
      fs.closeSync(fs.openSync(target, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0));
      return;
    }
    try {
      mknod(target, kind | 0o600, hdr.devmajor, hdr.devminor);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code === "EPERM" || code === "EACCES") && hdr.type !== "fifo") {
        this.warn("device-eperm", `cannot create ${hdr.type} device ${hdr.name} (${describeErrno(e as NodeJS.ErrnoException)}); created as an empty file`);
        fs.closeSync(fs.openSync(target, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0));
        return;
      }
      throw e;
    }
  }

  /** chown (not rootless), chmod (not symlinks; after chown so setuid survives), xattrs, times. */
  private applyMetadata(real: string, hdr: TarHeader, opts: { existing: boolean }): void {
    const target = this.abs(real);
    const isLink = hdr.type === "symlink";
    if (!this.rootless) {
      const uid = toHost(hdr.uid, this.opts.mapOptions.uidMappings, "uid");
      const gid = toHost(hdr.gid, this.opts.mapOptions.gidMappings, "gid");
      fs.lchownSync(target, uid, gid);
    }
    // xattrs before chmod: chown clears security.capability, and a rootless caller needs write
    // permission on the file to set user.* xattrs, which a read-only mode would take away.
    this.applyXattrs(target, hdr, opts.existing);
    if (!isLink) {
      // (a rootless device node, an empty file made with mode 0000, gets its header's mode now, as in umoci)
      let mode = hdr.mode & 0o7777;
      // Rootless: keep directories open to ourselves until the layer is done.
      if (this.rootless && hdr.type === "dir") mode |= 0o700;
      fs.chmodSync(target, mode);
    }
    if (hdr.type !== "dir") {
      fs.lutimesSync(target, hdr.mtime, hdr.mtime);
    }
  }

  private applyXattrs(target: string, hdr: TarHeader, existing: boolean): void {
    const isLink = hdr.type === "symlink";
    if (existing) {
      for (const name of safeList(target)) {
        if (this.rootless && name === ROOTLESS_XATTR) continue;
        try { lremovexattr(target, name); } catch (e) { this.xattrError(e, name, target, "remove"); }
      }
    }
    for (const [name, value] of hdr.xattrs) {
      if (FORBIDDEN_XATTRS.has(name)) {
        this.warn("xattr-forbidden", `ignoring forbidden xattr ${name} on ${hdr.name}`);
        continue;
      }
      if (name === ROOTLESS_XATTR) {
        if (this.rootless) { this.warn("xattr-rootless", `ignoring ${ROOTLESS_XATTR} xattr in layer on ${hdr.name}`); continue; }
        this.warn("xattr-rootless", `layer carries a ${ROOTLESS_XATTR} xattr on ${hdr.name}`);
      }
      if (value.length === 0) continue;
      if (isLink && name.startsWith("user.")) continue; // Linux refuses user.* xattrs on symlinks
      try { lsetxattr(target, name, value); } catch (e) { this.xattrError(e, name, target, "set"); }
    }
    if (this.rootless && !isLink) {
      const payload = encodeRootlessOwner(hdr.uid, hdr.gid);
      try {
        if (payload) lsetxattr(target, ROOTLESS_XATTR, payload);
        else if (existing) { try { lremovexattr(target, ROOTLESS_XATTR); } catch { /* absent */ } }
      } catch (e) { this.xattrError(e, ROOTLESS_XATTR, target, "set"); }
    }
  }

  private xattrError(e: unknown, name: string, target: string, op: string): void {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOTSUP" || code === "EOPNOTSUPP") {
      if (!this.warnedNotSup) this.warn("xattr-notsup", `xattrs not supported on this filesystem (${op} ${name}); ignoring`);
      this.warnedNotSup = true;
      return;
    }
    if ((code === "EPERM" || code === "EACCES") && (this.rootless || this.euid !== 0)) {
      this.warn("xattr-eperm", `cannot ${op} xattr ${name} on ${path.relative(this.root, target)}: permission denied; ignoring`);
      return;
    }
    throw new BociError(`${op} xattr ${name}: ${describeErrno(e as NodeJS.ErrnoException)}`, { cause: e });
  }

  /**
   * Set directory times (and rootless modes) after the layer, deepest first. Each directory is
   * reached again from the root with no symlink followed and must still be the inode the time
   * was taken from: a later entry that replaced it (by a symlink to anywhere, say) makes its
   * deferred metadata void, and nothing outside the root is ever touched.
   */
  private settleDirs(): void {
    const dirs = [...this.dirTimes.keys()].sort((a, b) => b.split("/").length - a.split("/").length || (a < b ? 1 : -1));
    for (const d of dirs) {
      const st = this.dirTimes.get(d)!;
      try {
        const done = this.setDirMetadata(d, st, (o) => {
          if (st.mode !== undefined) o.chmod(st.mode & 0o7777);
          o.utimes(st.mtime, st.mtime);
        });
        if (done && st.mode !== undefined) {
          this.openedDirs.delete(d);
          this.patchRecord(d, { mode: st.mode & 0o7777 });
        }
      } catch (e) {
        throw addContext(`set times of ${d || "."}`, e);
      }
    }
    // Rootless: restore parents we opened up to write into (their times as they are now).
    for (const [d, o] of [...this.openedDirs].sort(([a], [b]) => b.length - a.length)) {
      this.setDirMetadata(d, o, (op, cur) => {
        op.chmod(o.mode);
        op.utimes(cur.atime, cur.mtime);
      });
    }
    this.openedDirs.clear();
    this.dirTimes.clear();
  }

  private rootFd(): number {
    if (this.rootHandle < 0) this.rootHandle = openDirHandle(this.root);
    return this.rootHandle;
  }

  private closeRoot(): void {
    if (this.rootHandle >= 0) { try { fs.closeSync(this.rootHandle); } catch { /* closed */ } }
    this.rootHandle = -1;
  }

  /** Release the root descriptor (finish() does; call it when giving up early). */
  close(): void {
    this.closeRoot();
  }

  /** True when `real` is a directory reached from the root without following a symlink. */
  private isRealDir(real: string): boolean {
    let fd: number;
    try { fd = openBeneath(this.rootFd(), real === "" ? "." : real, O_PATH | O_DIRECTORY); } catch (e) {
      if (GONE.has((e as NodeJS.ErrnoException).code ?? "")) return false;
      throw e;
    }
    fs.closeSync(fd);
    return true;
  }

  /**
   * Change the directory `real` as reached from the root with no symlink followed, if it is
   * still the inode `want` names (when it names one). `fn` gets chmod/utimes that act on that
   * directory's descriptor (or, when it is not readable to us, on the path just verified) and
   * its current stat. Returns false, changing nothing, when it is gone or another inode.
   */
  private setDirMetadata(
    real: string, want: { dev?: number; ino?: number },
    fn: (op: { chmod(mode: number): void; utimes(a: number | Date, m: number | Date): void }, st: fs.Stats) => void,
  ): boolean {
    const rel = real === "" ? "." : real;
    if (!this.removedInLayer) {
      // Nothing was removed in this layer, so no name on this path changed since it was
      // resolved (see removedInLayer): the path still reaches that directory through
      // directories only, and the path calls cannot be redirected.
      const abs = this.abs(real);
      let st: fs.Stats;
      try { st = fs.lstatSync(abs); } catch (e) {
        if (GONE.has((e as NodeJS.ErrnoException).code ?? "")) return false;
        throw e;
      }
      if (!st.isDirectory()) return false;
      fn({ chmod: (mode) => fs.chmodSync(abs, mode), utimes: (a, m) => fs.utimesSync(abs, a, m) }, st);
      return true;
    }
    let fd: number;
    let readable = true;
    try {
      fd = openBeneath(this.rootFd(), rel, O_RDONLY | O_DIRECTORY);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? "";
      if (GONE.has(code)) return false;
      if (code !== "EACCES") throw e;
      // Not readable (a non-rootless, unprivileged caller): O_PATH needs no permission on it.
      try { fd = openBeneath(this.rootFd(), rel, O_PATH | O_DIRECTORY); } catch (e2) {
        if (GONE.has((e2 as NodeJS.ErrnoException).code ?? "")) return false;
        throw e2;
      }
      readable = false;
    }
    try {
      const st = fs.fstatSync(fd);
      if (want.ino !== undefined && (st.ino !== want.ino || st.dev !== want.dev)) return false;
      const abs = this.abs(real);
      fn({
        chmod: (mode) => (readable ? fs.fchmodSync(fd, mode) : fs.chmodSync(abs, mode)),
        utimes: (a, m) => (readable ? fs.futimesSync(fd, a, m) : fs.utimesSync(abs, a, m)),
      }, st);
      return true;
    } finally {
      fs.closeSync(fd);
    }
  }

  // ---- path resolution -------------------------------------------------------------------------

  /**
   * Resolve a logical directory path to a real path relative to the root, following symlinks
   * inside the root only. With `create`, missing components are created as directories and
   * non-directories in the way are replaced by directories (as umoci does); otherwise a missing
   * component is an error.
   */
  private resolveParent(logical: string, create: boolean): string {
    if (logical === "") {
      if (create) this.touchDir("");
      return "";
    }
    const cached = this.dirCache.get(logical);
    if (cached !== undefined) return cached;
    const pending = logical.split("/");
    const resolved: string[] = [];
    let links = 0;
    let walked: string[] = [];
    while (pending.length) {
      const c = pending.shift()!;
      if (c === "" || c === ".") continue;
      if (c === "..") { resolved.pop(); continue; }
      const cur = join(resolved.join("/"), c);
      walked.push(c);
      let st: fs.Stats | null = null;
      try { st = fs.lstatSync(this.abs(cur), { throwIfNoEntry: false }) ?? null; } catch { st = null; }
      if (st?.isSymbolicLink()) {
        if (++links > MAX_SYMLINKS) throw new InvalidError(`too many levels of symbolic links resolving ${JSON.stringify(logical)}`);
        const target = fs.readlinkSync(this.abs(cur));
        if (target.startsWith("/")) resolved.length = 0;
        pending.unshift(...target.split("/"));
        continue;
      }
      if (!st) {
        if (!create) throw new InvalidError(`${JSON.stringify(walked.join("/"))} does not exist`);
        this.touchDir(resolved.join("/"));
        this.makeImplicitDir(cur);
      } else if (!st.isDirectory()) {
        if (!create) throw new InvalidError(`${JSON.stringify(walked.join("/"))} is not a directory`);
        this.touchDir(resolved.join("/"));
        this.removeAll(cur);
        this.makeImplicitDir(cur);
      } else if (this.rootless && (st.mode & 0o700) !== 0o700) {
        if (!this.openedDirs.has(cur) && !this.dirTimes.get(cur)) this.openedDirs.set(cur, { mode: st.mode & 0o7777, dev: st.dev, ino: st.ino });
        fs.chmodSync(this.abs(cur), (st.mode & 0o7777) | 0o700);
      }
      resolved.push(c);
    }
    const real = resolved.join("/");
    if (create && real !== "" && !this.dirTimes.has(real)) {
      // A child will change this directory's mtime: restore it after the layer.
      const st = fs.lstatSync(this.abs(real));
      this.dirTimes.set(real, { mtime: st.mtime.getTime() / 1000, dev: st.dev, ino: st.ino });
    }
    if (create && real === "" && !this.dirTimes.has("")) {
      const st = fs.lstatSync(this.root);
      this.dirTimes.set("", { mtime: st.mtime.getTime() / 1000, dev: st.dev, ino: st.ino });
    }
    this.dirCache.set(logical, real);
    return real;
  }

  /**
   * Run `fn` with every ancestor directory of `real` given u+rwx, restoring modes and times
   * after. Each ancestor is reached from the root without following a symlink; when one is not a
   * directory so reached, `fn` does not run.
   */
  private withOpenAncestors(real: string, fn: () => void): void {
    const restore: Array<{ dir: string; st: fs.Stats }> = [];
    try {
      let cur = "";
      for (const c of parentOf(real).split("/").filter(Boolean)) {
        cur = join(cur, c);
        let reached = false;
        this.setDirMetadata(cur, {}, (op, st) => {
          reached = true;
          if ((st.mode & 0o700) !== 0o700) {
            op.chmod((st.mode & 0o7777) | 0o700);
            restore.push({ dir: cur, st });
          }
        });
        if (!reached) return;
      }
      fn();
    } finally {
      for (const { dir, st } of restore.reverse()) {
        this.setDirMetadata(dir, st, (op) => {
          op.chmod(st.mode & 0o7777);
          op.utimes(st.atime, st.mtime);
        });
      }
    }
  }

  /** A parent directory the layer did not name: created 0755 (as umoci's MkdirAll) and recorded. */
  private makeImplicitDir(real: string): void {
    fs.mkdirSync(this.abs(real), { mode: 0o755 });
    if (!this.rootless) {
      // Owned by container root, like the rootfs itself.
      fs.lchownSync(this.abs(real), toHost(0, this.opts.mapOptions.uidMappings, "uid"), toHost(0, this.opts.mapOptions.gidMappings, "gid"));
    }
    this.recordFromDisk(real);
    this.restat.add(real);
  }

  private isDirLink(real: string): boolean {
    try {
      const r = this.resolveParent(real, false);
      return fs.lstatSync(this.abs(r)).isDirectory();
    } catch { return false; }
  }

  private sameAsLinkTarget(real: string, linkname: string): boolean {
    const linkRel = cleanEntryPath(linkname);
    try {
      const srcReal = join(this.resolveParent(parentOf(linkRel), false), baseOf(linkRel));
      return srcReal === real;
    } catch { return false; }
  }

  private markUpper(rel: string): void {
    let p = rel;
    while (p !== "" && !this.upper.has(p)) {
      this.upper.add(p);
      p = parentOf(p);
    }
  }

  // ---- whiteouts -------------------------------------------------------------------------------

  private applyWhiteout(rel: string): void {
    const dir = parentOf(rel);
    const base = baseOf(rel);
    if (base === OPAQUE) {
      if (!this.trackUpper) return; // nothing below this layer
      let dirReal: string;
      try { dirReal = this.resolveParent(dir, false); } catch { return; }
      const abs = this.abs(dirReal);
      let names: string[];
      try {
        if (!fs.lstatSync(abs).isDirectory()) return;
        names = fs.readdirSync(abs);
      } catch { return; }
      this.touchDir(dirReal);
      this.removeLower(dirReal, names);
      return;
    }
    if (base === WHITEOUT_PREFIX) throw new InvalidError(`invalid whiteout ${JSON.stringify(rel)}: empty name`);
    if (base === ".wh..wh.plnk" || base === ".wh..wh.aufs") return; // AUFS metadata
    const name = base.slice(WHITEOUT_PREFIX.length);
    if (name === "." || name === "..") throw new InvalidError(`invalid whiteout ${JSON.stringify(rel)}`);
    if (!this.trackUpper) return;
    let dirReal: string;
    try { dirReal = this.resolveParent(dir, false); } catch { return; }
    // The path as named, its directory resolved inside the root, the last component not
    // followed; what this layer made there stays (upper paths are real paths).
    const real = join(dirReal, name);
    if (this.upper.has(real)) return;
    try { fs.lstatSync(this.abs(real)); } catch { return; }
    this.touchDir(dirReal);
    this.removeAll(real);
    this.opts.recorder?.delete(real);
  }

  /**
   * Opaque whiteout: remove everything under a directory that this layer did not add. Paths the
   * layer added (or that lead to one) stay; below those, older content still goes.
   */
  private removeLower(realDir: string, names: string[]): void {
    for (const n of names) {
      const real = join(realDir, n);
      if (!this.upper.has(real)) { this.removeAll(real); continue; }
      let st: fs.Stats;
      try { st = fs.lstatSync(this.abs(real)); } catch { continue; }
      if (!st.isDirectory()) continue;
      this.touchDir(real);
      this.removeLower(real, fs.readdirSync(this.abs(real)));
    }
  }

  /** Note a directory whose contents change, so its mtime is restored after the layer. */
  private touchDir(real: string): void {
    if (this.dirTimes.has(real)) return;
    const st = fs.lstatSync(this.abs(real));
    this.dirTimes.set(real, { mtime: st.mtime.getTime() / 1000, dev: st.dev, ino: st.ino });
    if (this.rootless && (st.mode & 0o700) !== 0o700) {
      this.openedDirs.set(real, { mode: st.mode & 0o7777, dev: st.dev, ino: st.ino });
      fs.chmodSync(this.abs(real), (st.mode & 0o7777) | 0o700);
    }
  }

  /** Remove a path and everything below it; in rootless mode, open up unreadable directories first. */
  private removeAll(real: string): void {
    if (real === "") throw new InvalidError("refusing to remove the root directory");
    const abs = this.abs(real);
    this.dirCache.clear();
    // Its deferred metadata dies with it (entries below it fail their inode check).
    this.dirTimes.delete(real);
    this.openedDirs.delete(real);
    this.removedInLayer = this.removedEver = true;
    try {
      fs.rmSync(abs, { recursive: true, force: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "EACCES" && code !== "EPERM") throw e;
      openUpTree(abs);
      fs.rmSync(abs, { recursive: true, force: true });
    }
    this.opts.recorder?.delete(real);
  }

  // ---- mtree recording -------------------------------------------------------------------------

  private record(real: string, hdr: TarHeader, sha: string | undefined): void {
    const rec = this.opts.recorder;
    if (!rec) return;
    const p = real === "" ? "." : real;
    const e: MtreeEntry = {
      path: p,
      type: hdr.type === "symlink" ? "link" : hdr.type === "link" ? "file" : (hdr.type as MtreeEntry["type"]),
      mode: hdr.mode & 0o7777,
      tarTime: Math.trunc(hdr.mtime),
    };
    if (this.rootless) {
      e.uid = this.euid;
      e.gid = this.egid;
      if (hdr.type === "char" || hdr.type === "block") { e.type = "file"; e.size = 0; e.sha256 = EMPTY_SHA256; }
      if (hdr.type === "dir") e.mode = hdr.mode & 0o7777;
    } else {
      e.uid = toHost(hdr.uid, this.opts.mapOptions.uidMappings, "uid");
      e.gid = toHost(hdr.gid, this.opts.mapOptions.gidMappings, "gid");
    }
    switch (hdr.type) {
      case "file":
        e.size = hdr.size;
        e.nlink = 1;
        e.sha256 = sha;
        break;
      case "symlink":
        e.size = Buffer.byteLength(hdr.linkname);
        e.link = hdr.linkname;
        e.mode = 0o777;
        e.nlink = 1;
        break;
      case "dir":
        this.restat.add(real);
        break;
      case "char":
      case "block":
      case "fifo":
        if (!(this.rootless && hdr.type !== "fifo")) { e.size = 0; }
        e.nlink = 1;
        break;
    }
    const xattrs = new Map<string, Buffer>();
    // go-mtree lists xattrs of files and directories only (a rootless device is a file).
    if (e.type === "file" || e.type === "dir") {
      for (const [k, v] of hdr.xattrs) {
        if (FORBIDDEN_XATTRS.has(k) || v.length === 0 || (this.rootless && k === ROOTLESS_XATTR)) continue;
        xattrs.set(k, v);
      }
      if (this.rootless) {
        const payload = encodeRootlessOwner(hdr.uid, hdr.gid);
        if (payload) xattrs.set(ROOTLESS_XATTR, payload);
      }
    }
    if (xattrs.size) e.xattrs = xattrs;
    if (this.warnedNotSup) { this.restat.add(real); }
    rec.set(e);
  }

  private patchRecord(real: string, patch: Partial<MtreeEntry>): void {
    const rec = this.opts.recorder;
    const p = real === "" ? "." : real;
    const e = rec?.get(p);
    if (rec && e) rec.set({ ...e, ...patch });
  }

  /** Record an entry from lstat (for paths whose state is not fully known from the header). */
  private recordFromDisk(real: string): void {
    const rec = this.opts.recorder;
    if (!rec) return;
    const p = real === "" ? "." : real;
    const abs = this.abs(real);
    let st: fs.Stats;
    try { st = fs.lstatSync(abs); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") { rec.delete(p); return; }
      throw e;
    }
    const prev = rec.get(p);
    const e: MtreeEntry = {
      path: p,
      type: st.isDirectory() ? "dir" : st.isSymbolicLink() ? "link" : st.isCharacterDevice() ? "char" : st.isBlockDevice() ? "block" : st.isFIFO() ? "fifo" : st.isSocket() ? "socket" : "file",
      size: st.size,
      uid: st.uid,
      gid: st.gid,
      mode: st.mode & 0o7777,
      tarTime: Math.floor(st.mtimeMs / 1000),
    };
    if (e.type !== "dir") e.nlink = st.nlink;
    else e.nlink = st.nlink;
    if (e.type === "link") e.link = fs.readlinkSync(abs);
    if (e.type === "file") e.sha256 = prev?.type === "file" && prev.sha256 ? prev.sha256 : hashFileSync(abs);
    if (e.type === "dir" && prev?.type === "dir" && prev.tarTime !== undefined) e.tarTime = prev.tarTime;
    if (e.type === "dir" && prev?.type === "dir" && prev.mode !== undefined && this.rootless) e.mode = prev.mode;
    if (prev?.xattrs) e.xattrs = prev.xattrs;
    else if (e.type !== "link") {
      const x = new Map<string, Buffer>();
      for (const n of safeList(abs)) {
        if (FORBIDDEN_XATTRS.has(n)) continue;
        const v = safeGet(abs, n);
        if (v && v.length) x.set(n, v);
      }
      if (x.size) e.xattrs = x;
    }
    rec.set(e);
  }
}

const CREATE_EXCLUSIVE = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

/** A new file at `target`, or undefined when the name is taken. */
function createExclusive(target: string, mode: number): number | undefined {
  try {
    return fs.openSync(target, CREATE_EXCLUSIVE, mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return undefined;
    throw e;
  }
}

/** Prefix of a recorded sha256 that is still being computed (never valid hex). */
const PENDING_DIGEST = "pending:";
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

function writeFully(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
}

/**
 * Positional writes to one descriptor on the thread pool, at most `limit` in flight. The buffers
 * must stay unchanged until drain() returns (decompressor output is never reused in place).
 */
class OffsetWriter {
  private inFlight = 0;
  private error: Error | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly fd: number, private readonly limit = 4) {}

  async write(buf: Uint8Array, pos: number): Promise<void> {
    while (this.inFlight >= this.limit) await new Promise<void>((r) => { this.wake = r; });
    if (this.error) throw this.error;
    this.inFlight++;
    const step = (off: number): void => {
      fs.write(this.fd, buf, off, buf.length - off, pos + off, (err, n) => {
        if (!err && n > 0 && off + n < buf.length) return step(off + n);
        if (err) this.error ??= err;
        else if (n === 0 && off < buf.length) this.error ??= new Error("write returned 0 bytes");
        this.inFlight--;
        const w = this.wake;
        this.wake = null;
        w?.();
      });
    };
    step(0);
  }

  /** Wait for every write; throws the first error. */
  async drain(): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>((r) => { this.wake = r; });
    if (this.error) throw this.error;
  }
}

function safeList(p: string): string[] {
  try { return llistxattr(p); } catch { return []; }
}

function safeGet(p: string, n: string): Buffer | null {
  try { return lgetxattr(p, n); } catch { return null; }
}

