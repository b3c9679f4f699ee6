/**
 * Keeping the JS heap small on long loops: JSC collects lazily, so a loop that makes short-lived
 * objects (an unpack of many entries, a manifest of many lines) grows the heap, and with it the
 * peak RSS, far beyond what it keeps. `heapTick()` once per unit of work collects every so often.
 */
const MODE = process.env.X_GC_MODE ?? "sync";
const EVERY = Number(process.env.X_GC_EVERY ?? 4096);
let n = 0;

/** Count one unit of work; every EVERY units, collect. */
export function heapTick(weight = 1): void {
  n += weight;
  if (n < EVERY) return;
  n = 0;
  if (MODE === "none") return;
  Bun.gc(MODE === "sync");
}
