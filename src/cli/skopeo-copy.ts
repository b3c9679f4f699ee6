/**
 * `skopeo copy SRC DST` through boci's copy engine (src/transport/copy.ts), with skopeo 1.9's
 * flags mapped onto CopyOptions:
 *
 *  - `--additional-tag` (repeatable, comma-split) → RepoTags of a docker-archive destination;
 *  - `--format oci|v2s2` (v2s1 refused); `--dest-compress-format gzip|zstd` → layers the
 *    destination keeps compressed end up in that format (others recompressed), as
 *    containers/image does; `--dest-compress` is accepted and changes nothing (skopeo applies it
 *    to `dir:` only; an oci destination's uncompressed layers are always compressed);
 *  - `--all`/`-a`, `--multi-arch all` → the whole index; `--multi-arch system` (the default) →
 *    the image for the host or `--override-os/-arch/-variant`; `--multi-arch index-only` refused;
 *  - `--tmpdir` → where temporary files go; `--quiet` → nothing on stdout;
 *  - `--remove-signatures` is accepted: boci copies no signatures;
 *  - the registry flags (`--src-creds`, `--dest-tls-verify`, `--src-cert-dir`, `--authfile`,
 *    `--retry-times`, …; skopeo.ts skopeoRegistryOptions) → CopyOptions.srcRegistry and
 *    dstRegistry, used when that side is `docker://` (credentials never printed or logged);
 *  - `--digestfile FILE` → the digest of the manifest written, as skopeo writes it (no newline);
 *  - `--dest-shared-blob-dir DIR` → an `oci:` destination keeps every blob in `DIR/<alg>/…`
 *    (CopyOptions.sharedBlobDir); with another destination it is a usage error (skopeo ignores
 *    it there), refused before the source is read; an empty DIR means none, as in skopeo.
 *
 * The trust policy is evaluated for the source as skopeo does (checkPolicy), without signature
 * verification: a requirement of a signature rejects the image, as it would for an archive or a
 * layout that carries none.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { BociError, InvalidError, NotFoundError, UnsupportedError, UsageError } from "../errors";
import type { ImageReference, CopyOptions, CopyProgress } from "../transport/types";
import type * as CopyModule from "../transport/copy";
import type * as ReferenceModule from "../transport/reference";
import type * as OpenModule from "../transport/open";
import type { Plan } from "../transport/layout-dest";
import { log } from "../util/log";
import { type SkopeoFlags, type SkopeoGlobal, overridePlatform, refuseOtherTransport, skopeoRegistryOptions, warnDeprecatedTlsVerify } from "./skopeo";

const copyModule = () => require("../transport/copy") as typeof CopyModule;
const referenceModule = () => require("../transport/reference") as typeof ReferenceModule;

/** One requirement of a containers-policy.json(5) file. */
interface PolicyRequirement { type?: string }
interface Policy { default?: PolicyRequirement[]; transports?: Record<string, Record<string, PolicyRequirement[]>> }

/** The policy file skopeo reads without --policy: the user's, else the system's (containers-policy.json(5)). */
function defaultPolicyPath(): string | undefined {
  const home = os.homedir();
  const user = home ? path.join(home, ".config/containers/policy.json") : undefined;
  if (user && fs.existsSync(user)) return user;
  return fs.existsSync("/etc/containers/policy.json") ? "/etc/containers/policy.json" : undefined;
}

/** A path resolved as containers/image resolves one for policy scopes: absolute, symlinks of what exists resolved. */
function resolvedPath(p: string): string {
  const abs = path.resolve(p);
  try { return fs.realpathSync(abs); } catch { /* not there yet */ }
  try { return path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs)); } catch { return abs; }
}

/** The scopes a source is looked up under, most specific first (identity, then namespaces). */
function policyScopes(ref: ImageReference): string[] {
  if (ref.transport === "docker-archive") return [];
  if (ref.transport === "docker") {
    // containers-policy.json(5) docker scopes: the reference, the repository, its namespaces, the host.
    const repo = `${ref.registry}/${ref.repository}`;
    const scopes = [ref.digest ? `${repo}@${ref.digest}` : `${repo}:${ref.tag ?? "latest"}`];
    for (let p = repo; ; p = p.slice(0, p.lastIndexOf("/"))) {
      scopes.push(p);
      if (p.lastIndexOf("/") < 0) break;
    }
    return scopes;
  }
  const dir = resolvedPath(ref.path);
  const scopes = ref.tag ? [`${dir}:${ref.tag}`, dir] : [dir];
  for (let p = dir; p.lastIndexOf("/") > 0;) {
    p = p.slice(0, p.lastIndexOf("/"));
    scopes.push(p);
  }
  return scopes;
}

