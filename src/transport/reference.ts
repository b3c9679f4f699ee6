/**
 * Image references in skopeo's transport syntax (containers/image `alltransports.ParseImageName`
 * and each transport's `ParseReference`), for the transports boci speaks:
 *
 *  - `oci:PATH[:TAG]` and `oci-archive:FILE[:TAG]`: split at the first ":" after the transport
 *    (as containers/image does on Linux), so a PATH can never hold a ":" and everything after it
 *    is the TAG. A TAG is an OCI ref name: components of `[A-Za-z0-9]+` joined by one of
 *    `-._:@+` or `--`, separated by "/" (so `a:b` is one TAG). An empty TAG means none.
 *  - `docker-archive:FILE[:NAME[:TAG]]` and (reading only) `docker-archive:FILE:@N`: split at
 *    the first ":"; the rest is a Docker reference normalised as docker/distribution's
 *    `ParseNormalizedNamed` then `TagNameOnly` does (`busybox` → `docker.io/library/busybox:latest`,
 *    `localhost:5000/x:1` keeps its registry). Digests are refused.
 *
 *  - `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]` (containers/image's docker transport): the
 *    reference after `//` is normalised as `ParseNormalizedNamed` does (`docker://alpine` →
 *    registry `docker.io`, repository `library/alpine`), a name without tag or digest gets
 *    `latest` (TagNameOnly), and a tag with a digest is refused as skopeo 1.9 refuses it.
 *
 * Transports skopeo knows but boci does not speak (yet) are UnsupportedError (exit 6); anything
 * else malformed is a UsageError (exit 2) naming the reference.
 */
import { UnsupportedError, UsageError } from "../errors";
import type { ImageReference } from "./types";
import type { DockerReference } from "./registry/types";

export type ReferenceRole = "source" | "destination";

/** Transports skopeo has that boci does not speak. */
const UNSUPPORTED_TRANSPORTS = ["docker-daemon", "dir", "containers-storage", "ostree", "tarball", "sif"];

// An OCI ref name (containers/image oci/internal refRegexp; umoci's tag rule is the same).
const ociComponent = "[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*";
const ociTagRe = new RegExp(`^${ociComponent}(?:/${ociComponent})*$`);

/** Whether `t` is a valid `oci:`/`oci-archive:` TAG (an OCI ref name). */
export function isValidOciTag(t: string): boolean {
  return ociTagRe.test(t);
}

/**
 * Parse `TRANSPORT:REST` for a copy source or destination. Throws UsageError for a malformed
 * reference, UnsupportedError for a transport boci does not speak; never touches the disk.
 */
export function parseReference(s: string, opts: { role: ReferenceRole }): ImageReference {
  const colon = s.indexOf(":");
  if (colon < 0) throw new UsageError(`invalid image reference ${JSON.stringify(s)}: expected TRANSPORT:REFERENCE (oci:, oci-archive:, docker-archive: or docker://)`);
  const transport = s.slice(0, colon);
  const rest = s.slice(colon + 1);
  const bad = (why: string) => new UsageError(`invalid image reference ${JSON.stringify(s)}: ${why}`);
  switch (transport) {
    case "oci":
    case "oci-archive": {
      const i = rest.indexOf(":");
      const path = i < 0 ? rest : rest.slice(0, i);
      const tag = i < 0 ? "" : rest.slice(i + 1);
      if (!path) throw bad(transport === "oci" ? "the layout path is empty" : "the archive path is empty");
      if (tag && !isValidOciTag(tag)) throw bad(`invalid tag ${JSON.stringify(tag)}`);
      return tag ? { transport, path, tag } : { transport, path };
    }
    case "docker-archive": {
      const i = rest.indexOf(":");
      const path = i < 0 ? rest : rest.slice(0, i);
      if (!path) throw bad("the archive path is empty");
      if (i < 0) return { transport, path };
      const what = rest.slice(i + 1);
      if (what.startsWith("@")) {
        if (opts.role === "destination") throw bad("a source index (@N) names an image to read, not one to write");
        if (!/^[0-9]+$/.test(what.slice(1))) throw bad(`invalid source index ${JSON.stringify(what)}: expected @N, N from 0`);
        const index = Number(what.slice(1));
        if (!Number.isSafeInteger(index)) throw bad(`invalid source index ${JSON.stringify(what)}`);
        return { transport, path, index };
      }
      try {
        return { transport, path, name: normalizeDockerName(what, { defaultTag: true }) };
      } catch (e) {
        throw bad((e as Error).message);
      }
    }
    case "docker":
      try {
        return parseDockerReference(rest);
      } catch (e) {
        throw bad((e as Error).message);
      }
    default:
      if (UNSUPPORTED_TRANSPORTS.includes(transport))
        throw new UnsupportedError(`unsupported transport "${transport}" in ${JSON.stringify(s)}: boci copies between oci:, oci-archive:, docker-archive: and docker://`);
      throw new UsageError(`invalid image reference ${JSON.stringify(s)}: unknown transport ${JSON.stringify(transport)} (oci:, oci-archive:, docker-archive: or docker://)`);
  }
}

