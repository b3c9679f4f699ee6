/**
 * attach, referrers: image-spec 1.1 artifacts and their `subject` inside a layout (umoci has
 * neither; the shape is oras's `attach` and `discover`, the listing the distribution spec's
 * referrers API).
 *
 * An artifact is an image manifest with an `artifactType`, the empty config (`{}`, embedded as
 * `data`, as image-spec's DescriptorEmptyJSON and oras write it), one layer per file (titled
 * with the file's base name) and a `subject`: the image's manifest. It is stored as an untagged
 * index.json entry (`--tag` names it too), which is how referrers are found again
 * (cas/referrers.ts) and why gc keeps them.
 *
 * Which manifest a tag means is one rule for both commands: a manifest tag is that manifest; a
 * multi-platform tag is the host's manifest (`--platform` another one), or, with `--index`, the
 * index itself.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { NotFoundError, UsageError } from "../errors";
import { type BlobReader, type Layout, listReferrers, referrersIndex, EMPTY_DESCRIPTOR, EMPTY_JSON, encodeGoJson, GoIndex, manifestOf, parsePlatform, refName, resolveTag, setTag } from "../cas";
import { type Descriptor, type Manifest, MediaType, isIndexMediaType, mediaTypeRe } from "../image";
import type * as ReferenceModule from "../transport/reference";
import type * as OpenModule from "../transport/open";
import { yieldToSignals } from "../util/cleanup";
import { escapeText } from "../util/escape";
import { log } from "../util/log";
import { writeOut } from "../util/stdio";
import { nowTimestamp } from "../util/time";
import type { CommandDef, OptSpec, Opts } from "./spec";
import { checkTag, imageOpt, isArchiveImage, openImageReader, openLayout, parseImageRef, readImageOpt } from "./common";
import { formatTable } from "./tabwriter";

export const AnnotationTitle = "org.opencontainers.image.title";
export const AnnotationCreated = "org.opencontainers.image.created";

/**
 * Media types by file name ending, longest ending first (so `.spdx.json` wins over `.json`);
 * compared without regard to case. Anything else is application/octet-stream.
 */
const BY_EXTENSION: Array<[string, string]> = [
  [".spdx.json", "application/spdx+json"],
  [".cdx.json", "application/vnd.cyclonedx+json"],
  [".intoto.jsonl", "application/vnd.in-toto+json"],
  [".sarif.json", "application/sarif+json"],
  [".tar.gz", MediaType.layerGzip],
  [".tar.zst", MediaType.layerZstd],
  [".sarif", "application/sarif+json"],
  [".tgz", MediaType.layerGzip],
  [".tar", MediaType.layer],
  [".json", "application/json"],
  [".txt", "text/plain"],
  [".md", "text/markdown"],
  [".yaml", "application/yaml"],
  [".yml", "application/yaml"],
  [".xml", "application/xml"],
  [".html", "text/html"],
  [".pem", "application/x-pem-file"],
  [".pdf", "application/pdf"],
  [".zip", "application/zip"],
  [".gz", "application/gzip"],
  [".wasm", "application/wasm"],
];

/** The media type a file gets from its name (attach without `--media-type`). */
export function mediaTypeForFile(file: string): string {
  const name = path.basename(file).toLowerCase();
  for (const [ext, mt] of BY_EXTENSION) if (name.endsWith(ext) && name.length > ext.length) return mt;
  return "application/octet-stream";
}

const indexOpt: OptSpec = { flag: "index", desc: "with a multi-platform tag, the index itself rather than one platform's manifest" };
const platformOpt: OptSpec = { flag: "platform", value: "<os/arch[/variant]>", desc: "with a multi-platform tag, this platform's manifest (default: the host's)" };

function mediaTypeFlag(opts: Opts, flag: string): string | undefined {
  const v = opts.get(flag);
  if (v !== undefined && !mediaTypeRe.test(v)) throw new UsageError(`invalid --${flag} ${JSON.stringify(v)}: not a media type (type/subtype)`);
  return v;
}

