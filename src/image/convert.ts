/**
 * Conversions between Docker schema-2 and OCI image-spec manifests and indexes (pure; no I/O).
 * Blobs are never changed here: only descriptors' media types and the fields the target format
 * has. The mappings follow containers/image (skopeo), `image/docker_schema2.go` and
 * `image/oci.go`:
 *
 * - Docker → OCI: manifest and config media types become OCI's; each Docker layer type becomes
 *   the OCI type with the same compression (foreign → non-distributable); `urls` kept.
 * - OCI → Docker: the reverse; a zstd layer has no Docker type (Docker does not pull
 *   `rootfs.diff.tar.zstd`), so it is refused, as skopeo refuses it. Docker's descriptors carry
 *   only mediaType, digest, size and urls (and, in a list, platform): annotations, `data`,
 *   `artifactType`, `subject` and manifest/index annotations are dropped, as skopeo drops them.
 *
 * Deviation from skopeo, on purpose: Docker → OCI keeps annotations and unknown fields present
 * on the Docker objects (OCI can hold them; skopeo's Docker structs cannot), and the config
 * blob is not re-encoded here (skopeo rewrites it through the OCI struct, which changes its
 * digest; `toOciConfig` does that re-encoding for a caller that wants it).
 *
 * Every function returns a new object and leaves its argument alone. Already-target input is
 * returned as a copy (idempotent). Errors: UnsupportedError (exit 6) for what has no mapping.
 */
import { UnsupportedError } from "../errors";
import { MediaType } from "./media-types";
import type { Descriptor, ImageConfig, ImageIndex, Manifest, Platform } from "./types";

const dockerToOciLayer: ReadonlyMap<string, string> = new Map([
  [MediaType.dockerLayer, MediaType.layer],
  [MediaType.dockerLayerGzip, MediaType.layerGzip],
  [MediaType.dockerLayerZstd, MediaType.layerZstd],
  [MediaType.dockerForeignLayer, MediaType.layerNondist],
  [MediaType.dockerForeignLayerGzip, MediaType.layerNondistGzip],
]);

const ociToDockerLayer: ReadonlyMap<string, string> = new Map([
  [MediaType.layer, MediaType.dockerLayer],
  [MediaType.layerGzip, MediaType.dockerLayerGzip],
  [MediaType.layerNondist, MediaType.dockerForeignLayer],
  [MediaType.layerNondistGzip, MediaType.dockerForeignLayerGzip],
]);

const zstdLayers: ReadonlySet<string> = new Set([MediaType.layerZstd, MediaType.layerNondistZstd, MediaType.dockerLayerZstd]);

const ociLayers: ReadonlySet<string> = new Set([
  MediaType.layer, MediaType.layerGzip, MediaType.layerZstd,
  MediaType.layerNondist, MediaType.layerNondistGzip, MediaType.layerNondistZstd,
]);

/**
 * The OCI layer media type for a layer media type: a Docker one maps to the OCI type with the
 * same compression (foreign → non-distributable); an OCI one is returned as it is.
 * Throws UnsupportedError for any other type.
 */
export function ociLayerMediaType(mt: string): string {
  if (ociLayers.has(mt)) return mt;
  const oci = dockerToOciLayer.get(mt);
  if (oci === undefined) throw new UnsupportedError(`unsupported layer media type ${mt}`);
  return oci;
}

/**
 * The Docker schema-2 layer media type for a layer media type: an OCI one maps to the Docker type
 * with the same compression (non-distributable → foreign); a Docker one is returned as it is.
 * Throws UnsupportedError for zstd (OCI or Docker: Docker does not pull zstd layers under
 * schema 2) and for any other type.
 */
export function dockerLayerMediaType(mt: string): string {
  if (zstdLayers.has(mt)) throw new UnsupportedError(`layer media type ${mt}: zstd compression is not supported in docker images`);
  if (dockerToOciLayer.has(mt)) return mt;
  const docker = ociToDockerLayer.get(mt);
  if (docker === undefined) throw new UnsupportedError(`unsupported layer media type ${mt}`);
  return docker;
}

function layerName(i: number, d: Descriptor): string {
  return `layer ${i + 1} (${d.digest})`;
}

function copyUrls(d: Descriptor): { urls?: string[] } {
  return d.urls && d.urls.length > 0 ? { urls: [...d.urls] } : {};
}

/** A deep-enough copy of a descriptor (arrays and maps copied, so results share nothing mutable). */
function cloneDescriptor(d: Descriptor): Descriptor {
  const out: Descriptor = { ...d };
  if (d.urls) out.urls = [...d.urls];
  if (d.annotations) out.annotations = { ...d.annotations };
  if (d.platform) out.platform = clonePlatform(d.platform);
  return out;
}

function clonePlatform(p: Platform): Platform {
  const out: Platform = { ...p };
  if (p["os.features"]) out["os.features"] = [...p["os.features"]];
  if (p.features) out.features = [...p.features];
  return out;
}

