/**
 * RegistryClient: the OCI distribution API (spec 1.1) for one repository of one registry, with
 * auth (auth.ts), TLS (tls.ts), credentials (credentials.ts), retries with backoff and resumed
 * downloads and uploads (http.ts).
 *
 * - The first request pings `GET /v2/` (once per client): over HTTPS, and when `tlsFor` allows
 *   plain HTTP (`--tls-verify=false`) over HTTP if HTTPS cannot connect, as containers/image does
 *   (one warning line when that host is not loopback).
 * - Every message names the registry and repository (`HOST[:PORT]/REPO: what: why`) and goes
 *   through the client's redaction: no password, Basic value or token ever reaches it.
 * - Blobs stream: a download yields the body as it arrives (resumed by `Range` after a drop), an
 *   upload sends the source's pieces as they come (one PUT up to 8 MiB, else 8 MiB PATCH chunks,
 *   each with its Content-Length; resumed from the registry's `Range` after a failed chunk).
 *
 * Spec: https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md
 */
import { BociError, InvalidError, NotFoundError, UnsupportedError } from "../../errors";
import { isDigest, splitDigest } from "../../image/digest";
import { MediaType } from "../../image/media-types";
import type { Descriptor } from "../../image/types";
import { log } from "../../util/log";
import { AuthError, Authenticator, parseChallenges } from "./auth";
import { resolveCredentials } from "./credentials";
import {
  backoffMs, DEFAULT_RETRIES, DEFAULT_RETRY_DELAY_MS, describeFailure, isRetryableStatus, readBody, readLimited,
  retryAfterMs, send, sleep, stallMsFromEnv, stripTokens, TransientError, type HttpRequest, type HttpSettings,
} from "./http";
import { tlsFor } from "./tls";
import type { RegistryOptions } from "./types";

/** The largest manifest accepted (the distribution spec's 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 << 20;
/**
 * Blobs up to this size go in one PUT; larger ones in PATCH chunks of this size. Large: every
 * body streams from its source (no chunk is held in memory), each request costs a round trip and
 * a registry-side commit, and distribution 2.8 cannot resume a cut PATCH anyway (the session is
 * gone), so small chunks only cost time (a 256 MiB layer to a loopback registry: 8 MiB chunks
 * 4.9-7.5 s, one streamed PUT 2.1 s; skopeo streams one PATCH, 1.9-3.8 s).
 */
export const DEFAULT_CHUNK_SIZE = 512 << 20;

/** The manifest types asked for (Accept) and understood. */
export const MANIFEST_MEDIA_TYPES = [
  MediaType.manifest, MediaType.index, MediaType.dockerManifest, MediaType.dockerManifestList,
] as const;

/** Knobs beyond RegistryOptions, for tests and benchmarks. */
export interface ClientTuning {
  /** upload chunk size and monolithic limit (default 8 MiB, or $BOCI_REGISTRY_CHUNK_SIZE) */
  chunkSize?: number;
  /** no byte for this long and a connection counts as dropped (default 60 s, or $BOCI_REGISTRY_STALL_MS) */
  stallMs?: number;
}

const GENERIC_CONTENT_TYPES = new Set(["", "application/json", "text/plain", "application/octet-stream", "binary/octet-stream"]);
const SCHEMA1_TYPES = new Set<string>([MediaType.dockerSchema1, MediaType.dockerSchema1Signed]);

function chunkSizeFromEnv(): number {
  const v = Number(process.env.BOCI_REGISTRY_CHUNK_SIZE);
  return Number.isInteger(v) && v > 0 ? v : DEFAULT_CHUNK_SIZE;
}

/**
 * The host the API of `registry` is served from: Docker Hub's name (`docker.io`, as references
 * are normalised) serves it at `registry-1.docker.io`, as containers/image and Docker know; any
 * other registry at its own name. Credentials, certificates and messages keep the name as given.
 */
export function apiHost(registry: string): string {
  return registry === "docker.io" || registry === "index.docker.io" ? "registry-1.docker.io" : registry;
}

function hashOf(alg: string, bytes: Uint8Array, where = ""): string {
  if (alg !== "sha256" && alg !== "sha512") throw new UnsupportedError(`${where ? where + ": " : ""}unsupported digest algorithm ${alg}`);
  const h = new Bun.CryptoHasher(alg);
  h.update(bytes);
  return `${alg}:${h.digest("hex")}`;
}

