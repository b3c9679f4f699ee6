/**
 * TLS settings for one registry host, as containers/image sets them up
 * (docker/docker_client.go dockerCertDir, pkg/tlsclientconfig, containers-certs.d(5)).
 *
 * Certificates come from one directory: `opts.certDir` (`--cert-dir`), else the first of
 * `$HOME/.config/containers/certs.d/HOST[:PORT]`, `/etc/containers/certs.d/HOST[:PORT]`,
 * `/etc/docker/certs.d/HOST[:PORT]` that exists. In it, read in name order:
 *  - every `*.crt` is a CA certificate, trusted besides the system's;
 *  - a `*.cert` is a client certificate, and needs the `*.key` of the same base name (and a
 *    `*.key` its `*.cert`); the first pair in name order is presented (Bun's fetch takes one).
 * Other files are ignored. A missing directory is no error (nothing to add).
 *
 * Bun's fetch, given `tls.ca`, trusts only those certificates (checked: its built-in roots are
 * replaced, as Node's `ca` replaces them), so when a directory adds CAs the system bundle is put
 * first: `$SSL_CERT_FILE`, else /etc/ssl/certs/ca-certificates.crt, else Bun's built-in roots
 * (node:tls rootCertificates). With no CA file, `ca` is left out and Bun's defaults apply.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as os from "node:os";
import { BociError } from "../../errors";
import { log } from "../../util/log";
import type { RegistryOptions, TlsSettings } from "./types";

/** Where tlsFor looks besides `opts` (tests point them at scratch directories). */
export interface TlsContext {
  /** the per-host certs.d roots, in order (default: the three above) */
  certsDirs?: string[];
  /** default: process.env (HOME, SSL_CERT_FILE) */
  env?: Record<string, string | undefined>;
}

/** What tlsFor returns for a host. */
export interface RegistryTls {
  /** the `tls` option for every fetch to this host */
  tls: TlsSettings;
  /**
   * Plain HTTP is allowed for this host (`--tls-verify=false`, and only then). What the client
   * does with it, as skopeo (docker_client.go detectProperties): it tries `https://` first (with
   * no certificate check), and only when that fails at the connection or TLS level (no HTTP
   * answer at all) it tries `http://` and keeps to it for the host. false: `https://` only.
   */
  plainHttp: boolean;
  /** the certificate directory used, if one exists (for messages) */
  certDir?: string;
}

/** An unreadable or malformed certificate file (exit 1). */
export class CertificateError extends BociError {
  constructor(registry: string, file: string, what: string, opts: { cause?: unknown } = {}) {
    super(`registry ${registry}: certificate file ${file}: ${what}`, { code: "ECERT", ...opts });
  }
}

/** The per-host certs.d roots containers/image reads, in its order. */
export function defaultCertsDirs(env: Record<string, string | undefined> = process.env): string[] {
  const home = env.HOME || os.homedir();
  return [path.join(home, ".config/containers/certs.d"), "/etc/containers/certs.d", "/etc/docker/certs.d"];
}

let systemBundle: string[] | undefined;

/** The system's trusted CAs as PEM (read once). */
export function systemCertificates(env: Record<string, string | undefined> = process.env): string[] {
  if (systemBundle) return systemBundle;
  for (const f of [env.SSL_CERT_FILE, "/etc/ssl/certs/ca-certificates.crt"]) {
    if (!f) continue;
    try {
      const pem = fs.readFileSync(f, "utf8");
      if (pem.includes("-----BEGIN CERTIFICATE-----")) return (systemBundle = [pem]);
    } catch { /* next */ }
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (systemBundle = [...(require("node:tls") as typeof import("node:tls")).rootCertificates]);
}

function readPem(registry: string, file: string, kind: "certificate" | "key"): string {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CertificateError(registry, file, code === "EACCES" ? "permission denied" : code === "EISDIR" ? "is a directory" : (code ?? "unreadable").toLowerCase(), { cause: e });
  }
  const ok = kind === "certificate" ? /-----BEGIN CERTIFICATE-----/.test(text) : /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text);
  // Never the content: a key file is a secret.
  if (!ok) throw new CertificateError(registry, file, kind === "certificate" ? "no PEM certificate in it" : "no PEM private key in it");
  return text;
}

