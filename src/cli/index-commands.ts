/**
 * `boci index create|add|remove|ls`: multi-platform image indexes built from the images of one
 * layout (umoci has no such command; skopeo only copies indexes). The rules an index is held to
 * are in src/image/index-build.ts; this file reads the images, writes the index blob and moves
 * the tag, as the other writing commands do: blobs first (fsynced), the tag last under the
 * index lock, the gc lock held shared throughout, so a tag always names a complete index.
 *
 * - An entry's platform is its image config's (os, architecture, variant, os.version,
 *   os.features); `--platform` replaces it whole. An OCI 1.1 artifact (a manifest whose config
 *   is not an image config) gets no platform unless given one, and its artifactType on the
 *   entry.
 * - A `--from` naming an index is refused unless `--nested` asks for it as one entry.
 * - Docker-typed images and manifest lists are refused (exit 6): an OCI index naming them would
 *   mix the two typings; `boci copy` converts them.
 */
import { statSync } from "node:fs";
import { BociError, InvalidError, NotFoundError, UnsupportedError, UsageError } from "../errors";
import { type BlobReader, type Layout, parsePlatform, refName, setTag } from "../cas";
import {
  type Descriptor, type ImageConfig, type ImageIndex, type Manifest, type Platform, MediaType, AnnotationRefName,
  isDockerMediaType, isDockerSchema1MediaType, isIndexMediaType, isConfigMediaType, normalizeIndex, parseDigest,
} from "../image";
import {
  addEntry, buildIndex, describePlatform, mergeAnnotations, platformFromConfig, removeEntry, removeEntryByDigest,
} from "../image/index-build";
import { log } from "../util/log";
import { writeOut } from "../util/stdio";
import { escapeText } from "../util/escape";
import type { CommandDef, Opts, OptSpec } from "./spec";
import { type ImageRef, openImageReader, openLayout, parseImageRef, printWriteResult } from "./common";
import { formatTable } from "./tabwriter";

const indexImageOpt: OptSpec = { flag: "image", value: "<image>[:<tag>]", desc: "the index: OCI image URI of the form 'path[:tag]'" };
const fromOpt: OptSpec = { flag: "from", value: "<image>[:<tag>]", repeat: true, desc: "an image of the same layout to make an entry of, 'path[:tag]' (repeatable: one entry each, in order)" };
const fromOneOpt: OptSpec = { flag: "from", value: "<image>[:<tag>]", desc: "the image of the same layout to add, 'path[:tag]'" };
const platformsOpt: OptSpec = { flag: "platform", value: "<os/arch[/variant]>", repeat: true, desc: "the platform of the entry (default: its image config's); given once per --from, in order" };
const platformOneOpt: OptSpec = { flag: "platform", value: "<os/arch[/variant]>", desc: "the platform of the entry (default: its image config's)" };
const annotationOpt: OptSpec = { flag: "annotation", value: "<key=value>", repeat: true, desc: "set an annotation of the index (repeatable)" };
const nestedOpt: OptSpec = { flag: "nested", desc: "accept a --from that names an index: the entry is that index (nested)" };
const writeJsonOpt: OptSpec = { flag: "json", desc: "print the result as one JSON object: the new index descriptor (as manifest), the tag, the blobs and bytes written" };

/** `--annotation K=V` values as a map (a later key wins); UsageError for a malformed one. */
function annotationsFrom(opts: Opts): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of opts.all("annotation")) {
    const i = a.indexOf("=");
    if (i <= 0) throw new UsageError(`invalid --annotation ${JSON.stringify(a)}: expected key=value`);
    const k = a.slice(0, i);
    if (k === AnnotationRefName) throw new UsageError(`invalid --annotation ${JSON.stringify(a)}: ${AnnotationRefName} names tags in index.json, not an index`);
    out[k] = a.slice(i + 1);
  }
  return out;
}

function platformFlag(v: string): Platform {
  try {
    return parsePlatform(v);
  } catch (e) {
    throw new UsageError(`--platform: ${(e as Error).message}`);
  }
}

/** UsageError unless `from` is the layout `layout` is (the same directory, by device and inode). */
function checkSameLayout(layout: Layout, from: ImageRef): void {
  if (from.layout === layout.path) return;
  let same = false;
  try {
    const a = statSync(layout.path);
    const b = statSync(from.layout);
    same = a.dev === b.dev && a.ino === b.ino;
  } catch { /* not there: not the same */ }
  if (!same) throw new UsageError(`--from ${from.layout}:${from.tag}: not in the index's layout ${layout.path}; copy it in first (boci copy oci:${from.layout}:${from.tag} oci:${layout.path}:${from.tag})`);
}

