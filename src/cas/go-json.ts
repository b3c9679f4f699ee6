/**
 * The bytes umoci 0.6 writes for a JSON document: Go's encoding/json Encoder over the image-spec
 * v1.1.1 structs (specs-go/v1) that umoci decodes into and encodes from.
 *
 * What that means, and what this module reproduces:
 *  - a struct's fields in declaration order; fields the struct does not have are dropped (Go
 *    decodes into the struct and re-encodes it); a JSON key matches a field exactly or, failing
 *    that, case-insensitively, and the last key that matches wins, as Go's decoder does;
 *  - `omitempty`: "", 0, false, nil and empty slices and maps left out; a nil pointer (a
 *    missing or null `platform`, `subject`, `created`) left out; a struct value never left out
 *    (`"config":{}`); a field without omitempty written with its zero value when missing
 *    (`"mediaType":""`, `"size":0`), a nil slice as `null`;
 *  - map keys sorted by their UTF-8 bytes; `map[string]struct{}` values written as `{}`;
 *  - `[]byte` (`data`) as standard base64; times (`created`) as Go re-marshals an RFC 3339 time
 *    (zero offset as `Z`, fraction cut to nanoseconds and its trailing zeros trimmed);
 *  - strings with `<`, `>`, `&`, U+2028 and U+2029 escaped (`\u003c`...), control characters as
 *    JSON.stringify writes them (Go 1.22+ agrees: `\b`, `\f`, `\n`, `\r`, `\t`, else `\u00XX`),
 *    lone surrogates as U+FFFD (Go's decoder replaces them);
 *  - the newline the Encoder writes after each value.
 *
 * Unknown media types are encoded as Go encodes an `interface{}`: every object's keys sorted.
 */
import { MediaType, isIndexMediaType, isManifestMediaType } from "../image";

/** A Go type, as far as encoding/json cares. */
export type GoType =
  | { k: "string" } | { k: "int" } | { k: "bool" } | { k: "bytes" } | { k: "time" }
  | { k: "slice"; of: GoType } | { k: "map"; of: GoType } | { k: "set" }
  | { k: "struct"; fields: GoField[] } | { k: "ptr"; to: GoType } | { k: "any" };
interface GoField { key: string; t: GoType; omitempty?: boolean }

const str: GoType = { k: "string" };
const int: GoType = { k: "int" };
const bool: GoType = { k: "bool" };
const strs: GoType = { k: "slice", of: str };
const strMap: GoType = { k: "map", of: str };
const f = (key: string, t: GoType, omitempty = false): GoField => ({ key, t, omitempty });

/** specs-go/v1 descriptor.go `Platform` (v1.1.1 has no `features`). */
const platformFields: GoField[] = [
  f("architecture", str), f("os", str), f("os.version", str, true), f("os.features", strs, true), f("variant", str, true),
];
/** specs-go/v1 descriptor.go `Descriptor`. */
const descriptor: GoType = {
  k: "struct",
  fields: [
    f("mediaType", str), f("digest", str), f("size", int), f("urls", strs, true), f("annotations", strMap, true),
    f("data", { k: "bytes" }, true), f("platform", { k: "ptr", to: { k: "struct", fields: platformFields } }, true),
    f("artifactType", str, true),
  ],
};
/** A descriptor on its own (umoci.json's descriptor_walk holds these). */
export const GoDescriptor: GoType = descriptor;
const descriptors: GoType = { k: "slice", of: descriptor };
const descriptorPtr: GoType = { k: "ptr", to: descriptor };

/** specs-go/v1 index.go `Index` (specs.Versioned first). */
export const GoIndex: GoType = {
  k: "struct",
  fields: [
    f("schemaVersion", int), f("mediaType", str, true), f("artifactType", str, true), f("manifests", descriptors),
    f("subject", descriptorPtr, true), f("annotations", strMap, true),
  ],
};
/** specs-go/v1 manifest.go `Manifest`. */
export const GoManifest: GoType = {
  k: "struct",
  fields: [
    f("schemaVersion", int), f("mediaType", str, true), f("artifactType", str, true), f("config", descriptor),
    f("layers", descriptors), f("subject", descriptorPtr, true), f("annotations", strMap, true),
  ],
};
/** specs-go/v1 config.go `Image` (Platform embedded: its fields in place). */
export const GoImage: GoType = {
  k: "struct",
  fields: [
    f("created", { k: "time" }, true), f("author", str, true), ...platformFields,
    f("config", {
      k: "struct",
      fields: [
        f("User", str, true), f("ExposedPorts", { k: "set" }, true), f("Env", strs, true), f("Entrypoint", strs, true),
        f("Cmd", strs, true), f("Volumes", { k: "set" }, true), f("WorkingDir", str, true), f("Labels", strMap, true),
        f("StopSignal", str, true), f("ArgsEscaped", bool, true),
      ],
    }, true),
    f("rootfs", { k: "struct", fields: [f("type", str), f("diff_ids", strs)] }),
    f("history", {
      k: "slice",
      of: {
        k: "struct",
        fields: [f("created", { k: "time" }, true), f("created_by", str, true), f("author", str, true), f("comment", str, true), f("empty_layer", bool, true)],
      },
    }, true),
  ],
};
/** specs-go/v1 layout.go `ImageLayout`. */
export const GoImageLayout: GoType = { k: "struct", fields: [f("imageLayoutVersion", str)] };

