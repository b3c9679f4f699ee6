/**
 * docker-archive: what `docker save` writes and `docker load` reads — `manifest.json` (a list of
 * {Config, RepoTags, Layers}), one config JSON member and one tar member per layer.
 *
 *  - `DockerArchiveReader` reads the archive in place (tar-members.ts) and stands for it with a
 *    synthetic OCI view: one OCI manifest per manifest.json image (config digest = the digest of
 *    the config member's bytes; an uncompressed layer's digest = its diffID, a compressed one's
 *    the digest of its bytes, hashed once at open), serialised as Go would (go-json.ts) so its
 *    bytes and digest are stable, and an index with one entry per RepoTag. Every config and
 *    layer member is verified as it is read (cas/source.ts).
 *  - `writeDockerArchive` writes one image: layers uncompressed (diffIDs checked), the config's
 *    exact bytes, `manifest.json`, `repositories`; streamed, atomic.
 *
 * Both Docker layouts are read (1.10–24: `<hex>.json`, `<v1id>/layer.tar`; 25+: an OCI layout
 * beside manifest.json with members under `blobs/sha256/`), and skopeo's (`<diffid>.tar`,
 * `<config>.json`, `<v1id>/layer.tar` symlinks).
 */
import * as fs from "node:fs";
import { Transform } from "node:stream";
import { InvalidError, NotFoundError, UsageError, addContext } from "../errors";
import { type Descriptor, type ImageConfig, type ImageIndex, type Manifest, AnnotationRefName, MediaType, parseDigest, sha256Hex } from "../image";
import {
  type BlobStreamOptions, MAX_JSON_BLOB, checkDescriptor, checkSmallBlob, decodeJsonBlob, embeddedData, readVerified,
  sha256Digest, streamVerified, verifyRead,
} from "../cas/source";
import { GoManifest, encodeGoJson } from "../cas/go-json";
import { type Compression, compressionFromMediaType, createDecompressor, sniffCompression } from "../compress";
import { parseJsonStrict } from "../util/json";
import { escapeText } from "../util/escape";
import type { ImageToWrite } from "./types";
import type { WriteArchiveOptions } from "./oci-archive";
import { ArchiveReader } from "./archive-reader";
import { type TarIndex, type TarMember, createTarFileWriter, openTarFile, readMember } from "./tar-members";

const q = (s: string) => escapeText(s, "always");

/** One image of manifest.json as the reader stands for it. */
export interface DockerArchiveImage {
  /** the synthetic OCI manifest's descriptor */
  manifest: Descriptor;
  /** manifest.json's RepoTags, as written there */
  repoTags: string[];
}

/** A blob served from a member: a config or a layer. */
interface MemberBlob { member: TarMember; size: number }

/** A read-only docker-archive with a synthetic OCI view; see the module comment. */
export class DockerArchiveReader extends ArchiveReader {
  private constructor(
    path: string,
    fd: number,
    private readonly list: DockerArchiveImage[],
    private readonly manifests: Map<string, Buffer>,
    private readonly blobs: Map<string, MemberBlob>,
  ) {
    super(path, fd, "docker-archive");
  }

