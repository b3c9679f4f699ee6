/** Image-spec v1.1 types, field order as the spec's Go structs (so JSON we write matches umoci's). */

export interface Platform {
  architecture: string;
  os: string;
  "os.version"?: string;
  "os.features"?: string[];
  variant?: string;
  features?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  data?: string;
  platform?: Platform;
  artifactType?: string;
}

export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
  [k: string]: unknown;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
  [k: string]: unknown;
}

export interface History {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface ImageConfigBody {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  ArgsEscaped?: boolean;
  [k: string]: unknown;
}

export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  variant?: string;
  os: string;
  "os.version"?: string;
  "os.features"?: string[];
  config?: ImageConfigBody;
  rootfs: { type: string; diff_ids: string[] };
  history?: History[];
  [k: string]: unknown;
}

const descriptorOrder = ["mediaType", "digest", "size", "urls", "annotations", "data", "platform", "artifactType"];
const platformOrder = ["architecture", "os", "os.version", "os.features", "variant"];
const manifestOrder = ["schemaVersion", "mediaType", "artifactType", "config", "layers", "subject", "annotations"];
const indexOrder = ["schemaVersion", "mediaType", "artifactType", "manifests", "subject", "annotations"];
// (image-spec's Image embeds Platform after author: architecture, os, os.version, os.features, variant)
const configOrder = ["created", "author", "architecture", "os", "os.version", "os.features", "variant", "config", "rootfs", "history"];
const bodyOrder = ["User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels", "StopSignal", "ArgsEscaped"];
const historyOrder = ["created", "created_by", "author", "comment", "empty_layer"];

/**
 * Copy an object with known keys first in the given order and unknown keys after (kept, as the
 * spec asks), dropping Go-omitempty-style empties for the known optional keys.
 */
function ordered(obj: Record<string, unknown>, order: string[], keep: string[] = []): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of order) {
    const v = obj[k];
    if (v === undefined || v === null) continue;
    if (!keep.includes(k) && isEmpty(v)) continue;
    out[k] = v;
  }
  for (const k of Object.keys(obj)) if (!order.includes(k) && obj[k] !== undefined) out[k] = obj[k];
  return out;
}

function isEmpty(v: unknown): boolean {
  if (v === "" || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === "object" && v !== null) return Object.keys(v).length === 0;
  return false;
}

export function normalizeDescriptor(d: Descriptor): Descriptor {
  const o = ordered(d as unknown as Record<string, unknown>, descriptorOrder, ["size", "mediaType", "digest"]);
  if (d.platform) o.platform = ordered(d.platform as unknown as Record<string, unknown>, platformOrder);
  return o as unknown as Descriptor;
}

export function normalizeManifest(m: Manifest): Manifest {
  const o = ordered({ ...m, config: normalizeDescriptor(m.config), layers: m.layers.map(normalizeDescriptor),
    subject: m.subject && normalizeDescriptor(m.subject) }, manifestOrder, ["layers"]);
  return o as Manifest;
}

export function normalizeIndex(ix: ImageIndex): ImageIndex {
  return ordered({ ...ix, manifests: (ix.manifests ?? []).map(normalizeDescriptor) }, indexOrder, ["manifests"]) as ImageIndex;
}

export function normalizeConfig(c: ImageConfig): ImageConfig {
  const body = c.config ? ordered(c.config as Record<string, unknown>, bodyOrder) : undefined;
  const history = c.history?.map((h) => ordered(h as Record<string, unknown>, historyOrder));
  // Go writes the config body even when empty ("config":{}), as umoci does.
  return ordered({ ...c, config: body ?? {},
    rootfs: { type: c.rootfs.type, diff_ids: c.rootfs.diff_ids ?? [] }, history },
    configOrder, ["architecture", "os", "config", "rootfs"]) as ImageConfig;
}
