/**
 * `skopeo inspect` and `skopeo list-tags` for the local transports, printing what skopeo 1.9.3
 * (containers/image 5.23) prints:
 *
 *  - `inspect`: the Output object (Name when the reference names a Docker repository, Digest of
 *    the top-level manifest, RepoTags `[]`, Created, DockerVersion, Labels, Architecture, Os,
 *    Layers, Env), `json.MarshalIndent` with four spaces; `--config`: the chosen image's config
 *    decoded into image-spec's `v1.Image` and re-encoded the same way; `--raw`: the top-level
 *    manifest's exact bytes; `--raw --config`: the config's exact bytes; `--format TEMPLATE`:
 *    a Go template of field references only (see renderTemplate).
 *  - A docker-archive has no manifest of its own: skopeo makes a Docker schema-2 manifest
 *    (config by its digest, each layer by its diffID and uncompressed size, layer media type
 *    `…rootfs.diff.tar.gzip` whatever the layer is), serialised by Go's json.Marshal; Digest and
 *    `--raw` are of that manifest, so they are made the same way here.
 *  - `list-tags docker-archive:FILE`: `{"Tags": [...]}`, every image's RepoTags as manifest.json
 *    has them (skopeo writes `docker.io/library/n:t`, docker save `n:t`), `@N` for an untagged image. skopeo 1.9 lists no tags for `oci:`
 *    or `oci-archive:` (it refuses them), and neither does this (UnsupportedError).
 *  - `docker://HOST/REPO[:TAG|@DIGEST]` (the registry transport, open.ts openReaderAsync with
 *    skopeo's registry flags): inspect's Name is `HOST/REPO` and RepoTags the repository's tags
 *    (none asked for with `--no-tags`); `list-tags docker://HOST/REPO` (no tag or digest allowed,
 *    as skopeo) prints `{"Repository": "HOST/REPO", "Tags": [...]}` in the registry's order.
 */
import { InvalidError, UnsupportedError, UsageError } from "../errors";
import {
  type BlobReader, type DescriptorPath, type GoType, encodeGoValue, manifestOf, sha256Digest,
} from "../cas";
import { type Descriptor, type ImageConfig, type Manifest, MediaType, type Platform } from "../image";
import { goString } from "../cas/go-json";
import type { ImageReference } from "../transport/types";
import type * as ReferenceModule from "../transport/reference";
import type * as OpenModule from "../transport/open";
import type * as CompressModule from "../compress";
import { writeOutBytes } from "../util/stdio";
import type { RegistryOptions } from "../transport/registry/types";
import type * as ClientModule from "../transport/registry/client";
import { type SkopeoFlags, type SkopeoGlobal, overridePlatform, refuseOtherTransport, skopeoRegistryOptions } from "./skopeo";

const referenceModule = () => require("../transport/reference") as typeof ReferenceModule;
const openModule = () => require("../transport/open") as typeof OpenModule;

const str: GoType = { k: "string" };
const strs: GoType = { k: "slice", of: str };
const strMap: GoType = { k: "map", of: str };
const f = (key: string, t: GoType, omitempty = false) => ({ key, t, omitempty });

/** skopeo 1.9.3 cmd/skopeo/inspect Output, as Debian's build prints it. */
const GoInspectOutput: GoType = {
  k: "struct",
  fields: [
    f("Name", str, true), f("Tag", str, true), f("Digest", str), f("RepoTags", strs), f("Created", { k: "ptr", to: { k: "time" } }),
    f("DockerVersion", str), f("Labels", strMap), f("Architecture", str), f("Os", str), f("Layers", strs), f("Env", strs),
  ],
};

/** image-spec v1.1.0-rc2 `v1.Image` (what skopeo 1.9.3 vendors): variant right after architecture. */
const GoImageRc2: GoType = {
  k: "struct",
  fields: [
    f("created", { k: "time" }, true), f("author", str, true), f("architecture", str), f("variant", str, true), f("os", str),
    f("os.version", str, true), f("os.features", strs, true),
    f("config", {
      k: "struct",
      fields: [
        f("User", str, true), f("ExposedPorts", { k: "set" }, true), f("Env", strs, true), f("Entrypoint", strs, true),
        f("Cmd", strs, true), f("Volumes", { k: "set" }, true), f("WorkingDir", str, true), f("Labels", strMap, true),
        f("StopSignal", str, true), f("ArgsEscaped", { k: "bool" }, true),
      ],
    }),
    f("rootfs", { k: "struct", fields: [f("type", str), f("diff_ids", strs)] }),
    f("history", {
      k: "slice",
      of: {
        k: "struct",
        fields: [f("created", { k: "time" }, true), f("created_by", str, true), f("author", str, true), f("comment", str, true), f("empty_layer", { k: "bool" }, true)],
      },
    }, true),
  ],
};

