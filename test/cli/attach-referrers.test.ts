/**
 * `boci attach` and `boci referrers` (image-spec 1.1 artifacts in a layout), and what gc and
 * validate do with referrers: through the real binary and real files.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync, mkdirSync, readdirSync, existsSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { boci, ok, scratch, sh, have } from "../helpers/cli";
import { makeTar, makeImage, makeIndex, file, dir, sha256hex, writeBlob, setTag, hostArch, MT, type Descriptor } from "../helpers/image";

const REF = "org.opencontainers.image.ref.name";
const TITLE = "org.opencontainers.image.title";
const CREATED = "org.opencontainers.image.created";
const EMPTY = { mediaType: "application/vnd.oci.empty.v1+json", digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", size: 2, data: "e30=" };
const SDE = { SOURCE_DATE_EPOCH: "1700000000" };

function readJson(p: string): any { return JSON.parse(readFileSync(p, "utf8")); }
function blobPath(l: string, digest: string): string { return join(l, "blobs", ...digest.split(":")); }
function blobJson(l: string, digest: string): any { return readJson(blobPath(l, digest)); }
function index(l: string): any { return readJson(join(l, "index.json")); }
function blobs(l: string): string[] { return readdirSync(join(l, "blobs", "sha256")).sort(); }

/** A layout with one image tagged `img`; returns the layout and the image's manifest descriptor. */
function layoutWithImage(): { L: string; s: string; image: Descriptor } {
  const s = scratch("boci-attach-");
  const L = join(s, "layout");
  ok(["init", "--layout", L]);
  const m = makeImage(L, "img", [makeTar([dir("etc/"), file("etc/hello", "hello\n")])]);
  return { L, s, image: m.manifest };
}

/** attach --json and its parsed output. */
function attach(L: string, ref: string, type: string, files: string[], extra: string[] = [], env: Record<string, string> = SDE): any {
  const r = ok(["attach", "--image", `${L}:${ref}`, "--artifact-type", type, "--json", ...extra, ...files], { env });
  return JSON.parse(r.stdout);
}

function referrersJson(L: string, ref: string, extra: string[] = []): any {
  return JSON.parse(ok(["referrers", "--image", `${L}:${ref}`, "--json", ...extra]).stdout);
}

