/**
 * Archives built in code for the transport tests (no binary fixtures): docker-archives in the
 * layouts Docker and skopeo write, oci-archives of a layout directory, and an ImageToWrite read
 * from any BlobReader (what the copy engine hands the archive writers). Tar bytes come from
 * test/helpers/image.ts's hand-written USTAR builder, so hostile variants are one option away.
 */
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeTree } from "./tree";
import { type TarEntrySpec, compress, makeTar, sha256hex, type Compress, hostArch } from "./image";
import type { BlobReader } from "../../src/cas/source";
import type { Descriptor, ImageConfig, Manifest } from "../../src/image";
import type { ImageToWrite } from "../../src/transport/types";

/** One image of a docker-archive built by {@link makeDockerArchive}. */
export interface DockerImageSpec {
  /** uncompressed layer tars (their sha256 are the diffIDs) */
  layers: Buffer[];
  /** store layer n compressed in the archive (Docker's loader accepts gzip and zstd members) */
  compressEach?: Compress[];
  /** config fields merged over a default (rootfs.diff_ids is filled in unless `diffIds` is given) */
  config?: Record<string, unknown>;
  diffIds?: string[];
  repoTags?: string[] | null;
  /** replace a layer member's bytes (after compression) */
  rawLayers?: (Buffer | undefined)[];
}

export type DockerLayoutStyle =
  /** skopeo 1.9: `<diffid>.tar`, `<config>.json`, `<v1id>/layer.tar` symlinks to `../<diffid>.tar` */
  | "skopeo"
  /** Docker 1.10-24: `<v1id>/layer.tar` files, `<config>.json` */
  | "legacy"
  /** Docker 25+: `blobs/sha256/<hex>` members beside manifest.json, index.json and oci-layout */
  | "oci";

export interface DockerArchiveOptions {
  style?: DockerLayoutStyle;
  /** entries appended after the archive's own (hostile extras) */
  extra?: TarEntrySpec[];
  /** replace manifest.json's bytes */
  manifestJson?: Buffer | string;
  /** drop the end-of-archive marker */
  noEnd?: boolean;
}

export interface BuiltDockerImage { configBytes: Buffer; configDigest: string; diffIds: string[]; layerPaths: string[] }

/** The bytes of a default image config over `layers`' diffIDs (merged with `extra`). */
export function dockerConfig(diffIds: string[], extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(JSON.stringify({
    architecture: hostArch(), os: "linux", created: "2021-02-03T04:05:06Z",
    config: { Env: ["PATH=/usr/bin:/bin"], Cmd: ["/bin/sh"] },
    container_config: { Cmd: ["/bin/sh", "-c", "#(nop)"] },
    docker_version: "20.10.0",
    history: diffIds.map((_, i) => ({ created: "2021-02-03T04:05:06Z", created_by: `step ${i}` })),
    ...extra,
    rootfs: { type: "layers", diff_ids: diffIds },
  }));
}

/**
 * Write a docker-archive at `file` holding `images` (manifest.json in the given order) in one of
 * the layouts Docker or skopeo write. Returns what each image became.
 */