/**
 * Evaluate the trust policy for `src` (skopeo's PolicyContext.IsRunningImageAllowed without
 * signatures): `--insecure-policy` accepts anything; else the file `--policy` names, or the
 * default one (a missing default file is taken as "accept anything", so that a minimal chroot
 * needs none; skopeo itself refuses to run then). The requirements of the most specific scope
 * of the source's transport apply, else the transport's "" scope, else `default`; each must
 * pass: `insecureAcceptAnything` passes, `reject` fails, a signature requirement fails (the
 * local transports carry no signatures, and boci reads none from a registry). Throws NotFoundError or InvalidError for the file, a
 * BociError (exit 1) for a rejection.
 */
export function checkPolicy(g: SkopeoGlobal, src: ImageReference, srcText: string, findPolicy: () => string | undefined = defaultPolicyPath): void {
  if (g.insecurePolicy) return;
  const file = g.policy ?? findPolicy();
  if (file === undefined) {
    // A local source (a layout, an archive) carries no signatures: with no policy file at all it
    // is accepted, so a bare build chroot needs none. A registry's images are another matter:
    // there, as skopeo, no policy is an error (security before convenience).
    if (src.transport === "docker")
      throw new BociError(`source image ${srcText}: no policy file (~/.config/containers/policy.json, /etc/containers/policy.json): give --policy FILE, or --insecure-policy to accept any image`, { code: "EPOLICY" });
    log.debug("no policy.json found: accepting the local source as --insecure-policy would");
    return;
  }
  let policy: Policy;
  try {
    policy = JSON.parse(fs.readFileSync(file, "utf8")) as Policy;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new NotFoundError(`policy ${file}: no such file`);
    throw new InvalidError(`policy ${file}: ${code ? (e as Error).message : `invalid JSON: ${(e as Error).message}`}`, { cause: e });
  }
  if (typeof policy !== "object" || policy === null || !Array.isArray(policy.default)) throw new InvalidError(`policy ${file}: invalid policy: "default" requirements are missing`);
  const scopes = policy.transports?.[src.transport] ?? {};
  const key = [...policyScopes(src), ""].find((s) => Array.isArray(scopes[s]));
  const reqs = key !== undefined ? scopes[key]! : policy.default;
  if (reqs.length === 0) throw new InvalidError(`policy ${file}: no requirements for ${src.transport}${key ? ` scope ${key}` : ""}`);
  for (const r of reqs) {
    if (r.type === "insecureAcceptAnything") continue;
    const why = r.type === "reject" ? "rejected by policy" : r.type === "signedBy" || r.type === "sigstoreSigned"
      ? `policy requires a signature (${r.type}) and boci verifies none` : `unknown policy requirement type ${JSON.stringify(r.type)}`;
    throw new BociError(`source image ${srcText} rejected: ${why} (${file})`, { code: "EPOLICY" });
  }
}

/**
 * CopyOptions from skopeo's flags for a copy to `dst` (UsageError/UnsupportedError for what
 * cannot be honoured).
 */
