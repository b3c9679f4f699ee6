/**
 * `--platform` on every command that reads or writes an image, through the real binary, and what
 * `stat` says of an index and of an artifact. The multi-platform index is made by boci itself
 * (`new`, `config --platform.arch`) plus an index blob written here (two platforms and the
 * index's own annotations); with skopeo installed, a skopeo-written copy of it is edited too.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { boci, ok, scratch, have } from "../helpers/cli";
import { writeBlob, setTag, hostArch, makeTar, file, MT, type Descriptor } from "../helpers/image";
import { checkLayout } from "../helpers/check-layout";

const REF = "org.opencontainers.image.ref.name";
const HOST = `linux/${hostArch()}`;
/** a platform that is not the host's */
const OTHER_ARCH = hostArch() === "s390x" ? "ppc64le" : "s390x";
const OTHER = `linux/${OTHER_ARCH}`;
const INDEX_ANNOTATIONS = { "org.example.index": "kept", "org.opencontainers.image.created": "2020-01-01T00:00:00Z" };

interface Ix { schemaVersion: number; mediaType?: string; manifests: Descriptor[]; annotations?: Record<string, string> }

const indexJson = (l: string): Ix => JSON.parse(readFileSync(join(l, "index.json"), "utf8"));
const blob = (l: string, d: { digest: string }): Buffer => readFileSync(join(l, "blobs", ...d.digest.split(":")));
const entry = (l: string, tag: string): Descriptor => indexJson(l).manifests.find((d) => d.annotations?.[REF] === tag)!;
const tagged = (l: string, tag: string): Ix => JSON.parse(blob(l, entry(l, tag)).toString());
const statJson = (img: string, ...extra: string[]) => JSON.parse(ok(["stat", "--json", "--image", img, ...extra]).stdout);
const configOf = (l: string, m: Descriptor) => JSON.parse(blob(l, JSON.parse(blob(l, m).toString()).config).toString());

/**
 * A layout with tag "multi" naming an index of two boci-made images, for `archs` (the host's and
 * another by default), with index annotations; the two images stay tagged "p0" and "p1".
 */
function multi(archs: string[] = [hostArch(), OTHER_ARCH]): { l: string; index: Descriptor } {
  const l = join(scratch("boci-platforms-"), "l");
  ok(["init", "--layout", l]);
  const manifests = archs.map((arch, i) => {
    ok(["new", "--image", `${l}:p${i}`], { env: { SOURCE_DATE_EPOCH: "1577836800" } });
    ok(["config", "--image", `${l}:p${i}`, "--platform.arch", arch, "--config.label", `arch=${arch}`, "--no-history"]);
    const { annotations: _a, ...d } = entry(l, `p${i}`);
    return { ...d, platform: { architecture: arch, os: "linux" } };
  });
  const index = writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests, annotations: INDEX_ANNOTATIONS })), MT.index);
  setTag(l, "multi", index);
  return { l, index };
}

function plain(body: string): string {
  const f = join(scratch(), "file");
  writeFileSync(f, body);
  return f;
}

function tarFile(name: string, body: string): string {
  const f = join(scratch(), "layer.tar");
  writeFileSync(f, makeTar([file(name, body, { mode: 0o644 })]));
  return f;
}

/** The other platform's manifest was rewritten; the host's entry and the index's annotations were not. */
function expectOnlyOtherChanged(l: string, before: Ix): Ix {
  const after = tagged(l, "multi");
  expect(after.annotations).toEqual(INDEX_ANNOTATIONS);
  expect(after.manifests).toHaveLength(2);
  expect(JSON.stringify(after.manifests[0])).toBe(JSON.stringify(before.manifests[0]));
  expect(after.manifests[1]!.digest).not.toBe(before.manifests[1]!.digest);
  expect(after.manifests[1]!.platform).toEqual(before.manifests[1]!.platform);
  return after;
}

