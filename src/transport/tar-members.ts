/**
 * A tar archive as a regular file read and written by member, never extracted:
 *
 *  - `TarIndex.build` reads every header (USTAR/GNU/V7 blocks, PAX 'x'/'g' and GNU 'L'/'K' long
 *    names, made into an entry's header by src/tar/ ExtendedHeaders, the stream reader's own
 *    rules: sparse and unknown member types, a NUL in a pax name, IDs out of range are refused
 *    as everywhere boci reads a tar), records where each member's data lies and seeks past it, so
 *    a reader can serve a member in place (`{start, limit}` for cas/source.ts streamVerified);
 *  - `createTarFileWriter` writes a tar into a temporary file beside its destination (or in a
 *    tmpdir on the same filesystem), created O_EXCL and removed on SIGINT/SIGTERM, fsynced and
 *    renamed over the destination: a failed write leaves no file.
 *
 * The archive is hostile input. One InvalidError names the archive and the member for: an
 * absolute name or a `..` component, a member whose data runs past the end of the file (a
 * truncated archive, or a header lying about its size), more than MAX_MEMBERS members or
 * MAX_NAME_BYTES of names, a lookup of a name held by two members, a symlink that leaves the
 * archive or loops, and a member used as a file that is not one.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { ClobberError, InvalidError, NotFoundError, addContext } from "../errors";
import { BLOCK, decodeHeader } from "../tar/header";
import { MAX_EXTENDED_HEADER_SIZE } from "../tar/pax";
import { ExtendedHeaders } from "../tar/reader";
import { encodeEntryHeader } from "../tar/writer";
import type { EntryType, TarWriterHeader } from "../tar/types";
import { escapeText } from "../util/escape";
import { fsyncDir, randomName } from "../util/fs";
import { removeOnInterrupt, yieldToSignals } from "../util/cleanup";

/** The most members an archive may have (an index bigger than this is refused). */
export const MAX_MEMBERS = 1_000_000;
/** The most bytes of member names an index may hold. */
export const MAX_NAME_BYTES = 256 << 20;
/** How many symlinks one lookup follows. */
const MAX_LINK_DEPTH = 16;

/** A member's kind: regular file, hardlink, symlink, directory, or anything else (never read). */
export type MemberType = "file" | "link" | "symlink" | "dir" | "other";

/** One member of an indexed tar file. */
export interface TarMember {
  /** cleaned: relative, no `.` or empty components, no trailing `/` */
  name: string;
  type: MemberType;
  /** offset of the member's data in the file */
  offset: number;
  /** size of its data (0 for everything but files) */
  size: number;
  /** hardlink or symlink target, as stored */
  linkname: string;
}

const q = (s: string) => escapeText(s, "always");

/**
 * The cleaned form of a member name (`./a//b/` → `a/b`), "" for the archive's root (`.`, `./`).
 * Throws InvalidError for an absolute name or one with a `..` component; `what` starts the message.
 */
export function cleanMemberName(name: string, what: string): string {
  if (name.startsWith("/")) throw new InvalidError(`${what}: member ${q(name)} has an absolute name`);
  const parts: string[] = [];
  for (const p of name.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") throw new InvalidError(`${what}: member ${q(name)} has a ".." component`);
    parts.push(p);
  }
  return parts.join("/");
}

/** Type flags whose header's size is not followed by data: link, symlink, char, block, dir, fifo. */
/** A member's kind, from the type src/tar gives its header. */
const MEMBER_TYPES: Record<EntryType, MemberType> = {
  file: "file", link: "link", symlink: "symlink", dir: "dir", char: "other", block: "other", fifo: "other",
};

/** The members of a tar file, by cleaned name; see the module comment. */
export class TarIndex {
  private constructor(
    /** the archive's path, for messages */
    readonly archive: string,
    private readonly members: Map<string, TarMember>,
    private readonly duplicates: Set<string>,
    /** where the archive's end-of-archive marker (or its last member) ends */
    readonly end: number,
  ) {}

