/**
 * The shared memory between rootfs/file-queue.ts (the unpacking thread) and
 * worker/files.worker.ts (the thread that finishes small files). Constants only, so the worker
 * loads nothing else of the main side.
 */

/** The buffers, as the worker receives them (all SharedArrayBuffers). */
export interface Rings {
  /** Int32 control words (C_*) */
  ctrl: SharedArrayBuffer;
  /** JOB_INTS Int32 per slot: fd, body offset, body length, uid, gid, mode, flags, unused */
  jobs: SharedArrayBuffer;
  /** one Float64 per slot: the mtime (seconds, may be fractional), also the atime */
  times: SharedArrayBuffer;
  /** RES_INTS Int32 per slot: errno (0: done), the step that failed (OP_*) */
  results: SharedArrayBuffer;
  /** 32 bytes per slot: the body's sha256 when F_HASH was asked */
  digests: SharedArrayBuffer;
  /** STAT_NUMS Float64 per slot: the finished file's statx (F_STAT), in STAT_FIELDS order */
  stats: SharedArrayBuffer;
  /** the body ring */
  data: SharedArrayBuffer;
}

/** jobs published (written by the producer only) */
export const C_HEAD = 0;
/** jobs done (written by the worker only) */
export const C_TAIL = 1;
/** the worker is (about to be) asleep on C_HEAD: notify it */
export const C_WAITING = 2;
/** set once: the worker leaves its loop */
export const C_STOP = 3;
/** set by the worker once it serves jobs */
export const C_READY = 4;
/**
 * The producer sleeps on C_TAIL until it reaches this count: the worker notifies only once its
 * tail gets there (NO_WANT: nobody waits), so a producer that waits for half the ring is woken
 * once, not once per job (each wake-up is a system call on both threads).
 */
export const C_WANT = 5;
export const CTRL_INTS = 6;
/** C_WANT when the producer is not waiting */
export const NO_WANT = 0x7fffffff;

export const JOB_INTS = 8;
export const RES_INTS = 2;

export const F_HASH = 1;
export const F_CHOWN = 2;
export const F_CHMOD = 4;
/** statx the file once it is finished (the unpack's stat cache key) */
export const F_STAT = 8;

/** What a job's statx gives back (the fields a stat cache key is made of). */
export const STAT_FIELDS = ["devMajor", "devMinor", "ino", "size", "mtimeSec", "mtimeNsec", "ctimeSec", "ctimeNsec"] as const;
export const STAT_NUMS = STAT_FIELDS.length;
export type FileStat = Record<(typeof STAT_FIELDS)[number], number>;

/** The step of a job that failed (for the error message: the system call's name). */
export const OP_WRITE = 1, OP_FCHOWN = 2, OP_FCHMOD = 3, OP_FUTIMENS = 4, OP_FSTAT = 5;
export const OP_NAMES: Record<number, string> = { [OP_WRITE]: "write", [OP_FCHOWN]: "fchown", [OP_FCHMOD]: "fchmod", [OP_FUTIMENS]: "futimens", [OP_FSTAT]: "statx" };
