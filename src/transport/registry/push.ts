/**
 * pushImage: copy's `docker://` destination. A planned image or index (copy.ts makePlan) goes
 * to one repository of a registry:
 *
 *  - blobs first (configs and layers, `concurrency` at a time, each streamed from the source's
 *    verified getBlob): the client's putBlob skips a blob the registry has (HEAD), mounts it
 *    (`?mount=&from=`) when the source is another repository of the same registry, else uploads
 *    it (monolithic or chunked, resuming inside); a rerun after an interrupted push therefore
 *    moves only the blobs that did not get there;
 *  - then each manifest with its exact source bytes and media type (Docker types as they are:
 *    the registry speaks both), pushed by digest; with `format` a manifest of the other kind is
 *    converted (image/convert.ts) and written as umoci writes JSON (go-json);
 *  - the children of an index before the index (an index whose children changed is rewritten
 *    naming the new digests);
 *  - the tag last (`putManifest(tag, …)`): until then the registry's tag still names what it
 *    named before. A digest reference is pushed by digest and must match what is pushed;
 *  - a manifest (or index) with a `subject` whose PUT the registry did not answer with
 *    `OCI-Subject` (it has no referrers API) is added to the subject's referrers tag
 *    (referrers.ts addToReferrersTag) once everything is pushed; one the registry answered is
 *    left to its referrers API, and no tag is written.
 *
 * The digest the registry answers for a manifest must be the one of the bytes sent
 * (InvalidError otherwise). Errors name the registry and repository; no credential appears.
 */
import { InvalidError, UsageError, addContext } from "../../errors";
import type { BlobReader } from "../../cas/source";
import { sha256Digest } from "../../cas/source";
import { encodeGoJson, goTypeFor } from "../../cas/go-json";
import {
  type Descriptor, type ImageIndex, type Manifest, MediaType, isDockerMediaType, toDockerIndex, toDockerManifest, toOciIndex, toOciManifest,
} from "../../image";
import { type Plan, BlobPool, CopyTally } from "../layout-dest";
import { type RegistryApi, openRegistryClient, repoName } from "./reader";
import { addToReferrersTag, referrerEntry } from "./referrers";
import type { DockerReference, RegistryOptions } from "./types";

export interface PushOptions {
  /** credentials, TLS, retries and `concurrency` (default 4) for the destination */
  registry?: RegistryOptions;
  /** a repository of the same registry the blobs can be mounted from (the source's) */
  mountFrom?: string;
  /** convert manifests to this kind (`--format`); else they keep their bytes and types */
  format?: "oci" | "v2s2";
  /** the client to use (tests); default a RegistryClient for pull and push */
  client?: RegistryApi;
}

/**
 * Push `plan` (read from `reader`) to `dst` (see the file comment) and return the descriptor
 * the tag (or digest) now names. Throws UsageError when `dst` names a digest other than the
 * pushed manifest's, InvalidError for a source blob that does not match its descriptor or a
 * registry that answers another digest, UnsupportedError when a `format` conversion is
 * impossible, and the client's errors (exit 1: network, auth; naming the registry and
 * repository). The tag is never pushed when anything before it failed.
 */
export async function pushImage(reader: BlobReader, plan: Plan, dst: DockerReference, tally: CopyTally, opts: PushOptions = {}): Promise<Descriptor> {
  const where = repoName(dst);
  const client = opts.client ?? openRegistryClient(dst, opts.registry ?? {}, ["pull", "push"]);
  const pool = new BlobPool(Math.max(1, opts.registry?.concurrency ?? 4));
  const mountFrom = opts.mountFrom && opts.mountFrom !== dst.repository ? opts.mountFrom : undefined;
  try {
    const pushBlob = async (d: Descriptor): Promise<void> => {
      const running = pool.inflight.get(d.digest);
      if (running) { await running; tally.begin(d).skip(); return; }
      const task = pool.run(async () => {
        const t = tally.begin(d);
        const open = (offset: number) => CopyTally.tap(skipBytes(reader.getBlob(d), offset), t.moved);
        const how = await client.putBlob({ digest: d.digest, size: d.size }, open, mountFrom ? { mountFrom } : {});
        if (how === "exists") t.skip();
        else t.done(how === "uploaded" ? d.size : 0);
      });
      pool.inflight.set(d.digest, task.catch(() => undefined));
      await task;
    };

    // A manifest an index names twice is pushed once: concurrent PUTs of one manifest can make
    // a registry's storage (distribution's filesystem driver) read back a half-written file.
    const pushed = new Map<string, Promise<{ desc: Descriptor; bytes: Buffer }>>();
    /** referrers the registry did not index itself, by subject: for the referrers tag schema */
    const untracked = new Map<string, Descriptor[]>();
    /** Push what is under `p` and `p` itself unless it is the top (pushed by the caller). */
    const push = (p: Plan, isTop: boolean): Promise<{ desc: Descriptor; bytes: Buffer }> => {
      if (isTop || p.kind === "blob") return pushNode(p, isTop);
      let once = pushed.get(p.desc.digest);
      if (!once) { once = pushNode(p, false); pushed.set(p.desc.digest, once); }
      return once;
    };
    const pushNode = async (p: Plan, isTop: boolean): Promise<{ desc: Descriptor; bytes: Buffer }> => {
      if (p.kind === "blob") {
        await pushBlob(p.desc);
        return { desc: p.desc, bytes: Buffer.alloc(0) };
      }
      let out: { desc: Descriptor; bytes: Buffer };
      if (p.kind === "manifest") {
        await pool.all([p.manifest.config, ...p.manifest.layers], (d) => pushBlob(d));
        out = manifestToPush(p.desc, p.bytes, p.manifest, opts.format);
      } else {
        const children = await pool.all(p.children, (c) => push(c, false));
        out = indexToPush(p.desc, p.bytes, p.index, children.map((c) => c.desc), opts.format);
      }
      if (!isTop) await putManifest(client, out.desc.digest, out, tally, untracked);
      return out;
    };

    const top = await push(plan, true);
    if (plan.kind === "blob") throw new InvalidError(`${plan.desc.digest}: neither an image manifest nor an index`);
    if (dst.digest && dst.digest !== top.desc.digest)
      throw new UsageError(`${where}@${dst.digest}: the image pushed has digest ${top.desc.digest}; name it by tag or by that digest`);
    await putManifest(client, dst.digest ?? dst.tag ?? "latest", top, tally, untracked);
    for (const [subject, entries] of untracked) await addToReferrersTag(client, subject, entries, where);
    return { mediaType: top.desc.mediaType, digest: top.desc.digest, size: top.desc.size };
  } catch (e) {
    throw addContext(`push to ${where}`, e);
  }
}

