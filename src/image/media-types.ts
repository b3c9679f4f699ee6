/**
 * Media types (image-spec v1.1 media-types.md, plus the Docker schema-2 ones that crane, buildx
 * and `skopeo --format v2s2` put into OCI layouts) and predicates over them.
 * Docker: https://github.com/distribution/distribution/blob/main/docs/content/spec/manifest-v2-2.md
 */
export const MediaType = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar",
  layerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  layerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  layerNondist: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  layerNondistGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  layerNondistZstd: "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  empty: "application/vnd.oci.empty.v1+json",
  layoutHeader: "application/vnd.oci.layout.header.v1+json",
  descriptor: "application/vnd.oci.descriptor.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  /** BuildKit writes it under Docker manifests; Docker itself does not pull it. */
  dockerLayerZstd: "application/vnd.docker.image.rootfs.diff.tar.zstd",
  dockerForeignLayer: "application/vnd.docker.image.rootfs.foreign.diff.tar",
  dockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  dockerSchema1: "application/vnd.docker.distribution.manifest.v1+json",
  dockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
} as const;

export const AnnotationRefName = "org.opencontainers.image.ref.name";
export const AnnotationUncompressedSize = "ci.umo.uncompressed_blob_size";

/** The compression a layer media type names. */
export type LayerCompression = "none" | "gzip" | "zstd";

/** What boci knows about one layer media type. */
export interface LayerKind {
  compression: LayerCompression;
  /** Non-distributable (OCI, deprecated) or foreign (Docker): applied like any other layer. */
  nondistributable: boolean;
  docker: boolean;
}

const layerKinds: ReadonlyMap<string, LayerKind> = new Map<string, LayerKind>([
  [MediaType.layer, { compression: "none", nondistributable: false, docker: false }],
  [MediaType.layerGzip, { compression: "gzip", nondistributable: false, docker: false }],
  [MediaType.layerZstd, { compression: "zstd", nondistributable: false, docker: false }],
  [MediaType.layerNondist, { compression: "none", nondistributable: true, docker: false }],
  [MediaType.layerNondistGzip, { compression: "gzip", nondistributable: true, docker: false }],
  [MediaType.layerNondistZstd, { compression: "zstd", nondistributable: true, docker: false }],
  [MediaType.dockerLayer, { compression: "none", nondistributable: false, docker: true }],
  [MediaType.dockerLayerGzip, { compression: "gzip", nondistributable: false, docker: true }],
  [MediaType.dockerLayerZstd, { compression: "zstd", nondistributable: false, docker: true }],
  [MediaType.dockerForeignLayer, { compression: "none", nondistributable: true, docker: true }],
  [MediaType.dockerForeignLayerGzip, { compression: "gzip", nondistributable: true, docker: true }],
]);

/**
 * The kind of a layer media type boci can apply (OCI tar/+gzip/+zstd, non-distributable, Docker
 * rootfs.diff.tar[.gzip|.zstd], Docker foreign), or undefined for any other type (unsupported).
 */
export function layerKind(mt: string): LayerKind | undefined {
  return layerKinds.get(mt);
}

const ociLayerBases = [MediaType.layer, MediaType.layerNondist];

/**
 * True for OCI layer media types (tar, or tar with any `+suffix`; the deprecated non-distributable
 * ones too). Docker's layer types are not OCI ones: use layerKind for every type boci can apply.
 */
export function isLayerMediaType(mt: string): boolean {
  return ociLayerBases.some((b) => mt === b || mt.startsWith(b + "+"));
}

/** True for the Docker schema-2 layer media types (rootfs.diff and rootfs.foreign.diff). */
export function isDockerLayerMediaType(mt: string): boolean {
  return layerKinds.get(mt)?.docker === true;
}

/**
 * The compression suffix of a layer media type: after "+" for an OCI type ("" for plain tar),
 * "gzip"/"zstd"/"" for a Docker one; "" for anything else.
 */
export function layerSuffix(mt: string): string {
  for (const b of ociLayerBases) {
    if (mt === b) return "";
    if (mt.startsWith(b + "+")) return mt.slice(b.length + 1);
  }
  const k = layerKinds.get(mt);
  return !k || k.compression === "none" ? "" : k.compression;
}

export function isIndexMediaType(mt: string | undefined): boolean {
  return mt === MediaType.index || mt === MediaType.dockerManifestList;
}
export function isManifestMediaType(mt: string | undefined): boolean {
  return mt === MediaType.manifest || mt === MediaType.dockerManifest;
}
/**
 * When a manifest is an OCI 1.1 artifact rather than an image (its config is not an image
 * config), the line a command that needs a root filesystem refuses it with; else undefined.
 */
export function artifactRefusal(m: { artifactType?: string; config: { mediaType: string } }, name: string): string | undefined {
  if (isConfigMediaType(m.config.mediaType)) return undefined;
  return `${name} is an artifact (${m.artifactType ?? m.config.mediaType}), not an image: it has no root filesystem or image config`;
}

/** True for the image config media types boci reads (OCI and Docker's, which has the same shape). */
export function isConfigMediaType(mt: string | undefined): boolean {
  return mt === MediaType.config || mt === MediaType.dockerConfig;
}
/** True for Docker schema-1 manifests (signed or not), which boci refuses as unsupported. */
export function isDockerSchema1MediaType(mt: string | undefined): boolean {
  return mt === MediaType.dockerSchema1 || mt === MediaType.dockerSchema1Signed;
}
/** True for the Docker schema-2 media types of manifests, manifest lists, configs and layers. */
export function isDockerMediaType(mt: string | undefined): boolean {
  return mt === MediaType.dockerManifest || mt === MediaType.dockerManifestList || mt === MediaType.dockerConfig
    || (mt !== undefined && isDockerLayerMediaType(mt));
}

/** RFC 6838 media type grammar as the image-spec schema has it. */
export const mediaTypeRe = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;
