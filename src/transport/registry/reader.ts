/**
 * RegistryReader: a BlobReader (cas/source.ts) over one repository of a registry, copy's
 * `docker://` source.
 *
 * At open it fetches the manifest the reference names (by tag or digest), and under an index
 * every child manifest (nested indexes too, 16 deep at most), and every manifest's config: all
 * small JSON documents, each verified against its descriptor (digest, then size, then media
 * type) and held in memory, so readIndex / readBlob / readJson answer synchronously as the other
 * readers do. Layers are never held: getBlob streams them from the registry through
 * verifyChunks (digest before size, the last chunk held back), and getBlobFrom serves their raw
 * bytes from an offset for a resumable download (the caller verifies the whole blob).
 *
 * The registry is trusted for nothing: a manifest fetched by digest must hash to it, a tag's
 * manifest is named by the digest of the bytes received, and a body whose `mediaType` differs
 * from the descriptor's is refused (InvalidError, exit 4). Schema-1 manifests are refused
 * (UnsupportedError, exit 6). Errors name the registry and the repository, never a credential.
 */
import { InvalidError, NotFoundError, UnsupportedError, addContext } from "../../errors";
import {
  type BlobReader, type JsonKind, MAX_JSON_BLOB, decodeJsonBlob, embeddedData, sha256Digest, verifyChunks, verifyRead, checkDescriptor, checkSmallBlob,
} from "../../cas/source";
import {
  type Descriptor, type ImageIndex, type Manifest, AnnotationRefName, MediaType, isIndexMediaType, isManifestMediaType,
} from "../../image";
import type { DockerReference, RegistryOptions } from "./types";
import { BlobPool } from "../layout-dest";

/**
 * What the registry transport needs of the HTTP client (client.ts RegistryClient): the
 * distribution API of one repository, with auth, retries and resume inside it.
 */
export interface RegistryApi {
  getManifest(ref: string): Promise<{ bytes: Buffer; mediaType: string; digest: string }>;
  headBlob(digest: string): Promise<number | null>;
  /** raw bytes of a blob from `offset` (unverified; retried and resumed inside) */
  getBlob(digest: string, opts?: { offset?: number; size?: number }): AsyncGenerator<Buffer>;
  putBlob(
    desc: { digest: string; size: number }, open: (offset: number) => AsyncIterable<Buffer>, opts?: { mountFrom?: string },
  ): Promise<"exists" | "mounted" | "uploaded">;
  putManifest(ref: string, bytes: Buffer, mediaType: string): Promise<string>;
  /** putManifest with the registry's `OCI-Subject` reply (null when absent) */
  putManifestReply(ref: string, bytes: Buffer, mediaType: string): Promise<{ digest: string; ociSubject: string | null }>;
  /** the referrers API's descriptors for `subject` (every page), or null when the registry has no such API */
  listReferrers(subject: string, opts?: { artifactType?: string }): Promise<Descriptor[] | null>;
}

/**
 * The client for one repository (client.ts RegistryClient), for `actions` (`pull`, `push`).
 * Loaded on first use so the commands that never see a registry do not load it.
 */
export function openRegistryClient(ref: Pick<DockerReference, "registry" | "repository">, opts: RegistryOptions, actions: ("pull" | "push")[]): RegistryApi {
  const { RegistryClient } = require("./client") as { RegistryClient: new (registry: string, repository: string, opts: RegistryOptions, actions: string[]) => RegistryApi };
  return new RegistryClient(ref.registry, ref.repository, opts, actions);
}

/** `docker://HOST/REPO` for messages (no tag or digest). */
export function repoName(ref: Pick<DockerReference, "registry" | "repository">): string {
  return `docker://${ref.registry}/${ref.repository}`;
}

const MAX_DEPTH = 16;
/** Manifests and configs fetched at once while opening. */
const OPEN_CONCURRENCY = 4;

