/**
 * `boci copy` to and from `docker://` through the real binary, against Debian's docker-registry
 * (CNCF distribution 2.8) on 127.0.0.1 over plain HTTP (`--src-tls-verify=false` /
 * `--dest-tls-verify=false`): a push then a pull byte-identical (manifest and blobs), a rerun that
 * skips what the registry has, a docker-archive → registry → layout chain, an index with `--all`
 * (and `--platform`), a pull killed with SIGKILL mid-blob that resumes on the rerun with a Range
 * request (fewer bytes fetched than the blob), a registry answering a wrong blob (exit 4, no tag,
 * no partial left), the tag never there before every blob, and credentials kept out of the output.
 *
 * Pulls that need a fault go through a small proxy defined here (it forwards GETs and HEADs to
 * the registry, counts the bytes of every blob it serves, can stall one blob after N bytes or
 * flip a byte of one): the faults are the test's, the registry is real.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { BIN, boci, ok, scratch } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";
import { makeDockerArchive } from "../helpers/archive";
import { MT, corruptBlob, dir, file, makeImage, makeIndex, makeTar, setTag, sha256hex, writeBlob, type Descriptor } from "../helpers/image";
import { type Registry, registryMissing, startRegistry } from "../helpers/registry";

const REF = "org.opencontainers.image.ref.name";
const missing = registryMissing();
if (missing) console.warn(`registry-copy tests skipped: ${missing}`);
const maybe = missing ? describe.skip : describe;

const index = (l: string) => JSON.parse(readFileSync(join(l, "index.json"), "utf8"));
const tags = (l: string): string[] => (index(l).manifests ?? []).map((d: Descriptor) => d.annotations?.[REF]);
const blob = (l: string, digest: string) => readFileSync(join(l, "blobs", ...digest.split(":")));
const json = (l: string, digest: string) => JSON.parse(blob(l, digest).toString());
const PLAIN_SRC = "--src-tls-verify=false";
const PLAIN_DST = "--dest-tls-verify=false";
/** Fast retries, short stalls: the faults here are deliberate. */
const ENV = { BOCI_REGISTRY_STALL_MS: "5000" };

