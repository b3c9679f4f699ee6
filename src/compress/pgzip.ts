/**
 * Parallel gzip (as pigz / pgzip): the input is cut into fixed-size blocks, each compressed as
 * an independent gzip member, and the members are concatenated in input order. The result is a
 * valid multi-member gzip stream (RFC 1952 §2.2) that any gunzip decodes to the same bytes.
 * Output is deterministic for a given block size, level and compressBlock.
 */
import { Transform, type TransformCallback } from "node:stream";
import * as zlib from "node:zlib";
import { availableParallelism } from "node:os";
import { markReleasable, release } from "../util/release";
import { collectGarbage } from "../util/heap";

/**
 * One gzip member on libuv's thread pool. A Gzip stream rather than zlib.gzip(): that one
 * concatenates its output into a fresh copy on this thread; with `chunkSize` at least the
 * deflate bound and Z_FINISH on the write, the stream yields the member as one chunk, handed on
 * as it is. (zlib's output depends on the output buffer size, so `chunkSize` is part of what
 * makes the bytes reproducible.)
 */
function gzipMember(block: Buffer, level: number, chunkSize: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // Z_FINISH on the one write: the whole member comes out of a single deflate call.
    const z = zlib.createGzip({ level, chunkSize, flush: zlib.constants.Z_FINISH });
    const out: Buffer[] = [];
    z.on("data", (d: Buffer) => out.push(d));
    z.on("error", reject);
    // The member's buffer is zlib's output buffer (or a concatenation): ours alone, freed by
    // whoever writes it out (util/release.ts).
    z.on("end", () => resolve(markReleasable(out.length === 1 ? out[0]! : Buffer.concat(out))));
    z.end(block);
  });
}

export interface ParallelGzipOptions {
  /** Uncompressed bytes per member (default 1 MiB). */
  blockSize?: number;
  /** gzip level for the default compressBlock (default 6). */
  level?: number;
  /** Blocks in flight at once (default: the number of cores, 2 to 4). */
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
  /** The block being filled, and how much of it is */
  private filling: Buffer | null = null;
  private partBytes = 0;
  /** blocks being compressed, in input order; `block` is set for a full block to recycle */
  private inflight: Array<{ out: Promise<Buffer>; block: Buffer | null }> = [];
  /** Block buffers of ours whose compression finished, reused (warm pages copy faster than new). */
  private free: Buffer[] = [];
  private blocks = 0;
  private readonly blockSize: number;
  private readonly concurrency: number;
  private readonly compress: (b: Buffer) => Promise<Buffer>;

  constructor(opts: ParallelGzipOptions) {
    super();
    this.blockSize = opts.blockSize ?? 1 << 20;
    // One block per core, 2 to 4 (node:zlib runs on libuv's pool of 4 threads); each block in
    // flight holds its input, its output and a deflate state.
    this.concurrency = Math.max(1, opts.concurrency ?? Math.min(4, Math.max(2, availableParallelism())));
    const level = opts.level ?? 6;
    // One output chunk per block: with node:zlib's 16 KiB default, every 16 KiB of output is a
    // round trip to this thread and the pieces are concatenated here (a third of the main
    // thread's time in a repack of new data). The bound is zlib's deflateBound plus the header.
    const chunkSize = this.blockSize + (this.blockSize >> 8) + 1024;
    this.compress = opts.compressBlock ?? ((b) => gzipMember(b, blockLevel(b, level), chunkSize));
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.addInput(chunk).then(() => cb(), (e) => cb(e as Error));
  }

  override _flush(cb: TransformCallback): void {
    (async () => {
      // Empty input still yields one (empty) member so the output is valid gzip.
      if (this.partBytes > 0 || this.blocks === 0) await this.submit((this.filling ?? Buffer.alloc(0)).subarray(0, this.partBytes));
      while (this.inflight.length) this.push(await this.next());
    })().then(() => cb(), (e) => cb(e as Error));
  }

  /**
   * Input is copied into blocks of our own (recycled), so an input chunk is never held past this
   * call: a releasable one (util/release.ts) is freed here.
   */
  private async addInput(input: Buffer): Promise<void> {
    let chunk = input;
    while (chunk.length > 0) {
      const block = (this.filling ??= this.free.pop() ?? Buffer.allocUnsafeSlow(this.blockSize));
      const n = Math.min(chunk.length, this.blockSize - this.partBytes);
      block.set(chunk.subarray(0, n), this.partBytes);
      this.partBytes += n;
      chunk = chunk.subarray(n);
      if (this.partBytes === this.blockSize) {
        this.filling = null;
        this.partBytes = 0;
        await this.submit(block, true);
      }
    }
    release(input);
  }

  /** The oldest block's output; its block (a full one) goes back to the free list. */
  private async next(): Promise<Buffer> {
    const { out, block } = this.inflight.shift()!;
    const r = await out;
    if (block) this.free.push(block);
    return r;
  }

  private async submit(block: Buffer, recycle = false): Promise<void> {
    this.blocks++;
    // Each zlib.gzip call holds native deflate state until its handle is garbage-collected;
    // collect now and then so a long stream does not pile them up (tens of MiB per 100 MiB).
    if ((this.blocks & 7) === 0) collectGarbage();
    const p = this.compress(block);
    p.catch(() => undefined); // observed when awaited in order
    this.inflight.push({ out: p, block: recycle ? block : null });
    while (this.inflight.length >= this.concurrency) this.push(await this.next());
  }
}

/** A Transform producing multi-member gzip from blocks compressed concurrently. */
export function createParallelGzip(opts: ParallelGzipOptions = {}): Transform {
  return new ParallelGzip(opts);
}
