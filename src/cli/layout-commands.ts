/**
 * init, new, ls, tag, rm, gc: the layout and tag commands. What they print (stdout and the
 * info-level log lines) is what umoci 0.6 prints (cmd/umoci/{init,new,tag,gc}.go, new.go):
 * `ls` one tag per line in index order, duplicates included (`ls --layout docker://HOST/REPO`:
 * the registry's tags, with copy's registry flags without the side prefixes); `gc` nothing (umoci logs only at
 * debug level); `rm` rewrites index.json even when the tag is absent, as umoci does.
 */
import { NotFoundError, UsageError } from "../errors";
import type { RegistryOptions } from "../transport/registry/types";
import type * as ReferenceModule from "../transport/reference";
import type * as ClientModule from "../transport/registry/client";
import { registryOptionSpecs, registryOptionsFrom } from "./copy";
import { initLayout, listTags, resolveTag, manifestOf, platformOf, setTag, removeTag, refName, gc, hostPlatform, type DescriptorPath } from "../cas";
import { MediaType, normalizeConfig, normalizeManifest, type Descriptor, type ImageConfig, type Manifest } from "../image";
import { log } from "../util/log";
import { nowTimestamp } from "../util/time";
import type { CommandDef } from "./spec";
import { imageOpt, layoutOpt, parseImageRef, parseLayoutFlag, openLayout, checkTag, isArchiveImage, openArchiveStore, jsonOpt, printWriteResult, readPlatformOpt, platformFromOpts } from "./common";
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
    log.info(`created new OCI image: ${p}`);
  },
};

export const newCommand: CommandDef = {
  name: "new",
  args: [],
  description: "create a blank tagged OCI image",
  options: [imageOpt, jsonOpt],
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
      log.info(`new image manifest created: ${desc.digest}`);
      layout.updateIndex((ix) => ({ index: setTag(ix, ref.tag, desc), result: undefined }));
      printWriteResult(opts, layout, { manifest: desc, tag: ref.tag });
      log.info(`created new tag for image manifest: ${ref.tag}`);
    } finally { layout.close(); }
  },
};

export const lsCommand: CommandDef = {
  name: "ls",
  aliases: ["list"],
  args: [],
  description: "list the set of tags in an OCI layout (or an archive, or a registry repository)",
  options: [
    { ...layoutOpt, value: "<path>", desc: "path to an OCI image layout, or an archive read in place: 'oci-archive:file' or 'docker-archive:file' (its RepoTags), or a registry repository 'docker://HOST[:PORT]/REPO' (its tags)" },
    ...registryOptionSpecs(false),
    { flag: "json", desc: "print the tags as one JSON array of strings" },
  ],
  async run(_args, opts) {
    const given = opts.get("layout");
    let tags: string[];
    if (given !== undefined && given.startsWith("docker://")) {
      tags = await registryTags(given, registryOptionsFrom(opts, ""));
    } else {
      // An archive lists the tags of its index (a docker-archive's: manifest.json's RepoTags).
      const layout = given !== undefined && isArchiveImage(given) ? openArchiveStore(given) : openLayout(parseLayoutFlag(given));
      try { tags = listTags(layout.readIndex()); } finally { layout.close(); }
    }
    if (opts.bool("json")) { out(JSON.stringify(tags) + "\n"); return; }
    // umoci 0.6 prints each name as it is (fmt.Println), and so do we while it is printable;
    // a name with a control or other unprintable character (image data on its way to a
    // terminal) is Go-quoted instead.
    out(tags.map((t) => (escapeText(t, "inline") === t ? t : escapeText(t, "always")) + "\n").join(""));
  },
};

/**
 * The tags of the repository `docker://HOST[:PORT]/REPO` names (a tag or digest in it is
 * ignored), in the registry's order (lexical for distribution). UsageError for a malformed
 * reference; the client's errors (network, auth: exit 1; an unknown repository: exit 3).
 */
async function registryTags(s: string, registry: RegistryOptions): Promise<string[]> {
  const { parseReference } = require("../transport/reference") as typeof ReferenceModule;
  const ref = parseReference(s, { role: "source" });
  if (ref.transport !== "docker") throw new UsageError(`--layout ${JSON.stringify(s)}: not a docker:// reference`);
  const { RegistryClient } = require("../transport/registry/client") as typeof ClientModule;
  return new RegistryClient(ref.registry, ref.repository, registry, ["pull"]).listTags();
}