function contentType(res: Response): string {
  return (res.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
}

function withQuery(url: string, key: string, value: string): string {
  return `${url}${url.includes("?") ? "&" : "?"}${key}=${encodeURIComponent(value)}`;
}

/** `Link: <url>; rel="next"` → the url, or null. */
export function nextLink(link: string | null): string | null {
  if (!link) return null;
  for (const part of link.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>(.*)$/.exec(part);
    if (m && /;\s*rel="?next"?/i.test(m[2]!)) return m[1]!;
  }
  return null;
}

/** Signals that an upload session is lost and must start again. */
class RestartUpload extends Error {}

/** An upload's source from some offset: pieces of at most a given size, the rest kept for later. */
class Source {
  private readonly it: AsyncIterator<Buffer>;
  private rest: Buffer | null = null;
  private done = false;
  /** the absolute offset of the next byte */
  at: number;
  /** what made a request body fail (the source's own error, or its size being wrong) */
  error: unknown = undefined;

  constructor(open: (offset: number) => AsyncIterable<Buffer>, offset: number) {
    this.it = open(offset)[Symbol.asyncIterator]();
    this.at = offset;
  }

  /** The next piece, at most `max` bytes, or null at the end. */
  async next(max: number): Promise<Buffer | null> {
    let b = this.rest;
    this.rest = null;
    while (!b || b.length === 0) {
      if (this.done) return null;
      const r = await this.it.next();
      if (r.done) { this.done = true; return null; }
      b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
    }
    if (b.length > max) { this.rest = b.subarray(max); b = b.subarray(0, max); }
    this.at += b.length;
    return b;
  }

  /** Whether the source has no byte left (reads one more piece to know). */
  async ended(): Promise<boolean> {
    const b = await this.next(Number.MAX_SAFE_INTEGER);
    if (b) { this.rest = b; this.at -= b.length; return false; }
    return true;
  }

  async close(): Promise<void> {
    if (!this.done) { this.done = true; await this.it.return?.(); }
  }
}

/**
 * The distribution API of one repository. Cheap to construct (nothing happens until the first
 * call); safe to use from several concurrent tasks (one ping, one token fetch per scope).
 * Throws BociError subclasses only: NotFoundError (3) for an unknown manifest or repository,
 * InvalidError (4) for a digest, size or media-type mismatch, UnsupportedError (6) for a schema-1
 * manifest, AuthError (1) for "authentication required"/"denied", BociError (1) for network
 * failures once retries are spent.
 */
export class RegistryClient {
  readonly registry: string;
  readonly repository: string;
  private readonly opts: RegistryOptions;
  private readonly actions: ("pull" | "push")[];
  private readonly chunkSize: number;
  private readonly stallMs: number;
  private readonly secrets = new Set<string>();
  private readonly auth: Authenticator;
  private http: HttpSettings | null = null;
  private plainHttp = false;
  private base: Promise<string> | null = null;
  private readonly where: string;

  /**
   * `registry` is HOST[:PORT] as the reference names it, `repository` its path (`library/alpine`);
   * `actions` the token scope asked for (`pull`, `push`). `tuning` is for tests and benchmarks.
   */
  constructor(registry: string, repository: string, opts: RegistryOptions, actions: ("pull" | "push")[], tuning: ClientTuning = {}) {
    this.registry = registry;
    this.repository = repository;
    this.opts = opts;
    this.actions = actions.length ? [...new Set(actions)] : ["pull"];
    this.chunkSize = tuning.chunkSize ?? chunkSizeFromEnv();
    this.stallMs = tuning.stallMs ?? stallMsFromEnv();
    this.where = `${registry}/${repository}`;
    this.auth = new Authenticator({
      where: this.where,
      http: () => this.settings(),
      credentials: () => resolveCredentials(registry, opts),
      addSecret: (s) => { if (s && s.length >= 3) this.secrets.add(s); },
    });
  }

  /** Remove every secret this client knows of (and anything shaped like a token) from a text. */
  redact(s: string): string {
    let out = s;
    for (const sec of [...this.secrets].sort((a, b) => b.length - a.length)) out = out.split(sec).join("<redacted>");
    return stripTokens(out);
  }

  private settings(): HttpSettings {
    if (!this.http) {
      const { tls, plainHttp } = tlsFor(this.registry, this.opts);
      this.plainHttp = plainHttp;
      this.http = {
        tls,
        retries: this.opts.retries ?? DEFAULT_RETRIES,
        retryDelayMs: this.opts.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS,
        stallMs: this.stallMs,
        redact: (s) => this.redact(s),
      };
    }
    return this.http;
  }

  /** scopes a 401 challenge asked for besides ours (kept for every later request) */
  private readonly learned = new Set<string>();

  private get scopes(): string[] {
    return [`repository:${this.repository}:${this.actions.join(",")}`, ...this.learned];
  }

  private fail(what: string, why: string, cls: "general" | "notFound" | "invalid" = "general", cause?: unknown): BociError {
    const msg = this.redact(`${this.where}: ${what}: ${why}`);
    if (cls === "notFound") return new NotFoundError(msg, { cause });
    if (cls === "invalid") return new InvalidError(msg, { cause });
    return new BociError(msg, { code: "EREGISTRY", cause });
  }

  /** Retries spent on a transient failure: one line naming what failed. */
  private retried<T>(what: string, fn: (n: number) => Promise<T>): Promise<T> {
    const h = this.settings();
    return (async () => {
      for (let n = 0; ; n++) {
        try {
          return await fn(n);
        } catch (e) {
          if (e instanceof BociError && e.code === "ETLS") throw this.fail(what, `${e.message} (see --cert-dir and --tls-verify)`, "general", e);
          if (!(e instanceof TransientError)) throw e;
          if (n >= h.retries) throw this.fail(what, `${this.redact(e.message)}${n ? ` (after ${n + 1} attempts)` : ""}`, "general", e);
          const d = backoffMs(n + 1, h.retryDelayMs, e.retryAfterMs);
          log.debug(`${this.where}: ${what}: ${this.redact(e.message)}; retry ${n + 1} in ${Math.round(d)} ms`);
          await sleep(d);
        }
      }
    })();
  }

  /** The base URL (`https://HOST[:PORT]` or `http://…`), after the one ping of GET /v2/. */
  private ping(): Promise<string> {
    if (!this.base) {
      this.base = this.doPing();
      this.base.catch(() => { this.base = null; });
    }
    return this.base;
  }

  private async doPing(): Promise<string> {
    const h = this.settings();
    const plainHttp = this.plainHttp;
    const httpsBase = `https://${apiHost(this.registry)}`;
    const tryOnce = async (base: string): Promise<void> => {
      const { res } = await send({ method: "GET", url: `${base}/v2/` }, h);
      if (res.status === 200) { await res.body?.cancel().catch(() => {}); return; }
      if (res.status === 401) {
        const header = res.headers.get("www-authenticate");
        await res.body?.cancel().catch(() => {});
        this.auth.useChallenge(header);
        return;
      }
      const why = await describeFailure(res, h);
      if (isRetryableStatus(res.status)) throw new TransientError(`ping ${base}/v2/: ${why}`, { status: res.status, retryAfterMs: retryAfterMs(res.headers.get("retry-after")) });
      throw this.fail("ping /v2/", `${why} (not a registry?)`);
    };
    if (!plainHttp) {
      await this.retried("ping /v2/", () => tryOnce(httpsBase));
      return httpsBase;
    }
    // Plain HTTP allowed: HTTPS first; HTTP only when HTTPS gets no HTTP answer at all.
    let first: unknown;
    try {
      await tryOnce(httpsBase);
      return httpsBase;
    } catch (e) {
      first = e;
    }
    if (first instanceof TransientError && first.status !== undefined) {
      // HTTPS answered (with a retryable status): keep to it
      await this.retried("ping /v2/", (n) => (n === 0 ? Promise.reject(first) : tryOnce(httpsBase)));
      return httpsBase;
    }
    if (!(first instanceof TransientError) && !(first instanceof BociError && first.code === "ETLS")) throw first;
    log.debug(`${this.where}: https ping failed (${this.redact((first as Error).message)}); trying http`);
    const httpBase = `http://${apiHost(this.registry)}`;
    await this.retried("ping /v2/", () => tryOnce(httpBase));
    // tlsFor has warned (once, when this client asked it) about plain HTTP to a host that is not loopback.
    log.debug(`${this.where}: speaking plain http`);
    return httpBase;
  }

  /**
   * One request with auth: the Authorization header for `scopes` (when the URL is on the
   * registry's host), a 401 answered by a new challenge and one more try, a second 401
   * "authentication required", a 403 "denied". A retryable status becomes a TransientError; any
   * other status is the caller's.
   */
  private async attempt(what: string, req: Omit<HttpRequest, "url"> & { path?: string; url?: string }, scopes: string[] = this.scopes): Promise<{ res: Response; url: string }> {
    const base = await this.ping();
    const h = this.settings();
    const url = req.url ?? `${base}${req.path}`;
    const sameHost = new URL(url).origin === new URL(base).origin;
    let sc = scopes;
    for (let authTry = 0; ; authTry++) {
      const headers: Record<string, string> = { ...req.headers };
      const authz = sameHost ? await this.auth.authorization(sc) : undefined;
      if (authz) headers.authorization = authz;
      const out = await send({ ...req, url, headers }, h);
      const { res } = out;
      if (res.status === 401) {
        const header = res.headers.get("www-authenticate");
        const why = await describeFailure(res, h);
        if (req.body instanceof ReadableStream && sameHost && authTry === 0) {
          // the body is spent: the caller resumes (a new token is fetched on the next request)
          const extra = this.auth.useChallenge(header);
          if (authz) this.auth.invalidate(sc);
          if (extra) this.learned.add(extra);
          throw new TransientError(`authorization refused mid-upload (${why})`);
        }
        if (authTry > 0 || !sameHost) {
          // a token that authenticates but does not grant the scope: the registry's insufficient_scope
          const scope = parseChallenges(header ?? "").some((c) => c.params.error === "insufficient_scope");
          if (scope && authz && this.auth.hasCredentials) throw new AuthError(this.redact(`${this.where}: ${what}: denied (insufficient scope; ${why})`), { denied: true });
          throw new AuthError(this.redact(`${this.where}: ${what}: authentication required (${why})`));
        }
        const extra = this.auth.useChallenge(header);
        if (authz) this.auth.invalidate(sc);
        if (extra && !sc.includes(extra)) {
          sc = [...sc, extra];
          this.learned.add(extra);
        }
        continue;
      }
      if (res.status === 403) {
        const why = await describeFailure(res, h);
        throw new AuthError(this.redact(`${this.where}: ${what}: denied (${why})`), { denied: true });
      }
      if (isRetryableStatus(res.status)) {
        const why = await describeFailure(res, h);
        throw new TransientError(why, { status: res.status, retryAfterMs: retryAfterMs(res.headers.get("retry-after")) });
      }
      return out;
    }
  }

  private path(kind: "manifests" | "blobs" | "tags", rest: string): string {
    return `/v2/${this.repository}/${kind}/${rest}`;
  }

  /**
   * The manifest `ref` (a tag or a digest) names: its exact bytes, media type (the body's
   * `mediaType`, else the Content-Type) and digest. By digest the bytes are verified against it;
   * by tag the digest is the bytes' sha256 (checked against `Docker-Content-Digest` when the
   * registry sends one). NotFoundError when absent; InvalidError for a mismatch, a body over
   * 4 MiB or a `mediaType` that contradicts the Content-Type; UnsupportedError for schema 1.
   */
  async getManifest(ref: string): Promise<{ bytes: Buffer; mediaType: string; digest: string }> {
    const what = `get manifest ${ref}`;
    return this.retried(what, async () => {
      const { res } = await this.attempt(what, { method: "GET", path: this.path("manifests", ref), headers: { accept: MANIFEST_MEDIA_TYPES.join(", ") } });
      if (res.status === 404) throw this.fail(what, await describeFailure(res, this.settings()), "notFound");
      if (res.status !== 200) throw this.fail(what, await describeFailure(res, this.settings()));
      const bytes = await readLimited(res, MAX_MANIFEST_BYTES, this.settings(), () => this.fail(what, `manifest larger than ${MAX_MANIFEST_BYTES} bytes`, "invalid"));
      const mediaType = this.manifestMediaType(what, bytes, contentType(res));
      let digest: string;
      if (isDigest(ref)) {
        const [alg] = splitDigest(ref);
        digest = hashOf(alg, bytes, `${this.where}: ${what}`);
        if (digest !== ref) throw this.fail(what, `digest mismatch: the registry sent ${digest}`, "invalid");
      } else {
        digest = hashOf("sha256", bytes);
        const claimed = res.headers.get("docker-content-digest");
        if (claimed && isDigest(claimed)) {
          const [alg] = splitDigest(claimed);
          const mine = alg === "sha256" ? digest : hashOf(alg, bytes, `${this.where}: ${what}`);
          if (mine !== claimed) throw this.fail(what, `digest mismatch: Docker-Content-Digest ${claimed}, the bytes' digest ${mine}`, "invalid");
        }
      }
      return { bytes, mediaType, digest };
    });
  }

  private manifestMediaType(what: string, bytes: Buffer, ct: string): string {
    if (SCHEMA1_TYPES.has(ct)) throw new UnsupportedError(this.redact(`${this.where}: ${what}: docker schema 1 manifests are not supported`));
    let j: { schemaVersion?: unknown; mediaType?: unknown; manifests?: unknown; config?: unknown; layers?: unknown };
    try {
      j = JSON.parse(bytes.toString("utf8"));
    } catch {
      throw this.fail(what, "manifest is not json", "invalid");
    }
    if (j === null || typeof j !== "object" || Array.isArray(j)) throw this.fail(what, "manifest is not a json object", "invalid");
    if (j.schemaVersion === 1) throw new UnsupportedError(this.redact(`${this.where}: ${what}: docker schema 1 manifests are not supported`));
    const body = typeof j.mediaType === "string" ? j.mediaType : undefined;
    const generic = GENERIC_CONTENT_TYPES.has(ct);
    if (body !== undefined && !generic && body !== ct) throw this.fail(what, `manifest mediaType ${body} differs from its Content-Type ${ct}`, "invalid");
    if (body !== undefined) return body;
    if (!generic) return ct;
    if (Array.isArray(j.manifests)) return MediaType.index;
    if (j.config && Array.isArray(j.layers)) return MediaType.manifest;
    throw this.fail(what, "manifest has no media type", "invalid");
  }

  /**
   * HEAD of a manifest: media type, digest and size, or null when the registry does not have
   * it. A registry that leaves out the digest, size or a specific Content-Type is asked with a
   * GET instead.
   */
  async headManifest(ref: string): Promise<{ mediaType: string; digest: string; size: number } | null> {
    const what = `head manifest ${ref}`;
    const r = await this.retried(what, async () => {
      const { res } = await this.attempt(what, { method: "HEAD", path: this.path("manifests", ref), headers: { accept: MANIFEST_MEDIA_TYPES.join(", ") } });
      await res.body?.cancel().catch(() => {});
      if (res.status === 404) return null;
      if (res.status !== 200) throw this.fail(what, `${res.status}`);
      const ct = contentType(res);
      if (SCHEMA1_TYPES.has(ct)) throw new UnsupportedError(this.redact(`${this.where}: ${what}: docker schema 1 manifests are not supported`));
      const digest = res.headers.get("docker-content-digest") ?? (isDigest(ref) ? ref : null);
      const size = Number(res.headers.get("content-length") ?? NaN);
      if (!digest || !isDigest(digest) || !Number.isSafeInteger(size) || GENERIC_CONTENT_TYPES.has(ct)) return "get" as const;
      if (isDigest(ref) && digest !== ref) throw this.fail(what, `digest mismatch: the registry names ${digest}`, "invalid");
      return { mediaType: ct, digest, size };
    });
    if (r !== "get") return r;
    try {
      const m = await this.getManifest(ref);
      return { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
    } catch (e) {
      if (e instanceof NotFoundError) return null;
      throw e;
    }
  }

  /** The size of a blob the registry has (HEAD), or null when it has not. */
  async headBlob(digest: string): Promise<number | null> {
    const what = `head blob ${digest}`;
    return this.retried(what, async () => {
      const { res } = await this.attempt(what, { method: "HEAD", path: this.path("blobs", digest) });
      await res.body?.cancel().catch(() => {});
      if (res.status === 404) return null;
      if (res.status !== 200) throw this.fail(what, `${res.status}`);
      const size = Number(res.headers.get("content-length") ?? NaN);
      if (!Number.isSafeInteger(size) || size < 0) throw this.fail(what, "no Content-Length in the reply");
      return size;
    });
  }

  /**
   * The raw bytes of a blob from `offset` (default 0) on; `size`, when given, is the blob's whole
   * size (reading stops there; a registry sending more is an InvalidError). Nothing is verified:
   * the caller hashes. A connection that drops or stalls is resumed with `Range: bytes=N-` from
   * the next byte not yet yielded (a registry that ignores Range and answers 200 has its first N
   * bytes skipped), `retries` times without progress at most. Redirects (storage back ends) are
   * followed without the Authorization header when the host changes. NotFoundError when the
   * registry has no such blob. Stopping the iteration early closes the connection.
   */
  async *getBlob(digest: string, opts: { offset?: number; size?: number } = {}): AsyncGenerator<Buffer> {
    const what = `get blob ${digest}`;
    const h = this.settings();
    const size = opts.size;
    let pos = opts.offset ?? 0;
    if (size !== undefined && pos >= size) return;
    let failures = 0;
    for (;;) {
      let expectEnd: number | undefined;
      let skip = 0;
      let res: Response;
      try {
        const headers: Record<string, string> = { "accept-encoding": "identity" };
        if (pos > 0) headers.range = `bytes=${pos}-`;
        ({ res } = await this.attempt(what, { method: "GET", path: this.path("blobs", digest), headers }));
        if (res.status === 404) throw this.fail(what, await describeFailure(res, h), "notFound");
        if (res.status === 416 && size === undefined && pos > 0) {
          await res.body?.cancel().catch(() => {});
          return; // nothing past pos
        }
        if (res.status !== 200 && res.status !== 206) throw this.fail(what, await describeFailure(res, h));
        const cl = Number(res.headers.get("content-length") ?? NaN);
        if (res.status === 206) {
          const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(res.headers.get("content-range") ?? "");
          if (!m || Number(m[1]) !== pos) {
            await res.body?.cancel().catch(() => {});
            throw this.fail(what, `the registry answered range ${JSON.stringify(res.headers.get("content-range"))} to bytes=${pos}-`, "invalid");
          }
          expectEnd = Number(m[2]) + 1;
        } else {
          skip = pos;
          if (Number.isSafeInteger(cl)) expectEnd = cl;
        }
      } catch (e) {
        if (!(e instanceof TransientError)) throw e;
        if (failures >= h.retries) throw this.fail(what, `${e.message} (after ${failures + 1} attempts)`, "general", e);
        failures++;
        await sleep(backoffMs(failures, h.retryDelayMs, e.retryAfterMs));
        continue;
      }
      let cut: TransientError | null = null;
      const start = pos;
      try {
        for await (const c of readBody(res, h)) {
          let chunk = c;
          if (skip) {
            if (chunk.byteLength <= skip) { skip -= chunk.byteLength; continue; }
            chunk = chunk.subarray(skip);
            skip = 0;
          }
          if (size !== undefined && pos + chunk.byteLength > size) throw this.fail(what, `the registry sent more than the blob's ${size} bytes`, "invalid");
          pos += chunk.byteLength;
          yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        }
        const end = size ?? expectEnd;
        if (end !== undefined && pos < end) cut = new TransientError(`body cut short at byte ${pos} of ${end}`);
      } catch (e) {
        if (!(e instanceof TransientError)) throw e;
        cut = e;
      }
      if (!cut) return;
      if (pos > start) failures = 0;
      if (failures >= h.retries) throw this.fail(what, `${cut.message} (after ${failures + 1} attempts)`, "general", cut);
      failures++;
      log.debug(`${this.where}: ${what}: ${cut.message}; resuming at byte ${pos}`);
      await sleep(backoffMs(failures, h.retryDelayMs));
    }
  }

  /**
   * Put a blob unless the registry has it: "exists" when HEAD finds it (with another size:
   * InvalidError). With `mountFrom` (another repository of the same registry) a cross-repository
   * mount first: "mounted" when the registry does it (a 202 goes on uploading in the session it
   * opened). Else "uploaded": one PUT for a blob up to the chunk size (8 MiB), PATCH chunks then
   * the final PUT for larger ones; every body streams from the source with its Content-Length
   * (nothing held in memory). `open(offset)` must give the blob's bytes from `offset`; it is
   * called again after a failed chunk, from the offset the registry reports having (GET of the
   * upload location), and from 0 when the session is lost (a new one is started). The bytes
   * must number `desc.size` (InvalidError otherwise); an error the source throws (its own
   * verification) fails the push as it is; the registry checks the digest.
   */
  async putBlob(desc: { digest: string; size: number }, open: (offset: number) => AsyncIterable<Buffer>, opts: { mountFrom?: string } = {}): Promise<"exists" | "mounted" | "uploaded"> {
    const have = await this.headBlob(desc.digest);
    if (have !== null) {
      if (have !== desc.size) throw this.fail(`put blob ${desc.digest}`, `the registry has it with size ${have}, not ${desc.size}`, "invalid");
      return "exists";
    }
    const h = this.settings();
    let loc: string | null = null;
    const mountFrom = opts.mountFrom;
    if (mountFrom && mountFrom !== this.repository) {
      const what = `mount blob ${desc.digest} from ${mountFrom}`;
      const scopes = [...this.scopes, `repository:${mountFrom}:pull`];
      const r = await this.retried(what, async () => {
        const path = `/v2/${this.repository}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(mountFrom)}`;
        const { res, url } = await this.attempt(what, { method: "POST", path }, scopes);
        await res.body?.cancel().catch(() => {});
        if (res.status === 201) return "mounted" as const;
        const l = res.headers.get("location");
        if (res.status === 202 && l) return new URL(l, url).toString();
        return null;
      }).catch((e) => {
        if (e instanceof AuthError && e.code === "EDENIED") return null; // no pull on the other repository: upload
        throw e;
      });
      if (r === "mounted") return "mounted";
      loc = r;
    }
    const what = `put blob ${desc.digest}`;
    for (let session = 0; ; session++) {
      try {
        if (!loc) loc = await this.startUpload(what);
        if (desc.size <= this.chunkSize) await this.uploadMonolithic(what, loc, desc, open);
        else await this.uploadChunked(what, loc, desc, open);
        return "uploaded";
      } catch (e) {
        if (!(e instanceof RestartUpload)) throw e;
        if ((await this.headBlob(desc.digest)) !== null) return "uploaded";
        if (session >= h.retries) throw this.fail(what, `upload failed: ${this.redact(e.message)} (after ${session + 1} sessions)`);
        log.debug(`${this.where}: ${what}: ${this.redact(e.message)}; new upload session`);
        await sleep(backoffMs(session + 1, h.retryDelayMs));
        loc = null;
      }
    }
  }

  private minChunk = 0;

  private async startUpload(what: string): Promise<string> {
    return this.retried(what, async () => {
      const { res, url } = await this.attempt(what, { method: "POST", path: `/v2/${this.repository}/blobs/uploads/` });
      const l = res.headers.get("location");
      const min = Number(res.headers.get("oci-chunk-min-length") ?? NaN);
      if (Number.isSafeInteger(min) && min > 0) this.minChunk = min;
      if (res.status !== 202 || !l) throw this.fail(what, `start upload: ${await describeFailure(res, this.settings())}`);
      await res.body?.cancel().catch(() => {});
      return new URL(l, url).toString();
    });
  }

  /**
   * A request body of exactly `len` bytes pulled from the source `src` (pieces passed through,
   * none held beyond the one in flight). With `last`, the source must end there. A source that
   * ends early, runs past its size or fails (its own verification) errors the stream, so the
   * request is aborted, and records the error in `src.error` for the caller to throw instead of
   * the network error that follows.
   */
  private bodyFrom(what: string, src: Source, len: number, size: number, last: boolean): ReadableStream<Uint8Array> {
    let left = len;
    const fail = (c: ReadableStreamDefaultController<Uint8Array>, e: unknown) => { src.error ??= e; c.error(e); };
    return new ReadableStream<Uint8Array>({
      pull: async (c) => {
        try {
          if (left > 0) {
            const b = await src.next(left);
            if (!b) throw this.fail(what, `the source ended at byte ${src.at} of its ${size}`, "invalid");
            left -= b.length;
            c.enqueue(b);
          }
          if (left === 0) {
            if (last && !(await src.ended())) throw this.fail(what, `the source gave more than its ${size} bytes`, "invalid");
            c.close();
          }
        } catch (e) {
          fail(c, e);
        }
      },
      cancel: () => {},
    });
  }

  private async uploadMonolithic(what: string, loc: string, desc: { digest: string; size: number }, open: (offset: number) => AsyncIterable<Buffer>): Promise<void> {
    const src = new Source(open, 0);
    try {
      await this.finish(what, loc, desc.digest, src, desc.size, desc.size);
    } finally {
      await src.close();
    }
  }

  /** The final PUT ?digest= carrying the source's next `len` bytes; lost sessions throw RestartUpload. */
  private async finish(what: string, loc: string, digest: string, src: Source, len: number, size: number): Promise<void> {
    let res: Response;
    try {
      ({ res } = await this.attempt(what, {
        method: "PUT", url: withQuery(loc, "digest", digest), headers: { "content-type": "application/octet-stream" },
        body: this.bodyFrom(what, src, len, size, true), contentLength: len,
      }));
    } catch (e) {
      if (src.error) throw src.error;
      if (e instanceof TransientError) throw new RestartUpload(e.message);
      throw e;
    }
    if (src.error) throw src.error;
    if (res.status === 201 || res.status === 204 || res.status === 200) {
      await res.body?.cancel().catch(() => {});
      const claimed = res.headers.get("docker-content-digest");
      if (claimed && claimed !== digest) throw this.fail(what, `the registry stored ${claimed}`, "invalid");
      return;
    }
    const why = await describeFailure(res, this.settings());
    if (res.status === 404) throw new RestartUpload(why);
    throw this.fail(what, why, res.status === 400 ? "invalid" : "general");
  }

  private async uploadChunked(what: string, startLoc: string, desc: { digest: string; size: number }, open: (offset: number) => AsyncIterable<Buffer>): Promise<void> {
    const h = this.settings();
    const chunk = Math.max(this.chunkSize, this.minChunk);
    let loc = startLoc;
    let offset = 0;
    let src = new Source(open, 0);
    let failures = 0;
    try {
      while (offset < desc.size) {
        const len = Math.min(chunk, desc.size - offset);
        let problem: string | null = null;
        try {
          const { res, url } = await this.attempt(what, {
            method: "PATCH", url: loc, body: this.bodyFrom(what, src, len, desc.size, false), contentLength: len,
            headers: { "content-type": "application/octet-stream", "content-range": `${offset}-${offset + len - 1}` },
          });
          if (src.error) throw src.error;
          if (res.status === 202) {
            await res.body?.cancel().catch(() => {});
            const l = res.headers.get("location");
            if (l) loc = new URL(l, url).toString();
            offset += len;
            failures = 0;
            continue;
          }
          problem = await describeFailure(res, h);
          if (res.status === 404) throw new RestartUpload(problem);
          if (res.status !== 416) throw this.fail(what, `chunk at ${offset}: ${problem}`);
        } catch (e) {
          if (src.error) throw src.error;
          if (!(e instanceof TransientError)) throw e;
          problem = e.message;
        }
        // Where is the upload? Resume from the registry's Range.
        if (failures >= h.retries) throw new RestartUpload(`chunk at ${offset}: ${problem}`);
        failures++;
        await sleep(backoffMs(failures, h.retryDelayMs));
        const { at, location } = await this.uploadStatus(what, loc);
        loc = location;
        log.debug(`${this.where}: ${what}: chunk at ${offset} failed (${this.redact(problem ?? "")}); resuming at ${at}`);
        await src.close();
        offset = at;
        src = new Source(open, offset);
      }
      await this.finish(what, loc, desc.digest, src, 0, desc.size);
    } finally {
      await src.close();
    }
  }

  /** GET of an upload location: the next offset the registry expects (from `Range: 0-E`). */
  private async uploadStatus(what: string, loc: string): Promise<{ at: number; location: string }> {
    return this.retried(what, async () => {
      const { res, url } = await this.attempt(what, { method: "GET", url: loc });
      await res.body?.cancel().catch(() => {});
      if (res.status === 404) throw new RestartUpload("upload session unknown");
      if (res.status !== 204 && res.status !== 200) throw new RestartUpload(`upload status ${res.status}`);
      const l = res.headers.get("location");
      const m = /^(?:bytes=)?0-(\d+)$/.exec((res.headers.get("range") ?? "").trim());
      // distribution writes "0-0" for an empty upload too: 0 bytes is the safe reading
      const at = m ? (Number(m[1]) === 0 ? 0 : Number(m[1]) + 1) : 0;
      return { at, location: l ? new URL(l, url).toString() : loc };
    });
  }

  /**
   * Put a manifest's exact bytes under `ref` (a tag or its digest) with Content-Type
   * `mediaType`. Returns the digest the registry names (`Docker-Content-Digest`, which must equal
   * the bytes' digest; the bytes' digest when the header is absent).
   */
  async putManifest(ref: string, bytes: Buffer, mediaType: string): Promise<string> {
    return (await this.putManifestReply(ref, bytes, mediaType)).digest;
  }

  /**
   * putManifest, also returning the registry's `OCI-Subject` reply (the subject digest a
   * registry with the referrers API says it indexed; null when the header is absent, and then a
   * client that pushed a manifest with a `subject` keeps the referrers tag schema itself).
   */
  async putManifestReply(ref: string, bytes: Buffer, mediaType: string): Promise<{ digest: string; ociSubject: string | null }> {
    const what = `put manifest ${ref}`;
    const alg = isDigest(ref) ? splitDigest(ref)[0] : "sha256";
    const mine = hashOf(alg, bytes, `${this.where}: ${what}`);
    if (isDigest(ref) && mine !== ref) throw this.fail(what, `the manifest's bytes hash to ${mine}`, "invalid");
    return this.retried(what, async () => {
      const { res } = await this.attempt(what, { method: "PUT", path: this.path("manifests", ref), headers: { "content-type": mediaType }, body: bytes });
      if (res.status !== 201 && res.status !== 200 && res.status !== 202 && res.status !== 204) {
        const why = await describeFailure(res, this.settings());
        throw this.fail(what, why, res.status === 400 ? "invalid" : res.status === 404 ? "notFound" : "general");
      }
      await res.body?.cancel().catch(() => {});
      const subject = res.headers.get("oci-subject")?.trim();
      const ociSubject = subject && isDigest(subject) ? subject : null;
      const claimed = res.headers.get("docker-content-digest");
      if (claimed && isDigest(claimed)) {
        const m = splitDigest(claimed)[0] === alg ? mine : hashOf(splitDigest(claimed)[0], bytes, `${this.where}: ${what}`);
        if (m !== claimed) throw this.fail(what, `the registry names ${claimed}, the bytes' digest is ${m}`, "invalid");
        return { digest: claimed, ociSubject };
      }
      return { digest: mine, ociSubject };
    });
  }

  /**
   * The referrers API (distribution spec 1.1 "Listing Referrers"): `GET
   * /v2/<name>/referrers/<subject>[?artifactType=]`, every page followed (`Link: <…>;
   * rel="next"`), the descriptors of every page in order, each digest once. With `artifactType`
   * the registry is asked to filter; when its reply lacks `OCI-Filters-Applied: artifactType` the
   * filter is applied here. Returns null when the registry has no such API (404, or 405/501 from
   * one that does not route the path): the caller falls back to the `sha256-<hex>` tag schema.
   * InvalidError for a reply that is not an image index of descriptors.
   */
  async listReferrers(subject: string, opts: { artifactType?: string } = {}): Promise<Descriptor[] | null> {
    const what = `list referrers of ${subject}`;
    if (!isDigest(subject)) throw this.fail(what, "not a digest", "invalid");
    const base = await this.ping();
    const path = `/v2/${this.repository}/referrers/${subject}`;
    const first = `${base}${opts.artifactType !== undefined ? withQuery(path, "artifactType", opts.artifactType) : path}`;
    const out: Descriptor[] = [];
    const have = new Set<string>();
    // A 404 on a later page is a broken registry, not a missing API.
    const found = await this.followPages(what, first, 10_000, "a later page of the referrers answered 404", async (page) => {
      const r = await this.retried(what, async () => {
        const { res, url: at } = await this.attempt(what, { method: "GET", url: page, headers: { accept: MediaType.index } });
        if (res.status === 404 || res.status === 405 || res.status === 501) {
          await res.body?.cancel().catch(() => {});
          return null;
        }
        if (res.status !== 200) throw this.fail(what, await describeFailure(res, this.settings()));
        const buf = await readLimited(res, MAX_MANIFEST_BYTES, this.settings(), () => this.fail(what, `reply larger than ${MAX_MANIFEST_BYTES} bytes`, "invalid"));
        const ct = contentType(res);
        if (ct && ct !== MediaType.index && !GENERIC_CONTENT_TYPES.has(ct)) throw this.fail(what, `reply has Content-Type ${ct}, not an image index`, "invalid");
        const manifests = referrersPage(buf, (why) => this.fail(what, why, "invalid"));
        const applied = (res.headers.get("oci-filters-applied") ?? "").split(",").map((s) => s.trim());
        const next = nextLink(res.headers.get("link"));
        return { manifests, filtered: applied.includes("artifactType"), next: next ? new URL(next, at).toString() : null };
      });
      if (r === null) return null;
      for (const d of r.manifests) {
        if (opts.artifactType !== undefined && !r.filtered && d.artifactType !== opts.artifactType) continue;
        if (have.has(d.digest)) continue;
        have.add(d.digest);
        out.push(d);
      }
      return { next: r.next };
    });
    if (!found) return null;
    return out;
  }

  /**
   * Every tag of the repository, following `Link: <…>; rel="next"` pages (`pageSize` asks for
   * `?n=` per page). NotFoundError when the registry does not know the repository.
   */
  async listTags(opts: { pageSize?: number } = {}): Promise<string[]> {
    const what = "list tags";
    const base = await this.ping();
    const out: string[] = [];
    const first = `${base}/v2/${this.repository}/tags/list${opts.pageSize ? `?n=${opts.pageSize}` : ""}`;
    await this.followPages(what, first, 100_000, "a later page of the tags answered 404", async (page) => {
      const r = await this.retried(what, async () => {
        const { res, url: at } = await this.attempt(what, { method: "GET", url: page, headers: { accept: "application/json" } });
        if (res.status === 404) throw this.fail(what, await describeFailure(res, this.settings()), "notFound");
        if (res.status !== 200) throw this.fail(what, await describeFailure(res, this.settings()));
        const buf = await readLimited(res, 64 << 20, this.settings(), () => this.fail(what, "page over 64 MiB", "invalid"));
        let j: { tags?: unknown };
        try { j = JSON.parse(buf.toString("utf8")); } catch { throw this.fail(what, "reply is not json", "invalid"); }
        const tags = j?.tags ?? [];
        if (!Array.isArray(tags) || tags.some((t) => typeof t !== "string")) throw this.fail(what, "reply has no tag list", "invalid");
        const next = nextLink(res.headers.get("link"));
        return { tags: tags as string[], next: next ? new URL(next, at).toString() : null };
      });
      out.push(...r.tags);
      return { next: r.next };
    });
    return out;
  }

  /**
   * Follow a paginated listing (`Link: <…>; rel="next"`) from `first`: `page(url)` fetches one
   * page, takes its items and returns the next page's URL (null at the end), or null when the
   * page says the listing does not exist: on the first page the result is then false, on a later
   * one the registry is broken (`laterMissing` says how). A page URL seen twice, or more than
   * `maxPages` pages, is a registry looping.
   */
  private async followPages(
    what: string, first: string, maxPages: number, laterMissing: string,
    page: (url: string) => Promise<{ next: string | null } | null>,
  ): Promise<boolean> {
    const seen = new Set<string>();
    let url: string | null = first;
    while (url) {
      if (seen.has(url) || seen.size > maxPages) throw this.fail(what, "the registry's pages loop");
      seen.add(url);
      const r = await page(url);
      if (r === null) {
        if (seen.size > 1) throw this.fail(what, laterMissing);
        return false;
      }
      url = r.next;
    }
    return true;
  }
}

/** The descriptors of one page of the referrers API (an image index), each checked for shape. */
function referrersPage(buf: Buffer, fail: (why: string) => Error): Descriptor[] {
  let j: { schemaVersion?: unknown; mediaType?: unknown; manifests?: unknown };
  try { j = JSON.parse(buf.toString("utf8")); } catch { throw fail("reply is not json"); }
  if (j === null || typeof j !== "object" || Array.isArray(j)) throw fail("reply is not a json object");
  if (j.mediaType !== undefined && j.mediaType !== MediaType.index) throw fail(`reply has mediaType ${String(j.mediaType)}, not an image index`);
  const list = j.manifests ?? [];
  if (!Array.isArray(list)) throw fail("reply has no manifests list");
  return list.map((d: unknown, i: number) => {
    const x = d as Partial<Descriptor> | null;
    if (!x || typeof x !== "object" || typeof x.mediaType !== "string" || typeof x.digest !== "string" || !isDigest(x.digest)
      || typeof x.size !== "number" || !Number.isSafeInteger(x.size) || x.size < 0)
      throw fail(`reply's manifests[${i}] is not a descriptor`);
    const out: Descriptor = { mediaType: x.mediaType, digest: x.digest, size: x.size };
    if (typeof x.artifactType === "string") out.artifactType = x.artifactType;
    if (x.annotations && typeof x.annotations === "object" && !Array.isArray(x.annotations)) {
      const a = Object.entries(x.annotations).filter(([, v]) => typeof v === "string");
      if (a.length) out.annotations = Object.fromEntries(a) as Record<string, string>;
    }
    return out;
  });
}