export function copyOptionsFrom(flags: SkopeoFlags, g: SkopeoGlobal, dst: ImageReference): CopyOptions {
  warnDeprecatedTlsVerify(flags);
  const opts: CopyOptions = {
    additionalTags: flags.all("additional-tag"), tmpdir: g.tmpdir,
    srcRegistry: skopeoRegistryOptions(flags, "src-"), dstRegistry: skopeoRegistryOptions(flags, "dest-"),
  };
  const shared = flags.get("dest-shared-blob-dir");
  if (shared !== undefined && shared !== "") {
    if (dst.transport !== "oci")
      throw new UsageError(`--dest-shared-blob-dir: only an oci: destination keeps its blobs in a shared directory (not ${referenceModule().formatReference(dst)})`);
    opts.sharedBlobDir = shared;
  }
  const format = flags.get("format");
  if (format !== undefined) {
    if (format === "v2s1") throw new UnsupportedError("--format v2s1: Docker schema 1 manifests are not written by boci (oci or v2s2)");
    if (format !== "oci" && format !== "v2s2") throw new UsageError(`unknown format ${JSON.stringify(format)}: choose one of the supported formats: 'oci' or 'v2s2'`);
    opts.format = format;
  }
  const cf = flags.get("dest-compress-format");
  if (cf !== undefined) {
    if (cf !== "gzip" && cf !== "zstd") throw new UnsupportedError(`--dest-compress-format ${JSON.stringify(cf)}: boci compresses with gzip or zstd`);
    opts.compress = cf;
    opts.forceCompress = true;
  }
  const multi = flags.get("multi-arch");
  if (multi !== undefined) {
    if (flags.has("all")) throw new UsageError("cannot use --all and --multi-arch flags together");
    if (multi === "index-only") throw new UnsupportedError("--multi-arch index-only is not supported by boci (system or all)");
    if (multi !== "system" && multi !== "all") throw new UsageError(`unknown multi-arch option ${JSON.stringify(multi)}: choose one of the supported options: 'system', 'all', or 'index-only'`);
  }
  opts.all = flags.has("all") || multi === "all";
  const platform = overridePlatform(g);
  if (platform && !opts.all) opts.platform = platform;
  return opts;
}

/**
 * Which of the source's blobs are JSON documents (manifests, indexes: skopeo names none of
 * them) and which are configs, for the copy lines. Read from the plan the copy will follow.
 */
async function documentKinds(src: ImageReference, opts: CopyOptions): Promise<Map<string, "config" | "document">> {
  const { openReaderAsync, resolveTop, resolveImage } = require("../transport/open") as typeof OpenModule;
  const { manifestOf } = require("../cas") as typeof import("../cas");
  const kinds = new Map<string, "config" | "document">();
  // A registry source: its manifests and configs are fetched here (and again by the copy).
  const reader = await openReaderAsync(src, opts.srcRegistry);
  try {
    const top = opts.all ? resolveTop(reader, src) : manifestOf(resolveImage(reader, src, { platform: opts.platform }));
    const walk = (p: Plan): void => {
      if (p.kind === "blob") return;
      kinds.set(p.desc.digest, "document");
      if (p.kind === "manifest") kinds.set(p.manifest.config.digest, "config");
      else p.children.forEach(walk);
    };
    walk(copyModule().makePlan(reader, top, opts.all === true));
  } finally { reader.close(); }
  return kinds;
}

/**
 * What skopeo prints while it copies (to stdout, unless --quiet): a line per layer and one for
 * the config (`Copying config …`), `… skipped: already exists` for what the destination had.
 */
function reporter(out: (s: string) => void, kinds: Map<string, "config" | "document">): (p: CopyProgress) => void {
  const seen = new Set<string>();
  return (p) => {
    const kind = kinds.get(p.digest);
    if (seen.has(p.digest) || kind === "document") return;
    seen.add(p.digest);
    out(`Copying ${kind === "config" ? "config" : "blob"} ${p.digest}${p.state === "skip" ? " skipped: already exists" : ""}\n`);
  };
}

/** `skopeo copy SOURCE-IMAGE DESTINATION-IMAGE`. */
export async function runSkopeoCopy(args: string[], flags: SkopeoFlags, g: SkopeoGlobal): Promise<void> {
  refuseOtherTransport(args[0]!, "source");
  refuseOtherTransport(args[1]!, "destination");
  const { parseReference } = referenceModule();
  const src = parseReference(args[0]!, { role: "source" });
  const dst = parseReference(args[1]!, { role: "destination" });
  const opts = copyOptionsFrom(flags, g, dst);
  checkPolicy(g, src, args[0]!);
  const quiet = flags.has("quiet");
  if (!quiet) {
    opts.onProgress = reporter(g.out, await documentKinds(src, opts));
    // No signature is read or written (boci copies none); the lines keep skopeo's shape.
    g.out("Getting image source signatures\n");
  }
  const digestFile = flags.get("digestfile");
  const result = await copyModule().copyImage(src, dst, opts);
  if (!quiet) g.out("Writing manifest to image destination\nStoring signatures\n");
  if (digestFile) {
    try { fs.writeFileSync(digestFile, result.manifest.digest, { mode: 0o644 }); } catch (e) {
      throw new BociError(`writing digest file ${digestFile}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file or directory" : (e as Error).message}`, { cause: e });
    }
  }
}
