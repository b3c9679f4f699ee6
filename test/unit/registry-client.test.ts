/**
 * RegistryClient (src/transport/registry/client.ts) against a real registry (Debian's
 * docker-registry, CNCF distribution 2.8, through test/helpers/registry.ts: plain HTTP,
 * htpasswd over TLS, token auth) and against small Bun.serve servers on 127.0.0.1 for what a real
 * registry does not do on demand (challenges, 429, 500, cut and stalled bodies, Range ignored,
 * redirects to another host, lying digests, failing chunks). Every server is stopped at the end.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes, createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RegistryClient, apiHost, nextLink } from "../../src/transport/registry/client";
import { parseChallenges } from "../../src/transport/registry/auth";
import { retryAfterMs, stripTokens } from "../../src/transport/registry/http";
import { BociError, InvalidError } from "../../src/errors";
import type { RegistryOptions } from "../../src/transport/registry/types";
import { registryMissing, startRegistry, storedBlobs, type Registry } from "../helpers/registry";
import { startFaultProxy, type FaultProxy } from "../helpers/fault-proxy";

const ANON = { username: "", password: "" };
const fast: RegistryOptions = { tlsVerify: false, credentials: ANON, retries: 3, retryDelayMs: 5 };

const sha = (b: Uint8Array): string => "sha256:" + createHash("sha256").update(b).digest("hex");

/** A source for putBlob: the bytes from `offset` in 64 KiB pieces; records every offset asked. */
function source(data: Buffer, offsets: number[] = []): (offset: number) => AsyncIterable<Buffer> {
  return (offset) => {
    offsets.push(offset);
    return (async function* () {
      for (let i = offset; i < data.length; i += 65536) yield data.subarray(i, Math.min(i + 65536, data.length));
    })();
  };
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of it) parts.push(b);
  return Buffer.concat(parts);
}

async function caught(p: Promise<unknown>): Promise<BociError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(BociError);
    return e as BociError;
  }
  throw new Error("expected a failure");
}

function manifestFor(config: Buffer, layers: Buffer[]): Buffer {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.length },
    layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha(l), size: l.length })),
  }));
}

const missing = registryMissing();
if (missing) console.warn(`registry-client: real-registry tests skipped: ${missing}`);

describe.skipIf(!!missing)("against docker-registry (plain http)", () => {
  let reg: Registry;
  beforeAll(async () => { reg = await startRegistry(); });
  afterAll(async () => { await reg?.stop(); });

  test("monolithic blob: uploaded, then exists; HEAD; GET whole and from an offset", async () => {
    const c = new RegistryClient(reg.host, "mono/a", fast, ["pull", "push"]);
    const data = randomBytes(300_000);
    const d = { digest: sha(data), size: data.length };
    expect(await c.headBlob(d.digest)).toBeNull();
    expect(await c.putBlob(d, source(data))).toBe("uploaded");
    expect(storedBlobs(reg).get(d.digest)).toBe(data.length);
    expect(await c.putBlob(d, source(data))).toBe("exists");
    expect(await c.headBlob(d.digest)).toBe(data.length);
    expect((await collect(c.getBlob(d.digest))).equals(data)).toBe(true);
    expect((await collect(c.getBlob(d.digest, { offset: 123_456, size: data.length }))).equals(data.subarray(123_456))).toBe(true);
    const e = await caught(collect(c.getBlob(sha(Buffer.from("absent")))));
    expect(e.exitCode).toBe(3);
    expect(e.message).toContain(`${reg.host}/mono/a`);
  });

  test("chunked blob (PATCH chunks then PUT), a small chunk size and 8 MiB", async () => {
    const small = new RegistryClient(reg.host, "chunk/a", fast, ["pull", "push"], { chunkSize: 256 * 1024 });
    const data = randomBytes(1_000_000);
    const d = { digest: sha(data), size: data.length };
    expect(await small.putBlob(d, source(data))).toBe("uploaded");
    expect(await small.headBlob(d.digest)).toBe(data.length);
    expect((await collect(small.getBlob(d.digest, { size: data.length }))).equals(data)).toBe(true);

    const big = new RegistryClient(reg.host, "chunk/b", fast, ["pull", "push"]);
    const data2 = randomBytes(9 * 1024 * 1024 + 17);
    const d2 = { digest: sha(data2), size: data2.length };
    expect(await big.putBlob(d2, source(data2))).toBe("uploaded");
    expect(storedBlobs(reg).get(d2.digest)).toBe(data2.length);
  });

  test("a source that gives fewer or more bytes than the size is refused (exit 4)", async () => {
    const c = new RegistryClient(reg.host, "short/a", fast, ["pull", "push"]);
    const data = randomBytes(1000);
    const e = await caught(c.putBlob({ digest: sha(data), size: 2000 }, source(data)));
    expect(e.exitCode).toBe(4);
    const e2 = await caught(c.putBlob({ digest: sha(data), size: 500 }, source(data)));
    expect(e2.exitCode).toBe(4);
  });

  test("a source failing mid-way (its own verification) fails the push with its error, monolithic or chunked", async () => {
    const data = randomBytes(300_000);
    const failing = () => (async function* () {
      yield data.subarray(0, 100_000);
      throw new InvalidError("blob sha256:x: digest mismatch (from the source)");
    })();
    for (const chunkSize of [8 << 20, 64 * 1024]) {
      const c = new RegistryClient(reg.host, "failsrc/a", fast, ["pull", "push"], { chunkSize });
      const e = await caught(c.putBlob({ digest: sha(data), size: data.length }, failing));
      expect(e.message).toBe("blob sha256:x: digest mismatch (from the source)");
      expect(e.exitCode).toBe(4);
      expect(await c.headBlob(sha(data))).toBeNull();
    }
  });

  test("cross-repository mount: mounted when the source has it, uploaded when not", async () => {
    const a = new RegistryClient(reg.host, "mount/src", fast, ["pull", "push"]);
    const b = new RegistryClient(reg.host, "mount/dst", fast, ["pull", "push"]);
    const data = randomBytes(50_000);
    const d = { digest: sha(data), size: data.length };
    expect(await a.putBlob(d, source(data))).toBe("uploaded");
    expect(await b.putBlob(d, source(data), { mountFrom: "mount/src" })).toBe("mounted");
    expect(await b.headBlob(d.digest)).toBe(data.length);
    const other = randomBytes(70_000);
    const offsets: number[] = [];
    expect(await b.putBlob({ digest: sha(other), size: other.length }, source(other, offsets), { mountFrom: "mount/src" })).toBe("uploaded");
    expect(offsets).toEqual([0]);
    expect((await collect(b.getBlob(sha(other)))).equals(other)).toBe(true);
  });

  test("manifest put and get by tag and digest; HEAD; tags listed across pages", async () => {
    const c = new RegistryClient(reg.host, "img/app", fast, ["pull", "push"]);
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
    const layer = randomBytes(4096);
    for (const b of [config, layer]) await c.putBlob({ digest: sha(b), size: b.length }, source(b));
    const m = manifestFor(config, [layer]);
    const mt = "application/vnd.oci.image.manifest.v1+json";
    const digest = await c.putManifest("v1", m, mt);
    expect(digest).toBe(sha(m));
    const byTag = await c.getManifest("v1");
    expect(byTag.bytes.equals(m)).toBe(true);
    expect(byTag).toMatchObject({ mediaType: mt, digest });
    const byDigest = await c.getManifest(digest);
    expect(byDigest.bytes.equals(m)).toBe(true);
    expect(await c.headManifest("v1")).toEqual({ mediaType: mt, digest, size: m.length });
    expect(await c.headManifest("nope")).toBeNull();
    const e = await caught(c.getManifest("nope"));
    expect(e.exitCode).toBe(3);
    expect(e.message).toContain(`${reg.host}/img/app: get manifest nope`);
    expect(e.message).toContain("MANIFEST_UNKNOWN");
    // an index by digest, then tags
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{ mediaType: mt, digest, size: m.length, platform: { architecture: "amd64", os: "linux" } }],
    }));
    const idxDigest = await c.putManifest(sha(index), index, "application/vnd.oci.image.index.v1+json");
    expect((await c.getManifest(idxDigest)).mediaType).toBe("application/vnd.oci.image.index.v1+json");
    const tags = ["a", "b", "c", "d", "e"];
    for (const t of tags) await c.putManifest(t, m, mt);
    expect((await c.listTags()).sort()).toEqual([...tags, "v1"].sort());
    expect((await c.listTags({ pageSize: 2 })).sort()).toEqual([...tags, "v1"].sort());
    const none = new RegistryClient(reg.host, "img/none", fast, ["pull"]);
    expect((await caught(none.listTags())).exitCode).toBe(3);
  });

  test("a manifest whose Content-Type contradicts its mediaType is refused by the registry or by us", async () => {
    const c = new RegistryClient(reg.host, "img/docker", fast, ["pull", "push"]);
    const config = Buffer.from("{}");
    await c.putBlob({ digest: sha(config), size: 2 }, source(config));
    const m = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: "application/vnd.docker.distribution.manifest.v2+json",
      config: { mediaType: "application/vnd.docker.container.image.v1+json", digest: sha(config), size: 2 }, layers: [],
    }));
    const d = await c.putManifest("docker", m, "application/vnd.docker.distribution.manifest.v2+json");
    const got = await c.getManifest("docker");
    expect(got).toMatchObject({ digest: d, mediaType: "application/vnd.docker.distribution.manifest.v2+json" });
  });
});

