/** `stat`: show an image's manifest, config and history (human form, or umoci 0.6's --json shape). */
import { resolveTag, manifestOf } from "../cas";
import type { Descriptor, ImageConfig, Manifest } from "../image";
import type { CommandDef } from "./spec";
import { imageOpt, parseImageRef, openLayout } from "./common";
import { writeOut } from "../util/stdio";
import { escapeText } from "../util/escape";

/** go-units HumanSize: decimal units, 4 significant digits. */
export function humanSize(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${Number(v.toPrecision(4))}${units[i]}`;
}

/**
 * A value as umoci 0.6 prints it: Go-quoted when it has unprintable characters, quotes,
 * backslashes or white space, or is empty; always quoted when it has a comma (lists are joined
 * with ", "). Every string from the image goes through this or {@link cell}, so a control
 * character in an image never reaches the terminal raw.
 */
function q(v: unknown): string {
  const s = String(v);
  return escapeText(s, s.includes(",") ? "always" : "precise");
}

/** A history table cell: quoted only when quoting changes it (umoci's quote(s, false)). */
function cell(v: unknown): string {
  return escapeText(String(v), "needed");
}

function descLines(d: Descriptor, indent: string): string[] {
  const l = [`${indent}Media Type: ${q(d.mediaType)}`, `${indent}Digest: ${q(d.digest)}`, `${indent}Size: ${humanSize(d.size)}`];
  if (d.annotations && Object.keys(d.annotations).length) {
    l.push(`${indent}Annotations:`);
    for (const [k, v] of Object.entries(d.annotations).sort(([a], [b]) => (a < b ? -1 : 1))) l.push(`${indent}\t${q(k)}: ${q(v)}`);
  }
  return l;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]! + 1))).join("").trimEnd() + "\n").join("");
}

export interface StatHistory { layer: Descriptor | null; diff_id: string | null; created?: string; created_by?: string; author?: string; comment?: string; empty_layer?: boolean }

export function historyOf(manifest: Manifest, config: ImageConfig): StatHistory[] {
  const out: StatHistory[] = [];
  let li = 0;
  for (const h of config.history ?? []) {
    const e: StatHistory = { layer: null, diff_id: null };
    if (!h.empty_layer) {
      e.layer = manifest.layers[li] ?? null;
      e.diff_id = config.rootfs.diff_ids[li] ?? null;
      li++;
    }
    if (h.created !== undefined) e.created = h.created;
    if (h.created_by !== undefined) e.created_by = h.created_by;
    if (h.author !== undefined) e.author = h.author;
    if (h.comment !== undefined) e.comment = h.comment;
    if (h.empty_layer) e.empty_layer = true;
    out.push(e);
  }
  return out;
}

export function formatStat(mdesc: Descriptor, manifest: Manifest, config: ImageConfig): string {
  const L: string[] = ["== MANIFEST ==", `Schema Version: ${manifest.schemaVersion}`, `Media Type: ${q(manifest.mediaType ?? mdesc.mediaType)}`];
  L.push("Config:", ...descLines(manifest.config, "\t"));
  L.push("Layers:");
  for (const l of manifest.layers) L.push(...descLines(l, "\t"), "");
  if (manifest.layers.length === 0) L.push("\t<none>");
  if (manifest.subject) L.push("Subject:", ...descLines(manifest.subject, "\t"));
  if (manifest.annotations && Object.keys(manifest.annotations).length) {
    L.push("Annotations:");
    for (const [k, v] of Object.entries(manifest.annotations)) L.push(`\t${q(k)}: ${q(v)}`);
  }
  L.push("Descriptor:", ...descLines(mdesc, "\t"), "");
  L.push("== CONFIG ==");
  if (config.created) L.push(`Created: ${q(config.created)}`);
  if (config.author) L.push(`Author: ${q(config.author)}`);
  L.push("Platform:", `\tOS: ${q(config.os)}`, `\tArchitecture: ${q(config.architecture)}${config.variant ? ` (${cell(config.variant)})` : ""}`);
  const b = config.config ?? {};
  L.push("Image Config:");
  if (b.User) L.push(`\tUser: ${q(b.User)}`);
  if (b.Entrypoint?.length) L.push(`\tEntrypoint:`, ...b.Entrypoint.map((a) => `\t\t${q(a)}`));
  if (b.Cmd?.length) L.push(`\tCommand:`, ...b.Cmd.map((a) => `\t\t${q(a)}`));
  if (b.WorkingDir) L.push(`\tWorking Directory: ${q(b.WorkingDir)}`);
  if (b.Env?.length) L.push(`\tEnvironment:`, ...b.Env.map((a) => `\t\t${q(a)}`));
  if (b.StopSignal) L.push(`\tStop Signal: ${q(b.StopSignal)}`);
  if (b.ExposedPorts && Object.keys(b.ExposedPorts).length) L.push(`\tExposed Ports: ${Object.keys(b.ExposedPorts).sort().map((k) => q(k)).join(", ")}`);
  if (b.Volumes && Object.keys(b.Volumes).length) L.push(`\tVolumes: ${Object.keys(b.Volumes).sort().map((k) => q(k)).join(", ")}`);
  if (b.Labels && Object.keys(b.Labels).length) L.push(`\tLabels:`, ...Object.entries(b.Labels).sort(([x], [y]) => (x < y ? -1 : 1)).map(([k, v]) => `\t\t${q(k)}: ${q(v)}`));
  L.push("Descriptor:", ...descLines(manifest.config, "\t"), "");
  L.push("== HISTORY ==");
  const rows = [["LAYER", "CREATED", "CREATED BY", "SIZE", "COMMENT"]];
  for (const h of historyOf(manifest, config)) {
    rows.push([h.layer ? cell(h.layer.digest) : "<none>", cell(h.created ?? ""), cell(h.created_by ?? ""), h.layer ? humanSize(h.layer.size) : "<none>", cell(h.comment ?? "")]);
  }
  return L.join("\n") + "\n" + table(rows);
}

export const statCommand: CommandDef = {
  name: "stat",
  args: [],
  description: "display status information about an image",
  options: [imageOpt, { flag: "json", desc: "output the status information as JSON" }],
  run(_args, opts) {
    const ref = parseImageRef(opts.get("image"));
    // A short read needs no lock: blobs and index.json only ever appear by atomic rename, and
    // a blob a concurrent gc removes is reported as not found.
    const layout = openLayout(ref.layout);
    try {
      const path = resolveTag(layout, layout.readIndex(), ref.tag);
      const mdesc = manifestOf(path);
      const manifest = layout.readJson<Manifest>(mdesc, "manifest");
      const config = layout.readJson<ImageConfig>(manifest.config, "config");
      config.rootfs.diff_ids ??= [];
      if (opts.bool("json")) {
        const h = historyOf(manifest, config);
        writeOut(JSON.stringify({
          manifest: { descriptor: mdesc, blob: manifest },
          config: { descriptor: manifest.config, blob: config },
          history: h.length ? h : null,
        }) + "\n");
      } else {
        writeOut(formatStat(mdesc, manifest, config));
      }
    } finally { layout.close(); }
  },
};