  /**
   * Open and index `file`, parse `manifest.json` and build the OCI view. NotFoundError when
   * `file` does not exist. InvalidError for a file that is not an uncompressed tar, a hostile
   * member (tar-members.ts), a missing, oversized (over MAX_JSON_BLOB) or malformed
   * manifest.json, an entry naming a member that is missing or outside the archive, a config that
   * is not valid or whose diff_ids count differs from its Layers, a layer member that is neither
   * a tar nor gzip/zstd, one member standing for two different diffIDs. The caller closes it.
   */
  static open(file: string): DockerArchiveReader {
    const { fd, index } = openTarFile(file, "docker-archive");
    try {
      const built = buildView(fd, index, `open docker-archive ${file}`);
      return new DockerArchiveReader(file, fd, built.list, built.manifests, built.blobs);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }


  /** manifest.json's images, in its order (`@N` is the Nth), each with its synthetic manifest. */
  images(): DockerArchiveImage[] {
    return this.list.map((i) => ({ manifest: { ...i.manifest }, repoTags: [...i.repoTags] }));
  }

  /**
   * The synthetic index: for each image in manifest.json order one entry per RepoTag
   * (annotation org.opencontainers.image.ref.name = the RepoTag as written), or one entry with
   * no annotation for an image without RepoTags.
   */
  readIndex(): ImageIndex {
    this.check();
    const manifests: Descriptor[] = [];
    for (const i of this.list) {
      if (i.repoTags.length === 0) manifests.push({ ...i.manifest });
      for (const t of i.repoTags) manifests.push({ ...i.manifest, annotations: { [AnnotationRefName]: t } });
    }
    return { schemaVersion: 2, mediaType: MediaType.index, manifests };
  }

  hasBlob(digest: string): boolean {
    this.check();
    const d = parseDigest(digest);
    return this.manifests.has(d) || this.blobs.has(d);
  }

  readBlob(desc: Pick<Descriptor, "digest" | "size" | "data">, maxSize = MAX_JSON_BLOB): Buffer {
    this.check();
    const digest = checkSmallBlob(desc, maxSize);
    const embedded = embeddedData(desc);
    if (embedded) return embedded;
    const mem = this.manifests.get(digest);
    if (mem) return verifiedMemory(mem, desc);
    const b = this.need(digest);
    return readVerified(this.fd, desc, { start: b.member.offset, limit: b.member.offset + b.member.size, maxSize });
  }

  async *getBlob(desc: Pick<Descriptor, "digest" | "size">, opts: BlobStreamOptions = {}): AsyncGenerator<Buffer> {
    this.check();
    const digest = checkDescriptor(desc);
    const mem = this.manifests.get(digest);
    if (mem) {
      yield verifiedMemory(mem, desc);
      return;
    }
    const b = this.need(digest);
    yield* streamVerified(this.fd, desc, { start: b.member.offset, limit: b.member.offset + b.member.size, chunkSize: opts.chunkSize, releasable: opts.releasable });
  }




  private need(digest: string): MemberBlob {
    const b = this.blobs.get(digest);
    if (!b) throw new NotFoundError(`blob ${digest}: not found in docker-archive ${this.path}`);
    return b;
  }
}

/** An in-memory blob (a synthetic manifest) checked against `desc` by the verified reader's verdict. */
function verifiedMemory(bytes: Buffer, desc: Pick<Descriptor, "digest" | "size">): Buffer {
  const body = bytes.subarray(0, Math.min(bytes.length, desc.size));
  verifyRead(desc.digest, desc.size, sha256Digest(body), body.length, bytes.length > desc.size);
  return body;
}

interface ManifestItem { Config: string; RepoTags: string[]; Layers: string[] }

/** manifest.json, shape-checked. */
function parseManifestJson(bytes: Buffer, what: string): ManifestItem[] {
  let obj: unknown;
  try {
    obj = parseJsonStrict(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new InvalidError(`${what}: manifest.json: ${e instanceof TypeError ? "not valid UTF-8" : (e as Error).message}`);
  }
  if (!Array.isArray(obj)) throw new InvalidError(`${what}: manifest.json: must be a JSON array`);
  if (obj.length === 0) throw new InvalidError(`${what}: manifest.json: holds no image`);
  return obj.map((it, i) => {
    const at = `${what}: manifest.json[${i}]`;
    if (typeof it !== "object" || it === null || Array.isArray(it)) throw new InvalidError(`${at}: must be an object`);
    const o = it as Record<string, unknown>;
    if (typeof o.Config !== "string" || o.Config === "") throw new InvalidError(`${at}: Config must be a non-empty string`);
    const tags = o.RepoTags ?? [];
    if (!Array.isArray(tags) || tags.some((t) => typeof t !== "string")) throw new InvalidError(`${at}: RepoTags must be an array of strings`);
    const layers = o.Layers ?? [];
    if (!Array.isArray(layers) || layers.some((t) => typeof t !== "string" || t === "")) throw new InvalidError(`${at}: Layers must be an array of non-empty strings`);
    return { Config: o.Config, RepoTags: tags as string[], Layers: layers as string[] };
  });
}

/** The member a manifest.json path names (a regular file after links), refused when missing or outside. */
function memberFor(index: TarIndex, p: string, what: string): TarMember {
  let m: TarMember | undefined;
  try {
    m = index.resolveFile(p, `${what} ${q(p)}`);
  } catch (e) {
    if (e instanceof InvalidError && /absolute name|".." component/.test(e.message)) throw new InvalidError(`archive ${index.archive}: ${what} ${q(p)} is outside the archive`);
    throw e;
  }
  if (!m) throw new InvalidError(`archive ${index.archive}: ${what} ${q(p)} is not in the archive`);
  return m;
}

const HEAD = 512;

/** Build the OCI view of every image (see DockerArchiveReader.open). */
function buildView(fd: number, index: TarIndex, what: string): { list: DockerArchiveImage[]; manifests: Map<string, Buffer>; blobs: Map<string, MemberBlob> } {
  const mj = index.resolveFile("manifest.json");
  if (!mj) throw new InvalidError(`${what}: not a docker archive (no manifest.json member)`);
  const items = parseManifestJson(readMember(fd, mj, MAX_JSON_BLOB, `${what}: manifest.json`), what);
  const manifests = new Map<string, Buffer>();
  const blobs = new Map<string, MemberBlob>();
  /** per layer member (by offset): the descriptor it became, and for an uncompressed one its diffID */
  const layerDescs = new Map<number, { desc: Descriptor; diffID?: string }>();
  const list: DockerArchiveImage[] = [];
  items.forEach((it, i) => {
    const at = `${what}: image ${i}`;
    const cm = memberFor(index, it.Config, `image ${i} config`);
    const configBytes = readMember(fd, cm, MAX_JSON_BLOB, `${at}: config ${q(it.Config)}`);
    const configDesc: Descriptor = { mediaType: MediaType.config, digest: sha256Digest(configBytes), size: configBytes.length };
    const config = decodeConfig(configBytes, configDesc, at);
    const diffIDs = config.rootfs.diff_ids ?? [];
    if (diffIDs.length !== it.Layers.length) throw new InvalidError(`${at}: config has ${diffIDs.length} diff_ids but manifest.json lists ${it.Layers.length} layers`);
    blobs.set(configDesc.digest, { member: cm, size: cm.size });
    const layers = it.Layers.map((p, n) => {
      const diffID = parseDigest(diffIDs[n]);
      sha256Hex(diffID);
      const lm = memberFor(index, p, `image ${i} layer ${n + 1}`);
      const known = layerDescs.get(lm.offset);
      if (known) {
        if (known.diffID !== undefined && known.diffID !== diffID) throw new InvalidError(`${at}: layer member ${q(p)} stands for two diffIDs (${known.diffID} and ${diffID})`);
        return { ...known.desc };
      }
      const head = Buffer.alloc(Math.min(HEAD, lm.size));
      fs.readSync(fd, head, 0, head.length, lm.offset);
      const c = sniffCompression(head);
      let desc: Descriptor;
      if (c === "none") {
        desc = { mediaType: MediaType.layer, digest: diffID, size: lm.size };
        layerDescs.set(lm.offset, { desc, diffID });
      } else if (c === "gzip" || c === "zstd") {
        desc = { mediaType: c === "gzip" ? MediaType.layerGzip : MediaType.layerZstd, digest: hashMember(fd, lm), size: lm.size };
        layerDescs.set(lm.offset, { desc });
      } else throw new InvalidError(`${at}: layer ${n + 1} ${q(p)} is not a tar archive (nor gzip or zstd)`);
      blobs.set(desc.digest, { member: lm, size: lm.size });
      return { ...desc };
    });
    const manifest: Manifest = { schemaVersion: 2, mediaType: MediaType.manifest, config: configDesc, layers };
    const bytes = Buffer.from(encodeGoJson(manifest, GoManifest));
    const digest = sha256Digest(bytes);
    manifests.set(digest, bytes);
    list.push({ manifest: { mediaType: MediaType.manifest, digest, size: bytes.length }, repoTags: it.RepoTags });
  });
  return { list, manifests, blobs };
}

function decodeConfig(bytes: Buffer, desc: Descriptor, at: string): ImageConfig {
  try {
    return decodeJsonBlob<ImageConfig>(bytes, desc, "config");
  } catch (e) {
    throw addContext(at, e);
  }
}

/** sha256 of a member's bytes (a compressed layer, hashed once at open). */
function hashMember(fd: number, m: TarMember): string {
  const h = new Bun.CryptoHasher("sha256");
  const buf = Buffer.allocUnsafe(Math.min(1 << 20, Math.max(1, m.size)));
  for (let pos = 0; pos < m.size;) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.length, m.size - pos), m.offset + pos);
    if (n === 0) throw new InvalidError(`layer member ${q(m.name)}: truncated`);
    h.update(buf.subarray(0, n));
    pos += n;
  }
  return "sha256:" + h.digest("hex");
}

