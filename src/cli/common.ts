/** Shared flag groups and parsing helpers for the commands (umoci's ux* decorators). */
import { UnsupportedError, UsageError } from "../errors";
import { Layout, type BlobReader, type BlobStreamOptions, type JsonKind, refName, parsePlatform } from "../cas";
import { type Descriptor, type History, type ImageIndex, type Platform, AnnotationRefName, MediaType } from "../image";
import type * as ReferenceModule from "../transport/reference";
import type * as OpenModule from "../transport/open";
import { log } from "../util/log";
import { writeOut } from "../util/stdio";
import { parseUserTime } from "../util/time";
import type { OptSpec, Opts } from "./spec";

const tagRe = /^([A-Za-z0-9]+(([-._:@+]|--)[A-Za-z0-9]+)*)(\/([A-Za-z0-9]+(([-._:@+]|--)[A-Za-z0-9]+)*))*$/;

export function isValidTag(t: string): boolean {
  return tagRe.test(t);
}

export function checkTag(t: string, what = "tag"): string {
  if (!isValidTag(t)) throw new UsageError(`invalid ${what} ${JSON.stringify(t)}`);
  return t;
}

export interface ImageRef { layout: string; tag: string }

/**
 * `PATH[:TAG]`, split at the first ":"; the tag defaults to "latest". An archive reference
 * (`oci-archive:…`, `docker-archive:…`) is a UsageError here: only read-only commands read
 * archives (openImageReader); a layout directory so named is reachable as `./oci-archive:TAG`.
 */
export function parseImageRef(s: string | undefined, flag = "image"): ImageRef {
  if (s === undefined) throw new UsageError(`missing mandatory argument: --${flag}`);
  if (isArchiveImage(s)) throw new UsageError(`invalid --${flag} ${JSON.stringify(s)}: archives are read in place by stat, unpack, raw unpack and raw runtime-config only; this command needs a layout (boci copy ${s.slice(0, s.indexOf(":"))}:… oci:DIR:TAG makes one; a directory named ${JSON.stringify(s.slice(0, s.indexOf(":")))} is ./${s})`);
  const i = s.indexOf(":");
  const layout = i < 0 ? s : s.slice(0, i);
  const tag = i < 0 ? "latest" : s.slice(i + 1);
  if (!layout) throw new UsageError(`invalid --${flag} ${JSON.stringify(s)}: path is empty`);
  if (!tag) throw new UsageError(`invalid --${flag} ${JSON.stringify(s)}: tag is empty`);
  checkTag(tag);
  return { layout, tag };
}

export function parseLayoutFlag(s: string | undefined): string {
  if (s === undefined) throw new UsageError("missing mandatory argument: --layout");
  if (s.includes(":")) throw new UsageError(`invalid --layout ${JSON.stringify(s)}: path contains ':'`);
  if (!s) throw new UsageError("invalid --layout: path is empty");
  return s;
}

export function openLayout(p: string): Layout {
  return Layout.open(p, { onWait: (m) => log.warn(m) });
}

/** The transports `--image` of a read-only command accepts besides umoci's `PATH[:TAG]`. */
const ARCHIVE_PREFIXES = ["oci-archive:", "docker-archive:"];

/**
 * Whether `s` names an archive (`oci-archive:…`, `docker-archive:…`) rather than a layout
 * directory. A layout directory literally named so is still reachable as `./oci-archive:TAG`.
 */
export function isArchiveImage(s: string): boolean {
  return ARCHIVE_PREFIXES.some((p) => s.startsWith(p));
}

/**
 * A store seen through one image: every read goes to `inner`, but its index is the one entry a
 * reference resolved to, named `tag`, so `resolveTag(reader, reader.readIndex(), tag)` finds it
 * (and still narrows an index by platform). Closing it closes `inner`.
 */
class OneImageReader implements BlobReader {
  constructor(private readonly inner: BlobReader, private readonly top: Descriptor, private readonly tag: string) {}
  get path(): string { return this.inner.path; }
  readIndex(): ImageIndex {
    return { schemaVersion: 2, mediaType: MediaType.index, manifests: [{ ...this.top, annotations: { ...(this.top.annotations ?? {}), [AnnotationRefName]: this.tag } }] };
  }
  hasBlob(digest: string): boolean { return this.inner.hasBlob(digest); }
  readBlob(desc: Pick<Descriptor, "digest" | "size" | "data">, maxSize?: number): Buffer { return this.inner.readBlob(desc, maxSize); }
  getBlob(desc: Pick<Descriptor, "digest" | "size">, opts?: BlobStreamOptions): AsyncGenerator<Buffer> { return this.inner.getBlob(desc, opts); }
  readJson<T>(desc: Descriptor, kind: JsonKind): T { return this.inner.readJson<T>(desc, kind); }
  lockGc(mode: "sh", opts?: { optional?: boolean }): void { this.inner.lockGc(mode, opts); }
  close(): void { this.inner.close(); }
}

