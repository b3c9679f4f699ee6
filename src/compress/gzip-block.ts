/**
 * One block of a parallel gzip stream as one complete gzip member, with libdeflate (built into
 * Bun: `Bun.gzipSync(…, { library: "libdeflate" })`). Pure functions of the block's bytes, so a
 * layer's digest depends only on its content; used on the worker pool (worker/task.worker.ts)
 * and inline (pgzip.ts) alike.
 *
 * Why libdeflate level 2 and not zlib level 6: on this machine's binaries and text, libdeflate
 * level 2 compresses 1 MiB blocks to the same size as umoci's pgzip default (within 0.1 % of the
 * input) at about twice zlib level 6's speed (compress/README.md has the figures).
 */

/** The level parallel gzip uses unless told otherwise. */
export const DEFAULT_GZIP_LEVEL = 2;

/** Bun's type names only "zlib" for `library`; the runtime takes "libdeflate" too. */
function opts(level: number): Bun.ZlibCompressionOptions {
  return { level, library: "libdeflate" } as unknown as Bun.ZlibCompressionOptions;
}

const PROBES = 8;
const PROBE = 8192;

/**
 * The level for one block: `level`, unless quick level-1 probes of 8 KiB at eight places spread
 * over it show the data does not compress (already compressed or random bytes); then it is
 * stored (level 0). Deflating such data costs CPU to save nothing. Probes spread over the block,
 * not only its start: a tar block that opens with one compressed file may hold text after it.
 */
export function blockLevel(block: Uint8Array, level: number): number {
  if (level === 0 || block.length < PROBES * PROBE * 2) return level;
  const step = Math.floor((block.length - PROBE) / (PROBES - 1));
  let inBytes = 0;
  let outBytes = 0;
  for (let i = 0; i < PROBES; i++) {
    const sample = block.subarray(i * step, i * step + PROBE);
    inBytes += sample.length;
    outBytes += Bun.deflateSync(sample as Uint8Array<ArrayBuffer>, opts(1)).length;
    // One probe that compresses well is enough to deflate the block.
    if (outBytes < inBytes * 0.9) return level;
  }
  return outBytes >= inBytes * 0.97 ? 0 : level;
}

/** `block` as one gzip member (mtime 0, no name; deterministic for given bytes and level). */
export function gzipBlock(block: Uint8Array, level: number = DEFAULT_GZIP_LEVEL): Uint8Array {
  return Bun.gzipSync(block as Uint8Array<ArrayBuffer>, opts(blockLevel(block, level)));
}
