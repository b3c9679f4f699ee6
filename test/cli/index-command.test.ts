/**
 * `boci index create|add|remove|ls` through the real binary (issue 17): the index blob as umoci
 * would encode it (key order, the Encoder's newline, `mediaType` set), each entry's platform from
 * its config or `--platform`, `--annotation`, the tag moved last (an existing tag replaced, as
 * `new` does), old index blobs left for gc; every refusal with its exit code and nothing changed
 * (duplicate platforms, a count mismatch, an index without `--nested`, Docker types, another
 * layout, the last entry); nested indexes and OCI 1.1 artifacts; `ls` as a table and JSON, on a
 * layout and on an oci-archive; the group's help, man pages and bash completion.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, boci, have, isRoot, ok, scratch, sh } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";
import { file, hostArch, makeImage, makeTar, MT, setTag, writeBlob, type Descriptor } from "../helpers/image";

const REF = "org.opencontainers.image.ref.name";
const INDEX = "application/vnd.oci.image.index.v1+json";
const host = hostArch();
const other = host === "arm64" ? "amd64" : "arm64";

const indexJson = (l: string) => JSON.parse(readFileSync(join(l, "index.json"), "utf8"));
const blobPath = (l: string, digest: string) => join(l, "blobs", ...digest.split(":"));
const blobs = (l: string) => readdirSync(join(l, "blobs", "sha256")).sort();
/** The index.json entry of `tag`. */
function entry(l: string, tag: string): Descriptor {
  const hits = indexJson(l).manifests.filter((d: Descriptor) => d.annotations?.[REF] === tag);
  expect(hits).toHaveLength(1);
  return hits[0];
}
/** The raw bytes of the blob `tag` names, and its JSON. */
function tagged(l: string, tag: string): { bytes: string; json: any } {
  const bytes = readFileSync(blobPath(l, entry(l, tag).digest), "utf8");
  return { bytes, json: JSON.parse(bytes) };
}

/** A layout with `amd`/`arm`-style images: `h` (host arch), `o` (the other arch, variant v8 for arm64), each one layer. */
function fixture(): { l: string; h: Descriptor; o: Descriptor } {
  const l = join(scratch(), "lay");
  ok(["init", "--layout", l]);
  const h = makeImage(l, "h", [makeTar([file("which", `${host}\n`)])], { architecture: host }).manifest;
  const o = makeImage(l, "o", [makeTar([file("which", `${other}\n`)])], { architecture: other, config: other === "arm64" ? { variant: "v8" } : {} }).manifest;
  return { l, h, o };
}
const otherPlatform = other === "arm64" ? { architecture: "arm64", os: "linux", variant: "v8" } : { architecture: "amd64", os: "linux" };

/** Expect a refusal: the exit code, one line on stderr containing `has`, index.json and blobs unchanged. */
function refused(l: string, args: string[], code: number, has: string): string {
  const before = readFileSync(join(l, "index.json"), "utf8");
  const beforeBlobs = blobs(l);
  const r = boci(args);
  expect(r.code).toBe(code);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  expect(r.stderr).toContain(has);
  expect(readFileSync(join(l, "index.json"), "utf8")).toBe(before);
  expect(blobs(l)).toEqual(beforeBlobs);
  return r.stderr;
}

