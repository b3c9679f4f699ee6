/**
 * `boci copy` to and from a real registry (Debian's docker-registry on 127.0.0.1) through the
 * fault proxy (test/helpers/fault-proxy.ts): connections cut mid-blob while pulling and while
 * pushing (monolithic PUT and chunked PATCH), bursts of 500 and 429 (Retry-After), a stalled
 * body (the stall timeout lowered by BOCI_REGISTRY_STALL_MS), retries exhausted, and `kill -9`
 * of boci mid-pull and mid-push followed by a rerun. Every run ends with a complete, valid image
 * (test/helpers/check-layout.ts on the pulled layout; the registry's storage and manifest for a
 * push), a failed run leaves no tag, and the rerun of a pull asks only for the bytes it lacks
 * (counted through the proxy). Behind token auth: a 401 mid-pull (an expired token) gets a new
 * token; docker:// to docker:// on one registry mounts every blob. Skips, saying so, without
 * docker-registry.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, ok, scratch } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";
import { file, makeImage, makeTar, type Descriptor } from "../helpers/image";
import { rng } from "../helpers/rng";
import { registryFetch, registryMissing, runAsync, startRegistry, storedBlobs, type Registry } from "../helpers/registry";
import { startFaultProxy, type FaultProxy, type ProxyLogEntry } from "../helpers/fault-proxy";

const why = registryMissing();
if (why) console.warn(`registry-faults: skipped: ${why}`);
const t = why ? test.skip : test;

/**
 * Chunked uploads above 1 MiB (so a 6 MiB layer goes in PATCHes); a stall noticed after 5 s (the
 * stall test lowers it to 1.5 s; 5 s keeps a loaded CI machine from seeing stalls of its own).
 */
const ENV = { BOCI_REGISTRY_CHUNK_SIZE: String(1 << 20), BOCI_REGISTRY_STALL_MS: "5000" };
const TLS = "--tls-verify=false";