/**
 * The one index.json entry `tag` names. NotFoundError when there is none; InvalidError when
 * several entries with different contents carry the name (which one is meant is unclear).
 */
function tagEntry(ix: ImageIndex, tag: string, where: string): Descriptor {
  const named = ix.manifests.filter((d) => refName(d) === tag);
  if (!named.length) throw new NotFoundError(`tag ${JSON.stringify(tag)} not found in ${where}`);
  if (named.some((d) => d.digest !== named[0]!.digest)) throw new InvalidError(`tag ${JSON.stringify(tag)} names ${named.length} different entries in ${where}`);
  return named[0]!;
}

/** The copy that turns a Docker-typed image of the layout into an OCI one (mutator.ts's hint). */
function dockerRefusal(layout: Layout, tag: string, found: string): UnsupportedError {
  return new UnsupportedError(`image ${layout.path}:${tag} has docker media types (${found}): an oci index does not name docker manifests; convert it with \`boci copy oci:${layout.path}:${tag} oci:${layout.path}:${tag}-oci\``);
}

/**
 * The index entry for the image `--from` names: its descriptor (media type, digest, size), the
 * platform (`platform` if given, else the image config's), and the artifactType of an artifact.
 */
function entryFor(layout: Layout, ix: ImageIndex, from: ImageRef, platform: Platform | undefined, nested: boolean): Descriptor {
  checkSameLayout(layout, from);
  const top = tagEntry(ix, from.tag, layout.path);
  const name = `--from ${from.layout}:${from.tag}`;
  if (isDockerSchema1MediaType(top.mediaType)) throw new UnsupportedError(`${name}: docker schema 1 manifests are not supported (${top.mediaType})`);
  if (isDockerMediaType(top.mediaType)) throw dockerRefusal(layout, from.tag, top.mediaType);
  const entry: Descriptor = { mediaType: top.mediaType, digest: top.digest, size: top.size };
  if (top.mediaType === MediaType.index) {
    const child = layout.readJson<ImageIndex>(top, "index");
    if (!nested) throw new UsageError(`${name} names an index (${child.manifests.length} entries), not an image; --nested makes it one entry of the new index`);
    if (child.artifactType) entry.artifactType = child.artifactType;
    if (platform) entry.platform = platform;
    return entry;
  }
  if (top.mediaType !== MediaType.manifest) throw new UnsupportedError(`${name}: media type ${top.mediaType} is neither an image manifest nor an index`);
  const m = layout.readJson<Manifest>(top, "manifest");
  const docker = [m.mediaType, m.config.mediaType, ...m.layers.map((l) => l.mediaType)].find((mt) => isDockerMediaType(mt));
  if (docker !== undefined) throw dockerRefusal(layout, from.tag, docker);
  if (isConfigMediaType(m.config.mediaType)) {
    if (m.artifactType) entry.artifactType = m.artifactType;
    if (platform) entry.platform = platform;
    else {
      const cfg = layout.readJson<ImageConfig>(m.config, "config");
      const p = platformFromConfig(cfg);
      if (!p) throw new InvalidError(`${name}: its config states no os and architecture; give the entry a --platform`);
      entry.platform = p;
    }
    return entry;
  }
  // An artifact (image-spec manifest.md: artifactType, else the config's media type unless empty).
  const artifactType = m.artifactType ?? (m.config.mediaType !== MediaType.empty ? m.config.mediaType : undefined);
  if (artifactType) entry.artifactType = artifactType;
  if (platform) entry.platform = platform;
  return entry;
}

/** Write `index` as a blob and point `tag` at it; `expect` is the digest the tag must still name. */
function writeIndex(layout: Layout, opts: Opts, tag: string, index: ImageIndex, expect?: string): Descriptor {
  const desc = layout.putJson(normalizeIndex(index), MediaType.index);
  layout.syncBlobs();
  log.info(`new image index created: ${desc.digest}`);
  layout.updateIndex((ix) => {
    if (expect !== undefined) {
      const now = ix.manifests.filter((d) => refName(d) === tag);
      if (!now.length || now.some((d) => d.digest !== expect)) throw new BociError(`tag ${JSON.stringify(tag)} was changed by another process while the index was edited; nothing changed (run the command again)`);
    }
    return { index: setTag(ix, tag, desc), result: undefined };
  });
  printWriteResult(opts, layout, { manifest: desc, tag });
  log.info(`tag ${tag} names the image index`);
  return desc;
}

