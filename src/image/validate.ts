/**
 * Structural validation of image-spec objects (pure; no I/O). Each validator returns every
 * violation it finds as "path: problem" strings; `assertValid` turns them into one InvalidError.
 * Media-type confusion (CVE-2021-41190) is refused: a manifest carrying `manifests`, an index
 * carrying `config`/`layers`, or an object whose own `mediaType` disagrees with how it was reached.
 *
 * Docker schema-2 manifests and manifest lists are accepted wherever OCI ones are (they have the
 * same shape; distribution's manifest-v2-2.md). Docker schema 1 is refused as unsupported: the
 * violation list is then marked (isUnsupported) and assertValid throws UnsupportedError (exit 6).
 */
import { InvalidError, UnsupportedError } from "../errors";
import { isDigest } from "./digest";
import { MediaType, isDockerSchema1MediaType, mediaTypeRe } from "./media-types";

type V = string[];

/** Violation lists that name something valid but unsupported (Docker schema 1). */
const unsupportedLists = new WeakSet<V>();

/** True when `violations` holds an unsupported (rather than invalid) object: assertValid exits 6 for it. */
export function isUnsupported(violations: V): boolean {
  return unsupportedLists.has(violations);
}

/**
 * A Docker schema-1 manifest (schemaVersion 1, or a schema-1 media type): pushes one violation,
 * marks `out` unsupported, and returns true.
 */
function refuseSchema1(o: Record<string, unknown>, at: string, out: V): boolean {
  const mt = typeof o.mediaType === "string" ? o.mediaType : undefined;
  if (o.schemaVersion !== 1 && !isDockerSchema1MediaType(mt)) return false;
  out.push(`${at}: docker schema 1 manifests (${mt ?? MediaType.dockerSchema1}) are not supported: convert the image to schema 2 or oci first`);
  unsupportedLists.add(out);
  return true;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isStrMap = (v: unknown) => isObj(v) && Object.values(v).every((x) => typeof x === "string");
const isStrArr = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === "string");

export function validateDescriptor(d: unknown, at: string, out: V = []): V {
  if (!isObj(d)) { out.push(`${at}: descriptor must be an object`); return out; }
  if (typeof d.mediaType !== "string" || !mediaTypeRe.test(d.mediaType)) out.push(`${at}.mediaType: invalid media type ${JSON.stringify(d.mediaType)}`);
  if (!isDigest(d.digest)) out.push(`${at}.digest: invalid digest ${JSON.stringify(d.digest)}`);
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0) out.push(`${at}.size: must be a non-negative integer, got ${JSON.stringify(d.size)}`);
  if (d.urls !== undefined && d.urls !== null && !isStrArr(d.urls)) out.push(`${at}.urls: must be an array of strings`);
  if (d.annotations !== undefined && d.annotations !== null && !isStrMap(d.annotations)) out.push(`${at}.annotations: must be a map of strings`);
  if (d.data !== undefined && (typeof d.data !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(d.data))) out.push(`${at}.data: must be base64`);
  if (d.platform !== undefined && d.platform !== null) validatePlatform(d.platform, `${at}.platform`, out);
  if (d.artifactType !== undefined && (typeof d.artifactType !== "string" || !mediaTypeRe.test(d.artifactType))) out.push(`${at}.artifactType: invalid media type`);
  return out;
}

function validatePlatform(p: unknown, at: string, out: V) {
  if (!isObj(p)) { out.push(`${at}: must be an object`); return; }
  if (typeof p.architecture !== "string" || !p.architecture) out.push(`${at}.architecture: required string`);
  if (typeof p.os !== "string" || !p.os) out.push(`${at}.os: required string`);
  if (p.variant !== undefined && typeof p.variant !== "string") out.push(`${at}.variant: must be a string`);
}

function validateSchemaVersion(o: Record<string, unknown>, at: string, out: V) {
  if (o.schemaVersion !== 2) out.push(`${at}.schemaVersion: must be 2, got ${JSON.stringify(o.schemaVersion)}`);
}