/**
 * What Inspect reads of a config (v1.Image and Docker's docker_version), with no field left out
 * when empty: an empty `Labels` or `Env` is kept as `{}`/`[]`, a missing one is null.
 */
const GoInspectSource: GoType = {
  k: "struct",
  fields: [
    f("created", { k: "ptr", to: { k: "time" } }), f("architecture", str), f("os", str), f("docker_version", str),
    f("config", { k: "ptr", to: { k: "struct", fields: [f("Labels", strMap), f("Env", strs)] } }),
  ],
};

/** The Go field names of v1.Image for templates (`{{.Config.Env}}`): JSON key by Go name. */
const IMAGE_GO_FIELDS: Record<string, string> = {
  Created: "created", Author: "author", Architecture: "architecture", Variant: "variant", OS: "os", OSVersion: "os.version",
  OSFeatures: "os.features", Config: "config", RootFS: "rootfs", History: "history",
  User: "User", ExposedPorts: "ExposedPorts", Env: "Env", Entrypoint: "Entrypoint", Cmd: "Cmd", Volumes: "Volumes",
  WorkingDir: "WorkingDir", Labels: "Labels", StopSignal: "StopSignal", ArgsEscaped: "ArgsEscaped",
  Type: "type", DiffIDs: "diff_ids", CreatedBy: "created_by", Comment: "comment", EmptyLayer: "empty_layer",
};

/**
 * Go's json.Indent over compact JSON (json.MarshalIndent = Marshal, then this): a newline and
 * `indent` per level, `": "` after a key, empty `[]` and `{}` kept on one line.
 */
export function indentGoJson(compact: string, indent = "    "): string {
  let out = "";
  let depth = 0;
  let inString = false;
  for (let i = 0; i < compact.length; i++) {
    const c = compact[i]!;
    if (inString) {
      out += c;
      if (c === "\\") out += compact[++i] ?? "";
      else if (c === '"') inString = false;
      continue;
    }
    switch (c) {
      case '"': inString = true; out += c; break;
      case "{": case "[": {
        const close = c === "{" ? "}" : "]";
        if (compact[i + 1] === close) { out += c + close; i++; break; }
        depth++;
        out += c + "\n" + indent.repeat(depth);
        break;
      }
      case "}": case "]": depth--; out += "\n" + indent.repeat(depth) + c; break;
      case ",": out += ",\n" + indent.repeat(depth); break;
      case ":": out += ": "; break;
      default: out += c;
    }
  }
  return out;
}

/** A value as Go decodes it into `t` and re-encodes it, back as a plain object (keys canonical). */
function goDecode(value: unknown, t: GoType): Record<string, unknown> {
  return JSON.parse(encodeGoValue(value, t)) as Record<string, unknown>;
}

/** What inspect reads of one image. */
export interface InspectedImage {
  /** the top-level manifest's bytes as skopeo sees them (a docker-archive's: the made schema-2) */
  rawManifest: Buffer;
  configBytes: Buffer;
  config: Record<string, unknown>;
  /** layer digests as the chosen manifest lists them (docker-archive: diffIDs) */
  layers: string[];
  /** the Docker repository a docker-archive reference names, without its tag */
  name?: string;
  /** whether the image's manifest is Docker schema 2 (its Created is never null) */
  docker: boolean;
  /** the config media type of a non-image artifact (its config is not parsed) */
  artifactType?: string;
  /** a registry repository's tags (docker://, unless not asked for) */
  repoTags?: string[];
}

/**
 * The Docker schema-2 manifest containers/image makes for a docker-archive image: the config
 * by digest and size, each layer by its diffID and uncompressed size (counted by decompressing
 * a compressed member, streamed), layers media type `…diff.tar.gzip`, Go's json.Marshal bytes.
 */
