/**
 * Parallel gzip (as pigz / pgzip): the input is cut into fixed-size blocks, each compressed as
 * an independent gzip member, and the members are concatenated in input order. The result is a
 * valid multi-member gzip stream (RFC 1952 §2.2) that any gunzip decodes to the same bytes.
 * Output is deterministic for a given block size, level and compressBlock.
 *
 * Blocks are compressed with libdeflate (gzip-block.ts) on the worker pool: each block's
 * ArrayBuffer is transferred to a worker and comes back with its member, so a block is never
 * copied twice. With a pool of one (one core, BOCI_WORKERS=0 or 1) blocks are compressed on
 * this thread: a single worker would only add the hand-over.
 *
 * A worker takes ~20-25 ms to start its runtime, as long as several blocks take to compress, so
 * the pool is only woken by the first full block (a stream shorter than one block never starts
 * a worker), and until one of its workers has started, blocks are compressed here instead of
 * waiting in its queue. Where a block is compressed does not change its member.
 */
import { markReleasable, release } from "../util/release";
import { getPool, type WorkerPool } from "../worker/pool";
import { DEFAULT_GZIP_LEVEL, gzipBlock } from "./gzip-block";

export interface ParallelGzipOptions {
  /** Uncompressed bytes per member (default 1 MiB). */
  blockSize?: number;
  /** gzip level (default DEFAULT_GZIP_LEVEL, libdeflate's 2). */
  level?: number;
  /** The pool blocks go to (default: the process's pool). */
  pool?: WorkerPool;
  /**
   * The stream's length, when the caller knows it (roughly: a tar's content plus its headers).
   * Then the pool is woken only once what is left would take WAKE_WORTH_MS or more to compress
   * here, at the pace of the blocks compressed so far (workers another task already started are
   * used anyway). Unknown: the first full block wakes it.
   */
  expectedBytes?: number;
  /** Compress one block into one complete gzip member instead (tests); run one at a time per block, in order. */
  compressBlock?: (block: Buffer) => Promise<Buffer>;
}

type Done = { member: Buffer; back: ArrayBuffer | null };

/**
 * Compression work left, at this thread's pace, below which the pool is not woken for a stream
 * of known length: two workers' start-up (~20 ms to the first block, their runtimes on the
 * same two cores) costs more than they save on less. Measured with insert, 2 cores, tmpfs,
 * alternating, medians of 8-12 (with the pool / inline): the bench's mixed 10 MiB file (~4.5 ms
 * a block) 168 / 142 ms, 16 MiB 192 / 184, 24 MiB 234 / 255; base64 text (~14 ms a block) 2 MB
 * 131 / 122, 5.4 MB 173 / 179, 10 MB 210 / 261. Work left after the first block at the
 * crossovers: ~60-70 ms. A rule by bytes alone (16 MiB) made the 10 MB of text 24 % slower.
 */
export const WAKE_WORTH_MS = 80;

class ParallelGzip {
  /** The block being filled (an ArrayBuffer of blockSize), and how much of it is */
  private filling: Uint8Array | null = null;
  private partBytes = 0;
  /** blocks being compressed, in input order */
  private inflight: Array<{ p?: Promise<Done>; done?: Done }> = [];
  /** Block buffers back from compression, reused (warm pages copy faster than new ones). */
  private free: ArrayBuffer[] = [];
  private blocks = 0;
  /** members done, in order, not yet handed out */
  private ready: Buffer[] = [];
  private readonly blockSize: number;
  private readonly level: number;
  private readonly concurrency: number;
  private readonly pool: WorkerPool | null;
  private readonly custom: ((b: Buffer) => Promise<Buffer>) | undefined;
  /** ParallelGzipOptions.expectedBytes */
  private readonly expected: number | undefined;
  /** the time the full blocks compressed here took (every block so far, while no worker has started) */
  private inlineMs = 0;

  constructor(opts: ParallelGzipOptions) {
    this.expected = opts.expectedBytes;
    this.blockSize = opts.blockSize ?? 1 << 20;
    this.level = opts.level ?? DEFAULT_GZIP_LEVEL;
    this.custom = opts.compressBlock;
    const pool = opts.pool ?? getPool();
    this.pool = this.custom || pool.size <= 1 ? null : pool;
    // Every worker busy plus one block filling here; inline, one at a time.
    this.concurrency = this.custom ? 4 : this.pool ? this.pool.size + 1 : 1;
  }

