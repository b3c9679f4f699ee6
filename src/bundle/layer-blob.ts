/**
 * Store an uncompressed tar stream as a layer blob: compress, hash the compressed bytes (the
 * layer digest) and the uncompressed bytes (the diffID), and write, all in one pass.
 */
import type * as Stream from "node:stream";
import { UsageError } from "../errors";
import type { Layout } from "../cas";
import { type Descriptor, MediaType, AnnotationUncompressedSize, layerSuffix, isLayerMediaType } from "../image";
import type * as CompressModule from "../compress";
import { mediaTypeSuffix, type Compression } from "../compress/media";
import { parallelGzip } from "../compress/pgzip";

export type CompressChoice = "auto" | Compression;

export function parseCompress(s: string | undefined): CompressChoice {
  const v = s ?? "auto";
  if (v === "auto" || v === "gzip" || v === "zstd" || v === "none") return v;
  throw new UsageError(`invalid --compress ${JSON.stringify(v)}: one of auto, gzip, zstd, none`);
}

/** auto: the newest layer's compression when it is gzip or zstd, else gzip (never none). */
export function resolveCompression(choice: CompressChoice, layers: Descriptor[]): Compression {
  if (choice !== "auto") return choice;
  const newest = layers[layers.length - 1];
  if (newest && isLayerMediaType(newest.mediaType)) {
    const s = layerSuffix(newest.mediaType);
    if (s === "gzip" || s === "zstd") return s;
  }
  return "gzip";
}

export interface StoredLayer { descriptor: Descriptor; diffID: string; uncompressedSize: number }

export interface StoreLayerOptions {
  /** The tar's length when the caller knows it, roughly (parallel gzip's ParallelGzipOptions.expectedBytes; tarLengthEstimate). */
  expectedBytes?: number;
}

/**
 * About how long a tar of `entries` entries holding `contentBytes` of file content is: a
 * header and the padding per entry (1 KiB each, generously), and the end. For
 * StoreLayerOptions.expectedBytes only.
 */
export function tarLengthEstimate(entries: number, contentBytes: number): number {
  return (entries + 2) * 1024 + contentBytes;
}

export async function storeLayer(layout: Layout, tar: AsyncIterable<Uint8Array>, compression: Compression, opts: StoreLayerOptions = {}): Promise<StoredLayer> {
  const diff = new Bun.CryptoHasher("sha256");
  let usize = 0;
  async function* tapped(): AsyncGenerator<Uint8Array> {
    for await (const c of tar) {
      diff.update(c);
      usize += c.length;
      yield c;
    }
  }
  // gzip and none without node:stream (its load is ~5 ms of a small insert); zstd through
  // node:zlib's stream. A producer's failure reaches putBlobStream through the iteration, which
  // then rejects with it (and removes the temporary file).
  let info;
  if (compression === "zstd") {
    const { Readable, pipeline } = require("node:stream") as typeof Stream;
    const comp = (require("../compress") as typeof CompressModule).createCompressor("zstd");
    let failure: unknown;
    pipeline(Readable.from(tapped(), { objectMode: false }), comp, (e) => { if (e) failure ??= e; });
    try {
      info = await layout.putBlobStream(comp);
    } catch (e) {
      // (the pipeline's own AbortError only says it was stopped: the cause is the failure)
      throw failure && (failure as Error).name !== "AbortError" ? failure : e;
    }
    if (failure) throw failure;
  } else {
    info = await layout.putBlobStream(compression === "gzip" ? parallelGzip(tapped(), { expectedBytes: opts.expectedBytes }) : tapped());
  }
  const descriptor: Descriptor = { mediaType: MediaType.layer + mediaTypeSuffix(compression), digest: info.digest, size: info.size };
  if (compression !== "none") descriptor.annotations = { [AnnotationUncompressedSize]: String(usize) };
  return { descriptor, diffID: "sha256:" + diff.digest("hex"), uncompressedSize: usize };
}