/** `--annotation K=V`, in order (a later key wins); a missing "=" or an empty key is a UsageError. */
function annotationsFrom(opts: Opts): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of opts.all("annotation")) {
    const i = a.indexOf("=");
    if (i <= 0) throw new UsageError(`invalid --annotation ${JSON.stringify(a)}: expected key=value`);
    out[a.slice(0, i)] = a.slice(i + 1);
  }
  return out;
}

/**
 * The manifest (or, with `--index`, the index) that `tag` means in `reader`, as a subject
 * descriptor (mediaType, digest, size). See the rule at the top of this file.
 */
export function resolveSubject(reader: BlobReader, tag: string, opts: Opts): Descriptor {
  const ix = reader.readIndex();
  if (opts.bool("index")) {
    if (opts.has("platform")) throw new UsageError("--index and --platform may not be specified together");
    const named = ix.manifests.filter((d) => refName(d) === tag);
    if (named.length === 0) throw new NotFoundError(`tag ${JSON.stringify(tag)} not found`);
    const top = new Set(named.map((d) => d.digest)).size === 1 ? named[0]! : resolveTag(reader, ix, tag).walk[0]!;
    if (!isIndexMediaType(top.mediaType)) throw new UsageError(`--index: tag ${JSON.stringify(tag)} names ${top.mediaType}, not an index (drop --index)`);
    return { mediaType: top.mediaType, digest: top.digest, size: top.size };
  }
  const v = opts.get("platform");
  const m = manifestOf(resolveTag(reader, ix, tag, { platform: v === undefined ? undefined : parsePlatform(v) }));
  return { mediaType: m.mediaType, digest: m.digest, size: m.size };
}

/** A file to attach, opened: a regular file (checked on the open descriptor, so a FIFO never blocks). */
function openAttachFile(file: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw new NotFoundError(`attach: ${file} does not exist`);
    throw e;
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile()) {
    fs.closeSync(fd);
    throw new UsageError(`attach: ${file} is not a regular file`);
  }
  return { fd, size: st.size };
}

/** Stream one file into the layout (1 MiB reads; never whole in memory). */
async function storeFile(layout: Layout, file: string, mediaType: string): Promise<Descriptor> {
  const { fd } = openAttachFile(file);
  // The stream closes the descriptor when it ends or fails.
  const stream = fs.createReadStream("", { fd, highWaterMark: 1 << 20, autoClose: true });
  const { digest, size } = await layout.putBlobStream(stream);
  return { mediaType, digest, size, annotations: { [AnnotationTitle]: path.basename(file) } };
}

