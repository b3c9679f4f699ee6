/**
 * The HTTP layer of the registry client: one request through Bun's fetch with redirects followed
 * by hand (Authorization dropped when the scheme or host changes), a stall timer, retries with exponential
 * backoff and jitter (connection errors, 5xx, 408, 429; `Retry-After` honoured), bounded body
 * reads, and the one-line description of a failed response (the distribution spec's
 * `{"errors":[{code,message}]}` body).
 *
 * Nothing here sees credentials as such: the caller passes an Authorization header and a
 * `redact` function, and every message built here goes through it.
 */
import { BociError } from "../../errors";
import type { TlsSettings } from "./types";

/** Default attempts after the first (RegistryOptions.retries). */
export const DEFAULT_RETRIES = 3;
/** Default base delay of the backoff in ms (RegistryOptions.retryDelayMs). */
export const DEFAULT_RETRY_DELAY_MS = 500;
/** No byte for this long and a connection counts as dropped. */
export const DEFAULT_STALL_MS = 60_000;
/** The longest `Retry-After` honoured; a registry asking for more gets this. */
const MAX_RETRY_AFTER_MS = 120_000;
const MAX_REDIRECTS = 10;

/**
 * The stall timeout in ms: `BOCI_REGISTRY_STALL_MS` when set to a positive integer (tests set it
 * low), else 60 s.
 */
export function stallMsFromEnv(): number {
  const v = Number(process.env.BOCI_REGISTRY_STALL_MS);
  return Number.isInteger(v) && v > 0 ? v : DEFAULT_STALL_MS;
}

/** How one client talks HTTP: TLS for Bun's fetch, retry policy, stall timeout. */
export interface HttpSettings {
  tls: TlsSettings;
  retries: number;
  retryDelayMs: number;
  stallMs: number;
  /** removes secrets from any text that could reach a message */
  redact: (s: string) => string;
}

/**
 * One request. `body` is bytes, or a stream of exactly `contentLength` bytes (read once: a
 * request with a stream body cannot be sent again). Content-Length is always set.
 */
export interface HttpRequest {
  method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  url: string;
  headers?: Record<string, string>;
  body?: Uint8Array | ReadableStream<Uint8Array>;
  /** the length of a stream body */
  contentLength?: number;
  /** follow 3xx (GET and HEAD only; default true for them) */
  followRedirects?: boolean;
}

/**
 * A failure worth another attempt: a connection error, a stall, a body cut short. `status` is set
 * for a retryable HTTP status (5xx, 408, 429), with the delay a `Retry-After` asked for.
 */
