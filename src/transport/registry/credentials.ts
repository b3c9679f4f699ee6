/**
 * Where a registry's credentials come from, in containers/image's order
 * (pkg/docker/config/config.go, containers-auth.json(5)):
 *
 *  1. `opts.credentials` (`--creds`, `--src-creds`, `--dest-creds`): wins over every file. An
 *     empty one (no user, no password, no identity token: `--no-creds`) means anonymous.
 *  2. The auth files, each read in turn until one gives credentials:
 *     - the primary file: `opts.authFile` (`--authfile`), else `$REGISTRY_AUTH_FILE` (skopeo's
 *       default for `--authfile`), else `${XDG_RUNTIME_DIR}/containers/auth.json` (a
 *       `$XDG_RUNTIME_DIR` that does not exist is warned about and skipped), else
 *       `/run/containers/UID/auth.json`;
 *     - `${XDG_CONFIG_HOME:-$HOME/.config}/containers/auth.json`;
 *     - `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`;
 *     - `$HOME/.dockercfg` (the legacy format: the `auths` map at the top level).
 *  In one file: `credHelpers[HOST]` first (a `docker-credential-NAME` program); then `auths`,
 *  keyed by `HOST/REPO/…` namespaces (longest first, when the repository is known), `HOST`, and
 *  last any key that normalises to the host (`https://HOST`, `http://HOST/v1/`, and
 *  `https://index.docker.io/v1/`, `registry-1.docker.io` for docker.io); an entry's `auth` is
 *  base64 `user:password`, `identitytoken` an OAuth refresh token; last `credsStore` (Docker's
 *  default helper, used by `docker login` with an empty `auths` entry). An entry counts only
 *  with a user and a password, or an identity token; else the search goes on.
 *
 * A helper is run as `docker-credential-NAME get` with the server (the registry as given) on
 * stdin, and answers `{"Username","Secret"}` (username `<token>`: Secret is an identity token).
 * A helper that is not on PATH is warned about (one line naming it) and skipped; one that says
 * "credentials not found" gives none; any other failure is an error naming the helper and its
 * exit status. Malformed files are one line naming the file.
 *
 * Secrets never appear in a message: errors name the registry, the file or the helper, never a
 * value read from them (not even a JSON parser's excerpt).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as os from "node:os";
import { BociError, UsageError } from "../../errors";
import { log } from "../../util/log";
import type { Credentials, RegistryOptions } from "./types";

/** Environment variables the search reads (process.env by default; tests pass their own). */
export type CredentialEnv = Record<string, string | undefined>;

/** Where resolveCredentials looks, besides `opts`. */
export interface CredentialContext {
  /** the repository (`library/alpine`): `auths` keys `HOST/library/alpine`, `HOST/library` match first */
  repository?: string;
  /** default: process.env */
  env?: CredentialEnv;
}

/** One auth file in the search order. */
export interface AuthFilePath {
  path: string;
  /** `.dockercfg`: the `auths` map is the whole file */
  legacy: boolean;
}

/** The error every malformed or unreadable auth file gives (exit 1). */
export class AuthFileError extends BociError {
  constructor(file: string, what: string, opts: { cause?: unknown } = {}) {
    super(`auth file ${file}: ${what}`, { code: "EAUTHFILE", ...opts });
  }
}

/** A credential helper that failed (exit 1). */
export class CredentialHelperError extends BociError {
  constructor(registry: string, helper: string, what: string) {
    super(`registry ${registry}: credential helper docker-credential-${helper} ${what}`, { code: "ECREDHELPER" });
  }
}

/**
 * `--creds USER[:PASSWORD]` as skopeo 1.9 splits it (parseCreds): at the first `:`; no `:` is a
 * user with an empty password (skopeo 1.9.3 does not prompt for one, on a terminal or not).
 * UsageError (exit 2) for an empty value or an empty user. The message names the flag, never
 * the value.
 */
export function parseCredsFlag(value: string, flag = "creds"): Credentials {
  if (value === "") throw new UsageError(`--${flag}: credentials can't be empty`);
  const colon = value.indexOf(":");
  if (colon < 0) return { username: value, password: "" };
  if (colon === 0) throw new UsageError(`--${flag}: username can't be empty`);
  return { username: value.slice(0, colon), password: value.slice(colon + 1) };
}

/** The credentials `--no-creds` stands for: anonymous, and no file is read. */
export const ANONYMOUS: Credentials = Object.freeze({ username: "", password: "" }) as Credentials;

function isEmpty(c: Credentials): boolean {
  return c.username === "" && c.password === "" && !c.identityToken;
}

function usable(c: Credentials | null): c is Credentials {
  return c !== null && ((c.username !== "" && c.password !== "") || !!c.identityToken);
}

/** Warnings given once per process (a copy asks for two registries, each maybe more than once). */
const warnedRuntimeDir = new Set<string>();
const warnedHelpers = new Set<string>();

function homeOf(env: CredentialEnv): string {
  return env.HOME || os.homedir();
}