/** The compression a layer media type names (Docker's `.tar.zstd` too). */
function layerCompression(mediaType: string): Compression {
  if (mediaType.endsWith(".tar.zstd")) return "zstd";
  return compressionFromMediaType(mediaType);
}

/** Split `NAME:TAG` (the tag after the last `:` past the last `/`). */
function splitRepoTag(t: string): [string, string] {
  const slash = t.lastIndexOf("/");
  const colon = t.lastIndexOf(":");
  if (colon <= slash || colon === t.length - 1 || t.includes("@")) throw new UsageError(`docker-archive repo tag ${q(t)}: not NAME:TAG`);
  return [t.slice(0, colon), t.slice(colon + 1)];
}

/**
 * Write `img` as the docker-archive `file` with RepoTags `repoTags` (NAME:TAG each, written as
 * given; none is allowed). Members, in this order: each distinct layer as `<diffID-hex>.tar`
 * (its verified stream decompressed by its media type, the result's sha256 checked against its
 * diffID: InvalidError on a mismatch; written once when the image uses it twice), the config
 * as `<config-hex>.json` (its exact bytes, checked against its descriptor), `manifest.json`
 * (one {Config, RepoTags, Layers} item) and, when there are tags, `repositories`. Fixed member
 * metadata as writeOciArchive's. Streamed: a layer's header is written after its data (its size
 * is only known then); no layer is held in memory or decompressed to a temporary copy. Atomic:
 * a failure leaves no file. UsageError for a repo tag that is not NAME:TAG.
 */
