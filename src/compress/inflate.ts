/**
 * A raw-deflate decoder on node:zlib's native handle, driven without the stream around it.
 *
 * Why not zlib.createInflateRaw(): a gzip layer from pgzip-style tools has a member per MiB, and
 * each InflateRaw (a Transform, a native handle, a first 256 KiB output buffer) lives until the
 * garbage collector finds it, so a layer needed a forced collection every few MiB. Here one
 * handle serves every member (reset() between them), the caller owns every output buffer (it
 * can hand each one on whole, to be freed by the reader), and each call says how much input it
 * consumed, which is where a member's deflate data ends.
 *
 * The handle is the one Bun's node:zlib (a port of Node's lib/zlib.js) builds its streams on:
 * `init(windowBits, level, memLevel, strategy, writeState, callback, dictionary)`, then
 * `write(flush, in, inOff, inLen, out, outOff, outLen)` on the thread pool, which calls
 * `callback` with `writeState` = [availOut, availIn], or `onerror(message, errno, code)` instead
 * (then never the callback). Bun is pinned (package.json), and every gzip test goes through it.
 */
import * as zlib from "node:zlib";

interface NativeHandle {
  init(windowBits: number, level: number, memLevel: number, strategy: number, writeState: Uint32Array, callback: () => void, dictionary: undefined): unknown;
  write(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  reset(): void;
  close(): void;
  onerror: (message: string, errno: number, code: string) => void;
}

type NativeZlibClass = new (mode: number) => NativeHandle;

let nativeZlib: NativeZlibClass | null = null;

/** The native handle class, taken from a throwaway stream (Bun does not export it). */
function handleClass(): NativeZlibClass {
  if (nativeZlib) return nativeZlib;
  const probe = zlib.createInflateRaw() as unknown as { _handle?: object; close(): void };
  const c = probe._handle?.constructor as NativeZlibClass | undefined;
  probe.close();
  const p = c?.prototype as Partial<NativeHandle> | undefined;
  if (typeof c !== "function" || typeof p?.init !== "function" || typeof p.write !== "function" || typeof p.reset !== "function" || typeof p.close !== "function") {
    throw new Error("this Bun's node:zlib has no native handle of the expected shape (src/compress/inflate.ts)");
  }
  return (nativeZlib = c);
}

export interface InflateStep {
  /** Input bytes not consumed: > 0 with room left in the output means the deflate stream ended. */
  availIn: number;
  /** Output room left: 0 means the buffer is full and more output may be pending. */
  availOut: number;
}

export class RawInflater {
  private readonly handle: NativeHandle;
  private readonly state = new Uint32Array(2);
  private waiter: { resolve: (s: InflateStep) => void; reject: (e: Error) => void } | null = null;
  /** The buffers of the call in flight, kept reachable while the thread pool uses them. */
  private busy: [Uint8Array, Uint8Array] | null = null;
  private closeAfter = false;
  private closed = false;

  constructor() {
    const C = handleClass();
    this.handle = new C(zlib.constants.INFLATERAW);
    this.handle.onerror = (message, errno, code) => {
      this.finish();
      const w = this.waiter;
      this.waiter = null;
      w?.reject(Object.assign(new Error(message), { errno, code }));
    };
    // windowBits 15 (the raw mode makes it negative); level, memLevel and strategy are unused by inflate.
    this.handle.init(15, zlib.constants.Z_DEFAULT_COMPRESSION, 8, zlib.constants.Z_DEFAULT_STRATEGY, this.state, () => {
      this.finish();
      const w = this.waiter;
      this.waiter = null;
      w?.resolve({ availOut: this.state[0]!, availIn: this.state[1]! });
    }, undefined);
  }

  /** Inflate input[inOff, inOff+inLen) into out[outOff, outOff+outLen); one call at a time. */
  run(input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): Promise<InflateStep> {
    if (this.closed || this.closeAfter) return Promise.reject(new Error("inflater is closed"));
    if (this.busy) return Promise.reject(new Error("inflater is busy"));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.busy = [input, out];
      this.handle.write(zlib.constants.Z_NO_FLUSH, input, inOff, inLen, out, outOff, outLen);
    });
  }

  /** Start a new deflate stream (the next member). */
  reset(): void {
    this.handle.reset();
  }

  /** Free the native state now (after the call in flight, if there is one). */
  close(): void {
    if (this.closed) return;
    if (this.busy) { this.closeAfter = true; return; }
    this.closed = true;
    this.handle.close();
  }

  private finish(): void {
    this.busy = null;
    if (this.closeAfter) {
      this.closeAfter = false;
      this.close();
    }
  }
}