/**
 * The auth files resolveCredentials reads, in order (duplicates removed; files that do not exist
 * are listed too and skipped when read). Warns when `$XDG_RUNTIME_DIR` names no directory.
 */
export function authFilePaths(opts: Pick<RegistryOptions, "authFile">, env: CredentialEnv = process.env): AuthFilePath[] {
  const out: AuthFilePath[] = [];
  const home = homeOf(env);
  const primary = opts.authFile || env.REGISTRY_AUTH_FILE;
  if (primary) out.push({ path: primary, legacy: false });
  else if (env.XDG_RUNTIME_DIR) {
    if (fs.existsSync(env.XDG_RUNTIME_DIR)) out.push({ path: path.join(env.XDG_RUNTIME_DIR, "containers/auth.json"), legacy: false });
    else if (!warnedRuntimeDir.has(env.XDG_RUNTIME_DIR) && warnedRuntimeDir.add(env.XDG_RUNTIME_DIR)) log.warn(`$XDG_RUNTIME_DIR ${env.XDG_RUNTIME_DIR} does not exist: its containers/auth.json is not read`);
  } else if (typeof process.getuid === "function") {
    out.push({ path: `/run/containers/${process.getuid()}/auth.json`, legacy: false });
  }
  out.push({ path: path.join(env.XDG_CONFIG_HOME || path.join(home, ".config"), "containers/auth.json"), legacy: false });
  out.push({ path: env.DOCKER_CONFIG ? path.join(env.DOCKER_CONFIG, "config.json") : path.join(home, ".docker/config.json"), legacy: false });
  out.push({ path: path.join(home, ".dockercfg"), legacy: true });
  const seen = new Set<string>();
  return out.filter((p) => (seen.has(p.path) ? false : (seen.add(p.path), true)));
}

/** A registry key as Docker wrote it (`https://host/v1/`) → the host; docker.io's names → index.docker.io. */
export function normalizeAuthKey(key: string): string {
  const host = key.replace(/^https?:\/\//, "").split("/", 1)[0]!;
  return host === "registry-1.docker.io" || host === "docker.io" ? "index.docker.io" : host;
}

interface AuthEntry { auth?: unknown; identitytoken?: unknown }
interface AuthFile {
  auths: Record<string, AuthEntry>;
  credHelpers: Record<string, string>;
  credsStore?: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Read one auth file; null when it does not exist. Throws AuthFileError for anything else wrong. */
export function readAuthFile(p: AuthFilePath): AuthFile | null {
  let text: string;
  try {
    text = fs.readFileSync(p.path, "utf8");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOENT" || err.code === "ENOTDIR") return null;
    const why = err.code === "EACCES" ? "permission denied" : err.code === "EISDIR" ? "is a directory" : (err.code ?? "unreadable").toLowerCase();
    throw new AuthFileError(p.path, why, { cause: e });
  }
  let raw: unknown;
  // The parser's message quotes the text around the error: it may be a secret, so it is dropped.
  try { raw = JSON.parse(text); } catch { throw new AuthFileError(p.path, text.trim() === "" ? "empty file, not JSON" : "invalid JSON"); }
  if (!isObject(raw)) throw new AuthFileError(p.path, "not a JSON object");
  const auths = p.legacy ? raw : raw.auths ?? {};
  if (!isObject(auths)) throw new AuthFileError(p.path, `"auths" is not an object`);
  for (const [k, v] of Object.entries(auths)) if (!isObject(v)) throw new AuthFileError(p.path, `auths entry ${JSON.stringify(k)} is not an object`);
  if (p.legacy) return { auths: auths as Record<string, AuthEntry>, credHelpers: {} };
  const helpers = raw.credHelpers ?? {};
  if (!isObject(helpers) || Object.values(helpers).some((h) => typeof h !== "string")) throw new AuthFileError(p.path, `"credHelpers" is not an object of helper names`);
  const store = raw.credsStore;
  if (store !== undefined && typeof store !== "string") throw new AuthFileError(p.path, `"credsStore" is not a helper name`);
  return { auths: auths as Record<string, AuthEntry>, credHelpers: helpers as Record<string, string>, credsStore: store || undefined };
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** An `auths` entry's credentials (null when it has none usable: as Docker, an `auth` without `:` is skipped). */
function decodeEntry(file: string, key: string, e: AuthEntry): Credentials | null {
  const token = typeof e.identitytoken === "string" && e.identitytoken !== "" ? e.identitytoken : undefined;
  let username = "";
  let password = "";
  if (e.auth !== undefined && e.auth !== "") {
    if (typeof e.auth !== "string" || !BASE64.test(e.auth)) throw new AuthFileError(file, `auths entry ${JSON.stringify(key)}: "auth" is not base64`);
    const decoded = Buffer.from(e.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) { if (!token) return null; } else {
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1).replace(/^\0+|\0+$/g, "");
    }
  }
  const c: Credentials = { username, password };
  if (token) c.identityToken = token;
  return c;
}

const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const HELPER_TIMEOUT_MS = 60_000;

/**
 * Ask `docker-credential-NAME get` for `registry`'s credentials. null when the helper is not on
 * PATH (warned) or has none for the registry. CredentialHelperError when it fails otherwise.
 */
export async function credentialsFromHelper(helper: string, registry: string, env: CredentialEnv = process.env): Promise<Credentials | null> {
  if (!HELPER_NAME.test(helper)) throw new CredentialHelperError(registry, helper.replace(/[^\x21-\x7e]/g, "?"), "is not a valid helper name");
  const program = `docker-credential-${helper}`;
  const found = Bun.which(program, { PATH: env.PATH ?? "" });
  if (!found) {
    if (!warnedHelpers.has(program) && warnedHelpers.add(program)) log.warn(`registry ${registry}: credential helper ${program} is not on PATH; going on without it`);
    return null;
  }
  let proc;
  try {
    proc = Bun.spawn([found, "get"], {
      stdin: new TextEncoder().encode(registry), stdout: "pipe", stderr: "pipe",
      env: env as Record<string, string>, timeout: HELPER_TIMEOUT_MS, killSignal: "SIGKILL",
    });
  } catch (e) {
    throw new CredentialHelperError(registry, helper, `could not be run: ${(e as NodeJS.ErrnoException).code ?? "error"}`);
  }
  // Output is small; bounded anyway (a helper is not an image).
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited, new Response(proc.stderr).text()]);
  if (out.length > 1 << 20) throw new CredentialHelperError(registry, helper, "answered more than 1 MiB");
  if (code !== 0) {
    // docker-credential-helpers' "credentials not found in native keychain": none, not an error.
    if (/credentials not found/i.test(out)) return null;
    if (proc.signalCode) throw new CredentialHelperError(registry, helper, `was killed (${proc.signalCode})`);
    throw new CredentialHelperError(registry, helper, `failed (exit status ${code})`);
  }
  let parsed: unknown;
  try { parsed = JSON.parse(out); } catch { throw new CredentialHelperError(registry, helper, "answered something that is not JSON"); }
  if (!isObject(parsed) || typeof parsed.Secret !== "string" || (parsed.Username !== undefined && typeof parsed.Username !== "string"))
    throw new CredentialHelperError(registry, helper, `answered JSON without a "Username" and "Secret"`);
  const username = (parsed.Username as string | undefined) ?? "";
  if (username === "<token>") return { username: "", password: "", identityToken: parsed.Secret };
  return { username, password: parsed.Secret };
}