describe("index create", () => {
  test("entries in order with each config's platform, annotations, umoci's encoding; the tag moved last; stat and unpack --platform read it", () => {
    const { l, h, o } = fixture();
    const r = ok(["index", "create", "--image", `${l}:multi`, "--from", `${l}:h`, "--from", `${l}:o`, "--annotation", "org.example.b=2", "--annotation", "org.example.a=1", "--json"]);
    const top = entry(l, "multi");
    expect(top.mediaType).toBe(INDEX);
    const out = JSON.parse(r.stdout);
    expect(out.manifest).toEqual({ mediaType: INDEX, digest: top.digest, size: top.size });
    expect(out.tag).toBe("multi");
    expect(out.blobsWritten).toBe(1);
    const { bytes, json } = tagged(l, "multi");
    // Go's Encoder over ispec.Index: field order, sorted map keys, the trailing newline.
    expect(bytes).toBe(JSON.stringify({
      schemaVersion: 2, mediaType: INDEX,
      manifests: [
        { mediaType: MT.manifest, digest: h.digest, size: h.size, platform: { architecture: host, os: "linux" } },
        { mediaType: MT.manifest, digest: o.digest, size: o.size, platform: otherPlatform },
      ],
      annotations: { "org.example.a": "1", "org.example.b": "2" },
    }) + "\n");
    expect(json.manifests).toHaveLength(2);
    expect(checkLayout(l)).toEqual([]);
    // the images keep their tags
    expect(entry(l, "h").digest).toBe(h.digest);
    // readers choose by platform
    expect(ok(["stat", "--image", `${l}:multi`]).stdout).toContain("== MANIFEST ==");
    const b = join(scratch(), "bundle");
    ok(["unpack", ...(isRoot ? [] : ["--rootless"]), "--platform", `linux/${other}`, "--image", `${l}:multi`, b]);
    expect(readFileSync(join(b, "rootfs", "which"), "utf8")).toBe(`${other}\n`);
    ok(["validate", "--layout", l]);
  });

  test("the platform carries the config's variant, os.version and os.features; --platform (once per --from, in order) replaces it", () => {
    const { l, h } = fixture();
    const w = makeImage(l, "w", [makeTar([file("w", "w\n")])], { architecture: "amd64", config: { os: "windows", "os.version": "10.0.17763.1", "os.features": ["win32k"] } }).manifest;
    ok(["index", "create", "--image", `${l}:win`, "--from", `${l}:w`, "--from", `${l}:h`]);
    expect(tagged(l, "win").json.manifests[0].platform).toEqual({ architecture: "amd64", os: "windows", "os.version": "10.0.17763.1", "os.features": ["win32k"] });
    ok(["index", "create", "--image", `${l}:over`, "--from", `${l}:w`, "--platform", "linux/arm/v7", "--from", `${l}:h`, "--platform", "linux/riscv64"]);
    const m = tagged(l, "over").json.manifests;
    expect(m.map((d: Descriptor) => [d.digest, d.platform])).toEqual([
      [w.digest, { architecture: "arm", os: "linux", variant: "v7" }],
      [h.digest, { architecture: "riscv64", os: "linux" }],
    ]);
    // one image twice, under two platforms, is allowed
    ok(["index", "create", "--image", `${l}:twice`, "--from", `${l}:h`, "--from", `${l}:h`, "--platform", "linux/amd64", "--platform", "linux/386"]);
    expect(tagged(l, "twice").json.manifests.map((d: Descriptor) => d.digest)).toEqual([h.digest, h.digest]);
    expect(checkLayout(l)).toEqual([]);
  });

  test("an existing tag is replaced, as new does (the old image's blobs stay for gc)", () => {
    const { l, h, o } = fixture();
    ok(["index", "create", "--image", `${l}:h`, "--from", `${l}:h`, "--from", `${l}:o`]);
    expect(entry(l, "h").mediaType).toBe(INDEX);
    expect(tagged(l, "h").json.manifests[0].digest).toBe(h.digest);
    expect(existsSync(blobPath(l, h.digest))).toBe(true);
    expect(indexJson(l).manifests.filter((d: Descriptor) => d.annotations?.[REF] === "h")).toHaveLength(1);
    void o;
  });

  test("refusals: exit codes, one line, nothing written", () => {
    const { l } = fixture();
    expect(refused(l, ["index", "create", "--image", `${l}:x`, "--from", `${l}:h`, "--from", `${l}:h`], 2, "both offer platform")).toContain(`--from ${l}:h (1) and --from ${l}:h (2)`);
    refused(l, ["index", "create", "--image", `${l}:x`, "--from", `${l}:h`, "--from", `${l}:o`, "--platform", "linux/amd64"], 2, "once per --from");
    refused(l, ["index", "create", "--image", `${l}:x`, "--from", `${l}:h`, "--platform", "linux"], 2, "os/arch");
    refused(l, ["index", "create", "--image", `${l}:x`], 2, "--from");
    refused(l, ["index", "create", "--image", `${l}:x`, "--from", `${l}:nope`], 3, "nope");
    refused(l, ["index", "create", "--image", `${l}:x`, "--from", `${l}:h`, "--annotation", "novalue"], 2, "key=value");
    refused(l, ["index", "create", "--image", `${l}:x`, "--from", `${l}:h`, "--annotation", `${REF}=x`], 2, REF);
    refused(l, ["index", "create", "--image", `oci-archive:${l}.tar`, "--from", `${l}:h`], 2, "archive");
    // another layout: the blobs are not there
    const l2 = join(scratch(), "other");
    ok(["init", "--layout", l2]);
    makeImage(l2, "t", [], { architecture: host });
    refused(l, ["index", "create", "--image", `${l}:x`, "--from", `${l2}:t`], 2, "boci copy");
    // the same layout by another spelling is the same layout
    ok(["index", "create", "--image", `${l}:x`, "--from", `${l}/./:h`]);
  });

  test("a config without os/architecture is invalid (exit 4) unless --platform names the platform", () => {
    const { l } = fixture();
    const cfg = writeBlob(l, Buffer.from(JSON.stringify({ rootfs: { type: "layers", diff_ids: [] } })), MT.config);
    const m = writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.manifest, config: cfg, layers: [] })), MT.manifest);
    setTag(l, "bare", m);
    refused(l, ["index", "create", "--image", `${l}:x`, "--from", `${l}:bare`], 4, "config.os");
    ok(["index", "create", "--image", `${l}:x`, "--from", `${l}:bare`, "--platform", "linux/amd64"]);
    expect(tagged(l, "x").json.manifests[0].platform).toEqual({ architecture: "amd64", os: "linux" });
  });

  test("Docker-typed images are refused with exit 6, naming the boci copy that converts them", () => {
    const { l } = fixture();
    const cfg = writeBlob(l, Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } })), "application/vnd.docker.container.image.v1+json");
    const dm = writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.docker.distribution.manifest.v2+json", config: cfg, layers: [] })), "application/vnd.docker.distribution.manifest.v2+json");
    setTag(l, "docker", dm);
    expect(refused(l, ["index", "create", "--image", `${l}:x`, "--from", `${l}:h`, "--from", `${l}:docker`], 6, "docker media types")).toContain(`boci copy oci:${l}:docker oci:${l}:docker-oci`);
    // an OCI manifest whose config is Docker-typed is mixed too
    const mixed = writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.manifest, config: cfg, layers: [] })), MT.manifest);
    setTag(l, "mixed", mixed);
    refused(l, ["index", "create", "--image", `${l}:x`, "--from", `${l}:mixed`], 6, "boci copy");
    // a Docker manifest list cannot be added to
    const list = writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.docker.distribution.manifest.list.v2+json", manifests: [{ ...dm, platform: { architecture: "amd64", os: "linux" } }] })), "application/vnd.docker.distribution.manifest.list.v2+json");
    setTag(l, "list", list);
    refused(l, ["index", "add", "--image", `${l}:list`, "--from", `${l}:h`], 6, "boci copy --all");
    refused(l, ["index", "create", "--nested", "--image", `${l}:x`, "--from", `${l}:list`], 6, "boci copy");
    // ls reads it
    expect(ok(["index", "ls", "--image", `${l}:list`]).stdout).toContain("application/vnd.docker.distribution.manifest.v2+json");
  });
});

