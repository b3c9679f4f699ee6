/**
 * Streaming tar reader: async iteration over entries, PAX ('x', 'g') and GNU long names
 * ('L', 'K') applied, sparse and unknown types rejected. See README.md for why this does not
 * use tar-stream's extractor.
 */
import { InvalidError } from "../errors";
import { BLOCK, decodeHeader, decodeName, type RawHeader } from "./header";
import { MAX_EXTENDED_HEADER_SIZE, parsePaxInt, parsePaxRecords, parsePaxTime, type PaxRecords } from "./pax";
import type { EntryType, TarEntry, TarHeader } from "./types";
import { escapeText } from "../util/escape";
import { GcBudget } from "../util/heap";
import { isReleasable, release, unmark } from "../util/release";

const EMPTY = Buffer.alloc(0);

function toBuffer(c: Uint8Array | string): Buffer {
  if (typeof c === "string") throw new InvalidError("tar input must be bytes, not text");
  return Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
}

/**
 * Pulls chunks from an async iterator and hands out views of them. With `releaseChunks` it frees
 * each chunk it is done with (util/release.ts: only chunks their producer marked). A chunk whose
 * bytes went out as body pieces is the consumer's business: handed out whole (one piece is the
 * entire chunk, still marked), the consumer frees it when done with it; handed out in part (the
 * rest holds other entries' bytes), it is unmarked, so nobody frees it early, and counted for the
 * collector instead (util/heap.ts GcBudget).
 */
class ByteSource {
  private chunk: Buffer = EMPTY;
  private off = 0;
  private done = false;
  /**
   * How the current chunk's bytes went out through readBody: not (0), in part (1: it was marked,
   * and is unmarked now), whole (2: the consumer's to free).
   */
  private pin: 0 | 1 | 2 = 0;
  private readonly gc: GcBudget | null;
  constructor(private readonly it: AsyncIterator<Uint8Array | string>, releaseChunks: boolean) {
    this.gc = releaseChunks ? new GcBudget() : null;
  }

  /** Done with the current chunk: free it, count it, or leave it to the consumer (see above). */
  private leave(): void {
    const c = this.chunk;
    if (this.gc && c.length > 0) {
      if (this.pin === 0) release(c);
      else if (this.pin === 1) this.gc.add(c.length);
    }
    this.pin = 0;
  }

  /** Synchronous fast path: n bytes if they are all in the current chunk. */
  take(n: number): Buffer | null {
    if (this.chunk.length - this.off < n) return null;
    const b = this.chunk.subarray(this.off, this.off + n);
    this.off += n;
    return b;
  }

  /** Load the next non-empty chunk (only when the current one is used up). False at EOF. */
  private async more(): Promise<boolean> {
    while (!this.done) {
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        break;
      }
      const c = toBuffer(r.value);
      if (c.length > 0) {
        this.leave();
        this.chunk = c;
        this.off = 0;
        return true;
      }
    }
    this.end();
    return false;
  }

  /** readSome for a body piece handed to the consumer, who may keep it past the next read. */
  async readBody(max: number): Promise<Buffer | null> {
    const b = await this.readSome(max);
    // (an unmarked chunk is its producer's to count; one already handed out in part is unmarked)
    if (!b || !this.gc || !isReleasable(this.chunk)) return b;
    if (this.pin === 0 && b.length === this.chunk.length) this.pin = 2;
    else {
      unmark(this.chunk);
      this.pin = 1;
    }
    return b;
  }

  /** Up to max bytes (at least one), or null at EOF. */
  async readSome(max: number): Promise<Buffer | null> {
    if (this.off >= this.chunk.length && !(await this.more())) return null;
    const n = Math.min(max, this.chunk.length - this.off);
    const b = this.chunk.subarray(this.off, this.off + n);
    this.off += n;
    return b;
  }

  /**
   * Exactly n bytes, or fewer only at EOF. Bytes spread over several chunks are joined, into
   * `scratch` when it is big enough (then valid only until the caller's next read).
   */
  async readExact(n: number, scratch?: Buffer): Promise<Buffer> {
    const fast = this.take(n);
    if (fast) return fast;
    const first = await this.readSome(n);
    if (!first || first.length === n) return first ?? EMPTY;
    // Each piece is copied before the next read: that read may free the chunk it is a view of.
    const out = scratch && scratch.length >= n ? scratch : Buffer.allocUnsafe(n);
    out.set(first, 0);
    let got = first.length;
    while (got < n) {
      const b = await this.readSome(n - got);
      if (!b) break;
      out.set(b, got);
      got += b.length;
    }
    return out.subarray(0, got);
  }

  /** Skip n bytes; returns how many were skipped (fewer only at EOF). */
  async skip(n: number): Promise<number> {
    let left = n;
    while (left > 0) {
      const avail = this.chunk.length - this.off;
      if (avail > 0) {
        const k = Math.min(avail, left);
        this.off += k;
        left -= k;
      } else if (!(await this.more())) break;
    }
    return n - left;
  }

  /** Consume everything up to EOF. */
  async drainAll(): Promise<void> {
    this.off = this.chunk.length;
    while (await this.more()) this.off = this.chunk.length;
  }

  async close(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.it.return?.();
    }
  }

  /** The stream is over (read to its end, or given up): let go of the last chunk. */
  end(): void {
    this.leave();
    this.chunk = EMPTY;
    this.off = 0;
  }
}