/** The index `ref` names in `layout`, for add and remove: its index.json entry and document. */
function readTaggedIndex(layout: Layout, ref: ImageRef): { top: Descriptor; index: ImageIndex } {
  const top = tagEntry(layout.readIndex(), ref.tag, ref.layout);
  if (top.mediaType === MediaType.dockerManifestList) throw new UnsupportedError(`tag ${JSON.stringify(ref.tag)} names a docker manifest list: boci writes only oci indexes; convert it with \`boci copy --all oci:${ref.layout}:${ref.tag} oci:${ref.layout}:${ref.tag}-oci\``);
  if (top.mediaType !== MediaType.index) throw new UsageError(`tag ${JSON.stringify(ref.tag)} names ${top.mediaType === MediaType.manifest ? "an image manifest" : `a ${top.mediaType}`}, not an index; boci index create --image ${ref.layout}:${ref.tag} --from ${ref.layout}:${ref.tag} makes one of it`);
  return { top, index: layout.readJson<ImageIndex>(top, "index") };
}

export const indexCreateCommand: CommandDef = {
  name: "index create",
  args: [],
  description: "create a multi-platform image index from images of the layout",
  options: [indexImageOpt, fromOpt, platformsOpt, annotationOpt, nestedOpt, writeJsonOpt],
  run(_args, opts) {
    const ref = parseImageRef(opts.get("image"));
    const froms = opts.all("from").map((f) => parseImageRef(f, "from"));
    if (!froms.length) throw new UsageError("missing mandatory argument: --from");
    const platforms = opts.all("platform").map(platformFlag);
    if (platforms.length && platforms.length !== froms.length) throw new UsageError(`--platform given ${platforms.length} times for ${froms.length} --from: give it once per --from, in order, or not at all`);
    const annotations = annotationsFrom(opts);
    const layout = openLayout(ref.layout);
    layout.lockGc("sh");
    try {
      const ix = layout.readIndex();
      const entries = froms.map((f, i) => entryFor(layout, ix, f, platforms[i], opts.bool("nested")));
      writeIndex(layout, opts, ref.tag, buildIndex(entries, annotations, froms.map((f, i) => `--from ${f.layout}:${f.tag} (${i + 1})`)));
    } finally { layout.close(); }
  },
};

export const indexAddCommand: CommandDef = {
  name: "index add",
  args: [],
  description: "add an image to an index (replacing the entry for its platform)",
  options: [indexImageOpt, fromOneOpt, platformOneOpt, annotationOpt, nestedOpt, writeJsonOpt],
  run(_args, opts) {
    const ref = parseImageRef(opts.get("image"));
    const fromFlag = opts.get("from");
    if (fromFlag === undefined) throw new UsageError("missing mandatory argument: --from");
    const from = parseImageRef(fromFlag, "from");
    const platform = opts.get("platform") !== undefined ? platformFlag(opts.get("platform")!) : undefined;
    const annotations = annotationsFrom(opts);
    const layout = openLayout(ref.layout);
    layout.lockGc("sh");
    try {
      const { top, index } = readTaggedIndex(layout, ref);
      const entry = entryFor(layout, layout.readIndex(), from, platform, opts.bool("nested"));
      if (entry.digest === top.digest) throw new UsageError(`--from ${from.layout}:${from.tag} is the index itself`);
      const r = addEntry(index, entry);
      if (r.unchanged) log.info(`the index already has this entry: ${entry.digest}`);
      else if (r.replaced) log.info(`replacing the entry for ${describePlatform(entry.platform)}: ${r.replaced.digest}`);
      writeIndex(layout, opts, ref.tag, { ...r.index, annotations: mergeAnnotations(r.index.annotations, annotations) }, top.digest);
    } finally { layout.close(); }
  },
};

