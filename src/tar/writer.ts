/**
 * Deterministic tar writer, byte-compatible in spirit with Go's archive/tar as umoci uses it:
 * USTAR headers, a PAX 'x' record set only when a value does not fit USTAR, sorted records,
 * `dir/PaxHeaders.0/base` pseudo-entry names, whole-second mtimes, exactly two zero blocks at
 * the end and no record padding.
 */
import { nameToBytes } from "../rootfs/name";
import { InvalidError } from "../errors";
import { BLOCK, encodeHeader } from "./header";
import { MAX_EXTENDED_HEADER_SIZE, formatPaxRecords } from "./pax";
import type { EntryType, TarWriterHeader } from "./types";
import { goPathClean } from "../util/go-path";

export interface TarWriter {
  /**
   * Add an entry. Files take a body (a Buffer, or chunks summing to `header.size`); other types
   * take none. Resolves once the bytes are accepted by the (back-pressured) output. Calls are
   * serialised; do not mutate body buffers after passing them.
   * Throws InvalidError for values tar cannot hold or a body of the wrong size.
   */
  add(header: TarWriterHeader, body?: Buffer | Uint8Array | AsyncIterable<Uint8Array>): Promise<void>;
  /** Write the end-of-archive marker (two zero blocks) and end `output`. */
  finish(): Promise<void>;
  /**
   * The tar bytes, to be read once. The consumer must read it, or `add` never resolves; a
   * consumer that stops early (break, return) fails every later `add`.
   */
  readonly output: AsyncIterable<Buffer>;
  /** Fail the archive: pending and later `add` calls reject with `err`, and so does `output`. */
  abort(err: Error): void;
  /** Bytes written and not yet read (at most about HIGH_WATER plus one piece). */
  readonly queuedBytes: number;
}

/**
 * Bytes the writer may run ahead of its reader before `add` waits. (A queue of our own, not a
 * node:stream Readable: loading node:stream costs a short command ~5 ms of its start-up.)
 */
const HIGH_WATER = 256 * 1024;

const TYPEFLAG: Record<EntryType, number> = {
  file: 0x30,
  link: 0x31,
  symlink: 0x32,
  char: 0x33,
  block: 0x34,
  dir: 0x35,
  fifo: 0x36,
};

const MAX_OCTAL_8 = 0o7777777; // 7 digits in an 8-byte field
const MAX_OCTAL_12 = 0o77777777777; // 11 digits in a 12-byte field
const BATCH = 64 * 1024;
const ZEROS = Buffer.alloc(2 * BLOCK);

function isASCII(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}

/** Go's toASCII: drop non-ASCII and NUL characters (best effort for the USTAR fields). */
function toASCII(s: string): string {
  return isASCII(s) ? s : s.replace(/[^\x01-\x7f]/g, "");
}

/** Go's splitUSTARPath: split a long ASCII name into prefix (≤155) and name (≤100) at a "/". */
function splitUSTARPath(name: string): [string, string] | null {
  let length = name.length;
  if (length <= 100 || !isASCII(name)) return null;
  if (length > 156) length = 156;
  else if (name[length - 1] === "/") length--;
  const i = name.lastIndexOf("/", length - 1);
  const nlen = name.length - i - 1;
  if (i <= 0 || nlen > 100 || nlen === 0 || i > 155) return null;
  return [name.slice(0, i), name.slice(i + 1)];
}

/** Go: path.Join(dir, "PaxHeaders.0", file), ASCII, at most 100 bytes, no trailing "/". */
function paxHeaderName(realName: string): string {
  const i = realName.lastIndexOf("/");
  const dir = realName.slice(0, i + 1);
  const file = realName.slice(i + 1);
  let name = toASCII(goPathClean([dir, "PaxHeaders.0", file].filter((x) => x !== "").join("/")));
  if (name.length > 100) name = name.slice(0, 100);
  return name.replace(/\/+$/, "");
}

function checkNoNUL(what: string, s: string): void {
  if (s.includes("\0")) throw new InvalidError(`tar ${what} ${JSON.stringify(s)} contains a NUL byte`);
}

function checkUint(name: string, what: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new InvalidError(`tar entry ${name}: invalid ${what} ${v}`);
}