describe("attach", () => {
  test("writes the artifact manifest (empty config, one titled layer per file, subject) and an untagged index.json entry", () => {
    const { L, s, image } = layoutWithImage();
    const files: Array<[string, string | Buffer, string]> = [
      ["sbom.spdx.json", '{"spdxVersion":"SPDX-2.3"}\n', "application/spdx+json"],
      ["bom.cdx.json", "{}\n", "application/vnd.cyclonedx+json"],
      ["data.json", "[]\n", "application/json"],
      ["notes.txt", "hello\n", "text/plain"],
      ["README.md", "# hi\n", "text/markdown"],
      ["layer.tar", makeTar([file("a", "a")]), "application/vnd.oci.image.layer.v1.tar"],
      ["layer.TGZ", "not really gzip", "application/vnd.oci.image.layer.v1.tar+gzip"],
      ["blob.bin", Buffer.from([0, 1, 2, 255]), "application/octet-stream"],
    ];
    for (const [n, body] of files) writeFileSync(join(s, n), body);
    const before = index(L);
    const out = attach(L, "img", "application/vnd.example.sbom", files.map(([n]) => join(s, n)), ["--annotation", "a=b", "--annotation", "eq=x=y"]);

    const ix = index(L);
    expect(ix.manifests.length).toBe(before.manifests.length + 1);
    const entry = ix.manifests[ix.manifests.length - 1];
    expect(entry).toEqual({ mediaType: MT.manifest, digest: out.manifest.digest, size: out.manifest.size, artifactType: "application/vnd.example.sbom" });
    expect(out.manifest).toEqual(entry);
    expect(out.tag).toBeNull();
    expect(out.subject).toEqual({ mediaType: image.mediaType, digest: image.digest, size: image.size });

    const m = blobJson(L, entry.digest);
    expect(Object.keys(m)).toEqual(["schemaVersion", "mediaType", "artifactType", "config", "layers", "subject", "annotations"]);
    expect(m.schemaVersion).toBe(2);
    expect(m.mediaType).toBe(MT.manifest);
    expect(m.artifactType).toBe("application/vnd.example.sbom");
    expect(m.config).toEqual(EMPTY);
    expect(readFileSync(blobPath(L, EMPTY.digest), "utf8")).toBe("{}");
    expect(m.subject).toEqual({ mediaType: image.mediaType, digest: image.digest, size: image.size });
    expect(m.annotations).toEqual({ a: "b", eq: "x=y", [CREATED]: "2023-11-14T22:13:20Z" });
    expect(m.layers.length).toBe(files.length);
    m.layers.forEach((l: Descriptor, i: number) => {
      const [n, body, mt] = files[i]!;
      const bytes = typeof body === "string" ? Buffer.from(body) : body;
      expect(l).toEqual({ mediaType: mt, digest: `sha256:${sha256hex(bytes)}`, size: bytes.length, annotations: { [TITLE]: n } });
      expect(readFileSync(blobPath(L, l.digest)).equals(bytes)).toBe(true);
    });
    expect(out.layersAdded).toEqual(m.layers);
    expect(readdirSync(join(L, ".boci-tmp"))).toEqual([]);
    expect(ok(["validate", "--layout", L]).stdout).toContain("is valid");

    // Attached again with the same SOURCE_DATE_EPOCH: the same manifest, listed once.
    const again = attach(L, "img", "application/vnd.example.sbom", files.map(([n]) => join(s, n)), ["--annotation", "a=b", "--annotation", "eq=x=y"]);
    expect(again.manifest.digest).toBe(entry.digest);
    expect(index(L).manifests.length).toBe(ix.manifests.length);
    // --annotation may set the creation time itself.
    const own = attach(L, "img", "application/vnd.example.sbom", [join(s, "notes.txt")], ["--annotation", `${CREATED}=2001-01-01T00:00:00Z`]);
    expect(blobJson(L, own.manifest.digest).annotations).toEqual({ [CREATED]: "2001-01-01T00:00:00Z" });
  });

  test("--media-type for every file, no file at all (the empty layer), a large file streamed, --tag", () => {
    const { L, s } = layoutWithImage();
    writeFileSync(join(s, "x.txt"), "x");
    writeFileSync(join(s, "y.json"), "{}");
    const big = Buffer.alloc(6 << 20);
    for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
    writeFileSync(join(s, "big"), big);
    const a = attach(L, "img", "application/vnd.t", [join(s, "x.txt"), join(s, "y.json")], ["--media-type", "application/vnd.one"]);
    expect(blobJson(L, a.manifest.digest).layers.map((l: Descriptor) => l.mediaType)).toEqual(["application/vnd.one", "application/vnd.one"]);
    const none = attach(L, "img", "application/vnd.note", [], ["--annotation", "k=v"]);
    expect(blobJson(L, none.manifest.digest).layers).toEqual([EMPTY]);
    const b = attach(L, "img", "application/vnd.big", [join(s, "big")], ["--tag", "big-art"]);
    expect(b.tag).toBe("big-art");
    expect(b.layersAdded[0]).toEqual({ mediaType: "application/octet-stream", digest: `sha256:${sha256hex(big)}`, size: big.length, annotations: { [TITLE]: "big" } });
    const tagged = index(L).manifests.filter((d: Descriptor) => d.digest === b.manifest.digest);
    expect(tagged).toEqual([{ ...b.manifest, annotations: { [REF]: "big-art" } }]);
    // Without SOURCE_DATE_EPOCH the creation time is now, to the second.
    const now = attach(L, "img", "application/vnd.now", [join(s, "x.txt")], [], {});
    expect(blobJson(L, now.manifest.digest).annotations[CREATED]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  test("refusals: one line, the right exit code, nothing written", () => {
    const { L, s } = layoutWithImage();
    writeFileSync(join(s, "f.txt"), "f");
    mkdirSync(join(s, "adir"));
    const ixBefore = readFileSync(join(L, "index.json"), "utf8");
    const blobsBefore = blobs(L);
    const cases: Array<[string[], number, RegExp]> = [
      [["--image", `${L}:img`, join(s, "f.txt")], 2, /missing mandatory argument: --artifact-type/],
      [["--image", `${L}:img`, "--artifact-type", "nope", join(s, "f.txt")], 2, /invalid --artifact-type "nope"/],
      [["--image", `${L}:img`, "--artifact-type", "a/b", "--media-type", "x", join(s, "f.txt")], 2, /invalid --media-type/],
      [["--image", `${L}:img`, "--artifact-type", "a/b", "--annotation", "novalue", join(s, "f.txt")], 2, /invalid --annotation "novalue"/],
      [["--image", `${L}:img`, "--artifact-type", "a/b", "--annotation", "=v", join(s, "f.txt")], 2, /invalid --annotation/],
      [["--image", `${L}:img`, "--artifact-type", "a/b", join(s, "f.txt"), join(s, "missing")], 3, /missing does not exist/],
      [["--image", `${L}:img`, "--artifact-type", "a/b", join(s, "adir")], 2, /is not a regular file/],
      [["--image", `${L}:nosuch`, "--artifact-type", "a/b", join(s, "f.txt")], 3, /tag "nosuch" not found/],
      [["--image", `${L}:img`, "--artifact-type", "a/b", "--index", join(s, "f.txt")], 2, /--index: tag "img" names application\/vnd.oci.image.manifest.v1\+json, not an index/],
      [["--image", `${L}:img`, "--artifact-type", "a/b", "--index", "--platform", "linux/amd64", join(s, "f.txt")], 2, /--index and --platform/],
      [["--image", `${L}:img`, "--artifact-type", "a/b", "--tag", "bad tag", join(s, "f.txt")], 2, /invalid tag/],
      [["--image", `${L}:img`, "--artifact-type", "a/b", "--platform", "linux", join(s, "f.txt")], 2, /invalid platform/],
      [["--image", `oci-archive:${join(s, "a.tar")}:img`, "--artifact-type", "a/b", join(s, "f.txt")], 2, /this command needs a layout/],
    ];
    for (const [args, code, re] of cases) {
      const r = boci(["attach", ...args]);
      expect({ args, code: r.code }).toEqual({ args, code });
      expect(r.stderr).toMatch(re);
      expect(r.stderr.trim().split("\n").length).toBe(1);
    }
    expect(readFileSync(join(L, "index.json"), "utf8")).toBe(ixBefore);
    expect(blobs(L)).toEqual(blobsBefore);
  });

  test("a multi-platform tag: the host's manifest by default, --platform another, --index the index itself", () => {
    const s = scratch("boci-attach-mp-");
    const L = join(s, "layout");
    ok(["init", "--layout", L]);
    const host = makeImage(L, "h", [makeTar([file("h", "h")])], { noTag: true });
    const other = makeImage(L, "o", [makeTar([file("o", "o")])], { noTag: true, architecture: "riscv64" });
    const ixd = makeIndex(L, "multi", [
      { ...host.manifest, platform: { os: "linux", architecture: hostArch() } },
      { ...other.manifest, platform: { os: "linux", architecture: "riscv64" } },
    ]);
    writeFileSync(join(s, "f.txt"), "f");
    const a = attach(L, "multi", "application/vnd.a", [join(s, "f.txt")]);
    expect(a.subject.digest).toBe(host.manifest.digest);
    const b = attach(L, "multi", "application/vnd.b", [join(s, "f.txt")], ["--platform", "linux/riscv64"]);
    expect(b.subject.digest).toBe(other.manifest.digest);
    const c = attach(L, "multi", "application/vnd.c", [join(s, "f.txt")], ["--index"]);
    expect(c.subject).toEqual({ mediaType: MT.index, digest: ixd.digest, size: ixd.size });

    const digests = (r: any) => r.manifests.map((d: Descriptor) => d.digest);
    expect(digests(referrersJson(L, "multi"))).toEqual([a.manifest.digest]);
    expect(digests(referrersJson(L, "multi", ["--platform", "linux/riscv64"]))).toEqual([b.manifest.digest]);
    expect(digests(referrersJson(L, "multi", ["--index"]))).toEqual([c.manifest.digest]);
    expect(ok(["validate", "--layout", L]).stdout).toContain("is valid");
  });
});

describe("referrers", () => {
  test("the table, --json as the distribution referrers API, --artifact-type, a referrer of a referrer, an oci-archive", () => {
    const { L, s, image } = layoutWithImage();
    writeFileSync(join(s, "sig"), "signature");
    writeFileSync(join(s, "sbom.spdx.json"), "{}");
    expect(ok(["referrers", "--image", `${L}:img`]).stdout).toBe("DIGEST  ARTIFACT TYPE  SIZE  CREATED\n");
    expect(referrersJson(L, "img")).toEqual({ schemaVersion: 2, mediaType: MT.index, manifests: [] });

    const sbom = attach(L, "img", "application/spdx+json", [join(s, "sbom.spdx.json")], ["--annotation", "who=me"]);
    const sig = attach(L, "img", "application/vnd.dev.sig", [join(s, "sig")], ["--tag", "img-sig"]);
    const sigOfSig = attach(L, "img-sig", "application/vnd.dev.sig", [join(s, "sig")], ["--annotation", "of=sig"]);

    const r = ok(["referrers", "--image", `${L}:img`, "--json"]).stdout;
    expect(r.endsWith("}\n")).toBe(true);
    // Go's encoding of an ispec.Index, as a registry answers GET /v2/<name>/referrers/<digest>.
    expect(r).toBe(JSON.stringify({
      schemaVersion: 2, mediaType: MT.index,
      manifests: [
        { mediaType: MT.manifest, digest: sbom.manifest.digest, size: sbom.manifest.size, annotations: { [CREATED]: "2023-11-14T22:13:20Z", who: "me" }, artifactType: "application/spdx+json" },
        { mediaType: MT.manifest, digest: sig.manifest.digest, size: sig.manifest.size, annotations: { [CREATED]: "2023-11-14T22:13:20Z" }, artifactType: "application/vnd.dev.sig" },
      ],
    }) + "\n");
    expect(referrersJson(L, "img", ["--artifact-type", "application/vnd.dev.sig"]).manifests.map((d: Descriptor) => d.digest)).toEqual([sig.manifest.digest]);
    expect(referrersJson(L, "img", ["--artifact-type", "application/none"]).manifests).toEqual([]);

    // attached to the artifact tagged img-sig: its referrer, not the image's
    expect(sigOfSig.subject.digest).toBe(sig.manifest.digest);
    expect(referrersJson(L, "img-sig").manifests.map((d: Descriptor) => d.digest)).toEqual([sigOfSig.manifest.digest]);

    const table = ok(["referrers", "--image", `${L}:img`]).stdout.split("\n");
    expect(table[0]).toMatch(/^DIGEST +ARTIFACT TYPE +SIZE +CREATED$/);
    expect(table[1]).toMatch(new RegExp(`^${sbom.manifest.digest} +application/spdx\\+json +${sbom.manifest.size} +2023-11-14T22:13:20Z$`));
    expect(table[2]).toMatch(new RegExp(`^${sig.manifest.digest} +application/vnd.dev.sig +${sig.manifest.size} +2023-11-14T22:13:20Z$`));
    expect(table.length).toBe(4);

    // an oci-archive (a tar of the layout) read in place
    const tar = join(s, "a.tar");
    expect(sh(`tar -cf '${tar}' -C '${L}' .`).code).toBe(0);
    const fromArchive = JSON.parse(ok(["referrers", "--image", `oci-archive:${tar}:img`, "--json"]).stdout);
    expect(fromArchive).toEqual(referrersJson(L, "img"));
    expect(image.digest).toBe(sig.subject.digest);
  });

  test("refusals", () => {
    const { L } = layoutWithImage();
    const cases: Array<[string[], number, RegExp]> = [
      [["--image", `${L}:nosuch`], 3, /tag "nosuch" not found/],
      [["--image", `${L}:img`, "--artifact-type", "bad"], 2, /invalid --artifact-type/],
      [["--image", `${L}:img`, "--index"], 2, /not an index/],
      [["--image", join(L, "nolayout")], 3, /./],
    ];
    for (const [args, code, re] of cases) {
      const r = boci(["referrers", ...args]);
      expect({ args, code: r.code }).toEqual({ args, code });
      expect(r.stderr).toMatch(re);
    }
  });
});

describe("gc and validate with referrers", () => {
  test("gc keeps referrers and what they name; after rm of the subject's tag it keeps both and says so; an artifact only a removed tag named goes", () => {
    const { L, s, image } = layoutWithImage();
    writeFileSync(join(s, "a.txt"), "aaa");
    writeFileSync(join(s, "b.txt"), "bbb");
    const a = attach(L, "img", "application/vnd.a", [join(s, "a.txt")]);
    const onA = attach(L, "img", "application/vnd.on-a", [join(s, "a.txt")], ["--tag", "a-tag"]);
    // a referrer of that artifact (reached by its tag)
    const deep = attach(L, "a-tag", "application/vnd.deep", [join(s, "a.txt")]);
    const tmpOnly = attach(L, "img", "application/vnd.tmp", [join(s, "b.txt")], ["--tag", "tmp"]);
    const all = blobs(L);

    let r = ok(["gc", "--layout", L, "--json"]);
    expect(JSON.parse(r.stdout).removedBlobs).toEqual([]);
    expect(r.stderr).toBe("");

    // the tagged-only artifact goes with its tag (its own layer too); the rest stays
    ok(["rm", "--image", `${L}:tmp`]);
    r = ok(["gc", "--layout", L, "--json"]);
    const bBlob = `sha256:${sha256hex(Buffer.from("bbb"))}`;
    expect(JSON.parse(r.stdout).removedBlobs.sort()).toEqual([tmpOnly.manifest.digest, bBlob].sort());
    expect(blobs(L)).toEqual(all.filter((n) => ![tmpOnly.manifest.digest, bBlob].includes(`sha256:${n}`)));

    // rm of the image's tag while a tagged artifact refers to it: nothing is an orphan yet
    ok(["rm", "--image", `${L}:img`]);
    r = ok(["gc", "--layout", L, "--json"]);
    expect(JSON.parse(r.stdout).removedBlobs).toEqual([]);
    expect(r.stderr).toBe("");
    // and once that tag goes too, every referrer is kept, with the image, and named
    ok(["rm", "--image", `${L}:a-tag`]);
    r = ok(["gc", "--layout", L, "--json"]);
    expect(JSON.parse(r.stdout).removedBlobs).toEqual([]);
    expect(existsSync(blobPath(L, image.digest))).toBe(true);
    expect(existsSync(blobPath(L, onA.manifest.digest))).toBe(true);
    const warnings = r.stderr.trim().split("\n");
    expect(warnings).toEqual([
      expect.stringContaining(`gc: kept referrer ${a.manifest.digest} (index.json manifests[0]) and its subject ${image.digest}, which no tag reaches any more`),
      expect.stringContaining(`gc: kept referrer ${deep.manifest.digest} (index.json manifests[1]) and its subject ${onA.manifest.digest}, which no tag reaches any more`),
    ]);
    expect(ok(["validate", "--layout", L]).stdout).toContain("is valid");
    // re-tagging the image by hand (as a copy back would) makes them ordinary referrers again
    setTag(L, "img", image);
    r = ok(["gc", "--layout", L]);
    expect(r.stderr).toBe("");
  });

  test("a subject absent from the layout: validate warns (exit 0), gc neither refuses nor removes the referrer; a corrupt one is a problem and gc refuses", () => {
    const { L, s, image } = layoutWithImage();
    writeFileSync(join(s, "a.txt"), "aaa");
    // A referrer whose subject was never stored (pushed before its subject).
    const ghost = { mediaType: MT.manifest, digest: `sha256:${"ab".repeat(32)}`, size: 123 };
    const empty = writeBlob(L, Buffer.from("{}"), EMPTY.mediaType);
    const layer = writeBlob(L, Buffer.from("aaa"), "text/plain");
    const ref = writeBlob(L, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.manifest, artifactType: "application/vnd.x", config: empty, layers: [layer], subject: ghost })), MT.manifest);
    const ix = index(L);
    ix.manifests.push(ref);
    writeFileSync(join(L, "index.json"), JSON.stringify(ix));

    const v = boci(["validate", "--layout", L]);
    expect(v.code).toBe(0);
    expect(v.stdout).toContain(`warning: subject ${ghost.digest} of manifest ${ref.digest} (index.json manifests[1]): not found in the layout`);
    const vj = JSON.parse(boci(["validate", "--layout", L, "--json"]).stdout);
    expect(vj.valid).toBe(true);
    expect(vj.complete).toBe(true);
    const g = ok(["gc", "--layout", L, "--json"]);
    expect(JSON.parse(g.stdout).removedBlobs).toEqual([]);
    expect(g.stderr).toContain(`gc: kept referrer ${ref.digest} (index.json manifests[1]): its subject ${ghost.digest} is not in the layout`);
    for (const d of [ref, empty, layer]) expect(existsSync(blobPath(L, d.digest))).toBe(true);

    // an attached artifact whose subject blob is then corrupted: a problem, and gc refuses
    const art = attach(L, "img", "application/vnd.y", [join(s, "a.txt")]);
    ok(["rm", "--image", `${L}:img`]);
    writeFileSync(blobPath(L, image.digest), "{\"broken\":");
    const v2 = boci(["validate", "--layout", L]);
    expect(v2.code).toBe(4);
    expect(v2.stdout).toContain(`${image.digest} (subject of manifest ${art.manifest.digest})`);
    const g2 = boci(["gc", "--layout", L]);
    expect(g2.code).toBe(4);
    expect(g2.stderr).toContain(`gc: nothing removed: ${image.digest} (subject of manifest ${art.manifest.digest})`);
  });

  test("a symlink where the subject blob belongs is not an absent subject", () => {
    const { L, s } = layoutWithImage();
    writeFileSync(join(s, "a.txt"), "aaa");
    const art = attach(L, "img", "application/vnd.y", [join(s, "a.txt")]);
    const p = blobPath(L, art.subject.digest);
    const bytes = readFileSync(p);
    rmSync(p);
    writeFileSync(join(s, "elsewhere"), bytes);
    symlinkSync(join(s, "elsewhere"), p);
    const g = boci(["gc", "--layout", L]);
    expect(g.code).toBe(4);
    expect(g.stderr).toContain("symlink");
    expect(boci(["validate", "--layout", L]).code).toBe(4);
  });

  test("unpack of an artifact refuses it (nothing unpacked)", () => {
    const { L, s } = layoutWithImage();
    writeFileSync(join(s, "a.txt"), "aaa");
    attach(L, "img", "application/vnd.y", [join(s, "a.txt")], ["--tag", "art"]);
    const u = boci(["unpack", "--no-progress", "--image", `${L}:art`, join(s, "bundle")]);
    expect([4, 6]).toContain(u.code);
    expect(u.stderr.trim().split("\n").length).toBe(1);
    expect(existsSync(join(s, "bundle", "rootfs", "a.txt"))).toBe(false);
  });

  test.skipIf(!have("umoci"))("umoci 0.4.7 reads a layout with artifacts: ls, stat of the image, and its gc keeps the referrer and its subject", () => {
    const { L, s, image } = layoutWithImage();
    writeFileSync(join(s, "a.txt"), "aaa");
    const a = attach(L, "img", "application/vnd.y", [join(s, "a.txt")]);
    const u = (args: string[]) => sh(["umoci", ...args].map((x) => `'${x}'`).join(" "));
    expect(u(["ls", "--layout", L]).stdout).toBe("img\n");
    expect(u(["stat", "--image", `${L}:img`]).code).toBe(0);
    const all = blobs(L);
    expect(u(["gc", "--layout", L]).code).toBe(0);
    expect(blobs(L)).toEqual(all);
    ok(["rm", "--image", `${L}:img`]);
    const stray = writeBlob(L, Buffer.from("stray"), "application/octet-stream");
    expect(u(["gc", "--layout", L]).code).toBe(0);
    // umoci follows the subject too: only the stray blob goes
    expect(existsSync(blobPath(L, stray.digest))).toBe(false);
    expect(blobs(L)).toEqual(all);
    expect(existsSync(blobPath(L, image.digest))).toBe(true);
    expect(index(L).manifests.map((d: Descriptor) => d.digest)).toEqual([a.manifest.digest]);
    expect(ok(["validate", "--layout", L]).stdout).toContain("is valid");
  });
});