export const indexRemoveCommand: CommandDef = {
  name: "index remove",
  aliases: ["index rm"],
  args: [],
  description: "remove the entry of one platform from an index",
  options: [
    indexImageOpt,
    { flag: "platform", value: "<os/arch[/variant]>", desc: "the platform whose entry goes (without a variant: the one entry for that os and architecture)" },
    { flag: "digest", value: "<digest>", desc: "the entry with this digest goes (for entries without a platform)" },
    annotationOpt, writeJsonOpt,
  ],
  run(_args, opts) {
    const ref = parseImageRef(opts.get("image"));
    const p = opts.get("platform");
    const d = opts.get("digest");
    if ((p === undefined) === (d === undefined)) throw new UsageError("give either --platform or --digest");
    const platform = p !== undefined ? platformFlag(p) : undefined;
    if (d !== undefined) {
      try { parseDigest(d); } catch (e) { throw new UsageError(`invalid --digest: ${(e as Error).message}`); }
    }
    const annotations = annotationsFrom(opts);
    const layout = openLayout(ref.layout);
    layout.lockGc("sh");
    try {
      const { top, index } = readTaggedIndex(layout, ref);
      const r = platform ? removeEntry(index, platform) : removeEntryByDigest(index, d!);
      log.info(`removing the entry for ${describePlatform(r.removed.platform)}: ${r.removed.digest}`);
      writeIndex(layout, opts, ref.tag, { ...r.index, annotations: mergeAnnotations(r.index.annotations, annotations) }, top.digest);
    } finally { layout.close(); }
  },
};

interface Row { depth: number; desc: Descriptor }

/** The entries of `index` and, under each nested index, its own (depth-first, each index read once). */
function listRows(reader: BlobReader, index: ImageIndex, nested: Record<string, Descriptor[]>, depth = 0, seen = new Set<string>()): Row[] {
  const rows: Row[] = [];
  for (const d of index.manifests) {
    rows.push({ depth, desc: d });
    if (!isIndexMediaType(d.mediaType)) continue;
    if (depth >= 16) throw new InvalidError(`index ${d.digest}: nested more than 16 deep`);
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    const child = reader.readJson<ImageIndex>(d, "index");
    nested[d.digest] = child.manifests;
    rows.push(...listRows(reader, child, nested, depth + 1, seen));
  }
  return rows;
}

export const indexLsCommand: CommandDef = {
  name: "index ls",
  aliases: ["index list"],
  args: [],
  description: "list the entries of an image index",
  options: [
    { flag: "image", value: "<image>[:<tag>]", desc: "the index: OCI image URI of the form 'path[:tag]', or an archive read in place: 'oci-archive:file[:tag]'" },
    { flag: "json", desc: "print one JSON object: the tag, the index descriptor, its annotations, its entries (descriptors) and those of nested indexes by digest" },
  ],
  run(_args, opts) {
    const { reader, tag } = openImageReader(opts.get("image"));
    try {
      reader.lockGc("sh", { optional: true });
      const top = tagEntry(reader.readIndex(), tag, reader.path);
      if (!isIndexMediaType(top.mediaType)) throw new UsageError(`tag ${JSON.stringify(tag)} names ${top.mediaType === MediaType.manifest || top.mediaType === MediaType.dockerManifest ? "an image manifest" : `a ${top.mediaType}`}, not an index (boci stat shows an image)`);
      const index = reader.readJson<ImageIndex>(top, "index");
      const nested: Record<string, Descriptor[]> = {};
      const rows = listRows(reader, index, nested);
      if (opts.bool("json")) {
        const { annotations: topAnnotations, ...desc } = top;
        const rest = { ...(topAnnotations ?? {}) };
        delete rest[AnnotationRefName];
        const indexDesc = Object.keys(rest).length ? { ...desc, annotations: rest } : desc;
        writeOut(JSON.stringify({ tag, index: indexDesc, annotations: index.annotations ?? {}, manifests: index.manifests, nested }) + "\n");
        return;
      }
      const cell = (s: string) => escapeText(s, "needed");
      const artifacts = rows.some((r) => r.desc.artifactType);
      const table = [["PLATFORM", "DIGEST", "SIZE", "MEDIA TYPE", ...(artifacts ? ["ARTIFACT TYPE"] : [])]];
      for (const r of rows) {
        table.push([
          "  ".repeat(r.depth) + cell(describePlatform(r.desc.platform)), cell(r.desc.digest), String(r.desc.size), cell(r.desc.mediaType),
          ...(artifacts ? [r.desc.artifactType ? cell(r.desc.artifactType) : "-"] : []),
        ]);
      }
      writeOut(formatTable(table, { minWidth: 4, padding: 2 }));
    } finally { reader.close(); }
  },
};

export const indexCommands: CommandDef[] = [indexCreateCommand, indexAddCommand, indexRemoveCommand, indexLsCommand];