describe("nested indexes and artifacts", () => {
  test("an index as --from is refused unless --nested; nested entries are listed under it; ls --json names them by digest", () => {
    const { l, h, o } = fixture();
    ok(["index", "create", "--image", `${l}:inner`, "--from", `${l}:h`, "--from", `${l}:o`]);
    const inner = entry(l, "inner");
    refused(l, ["index", "create", "--image", `${l}:outer`, "--from", `${l}:inner`], 2, "--nested");
    ok(["index", "create", "--nested", "--image", `${l}:outer`, "--from", `${l}:inner`, "--from", `${l}:h`, "--platform", "linux/s390x", "--platform", "linux/ppc64le"]);
    expect(tagged(l, "outer").json.manifests[0]).toEqual({ mediaType: INDEX, digest: inner.digest, size: inner.size, platform: { architecture: "s390x", os: "linux" } });
    // without --platform a nested index has none, and never clashes
    ok(["index", "create", "--nested", "--image", `${l}:outer2`, "--from", `${l}:inner`, "--from", `${l}:h`]);
    expect(tagged(l, "outer2").json.manifests[0].platform).toBeUndefined();
    const lines = ok(["index", "ls", "--image", `${l}:outer`]).stdout.split("\n");
    expect(lines[0]).toMatch(/^PLATFORM +DIGEST +SIZE +MEDIA TYPE$/);
    expect(lines[1]).toMatch(new RegExp(`^linux/s390x +${inner.digest} +${inner.size} +${INDEX.replace("+", "\\+")}$`));
    expect(lines[2]).toMatch(new RegExp(`^  linux/${host} +${h.digest} `));
    expect(lines[3]).toMatch(new RegExp(`^  linux/${other}.* ${o.digest} `));
    expect(lines[4]).toMatch(/^linux\/ppc64le /);
    const j = JSON.parse(ok(["index", "ls", "--image", `${l}:outer`, "--json"]).stdout);
    expect(j.tag).toBe("outer");
    expect(j.index).toEqual({ mediaType: INDEX, digest: entry(l, "outer").digest, size: entry(l, "outer").size });
    expect(j.manifests).toEqual(tagged(l, "outer").json.manifests);
    expect(Object.keys(j.nested)).toEqual([inner.digest]);
    expect(j.nested[inner.digest].map((d: Descriptor) => d.digest)).toEqual([h.digest, o.digest]);
    // readers walk through it
    expect(ok(["stat", "--image", `${l}:outer2`]).stdout).toContain("== MANIFEST ==");
    expect(checkLayout(l)).toEqual([]);
  });

  test("an OCI 1.1 artifact is an entry with its artifactType and no platform unless given one", () => {
    const { l } = fixture();
    const empty = writeBlob(l, Buffer.from("{}"), "application/vnd.oci.empty.v1+json");
    const sbom = writeBlob(l, Buffer.from('{"sbom":true}'), "application/spdx+json");
    const art = writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.manifest, artifactType: "application/spdx+json", config: empty, layers: [sbom] })), MT.manifest);
    setTag(l, "sbom", art);
    ok(["index", "create", "--image", `${l}:withsbom`, "--from", `${l}:h`, "--from", `${l}:sbom`]);
    expect(tagged(l, "withsbom").json.manifests[1]).toEqual({ mediaType: MT.manifest, digest: art.digest, size: art.size, artifactType: "application/spdx+json" });
    const lines = ok(["index", "ls", "--image", `${l}:withsbom`]).stdout.split("\n");
    expect(lines[0]).toMatch(/MEDIA TYPE +ARTIFACT TYPE$/);
    expect(lines[1]).toMatch(/ -$/);
    expect(lines[2]).toMatch(/^- +sha256:.* application\/spdx\+json$/);
    // the artifact's config type stands for an artifactType the manifest does not give
    const art2 = writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.manifest, config: { ...sbom, mediaType: "application/vnd.example.thing" }, layers: [] })), MT.manifest);
    setTag(l, "thing", art2);
    ok(["index", "add", "--image", `${l}:withsbom`, "--from", `${l}:thing`, "--platform", "linux/amd64/v2"]);
    expect(tagged(l, "withsbom").json.manifests[2]).toEqual({ mediaType: MT.manifest, digest: art2.digest, size: art2.size, platform: { architecture: "amd64", os: "linux", variant: "v2" }, artifactType: "application/vnd.example.thing" });
    expect(checkLayout(l)).toEqual([]);
  });
});

