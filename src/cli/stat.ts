/**
 * `stat`: an image's manifest, config and history, in umoci 0.6's human format or its `--json`
 * shape (umoci's `Stat` and `ManifestStat.Format`, utils.go of v0.6.0).
 *
 * What umoci reads, and so what boci reads here:
 * - the manifest: any manifest JSON Go's decoder takes (a missing `layers` too);
 * - the config, by its media type: an image config is decoded as Go would (types checked, no
 *   field required: an empty `architecture` is shown, not refused) and gives the CONFIG and
 *   HISTORY sections; the empty descriptor (`application/vnd.oci.empty.v1+json`) must be `{}`;
 *   descriptor, index and manifest media types are parsed and shown as a raw blob; any other
 *   media type (an OCI 1.1 artifact's own config) is not read at all: with embedded `data` that
 *   is its blob, without it there is no config section (the blob only has to exist).
 *
 * Docker schema-2 images (crane, buildx) are read as they are: a Docker manifest is a manifest,
 * a Docker config (`application/vnd.docker.container.image.v1+json`) is an image config, and
 * every media type is shown as stored. Docker schema 1 is refused (exit 6).
 */
import { resolveTag, walkTag, manifestOf, platformOf, formatPlatform, type BlobReader, type DescriptorPath } from "../cas";
import { InvalidError, NotFoundError, UnsupportedError } from "../errors";
import {
  type Descriptor, type History, type ImageConfig, type ImageIndex, type Manifest, type Platform, MediaType, isManifestMediaType, isDockerSchema1MediaType,
  validateManifest, validateConfig, validateIndex, validateDescriptor, assertValid, isLayerMediaType, isDockerLayerMediaType,
} from "../image";
import type { CommandDef } from "./spec";
import { readImageOpt, openImageReader, readPlatformOpt, platformFromOpts } from "./common";
import { writeOut, writeOutBytes } from "../util/stdio";
import { escapeText } from "../util/escape";
import { parseJsonStrict } from "../util/json";
import { formatTable } from "./tabwriter";

// ---------------------------------------------------------------------------------------------
// Go formatting helpers

/**
 * Go's `%.4g` of a non-negative float: 4 significant digits, ties to even on the exact binary
 * value (JavaScript's toPrecision rounds ties away from zero), trailing zeros dropped.
 */