describe.skipIf(!!missing)("against docker-registry through a fault proxy", () => {
  let reg: Registry;
  let proxy: FaultProxy;
  beforeAll(async () => {
    reg = await startRegistry();
    proxy = await startFaultProxy(reg.url);
  });
  afterAll(async () => { await proxy?.stop(); await reg?.stop(); });

  test("a PATCH cut mid-body: distribution 2.8 forgets the session (GET 404), so a new one from 0; the blob complete", async () => {
    proxy.rules.length = 0;
    proxy.rules.push({ method: "PATCH", skip: 1, body: "request", action: { kind: "drop", afterBytes: 100_000 } });
    const data = randomBytes(1_000_000);
    const offsets: number[] = [];
    const start = proxy.log.length;
    const c = new RegistryClient(proxy.host, "fp/chunk", fast, ["pull", "push"], { chunkSize: 256 * 1024 });
    expect(await c.putBlob({ digest: sha(data), size: data.length }, source(data, offsets))).toBe("uploaded");
    expect(proxy.counts.drop).toBe(1);
    const log = proxy.log.slice(start).map((l) => `${l.method} ${l.status}`);
    // the cut PATCH, the status GET (404: session gone), then a new session
    const cut = log.indexOf("PATCH 0");
    expect(log.slice(cut, cut + 3)).toEqual(["PATCH 0", "GET 404", "HEAD 404"]);
    expect(log.filter((l) => l.startsWith("POST")).length).toBe(2);
    expect(offsets).toEqual([0, 0]);
    expect(storedBlobs(reg).get(sha(data))).toBe(data.length);
    expect((await collect(c.getBlob(sha(data), { size: data.length }))).equals(data)).toBe(true);
  });

  test("a monolithic PUT cut mid-body: a new session, the blob complete", async () => {
    proxy.rules.length = 0;
    proxy.rules.push({ method: "PUT", path: "/blobs/uploads/", body: "request", action: { kind: "drop", afterBytes: 10_000 } });
    const data = randomBytes(200_000);
    const offsets: number[] = [];
    const c = new RegistryClient(proxy.host, "fp/mono", fast, ["pull", "push"]);
    expect(await c.putBlob({ digest: sha(data), size: data.length }, source(data, offsets))).toBe("uploaded");
    expect(offsets).toEqual([0, 0]);
    expect(storedBlobs(reg).get(sha(data))).toBe(data.length);
  });

  test("a blob download cut twice and a 503 on the manifest: Range resumes, one retry", async () => {
    proxy.rules.length = 0;
    const data = randomBytes(3_000_000);
    const c = new RegistryClient(proxy.host, "fp/pull", fast, ["pull", "push"]);
    await c.putBlob({ digest: sha(data), size: data.length }, source(data));
    const m = manifestFor(data, []);
    await c.putManifest("t", m, ociType);
    proxy.rules.push({ method: "GET", path: `/blobs/${sha(data)}`, times: 2, action: { kind: "drop", afterBytes: 1_000_000 } });
    proxy.rules.push({ method: "GET", path: "/manifests/t", action: { kind: "status", status: 503, retryAfter: 0 } });
    const start = proxy.log.length;
    expect((await collect(c.getBlob(sha(data), { size: data.length }))).equals(data)).toBe(true);
    const gets = proxy.log.slice(start).filter((l) => l.path.includes(sha(data)));
    expect(gets.length).toBe(3);
    expect(gets[0]!.range).toBeNull();
    expect(gets[1]!.range).toMatch(/^bytes=[1-9]\d*-$/);
    expect(gets[2]!.range).toMatch(/^bytes=[1-9]\d*-$/);
    // (what the proxy sent before a cut may still have been in flight: not all of it reached the client)
    expect(gets.reduce((n, g) => n + g.bytesDown, 0)).toBeLessThan(data.length + 600_000);
    expect((await c.getManifest("t")).bytes.equals(m)).toBe(true);
    expect(proxy.counts["status:503"]).toBe(1);
  });
});

