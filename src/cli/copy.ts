/**
 * `boci copy SRC DST`: skopeo's `copy` for the transports boci speaks (oci:, oci-archive:,
 * docker-archive:), through the copy engine (src/transport/copy.ts). Prints nothing on success
 * unless asked (`--json`, or `--verbose` for a summary line); progress on a terminal.
 */
import { UsageError } from "../errors";
import { parsePlatform } from "../cas";
import type { Platform } from "../image";
import type * as CopyModule from "../transport/copy";
import type * as ReferenceModule from "../transport/reference";
import type { CopyOptions, CopyProgress } from "../transport/types";
import { log } from "../util/log";
import { createProgress, formatBytes } from "../util/progress";
import { writeErr, writeOut, stderrIsTTY } from "../util/stdio";
import type { CommandDef } from "./spec";

// The engine pulls in tar, zlib and streams: loaded when the command runs.
const copyModule = () => require("../transport/copy") as typeof CopyModule;
const referenceModule = () => require("../transport/reference") as typeof ReferenceModule;

const COMPRESS = ["gzip", "zstd", "none"] as const;
const FORMATS = ["oci", "v2s2"] as const;

function oneOf<T extends string>(flag: string, v: string | undefined, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if ((allowed as readonly string[]).includes(v)) return v as T;
  throw new UsageError(`invalid --${flag} ${JSON.stringify(v)}: one of ${allowed.join(", ")}`);
}

function platformFrom(v: string | undefined): Platform | undefined {
  if (v === undefined) return undefined;
  try {
    return parsePlatform(v);
  } catch (e) {
    throw new UsageError(`invalid --platform: ${(e as Error).message}`);
  }
}

const short = (digest: string) => digest.replace(/^(sha256:[0-9a-f]{12})[0-9a-f]*$/, "$1");

/** Terminal progress: the blob being moved and the total; a line for each blob finished. */
function progressReporter(enabled: boolean): { onProgress: (p: CopyProgress) => void; done(): void } {
  const bar = createProgress({ enabled });
  const lines = enabled && stderrIsTTY();
  let finished = 0;
  return {
    onProgress(p) {
      if (p.state === "copy") {
        bar.update(() => `copying blob ${p.blob}/${p.blobs} ${short(p.digest)} ${formatBytes(p.done)} / ${formatBytes(p.size)} (total ${formatBytes(finished + p.done)})`);
        return;
      }
      finished += p.size;
      if (!lines) return;
      bar.done();
      writeErr(`${p.state === "skip" ? "skipped" : "copied"} blob ${p.blob}/${p.blobs} ${short(p.digest)} ${formatBytes(p.size)}${p.state === "skip" ? " (already present)" : ""}\n`);
    },
    done: () => bar.done(),
  };
}

export const copyCommand: CommandDef = {
  name: "copy",
  args: ["source", "destination"],
  description: "copy an image between oci:DIR[:TAG], oci-archive:FILE[:TAG] and docker-archive:FILE[:NAME:TAG]",
  examples: [
    "boci copy oci-archive:base.tar:1.0 oci:layout:base",
    "boci copy oci:layout:latest docker-archive:out.tar:myimage:1.2 --additional-tag myimage:latest",
    "boci copy docker-archive:in.tar oci:layout:latest",
  ],
  options: [
    { flag: "additional-tag", value: "<name:tag>", repeat: true, desc: "another RepoTag for a docker-archive destination (repeatable)" },
    { flag: "compress", value: "<algo>", desc: "compression for layers that are (re)compressed: gzip, zstd or none (default gzip)" },
    { flag: "dest-compress", desc: "recompress every layer not already in --compress's format" },
    { flag: "format", value: "<format>", desc: "manifest format to write: oci (oci:, oci-archive:) or v2s2 (docker-archive:)" },
    { flag: "all", desc: "copy a whole index (every platform) into oci: or oci-archive:" },
    { flag: "platform", value: "<os/arch[/variant]>", desc: "choose the manifest for this platform from a multi-platform index (default: the host's)" },
    { flag: "tmpdir", value: "<dir>", desc: "directory for temporary files (default: beside the destination)" },
    { flag: "dest-shared-blob-dir", value: "<dir>", desc: "an oci: destination keeps every blob in <dir>/<alg>/ instead of its blobs/ (skopeo's flag)" },
    { flag: "json", desc: "print the result as one JSON object" },
    { flag: "quiet", short: "q", desc: "print nothing but errors (and --json's object)" },
    { flag: "no-progress", desc: "do not show progress on a terminal" },
  ],
  async run(args, opts) {
    const { parseReference, formatReference } = referenceModule();
    const src = parseReference(args[0]!, { role: "source" });
    const dst = parseReference(args[1]!, { role: "destination" });
    const json = opts.bool("json");
    const quiet = opts.bool("quiet");
    const progress = progressReporter(!quiet && !json && !opts.bool("no-progress"));
    const copyOptions: CopyOptions = {
      additionalTags: opts.all("additional-tag"),
      compress: oneOf("compress", opts.get("compress"), COMPRESS),
      forceCompress: opts.bool("dest-compress"),
      format: oneOf("format", opts.get("format"), FORMATS),
      all: opts.bool("all"),
      platform: platformFrom(opts.get("platform")),
      tmpdir: opts.get("tmpdir"),
      sharedBlobDir: opts.get("dest-shared-blob-dir"),
      onProgress: progress.onProgress,
    };
    if (copyOptions.all && copyOptions.platform) throw new UsageError("--all and --platform may not be specified together");
    let result;
    try {
      result = await copyModule().copyImage(src, dst, copyOptions);
    } finally {
      progress.done();
    }
    if (json) {
      writeOut(JSON.stringify({ source: args[0], destination: args[1], ...result }) + "\n");
      return;
    }
    if (!quiet) log.info(`copied ${formatReference(src)} to ${formatReference(dst)}: ${result.manifest.digest} (${result.blobsCopied} blobs copied, ${result.blobsSkipped} skipped, ${formatBytes(result.bytes)} written)`);
  },
};
