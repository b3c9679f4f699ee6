/**
 * Opening what a reference names for reading: the store (a BlobReader) and the one image in it.
 * Every transport's reader verifies every blob it yields (cas/source.ts), so what is resolved
 * here is only ever acted on after its digest matched.
 */
import { NotFoundError, UsageError, InvalidError, UnsupportedError } from "../errors";
import { Layout, type BlobReader, type DescriptorPath, refName, listTags, resolveTag } from "../cas";
import { type Descriptor, type ImageIndex, type Platform, AnnotationRefName, isIndexMediaType } from "../image";
import { formatReference, sameDockerName, familiarDockerName } from "./reference";
import type { ImageReference } from "./types";
import type { RegistryOptions } from "./registry/types";
import { OciArchiveReader } from "./oci-archive";
import { DockerArchiveReader } from "./docker-archive";

/** What a docker-archive reader offers beyond a BlobReader: manifest.json's images, in order. */
export interface ImageLister {
  images(): { manifest: Descriptor; repoTags: string[] }[];
}

function hasImages(r: BlobReader): r is BlobReader & ImageLister {
  return typeof (r as Partial<ImageLister>).images === "function";
}

/**
 * Open the store `ref` names, read-only: a layout (cas Layout.open), an oci-archive
 * (OciArchiveReader) or a docker-archive (DockerArchiveReader), read in place. The caller closes
 * it. Throws NotFoundError when the path is missing, InvalidError when it is not that kind of store,
 * UnsupportedError for a `docker://` reference (a registry is opened by openReaderAsync).
 */
export function openReader(ref: ImageReference): BlobReader {
  switch (ref.transport) {
    case "docker":
      throw new UnsupportedError(`${formatReference(ref)}: this command does not read from a registry; copy the image into a layout first (boci copy ${formatReference(ref)} oci:DIR:TAG)`);
    case "oci":
      return Layout.open(ref.path);
    case "oci-archive":
      return OciArchiveReader.open(ref.path);
    case "docker-archive":
      return DockerArchiveReader.open(ref.path);
  }
}

/**
 * Open the store `ref` names, read-only, a registry included: for `docker://` a RegistryReader
 * (registry/reader.ts: the named manifest, its children and configs fetched and verified now,
 * layers streamed later), with `opts` for credentials, TLS and retries; anything else as
 * openReader. The caller closes it. Throws as openReader and RegistryReader.open do.
 */
export async function openReaderAsync(ref: ImageReference, opts: RegistryOptions = {}): Promise<BlobReader> {
  if (ref.transport !== "docker") return openReader(ref);
  const { RegistryReader } = require("./registry/reader") as typeof import("./registry/reader");
  return RegistryReader.open(ref, opts);
}

/** The tags of a store's top-level index, for messages ("none" when there are none). */
function tagList(ix: ImageIndex): string {
  const tags = [...new Set(listTags(ix))];
  return tags.length ? tags.join(", ") : "none";
}

/**
 * The top-level entry (manifest or index) `ref` names in `reader`: the entry tagged with its
 * TAG (oci, oci-archive), the image whose RepoTags hold its NAME:TAG (compared normalised, as
 * skopeo does) or its `@N` (docker-archive), or, when it names none, the store's only image.
 * Throws NotFoundError for a tag that is not there or an empty store, UsageError when the
 * reference names no image and there are several (the message lists the tags), InvalidError
 * when one tag names different images.
 */
export function resolveTop(reader: BlobReader, ref: ImageReference): Descriptor {
  const where = formatReference(ref);
  if (ref.transport === "docker-archive" && hasImages(reader)) {
    const images = reader.images();
    if (ref.index !== undefined) {
      const img = images[ref.index];
      if (!img) throw new NotFoundError(`${where}: no image @${ref.index}, the archive holds ${images.length}`);
      return img.manifest;
    }
    if (ref.name !== undefined) {
      const img = images.find((i) => i.repoTags.some((t) => sameDockerName(t, ref.name!)));
      if (!img) throw new NotFoundError(`${where}: no image tagged ${familiarDockerName(ref.name)} (tags: ${images.flatMap((i) => i.repoTags).join(", ") || "none"})`);
      return img.manifest;
    }
    if (images.length === 1) return images[0]!.manifest;
    if (images.length === 0) throw new NotFoundError(`${where}: the archive holds no image`);
    throw new UsageError(`${where}: the archive holds ${images.length} images; name one as ${where}:NAME:TAG or ${where}:@N (tags: ${images.map((i, n) => `@${n} ${i.repoTags.join(" ") || "(untagged)"}`).join(", ")})`);
  }
  const ix = reader.readIndex();
  const want = ref.transport === "docker-archive" ? ref.name : ref.tag;
  if (ref.transport === "docker-archive" && ref.index !== undefined) {
    const d = ix.manifests[ref.index];
    if (!d) throw new NotFoundError(`${where}: no image @${ref.index}, the archive holds ${ix.manifests.length}`);
    return d;
  }
  if (want === undefined) {
    if (ix.manifests.length === 1) return ix.manifests[0]!;
    if (ix.manifests.length === 0) throw new NotFoundError(`${where}: holds no image`);
    const distinct = new Set(ix.manifests.map((d) => d.digest));
    if (distinct.size === 1) return ix.manifests[0]!;
    throw new UsageError(`${where}: holds ${ix.manifests.length} images; name one with :TAG (tags: ${tagList(ix)})`);
  }
  const match = (d: Descriptor) => {
    const n = refName(d);
    if (n === undefined) return false;
    return ref.transport === "docker-archive" ? sameDockerName(n, want) : n === want;
  };
  const hits = ix.manifests.filter(match);
  if (hits.length === 0) throw new NotFoundError(`${where}: tag ${JSON.stringify(ref.transport === "docker-archive" ? familiarDockerName(want) : want)} not found (tags: ${tagList(ix)})`);
  if (new Set(hits.map((d) => d.digest)).size > 1) throw new InvalidError(`${where}: tag ${JSON.stringify(want)} names ${hits.length} different images`);
  return hits[0]!;
}

/** The key a top-level entry is resolved under when it is handed to resolveTag alone. */
const TOP_KEY = "boci.resolve.top";

/**
 * Down from the entry `ref` names (resolveTop) to one image manifest: a manifest is itself, an
 * index is narrowed by `platform` (default: the host's) with the rules of cas/refs.ts
 * resolveTag. walk[0] is the top-level entry as the store lists it. Throws as resolveTop and
 * resolveTag do.
 */
export function resolveImage(reader: BlobReader, ref: ImageReference, opts: { platform?: Platform } = {}): DescriptorPath {
  const top = resolveTop(reader, ref);
  if (!isIndexMediaType(top.mediaType) && !opts.platform) return { walk: [top] };
  // resolveTag walks the entries that carry a name: give it this one entry under a private name.
  const alone: ImageIndex = { schemaVersion: 2, manifests: [{ ...top, annotations: { ...(top.annotations ?? {}), [AnnotationRefName]: TOP_KEY } }] };
  try {
    const p = resolveTag(reader, alone, TOP_KEY, { platform: opts.platform });
    return { walk: [top, ...p.walk.slice(1)] };
  } catch (e) {
    if (e instanceof Error) e.message = `${formatReference(ref)}: ${e.message.replace(`tag ${JSON.stringify(TOP_KEY)}`, "image")}`;
    throw e;
  }
}
