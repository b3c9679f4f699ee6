/** repack, insert, raw add-layer, raw mtree-validate. */
import * as fs from "node:fs";
import * as path from "node:path";
import { BociError, UsageError, NotFoundError, addContext, describeErrno } from "../errors";
import { resolveTag, platformOf, platformMatches, formatPlatform } from "../cas";
import type { Platform } from "../image";
import type * as MetaModule from "../bundle/meta";
import type * as BundleUnpackModule from "../bundle/unpack";
import { Mutator } from "../mutate";
import type * as RepackModule from "../bundle/repack";
import type * as LayerBlobModule from "../bundle/layer-blob";
import type * as TarModule from "../tar";
import type * as GenerateModule from "../layer/generate";
import type { Change } from "../layer/generate";
import type * as MtreeModule from "../mtree";
import type * as SysModule from "../sys";
import { cleanEntryPath } from "../rootfs/path";
import { log } from "../util/log";
import { FTL_RESTART_MTREE_BYTES, canRestartWithoutFtl, restartWithoutFtl } from "../util/jit";
import { nowTimestamp, sourceDateEpoch } from "../util/time";
import type { CommandDef, Opts } from "./spec";
import {
  imageOpt, tagOpt, compressOpt, historyOpts, mapOpts, parseImageRef, openLayout, historyFromOpts, checkTag, jsonOpt, printWriteResult,
  writePlatformOpt, platformFromOpts, layerAnnotationOpt, layerAnnotationsFromOpts,
} from "./common";
import { mapOptionsFrom } from "./unpack";
import { writeOut } from "../util/stdio";
import { yieldToSignals } from "../util/cleanup";

const warn = (m: string) => log.warn(m);

// Heavy modules (node:stream, node:zlib, tar, mtree) are required when a command runs, not at
// start-up: a require() inside a function is a chunk of the binary loaded at that call (scripts/build.ts).
const repackModule = () => require("../bundle/repack") as typeof RepackModule;
const layerBlob = () => require("../bundle/layer-blob") as typeof LayerBlobModule;
const tarModule = () => require("../tar") as typeof TarModule;
const generateModule = () => require("../layer/generate") as typeof GenerateModule;
const mtreeModule = () => require("../mtree") as typeof MtreeModule;
const sysModule = () => require("../sys") as typeof SysModule;

function targetTag(opts: Opts, fallback: string): string {
  const t = opts.get("tag");
  return t !== undefined ? checkTag(t, "--tag") : fallback;
}

/**
 * A bundle whose mtree manifest (the one umoci.json names, as repack reads it) has
 * FTL_RESTART_MTREE_BYTES or more (tens of thousands of entries) is repacked by this binary run
 * again without the JIT's top tier (util/jit.ts). Before the layout is opened; a bundle that
 * cannot be read here is left to repack to report.
 */
function restartBigRepack(bundleArg: string): void {
  if (!canRestartWithoutFtl()) return;
  const { readMeta } = require("../bundle/meta") as typeof MetaModule;
  const { resolveBundleDir } = require("../bundle/unpack") as typeof BundleUnpackModule;
  let bytes: number;
  try {
    const bundle = resolveBundleDir(bundleArg, { keepDangling: true });
    const walk = readMeta(bundle).descriptorWalk;
    bytes = fs.statSync(path.join(bundle, repackModule().mtreeFileName(walk[walk.length - 1]!.digest))).size;
  } catch { return; }
  if (bytes >= FTL_RESTART_MTREE_BYTES) restartWithoutFtl(`a manifest of ${(bytes / 1048576).toFixed(0)} MiB`);
}