  /**
   * Index the tar file open at `fd` (`size` bytes; a regular file). Reads headers only, seeking
   * past every member's data. Throws InvalidError (see the module comment).
   */
  static build(fd: number, archive: string, size: number, opts: { maxMembers?: number } = {}): TarIndex {
    const maxMembers = opts.maxMembers ?? MAX_MEMBERS;
    const what = `archive ${archive}`;
    const members = new Map<string, TarMember>();
    const duplicates = new Set<string>();
    const block = Buffer.alloc(BLOCK);
    let pos = 0;
    let count = 0;
    let nameBytes = 0;
    const ext = new ExtendedHeaders();
    const readBlock = (at: number): boolean => {
      const n = readFull(fd, block, at);
      if (n === 0) return false;
      if (n < BLOCK) throw new InvalidError(`${what}: truncated archive: partial header block at offset ${at}`);
      return true;
    };
    for (;;) {
      if (!readBlock(pos)) {
        if (ext.pending) throw new InvalidError(`${what}: truncated archive: extended header without a member`);
        break; // Go's archive/tar accepts an archive ending at a block boundary
      }
      let raw;
      try {
        raw = decodeHeader(block);
      } catch (e) {
        throw addContext(`${what}: header at offset ${pos}`, e);
      }
      if (raw === null) {
        if (ext.pending) throw new InvalidError(`${what}: invalid archive: extended header without a member`);
        // The end-of-archive marker. As Go's archive/tar and src/tar/reader.ts: a lone zero block
        // followed by more headers is refused (members hidden there would be seen by some tools).
        pos += BLOCK;
        if (readBlock(pos)) {
          if (!block.every((b) => b === 0)) throw new InvalidError(`${what}: invalid archive: single zero block at offset ${pos - BLOCK} followed by data`);
          pos += BLOCK;
        }
        break;
      }
      const flag = raw.typeflag;
      const dataAt = pos + BLOCK;
      if (ExtendedHeaders.isExtension(flag)) {
        if (raw.size > MAX_EXTENDED_HEADER_SIZE) throw new InvalidError(`${what}: extended header at offset ${pos} too large (${raw.size} bytes)`);
        if (dataAt + raw.size > size) throw new InvalidError(`${what}: truncated archive: extended header at offset ${pos} runs past the end of the file`);
        const body = Buffer.alloc(raw.size);
        if (readFull(fd, body, dataAt) < raw.size) throw new InvalidError(`${what}: truncated archive at offset ${dataAt}`);
        try {
          ext.absorb(flag, body);
        } catch (e) {
          throw addContext(`${what}: header at offset ${pos}`, e);
        }
        pos = dataAt + padded(raw.size);
        continue;
      }
      // The member's header as src/tar makes it (pax and GNU names, size; sparse and unknown
      // types refused, as everywhere boci reads a tar).
      let h;
      try {
        h = ext.entry(raw);
      } catch (e) {
        throw addContext(`${what}: header at offset ${pos}`, e);
      }
      const name = h.name;
      const linkname = h.linkname;
      const type = MEMBER_TYPES[h.type];
      // Only regular files carry data (header-only types, whatever their size field says, as in
      // Go's archive/tar and src/tar/reader.ts).
      const span = h.size;
      if (dataAt + span > size) {
        throw new InvalidError(`${what}: member ${q(name)}: data runs past the end of the archive (${span} bytes at offset ${dataAt}, file is ${size} bytes): truncated or lying header`);
      }
      const clean = cleanMemberName(name, what);
      if (++count > maxMembers) throw new InvalidError(`${what}: more than ${maxMembers} members`);
      nameBytes += clean.length + linkname.length;
      if (nameBytes > MAX_NAME_BYTES) throw new InvalidError(`${what}: member names exceed ${MAX_NAME_BYTES} bytes`);
      if (clean !== "") {
        const prev = members.get(clean);
        // A directory named twice (tar -r, or an entry per parent) is harmless; any other pair is
        // refused when the name is used.
        if (prev && !(prev.type === "dir" && type === "dir")) duplicates.add(clean);
        if (!prev) members.set(clean, { name: clean, type, offset: dataAt, size: span, linkname });
      }
      pos = dataAt + padded(span);
    }
    return new TarIndex(archive, members, duplicates, Math.min(pos, size));
  }

