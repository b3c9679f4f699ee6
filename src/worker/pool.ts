/**
 * A bounded pool of worker threads for CPU-heavy work (sha256 of large files, gzip blocks).
 * Workers start lazily on first use and are unref'd, so a command that never uses the pool pays
 * nothing and an idle pool never keeps the process alive. Results come back in any order; each
 * call gets its own promise.
 */
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type { Task, TaskResult } from "./tasks";

type Pending = { resolve: (r: TaskResult & { ok: true }) => void; reject: (e: Error) => void };
type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

export class WorkerPool {
  private workers: Worker[] = [];
  private idle: Worker[] = [];
  private queue: Array<{ task: Task; transfer: ArrayBuffer[] }> = [];
  private pending = new Map<number, Pending>();
  private busy = new Map<Worker, number>();
  private nextId = 1;
  readonly size: number;

  constructor(size = defaultPoolSize()) {
    this.size = Math.max(1, size);
  }

  private spawn(): Worker {
    const w = new Worker(workerURL());
    w.onmessage = (ev: MessageEvent<TaskResult>) => {
      const r = ev.data;
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
    };
    w.unref();
    this.workers.push(w);
    return w;
  }

  private dispatch(w: Worker): void {
    const next = this.queue.shift();
    if (!next) { this.idle.push(w); w.unref(); return; }
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

  /** sha256 hex of a file's content, read and hashed in a worker. */
  async hashFile(path: string): Promise<string> {
    return (await this.run({ op: "hashFile", path })).hex!;
  }

  /** sha256 hex of bytes (copied to the worker). */
  async hashBytes(data: Uint8Array): Promise<string> {
    const ab = copyOut(data);
    return (await this.run({ op: "hashBytes", data: ab }, [ab])).hex!;
  }

  /** One complete gzip member of `data`. */
  async gzip(data: Uint8Array, level = 6): Promise<Buffer> {
    const ab = copyOut(data);
    const r = await this.run({ op: "gzip", data: ab, level }, [ab]);
    return Buffer.from(r.data!);
  }

  terminate(): void {
    for (const w of this.workers) w.terminate();
    this.workers = [];
    this.idle = [];
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

/** The worker entry: beside this file in a source checkout, embedded in a compiled binary. */
function workerURL(): string {
  // In a `bun build --compile` binary, files live under /$bunfs/root/ by their path relative to
  // the build root (scripts/build.ts passes --root .). An absolute path, so the current directory
  // does not matter. (No import.meta: the binary is built as CommonJS.)
  if ((process.argv[1] ?? "").startsWith("/$bunfs/") || __filename.startsWith("/$bunfs/")) return "/$bunfs/root/src/worker/task.worker.ts";
  return join(__dirname, "task.worker.ts");
}

let shared: WorkerPool | null = null;
/** The process-wide pool (created on first use). */
export function getPool(): WorkerPool {
  shared ??= new WorkerPool();
  return shared;
}