function padding(size: number): number {
  const r = size % BLOCK;
  return r === 0 ? 0 : BLOCK - r;
}

class Entry implements TarEntry {
  private remaining: number;
  private pad: number;
  private iterated = false;
  constructor(
    private readonly src: ByteSource,
    readonly header: TarHeader,
  ) {
    this.remaining = header.size;
    this.pad = padding(header.size);
  }

  get body(): AsyncIterable<Buffer> {
    return this;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    if (this.iterated) throw new Error(`tar entry ${this.header.name}: body already consumed`);
    this.iterated = true;
    while (this.remaining > 0) {
      const b = await this.src.readBody(this.remaining);
      if (!b) throw this.truncated();
      this.remaining -= b.length;
      yield b;
    }
  }

  async readAll(scratch?: Buffer): Promise<Buffer> {
    if (this.remaining === 0) return EMPTY;
    const n = this.remaining;
    const b = await this.src.readExact(n, scratch);
    this.remaining -= b.length;
    if (b.length < n) throw this.truncated();
    return b;
  }

  async drain(): Promise<void> {
    if (this.remaining > 0) {
      const n = this.remaining;
      const k = await this.src.skip(n);
      this.remaining -= k;
      if (k < n) throw this.truncated();
    }
  }

  /** Drain the body and its block padding; called before the next header is read. */
  async finish(): Promise<void> {
    await this.drain();
    if (this.pad > 0) {
      const p = this.pad;
      this.pad = 0;
      if (!this.src.take(p) && (await this.src.skip(p)) < p) throw this.truncated();
    }
  }

  private truncated(): InvalidError {
    return new InvalidError(`truncated tar entry ${this.header.name}`);
  }
}

const TYPES: Record<number, EntryType> = {
  0x00: "file", // V7 regular file
  0x30: "file", // '0'
  0x37: "file", // '7' contiguous file
  0x31: "link",
  0x32: "symlink",
  0x33: "char",
  0x34: "block",
  0x35: "dir",
  0x36: "fifo",
};

function typeName(flag: number): string {
  return flag >= 0x20 && flag < 0x7f ? String.fromCharCode(flag) : `0x${flag.toString(16).padStart(2, "0")}`;
}

/** Options for `readTar`. */
export interface ReadTarOptions {
  /** Largest PAX or GNU long-name body accepted (default 1 MiB). */
  maxExtendedHeaderSize?: number;
  /**
   * The reader is the last user of the input: it frees each chunk its producer marked
   * releasable (util/release.ts) once it has read past it, so the collector never has to find
   * it (decompressors with `releasable`, compress/index.ts). `readAll` results are then valid
   * only until the next read from this tar, whether or not `scratch` was used. A piece of an
   * entry's `body` that is still marked (isReleasable) is a whole chunk handed over: the
   * consumer frees it (release) once done with it. Other pieces stay valid (the collector's).
   */
  releaseChunks?: boolean;
}

/**
 * Iterate the entries of an uncompressed tar stream.
 *
 * Each entry's body must be consumed before asking for the next entry; whatever is left is
 * drained automatically. After the end-of-archive marker the rest of the input is drained so
 * that a caller hashing the stream sees every byte. A missing end marker at a block boundary is
 * accepted (as Go's archive/tar does).
 *
 * Throws InvalidError for malformed headers (checksum, numeric fields), truncation, bad PAX
 * records, oversized extended headers, sparse files and unknown type flags. If iteration stops
 * early (break / throw), the input iterator's `return()` is called.
 */