/** Run the binary without blocking this process (the proxy lives in it and must answer). */
async function bociAsync(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn([BIN, ...args], { env: { ...process.env, ...ENV }, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

function newLayout(where = scratch()): string {
  const l = join(where, "layout");
  ok(["init", "--layout", l]);
  return l;
}

/** Every blob of manifest `digest` is in both layouts with the same bytes. */
function sameImage(a: string, b: string, digest: string): void {
  expect(blob(b, digest).equals(blob(a, digest))).toBe(true);
  const m = json(a, digest);
  for (const d of [m.config, ...m.layers]) expect(blob(b, d.digest).equals(blob(a, d.digest))).toBe(true);
}

const layer1 = makeTar([dir("etc/"), file("etc/hostname", "boci\n"), file("bin/sh", "#!x\n", { mode: 0o755 })]);
/** Random bytes compress to nothing less: the layer blob is about this big. */
const bigLayer = (n: number) => makeTar([file("data/random", randomBytes(n))]);

/** A fault proxy for pulls: GET/HEAD forwarded to the registry, blob bytes counted, faults on request. */
class PullProxy {
  readonly server: ReturnType<typeof Bun.serve>;
  /** bytes of each blob's bodies served (by digest), and the Range headers asked for */
  served = new Map<string, number>();
  ranges: string[] = [];
  stall: { digest: string; afterBytes: number; release?: () => void; reached?: boolean } | null = null;
  tamper: string | null = null;
  /** a pause before each blob body, and the most blob bodies under way at once */
  delayMs = 0;
  private active = 0;
  maxActive = 0;

  constructor(upstream: string) {
    this.server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      idleTimeout: 0,
      fetch: (req) => this.handle(req, upstream),
    });
  }
  get host(): string { return `127.0.0.1:${this.server.port}`; }

  private async handle(req: Request, upstream: string): Promise<Response> {
    const url = new URL(req.url);
    if (req.method !== "GET" && req.method !== "HEAD") return new Response("read-only proxy", { status: 405 });
    const headers = new Headers(req.headers);
    headers.delete("host");
    const res = await fetch(upstream + url.pathname + url.search, { method: req.method, headers, redirect: "manual" });
    const m = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (!m || req.method !== "GET" || !res.body) return new Response(res.body, { status: res.status, headers: res.headers });
    const digest = m[1]!;
    if (req.headers.get("range")) this.ranges.push(`${digest} ${req.headers.get("range")}`);
    const reader = res.body.getReader();
    let sent = 0;
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    let open = true;
    const closed = () => { if (open) { open = false; this.active--; } };
    if (this.delayMs) await Bun.sleep(this.delayMs);
    const body = new ReadableStream<Uint8Array>({
      pull: async (ctl) => {
        const st = this.stall;
        if (st && st.digest === digest && sent >= st.afterBytes) {
          st.reached = true;
          await new Promise<void>((resolve) => { st.release = resolve; });
        }
        const r = await reader.read();
        if (r.done) { closed(); ctl.close(); return; }
        let chunk = r.value;
        if (st && st.digest === digest && sent < st.afterBytes && sent + chunk.length > st.afterBytes) {
          const keep = st.afterBytes - sent;
          ctl.enqueue(chunk.subarray(0, keep));
          sent += keep;
          this.count(digest, keep);
          // the rest after the stall
          const rest = chunk.subarray(keep);
          st.reached = true;
          await new Promise<void>((resolve) => { st.release = resolve; });
          ctl.enqueue(rest);
          sent += rest.length;
          this.count(digest, rest.length);
          return;
        }
        if (this.tamper === digest && sent === 0 && chunk.length > 0) {
          chunk = Uint8Array.from(chunk);
          chunk[0] = chunk[0]! ^ 0xff;
        }
        sent += chunk.length;
        this.count(digest, chunk.length);
        ctl.enqueue(chunk);
      },
      cancel: () => { closed(); void reader.cancel(); },
    });
    return new Response(body, { status: res.status, headers: res.headers });
  }
  private count(digest: string, n: number): void {
    this.served.set(digest, (this.served.get(digest) ?? 0) + n);
  }
  reset(): void {
    this.served.clear();
    this.ranges = [];
    this.stall?.release?.();
    this.stall = null;
    this.tamper = null;
    this.delayMs = 0;
    this.maxActive = 0;
  }
  stop(): void {
    this.stall?.release?.();
    this.server.stop(true);
  }
}

maybe("boci copy with docker://", () => {
  let reg: Registry;
  let proxy: PullProxy;
  beforeAll(async () => {
    reg = await startRegistry({});
    proxy = new PullProxy(reg.url);
  });
  afterAll(async () => {
    proxy?.stop();
    await reg?.stop();
  });

  test("push then pull: manifest and blobs byte-identical; a rerun skips every blob", () => {
    const l = newLayout();
    const img = makeImage(l, "t", [layer1, bigLayer(2 << 20)], { config: { config: { Env: ["A=1"] } } });
    const ref = `docker://${reg.host}/r4/roundtrip:v1`;
    const pushed = JSON.parse(ok(["copy", "--json", PLAIN_DST, `oci:${l}:t`, ref], { env: ENV }).stdout);
    expect(pushed.manifest).toEqual({ mediaType: MT.manifest, digest: img.manifest.digest, size: img.manifest.size });
    expect(pushed.tags).toEqual(["v1"]);
    expect(pushed.blobsCopied).toBeGreaterThanOrEqual(3);
    const again = JSON.parse(ok(["copy", "--json", PLAIN_DST, `oci:${l}:t`, ref], { env: ENV }).stdout);
    expect(again.blobsSkipped).toBe(3);
    const d = join(scratch(), "pulled");
    const pulled = JSON.parse(ok(["copy", "--json", PLAIN_SRC, ref, `oci:${d}:got`], { env: ENV }).stdout);
    expect(pulled.manifest.digest).toBe(img.manifest.digest);
    expect(tags(d)).toEqual(["got"]);
    sameImage(l, d, img.manifest.digest);
    expect(checkLayout(d)).toEqual([]);
    // Pulled by digest, too; and into a docker-archive.
    const d2 = join(scratch(), "bydigest");
    ok(["copy", PLAIN_SRC, `docker://${reg.host}/r4/roundtrip@${img.manifest.digest}`, `oci:${d2}:x`], { env: ENV });
    sameImage(l, d2, img.manifest.digest);
    const tar = join(scratch(), "out.tar");
    ok(["copy", PLAIN_SRC, ref, `docker-archive:${tar}:r4/x:1`], { env: ENV });
    expect(statSync(tar).size).toBeGreaterThan(2 << 20);
  });

  test("skopeo reads what boci pushed, boci reads what skopeo pushed: same manifest bytes", () => {
    if (Bun.spawnSync(["sh", "-c", "command -v skopeo"]).exitCode !== 0) { console.warn("skopeo missing: skipped"); return; }
    const l = newLayout();
    const img = makeImage(l, "t", [layer1]);
    ok(["copy", PLAIN_DST, `oci:${l}:t`, `docker://${reg.host}/r4/interop:boci`], { env: ENV });
    const raw = Bun.spawnSync(["skopeo", "inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/r4/interop:boci`]);
    expect(raw.exitCode).toBe(0);
    expect(Buffer.from(raw.stdout).equals(blob(l, img.manifest.digest))).toBe(true);
    const sk = Bun.spawnSync(["skopeo", "copy", "--dest-tls-verify=false", `oci:${l}:t`, `docker://${reg.host}/r4/interop:skopeo`], { stderr: "pipe" });
    expect(sk.exitCode).toBe(0);
    const d = join(scratch(), "fromskopeo");
    ok(["copy", PLAIN_SRC, `docker://${reg.host}/r4/interop:skopeo`, `oci:${d}:s`], { env: ENV });
    const top = index(d).manifests[0];
    const skRaw = Bun.spawnSync(["skopeo", "inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/r4/interop:skopeo`]);
    expect(blob(d, top.digest).equals(Buffer.from(skRaw.stdout))).toBe(true);
    expect(checkLayout(d)).toEqual([]);
  });

  test("docker-archive → registry → layout keeps config and diffIDs, layers gzip'd", () => {
    const s = scratch();
    const f = join(s, "in.tar");
    const layer2 = makeTar([file("etc/motd", "hi\n")]);
    const built = makeDockerArchive(f, [{ layers: [layer1, layer2], repoTags: ["chain:1"], config: { architecture: "amd64", os: "linux" } }]);
    ok(["copy", PLAIN_DST, `docker-archive:${f}`, `docker://${reg.host}/r4/chain:1`], { env: ENV });
    const d = join(s, "out");
    ok(["copy", PLAIN_SRC, `docker://${reg.host}/r4/chain:1`, `oci:${d}:c`], { env: ENV });
    const m = json(d, index(d).manifests[0].digest);
    expect(m.config.digest).toBe(built[0]!.configDigest);
    // Compressed on the way, as skopeo does (staged in a temporary layout, removed after).
    expect(m.layers.map((x: Descriptor) => x.mediaType)).toEqual([`${MT.layer}+gzip`, `${MT.layer}+gzip`]);
    expect(json(d, m.config.digest).rootfs.diff_ids).toEqual(built[0]!.diffIds);
    expect(checkLayout(d)).toEqual([]);
  });

  test("an index with --all round-trips with its digest; --platform picks one manifest", () => {
    const l = newLayout();
    const amd = makeImage(l, "x", [layer1], { architecture: "amd64", noTag: true });
    const arm = makeImage(l, "x", [makeTar([file("arm", "64\n")])], { architecture: "arm64", noTag: true });
    const ix = makeIndex(l, "multi", [
      { ...amd.manifest, platform: { os: "linux", architecture: "amd64" } },
      { ...arm.manifest, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
    ]);
    const ref = `docker://${reg.host}/r4/multi:all`;
    const r = JSON.parse(ok(["copy", "--all", "--json", PLAIN_DST, `oci:${l}:multi`, ref], { env: ENV }).stdout);
    expect(r.manifest).toEqual({ mediaType: MT.index, digest: ix.digest, size: ix.size });
    const d = join(scratch(), "all");
    ok(["copy", "--all", PLAIN_SRC, ref, `oci:${d}:m`], { env: ENV });
    expect(index(d).manifests[0].digest).toBe(ix.digest);
    expect(blob(d, ix.digest).equals(blob(l, ix.digest))).toBe(true);
    sameImage(l, d, amd.manifest.digest);
    sameImage(l, d, arm.manifest.digest);
    ok(["copy", "--platform", "linux/arm64", PLAIN_SRC, ref, `oci:${d}:arm`], { env: ENV });
    expect(index(d).manifests.find((m: Descriptor) => m.annotations?.[REF] === "arm").digest).toBe(arm.manifest.digest);
    expect(checkLayout(d)).toEqual([]);
  });

  test("an index of an index round-trips with --all", () => {
    const l = newLayout();
    const amd = makeImage(l, "x", [layer1], { architecture: "amd64", noTag: true });
    const inner = makeIndex(l, "inner", [{ ...amd.manifest, platform: { os: "linux", architecture: "amd64" } }]);
    const outer = makeIndex(l, "outer", [inner, inner, inner, inner, inner].map((d, i) => ({ ...d, annotations: { n: String(i) } })));
    const ref = `docker://${reg.host}/r4/nested:1`;
    ok(["copy", "--all", PLAIN_DST, `oci:${l}:outer`, ref], { env: ENV });
    const d = join(scratch(), "nested");
    ok(["copy", "--all", PLAIN_SRC, ref, `oci:${d}:n`], { env: ENV });
    expect(index(d).manifests[0].digest).toBe(outer.digest);
    expect(blob(d, inner.digest).equals(blob(l, inner.digest))).toBe(true);
    sameImage(l, d, amd.manifest.digest);
    expect(checkLayout(d)).toEqual([]);
  });

  test("Docker-typed images are pushed with their bytes; --format oci converts; a pull into a layout gives OCI types", async () => {
    const l = newLayout();
    const gz = Bun.gzipSync(new Uint8Array(layer1));
    const lb = writeBlob(l, Buffer.from(gz), "application/vnd.docker.image.rootfs.diff.tar.gzip");
    const cfg = writeBlob(l, Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config: {}, rootfs: { type: "layers", diff_ids: [`sha256:${sha256hex(layer1)}`] } })), "application/vnd.docker.container.image.v1+json");
    const v2 = "application/vnd.docker.distribution.manifest.v2+json";
    const m = writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: v2, config: cfg, layers: [lb] })), v2);
    setTag(l, "d", m);
    const ref = `docker://${reg.host}/r4/dockertypes`;
    ok(["copy", PLAIN_DST, `oci:${l}:d`, `${ref}:as-is`], { env: ENV });
    const got = await fetch(`${reg.url}/v2/r4/dockertypes/manifests/as-is`, { headers: { accept: v2 } });
    expect(got.headers.get("content-type")).toBe(v2);
    expect(Buffer.from(await got.arrayBuffer()).equals(blob(l, m.digest))).toBe(true);
    ok(["copy", "--format", "oci", PLAIN_DST, `oci:${l}:d`, `${ref}:oci`], { env: ENV });
    const o = await fetch(`${reg.url}/v2/r4/dockertypes/manifests/oci`, { headers: { accept: MT.manifest } });
    expect(o.headers.get("content-type")).toBe(MT.manifest);
    expect((await o.json() as { layers: Descriptor[] }).layers[0]!.digest).toBe(lb.digest);
    const d = join(scratch(), "dt");
    ok(["copy", PLAIN_SRC, `${ref}:as-is`, `oci:${d}:x`], { env: ENV });
    expect(index(d).manifests[0].mediaType).toBe(MT.manifest);
    expect(checkLayout(d)).toEqual([]);
  });

  test("a pull killed mid-blob leaves no tag, and the rerun resumes from .boci-tmp with a Range request", async () => {
    const l = newLayout();
    const size = 8 << 20;
    const img = makeImage(l, "t", [bigLayer(size)], { compress: "none" });
    const big = img.layers[0]!;
    const ref = `docker://${reg.host}/r4/resume:1`;
    ok(["copy", PLAIN_DST, `oci:${l}:t`, ref], { env: ENV });
    proxy.reset();
    const stallAt = 3 << 20;
    proxy.stall = { digest: big.digest, afterBytes: stallAt };
    const d = newLayout();
    const pullRef = `docker://${proxy.host}/r4/resume:1`;
    const child = Bun.spawn([BIN, "copy", PLAIN_SRC, pullRef, `oci:${d}:r`], { env: { ...process.env, ...ENV }, stdout: "pipe", stderr: "pipe" });
    const partial = join(d, ".boci-tmp", `partial-sha256-${big.digest.slice(7)}`);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && !(proxy.stall?.reached && existsSync(partial) && statSync(partial).size >= stallAt)) await Bun.sleep(50);
    expect(existsSync(partial)).toBe(true);
    expect(statSync(partial).size).toBe(stallAt);
    // The tag never appears before every blob is in.
    expect(tags(d)).toEqual([]);
    child.kill("SIGKILL");
    await child.exited;
    expect(tags(d)).toEqual([]);
    proxy.reset();
    const r = await bociAsync(["copy", "--json", PLAIN_SRC, pullRef, `oci:${d}:r`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(tags(d)).toEqual(["r"]);
    sameImage(l, d, img.manifest.digest);
    const again = proxy.served.get(big.digest) ?? 0;
    expect(again).toBe(big.size - stallAt);
    expect(again).toBeLessThan(big.size);
    expect(proxy.ranges.some((x) => x.startsWith(big.digest) && x.includes(`bytes=${stallAt}-`))).toBe(true);
    expect(existsSync(partial)).toBe(false);
    expect(checkLayout(d)).toEqual([]);
  }, 120_000);

  test("a registry answering a wrong blob: exit 4, no tag, no partial left", async () => {
    const l = newLayout();
    const img = makeImage(l, "t", [layer1, bigLayer(1 << 20)]);
    const ref = `docker://${reg.host}/r4/wrong:1`;
    ok(["copy", PLAIN_DST, `oci:${l}:t`, ref], { env: ENV });
    proxy.reset();
    const bad = img.layers[1]!;
    proxy.tamper = bad.digest;
    const d = newLayout();
    const r = await bociAsync(["copy", PLAIN_SRC, `docker://${proxy.host}/r4/wrong:1`, `oci:${d}:w`]);
    proxy.reset();
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(bad.digest);
    expect(r.stderr).toContain(`${proxy.host}/r4/wrong`);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(tags(d)).toEqual([]);
    expect(existsSync(join(d, "blobs", "sha256", bad.digest.slice(7)))).toBe(false);
    const tmp = join(d, ".boci-tmp");
    expect(existsSync(tmp) ? readdirSync(tmp) : []).toEqual([]);
  });

  test("a wrong blob streamed into a docker-archive (verifyChunks): exit 4, no archive", async () => {
    const l = newLayout();
    const img = makeImage(l, "t", [bigLayer(256 << 10)], { compress: "none" });
    ok(["copy", PLAIN_DST, `oci:${l}:t`, `docker://${reg.host}/r4/wrongtar:1`], { env: ENV });
    proxy.reset();
    proxy.tamper = img.layers[0]!.digest;
    const s = scratch();
    const r = await bociAsync(["copy", PLAIN_SRC, `docker://${proxy.host}/r4/wrongtar:1`, `docker-archive:${join(s, "o.tar")}:x:1`]);
    proxy.reset();
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(img.layers[0]!.digest);
    expect(readdirSync(s)).toEqual([]);
  });

  test("a push whose source blob is corrupt fails with exit 4 and leaves no tag in the registry", async () => {
    const l = newLayout();
    const img = makeImage(l, "t", [layer1, bigLayer(128 << 10)]);
    corruptBlob(l, img.layers[1]!, randomBytes(img.layers[1]!.size));
    const r = boci(["copy", PLAIN_DST, `oci:${l}:t`, `docker://${reg.host}/r4/badpush:1`], { env: ENV });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(img.layers[1]!.digest);
    const res = await fetch(`${reg.url}/v2/r4/badpush/tags/list`);
    const tagsThere = res.ok ? ((await res.json()) as { tags: string[] | null }).tags ?? [] : [];
    expect(tagsThere).toEqual([]);
    const m = await fetch(`${reg.url}/v2/r4/badpush/manifests/${img.manifest.digest}`, { method: "HEAD" });
    expect(m.status).toBe(404);
  });

  test("a partial download with wrong bytes is refetched whole once, then the pull succeeds", async () => {
    const l = newLayout();
    const img = makeImage(l, "t", [bigLayer(2 << 20)], { compress: "none" });
    const big = img.layers[0]!;
    ok(["copy", PLAIN_DST, `oci:${l}:t`, `docker://${reg.host}/r4/stale:1`], { env: ENV });
    const d = newLayout();
    mkdirSync(join(d, ".boci-tmp"), { recursive: true });
    writeFileSync(join(d, ".boci-tmp", `partial-sha256-${big.digest.slice(7)}`), randomBytes(1 << 20));
    proxy.reset();
    const r = await bociAsync(["copy", PLAIN_SRC, `docker://${proxy.host}/r4/stale:1`, `oci:${d}:s`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    // the rest after the stale megabyte, then the whole blob again
    expect(proxy.served.get(big.digest)).toBe(big.size - (1 << 20) + big.size);
    sameImage(l, d, img.manifest.digest);
    expect(readdirSync(join(d, ".boci-tmp"))).toEqual([]);
    expect(checkLayout(d)).toEqual([]);
  });

  test("blobs are pulled several at a time, at most 4 by default", async () => {
    const l = newLayout();
    const layers = Array.from({ length: 7 }, (_, i) => makeTar([file(`f${i}`, randomBytes(64 << 10))]));
    const img = makeImage(l, "t", layers);
    ok(["copy", PLAIN_DST, `oci:${l}:t`, `docker://${reg.host}/r4/pool:1`], { env: ENV });
    proxy.reset();
    proxy.delayMs = 300;
    const d = newLayout();
    const r = await bociAsync(["copy", PLAIN_SRC, `docker://${proxy.host}/r4/pool:1`, `oci:${d}:p`]);
    const most = proxy.maxActive;
    proxy.reset();
    expect(r.code).toBe(0);
    expect(most).toBeGreaterThanOrEqual(2);
    expect(most).toBeLessThanOrEqual(4);
    sameImage(l, d, img.manifest.digest);
  });

  test("a tag or repository the registry lacks: exit 3, nothing created", () => {
    const d = join(scratch(), "none");
    const r = boci(["copy", PLAIN_SRC, `docker://${reg.host}/r4/nothing:here`, `oci:${d}:x`], { env: ENV });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${reg.host}/r4/nothing`);
    expect(existsSync(d)).toBe(false);
  });

  /** Upload a blob monolithically (plain HTTP, no auth: the test registry). */
  async function upload(repo: string, data: Buffer): Promise<Descriptor> {
    const digest = `sha256:${sha256hex(data)}`;
    const post = await fetch(`${reg.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    const loc = new URL(post.headers.get("location")!, reg.url);
    loc.searchParams.set("digest", digest);
    const put = await fetch(loc, { method: "PUT", body: new Uint8Array(data), headers: { "content-type": "application/octet-stream" } });
    expect(put.status).toBe(201);
    return { mediaType: "application/octet-stream", digest, size: data.length };
  }
  async function putManifest(repo: string, ref: string, bytes: Buffer, mediaType: string): Promise<Descriptor> {
    const res = await fetch(`${reg.url}/v2/${repo}/manifests/${ref}`, { method: "PUT", body: new Uint8Array(bytes), headers: { "content-type": mediaType } });
    expect(res.status).toBe(201);
    return { mediaType, digest: `sha256:${sha256hex(bytes)}`, size: bytes.length };
  }

  test("--referrers brings a signature (the sha256-<hex> tag schema) into a layout and to another repository", async () => {
    const l = newLayout();
    const img = makeImage(l, "t", [layer1]);
    const repo = "r4/withrefs";
    ok(["copy", PLAIN_DST, `oci:${l}:t`, `docker://${reg.host}/${repo}:1`], { env: ENV });
    const empty = await upload(repo, Buffer.from("{}"));
    const sig = await upload(repo, Buffer.from("a signature, in the test's own format\n"));
    const artifactType = "application/vnd.example.signature.v1";
    const art = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: MT.manifest, artifactType,
      config: { ...empty, mediaType: "application/vnd.oci.empty.v1+json" },
      layers: [{ ...sig, mediaType: "application/vnd.example.signature.v1+blob" }],
      subject: img.manifest,
    }));
    const artDesc = await putManifest(repo, `sha256:${sha256hex(art)}`, art, MT.manifest);
    const fallback = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: [{ ...artDesc, artifactType }] }));
    await putManifest(repo, `sha256-${img.manifest.digest.slice(7)}`, fallback, MT.index);

    const d = join(scratch(), "refs");
    const r = await bociAsync(["copy", "--referrers", PLAIN_SRC, `docker://${reg.host}/${repo}:1`, `oci:${d}:x`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const entries = index(d).manifests as Descriptor[];
    expect(entries.map((e) => e.digest).sort()).toEqual([img.manifest.digest, artDesc.digest].sort());
    expect(entries.find((e) => e.digest === artDesc.digest)!.annotations?.[REF]).toBeUndefined();
    expect(tags(d).filter(Boolean)).toEqual(["x"]);
    expect(blob(d, artDesc.digest).equals(art)).toBe(true);
    expect(blob(d, sig.digest).toString()).toContain("a signature");
    // The layout checker reads every index.json entry as an image: the artifact's own entries are
    // its complaints about an artifact config ({}), everything else must be clean.
    expect(checkLayout(d)).toEqual([]);

    const r2 = await bociAsync(["copy", "--referrers", PLAIN_SRC, PLAIN_DST, `docker://${reg.host}/${repo}:1`, `docker://${reg.host}/r4/refcopy:1`]);
    expect(r2.stderr).toBe("");
    expect(r2.code).toBe(0);
    const fb = await fetch(`${reg.url}/v2/r4/refcopy/manifests/sha256-${img.manifest.digest.slice(7)}`, { headers: { accept: MT.index } });
    expect(fb.status).toBe(200);
    expect(Buffer.from(await fb.arrayBuffer()).equals(fallback)).toBe(true);
    const am = await fetch(`${reg.url}/v2/r4/refcopy/manifests/${artDesc.digest}`, { headers: { accept: MT.manifest } });
    expect(Buffer.from(await am.arrayBuffer()).equals(art)).toBe(true);

    // Without --referrers nothing comes along; an archive destination refuses the flag.
    const d3 = join(scratch(), "norefs");
    expect((await bociAsync(["copy", PLAIN_SRC, `docker://${reg.host}/${repo}:1`, `oci:${d3}:x`])).code).toBe(0);
    expect(index(d3).manifests).toHaveLength(1);
    const r4 = await bociAsync(["copy", "--referrers", PLAIN_SRC, `docker://${reg.host}/${repo}:1`, `docker-archive:${join(scratch(), "a.tar")}`]);
    expect(r4.code).toBe(2);
    expect(r4.stderr).toContain("--referrers");
  });
});

