/**
 * Generate a layer tar from a set of changed paths of a root filesystem (umoci's tar generator):
 * new and modified paths as full entries read from disk, deleted paths as `.wh.NAME` whiteouts.
 *
 * Entries are written in the order given (callers sort by path bytes), names relative with a
 * trailing "/" on directories and "." for the root, uname/gname empty, mtime truncated to
 * seconds (clamped to SOURCE_DATE_EPOCH when set), IDs mapped host → container, xattrs as
 * binary-exact SCHILY.xattr records, hardlinks within the layer as link entries. In rootless
 * mode the owner comes from the `user.rootlesscontainers` xattr, which is not archived.
 */
import * as fs from "node:fs";
import { InvalidError, UnsupportedError, addContext } from "../errors";
import type { TarWriter, TarWriterHeader, EntryType } from "../tar";
import { type MapOptions, toContainer } from "./idmap";
import { decodeRootlessOwner } from "../rootfs/rootless-owner";
import { ROOTLESS_XATTR, repackVerdict } from "../rootfs/xattr";
import { cnameExact, fileName } from "../rootfs/name";
import { RootTree } from "../rootfs/tree";
import { parentOf } from "../rootfs/path";
import { openRegularAt, readXattrsFd } from "../rootfs/read";
import { closeFd, readlinkAt, statAt, statFd, type Stat } from "../sys/at";
import { makedev } from "../sys";
import { BufferRecycler } from "../util/release";

/**
 * One path to archive. `path` is relative to the root on disk ("." for the root);
 * `archivePath`, when set, is the name it gets in the layer (insert puts a tree elsewhere).
 */
export interface Change { kind: "add" | "modify" | "delete"; path: string; archivePath?: string }

export interface GenerateOptions {
  mapOptions: MapOptions;
  /** SOURCE_DATE_EPOCH: mtimes after it are clamped to it. */
  clampMtime?: number | null;
  onWarning?: (msg: string) => void;
  /** Called with bytes of file content read, for progress. */
  onBytes?: (n: number) => void;
}

const BIG_FILE = 1 << 20;



/** The entry name: relative, directories with a trailing `/`, the root itself `.` (as umoci writes it). */
function archiveName(rel: string, isDir: boolean): string {
  if (rel === "." || rel === "") return ".";
  return isDir ? `${rel}/` : rel;
}

/**
 * Write `changes` (already sorted and filtered) from `root` into `tar`. Does not finish the tar.
 * Each path is reached through descriptors (rootfs/tree.ts RootTree): its parent directory
 * opened beneath the root with no symlink on the way, the entry stat'ed, read (readlinkat, a
 * regular file opened O_NOFOLLOW | O_NONBLOCK) and asked for its xattrs as a name in that
 * descriptor, or through the file's own descriptor.
 */
export async function writeChanges(root: string, changes: Change[], tar: TarWriter, opts: GenerateOptions): Promise<void> {
  const seenInodes = new Map<string, string>();
  const rootless = opts.mapOptions.rootless;
  let tree: RootTree | null = null;
  try {
    for (const ch of changes) {
      const rel = ch.path === "." ? "" : ch.path;
      const name = ch.archivePath !== undefined ? (ch.archivePath === "." ? "" : ch.archivePath) : rel;
      const base = name.slice(name.lastIndexOf("/") + 1);
      if (ch.kind === "delete") {
        if (name === "") throw new InvalidError("cannot white out the root directory");
        const dir = name.includes("/") ? name.slice(0, name.lastIndexOf("/") + 1) : "";
        await tar.add({ name: `${dir}.wh.${base}`, type: "file", mode: 0, uid: 0, gid: 0, size: 0, mtime: 0 });
        continue;
      }
      if (base.startsWith(".wh.")) throw new InvalidError(`cannot archive ${JSON.stringify(name)}: names starting with .wh. are reserved for whiteouts`);
      try {
        tree ??= new RootTree(root);
        await addFromDisk(tree, rel, name, tar, seenInodes, rootless, opts);
      } catch (e) {
        throw addContext(`archive ${rel || "."}`, e);
      }
      tree.trim();
    }
  } finally {
    tree?.close();
  }
}

function typeOf(mode: number): EntryType | "socket" | null {
  switch (mode & 0o170000) {
    case 0o100000: return "file";
    case 0o040000: return "dir";
    case 0o120000: return "symlink";
    case 0o020000: return "char";
    case 0o060000: return "block";
    case 0o010000: return "fifo";
    case 0o140000: return "socket";
    default: return null;
  }
}

/** `real` (root-relative, "" the root) as its parent's descriptor and its name, a C string of its own. */
function locate(tree: RootTree, real: string): { dirfd: number; parentReal: string; base: string; name: Buffer } {
  if (real === "") return { dirfd: tree.rootFd, parentReal: "", base: ".", name: Buffer.from(".\0") };
  const { dirfd, name: base } = tree.parentOf(real);
  return { dirfd, parentReal: parentOf(real), base, name: Buffer.from(cnameExact(base, 2)) };
}