export async function* readTar(
  input: NodeJS.ReadableStream | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  opts: ReadTarOptions = {},
): AsyncGenerator<TarEntry, void, undefined> {
  const maxExt = opts.maxExtendedHeaderSize ?? MAX_EXTENDED_HEADER_SIZE;
  const src = new ByteSource(toAsyncIterator(input), !!opts.releaseChunks);
  const ext = new ExtendedHeaders();
  let completed = false;
  try {
    for (;;) {
      const block = src.take(BLOCK) ?? (await src.readExact(BLOCK));
      if (block.length === 0) {
        if (ext.pending) throw new InvalidError("truncated tar archive: extended header without entry");
        break;
      }
      if (block.length < BLOCK) throw new InvalidError("truncated tar archive: partial header block");
      const raw = decodeHeader(block);
      if (raw === null) {
        if (ext.pending) throw new InvalidError("invalid tar archive: extended header without entry");
        const second = await src.readExact(BLOCK);
        if (second.length === 0 || (second.length === BLOCK && decodeHeader(second) === null)) break;
        if (second.length < BLOCK) throw new InvalidError("truncated tar archive: partial end-of-archive block");
        throw new InvalidError("invalid tar archive: single zero block followed by data");
      }
      if (ExtendedHeaders.isExtension(raw.typeflag)) {
        ext.absorb(raw.typeflag, await readExtended(src, raw, maxExt));
        continue;
      }
      const header = ext.entry(raw);
      const entry = new Entry(src, header);
      yield entry;
      await entry.finish();
    }
    await src.drainAll();
    completed = true;
  } finally {
    if (!completed) await src.close().catch(() => undefined);
    src.end();
  }
}

function toAsyncIterator(input: unknown): AsyncIterator<Uint8Array | string> {
  const ai = (input as Partial<AsyncIterable<Uint8Array>>)[Symbol.asyncIterator];
  if (typeof ai === "function") return ai.call(input);
  const si = (input as Partial<Iterable<Uint8Array>>)[Symbol.iterator];
  if (typeof si === "function") {
    const it = si.call(input);
    return { next: async () => it.next(), return: async () => it.return?.() ?? { done: true, value: undefined } };
  }
  throw new TypeError("readTar: input is not iterable");
}

async function readExtended(src: ByteSource, raw: RawHeader, max: number): Promise<Buffer> {
  const what = ExtendedHeaders.describe(raw.typeflag);
  if (raw.size > max) throw new InvalidError(`${what} too large (${raw.size} bytes, limit ${max})`);
  const body = await src.readExact(raw.size);
  if (body.length < raw.size) throw new InvalidError(`truncated tar archive: partial ${what}`);
  const pad = padding(raw.size);
  if (pad && (await src.skip(pad)) < pad) throw new InvalidError(`truncated tar archive: partial ${what}`);
  // The body is a view of an input chunk; keep our own copy since records outlive it.
  return Buffer.from(body);
}

/**
 * The extended headers that come before an entry's own header — pax 'x' (this entry), pax 'g'
 * (every later entry), GNU 'L'/'K' (long name and link name) — and how they make the entry's
 * header: the one place that knows it, for the stream reader here and for anything that walks
 * a tar's headers another way (transport/tar-members.ts indexes a file in place).
 */
export class ExtendedHeaders {
  private globalPax: PaxRecords | null = null;
  private localPax: PaxRecords | null = null;
  private longName: string | null = null;
  private longLink: string | null = null;

  /** Whether a header of this type flag is an extended header (its body goes to absorb()). */
  static isExtension(flag: number): boolean {
    return flag === 0x78 /* x */ || flag === 0x67 /* g */ || flag === 0x4c /* L */ || flag === 0x4b /* K */;
  }

  /** What an extended header is called in errors. */
  static describe(flag: number): string {
    return flag === 0x4c || flag === 0x4b ? "gnu long name" : "pax header";
  }

  /** Take an extended header's body. Throws InvalidError for bad pax records. */
  absorb(flag: number, body: Buffer): void {
    if (flag === 0x78) this.localPax = parsePaxRecords(body);
    else if (flag === 0x67) this.globalPax = mergeGlobal(this.globalPax, parsePaxRecords(body));
    else {
      const nul = body.indexOf(0);
      const s = decodeName(body, 0, nul < 0 ? body.length : nul);
      if (flag === 0x4c) this.longName = s;
      else this.longLink = s;
    }
  }

  /** Whether extended headers wait for an entry (an archive may not end, or a zero block come, here). */
  get pending(): boolean {
    return this.localPax !== null || this.longName !== null || this.longLink !== null;
  }

  /**
   * The header of the entry `raw` with the waiting extended headers applied, checked (InvalidError:
   * a NUL in a name, IDs or device numbers out of range, sparse or unknown types); the entry's
   * own extended headers are then forgotten (the global ones stay).
   */
  entry(raw: RawHeader): TarHeader {
    const { localPax, longName, longLink } = this;
    this.localPax = null;
    this.longName = this.longLink = null;
    return buildHeader(raw, this.globalPax, localPax, longName, longLink);
  }
}