function formatG4(v: number): string {
  if (v === 0) return "0";
  // Every double >= 1 has at most 55 significant decimal digits: toPrecision(100) is exact.
  const exact = v.toPrecision(100);
  const [mant, expPart] = exact.split("e");
  let digits = mant!.replace(".", "");
  let point = mant!.includes(".") ? mant!.indexOf(".") : mant!.length;
  if (expPart) point += Number(expPart);
  const lead = digits.search(/[1-9]/);
  digits = digits.slice(lead);
  point -= lead;
  let kept = BigInt(digits.slice(0, 4).padEnd(4, "0"));
  const rest = digits.slice(4);
  const half = rest.length > 0 && rest[0] === "5" && /^5(0*)$/.test(rest);
  if ((rest.length > 0 && rest[0]! > "5") || (rest[0] === "5" && !half) || (half && kept % 2n === 1n)) kept += 1n;
  let s = kept.toString();
  if (s.length > 4) { s = s.slice(0, 4); point++; }
  const exp = point - 1;
  s = s.replace(/0+$/, "") || "0";
  if (exp < -4 || exp >= 4) {
    const m = s.length > 1 ? `${s[0]}.${s.slice(1)}` : s;
    return `${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  if (point <= 0) return `0.${"0".repeat(-point)}${s}`;
  if (s.length <= point) return s + "0".repeat(point - s.length);
  return `${s.slice(0, point)}.${s.slice(point)}`;
}

/** docker/go-units HumanSize: decimal units, `%.4g` (238B, 1.107kB, 4.194MB). */
export function humanSize(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return formatG4(v) + units[i];
}

/**
 * A timestamp as Go decodes it (strict RFC 3339, time.Time's UnmarshalJSON) and prints it again
 * with RFC3339Nano, which is what umoci's JSON and human output show: the same wall clock, the
 * fraction without trailing zeros (at most 9 digits), a zero offset as `Z`. Throws on a time Go
 * would refuse.
 */
export function goTime(s: string, what: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/.exec(s);
  const bad = () => new InvalidError(`${what}: parsing time ${JSON.stringify(s)} as RFC 3339`);
  if (!m) throw bad();
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1];
  if (days === undefined || d < 1 || d > days || h > 23 || mi > 59 || se > 59) throw bad();
  let zone = m[8]!;
  if (zone !== "Z") {
    const zh = Number(zone.slice(1, 3)), zm = Number(zone.slice(4, 6));
    if (zh > 23 || zm > 59) throw bad();
    if (zh === 0 && zm === 0) zone = "Z";
  }
  const frac = (m[7] ?? "").slice(0, 9).replace(/0+$/, "");
  return `${s.slice(0, 19)}${frac ? "." + frac : ""}${zone}`;
}

/** Go's byte-wise string order (UTF-8 bytes sort as code points, not as UTF-16 units). */
function compareGo(a: string, b: string): number {
  const x = a[Symbol.iterator](), y = b[Symbol.iterator]();
  for (;;) {
    const p = x.next(), q = y.next();
    if (p.done || q.done) return p.done && q.done ? 0 : p.done ? -1 : 1;
    const c = p.value.codePointAt(0)! - q.value.codePointAt(0)!;
    if (c) return c;
  }
}

function sortedKeys(o: Record<string, unknown>): string[] {
  return Object.keys(o).sort(compareGo);
}

/** A string as Go holds it after decoding JSON: an unpaired surrogate is U+FFFD. */
function goString(v: unknown): string {
  const s = typeof v === "string" ? v : v === undefined || v === null ? "" : String(v);
  return s.isWellFormed() ? s : s.toWellFormed();
}

/** umoci's quote(s, true): Go-quoted if quoting changes it, it is empty, or it has white space. */
function precise(v: unknown): string {
  return escapeText(goString(v), "precise");
}

/** umoci's quote(s, false): Go-quoted only if quoting changes it. */
function needed(v: unknown): string {
  return escapeText(goString(v), "needed");
}

/** A value of umoci's pprint: one with a comma is always quoted (values are joined by ", "). */
function value(v: unknown): string {
  const s = goString(v);
  return s.includes(",") ? escapeText(s, "always") : escapeText(s, "precise");
}

/** Go's JSON encoding of a string (HTML-safe, as json.Encoder writes it). */
function jsonString(v: unknown): string {
  return JSON.stringify(goString(v)).replace(/[<>&\u2028\u2029]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

/**
 * json.RawMessage as json.Encoder writes it: compacted (no insignificant white space) and with
 * `<`, `>`, `&`, U+2028 and U+2029 escaped; the bytes are otherwise kept, key order and escapes
 * included. `text` must be valid JSON.
 */
export function compactJson(text: string): string {
  return text.replace(/"(?:[^"\\]|\\[\s\S])*"|[ \t\n\r]+/g, (tok) =>
    tok[0] === '"' ? tok.replace(/[<>&\u2028\u2029]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0")) : "");
}

// ---------------------------------------------------------------------------------------------
// Reading

/** What umoci's Stat computes. */
export interface StatInfo {
  descriptor: Descriptor;
  manifest: Manifest & { layers?: Descriptor[] };
  manifestText: string;
  /** null: no config section (a config media type umoci does not read, without embedded data) */
  config: { descriptor: Descriptor; image?: ImageConfig; raw?: Uint8Array } | null;
  /** null: no history (the config is not an image config, or the manifest is an artifact) */
  history: StatHistory[] | null;
  /**
   * An artifact with an image config (boci's addition): shown instead of the image history
   * umoci would print for it. An artifact with any other config has no history, and is shown
   * as umoci 0.6 shows it (its Artifact Type, Subject and Layers lines).
   */
  artifact: StatArtifact | null;
}

export interface StatArtifact { artifactType: string; subject: Descriptor | null; blobs: Descriptor[] }

/**
 * Whether a manifest is an OCI 1.1 artifact rather than an image (image-spec manifest.md,
 * "Guidelines for Artifact Usage"): it has an artifactType, or a config that is not an image
 * config (the empty descriptor, or a type of its own), or layers none of which is an image
 * layer (a signature or attestation stored with an image config, as cosign and buildx do).
 */
export function isArtifactManifest(m: StatInfo["manifest"]): boolean {
  if (typeof m.artifactType === "string" && m.artifactType !== "") return true;
  if (m.config.mediaType !== MediaType.config && m.config.mediaType !== MediaType.dockerConfig) return true;
  const layers = m.layers ?? [];
  return layers.length > 0 && !layers.some((l) => isLayerMediaType(l.mediaType) || isDockerLayerMediaType(l.mediaType));
}

export interface StatHistory { layer: Descriptor | null; diffID: string; entry: History }

function parseJsonBlob(bytes: Uint8Array, what: string): { text: string; obj: unknown } {
  let text: string;
  try { text = new TextDecoder("utf-8", { fatal: true }).decode(bytes); } catch { throw new InvalidError(`${what}: invalid JSON: not valid UTF-8`); }
  try { return { text, obj: parseJsonStrict(text) }; } catch (e) { throw new InvalidError(`${what}: invalid JSON: ${(e as Error).message}`); }
}

// sha256 of the two bytes `{}` (image-spec 1.1 "the empty descriptor"); a constant, not hashed at
// start-up of every command that loads this module.
const EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

function readConfig(layout: BlobReader, desc: Descriptor): StatInfo["config"] {
  const what = `config ${desc.digest}`;
  switch (desc.mediaType) {
    case MediaType.config: case MediaType.dockerConfig: {
      const raw = layout.readBlob(desc);
      const { obj } = parseJsonBlob(raw, what);
      assertValid(validateConfig(obj, "config", [], { lenient: true }), what);
      const image = obj as ImageConfig;
      // Go's decoder refuses a time it cannot parse: so does this (and the printers rely on it).
      if (typeof image.created === "string") goTime(image.created, `${what}: created`);
      image.history?.forEach((h, i) => { if (typeof h.created === "string") goTime(h.created, `${what}: history[${i}].created`); });
      return { descriptor: desc, image, raw };
    }
    case MediaType.empty: {
      // The empty descriptor has exactly one valid form (image-spec descriptor.md).
      const data = typeof desc.data === "string" ? Buffer.from(desc.data, "base64").toString("latin1") : "{}";
      if (desc.digest !== EMPTY_DIGEST || desc.size !== 2 || data !== "{}") throw new InvalidError(`${what}: invalid descriptor: not the empty JSON descriptor`);
      const raw = layout.readBlob(desc);
      if (Buffer.from(raw).toString("latin1") !== "{}") throw new InvalidError(`${what}: invalid empty JSON blob`);
      return { descriptor: desc, raw };
    }
    case MediaType.descriptor: case MediaType.index: case MediaType.manifest: {
      const raw = layout.readBlob(desc);
      const { obj } = parseJsonBlob(raw, what);
      const v = desc.mediaType === MediaType.index ? validateIndex(obj, "config") : desc.mediaType === MediaType.manifest ? validateManifest(obj, "config", [], { lenient: true }) : validateDescriptor(obj, "config");
      assertValid(v, what);
      return { descriptor: desc, raw };
    }
    default: {
      // umoci opens the blob but never reads it: a config of an artifact type is not its business.
      if (typeof desc.data === "string") return { descriptor: desc, raw: layout.readBlob(desc) };
      if (!layout.hasBlob(desc.digest)) throw new NotFoundError(`blob ${desc.digest}: not found in layout`);
      return null;
    }
  }
}

export function readStat(layout: BlobReader, descriptor: Descriptor): StatInfo {
  if (isDockerSchema1MediaType(descriptor.mediaType)) throw new UnsupportedError(`manifest ${descriptor.digest}: docker schema 1 manifests (${descriptor.mediaType}) are not supported`);
  if (!isManifestMediaType(descriptor.mediaType)) throw new UnsupportedError(`descriptor does not point to an image manifest: ${descriptor.mediaType}`);
  const what = `manifest ${descriptor.digest}`;
  const { text: manifestText, obj } = parseJsonBlob(layout.readBlob(descriptor), what);
  assertValid(validateManifest(obj, "manifest", [], { lenient: true }), what);
  const manifest = obj as StatInfo["manifest"];
  if (manifest.mediaType !== undefined && manifest.mediaType !== descriptor.mediaType) throw new InvalidError(`${what}: media type ${manifest.mediaType} does not match descriptor ${descriptor.mediaType}`);
  const config = readConfig(layout, manifest.config);
  let history: StatHistory[] | null = null;
  let artifact: StatArtifact | null = null;
  if (config?.image && isArtifactManifest(manifest)) {
    // its "layers" are its blobs, and its config's history (if any) says nothing of them
    artifact = { artifactType: manifest.artifactType || manifest.config.mediaType, subject: manifest.subject ?? null, blobs: manifest.layers ?? [] };
  } else if (config?.image) {
    const layers = manifest.layers ?? [];
    const diffIDs = config.image.rootfs?.diff_ids ?? [];
    let li = 0;
    history = (config.image.history ?? []).map((entry) => {
      if (entry.empty_layer) return { layer: null, diffID: "", entry };
      const h = { layer: layers[li] ?? null, diffID: diffIDs[li] ?? "", entry };
      li++;
      return h;
    });
  }
  return { descriptor, manifest, manifestText, config, history, artifact };
}

/**
 * What stat says of a tag that names an index (boci's addition; nothing of it for a plain
 * image): the index.json entry, the index's own annotations, every manifest the tag reaches
 * (through nested indexes) with its platform, and which of them the rest of the output shows.
 */
export interface StatIndex {
  descriptor: Descriptor;
  annotations?: Record<string, string>;
  platforms: { platform: Platform | undefined; descriptor: Descriptor }[];
  /** position of the shown manifest in `platforms` */
  chosen: number;
}

export function readStatIndex(layout: BlobReader, ix: ImageIndex, tag: string, chosen: DescriptorPath): StatIndex | null {
  if (chosen.walk.length < 2) return null;
  const top = chosen.walk[0]!;
  const index = layout.readJson<ImageIndex>(top, "index");
  const key = (p: DescriptorPath) => JSON.stringify([manifestOf(p).digest, platformOf(p) ?? null]);
  const paths = walkTag(layout, ix, tag).filter((p) => p.walk[0]!.digest === top.digest);
  const platforms = paths.map((p) => ({ platform: platformOf(p), descriptor: manifestOf(p) }));
  return { descriptor: top, annotations: index.annotations, platforms, chosen: Math.max(0, paths.findIndex((p) => key(p) === key(chosen))) };
}

// ---------------------------------------------------------------------------------------------
// --json: umoci 0.6's ManifestStat through encoding/json

/** An ispec.Descriptor through encoding/json: struct field order, omitempty, sorted maps. */
function descriptorJson(d: Descriptor): string {
  const f = [`"mediaType":${jsonString(d.mediaType)}`, `"digest":${jsonString(d.digest)}`, `"size":${d.size}`];
  if (d.urls?.length) f.push(`"urls":[${d.urls.map(jsonString).join(",")}]`);
  if (d.annotations && Object.keys(d.annotations).length) f.push(`"annotations":${mapJson(d.annotations)}`);
  if (typeof d.data === "string" && d.data.length) f.push(`"data":${jsonString(Buffer.from(d.data, "base64").toString("base64"))}`);
  if (d.platform) f.push(`"platform":${platformJson(d.platform)}`);
  if (d.artifactType) f.push(`"artifactType":${jsonString(d.artifactType)}`);
  return `{${f.join(",")}}`;
}

function platformJson(p: Platform): string {
  const f = [`"architecture":${jsonString(p.architecture)}`, `"os":${jsonString(p.os)}`];
  if (p["os.version"]) f.push(`"os.version":${jsonString(p["os.version"])}`);
  if (Array.isArray(p["os.features"]) && p["os.features"].length) f.push(`"os.features":[${p["os.features"].map(jsonString).join(",")}]`);
  if (p.variant) f.push(`"variant":${jsonString(p.variant)}`);
  return `{${f.join(",")}}`;
}

function mapJson(m: Record<string, unknown>): string {
  // Go's map keys after decoding: unpaired surrogates are U+FFFD, then byte order.
  const byKey = new Map<string, unknown>();
  for (const k of Object.keys(m)) byKey.set(goString(k), m[k]);
  return `{${[...byKey.keys()].sort(compareGo).map((k) => `${jsonString(k)}:${jsonString(byKey.get(k))}`).join(",")}}`;
}

function historyJson(h: StatHistory): string {
  const f = [`"layer":${h.layer ? descriptorJson(h.layer) : "null"}`, `"diff_id":${jsonString(h.diffID)}`];
  const e = h.entry;
  if (typeof e.created === "string") f.push(`"created":${jsonString(goTime(e.created, "history created"))}`);
  if (e.created_by) f.push(`"created_by":${jsonString(e.created_by)}`);
  if (e.author) f.push(`"author":${jsonString(e.author)}`);
  if (e.comment) f.push(`"comment":${jsonString(e.comment)}`);
  if (e.empty_layer) f.push(`"empty_layer":true`);
  return `{${f.join(",")}}`;
}

function rawJson(raw: Uint8Array, what: string): string {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(raw);
    JSON.parse(text);
  } catch {
    throw new InvalidError(`encoding stat: ${what} is not valid JSON`);
  }
  return compactJson(text);
}

/** `"index":{…}`, put before umoci's fields when the tag names an index. */
function indexJson(x: StatIndex): string {
  const f = [`"descriptor":${descriptorJson(x.descriptor)}`];
  if (x.annotations && Object.keys(x.annotations).length) f.push(`"annotations":${mapJson(x.annotations)}`);
  f.push(`"platforms":[${x.platforms.map((p) => `{"platform":${p.platform ? platformJson(p.platform) : "null"},"descriptor":${descriptorJson(p.descriptor)}}`).join(",")}]`);
  f.push(`"chosen":${x.chosen}`);
  return `{${f.join(",")}}`;
}

export function formatStatJson(s: StatInfo, index: StatIndex | null = null): string {
  let out = `{${index ? `"index":${indexJson(index)},` : ""}"manifest":{"descriptor":${descriptorJson(s.descriptor)},"blob":${compactJson(s.manifestText)}}`;
  if (s.config) {
    out += `,"config":{"descriptor":${descriptorJson(s.config.descriptor)}`;
    if (s.config.raw) out += `,"blob":${rawJson(s.config.raw, `the config blob ${s.config.descriptor.digest}`)}`;
    out += "}";
  }
  if (s.history) out += `,"history":[${s.history.map(historyJson).join(",")}]`;
  if (s.artifact) out += `,"artifact":{"artifactType":${jsonString(s.artifact.artifactType)},"subject":${s.artifact.subject ? descriptorJson(s.artifact.subject) : "null"},"blobs":[${s.artifact.blobs.map(descriptorJson).join(",")}]}`;
  return out + "}\n";
}

// ---------------------------------------------------------------------------------------------
// Human format: umoci 0.6's pprint helpers

/** Output lines; raw bytes only where umoci writes them (the printable column of a hex dump). */
class Printer {
  readonly parts: (string | Uint8Array)[] = [];
  private text = "";
  line(s: string): void { this.text += s + "\n"; }
  /** Raw bytes after what was printed so far. */
  bytes(b: Uint8Array): void { this.parts.push(this.text, b); this.text = ""; }
  done(): (string | Uint8Array)[] { if (this.text) this.parts.push(this.text); this.text = ""; return this.parts; }
}

function pp(o: Printer, prefix: string, key: string, values: unknown[] = []): void {
  o.line(values.length ? `${prefix}${key}: ${values.map(value).join(", ")}` : `${prefix}${key}:`);
}

function ppSlice(o: Printer, prefix: string, name: string, data: unknown[] | undefined | null): void {
  if (!data?.length) return pp(o, prefix, name, ["(empty)"]);
  pp(o, prefix, name);
  for (const v of data) o.line(`${prefix}\t${precise(v)}`);
}

function ppMap(o: Printer, prefix: string, name: string, data: Record<string, unknown> | undefined | null): void {
  const keys = data ? sortedKeys(data) : [];
  if (!keys.length) return pp(o, prefix, name, ["(empty)"]);
  pp(o, prefix, name);
  for (const k of keys) pp(o, prefix + "\t", precise(k), [data![k]]);
}

function ppSet(o: Printer, prefix: string, name: string, data: Record<string, unknown> | undefined | null): void {
  const keys = data ? sortedKeys(data) : [];
  pp(o, prefix, name, keys.length ? keys : ["(empty)"]);
}

/** Bytes as umoci's xxd: 16 a line, hex in pairs, then the graphic ones (Latin-1) or ".". */
function ppBytes(o: Printer, prefix: string, name: string, data: Uint8Array): void {
  if (!data.length) return pp(o, prefix, name, ["(empty)"]);
  o.line(`${prefix}${name}: (${data.length} bytes)`);
  prefix += "\t";
  const shown = data.subarray(0, 256);
  for (let off = 0; off < shown.length; off += 16) {
    const row = shown.subarray(off, off + 16);
    let hex = "";
    for (let i = 0; i < 16; i++) {
      if (i && i % 2 === 0) hex += " ";
      hex += i < row.length ? row[i]!.toString(16).padStart(2, "0") : "  ";
    }
    const printable = Uint8Array.from(row, (b) => (isGraphicLatin1(b) ? b : 0x2e));
    const head = `${prefix}${off.toString(16).padStart(4, "0")}: ${hex}  `;
    if (printable.every((b) => b < 0x80)) o.line(head + Buffer.from(printable).toString("latin1"));
    else { o.bytes(Buffer.from(head)); o.bytes(printable); o.line(""); } // head's text, the raw bytes, "\n"
  }
  if (data.length > 256) o.line(`${prefix}....  (extra ${data.length - 256} bytes omitted)`);
}

/** Go's unicode.IsGraphic of a byte taken as a rune (U+0000..U+00FF). */
function isGraphicLatin1(b: number): boolean {
  return (b >= 0x20 && b < 0x7f) || (b >= 0xa0 && b !== 0xad);
}

function ppPlatform(o: Printer, prefix: string, p: Partial<Platform>): void {
  pp(o, prefix, "Platform");
  prefix += "\t";
  pp(o, prefix, "OS", [p.os ?? ""]);
  if (p["os.version"]) pp(o, prefix, "OS Version", [p["os.version"]]);
  if (Array.isArray(p["os.features"]) && p["os.features"].length) pp(o, prefix, "OS Features", p["os.features"]);
  o.line(`${prefix}Architecture: ${precise(p.architecture ?? "")}${p.variant ? ` (${needed(p.variant)})` : ""}`);
}

function ppDescriptor(o: Printer, prefix: string, d: Descriptor): void {
  pp(o, prefix, "Descriptor");
  prefix += "\t";
  pp(o, prefix, "Media Type", [d.mediaType ?? ""]);
  if (d.artifactType) pp(o, prefix, "Artifact Type", [d.artifactType]);
  pp(o, prefix, "Digest", [d.digest]);
  pp(o, prefix, "Size", [humanSize(d.size)]);
  // umoci passes "" here, not the prefix: a descriptor's platform starts at the margin.
  if (d.platform) ppPlatform(o, "", d.platform);
  if (d.urls?.length) ppSlice(o, prefix, "URLs", d.urls);
  if (d.annotations && Object.keys(d.annotations).length) ppMap(o, prefix, "Annotations", d.annotations);
  if (typeof d.data === "string" && d.data.length) ppBytes(o, prefix, "Data", Buffer.from(d.data, "base64"));
}

function ppManifest(o: Printer, m: StatInfo["manifest"]): void {
  pp(o, "", "Schema Version", [String(m.schemaVersion ?? 0)]);
  pp(o, "", "Media Type", [m.mediaType ?? ""]);
  if (m.artifactType) pp(o, "", "Artifact Type", [m.artifactType]);
  pp(o, "", "Config");
  ppDescriptor(o, "\t", m.config);
  if (m.layers?.length) {
    pp(o, "", "Layers");
    for (const l of m.layers) ppDescriptor(o, "\t", l);
  }
  if (m.subject) {
    pp(o, "", "Subject");
    ppDescriptor(o, "\t", m.subject);
  }
  if (m.annotations && Object.keys(m.annotations).length) ppMap(o, "", "Annotations", m.annotations);
}

function ppImage(o: Printer, c: ImageConfig): void {
  if (typeof c.created === "string") pp(o, "", "Created", [goTime(c.created, "config created")]);
  pp(o, "", "Author", [c.author ?? ""]);
  ppPlatform(o, "", c);
  pp(o, "", "Image Config");
  const p = "\t";
  const b = c.config ?? {};
  pp(o, p, "User", [b.User ?? ""]);
  const escaped = b.ArgsEscaped === true ? " (escaped)" : "";
  if (b.Entrypoint?.length) ppSlice(o, p, "Entrypoint" + escaped, b.Entrypoint);
  ppSlice(o, p, "Command" + escaped, b.Cmd);
  if (b.WorkingDir) pp(o, p, "Working Directory", [b.WorkingDir]);
  if (b.Env?.length) ppSlice(o, p, "Environment", b.Env);
  if (b.StopSignal) pp(o, p, "Stop Signal", [b.StopSignal]);
  if (b.ExposedPorts && Object.keys(b.ExposedPorts).length) ppSet(o, p, "Exposed Ports", b.ExposedPorts);
  if (b.Volumes && Object.keys(b.Volumes).length) ppSet(o, p, "Volumes", b.Volumes);
  if (b.Labels && Object.keys(b.Labels).length) ppMap(o, p, "Labels", b.Labels);
}

/** The history table: text/tabwriter with minwidth 4, padding 1, spaces (widths in runes). */
function historyTable(history: StatHistory[]): string {
  const rows = [["LAYER", "CREATED", "CREATED BY", "SIZE", "COMMENT"]];
  for (const h of history) {
    const e = h.entry;
    // A non-empty entry with no layer left is a panic in umoci (index out of range); "<none>" here.
    const layer = !e.empty_layer && h.layer ? h.layer : null;
    rows.push([
      layer ? needed(layer.digest) : "<none>",
      // umoci dereferences a missing created time (a panic); an empty cell here.
      typeof e.created === "string" ? needed(goTime(e.created, "history created")) : "",
      needed(e.created_by ?? ""),
      layer ? humanSize(layer.size) : "<none>",
      needed(e.comment ?? ""),
    ]);
  }
  return formatTable(rows, { minWidth: 4, padding: 1 });
}

/** The INDEX section (boci's), before umoci's MANIFEST one. */
function ppIndex(o: Printer, x: StatIndex): void {
  o.line("== INDEX ==");
  pp(o, "", "Media Type", [x.descriptor.mediaType ?? ""]);
  pp(o, "", "Digest", [x.descriptor.digest]);
  pp(o, "", "Size", [humanSize(x.descriptor.size)]);
  if (x.annotations && Object.keys(x.annotations).length) ppMap(o, "", "Annotations", x.annotations);
  pp(o, "", "Platforms");
  for (const p of x.platforms) {
    pp(o, "\t", precise(formatPlatform(p.platform)), [p.descriptor.digest]);
    if (p.descriptor.artifactType) pp(o, "\t\t", "Artifact Type", [p.descriptor.artifactType]);
  }
  const c = x.platforms[x.chosen];
  if (c) pp(o, "", "Chosen", [formatPlatform(c.platform), c.descriptor.digest]);
  o.line("");
}

/** The ARTIFACT section: its type, its subject, its blobs as a table like the history's. */
function artifactText(a: StatArtifact): string {
  const o = new Printer();
  pp(o, "", "Artifact Type", [a.artifactType]);
  pp(o, "", "Subject", [a.subject ? a.subject.digest : "(none)"]);
  const rows = [["BLOB", "MEDIA TYPE", "SIZE", "TITLE"]];
  for (const b of a.blobs) rows.push([needed(b.digest), needed(b.mediaType ?? ""), humanSize(b.size), needed(b.annotations?.["org.opencontainers.image.title"] ?? "")]);
  return (o.done() as string[]).join("") + formatTable(rows, { minWidth: 4, padding: 1 });
}

/** The human format, as bytes (a hex dump of embedded data may hold raw Latin-1 bytes, as umoci's). */
export function formatStat(s: StatInfo, index: StatIndex | null = null): (string | Uint8Array)[] {
  const o = new Printer();
  if (index) ppIndex(o, index);
  o.line("== MANIFEST ==");
  ppManifest(o, s.manifest);
  ppDescriptor(o, "", s.descriptor);
  if (s.config) {
    o.line("\n== CONFIG ==");
    if (s.config.image) ppImage(o, s.config.image);
    ppDescriptor(o, "", s.config.descriptor);
  }
  const parts = o.done();
  if (s.history) parts.push("\n== HISTORY ==\n" + historyTable(s.history));
  if (s.artifact) parts.push("\n== ARTIFACT ==\n" + artifactText(s.artifact));
  return parts;
}

export const statCommand: CommandDef = {
  name: "stat",
  args: [],
  description: "displays status information of an image manifest",
  options: [readImageOpt, readPlatformOpt, { flag: "json", desc: "output the stat information as a JSON encoded blob" }],
  run(_args, opts) {
    const platform = platformFromOpts(opts);
    // A short read needs no lock: blobs and index.json only ever appear by atomic rename, and
    // a blob a concurrent gc removes is reported as not found.
    const { reader: layout, tag } = openImageReader(opts.get("image"));
    try {
      const ix = layout.readIndex();
      const path = resolveTag(layout, ix, tag, { platform });
      const info = readStat(layout, manifestOf(path));
      const index = readStatIndex(layout, ix, tag, path);
      if (opts.bool("json")) { writeOut(formatStatJson(info, index)); return; }
      const parts = formatStat(info, index);
      if (parts.every((p) => typeof p === "string")) writeOut(parts.join(""));
      else writeOutBytes(Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p) : p))));
    } finally { layout.close(); }
  },
};
