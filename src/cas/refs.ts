/**
 * Tags and descriptor walks. A tag is the `org.opencontainers.image.ref.name` annotation of a
 * top-level index.json entry. Resolving a tag walks nested indexes down to manifests (the shared
 * walk of walk.ts); each hit is a DescriptorPath from the index.json entry to the manifest.
 */
import { InvalidError, NotFoundError, UnsupportedError, UsageError } from "../errors";
import { type Descriptor, type ImageIndex, type Platform, AnnotationRefName, isDockerSchema1MediaType } from "../image";
import type { BlobReader } from "./source";
import { DescriptorWalk, type WalkChild } from "./walk";

export interface DescriptorPath {
  /** walk[0] is the index.json entry; the last element is the manifest. */
  walk: Descriptor[];
}

export function manifestOf(p: DescriptorPath): Descriptor {
  return p.walk[p.walk.length - 1]!;
}

/** The platform that applies to a path: the nearest descriptor on it that carries one. */
export function platformOf(p: DescriptorPath): Platform | undefined {
  for (let i = p.walk.length - 1; i >= 0; i--) if (p.walk[i]!.platform) return p.walk[i]!.platform;
  return undefined;
}

export function refName(d: Descriptor): string | undefined {
  return d.annotations?.[AnnotationRefName];
}

/** Tag names in index order (duplicates possible, as in umoci). */
export function listTags(ix: ImageIndex): string[] {
  const out: string[] = [];
  for (const d of ix.manifests) {
    const n = refName(d);
    if (n !== undefined) out.push(n);
  }
  return out;
}

/**
 * All descriptor paths from top-level entries named `tag` down to manifests, in index order.
 * Uses the shared walk (walk.ts): each index is read once, so a DAG of indexes costs one read
 * per distinct index whatever the number of routes, and chains of any depth work. A manifest
 * named again with the same platform by another route is listed once (by its first route).
 * Throws the reading error of the first index that cannot be read.
 */
export function walkTag(layout: BlobReader, ix: ImageIndex, tag: string): DescriptorPath[] {
  const out: DescriptorPath[] = [];
  const roots: WalkChild[] = [];
  ix.manifests.forEach((d, i) => { if (refName(d) === tag) roots.push({ desc: d, where: `index.json manifests[${i}]` }); });
  // A manifest is one hit per platform it is offered for; an index is read once.
  const w = new DescriptorWalk(roots, { key: (c) => (c.kind === "manifest" ? `manifest ${c.desc.digest} ${JSON.stringify(c.desc.platform ?? null)}` : `${c.kind} ${c.desc.digest}`) });
  for (let n = w.next(); n; n = w.next()) {
    if (n.kind === "manifest") { out.push({ walk: DescriptorWalk.path(n) }); continue; }
    if (n.kind !== "index") continue; // other media types (artifacts) are not images
    const child = layout.readJson<ImageIndex>(n.desc, "index");
    w.expand(n, (child.manifests ?? []).map((c, i) => ({ desc: c, where: `manifests[${i}] of index ${n.desc.digest}` })));
  }
  return out;
}

/** The host platform in GOOS/GOARCH terms (and the variant, for ARM, as umoci 0.6 fills it). */
export function hostPlatform(): Platform {
  const archMap: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64", loong64: "loong64", mips: "mips", mipsel: "mipsle" };
  const architecture = archMap[process.arch] ?? process.arch;
  const p: Platform = { architecture, os: process.platform === "win32" ? "windows" : process.platform };
  if (architecture === "arm64") p.variant = "v8";
  if (architecture === "arm") {
    const v = (process.config.variables as Record<string, unknown>).arm_version;
    if (v) p.variant = `v${v}`;
  }
  return p;
}

/** Parse `os/arch[/variant]` (a flag's value: a bad one is a UsageError, exit 2). */
export function parsePlatform(s: string): Platform {
  const parts = s.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((x) => !x)) throw new UsageError(`invalid platform ${JSON.stringify(s)}: expected os/arch[/variant]`);
  const p: Platform = { os: parts[0]!, architecture: parts[1]! };
  if (parts[2]) p.variant = parts[2];
  return p;
}

