/**
 * A bounded pool of worker threads for CPU-heavy work (sha256 of large files, gzip blocks).
 * Workers start lazily on first use and are unref'd, so a command that never uses the pool pays
 * nothing and an idle pool never keeps the process alive. Results come back in any order; each
 * call gets its own promise.
 */
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { inCompiledBinary } from "../util/binary";
import type { StreamMsg, StreamReply, Task, TaskResult } from "./tasks";

type Pending = { resolve: (r: TaskResult & { ok: true }) => void; reject: (e: Error) => void };
type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

export class WorkerPool {
  private workers: Worker[] = [];
  private idle: Worker[] = [];
  private queue: Array<{ task: Task; transfer: ArrayBuffer[] }> = [];
  private pending = new Map<number, Pending>();
  private busy = new Map<Worker, number>();
  /** Workers whose thread has started and can take a task at once (their "open" event came). */
  private started = new Set<Worker>();
  private nextId = 1;
  readonly size: number;
  /** How many of the workers hashStream() uses; 0: streams are hashed inline. */
  readonly streamWorkers: number;

  /**
   * `size` workers at most (default: BOCI_WORKERS, else the cores). Streamed hashes use
   * `streamWorkers` of them: by default all of them when the size was asked for (an argument,
   * BOCI_WORKERS), else only the cores beyond two (see defaultStreamWorkers).
   */
  constructor(size?: number, streamWorkers?: number) {
    this.size = Math.max(1, size ?? defaultPoolSize());
    const streams = streamWorkers ?? (size !== undefined ? this.size : defaultStreamWorkers(this.size));
    this.streamWorkers = this.size <= 1 ? 0 : Math.min(this.size, Math.max(0, streams));
  }

  private spawn(): Worker {
    const w = new Worker(workerURL());
    w.addEventListener("open", () => { this.started.add(w); });
    w.onmessage = (ev: MessageEvent<TaskResult | StreamReply>) => {
      const r = ev.data;
      if ("ack" in r) {
        // Kept for reuse, or freed now: nothing else holds it, and left to the collector it is
        // dead memory until the next collection.
        if (r.data.byteLength === BLOCK && freeBlocks.length < MAX_FREE_BLOCKS) freeBlocks.push(r.data);
        else r.data.transfer(0);
        this.streams.get(r.ack)?.acked(r.n);
        return;
      }
      if ("done" in r) {
        const s = this.streams.get(r.done);
        this.endStream(r.done, w);
        s?.finished(r.hex);
        return;
      }
      const p = this.pending.get(r.id);
      this.pending.delete(r.id);
      this.busy.delete(w);
      if (p) {
        if (r.ok) p.resolve(r);
        else p.reject(Object.assign(new Error(r.error), { code: r.code }));
      }
      this.dispatch(w);
    };
    w.onerror = (ev) => {
      const id = this.busy.get(w);
      if (id !== undefined) this.pending.get(id)?.reject(new Error(`worker failed: ${ev.message}`));
      for (const s of this.streams.values()) if (s.worker === w) s.fail(new Error(`worker failed: ${ev.message}`));
    };
    w.unref();
    this.workers.push(w);
    return w;
  }

  private dispatch(w: Worker): void {
    const next = this.queue.shift();
    if (!next) { this.idle.push(w); if (!this.hasStreams(w)) w.unref(); return; }
    w.ref();
    this.busy.set(w, next.task.id);
    w.postMessage(next.task, next.transfer);
  }

