/**
 * Bytes a decoder leaves to the garbage collector, and a full collection when enough are.
 *
 * A collection once 4 MiB is left (output nobody frees, input not freed by `releaseInput`), or a
 * quarter of the JS heap if that is more (a collection costs in proportion to the heap): JSC,
 * left alone, lets dead buffers pile up by tens of MiB. jsc.gcAndSweep, not Bun.gc(true): that
 * one also hands mimalloc's free pages back to the kernel, and faulting them in again cost more
 * than the collection (a 1 GiB unpack: sys time 4.4 s -> 2.4 s).
 */
const GC_MIN = 4 << 20;

let jsc: typeof import("bun:jsc") | null = null;

export class GcBudget {
  private left = 0;

  /** Count `n` bytes that only the collector will free. */
  add(n: number): void {
    this.left += n;
    if (this.left < GC_MIN) return;
    jsc ??= require("bun:jsc") as typeof import("bun:jsc");
    if (this.left < jsc.heapSize() / 4) return;
    this.left = 0;
    jsc.gcAndSweep();
  }
}
