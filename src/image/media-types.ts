/** OCI media types (image-spec v1.1 media-types.md) and predicates over them. */
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
} as const;

export const AnnotationRefName = "org.opencontainers.image.ref.name";
export const AnnotationUncompressedSize = "ci.umo.uncompressed_blob_size";

const layerBases = [MediaType.layer, MediaType.layerNondist];

/** True for OCI layer media types boci can apply (tar, +gzip, +zstd; the deprecated non-distributable ones too). */
export function isLayerMediaType(mt: string): boolean {
  return layerBases.some((b) => mt === b || mt.startsWith(b + "+"));
}

/** The suffix after "+" of a layer media type ("" for plain tar). */
export function layerSuffix(mt: string): string {
  for (const b of layerBases) {
    if (mt === b) return "";
    if (mt.startsWith(b + "+")) return mt.slice(b.length + 1);
  }
  return "";
}

export function isIndexMediaType(mt: string | undefined): boolean {
  return mt === MediaType.index || mt === MediaType.dockerManifestList;
}
export function isManifestMediaType(mt: string | undefined): boolean {
  return mt === MediaType.manifest || mt === MediaType.dockerManifest;
}

/** RFC 6838 media type grammar as the image-spec schema has it. */
export const mediaTypeRe = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;