/**
 * A reference as skopeo would print it (`oci:PATH:TAG`, `docker-archive:FILE:NAME:TAG`,
 * `docker-archive:FILE:@N`, `docker://HOST/REPO:TAG` or `docker://HOST/REPO@DIGEST`, always
 * normalised: `docker://docker.io/library/alpine:latest`).
 */
export function formatReference(ref: ImageReference): string {
  if (ref.transport === "docker") return `docker://${ref.registry}/${ref.repository}${ref.digest ? `@${ref.digest}` : `:${ref.tag ?? "latest"}`}`;
  if (ref.transport === "docker-archive") {
    if (ref.index !== undefined) return `docker-archive:${ref.path}:@${ref.index}`;
    return ref.name ? `docker-archive:${ref.path}:${ref.name}` : `docker-archive:${ref.path}`;
  }
  return ref.tag ? `${ref.transport}:${ref.path}:${ref.tag}` : `${ref.transport}:${ref.path}`;
}

// A digest as distribution's reference grammar has it (algorithm, ":", at least 32 hex digits).
const dockerDigestRe = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;

/**
 * The part of a `docker:` reference after the transport: `//` then a Docker reference, parsed
 * as containers/image's docker transport does (ParseNormalizedNamed; a name alone gets
 * `latest`; a tag together with a digest is refused). Throws Error with the reason.
 */
export function parseDockerReference(rest: string): DockerReference {
  if (!rest.startsWith("//")) throw new Error("a docker reference starts with // (docker://HOST[:PORT]/REPO[:TAG|@DIGEST])");
  const s = rest.slice(2);
  if (!s) throw new Error("the image name is empty");
  const at = s.indexOf("@");
  const named = at < 0 ? s : s.slice(0, at);
  let digest: string | undefined;
  if (at >= 0) {
    digest = s.slice(at + 1);
    if (!dockerDigestRe.test(digest)) throw new Error(`invalid digest ${JSON.stringify(digest)}`);
  }
  const n = parseDockerName(named);
  if (n.tag !== undefined && digest !== undefined) throw new Error("docker references with both a tag and digest are currently not supported");
  const ref: DockerReference = { transport: "docker", registry: n.domain, repository: n.path };
  if (digest !== undefined) ref.digest = digest;
  else ref.tag = n.tag ?? "latest";
  return ref;
}