async function addFromDisk(tree: RootTree, realText: string, rel: string, tar: TarWriter, seenInodes: Map<string, string>, rootless: boolean, opts: GenerateOptions): Promise<void> {
  const at = locate(tree, realText);
  const st: Stat = realText === "" ? statFd(tree.rootFd) : statAt(at.dirfd, at.name)!;
  const t = typeOf(st.mode);
  if (t === "socket") { opts.onWarning?.(`skipping socket ${rel}: sockets cannot be stored in a layer`); return; }
  if (t === null) throw new UnsupportedError(`unsupported file type`);
  const type: EntryType = t;

  // A regular file is opened once (never followed, never a FIFO): its xattrs and body are read
  // through that descriptor.
  let fd = -1;
  if (type === "file") fd = openRegularAt(at.dirfd, at.name, rel || ".").fd;
  let owned = true;
  try {
    // Whole seconds, truncated as umoci 0.6 truncates them (and as tar_time does): statx's
    // seconds are already rounded down.
    let mtime = st.mtimeSec;
    if (opts.clampMtime != null && mtime > opts.clampMtime) mtime = opts.clampMtime;

    const xattrs = new Map<string, Buffer>();
    let rootlessOwner: { uid: number; gid: number } | null = null;
    // (other types: as a name in the parent's descriptor, l*xattr through /proc/self/fd)
    const onDisk = fd >= 0 ? readXattrsFd(fd) : tree.listXattrs(at.dirfd, at.parentReal, at.base);
    for (const n of [...onDisk.keys()].sort()) {
      const v = onDisk.get(n)!;
      switch (repackVerdict(n, v, rootless)) {
        case "owner":
          if (v) rootlessOwner = decodeRootlessOwner(v);
          break;
        case "foreign":
          opts.onWarning?.(`${rel || "."} carries a ${ROOTLESS_XATTR} xattr but the bundle is not rootless; archiving it as is`);
          xattrs.set(n, v!);
          break;
        case "archive":
          xattrs.set(n, v!);
          break;
      }
    }
    let uid: number, gid: number;
    if (rootless) {
      // The emulated owner, unmapped; files without the xattr belong to root.
      uid = rootlessOwner?.uid ?? 0;
      gid = rootlessOwner?.gid ?? 0;
    } else {
      uid = toContainer(st.uid, opts.mapOptions.uidMappings, "uid");
      gid = toContainer(st.gid, opts.mapOptions.gidMappings, "gid");
    }

    const hdr: TarWriterHeader = {
      name: archiveName(rel, type === "dir"),
      type,
      mode: st.mode & 0o7777,
      uid, gid,
      mtime,
      uname: "", gname: "",
      xattrs,
      size: 0,
    };

    // Any inode but a directory met a second time is a hard link to its first name, as in umoci
    // (a hard link to a symlink, a FIFO or a device stays one inode).
    if (type !== "dir" && st.nlink > 1) {
      const key = `${makedev(st.devMajor, st.devMinor)}:${st.ino}`;
      const first = seenInodes.get(key);
      if (first !== undefined) {
        await tar.add({ ...hdr, type: "link", linkname: first, size: 0 });
        return;
      }
      seenInodes.set(key, rel);
    }
    switch (type) {
      case "symlink":
        hdr.linkname = fileName(readlinkAt(at.dirfd, at.name));
        await tar.add(hdr);
        return;
      case "char":
      case "block":
        hdr.devmajor = st.rdevMajor;
        hdr.devminor = st.rdevMinor;
        await tar.add(hdr);
        return;
      case "file": {
        hdr.size = st.size;
        if (st.size <= BIG_FILE) {
          const body = fs.readFileSync(fd);
          if (body.length !== st.size) throw new InvalidError(`file changed size while being archived`);
          opts.onBytes?.(body.length);
          await tar.add(hdr, body);
        } else {
          // (the reader owns the descriptor from here: it closes it when done or dropped)
          const reader = { fd, closed: false };
          owned = false;
          const body = readChunks(reader, st.size, opts.onBytes);
          try {
            await tar.add(hdr, body);
          } finally {
            // (a reader never started or stopped early lets go of the file here)
            await body.return(undefined);
            if (!reader.closed) { reader.closed = true; closeFd(fd); }
          }
        }
        return;
      }
      default:
        await tar.add(hdr);
    }
  } finally {
    if (owned && fd >= 0) closeFd(fd);
  }
}

/** Big files' read buffers (1 MiB), back from the compressor once copied. */
const readBuffers = new BufferRecycler(1 << 20, 4);

function preadAsync(fd: number, buf: Buffer, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, 0, buf.length, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

/** The body of the regular file open on `reader.fd`, read at offsets on the thread pool; closes it when done (or returned early). */
async function* readChunks(reader: { fd: number; closed: boolean }, size: number, onBytes?: (n: number) => void): AsyncGenerator<Buffer, void, undefined> {
  const fd = reader.fd;
  try {
    let left = size;
    let pos = 0;
    while (left > 0) {
      // (memory of its own, handed back by the layer compressor once copied, and read into
      // again: util/release.ts BufferRecycler; 1 MiB, the compressor's block size: 4 MiB reads
      // raised a repack's peak by ~15 MiB)
      const whole = readBuffers.take();
      const buf = left < whole.length ? whole.subarray(0, left) : whole;
      const bytesRead = await preadAsync(fd, buf, pos);
      if (bytesRead === 0) throw new InvalidError(`file shrank while being archived`);
      left -= bytesRead;
      pos += bytesRead;
      onBytes?.(bytesRead);
      yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    }
  } finally {
    if (!reader.closed) { reader.closed = true; closeFd(fd); }
  }
}