  /** The member stored under `name` (cleaned), links not followed; undefined when absent. */
  lookup(name: string): TarMember | undefined {
    const clean = cleanMemberName(name, `archive ${this.archive}`);
    if (this.duplicates.has(clean)) throw new InvalidError(`archive ${this.archive}: member ${q(clean)} appears more than once`);
    return this.members.get(clean);
  }

  /** How many distinct names the archive holds. */
  get size(): number {
    return this.members.size;
  }

  /** Every member, in archive order of first appearance. */
  all(): IterableIterator<TarMember> {
    return this.members.values();
  }

  /**
   * The regular file `name` stands for: hardlinks resolve to their target member, symlinks
   * (relative to the link's directory) to their target inside the archive, at most
   * MAX_LINK_DEPTH of them. Undefined when `name` is absent; InvalidError when a link points
   * outside the archive (an absolute target, or one climbing above the root), loops, dangles,
   * or ends at something that is not a regular file. `what` names the reference in messages.
   */
  resolveFile(name: string, what = `member ${q(name)}`): TarMember | undefined {
    const ctx = `archive ${this.archive}: ${what}`;
    let m = this.lookup(name);
    if (!m) return undefined;
    for (let depth = 0; m.type === "link" || m.type === "symlink"; depth++) {
      if (depth >= MAX_LINK_DEPTH) throw new InvalidError(`${ctx}: too many levels of links`);
      let target: string;
      if (m.linkname.startsWith("/")) throw new InvalidError(`${ctx}: ${m.type} ${q(m.name)} points outside the archive (${q(m.linkname)})`);
      if (m.type === "link") target = m.linkname;
      else {
        // Resolved lexically within the archive: a component climbing above the root leaves it.
        const dir = path.posix.dirname(m.name);
        const joined = (dir === "." ? "" : dir + "/") + m.linkname;
        const parts: string[] = [];
        for (const p of joined.split("/")) {
          if (p === "" || p === ".") continue;
          if (p === "..") {
            if (parts.length === 0) throw new InvalidError(`${ctx}: symlink ${q(m.name)} points outside the archive (${q(m.linkname)})`);
            parts.pop();
          } else parts.push(p);
        }
        target = parts.join("/");
      }
      let next: TarMember | undefined;
      try {
        next = this.lookup(target);
      } catch (e) {
        if (e instanceof InvalidError && /absolute name|".." component/.test(e.message)) {
          throw new InvalidError(`${ctx}: link ${q(m.name)} points outside the archive (${q(m.linkname)})`);
        }
        throw e;
      }
      if (!next) throw new InvalidError(`${ctx}: ${m.type} ${q(m.name)} points to ${q(m.linkname)}, which is not in the archive`);
      m = next;
    }
    if (m.type !== "file") throw new InvalidError(`${ctx}: ${q(m.name)} is not a regular file`);
    return m;
  }
}