describe("stat of an index", () => {
  test("human: an INDEX section with its platforms and the chosen one (the host's by default), before the manifest", () => {
    const { l, index } = multi();
    const ix = tagged(l, "multi");
    const out = ok(["stat", "--image", `${l}:multi`]).stdout;
    expect(out.startsWith([
      "== INDEX ==", `Media Type: ${MT.index}`, `Digest: ${index.digest}`, `Size: ${index.size}B`,
      "Annotations:", "\torg.example.index: kept", "\torg.opencontainers.image.created: 2020-01-01T00:00:00Z",
      "Platforms:", `\t${HOST}: ${ix.manifests[0]!.digest}`, `\t${OTHER}: ${ix.manifests[1]!.digest}`,
      `Chosen: ${HOST}, ${ix.manifests[0]!.digest}`, "", "== MANIFEST ==", "",
    ].join("\n"))).toBe(true);
    expect(out).toContain(`\tArchitecture: ${hostArch()}\n`);
    const other = ok(["stat", "--image", `${l}:multi`, "--platform", OTHER]).stdout;
    expect(other).toContain(`Chosen: ${OTHER}, ${ix.manifests[1]!.digest}\n`);
    expect(other).toContain(`\tArchitecture: ${OTHER_ARCH}\n`);
    expect(other).toContain(`\t\tarch: ${OTHER_ARCH}\n`);
  });

  test("--json: an index field (descriptor, annotations, platforms, chosen) before umoci's fields", () => {
    const { l, index } = multi();
    const ix = tagged(l, "multi");
    const raw = ok(["stat", "--json", "--image", `${l}:multi`, "--platform", OTHER]).stdout;
    const j = JSON.parse(raw);
    expect(Object.keys(j)).toEqual(["index", "manifest", "config", "history"]);
    expect(j.index).toEqual({
      descriptor: { ...index, annotations: { [REF]: "multi" } },
      annotations: INDEX_ANNOTATIONS,
      platforms: ix.manifests.map((d) => ({ platform: d.platform, descriptor: d })),
      chosen: 1,
    });
    expect(j.manifest.descriptor).toEqual(ix.manifests[1]);
    expect(j.config.blob.architecture).toBe(OTHER_ARCH);
    expect(statJson(`${l}:multi`).index.chosen).toBe(0);
  });

  test("a plain image: no INDEX section, no index field (umoci's output unchanged)", () => {
    const { l } = multi();
    expect(ok(["stat", "--image", `${l}:p0`]).stdout.startsWith("== MANIFEST ==\n")).toBe(true);
    expect(Object.keys(statJson(`${l}:p0`))).toEqual(["manifest", "config", "history"]);
    // --platform on a plain image is no filter (as unpack's): it has one manifest
    expect(ok(["stat", "--image", `${l}:p0`, "--platform", OTHER]).code).toBe(0);
  });

  test("an unknown platform is exit 3 listing the platforms; a malformed one exit 2", () => {
    const { l } = multi();
    const r = boci(["stat", "--image", `${l}:multi`, "--platform", "linux/mips64"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`boci: tag "multi": no manifest for platform linux/mips64 (available: ${HOST}, ${OTHER})\n`);
    const bad = boci(["stat", "--image", `${l}:multi`, "--platform", "linux"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toContain('invalid platform "linux"');
  });
});

describe("writes into an index replace only the chosen platform's manifest", () => {
  test("config --platform: the other entry byte for byte, the index's annotations, the platform field kept", () => {
    const { l } = multi();
    const before = tagged(l, "multi");
    const indexEntries = indexJson(l).manifests.filter((d) => d.annotations?.[REF] !== "multi");
    const r = JSON.parse(ok(["config", "--image", `${l}:multi`, "--platform", OTHER, "--config.env", "CHANGED=1", "--json"]).stdout);
    const after = expectOnlyOtherChanged(l, before);
    expect(r.manifest).toEqual(after.manifests[1]);
    expect(configOf(l, after.manifests[1]!).config.Env).toContain("CHANGED=1");
    expect(configOf(l, after.manifests[0]!).config.Env ?? []).not.toContain("CHANGED=1");
    // index.json: the other tags untouched, "multi" names the new index
    expect(indexJson(l).manifests.filter((d) => d.annotations?.[REF] !== "multi")).toEqual(indexEntries);
    expect(checkLayout(l)).toEqual([]);
    expect(ok(["validate", "--layout", l]).code).toBe(0);
  });

  test("config --platform with --platform.arch moves the entry's platform with the config", () => {
    const { l } = multi();
    const before = tagged(l, "multi");
    ok(["config", "--image", `${l}:multi`, "--platform", OTHER, "--platform.arch", "riscv64", "--platform.variant", "rva20", "--no-history"]);
    const after = tagged(l, "multi");
    expect(JSON.stringify(after.manifests[0])).toBe(JSON.stringify(before.manifests[0]));
    expect(after.manifests[1]!.platform).toEqual({ architecture: "riscv64", os: "linux", variant: "rva20" });
    expect(ok(["stat", "--image", `${l}:multi`, "--platform", "linux/riscv64"]).stdout).toContain("\tArchitecture: riscv64 (rva20)\n");
  });

  test("the host's manifest by default; an index without the host's platform is refused, listing its platforms", () => {
    const { l } = multi();
    const before = tagged(l, "multi");
    ok(["config", "--image", `${l}:multi`, "--config.user", "1000"]);
    const after = tagged(l, "multi");
    expect(JSON.stringify(after.manifests[1])).toBe(JSON.stringify(before.manifests[1]));
    expect(configOf(l, after.manifests[0]!).config.User).toBe("1000");

    // neither entry is the host's: every write refuses and nothing changes
    const two = multi([OTHER_ARCH, "mips64le"]).l;
    const one = multi([OTHER_ARCH]).l;
    const layer = tarFile("x", "x");
    for (const [dir, avail] of [[two, `${OTHER}, linux/mips64le`], [one, OTHER]] as const) {
      const ixBytes = readFileSync(join(dir, "index.json"));
      for (const args of [["config", "--config.user", "1"], ["raw", "add-layer", layer], ["insert", layer, "/x"]]) {
        const r = boci([...args, "--image", `${dir}:multi`]);
        expect(r.code).toBe(3);
        expect(r.stderr).toBe(`boci: tag "multi": no manifest for platform ${HOST} (available: ${avail}); choose one with --platform\n`);
      }
      expect(readFileSync(join(dir, "index.json"))).toEqual(ixBytes);
      // reads of a one-manifest index still take it, as before
      if (dir === one) expect(ok(["stat", "--image", `${dir}:multi`]).stdout).toContain(`\tArchitecture: ${OTHER_ARCH}\n`);
    }
  });

  test("insert and raw add-layer --platform: the layer goes into that platform's manifest only", () => {
    const { l } = multi();
    const before = tagged(l, "multi");
    ok(["insert", "--image", `${l}:multi`, "--platform", OTHER, plain("a"), "/a"]);
    const mid = expectOnlyOtherChanged(l, before);
    ok(["raw", "add-layer", "--image", `${l}:multi`, "--platform", OTHER, tarFile("b", "b")]);
    const after = expectOnlyOtherChanged(l, mid);
    expect(JSON.parse(blob(l, after.manifests[1]!).toString()).layers).toHaveLength(2);
    expect(JSON.parse(blob(l, after.manifests[0]!).toString()).layers).toHaveLength(0);
    expect(ok(["validate", "--layout", l]).code).toBe(0);
  });

  test("unpack --platform, then repack: into the manifest the bundle came from; repack --platform checks it", () => {
    const { l } = multi();
    ok(["insert", "--image", `${l}:multi`, "--platform", OTHER, plain("b"), "/etc/base"]);
    const before = tagged(l, "multi");
    const bundle = join(scratch(), "bundle");
    ok(["unpack", "--no-progress", "--image", `${l}:multi`, "--platform", OTHER, bundle]);
    expect(readFileSync(join(bundle, "rootfs/etc/base"), "utf8")).toBe("b");
    writeFileSync(join(bundle, "rootfs/etc/new"), "n");
    const wrong = boci(["repack", "--no-progress", "--image", `${l}:multi`, "--platform", HOST, bundle]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toBe(`boci: repack --platform ${HOST}: bundle ${bundle} was unpacked from the ${OTHER} manifest (repack writes into that one)\n`);
    ok(["repack", "--no-progress", "--image", `${l}:multi`, "--platform", OTHER, bundle]);
    const after = expectOnlyOtherChanged(l, before);
    expect(JSON.parse(blob(l, after.manifests[1]!).toString()).layers).toHaveLength(2);
    const rootfs = join(scratch(), "rootfs");
    ok(["raw", "unpack", "--no-progress", "--image", `${l}:multi`, "--platform", OTHER, rootfs]);
    expect(readFileSync(join(rootfs, "etc/new"), "utf8")).toBe("n");
    const cfg = join(scratch(), "config.json");
    ok(["raw", "runtime-config", "--image", `${l}:multi`, "--platform", OTHER, cfg]);
    expect(existsSync(cfg)).toBe(true);
  });

  test.skipIf(!have("skopeo"))("an index skopeo wrote (copy --all): config --platform keeps skopeo's other entry and annotations", () => {
    const { l } = multi();
    const dst = join(scratch(), "sk");
    const r = Bun.spawnSync(["skopeo", "copy", "--all", `oci:${l}:multi`, `oci:${dst}:multi`], { stderr: "pipe", stdout: "pipe" });
    expect(r.exitCode).toBe(0);
    const before = tagged(dst, "multi");
    ok(["config", "--image", `${dst}:multi`, "--platform", OTHER, "--config.env", "FROM_BOCI=1"]);
    const after = tagged(dst, "multi");
    expect(JSON.stringify(after.manifests[0])).toBe(JSON.stringify(before.manifests[0]));
    expect(after.manifests[1]!.platform).toEqual(before.manifests[1]!.platform);
    expect(after.annotations).toEqual(before.annotations);
    // skopeo reads the result back, every platform
    const back = Bun.spawnSync(["skopeo", "copy", "--all", `oci:${dst}:multi`, `oci:${join(scratch(), "back")}:multi`], { stderr: "pipe", stdout: "pipe" });
    expect(back.exitCode).toBe(0);
  });
});

describe("tag --platform", () => {
  test("the new tag names that platform's manifest alone, with its platform field; without it, the index", () => {
    const { l, index } = multi();
    const ix = tagged(l, "multi");
    const r = JSON.parse(ok(["tag", "--image", `${l}:multi`, "--platform", OTHER, "--json", "only-other"]).stdout);
    expect(r).toEqual({ manifest: ix.manifests[1], tag: "only-other", layersAdded: [], blobsWritten: 0, bytesWritten: 0 });
    expect(entry(l, "only-other")).toEqual({ ...ix.manifests[1]!, annotations: { [REF]: "only-other" } });
    expect(ok(["stat", "--image", `${l}:only-other`]).stdout.startsWith("== MANIFEST ==\n")).toBe(true);
    ok(["tag", "--image", `${l}:multi`, "whole"]);
    expect(entry(l, "whole")).toEqual({ ...index, annotations: { [REF]: "whole" } });
    const miss = boci(["tag", "--image", `${l}:multi`, "--platform", "linux/mips64", "x"]);
    expect(miss.code).toBe(3);
    expect(entry(l, "x")).toBeUndefined();
  });
});

describe("a nested index (an index naming the multi-platform one)", () => {
  test("config --platform rewrites both indexes, keeping every other entry; tag --platform takes the platform from the parent", () => {
    const { l, index } = multi();
    const { annotations: _a, ...inner } = entry(l, "multi");
    // the inner index named without a platform, beside an unrelated entry
    const sibling = { mediaType: MT.manifest, digest: entry(l, "p0").digest, size: entry(l, "p0").size, annotations: { "org.example.sibling": "1" } };
    const outer = writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: [sibling, inner], annotations: { "org.example.outer": "kept" } })), MT.index);
    setTag(l, "nested", outer);
    const innerBefore: Ix = JSON.parse(blob(l, index).toString());
    ok(["config", "--image", `${l}:nested`, "--platform", OTHER, "--config.env", "NESTED=1", "--no-history"]);
    const outerAfter = tagged(l, "nested");
    expect(outerAfter.annotations).toEqual({ "org.example.outer": "kept" });
    expect(JSON.stringify(outerAfter.manifests[0])).toBe(JSON.stringify(sibling));
    const innerAfter: Ix = JSON.parse(blob(l, outerAfter.manifests[1]!).toString());
    expect(innerAfter.annotations).toEqual(INDEX_ANNOTATIONS);
    expect(JSON.stringify(innerAfter.manifests[0])).toBe(JSON.stringify(innerBefore.manifests[0]));
    expect(configOf(l, innerAfter.manifests[1]!).config.Env).toContain("NESTED=1");
    expect(entry(l, "multi").digest).toBe(index.digest); // the other tag still names the old index

    // the sibling (no platform) and the two platforms of the inner index are listed; tag --platform
    const out = ok(["stat", "--image", `${l}:nested`, "--platform", OTHER]).stdout;
    expect(out).toContain(`Platforms:\n\tunknown: ${sibling.digest}\n\t${HOST}: ${innerAfter.manifests[0]!.digest}\n\t${OTHER}: ${innerAfter.manifests[1]!.digest}\n`);
    ok(["tag", "--image", `${l}:nested`, "--platform", OTHER, "nested-other"]);
    expect(entry(l, "nested-other")).toEqual({ ...innerAfter.manifests[1]!, annotations: { [REF]: "nested-other" } });

    // the platform on the parent's entry only: the new tag's descriptor carries it
    const { annotations: _b, ...p1 } = entry(l, "p1");
    const bare = writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: [p1] })), MT.index);
    setTag(l, "parent", writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: [{ ...bare, platform: { architecture: OTHER_ARCH, os: "linux" } }] })), MT.index));
    ok(["tag", "--image", `${l}:parent`, "--platform", OTHER, "parent-other"]);
    expect(entry(l, "parent-other")).toEqual({ ...p1, platform: { architecture: OTHER_ARCH, os: "linux" }, annotations: { [REF]: "parent-other" } });
  });
});

