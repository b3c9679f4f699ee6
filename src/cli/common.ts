/** Shared flag groups and parsing helpers for the commands (umoci's ux* decorators). */
import { UsageError } from "../errors";
import { Layout, type BlobReader } from "../cas";
import type { History } from "../image";
import { log } from "../util/log";
import { parseUserTime } from "../util/time";
import type { OptSpec, Opts } from "./spec";

const tagRe = /^([A-Za-z0-9]+(([-._:@+]|--)[A-Za-z0-9]+)*)(\/([A-Za-z0-9]+(([-._:@+]|--)[A-Za-z0-9]+)*))*$/;

export function isValidTag(t: string): boolean {
  return tagRe.test(t);
}

export function checkTag(t: string, what = "tag"): string {
  if (!isValidTag(t)) throw new UsageError(`invalid ${what} ${JSON.stringify(t)}`);
  return t;
}

export interface ImageRef { layout: string; tag: string }

/** `PATH[:TAG]`, split at the first ":"; the tag defaults to "latest". */
export function parseImageRef(s: string | undefined, flag = "image"): ImageRef {
  if (s === undefined) throw new UsageError(`missing mandatory argument: --${flag}`);
  const i = s.indexOf(":");
  const layout = i < 0 ? s : s.slice(0, i);
  const tag = i < 0 ? "latest" : s.slice(i + 1);
  if (!layout) throw new UsageError(`invalid --${flag} ${JSON.stringify(s)}: path is empty`);
  if (!tag) throw new UsageError(`invalid --${flag} ${JSON.stringify(s)}: tag is empty`);
  checkTag(tag);
  return { layout, tag };
}

export function parseLayoutFlag(s: string | undefined): string {
  if (s === undefined) throw new UsageError("missing mandatory argument: --layout");
  if (s.includes(":")) throw new UsageError(`invalid --layout ${JSON.stringify(s)}: path contains ':'`);
  if (!s) throw new UsageError("invalid --layout: path is empty");
  return s;
}

export function openLayout(p: string): Layout {
  return Layout.open(p, { onWait: (m) => log.warn(m) });
}

/**
 * The image a read-only command reads (`--image`): a layout and the tag in it. The store is
 * returned as a BlobReader, so a command written against it reads any store that offers one.
 * The caller closes `reader`.
 */
export function openImageReader(s: string | undefined, flag = "image"): { reader: BlobReader; tag: string } {
  const ref = parseImageRef(s, flag);
  return { reader: openLayout(ref.layout), tag: ref.tag };
}

export const imageOpt: OptSpec = { flag: "image", value: "<image>[:<tag>]", desc: "OCI image URI of the form 'path[:tag]'" };
export const layoutOpt: OptSpec = { flag: "layout", value: "<path>", desc: "path to an OCI image layout" };
export const tagOpt: OptSpec = { flag: "tag", value: "<new-tag>", desc: "tag name (defaults to overwriting the source tag)" };
export const compressOpt: OptSpec = { flag: "compress", value: "<algo>", desc: "layer compression: auto, gzip, zstd or none (default: auto)" };

export const historyOpts: OptSpec[] = [
  { flag: "no-history", desc: "do not create a history entry" },
  { flag: "history.author", value: "<author>", desc: "author value for the history entry" },
  { flag: "history.comment", value: "<comment>", desc: "comment for the history entry" },
  { flag: "history.created", value: "<date>", desc: "created value for the history entry (RFC 3339)" },
  { flag: "history.created_by", value: "<created_by>", desc: "created_by value for the history entry" },
];

export const mapOpts: OptSpec[] = [
  { flag: "rootless", desc: "enable rootless mode (no chown; ownership kept in the user.rootlesscontainers xattr)" },
  { flag: "uid-map", value: "<containerUID:hostUID[:size]>", repeat: true, desc: "a uid mapping (repeatable)" },
  { flag: "gid-map", value: "<containerGID:hostGID[:size]>", repeat: true, desc: "a gid mapping (repeatable)" },
];

/**
 * The history entry the flags ask for, or null for --no-history. `defaults` fill unset fields.
 */
export function historyFromOpts(opts: Opts, defaults: History): History | null {
  const named = ["history.author", "history.comment", "history.created", "history.created_by"];
  if (opts.bool("no-history")) {
    const bad = named.filter((n) => opts.has(n));
    if (bad.length) throw new UsageError(`--no-history and --${bad[0]} may not be specified together`);
    return null;
  }
  const h: History = { ...defaults };
  const author = opts.get("history.author");
  const comment = opts.get("history.comment");
  const created = opts.get("history.created");
  const createdBy = opts.get("history.created_by");
  if (created !== undefined) h.created = parseUserTime("history.created", created);
  if (createdBy !== undefined) h.created_by = createdBy;
  if (author !== undefined) h.author = author;
  if (comment !== undefined) h.comment = comment;
  return h;
}
