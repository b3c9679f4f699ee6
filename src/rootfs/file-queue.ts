/**
 * Small regular files finished on a second thread. Unpacking many small files is system calls:
 * per file an openat, a write, a fchown, a futimens and a close, and a sha256 for the manifest.
 * The unpacking thread keeps what decides anything (the name is created with O_EXCL|O_NOFOLLOW
 * through its parent's descriptor, in tar order, so every later entry sees it); the rest goes
 * through the new descriptor, which only this inode has, so it can happen on another thread
 * without changing what any other entry sees: the body (copied into a shared ring), its digest,
 * the owner, the mode, the times, a statx of the result (the stat cache's key), the close. The
 * worker (worker/files.worker.ts) takes jobs in order and says how each ended; the caller's
 * `done` runs here, on the unpacking thread, when it has (poll, drain).
 *
 * What the caller must keep: nothing reads a queued file's contents or metadata until drain()
 * has returned (the applier drains at the end of each layer, before directory times settle and
 * before the manifest is read). A name may be removed or replaced meanwhile: the job goes on
 * with the inode it holds.
 *
 * Only where a second core is there: with one core, or BOCI_WORKERS below 2, files are made
 * on the calling thread as before (FileQueue.shared() returns null). Failure is one error for the first job
 * that failed, with the entry's name and the system call (as the inline path words it).
 */
import { BociError, addContext, isNoSpace } from "../errors";
import { SysError } from "../sys";
import { defaultPoolSize, workerURL } from "../worker/pool";
import {
  C_HEAD, C_READY, C_STOP, C_TAIL, C_WAITING, C_WANT, NO_WANT, CTRL_INTS, F_CHMOD, F_CHOWN, F_HASH, F_STAT, JOB_INTS, OP_NAMES, RES_INTS, STAT_FIELDS, STAT_NUMS, type FileStat, type Rings,
} from "./file-queue-layout";

/** Jobs in flight at most. */
const SLOTS = 256;
/** The body ring: bodies up to MAX_BODY are copied here (the pages are reused round and round). */
const DATA = 1 << 20;
/** Jobs waiting before a sleeping worker is woken (waiting for one wakes it at once). */
const WAKE_BATCH = 32;
/** How long a worker may take to start before the queue gives up on it. */
const START_TIMEOUT_MS = 30_000;
/** Larger bodies are written on the calling thread. */
export const MAX_BODY = 128 << 10;

export interface QueuedFile {
  fd: number;
  body: Uint8Array;
  /** host owner to set (root bundles), or null */
  owner: { uid: number; gid: number } | null;
  /** mode to set after the owner (the file was created with another), or -1 */
  mode: number;
  /** mtime and atime, seconds */
  mtime: number;
  hash: boolean;
  /** read the finished file's statx back (for the stat cache) */
  stat: boolean;
  /** the entry's name, for an error */
  name: string;
}

/** What a finished job gives its `done`: the digest (if asked), the statx numbers (if asked). */
export type FileDone = (sha: string | undefined, st: FileStat | undefined) => void;
interface Pending { done: FileDone; name: string }

/** A failure of a queued file: the message names its entry already. */
export class QueuedFileError extends BociError {}

class FilesWorker {
  readonly ctrl: Int32Array;
  readonly jobs: Int32Array;
  readonly times: Float64Array;
  readonly results: Int32Array;
  readonly digests: Uint8Array;
  readonly stats: Float64Array;
  readonly data: Uint8Array;
  private readonly worker: Worker;

  constructor() {
    const r: Rings = {
      ctrl: new SharedArrayBuffer(CTRL_INTS * 4),
      jobs: new SharedArrayBuffer(SLOTS * JOB_INTS * 4),
      times: new SharedArrayBuffer(SLOTS * 8),
      results: new SharedArrayBuffer(SLOTS * RES_INTS * 4),
      digests: new SharedArrayBuffer(SLOTS * 32),
      stats: new SharedArrayBuffer(SLOTS * STAT_NUMS * 8),
      data: new SharedArrayBuffer(DATA),
    };
    this.ctrl = new Int32Array(r.ctrl);
    Atomics.store(this.ctrl, C_WANT, NO_WANT);
    this.jobs = new Int32Array(r.jobs);
    this.times = new Float64Array(r.times);
    this.results = new Int32Array(r.results);
    this.digests = new Uint8Array(r.digests);
    this.stats = new Float64Array(r.stats);
    this.data = new Uint8Array(r.data);
    // (a small heap: the worker keeps almost nothing, and its garbage is collected as it goes)
    this.worker = new Worker(workerURL("files.worker.ts"), { smol: true });
    this.worker.unref();
    this.worker.postMessage(r);
  }

