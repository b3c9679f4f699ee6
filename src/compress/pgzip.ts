/**
 * Parallel gzip (as pigz / pgzip): the input is cut into fixed-size blocks, each compressed as
 * an independent gzip member, and the members are concatenated in input order. The result is a
 * valid multi-member gzip stream (RFC 1952 §2.2) that any gunzip decodes to the same bytes.
 * Output is deterministic for a given block size, level and compressBlock.
 */
import { Transform, type TransformCallback } from "node:stream";
import { promisify } from "node:util";
import * as zlib from "node:zlib";

const gzipAsync = promisify(zlib.gzip) as (b: Buffer, o: zlib.ZlibOptions) => Promise<Buffer>;

export interface ParallelGzipOptions {
  /** Uncompressed bytes per member (default 1 MiB). */
  blockSize?: number;
  /** gzip level for the default compressBlock (default 6). */
  level?: number;
  /** Blocks in flight at once (default 4). */
  concurrency?: number;
  /** Compress one block into one complete gzip member; default: zlib.gzip on the libuv pool. */
  compressBlock?: (block: Buffer) => Promise<Buffer>;
}

/**
 * The level for one block: `level`, unless a quick level-1 probe of its first 64 KiB shows the
 * data does not compress (already compressed or random bytes), in which case it is stored
 * (level 0). Deflating such data at level 6 costs a lot of CPU (about 25 MB/s a core here) to
 * save nothing. The choice depends only on the block's bytes, so output stays deterministic.
 */
export function blockLevel(block: Buffer, level: number): number {
  if (level === 0 || block.length < 4096) return level;
  const sample = block.subarray(0, 65536);
  const probe = zlib.deflateRawSync(sample, { level: 1 });
  return probe.length >= sample.length * 0.97 ? 0 : level;
}

class ParallelGzip extends Transform {
  private parts: Buffer[] = [];
  private partBytes = 0;
  private inflight: Promise<Buffer>[] = [];
  private blocks = 0;
  private readonly blockSize: number;
  private readonly concurrency: number;
  private readonly compress: (b: Buffer) => Promise<Buffer>;

  constructor(opts: ParallelGzipOptions) {
    super();
    this.blockSize = opts.blockSize ?? 1 << 20;
    this.concurrency = Math.max(1, opts.concurrency ?? 4);
    const level = opts.level ?? 6;
    this.compress = opts.compressBlock ?? ((b) => gzipAsync(b, { level: blockLevel(b, level) }));
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.addInput(chunk).then(() => cb(), (e) => cb(e as Error));
  }

  override _flush(cb: TransformCallback): void {
    (async () => {
      // Empty input still yields one (empty) member so the output is valid gzip.
      if (this.partBytes > 0 || this.blocks === 0) await this.submit(Buffer.concat(this.parts, this.partBytes));
      while (this.inflight.length) this.push(await this.inflight.shift()!);
    })().then(() => cb(), (e) => cb(e as Error));
  }

  private async addInput(chunk: Buffer): Promise<void> {
    while (chunk.length > 0) {
      const n = Math.min(chunk.length, this.blockSize - this.partBytes);
      this.parts.push(chunk.subarray(0, n));
      this.partBytes += n;
      chunk = chunk.subarray(n);
      if (this.partBytes === this.blockSize) {
        const block = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partBytes);
        this.parts = [];
        this.partBytes = 0;
        await this.submit(block);
      }
    }
  }

  private async submit(block: Buffer): Promise<void> {
    this.blocks++;
    // Each zlib.gzip call holds native deflate state until its handle is garbage-collected;
    // collect now and then so a long stream does not pile them up (tens of MiB per 100 MiB).
    if ((this.blocks & 15) === 0) Bun.gc(true);
    const p = this.compress(block);
    p.catch(() => undefined); // observed when awaited in order
    this.inflight.push(p);
    while (this.inflight.length >= this.concurrency) this.push(await this.inflight.shift()!);
  }
}

/** A Transform producing multi-member gzip from blocks compressed concurrently. */
export function createParallelGzip(opts: ParallelGzipOptions = {}): Transform {
  return new ParallelGzip(opts);
}