/**
 * Open an archive named in skopeo's syntax (`oci-archive:FILE[:TAG]`,
 * `docker-archive:FILE[:NAME:TAG]` or `docker-archive:FILE:@N`) read in place (nothing is
 * extracted), as a BlobReader whose index is the one image the reference names, under `tag`.
 * Throws as parseReference/openReader/resolveTop do (UsageError, NotFoundError, InvalidError).
 */
export function openArchiveImage(s: string): { reader: BlobReader; tag: string } {
  const { parseReference, formatReference, sameDockerName } = require("../transport/reference") as typeof ReferenceModule;
  const { openReader, resolveTop } = require("../transport/open") as typeof OpenModule;
  const ref = parseReference(s, { role: "source" });
  const inner = openReader(ref);
  try {
    const resolved = resolveTop(inner, ref);
    // The entry as the store's index lists it (its annotations are what stat shows): the one
    // the reference names by tag, else the first for that image; its name is the tag.
    const named = (d: Descriptor): boolean => {
      const n = refName(d);
      if (n === undefined) return false;
      if (ref.transport === "docker-archive") return ref.name !== undefined && sameDockerName(n, ref.name);
      return ref.tag !== undefined && n === ref.tag;
    };
    const same = inner.readIndex().manifests.filter((d) => d.digest === resolved.digest);
    const top = same.find(named) ?? same.find((d) => refName(d) !== undefined) ?? same[0] ?? resolved;
    // An untagged image is named by the reference itself.
    const tag = refName(top) ?? formatReference(ref);
    return { reader: new OneImageReader(inner, top, tag), tag };
  } catch (e) {
    inner.close();
    throw e;
  }
}

/**
 * The whole store an archive reference names (`oci-archive:FILE`, `docker-archive:FILE`), for
 * `ls`; a TAG or NAME:TAG in it is refused (UsageError). The caller closes it.
 */
export function openArchiveStore(s: string): BlobReader {
  const { parseReference } = require("../transport/reference") as typeof ReferenceModule;
  const { openReader } = require("../transport/open") as typeof OpenModule;
  const ref = parseReference(s, { role: "source" });
  if (ref.transport === "docker-archive" ? ref.name !== undefined || ref.index !== undefined : ref.tag !== undefined)
    throw new UsageError(`invalid --layout ${JSON.stringify(s)}: name the archive only, without a tag`);
  return openReader(ref);
}

/**
 * The image a read-only command reads (`--image`): a layout and the tag in it (umoci's
 * `PATH[:TAG]`, the tag defaulting to `latest`), or an archive (`oci-archive:FILE[:TAG]`,
 * `docker-archive:FILE[:NAME:TAG]`, `…:@N`; see openArchiveImage). The store is returned as a
 * BlobReader and `tag` is what `resolveTag(reader, reader.readIndex(), tag)` resolves, so a
 * command written against it reads any store that offers one. The caller closes `reader`.
 */
export function openImageReader(s: string | undefined, flag = "image"): { reader: BlobReader; tag: string } {
  if (s !== undefined && isArchiveImage(s)) return openArchiveImage(s);
  // A registry is read by copy (with its credentials, TLS and retry flags), not in place here.
  if (s?.startsWith("docker://")) throw new UnsupportedError(`--${flag} ${s}: a registry image is not read in place; copy it into a layout first (boci copy ${s} oci:DIR:TAG)`);
  const ref = parseImageRef(s, flag);
  return { reader: openLayout(ref.layout), tag: ref.tag };
}

/** `--json` of the commands that write an image. */
export const jsonOpt: OptSpec = { flag: "json", desc: "print the result as one JSON object: the new manifest descriptor, the tag, the layers added, the blobs and bytes written" };

/**
 * With `--json`, print what a command that wrote an image did, as one JSON object on stdout:
 * `{manifest, tag, layersAdded, blobsWritten, bytesWritten}` (umoci prints nothing, as boci
 * does without the flag).
 */
export function printWriteResult(opts: Opts, layout: Layout, r: { manifest: Descriptor; tag: string; layersAdded?: Descriptor[] }): void {
  if (!opts.bool("json")) return;
  writeOut(JSON.stringify({ manifest: r.manifest, tag: r.tag, layersAdded: r.layersAdded ?? [], blobsWritten: layout.written.blobs, bytesWritten: layout.written.bytes }) + "\n");
}