/** POSIX: a global record with an empty value removes the keyword. */
function mergeGlobal(prev: PaxRecords | null, next: PaxRecords): PaxRecords {
  const m: PaxRecords = new Map(prev ?? []);
  for (const [k, v] of next) {
    if (v.length === 0) m.delete(k);
    else m.set(k, v);
  }
  return m;
}

function buildHeader(
  raw: RawHeader,
  globalPax: PaxRecords | null,
  localPax: PaxRecords | null,
  longName: string | null,
  longLink: string | null,
): TarHeader {
  let name = longName ?? raw.name;
  let linkname = longLink ?? raw.linkname;
  let { uid, gid, size, mtime, uname, gname } = raw;
  const xattrs = new Map<string, Buffer>();
  let libarchiveXattrs: Map<string, Buffer> | null = null;
  let sparse = false;
  let nulIn: string | null = null;
  const apply = (recs: PaxRecords) => {
    for (const [k, v] of recs) {
      // A NUL cannot be part of a file or user name: the kernel would see a shorter name than
      // the one every check looked at.
      if ((k === "path" || k === "linkpath" || k === "uname" || k === "gname") && v.includes(0)) nulIn ??= k;
      // A local record with an empty value means "not set": fall back to the header field.
      switch (k) {
        case "path":
          name = v.length ? decodeName(v) : longName ?? raw.name;
          break;
        case "linkpath":
          linkname = v.length ? decodeName(v) : longLink ?? raw.linkname;
          break;
        case "size":
          size = v.length ? parsePaxInt(k, v) : raw.size;
          break;
        case "uid":
          uid = v.length ? parsePaxInt(k, v) : raw.uid;
          break;
        case "gid":
          gid = v.length ? parsePaxInt(k, v) : raw.gid;
          break;
        case "mtime":
          mtime = v.length ? parsePaxTime(k, v) : raw.mtime;
          break;
        case "uname":
          uname = v.toString("utf8");
          break;
        case "gname":
          gname = v.toString("utf8");
          break;
        default:
          if (k.startsWith("SCHILY.xattr.")) {
            const x = k.slice(13);
            if (v.length) xattrs.set(x, v);
            else xattrs.delete(x);
          } else if (k.startsWith("LIBARCHIVE.xattr.")) {
            libarchiveXattrs ??= new Map();
            libarchiveXattrs.set(decodeURIComponentSafe(k.slice(17)), Buffer.from(v.toString("latin1"), "base64"));
          } else if (k.startsWith("GNU.sparse.")) sparse = true;
      }
    }
  };
  if (globalPax) apply(globalPax);
  if (localPax) apply(localPax);
  if (libarchiveXattrs) for (const [k, v] of libarchiveXattrs as Map<string, Buffer>) if (!xattrs.has(k)) xattrs.set(k, v);

  const what = () => `invalid tar entry ${escapeText(name, "always")}`;
  if (nulIn !== null) throw new InvalidError(`${what()}: pax ${nulIn} record contains a NUL byte`);
  if (size < 0) throw new InvalidError(`${what()}: negative size ${size}`);
  // uid_t is 32 bits and (uid_t)-1 means "leave unchanged" to chown: neither a larger ID nor
  // 4294967295 may reach it (a wrapped ID would become root).
  if (!isValidId(uid)) throw new InvalidError(`${what()}: uid ${uid} out of range (0-${MAX_ID})`);
  if (!isValidId(gid)) throw new InvalidError(`${what()}: gid ${gid} out of range (0-${MAX_ID})`);
  const flag = raw.typeflag;
  let type = TYPES[flag];
  if (type === undefined || sparse) {
    throw new InvalidError(`unsupported tar entry type ${sparse ? "sparse" : typeName(flag)} for ${name}`);
  }
  if ((type === "char" || type === "block") && !(isDevNumber(raw.devmajor) && isDevNumber(raw.devminor))) {
    throw new InvalidError(`${what()}: device number ${raw.devmajor},${raw.devminor} out of range`);
  }
  // Old archives mark directories with a trailing slash on a V7 regular file.
  if (flag === 0 && name.endsWith("/")) type = "dir";
  return {
    name,
    type,
    mode: raw.mode & 0o7777,
    uid,
    gid,
    size: type === "file" ? size : 0, // header-only types carry no body (as in Go)
    mtime,
    linkname,
    devmajor: raw.devmajor,
    devminor: raw.devminor,
    xattrs,
    uname,
    gname,
  };
}

/** The largest uid or gid an entry may carry: 2^32-2 (2^32-1 is chown's "no change"). */
export const MAX_ID = 0xfffffffe;

function isValidId(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= MAX_ID;
}

function isDevNumber(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new InvalidError(`invalid pax record: bad LIBARCHIVE.xattr name ${JSON.stringify(s)}`);
  }
}