export async function dockerArchiveManifest(reader: BlobReader, manifest: Manifest, config: ImageConfig): Promise<Buffer> {
  const diffIDs = config.rootfs?.diff_ids ?? [];
  if (diffIDs.length !== manifest.layers.length) throw new InvalidError(`inconsistent layer count: ${manifest.layers.length} in manifest, ${diffIDs.length} in config`);
  const layers: string[] = [];
  for (let i = 0; i < manifest.layers.length; i++) {
    const l = manifest.layers[i]!;
    const size = l.digest === diffIDs[i] ? l.size : await uncompressedSize(reader, l);
    layers.push(`{"mediaType":${goString(MediaType.dockerLayerGzip)},"size":${size},"digest":${goString(diffIDs[i]!)}}`);
  }
  const cfg = manifest.config;
  return Buffer.from(`{"schemaVersion":2,"mediaType":${goString(MediaType.dockerManifest)},"config":{"mediaType":${goString(MediaType.dockerConfig)},"size":${cfg.size},"digest":${goString(cfg.digest)}},"layers":[${layers.join(",")}]}`);
}

async function uncompressedSize(reader: BlobReader, l: Descriptor): Promise<number> {
  const { compressionFromMediaType, createDecompressor } = require("../compress") as typeof CompressModule;
  const c = compressionFromMediaType(l.mediaType);
  if (c === "none") return l.size;
  const d = createDecompressor(c);
  let n = 0;
  const done = new Promise<void>((resolve, reject) => {
    d.on("data", (b: Buffer) => { n += b.length; });
    d.on("end", resolve);
    d.on("error", reject);
  });
  for await (const chunk of reader.getBlob(l)) if (!d.write(chunk)) await new Promise((r) => d.once("drain", r));
  d.end();
  await done;
  return n;
}

/**
 * Open `s` (a source reference) and read what inspect needs: the top-level manifest's bytes and
 * the one image chosen from it (by `platform`, default the host's). The reader is closed before
 * it returns.
 */
export async function inspectImage(s: string, opts: { platform?: Platform; registry?: RegistryOptions; tags?: boolean } = {}): Promise<InspectedImage> {
  refuseOtherTransport(s, "source");
  const { parseReference } = referenceModule();
  const { openReaderAsync, resolveImage } = openModule();
  const ref: ImageReference = parseReference(s, { role: "source" });
  const reader = await openReaderAsync(ref, opts.registry);
  try {
    const path: DescriptorPath = resolveImage(reader, ref, { platform: opts.platform });
    const top = path.walk[0]!;
    const mdesc = manifestOf(path);
    const manifest = reader.readJson<Manifest>(mdesc, "manifest");
    const configBytes = reader.readBlob(manifest.config);
    const isImage = manifest.config.mediaType === MediaType.config || manifest.config.mediaType === MediaType.dockerConfig;
    let config: Record<string, unknown> = {};
    if (isImage) {
      try { config = JSON.parse(configBytes.toString("utf8")) as Record<string, unknown>; } catch (e) {
        throw new InvalidError(`${s}: config ${manifest.config.digest}: invalid JSON: ${(e as Error).message}`, { cause: e });
      }
    }
    if (ref.transport === "docker-archive") {
      const raw = await dockerArchiveManifest(reader, manifest, config as unknown as ImageConfig);
      const name = ref.name !== undefined ? ref.name.slice(0, ref.name.lastIndexOf(":")) : undefined;
      return { rawManifest: raw, configBytes, config, layers: ((config as unknown as ImageConfig).rootfs?.diff_ids ?? []).slice(), name, docker: true, artifactType: undefined };
    }
    const img: InspectedImage = {
      rawManifest: reader.readBlob(top), configBytes, config, layers: manifest.layers.map((l) => l.digest),
      docker: mdesc.mediaType === MediaType.dockerManifest, artifactType: isImage ? undefined : manifest.config.mediaType,
    };
    if (ref.transport === "docker") {
      img.name = `${ref.registry}/${ref.repository}`;
      // As skopeo: the tags are listed only when the output shows them (not for --raw or --config).
      if (opts.tags) img.repoTags = await registryClient(ref, opts.registry ?? {}).listTags();
    }
    return img;
  } finally { reader.close(); }
}

/** skopeo's inspect Output for an image, as a plain object with its keys in Go's order. */
export function inspectOutput(img: InspectedImage): Record<string, unknown> {
  const v1 = goDecode(img.config, GoInspectSource);
  const cfg = (v1.config ?? {}) as Record<string, unknown>;
  const dockerVersion = v1.docker_version;
  // A schema-2 config's created is a time value, not a pointer: never null.
  const created = v1.created ?? (img.docker ? "0001-01-01T00:00:00Z" : null);
  return {
    ...(img.name ? { Name: img.name } : {}),
    Digest: sha256Digest(img.rawManifest),
    RepoTags: img.repoTags ?? [],
    Created: created,
    DockerVersion: dockerVersion ?? "",
    Labels: cfg.Labels ?? null,
    Architecture: v1.architecture ?? "",
    Os: v1.os ?? "",
    Layers: img.layers,
    Env: cfg.Env ?? null,
  };
}