describe("index add and remove", () => {
  test("add appends a new platform and replaces the same platform in place; the old index blob stays for gc, which then removes it", () => {
    const { l, h, o } = fixture();
    ok(["index", "create", "--image", `${l}:m`, "--from", `${l}:h`, "--annotation", "k=1"]);
    const first = entry(l, "m");
    const added = JSON.parse(ok(["index", "add", "--image", `${l}:m`, "--from", `${l}:o`, "--annotation", "j=2", "--json"]).stdout);
    expect(added.manifest.digest).toBe(entry(l, "m").digest);
    expect(existsSync(blobPath(l, first.digest))).toBe(true);
    let ix = tagged(l, "m").json;
    expect(ix.manifests.map((d: Descriptor) => d.digest)).toEqual([h.digest, o.digest]);
    expect(ix.annotations).toEqual({ j: "2", k: "1" });
    // a new image for the host platform takes the first entry's place
    const h2 = makeImage(l, "h2", [makeTar([file("which", "new\n")])], { architecture: host }).manifest;
    const r = ok(["--log", "info", "index", "add", "--image", `${l}:m`, "--from", `${l}:h2`]);
    expect(r.stderr).toContain(`replacing the entry for linux/${host}: ${h.digest}`);
    ix = tagged(l, "m").json;
    expect(ix.manifests.map((d: Descriptor) => d.digest)).toEqual([h2.digest, o.digest]);
    expect(checkLayout(l)).toEqual([]);
    ok(["rm", "--image", `${l}:h`]);
    ok(["gc", "--layout", l]);
    expect(existsSync(blobPath(l, first.digest))).toBe(false);
    expect(existsSync(blobPath(l, h.digest))).toBe(false);
    expect(checkLayout(l)).toEqual([]);
  });

  test("add refuses a tag that is not an index (exit 2) or is missing (exit 3)", () => {
    const { l } = fixture();
    refused(l, ["index", "add", "--image", `${l}:h`, "--from", `${l}:o`], 2, "index create");
    refused(l, ["index", "add", "--image", `${l}:none`, "--from", `${l}:o`], 3, "none");
    refused(l, ["index", "add", "--image", `${l}:h`], 2, "--from");
  });

  test("remove by platform (a variant-less one matches the variant), by digest; the last entry and an absent one are refused", () => {
    const { l, h, o } = fixture();
    ok(["index", "create", "--image", `${l}:m`, "--from", `${l}:h`, "--from", `${l}:o`, "--from", `${l}:h`, "--platform", `linux/${host}`, "--platform", otherPlatform.variant ? `linux/${other}/v8` : `linux/${other}`, "--platform", "linux/mips64le"]);
    refused(l, ["index", "remove", "--image", `${l}:m`, "--platform", "linux/ppc64le"], 3, "linux/ppc64le");
    refused(l, ["index", "remove", "--image", `${l}:m`], 2, "--platform or --digest");
    refused(l, ["index", "remove", "--image", `${l}:m`, "--digest", "sha256:1"], 2, "digest");
    refused(l, ["index", "remove", "--image", `${l}:m`, "--digest", h.digest], 2, "2 entries");
    ok(["index", "remove", "--image", `${l}:m`, "--platform", `linux/${other}`]);
    expect(tagged(l, "m").json.manifests.map((d: Descriptor) => d.platform?.architecture)).toEqual([host, "mips64le"]);
    const j = JSON.parse(ok(["index", "rm", "--image", `${l}:m`, "--platform", "linux/mips64le", "--json"]).stdout);
    expect(j.manifest.digest).toBe(entry(l, "m").digest);
    expect(tagged(l, "m").json.manifests.map((d: Descriptor) => d.digest)).toEqual([h.digest]);
    refused(l, ["index", "remove", "--image", `${l}:m`, "--platform", `linux/${host}`], 2, "only entry");
    refused(l, ["index", "remove", "--image", `${l}:h`, "--platform", `linux/${host}`], 2, "not an index");
    void o;
    expect(checkLayout(l)).toEqual([]);
  });
});

