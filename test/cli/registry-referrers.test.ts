/**
 * `boci copy --referrers` with registries, through the real binary, both ways a registry keeps
 * referrers (distribution spec 1.1):
 *  - Debian's docker-registry (distribution 2.8) has no referrers API: boci keeps the
 *    `sha256-<hex>` tag schema itself — a correct image index (artifactType, annotations), a
 *    second referrer added to the first, never a duplicate — and reads it back;
 *  - the same registry behind test/helpers/referrers-proxy.ts has the API (OCI-Subject on the
 *    PUT of a manifest with a subject, `GET /v2/<name>/referrers/<digest>` with pages and the
 *    artifactType filter): boci never writes a `sha256-<hex>` tag there, and reads through the
 *    API only.
 * Pulls into a layout through either find every referrer; registry → registry copies between
 * the two kinds convert; the client's artifactType filter works with and without the registry's
 * help. skopeo 1.9 copies no referrers: its copy of an image whose repository holds our tags
 * still works.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, have, ok, scratch } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";
import { file, makeImage, makeTar, type Descriptor } from "../helpers/image";
import { type Registry, registryFetch, registryMissing, runAsync, startRegistry } from "../helpers/registry";
import { type ReferrersProxy, makeArtifact, startReferrersProxy } from "../helpers/referrers-proxy";
import { RegistryClient } from "../../src/transport/registry/client";

const missing = registryMissing();
if (missing) console.warn(`registry-referrers tests skipped: ${missing}`);
const maybe = missing ? describe.skip : describe;

const REF = "org.opencontainers.image.ref.name";
const SIG = "application/vnd.example.signature.v1";
const SBOM = "application/spdx+json";
const INDEX = "application/vnd.oci.image.index.v1+json";
const PLAIN = ["--src-tls-verify=false", "--dest-tls-verify=false"];
const index = (l: string) => JSON.parse(readFileSync(join(l, "index.json"), "utf8")) as { manifests: (Descriptor & { artifactType?: string })[] };
const layer = makeTar([file("etc/hostname", "registry referrers\n")]);

async function copy(...args: string[]): Promise<void> {
  const r = await runAsync([BIN, "copy", ...PLAIN, ...args]);
  if (r.code !== 0 || r.stderr !== "") throw new Error(`boci copy ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
}

/** A layout with image `t`, a signature of it (annotated) and an SBOM of it added later, and a signature of the SBOM. */
function source() {
  const l = join(scratch(), "src");
  ok(["init", "--layout", l]);
  const img = makeImage(l, "t", [layer]);
  const sig = makeArtifact(l, img.manifest, SIG, "signature\n", { "org.example.signer": "tester" });
  return {
    l, img, sig,
    /** the SBOM and its signature, added to the layout when called */
    more() {
      const sbom = makeArtifact(l, img.manifest, SBOM, '{"spdxVersion":"SPDX-2.3"}');
      const sbomSig = makeArtifact(l, sbom.desc, SIG, "signature of the sbom\n");
      return { sbom, sbomSig };
    },
  };
}