describe("--platform: one flag, one parser, on every command", () => {
  test("a malformed value is a usage error (exit 2, one line) everywhere, before anything is written", () => {
    const { l } = multi();
    const ixBytes = readFileSync(join(l, "index.json"));
    const layer = tarFile("x", "x");
    const img = ["--image", `${l}:multi`];
    const cmds = [
      ["stat", ...img], ["config", ...img, "--config.user", "1"], ["insert", ...img, layer, "/x"], ["raw", "add-layer", ...img, layer],
      ["repack", ...img, join(scratch(), "nobundle")], ["tag", ...img, "t2"], ["unpack", ...img, join(scratch(), "b")],
      ["raw", "unpack", ...img, join(scratch(), "r")], ["raw", "runtime-config", ...img, join(scratch(), "c.json")],
    ];
    for (const c of cmds) {
      const r = boci([...c, "--platform", "linux/amd64/v1/x"]);
      expect({ c: c.join(" "), code: r.code }).toEqual({ c: c.join(" "), code: 2 });
      expect(r.stderr).toBe('boci: invalid platform "linux/amd64/v1/x": expected os/arch[/variant]\n');
    }
    expect(readFileSync(join(l, "index.json"))).toEqual(ixBytes);
    for (const c of cmds) expect(ok([...c.slice(0, c[0] === "raw" ? 2 : 1), "--help"]).stdout).toContain("--platform");
  });
});

