/**
 * Codecs keyed by the layer media-type suffix: "" (plain tar), "+gzip", "+zstd".
 * Spec: https://github.com/opencontainers/image-spec/blob/main/layer.md and media-types.md.
 */
import { PassThrough, Transform, type TransformCallback } from "node:stream";
import * as zlib from "node:zlib";
import { InvalidError, UnsupportedError } from "../errors";
import type { Compression } from "./media";
import { MAX_WAITING_OUTPUT, MultiGunzip, OUTPUT_CHUNK } from "./gunzip";
import { GcBudget } from "../util/heap";
import { ZstdFrameTracker } from "./zstd-frames";
import { release } from "../util/release";

export interface DecompressOptions {
  /** Called for recoverable oddities (trailing junk after the last gzip member). */
  onWarning?: (msg: string) => void;
  /** Decompression-bomb bound: more output than this fails with InvalidError. */
  maxOutputBytes?: number;
  /**
   * The decoder is the last user of the input: each chunk its producer marked releasable
   * (util/release.ts) is freed once decoded (gzip, zstd). With "none" the chunks are the output.
   */
  releaseInput?: boolean;
  /**
   * The reader frees each output chunk it is done with (util/release.ts). gzip: every output
   * chunk then owns its whole buffer and is marked releasable, and the decoder forces no
   * collections for its output. "none": the input chunks go on as they are (freeable if their
   * producer marked them) and are not counted for collection. zstd output is never marked
   * (node:zlib's chunks share buffers) and stays counted (util/heap.ts GcBudget).
   */
  releasable?: boolean;
}

/**
 * A pass-through that enforces maxOutputBytes and, unless the reader frees what it is done with
 * (`gc` null), counts what goes through as left to the collector (util/heap.ts GcBudget).
 */
class Limit extends Transform {
  private n = 0;
  constructor(private readonly max: number | undefined, private readonly gc: GcBudget | null) {
    super();
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.n += chunk.length;
    if (this.max !== undefined && this.n > this.max) return cb(new InvalidError(`decompressed size exceeds limit ${this.max}`));
    this.gc?.add(chunk.length);
    cb(null, chunk);
  }
}

/** Wraps a node:zlib stream so its errors become InvalidError and its output is bounded. */
class ZlibWrap extends Transform {
  private n = 0;
  private err: Error | null = null;
  private ended: Promise<void>;
  constructor(
    private readonly inner: Transform,
    private readonly what: string,
    private readonly max: number | undefined,
  ) {
    super({ readableHighWaterMark: MAX_WAITING_OUTPUT });
    inner.on("data", (d: Buffer) => {
      this.n += d.length;
      this.gc.add(d.length);
      if (this.max !== undefined && this.n > this.max) {
        this.destroy(new InvalidError(`decompressed size exceeds limit ${this.max}`));
        inner.destroy();
        return;
      }
      // Backpressure: hold the decoder while our reader is behind (resumed by _read), so a
      // bomb's output cannot pile up here.
      if (!this.push(d)) inner.pause();
    });
    this.ended = new Promise<void>((resolve) => {
      inner.once("end", resolve);
      inner.on("error", (e) => {
        this.err ??= e;
        resolve();
      });
    });
  }
  releaseInput = false;
  private readonly gc = new GcBudget();
  /** Optional framing check: true when the input ended at a complete frame. */
  frames: ZstdFrameTracker | null = null;
  private sawInput = false;
  private mapError(e: unknown): Error {
    if (e instanceof InvalidError) return e;
    const msg = e instanceof Error ? e.message.toLowerCase() : String(e);
    if (/unexpected end|truncat/.test(msg)) return new InvalidError(`truncated ${this.what} stream`, { cause: e });
    return new InvalidError(`corrupt ${this.what} stream: ${msg}`, { cause: e });
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    if (this.err) return cb(this.mapError(this.err));
    this.sawInput ||= chunk.length > 0;
    try {
      this.frames?.observe(chunk);
    } catch (e) {
      return cb(e as Error);
    }
    this.inner.write(chunk, (e) => {
      if (this.releaseInput) release(chunk);
      // (a freed chunk's buffer is detached: length 0)
      if (chunk.buffer.byteLength !== 0) this.gc.add(chunk.length);
      cb(e || this.err ? this.mapError(e ?? this.err) : null);
    });
  }
  override _read(size: number): void {
    if (this.inner.isPaused()) this.inner.resume();
    super._read(size);
  }
  override _flush(cb: TransformCallback): void {
    if (this.frames && !this.frames.complete()) {
      this.inner.destroy();
      return cb(new InvalidError(this.sawInput ? `truncated ${this.what} stream` : `truncated ${this.what} stream: no data`));
    }
    this.inner.end();
    this.ended.then(() => cb(this.err ? this.mapError(this.err) : null));
  }
  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    this.inner.destroy();
    cb(err);
  }
}

/**
 * A Transform decoding `c`. gzip: every member is decoded; trailing non-gzip bytes after a
 * complete member only produce `onWarning`; truncation and corruption fail with InvalidError.
 * zstd: concatenated frames are decoded; junk is an error. The caller owns (and ends) the stream.
 */
export function createDecompressor(c: Compression, opts: DecompressOptions = {}): Transform {
  switch (c) {
    case "none":
      return new Limit(opts.maxOutputBytes, opts.releasable ? null : new GcBudget());
    case "gzip":
      return failOnStall(new MultiGunzip(opts), "gzip");
    case "zstd":
    {
      const w = new ZlibWrap(zlib.createZstdDecompress({ chunkSize: OUTPUT_CHUNK }), "zstd", opts.maxOutputBytes);
      w.frames = new ZstdFrameTracker();
      w.releaseInput = !!opts.releaseInput;
      return failOnStall(w, "zstd");
    }
  }
  throw new UnsupportedError(`unsupported compression ${String(c)}`);
}

/**
 * A decoder that stops calling back on some corrupt input (node:zlib in Bun does not call a
 * write callback after certain errors) would leave its reader waiting on nothing: the event loop
 * empties and the process exits 0 with the work half done. When that moment comes while the
 * decoder is still open, it is failed instead (InvalidError), so its reader gets an error.
 */
function failOnStall<T extends Transform>(t: T, name: string): T {
  const onBeforeExit = () => {
    if (!t.destroyed) t.destroy(new InvalidError(`${name} stream is corrupt: the decoder stopped without an error or an end`));
  };
  process.on("beforeExit", onBeforeExit);
  t.once("close", () => process.off("beforeExit", onBeforeExit));
  return t;
}

export interface CompressOptions {
  /** gzip 1-9 (default 6), zstd 1-22 (default 3). */
  level?: number;
}

/**
 * A Transform encoding `c`. gzip output is deterministic: no file name, mtime 0 (node:zlib's
 * header), one member. zstd uses a single frame with the content size unknown.
 */
export function createCompressor(c: Compression, opts: CompressOptions = {}): Transform {
  switch (c) {
    case "none":
      return new PassThrough();
    case "gzip":
      return zlib.createGzip({ level: opts.level ?? 6, chunkSize: OUTPUT_CHUNK });
    case "zstd":
      return zlib.createZstdCompress({ chunkSize: OUTPUT_CHUNK, params: { [zlib.constants.ZSTD_c_compressionLevel]: opts.level ?? 3 } });
  }
  throw new UnsupportedError(`unsupported compression ${String(c)}`);
}

export { MultiGunzip, parseGzipHeader } from "./gunzip";
export { parallelGzip, type ParallelGzipOptions } from "./pgzip";
export { type Compression, compressionFromMediaType, mediaTypeSuffix, sniffCompression } from "./media";