function padded(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

/** pread until `buf` is full or EOF; the bytes read. */
function readFull(fd: number, buf: Buffer, at: number): number {
  let n = 0;
  while (n < buf.length) {
    const r = fs.readSync(fd, buf, n, buf.length - n, at + n);
    if (r === 0) break;
    n += r;
  }
  return n;
}

/** Read a whole member (a small one: JSON, a header) at its offset. */
export function readMember(fd: number, m: TarMember, maxSize: number, what: string): Buffer {
  if (m.size > maxSize) throw new InvalidError(`${what}: ${m.size} bytes is over the limit of ${maxSize} bytes`);
  const buf = Buffer.alloc(m.size);
  if (readFull(fd, buf, m.offset) < m.size) throw new InvalidError(`${what}: truncated`);
  return buf;
}

/** An archive opened for reading in place. */
export interface OpenedArchive {
  fd: number;
  size: number;
  index: TarIndex;
}

/**
 * Open `file` (a regular file; symlinks to it followed: the path is the user's to choose) and
 * index it. NotFoundError when it does not exist; InvalidError when it is not a regular file, is
 * a compressed stream (archives are read in place: decompress it first) or not a tar. `kind`
 * names the format in messages ("oci-archive").
 */
export function openTarFile(file: string, kind: string): OpenedArchive {
  const c = fs.constants;
  let fd: number;
  try {
    fd = fs.openSync(file, c.O_RDONLY | c.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw new NotFoundError(`open ${kind} ${file}: no such file`, { cause: e });
    throw addContext(`open ${kind} ${file}`, e);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new InvalidError(`open ${kind} ${file}: not a regular file (archives are read in place)`);
    const head = Buffer.alloc(4);
    const n = readFull(fd, head, 0);
    if (n >= 2 && head[0] === 0x1f && head[1] === 0x8b) throw new InvalidError(`open ${kind} ${file}: a gzip-compressed file, not a tar (archives are read in place: decompress it first)`);
    if (n >= 4 && head.readUInt32LE(0) === 0xfd2fb528) throw new InvalidError(`open ${kind} ${file}: a zstd-compressed file, not a tar (archives are read in place: decompress it first)`);
    if (st.size < BLOCK) throw new InvalidError(`open ${kind} ${file}: not a tar archive (${st.size} bytes)`);
    const index = TarIndex.build(fd, file, st.size);
    return { fd, size: st.size, index };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

const writeAsync = promisify(fs.write) as unknown as (fd: number, b: Uint8Array, off: number, len: number, pos: number) => Promise<number>;
const fsyncAsync = promisify(fs.fsync);
const ZEROS = Buffer.alloc(2 * BLOCK);
/** Largest size a USTAR octal field holds (11 digits). */
const MAX_OCTAL_SIZE = 0o77777777777;

/** Fixed metadata of every member we write: see README.md (deterministic archives). */
export const MEMBER_DEFAULTS = { uid: 0, gid: 0, uname: "", gname: "", mtime: 0 } as const;

/** A tar being written to a temporary file, then renamed into place. */
export interface TarFileWriter {
  /** Add a directory member (mode 0755). */
  addDir(name: string): Promise<void>;
  /** Add a regular file from bytes (mode 0644). */
  addBytes(name: string, data: Uint8Array): Promise<void>;
  /**
   * Add a regular file of exactly `size` bytes from `body` (mode 0644); InvalidError when the
   * stream is shorter or longer. `onChunk` sees every chunk as it is written (hashing).
   */
  addStream(name: string, size: number, body: AsyncIterable<Uint8Array>, onChunk?: (b: Uint8Array) => void): Promise<void>;
  /**
   * Add a regular file whose size is only known at its end (mode 0644): its header is written
   * after its data, in the block reserved before it (the output is a regular file). Returns the
   * size. A size past USTAR's 8 GiB octal limit is written in base-256 (GNU, read by Go and GNU tar).
   */
  addUnsized(name: string, body: AsyncIterable<Uint8Array>, onChunk?: (b: Uint8Array) => void): Promise<number>;
  /** End the archive, fsync, rename over the destination, fsync its directory. */
  commit(): Promise<void>;
  /** Remove the temporary file (after a failure; a no-op after commit). */
  abort(): void;
}

/**
 * Start writing the tar `dest` atomically. The temporary file is created synchronously with
 * O_EXCL|O_NOFOLLOW in `tmpdir` when it is on the destination's filesystem, else beside `dest`,
 * and registered for removal on SIGINT/SIGTERM. A `dest` that exists and is not a regular file
 * (a directory, a symlink, a device) is refused with ClobberError, never written through.
 * `onBytes` is told about every byte written.
 */
export function createTarFileWriter(dest: string, opts: { tmpdir?: string; onBytes?: (n: number) => void } = {}): TarFileWriter {
  const destDir = path.dirname(path.resolve(dest));
  let st: fs.Stats | undefined;
  try { st = fs.lstatSync(dest); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "ENOENT") throw addContext(`write ${dest}`, e);
  }
  if (st && !st.isFile()) throw new ClobberError(`write ${dest}: exists and is not a regular file; refusing to replace it`);
  let dir = destDir;
  if (opts.tmpdir) {
    try {
      if (fs.statSync(opts.tmpdir).dev === fs.statSync(destDir).dev) dir = opts.tmpdir;
    } catch { /* a missing destination directory fails below */ }
  }
  const tmp = path.join(dir, `.${path.basename(dest)}.boci-${process.pid}-${randomName()}.tmp`);
  const unregister = removeOnInterrupt(tmp);
  let fd: number;
  try {
    const c = fs.constants;
    fd = fs.openSync(tmp, c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, 0o644);
  } catch (e) {
    unregister();
    throw addContext(`write ${dest}`, e);
  }
  let pos = 0;
  let done = false;
  const put = async (b: Uint8Array, rewriteAt?: number): Promise<void> => {
    const at = rewriteAt ?? pos;
    for (let off = 0; off < b.length;) off += await writeAsync(fd, b, off, b.length - off, at + off);
    if (rewriteAt !== undefined) return;
    pos += b.length;
    opts.onBytes?.(b.length);
  };
  const pad = (n: number) => (n % BLOCK ? put(ZEROS.subarray(0, BLOCK - (n % BLOCK))) : Promise.resolve());
  const header = (h: TarWriterHeader, size: number) => encodeEntryHeader({ ...MEMBER_DEFAULTS, ...h }, size);
  const copy = async (name: string, body: AsyncIterable<Uint8Array>, max: number, onChunk?: (b: Uint8Array) => void): Promise<number> => {
    let got = 0;
    for await (const c of body) {
      got += c.length;
      if (got > max) throw new InvalidError(`write ${dest}: member ${q(name)}: more data than its ${max} bytes`);
      onChunk?.(c);
      await put(c);
    }
    return got;
  };
  const cleanup = () => {
    if (done) return;
    done = true;
    try { fs.closeSync(fd); } catch { /* closed */ }
    fs.rmSync(tmp, { force: true });
    unregister();
  };
  return {
    async addDir(name) {
      await put(header({ name, type: "dir", mode: 0o755 }, 0));
    },
    async addBytes(name, data) {
      await put(header({ name, type: "file", mode: 0o644 }, data.length));
      await put(data);
      await pad(data.length);
    },
    async addStream(name, size, body, onChunk) {
      await put(header({ name, type: "file", mode: 0o644 }, size));
      const got = await copy(name, body, size, onChunk);
      if (got !== size) throw new InvalidError(`write ${dest}: member ${q(name)}: ${got} bytes, expected ${size}`);
      await pad(size);
    },
    async addUnsized(name, body, onChunk) {
      const at = pos;
      const probe = header({ name, type: "file", mode: 0o644 }, 0);
      if (probe.length !== BLOCK) throw new InvalidError(`write ${dest}: member name ${q(name)} needs an extended header`);
      await put(Buffer.alloc(BLOCK));
      const size = await copy(name, body, Number.MAX_SAFE_INTEGER, onChunk);
      await pad(size);
      let h: Buffer;
      if (size <= MAX_OCTAL_SIZE) h = header({ name, type: "file", mode: 0o644 }, size);
      else h = withBase256Size(probe, size);
      await put(h, at);
      return size;
    },
    async commit() {
      try {
        await put(ZEROS);
        await fsyncAsync(fd);
        fs.closeSync(fd);
        done = true;
        // A signal that came meanwhile is acted on first: the rename never happens then.
        await yieldToSignals();
        fs.renameSync(tmp, dest);
      } catch (e) {
        done = false;
        cleanup();
        throw addContext(`write ${dest}`, e);
      }
      unregister();
      fsyncDir(path.dirname(path.resolve(dest)));
    },
    abort: cleanup,
  };
}

/**
 * A copy of a USTAR header block with its size field set to `size` in base-256 (GNU: the first
 * byte's top bit set, the value big-endian) and its checksum recomputed. Only for sizes USTAR's
 * octal field cannot hold; the header had size 0.
 */
export function withBase256Size(h: Buffer, size: number): Buffer {
  const b = Buffer.from(h);
  b.fill(0, 124, 136);
  let v = BigInt(size);
  for (let i = 135; i > 124; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  b[124] = 0x80;
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  b.write(sum.toString(8).padStart(6, "0"), 148, "latin1");
  b[154] = 0;
  b[155] = 0x20;
  return b;
}