  stop(): void {
    Atomics.store(this.ctrl, C_STOP, 1);
    Atomics.notify(this.ctrl, C_HEAD);
    void this.worker.terminate();
  }
}

let shared: FilesWorker | null = null;
let queue: FileQueue | null | undefined;

export class FileQueue {
  private readonly w: FilesWorker;
  /** jobs pushed, jobs whose `done` has run (absolute counts) */
  private head: number;
  private done: number;
  /** the body ring: bytes allocated so far, and where the last finished job's body ended */
  private dataHead = 0;
  private dataTail = 0;
  private readonly dataEnd = new Float64Array(SLOTS);
  private readonly pending: Array<Pending | undefined> = new Array(SLOTS);
  private failed: Error | null = null;

  /**
   * The process's queue (one worker, one ring; its users take turns: an unpack applies one
   * layer at a time), or null where work is better done inline (one core, BOCI_WORKERS < 2).
   */
  static shared(): FileQueue | null {
    if (queue !== undefined) return queue;
    if (defaultPoolSize() < 2) return (queue = null);
    try {
      shared ??= new FilesWorker();
    } catch {
      return (queue = null); // no worker here (an embedded entry missing): inline
    }
    return (queue = new FileQueue(shared));
  }

  private constructor(w: FilesWorker) {
    this.w = w;
    this.head = this.done = Atomics.load(w.ctrl, C_TAIL);
    Atomics.store(w.ctrl, C_HEAD, this.head);
  }

  /**
   * Hand over a file just created: from here its descriptor is the queue's (closed by the worker,
   * whatever happens). `done(sha)` runs on this thread once it is written and closed. Throws
   * (before taking the descriptor) an earlier job's failure.
   */
  push(f: QueuedFile, done: FileDone): void {
    if (this.failed) throw this.failed;
    const len = f.body.length;
    if (len > MAX_BODY) throw new RangeError(`file queue: body of ${len} bytes`);
    // A full ring waits until the worker has finished half of what is in it: a wait per job
    // would wake this thread (and make the worker wake it) once per file.
    if (this.head - this.done >= SLOTS) this.waitHalf();
    let start = this.dataHead;
    const pos = start % DATA;
    if (pos + len > DATA) start += DATA - pos;
    // (the ring is free from where the last finished job's body ended)
    if (this.head > this.done && start + len - this.dataTail > DATA) {
      this.waitHalf();
      while (this.head > this.done && start + len - this.dataTail > DATA) this.waitOne();
    }
    const off = start % DATA;
    const w = this.w;
    const slot = this.head % SLOTS;
    if (len) w.data.set(f.body, off);
    const j = slot * JOB_INTS;
    w.jobs[j] = f.fd;
    w.jobs[j + 1] = off;
    w.jobs[j + 2] = len;
    w.jobs[j + 3] = f.owner ? f.owner.uid | 0 : 0;
    w.jobs[j + 4] = f.owner ? f.owner.gid | 0 : 0;
    w.jobs[j + 5] = f.mode;
    w.jobs[j + 6] = (f.hash ? F_HASH : 0) | (f.owner ? F_CHOWN : 0) | (f.mode >= 0 ? F_CHMOD : 0) | (f.stat ? F_STAT : 0);
    w.times[slot] = f.mtime;
    this.dataEnd[slot] = start + len;
    this.dataHead = start + len;
    this.pending[slot] = { done, name: f.name };
    this.head++;
    Atomics.store(w.ctrl, C_HEAD, this.head);
    // A sleeping worker is woken once a batch is waiting (a wake-up is a system call each side).
    if (this.head - Atomics.load(w.ctrl, C_TAIL) >= WAKE_BATCH) this.wake();
    // (never throws from here on: the descriptor is the worker's now)
    this.collect();
  }