/** Encode an entry's header blocks (an optional PAX pseudo-entry, then the real header). */
export function encodeEntryHeader(h: TarWriterHeader, size: number): Buffer {
  let name = h.name;
  // (the root stays ".", as umoci names it)
  if (h.type === "dir" && !name.endsWith("/") && name !== ".") name += "/";
  const linkname = h.linkname ?? "";
  const uid = h.uid ?? 0;
  const gid = h.gid ?? 0;
  const mtime = Math.floor(h.mtime ?? 0);
  const uname = h.uname ?? "";
  const gname = h.gname ?? "";
  const devmajor = h.devmajor ?? 0;
  const devminor = h.devminor ?? 0;
  checkNoNUL("name", name);
  checkNoNUL("linkname", linkname);
  checkNoNUL("uname", uname);
  checkNoNUL("gname", gname);
  checkUint(name, "uid", uid);
  checkUint(name, "gid", gid);
  checkUint(name, "size", size);
  for (const [what, v] of [["devmajor", devmajor], ["devminor", devminor]] as const) {
    checkUint(name, what, v);
    if (v > MAX_OCTAL_8) throw new InvalidError(`tar entry ${name}: ${what} ${v} too large`);
  }
  if (!Number.isSafeInteger(mtime)) throw new InvalidError(`tar entry ${name}: invalid mtime`);

  // Records Go would put in a PAX header; `path` alone does not force PAX when the name can be
  // split into USTAR prefix/name.
  const pax = new Map<string, Buffer | string>();
  let needPax = false;
  let prefix = "";
  let ustarName = name;
  if (!isASCII(name) || Buffer.byteLength(name) > 100) {
    pax.set("path", nameToBytes(name));
    const split = splitUSTARPath(name);
    if (split) [prefix, ustarName] = split;
    else needPax = true;
  }
  const fitString = (key: string, v: string, max: number) => {
    if (!isASCII(v) || v.length > max) {
      pax.set(key, v);
      needPax = true;
    }
  };
  if (!isASCII(linkname) || linkname.length > 100) {
    pax.set("linkpath", nameToBytes(linkname));
    needPax = true;
  }
  fitString("uname", uname, 32);
  fitString("gname", gname, 32);
  const fitNumber = (key: string, v: number, max: number) => {
    if (v < 0 || v > max) {
      pax.set(key, String(v));
      needPax = true;
    }
  };
  fitNumber("uid", uid, MAX_OCTAL_8);
  fitNumber("gid", gid, MAX_OCTAL_8);
  fitNumber("size", size, MAX_OCTAL_12);
  fitNumber("mtime", mtime, MAX_OCTAL_12);
  if (h.xattrs) {
    for (const [k, v] of h.xattrs) {
      if (k === "" || k.includes("=") || k.includes("\0")) throw new InvalidError(`tar entry ${name}: invalid xattr name ${JSON.stringify(k)}`);
      if (v.length === 0) continue; // an empty PAX value means "unset": it cannot be stored
      pax.set(`SCHILY.xattr.${k}`, Buffer.isBuffer(v) ? v : Buffer.from(v));
      needPax = true;
    }
  }

  const fields = {
    name: ustarName,
    prefix,
    mode: (h.mode ?? 0) & 0o7777,
    uid,
    gid,
    size,
    mtime,
    typeflag: TYPEFLAG[h.type],
    linkname: toASCII(linkname),
    uname: toASCII(uname),
    gname: toASCII(gname),
    devmajor,
    devminor,
  };
  if (fields.typeflag === undefined) throw new InvalidError(`tar entry ${name}: unknown type ${String(h.type)}`);
  if (!needPax) return encodeHeader(fields);

  // PAX format: the USTAR fields hold best-effort values, no prefix split.
  fields.name = toASCII(name);
  fields.prefix = "";
  const data = formatPaxRecords(pax);
  if (data.length > MAX_EXTENDED_HEADER_SIZE) throw new InvalidError(`tar entry ${name}: pax header too large`);
  const dataBlocks = Math.ceil(data.length / BLOCK) * BLOCK;
  const out = Buffer.alloc(BLOCK + dataBlocks + BLOCK);
  encodeHeader(
    { name: paxHeaderName(name), mode: 0, uid: 0, gid: 0, size: data.length, mtime: 0, typeflag: 0x78, linkname: "", uname: "", gname: "" },
    out,
    0,
  );
  data.copy(out, BLOCK);
  encodeHeader(fields, out, BLOCK + dataBlocks);
  return out;
}

class Writer implements TarWriter {
  private batch = Buffer.allocUnsafe(BATCH);
  private used = 0;
  /** what the reader has not taken yet */
  private queue: Buffer[] = [];
  private queued = 0;
  private ended = false;
  /** the writer waiting for room, the reader waiting for bytes */
  private wakeWriter: (() => void) | null = null;
  private wakeReader: (() => void) | null = null;
  private failure: Error | null = null;
  private chain: Promise<void> = Promise.resolve();
  private finished = false;
  private taken = false;

