/**
 * Registry authentication: the `WWW-Authenticate` challenge (RFC 7235: several challenges in one
 * header, quoted values with escapes), Basic credentials, and Bearer tokens from the token
 * endpoint (distribution's token spec: https://distribution.github.io/distribution/spec/auth/token/,
 * and its OAuth2 form for identity tokens), cached per scope and refreshed before they expire.
 *
 * Secrets (password, identity token, Basic header, every token obtained) are registered with
 * `redact`, which the client applies to every message it builds: they never reach an error, a
 * log line or JSON output.
 */
import { BociError } from "../../errors";
import { log } from "../../util/log";
import type { Credentials } from "./types";
import { describeFailure, isRetryableStatus, readLimited, retryAfterMs, send, TransientError, withRetries, type HttpSettings } from "./http";

/** One challenge of a `WWW-Authenticate` header: scheme (lowercase) and its parameters (keys lowercase). */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parse a `WWW-Authenticate` header into its challenges, in order: `Basic realm="x", Bearer
 * realm="https://a/token",service="r",scope="repository:a:pull,push"` gives two. Values may be
 * tokens or quoted strings (backslash escapes honoured); a token68 (`Negotiate abc==`) is kept as
 * param `token68`. Malformed parts are skipped, never thrown.
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  const s = header;
  const n = s.length;
  let i = 0;
  const skipWs = () => { while (i < n && (s[i] === " " || s[i] === "\t")) i++; };
  const readToken = (): string => {
    const st = i;
    while (i < n && /[!#$%&'*+\-.^_`|~0-9A-Za-z/]/.test(s[i]!)) i++;
    return s.slice(st, i);
  };
  const readQuoted = (): string => {
    let v = "";
    for (i++; i < n && s[i] !== '"'; i++) {
      if (s[i] === "\\" && i + 1 < n) i++;
      v += s[i];
    }
    i++;
    return v;
  };
  let cur: Challenge | null = null;
  while (i < n) {
    skipWs();
    if (i >= n) break;
    if (s[i] === ",") { i++; continue; }
    const tok = readToken();
    if (!tok) { i++; continue; }
    skipWs();
    if (cur && s[i] === "=") {
      i++;
      skipWs();
      cur.params[tok.toLowerCase()] = s[i] === '"' ? readQuoted() : readToken();
      continue;
    }
    cur = { scheme: tok.toLowerCase(), params: {} };
    out.push(cur);
    // a token68 right after the scheme ("Negotiate abc=="), told from a first param by what follows
    const save = i;
    const t = readToken();
    if (!t) continue;
    let eq = 0;
    while (s[i + eq] === "=") eq++;
    const after = i + eq;
    let j = after;
    while (j < n && (s[j] === " " || s[j] === "\t")) j++;
    if (eq === 1 && j < n && s[j] !== ",") { i = save; continue; }
    if (eq === 0 && j < n && s[j] !== ",") { i = save; continue; }
    cur.params.token68 = s.slice(save, after);
    i = after;
  }
  return out;
}

/** Authentication refused: "authentication required" (401) or "denied" (403); exit 1. */
export class AuthError extends BociError {
  constructor(message: string, opts: { denied?: boolean; cause?: unknown } = {}) {
    super(message, { code: opts.denied ? "EDENIED" : "EAUTH", cause: opts.cause });
  }
}

interface CachedToken {
  token: string;
  /** when to fetch a new one (before the token expires) */
  refreshAt: number;
}

/** What the authenticator needs from its client. */
export interface AuthContext {
  /** "HOST[:PORT]/REPO", for messages */
  where: string;
  /** the client's HTTP settings (resolved on first use) */
  http: () => HttpSettings;
  /** called at most once, when a challenge first asks for credentials */
  credentials: () => Promise<Credentials | null>;
  /** register a secret with the client's redaction */
  addSecret: (s: string) => void;
}

/**
 * The Authorization header for a registry, per scope. Anonymous until a challenge is seen
 * (`useChallenge`, from the ping or a 401). Bearer: one token per set of scopes, fetched from the
 * realm with `service` and each `scope`, Basic credentials on that request when there are any
 * (an identity token: the OAuth2 refresh-token POST instead), refreshed at 90 % of `expires_in`
 * (default 60 s) or when `invalidate` says the registry refused it. Basic: the credentials.
 */
export class Authenticator {
  private challenge: Challenge | null = null;
  private creds: Promise<Credentials | null> | null = null;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();

  constructor(private readonly ctx: AuthContext) {}

  /** Whether credentials were found and are being sent (known once a challenge asked for them). */
  hasCredentials = false;

  /**
   * Take the challenge of a 401 `WWW-Authenticate` header (Bearer preferred over Basic). A scope
   * the challenge names is returned so the caller can ask for it too. Throws AuthError when no
   * challenge boci speaks is offered.
   */
  useChallenge(header: string | null): string | undefined {
    const all = parseChallenges(header ?? "");
    const c = all.find((x) => x.scheme === "bearer" && x.params.realm) ?? all.find((x) => x.scheme === "basic");
    if (!c) {
      const schemes = all.map((x) => x.scheme).join(", ");
      throw new AuthError(`${this.ctx.where}: authentication required${schemes ? ` (unsupported scheme ${schemes})` : ""}`);
    }
    if (this.challenge?.scheme !== c.scheme || this.challenge.params.realm !== c.params.realm) this.tokens.clear();
    this.challenge = c;
    return c.params.scope;
  }

  /** Forget the token for these scopes (the registry answered 401 to it). */
  invalidate(scopes: string[]): void {
    this.tokens.delete(scopeKey(scopes));
  }

  /** The Authorization header value for a request needing `scopes`, or undefined (anonymous). */
  async authorization(scopes: string[]): Promise<string | undefined> {
    const c = this.challenge;
    if (!c) return undefined;
    if (c.scheme === "basic") {
      const cr = await this.credentials();
      if (!cr) throw new AuthError(`${this.ctx.where}: authentication required (no credentials for the registry)`);
      const v = "Basic " + Buffer.from(`${cr.username}:${cr.password}`).toString("base64");
      this.ctx.addSecret(v.slice(6));
      return v;
    }
    const key = scopeKey(scopes);
    const t = this.tokens.get(key);
    if (t && Date.now() < t.refreshAt) return `Bearer ${t.token}`;
    let p = this.pending.get(key);
    if (!p) {
      p = this.fetchToken(c, [...new Set(scopes)].sort()).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    const got = await p;
    this.tokens.set(key, got);
    return `Bearer ${got.token}`;
  }

  private credentials(): Promise<Credentials | null> {
    if (!this.creds) {
      this.creds = this.ctx.credentials().then((c) => {
        if (c) {
          this.hasCredentials = true;
          this.ctx.addSecret(c.password);
          if (c.identityToken) this.ctx.addSecret(c.identityToken);
        }
        return c;
      });
    }
    return this.creds;
  }

  private async fetchToken(c: Challenge, scopes: string[]): Promise<CachedToken> {
    const realm = c.params.realm!;
    let url: URL;
    try {
      url = new URL(realm);
      if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error("scheme");
    } catch {
      throw new AuthError(`${this.ctx.where}: token realm ${JSON.stringify(realm)} is not an http(s) url`);
    }
    const cr = await this.credentials();
    const service = c.params.service;
    const headers: Record<string, string> = { accept: "application/json" };
    let body: Uint8Array | undefined;
    let method: "GET" | "POST" = "GET";
    if (cr?.identityToken) {
      method = "POST";
      const f = new URLSearchParams();
      f.set("grant_type", "refresh_token");
      f.set("refresh_token", cr.identityToken);
      f.set("client_id", "boci");
      if (service) f.set("service", service);
      if (scopes.length) f.set("scope", scopes.join(" "));
      body = new TextEncoder().encode(f.toString());
      headers["content-type"] = "application/x-www-form-urlencoded";
    } else {
      if (service) url.searchParams.set("service", service);
      for (const sc of scopes) url.searchParams.append("scope", sc);
      if (cr) {
        const b = Buffer.from(`${cr.username}:${cr.password}`).toString("base64");
        this.ctx.addSecret(b);
        headers.authorization = `Basic ${b}`;
      }
    }
    const h = this.ctx.http();
    log.debug(`${this.ctx.where}: token from ${url.host}${url.pathname} for ${scopes.join(" ") || "no scope"}`);
    const buf = await withRetries(h, async () => {
      const { res } = await send({ method, url: url.toString(), headers, body, followRedirects: true }, h);
      if (res.status === 401 || res.status === 403) {
        const why = await describeFailure(res, h);
        throw new AuthError(`${this.ctx.where}: ${res.status === 403 ? "denied" : "authentication required"} (token endpoint ${url.host}: ${why})`, { denied: res.status === 403 });
      }
      if (res.status !== 200) {
        const why = await describeFailure(res, h);
        if (isRetryableStatus(res.status))
          throw new TransientError(`${this.ctx.where}: token endpoint ${url.host}: ${why}`, { status: res.status, retryAfterMs: retryAfterMs(res.headers.get("retry-after")) });
        throw new AuthError(`${this.ctx.where}: authentication required (token endpoint ${url.host}: ${why})`);
      }
      return readLimited(res, 1 << 20, h, () => new AuthError(`${this.ctx.where}: token endpoint ${url.host}: response over 1 MiB`));
    });
    let j: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try { j = JSON.parse(buf.toString("utf8")); } catch { j = {}; }
    const token = typeof j.token === "string" && j.token ? j.token : typeof j.access_token === "string" && j.access_token ? j.access_token : "";
    if (!token) throw new AuthError(`${this.ctx.where}: token endpoint ${url.host} gave no token`);
    this.ctx.addSecret(token);
    if (typeof j.access_token === "string" && j.access_token) this.ctx.addSecret(j.access_token);
    const life = typeof j.expires_in === "number" && j.expires_in > 0 ? j.expires_in : 60;
    return { token, refreshAt: Date.now() + life * 900 };
  }
}

function scopeKey(scopes: string[]): string {
  return [...new Set(scopes)].sort().join(" ");
}
