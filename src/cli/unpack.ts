/** unpack, raw unpack, raw runtime-config. */
import * as path from "node:path";
import { resolveTag } from "../cas";
import type * as UnpackModule from "../bundle/unpack";
import type * as RuntimeConfigModule from "../bundle/runtime-config";
import { resolveMapOptions, type MapOptions } from "../layer/idmap";
import { log } from "../util/log";
import { FTL_RESTART_LAYER_BYTES, canRestartWithoutFtl, restartWithoutFtl } from "../util/jit";
import { writeRegularFileAtomic } from "../util/fs";
import type { CommandDef, OptSpec, Opts } from "./spec";
import { readImageOpt, mapOpts, openImageReader, readPlatformOpt as platformOpt, platformFromOpts } from "./common";

// Heavy modules (node:stream, node:zlib, tar, mtree) are required when a command runs, not at
// start-up: a require() inside a function is a chunk of the binary loaded at that call (scripts/build.ts).
const unpackModule = () => require("../bundle/unpack") as typeof UnpackModule;
const runtimeConfigModule = () => require("../bundle/runtime-config") as typeof RuntimeConfigModule;

const unpackOpts: OptSpec[] = [
  readImageOpt, ...mapOpts,
  { flag: "keep-dirlinks", desc: "keep an existing symlink to a directory when a layer has a directory at its path" },
  platformOpt,
  { flag: "no-progress", desc: "do not show progress on a terminal" },
];

export function mapOptionsFrom(opts: Opts): MapOptions {
  return resolveMapOptions({
    uidMaps: opts.all("uid-map"), gidMaps: opts.all("gid-map"), rootless: opts.bool("rootless"),
    euid: process.geteuid?.() ?? 0, egid: process.getegid?.() ?? 0,
  });
}

/**
 * openImage for unpack: an image with FTL_RESTART_LAYER_BYTES of layers or more is unpacked by
 * this binary run again without the JIT's top tier (util/jit.ts), the layout closed first.
 */
function openImageToUnpack(opts: Opts) {
  const opened = openImage(opts);
  const bytes = opened.img.manifest.layers.reduce((n, l) => n + l.size, 0);
  if (bytes < FTL_RESTART_LAYER_BYTES || !canRestartWithoutFtl()) return opened;
  opened.layout.close();
  restartWithoutFtl(`${(bytes / 1048576).toFixed(0)} MiB of layers`);
  return openImage(opts);
}

function openImage(opts: Opts) {
  const platform = platformFromOpts(opts);
  const { reader: layout, tag } = openImageReader(opts.get("image"));
  try {
    layout.lockGc("sh", { optional: true });
    const img = unpackModule().loadImage(layout, resolveTag(layout, layout.readIndex(), tag, { platform }));
    return { layout, img };
  } catch (e) {
    layout.close();
    throw e;
  }
}

const warn = (m: string) => log.warn(m);

/** The flags unpack and raw unpack share, as unpack options. */
function unpackOptionsFrom(opts: Opts): UnpackModule.UnpackOptions {
  return { mapOptions: mapOptionsFrom(opts), keepDirlinks: opts.bool("keep-dirlinks"), progress: !opts.bool("no-progress"), onWarning: warn };
}

export const unpackCommand: CommandDef = {
  name: "unpack",
  longRunning: true,
  args: ["bundle"],
  description: "unpack an image into a runtime bundle",
  options: unpackOpts,
  async run(args, opts) {
    const unpackOptions = unpackOptionsFrom(opts);
    const { layout, img } = openImageToUnpack(opts);
    try {
      await unpackModule().unpackBundle(layout, img, args[0]!, unpackOptions);
      log.info(`unpacked image ${img.manifestDesc.digest} into ${args[0]}`);
    } finally { layout.close(); }
  },
};

export const rawUnpackCommand: CommandDef = {
  name: "raw unpack",
  longRunning: true,
  args: ["rootfs"],
  description: "unpack an image into a root filesystem only (may be an existing directory)",
  options: unpackOpts,
  async run(args, opts) {
    const unpackOptions = unpackOptionsFrom(opts);
    const { layout, img } = openImageToUnpack(opts);
    try {
      // A new directory appears complete or not at all; an existing one is extracted in place.
      await unpackModule().unpackRootfs(layout, img, args[0]!, unpackOptions);
    } finally { layout.close(); }
  },
};

export const rawConfigCommand: CommandDef = {
  name: "raw runtime-config",
  aliases: ["raw config"],
  args: ["config"],
  description: "generate a runtime config.json for an image",
  options: [readImageOpt, ...mapOpts, { flag: "rootfs", value: "<dir>", desc: "root filesystem used to resolve user and group names" }, platformOpt],
  run(args, opts) {
    const mapOptions = mapOptionsFrom(opts);
    const { layout, img } = openImage(opts);
    try {
      const rootfs = opts.get("rootfs");
      if (rootfs === undefined) log.warn("no --rootfs given: user and group names cannot be resolved (using root:root where needed)");
      const { generateRuntimeConfig, serializeRuntimeConfig } = runtimeConfigModule();
      const cfg = generateRuntimeConfig(img.config, {
        rootfsName: rootfs !== undefined ? path.basename(rootfs) : "rootfs",
        rootfsPath: rootfs ?? null, mapOptions, onWarning: warn,
      });
      // Beside and renamed over; a symlink or non-regular file there is refused, not followed.
      writeRegularFileAtomic(args[0]!, serializeRuntimeConfig(cfg), { mode: 0o644, fsync: false });
    } finally { layout.close(); }
  },
};
