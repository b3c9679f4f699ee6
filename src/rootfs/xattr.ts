/**
 * The one xattr policy: which extended attributes go from a tar to disk, from disk to a tar, and
 * into the mtree manifest, for root and rootless bundles (as umoci's oci/layer/xattr.go and its
 * rootless handling decide).
 *
 *  - `security.selinux` and `system.nfs4_acl` never cross: the host's labels and ACLs are not the
 *    image's (umoci ignores them both ways, with a warning on unpack).
 *  - `user.rootlesscontainers` carries the emulated owner in a rootless bundle: written by the
 *    unpack from the header's uid/gid (one in the layer is ignored, with a warning), read back by
 *    repack as the owner and not archived. In a root bundle it is an ordinary xattr (archived
 *    as is, with a warning both ways).
 *  - empty values are not set (Linux and Go's archive/tar both drop them).
 *  - `user.*` cannot be set on a symlink (Linux refuses it).
 *  - the mtree records the xattrs of regular files and directories only (go-mtree on Linux), the
 *    forbidden ones excluded, exactly the values on disk.
 */
import { ROOTLESS_XATTR } from "./rootless-owner";
import { lgetxattr, llistxattr } from "../sys";

export { ROOTLESS_XATTR };

const FORBIDDEN = new Set(["security.selinux", "system.nfs4_acl"]);

/** True for the xattrs that never cross between host and image. */
export function isForbiddenXattr(name: string): boolean {
  return FORBIDDEN.has(name);
}

export type UnpackVerdict = "set" | "skip" | "forbidden" | "rootless-ignored" | "rootless-foreign";

/**
 * What unpack does with xattr `name` = `value` of a header on an entry of `type`:
 * set it; skip it silently; or skip/set with the named warning ("forbidden", "rootless-ignored":
 * skipped; "rootless-foreign": set, but a root bundle carrying the rootless owner is worth a word).
 */
export function unpackVerdict(name: string, value: Uint8Array, type: string, rootless: boolean): UnpackVerdict {
  if (FORBIDDEN.has(name)) return "forbidden";
  if (name === ROOTLESS_XATTR) {
    if (rootless) return "rootless-ignored";
    if (value.length === 0) return "skip";
    return "rootless-foreign";
  }
  if (value.length === 0) return "skip";
  if (type === "symlink" && name.startsWith("user.")) return "skip";
  return "set";
}

/** Whether an existing xattr is removed before a header's own are set (rootless keeps the owner until it is rewritten). */
export function removeBeforeSet(name: string, rootless: boolean): boolean {
  return !(rootless && name === ROOTLESS_XATTR);
}

/** Whether the mtree records xattrs for an inode of this mtree type. */
export function mtreeRecordsXattrs(type: string): boolean {
  return type === "file" || type === "dir";
}

/** Whether xattr `name` read from disk goes into the mtree manifest. */
export function recordInMtree(name: string, value: Uint8Array): boolean {
  return !FORBIDDEN.has(name) && value.length > 0;
}

export type RepackVerdict = "archive" | "skip" | "owner" | "foreign";

/**
 * What repack does with xattr `name` read from disk: archive it; skip it; take it as the
 * emulated owner (rootless, not archived); or archive it with a warning ("foreign": a root
 * bundle carrying the rootless owner).
 */
export function repackVerdict(name: string, value: Uint8Array | null, rootless: boolean): RepackVerdict {
  if (FORBIDDEN.has(name)) return "skip";
  if (name === ROOTLESS_XATTR) return rootless ? "owner" : value && value.length ? "foreign" : "skip";
  return value && value.length ? "archive" : "skip";
}

/**
 * Every xattr of `path` itself (not followed), names in the kernel's order; none where the
 * filesystem has no xattrs. Throws SysError otherwise.
 */
export function readXattrs(path: string | Uint8Array): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let names: string[];
  try { names = llistxattr(path); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOTSUP" || code === "EOPNOTSUPP") return out;
    throw e;
  }
  for (const n of names) {
    const v = lgetxattr(path, n);
    if (v) out.set(n, v);
  }
  return out;
}
