/**
 * The contracts between the parts of src/transport/ (written by different hands at once; keep
 * them stable, extend rather than change):
 *
 *  - reference.ts  parseReference(s): ImageReference — skopeo's transport syntax.
 *  - oci-archive.ts  OciArchiveReader (a BlobReader over the members of a tar of an OCI layout,
 *      read in place at their offsets) and writeOciArchive (a layout directory → a tar, atomic).
 *  - docker-archive.ts  DockerArchiveReader (a BlobReader over a `docker save` tar: a synthetic
 *      OCI index and OCI manifests standing for manifest.json's images) and writeDockerArchive.
 *  - copy.ts  copyImage(src, dst, opts): the engine, any transport to any other.
 *
 * Every reader verifies every blob it yields (cas/source.ts streamVerified / readVerified), so a
 * consumer never acts on a byte that does not match its digest.
 */
import type { Descriptor, ImageConfig, Manifest } from "../image";
import type { BlobReader } from "../cas";

/**
 * An image reference in skopeo's syntax:
 *  - `oci:PATH[:TAG]` — an OCI layout directory; reading without TAG: the layout's only image;
 *    writing without TAG: `latest`;
 *  - `oci-archive:FILE[:TAG]` — a tar of an OCI layout, same TAG rules;
 *  - `docker-archive:FILE[:NAME:TAG]` — a `docker save` tar; reading: the image whose RepoTags
 *    hold `NAME:TAG`, or `FILE:@N` the Nth image (from 0, in manifest.json order), or without
 *    either the only image; writing: RepoTags `NAME:TAG` (none when absent).
 */
export type ImageReference =
  | { transport: "oci"; path: string; tag?: string }
  | { transport: "oci-archive"; path: string; tag?: string }
  | { transport: "docker-archive"; path: string; name?: string; index?: number } | import("./registry/types").DockerReference;

/** A layer as a destination receives it. */
export interface LayerToWrite {
  /** the layer's descriptor as the manifest being written names it */
  desc: Descriptor;
  /** the uncompressed digest (the config's rootfs.diff_ids entry) */
  diffID: string;
  /** a fresh verified stream of the blob `desc` names (digest and size checked at its end) */
  open(): AsyncIterable<Buffer>;
}

/** One image as the copy engine hands it to an archive writer. */
export interface ImageToWrite {
  manifestDesc: Descriptor;
  manifestBytes: Buffer;
  manifest: Manifest;
  configDesc: Descriptor;
  configBytes: Buffer;
  config: ImageConfig;
  /** in manifest order */
  layers: LayerToWrite[];
}

/** What a copy reports per blob, for progress. */
export interface CopyProgress {
  /** the blob being moved (digest as the source names it) */
  digest: string;
  /** bytes of it moved so far, and its size in the source */
  done: number;
  size: number;
  /** index of the blob and how many there are */
  blob: number;
  blobs: number;
  /** "skip" when the destination had it already */
  state: "copy" | "skip" | "done";
}

/** An open source: the store and the one top-level descriptor (manifest or index) the reference names. */
export interface OpenedSource {
  reader: BlobReader;
  /** the resolved top-level descriptor */
  top: Descriptor;
}

/**
 * What `copyImage(src, dst, opts)` (copy.ts) takes. Layers are kept as they are unless they must
 * change: a destination that needs compressed layers (oci, oci-archive) given uncompressed ones
 * (a docker-archive) compresses them with `compress` (default gzip); a docker-archive destination
 * gets every layer uncompressed (diffIDs checked).
 */
export interface CopyOptions {
  /** more RepoTags for a docker-archive destination (`--additional-tag NAME:TAG`) */
  additionalTags?: string[];
  /** compression for layers the destination needs compressed (default gzip) */
  compress?: "gzip" | "zstd" | "none";
  /** recompress every layer with `compress` (skopeo `--dest-compress`) */
  forceCompress?: boolean;
  /** the manifest format to write: oci (oci, oci-archive) or v2s2 (docker-archive); an impossible pair is a UsageError */
  format?: "oci" | "v2s2";
  /** copy a whole index (every platform); else one manifest, picked by `platform` (default: the host's) */
  all?: boolean;
  platform?: import("../image").Platform;
  /** where temporary files go (default: beside the destination) */
  tmpdir?: string;
  /**
   * an `oci:` destination keeps every blob (layers, configs, manifests, indexes) as
   * `DIR/<alg>/<encoded>` instead of in its own `blobs/` (skopeo `--dest-shared-blob-dir`); the
   * layout gets `oci-layout` and `index.json` as usual. Any other destination: UsageError.
   */
  sharedBlobDir?: string;
  onProgress?: (p: CopyProgress) => void;
  /** credentials, TLS and retries for a `docker://` source (registry/types.ts) */
  srcRegistry?: import("./registry/types").RegistryOptions;
  /** the same for a `docker://` destination */
  dstRegistry?: import("./registry/types").RegistryOptions;
  /**
   * copy the referrers (OCI 1.1 `subject`) of what is copied, and theirs, along with it: found
   * in a layout's index.json or through a registry's referrers API (else its `sha256-<hex>` tag
   * schema); a docker-archive destination is a UsageError, a docker-archive source has none
   */
  referrers?: boolean;
}

export interface CopyResult {
  /** the descriptor the destination's tag now names */
  manifest: Descriptor;
  /** the tags written (layout tag, or RepoTags) */
  tags: string[];
  blobsCopied: number;
  blobsSkipped: number;
  /** bytes written to the destination */
  bytes: number;
}