export function makeDockerArchive(file: string, images: DockerImageSpec[], opts: DockerArchiveOptions = {}): BuiltDockerImage[] {
  const style = opts.style ?? "skopeo";
  const entries: TarEntrySpec[] = [];
  const seen = new Set<string>();
  const add = (e: TarEntrySpec) => {
    const n = String(e.name);
    if (seen.has(n)) return;
    seen.add(n);
    entries.push(e);
  };
  const built: BuiltDockerImage[] = [];
  const items: { Config: string; RepoTags: string[] | null; Layers: string[] }[] = [];
  for (const img of images) {
    const diffIds = img.layers.map((l) => `sha256:${sha256hex(l)}`);
    const configBytes = dockerConfig(img.diffIds ?? diffIds, img.config);
    const configHex = sha256hex(configBytes);
    const layerPaths: string[] = [];
    img.layers.forEach((l, i) => {
      const stored = img.rawLayers?.[i] ?? compress(l, img.compressEach?.[i] ?? "none");
      const hex = sha256hex(l);
      const storedHex = sha256hex(stored);
      const v1id = sha256hex(Buffer.from(`v1 ${i} ${hex}`));
      if (style === "skopeo") {
        add({ name: `${hex}.tar`, body: stored, mode: 0o444, mtime: 0 });
        add({ name: `${v1id}/layer.tar`, type: "2", linkname: `../${hex}.tar`, mtime: 0 });
        layerPaths.push(`${hex}.tar`);
      } else if (style === "legacy") {
        add({ name: `${v1id}/`, type: "5" });
        add({ name: `${v1id}/VERSION`, body: "1.0" });
        add({ name: `${v1id}/json`, body: JSON.stringify({ id: v1id }) });
        add({ name: `${v1id}/layer.tar`, body: stored });
        layerPaths.push(`${v1id}/layer.tar`);
      } else {
        add({ name: "blobs/", type: "5" });
        add({ name: "blobs/sha256/", type: "5" });
        add({ name: `blobs/sha256/${storedHex}`, body: stored });
        layerPaths.push(`blobs/sha256/${storedHex}`);
      }
    });
    const configPath = style === "oci" ? `blobs/sha256/${configHex}` : `${configHex}.json`;
    add({ name: configPath, body: configBytes });
    items.push({ Config: configPath, RepoTags: img.repoTags === undefined ? [] : img.repoTags, Layers: layerPaths });
    built.push({ configBytes, configDigest: `sha256:${configHex}`, diffIds, layerPaths });
  }
  if (style === "oci") {
    add({ name: "oci-layout", body: JSON.stringify({ imageLayoutVersion: "1.0.0" }) });
    add({ name: "index.json", body: JSON.stringify({ schemaVersion: 2, manifests: [] }) });
  }
  add({ name: "manifest.json", body: opts.manifestJson ?? JSON.stringify(items) });
  if (style !== "oci") add({ name: "repositories", body: "{}" });
  entries.push(...(opts.extra ?? []));
  writeFileSync(file, makeTar(entries, { noEnd: opts.noEnd }));
  return built;
}

/**
 * A tar of the layout directory `layout` built independently of src/transport/ (skopeo's member
 * order: `blobs/`, `blobs/<alg>/`, the blobs, `index.json`, `oci-layout`), plus `extra` entries.
 */
export function makeOciArchive(layout: string, file: string, opts: { extra?: TarEntrySpec[]; prefix?: string } = {}): void {
  const p = opts.prefix ?? "";
  const entries: TarEntrySpec[] = [{ name: `${p}blobs/`, type: "5" }];
  for (const alg of readdirSync(join(layout, "blobs")).sort()) {
    entries.push({ name: `${p}blobs/${alg}/`, type: "5" });
    for (const n of readdirSync(join(layout, "blobs", alg)).sort()) entries.push({ name: `${p}blobs/${alg}/${n}`, body: readFileSync(join(layout, "blobs", alg, n)) });
  }
  entries.push({ name: `${p}index.json`, body: readFileSync(join(layout, "index.json")) });
  entries.push({ name: `${p}oci-layout`, body: readFileSync(join(layout, "oci-layout")) });
  entries.push(...(opts.extra ?? []));
  writeFileSync(file, makeTar(entries));
}

/** Drain a stream into one Buffer (small test blobs only). */
export async function collect(s: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** The image `manifestDesc` names in `reader`, as the copy engine hands it to an archive writer. */
export function imageToWrite(reader: BlobReader, manifestDesc: Descriptor): ImageToWrite {
  const manifestBytes = reader.readBlob(manifestDesc);
  const manifest = reader.readJson<Manifest>(manifestDesc, "manifest");
  const configBytes = reader.readBlob(manifest.config);
  const config = reader.readJson<ImageConfig>(manifest.config, "config");
  return {
    manifestDesc, manifestBytes, manifest, configDesc: manifest.config, configBytes, config,
    layers: manifest.layers.map((desc, i) => ({ desc, diffID: config.rootfs.diff_ids[i]!, open: () => reader.getBlob(desc) })),
  };
}

/**
 * Every path under `root` with its type, mode, owner, size, whole-second mtime and content hash
 * or link target: two unpacks of the same image give equal maps.
 */
export function treeOf(root: string): Record<string, string> {
  return describeTree(root, (st, extra) => [st.mode.toString(8), st.uid, st.gid, st.isDirectory() ? "-" : st.size, Math.floor(st.mtimeMs / 1000), extra].join(" "));
}