function manifestKind(m: Manifest): "oci" | "docker" {
  if (m.mediaType === MediaType.dockerManifest) return "docker";
  if (m.mediaType === undefined || m.mediaType === MediaType.manifest) return "oci";
  throw new UnsupportedError(`unsupported manifest media type ${m.mediaType}`);
}

function indexKind(ix: ImageIndex): "oci" | "docker" {
  if (ix.mediaType === MediaType.dockerManifestList) return "docker";
  if (ix.mediaType === undefined || ix.mediaType === MediaType.index) return "oci";
  throw new UnsupportedError(`unsupported index media type ${ix.mediaType}`);
}

function cloneManifest(m: Manifest): Manifest {
  const out: Manifest = { ...m, config: cloneDescriptor(m.config), layers: m.layers.map(cloneDescriptor) };
  if (m.subject) out.subject = cloneDescriptor(m.subject);
  if (m.annotations) out.annotations = { ...m.annotations };
  return out;
}

function cloneIndex(ix: ImageIndex): ImageIndex {
  const out: ImageIndex = { ...ix, manifests: ix.manifests.map(cloneDescriptor) };
  if (ix.subject) out.subject = cloneDescriptor(ix.subject);
  if (ix.annotations) out.annotations = { ...ix.annotations };
  return out;
}

/**
 * A Docker schema-2 manifest as an OCI image manifest: `mediaType` OCI's, the config descriptor
 * typed `application/vnd.oci.image.config.v1+json` (same blob, same digest), each layer typed
 * by ociLayerMediaType; digests, sizes, urls, annotations and unknown fields kept. An OCI
 * manifest comes back as a copy with `mediaType` set. Throws UnsupportedError for another
 * manifest type, a config type other than Docker's or OCI's, or an unknown layer type (naming it).
 */
export function toOciManifest(m: Manifest): Manifest {
  const kind = manifestKind(m);
  const out = cloneManifest(m);
  out.mediaType = MediaType.manifest;
  if (kind === "oci") return out;
  if (m.config.mediaType === MediaType.dockerConfig) out.config.mediaType = MediaType.config;
  else if (m.config.mediaType !== MediaType.config)
    throw new UnsupportedError(`convert manifest to oci: config media type ${m.config.mediaType} is not an image config`);
  out.layers = m.layers.map((l, i) => {
    try {
      return { ...cloneDescriptor(l), mediaType: ociLayerMediaType(l.mediaType) };
    } catch (e) {
      throw new UnsupportedError(`convert manifest to oci: ${layerName(i, l)}: ${(e as Error).message}`, { cause: e });
    }
  });
  return reorder(out, ["schemaVersion", "mediaType"]);
}

/**
 * An OCI image manifest as a Docker schema-2 manifest (for a docker-archive or `--format v2s2`):
 * `mediaType` Docker's, config typed `application/vnd.docker.container.image.v1+json`, layers
 * typed by dockerLayerMediaType. Only what schema 2 has is kept (schemaVersion, mediaType,
 * config, layers; descriptors' mediaType, digest, size, urls), as skopeo does. A Docker manifest
 * comes back reduced the same way. Throws UnsupportedError for a zstd layer (naming it), an
 * unknown layer type, a config that is not an image config (an artifact), or another manifest type.
 */
export function toDockerManifest(m: Manifest): Manifest {
  manifestKind(m);
  if (m.config.mediaType !== MediaType.config && m.config.mediaType !== MediaType.dockerConfig)
    throw new UnsupportedError(`convert manifest to docker schema 2: config media type ${m.config.mediaType} is not an image config (an artifact has no docker form)`);
  const layers = m.layers.map((l, i) => {
    try {
      return { mediaType: dockerLayerMediaType(l.mediaType), digest: l.digest, size: l.size, ...copyUrls(l) };
    } catch (e) {
      throw new UnsupportedError(`convert manifest to docker schema 2: ${layerName(i, l)}: ${(e as Error).message}`, { cause: e });
    }
  });
  return {
    schemaVersion: 2,
    mediaType: MediaType.dockerManifest,
    config: { mediaType: MediaType.dockerConfig, digest: m.config.digest, size: m.config.size, ...copyUrls(m.config) },
    layers,
  };
}

function ociChildMediaType(mt: string, i: number): string {
  switch (mt) {
    case MediaType.dockerManifest: case MediaType.manifest: return MediaType.manifest;
    case MediaType.dockerManifestList: case MediaType.index: return MediaType.index;
    default: throw new UnsupportedError(`convert manifest list to oci: manifests[${i}]: unsupported media type ${mt}`);
  }
}

function dockerChildMediaType(mt: string, i: number): string {
  switch (mt) {
    case MediaType.dockerManifest: case MediaType.manifest: return MediaType.dockerManifest;
    case MediaType.dockerManifestList: case MediaType.index: return MediaType.dockerManifestList;
    default: throw new UnsupportedError(`convert index to docker manifest list: manifests[${i}]: media type ${mt} has no docker form`);
  }
}