export class RegistryReader implements BlobReader {
  /** `docker://HOST/REPO:TAG` (or `@DIGEST`), for messages */
  readonly path: string;
  /** the top-level descriptor the reference names (digest of the bytes received) */
  readonly top: Descriptor;
  private readonly held = new Map<string, Buffer>();

  private constructor(readonly ref: DockerReference, readonly client: RegistryApi, top: Descriptor, held: Map<string, Buffer>) {
    this.path = ref.digest ? `${repoName(ref)}@${ref.digest}` : `${repoName(ref)}:${ref.tag ?? "latest"}`;
    this.top = top;
    this.held = held;
  }

  /**
   * Fetch what the reference names and everything small under it (see the file comment).
   * Throws NotFoundError (no such manifest), InvalidError (a document that does not match its
   * descriptor or does not validate), UnsupportedError (schema 1, an unknown top media type),
   * and the client's errors (network, auth: exit 1) with the registry and repository named.
   */
  static async open(ref: DockerReference, opts: RegistryOptions = {}, client?: RegistryApi): Promise<RegistryReader> {
    const api = client ?? openRegistryClient(ref, opts, ["pull"]);
    const name = ref.digest ? `${repoName(ref)}@${ref.digest}` : `${repoName(ref)}:${ref.tag ?? "latest"}`;
    const held = new Map<string, Buffer>();
    const pool = new BlobPool(Math.max(1, opts.concurrency ?? OPEN_CONCURRENCY));
    try {
      const got = await api.getManifest(ref.digest ?? ref.tag ?? "latest");
      const mediaType = bareMediaType(got.mediaType, got.bytes);
      refuseOddManifest(mediaType, name);
      const digest = sha256Digest(got.bytes);
      if (ref.digest && ref.digest !== digest)
        throw new InvalidError(`${name}: the registry answered a manifest whose digest is ${digest}`);
      const top: Descriptor = { mediaType, digest, size: got.bytes.length };
      held.set(digest, got.bytes);
      const fetchJson = async (d: Descriptor, kind: JsonKind, depth: number): Promise<void> => {
        if (depth > MAX_DEPTH) throw new InvalidError(`index ${d.digest}: nested more than ${MAX_DEPTH} deep`);
        let bytes = held.get(d.digest);
        if (!bytes) {
          checkDescriptor(d);
          if (d.size > MAX_JSON_BLOB) throw new InvalidError(`${kind} ${d.digest}: size ${d.size} exceeds the limit of ${MAX_JSON_BLOB} bytes for this kind of blob`);
          // Only the fetch takes a slot: the walk below it must not wait while holding one.
          bytes = embeddedData(d) ?? await pool.run(() => (kind === "config" ? fetchBlob(api, d) : fetchManifest(api, d)));
          held.set(d.digest, bytes);
        }
        if (kind === "config") return;
        if (isIndexMediaType(d.mediaType)) {
          const ix = decodeJsonBlob<ImageIndex>(bytes, d, "index");
          await Promise.all(ix.manifests
            .filter((c) => isManifestMediaType(c.mediaType) || isIndexMediaType(c.mediaType))
            .map((c) => fetchJson(c, "manifest", depth + 1)));
          return;
        }
        const m = decodeJsonBlob<Manifest>(bytes, d, "manifest");
        // Configs of artifacts too: makePlan reads every manifest's config.
        if (m.config.size <= MAX_JSON_BLOB) await fetchJson(m.config, "config", depth + 1);
      };
      await fetchJson(top, isIndexMediaType(mediaType) ? "index" : "manifest", 0);
      return new RegistryReader(ref, api, top, held);
    } catch (e) {
      throw named(ref, name, e);
    }
  }

  /** One entry: the top descriptor, named by the reference's tag when it has one. */
  readIndex(): ImageIndex {
    const entry: Descriptor = { ...this.top };
    if (this.ref.tag && !this.ref.digest) entry.annotations = { [AnnotationRefName]: this.ref.tag };
    return { schemaVersion: 2, mediaType: MediaType.index, manifests: [entry] };
  }

