/** Messages between the pool and its workers. */
export type Task =
  | { id: number; op: "hashFile"; path: string }
  /** a descriptor the main thread opened (workers share the process's descriptor table); read with pread, left open */
  | { id: number; op: "hashFd"; fd: number }
  | { id: number; op: "hashBytes"; data: ArrayBuffer }
  /** the first `n` bytes of `data` as one gzip member (compress/gzip-block.ts); `data` comes back as `back` */
  | { id: number; op: "gzipBlock"; data: ArrayBuffer; n: number; level: number };

/** Streaming sha256, pinned to one worker: updates (acknowledged by byte count), then the digest. */
export type StreamMsg =
  | { op: "hsUpdate"; sid: number; data: ArrayBuffer; n: number }
  | { op: "hsEnd"; sid: number }
  | { op: "hsAbort"; sid: number };

export type StreamReply =
  | { ack: number; n: number; data: ArrayBuffer }
  | { done: number; hex: string };

export type TaskResult =
  | { id: number; ok: true; hex?: string; data?: ArrayBuffer; back?: ArrayBuffer }
  | { id: number; ok: false; error: string; code?: string };