  /** Run `done` for every job finished so far; throws the first failure. */
  poll(): void {
    this.collect();
    if (this.failed) throw this.failed;
  }

  private collect(): void {
    const tail = Atomics.load(this.w.ctrl, C_TAIL);
    while (this.done < tail) this.finishOne();
  }

  /** Wait for every job; throws the first failure. */
  drain(): void {
    if (this.done < this.head) { this.waitFor(this.head); this.collect(); }
    if (this.failed) throw this.failed;
  }

  /**
   * Wait for every job (so every descriptor is closed), dropping their `done`, and forget any
   * failure: the queue is ready for the next user. No throw.
   */
  close(): void {
    this.closing = true;
    try {
      if (this.done < this.head) { this.waitFor(this.head); this.collect(); }
    } catch { /* a worker that never started: nothing of ours is open there */ } finally {
      this.closing = false;
      this.failed = null;
    }
  }
  private closing = false;

  private wake(): void {
    if (Atomics.load(this.w.ctrl, C_WAITING)) Atomics.notify(this.w.ctrl, C_HEAD);
  }

  private waitOne(): void {
    this.waitFor(this.done + 1);
    this.finishOne();
  }

  /** Wait until half the jobs in the ring are finished (at least one), and collect them. */
  private waitHalf(): void {
    this.waitFor(this.done + Math.max(1, (this.head - this.done) >> 1));
    this.collect();
  }

  /** Sleep until the worker's tail reaches `target` (≤ head). */
  private waitFor(target: number): void {
    this.wake();
    const ctrl = this.w.ctrl;
    const since = performance.now();
    Atomics.store(ctrl, C_WANT, target);
    try {
      for (;;) {
        const tail = Atomics.load(ctrl, C_TAIL);
        if (tail >= target) break;
        Atomics.wait(ctrl, C_TAIL, tail, 1000);
        // (a worker that never started cannot say so while this thread waits: give up on it)
        if (!Atomics.load(ctrl, C_READY) && performance.now() - since > START_TIMEOUT_MS) {
          throw new BociError(`unpack: the file-writing thread did not start in ${START_TIMEOUT_MS / 1000} s (BOCI_WORKERS=1 makes files on this thread)`);
        }
      }
    } finally {
      Atomics.store(ctrl, C_WANT, NO_WANT);
    }
  }

  private finishOne(): void {
    const w = this.w;
    const slot = this.done % SLOTS;
    const p = this.pending[slot]!;
    this.pending[slot] = undefined;
    this.done++;
    this.dataTail = this.dataEnd[slot]!;
    const errno = w.results[slot * RES_INTS]!;
    if (errno !== 0) {
      if (!this.failed) {
        // Worded as the applier words an entry's error (addContext). A full disk is worded by the
        // command, which knows what was being written: no descriptor number then.
        const op = OP_NAMES[w.results[slot * RES_INTS + 1]!] ?? "write";
        const e = new SysError(op, errno, `fd ${w.jobs[slot * JOB_INTS]!}`);
        const cause = isNoSpace(e) ? new SysError(op, errno, "") : e;
        const err = addContext(`apply ${JSON.stringify(p.name)}`, cause) as BociError;
        this.failed = new QueuedFileError(err.message, { code: err.code, exitCode: err.exitCode, cause });
      }
      return;
    }
    if (this.failed || this.closing) return;
    const flags = w.jobs[slot * JOB_INTS + 6]!;
    let st: FileStat | undefined;
    if (flags & F_STAT) {
      st = {} as FileStat;
      for (let k = 0; k < STAT_NUMS; k++) st[STAT_FIELDS[k]!] = w.stats[slot * STAT_NUMS + k]!;
    }
    try {
      p.done(flags & F_HASH ? Buffer.from(w.digests.subarray(slot * 32, slot * 32 + 32)).toString("hex") : undefined, st);
    } catch (e) {
      this.failed = e instanceof Error ? e : new Error(String(e));
    }
  }
}

/** Stop the worker (tests; a process exits without it). */
export function stopFileWorker(): void {
  queue?.close();
  shared?.stop();
  shared = null;
  queue = undefined;
}
