/**
 * The copy engine: one image (or, with `all`, a whole index) from any transport to any other,
 * every blob verified on the way (the source readers' verified reads), the destination written
 * so that a failed copy leaves no tag, no archive and no temporary files:
 *
 *  - `oci:` — layout-dest.ts (a layout created when the directory is missing or empty; the tag
 *    set last, under the index lock; with `sharedBlobDir`, every blob in that directory);
 *  - `oci-archive:` — the layout is built in a temporary directory (under `tmpdir`, else beside
 *    the archive) and tarred into place atomically (oci-archive.ts writeOciArchive); the
 *    temporary directory is removed in every case, SIGINT/SIGTERM included;
 *  - `docker-archive:` — docker-archive.ts writeDockerArchive (Docker schema 2, layers
 *    uncompressed, diffIDs checked), RepoTags = the reference's NAME:TAG and `additionalTags`;
 *    a file that exists and is not empty is refused first (ClobberError), as skopeo refuses it;
 *  - `docker://` — registry/push.ts pushImage (blobs first, several at a time, then manifests,
 *    children before their index, the tag last); layers that must be compressed (from a
 *    docker-archive, or `forceCompress`) are first staged compressed in a temporary layout
 *    (under `tmpdir`, else $TMPDIR; removed in every case), which is then pushed.
 *
 * A `docker://` source is a RegistryReader (open.ts openReaderAsync): its manifests and configs
 * are fetched and verified at open, its blobs streamed (into a layout `concurrency` at a time,
 * default 4, each resumable from what an interrupted pull left in `.boci-tmp`). With
 * `referrers`, the referrers of what is copied (and theirs in turn) come along, found in a
 * layout's or oci-archive's index.json or through a registry's referrers API (else its
 * `sha256-<hex>` tag schema) (findReferrers); they are written before the image: into `oci:`
 * and `oci-archive:` listed untagged, to `docker://` by digest (the referrers tag kept by
 * pushImage when the registry has no API).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClobberError, InvalidError, NotFoundError, UnsupportedError, UsageError } from "../errors";
import { type BlobReader, initLayout, listReferrers, manifestOf, Layout, referrerOf } from "../cas";
import { type Descriptor, type ImageConfig, type ImageIndex, type Manifest, isIndexMediaType, isManifestMediaType, layerKind, MediaType } from "../image";
import { randomName } from "../util/fs";
import { log } from "../util/log";
import { removeOnInterrupt, removeTreeForce } from "../util/cleanup";
import { familiarDockerName, formatReference, normalizeDockerName } from "./reference";
import { openReaderAsync, resolveImage, resolveTop } from "./open";
import { type Plan, CopyTally, copyIntoLayout, planBlobs, prepareLayout } from "./layout-dest";
import { writeOciArchive } from "./oci-archive";
import { writeDockerArchive } from "./docker-archive";
import type { CopyOptions, CopyResult, ImageReference, ImageToWrite } from "./types";

/**
 * Copy the image `src` names to `dst`. Throws UsageError for an impossible combination (a
 * `format` the destination cannot hold, `all` into a docker-archive, `additionalTags` for
 * another destination, a bad additional tag, `sharedBlobDir` for anything but `oci:`),
 * ClobberError for a docker-archive destination that is a non-empty file (before anything is
 * read or written), and whatever the source and destination throw
 * (NotFoundError, InvalidError for a blob that does not match its digest, …); nothing is tagged
 * or left behind then.
 */