export class TransientError extends BociError {
  readonly status?: number;
  readonly retryAfterMs?: number;
  constructor(message: string, opts: { status?: number; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, { code: "ENETWORK", cause: opts.cause });
    this.status = opts.status;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/** Whether an HTTP status is worth retrying: 408, 429 and 5xx but 501 and 505. */
export function isRetryableStatus(status: number): boolean {
  if (status === 408 || status === 429) return true;
  return status >= 500 && status <= 599 && status !== 501 && status !== 505;
}

/** The delay a `Retry-After` header asks for (delta-seconds or an HTTP date), capped; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  let ms: number;
  if (/^\d+$/.test(v)) ms = Number(v) * 1000;
  else {
    const t = Date.parse(v);
    if (Number.isNaN(t)) return undefined;
    ms = Math.max(0, t - now);
  }
  return Math.min(ms, MAX_RETRY_AFTER_MS);
}

/** The backoff before attempt `attempt` (1 for the first retry): base·2^(attempt-1) plus up to base of jitter, at least what `Retry-After` asked. */
export function backoffMs(attempt: number, baseMs: number, retryAfter?: number): number {
  const exp = baseMs * 2 ** Math.min(attempt - 1, 16);
  const jitter = Math.random() * baseMs;
  return Math.max(exp + jitter, retryAfter ?? 0);
}

/** A promise resolved after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** scheme and host: Authorization goes with neither a change of host nor a downgrade to http */
function originOf(url: string): string {
  return new URL(url).origin;
}

/** A short description of a fetch failure (Bun's codes: ECONNREFUSED, ECONNRESET, EPROTO, …), redacted. */
export function describeFetchError(e: unknown, s: Pick<HttpSettings, "redact">): string {
  const err = e as { code?: string; message?: string; name?: string };
  if (err?.name === "AbortError" || err?.name === "TimeoutError") return "connection stalled";
  const code = typeof err?.code === "string" ? err.code : "";
  const text: Record<string, string> = {
    ECONNREFUSED: "connection refused",
    ECONNRESET: "connection reset",
    EPROTO: "tls handshake failed",
    ETIMEDOUT: "connection timed out",
    ENOTFOUND: "host not found",
    EHOSTUNREACH: "host unreachable",
    ENETUNREACH: "network unreachable",
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: "certificate not trusted (unable to verify the first certificate)",
    DEPTH_ZERO_SELF_SIGNED_CERT: "certificate not trusted (self-signed)",
    SELF_SIGNED_CERT_IN_CHAIN: "certificate not trusted (self-signed certificate in chain)",
    CERT_HAS_EXPIRED: "certificate has expired",
    ERR_TLS_CERT_ALTNAME_INVALID: "certificate does not name the host",
  };
  if (text[code]) return text[code]!;
  const msg = (err?.message ?? String(e)).split("\n")[0]!.replace(/\s*For more information.*$/, "");
  return s.redact((code ? `${code}: ` : "") + msg.toLowerCase().replace(/^[a-z_]+: /, ""));
}

/** Whether a fetch failure is a TLS certificate or handshake problem (not worth a retry). */
export function isTlsFailure(e: unknown): boolean {
  const code = (e as { code?: string })?.code ?? "";
  return /CERT|SIGNATURE|SELF_SIGNED|EPROTO|ALTNAME|TLS/i.test(code);
}

/**
 * One request (no retry): redirects of GET and HEAD followed by hand, at most 10, Authorization
 * kept only while the scheme and host stay those first asked; a stall of `stallMs` before the response
 * headers aborts it. Throws TransientError for connection failures and stalls, a plain BociError
 * (code ETLS, not retried) for a certificate or handshake failure; any HTTP status is returned
 * as a Response.
 * The response's body timer is the caller's (readBody / readLimited).
 */
export async function send(req: HttpRequest, s: HttpSettings): Promise<{ res: Response; url: string }> {
  let url = req.url;
  const firstOrigin = originOf(url);
  const follow = req.followRedirects ?? (req.method === "GET" || req.method === "HEAD");
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { "user-agent": "boci", ...req.headers };
    if (originOf(url) !== firstOrigin) {
      for (const k of Object.keys(headers)) if (k.toLowerCase() === "authorization") delete headers[k];
    }
    const stream = req.body instanceof ReadableStream;
    if (stream && hop > 0) throw new BociError("a redirect asked for a request body to be sent again");
    const length = req.body === undefined ? 0 : stream ? req.contentLength : (req.body as Uint8Array).byteLength;
    if (length === undefined) throw new TypeError("send: a stream body needs contentLength");
    if (req.body !== undefined || req.method === "POST" || req.method === "PUT" || req.method === "PATCH") headers["content-length"] = String(length);
    const ac = new AbortController();
    // A request with a body gets time to send it (at 64 KiB/s): the stall timer covers the wait for headers.
    const budget = s.stallMs + Math.ceil(length / 65536) * 1000;
    const timer = setTimeout(() => ac.abort(), budget);
    let res: Response;
    try {
      res = await fetch(url, {
        method: req.method,
        headers,
        body: req.body ?? (headers["content-length"] === "0" ? new Uint8Array(0) : undefined),
        ...(stream ? { duplex: "half" } : {}),
        redirect: "manual",
        signal: ac.signal,
        tls: s.tls,
        decompress: false,
      } as RequestInit);
    } catch (e) {
      clearTimeout(timer);
      if (!ac.signal.aborted && isTlsFailure(e)) throw new BociError(describeFetchError(e, s), { code: "ETLS", cause: e });
      throw new TransientError(describeFetchError(ac.signal.aborted ? { name: "AbortError" } : e, s), { cause: e });
    }
    clearTimeout(timer);
    const loc = res.headers.get("location");
    if (follow && res.status >= 300 && res.status < 400 && res.status !== 304 && loc) {
      if (hop >= MAX_REDIRECTS) { const u = new URL(req.url); throw new BociError(`${u.host}${u.pathname}: more than ${MAX_REDIRECTS} redirects`); }
      await res.body?.cancel().catch(() => {});
      url = new URL(loc, url).toString();
      continue;
    }
    return { res, url };
  }
}

/**
 * Run `attempt` until it succeeds, retrying TransientErrors `retries` times with backoff (the
 * delay a TransientError's Retry-After asked for, when longer). `onRetry` hears about each
 * retry. Other errors pass through at once.
 */
export async function withRetries<T>(
  s: Pick<HttpSettings, "retries" | "retryDelayMs">,
  attempt: (n: number) => Promise<T>,
  onRetry?: (e: TransientError, n: number, delayMs: number) => void,
): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (e) {
      if (!(e instanceof TransientError) || n >= s.retries) throw e;
      const d = backoffMs(n + 1, s.retryDelayMs, e.retryAfterMs);
      onRetry?.(e, n + 1, d);
      await sleep(d);
    }
  }
}

