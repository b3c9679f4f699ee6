/**
 * Building and editing an image index's `manifests` (pure; `boci index create|add|remove` do the
 * I/O). Rules boci holds its indexes to, beyond image-index.md:
 *
 *  - no two entries offer the same platform (os, architecture, variant, os.version and the set
 *    of os.features all equal): the spec does not forbid it, but a reader picking by platform
 *    takes the first and never reaches the other, and boci's own resolveTag reports such a tag
 *    as ambiguous. Entries without a platform (a nested index, an artifact) never clash;
 *  - entries keep the order they were given in; `add` of a platform already offered replaces
 *    that entry where it stands;
 *  - an index is never left empty (`remove` of the last entry is refused): an empty index is a
 *    tag that names no image.
 */
import { UsageError, NotFoundError } from "../errors";
import type { Descriptor, ImageConfig, ImageIndex, Platform } from "./types";
import { MediaType } from "./media-types";

/** `os/arch[/variant]`, with `os.version` and `os.features` appended when set. */
export function describePlatform(p: Platform | undefined): string {
  if (!p) return "-";
  let s = [p.os, p.architecture, p.variant].filter(Boolean).join("/");
  if (p["os.version"]) s += ` (os.version ${p["os.version"]})`;
  if (p["os.features"]?.length) s += ` (os.features ${p["os.features"].join(",")})`;
  return s;
}

/**
 * The platform an image config states (image-spec config.md: architecture, os, os.version,
 * os.features, variant), or undefined when its os or architecture is missing or empty.
 */
export function platformFromConfig(cfg: Partial<ImageConfig>): Platform | undefined {
  if (typeof cfg.os !== "string" || !cfg.os || typeof cfg.architecture !== "string" || !cfg.architecture) return undefined;
  const p: Platform = { architecture: cfg.architecture, os: cfg.os };
  if (typeof cfg["os.version"] === "string" && cfg["os.version"]) p["os.version"] = cfg["os.version"];
  if (Array.isArray(cfg["os.features"]) && cfg["os.features"].length) p["os.features"] = [...cfg["os.features"]];
  if (typeof cfg.variant === "string" && cfg.variant) p.variant = cfg.variant;
  return p;
}

/** Whether two platforms are the same for choosing between index entries (see the header). */
export function samePlatform(a: Platform | undefined, b: Platform | undefined): boolean {
  if (!a || !b) return false;
  const feats = (p: Platform) => [...new Set(p["os.features"] ?? [])].sort().join("\n");
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? "") === (b.variant ?? "")
    && (a["os.version"] ?? "") === (b["os.version"] ?? "") && feats(a) === feats(b);
}

/**
 * Whether entry platform `got` is what a `--platform os/arch[/variant]` names: os and
 * architecture equal, and the variant too when the flag gives one.
 */
export function platformMatches(want: Platform, got: Platform | undefined): boolean {
  if (!got) return false;
  return got.os === want.os && got.architecture === want.architecture && (!want.variant || want.variant === (got.variant ?? ""));
}

/**
 * UsageError when two of `entries` offer the same platform, naming both by `names[i]` (what
 * the user gave for each, e.g. `--from L:A`), else by position.
 */
export function checkDistinctPlatforms(entries: Descriptor[], names: string[] = []): void {
  const name = (i: number) => names[i] ?? `entry ${i + 1}`;
  for (let i = 0; i < entries.length; i++) {
    for (let j = 0; j < i; j++) {
      if (samePlatform(entries[i]!.platform, entries[j]!.platform)) {
        throw new UsageError(`${name(j)} and ${name(i)} both offer platform ${describePlatform(entries[i]!.platform)}: one entry per platform (a reader takes the first that matches); give one of them another --platform`);
      }
    }
  }
}

/** A new index of `entries` (in order), with `annotations` when there are any; `names` as for checkDistinctPlatforms. */
export function buildIndex(entries: Descriptor[], annotations: Record<string, string> = {}, names: string[] = []): ImageIndex {
  if (!entries.length) throw new UsageError("an index needs at least one entry");
  checkDistinctPlatforms(entries, names);
  const ix: ImageIndex = { schemaVersion: 2, mediaType: MediaType.index, manifests: entries };
  if (Object.keys(annotations).length) ix.annotations = annotations;
  return ix;
}