export async function copyImage(src: ImageReference, dst: ImageReference, opts: CopyOptions = {}): Promise<CopyResult> {
  const where = `copy ${formatReference(src)} to ${formatReference(dst)}`;
  const extraTags = checkOptions(dst, opts);
  refuseExistingArchive(dst);
  const reader = await openReaderAsync(src, opts.srcRegistry);
  try {
    reader.lockGc("sh", { optional: true });
    const top = opts.all ? resolveTop(reader, src) : manifestOf(resolveImage(reader, src, { platform: opts.platform }));
    const plan = makePlan(reader, top, opts.all === true);
    const referrers = opts.referrers ? await findReferrers(src, reader, plan, opts) : [];
    const tally = new CopyTally(planBlobs(plan) + referrers.reduce((n, r) => n + planBlobs(r.plan), 0), opts.onProgress);
    const layoutOpts = {
      compress: opts.compress ?? "gzip",
      forceCompress: opts.forceCompress === true,
      compressPlain: src.transport === "docker-archive",
      concurrency: src.transport === "docker" ? Math.max(1, opts.srcRegistry?.concurrency ?? 4) : 1,
    } as const;
    switch (dst.transport) {
      case "oci": {
        const tag = dst.tag ?? "latest";
        const dest = prepareLayout(dst.path, { sharedBlobDir: opts.sharedBlobDir });
        try {
          dest.layout.lockGc("sh");
          // Referrers first (listed untagged in index.json), so the tag is still the last thing set.
          for (const r of referrers) await copyIntoLayout(r.reader, r.plan, dest.layout, null, layoutOpts, tally);
          const manifest = await copyIntoLayout(reader, plan, dest.layout, tag, layoutOpts, tally);
          warnMovedSubject(referrers, plan, manifest);
          dest.keep();
          dest.layout.close();
          return { manifest, tags: [tag], blobsCopied: tally.blobsCopied, blobsSkipped: tally.blobsSkipped, bytes: tally.bytes };
        } catch (e) {
          dest.abandon();
          throw e;
        }
      }
      case "oci-archive": {
        const tag = dst.tag ?? "latest";
        const base = opts.tmpdir ?? path.dirname(path.resolve(dst.path));
        const tmp = path.join(base, `.boci-copy-${process.pid}-${randomName()}`);
        const unregister = removeOnInterrupt(tmp);
        try {
          fs.mkdirSync(tmp, { mode: 0o700 });
          const dir = path.join(tmp, "layout");
          initLayout(dir);
          const layout = Layout.open(dir);
          let manifest: Descriptor;
          try {
            layout.lockGc("sh");
            for (const r of referrers) await copyIntoLayout(r.reader, r.plan, layout, null, layoutOpts, tally);
            manifest = await copyIntoLayout(reader, plan, layout, tag, layoutOpts, tally);
            warnMovedSubject(referrers, plan, manifest);
          } finally { layout.close(); }
          await writeOciArchive(dir, dst.path, { tmpdir: opts.tmpdir });
          const bytes = fs.statSync(dst.path).size;
          return { manifest, tags: [tag], blobsCopied: tally.blobsCopied, blobsSkipped: tally.blobsSkipped, bytes };
        } finally {
          removeTreeForce(tmp);
          unregister();
        }
      }
      case "docker-archive": {
        if (plan.kind !== "manifest") throw new UsageError(`${where}: a docker-archive holds single images, not an index`);
        const repoTags = [...(dst.name ? [familiarDockerName(dst.name)] : []), ...extraTags];
        const img = imageToWrite(reader, plan, tally);
        await writeDockerArchive(dst.path, img, repoTags, { tmpdir: opts.tmpdir });
        const bytes = fs.statSync(dst.path).size;
        return { manifest: plan.desc, tags: repoTags, blobsCopied: tally.blobsCopied, blobsSkipped: tally.blobsSkipped, bytes };
      }
      case "docker": {
        const { pushImage } = require("./registry/push") as typeof import("./registry/push");
        const mountFrom = src.transport === "docker" && src.registry === dst.registry ? src.repository : undefined;
        const pushOpts = { registry: opts.dstRegistry, mountFrom, format: opts.format };
        const tags = dst.digest ? [] : [dst.tag ?? "latest"];
        if (referrers.length) await pushReferrers(referrers, dst, tally, pushOpts);
        if (!needsReencode(plan, layoutOpts)) {
          const manifest = await pushImage(reader, plan, dst, tally, pushOpts);
          warnMovedSubject(referrers, plan, manifest);
          return { manifest, tags, blobsCopied: tally.blobsCopied, blobsSkipped: tally.blobsSkipped, bytes: tally.bytes };
        }
        // Layers to compress first (uncompressed from a docker-archive, or --dest-compress): a
        // blob is pushed by its digest, so they are staged compressed in a temporary layout.
        const tmp = path.join(opts.tmpdir ?? os.tmpdir(), `.boci-push-${process.pid}-${randomName()}`);
        const unregister = removeOnInterrupt(tmp);
        try {
          fs.mkdirSync(tmp, { mode: 0o700 });
          const dir = path.join(tmp, "layout");
          initLayout(dir);
          const staging = Layout.open(dir);
          try {
            staging.lockGc("sh");
            const staged = await copyIntoLayout(reader, plan, staging, "staged", layoutOpts, tally);
            const plan2 = makePlan(staging, staged, opts.all === true);
            const pushTally = new CopyTally(planBlobs(plan2), opts.onProgress);
            const manifest = await pushImage(staging, plan2, dst, pushTally, pushOpts);
            warnMovedSubject(referrers, plan, manifest);
            return { manifest, tags, blobsCopied: pushTally.blobsCopied, blobsSkipped: pushTally.blobsSkipped, bytes: pushTally.bytes };
          } finally { staging.close(); }
        } finally {
          removeTreeForce(tmp);
          unregister();
        }
      }
    }
  } finally {
    reader.close();
  }
}

