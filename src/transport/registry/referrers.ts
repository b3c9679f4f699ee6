/**
 * Referrers on a registry (distribution spec 1.1, "Listing Referrers" and "Pushing Manifests
 * with Subject"), both ways a registry may keep them:
 *
 *  - the referrers API, `GET /v2/<name>/referrers/<digest>` (client.ts listReferrers); a
 *    registry with it answers `OCI-Subject` to the PUT of a manifest with a `subject` and
 *    indexes it itself;
 *  - the referrers tag schema, for registries without it (CNCF distribution 2.8 among them):
 *    the tag `<alg>-<hex>` (referrersTag) names an image index of the subject's referrers, which
 *    the pushing client keeps: read it (a missing tag is an empty index), add the new
 *    descriptor unless its digest is there, write it back.
 *
 * Reading asks the API first and falls back to the tag only when the registry has no API (a
 * 404): a registry that has it is never read through a tag. Writing maintains the tag only after
 * a PUT the registry did not answer with `OCI-Subject`, so a registry with the API never gets a
 * referrers tag from boci. Two clients updating one tag at once can lose an entry (no
 * conditional request is made); the spec leaves that to the client's choice.
 */
import { InvalidError, NotFoundError } from "../../errors";
import { decodeJsonBlob, sha256Digest } from "../../cas/source";
import { GoIndex, encodeGoValue } from "../../cas/go-json";
import { type Descriptor, type ImageIndex, MediaType, isIndexMediaType, isManifestMediaType } from "../../image";
import { splitDigest } from "../../image/digest";
import { log } from "../../util/log";
import type { RegistryApi } from "./reader";

/**
 * The referrers tag of `subject`: `<alg>-<encoded>`, the algorithm cut to 32 characters and the
 * encoded part to 64, any character a tag cannot hold turned into `-` (the spec's rule).
 */
export function referrersTag(subject: string): string {
  const [alg, enc] = splitDigest(subject);
  return `${alg.slice(0, 32)}-${enc.slice(0, 64)}`.replace(/[^a-zA-Z0-9._-]/g, "-");
}

/**
 * The descriptor a referrers index lists for a manifest or index with a `subject` (its media
 * type, digest and size; artifactType: its own, else a manifest's config media type; its
 * annotations), and the subject's digest; null when the document has no subject or is not JSON
 * of either kind.
 */
export function referrerEntry(desc: Pick<Descriptor, "mediaType" | "digest" | "size">, bytes: Buffer): { subject: string; desc: Descriptor } | null {
  if (!isManifestMediaType(desc.mediaType) && !isIndexMediaType(desc.mediaType)) return null;
  let j: { subject?: { digest?: unknown }; artifactType?: unknown; config?: { mediaType?: unknown }; annotations?: unknown };
  try { j = JSON.parse(bytes.toString("utf8")); } catch { return null; }
  if (!j || typeof j !== "object" || typeof j.subject?.digest !== "string") return null;
  const out: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
  const at = typeof j.artifactType === "string" && j.artifactType ? j.artifactType
    : isManifestMediaType(desc.mediaType) && typeof j.config?.mediaType === "string" ? j.config.mediaType : undefined;
  if (at !== undefined) out.artifactType = at;
  if (j.annotations && typeof j.annotations === "object" && !Array.isArray(j.annotations)) {
    const a = Object.entries(j.annotations as Record<string, unknown>).filter(([, v]) => typeof v === "string");
    if (a.length) out.annotations = Object.fromEntries(a) as Record<string, string>;
  }
  return { subject: j.subject.digest, desc: out };
}

/**
 * The referrers of `subject` in the client's repository: the API's list, or (no API) the
 * manifests and indexes the referrers tag's index lists (none when the tag is missing; a tag
 * that names something other than an image index is passed over with a warning). `via` says
 * which was read.
 */
export async function registryReferrers(client: RegistryApi, subject: string, where: string): Promise<{ via: "api" | "tag"; manifests: Descriptor[] }> {
  const api = await client.listReferrers(subject);
  if (api !== null) return { via: "api", manifests: api.filter((d) => isManifestMediaType(d.mediaType) || isIndexMediaType(d.mediaType)) };
  const ix = await readReferrersTag(client, subject, where);
  return { via: "tag", manifests: (ix?.manifests ?? []).filter((d) => isManifestMediaType(d.mediaType) || isIndexMediaType(d.mediaType)) };
}

/**
 * Add `entries` (referrers of `subject` the registry did not index itself) to the subject's
 * referrers tag: the index read (or begun empty when the tag is missing), each entry appended
 * unless its digest is listed, written back only when something was added. A tag that names
 * anything but an image index is left alone with a warning (the spec: report it and skip).
 */
export async function addToReferrersTag(client: RegistryApi, subject: string, entries: Descriptor[], where: string): Promise<void> {
  const tag = referrersTag(subject);
  const ix = await readReferrersTag(client, subject, where);
  if (ix === undefined) return;
  const current = ix?.manifests ?? [];
  const have = new Set(current.map((d) => d.digest));
  const add = entries.filter((d) => !have.has(d.digest) && (have.add(d.digest), true));
  if (!add.length) return;
  const next: ImageIndex = { ...(ix ?? {}), schemaVersion: 2, mediaType: MediaType.index, manifests: [...current, ...add] };
  // Go's json.Marshal form (no newline), as the Go clients (oras, regclient) write this index.
  await client.putManifest(tag, Buffer.from(encodeGoValue(next, GoIndex)), MediaType.index);
}

/** The referrers tag's index; null when the tag is missing, undefined (warned) when it is not an image index. */
async function readReferrersTag(client: RegistryApi, subject: string, where: string): Promise<ImageIndex | null | undefined> {
  const tag = referrersTag(subject);
  let got: { bytes: Buffer; mediaType: string };
  try {
    got = await client.getManifest(tag);
  } catch (e) {
    if (e instanceof NotFoundError) return null;
    throw e;
  }
  const mediaType = got.mediaType.split(";")[0]!.trim();
  if (mediaType !== MediaType.index) {
    log.warn(`${where}: tag ${tag} names a ${mediaType || "document"}, not the image index of the referrers of ${subject}; it is left as it is`);
    return undefined;
  }
  try {
    return decodeJsonBlob<ImageIndex>(got.bytes, { mediaType, digest: sha256Digest(got.bytes), size: got.bytes.length }, "index");
  } catch (e) {
    if (!(e instanceof InvalidError)) throw e;
    log.warn(`${where}: tag ${tag} is not a valid image index (${e.message}); it is left as it is`);
    return undefined;
  }
}