  private run(task: DistributiveOmit<Task, "id">, transfer: ArrayBuffer[] = []): Promise<TaskResult & { ok: true }> {
    const id = this.nextId++;
    const full = { ...task, id } as Task;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.queue.push({ task: full, transfer });
      const w = this.idle.pop() ?? (this.workers.length < this.size ? this.spawn() : undefined);
      if (w) this.dispatch(w);
    });
  }

  /**
   * Start every worker the pool may have (without a task), so that they are ready by the time
   * work comes: a worker takes ~20-25 ms to start its own runtime, on its own thread.
   */
  warm(): void {
    while (this.workers.length < this.size) this.idle.push(this.spawn());
  }

  /** Whether any worker has started yet. */
  get anyStarted(): boolean { return this.started.size > 0; }

  /** Workers spawned so far (started or not). */
  get workerCount(): number { return this.workers.length; }

  /** Open hash streams by id (a worker with one open stays ref'd). */
  private streams = new Map<number, PoolHasher>();
  private nextStream = 1;
  private rr = 0;

  private hasStreams(w: Worker): boolean {
    for (const s of this.streams.values()) if (s.worker === w) return true;
    return false;
  }

  private endStream(sid: number, w: Worker): void {
    this.streams.delete(sid);
    if (!this.busy.has(w) && !this.hasStreams(w)) w.unref();
  }

  /**
   * An incremental sha256 whose updates are copied (in blocks of 512 KiB) to one worker and
   * hashed there, so the caller's thread only copies. update() returns a promise when more than
   * a few MiB are waiting in the worker: await it to bound memory. With no stream workers
   * (see defaultStreamWorkers) the hash runs inline.
   */
  hashStream(): StreamHasher {
    if (this.streamWorkers === 0) return inlineHasher();
    const i = this.rr++ % this.streamWorkers;
    let w = this.workers[i];
    if (!w) { w = this.spawn(); this.idle.push(w); }
    w.ref();
    const sid = this.nextStream++;
    const h = new PoolHasher(sid, w, () => this.endStream(sid, w));
    this.streams.set(sid, h);
    return h;
  }

  /**
   * sha256 hex of a file's content, opened by path (the name not followed, a FIFO refused), read
   * and hashed in a worker.
   */
  async hashFile(path: string): Promise<string> {
    return (await this.run({ op: "hashFile", path })).hex!;
  }

  /**
   * sha256 hex of the content of the regular file `fd` is open on (opened safely by the caller,
   * e.g. rootfs/read.ts openRegularAt), read with pread from offset 0 and hashed in a worker. The
   * worker shares the descriptor table; `fd` must stay open until the promise settles.
   */
  async hashFd(fd: number): Promise<string> {
    return (await this.run({ op: "hashFd", fd })).hex!;
  }

  /** sha256 hex of bytes (copied to the worker). */
  async hashBytes(data: Uint8Array): Promise<string> {
    const ab = copyOut(data);
    return (await this.run({ op: "hashBytes", data: ab }, [ab])).hex!;
  }

  /**
   * The first `n` bytes of `block` as one complete gzip member (compress/gzip-block.ts), made in
   * a worker. `block` is transferred (detached here) and comes back as `back`, for reuse.
   */
  async gzipBlock(block: ArrayBuffer, n: number, level: number): Promise<{ member: Buffer; back: ArrayBuffer }> {
    const r = await this.run({ op: "gzipBlock", data: block, n, level }, [block]);
    return { member: Buffer.from(r.data!), back: r.back! };
  }

  terminate(): void {
    for (const w of this.workers) w.terminate();
    this.workers = [];
    this.idle = [];
    this.started.clear();
  }
}

/** An incremental sha256 (see WorkerPool.hashStream). */
export interface StreamHasher {
  /** Add bytes (copied before returning); a promise means "wait before sending more". */
  update(data: Uint8Array): Promise<void> | undefined;
  /** The hex digest of everything added. */
  digest(): Promise<string>;
  /** Drop the stream (after an error); digest() must not be called after. */
  abort(): void;
}

/** The same interface, hashing on the calling thread. */
export function inlineHasher(): StreamHasher {
  const h = new Bun.CryptoHasher("sha256");
  let closed = false;
  return {
    update(data) { h.update(data); return undefined; },
    digest() {
      if (closed) return Promise.reject(new Error("hash stream already finished"));
      closed = true;
      return Promise.resolve(h.digest("hex"));
    },
    abort() { closed = true; },
  };
}

const BLOCK = 512 << 10;
const MAX_IN_FLIGHT = 2 << 20;
/** Blocks the workers handed back, reused: new pages cost more than copying into warm ones. */
const freeBlocks: ArrayBuffer[] = [];
const MAX_FREE_BLOCKS = 8;

class PoolHasher implements StreamHasher {
  private buf: Uint8Array | null = null;
  private fill = 0;
  private inFlight = 0;
  private waiter: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private failed: Error | null = null;
  private closed = false;

  /** The digest's promise, settled by finished() or fail(). */
  private result: { resolve: (hex: string) => void; reject: (e: Error) => void } | null = null;

  constructor(
    private readonly sid: number,
    readonly worker: Worker,
    /** Called when the stream is dropped (abort); the pool ends it on the worker's reply otherwise. */
    private readonly onAbort: () => void,
  ) {}