export function formatPlatform(p: Platform | undefined): string {
  if (!p) return "unknown";
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

/** Whether a manifest offered for `got` serves a request for `want` (a variant only one names matches). */
export function platformMatches(want: Platform, got: Platform | undefined): boolean {
  return matches(want, got, false);
}

function matches(want: Platform, got: Platform | undefined, strictVariant: boolean): boolean {
  if (!got) return false;
  if (got.os !== want.os || got.architecture !== want.architecture) return false;
  if (want.variant && got.variant && want.variant !== got.variant) return false;
  if (strictVariant && want.variant && !got.variant) return false;
  return true;
}

export interface ResolveOptions {
  /** the platform to choose from a multi-platform index (default: the host's) */
  platform?: Platform;
  /**
   * The caller writes the manifest back into its index: without `platform`, even the only
   * manifest of an index must be the host's (a write never picks another platform silently).
   */
  forWrite?: boolean;
}

/**
 * Resolve a tag to exactly one manifest. Several hits (a multi-platform index) are narrowed by
 * `platform` (default: the host's); none matching lists the platforms on offer.
 */
export function resolveTag(layout: BlobReader, ix: ImageIndex, tag: string, opts: ResolveOptions = {}): DescriptorPath {
  const paths = walkTag(layout, ix, tag);
  if (paths.length === 0) {
    // A tag that is there but names no image says so (not "not found").
    const named = ix.manifests.filter((d) => refName(d) === tag);
    const s1 = named.find((d) => isDockerSchema1MediaType(d.mediaType));
    if (s1) throw new UnsupportedError(`tag ${JSON.stringify(tag)}: docker schema 1 manifests are not supported (${s1.mediaType})`);
    if (named.length) throw new NotFoundError(`tag ${JSON.stringify(tag)} names no image (media type ${named[0]!.mediaType})`);
    throw new NotFoundError(`tag ${JSON.stringify(tag)} not found`);
  }
  const checkOne = !!opts.platform || (opts.forWrite === true && paths[0]!.walk.length > 1);
  if (paths.length === 1 && !checkOne) return paths[0]!;
  if (paths.length === 1) {
    const want = opts.platform ?? hostPlatform();
    const p = platformOf(paths[0]!);
    if (!p || matches(want, p, false)) return paths[0]!;
    throw new NotFoundError(`tag ${JSON.stringify(tag)}: no manifest for platform ${formatPlatform(want)} (available: ${formatPlatform(p)})${opts.platform ? "" : "; choose one with --platform"}`);
  }
  const want = opts.platform ?? hostPlatform();
  let hits = paths.filter((p) => matches(want, platformOf(p), true));
  if (hits.length === 0) hits = paths.filter((p) => matches(want, platformOf(p), false));
  if (hits.length === 1) return hits[0]!;
  const avail = paths.map((p) => formatPlatform(platformOf(p))).join(", ");
  if (hits.length === 0) throw new NotFoundError(`tag ${JSON.stringify(tag)}: no manifest for platform ${formatPlatform(want)} (available: ${avail})${opts.platform ? "" : "; choose one with --platform"}`);
  throw new InvalidError(`tag ${JSON.stringify(tag)} is ambiguous: ${hits.length} manifests match platform ${formatPlatform(want)}`);
}

/** Replace every top-level entry named `tag` with `desc` (appended, annotated with the name). */
export function setTag(ix: ImageIndex, tag: string, desc: Descriptor): ImageIndex {
  const manifests = ix.manifests.filter((d) => refName(d) !== tag);
  manifests.push({ ...desc, annotations: { ...(desc.annotations ?? {}), [AnnotationRefName]: tag } });
  return { ...ix, manifests };
}

export function removeTag(ix: ImageIndex, tag: string): { index: ImageIndex; removed: number } {
  const manifests = ix.manifests.filter((d) => refName(d) !== tag);
  return { index: { ...ix, manifests }, removed: ix.manifests.length - manifests.length };
}