/** Annotations merged into an existing index's (a later value wins); undefined when none. */
export function mergeAnnotations(old: Record<string, string> | undefined, add: Record<string, string>): Record<string, string> | undefined {
  const out = { ...(old ?? {}), ...add };
  return Object.keys(out).length ? out : undefined;
}

/**
 * `ix` with `entry` added: in place of the entry that offers the same platform, else appended.
 * `replaced` is the entry it took the place of. An entry already offered (same digest, same
 * platform) leaves the index as it is.
 */
export function addEntry(ix: ImageIndex, entry: Descriptor): { index: ImageIndex; replaced?: Descriptor; unchanged: boolean } {
  const manifests = [...(ix.manifests ?? [])];
  const at = manifests.findIndex((d) => samePlatform(d.platform, entry.platform));
  if (at < 0) {
    if (!entry.platform && manifests.some((d) => !d.platform && d.digest === entry.digest && d.mediaType === entry.mediaType)) {
      return { index: ix, unchanged: true };
    }
    manifests.push(entry);
    return { index: { ...ix, manifests }, unchanged: false };
  }
  const replaced = manifests[at]!;
  if (replaced.digest === entry.digest && replaced.mediaType === entry.mediaType && (replaced.artifactType ?? "") === (entry.artifactType ?? "")) {
    return { index: ix, replaced, unchanged: true };
  }
  manifests[at] = entry;
  return { index: { ...ix, manifests }, replaced, unchanged: false };
}

/**
 * `ix` without the one entry `platform` names (platformMatches). NotFoundError when none does
 * (naming what is offered); UsageError when several do (name the variant) or when it is the last
 * entry.
 */
export function removeEntry(ix: ImageIndex, platform: Platform): { index: ImageIndex; removed: Descriptor } {
  const manifests = ix.manifests ?? [];
  const hits = manifests.map((d, i) => [d, i] as const).filter(([d]) => platformMatches(platform, d.platform));
  const want = describePlatform(platform);
  if (!hits.length) {
    const offered = manifests.map((d) => describePlatform(d.platform)).join(", ");
    throw new NotFoundError(`no entry for platform ${want} (entries: ${offered || "none"})`);
  }
  if (hits.length > 1) {
    const variants = new Set(hits.map(([d]) => d.platform?.variant ?? ""));
    const how = !platform.variant && variants.size > 1 ? "give the variant too" : "name the entry with --digest";
    throw new UsageError(`platform ${want} names ${hits.length} entries (${hits.map(([d]) => describePlatform(d.platform)).join(", ")}); ${how}`);
  }
  return removeAt(ix, hits[0]![1], `platform ${want}`);
}

/** `ix` without the entry whose digest is `digest` (NotFoundError when none; UsageError for several or the last). */
export function removeEntryByDigest(ix: ImageIndex, digest: string): { index: ImageIndex; removed: Descriptor } {
  const manifests = ix.manifests ?? [];
  const hits = manifests.map((d, i) => [d, i] as const).filter(([d]) => d.digest === digest);
  if (!hits.length) throw new NotFoundError(`no entry with digest ${digest}`);
  if (hits.length > 1) throw new UsageError(`digest ${digest} is named by ${hits.length} entries (${hits.map(([d]) => describePlatform(d.platform)).join(", ")}); name the entry with --platform`);
  return removeAt(ix, hits[0]![1], `digest ${digest}`);
}

function removeAt(ix: ImageIndex, at: number, what: string): { index: ImageIndex; removed: Descriptor } {
  const manifests = ix.manifests ?? [];
  if (manifests.length === 1) throw new UsageError(`${what} is the index's only entry: an index is not left empty (boci rm removes the tag)`);
  return { index: { ...ix, manifests: manifests.filter((_, i) => i !== at) }, removed: manifests[at]! };
}