/** The option checks that need no I/O; returns the additional RepoTags in Docker's short form. */
function checkOptions(dst: ImageReference, opts: CopyOptions): string[] {
  const dest = formatReference(dst);
  if (opts.format === "v2s2" && dst.transport !== "docker-archive" && dst.transport !== "docker")
    throw new UsageError(`--format v2s2: ${dest} holds OCI manifests (v2s2 is for docker-archive and docker:// destinations)`);
  if (opts.referrers && dst.transport === "docker-archive")
    throw new UsageError(`--referrers: a docker-archive keeps no referrers (not ${dest}; use oci:, oci-archive: or docker://)`);
  if (opts.format === "oci" && dst.transport === "docker-archive")
    throw new UsageError(`--format oci: ${dest} holds Docker schema-2 manifests (use --format v2s2 or none)`);
  if (opts.all && dst.transport === "docker-archive")
    throw new UsageError(`--all: ${dest} holds single images, not an index`);
  if (opts.sharedBlobDir !== undefined && dst.transport !== "oci")
    throw new UsageError(`--dest-shared-blob-dir: only an oci: destination keeps its blobs in a shared directory (not ${dest})`);
  if (opts.sharedBlobDir === "") throw new UsageError("--dest-shared-blob-dir: the directory is an empty path");
  const extra = opts.additionalTags ?? [];
  if (extra.length && dst.transport !== "docker-archive")
    throw new UsageError(`--additional-tag: only a docker-archive destination has RepoTags (not ${dest})`);
  return extra.map((t) => {
    try {
      return familiarDockerName(normalizeDockerName(t, { defaultTag: false }));
    } catch (e) {
      throw new UsageError(`invalid --additional-tag ${JSON.stringify(t)}: ${(e as Error).message}`);
    }
  });
}

/**
 * A docker-archive destination that is a non-empty regular file is refused (ClobberError)
 * before the source is opened, as skopeo refuses it: an archive is written whole, never
 * modified, and a file that holds something is not replaced by surprise. A missing or empty
 * file is written (atomically, by the writer); anything that is not a regular file is left to
 * the writer, which refuses it.
 */
function refuseExistingArchive(dst: ImageReference): void {
  if (dst.transport !== "docker-archive") return;
  let st: fs.Stats;
  try { st = fs.lstatSync(dst.path); } catch { return; }
  if (st.isFile() && st.size > 0)
    throw new ClobberError(`copy to ${formatReference(dst)}: ${dst.path} exists and is not empty (an existing docker-archive is never modified; remove it first)`);
}

/**
 * Read what the copy moves, down from `top`: a manifest with its config, or (with `all`) an
 * index and everything under it, each JSON document read, verified and validated once. Other
 * children of an index (artifacts) are moved as blobs. Throws as the reader's readJson.
 */
export function makePlan(reader: BlobReader, top: Descriptor, all: boolean): Plan {
  const seen = new Set<string>();
  const plan = (d: Descriptor, depth: number): Plan => {
    if (depth > 16) throw new InvalidError(`index ${d.digest}: nested more than 16 deep`);
    if (isManifestMediaType(d.mediaType)) {
      const bytes = reader.readBlob(d);
      const manifest = reader.readJson<Manifest>(d, "manifest");
      const configBytes = reader.readBlob(manifest.config);
      // An artifact's config (a signature's, an SBOM's) is moved as its bytes, not read as an image config.
      const isImage = manifest.config.mediaType === MediaType.config || manifest.config.mediaType === MediaType.dockerConfig;
      const config = isImage ? reader.readJson<ImageConfig>(manifest.config, "config") : ({} as ImageConfig);
      return { kind: "manifest", desc: d, bytes, manifest, configBytes, config };
    }
    if (isIndexMediaType(d.mediaType)) {
      if (!all) throw new InvalidError(`index ${d.digest}: expected one image manifest`);
      if (seen.has(d.digest)) throw new InvalidError(`index ${d.digest}: names itself`);
      seen.add(d.digest);
      const bytes = reader.readBlob(d);
      const index = reader.readJson<ImageIndex>(d, "index");
      const children = index.manifests.map((c) => plan(c, depth + 1));
      seen.delete(d.digest);
      return { kind: "index", desc: d, bytes, index, children };
    }
    if (depth === 0) throw new InvalidError(`${d.digest}: media type ${d.mediaType} is neither an image manifest nor an index`);
    return { kind: "blob", desc: d };
  };
  return plan(top, 0);
}