describe.skipIf(!!missing)("against docker-registry with auth", () => {
  let basic: Registry;
  let token: Registry;
  beforeAll(async () => {
    [basic, token] = await Promise.all([startRegistry({ auth: "htpasswd", tls: true }), startRegistry({ auth: "token" })]);
  });
  afterAll(async () => { await Promise.all([basic?.stop(), token?.stop()]); });

  test("htpasswd over TLS (cert dir CA): push and pull; a wrong password fails without naming it", async () => {
    const opts: RegistryOptions = { certDir: basic.certDir, credentials: { username: basic.user!, password: basic.password! }, retryDelayMs: 5 };
    const c = new RegistryClient(basic.host, "sec/app", opts, ["pull", "push"]);
    const data = randomBytes(10_000);
    expect(await c.putBlob({ digest: sha(data), size: data.length }, source(data))).toBe("uploaded");
    expect((await collect(c.getBlob(sha(data)))).equals(data)).toBe(true);
    const wrong = new RegistryClient(basic.host, "sec/app", { ...opts, credentials: { username: basic.user!, password: "hunter2-wrong-pw" } }, ["pull"]);
    const e = await caught(wrong.headBlob(sha(data)));
    expect(e.exitCode).toBe(1);
    expect(e.message).toContain("authentication required");
    expect(e.message).toContain(`${basic.host}/sec/app`);
    expect(e.message).not.toContain("hunter2-wrong-pw");
    expect(e.message).not.toContain(Buffer.from(`${basic.user}:hunter2-wrong-pw`).toString("base64"));
    const anon = new RegistryClient(basic.host, "sec/app", { certDir: basic.certDir, credentials: ANON }, ["pull"]);
    expect((await caught(anon.headBlob(sha(data)))).message).toContain("authentication required");
    const untrusted = new RegistryClient(basic.host, "sec/app", { credentials: ANON, retries: 0, certDir: "/nonexistent" }, ["pull"]);
    const ue = await caught(untrusted.headBlob(sha(data)));
    expect(ue.message).toContain(`${basic.host}/sec/app: ping /v2/: certificate not trusted`);
    // --tls-verify=false on a TLS registry: HTTPS without verification (no fall back to HTTP)
    const insecure = new RegistryClient(basic.host, "sec/app", { ...opts, certDir: "/nonexistent", tlsVerify: false }, ["pull"]);
    expect(await insecure.headBlob(sha(data))).toBe(data.length);
  });

  test("token auth: a pull,push token for the repository, a pull token for the mount source; no token in errors", async () => {
    const opts: RegistryOptions = { tlsVerify: false, credentials: { username: token.user!, password: token.password! }, retryDelayMs: 5 };
    const a = new RegistryClient(token.host, "tok/src", opts, ["pull", "push"]);
    const data = randomBytes(20_000);
    const d = { digest: sha(data), size: data.length };
    expect(await a.putBlob(d, source(data))).toBe("uploaded");
    const b = new RegistryClient(token.host, "tok/dst", opts, ["pull", "push"]);
    expect(await b.putBlob(d, source(data), { mountFrom: "tok/src" })).toBe("mounted");
    const reqs = token.tokenServer!.requests;
    expect(reqs.some((r) => r.scopes.includes("repository:tok/src:pull,push"))).toBe(true);
    expect(reqs.some((r) => r.scopes.includes("repository:tok/dst:pull,push") && r.scopes.includes("repository:tok/src:pull"))).toBe(true);
    expect(reqs.every((r) => r.who === "basic" || r.who === "anonymous")).toBe(true);
    const reader = new RegistryClient(token.host, "tok/dst", opts, ["pull"]);
    expect((await collect(reader.getBlob(d.digest))).equals(data)).toBe(true);
    // anonymous: a token granting nothing, then "authentication required"
    const anon = new RegistryClient(token.host, "tok/dst", { ...opts, credentials: ANON }, ["pull"]);
    const e = await caught(anon.headBlob(d.digest));
    expect(e.message).toContain("authentication required");
    expect(e.message).toContain(`${token.host}/tok/dst`);
    expect(e.message).not.toMatch(/eyJ/);
    expect(e.message).not.toContain(token.password!);
  });

  test("token auth: a client for pull asked to push gets the scope the registry's challenge names", async () => {
    const c = new RegistryClient(token.host, "tok/ro", { tlsVerify: false, credentials: { username: token.user!, password: token.password! }, retryDelayMs: 5 }, ["pull"]);
    const data = randomBytes(100_000);
    expect(await c.putBlob({ digest: sha(data), size: data.length }, source(data))).toBe("uploaded");
    // (distribution names the actions of a challenge's scope in either order: Go map iteration)
    expect(token.tokenServer!.requests.some((r) => r.scopes.includes("repository:tok/ro:pull") && r.scopes.some((x) => x === "repository:tok/ro:pull,push" || x === "repository:tok/ro:push,pull"))).toBe(true);
  });

  test("token auth: concurrent requests share one ping and one token; an identity token uses the OAuth2 refresh form", async () => {
    const opts: RegistryOptions = { tlsVerify: false, credentials: { username: token.user!, password: token.password! }, retryDelayMs: 5 };
    const before = token.tokenServer!.requests.length;
    const c = new RegistryClient(token.host, "tok/many", opts, ["pull"]);
    const ds = [0, 1, 2, 3].map((i) => sha(Buffer.from(`absent-${i}`)));
    expect(await Promise.all(ds.map((d) => c.headBlob(d)))).toEqual([null, null, null, null]);
    expect(token.tokenServer!.requests.length - before).toBe(1);
    // a refresh token, as `docker login` stores it (identitytoken)
    const r = await fetch(`${token.tokenServer!.realm}?service=${token.tokenServer!.service}&offline_token=true`, {
      headers: { authorization: "Basic " + Buffer.from(`${token.user}:${token.password}`).toString("base64") },
    });
    const refresh = ((await r.json()) as { refresh_token: string }).refresh_token;
    const idc = new RegistryClient(token.host, "tok/src", { tlsVerify: false, credentials: { username: "<token>", password: "", identityToken: refresh }, retryDelayMs: 5 }, ["pull"]);
    expect(await idc.headBlob(sha(Buffer.from("absent")))).toBeNull();
    const last = token.tokenServer!.requests.at(-1)!;
    expect(last).toMatchObject({ method: "POST", who: "refresh", scopes: ["repository:tok/src:pull"] });
  });
});