  async *run(src: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer, void, undefined> {
    for await (const chunk of src) {
      await this.addInput(chunk);
      while (this.ready.length) yield this.ready.shift()!;
    }
    // Empty input still yields one (empty) member so the output is valid gzip.
    if (this.partBytes > 0 || this.blocks === 0) {
      const block = this.filling ?? new Uint8Array(0);
      const n = this.partBytes;
      this.filling = null;
      this.partBytes = 0;
      await this.submit(block, n);
    }
    while (this.ready.length) yield this.ready.shift()!;
    while (this.inflight.length) yield await this.next();
  }

  /**
   * Input is copied into blocks of our own (recycled), so an input chunk is never held past this
   * call: a releasable one (util/release.ts) is freed here.
   */
  private async addInput(input: Uint8Array): Promise<void> {
    let chunk: Uint8Array = input;
    while (chunk.length > 0) {
      const block = (this.filling ??= new Uint8Array(this.free.pop() ?? new ArrayBuffer(this.blockSize)));
      const n = Math.min(chunk.length, this.blockSize - this.partBytes);
      block.set(n === chunk.length ? chunk : chunk.subarray(0, n), this.partBytes);
      this.partBytes += n;
      chunk = chunk.subarray(n);
      if (this.partBytes === this.blockSize) {
        this.filling = null;
        this.partBytes = 0;
        await this.submit(block, this.blockSize);
      }
    }
    release(input);
  }

  /** The oldest block's member; its buffer goes back to the free list. */
  private async next(): Promise<Buffer> {
    const f = this.inflight.shift()!;
    return this.handOut(f.done ?? await f.p!);
  }

  private handOut({ member, back }: Done): Buffer {
    if (back && back.byteLength === this.blockSize && this.free.length < this.concurrency) this.free.push(back);
    // A member that is its whole buffer is ours alone, freed by whoever writes it out (util/release.ts).
    return member.byteOffset === 0 && member.byteLength === member.buffer.byteLength ? markReleasable(member) : member;
  }

  private async submit(block: Uint8Array, n: number): Promise<void> {
    this.blocks++;
    const r = this.compress(block, n);
    if (r instanceof Promise) {
      r.catch(() => undefined); // observed when awaited in order
      this.inflight.push({ p: r });
    } else this.inflight.push({ done: r });
    // A block compressed here is done at once: what is done at the head goes out now, so its
    // member is written and freed, and its block reused, before the next one (held back behind
    // the concurrency bound, they cost fresh pages: 10 MiB inline on a pool of two, not woken,
    // took 172 ms against 142 ms on a pool of one).
    while (this.inflight.length && this.inflight[0]!.done) this.ready.push(this.handOut(this.inflight.shift()!.done!));
    while (this.inflight.length >= this.concurrency) this.ready.push(await this.next());
  }

  private compress(block: Uint8Array, n: number): Promise<Done> | Done {
    if (this.custom) {
      const b = Buffer.from(block.buffer, block.byteOffset, n);
      return this.custom(b).then((member) => ({ member, back: null }));
    }
    if (this.pool && n > 0) {
      if (this.pool.anyStarted) return this.pool.gzipBlock(block.buffer as ArrayBuffer, n, this.level);
      if (n === this.blockSize && this.expected === undefined) this.pool.warm();
    }
    const t0 = performance.now();
    const out = gzipBlock(block.subarray(0, n), this.level);
    if (this.pool && n === this.blockSize && this.expected !== undefined) {
      // (known length: wake the pool once the work left here is worth it, at the pace so far)
      // (until a worker has started every block is compressed here: `blocks` of them so far)
      this.inlineMs += performance.now() - t0;
      const blocksLeft = Math.max(0, this.expected - this.blocks * this.blockSize) / this.blockSize;
      if (blocksLeft * (this.inlineMs / this.blocks) >= WAKE_WORTH_MS) this.pool.warm();
    }
    return { member: Buffer.from(out.buffer, out.byteOffset, out.byteLength), back: block.buffer as ArrayBuffer };
  }
}

/**
 * `src` as multi-member gzip, from blocks compressed concurrently: the members in input order.
 * (An async generator, not a node:stream Transform: loading node:stream costs a short command
 * ~5 ms of its start-up.)
 */
export function parallelGzip(src: AsyncIterable<Uint8Array>, opts: ParallelGzipOptions = {}): AsyncGenerator<Buffer, void, undefined> {
  return new ParallelGzip(opts).run(src);
}
