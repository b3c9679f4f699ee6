/**
 * Multi-member gzip decoder (RFC 1952) that tolerates trailing junk after the last member.
 *
 * node:zlib's Gunzip decodes concatenated members but fails on trailing junk, and when the junk
 * shares a write with the end of the last member, the tail of the output is lost with the error.
 * So the framing (header, CRC32/ISIZE trailer) is parsed here and each member's deflate data
 * goes through its own InflateRaw; `bytesWritten` tells where the deflate data ended.
 */
import { Transform, type TransformCallback } from "node:stream";
import * as zlib from "node:zlib";
import { InvalidError } from "../errors";

const EMPTY = Buffer.alloc(0);
/**
 * Input is fed to the inflater in slices this big (a write per slice: 64 KiB slices made a
 * distribution-like unpack ~15 % slower). What bounds the output held is backpressure: the
 * inflater is paused while 4 MiB wait for the reader, and no slice is fed until they are taken.
 */
const SLICE = 1 << 20;
/** node:zlib output chunk size; the 16 KiB default makes Bun decode 3x slower. */
export const OUTPUT_CHUNK = 256 * 1024;

/**
 * A full GC after this much output. node:zlib hands out views of fresh 256 KiB buffers, and an
 * inflater's native state lives until its handle is collected (pgzip-style layers have a member
 * per MiB); JSC, left alone, lets both pile up by tens of MiB. Counting output rather than
 * members covers single-member layers too.
 */
const GC_EVERY = 16 << 20;
/** Decoded output that may wait for the reader before the decoder is paused (backpressure). */
export const MAX_WAITING_OUTPUT = 4 << 20;
const FTEXT = 1, FHCRC = 2, FEXTRA = 4, FNAME = 8, FCOMMENT = 16;

/** Length of the gzip header at the start of b, -1 if more bytes are needed. Throws if malformed. */
export function parseGzipHeader(b: Buffer): number {
  if (b.length >= 1 && b[0] !== 0x1f) throw new InvalidError("not a gzip stream: bad magic");
  if (b.length >= 2 && b[1] !== 0x8b) throw new InvalidError("not a gzip stream: bad magic");
  if (b.length < 10) return -1;
  if (b[2] !== 8) throw new InvalidError(`invalid gzip header: unknown compression method ${b[2]}`);
  const flg = b[3]!;
  if (flg & 0xe0) throw new InvalidError("invalid gzip header: reserved flags set");
  let off = 10;
  if (flg & FEXTRA) {
    if (b.length < off + 2) return -1;
    off += 2 + b.readUInt16LE(off);
    if (b.length < off) return -1;
  }
  for (const f of [FNAME, FCOMMENT]) {
    if (flg & f) {
      const z = b.indexOf(0, off);
      if (z < 0) {
        if (b.length - off > 1 << 20) throw new InvalidError("invalid gzip header: name or comment too long");
        return -1;
      }
      off = z + 1;
    }
  }
  if (flg & FHCRC) off += 2;
  void FTEXT;
  return b.length < off ? -1 : off;
}

export interface GunzipOptions {
  onWarning?: (msg: string) => void;
  maxOutputBytes?: number;
}

type State = "header" | "body" | "trailer" | "junk";

export class MultiGunzip extends Transform {
  private state: State = "header";
  private pending: Buffer = EMPTY;
  private inflater: zlib.InflateRaw | null = null;
  private inflaterEnded: Promise<void> = Promise.resolve();
  private inflaterError: Error | null = null;
  private crc = 0;
  private isize = 0;
  private members = 0;
  private seenInput = false;
  private junkBytes = 0;
  private junkNonZero = false;
  private out = 0;
  private readWaiter: (() => void) | null = null;
  private sinceGc = 0;

  constructor(private readonly opts: GunzipOptions = {}) {
    super({ readableHighWaterMark: MAX_WAITING_OUTPUT });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.process(chunk).then(() => cb(), (e) => cb(e as Error));
  }

  override _read(size: number): void {
    if (this.inflater?.isPaused()) this.inflater.resume();
    const w = this.readWaiter;
    this.readWaiter = null;
    w?.();
    super._read(size);
  }

  /** Wait until the reader has taken most of what is buffered. */
  private drained(): Promise<void> | undefined {
    if (this.readableLength < this.readableHighWaterMark) return undefined;
    return new Promise((resolve) => { this.readWaiter = resolve; });
  }

  override _flush(cb: TransformCallback): void {
    this.finishInput().then(() => cb(), (e) => cb(e as Error));
  }

