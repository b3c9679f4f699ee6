/**
 * `boci copy SRC DST`: skopeo's `copy` for the transports boci speaks (oci:, oci-archive:,
 * docker-archive:, docker://), through the copy engine (src/transport/copy.ts). Prints nothing on
 * success unless asked (`--json`, or `--verbose` for a summary line); progress on a terminal.
 *
 * Registry flags (registryOptionsFrom) go to CopyOptions.srcRegistry / dstRegistry: `--creds`,
 * `--authfile`, `--tls-verify=BOOL`, `--cert-dir` for both sides, each overridden for one side by
 * its `--src-`/`--dest-` form; `--src-no-creds`/`--dest-no-creds` for anonymous access;
 * `--retry-times N` for both. They are ignored for a side that is not `docker://` (as skopeo).
 * A credential given here is never printed: not in help, errors, --json or a log line.
 */
import { UsageError } from "../errors";
import type { RegistryOptions } from "../transport/registry/types";
import type * as CredentialsModule from "../transport/registry/credentials";
import { parsePlatform } from "../cas";
import type { Platform } from "../image";
import type * as CopyModule from "../transport/copy";
import type * as ReferenceModule from "../transport/reference";
import type { CopyOptions, CopyProgress } from "../transport/types";
import { log } from "../util/log";
import { createProgress, formatBytes } from "../util/progress";
import { writeErr, writeOut, stderrIsTTY } from "../util/stdio";
import type { CommandDef, Opts, OptSpec } from "./spec";

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

/** A `--retry-times N` value: a non-negative integer (at most 100). */
export function parseRetryTimes(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,3}$/.test(v) || Number(v) > 100) throw new UsageError(`invalid --${flag} ${JSON.stringify(v)}: a number of retries from 0 to 100`);
  return Number(v);
}

/** The registry flags of `boci copy` (and, without the side prefixes, of `boci ls`). */
export function registryOptionSpecs(sides: boolean): OptSpec[] {
  const both: OptSpec[] = [
    { flag: "creds", value: "<user[:password]>", desc: sides ? "credentials for both registries (docker://); the --src-/--dest- forms override it per side" : "credentials for the registry" },
    { flag: "authfile", value: "<file>", desc: "auth file to read first (default $REGISTRY_AUTH_FILE, then ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.config/containers/auth.json, ~/.docker/config.json)" },
    { flag: "tls-verify", desc: "--tls-verify=false: no certificate check and plain HTTP allowed (default true)" },
    { flag: "cert-dir", value: "<dir>", desc: "certificates for the registry: *.crt CAs, a *.cert with its *.key as client certificate (default certs.d/HOST[:PORT])" },
  ];
  const out: OptSpec[] = [...both];
  if (sides) {
    for (const [side, what] of [["src", "source"], ["dest", "destination"]] as const) {
      out.push(
        { flag: `${side}-creds`, value: "<user[:password]>", desc: `credentials for the ${what} registry` },
        { flag: `${side}-no-creds`, desc: `access the ${what} registry anonymously (no auth file read)` },
        { flag: `${side}-authfile`, value: "<file>", desc: `auth file for the ${what} registry` },
        { flag: `${side}-tls-verify`, desc: `--tls-verify for the ${what} registry (--${side}-tls-verify=false)` },
        { flag: `${side}-cert-dir`, value: "<dir>", desc: `--cert-dir for the ${what} registry` },
      );
    }
  }
  // No --no-creds without a side (boci ls): cac reads a "no-" flag as the negation of --creds.
  out.push({ flag: "retry-times", value: "<n>", desc: "retries after a connection error, 5xx or 429 answer (default 3)" });
  return out;
}

const credentialsModule = () => require("../transport/registry/credentials") as typeof CredentialsModule;

/**
 * The RegistryOptions one side's flags ask for: `side` "src"/"dest" reads `--SIDE-X` first and
 * `--X` after it, "" reads `--X` only (boci ls). UsageError for a malformed value (never echoing
 * a credential) or for credentials together with no-creds.
 */
export function registryOptionsFrom(opts: Opts, side: "src" | "dest" | ""): RegistryOptions {
  const pick = (name: string) => (side ? opts.get(`${side}-${name}`) : undefined) ?? opts.get(name);
  const flagOf = (name: string) => (side && opts.get(`${side}-${name}`) !== undefined ? `${side}-${name}` : name);
  const r: RegistryOptions = {};
  const noCreds = side !== "" && opts.bool(`${side}-no-creds`);
  const creds = pick("creds");
  // The side's own --SIDE-creds with --SIDE-no-creds is a contradiction; --creds (both sides) gives way.
  if (noCreds && creds !== undefined && flagOf("creds") !== "creds")
    throw new UsageError(`--${flagOf("creds")} and --${side}-no-creds cannot be specified at the same time`);
  if (noCreds) r.credentials = credentialsModule().ANONYMOUS;
  else if (creds !== undefined) r.credentials = credentialsModule().parseCredsFlag(creds, flagOf("creds"));
  const authFile = pick("authfile");
  if (authFile !== undefined && authFile !== "") r.authFile = authFile;
  const tlsVerify = (side ? opts.boolValue(`${side}-tls-verify`) : undefined) ?? opts.boolValue("tls-verify");
  if (tlsVerify !== undefined) r.tlsVerify = tlsVerify;
  const certDir = pick("cert-dir");
  if (certDir !== undefined && certDir !== "") r.certDir = certDir;
  const retries = parseRetryTimes("retry-times", opts.get("retry-times"));
  if (retries !== undefined) r.retries = retries;
  return r;
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
  longRunning: true,
  args: ["source", "destination"],
  description: "copy an image between oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG] and docker://HOST[:PORT]/REPO[:TAG|@DIGEST]",
  options: [
    { flag: "additional-tag", value: "<name:tag>", repeat: true, desc: "another RepoTag for a docker-archive destination (repeatable)" },
    { flag: "compress", value: "<algo>", desc: "compression for layers that are (re)compressed: gzip, zstd or none (default gzip)" },
    { flag: "dest-compress", desc: "recompress every layer not already in --compress's format" },
    { flag: "format", value: "<format>", desc: "manifest format to write: oci (oci:, oci-archive:) or v2s2 (docker-archive:)" },
    { flag: "all", desc: "copy a whole index (every platform) into oci: or oci-archive:" },
    { flag: "platform", value: "<os/arch[/variant]>", desc: "choose the manifest for this platform from a multi-platform index (default: the host's)" },
    { flag: "tmpdir", value: "<dir>", desc: "directory for temporary files (default: beside the destination)" },
    { flag: "dest-shared-blob-dir", value: "<dir>", desc: "an oci: destination keeps every blob in <dir>/<alg>/ instead of its blobs/ (skopeo's flag)" },
    ...registryOptionSpecs(true),
    { flag: "referrers", desc: "copy the referrers (OCI 1.1 subject) of what is copied, and theirs, along with it (into oci:, oci-archive: or docker://)" },
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
      srcRegistry: registryOptionsFrom(opts, "src"),
      dstRegistry: registryOptionsFrom(opts, "dest"),
      referrers: opts.bool("referrers"),
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