// ---------------------------------------------------------------------------------------------
// Small servers for what a real registry will not do on demand.

type Handler = (req: Request, url: URL) => Response | Promise<Response>;
interface Fake { host: string; url: string; hits: { method: string; path: string; headers: Record<string, string> }[]; stop(): void }
const fakes: Fake[] = [];
afterAll(() => { for (const f of fakes) f.stop(); });

function fake(handler: Handler): Fake {
  const hits: Fake["hits"] = [];
  const s = Bun.serve({
    hostname: "127.0.0.1", port: 0, idleTimeout: 30,
    async fetch(req) {
      const url = new URL(req.url);
      hits.push({ method: req.method, path: url.pathname + url.search, headers: Object.fromEntries(req.headers) });
      return handler(req, url);
    },
  });
  const f = { host: `127.0.0.1:${s.port}`, url: `http://127.0.0.1:${s.port}`, hits, stop: () => s.stop(true) };
  fakes.push(f);
  return f;
}

const ociManifest = manifestFor(Buffer.from("{}"), []);
const ociType = "application/vnd.oci.image.manifest.v1+json";

/**
 * A body that sends `data` then breaks the connection (`how: "reset"`: Bun's client sees
 * ECONNRESET; the server prints the stream's error) or ends it early (`"short"`: a clean end
 * before Content-Length, which Bun's client reports as a normal end).
 */
function cutBody(data: Uint8Array, total: number, how: "reset" | "short" = "short"): Response {
  return new Response(new ReadableStream({
    async pull(c) { c.enqueue(data); await Bun.sleep(20); if (how === "reset") c.error(new Error("cut (expected by the test)")); else c.close(); },
  }), { headers: { "content-length": String(total) } });
}