/**
 * The body of a response as chunks, each read within `stallMs` (else the stream is cancelled
 * and TransientError "connection stalled" thrown); a connection that breaks mid-way throws
 * TransientError too. The caller owns stopping early (return() cancels the body).
 */
export async function* readBody(res: Response, s: Pick<HttpSettings, "stallMs" | "redact">): AsyncGenerator<Uint8Array> {
  if (!res.body) return;
  const reader = res.body.getReader();
  let finished = false;
  try {
    for (;;) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stalled = new Promise<"stall">((r) => { timer = setTimeout(() => r("stall"), s.stallMs); });
      let r: { done: true; value?: undefined } | { done: false; value: Uint8Array } | "stall";
      try {
        r = (await Promise.race([reader.read(), stalled])) as typeof r;
      } catch (e) {
        throw new TransientError(`connection lost mid-body: ${describeFetchError(e, s)}`, { cause: e });
      } finally {
        clearTimeout(timer);
      }
      if (r === "stall") throw new TransientError("connection stalled");
      if (r.done) { finished = true; return; }
      if (r.value.byteLength) yield r.value;
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/**
 * The whole body, at most `limit` bytes: a Content-Length or a body past it throws `tooLarge()`.
 * Stalls and cut bodies throw TransientError.
 */
export async function readLimited(res: Response, limit: number, s: Pick<HttpSettings, "stallMs" | "redact">, tooLarge: () => Error): Promise<Buffer> {
  const cl = Number(res.headers.get("content-length") ?? NaN);
  if (cl > limit) { await res.body?.cancel().catch(() => {}); throw tooLarge(); }
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of readBody(res, s)) {
    n += c.byteLength;
    if (n > limit) throw tooLarge();
    parts.push(c);
  }
  if (!Number.isNaN(cl) && res.headers.get("content-encoding") === null && n !== cl)
    throw new TransientError(`body cut short (${n} of ${cl} bytes)`);
  return Buffer.concat(parts, n);
}

/**
 * "STATUS CODE: message[; CODE: message]" for a failed response: the status and the
 * distribution error body's codes and messages (at most 3, 200 characters each), redacted
 * (`s.redact`, then anything shaped like a token). Reads at most 64 KiB of the body.
 */
export async function describeFailure(res: Response, s: Pick<HttpSettings, "stallMs" | "redact">): Promise<string> {
  let body = "";
  if (res.body && res.status !== 204) {
    try {
      body = (await readLimited(res, 65536, s, () => new Error("large"))).toString("utf8");
    } catch { body = ""; }
  }
  const parts: string[] = [];
  try {
    const j = JSON.parse(body) as { errors?: { code?: unknown; message?: unknown }[] };
    for (const e of (Array.isArray(j.errors) ? j.errors : []).slice(0, 3)) {
      const code = typeof e?.code === "string" ? e.code : "";
      const msg = typeof e?.message === "string" ? e.message.slice(0, 200) : "";
      if (code || msg) parts.push([code, msg].filter(Boolean).join(": "));
    }
  } catch { /* not a distribution error body */ }
  const text = `${res.status}${parts.length ? " " + parts.join("; ") : res.statusText ? " " + res.statusText.toLowerCase() : ""}`;
  return stripTokens(s.redact(text.replace(/[\r\n]+/g, " ")));
}

/**
 * Anything that looks like a credential in a text bound for a message: `Basic …`/`Bearer …`
 * values, JWTs, and long opaque strings, replaced by `<redacted>`.
 */
export function stripTokens(s: string): string {
  return s
    .replace(/\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+/gi, "$1 <redacted>")
    .replace(/\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9._-]*/g, "<redacted>")
    .replace(/(?<![A-Za-z0-9:])[A-Za-z0-9+/_=-]{40,}/g, (m) => (/^[a-f0-9]{64}$|^[a-f0-9]{128}$/.test(m) ? m : "<redacted>"));
}