/** The keys an auths map is searched under for `registry` and `repository`, most specific first. */
function authKeys(registry: string, repository: string | undefined, legacy: boolean): string[] {
  const keys: string[] = [];
  if (!legacy && repository) {
    let name = `${registry}/${repository}`;
    for (;;) {
      keys.push(name);
      const slash = name.lastIndexOf("/");
      if (slash <= registry.length - 1) break;
      name = name.slice(0, slash);
    }
  } else keys.push(registry);
  return keys;
}

/** One file's credentials for the registry (null: none there). */
async function fromFile(p: AuthFilePath, registry: string, ctx: CredentialContext, env: CredentialEnv): Promise<Credentials | null> {
  const file = readAuthFile(p);
  if (!file) return null;
  const norm = normalizeAuthKey(registry);
  const helper = file.credHelpers[registry] ?? Object.entries(file.credHelpers).find(([k]) => normalizeAuthKey(k) === norm)?.[1];
  if (helper !== undefined) return credentialsFromHelper(helper, registry, env);
  for (const key of authKeys(registry, ctx.repository, p.legacy)) {
    const e = file.auths[key];
    if (e) { const c = decodeEntry(p.path, key, e); if (usable(c)) return c; }
  }
  for (const [key, e] of Object.entries(file.auths)) {
    if (normalizeAuthKey(key) !== norm) continue;
    const c = decodeEntry(p.path, key, e);
    if (usable(c)) return c;
  }
  if (file.credsStore) return credentialsFromHelper(file.credsStore, registry, env);
  return null;
}

/**
 * The credentials for `registry` (`HOST[:PORT]` as the reference names it, `docker.io` for
 * Docker Hub), or null for anonymous access; see the header for the order. Reads files and may
 * run a credential helper; never logs a secret. Throws AuthFileError for a malformed or
 * unreadable file, CredentialHelperError for a failing helper (both exit 1), before any
 * credentials from a later file are used.
 */
export async function resolveCredentials(registry: string, opts: RegistryOptions, ctx: CredentialContext = {}): Promise<Credentials | null> {
  if (opts.credentials) return isEmpty(opts.credentials) ? null : opts.credentials;
  const env = ctx.env ?? process.env;
  for (const p of authFilePaths(opts, env)) {
    const c = await fromFile(p, registry, ctx, env);
    if (usable(c)) {
      log.debug(`registry ${registry}: credentials from ${p.path}`);
      return c;
    }
  }
  log.debug(`registry ${registry}: no credentials found, anonymous access`);
  return null;
}