export const tagCommand: CommandDef = {
  name: "tag",
  args: ["new-tag"],
  description: "create a new tag in an OCI image",
  options: [
    imageOpt,
    { ...readPlatformOpt, desc: "tag only this platform's manifest of a multi-platform index (the new tag names that manifest alone)" },
    { flag: "json", desc: "print the result as one JSON object: the descriptor the new tag names and the tag" },
  ],
  run(args, opts) {
    const ref = parseImageRef(opts.get("image"));
    const newTag = checkTag(args[0]!, "new tag");
    const platform = platformFromOpts(opts);
    const layout = openLayout(ref.layout);
    layout.lockGc("sh");
    try {
      const tagged = layout.updateIndex((ix) => {
        const src = ix.manifests.filter((d) => refName(d) === ref.tag);
        if (src.length === 0) throw new NotFoundError(`tag ${JSON.stringify(ref.tag)} not found`);
        // --platform: that platform's manifest descriptor (with its platform field), on its own.
        // Otherwise the entry itself; several entries with one name: the one image the tag means.
        const root = platform ? platformManifest(resolveTag(layout, ix, ref.tag, { platform }))
          : src.length === 1 ? src[0]! : resolveTag(layout, ix, ref.tag).walk[0]!;
        return { index: setTag(ix, newTag, root), result: root };
      });
      const { annotations: _a, ...manifest } = tagged;
      printWriteResult(opts, layout, { manifest, tag: newTag });
      log.info(`created new tag: ${JSON.stringify(newTag)} -> ${JSON.stringify(ref.tag)}`);
    } finally { layout.close(); }
  },
};

/** A path's manifest descriptor with the platform that applies to it (a nested index may name it on a parent). */
function platformManifest(p: DescriptorPath): Descriptor {
  const d = manifestOf(p);
  const platform = platformOf(p);
  return d.platform || !platform ? d : { ...d, platform };
}

export const rmCommand: CommandDef = {
  name: "rm",
  aliases: ["remove"],
  args: [],
  description: "remove a tag from an OCI layout",
  options: [imageOpt],
  run(_args, opts) {
    const ref = parseImageRef(opts.get("image"));
    const layout = openLayout(ref.layout);
    // umoci's DeleteReference writes index.json back whether or not the tag was there (and exits
    // 0 either way, as boci does); boci says so when there was nothing to remove.
    const removed = layout.updateIndex((ix) => {
      const r = removeTag(ix, ref.tag);
      return { index: r.index, result: r.removed };
    });
    if (removed === 0) log.warn(`tag ${JSON.stringify(ref.tag)} not found in ${ref.layout}: nothing removed`);
    else log.info(`removed tag: ${ref.tag}`);
  },
};

export const gcCommand: CommandDef = {
  name: "gc",
  args: [],
  description: "garbage-collect an OCI layout",
  options: [
    layoutOpt,
    { flag: "dry-run", desc: "list what would be removed, and remove nothing" },
    { flag: "json", desc: "print what was (or would be) removed as JSON: {dryRun, removedBlobs, removedTemp, bytesFreed, kept, skipped}" },
  ],
  run(_args, opts) {
    const layout = openLayout(parseLayoutFlag(opts.get("layout")));
    const dryRun = opts.bool("dry-run");
    const json = opts.bool("json");
    try {
      // gc removes nothing unless the walk from index.json is complete (it throws otherwise).
      // umoci 0.6 logs gc only at debug level ("garbage collecting blob", "garbage collected N blobs").
      const r = gc(layout, { dryRun, onRemove: (m) => log.debug(m), onWarn: (m) => log.warn(m) });
      if (json) {
        out(JSON.stringify({ dryRun: r.dryRun, removedBlobs: r.removedBlobs, removedTemp: r.removedTemp, bytesFreed: r.bytesFreed, kept: r.kept, skipped: r.skipped }) + "\n");
      } else if (dryRun) {
        out(r.removedBlobs.map((d) => `would remove blob ${d}\n`).join("") +
          r.removedTemp.map((t) => `would remove temporary file ${/^[\x21-\x7e]+$/.test(t) ? t : JSON.stringify(t)}\n`).join(""));
      }
      log.debug(`garbage collected ${r.removedBlobs.length} blobs${dryRun ? " (dry run: nothing removed)" : ""}; kept ${r.kept}, ${r.removedTemp.length} temporary files`);
    } finally { layout.close(); }
  },
};