  get queuedBytes(): number { return this.queued; }

  abort(err: Error): void {
    this.failure ??= err;
    this.queue = [];
    this.queued = 0;
    this.wake();
  }

  /** Wake whichever side waits (the side calling is never waiting: one reader, adds in turn). */
  private wake(): void {
    const w = this.wakeWriter, r = this.wakeReader;
    this.wakeWriter = this.wakeReader = null;
    w?.();
    r?.();
  }

  get output(): AsyncIterable<Buffer> {
    return { [Symbol.asyncIterator]: () => this.reader() };
  }

  private reader(): AsyncIterator<Buffer> {
    if (this.taken) throw new Error("tar output is read once");
    this.taken = true;
    return {
      next: async (): Promise<IteratorResult<Buffer>> => {
        for (;;) {
          if (this.failure) throw this.failure;
          const b = this.queue.shift();
          if (b) {
            this.queued -= b.length;
            if (this.queued < HIGH_WATER) this.wake();
            return { value: b, done: false };
          }
          if (this.ended) return { value: undefined, done: true };
          await new Promise<void>((resolve) => { this.wakeReader = resolve; });
        }
      },
      return: async (): Promise<IteratorResult<Buffer>> => {
        if (!this.ended) this.abort(new Error("tar output closed"));
        return { value: undefined, done: true };
      },
    };
  }

  add(header: TarWriterHeader, body?: Buffer | Uint8Array | AsyncIterable<Uint8Array>): Promise<void> {
    const p = this.chain.then(() => this.doAdd(header, body));
    this.chain = p.catch(() => undefined);
    return p;
  }

  finish(): Promise<void> {
    const p = this.chain.then(async () => {
      if (this.finished) return;
      this.finished = true;
      await this.write(ZEROS);
      await this.flush();
      if (this.failure) throw this.failure;
      this.ended = true;
      this.wake();
    });
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async doAdd(h: TarWriterHeader, body?: Buffer | Uint8Array | AsyncIterable<Uint8Array>): Promise<void> {
    if (this.finished) throw new Error("tar writer already finished");
    const isBytes = body instanceof Uint8Array;
    let size: number;
    if (h.type === "file") {
      size = h.size ?? (isBytes ? body.length : 0);
      if (body === undefined && size !== 0) throw new InvalidError(`tar entry ${h.name}: missing body for ${size} bytes`);
    } else {
      if (body !== undefined && (!isBytes || body.length !== 0)) throw new InvalidError(`tar entry ${h.name}: ${h.type} cannot have a body`);
      size = 0;
    }
    if (isBytes && body.length !== size) throw new InvalidError(`tar entry ${h.name}: body is ${body.length} bytes, header says ${size}`);
    await this.write(encodeEntryHeader(h, size));
    if (h.type === "file" && body !== undefined) {
      if (isBytes) await this.write(body);
      else {
        let got = 0;
        for await (const c of body) {
          got += c.length;
          if (got > size) throw new InvalidError(`tar entry ${h.name}: body longer than ${size} bytes`);
          await this.write(c);
        }
        if (got !== size) throw new InvalidError(`tar entry ${h.name}: body is ${got} bytes, header says ${size}`);
      }
      const pad = size % BLOCK;
      if (pad) await this.write(ZEROS.subarray(0, BLOCK - pad));
    }
  }

  /** Small pieces are copied into a batch buffer; large ones are pushed as they are. */
  private async write(b: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure;
    if (b.length <= BATCH - this.used) {
      this.batch.set(b, this.used);
      this.used += b.length;
      if (this.used === BATCH) await this.flush();
      return;
    }
    await this.flush();
    if (b.length < BATCH / 2) {
      this.batch.set(b, 0);
      this.used = b.length;
    } else await this.push(Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  }

  private async flush(): Promise<void> {
    if (this.used === 0) return;
    const b = this.batch.subarray(0, this.used);
    this.batch = Buffer.allocUnsafe(BATCH);
    this.used = 0;
    await this.push(b);
  }

  private async push(b: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    this.queue.push(b);
    this.queued += b.length;
    this.wake();
    while (this.queued >= HIGH_WATER && !this.failure) await new Promise<void>((resolve) => { this.wakeWriter = resolve; });
    if (this.failure) throw this.failure;
  }
}

/** A tar writer; read `output` while adding entries (backpressure applies). */
export function createTarWriter(): TarWriter {
  return new Writer();
}