export const repackCommand: CommandDef = {
  name: "repack",
  longRunning: true,
  args: ["bundle"],
  description: "repack the changes made to a bundle's rootfs as a new layer",
  options: [
    imageOpt, compressOpt,
    { flag: "mask-path", value: "<path>", repeat: true, desc: "a path to leave out of the layer (repeatable)" },
    { flag: "no-mask-volumes", desc: "do not leave the image's volumes out of the layer" },
    { flag: "refresh-bundle", desc: "point the bundle at the new image, so the next repack is relative to it" },
    { flag: "no-progress", desc: "do not show progress on a terminal" },
    { ...writePlatformOpt, desc: "check that the bundle was unpacked from this platform's manifest (repack writes into the manifest the bundle came from)" },
    layerAnnotationOpt, ...historyOpts, jsonOpt,
  ],
  async run(args, opts) {
    const ref = parseImageRef(opts.get("image"));
    const platform = platformFromOpts(opts);
    const layerAnnotations = layerAnnotationsFromOpts(opts);
    if (platform) checkBundlePlatform(args[0]!, platform);
    restartBigRepack(args[0]!);
    const { parseCompress } = layerBlob();
    const compress = parseCompress(opts.get("compress"));
    const now = nowTimestamp();
    const clamp = sourceDateEpoch();
    const layout = openLayout(ref.layout);
    layout.lockGc("sh");
    try {
      // Default history author: the image's (read inside repack via the mutator's config).
      const history = historyFromOpts(opts, { created_by: "boci repack" });
      const r = await repackModule().repackBundle(layout, args[0]!, {
        tag: ref.tag, maskPaths: opts.all("mask-path"), maskVolumes: !opts.bool("no-mask-volumes"),
        refreshBundle: opts.bool("refresh-bundle"), compress, history, layerAnnotations, clampMtime: clamp,
        progress: !opts.bool("no-progress"), onWarning: warn, now,
      });
      log.info(r.layer ? `new layer ${r.layer.digest} (${r.changes} changed paths); manifest ${r.manifest.digest}` : `no changes; manifest ${r.manifest.digest}`);
      if (!r.layer && layerAnnotations) log.warn("no changes, so no new layer: --layer.annotation is not used");
      const added = r.layer ? [layerAnnotations ? { ...r.layer, annotations: { ...(r.layer.annotations ?? {}), ...layerAnnotations } } : r.layer] : [];
      printWriteResult(opts, layout, { manifest: r.manifest, tag: ref.tag, layersAdded: added });
    } finally { layout.close(); }
  },
};

/**
 * repack writes into the manifest the bundle was unpacked from (umoci.json's walk), whatever the
 * tag names now: `--platform` is checked against that manifest's platform, never used to pick
 * another one.
 */
function checkBundlePlatform(bundleArg: string, want: Platform): void {
  const { readMeta } = require("../bundle/meta") as typeof MetaModule;
  const { resolveBundleDir } = require("../bundle/unpack") as typeof BundleUnpackModule;
  const walk = readMeta(resolveBundleDir(bundleArg, { keepDangling: true })).descriptorWalk;
  const got = platformOf({ walk });
  if (got && !platformMatches(want, got)) throw new UsageError(`repack --platform ${formatPlatform(want)}: bundle ${bundleArg} was unpacked from the ${formatPlatform(got)} manifest (repack writes into that one)`);
}

/**
 * Every path under a source tree (the root as "."), sorted as a layer wants them, and the bytes
 * of its regular files (for the tar's expected length).
 */
function listTree(root: string): { paths: string[]; bytes: number } {
  const out: string[] = ["."];
  let bytes = 0;
  const walk = (rel: string) => {
    const abs = rel === "" ? root : path.join(root, rel);
    const names = fs.readdirSync(abs).sort(mtreeModule().compareBytes);
    for (const n of names) {
      const r = rel === "" ? n : `${rel}/${n}`;
      out.push(r);
      const st = fs.lstatSync(path.join(root, r));
      if (st.isFile()) bytes += st.size;
      if (st.isDirectory()) walk(r);
    }
  };
  if (fs.lstatSync(root).isDirectory()) walk("");
  return { paths: out, bytes };
}

export const insertCommand: CommandDef = {
  name: "insert",
  longRunning: true,
  args: ["source", "target"],
  minArgs: 1,
  description: "insert a file or tree into an image as a new layer (or a whiteout with --whiteout)",
  options: [
    imageOpt, tagOpt, compressOpt, ...mapOpts,
    { flag: "opaque", desc: "make TARGET opaque: hide everything lower layers had under it" },
    { flag: "whiteout", desc: "insert a whiteout for TARGET instead of content (takes only TARGET)" },
    writePlatformOpt, layerAnnotationOpt, ...historyOpts, jsonOpt,
  ],
  run: (args, opts) => runInsert(args, opts),
};

