/**
 * Explicitly freed buffers. A large Buffer's memory is returned only when the garbage collector
 * finds it dead, and JSC finds big short-lived buffers late: a repack that streams 100 MiB
 * through gzip held ~40 MiB of dead input and output buffers at its peak. A producer that owns
 * a buffer outright (nothing else ever sees its ArrayBuffer) marks it; the last consumer calls
 * release(), which frees the memory at once (ArrayBuffer.prototype.transfer(0) detaches it).
 * Unmarked buffers are left alone, so release() is safe on anything.
 */
const marked = new WeakSet<ArrayBuffer>();

/** Mark `b`, whose whole ArrayBuffer belongs to the caller, as freeable by its last consumer. */
export function markReleasable<T extends Uint8Array>(b: T): T {
  marked.add(b.buffer as ArrayBuffer);
  return b;
}

/** Free `b`'s memory now if its producer marked it (every view of it becomes empty). */
export function release(b: Uint8Array): void {
  const ab = b.buffer as ArrayBuffer;
  if (!marked.has(ab)) return;
  marked.delete(ab);
  ab.transfer(0);
}

/** Whether `b`'s producer marked it (its memory is freed by release(), not by the collector). */
export function isReleasable(b: Uint8Array): boolean {
  return marked.has(b.buffer as ArrayBuffer);
}

/** Take `b`'s mark away: nobody may free it now (it is the collector's again). */
export function unmark(b: Uint8Array): void {
  marked.delete(b.buffer as ArrayBuffer);
}

/** `text` as UTF-8 in a marked buffer of its own: release() it once written. */
export function ownedText(text: string): Buffer {
  const b = markReleasable(Buffer.allocUnsafeSlow(Buffer.byteLength(text)));
  b.write(text);
  return b;
}