/**
 * Options for reading what Go's encoding/json accepts into the spec structs (umoci 0.6's `stat`):
 * `lenient` checks only the types of the fields present; required fields may be missing or empty
 * (a manifest without `layers`, a config without `architecture`, `os` or `rootfs`, diff_ids that
 * are not digests). Reads that build on the object (unpack, repack, config) keep the default.
 */
export interface ValidateOptions { lenient?: boolean }

export function validateManifest(m: unknown, at = "manifest", out: V = [], opts: ValidateOptions = {}): V {
  if (!isObj(m)) { out.push(`${at}: must be a JSON object`); return out; }
  if (refuseSchema1(m, at, out)) return out;
  validateSchemaVersion(m, at, out);
  if (m.mediaType !== undefined && m.mediaType !== MediaType.manifest && m.mediaType !== MediaType.dockerManifest)
    out.push(`${at}.mediaType: expected ${MediaType.manifest} or ${MediaType.dockerManifest}, got ${JSON.stringify(m.mediaType)}`);
  if ("manifests" in m) out.push(`${at}: a manifest must not contain "manifests" (media type confusion)`);
  if (!("config" in m)) out.push(`${at}.config: required`);
  else validateDescriptor(m.config, `${at}.config`, out);
  if (opts.lenient && (m.layers === undefined || m.layers === null)) { /* Go reads a missing list as nil */ }
  else if (!Array.isArray(m.layers)) out.push(`${at}.layers: must be an array`);
  else m.layers.forEach((l, i) => validateDescriptor(l, `${at}.layers[${i}]`, out));
  if (m.subject !== undefined && m.subject !== null) validateDescriptor(m.subject, `${at}.subject`, out);
  if (m.annotations !== undefined && m.annotations !== null && !isStrMap(m.annotations)) out.push(`${at}.annotations: must be a map of strings`);
  return out;
}

/** `allowNullManifests`: umoci 0.4.7 writes `"manifests":null` in index.json; read it as empty. */
export function validateIndex(ix: unknown, at = "index", out: V = [], opts: { allowNullManifests?: boolean } = {}): V {
  if (!isObj(ix)) { out.push(`${at}: must be a JSON object`); return out; }
  validateSchemaVersion(ix, at, out);
  if (ix.mediaType !== undefined && ix.mediaType !== MediaType.index && ix.mediaType !== MediaType.dockerManifestList)
    out.push(`${at}.mediaType: expected ${MediaType.index} or ${MediaType.dockerManifestList}, got ${JSON.stringify(ix.mediaType)}`);
  if ("config" in ix || "layers" in ix) out.push(`${at}: an index must not contain "config" or "layers" (media type confusion)`);
  if (ix.manifests === null && opts.allowNullManifests) return out;
  if (!Array.isArray(ix.manifests)) out.push(`${at}.manifests: must be an array`);
  else ix.manifests.forEach((d, i) => validateDescriptor(d, `${at}.manifests[${i}]`, out));
  if (ix.annotations !== undefined && ix.annotations !== null && !isStrMap(ix.annotations)) out.push(`${at}.annotations: must be a map of strings`);
  return out;
}