/** insert with its variable positional count. */
export async function runInsert(positional: string[], opts: Opts): Promise<void> {
  const whiteout = opts.bool("whiteout");
  if (whiteout && positional.length !== 1) throw new UsageError(`insert --whiteout: expected 1 argument (TARGET), got ${positional.length}`);
  if (!whiteout && positional.length !== 2) throw new UsageError(`insert: expected 2 arguments (SOURCE TARGET), got ${positional.length}`);
  if (whiteout && opts.bool("opaque")) throw new UsageError("insert: --whiteout and --opaque cannot be used together");
  const ref = parseImageRef(opts.get("image"));
  const tag = targetTag(opts, ref.tag);
  const { parseCompress, storeLayer, resolveCompression, tarLengthEstimate } = layerBlob();
  const { createTarWriter } = tarModule();
  const { writeChanges } = generateModule();
  const compress = parseCompress(opts.get("compress"));
  const mapOptions = mapOptionsFrom(opts);
  const history = historyFromOpts(opts, { created_by: "boci insert" });
  const platform = platformFromOpts(opts);
  const layerAnnotations = layerAnnotationsFromOpts(opts);
  const targetRaw = positional[whiteout ? 0 : 1]!;
  const target = cleanEntryPath(targetRaw);
  const source = whiteout ? null : positional[0]!;
  if (source !== null) { try { fs.lstatSync(source); } catch { throw new NotFoundError(`insert: source ${source} does not exist`); } }
  if (whiteout && target === "") throw new UsageError("insert --whiteout: cannot white out the root directory");

  const layout = openLayout(ref.layout);
  layout.lockGc("sh");
  try {
    const m = new Mutator(layout, resolveTag(layout, layout.readIndex(), ref.tag, { platform, forWrite: true }));
    const tar = createTarWriter();
    let root: string;
    let changes: Change[];
    let contentBytes = 0;
    if (whiteout) {
      root = "/";
      changes = [{ kind: "delete", path: target, archivePath: target }];
    } else {
      const src = path.resolve(source!);
      const st = fs.lstatSync(src);
      root = st.isDirectory() ? src : path.dirname(src);
      const base = path.basename(src);
      if (st.isDirectory()) {
        const tree = listTree(src);
        contentBytes = tree.bytes;
        changes = tree.paths.map((p) => ({ kind: "add" as const, path: p, archivePath: p === "." ? (target || ".") : (target ? `${target}/${p}` : p) }));
      } else {
        if (st.isFile()) contentBytes = st.size;
        changes = [{ kind: "add", path: base, archivePath: target || "." }];
      }
    }
    const producer = (async () => {
      try {
        if (opts.bool("opaque")) {
          await tar.add({ name: `${target ? target + "/" : ""}.wh..wh..opq`, type: "file", mode: 0, size: 0, mtime: 0 });
        }
        await writeChanges(root, changes, tar, { mapOptions, clampMtime: sourceDateEpoch(), onWarning: warn });
        await tar.finish();
      } catch (e) {
        tar.abort(e as Error);
        throw e;
      }
    })();
    const [stored] = await Promise.all([storeLayer(layout, tar.output, resolveCompression(compress, m.manifest.layers), { expectedBytes: tarLengthEstimate(changes.length, contentBytes) }), producer]);
    m.addLayer(stored.descriptor, stored.diffID, history ? { ...history, created: history.created ?? nowTimestamp() } : null, layerAnnotations);
    await yieldToSignals();
    const r = m.commit(tag);
    log.info(`inserted layer ${stored.descriptor.digest}; manifest ${r.manifest.digest}`);
    printWriteResult(opts, layout, { manifest: r.manifest, tag, layersAdded: [m.manifest.layers[m.manifest.layers.length - 1]!] });
  } finally { layout.close(); }
}

export const addLayerCommand: CommandDef = {
  name: "raw add-layer",
  longRunning: true,
  args: ["layer.tar"],
  description: "append an uncompressed tar as a new layer",
  options: [imageOpt, tagOpt, compressOpt, writePlatformOpt, layerAnnotationOpt, ...historyOpts, jsonOpt],
  async run(args, opts) {
    const ref = parseImageRef(opts.get("image"));
    const tag = targetTag(opts, ref.tag);
    const platform = platformFromOpts(opts);
    const layerAnnotations = layerAnnotationsFromOpts(opts);
    const { parseCompress, storeLayer, resolveCompression } = layerBlob();
    const compress = parseCompress(opts.get("compress"));
    const file = args[0]!;
    let st: fs.Stats;
    try { st = fs.statSync(file); } catch { throw new NotFoundError(`raw add-layer: ${file} does not exist`); }
    if (!st.isFile()) throw new UsageError(`raw add-layer: ${file} is not a regular file`);
    const layout = openLayout(ref.layout);
    layout.lockGc("sh");
    try {
      const m = new Mutator(layout, resolveTag(layout, layout.readIndex(), ref.tag, { platform, forWrite: true }));
      const history = historyFromOpts(opts, { created_by: "boci raw add-layer", author: m.config.author });
      // Parsed as a tar to its end while it is hashed: a file that is not one is refused before
      // anything names it.
      const stream = tarModule().checkTarStream(fs.createReadStream(file, { highWaterMark: 1 << 20 }), file);
      const stored = await storeLayer(layout, stream, resolveCompression(compress, m.manifest.layers), { expectedBytes: st.size });
      m.addLayer(stored.descriptor, stored.diffID, history ? { ...history, created: history.created ?? nowTimestamp() } : null, layerAnnotations);
      await yieldToSignals();
      const r = m.commit(tag);
      log.info(`added layer ${stored.descriptor.digest}; manifest ${r.manifest.digest}`);
      printWriteResult(opts, layout, { manifest: r.manifest, tag, layersAdded: [m.manifest.layers[m.manifest.layers.length - 1]!] });
    } finally { layout.close(); }
  },
};