/** One referrer to copy: what it refers to, its descriptor, the store it is read from and its plan. */
interface ReferrerItem {
  subject: string;
  desc: Descriptor;
  reader: BlobReader;
  plan: Plan;
}

/** Every manifest and index digest a plan copies (the subjects referrers can name). */
function planSubjects(p: Plan, out: string[] = []): string[] {
  if (p.kind === "blob") return out;
  out.push(p.desc.digest);
  if (p.kind === "index") for (const c of p.children) planSubjects(c, out);
  return out;
}

/** Levels of referrers followed (a referrer of a referrer is level 2). */
const MAX_REFERRER_LEVELS = 8;

/**
 * The referrers of what `plan` copies, and their referrers in turn (a signature of an SBOM),
 * level by level, each digest once, each planned whole (an index with its children):
 *  - from a layout or an oci-archive: the index.json entries whose manifest names a copied
 *    digest as its `subject` (cas/referrers.ts listReferrers), read from the same store;
 *  - from a registry: the referrers API, or the `sha256-<hex>` tag schema when the registry has
 *    no API (registry/referrers.ts); each referrer opened by digest (a RegistryReader of its
 *    own, verified as any), its size checked against the list's and its `subject` against the
 *    digest it was listed for (a tag index is anyone's to write: an entry that is not a referrer
 *    of that digest is passed over with a warning);
 *  - a docker-archive has none.
 */
async function findReferrers(src: ImageReference, reader: BlobReader, plan: Plan, opts: CopyOptions): Promise<ReferrerItem[]> {
  if (src.transport === "docker-archive") return [];
  const out: ReferrerItem[] = [];
  const seen = new Set<string>(planSubjects(plan));
  const ix = src.transport === "docker" ? undefined : reader.readIndex();
  let level = [...seen];
  for (let depth = 0; depth < MAX_REFERRER_LEVELS && level.length; depth++) {
    const next: string[] = [];
    for (const subject of level) {
      const found = src.transport === "docker"
        ? await registryReferrersOf(src, reader, subject, opts)
        : listReferrers(reader, subject, { index: ix }).map((r) => ({ subject, desc: r.desc, reader, plan: makePlan(reader, bareDescriptor(r.desc), true) }));
      for (const item of found) {
        if (seen.has(item.desc.digest)) continue;
        seen.add(item.desc.digest);
        out.push(item);
        next.push(...planSubjects(item.plan));
      }
    }
    level = next;
  }
  return out;
}

async function registryReferrersOf(src: Extract<ImageReference, { transport: "docker" }>, reader: BlobReader, subject: string, opts: CopyOptions): Promise<ReferrerItem[]> {
  const { RegistryReader, repoName } = require("./registry/reader") as typeof import("./registry/reader");
  const { registryReferrers, referrersTag } = require("./registry/referrers") as typeof import("./registry/referrers");
  const client = (reader as import("./registry/reader").RegistryReader).client;
  const where = repoName(src);
  const { via, manifests } = await registryReferrers(client, subject, where);
  const items: ReferrerItem[] = [];
  for (const d of manifests) {
    const listed = via === "api" ? "the referrers API" : `tag ${referrersTag(subject)}`;
    let r: import("./registry/reader").RegistryReader;
    try {
      r = await RegistryReader.open({ transport: "docker", registry: src.registry, repository: src.repository, digest: d.digest }, opts.srcRegistry ?? {}, client);
    } catch (e) {
      // A referrers index outlives what it lists (a deleted artifact): that one is passed over.
      if (!(e instanceof NotFoundError)) throw e;
      log.warn(`${where}: ${listed} lists ${d.digest} as a referrer of ${subject}, but it cannot be read (${(e as Error).message}); it is not copied`);
      continue;
    }
    if (r.top.size !== d.size) throw new InvalidError(`${r.path}: referrer of ${subject} has size ${r.top.size}, ${listed} says ${d.size}`);
    const top = { ...r.top, mediaType: d.mediaType };
    const named = referrerOf(r, top);
    if (named?.subject !== subject) {
      log.warn(`${where}: ${listed} lists ${d.digest} as a referrer of ${subject}, but its subject is ${named?.subject ?? "missing"}; it is not copied`);
      continue;
    }
    items.push({ subject, desc: named.desc, reader: r, plan: makePlan(r, bareDescriptor(named.desc), true) });
  }
  return items;
}