/**
 * A Docker manifest list as an OCI image index: `mediaType` OCI's, each entry's media type the
 * OCI one (manifest list → index, schema-2 manifest → image manifest), digest, size, urls,
 * annotations and platform kept, except the platform's `features` (not in image-spec v1.1,
 * dropped as skopeo drops it). The entries' digests and sizes are still those of the Docker
 * children: a caller that converts each child must put the converted child's digest and size in
 * its entry. An OCI index comes back as a copy with `mediaType` set. Throws UnsupportedError for
 * an entry that is neither a manifest nor a list, or another index type.
 */
export function toOciIndex(ix: ImageIndex): ImageIndex {
  const kind = indexKind(ix);
  const out = cloneIndex(ix);
  out.mediaType = MediaType.index;
  if (kind === "oci") return out;
  out.manifests = ix.manifests.map((d, i) => {
    const c = { ...cloneDescriptor(d), mediaType: ociChildMediaType(d.mediaType, i) };
    if (c.platform) delete c.platform.features;
    return c;
  });
  return reorder(out, ["schemaVersion", "mediaType"]);
}

/** Options of toDockerIndex. */
export interface ToDockerIndexOptions {
  /**
   * The platform for an entry that has none (a Docker list requires one; skopeo uses the
   * running machine's). Without it such an entry is refused.
   */
  defaultPlatform?: Platform;
}

/**
 * An OCI image index as a Docker manifest list: `mediaType` Docker's, each entry typed Docker's
 * (image manifest → schema-2 manifest, index → manifest list) with digest, size, urls and
 * platform (architecture, os, os.version, os.features, variant); annotations, `data`,
 * `artifactType`, `subject` and the index's annotations are dropped. As in toOciIndex, the
 * entries still name the unconverted children: the caller puts in each converted child's digest
 * and size. Throws UnsupportedError for an entry of another type (an artifact), an entry with no
 * platform and no `defaultPlatform`, or another index type.
 */
export function toDockerIndex(ix: ImageIndex, opts: ToDockerIndexOptions = {}): ImageIndex {
  indexKind(ix);
  const manifests = ix.manifests.map((d, i): Descriptor => {
    const mediaType = dockerChildMediaType(d.mediaType, i);
    const p = d.platform ?? opts.defaultPlatform;
    if (!p) throw new UnsupportedError(`convert index to docker manifest list: manifests[${i}] (${d.digest}): no platform`);
    const platform: Platform = { architecture: p.architecture, os: p.os };
    if (p["os.version"]) platform["os.version"] = p["os.version"];
    if (p["os.features"] && p["os.features"].length > 0) platform["os.features"] = [...p["os.features"]];
    if (p.variant) platform.variant = p.variant;
    if (p.features && p.features.length > 0) platform.features = [...p.features];
    return { mediaType, digest: d.digest, size: d.size, ...copyUrls(d), platform };
  });
  return { schemaVersion: 2, mediaType: MediaType.dockerManifestList, manifests };
}

/** Put the given keys first (JSON written from the result then reads as the spec orders it). */
function reorder<T extends object>(o: T, first: string[]): T {
  const rec = o as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of first) if (k in rec) out[k] = rec[k];
  for (const k of Object.keys(rec)) if (!first.includes(k)) out[k] = rec[k];
  return out as T;
}

const ociConfigKeys = ["created", "author", "architecture", "os", "os.version", "os.features", "variant", "config", "rootfs", "history"];
const ociBodyKeys = ["User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels", "StopSignal", "ArgsEscaped"];
const ociHistoryKeys = ["created", "created_by", "author", "comment", "empty_layer"];

function pick(o: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (o[k] !== undefined && o[k] !== null) out[k] = o[k];
  return out;
}

/**
 * A Docker image config reduced to the fields of the OCI image config (image-spec config.md),
 * as skopeo's Docker → OCI conversion does when it re-encodes the config: Docker-only fields
 * (`container`, `container_config`, `docker_version`, `id`, `parent`, `Size`, and the body's
 * `Hostname`, `Healthcheck`, `Shell`, `OnBuild`, …) are dropped; history, rootfs (the same
 * diff_ids) and the OCI body fields are kept. The result is a new config blob with a new digest:
 * the caller stores it and points the OCI manifest's config descriptor at it. Pure; throws nothing.
 */
export function toOciConfig(c: ImageConfig): ImageConfig {
  const src = c as unknown as Record<string, unknown>;
  const out = pick(src, ociConfigKeys);
  if (c.config && typeof c.config === "object") out.config = pick(c.config as Record<string, unknown>, ociBodyKeys);
  if (c.rootfs && typeof c.rootfs === "object") out.rootfs = { type: c.rootfs.type, diff_ids: [...(c.rootfs.diff_ids ?? [])] };
  if (Array.isArray(c.history)) out.history = c.history.map((h) => pick(h as Record<string, unknown>, ociHistoryKeys));
  if (Array.isArray(src["os.features"])) out["os.features"] = [...(src["os.features"] as string[])];
  return out as unknown as ImageConfig;
}