export const mtreeValidateCommand: CommandDef = {
  name: "raw mtree-validate",
  longRunning: true,
  args: [],
  hidden: true,
  description: `validate an mtree manifest (akin to "go-mtree validate")`,
  // umoci 0.6's flags and meaning (cmd/umoci/raw-mtree-validate.go); the work is mtree/validate.ts.
  options: [
    { flag: "manifest", short: "f", aliases: ["file"], value: "<manifest.mtree>", desc: "mtree manifest to validate" },
    { flag: "path", short: "p", value: "<directory>", desc: "root path the mtree manifest is relative to" },
    { flag: "add-keywords", short: "K", value: "<keywords>", desc: "add the specified keywords to the set used for validation (delimited by comma or space)" },
    { flag: "use-keywords", short: "k", value: "<keywords>", desc: "use only the specified keywords for validation (delimited by comma or space)" },
    { flag: "umoci-keywords", desc: "use the default set of keywords used by umoci" },
    { flag: "rootless", desc: "enable rootless command support" },
  ],
  async run(_args, opts) {
    const manifest = opts.get("manifest");
    const dir = opts.get("path");
    // urfave/cli names a missing required flag by its last long name ("manifest,f,file").
    const missing = [manifest === undefined ? "file" : "", dir === undefined ? "path" : ""].filter(Boolean);
    if (manifest === undefined || dir === undefined) throw new UsageError(`Required flag${missing.length > 1 ? "s" : ""} "${missing.join(", ")}" not set`);
    if (manifest === "") throw new UsageError("--manifest must be a valid path");
    if (dir === "") throw new UsageError("--path must be a valid path");
    const mt = mtreeModule();
    const listed = (flag: string): string[] | undefined => {
      const v = opts.get(flag);
      return v === undefined ? undefined : mt.parseKeywordList(v);
    };

    log.info(`parsing mtree manifest ${manifest} ...`);
    let data: Buffer;
    try { data = fs.readFileSync(manifest); } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const msg = `open mtree manifest: open ${manifest}: ${describeErrno({ ...err, syscall: undefined, path: undefined } as NodeJS.ErrnoException)}`;
      throw err.code === "ENOENT" ? new NotFoundError(msg, { cause: e }) : new BociError(msg, { code: err.code, cause: e });
    }
    let spec: ReturnType<typeof mt.parseSpec>;
    try { spec = mt.parseSpec(data); } catch (e) { throw addContext("parse mtree manifest", e); }
    const keywords = mt.selectKeywords({
      use: listed("use-keywords"), add: listed("add-keywords"),
      umoci: opts.bool("umoci-keywords") ? mt.UMOCI_KEYWORDS : undefined, manifest: spec.usedKeywords,
    });
    log.debug(`mtree keywords: manifest ${spec.usedKeywords.join(",")}; compared ${keywords.join(",")}`);

    log.info(`computing filesystem diff against manifest for ${dir} ...`);
    const sys = sysModule();
    let deltas: ReturnType<typeof mt.compareSpecs>;
    try {
      deltas = await mt.checkSpec(dir, spec, keywords, {
        rootless: opts.bool("rootless"), listXattrs: mt.createGoXattrLister(sys.llistxattr, sys.lgetxattr),
      });
    } catch (e) {
      throw addContext(`check mtree manifest ${mt.goQuote(manifest)} against root ${mt.goQuote(dir)}`, e);
    }
    if (deltas.length) writeOut(deltas.map((d) => mt.formatSpecDelta(d) + "\n").join(""));
    if (deltas.length) throw new BociError(`validation failed: ${deltas.length} differences found`);
    log.info("no errors found during mtree validation");
  },
};
