/**
 * `umoci.json`, the bundle metadata umoci writes beside the rootfs: the descriptor walk of the
 * unpacked image and the ID-map options. Written compact with a newline; read from bundles made
 * by umoci 0.4.7 (which adds `"whiteout_mode":0`) and 0.6.
 */
import * as path from "node:path";
import { InvalidError, NotFoundError } from "../errors";
import type { Descriptor } from "../image";
import { validateDescriptor, assertValid } from "../image";
import type { MapOptions, IdMapping } from "../layer/idmap";
import { goJson, parseJsonStrict } from "../util/json";
import { GoDescriptor, encodeGoValue } from "../cas/go-json";
import { readRegularFile, writeFileAtomic } from "../util/fs";

export const META_FILE = "umoci.json";
export const META_VERSION = "2";
/** A descriptor walk is a few descriptors: a bigger umoci.json is not one of ours. */
const MAX_META_BYTES = 4 << 20;

export interface BundleMeta {
  descriptorWalk: Descriptor[];
  mapOptions: MapOptions;
}

export function formatMeta(meta: BundleMeta): string {
  const maps = (m: IdMapping[], rootless: boolean) => (m.length || rootless ? m.map((x) => ({ containerID: x.containerID, hostID: x.hostID, size: x.size })) : null);
  // The descriptors as Go encodes image-spec's Descriptor (field order, sorted annotations,
  // unknown fields dropped), embedded in the rest of umoci's struct.
  const walk = meta.descriptorWalk.map((d) => encodeGoValue(d, GoDescriptor)).join(",");
  const mapOptions = goJson({
    uid_mappings: maps(meta.mapOptions.uidMappings, meta.mapOptions.rootless),
    gid_mappings: maps(meta.mapOptions.gidMappings, meta.mapOptions.rootless),
    rootless: meta.mapOptions.rootless,
  });
  return `{"umoci_version":${goJson(META_VERSION)},"from_descriptor_path":{"descriptor_walk":[${walk}]},"map_options":${mapOptions}}\n`;
}

/**
 * Write `umoci.json` into `bundle`: beside it under a temporary name, then renamed over it (a
 * symlink planted there is replaced, never followed). `fsync` as writeFileAtomic (default true).
 */
export function writeMeta(bundle: string, meta: BundleMeta, opts: { fsync?: boolean } = {}): void {
  writeFileAtomic(path.join(bundle, META_FILE), formatMeta(meta), { mode: 0o644, fsync: opts.fsync });
}

function parseMaps(v: unknown, what: string): IdMapping[] {
  if (v === null || v === undefined) return [];
  if (!Array.isArray(v)) throw new InvalidError(`${META_FILE}: ${what} must be an array`);
  return v.map((m, i) => {
    const ok = m && typeof m === "object" && ["containerID", "hostID", "size"].every((k) => Number.isSafeInteger((m as Record<string, unknown>)[k]) && (m as Record<string, number>)[k]! >= 0);
    if (!ok) throw new InvalidError(`${META_FILE}: ${what}[${i}] is not a valid ID mapping`);
    return { containerID: m.containerID, hostID: m.hostID, size: m.size };
  });
}

/**
 * Read the bundle's `umoci.json`. Refused (exit 4) unless it is a regular file: a symlink is not
 * followed, a FIFO is not waited on (util/fs.ts readRegularFile). Missing: exit 3.
 */
export function readMeta(bundle: string): BundleMeta {
  const file = path.join(bundle, META_FILE);
  let text: string;
  try { text = readRegularFile(file, `bundle ${bundle}: ${META_FILE}`, { maxBytes: MAX_META_BYTES }).data.toString("utf8"); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new NotFoundError(`bundle ${bundle}: no ${META_FILE} (not a bundle made by unpack?)`);
    throw e;
  }
  let obj: Record<string, any>;
  try { obj = parseJsonStrict(text) as Record<string, any>; } catch (e) {
    throw new InvalidError(`${META_FILE}: invalid JSON: ${(e as Error).message}`);
  }
  if (!obj || typeof obj !== "object") throw new InvalidError(`${META_FILE}: not a JSON object`);
  if (obj.umoci_version !== META_VERSION) throw new InvalidError(`${META_FILE}: unsupported umoci_version ${JSON.stringify(obj.umoci_version)}`);
  if (obj.whiteout_mode !== undefined && obj.whiteout_mode !== 0) throw new InvalidError(`${META_FILE}: unsupported whiteout_mode ${JSON.stringify(obj.whiteout_mode)}`);
  const walk = obj.from_descriptor_path?.descriptor_walk;
  if (!Array.isArray(walk) || walk.length === 0) throw new InvalidError(`${META_FILE}: missing descriptor walk`);
  walk.forEach((d: unknown, i: number) => assertValid(validateDescriptor(d, `descriptor_walk[${i}]`), META_FILE));
  const mo = obj.map_options ?? {};
  return {
    descriptorWalk: walk as Descriptor[],
    mapOptions: { uidMappings: parseMaps(mo.uid_mappings, "uid_mappings"), gidMappings: parseMaps(mo.gid_mappings, "gid_mappings"), rootless: mo.rootless === true },
  };
}
