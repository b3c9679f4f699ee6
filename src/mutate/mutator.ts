/**
 * Staged edits of one manifest and its config. `commit()` writes the new blobs first (config,
 * manifest, then every index on the walk back up to index.json), makes them durable, and only
 * then swaps the tag in index.json under the index lock: a tag always names a complete image.
 *
 * The caller holds the layout's gc lock (shared) from construction until after commit.
 *
 * Images with Docker schema-2 media types (manifest, config or layers, as crane and buildx write
 * them) are refused, as umoci refuses anything but an OCI manifest: rewriting one in place
 * would either keep Docker types on a changed image or silently convert it (and a Docker
 * manifest list holding it would then name an OCI manifest among Docker ones). The message
 * names the `boci copy` that converts the image to OCI first.
 */
import {
  type Descriptor, type ImageConfig, type ImageIndex, type Manifest, type History,
  MediaType, AnnotationRefName, normalizeConfig, normalizeManifest, normalizeIndex, isDockerMediaType, artifactRefusal,
} from "../image";
import { type Layout, type DescriptorPath, manifestOf, setTag } from "../cas";
import { InvalidError, UnsupportedError } from "../errors";

export class Mutator {
  readonly layout: Layout;
  readonly path: DescriptorPath;
  manifest: Manifest;
  config: ImageConfig;
  private readonly origManifestDesc: Descriptor;
  /** the config's os/architecture/variant as read, to tell whether an edit changed them */
  private readonly origPlatform: string;

  constructor(layout: Layout, path: DescriptorPath) {
    this.layout = layout;
    this.path = path;
    this.origManifestDesc = manifestOf(path);
    this.manifest = layout.readJson<Manifest>(this.origManifestDesc, "manifest");
    refuseDockerTyped(layout, path, this.origManifestDesc, this.manifest);
    const artifact = artifactRefusal(this.manifest, `manifest ${this.origManifestDesc.digest}`);
    if (artifact) throw new UnsupportedError(artifact);
    if (this.manifest.config.mediaType !== MediaType.config)
      throw new InvalidError(`manifest ${this.origManifestDesc.digest}: config media type ${this.manifest.config.mediaType} is not an OCI image config`);
    this.config = layout.readJson<ImageConfig>(this.manifest.config, "config");
    this.origPlatform = platformKey(this.config);
    this.config.rootfs.diff_ids ??= [];
    const nLayers = this.manifest.layers.length;
    if (this.config.rootfs.diff_ids.length !== nLayers)
      throw new InvalidError(`image ${this.origManifestDesc.digest}: ${nLayers} layers but ${this.config.rootfs.diff_ids.length} diff_ids`);
  }

  /**
   * Append a layer (already stored as a blob) with its diffID and optional history entry;
   * `annotations` are added to its descriptor (`--layer.annotation`).
   */
  addLayer(desc: Descriptor, diffID: string, history: History | null, annotations?: Record<string, string>): void {
    const layer = annotations && Object.keys(annotations).length ? { ...desc, annotations: { ...(desc.annotations ?? {}), ...annotations } } : desc;
    this.manifest.layers = [...this.manifest.layers, layer];
    this.config.rootfs.diff_ids = [...this.config.rootfs.diff_ids, diffID];
    if (history) this.addHistory({ ...history, empty_layer: undefined });
  }

  addHistory(h: History): void {
    this.config.history = [...(this.config.history ?? []), h];
  }