/**
 * The copy rewrote the top manifest (Docker types into a layout, `--format`, recompressed
 * layers): its referrers, copied with their bytes, still name the source's digest. Said once,
 * as a warning; the copy stands.
 */
function warnMovedSubject(referrers: ReferrerItem[], plan: Plan, written: Descriptor): void {
  if (written.digest === plan.desc.digest) return;
  const n = referrers.filter((r) => r.subject === plan.desc.digest).length;
  if (n) log.warn(`copy wrote ${plan.desc.digest} as ${written.digest}: its ${n} referrer${n === 1 ? "" : "s"} copied along still name ${plan.desc.digest}`);
}

/** A referrer's media type, digest, size and artifactType (what a plan's top and its index.json entry need). */
function bareDescriptor(d: Descriptor): Descriptor {
  const out: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.artifactType !== undefined) out.artifactType = d.artifactType;
  return out;
}

/**
 * Push referrers to a registry, each by digest with its bytes unchanged (so its `subject`
 * still names the copied manifest); pushImage keeps the referrers tag schema for a registry
 * that does not answer `OCI-Subject`, and leaves a registry with the referrers API to index them.
 */
async function pushReferrers(
  referrers: ReferrerItem[], dst: Extract<ImageReference, { transport: "docker" }>, tally: CopyTally,
  pushOpts: import("./registry/push").PushOptions,
): Promise<void> {
  const { pushImage } = require("./registry/push") as typeof import("./registry/push");
  for (const i of referrers)
    await pushImage(i.reader, i.plan, { transport: "docker", registry: dst.registry, repository: dst.repository, digest: i.desc.digest }, tally, { ...pushOpts, format: undefined });
}

/** Whether writing `plan` with `o` re-encodes a layer (layout-dest.ts copyManifest's rule). */
function needsReencode(plan: Plan, o: { compress: string; forceCompress: boolean; compressPlain: boolean }): boolean {
  if (plan.kind === "index") return plan.children.some((c) => needsReencode(c, o));
  if (plan.kind !== "manifest") return false;
  return plan.manifest.layers.some((l) => {
    const kind = layerKind(l.mediaType);
    return kind !== undefined && (
      (o.compressPlain && kind.compression === "none" && o.compress !== "none") ||
      (o.forceCompress && kind.compression !== o.compress));
  });
}

/** One planned image as an archive writer takes it; each layer's stream reports progress. */
function imageToWrite(reader: BlobReader, p: Extract<Plan, { kind: "manifest" }>, tally: CopyTally): ImageToWrite {
  const cfgType = p.manifest.config.mediaType;
  if (cfgType !== MediaType.config && cfgType !== MediaType.dockerConfig)
    throw new UnsupportedError(`manifest ${p.desc.digest}: an artifact (config ${cfgType}) has no docker-archive form`);
  const diffIDs = p.config.rootfs?.diff_ids ?? [];
  if (diffIDs.length !== p.manifest.layers.length)
    throw new InvalidError(`manifest ${p.desc.digest}: ${p.manifest.layers.length} layers but ${diffIDs.length} diff_ids in the config`);
  tally.begin(p.desc).done(p.desc.size);
  tally.begin(p.manifest.config).done(p.manifest.config.size);
  return {
    manifestDesc: p.desc, manifestBytes: p.bytes, manifest: p.manifest,
    configDesc: p.manifest.config, configBytes: p.configBytes, config: p.config,
    layers: p.manifest.layers.map((l, i) => ({
      desc: l,
      diffID: diffIDs[i]!,
      open: () => {
        const t = tally.begin(l);
        return (async function* () {
          yield* CopyTally.tap(reader.getBlob(l), t.moved);
          t.done(l.size);
        })();
      },
    })),
  };
}