export const attachCommand: CommandDef = {
  name: "attach",
  // any number of files, none included (an artifact of annotations alone)
  args: ["file"],
  minArgs: 0,
  variadic: true,
  description: "attach files to an image as an OCI artifact (a manifest whose subject is the image)",
  options: [
    imageOpt,
    { flag: "artifact-type", value: "<media-type>", desc: "the artifact's type (required), e.g. application/spdx+json" },
    { flag: "media-type", value: "<media-type>", desc: "the media type of every file (default: from each file's extension, else application/octet-stream)" },
    { flag: "annotation", value: "<key=value>", repeat: true, desc: "an annotation of the artifact manifest (repeatable)" },
    platformOpt,
    indexOpt,
    { flag: "tag", value: "<tag>", desc: "also tag the artifact with this name (it is stored untagged otherwise)" },
    { flag: "json", desc: "print the result as one JSON object: the artifact descriptor, its subject, the tag, the layers added, the blobs and bytes written" },
  ],
  async run(args, opts) {
    const ref = parseImageRef(opts.get("image"));
    const artifactType = mediaTypeFlag(opts, "artifact-type");
    if (artifactType === undefined) throw new UsageError("missing mandatory argument: --artifact-type");
    const mediaType = mediaTypeFlag(opts, "media-type");
    const annotations = annotationsFrom(opts);
    const tag = opts.get("tag");
    if (tag !== undefined) checkTag(tag);
    // Every file checked before anything is written.
    for (const f of args) fs.closeSync(openAttachFile(f).fd);
    const layout = openLayout(ref.layout);
    layout.lockGc("sh");
    try {
      const subject = resolveSubject(layout, ref.tag, opts);
      const empty = layout.putBlobBytes(EMPTY_JSON);
      if (empty.digest !== EMPTY_DESCRIPTOR.digest) throw new Error(`empty blob stored as ${empty.digest}`);
      const layers: Descriptor[] = [];
      for (const f of args) layers.push(await storeFile(layout, f, mediaType ?? mediaTypeForFile(f)));
      // image-spec 1.1: an artifact without content SHOULD list the empty descriptor as its one layer.
      const manifest: Manifest = {
        schemaVersion: 2,
        mediaType: MediaType.manifest,
        artifactType,
        config: { ...EMPTY_DESCRIPTOR },
        layers: layers.length ? layers : [{ ...EMPTY_DESCRIPTOR }],
        subject,
        // oras stamps the creation time; SOURCE_DATE_EPOCH makes it reproducible.
        annotations: { [AnnotationCreated]: nowTimestamp().replace(/\.\d+Z$/, "Z"), ...annotations },
      };
      const stored = layout.putJson(manifest, MediaType.manifest);
      const desc: Descriptor = { ...stored, artifactType };
      layout.syncBlobs();
      await yieldToSignals();
      layout.updateIndex((ix) => {
        if (tag !== undefined) return { index: setTag(ix, tag, desc), result: undefined };
        // The same artifact attached again (SOURCE_DATE_EPOCH) is listed once.
        if (ix.manifests.some((d) => d.digest === desc.digest)) return { result: undefined };
        return { index: { ...ix, manifests: [...ix.manifests, desc] }, result: undefined };
      });
      log.info(`attached artifact ${desc.digest} (${artifactType}) to ${subject.digest}${tag !== undefined ? `, tagged ${tag}` : ""}`);
      if (opts.bool("json")) {
        writeOut(JSON.stringify({ manifest: desc, subject, tag: tag ?? null, layersAdded: layers, blobsWritten: layout.written.blobs, bytesWritten: layout.written.bytes }) + "\n");
      }
    } finally { layout.close(); }
  },
};

/**
 * The whole store an archive reference names: openImageReader's reader shows only the one image
 * the reference resolves to (the subject), and its referrers are the archive's other entries.
 */
function openArchiveWhole(s: string): BlobReader {
  const { parseReference } = require("../transport/reference") as typeof ReferenceModule;
  const { openReader } = require("../transport/open") as typeof OpenModule;
  return openReader(parseReference(s, { role: "source" }));
}

export const referrersCommand: CommandDef = {
  name: "referrers",
  args: [],
  description: "list the artifacts attached to an image (the manifests whose subject it is)",
  options: [
    readImageOpt,
    { flag: "artifact-type", value: "<media-type>", desc: "only the referrers of this artifact type" },
    platformOpt,
    indexOpt,
    { flag: "json", desc: "print the referrers as the distribution spec's referrers API does: an image index of their descriptors" },
  ],
  run(_args, opts) {
    const artifactType = mediaTypeFlag(opts, "artifact-type");
    const given = opts.get("image");
    const { reader, tag } = openImageReader(given);
    let whole: BlobReader | null = null;
    try {
      reader.lockGc("sh", { optional: true });
      const subject = resolveSubject(reader, tag, opts);
      // An archive's reader shows only the image named; its referrers are its other entries.
      if (given !== undefined && isArchiveImage(given)) whole = openArchiveWhole(given);
      const list = listReferrers(whole ?? reader, subject.digest, { artifactType });
      if (opts.bool("json")) {
        writeOut(encodeGoJson(referrersIndex(list), GoIndex));
        return;
      }
      const rows = [["DIGEST", "ARTIFACT TYPE", "SIZE", "CREATED"]];
      for (const r of list) {
        const a = r.desc.annotations ?? {};
        rows.push([r.desc.digest, escapeText(r.desc.artifactType ?? "", "inline"), String(r.desc.size), escapeText(a[AnnotationCreated] ?? "", "inline")]);
      }
      writeOut(formatTable(rows, { minWidth: 4, padding: 2 }));
    } finally {
      whole?.close();
      reader.close();
    }
  },
};