const CONFIG_TYPES = new Set<string>([MediaType.config, MediaType.dockerConfig]);

/** The Go struct umoci reads a blob of this media type into (else an `interface{}`). */
export function goTypeFor(mediaType: string): GoType {
  if (isManifestMediaType(mediaType)) return GoManifest;
  if (isIndexMediaType(mediaType)) return GoIndex;
  if (CONFIG_TYPES.has(mediaType)) return GoImage;
  return { k: "any" };
}

/** Encode `value` as umoci would after decoding it into `t`: Encoder output, trailing newline included. */
export function encodeGoJson(value: unknown, t: GoType): string {
  return encode(value, t) + "\n";
}

/** As encodeGoJson without the newline: a value to embed in a larger document. */
export function encodeGoValue(value: unknown, t: GoType): string {
  return encode(value, t);
}

function isNil(v: unknown): boolean {
  return v === undefined || v === null;
}

/** Go's omitempty test for a value as it would be after decoding into `t`. */
function isEmptyValue(v: unknown, t: GoType): boolean {
  switch (t.k) {
    case "string": return typeof v !== "string" || v === "";
    case "int": return typeof v !== "number" || v === 0;
    case "bool": return v !== true;
    case "bytes": return typeof v !== "string" || Buffer.from(v, "base64").length === 0;
    case "slice": return !Array.isArray(v) || v.length === 0;
    case "map": case "set": return !isObject(v) || Object.keys(v).length === 0;
    case "ptr": case "time": case "any": return isNil(v);
    case "struct": return false;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function encode(v: unknown, t: GoType): string {
  switch (t.k) {
    case "string": return goString(typeof v === "string" ? v : "");
    case "int": return typeof v === "number" && Number.isFinite(v) ? String(Math.trunc(v)) : "0";
    case "bool": return v === true ? "true" : "false";
    case "bytes": return isNil(v) ? "null" : goString(Buffer.from(String(v), "base64").toString("base64"));
    case "time": return isNil(v) ? "null" : goString(goTime(String(v)));
    case "slice": return Array.isArray(v) ? `[${v.map((x) => encode(x, t.of)).join(",")}]` : "null";
    case "map":
      if (!isObject(v)) return "null";
      return `{${sortedKeys(v).map((k) => `${goString(k)}:${encode(v[k], t.of)}`).join(",")}}`;
    case "set":
      if (!isObject(v)) return "null";
      return `{${sortedKeys(v).map((k) => `${goString(k)}:{}`).join(",")}}`;
    case "ptr": return isNil(v) ? "null" : encode(v, t.to);
    case "any": return encodeAny(v);
    case "struct": return encodeStruct(isObject(v) ? v : {}, t.fields);
  }
}

function encodeStruct(obj: Record<string, unknown>, fields: GoField[]): string {
  // Decode as Go does: each key sets the field it names exactly, else one it names ignoring
  // case; a later key overwrites; keys naming no field are dropped.
  const vals = new Map<GoField, unknown>();
  for (const key of Object.keys(obj)) {
    const field = fields.find((x) => x.key === key) ?? fields.find((x) => x.key.toLowerCase() === key.toLowerCase());
    if (!field) continue;
    const v = obj[key];
    // null leaves a non-pointer field (and a slice, map or pointer: nil) at its zero value.
    vals.set(field, v === null ? undefined : v);
  }
  const parts: string[] = [];
  for (const field of fields) {
    const v = vals.get(field);
    if (field.omitempty && isEmptyValue(v, field.t)) continue;
    parts.push(`${goString(field.key)}:${encode(v, field.t)}`);
  }
  return `{${parts.join(",")}}`;
}

function encodeAny(v: unknown): string {
  if (v === undefined || v === null) return "null";
  if (Array.isArray(v)) return `[${v.map(encodeAny).join(",")}]`;
  if (isObject(v)) return `{${sortedKeys(v).map((k) => `${goString(k)}:${encodeAny(v[k])}`).join(",")}}`;
  if (typeof v === "string") return goString(v);
  return JSON.stringify(v) ?? "null";
}

/** Keys in Go's map order: by their UTF-8 bytes. */
function sortedKeys(o: Record<string, unknown>): string[] {
  return Object.keys(o).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** A JSON string as Go's Encoder (HTML escaping on) writes it. */
export function goString(s: string): string {
  return JSON.stringify(s.toWellFormed()).replace(/[<>&\u2028\u2029]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * An RFC 3339 time as Go's time.Time re-marshals it (RFC3339Nano): a zero offset as "Z", the
 * fraction cut to nanoseconds with trailing zeros trimmed. Anything else is kept verbatim.
 */
export function goTime(s: string): string {
  const m = RFC3339.exec(s);
  if (!m) return s;
  const frac = (m[3] ?? "").slice(0, 10).replace(/\.?0+$/, "");
  const zone = /^([Zz]|[+-]00:00)$/.test(m[4]!) ? "Z" : m[4]!;
  return `${m[1]}T${m[2]}${frac}${zone}`;
}