describe("index ls", () => {
  test("a table in umoci's tab style, --json; an oci-archive read in place; an image manifest refused", () => {
    const { l, h, o } = fixture();
    ok(["index", "create", "--image", `${l}:m`, "--from", `${l}:h`, "--from", `${l}:o`, "--annotation", "a=b"]);
    const text = ok(["index", "ls", "--image", `${l}:m`]).stdout;
    const plat = otherPlatform.variant ? `linux/${other}/v8` : `linux/${other}`;
    // Go's tabwriter as umoci's tables use it: each column as wide as its widest cell plus 2
    const rows = [["PLATFORM", "DIGEST", "SIZE", "MEDIA TYPE"], [`linux/${host}`, h.digest, String(h.size), MT.manifest], [plat, o.digest, String(o.size), MT.manifest]];
    const widths = [0, 1, 2].map((c) => Math.max(4, ...rows.map((r) => r[c]!.length)) + 2);
    expect(text).toBe(rows.map((r) => r.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c)).join("") + "\n").join(""));
    const j = JSON.parse(ok(["index", "ls", "--image", `${l}:m`, "--json"]).stdout);
    expect(j.annotations).toEqual({ a: "b" });
    expect(j.manifests.map((d: Descriptor) => d.digest)).toEqual([h.digest, o.digest]);
    expect(j.nested).toEqual({});
    // an archive of the layout, read in place
    const tar = join(scratch(), "m.tar");
    ok(["copy", "--all", `oci:${l}:m`, `oci-archive:${tar}:m`]);
    expect(ok(["index", "ls", "--image", `oci-archive:${tar}:m`]).stdout).toBe(text);
    const r = boci(["index", "ls", "--image", `${l}:h`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("not an index");
    expect(boci(["index", "ls", "--image", `${l}:none`]).code).toBe(3);
  });
});