/** The inspect Output as skopeo prints it (indented, a trailing newline). */
export function formatInspectOutput(o: Record<string, unknown>): string {
  return indentGoJson(encodeGoValue(o, GoInspectOutput)) + "\n";
}

/** The config as `skopeo inspect --config` prints it (decoded into v1.Image, indented). */
export function formatConfigOutput(config: unknown): string {
  return indentGoJson(encodeGoValue(config, GoImageRc2)) + "\n";
}

/** A Go time value as text/template prints it (time.Time.String()). */
function goTimeString(s: string): string {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.exec(s);
  if (!m) return s;
  const frac = (m[3] ?? "").replace(/0+$/, "").replace(/^\.$/, "");
  const zone = m[4] === "Z" ? "+0000 UTC" : `${m[4]!.replace(":", "")} ${m[4]!.replace(":", "")}`;
  return `${m[1]} ${m[2]}${frac} ${zone}`;
}

/** A value as Go's fmt %v prints it inside a template (strings bare, slices `[a b]`, maps `map[k:v]`). */
function goPrint(v: unknown, isTime: boolean): string {
  if (v === null || v === undefined) return isTime ? "<nil>" : "";
  if (typeof v === "string") return isTime ? goTimeString(v) : v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return `[${v.map((x) => goPrint(x, false)).join(" ")}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return `map[${keys.map((k) => `${k}:${typeof o[k] === "object" && o[k] !== null && !Array.isArray(o[k]) && Object.keys(o[k] as object).length === 0 ? "{}" : goPrint(o[k], false)}`).join(" ")}]`;
}

const MAP_FIELDS = new Set(["Labels", "ExposedPorts", "Volumes"]);
const BOOL_FIELDS = new Set(["ArgsEscaped", "EmptyLayer"]);
const SLICE_FIELDS = new Set(["RepoTags", "Layers", "LayersData", "Env", "Entrypoint", "Cmd", "OSFeatures", "DiffIDs", "History"]);

/** The value a `.A.B` field path names, printed as Go's template does. */
function lookupField(action: string, data: Record<string, unknown>, fields: Record<string, string>): string {
  let v: unknown = data;
  let last = "";
  for (const p of action.slice(1).split(".")) {
    if (MAP_FIELDS.has(last)) {
      // A map index: a missing key prints "<no value>".
      const o = (v ?? {}) as Record<string, unknown>;
      if (!(p in o)) return "<no value>";
      v = o[p];
      last = "";
      continue;
    }
    if (v !== null && v !== undefined && (typeof v !== "object" || Array.isArray(v)))
      throw new UsageError(`--format: can't evaluate field ${p} in {{${action}}}`);
    const key = fields[p] ?? p;
    if (!(p in fields) && !(v !== null && v !== undefined && key in (v as object)))
      throw new UsageError(`--format: can't evaluate field ${p} in {{${action}}}`);
    v = v === null || v === undefined ? undefined : (v as Record<string, unknown>)[key];
    last = p;
  }
  if ((v === null || v === undefined) && MAP_FIELDS.has(last)) return "map[]";
  if ((v === null || v === undefined) && SLICE_FIELDS.has(last)) return "[]";
  if ((v === null || v === undefined) && BOOL_FIELDS.has(last)) return "false";
  return goPrint(v, last === "Created");
}

/**
 * A Go text/template made of literal text and field references (`{{.Digest}}`,
 * `{{.Labels.key}}`, `{{ .Config.Env }}`), executed on `data` (keys by Go field name; `fields`
 * maps Go names to JSON keys where they differ). A trailing newline is added when missing, as
 * skopeo's report package does. Anything else (functions, pipelines, actions) is refused with
 * UnsupportedError naming it; an unknown field is a UsageError, as Go's "can't evaluate field".
 */