  /** Whether the blob is one of the documents held in memory (the registry is not asked). */
  hasBlob(digest: string): boolean {
    return this.held.has(digest);
  }

  /**
   * A manifest, index or config fetched at open (verified then), or embedded `data`. Anything
   * else (a layer) is NotFoundError: stream it with getBlob.
   */
  readBlob(desc: Pick<Descriptor, "digest" | "size" | "data">, maxSize = MAX_JSON_BLOB): Buffer {
    const digest = checkSmallBlob(desc, maxSize);
    const embedded = embeddedData(desc);
    if (embedded) return embedded;
    const b = this.held.get(digest);
    if (!b) throw new NotFoundError(`${repoName(this.ref)}: blob ${digest} was not fetched with the manifests`);
    verifyRead(digest, desc.size, digest, b.length, b.length > desc.size);
    return b;
  }

  /** A blob's verified stream from the registry (verifyChunks), or a held document's bytes. */
  async *getBlob(desc: Pick<Descriptor, "digest" | "size">): AsyncGenerator<Buffer> {
    const digest = checkDescriptor(desc);
    const b = this.held.get(digest);
    if (b) {
      verifyRead(digest, desc.size, digest, b.length, b.length > desc.size);
      yield b;
      return;
    }
    try {
      yield* verifyChunks(this.client.getBlob(digest, { size: desc.size }), desc);
    } catch (e) {
      throw named(this.ref, this.path, e);
    }
  }

  /** The blob's raw bytes from `offset` (RangeReader): not verified, the caller verifies. */
  getBlobFrom(desc: Pick<Descriptor, "digest" | "size">, offset: number): AsyncIterable<Buffer> {
    return this.client.getBlob(checkDescriptor(desc), { offset, size: desc.size });
  }

  readJson<T>(desc: Descriptor, kind: JsonKind): T {
    return decodeJsonBlob<T>(this.readBlob(desc), desc, kind);
  }

  /** Nothing collects a registry's blobs under a reader: no lock. */
  lockGc(): void {}

  close(): void {}
}

/** `e` with `context` in front unless its message already names the registry and repository. */
function named(ref: DockerReference, context: string, e: unknown): unknown {
  if (e instanceof Error && e.message.includes(`${ref.registry}/${ref.repository}`)) return e;
  return addContext(context, e);
}

/** `Content-Type` without parameters; a body's own `mediaType` when the header says nothing useful. */
function bareMediaType(contentType: string, bytes: Buffer): string {
  const mt = (contentType ?? "").split(";")[0]!.trim();
  if (mt && mt !== "application/json" && mt !== "text/plain" && mt !== "application/octet-stream") return mt;
  try {
    const own = (JSON.parse(bytes.toString("utf8")) as { mediaType?: unknown }).mediaType;
    if (typeof own === "string") return own;
  } catch { /* decodeJsonBlob says why */ }
  return mt || MediaType.manifest;
}

function refuseOddManifest(mediaType: string, name: string): void {
  if (mediaType === MediaType.dockerSchema1Signed || mediaType === "application/vnd.docker.distribution.manifest.v1+json")
    throw new UnsupportedError(`${name}: Docker schema-1 manifests are not supported`);
  if (!isManifestMediaType(mediaType) && !isIndexMediaType(mediaType))
    throw new UnsupportedError(`${name}: media type ${mediaType} is neither an image manifest nor an index`);
}

/** A manifest by digest, checked against its descriptor (digest, size; media type when decoded). */
async function fetchManifest(api: RegistryApi, d: Descriptor): Promise<Buffer> {
  const got = await api.getManifest(d.digest);
  verifyRead(d.digest, d.size, sha256Digest(got.bytes.subarray(0, d.size)), Math.min(got.bytes.length, d.size), got.bytes.length > d.size);
  return got.bytes;
}

/** A small blob (a config) read whole through verifyChunks. */
async function fetchBlob(api: RegistryApi, d: Descriptor): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of verifyChunks(api.getBlob(d.digest, { size: d.size }), d)) parts.push(c);
  return Buffer.concat(parts);
}
