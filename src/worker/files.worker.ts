/**
 * Worker entry: the second half of making small regular files (rootfs/file-queue.ts). The
 * unpacking thread creates each file (openat O_EXCL, through its parent's descriptor, in tar
 * order) and copies its body into a shared ring; this thread writes the body, hashes it, sets
 * owner, mode and times through the descriptor, reads its statx back (the stat cache's key),
 * and closes it. Everything here goes through the descriptor the caller opened, so no name is
 * looked up on this thread.
 *
 * The rings and their layout are file-queue.ts's; the first message hands them over and the
 * thread then serves jobs until told to stop (it blocks in Atomics.wait, so no further message is
 * read).
 */
import { SysError } from "../sys";
import { collectGarbage } from "../util/heap";
import { normalJit } from "../util/jit";
import { chmodFd, chownFd, closeFd, statFd, utimesFd, writeAll } from "../sys/at";
import { C_HEAD, C_READY, C_STOP, C_TAIL, C_WAITING, C_WANT, F_CHMOD, F_CHOWN, F_HASH, F_STAT, JOB_INTS, OP_FCHMOD, OP_FCHOWN, OP_FSTAT, OP_FUTIMENS, OP_WRITE, RES_INTS, STAT_FIELDS, STAT_NUMS, type Rings } from "../rootfs/file-queue-layout";

declare const self: Worker;

// (a loop over every queued file: the JIT at its normal pace, not the start-up one)
normalJit();

self.onmessage = (ev: MessageEvent<Rings>) => {
  const r = ev.data;
  const ctrl = new Int32Array(r.ctrl);
  const jobs = new Int32Array(r.jobs);
  const times = new Float64Array(r.times);
  const res = new Int32Array(r.results);
  const digests = new Uint8Array(r.digests);
  const stats = new Float64Array(r.stats);
  const data = new Uint8Array(r.data);
  const slots = times.length;
  let t = Atomics.load(ctrl, C_TAIL);
  Atomics.store(ctrl, C_READY, 1);
  for (;;) {
    if (Atomics.load(ctrl, C_STOP)) break;
    const h = Atomics.load(ctrl, C_HEAD);
    if (h === t) {
      // Say we sleep, then look once more: the producer stores the head, then reads this flag.
      Atomics.store(ctrl, C_WAITING, 1);
      if (Atomics.load(ctrl, C_HEAD) === t && !Atomics.load(ctrl, C_STOP)) Atomics.wait(ctrl, C_HEAD, t, 1000);
      Atomics.store(ctrl, C_WAITING, 0);
      continue;
    }
    const slot = t % slots;
    const j = slot * JOB_INTS;
    const fd = jobs[j]!, off = jobs[j + 1]!, len = jobs[j + 2]!, flags = jobs[j + 6]!;
    let op = OP_WRITE;
    let errno = 0;
    try {
      const body = data.subarray(off, off + len);
      if (len) writeAll(fd, body);
      if (flags & F_HASH) digests.set(new Bun.CryptoHasher("sha256").update(body).digest(), slot * 32);
      op = OP_FCHOWN;
      if (flags & F_CHOWN) chownFd(fd, jobs[j + 3]! >>> 0, jobs[j + 4]! >>> 0);
      op = OP_FCHMOD;
      if (flags & F_CHMOD) chmodFd(fd, jobs[j + 5]!);
      op = OP_FUTIMENS;
      utimesFd(fd, times[slot]!, times[slot]!);
      op = OP_FSTAT;
      if (flags & F_STAT) {
        const st = statFd(fd);
        for (let k = 0; k < STAT_NUMS; k++) stats[slot * STAT_NUMS + k] = st[STAT_FIELDS[k]!];
      }
    } catch (e) {
      errno = e instanceof SysError ? e.errno : 5; // (EIO: not a system call's error)
    } finally {
      closeFd(fd);
    }
    // (this thread's garbage, a few objects per file, is collected often: its heap is small)
    if ((t & 1023) === 1023) collectGarbage();
    res[slot * RES_INTS] = errno;
    res[slot * RES_INTS + 1] = op;
    t++;
    Atomics.store(ctrl, C_TAIL, t);
    // (the producer stores C_WANT, then reads C_TAIL, then sleeps: one of the two sees the other)
    if (t >= Atomics.load(ctrl, C_WANT)) Atomics.notify(ctrl, C_TAIL);
  }
};