maybe("copy --referrers with registries", () => {
  let reg: Registry;
  let api: ReferrersProxy;
  beforeAll(async () => {
    reg = await startRegistry();
    api = startReferrersProxy(reg.url);
  });
  afterAll(async () => {
    await api?.stop();
    await reg?.stop();
  });

  const tagIndex = async (repo: string, subject: string): Promise<{ status: number; body: Buffer }> => {
    const r = await registryFetch(reg, `/v2/${repo}/manifests/sha256-${subject.slice(7)}`, { headers: { accept: INDEX } });
    return { status: r.status, body: Buffer.from(await r.arrayBuffer()) };
  };
  const tagsOf = async (repo: string): Promise<string[]> => ((await (await registryFetch(reg, `/v2/${repo}/tags/list`)).json()) as { tags: string[] }).tags.sort();

  test("no referrers API (distribution 2.8): boci keeps the sha256-<hex> tag schema, a second referrer added to the first", async () => {
    const s = source();
    await copy("--referrers", `oci:${s.l}:t`, `docker://${reg.host}/tags/img:1`);
    let ix = await tagIndex("tags/img", s.img.manifest.digest);
    expect(ix.status).toBe(200);
    const first = JSON.parse(ix.body.toString());
    expect(first).toEqual({
      schemaVersion: 2, mediaType: INDEX,
      manifests: [{ ...s.sig.desc, annotations: { "org.example.signer": "tester" } }],
    });
    // the artifact itself, by digest, bytes unchanged
    const a = await registryFetch(reg, `/v2/tags/img/manifests/${s.sig.desc.digest}`, { headers: { accept: s.sig.desc.mediaType } });
    expect(Buffer.from(await a.arrayBuffer()).equals(s.sig.bytes)).toBe(true);

    // the SBOM (and a signature of it) come later: added to the index, the first entry kept
    const { sbom, sbomSig } = s.more();
    await copy("--referrers", `oci:${s.l}:t`, `docker://${reg.host}/tags/img:1`);
    ix = await tagIndex("tags/img", s.img.manifest.digest);
    const second = JSON.parse(ix.body.toString());
    expect(second.manifests.map((d: Descriptor) => d.digest)).toEqual([s.sig.desc.digest, sbom.desc.digest]);
    expect(second.manifests[1]).toEqual(sbom.desc);
    // referrers of a referrer: the SBOM's own tag
    const ofSbom = JSON.parse((await tagIndex("tags/img", sbom.desc.digest)).body.toString());
    expect(ofSbom.manifests).toEqual([sbomSig.desc]);
    // a rerun: no duplicate, the index's bytes unchanged
    const before = ix.body;
    await copy("--referrers", `oci:${s.l}:t`, `docker://${reg.host}/tags/img:1`);
    expect((await tagIndex("tags/img", s.img.manifest.digest)).body.equals(before)).toBe(true);
    expect(await tagsOf("tags/img")).toEqual(["1", `sha256-${s.img.manifest.digest.slice(7)}`, `sha256-${sbom.desc.digest.slice(7)}`].sort());

    // pulled back into a layout: all three, untagged, the image tagged
    const d = join(scratch(), "pulled");
    await copy("--referrers", `docker://${reg.host}/tags/img:1`, `oci:${d}:t`);
    const entries = index(d).manifests;
    expect(entries.map((e) => e.digest).sort()).toEqual([s.img.manifest.digest, s.sig.desc.digest, sbom.desc.digest, sbomSig.desc.digest].sort());
    expect(entries.filter((e) => e.annotations?.[REF]).map((e) => e.digest)).toEqual([s.img.manifest.digest]);
    expect(entries.find((e) => e.digest === sbom.desc.digest)!.artifactType).toBe(SBOM);
    expect(checkLayout(d)).toEqual([]);

    // skopeo 1.9 copies no referrers; our tags do not get in the way of its copy
    if (have("skopeo")) {
      const r = await runAsync(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", `docker://${reg.host}/tags/img:1`, `docker://${reg.host}/tags/by-skopeo:1`]);
      expect(r.stderr).not.toContain("rror");
      expect(r.code).toBe(0);
      expect(await tagsOf("tags/by-skopeo")).toEqual(["1"]);
      const o = join(scratch(), "skopeo-oci");
      const r2 = await runAsync(["skopeo", "copy", "--src-tls-verify=false", `docker://${reg.host}/tags/img:1`, `oci:${o}:t`]);
      expect(r2.code).toBe(0);
      expect(index(o).manifests.map((e) => e.digest)).toEqual([s.img.manifest.digest]);
    } else console.warn("registry-referrers: skopeo part skipped: needs skopeo (Debian package skopeo)");
  });

  test("the referrers API (the proxy): OCI-Subject answered, so no sha256-<hex> tag is ever written; pulls read the API, page by page", async () => {
    const s = source();
    const { sbom, sbomSig } = s.more();
    api.tagsPut.length = 0;
    await copy("--referrers", `oci:${s.l}:t`, `docker://${api.host}/api/img:1`);
    expect(api.tagsPut).toEqual(["api/img:1"]);
    expect(await tagsOf("api/img")).toEqual(["1"]);
    const mine = api.referrers.filter((r) => r.repository === "api/img");
    expect(mine.map((r) => [r.subject, r.desc.digest])).toEqual([
      [s.img.manifest.digest, s.sig.desc.digest], [s.img.manifest.digest, sbom.desc.digest], [sbom.desc.digest, sbomSig.desc.digest],
    ]);

    // a third referrer, so that the pull needs two pages (the proxy serves 2 a page)
    const extra = makeArtifact(s.l, s.img.manifest, "application/vnd.example.note", "note\n");
    await copy("--referrers", `oci:${s.l}:t`, `docker://${api.host}/api/img:1`);
    expect(api.tagsPut).toEqual(["api/img:1", "api/img:1"]);
    api.log.length = 0;
    const d = join(scratch(), "pulled-api");
    await copy("--referrers", `docker://${api.host}/api/img:1`, `oci:${d}:t`);
    expect(index(d).manifests.map((e) => e.digest).sort()).toEqual(
      [s.img.manifest.digest, s.sig.desc.digest, sbom.desc.digest, sbomSig.desc.digest, extra.desc.digest].sort());
    expect(api.log.filter((l) => l.includes(`/referrers/${s.img.manifest.digest}`))).toEqual([
      `GET /v2/api/img/referrers/${s.img.manifest.digest}`, `GET /v2/api/img/referrers/${s.img.manifest.digest}?page=2`,
    ]);
    // the tag schema is never consulted where the API answers
    expect(api.log.some((l) => l.includes("/manifests/sha256-"))).toBe(false);
    expect(checkLayout(d)).toEqual([]);
  });

  test("registry → registry: from the tag schema to the API (no tag written) and from the API to the tag schema (both referrers in the index)", async () => {
    const s = source();
    const { sbom } = s.more();
    await copy("--referrers", `oci:${s.l}:t`, `docker://${reg.host}/tags/from:1`);
    api.tagsPut.length = 0;
    await copy("--referrers", `docker://${reg.host}/tags/from:1`, `docker://${api.host}/api/to:1`);
    expect(api.tagsPut).toEqual(["api/to:1"]);
    expect(api.referrers.filter((r) => r.repository === "api/to" && r.subject === s.img.manifest.digest).map((r) => r.desc.digest))
      .toEqual([s.sig.desc.digest, sbom.desc.digest]);

    await copy("--referrers", `docker://${api.host}/api/to:1`, `docker://${reg.host}/tags/back:1`);
    const ix = JSON.parse((await tagIndex("tags/back", s.img.manifest.digest)).body.toString());
    expect(ix.manifests.map((d: Descriptor) => d.digest)).toEqual([s.sig.desc.digest, sbom.desc.digest]);
    expect(ix.manifests[0].annotations).toEqual({ "org.example.signer": "tester" });
  });

  test("the client's referrers list: artifactType filtered by the registry or, when it does not say so, by the client; null without the API", async () => {
    const s = source();
    s.more();
    await copy("--referrers", `oci:${s.l}:t`, `docker://${api.host}/api/filter:1`);
    const client = new RegistryClient(api.host, "api/filter", { tlsVerify: false }, ["pull"]);
    const all = await client.listReferrers(s.img.manifest.digest);
    expect(all!.map((d) => d.artifactType)).toEqual([SIG, SBOM]);
    expect(all![0]!.annotations).toEqual({ "org.example.signer": "tester" });
    expect((await client.listReferrers(s.img.manifest.digest, { artifactType: SBOM }))!.map((d) => d.artifactType)).toEqual([SBOM]);
    api.applyFilter = false;
    try {
      expect((await client.listReferrers(s.img.manifest.digest, { artifactType: SIG }))!.map((d) => d.artifactType)).toEqual([SIG]);
    } finally { api.applyFilter = true; }
    expect(await client.listReferrers(`sha256:${"0".repeat(64)}`)).toEqual([]);
    const direct = new RegistryClient(reg.host, "api/filter", { tlsVerify: false }, ["pull"]);
    expect(await direct.listReferrers(s.img.manifest.digest)).toBeNull();
  });
});

maybe("copy --referrers with registries: what is passed over", () => {
  let reg: Registry;
  beforeAll(async () => { reg = await startRegistry(); });
  afterAll(async () => { await reg?.stop(); });

  test("a referrers tag listing a missing manifest and a manifest of another subject: each passed over with a warning, the real referrer copied", async () => {
    const s = source();
    await copy("--referrers", `oci:${s.l}:t`, `docker://${reg.host}/odd/img:1`);
    // an artifact whose subject is not the image, pushed by digest; then it and a ghost listed in the image's tag
    const l2 = join(scratch(), "other");
    ok(["init", "--layout", l2]);
    ok(["copy", `oci:${s.l}:t`, `oci:${l2}:t`]);
    const o2 = makeArtifact(l2, { ...s.img.config, mediaType: "application/vnd.oci.image.manifest.v1+json" }, SIG, "names the config\n");
    const ix = JSON.parse(readFileSync(join(l2, "index.json"), "utf8"));
    ix.manifests = ix.manifests.map((d: Descriptor) => (d.digest === o2.desc.digest ? { ...d, annotations: { [REF]: "odd" } } : d));
    await Bun.write(join(l2, "index.json"), JSON.stringify(ix));
    await copy(`oci:${l2}:odd`, `docker://${reg.host}/odd/img@${o2.desc.digest}`);
    // a second referrer of the image, pushed (so boci lists it in the tag) then deleted from the registry
    const g = makeArtifact(l2, s.img.manifest, SIG, "deleted later\n");
    await copy("--referrers", `oci:${l2}:t`, `docker://${reg.host}/odd/img:1`);
    const ghost = g.desc.digest;
    const tag = `sha256-${s.img.manifest.digest.slice(7)}`;
    const current = JSON.parse(Buffer.from(await (await registryFetch(reg, `/v2/odd/img/manifests/${tag}`, { headers: { accept: INDEX } })).arrayBuffer()).toString());
    expect(current.manifests.map((m: Descriptor) => m.digest)).toEqual([s.sig.desc.digest, ghost]);
    current.manifests.push({ mediaType: o2.desc.mediaType, digest: o2.desc.digest, size: o2.desc.size });
    const put = await registryFetch(reg, `/v2/odd/img/manifests/${tag}`, { method: "PUT", body: Buffer.from(JSON.stringify(current)), headers: { "content-type": INDEX } });
    expect(put.status).toBe(201);
    expect((await registryFetch(reg, `/v2/odd/img/manifests/${ghost}`, { method: "DELETE", actions: "pull,push,delete" })).status).toBe(202);

    const d = join(scratch(), "odd");
    const r = await runAsync([BIN, "copy", ...PLAIN, "--referrers", `docker://${reg.host}/odd/img:1`, `oci:${d}:t`]);
    expect(r.code).toBe(0);
    const warnings = r.stderr.trim().split("\n");
    expect(warnings).toHaveLength(2);
    expect(warnings.every((w) => w.startsWith("boci: warning: "))).toBe(true);
    expect(r.stderr).toContain(`${o2.desc.digest} as a referrer of ${s.img.manifest.digest}, but its subject is ${s.img.config.digest}`);
    expect(r.stderr).toContain(`${ghost} as a referrer`);
    expect(index(d).manifests.map((e) => e.digest).sort()).toEqual([s.img.manifest.digest, s.sig.desc.digest].sort());
  });

  test("a copy that rewrites the image (--format v2s2) warns that its referrers still name the source's digest", async () => {
    const s = source();
    const r = await runAsync([BIN, "copy", ...PLAIN, "--referrers", "--format", "v2s2", `oci:${s.l}:t`, `docker://${reg.host}/conv/img:1`]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`its 1 referrer copied along still name ${s.img.manifest.digest}`);
    // the signature went by digest, its tag index under the source's digest
    const ix = await registryFetch(reg, `/v2/conv/img/manifests/sha256-${s.img.manifest.digest.slice(7)}`, { headers: { accept: INDEX } });
    expect(ix.status).toBe(200);
  });
});