function noise(n: number, seed: number): Buffer {
  const r = rng(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE((r() * 0x1_0000_0000) >>> 0, i);
  return b;
}

interface Img { l: string; manifest: Descriptor; big: Descriptor; small: Descriptor; config: Descriptor }
/** A layout with one image: a ~6 MiB incompressible layer (big), a small one, tag `t`. */
function image(seed: number): Img {
  const l = join(scratch(), "src");
  ok(["init", "--layout", l]);
  const img = makeImage(l, "t", [
    makeTar([file("data/noise", noise(6 << 20, seed), { mtime: 1_600_000_000 })]),
    makeTar([file("etc/motd", `seed ${seed}\n`, { mtime: 1_600_000_000 })]),
  ], { architecture: "amd64" });
  return { l, manifest: img.manifest, big: img.layers[0], small: img.layers[1], config: img.config };
}

const blobBytes = (l: string, d: Descriptor) => readFileSync(join(l, "blobs/sha256", d.digest.slice(7)));
const tags = (l: string): string[] => existsSync(join(l, "index.json"))
  ? (JSON.parse(readFileSync(join(l, "index.json"), "utf8")).manifests ?? []).map((m: Descriptor) => m.annotations?.["org.opencontainers.image.ref.name"])
  : [];

let reg: Registry;
let proxy: FaultProxy;
beforeAll(async () => {
  if (why) return;
  reg = await startRegistry({});
  proxy = await startFaultProxy(reg.url);
});
afterAll(async () => {
  await proxy?.stop();
  await reg?.stop();
});
// each test starts with no rule and no fault counted
afterEach(() => {
  if (!proxy) return;
  proxy.rules.length = 0;
  for (const k of Object.keys(proxy.counts)) delete proxy.counts[k];
});

async function boci(args: string[], env: Record<string, string> = {}) {
  return runAsync([BIN, "copy", "--json", ...args], { env: { ...ENV, ...env } });
}
async function mustCopy(args: string[], env: Record<string, string> = {}) {
  const r = await boci(args, env);
  if (r.code !== 0) throw new Error(`boci copy exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
/** Push `img` straight to the registry (no proxy), to set up a pull. */
async function seed(img: Img, repo: string): Promise<string> {
  await mustCopy([TLS, `oci:${img.l}:t`, `docker://${reg.host}/${repo}:t`]);
  return `docker://${proxy.host}/${repo}:t`;
}
/** The image the registry holds under repo:t is exactly img: manifest bytes, every blob with its size. */
async function expectInRegistry(img: Img, repo: string): Promise<void> {
  const r = await registryFetch(reg, `/v2/${repo}/manifests/t`, { headers: { accept: img.manifest.mediaType } });
  expect(r.status).toBe(200);
  expect(Buffer.from(await r.arrayBuffer()).equals(blobBytes(img.l, img.manifest))).toBe(true);
  const blobs = storedBlobs(reg);
  for (const d of [img.config, img.big, img.small]) expect(blobs.get(d.digest)).toBe(d.size);
  // and it pulls back whole, straight from the registry
  const back = join(scratch(), "check");
  await mustCopy([TLS, `docker://${reg.host}/${repo}:t`, `oci:${back}:t`]);
  expect(checkLayout(back)).toEqual([]);
  expect(blobBytes(back, img.big).equals(blobBytes(img.l, img.big))).toBe(true);
}
function expectPulled(dst: string, img: Img): void {
  expect(checkLayout(dst)).toEqual([]);
  expect(tags(dst)).toEqual(["t"]);
  expect(blobBytes(dst, img.manifest).equals(blobBytes(img.l, img.manifest))).toBe(true);
}
const since = (n: number): ProxyLogEntry[] => proxy.log.slice(n);
const blobGets = (entries: ProxyLogEntry[], d: Descriptor) => entries.filter((e) => e.method === "GET" && e.path.includes(`/blobs/${d.digest}`));

describe("pull through faults", () => {
  t("a connection cut mid-blob: retried from where it stopped", async () => {
    const img = image(1);
    const src = await seed(img, "faults/pull-drop");
    const start = proxy.log.length;
    proxy.rules.push({ method: "GET", path: img.big.digest, action: { kind: "drop", afterBytes: 2 << 20 } });
    const dst = join(scratch(), "dst");
    await mustCopy([TLS, src, `oci:${dst}:t`]);
    expectPulled(dst, img);
    const gets = blobGets(since(start), img.big);
    expect(gets[0]).toMatchObject({ fault: "drop", bytesDown: 2 << 20 });
    expect(gets.length).toBeGreaterThanOrEqual(2);
    // Resumed with a Range, not fetched again from 0: from the bytes boci had on disk when the
    // connection broke, which may be fewer than the proxy sent (what was still in flight, in the
    // kernel's or TLS's buffers, is lost with the connection).
    const m = /^bytes=(\d+)-$/.exec(gets[1].range ?? "");
    expect(m).not.toBeNull();
    const from = Number(m![1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(2 << 20);
    expect(gets.slice(1).reduce((a, e) => a + e.bytesDown, 0)).toBe(img.big.size - from);
  });

  t("bursts of 500 and 429 (Retry-After): the pull ends whole", async () => {
    const img = image(2);
    const src = await seed(img, "faults/pull-burst");
    const start = proxy.log.length;
    proxy.rules.push(
      { path: "/manifests/", times: 2, action: { kind: "status", status: 429, retryAfter: 1 } },
      { method: "GET", path: "/blobs/", every: 2, times: 3, action: { kind: "status", status: 500 } },
      { method: "GET", path: "/blobs/", skip: 1, times: 1, action: { kind: "status", status: 503 } },
    );
    const dst = join(scratch(), "dst");
    const t0 = Date.now();
    await mustCopy([TLS, src, `oci:${dst}:t`]);
    expectPulled(dst, img);
    expect(proxy.counts["status:429"]).toBe(2);
    expect(proxy.counts["status:500"]).toBeGreaterThanOrEqual(1);
    expect(proxy.counts["status:503"]).toBe(1);
    // the two 429s asked for a second each
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
    expect(since(start).some((e) => e.status === 200 && e.path.includes(img.big.digest))).toBe(true);
  });

  t("a stalled body: given up after BOCI_REGISTRY_STALL_MS, resumed", async () => {
    const img = image(3);
    const src = await seed(img, "faults/pull-stall");
    const start = proxy.log.length;
    proxy.rules.push({ method: "GET", path: img.big.digest, action: { kind: "stall", afterBytes: 1 << 20, ms: 60_000 } });
    const dst = join(scratch(), "dst");
    const t0 = Date.now();
    await mustCopy([TLS, src, `oci:${dst}:t`], { BOCI_REGISTRY_STALL_MS: "1500" });
    expect(Date.now() - t0).toBeLessThan(30_000);
    expectPulled(dst, img);
    const gets = blobGets(since(start), img.big);
    expect(gets[0].fault).toBe("stall");
    expect(gets.at(-1)!.range).toMatch(/^bytes=[1-9]\d*-$/);
  });

  t("retries run out: exit 1, one line naming the registry, no tag, no layout left", async () => {
    const img = image(4);
    const src = await seed(img, "faults/pull-fail");
    proxy.rules.push({ method: "GET", path: img.big.digest, times: Infinity, action: { kind: "status", status: 500 } });
    const dst = join(scratch(), "dst");
    const r = await boci(["--retry-times", "2", TLS, src, `oci:${dst}:t`]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(proxy.host);
    expect(r.stderr).toContain("faults/pull-fail");
    expect(existsSync(dst)).toBe(false);
    // the first try and two retries (the resumable download may add rounds of its own)
    expect(blobGets(proxy.log, img.big).filter((e) => e.status === 500).length).toBeGreaterThanOrEqual(3);
  });

  t("kill -9 mid-pull, then a rerun: completes, asking only for the missing bytes", async () => {
    const img = image(5);
    const src = await seed(img, "faults/pull-kill");
    const start = proxy.log.length;
    const cut = 3 << 20;
    proxy.rules.push({ method: "GET", path: img.big.digest, action: { kind: "stall", afterBytes: cut, ms: 120_000 } });
    const dst = join(scratch(), "dst");
    const p = Bun.spawn([BIN, "copy", TLS, src, `oci:${dst}:t`], { env: { ...process.env, ...ENV, BOCI_REGISTRY_STALL_MS: "60000" }, stdout: "ignore", stderr: "ignore" });
    try {
      await proxy.waitFor(() => proxy.bytesDown(img.big.digest) - 0 >= cut && blobGets(since(start), img.big).length > 0);
      await Bun.sleep(500); // let boci write what it received
    } finally { p.kill("SIGKILL"); }
    await p.exited;
    expect(tags(dst)).toEqual([]);
    proxy.rules.length = 0;
    const rerun = proxy.log.length;
    await mustCopy([TLS, src, `oci:${dst}:t`]);
    expectPulled(dst, img);
    const again = blobGets(since(rerun), img.big);
    expect(again).toHaveLength(1);
    expect(again[0].range).toMatch(/^bytes=[1-9]\d*-$/);
    const from = Number(/^bytes=(\d+)-$/.exec(again[0].range!)![1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(cut);
    expect(again[0].bytesDown).toBe(img.big.size - from);
    expect(existsSync(join(dst, ".boci-tmp")) ? Bun.spawnSync(["ls", "-A", join(dst, ".boci-tmp")]).stdout.toString().trim() : "").toBe("");
  });
});

describe("push through faults", () => {
  t("connections cut mid-PATCH and mid-PUT: the push ends whole", async () => {
    const img = image(6);
    proxy.rules.push(
      { method: "PATCH", action: { kind: "drop", afterBytes: 300_000 } },
      { method: "PUT", path: "/blobs/uploads/", action: { kind: "drop", afterBytes: 100 } },
    );
    await mustCopy([TLS, `oci:${img.l}:t`, `docker://${proxy.host}/faults/push-drop:t`]);
    expect(proxy.counts.drop).toBe(2);
    await expectInRegistry(img, "faults/push-drop");
  });

  t("bursts of 500 and 429 on uploads and the manifest: the push ends whole", async () => {
    const img = image(7);
    proxy.rules.push(
      { method: "POST", times: 2, action: { kind: "status", status: 500 } },
      { method: "HEAD", every: 2, times: 2, action: { kind: "status", status: 503 } },
      { method: "PATCH", times: 1, action: { kind: "status", status: 429, retryAfter: 1 } },
      { method: "PUT", path: "/manifests/", times: 2, action: { kind: "status", status: 502 } },
    );
    await mustCopy([TLS, `oci:${img.l}:t`, `docker://${proxy.host}/faults/push-burst:t`]);
    expect(proxy.counts["status:500"]).toBe(2);
    expect(proxy.counts["status:503"]).toBe(2);
    expect(proxy.counts["status:429"]).toBe(1);
    expect(proxy.counts["status:502"]).toBe(2);
    await expectInRegistry(img, "faults/push-burst");
  });

  t("the manifest refused past the retries: exit 1, no tag in the registry", async () => {
    const img = image(8);
    proxy.rules.push({ method: "PUT", path: "/manifests/", times: Infinity, action: { kind: "status", status: 500 } });
    const r = await boci(["--retry-times", "1", TLS, `oci:${img.l}:t`, `docker://${proxy.host}/faults/push-fail:t`]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("faults/push-fail");
    expect((await registryFetch(reg, "/v2/faults/push-fail/manifests/t")).status).toBe(404);
  });

  t("kill -9 mid-push, then a rerun: the blobs already there are skipped, the tag comes last", async () => {
    const img = image(9);
    const ref = `docker://${proxy.host}/faults/push-kill:t`;
    // every upload of the big layer stalls (its PATCHes, or its PUT); the small ones go through
    proxy.rules.push({ method: ["PATCH", "PUT"], path: /\/blobs\/uploads\//, times: Infinity, body: "request", action: { kind: "stall", afterBytes: 200_000, ms: 120_000 } });
    const p = Bun.spawn([BIN, "copy", TLS, `oci:${img.l}:t`, ref], { env: { ...process.env, ...ENV, BOCI_REGISTRY_STALL_MS: "60000" }, stdout: "ignore", stderr: "ignore" });
    try {
      await proxy.waitFor(() => { const b = storedBlobs(reg); return b.has(img.config.digest) && b.has(img.small.digest) && proxy.counts.stall > 0; });
    } finally { p.kill("SIGKILL"); }
    await p.exited;
    expect((await registryFetch(reg, "/v2/faults/push-kill/manifests/t")).status).toBe(404);
    proxy.rules.length = 0;
    const rerun = proxy.log.length;
    const summary = await mustCopy([TLS, `oci:${img.l}:t`, ref]);
    await expectInRegistry(img, "faults/push-kill");
    const log = since(rerun);
    // the config and the small layer were found (HEAD 200) and not sent again
    for (const d of [img.config, img.small]) {
      expect(log.some((e) => e.method === "HEAD" && e.path.includes(d.digest) && e.status === 200)).toBe(true);
      const named = (e: ProxyLogEntry) => e.path.includes(d.digest) || e.path.includes(encodeURIComponent(d.digest));
      expect(log.some((e) => e.method === "PUT" && named(e))).toBe(false);
    }
    expect(summary.blobsSkipped).toBeGreaterThanOrEqual(2);
    const up = log.reduce((a, e) => a + e.bytesUp, 0);
    expect(up).toBeLessThan(img.big.size + img.manifest.size + 4096);
    expect(up).toBeGreaterThanOrEqual(img.big.size);
  });
});

describe("token auth through the proxy", () => {
  let treg: Registry;
  let tproxy: FaultProxy;
  beforeAll(async () => {
    if (why) return;
    treg = await startRegistry({ auth: "token" });
    tproxy = await startFaultProxy(treg.url);
  });
  afterAll(async () => {
    await tproxy?.stop();
    await treg?.stop();
  });

  t("a token refused mid-pull (401 with a fresh Bearer challenge, as on expiry): a new token, the pull ends whole", async () => {
    const img = image(11);
    const creds = `${treg.user}:${treg.password}`;
    await mustCopy([TLS, "--dest-creds", creds, `oci:${img.l}:t`, `docker://${treg.host}/expiry/app:t`]);
    const ts = treg.tokenServer!;
    const challenge = `Bearer realm="${ts.realm}",service="${ts.service}",scope="repository:expiry/app:pull"`;
    tproxy.rules.push({ method: "GET", path: img.big.digest, action: { kind: "status", status: 401, headers: { "WWW-Authenticate": challenge } } });
    const tokens = ts.requests.length;
    const dst = join(scratch(), "dst");
    await mustCopy([TLS, "--src-creds", creds, `docker://${tproxy.host}/expiry/app:t`, `oci:${dst}:t`]);
    expectPulled(dst, img);
    expect(tproxy.counts["status:401"]).toBe(1);
    // the first token, then one more after the 401
    expect(ts.requests.length - tokens).toBeGreaterThanOrEqual(2);
    expect(ts.requests.slice(tokens).every((r) => r.who === "basic")).toBe(true);
  });

  t("every blob is mounted from the source repository (one token for both scopes), only the manifest is sent", async () => {
    const img = image(10);
    const creds = `${treg.user}:${treg.password}`;
    await mustCopy([TLS, "--dest-creds", creds, `oci:${img.l}:t`, `docker://${tproxy.host}/mount/src:t`]);
    const start = tproxy.log.length;
    const tokens = treg.tokenServer!.requests.length;
    // a 503 on the first mount is retried like any other request
    tproxy.rules.push({ method: "POST", path: "mount=", action: { kind: "status", status: 503, retryAfter: 0 } });
    await mustCopy(["--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", creds, "--dest-creds", creds,
      `docker://${tproxy.host}/mount/src:t`, `docker://${tproxy.host}/mount/dst:t`]);
    const log = tproxy.log.slice(start);
    expect(tproxy.counts["status:503"]).toBe(1);
    for (const d of [img.config, img.big, img.small]) {
      expect(log.some((e) => e.method === "POST" && e.status === 201 && e.path.includes(`mount=${encodeURIComponent(d.digest)}`) && e.path.includes(`from=${encodeURIComponent("mount/src")}`))).toBe(true);
    }
    expect(log.filter((e) => e.method === "PATCH")).toHaveLength(0);
    expect(log.reduce((a, e) => a + e.bytesUp, 0)).toBe(img.manifest.size);
    // the big layer never crossed the wire
    expect(log.filter((e) => e.path.includes(img.big.digest)).reduce((a, e) => a + e.bytesDown, 0)).toBe(0);
    expect(treg.tokenServer!.requests.slice(tokens).some((r) => r.scopes.includes("repository:mount/src:pull") && r.scopes.includes("repository:mount/dst:pull,push"))).toBe(true);
    const r = await registryFetch(treg, "/v2/mount/dst/manifests/t", { headers: { accept: img.manifest.mediaType } });
    expect(r.status).toBe(200);
    expect(Buffer.from(await r.arrayBuffer()).equals(blobBytes(img.l, img.manifest))).toBe(true);
    const back = join(scratch(), "mounted");
    await mustCopy(["--src-tls-verify=false", "--src-creds", creds, `docker://${treg.host}/mount/dst:t`, `oci:${back}:t`]);
    expectPulled(back, img);
  });
});