describe("challenges and tokens (fake registry)", () => {
  test("Basic: anonymous ping, 401 Basic, the credentials sent", async () => {
    const f = fake((req, url) => {
      const ok = req.headers.get("authorization") === "Basic " + Buffer.from("u:p4ss-secret").toString("base64");
      if (!ok) return new Response('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}', { status: 401, headers: { "www-authenticate": 'Basic realm="fake"' } });
      if (url.pathname === "/v2/") return new Response("{}");
      return new Response(ociManifest, { headers: { "content-type": ociType } });
    });
    const c = new RegistryClient(f.host, "r", { ...fast, credentials: { username: "u", password: "p4ss-secret" } }, ["pull"]);
    const m = await c.getManifest("latest");
    expect(m.bytes.equals(ociManifest)).toBe(true);
    expect(f.hits[0]!.headers.authorization).toBeUndefined();
    const bad = new RegistryClient(f.host, "r", { ...fast, credentials: { username: "u", password: "wrong-secret" } }, ["pull"]);
    const e = await caught(bad.getManifest("latest"));
    expect(e.message).toBe(`${f.host}/r: get manifest latest: authentication required (401 UNAUTHORIZED: authentication required)`);
  });

  test("Bearer: realm, service and scope; Basic on the token request; cached; refreshed at expiry and after a 401", async () => {
    let issued = 0;
    const revoked = new Set<string>();
    const tokenReqs: URL[] = [];
    const f = fake((req, url) => {
      if (url.pathname === "/token") {
        tokenReqs.push(url);
        if (req.headers.get("authorization") !== "Basic " + Buffer.from("me:pw-xyz").toString("base64")) return new Response("no", { status: 401 });
        issued++;
        return Response.json(issued % 2 ? { token: `tok-${issued}-abcdefgh`, expires_in: 1 } : { access_token: `tok-${issued}-abcdefgh`, expires_in: 1 });
      }
      const auth = req.headers.get("authorization") ?? "";
      const tok = auth.startsWith("Bearer ") ? auth.slice(7) : "";
      if (!tok || revoked.has(tok)) {
        return new Response(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: `token ${tok} refused` }] }), {
          status: 401,
          headers: { "www-authenticate": `Bearer realm="${`http://127.0.0.1:${url.port}/token`}",service="fake.svc"${url.pathname === "/v2/" ? "" : ',scope="repository:team/app:pull"'}` },
        });
      }
      if (url.pathname === "/v2/") return new Response("{}");
      return new Response(ociManifest, { headers: { "content-type": ociType } });
    });
    const c = new RegistryClient(f.host, "team/app", { ...fast, credentials: { username: "me", password: "pw-xyz" } }, ["pull", "push"]);
    await c.getManifest("a");
    await c.getManifest("b");
    expect(issued).toBe(1);
    expect(tokenReqs[0]!.searchParams.get("service")).toBe("fake.svc");
    expect(tokenReqs[0]!.searchParams.getAll("scope")).toEqual(["repository:team/app:pull,push"]);
    await Bun.sleep(1000);
    await c.getManifest("c"); // expired: a new token first
    expect(issued).toBe(2);
    revoked.add("tok-2-abcdefgh");
    await c.getManifest("d"); // 401: one refresh, then success
    expect(issued).toBe(3);
    // Every token refused: "authentication required", no token in the line
    for (let i = 1; i <= 10; i++) revoked.add(`tok-${i}-abcdefgh`);
    const e = await caught(c.getManifest("e"));
    expect(e.message).toContain(`${f.host}/team/app: get manifest e: authentication required`);
    expect(e.message).not.toContain("tok-");
    expect(e.message).not.toContain("pw-xyz");
  });

  test("a token that does not grant the scope (insufficient_scope): denied with credentials, authentication required without", async () => {
    const f = fake((req, url) => {
      if (url.pathname === "/token") return Response.json({ token: "tok-granting-nothing-123" });
      const has = req.headers.get("authorization")?.startsWith("Bearer ");
      if (url.pathname === "/v2/" && has) return new Response("{}");
      return new Response('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}', {
        status: 401,
        headers: { "www-authenticate": `Bearer realm="http://127.0.0.1:${url.port}/token",service="s",scope="repository:x:pull"${has ? ',error="insufficient_scope"' : ""}` },
      });
    });
    const withCreds = await caught(new RegistryClient(f.host, "x", { ...fast, credentials: { username: "me", password: "pw-scope" } }, ["pull"]).getManifest("t"));
    expect(withCreds.message).toBe(`${f.host}/x: get manifest t: denied (insufficient scope; 401 UNAUTHORIZED: authentication required)`);
    const anon = await caught(new RegistryClient(f.host, "x", fast, ["pull"]).getManifest("t"));
    expect(anon.message).toBe(`${f.host}/x: get manifest t: authentication required (401 UNAUTHORIZED: authentication required)`);
  });

  test("403 is denied; a token endpoint refusing the credentials is authentication required", async () => {
    const f = fake((_req, url) => {
      if (url.pathname === "/token") return new Response("", { status: 401 });
      if (url.pathname === "/v2/") return new Response("", { status: 401, headers: { "www-authenticate": `Bearer realm="http://127.0.0.1:${url.port}/token"` } });
      return new Response("", { status: 403 });
    });
    const c = new RegistryClient(f.host, "x", { ...fast, credentials: { username: "me", password: "secret-pw" } }, ["pull"]);
    const e = await caught(c.headBlob(sha(Buffer.from("a"))));
    expect(e.message).toContain(`${f.host}/x: authentication required`);
    const g = fake((_req, url) => (url.pathname === "/v2/" ? new Response("{}") : new Response('{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}', { status: 403 })));
    const d = await caught(new RegistryClient(g.host, "y", fast, ["pull"]).getManifest("t"));
    expect(d.message).toBe(`${g.host}/y: get manifest t: denied (403 DENIED: requested access to the resource is denied)`);
    expect(d.exitCode).toBe(1);
  });
});