  update(data: Uint8Array): Promise<void> | undefined {
    if (this.failed) return Promise.reject(this.failed);
    let off = 0;
    while (off < data.length) {
      if (!this.buf) { this.buf = new Uint8Array(freeBlocks.pop() ?? new ArrayBuffer(BLOCK)); this.fill = 0; }
      const n = Math.min(BLOCK - this.fill, data.length - off);
      this.buf.set(off === 0 && n === data.length ? data : data.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
      if (this.fill === BLOCK) this.flush();
    }
    if (this.inFlight < MAX_IN_FLIGHT) return undefined;
    return new Promise((resolve, reject) => { this.waiter = { resolve, reject }; });
  }

  private flush(): void {
    if (!this.buf || this.fill === 0) return;
    // The whole block goes (a partial one too: no copy), with the length to hash.
    const ab = this.buf.buffer as ArrayBuffer;
    this.inFlight += this.fill;
    this.worker.postMessage({ op: "hsUpdate", sid: this.sid, data: ab, n: this.fill } satisfies StreamMsg, [ab]);
    this.buf = null;
    this.fill = 0;
  }

  acked(n: number): void {
    this.inFlight -= n;
    if (this.waiter && this.inFlight < MAX_IN_FLIGHT) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve();
    }
  }

  /** The worker died: every wait on this stream (more room, the digest) fails now. */
  fail(e: Error): void {
    this.failed = e;
    const w = this.waiter;
    this.waiter = null;
    w?.reject(e);
    this.result?.reject(e);
    this.result = null;
  }

  /** The worker's digest for this stream. */
  finished(hex: string): void {
    this.result?.resolve(hex);
    this.result = null;
  }

  digest(): Promise<string> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.closed) return Promise.reject(new Error("hash stream already finished"));
    this.closed = true;
    this.flush();
    const p = new Promise<string>((resolve, reject) => { this.result = { resolve, reject }; });
    this.worker.postMessage({ op: "hsEnd", sid: this.sid } satisfies StreamMsg);
    return p;
  }

  abort(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.buf && freeBlocks.length < MAX_FREE_BLOCKS) freeBlocks.push(this.buf.buffer as ArrayBuffer);
    this.buf = null;
    this.worker.postMessage({ op: "hsAbort", sid: this.sid } satisfies StreamMsg);
    this.onAbort();
  }
}

/** A private copy of the bytes, safe to transfer (a Buffer may share a larger pooled ArrayBuffer). */
function copyOut(data: Uint8Array): ArrayBuffer {
  const ab = new ArrayBuffer(data.byteLength);
  new Uint8Array(ab).set(data);
  return ab;
}

export function defaultPoolSize(): number {
  const env = Number(process.env.BOCI_WORKERS);
  if (Number.isInteger(env) && env >= 0) return env;
  return availableParallelism();
}

/**
 * Workers the default pool uses for streamed hashes: all of them when BOCI_WORKERS sets the
 * size, else the cores beyond two. A streamed hash runs beside a pipeline that already keeps two
 * threads busy (the caller's, and the thread pool decompressing or writing), so on two cores a
 * worker only competes with them. Unpack of a 1 GiB layer, 2 cores: inline 7.5 s and 56.6 MiB
 * peak RSS, on two workers 8.0 s and 75.3 MiB (their VMs, the blocks in flight); worker/README.md.
 */
export function defaultStreamWorkers(size: number): number {
  const env = Number(process.env.BOCI_WORKERS);
  if (Number.isInteger(env) && env >= 0) return size;
  return Math.max(0, availableParallelism() - 2);
}

/** A worker entry (`name` in src/worker/): beside this file in a source checkout, embedded in a compiled binary. */
export function workerURL(name = "task.worker.ts"): string {
  // In a `bun build --compile` binary, files live under /$bunfs/root/ by their path relative to
  // the build root (scripts/build.ts passes --root .). An absolute path, so the current directory
  // does not matter.
  if (inCompiledBinary()) return `/$bunfs/root/src/worker/${name}`;
  return join(__dirname, name);
}

let shared: WorkerPool | null = null;
/** The process-wide pool (created on first use). */
export function getPool(): WorkerPool {
  shared ??= new WorkerPool();
  return shared;
}
