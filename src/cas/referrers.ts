/**
 * Referrers (image-spec 1.1 `subject`) inside an OCI image layout. The layout spec keeps no
 * referrers index of its own; boci, as oras and zot do, lists every artifact (and any other
 * manifest with a `subject`) as an entry of index.json, untagged unless the user tags it. The
 * referrers of a manifest are then the index.json entries whose manifest (or index) names it as
 * its subject — found by reading those entries, each verified as any read.
 *
 * Because they are index.json entries, gc keeps them (its roots are every entry) and copy,
 * validate and the test checker reach them by the one descriptor walk (walk.ts). A subject need
 * not be in the layout (image-spec: a referrer may be stored before its subject): gc and
 * validate skip an absent one (isSubjectAbsent) instead of failing the walk.
 */
import * as path from "node:path";
import { type Descriptor, type ImageIndex, type Manifest, MediaType, isDigest, isIndexMediaType, isManifestMediaType } from "../image";
import type { Layout } from "./layout";
import { lstatOrNull } from "./layout-fs";
import type { BlobReader } from "./source";

/** The empty JSON blob `{}` (image-spec 1.1 manifest.md "Guidance for an Empty Descriptor"). */
export const EMPTY_JSON = Buffer.from("{}");
/** Its descriptor, with the bytes embedded as image-spec's DescriptorEmptyJSON (and oras) writes it. */
export const EMPTY_DESCRIPTOR: Readonly<Descriptor> = Object.freeze({
  mediaType: MediaType.empty,
  digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
  size: 2,
  data: "e30=",
});

/** One referrer as the distribution spec's referrers API lists it. */
export interface Referrer {
  /** mediaType, digest, size; artifactType (the manifest's, else its config's media type); the manifest's annotations */
  desc: Descriptor;
  /** where it is listed: its index.json position */
  where: string;
}

/**
 * The referrers of `subject` (a digest) among the top-level entries of `ix` (default: the
 * reader's index.json), in index order, each digest once. With `artifactType`, only those of that
 * type. Entries that are not manifests or indexes are passed over; an entry that cannot be read
 * throws the reader's error (NotFoundError, InvalidError).
 */
export function listReferrers(reader: BlobReader, subject: string, opts: { artifactType?: string; index?: ImageIndex } = {}): Referrer[] {
  const ix = opts.index ?? reader.readIndex();
  const out: Referrer[] = [];
  const seen = new Set<string>();
  ix.manifests.forEach((d, i) => {
    if (seen.has(d.digest)) return;
    const r = referrerOf(reader, d);
    if (!r || r.subject !== subject) return;
    seen.add(d.digest);
    if (opts.artifactType !== undefined && r.desc.artifactType !== opts.artifactType) return;
    out.push({ desc: r.desc, where: `index.json manifests[${i}]` });
  });
  return out;
}

/** The subject digest an entry names and the referrer descriptor for it, or null (no subject, not a manifest or index). */
export function referrerOf(reader: BlobReader, d: Descriptor): { subject: string; desc: Descriptor } | null {
  let subject: Descriptor | undefined;
  let artifactType: string | undefined;
  let annotations: Record<string, string> | undefined;
  if (isManifestMediaType(d.mediaType)) {
    const m = reader.readJson<Manifest>(d, "manifest");
    subject = m.subject;
    artifactType = m.artifactType ?? m.config?.mediaType;
    annotations = m.annotations;
  } else if (isIndexMediaType(d.mediaType)) {
    const x = reader.readJson<ImageIndex>(d, "index");
    subject = x.subject;
    artifactType = x.artifactType;
    annotations = x.annotations;
  } else return null;
  if (!subject || typeof subject.digest !== "string") return null;
  const desc: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (artifactType !== undefined) desc.artifactType = artifactType;
  if (annotations && Object.keys(annotations).length) desc.annotations = { ...annotations };
  return { subject: subject.digest, desc };
}

/**
 * The referrers as the distribution spec's `GET /v2/<name>/referrers/<digest>` answers: an image
 * index whose manifests are the referrer descriptors (artifactType, annotations).
 */
export function referrersIndex(list: Referrer[]): ImageIndex {
  return { schemaVersion: 2, mediaType: MediaType.index, manifests: list.map((r) => r.desc) };
}

/**
 * Whether `subject` names nothing in the layout: no file of that name under blobs (nothing at
 * all, by lstat) and no embedded data. A name that is there but is not a regular file is not
 * absent (reading it then fails as any hostile blob does); a malformed digest is not either.
 */
export function isSubjectAbsent(layout: Layout, subject: Descriptor): boolean {
  if (typeof subject.data === "string" || !isDigest(subject.digest)) return false;
  if (layout.hasBlob(subject.digest)) return false;
  return !lstatOrNull(path.join(layout.path, layout.blobRel(subject.digest)));
}