/**
 * PUT one manifest and check the digest the registry answers. One with a `subject` the registry
 * did not acknowledge (`OCI-Subject`) is noted in `untracked` for the referrers tag.
 */
async function putManifest(
  client: RegistryApi, ref: string, m: { desc: Descriptor; bytes: Buffer }, tally: CopyTally, untracked: Map<string, Descriptor[]>,
): Promise<void> {
  const t = tally.begin(m.desc);
  const { digest: got, ociSubject } = await client.putManifestReply(ref, m.bytes, m.desc.mediaType);
  if (got && got !== m.desc.digest) throw new InvalidError(`manifest ${m.desc.digest}: the registry stored it as ${got}`);
  const r = referrerEntry(m.desc, m.bytes);
  // Only an OCI-Subject naming this very subject says the registry indexed it.
  if (r && ociSubject !== r.subject) untracked.set(r.subject, [...(untracked.get(r.subject) ?? []), r.desc]);
  t.done(m.bytes.length);
}

/** The manifest as it is pushed: its own bytes, or converted for `format`. */
function manifestToPush(desc: Descriptor, bytes: Buffer, m: Manifest, format: PushOptions["format"]): { desc: Descriptor; bytes: Buffer } {
  const docker = isDockerMediaType(desc.mediaType);
  if (format === "oci" && docker) return encoded(toOciManifest(m), MediaType.manifest);
  if (format === "v2s2" && !docker) return encoded(toDockerManifest(m), MediaType.dockerManifest);
  return { desc: { mediaType: desc.mediaType, digest: desc.digest, size: desc.size }, bytes };
}

/** The index as it is pushed: its own bytes when nothing under it changed, else rewritten. */
function indexToPush(desc: Descriptor, bytes: Buffer, ix: ImageIndex, children: Descriptor[], format: PushOptions["format"]): { desc: Descriptor; bytes: Buffer } {
  const docker = isDockerMediaType(desc.mediaType);
  const same = children.every((c, i) => c.digest === ix.manifests[i]!.digest && c.mediaType === ix.manifests[i]!.mediaType);
  const want = format === "oci" ? "oci" : format === "v2s2" ? "docker" : docker ? "docker" : "oci";
  if (same && (want === "docker") === docker) return { desc: { mediaType: desc.mediaType, digest: desc.digest, size: desc.size }, bytes };
  const out = want === "oci" ? toOciIndex(ix) : toDockerIndex(ix);
  out.manifests = out.manifests.map((m, i) => ({ ...m, mediaType: children[i]!.mediaType, digest: children[i]!.digest, size: children[i]!.size }));
  return encoded(out, want === "oci" ? MediaType.index : MediaType.dockerManifestList);
}

function encoded(obj: Manifest | ImageIndex, mediaType: string): { desc: Descriptor; bytes: Buffer } {
  const bytes = Buffer.from(encodeGoJson(obj, goTypeFor(mediaType)));
  return { desc: { mediaType, digest: sha256Digest(bytes), size: bytes.length }, bytes };
}

/** `src` without its first `n` bytes (the blob is still read, and verified, from its start). */
export async function* skipBytes(src: AsyncIterable<Buffer>, n: number): AsyncGenerator<Buffer> {
  let left = n;
  for await (const c of src) {
    if (left >= c.length) { left -= c.length; continue; }
    yield left > 0 ? c.subarray(left) : c;
    left = 0;
  }
}
