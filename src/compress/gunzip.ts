/**
 * Multi-member gzip decoder (RFC 1952) that tolerates trailing junk after the last member.
 *
 * node:zlib's Gunzip decodes concatenated members but fails on trailing junk, and when the junk
 * shares a write with the end of the last member, the tail of the output is lost with the error.
 * So the framing (header, CRC32/ISIZE trailer) is parsed here, and the deflate data of every
 * member goes through one raw inflater (inflate.ts), reset between members; how much input a
 * call consumed tells where a member's deflate data ended.
 */
import { Transform, type TransformCallback } from "node:stream";
import * as zlib from "node:zlib";
import { InvalidError } from "../errors";
import { markReleasable, release } from "../util/release";
import { GcBudget } from "../util/heap";
import { RawInflater } from "./inflate";

const EMPTY = Buffer.alloc(0);
/**
 * Output buffer size: one inflate call (a round trip to the thread pool) fills at most one.
 * node:zlib's 16 KiB default made Bun decode 3x slower.
 */
export const OUTPUT_CHUNK = 256 * 1024;
/**
 * Decoded output that may wait for the reader before the next inflate call waits too
 * (backpressure). At most this plus one output buffer is ever held here.
 */
export const MAX_WAITING_OUTPUT = 1 << 20;
/** A partial output buffer with less than this in it is handed on as a copy, and the buffer kept. */
const SMALL_PARTIAL = 64 * 1024;
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
  /** Free each input chunk its producer marked releasable once it is decoded (util/release.ts). */
  releaseInput?: boolean;
  /**
   * Every output chunk owns its whole ArrayBuffer and is marked releasable: the reader frees
   * what it is done with (util/release.ts), so the decoder never forces a collection.
   */
  releasable?: boolean;
}

type State = "header" | "body" | "trailer" | "junk";

export class MultiGunzip extends Transform {
  private state: State = "header";
  private pending: Buffer = EMPTY;
  private inflater: RawInflater | null = null;
  private crc = 0;
  private isize = 0;
  private members = 0;
  private seenInput = false;
  private junkBytes = 0;
  private junkNonZero = false;
  private total = 0;
  /** The output buffer being filled, and how much of it is. */
  private out: Buffer | null = null;
  private outOff = 0;
  private readWaiter: (() => void) | null = null;
  private readonly gc = new GcBudget();

  constructor(private readonly opts: GunzipOptions = {}) {
    super({ readableHighWaterMark: MAX_WAITING_OUTPUT });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.process(chunk).then(() => {
      if (this.opts.releaseInput) release(chunk);
      // (a freed chunk's buffer is detached: length 0)
      if (chunk.buffer.byteLength !== 0) this.gc.add(chunk.length);
      cb();
    }, (e) => cb(e as Error));
  }

  override _read(size: number): void {
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
    this.finishInput().then(() => { this.closeInflater(); cb(); }, (e) => cb(e as Error));
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
          const used = await this.inflate(chunk);
          if (used < 0) return; // all of it taken, the member goes on
          this.state = "trailer";
          chunk = chunk.subarray(used);
          break;
        }
        case "trailer": {
          // (a trailer split between chunks: only its 8 bytes are joined)
          const take = Math.min(chunk.length, 8 - this.pending.length);
          const b = this.pending.length ? Buffer.concat([this.pending, chunk.subarray(0, take)]) : chunk;
          if (b.length < 8) {
            this.pending = Buffer.from(b);
            return;
          }
          if (b.readUInt32LE(0) !== this.crc >>> 0) throw new InvalidError("corrupt gzip stream: crc32 mismatch");
          if (b.readUInt32LE(4) !== this.isize >>> 0) throw new InvalidError("corrupt gzip stream: length mismatch");
          chunk = this.pending.length ? chunk.subarray(take) : chunk.subarray(8);
          this.pending = EMPTY;
          this.members++;
          this.state = "header";
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
    if (this.inflater) this.inflater.reset();
    else this.inflater = new RawInflater();
    this.crc = 0;
    this.isize = 0;
    this.state = "body";
  }

  /**
   * Inflate `input` of the current member, an output buffer per call. Returns how much of it
   * the member's deflate data took when the member ended in it, -1 when all was taken and the
   * member goes on (a member that ends exactly at the end of `input` is found on the next call:
   * it takes nothing more).
   */
  private async inflate(input: Buffer): Promise<number> {
    const inf = this.inflater!;
    let off = 0;
    for (;;) {
      const wait = this.drained();
      if (wait) await wait;
      if (this.destroyed) throw new InvalidError("gzip stream destroyed");
      const out = (this.out ??= Buffer.allocUnsafeSlow(OUTPUT_CHUNK));
      const space = out.length - this.outOff;
      const r = await inf.run(input, off, input.length - off, out, this.outOff, space).catch((e) => {
        throw this.corrupt(e);
      });
      off = input.length - r.availIn;
      const produced = space - r.availOut;
      if (produced > 0) this.handOn(produced, r.availOut === 0);
      // A full buffer: there may be more output for the input already taken.
      if (r.availOut === 0) continue;
      return r.availIn > 0 ? off : -1;
    }
  }

  /** Hand on `n` bytes just written at outOff (`full`: the buffer is full). */
  private handOn(n: number, full: boolean): void {
    const out = this.out!;
    const d = out.subarray(this.outOff, this.outOff + n);
    this.crc = zlib.crc32(d, this.crc);
    this.isize = (this.isize + n) % 0x100000000;
    this.total += n;
    if (this.opts.maxOutputBytes !== undefined && this.total > this.opts.maxOutputBytes) {
      throw new InvalidError(`decompressed size exceeds limit ${this.opts.maxOutputBytes}`);
    }
    if (this.opts.releasable) {
      // Each chunk its own buffer: a small one is copied and the buffer filled again.
      if (!full && n < SMALL_PARTIAL) {
        const copy = Buffer.allocUnsafeSlow(n); // never a pooled slab: it is freed whole
        copy.set(d);
        this.push(markReleasable(copy));
        return;
      }
      this.out = null;
      this.outOff = 0;
      this.push(markReleasable(d));
      return;
    }
    this.push(d);
    if (full) {
      this.out = null;
      this.outOff = 0;
    } else this.outOff += n;
    this.gc.add(n);
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
        throw new InvalidError("truncated gzip stream");
      case "junk":
        break;
    }
    if (this.junkBytes > 0 && this.junkNonZero) {
      this.opts.onWarning?.(`ignoring ${this.junkBytes} bytes of trailing data after gzip stream`);
    }
  }

  private closeInflater(): void {
    this.inflater?.close();
    this.inflater = null;
    this.out = null;
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    this.closeInflater();
    const w = this.readWaiter;
    this.readWaiter = null;
    w?.();
    cb(err);
  }
}