// docker/distribution reference grammar (reference/regexp.go).
const alnum = "[a-z0-9]+";
const separator = "(?:[._]|__|[-]+)";
const pathComponent = `${alnum}(?:${separator}${alnum})*`;
const domainComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const domainRe = new RegExp(`^(?:${domainComponent}(?:\\.${domainComponent})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const pathRe = new RegExp(`^${pathComponent}(?:/${pathComponent})*$`);
const tagRe = /^[\w][\w.-]{0,127}$/;
const MAX_NAME = 255;

/** A Docker reference's parts, normalised: `domain` "docker.io", `path` "library/busybox". */
export interface DockerName { domain: string; path: string; tag?: string }

/**
 * Parse a Docker reference as `ParseNormalizedNamed` does: the first "/"-separated component is
 * a registry when it holds "." or ":" or is "localhost", else the registry is docker.io (whose
 * one-component names get `library/`); `index.docker.io` is docker.io. A digest (`@…`) is
 * refused: archives name images by tag. Throws Error with the reason (callers add context).
 */
export function parseDockerName(s: string): DockerName {
  if (s.includes("@")) throw new Error(`${JSON.stringify(s)}: digest references are not supported here, name a tag`);
  if (/^[a-f0-9]{64}$/.test(s)) throw new Error(`invalid repository name ${JSON.stringify(s)}: cannot specify 64-byte hexadecimal strings`);
  const slash = s.indexOf("/");
  let domain = "docker.io";
  let remainder = s;
  if (slash >= 0) {
    const first = s.slice(0, slash);
    if (first.includes(".") || first.includes(":") || first === "localhost") {
      domain = first === "index.docker.io" ? "docker.io" : first;
      remainder = s.slice(slash + 1);
    }
  }
  // The tag follows the last ":" of the path part (a registry's port is in `domain`).
  const c = remainder.lastIndexOf(":");
  let path = c < 0 ? remainder : remainder.slice(0, c);
  const tag = c < 0 ? undefined : remainder.slice(c + 1);
  if (!domainRe.test(domain)) throw new Error(`invalid reference format: ${JSON.stringify(s)}`);
  if (path !== path.toLowerCase() && pathRe.test(path.toLowerCase())) throw new Error(`invalid reference format: repository name must be lowercase: ${JSON.stringify(s)}`);
  if (!pathRe.test(path)) throw new Error(`invalid reference format: ${JSON.stringify(s)}`);
  if (tag !== undefined && !tagRe.test(tag)) throw new Error(`invalid reference format: bad tag ${JSON.stringify(tag)}`);
  if (domain === "docker.io" && !path.includes("/")) path = `library/${path}`;
  if (domain.length + 1 + path.length > MAX_NAME) throw new Error(`repository name must not be more than ${MAX_NAME} characters: ${JSON.stringify(s)}`);
  return tag === undefined ? { domain, path } : { domain, path, tag };
}

/**
 * A Docker reference in its full normalised form, `docker.io/library/busybox:latest`.
 * `defaultTag` adds `latest` when no tag is given (TagNameOnly); without it a missing tag is an
 * Error (skopeo's `--additional-tag` rule).
 */
export function normalizeDockerName(s: string, opts: { defaultTag: boolean }): string {
  const n = parseDockerName(s);
  if (n.tag === undefined && !opts.defaultTag) throw new Error(`${JSON.stringify(s)} is not a tagged reference (NAME:TAG)`);
  return `${n.domain}/${n.path}:${n.tag ?? "latest"}`;
}

/**
 * The short form Docker shows and `docker save` writes in RepoTags (reference.FamiliarString):
 * `docker.io/library/busybox:latest` → `busybox:latest`, `docker.io/me/x:1` → `me/x:1`; other
 * registries stay.
 */
export function familiarDockerName(s: string): string {
  const n = parseDockerName(s);
  let name = n.domain === "docker.io" ? n.path : `${n.domain}/${n.path}`;
  if (n.domain === "docker.io" && name.startsWith("library/") && name.indexOf("/", 8) < 0) name = name.slice(8);
  return n.tag === undefined ? name : `${name}:${n.tag}`;
}

/** Whether two Docker references name the same image (both normalised; a missing tag is `latest`). */
export function sameDockerName(a: string, b: string): boolean {
  try {
    return normalizeDockerName(a, { defaultTag: true }) === normalizeDockerName(b, { defaultTag: true });
  } catch {
    return false;
  }
}