describe("retries (fake registry)", () => {
  test("429 with Retry-After is waited for, then success", async () => {
    let n = 0;
    const f = fake((_req, url) => {
      if (url.pathname === "/v2/") return new Response("{}");
      if (n++ === 0) return new Response('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}', { status: 429, headers: { "retry-after": "1" } });
      return new Response(ociManifest, { headers: { "content-type": ociType } });
    });
    const t0 = Date.now();
    await new RegistryClient(f.host, "r", fast, ["pull"]).getManifest("t");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(n).toBe(2);
  });

  test("500 then success; a 400 is not retried; retries run out with one line", async () => {
    let n = 0;
    const f = fake((_req, url) => {
      if (url.pathname === "/v2/") return new Response("{}");
      if (url.pathname.endsWith("/flaky")) return n++ < 2 ? new Response("oops", { status: 500 }) : new Response(ociManifest, { headers: { "content-type": ociType } });
      if (url.pathname.endsWith("/bad")) return new Response('{"errors":[{"code":"NAME_INVALID","message":"invalid name"}]}', { status: 400 });
      return new Response("", { status: 503 });
    });
    const c = new RegistryClient(f.host, "r", fast, ["pull"]);
    await c.getManifest("flaky");
    expect(n).toBe(3);
    const before = f.hits.length;
    const e = await caught(c.getManifest("bad"));
    expect(f.hits.length - before).toBe(1);
    expect(e.message).toBe(`${f.host}/r: get manifest bad: 400 NAME_INVALID: invalid name`);
    const before2 = f.hits.length;
    const e2 = await caught(c.getManifest("down"));
    expect(f.hits.length - before2).toBe(4);
    expect(e2.message).toContain(`${f.host}/r: get manifest down: 503`);
    expect(e2.message).toContain("after 4 attempts");
  });

  test("connection refused: retried, then one line naming the registry", async () => {
    const f = fake(() => new Response("{}"));
    const host = f.host;
    f.stop();
    const e = await caught(new RegistryClient(host, "r", { ...fast, retries: 1 }, ["pull"]).headBlob(sha(Buffer.from("x"))));
    expect(e.message).toContain(host);
    expect(e.message).toContain("connection refused");
  });

  test("a blob body cut mid-way is resumed with Range from the bytes yielded", async () => {
    const data = randomBytes(200_000);
    const ranges: (string | null)[] = [];
    const f = fake((req, url) => {
      if (url.pathname === "/v2/") return new Response("{}");
      const range = req.headers.get("range");
      ranges.push(range);
      const from = range ? Number(/bytes=(\d+)-/.exec(range)![1]) : 0;
      if (ranges.length <= 2) return cutBody(data.subarray(from, from + 50_000), data.length - from, ranges.length === 1 ? "reset" : "short");
      return new Response(data.subarray(from), { status: 206, headers: { "content-range": `bytes ${from}-${data.length - 1}/${data.length}` } });
    });
    const c = new RegistryClient(f.host, "r", fast, ["pull"]);
    const got = await collect(c.getBlob(sha(data), { size: data.length }));
    expect(got.equals(data)).toBe(true);
    expect(ranges[0]).toBeNull();
    expect(ranges[1]).toMatch(/^bytes=\d+-$/);
    expect(Number(/\d+/.exec(ranges[1]!)![0])).toBeGreaterThan(0);
  });

  test("a registry that ignores Range (200) has the first N bytes skipped", async () => {
    const data = randomBytes(150_000);
    let n = 0;
    const f = fake((_req, url) => {
      if (url.pathname === "/v2/") return new Response("{}");
      if (n++ === 0) return cutBody(data.subarray(0, 70_000), data.length);
      return new Response(data);
    });
    // Bun's server sends a stream chunked: only the size the caller passes tells the end is early
    const got = await collect(new RegistryClient(f.host, "r", fast, ["pull"]).getBlob(sha(data), { size: data.length }));
    expect(got.equals(data)).toBe(true);
    expect(n).toBe(2);
  });

  test("a stalled body counts as dropped (stall timeout lowered)", async () => {
    const data = randomBytes(100_000);
    let n = 0;
    const f = fake((req, url) => {
      if (url.pathname === "/v2/") return new Response("{}");
      if (n++ === 0) {
        return new Response(new ReadableStream({
          async pull(c) { c.enqueue(data.subarray(0, 30_000)); await Bun.sleep(5000); c.close(); },
        }), { headers: { "content-length": String(data.length) } });
      }
      const from = Number(/bytes=(\d+)-/.exec(req.headers.get("range") ?? "bytes=0-")![1]);
      return new Response(data.subarray(from), { status: 206, headers: { "content-range": `bytes ${from}-${data.length - 1}/${data.length}` } });
    });
    const t0 = Date.now();
    const got = await collect(new RegistryClient(f.host, "r", fast, ["pull"], { stallMs: 300 }).getBlob(sha(data), { size: data.length }));
    expect(got.equals(data)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(4000);
  });

  test("a redirect to another host is followed without the Authorization header", async () => {
    const data = randomBytes(10_000);
    const storage = fake(() => new Response(data));
    const f = fake((req, url) => {
      if (req.headers.get("authorization") !== "Basic " + Buffer.from("u:pw-redirect").toString("base64"))
        return new Response("", { status: 401, headers: { "www-authenticate": 'Basic realm="r"' } });
      if (url.pathname === "/v2/") return new Response("{}");
      return new Response(null, { status: 307, headers: { location: `${storage.url}/bucket/blob?sig=1` } });
    });
    const c = new RegistryClient(f.host, "r", { ...fast, credentials: { username: "u", password: "pw-redirect" } }, ["pull"]);
    expect((await collect(c.getBlob(sha(data)))).equals(data)).toBe(true);
    expect(storage.hits.length).toBe(1);
    expect(storage.hits[0]!.path).toBe("/bucket/blob?sig=1");
    expect(storage.hits[0]!.headers.authorization).toBeUndefined();
  });
});

describe("tags (fake registry)", () => {
  test("every page is followed through Link rel=next (relative URLs), with ?n= on the first", async () => {
    const all = ["a", "b", "c", "d", "e"];
    const f = fake((_req, url) => {
      if (url.pathname === "/v2/") return new Response("{}");
      const n = Number(url.searchParams.get("n") ?? 100);
      const last = url.searchParams.get("last");
      const from = last ? all.indexOf(last) + 1 : 0;
      const page = all.slice(from, from + n);
      const headers: Record<string, string> = {};
      if (from + n < all.length) headers.link = `</v2/ns/r/tags/list?n=${n}&last=${page.at(-1)}>; rel="next"`;
      return Response.json({ name: "ns/r", tags: page }, { headers });
    });
    expect(await new RegistryClient(f.host, "ns/r", fast, ["pull"]).listTags({ pageSize: 2 })).toEqual(all);
    expect(f.hits.filter((h) => h.path.startsWith("/v2/ns/r/tags/list")).map((h) => h.path)).toEqual([
      "/v2/ns/r/tags/list?n=2", "/v2/ns/r/tags/list?n=2&last=b", "/v2/ns/r/tags/list?n=2&last=d",
    ]);
    const g = fake((_req, url) => (url.pathname === "/v2/" ? new Response("{}") : Response.json({ name: "x", tags: null })));
    expect(await new RegistryClient(g.host, "x", fast, ["pull"]).listTags()).toEqual([]);
  });
});

describe("secrets never reach a log line or a message", () => {
  test("debug logging of a Bearer flow (Basic credentials on the token request) with errors echoing them and retries", async () => {
    const secretPw = "S3cret-Passw0rd-Value";
    const tok = "opaque-token-value-0123456789";
    let n = 0;
    const f = fake((req, url) => {
      if (url.pathname === "/token") return Response.json({ token: tok, expires_in: 300 });
      if (req.headers.get("authorization") !== `Bearer ${tok}`)
        return new Response("", { status: 401, headers: { "www-authenticate": `Bearer realm="http://127.0.0.1:${url.port}/token",service="s"` } });
      if (url.pathname === "/v2/") return new Response("{}");
      if (n++ < 2) return new Response(`{"errors":[{"code":"UNKNOWN","message":"backend said Bearer ${tok} and ${secretPw}"}]}`, { status: 500 });
      return new Response(`{"errors":[{"code":"DENIED","message":"no for ${tok}"}]}`, { status: 403 });
    });
    // The flow runs in a child process at --log debug: everything it writes to stderr is seen.
    const dir = mkdtempSync(join(tmpdir(), "boci-regclient-"));
    try {
      const script = join(dir, "flow.ts");
      writeFileSync(script, [
        `import { setLogLevel } from ${JSON.stringify(join(import.meta.dir, "../../src/util/log"))};`,
        `import { RegistryClient } from ${JSON.stringify(join(import.meta.dir, "../../src/transport/registry/client"))};`,
        `setLogLevel("debug");`,
        `const c = new RegistryClient(process.argv[2], "r", { tlsVerify: false, retries: 3, retryDelayMs: 5, credentials: { username: "u", password: process.env.PW } }, ["pull"]);`,
        `try { await c.getManifest("t"); } catch (e) { console.error("ERROR " + e.message); }`,
      ].join("\n"));
      const p = Bun.spawn([process.execPath, script, f.host], { env: { ...process.env, PW: secretPw }, stdout: "pipe", stderr: "pipe" });
      const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      const all = out + err;
      expect(err).toContain("retry 2");
      expect(err).toContain(`ERROR ${f.host}/r: get manifest t: denied`);
      for (const s of [secretPw, tok, Buffer.from(`u:${secretPw}`).toString("base64")]) expect(all).not.toContain(s);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("manifest checks (fake registry)", () => {
  const other = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: ociType, config: {}, layers: [] }));
  function serving(body: Buffer, headers: Record<string, string>): Fake {
    return fake((_req, url) => (url.pathname === "/v2/" ? new Response("{}") : new Response(body, { headers })));
  }

  test("by digest: bytes that do not hash to it are refused (exit 4)", async () => {
    const f = serving(other, { "content-type": ociType });
    const e = await caught(new RegistryClient(f.host, "r", fast, ["pull"]).getManifest(sha(ociManifest)));
    expect(e.exitCode).toBe(4);
    expect(e.message).toContain("digest mismatch");
  });

  test("by tag: a Docker-Content-Digest that is not the bytes' digest is refused (exit 4)", async () => {
    const f = serving(ociManifest, { "content-type": ociType, "docker-content-digest": sha(other) });
    expect((await caught(new RegistryClient(f.host, "r", fast, ["pull"]).getManifest("t"))).exitCode).toBe(4);
  });

  test("mediaType and Content-Type disagreeing: exit 4; a generic Content-Type: the body's mediaType", async () => {
    const f = serving(ociManifest, { "content-type": "application/vnd.docker.distribution.manifest.v2+json" });
    expect((await caught(new RegistryClient(f.host, "r", fast, ["pull"]).getManifest("t"))).exitCode).toBe(4);
    const g = serving(ociManifest, { "content-type": "application/json; charset=utf-8" });
    expect((await new RegistryClient(g.host, "r", fast, ["pull"]).getManifest("t")).mediaType).toBe(ociType);
  });

  test("schema 1 is unsupported (exit 6); over 4 MiB is refused (exit 4)", async () => {
    const s1 = Buffer.from(JSON.stringify({ schemaVersion: 1, name: "r", tag: "t", fsLayers: [] }));
    const f = serving(s1, { "content-type": "application/vnd.docker.distribution.manifest.v1+prettyjws" });
    expect((await caught(new RegistryClient(f.host, "r", fast, ["pull"]).getManifest("t"))).exitCode).toBe(6);
    const big = Buffer.alloc((4 << 20) + 1, 32);
    const g = serving(big, { "content-type": ociType });
    const e = await caught(new RegistryClient(g.host, "r", fast, ["pull"]).getManifest("t"));
    expect(e.exitCode).toBe(4);
    expect(e.message).toContain("larger than");
  });

  test("putManifest checks the registry's Docker-Content-Digest", async () => {
    const f = fake((req, url) => {
      if (url.pathname === "/v2/") return new Response("{}");
      return new Response(null, { status: 201, headers: { "docker-content-digest": sha(other) } });
    });
    const e = await caught(new RegistryClient(f.host, "r", fast, ["push"]).putManifest("t", ociManifest, ociType));
    expect(e.exitCode).toBe(4);
    expect(f.hits.at(-1)!.headers["content-type"]).toBe(ociType);
    expect(f.hits.at(-1)!.headers["content-length"]).toBe(String(ociManifest.length));
  });
});

describe("chunked upload recovery (fake registry)", () => {
  /** An upload endpoint keeping the bytes; `failPatch(n, stored)` decides whether PATCH n fails (after storing `stored` of it). */
  function uploads(failPatch: (n: number) => number | null, opts: { forgetSession?: boolean; failPuts?: number } = {}) {
    let failPuts = opts.failPuts ?? 0;
    const sessions = new Map<string, Buffer>();
    let patches = 0;
    let nextId = 0;
    const blobs = new Map<string, Buffer>();
    const f = fake(async (req, url) => {
      const p = url.pathname;
      if (p === "/v2/") return new Response("{}");
      const m = /^\/v2\/r\/blobs\/(sha256:[a-f0-9]+)$/.exec(p);
      if (m) return blobs.has(m[1]!) ? new Response(null, { headers: { "content-length": String(blobs.get(m[1]!)!.length) } }) : new Response(null, { status: 404 });
      if (req.method === "POST" && p === "/v2/r/blobs/uploads/") {
        const id = `u${nextId++}`;
        sessions.set(id, Buffer.alloc(0));
        return new Response(null, { status: 202, headers: { location: `/v2/r/blobs/uploads/${id}?_state=abc%3D%3D` } });
      }
      const u = /^\/v2\/r\/blobs\/uploads\/(u\d+)$/.exec(p);
      if (!u || url.searchParams.get("_state") !== "abc==") return new Response("bad location", { status: 400 });
      const have = sessions.get(u[1]!);
      if (!have) return new Response('{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown"}]}', { status: 404 });
      const loc = `/v2/r/blobs/uploads/${u[1]}?_state=abc%3D%3D`;
      if (req.method === "GET") return new Response(null, { status: 204, headers: { location: loc, range: `0-${Math.max(0, have.length - 1)}` } });
      const body = Buffer.from(await req.arrayBuffer());
      if (req.method === "PATCH") {
        const [s, e] = req.headers.get("content-range")!.split("-").map(Number);
        if (s !== have.length || e !== s! + body.length - 1) return new Response(null, { status: 416 });
        const fail = failPatch(patches++);
        if (fail !== null) {
          sessions.set(u[1]!, Buffer.concat([have, body.subarray(0, fail)]));
          if (opts.forgetSession) sessions.delete(u[1]!);
          return new Response("", { status: 500 });
        }
        sessions.set(u[1]!, Buffer.concat([have, body]));
        return new Response(null, { status: 202, headers: { location: loc, range: `0-${have.length + body.length - 1}` } });
      }
      if (req.method === "PUT") {
        if (failPuts-- > 0) return new Response("", { status: 502 });
        const all = Buffer.concat([have, body]);
        const d = url.searchParams.get("digest")!;
        if (sha(all) !== d) return new Response('{"errors":[{"code":"DIGEST_INVALID","message":"digest invalid"}]}', { status: 400 });
        blobs.set(d, all);
        sessions.delete(u[1]!);
        return new Response(null, { status: 201, headers: { "docker-content-digest": d } });
      }
      return new Response(null, { status: 405 });
    });
    return { f, blobs };
  }

  test("a failed chunk resumes from the registry's Range with open(offset); Location kept verbatim", async () => {
    const { f, blobs } = uploads((n) => (n === 1 ? 1000 : null));
    const data = randomBytes(100_000);
    const offsets: number[] = [];
    const c = new RegistryClient(f.host, "r", fast, ["pull", "push"], { chunkSize: 32 * 1024 });
    expect(await c.putBlob({ digest: sha(data), size: data.length }, source(data, offsets))).toBe("uploaded");
    expect(blobs.get(sha(data))!.equals(data)).toBe(true);
    expect(offsets).toEqual([0, 32 * 1024 + 1000]);
    for (const h of f.hits.filter((x) => x.method === "PATCH" || x.method === "PUT")) expect(h.headers["content-length"]).toBeDefined();
  });

  test("a monolithic PUT that fails is sent again in a new session, the source opened again", async () => {
    const { f, blobs } = uploads(() => null, { failPuts: 1 });
    const data = randomBytes(50_000);
    const offsets: number[] = [];
    const c = new RegistryClient(f.host, "r", fast, ["pull", "push"]);
    expect(await c.putBlob({ digest: sha(data), size: data.length }, source(data, offsets))).toBe("uploaded");
    expect(blobs.get(sha(data))!.equals(data)).toBe(true);
    expect(offsets).toEqual([0, 0]);
    expect(f.hits.filter((h) => h.method === "POST").length).toBe(2);
    const puts = f.hits.filter((h) => h.method === "PUT");
    expect(puts.map((h) => h.headers["content-length"])).toEqual([String(data.length), String(data.length)]);
    expect(puts[0]!.path).toContain(`_state=abc%3D%3D&digest=${encodeURIComponent(sha(data))}`);
  });

  test("a lost session restarts the upload with a new one from 0", async () => {
    const { f, blobs } = uploads((n) => (n === 2 ? 0 : null), { forgetSession: true });
    const data = randomBytes(100_000);
    const offsets: number[] = [];
    const c = new RegistryClient(f.host, "r", fast, ["pull", "push"], { chunkSize: 32 * 1024 });
    expect(await c.putBlob({ digest: sha(data), size: data.length }, source(data, offsets))).toBe("uploaded");
    expect(blobs.get(sha(data))!.equals(data)).toBe(true);
    expect(offsets).toEqual([0, 0]);
    expect(f.hits.filter((h) => h.method === "POST").length).toBe(2);
  });
});

describe("helpers", () => {
  test("parseChallenges: several challenges, quoted values, escapes", () => {
    expect(parseChallenges('Basic realm="x", Bearer realm="https://a/t",service="s",scope="repository:a/b:pull,push"')).toEqual([
      { scheme: "basic", params: { realm: "x" } },
      { scheme: "bearer", params: { realm: "https://a/t", service: "s", scope: "repository:a/b:pull,push" } },
    ]);
    expect(parseChallenges('Bearer realm="a\\"b",error=invalid_token')).toEqual([{ scheme: "bearer", params: { realm: 'a"b', error: "invalid_token" } }]);
    expect(parseChallenges("Negotiate abc==")).toEqual([{ scheme: "negotiate", params: { token68: "abc==" } }]);
  });

  test("Retry-After in seconds or as a date; Link rel=next; token-shaped text stripped", () => {
    expect(retryAfterMs("3")).toBe(3000);
    expect(retryAfterMs(new Date(Date.now() + 5000).toUTCString())).toBeGreaterThan(3000);
    expect(retryAfterMs("soon")).toBeUndefined();
    expect(nextLink('</v2/r/tags/list?n=2&last=b>; rel="next"')).toBe("/v2/r/tags/list?n=2&last=b");
    expect(nextLink(null)).toBeNull();
    expect(apiHost("docker.io")).toBe("registry-1.docker.io");
    expect(apiHost("127.0.0.1:5000")).toBe("127.0.0.1:5000");
    expect(stripTokens("bad Bearer abc.def.ghi here")).toBe("bad Bearer <redacted> here");
    expect(stripTokens("jwt eyJhbGciOi.eyJzdWIiOi.sig")).toBe("jwt <redacted>");
    const d = "sha256:" + "a".repeat(64);
    expect(stripTokens(`blob ${d}`)).toBe(`blob ${d}`);
  });
});