describe("the index group in help, man and completion", () => {
  const names = ["index create", "index add", "index remove", "index ls"];
  test("boci index alone prints the group's help; an unknown subcommand is a usage error; each command has help", () => {
    const g = ok(["index"]);
    for (const n of ["create", "add", "remove", "ls"]) expect(g.stdout).toMatch(new RegExp(`^   ${n}\\b`, "m"));
    expect(ok(["index", "--help"]).stdout).toBe(g.stdout);
    expect(ok(["help", "index"]).stdout).toBe(g.stdout);
    expect(ok(["--help"]).stdout).toMatch(/^   index +build and list multi-platform image indexes$/m);
    const r = boci(["index", "creat"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('did you mean "index create"');
    for (const n of names) {
      const h = ok([...n.split(" "), "--help"]).stdout;
      expect(h).toContain(`boci ${n} - `);
      expect(h).toContain("DESCRIPTION:");
      expect(h).toContain("EXAMPLES:");
    }
  });

  test.skipIf(!have("man"))("every index page renders with man -l without warnings", () => {
    const work = scratch();
    for (const n of names) {
      const f = join(work, `${n.replace(" ", "-")}.1`);
      writeFileSync(f, ok(["man", ...n.split(" ")]).stdout);
      const r = sh(`man --warnings -l ${JSON.stringify(f)} 2>&1 >/dev/null`);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("");
      expect(sh(`MANWIDTH=200 man -l ${JSON.stringify(f)}`).stdout.replace(/.\x08/g, "")).toContain(`boci ${n}`);
    }
    expect(ok(["man"]).stdout).toContain("boci\\-index\\-create");
  });

  test.skipIf(!have("bash"))("bash completes the index subcommands and their flags", () => {
    const work = scratch();
    const script = join(work, "boci.bash");
    writeFileSync(script, ok(["completion", "bash"]).stdout);
    const complete = (line: string, words: string[]) => {
      const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
      const prog = [`source ${q(script)}`, `_boci_bin=${q(BIN)}`, `COMP_WORDS=(${words.map(q).join(" ")})`, `COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 ))`, `COMP_LINE=${q(line)}`, `COMP_POINT=\${#COMP_LINE}`, "_boci", `printf '%s\\n' "\${COMPREPLY[@]}"`].join("\n");
      const p = Bun.spawnSync(["bash", "-c", prog], { stdout: "pipe", stderr: "pipe" });
      expect(p.stderr.toString()).toBe("");
      return p.stdout.toString().split("\n").filter(Boolean).sort();
    };
    expect(complete("boci ", ["boci", ""])).toContain("index");
    expect(complete("boci index ", ["boci", "index", ""])).toEqual(["add", "create", "ls", "remove"]);
    expect(complete("boci index create --fr", ["boci", "index", "create", "--fr"])).toEqual(["--from"]);
    expect(complete("boci raw ", ["boci", "raw", ""])).toEqual(["add-layer", "runtime-config", "unpack"]);
  });
});