export const imageOpt: OptSpec = { flag: "image", value: "<image>[:<tag>]", desc: "OCI image URI of the form 'path[:tag]'" };
/** `--image` of a command that only reads (stat, unpack, raw unpack, raw runtime-config). */
export const readImageOpt: OptSpec = { flag: "image", value: "<image>[:<tag>]", desc: "OCI image URI of the form 'path[:tag]', or an archive read in place: 'oci-archive:file[:tag]', 'docker-archive:file[:name:tag]', 'docker-archive:file:@N'" };
export const layoutOpt: OptSpec = { flag: "layout", value: "<path>", desc: "path to an OCI image layout" };
export const tagOpt: OptSpec = { flag: "tag", value: "<new-tag>", desc: "tag name (defaults to overwriting the source tag)" };
export const compressOpt: OptSpec = { flag: "compress", value: "<algo>", desc: "layer compression: auto, gzip, zstd or none (default: auto)", choices: ["auto", "gzip", "zstd", "none"] };

export const historyOpts: OptSpec[] = [
  { flag: "no-history", desc: "do not create a history entry" },
  { flag: "history.author", value: "<author>", desc: "author value for the history entry" },
  { flag: "history.comment", value: "<comment>", desc: "comment for the history entry" },
  { flag: "history.created", value: "<date>", desc: "created value for the history entry (RFC 3339)" },
  { flag: "history.created_by", value: "<created_by>", desc: "created_by value for the history entry" },
];

export const mapOpts: OptSpec[] = [
  { flag: "rootless", desc: "enable rootless mode (no chown; ownership kept in the user.rootlesscontainers xattr)" },
  { flag: "uid-map", value: "<containerUID:hostUID[:size]>", repeat: true, desc: "a uid mapping (repeatable)" },
  { flag: "gid-map", value: "<containerGID:hostGID[:size]>", repeat: true, desc: "a gid mapping (repeatable)" },
];

/**
 * The history entry the flags ask for, or null for --no-history. `defaults` fill unset fields.
 */
export function historyFromOpts(opts: Opts, defaults: History): History | null {
  const named = ["history.author", "history.comment", "history.created", "history.created_by"];
  if (opts.bool("no-history")) {
    const bad = named.filter((n) => opts.has(n));
    if (bad.length) throw new UsageError(`--no-history and --${bad[0]} may not be specified together`);
    return null;
  }
  const h: History = { ...defaults };
  const author = opts.get("history.author");
  const comment = opts.get("history.comment");
  const created = opts.get("history.created");
  const createdBy = opts.get("history.created_by");
  if (created !== undefined) h.created = parseUserTime("history.created", created);
  if (createdBy !== undefined) h.created_by = createdBy;
  if (author !== undefined) h.author = author;
  if (comment !== undefined) h.comment = comment;
  return h;
}

/**
 * `--platform os/arch[/variant]` of a command that reads an image: which manifest of a
 * multi-platform index it reads (resolveTag's matching: the host's by default).
 */
export const readPlatformOpt: OptSpec = { flag: "platform", value: "<os/arch[/variant]>", desc: "choose the manifest for this platform from a multi-platform index (default: the host's)" };
/**
 * `--platform` of a command that writes an image: the one manifest of a multi-platform index it
 * replaces (every other entry, and the index's annotations, are kept).
 */
export const writePlatformOpt: OptSpec = { flag: "platform", value: "<os/arch[/variant]>", desc: "change this platform's manifest of a multi-platform index, and only it (default: the host's)" };

/** The platform `--platform` names, or undefined without it; a malformed one is a UsageError (exit 2). */
export function platformFromOpts(opts: Opts): Platform | undefined {
  const v = opts.get("platform");
  return v === undefined ? undefined : parsePlatform(v);
}

/** `--layer.annotation` of the commands that add a layer (repack, insert, raw add-layer). */
export const layerAnnotationOpt: OptSpec = { flag: "layer.annotation", value: "<key=value>", repeat: true, desc: "set an annotation on the new layer's descriptor (repeatable)" };

/**
 * The annotations `--layer.annotation K=V` asks for (a later K wins), or undefined when none is
 * given; one without `=` or with an empty key is a UsageError (exit 2).
 */
export function layerAnnotationsFromOpts(opts: Opts): Record<string, string> | undefined {
  const given = opts.all("layer.annotation");
  if (!given.length) return undefined;
  const out: Record<string, string> = {};
  for (const a of given) {
    const i = a.indexOf("=");
    if (i <= 0) throw new UsageError(`invalid --layer.annotation ${JSON.stringify(a)}: expected key=value`);
    out[a.slice(0, i)] = a.slice(i + 1);
  }
  return out;
}