export async function writeDockerArchive(file: string, img: ImageToWrite, repoTags: string[], opts: WriteArchiveOptions = {}): Promise<void> {
  const what = `write docker-archive ${file}`;
  const repos: Record<string, Record<string, string>> = {};
  for (const t of repoTags) {
    const [name, tag] = splitRepoTag(t);
    (repos[name] ??= {})[tag] = "";
  }
  const configDigest = parseDigest(img.configDesc.digest);
  const configHex = sha256Hex(configDigest);
  const got = sha256Digest(img.configBytes);
  if (got !== configDigest || img.configBytes.length !== img.configDesc.size) throw new InvalidError(`${what}: config bytes do not match ${configDigest} (they hash to ${got})`);
  const diffIDs = img.config.rootfs?.diff_ids ?? [];
  if (diffIDs.length !== img.layers.length) throw new InvalidError(`${what}: config has ${diffIDs.length} diff_ids but the image has ${img.layers.length} layers`);
  for (const [n, l] of img.layers.entries()) {
    if (l.diffID !== diffIDs[n]) throw new InvalidError(`${what}: layer ${n + 1}: diffID ${l.diffID} is not the config's ${diffIDs[n]}`);
    sha256Hex(parseDigest(l.diffID));
    layerCompression(l.desc.mediaType);
  }
  const out = createTarFileWriter(file, opts);
  try {
    const written = new Set<string>();
    const layerPaths: string[] = [];
    for (const [n, l] of img.layers.entries()) {
      const hex = sha256Hex(parseDigest(l.diffID));
      const name = `${hex}.tar`;
      layerPaths.push(name);
      if (written.has(name)) continue;
      written.add(name);
      const h = new Bun.CryptoHasher("sha256");
      const dec = createDecompressor(layerCompression(l.desc.mediaType));
      try {
        await out.addUnsized(name, pump(l.open(), dec), (c) => h.update(c));
      } catch (e) {
        throw addContext(`layer ${n + 1} ${l.desc.digest}`, e);
      }
      const d = "sha256:" + h.digest("hex");
      if (d !== l.diffID) throw new InvalidError(`layer ${n + 1} ${l.desc.digest}: uncompressed content hashes to ${d}, not its diffID ${l.diffID}`);
    }
    await out.addBytes(`${configHex}.json`, img.configBytes);
    const item = [{ Config: `${configHex}.json`, RepoTags: [...repoTags], Layers: layerPaths }];
    await out.addBytes("manifest.json", Buffer.from(JSON.stringify(item)));
    if (repoTags.length) {
      // Only pre-1.10 loaders read it, and they need `<id>/` directories we do not write
      // (README.md); the value is Docker's image ID, the config's hex.
      for (const r of Object.values(repos)) for (const t of Object.keys(r)) r[t] = configHex;
      await out.addBytes("repositories", Buffer.from(JSON.stringify(repos)));
    }
    await out.commit();
  } catch (e) {
    out.abort();
    throw addContext(what, e);
  }
}

/**
 * `src` through the Transform `t`, as an async iterable of its output, with backpressure (the
 * source is read only as the output is consumed); an error on either side ends the iteration
 * with that error, and stopping early destroys both.
 */
async function* pump(src: AsyncIterable<Buffer>, t: Transform): AsyncGenerator<Buffer> {
  const it = src[Symbol.asyncIterator]();
  let failed: unknown = null;
  const feed = (async () => {
    try {
      for (;;) {
        const r = await it.next();
        if (r.done) break;
        if (!t.write(r.value)) await new Promise<void>((resolve) => { const done = () => { t.off("drain", done); t.off("close", done); resolve(); }; t.on("drain", done); t.on("close", done); });
        if (t.destroyed) return;
      }
      if (!t.destroyed) t.end();
    } catch (e) {
      failed = e;
      t.destroy(e as Error);
    }
  })();
  try {
    for await (const c of t) yield c as Buffer;
    await feed;
    if (failed) throw failed;
  } catch (e) {
    await feed;
    throw failed ?? e;
  } finally {
    if (!t.destroyed) t.destroy();
    await it.return?.();
  }
}
