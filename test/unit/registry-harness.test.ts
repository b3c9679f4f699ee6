/**
 * The registry test harness works: Debian's docker-registry answers `/v2/` as each auth mode
 * should (none, htpasswd over TLS, token over plain HTTP and over TLS), the token server checks
 * credentials and grants only the scope asked for, Debian's skopeo pushes an image made with boci
 * into each (`--dest-tls-verify=false`, `--dest-cert-dir`, `--dest-creds`), and the fault proxy
 * cuts, stalls and answers on schedule. Skips, saying so, without docker-registry/openssl/htpasswd
 * (or skopeo for the push).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { have, ok, scratch } from "../helpers/cli";
import { file, makeImage, makeTar, type Descriptor } from "../helpers/image";
import { registryFetch, registryMissing, runAsync, startRegistry, storedBlobs, type Registry } from "../helpers/registry";
import { libtrustKeyID } from "../helpers/token-server";
import { startFaultProxy } from "../helpers/fault-proxy";

const missing = registryMissing();
if (missing) console.warn(`registry-harness: skipped: ${missing}`);
const t = missing ? test.skip : test;
const ts = missing || !have("skopeo") ? test.skip : test;
if (!missing && !have("skopeo")) console.warn("registry-harness: skopeo pushes skipped: needs skopeo (Debian package skopeo)");

const basic = (u: string, p: string) => "Basic " + Buffer.from(`${u}:${p}`).toString("base64");
const caOf = (r: Registry) => (r.caFile ? { ca: readFileSync(r.caFile, "utf8") } : undefined);

function image(): { l: string; manifest: Descriptor; layers: Descriptor[]; config: Descriptor } {
  const l = join(scratch(), "src");
  ok(["init", "--layout", l]);
  const img = makeImage(l, "t", [makeTar([file("etc/hostname", "harness\n", { mtime: 1_600_000_000 })]), makeTar([file("etc/motd", "two\n")])]);
  return { l, ...img };
}

async function skopeoCopy(args: string[]): Promise<void> {
  // async: the token server answers from this process
  const p = await runAsync(["skopeo", "--insecure-policy", "copy", "-q", ...args]);
  if (p.code !== 0) throw new Error(`skopeo copy exited ${p.code}: ${p.stderr}`);
}

async function expectPushed(reg: Registry, repo: string, tag: string, img: ReturnType<typeof image>): Promise<void> {
  const r = await registryFetch(reg, `/v2/${repo}/manifests/${tag}`, { headers: { accept: img.manifest.mediaType } });
  expect(r.status).toBe(200);
  const bytes = Buffer.from(await r.arrayBuffer());
  expect(bytes.equals(readFileSync(join(img.l, "blobs/sha256", img.manifest.digest.slice(7))))).toBe(true);
  expect(r.headers.get("docker-content-digest")).toBe(img.manifest.digest);
  const blobs = storedBlobs(reg);
  for (const d of [img.config, ...img.layers]) expect(blobs.get(d.digest)).toBe(d.size);
}

describe("auth modes answer /v2/", () => {
  t("none, plain HTTP: 200 without credentials; stop() removes every file", async () => {
    const reg = await startRegistry({});
    const storage = reg.storage;
    try {
      expect(reg.host).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(reg.url).toBe(`http://${reg.host}`);
      const r = await fetch(`${reg.url}/v2/`);
      expect(r.status).toBe(200);
      expect(r.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
    } finally { await reg.stop(); }
    expect(existsSync(storage)).toBe(false);
    await expect(fetch(`${reg.url}/v2/`)).rejects.toThrow();
  });

  t("htpasswd over TLS: the CA verifies, Basic challenge, right and wrong credentials", async () => {
    const reg = await startRegistry({ auth: "htpasswd", tls: true });
    try {
      expect(reg.url).toBe(`https://${reg.host}`);
      expect(readFileSync(join(reg.certDir!, "ca.crt"), "utf8")).toBe(readFileSync(reg.caFile!, "utf8"));
      // the system CAs alone do not trust it
      await expect(fetch(`${reg.url}/v2/`)).rejects.toThrow();
      const anon = await fetch(`${reg.url}/v2/`, { tls: caOf(reg) });
      expect(anon.status).toBe(401);
      expect(anon.headers.get("www-authenticate")).toMatch(/^Basic realm=/);
      expect((await fetch(`${reg.url}/v2/`, { tls: caOf(reg), headers: { authorization: basic(reg.user!, reg.password!) } })).status).toBe(200);
      expect((await fetch(`${reg.url}/v2/`, { tls: caOf(reg), headers: { authorization: basic(reg.user!, "wrong") } })).status).toBe(401);
    } finally { await reg.stop(); }
  });

  t("TLS with a client certificate: refused without it, answered with the certs.d pair", async () => {
    const reg = await startRegistry({ tls: true, clientCert: true });
    try {
      expect(existsSync(join(reg.certDir!, "client.cert")) && existsSync(join(reg.certDir!, "client.key"))).toBe(true);
      await expect(fetch(`${reg.url}/v2/`, { tls: caOf(reg) })).rejects.toThrow();
      const tls = { ...caOf(reg), cert: readFileSync(join(reg.certDir!, "client.cert"), "utf8"), key: readFileSync(join(reg.certDir!, "client.key"), "utf8") };
      expect((await fetch(`${reg.url}/v2/`, { tls })).status).toBe(200);
      expect((await registryFetch(reg, "/v2/")).status).toBe(200);
    } finally { await reg.stop(); }
  });

  for (const tls of [false, true]) {
    t(`token${tls ? " over TLS" : ""}: Bearer challenge, token server checks Basic and grants the scope asked for`, async () => {
      const reg = await startRegistry({ auth: "token", tls });
      try {
        const ts = reg.tokenServer!;
        const anon = await fetch(`${reg.url}/v2/`, { tls: caOf(reg) });
        expect(anon.status).toBe(401);
        const ch = anon.headers.get("www-authenticate")!;
        expect(ch).toContain(`Bearer realm="${ts.realm}"`);
        expect(ch).toContain(`service="${ts.service}"`);
        const tok = async (scope: string, auth?: string) => {
          const r = await fetch(`${ts.realm}?service=${ts.service}&scope=${encodeURIComponent(scope)}`, { tls: caOf(reg), headers: auth ? { authorization: auth } : {} });
          return { status: r.status, token: r.ok ? ((await r.json()) as { token: string }).token : "" };
        };
        expect((await tok("repository:a/b:pull", basic(reg.user!, "wrong"))).status).toBe(401);
        const pull = await tok("repository:a/b:pull", basic(reg.user!, reg.password!));
        expect(pull.status).toBe(200);
        const [h, c] = pull.token.split(".").slice(0, 2).map((s) => JSON.parse(Buffer.from(s, "base64url").toString()));
        expect(h.kid).toMatch(/^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
        expect(c.access).toEqual([{ type: "repository", name: "a/b", actions: ["pull"] }]);
        const get = (path: string, token: string) => fetch(`${reg.url}${path}`, { tls: caOf(reg), headers: { authorization: `Bearer ${token}` } });
        expect((await get("/v2/", pull.token)).status).toBe(200);
        // the repository does not exist yet: authorised, then unknown
        expect((await get("/v2/a/b/tags/list", pull.token)).status).toBe(404);
        // a token for another repository, or an anonymous one, is refused there
        expect((await get("/v2/a/b/tags/list", (await tok("repository:c/d:pull", basic(reg.user!, reg.password!))).token)).status).toBe(401);
        const anonTok = await tok("repository:a/b:pull");
        expect(anonTok.status).toBe(200);
        expect((await get("/v2/a/b/tags/list", anonTok.token)).status).toBe(401);
        // a pull token cannot start an upload
        const post = await fetch(`${reg.url}/v2/a/b/blobs/uploads/`, { method: "POST", tls: caOf(reg), headers: { authorization: `Bearer ${pull.token}` } });
        expect(post.status).toBe(401);
        expect(ts.requests.map((r) => r.who)).toEqual(["denied", "basic", "basic", "anonymous"]);
        expect(JSON.stringify(ts.requests)).not.toContain(reg.password!);
      } finally { await reg.stop(); }
    });
  }

  test("libtrust key ID of a known key", () => {
    // the keyIDEncode of SHA-256(SPKI)[:30]: 48 base32 characters in 12 groups
    const pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYD54V/vp+54P9DXarYqx4MPcm+HK\nRIQzNasYSoRQHQ/6S6Ps8tpMcT+KvIIC8W/e9k0W7Cm72M1P9jU7SLf/vg==\n-----END PUBLIC KEY-----\n";
    const der = Buffer.from(pem.split("\n").slice(1, 3).join(""), "base64");
    const h = new Bun.CryptoHasher("sha256").update(der).digest().subarray(0, 30);
    // base32 of 30 bytes is exactly 48 characters, no padding
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bin = "";
    for (const b of h) bin += b.toString(2).padStart(8, "0");
    const b32 = bin.match(/.{5}/g)!.map((s) => alphabet[parseInt(s, 2)]).join("");
    expect(libtrustKeyID(pem)).toBe(b32.match(/.{4}/g)!.join(":"));
  });
});

describe("skopeo pushes into each", () => {
  ts("plain HTTP, no auth: --dest-tls-verify=false", async () => {
    const reg = await startRegistry({});
    try {
      const img = image();
      await skopeoCopy(["--dest-tls-verify=false", `oci:${img.l}:t`, `docker://${reg.host}/harness/app:t`]);
      await expectPushed(reg, "harness/app", "t", img);
    } finally { await reg.stop(); }
  });

  ts("htpasswd over TLS: --dest-cert-dir and --dest-creds", async () => {
    const reg = await startRegistry({ auth: "htpasswd", tls: true });
    try {
      const img = image();
      await skopeoCopy(["--dest-cert-dir", reg.certDir!, "--dest-creds", `${reg.user}:${reg.password}`, `oci:${img.l}:t`, `docker://${reg.host}/harness/app:t`]);
      await expectPushed(reg, "harness/app", "t", img);
    } finally { await reg.stop(); }
  });

  ts("token auth over TLS: --dest-cert-dir and --dest-creds, the token asked with push scope", async () => {
    const reg = await startRegistry({ auth: "token", tls: true });
    try {
      const img = image();
      await skopeoCopy(["--dest-cert-dir", reg.certDir!, "--dest-creds", `${reg.user}:${reg.password}`, `oci:${img.l}:t`, `docker://${reg.host}/harness/app:t`]);
      await expectPushed(reg, "harness/app", "t", img);
      expect(reg.tokenServer!.requests.some((r) => r.who === "basic" && r.scopes.some((s) => s === "repository:harness/app:pull,push"))).toBe(true);
    } finally { await reg.stop(); }
  });

  ts("TLS with a client certificate: --dest-cert-dir holding ca.crt, client.cert, client.key", async () => {
    const reg = await startRegistry({ tls: true, clientCert: true });
    try {
      const img = image();
      await skopeoCopy(["--dest-cert-dir", reg.certDir!, `oci:${img.l}:t`, `docker://${reg.host}/harness/app:t`]);
      await expectPushed(reg, "harness/app", "t", img);
    } finally { await reg.stop(); }
  });

  ts("token auth, plain HTTP: --dest-tls-verify=false --dest-creds", async () => {
    const reg = await startRegistry({ auth: "token" });
    try {
      const img = image();
      await skopeoCopy(["--dest-tls-verify=false", "--dest-creds", `${reg.user}:${reg.password}`, `oci:${img.l}:t`, `docker://${reg.host}/harness/app:t`]);
      await expectPushed(reg, "harness/app", "t", img);
    } finally { await reg.stop(); }
  });
});

describe("fault proxy", () => {
  let reg: Registry;
  const big = Buffer.alloc(300_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
  const bigDigest = "sha256:" + new Bun.CryptoHasher("sha256").update(big).digest("hex");
  beforeAll(async () => {
    if (missing) return;
    reg = await startRegistry({});
    // one blob in the registry, uploaded monolithically
    const post = await fetch(`${reg.url}/v2/fp/blob/blobs/uploads/`, { method: "POST" });
    const loc = new URL(post.headers.get("location")!, reg.url);
    loc.searchParams.set("digest", bigDigest);
    const put = await fetch(loc, { method: "PUT", body: big, headers: { "content-type": "application/octet-stream" } });
    expect(put.status).toBe(201);
  });
  afterAll(async () => { await reg?.stop(); });

  t("forwards, rewrites nothing it need not, logs Range and bytes", async () => {
    const p = await startFaultProxy(reg.url);
    try {
      const r = await fetch(`${p.url}/v2/fp/blob/blobs/${bigDigest}`, { headers: { range: "bytes=1000-" } });
      const body = Buffer.from(await r.arrayBuffer());
      expect(r.status).toBe(206);
      expect(body.equals(big.subarray(1000))).toBe(true);
      expect(p.log.at(-1)).toMatchObject({ method: "GET", range: "bytes=1000-", status: 206, bytesDown: big.length - 1000 });
      expect(p.bytesDown(bigDigest)).toBe(big.length - 1000);
      // an upload's Location names the proxy
      const post = await fetch(`${p.url}/v2/fp/other/blobs/uploads/`, { method: "POST" });
      expect(post.status).toBe(202);
      expect(new URL(post.headers.get("location")!, p.url).host).toBe(p.host);
    } finally { await p.stop(); }
  });

  t("drops a response after N bytes, then lets the next one through", async () => {
    const p = await startFaultProxy(reg.url, [{ method: "GET", path: "/blobs/", action: { kind: "drop", afterBytes: 65_536 } }]);
    try {
      await expect(fetch(`${p.url}/v2/fp/blob/blobs/${bigDigest}`).then((r) => r.arrayBuffer())).rejects.toThrow();
      expect(p.log[0]).toMatchObject({ fault: "drop", bytesDown: 65_536 });
      const again = Buffer.from(await (await fetch(`${p.url}/v2/fp/blob/blobs/${bigDigest}`)).arrayBuffer());
      expect(again.equals(big)).toBe(true);
      expect(p.counts).toEqual({ drop: 1 });
    } finally { await p.stop(); }
  });

  t("drops a request body after N bytes (an upload cut)", async () => {
    const p = await startFaultProxy(reg.url, [{ method: ["PATCH", "PUT"], action: { kind: "drop", afterBytes: 10_000 } }]);
    try {
      const post = await fetch(`${p.url}/v2/fp/up/blobs/uploads/`, { method: "POST" });
      const loc = new URL(post.headers.get("location")!, p.url);
      const chunks = [big.subarray(0, 100_000), big.subarray(100_000, 200_000)];
      let i = 0;
      const body = new ReadableStream({ pull(c) { if (i < chunks.length) c.enqueue(chunks[i++]); else c.close(); } });
      await expect(fetch(loc, { method: "PATCH", body, headers: { "content-type": "application/octet-stream" } }).then((r) => r.arrayBuffer())).rejects.toThrow();
      expect(p.log.at(-1)).toMatchObject({ method: "PATCH", fault: "drop", bytesUp: 10_000 });
    } finally { await p.stop(); }
  });

  t("answers 429 with Retry-After and 500 in a burst, every other request", async () => {
    const p = await startFaultProxy(reg.url, [
      { path: "/v2/fp/blob/manifests", action: { kind: "status", status: 429, retryAfter: 1 } },
      { path: "/tags/list", every: 2, times: 2, action: { kind: "status", status: 500 } },
    ]);
    try {
      const a = await fetch(`${p.url}/v2/fp/blob/manifests/nope`);
      expect(a.status).toBe(429);
      expect(a.headers.get("retry-after")).toBe("1");
      expect(((await a.json()) as { errors: Array<{ code: string }> }).errors[0].code).toBe("TOOMANYREQUESTS");
      expect((await fetch(`${p.url}/v2/fp/blob/manifests/nope`)).status).toBe(404);
      const codes: number[] = [];
      for (let i = 0; i < 5; i++) codes.push((await fetch(`${p.url}/v2/fp/blob/tags/list`)).status);
      expect(codes).toEqual([500, 404, 500, 404, 404]);
      expect(p.counts).toEqual({ status: 3, "status:429": 1, "status:500": 2 });
    } finally { await p.stop(); }
  });

  t("stalls a body for a while, then completes it", async () => {
    const p = await startFaultProxy(reg.url, [{ path: bigDigest, action: { kind: "stall", afterBytes: 1000, ms: 700 } }]);
    try {
      const t0 = Date.now();
      const body = Buffer.from(await (await fetch(`${p.url}/v2/fp/blob/blobs/${bigDigest}`)).arrayBuffer());
      expect(Date.now() - t0).toBeGreaterThanOrEqual(650);
      expect(body.equals(big)).toBe(true);
      expect(p.log[0]).toMatchObject({ fault: "stall", bytesDown: big.length });
    } finally { await p.stop(); }
  });
});
