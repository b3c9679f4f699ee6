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
import { ROOTLESS_XATTR, readXattrs, repackVerdict } from "../rootfs/xattr";
import { fileName, toFsPath } from "../rootfs/name";
import { floorSeconds } from "../rootfs/record";
import { markReleasable } from "../util/release";
import { openRegularForRead } from "../mtree/walk";

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

function majorOf(rdev: number): number {
  const r = BigInt(rdev);
  return Number(((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn));
}
function minorOf(rdev: number): number {
  const r = BigInt(rdev);
  return Number((r & 0xffn) | ((r >> 12n) & ~0xffn));
}

/**
 * Write `changes` (already sorted and filtered) from `root` into `tar`. Does not finish the tar.
 */
export async function writeChanges(root: string, changes: Change[], tar: TarWriter, opts: GenerateOptions): Promise<void> {
  const seenInodes = new Map<string, string>();
  const rootless = opts.mapOptions.rootless;
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
    const abs = rel === "" ? root : `${root}/${rel}`;
    try {
      await addFromDisk(abs, name, tar, seenInodes, rootless, opts);
    } catch (e) {
      throw addContext(`archive ${rel || "."}`, e);
    }
  }
}

async function addFromDisk(absText: string, rel: string, tar: TarWriter, seenInodes: Map<string, string>, rootless: boolean, opts: GenerateOptions): Promise<void> {
  // (a name that is not UTF-8 reaches the kernel as its bytes)
  const abs = toFsPath(absText);
  const big = fs.lstatSync(abs, { bigint: true });
  const st = {
    mode: Number(big.mode), uid: Number(big.uid), gid: Number(big.gid), nlink: Number(big.nlink),
    dev: big.dev, ino: big.ino, rdev: Number(big.rdev), size: Number(big.size),
    isFile: () => big.isFile(), isDirectory: () => big.isDirectory(), isSymbolicLink: () => big.isSymbolicLink(),
    isCharacterDevice: () => big.isCharacterDevice(), isBlockDevice: () => big.isBlockDevice(),
    isFIFO: () => big.isFIFO(), isSocket: () => big.isSocket(),
  };
  let type: EntryType;
  if (st.isFile()) type = "file";
  else if (st.isDirectory()) type = "dir";
  else if (st.isSymbolicLink()) type = "symlink";
  else if (st.isCharacterDevice()) type = "char";
  else if (st.isBlockDevice()) type = "block";
  else if (st.isFIFO()) type = "fifo";
  else if (st.isSocket()) { opts.onWarning?.(`skipping socket ${rel}: sockets cannot be stored in a layer`); return; }
  else throw new UnsupportedError(`unsupported file type`);

  // Whole seconds, truncated as umoci 0.6 truncates them (and as tar_time does), computed from
  // the nanoseconds: a float of milliseconds rounds x.999999999 up to the next second.
  let mtime = floorSeconds(big.mtimeNs);
  if (opts.clampMtime != null && mtime > opts.clampMtime) mtime = opts.clampMtime;

  const xattrs = new Map<string, Buffer>();
  let rootlessOwner: { uid: number; gid: number } | null = null;
  if (type === "file" || type === "dir" || type === "symlink" || type === "fifo" || type === "char" || type === "block") {
    const onDisk = readXattrs(abs);
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
    const key = `${st.dev}:${st.ino}`;
    const first = seenInodes.get(key);
    if (first !== undefined) {
      await tar.add({ ...hdr, type: "link", linkname: first, size: 0 });
      return;
    }
    seenInodes.set(key, rel);
  }
  switch (type) {
    case "symlink":
      hdr.linkname = fileName(fs.readlinkSync(abs, { encoding: "buffer" }));
      await tar.add(hdr);
      return;
    case "char":
    case "block":
      hdr.devmajor = majorOf(st.rdev);
      hdr.devminor = minorOf(st.rdev);
      await tar.add(hdr);
      return;
    case "file": {
      hdr.size = st.size;
      if (st.size <= BIG_FILE) {
        const fd = openRegularForRead(abs);
        let body: Buffer;
        try { body = fs.readFileSync(fd); } finally { fs.closeSync(fd); }
        if (body.length !== st.size) throw new InvalidError(`file changed size while being archived`);
        opts.onBytes?.(body.length);
        await tar.add(hdr, body);
      } else {
        await tar.add(hdr, readChunks(abs, st.size, opts.onBytes));
      }
      return;
    }
    default:
      await tar.add(hdr);
  }
}

async function* readChunks(abs: string | Buffer, size: number, onBytes?: (n: number) => void): AsyncGenerator<Buffer> {
  const fh = await fs.promises.open(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  if (!(await fh.stat()).isFile()) { await fh.close(); throw new InvalidError(`not a regular file`); }
  try {
    let left = size;
    while (left > 0) {
      // (its own memory, freed by the layer compressor once copied: util/release.ts)
      // (1 MiB, the compressor's block size: 4 MiB reads raised a repack's peak by ~15 MiB)
      const buf = markReleasable(Buffer.allocUnsafeSlow(Math.min(1 << 20, left)));
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) throw new InvalidError(`file shrank while being archived`);
      left -= bytesRead;
      onBytes?.(bytesRead);
      yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}
