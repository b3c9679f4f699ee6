/**
 * Keeping the JS heap small on long loops: JSC collects lazily, so a loop that makes short-lived
 * objects (an unpack of many entries, a manifest of many lines, a walk's stat results) grows
 * the heap, and with it the peak RSS, far beyond what it keeps. `heapTick()` once per unit of
 * work collects synchronously every 4,096 units (and young objects every 1,024); every such
 * loop goes through it (one policy).
 * (Measured on a 200,000-file unpack: without it the peak is 274 MiB, with an asynchronous
 * collection 262 MiB, every 16,384 units 154 MiB, every 4,096 units 110-115 MiB.)
 *
 * `GcBudget` is the same for bytes: a stream whose chunks only the collector frees (inflated
 * output, a download's bodies) counts them, and a collection runs once 4 MiB, or a quarter of
 * the JS heap if that is more, is left (a collection costs in proportion to the heap; a caller may
 * ask for a larger minimum: a download uses 16 MiB): JSC, left
 * alone, lets dead buffers pile up by tens of MiB (a 768 MiB registry pull peaked at 143 MiB).
 *
 * The collection is jsc.gcAndSweep, not Bun.gc(true): Bun.gc(true)
 * also hands mimalloc's free pages back to the kernel, and faulting them in again costs more
 * than it saves (200,000-file unpack: user 16.7 -> 15.3 s, sys 9.5 -> 8.4 s, peak RSS +5 MiB;
 * 50,000 files: user 5.6 -> 5.1 s, sys 3.1 -> 2.6 s, +4 MiB).
 */
const EVERY = 4096;
let n = 0;
let jsc: typeof import("bun:jsc") | null = null;
/** bun:jsc, loaded on first use (a command that never loops pays nothing for it). */
function jscModule(): typeof import("bun:jsc") {
  return (jsc ??= require("bun:jsc") as typeof import("bun:jsc"));
}

/** A full synchronous collection (kept pages stay mapped for reuse). */
export function collectGarbage(): void {
  jscModule().gcAndSweep();
}

/** Young collections between the full ones (see heapTick). */
const YOUNG_EVERY = 1024;

/**
 * Count `weight` units of work: every 4,096 units a full collection, and every 1,024 between
 * them a young (eden) one, which frees what was made since the last collection and is dead
 * already, at a cost in proportion to that, not to the heap. Young ones alone do not do: on an
 * unpack much per-entry garbage lives until the spool writes its run of 4,096 records and is old
 * by then (young collections only, 200,000 files: 347 MiB peak). Added to the full ones (compiled,
 * tmpfs, alternating pairs): repack of the 50,000-file bundle 82-85 -> 75-76 MiB, unpack of
 * 200,000 files 86-94 -> 83-86 MiB, 50,000 files unchanged, times the same; in unpack's manifest
 * pass (heapTick per piece of 2,048 lines: a young collection between two full ones) 84-86 ->
 * 77-78 MiB on 50,000 files.
 */
export function heapTick(weight = 1): void {
  const before = n;
  n += weight;
  if (n >= EVERY) {
    n = 0;
    collectGarbage();
  } else if (Math.floor(before / YOUNG_EVERY) !== Math.floor(n / YOUNG_EVERY)) {
    collectYoung();
  }
}

function collectYoung(): void {
  jscModule().edenGC();
}

const GC_MIN = 4 << 20;

/** Bytes left to the collector, and a full collection when enough are (see the module comment). */
export class GcBudget {
  private left = 0;
  /** `min`: bytes left before a collection is considered (default 4 MiB). */
  constructor(private readonly min = GC_MIN) {}

  /** Count `n` bytes that only the collector will free. */
  add(n: number): void {
    this.left += n;
    if (this.left < this.min) return;
    if (this.left < jscModule().heapSize() / 4) return;
    this.left = 0;
    collectGarbage();
  }
}
