/** The entry types a layer may carry (OCI image-spec layer.md); sockets and sparse files are not representable. */
export type EntryType = "file" | "link" | "symlink" | "dir" | "char" | "block" | "fifo";

/** One tar entry's metadata after PAX / GNU long-name overrides have been applied. */
export interface TarHeader {
  /** As in the archive (not cleaned); directories usually end in "/". */
  name: string;
  type: EntryType;
  /** Permission bits plus setuid/setgid/sticky (& 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Body size in bytes; 0 for everything but "file". */
  size: number;
  /** Seconds since the epoch; may be fractional when it came from a PAX `mtime` record. */
  mtime: number;
  /** Hardlink or symlink target; "" if none. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** From `SCHILY.xattr.*` (or `LIBARCHIVE.xattr.*`) records, byte-exact. */
  xattrs: Map<string, Buffer>;
  uname: string;
  gname: string;
}

/** An entry yielded by `readTar`. */
export interface TarEntry {
  header: TarHeader;
  /** The entry's body, as zero-copy views of the input chunks. Iterate it at most once. */
  body: AsyncIterable<Buffer>;
  /**
   * The (rest of the) body as one Buffer; cheap for small files (usually a view of the input
   * chunk). A body spread over several chunks is joined into `scratch` when it fits (the result
   * is then valid only until the next read from this tar), else into a new Buffer.
   */
  readAll(scratch?: Buffer): Promise<Buffer>;
  /** Skip the rest of the body. Done automatically when the next entry is requested. */
  drain(): Promise<void>;
}

/** Header accepted by the writer: everything but name and type has a default. */
export type TarWriterHeader = Partial<TarHeader> & { name: string; type: EntryType };