describe("stat of artifacts", () => {
  /** A cosign-style signature: an image config, one blob that is no image layer, a subject. */
  function signature(l: string, subject: Descriptor, artifactType?: string): Descriptor {
    const cfg = writeBlob(l, Buffer.from(JSON.stringify({ architecture: "", os: "", config: {}, rootfs: { type: "layers", diff_ids: [`sha256:${"1".repeat(64)}`] } })), MT.config);
    const sig = { ...writeBlob(l, Buffer.from('{"critical":{}}'), "application/vnd.dev.cosign.simplesigning.v1+json"), annotations: { "org.opencontainers.image.title": "sig.json" } };
    const { annotations: _a, ...subj } = subject;
    const m = { schemaVersion: 2, mediaType: MT.manifest, ...(artifactType ? { artifactType } : {}), config: cfg, layers: [sig], subject: subj };
    return writeBlob(l, Buffer.from(JSON.stringify(m)), MT.manifest);
  }

  test("an artifact with an image config: an ARTIFACT section (type, subject, blobs) instead of an empty image history", () => {
    const { l } = multi();
    const subject = entry(l, "p0");
    const sig = signature(l, subject);
    setTag(l, "sig", sig);
    const out = ok(["stat", "--image", `${l}:sig`]).stdout;
    expect(out).not.toContain("== HISTORY ==");
    const blobDigest = JSON.parse(blob(l, sig).toString()).layers[0].digest;
    expect(out.slice(out.indexOf("\n== ARTIFACT ==\n"))).toBe([
      "", "== ARTIFACT ==", `Artifact Type: ${MT.config}`, `Subject: ${subject.digest}`,
      `BLOB${" ".repeat(68)}MEDIA TYPE${" ".repeat(39)}SIZE TITLE`,
      `${blobDigest} application/vnd.dev.cosign.simplesigning.v1+json 15B  sig.json`, "",
    ].join("\n"));
    const j = statJson(`${l}:sig`);
    expect(Object.keys(j)).toEqual(["manifest", "config", "artifact"]);
    expect(j.artifact.artifactType).toBe(MT.config);
    expect(j.artifact.subject.digest).toBe(subject.digest);
    expect(j.artifact.blobs.map((b: Descriptor) => b.digest)).toEqual([blobDigest]);
    // artifactType set: that is its type
    setTag(l, "typed", signature(l, subject, "application/vnd.example.signature"));
    expect(ok(["stat", "--image", `${l}:typed`]).stdout).toContain("\n== ARTIFACT ==\nArtifact Type: application/vnd.example.signature\n");
    expect(statJson(`${l}:typed`).artifact.artifactType).toBe("application/vnd.example.signature");
  });

  test("an image is no artifact (its history stays); an empty-config artifact is shown as umoci 0.6 shows it", () => {
    const { l } = multi();
    const img = ok(["stat", "--image", `${l}:p0`]).stdout;
    expect(img).toContain("\n== HISTORY ==\n");
    expect(img).not.toContain("== ARTIFACT ==");
    const empty = writeBlob(l, Buffer.from("{}"), "application/vnd.oci.empty.v1+json");
    const sbom = writeBlob(l, Buffer.from('{"sbom":1}'), "application/vnd.example.sbom+json");
    setTag(l, "sbom", writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.manifest, artifactType: "application/vnd.example.sbom", config: empty, layers: [sbom], subject: { mediaType: MT.manifest, digest: entry(l, "p0").digest, size: entry(l, "p0").size } })), MT.manifest));
    const out = ok(["stat", "--image", `${l}:sbom`]).stdout;
    expect(out).toContain("Artifact Type: application/vnd.example.sbom\n");
    expect(out).toContain(`Subject:\n\tDescriptor:\n\t\tMedia Type: ${MT.manifest}\n\t\tDigest: ${entry(l, "p0").digest}\n`);
    expect(out).toContain(`\t\tDigest: ${sbom.digest}\n`);
    expect(out).not.toContain("== HISTORY ==");
  });

  test("an index holding an image and its signature: both listed, the artifact type shown", () => {
    const { l } = multi();
    const p0 = entry(l, "p0");
    const { annotations: _a, ...m0 } = p0;
    const sig = signature(l, p0, "application/vnd.example.signature");
    const ix = writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: [
      { ...m0, platform: { architecture: hostArch(), os: "linux" } },
      { ...sig, artifactType: "application/vnd.example.signature", platform: { architecture: "unknown", os: "unknown" } },
    ] })), MT.index);
    setTag(l, "signed", ix);
    const out = ok(["stat", "--image", `${l}:signed`]).stdout;
    expect(out).toContain(`Platforms:\n\t${HOST}: ${p0.digest}\n\tunknown/unknown: ${sig.digest}\n\t\tArtifact Type: application/vnd.example.signature\nChosen: ${HOST}, ${p0.digest}\n`);
    expect(ok(["stat", "--image", `${l}:signed`, "--platform", "unknown/unknown"]).stdout).toContain("\n== ARTIFACT ==\n");
  });
});
