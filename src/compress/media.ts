/**
 * Compression by name and by media type, and by sniffing the first bytes: what every user of a
 * layer's compression needs, without loading a codec (compress/index.ts loads node:zlib and
 * node:stream, ~8 ms of a short command's start-up).
 * Spec: https://github.com/opencontainers/image-spec/blob/main/layer.md and media-types.md.
 */
import { UnsupportedError } from "../errors";

export type Compression = "none" | "gzip" | "zstd";

/**
 * The compression a layer media type names: `…tar` none, `…+gzip` gzip, `…+zstd` zstd (Docker's
 * `…tar.gzip` and `…tar.zstd` are gzip and zstd too). Anything else throws UnsupportedError.
 */
export function compressionFromMediaType(mediaType: string): Compression {
  if (mediaType.endsWith("+gzip") || mediaType.endsWith(".tar.gzip")) return "gzip";
  if (mediaType.endsWith("+zstd") || mediaType.endsWith(".tar.zstd")) return "zstd";
  if (mediaType.endsWith(".tar") || mediaType.endsWith("/tar")) return "none";
  throw new UnsupportedError(`unsupported layer media type ${mediaType}`);
}

export function mediaTypeSuffix(c: Compression): "" | "+gzip" | "+zstd" {
  return c === "none" ? "" : c === "gzip" ? "+gzip" : "+zstd";
}

/**
 * Guess the compression from the first bytes (give at least 512 to recognise a plain tar).
 * Layers labelled `+gzip` may really be plain tar or zstd (docs/oci-reference.md §8.3).
 */
export function sniffCompression(firstBytes: Uint8Array): Compression | "unknown" {
  const b = firstBytes;
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return "gzip";
  if (b.length >= 4 && b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd) return "zstd";
  if (b.length >= 512) {
    // "ustar" magic, or a V7 header with a valid checksum, or an all-zero end-of-archive block.
    if (b[257] === 0x75 && b[258] === 0x73 && b[259] === 0x74 && b[260] === 0x61 && b[261] === 0x72) return "none";
    let sum = 8 * 0x20;
    let zero = true;
    for (let i = 0; i < 512; i++) {
      if (b[i] !== 0) zero = false;
      if (i < 148 || i >= 156) sum += b[i]!;
    }
    if (zero) return "none";
    const field = Buffer.from(b.buffer, b.byteOffset + 148, 8).toString("latin1").replace(/[\0 ]+/g, "");
    if (/^[0-7]+$/.test(field) && parseInt(field, 8) === sum) return "none";
  }
  return "unknown";
}