maybe("docker:// with htpasswd auth", () => {
  let reg: Registry;
  beforeAll(async () => { reg = await startRegistry({ auth: "htpasswd" }); });
  afterAll(async () => { await reg?.stop(); });

  test("the password never reaches stderr, stdout or --json; a wrong one fails with exit 1", () => {
    const l = newLayout();
    const img = makeImage(l, "t", [layer1]);
    const ref = `docker://${reg.host}/r4/auth:1`;
    const creds = `${reg.user}:${reg.password}`;
    const r = ok(["copy", "--json", PLAIN_DST, "--dest-creds", creds, `oci:${l}:t`, ref], { env: ENV });
    expect(JSON.parse(r.stdout).manifest.digest).toBe(img.manifest.digest);
    expect(r.stdout + r.stderr).not.toContain(reg.password!);
    const d = join(scratch(), "authpull");
    const p = ok(["copy", PLAIN_SRC, "--src-creds", creds, ref, `oci:${d}:a`], { env: ENV });
    expect(p.stdout + p.stderr).not.toContain(reg.password!);
    sameImage(l, d, img.manifest.digest);
    const wrong = `${reg.user}:not-${reg.password}`;
    const w = boci(["copy", "--json", PLAIN_SRC, "--src-creds", wrong, ref, `oci:${join(scratch(), "w")}:a`], { env: ENV });
    expect(w.code).toBe(1);
    expect(w.stdout + w.stderr).not.toContain(`not-${reg.password}`);
    expect(w.stdout + w.stderr).not.toContain(Buffer.from(wrong).toString("base64"));
    const anon = boci(["copy", PLAIN_SRC, ref, `oci:${join(scratch(), "anon")}:a`], { env: ENV });
    expect(anon.code).not.toBe(0);
    expect(anon.stderr).toContain(reg.host);
  });
});