export function validateConfig(c: unknown, at = "config", out: V = [], opts: ValidateOptions = {}): V {
  if (!isObj(c)) { out.push(`${at}: must be a JSON object`); return out; }
  const lenient = opts.lenient === true;
  // Present as strings, but they may be empty: umoci 0.6 writes `"architecture": ""` itself
  // (config --platform.arch "") and reads such an image back (unpack refuses an os that is not
  // linux on its own terms).
  for (const k of ["architecture", "os"]) {
    if (lenient ? c[k] !== undefined && c[k] !== null && typeof c[k] !== "string" : typeof c[k] !== "string") out.push(`${at}.${k}: ${lenient ? "must be a string" : "required string"}`);
  }
  for (const k of ["created", "author", "variant", "os.version"]) if (c[k] !== undefined && c[k] !== null && typeof c[k] !== "string") out.push(`${at}.${k}: must be a string`);
  if (lenient && c["os.features"] !== undefined && c["os.features"] !== null && !isStrArr(c["os.features"])) out.push(`${at}.os.features: must be an array of strings`);
  if (!lenient && c.created && typeof c.created === "string" && Number.isNaN(Date.parse(c.created))) out.push(`${at}.created: not an RFC 3339 time`);
  const rootfs = c.rootfs;
  if (lenient && (rootfs === undefined || rootfs === null)) { /* Go reads it as the zero RootFS */ }
  else if (!isObj(rootfs)) out.push(`${at}.rootfs: required object`);
  else {
    if (lenient ? rootfs.type !== undefined && rootfs.type !== null && typeof rootfs.type !== "string" : rootfs.type !== "layers") out.push(`${at}.rootfs.type: must be "layers", got ${JSON.stringify(rootfs.type)}`);
    if (rootfs.diff_ids !== null && rootfs.diff_ids !== undefined) {
      if (!Array.isArray(rootfs.diff_ids)) out.push(`${at}.rootfs.diff_ids: must be an array`);
      else rootfs.diff_ids.forEach((d, i) => { if (lenient ? typeof d !== "string" : !isDigest(d)) out.push(`${at}.rootfs.diff_ids[${i}]: invalid digest ${JSON.stringify(d)}`); });
    }
  }
  const body = c.config;
  if (body !== undefined && body !== null) {
    if (!isObj(body)) out.push(`${at}.config: must be an object`);
    else {
      for (const k of ["User", "WorkingDir", "StopSignal"]) if (body[k] !== undefined && body[k] !== null && typeof body[k] !== "string") out.push(`${at}.config.${k}: must be a string`);
      for (const k of ["Env", "Entrypoint", "Cmd"]) if (body[k] !== undefined && body[k] !== null && !isStrArr(body[k])) out.push(`${at}.config.${k}: must be an array of strings`);
      for (const k of ["ExposedPorts", "Volumes"]) if (body[k] !== undefined && body[k] !== null && !isObj(body[k])) out.push(`${at}.config.${k}: must be an object`);
      if (body.Labels !== undefined && body.Labels !== null && !isStrMap(body.Labels)) out.push(`${at}.config.Labels: must be a map of strings`);
      if (lenient && body.ArgsEscaped !== undefined && body.ArgsEscaped !== null && typeof body.ArgsEscaped !== "boolean") out.push(`${at}.config.ArgsEscaped: must be a boolean`);
    }
  }
  if (c.history !== undefined && c.history !== null) {
    if (!Array.isArray(c.history)) out.push(`${at}.history: must be an array`);
    else c.history.forEach((h, i) => {
      if (!isObj(h)) { out.push(`${at}.history[${i}]: must be an object`); return; }
      for (const k of ["created", "created_by", "author", "comment"]) if (h[k] !== undefined && h[k] !== null && typeof h[k] !== "string") out.push(`${at}.history[${i}].${k}: must be a string`);
      if (h.empty_layer !== undefined && h.empty_layer !== null && typeof h.empty_layer !== "boolean") out.push(`${at}.history[${i}].empty_layer: must be a boolean`);
    });
  }
  return out;
}

/**
 * Throw one InvalidError listing the violations (the first three, then a count); for a list
 * marked unsupported (a Docker schema-1 manifest), one UnsupportedError instead.
 */
export function assertValid(violations: V, what: string): void {
  if (violations.length === 0) return;
  const shown = violations.slice(0, 3).join("; ");
  const more = violations.length > 3 ? ` (and ${violations.length - 3} more)` : "";
  if (isUnsupported(violations)) throw new UnsupportedError(`${what}: ${shown}${more}`);
  throw new InvalidError(`invalid ${what}: ${shown}${more}`);
}
