/** init, new, ls, tag, rm, gc: the layout and tag commands. */
import { NotFoundError } from "../errors";
import { initLayout, listTags, resolveTag, setTag, removeTag, refName, gc, hostPlatform } from "../cas";
import { MediaType, normalizeConfig, normalizeManifest, type ImageConfig, type Manifest } from "../image";
import { log } from "../util/log";
import { nowTimestamp } from "../util/time";
import type { CommandDef } from "./spec";
import { imageOpt, layoutOpt, parseImageRef, parseLayoutFlag, openLayout, checkTag } from "./common";
import { writeOut } from "../util/stdio";
import { escapeText } from "../util/escape";

const out = writeOut;

export const initCommand: CommandDef = {
  name: "init",
  args: [],
  description: "create a new OCI layout",
  options: [layoutOpt],
  run(_args, opts) {
    const p = parseLayoutFlag(opts.get("layout"));
    initLayout(p);
    log.info(`created new OCI image layout: ${p}`);
  },
};

export const newCommand: CommandDef = {
  name: "new",
  args: [],
  description: "create a blank tagged OCI image",
  options: [imageOpt],
  run(_args, opts) {
    const ref = parseImageRef(opts.get("image"));
    const layout = openLayout(ref.layout);
    layout.lockGc("sh");
    try {
      const host = hostPlatform();
      const config: ImageConfig = {
        created: nowTimestamp(),
        architecture: host.architecture,
        variant: host.variant,
        os: host.os,
        config: {},
        rootfs: { type: "layers", diff_ids: [] },
      };
      const configDesc = layout.putJson(normalizeConfig(config), MediaType.config);
      const manifest: Manifest = { schemaVersion: 2, mediaType: MediaType.manifest, config: configDesc, layers: [] };
      const desc = layout.putJson(normalizeManifest(manifest), MediaType.manifest);
      layout.syncBlobs();
      layout.updateIndex((ix) => ({ index: setTag(ix, ref.tag, desc), result: undefined }));
      log.info(`created new image: ${ref.layout}:${ref.tag}`);
    } finally { layout.close(); }
  },
};

export const lsCommand: CommandDef = {
  name: "ls",
  aliases: ["list"],
  args: [],
  description: "list the set of tags in an OCI layout",
  options: [layoutOpt],
  run(_args, opts) {
    const layout = openLayout(parseLayoutFlag(opts.get("layout")));
    const tags = listTags(layout.readIndex());
    // A tag is image data: quoted with its control characters escaped when it has any.
    out(tags.map((t) => escapeText(t, "needed") + "\n").join(""));
  },
};

export const tagCommand: CommandDef = {
  name: "tag",
  args: ["new-tag"],
  description: "create a new tag in an OCI image",
  options: [imageOpt],
  run(args, opts) {
    const ref = parseImageRef(opts.get("image"));
    const newTag = checkTag(args[0]!, "new tag");
    const layout = openLayout(ref.layout);
    layout.lockGc("sh");
    try {
      layout.updateIndex((ix) => {
        const src = ix.manifests.filter((d) => refName(d) === ref.tag);
        if (src.length === 0) throw new NotFoundError(`tag ${JSON.stringify(ref.tag)} not found`);
        // Several entries with one name: resolve to the one image the source tag means.
        const root = src.length === 1 ? src[0]! : resolveTag(layout, ix, ref.tag).walk[0]!;
        return { index: setTag(ix, newTag, root), result: undefined };
      });
      log.info(`created new tag for image manifest: ${newTag}`);
    } finally { layout.close(); }
  },
};

export const rmCommand: CommandDef = {
  name: "rm",
  aliases: ["remove"],
  args: [],
  description: "remove a tag from an OCI layout",
  options: [imageOpt],
  run(_args, opts) {
    const ref = parseImageRef(opts.get("image"));
    const layout = openLayout(ref.layout);
    const removed = layout.updateIndex((ix) => {
      const r = removeTag(ix, ref.tag);
      return { index: r.removed ? r.index : undefined, result: r.removed };
    });
    if (removed) log.info(`removed tag ${ref.tag}`);
    else log.info(`tag ${ref.tag} not present; nothing removed`);
  },
};

export const gcCommand: CommandDef = {
  name: "gc",
  args: [],
  description: "garbage-collect an OCI layout",
  options: [
    layoutOpt,
    { flag: "dry-run", desc: "list what would be removed, and remove nothing" },
    { flag: "json", desc: "print what was (or would be) removed as JSON: {dryRun, removedBlobs, removedTemp, kept, skipped}" },
  ],
  run(_args, opts) {
    const layout = openLayout(parseLayoutFlag(opts.get("layout")));
    const dryRun = opts.bool("dry-run");
    const json = opts.bool("json");
    try {
      // gc removes nothing unless the walk from index.json is complete (it throws otherwise).
      const r = gc(layout, { dryRun, onRemove: (m) => log.info(m), onWarn: (m) => log.warn(m) });
      if (json) {
        out(JSON.stringify({ dryRun: r.dryRun, removedBlobs: r.removedBlobs, removedTemp: r.removedTemp, kept: r.kept, skipped: r.skipped }) + "\n");
      } else if (dryRun) {
        out(r.removedBlobs.map((d) => `would remove blob ${d}\n`).join("") +
          r.removedTemp.map((t) => `would remove temporary file ${/^[\x21-\x7e]+$/.test(t) ? t : JSON.stringify(t)}\n`).join(""));
      }
      log.info(`gc${dryRun ? " (dry run)" : ""}: kept ${r.kept} blobs, ${dryRun ? "would remove" : "removed"} ${r.removedBlobs.length} blobs and ${r.removedTemp.length} temporary files`);
    } finally { layout.close(); }
  },
};

