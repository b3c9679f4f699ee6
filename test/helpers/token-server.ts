/**
 * A token server for distribution's `auth: token` (docs: distribution/docs/spec/auth/token.md,
 * and the verification in distribution 2.8 `registry/auth/token`): `GET /token?service=&scope=`
 * (Basic credentials) and the OAuth2 form `POST /token` (grant_type password or refresh_token)
 * answer `{token, access_token, expires_in, issued_at}` with a JWT signed RS256 by a key made with
 * openssl. The registry finds the verification key by the JWT header's `kid`, which distribution
 * 2.8 derives from each certificate of its `rootcertbundle` as libtrust does: SHA-256 of the
 * DER SubjectPublicKeyInfo, truncated to 240 bits, base32 in twelve 4-character groups joined by
 * `:`. The `access` claim grants exactly the actions requested in each `scope`, to a caller with
 * the right Basic credentials (or refresh token); an anonymous caller gets a token granting nothing.
 * Listens on 127.0.0.1 only, on a free port.
 */
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign } from "node:crypto";
import { readFileSync } from "node:fs";

/** What one token request asked for, as the server saw it (no secret is kept). */
export interface TokenRequest {
  method: string;
  /** the `scope` values asked for, in order */
  scopes: string[];
  service: string | null;
  /** "basic" with the right credentials, "refresh" with a valid refresh token, "anonymous", "denied" */
  who: "basic" | "refresh" | "anonymous" | "denied";
}

export interface TokenServer {
  /** the realm to configure: `http(s)://127.0.0.1:PORT/token` */
  realm: string;
  service: string;
  issuer: string;
  /** every request made to the server, in order */
  requests: TokenRequest[];
  /** tokens issued so far */
  issued: number;
  stop(): Promise<void>;
}

export interface TokenServerOptions {
  /** PEM certificate (self-signed) holding the signing key's public half; the registry's rootcertbundle */
  certFile: string;
  /** PEM private key (RSA) that signs the tokens */
  keyFile: string;
  user: string;
  password: string;
  /** token lifetime in seconds (default 300); distribution 2.8 allows 60 s of leeway past `exp` */
  ttlSeconds?: number;
  /** serve over HTTPS with this certificate and key (PEM files) */
  tls?: { certFile: string; keyFile: string };
  service?: string;
  issuer?: string;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString("base64url");

/** libtrust's key ID of a public key (distribution 2.8 matches the JWT `kid` against it). */
export function libtrustKeyID(publicKeyPem: string): string {
  const der = createPublicKey(publicKeyPem).export({ type: "spki", format: "der" });
  const h = createHash("sha256").update(der).digest().subarray(0, 30);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0, value = 0, s = "";
  for (const byte of h) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) { s += alphabet[(value >>> (bits - 5)) & 31]; bits -= 5; }
  }
  if (bits > 0) s += alphabet[(value << (5 - bits)) & 31];
  return s.match(/.{1,4}/g)!.join(":");
}

/** Parse `repository:NAME:ACTIONS` (NAME may hold `:` only for a port-less name; split at the last `:`). */
function parseScope(scope: string): { type: string; name: string; actions: string[] } | null {
  const first = scope.indexOf(":"), last = scope.lastIndexOf(":");
  if (first < 0 || last === first) return null;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(",").filter(Boolean) };
}

/**
 * Start a token server. The caller stops it (`stop()`), which closes the listener; it holds no
 * files of its own.
 */
export function startTokenServer(opts: TokenServerOptions): TokenServer {
  const service = opts.service ?? "boci-test-registry";
  const issuer = opts.issuer ?? "boci-test-token-issuer";
  const ttl = opts.ttlSeconds ?? 300;
  const key = createPrivateKey(readFileSync(opts.keyFile, "utf8"));
  const certPem = readFileSync(opts.certFile, "utf8");
  const kid = libtrustKeyID(certPem);
  const refreshTokens = new Set<string>();
  const requests: TokenRequest[] = [];
  let issued = 0;

  const jwt = (sub: string, aud: string, access: Array<{ type: string; name: string; actions: string[] }>): string => {
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ typ: "JWT", alg: "RS256", kid }));
    const claims = b64url(JSON.stringify({
      iss: issuer, sub, aud, exp: now + ttl, nbf: now - 10, iat: now, jti: randomBytes(12).toString("hex"), access,
    }));
    const sig = sign("sha256", Buffer.from(`${header}.${claims}`), key);
    issued++;
    return `${header}.${claims}.${b64url(sig)}`;
  };

  const answer = (who: TokenRequest["who"], scopes: string[], svc: string | null, withRefresh: boolean): Response => {
    if (who === "denied") return Response.json({ errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] }, { status: 401, headers: { "WWW-Authenticate": 'Basic realm="boci-test-token"' } });
    const access = who === "anonymous" ? [] : scopes.map(parseScope).filter((s): s is NonNullable<typeof s> => s !== null);
    const token = jwt(who === "anonymous" ? "" : opts.user, svc ?? service, access);
    const body: Record<string, unknown> = { token, access_token: token, expires_in: ttl, issued_at: new Date().toISOString() };
    if (withRefresh && who !== "anonymous") {
      const r = randomBytes(24).toString("hex");
      refreshTokens.add(r);
      body.refresh_token = r;
    }
    return Response.json(body);
  };

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    ...(opts.tls ? { tls: { cert: readFileSync(opts.tls.certFile, "utf8"), key: readFileSync(opts.tls.keyFile, "utf8") } } : {}),
    async fetch(req) {
      const url = new URL(req.url);
      if (url.pathname !== "/token") return new Response("not found\n", { status: 404 });
      if (req.method === "GET") {
        const scopes = url.searchParams.getAll("scope").flatMap((s) => s.split(" ")).filter(Boolean);
        const svc = url.searchParams.get("service");
        let who: TokenRequest["who"] = "anonymous";
        const auth = req.headers.get("authorization");
        if (auth) {
          const m = /^Basic\s+(.+)$/i.exec(auth);
          const dec = m ? Buffer.from(m[1], "base64").toString() : "";
          who = dec === `${opts.user}:${opts.password}` ? "basic" : "denied";
        }
        requests.push({ method: "GET", scopes, service: svc, who });
        return answer(who, scopes, svc, url.searchParams.get("offline_token") === "true");
      }
      if (req.method === "POST") {
        const form = new URLSearchParams(await req.text());
        const scopes = (form.get("scope") ?? "").split(" ").filter(Boolean);
        const svc = form.get("service");
        const grant = form.get("grant_type");
        let who: TokenRequest["who"] = "denied";
        if (grant === "password" && form.get("username") === opts.user && form.get("password") === opts.password) who = "basic";
        else if (grant === "refresh_token" && refreshTokens.has(form.get("refresh_token") ?? "")) who = "refresh";
        requests.push({ method: "POST", scopes, service: svc, who });
        if (who === "denied") return Response.json({ error: "invalid_grant" }, { status: 401 });
        return answer(who, scopes, svc, form.get("access_type") === "offline" || grant === "refresh_token");
      }
      return new Response("method not allowed\n", { status: 405 });
    },
  });
  const realm = `${opts.tls ? "https" : "http"}://127.0.0.1:${server.port}/token`;
  return {
    realm, service, issuer, requests,
    get issued() { return issued; },
    async stop() { await server.stop(true); },
  };
}
