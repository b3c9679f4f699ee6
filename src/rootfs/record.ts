/**
 * The one rule for what the mtree manifest records about an inode (umoci's keywords: size, type,
 * uid, gid, mode, link, nlink, tar_time, sha256digest, xattr), in two forms that must agree:
 * {@link entryFromInode} for what is on disk (the walk, and the applier where the disk is the
 * only truth), and {@link entryFromHeader} for what unpacking a tar header leaves on disk (the
 * applier, without a stat per entry). The applier's tests compare the two.
 */
import type { MtreeEntry, MtreeType } from "../mtree/entry";
import type { TarHeader } from "../tar/types";
import { isForbiddenXattr, mtreeRecordsXattrs, recordInMtree, ROOTLESS_XATTR } from "./xattr";
import { encodeRootlessOwner } from "./rootless-owner";
import { nameToBytes } from "./name";

/** The numbers of an inode the rule reads (sys/at Stat has them). */
export interface InodeFacts { mode: number; uid: number; gid: number; nlink: number; size: number; mtimeSec: number }

/** Whole seconds of a nanosecond time, rounded down (Go's Time.Unix(); umoci 0.6 truncates mtimes so). */
export function floorSeconds(ns: bigint): number {
  let s = ns / 1_000_000_000n;
  if (ns < 0n && s * 1_000_000_000n !== ns) s -= 1n;
  return Number(s);
}

export function mtreeType(mode: number): MtreeType {
  switch (mode & 0o170000) {
    case 0o040000: return "dir";
    case 0o120000: return "link";
    case 0o020000: return "char";
    case 0o060000: return "block";
    case 0o010000: return "fifo";
    case 0o140000: return "socket";
    default: return "file";
  }
}

/**
 * The entry for an inode as stat shows it. `link` is the symlink target, `sha256` the content
 * digest (regular files), `xattrs` as listed on disk (filtered here by the xattr policy).
 */
export function entryFromInode(path: string, st: InodeFacts, extra: { link?: string; sha256?: string; xattrs?: Map<string, Buffer> } = {}): MtreeEntry {
  const type = mtreeType(st.mode);
  const e: MtreeEntry = {
    path, type, size: st.size, uid: st.uid, gid: st.gid, mode: st.mode & 0o7777, nlink: st.nlink, tarTime: st.mtimeSec,
  };
  if (type === "link" && extra.link !== undefined) e.link = extra.link;
  if (type === "file" && extra.sha256 !== undefined) e.sha256 = extra.sha256;
  if (extra.xattrs && mtreeRecordsXattrs(type)) {
    const x = new Map<string, Buffer>();
    for (const [k, v] of extra.xattrs) if (recordInMtree(k, v)) x.set(k, v);
    if (x.size) e.xattrs = x;
  }
  return e;
}

const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/**
 * The entry an unpack of `hdr` leaves at `path`, as a walk would record it, except for what only
 * settles after the layer (a directory's size and nlink, a hardlinked file's nlink: the caller
 * re-reads those). `owner` is the host uid/gid the inode gets; rootless, the caller's own IDs,
 * the header's owner going into the rootless xattr.
 */
export function entryFromHeader(path: string, hdr: TarHeader, opts: { rootless: boolean; uid: number; gid: number; sha256?: string }): MtreeEntry {
  const e: MtreeEntry = {
    path,
    type: hdr.type === "symlink" ? "link" : hdr.type === "link" ? "file" : (hdr.type as MtreeType),
    mode: hdr.mode & 0o7777,
    tarTime: Math.floor(hdr.mtime),
    uid: opts.uid,
    gid: opts.gid,
  };
  const rootlessDevice = opts.rootless && (hdr.type === "char" || hdr.type === "block");
  switch (hdr.type) {
    case "file":
      e.size = hdr.size;
      e.nlink = 1;
      if (opts.sha256 !== undefined) e.sha256 = opts.sha256;
      break;
    case "symlink":
      e.size = nameToBytes(hdr.linkname).length;
      e.link = hdr.linkname;
      e.mode = 0o777;
      e.nlink = 1;
      break;
    case "char":
    case "block":
    case "fifo":
      e.size = 0;
      e.nlink = 1;
      // rootless: an empty regular file stands in for the device
      if (rootlessDevice) { e.type = "file"; e.sha256 = EMPTY_SHA256; }
      break;
  }
  if (mtreeRecordsXattrs(e.type)) {
    const x = new Map<string, Buffer>();
    for (const [k, v] of hdr.xattrs) {
      if (isForbiddenXattr(k) || !recordInMtree(k, v) || (opts.rootless && k === ROOTLESS_XATTR)) continue;
      x.set(k, v);
    }
    if (opts.rootless) {
      const payload = encodeRootlessOwner(hdr.uid, hdr.gid);
      if (payload) x.set(ROOTLESS_XATTR, payload);
    }
    if (x.size) e.xattrs = x;
  }
  return e;
}