export function renderTemplate(tpl: string, data: Record<string, unknown>, fields: Record<string, string> = {}): string {
  let out = "";
  let i = 0;
  while (i < tpl.length) {
    const open = tpl.indexOf("{{", i);
    if (open < 0) { out += tpl.slice(i); break; }
    out += tpl.slice(i, open);
    const close = tpl.indexOf("}}", open + 2);
    if (close < 0) throw new UsageError(`--format ${JSON.stringify(tpl)}: unclosed action`);
    let action = tpl.slice(open + 2, close);
    if (action.startsWith("-")) { action = action.slice(1); out = out.replace(/\s+$/, ""); }
    let trimRight = false;
    if (action.endsWith("-")) { action = action.slice(0, -1); trimRight = true; }
    action = action.trim();
    if (!/^(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(action))
      throw new UnsupportedError(`--format: template action {{${action}}} is not supported by boci (field references such as {{.Digest}} only)`);
    out += lookupField(action, data, fields);
    i = close + 2;
    if (trimRight) while (i < tpl.length && /\s/.test(tpl[i]!)) i++;
  }
  return out.endsWith("\n") ? out : out + "\n";
}

/** `skopeo inspect IMAGE`. */
export async function runSkopeoInspect(args: string[], flags: SkopeoFlags, g: SkopeoGlobal): Promise<void> {
  const raw = flags.has("raw");
  const config = flags.has("config");
  const format = flags.get("format");
  if (raw && format !== undefined && format !== "") throw new UsageError("raw output does not support format option");
  const registry = skopeoRegistryOptions(flags, "");
  const img = await inspectImage(args[0]!, { platform: overridePlatform(g), registry, tags: !raw && !config && !flags.has("no-tags") });
  if (raw) { writeOutBytes(config ? img.configBytes : img.rawManifest); return; }
  // As containers/image: an artifact has no image config to show.
  if (img.artifactType !== undefined) throw new UnsupportedError(`${args[0]}: unsupported image-specific operation on artifact with type ${JSON.stringify(img.artifactType)}`);
  const json = format === undefined || format === "" || format === "json";
  if (config) {
    if (json) { g.out(formatConfigOutput(img.config)); return; }
    g.out(renderTemplate(format!, goDecode(img.config, GoImageRc2), IMAGE_GO_FIELDS));
    return;
  }
  const o = inspectOutput(img);
  if (json) { g.out(formatInspectOutput(o)); return; }
  g.out(renderTemplate(format!, { Name: "", Tag: "", LayersData: null, ...o }));
}

function registryClient(ref: { registry: string; repository: string }, registry: RegistryOptions): InstanceType<typeof ClientModule.RegistryClient> {
  const { RegistryClient } = require("../transport/registry/client") as typeof ClientModule;
  return new RegistryClient(ref.registry, ref.repository, registry, ["pull"]);
}

/**
 * `skopeo list-tags docker://HOST/REPO`: the repository's tags as skopeo prints them. A tag or
 * digest in the reference is a UsageError, as skopeo refuses it.
 */
async function listRegistryTags(s: string, flags: SkopeoFlags, g: SkopeoGlobal): Promise<void> {
  const registry = skopeoRegistryOptions(flags, "");
  const tail = s.slice(s.lastIndexOf("/") + 1);
  if (tail.includes(":") || s.includes("@")) throw new UsageError(`invalid image name ${JSON.stringify(s)}: no tag or digest allowed in reference`);
  const ref = referenceModule().parseReference(s, { role: "source" });
  if (ref.transport !== "docker") throw new Error(`internal error: ${s} is not a docker reference`);
  const tags = await registryClient(ref, registry).listTags();
  g.out(indentGoJson(`{"Repository":${goString(`${ref.registry}/${ref.repository}`)},"Tags":[${tags.map(goString).join(",")}]}`) + "\n");
}

/** `skopeo list-tags docker-archive:FILE`: every image's RepoTags as written, `@N` for an untagged one; `docker://` a registry's tags. */
export async function runSkopeoListTags(args: string[], flags: SkopeoFlags, g: SkopeoGlobal): Promise<void> {
  const s = args[0]!;
  refuseOtherTransport(s, "source");
  const t = s.slice(0, s.indexOf(":"));
  if (t === "docker") return listRegistryTags(s, flags, g);
  if (t !== "docker-archive") throw new UnsupportedError(`unsupported transport '${t}' for tag listing: only docker and docker-archive are supported (as in skopeo 1.9)`);
  skopeoRegistryOptions(flags, "");
  const { parseReference } = referenceModule();
  const { openReader } = openModule();
  const ref = parseReference(s, { role: "source" });
  const reader = openReader(ref);
  const tags: string[] = [];
  try {
    const lister = reader as BlobReader & Partial<OpenModule.ImageLister>;
    if (typeof lister.images !== "function") throw new Error(`internal error: ${s}: the docker-archive reader lists no images`);
    lister.images().forEach((img, n) => {
      if (img.repoTags.length === 0) { tags.push(`@${n}`); return; }
      tags.push(...img.repoTags);
    });
  } finally { reader.close(); }
  g.out(indentGoJson(`{"Tags":[${tags.map(goString).join(",")}]}`) + "\n");
}