/** The certificate directory for `registry`: `certDir`, else the first existing per-host directory. */
export function certDirFor(registry: string, opts: Pick<RegistryOptions, "certDir">, ctx: TlsContext = {}): string | undefined {
  if (opts.certDir) return opts.certDir;
  for (const root of ctx.certsDirs ?? defaultCertsDirs(ctx.env)) {
    const d = path.join(root, registry);
    try {
      fs.statSync(d);
      return d;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") continue;
      // As containers/image: a directory we may not look into is passed over (debug only).
      if (code === "EACCES") { log.debug(`registry ${registry}: certificate directory ${d}: permission denied, skipped`); continue; }
      throw new CertificateError(registry, d, (code ?? "unreadable").toLowerCase(), { cause: e });
    }
  }
  return undefined;
}

/** Hosts already warned about (once per process, however many clients ask). */
const warned = new Set<string>();

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d+)?$/i;

/** Whether a `HOST[:PORT]` is a loopback address. */
export function isLoopback(registry: string): boolean {
  return LOOPBACK.test(registry);
}

/**
 * The TLS settings for `registry` (`HOST[:PORT]`): `rejectUnauthorized` unless
 * `opts.tlsVerify === false`, CAs and the client certificate from the certificate directory (see
 * the header), and whether plain HTTP is allowed (RegistryTls.plainHttp). A certificate
 * directory is read even with `tlsVerify: false` (a client certificate still counts). Plain
 * HTTP to a host that is not loopback gets a warning (once per host and process): credentials
 * would cross the network in the clear. Throws CertificateError for an unreadable or malformed file, or a client
 * certificate without its key (and a key without its certificate). Synchronous; reads the
 * directory each call (the caller keeps the result for a session).
 */
export function tlsFor(registry: string, opts: RegistryOptions, ctx: TlsContext = {}): RegistryTls {
  const verify = opts.tlsVerify !== false;
  const tls: TlsSettings = { rejectUnauthorized: verify };
  const dir = certDirFor(registry, opts, ctx);
  if (dir !== undefined) {
    let names: string[];
    try {
      names = fs.readdirSync(dir).sort();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "ENOENT") throw new CertificateError(registry, dir, code === "EACCES" ? "permission denied" : code === "ENOTDIR" ? "not a directory" : (code ?? "unreadable").toLowerCase(), { cause: e });
      names = [];
    }
    const cas: string[] = [];
    for (const n of names) {
      const full = path.join(dir, n);
      if (n.endsWith(".crt")) cas.push(readPem(registry, full, "certificate"));
      else if (n.endsWith(".cert")) {
        const key = n.slice(0, -".cert".length) + ".key";
        if (!names.includes(key)) throw new CertificateError(registry, full, `missing key ${key} for this client certificate (CA certificates should use the extension .crt)`);
        if (tls.cert === undefined) { tls.cert = readPem(registry, full, "certificate"); tls.key = readPem(registry, path.join(dir, key), "key"); }
        else log.debug(`registry ${registry}: client certificate ${full} not used (${dir} holds several; the first is presented)`);
      } else if (n.endsWith(".key")) {
        const cert = n.slice(0, -".key".length) + ".cert";
        if (!names.includes(cert)) throw new CertificateError(registry, full, `missing client certificate ${cert} for this key`);
      }
    }
    if (cas.length) tls.ca = [...systemCertificates(ctx.env), ...cas];
  }
  const plainHttp = !verify;
  if (plainHttp && !isLoopback(registry) && !warned.has(registry) && warned.add(registry))
    log.warn(`registry ${registry}: --tls-verify=false: certificates are not checked and plain HTTP is allowed to a host that is not loopback`);
  return dir !== undefined ? { tls, plainHttp, certDir: dir } : { tls, plainHttp };
}