  /**
   * Write everything and point `tag` at the result. Returns the new manifest descriptor and
   * the new descriptor walk (index.json entry first, as umoci.json records it).
   */
  commit(tag: string): { manifest: Descriptor; walk: Descriptor[] } {
    const layout = this.layout;
    const configDesc: Descriptor = { ...this.manifest.config, ...layout.putJson(normalizeConfig(this.config), this.manifest.config.mediaType) };
    delete configDesc.data;
    const manifest = normalizeManifest({ ...this.manifest, mediaType: this.manifest.mediaType ?? MediaType.manifest, config: configDesc });
    const stored = layout.putJson(manifest, this.origManifestDesc.mediaType);
    let child: Descriptor = { ...this.origManifestDesc, digest: stored.digest, size: stored.size };
    delete child.data;
    // An index names each manifest with its platform: when the config's platform changed
    // (config --platform.arch …), the entry says so too, or the index would lie about it.
    const platform = this.origManifestDesc.platform && platformKey(this.config) !== this.origPlatform
      ? { ...this.origManifestDesc.platform, os: this.config.os, architecture: this.config.architecture, variant: this.config.variant || undefined }
      : undefined;
    if (platform) child.platform = platform;
    const newManifestDesc = child;
    const newWalk: Descriptor[] = [child];
    // Rewrite each parent index on the walk, innermost first.
    for (let i = this.path.walk.length - 2; i >= 0; i--) {
      const parentDesc = this.path.walk[i]!;
      const oldChild = this.path.walk[i + 1]!;
      const ix = layout.readJson<ImageIndex>(parentDesc, "index");
      // The entry the walk came through: its digest and platform (one manifest may be listed
      // for two platforms); every other entry, and the index's own fields, stay as they are.
      let at = ix.manifests.findIndex((d) => d.digest === oldChild.digest && samePlatform(d.platform, oldChild.platform));
      if (at < 0) at = ix.manifests.findIndex((d) => d.digest === oldChild.digest);
      const manifests = ix.manifests.map((d, j) => {
        if (j !== at) return d;
        const e: Descriptor = { ...d, digest: child.digest, size: child.size };
        delete e.data;
        if (i === this.path.walk.length - 2 && platform) e.platform = platform;
        return e;
      });
      const ps = layout.putJson(normalizeIndex({ ...ix, manifests }), parentDesc.mediaType);
      child = { ...parentDesc, digest: ps.digest, size: ps.size };
      delete child.data;
      newWalk.unshift(child);
    }
    layout.syncBlobs();
    const root = child;
    const annotations = { ...(root.annotations ?? {}) };
    delete annotations[AnnotationRefName];
    const rootDesc: Descriptor = { ...root, annotations: Object.keys(annotations).length ? annotations : undefined };
    layout.updateIndex((ix) => ({ index: setTag(ix, tag, rootDesc), result: undefined }));
    newWalk[0] = { ...rootDesc, annotations: { ...(rootDesc.annotations ?? {}), [AnnotationRefName]: tag } };
    return { manifest: newManifestDesc, walk: newWalk };
  }
}

function platformKey(c: ImageConfig): string {
  return JSON.stringify([c.os ?? "", c.architecture ?? "", c.variant ?? ""]);
}

function samePlatform(a: Descriptor["platform"], b: Descriptor["platform"]): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/**
 * Throw UnsupportedError (exit 6) when the image uses Docker schema-2 media types: the manifest
 * (its descriptor or its own mediaType), the config, or any layer. One line, naming the image and
 * the first Docker type found, and the copy that converts it.
 */
function refuseDockerTyped(layout: Layout, path: DescriptorPath, desc: Descriptor, m: Manifest): void {
  const found = [desc.mediaType, m.mediaType, m.config.mediaType, ...m.layers.map((l) => l.mediaType)].find((mt) => isDockerMediaType(mt));
  if (found === undefined) return;
  const tag = path.walk[0]?.annotations?.[AnnotationRefName];
  const name = tag !== undefined ? `${layout.path}:${tag}` : `${layout.path}@${desc.digest}`;
  const hint = tag !== undefined ? `boci copy oci:${layout.path}:${tag} oci:${layout.path}:${tag}-oci` : `boci copy oci:${layout.path}:TAG oci:${layout.path}:NEWTAG`;
  throw new UnsupportedError(`image ${name} has docker media types (${found}): boci writes only oci images; convert it with \`${hint}\``);
}