  private async process(chunk: Buffer): Promise<void> {
    if (chunk.length) this.seenInput = true;
    while (chunk.length > 0) {
      switch (this.state) {
        case "header": {
          const b = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
          if (this.members > 0 && (b[0] !== 0x1f || (b.length > 1 && b[1] !== 0x8b))) {
            this.pending = EMPTY;
            this.state = "junk";
            chunk = b;
            break;
          }
          const n = parseGzipHeader(b);
          if (n < 0) {
            this.pending = Buffer.from(b);
            return;
          }
          this.pending = EMPTY;
          this.startMember();
          chunk = b.subarray(n);
          break;
        }
        case "body": {
          const wait = this.drained();
          if (wait) await wait;
          const slice = chunk.subarray(0, SLICE);
          const used = await this.feed(slice);
          if (used < slice.length) {
            await this.endMember();
            this.state = "trailer";
            chunk = chunk.subarray(used);
          } else chunk = chunk.subarray(slice.length);
          break;
        }
        case "trailer": {
          const b = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
          if (b.length < 8) {
            this.pending = Buffer.from(b);
            return;
          }
          this.pending = EMPTY;
          if (b.readUInt32LE(0) !== this.crc >>> 0) throw new InvalidError("corrupt gzip stream: crc32 mismatch");
          if (b.readUInt32LE(4) !== this.isize >>> 0) throw new InvalidError("corrupt gzip stream: length mismatch");
          this.members++;
          this.state = "header";
          chunk = b.subarray(8);
          break;
        }
        case "junk": {
          this.junkBytes += chunk.length;
          if (!this.junkNonZero) for (const c of chunk) if (c !== 0) { this.junkNonZero = true; break; }
          return;
        }
      }
    }
  }

  private startMember(): void {
    // (Each inflater holds native state until its handle is collected: see GC_EVERY.)
    const inf = zlib.createInflateRaw({ chunkSize: OUTPUT_CHUNK });
    this.inflater = inf;
    this.inflaterError = null;
    this.crc = 0;
    this.isize = 0;
    this.state = "body";
    inf.on("data", (d: Buffer) => {
      this.crc = zlib.crc32(d, this.crc);
      this.isize = (this.isize + d.length) % 0x100000000;
      this.out += d.length;
      this.sinceGc += d.length;
      if (this.sinceGc >= GC_EVERY) { this.sinceGc = 0; Bun.gc(true); }
      if (this.opts.maxOutputBytes !== undefined && this.out > this.opts.maxOutputBytes) {
        this.destroy(new InvalidError(`decompressed size exceeds limit ${this.opts.maxOutputBytes}`));
        inf.destroy();
        return;
      }
      // Backpressure: hold the inflater while our reader is behind (resumed by _read), so a
      // bomb's output cannot pile up here however big the input slice.
      if (!this.push(d)) inf.pause();
    });
    this.inflaterEnded = new Promise<void>((resolve) => {
      inf.once("end", resolve);
      inf.once("close", resolve);
      inf.on("error", (e) => {
        this.inflaterError ??= e;
        resolve();
      });
    });
  }

  /** Write a slice to the inflater; returns how many bytes it consumed (fewer: member ended). */
  private async feed(slice: Buffer): Promise<number> {
    const inf = this.inflater!;
    const before = inf.bytesWritten;
    // Bun's zlib never calls the write callback after an inflate error, so also stop waiting
    // when the inflater ends or fails (inflaterEnded resolves on "error" too).
    await Promise.race([
      new Promise<void>((resolve, reject) => {
        inf.write(slice, (err) => (err ? reject(err) : resolve()));
      }),
      this.inflaterEnded,
    ]).catch((e) => {
      throw this.corrupt(e);
    });
    if (this.inflaterError) throw this.corrupt(this.inflaterError);
    return inf.bytesWritten - before;
  }

  private async endMember(): Promise<void> {
    const inf = this.inflater!;
    inf.end();
    await this.inflaterEnded;
    if (this.inflaterError) throw this.corrupt(this.inflaterError);
    this.inflater = null;
  }

  private corrupt(e: unknown): Error {
    if (e instanceof InvalidError) return e;
    const msg = e instanceof Error ? e.message : String(e);
    return /unexpected end/i.test(msg)
      ? new InvalidError("truncated gzip stream", { cause: e })
      : new InvalidError(`corrupt gzip stream: ${msg.toLowerCase()}`, { cause: e });
  }

  private async finishInput(): Promise<void> {
    if (!this.seenInput) throw new InvalidError("truncated gzip stream: no data");
    switch (this.state) {
      case "header":
        if (this.pending.length === 0) return;
        if (this.members === 0 || this.pending[0] === 0x1f) throw new InvalidError("truncated gzip stream");
        this.junkBytes += this.pending.length;
        this.junkNonZero ||= this.pending.some((c) => c !== 0);
        break;
      case "body":
      case "trailer":
        if (this.inflater) {
          this.inflater.destroy();
          this.inflater = null;
        }
        throw new InvalidError("truncated gzip stream");
      case "junk":
        break;
    }
    if (this.junkBytes > 0 && this.junkNonZero) {
      this.opts.onWarning?.(`ignoring ${this.junkBytes} bytes of trailing data after gzip stream`);
    }
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    this.inflater?.destroy();
    cb(err);
  }
}
