/** cas/referrers.ts and gc's referrer rules (cas/gc.ts), on layouts built in code. */
import { describe, expect, test, afterAll } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync, symlinkSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Layout, initLayout, gc, setTag, listReferrers, referrerOf, referrersIndex, isSubjectAbsent,
  findOrphanReferrers, markReachable, EMPTY_DESCRIPTOR, EMPTY_JSON, type ReachGraph,
} from "../../src/cas";
import { type Descriptor, type ImageIndex, MediaType, sha256Digest } from "../../src/image";
import { mediaTypeForFile } from "../../src/cli/artifact-commands";

const root = mkdtempSync(join(tmpdir(), "boci-referrers-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
function fresh(): Layout {
  const p = join(root, `l${n++}`);
  initLayout(p);
  return Layout.open(p);
}

/** An image (config + one layer) and its manifest descriptor. */
function image(l: Layout, body: string): Descriptor {
  const layer = l.putBlobBytes(Buffer.from(body));
  const config = l.putJson({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [layer.digest] } }, MediaType.config);
  return l.putJson({ schemaVersion: 2, mediaType: MediaType.manifest, config, layers: [{ mediaType: MediaType.layer, ...layer }] }, MediaType.manifest);
}

/** An artifact manifest whose subject is `subject`. */
function artifact(l: Layout, subject: Descriptor, type: string, body: string, annotations?: Record<string, string>): Descriptor {
  l.putBlobBytes(EMPTY_JSON);
  const layer = l.putBlobBytes(Buffer.from(body));
  const m = { schemaVersion: 2, mediaType: MediaType.manifest, artifactType: type, config: { ...EMPTY_DESCRIPTOR }, layers: [{ mediaType: "text/plain", ...layer }], subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size }, annotations };
  return l.putJson(m, MediaType.manifest);
}

function writeIndex(l: Layout, manifests: Descriptor[]): ImageIndex {
  const ix: ImageIndex = { schemaVersion: 2, mediaType: MediaType.index, manifests };
  l.updateIndex(() => ({ index: ix, result: undefined }));
  return ix;
}
const tagged = (d: Descriptor, t: string): Descriptor => setTag({ schemaVersion: 2, manifests: [] }, t, d).manifests[0]!;

function orphans(l: Layout) {
  const ix = l.readIndex();
  const graph: ReachGraph = { nodes: new Map(), absentSubjects: [] };
  expect(markReachable(l, ix, graph).complete).toBe(true);
  return findOrphanReferrers(ix, graph).map((o) => o.digest);
}

describe("listReferrers and referrerOf", () => {
  test("index order, each digest once, artifactType from the manifest else its config, annotations, filter", () => {
    const l = fresh();
    const img = image(l, "a");
    const other = image(l, "b");
    const a1 = artifact(l, img, "application/vnd.one", "1", { k: "v" });
    const a2 = artifact(l, img, "application/vnd.two", "2");
    const elsewhere = artifact(l, other, "application/vnd.one", "3");
    // no artifactType: the config's media type is the artifact type (distribution's rule)
    const cfg = l.putBlobBytes(Buffer.from("{}"));
    const plain = l.putJson({ schemaVersion: 2, mediaType: MediaType.manifest, config: { mediaType: "application/vnd.cfg", ...cfg }, layers: [], subject: img }, MediaType.manifest);
    const ix = writeIndex(l, [tagged(img, "img"), a2, elsewhere, tagged(a1, "t"), a1, plain, { mediaType: "application/vnd.other", digest: cfg.digest, size: cfg.size }]);
    const list = listReferrers(l, img.digest);
    expect(list.map((r) => [r.desc.digest, r.where])).toEqual([[a2.digest, "index.json manifests[1]"], [a1.digest, "index.json manifests[3]"], [plain.digest, "index.json manifests[5]"]]);
    expect(list[1]!.desc).toEqual({ ...a1, artifactType: "application/vnd.one", annotations: { k: "v" } });
    expect(list[2]!.desc.artifactType).toBe("application/vnd.cfg");
    expect(listReferrers(l, img.digest, { artifactType: "application/vnd.one" }).map((r) => r.desc.digest)).toEqual([a1.digest]);
    expect(listReferrers(l, img.digest, { index: { ...ix, manifests: [a1] } }).map((r) => r.desc.digest)).toEqual([a1.digest]);
    expect(listReferrers(l, other.digest).map((r) => r.desc.digest)).toEqual([elsewhere.digest]);
    expect(referrerOf(l, img)).toBeNull();
    expect(referrerOf(l, { mediaType: "application/vnd.other", digest: cfg.digest, size: cfg.size })).toBeNull();
    expect(referrersIndex(list)).toEqual({ schemaVersion: 2, mediaType: MediaType.index, manifests: list.map((r) => r.desc) });
  });

  test("an index with a subject is a referrer too", () => {
    const l = fresh();
    const img = image(l, "a");
    const ixRef = l.putJson({ schemaVersion: 2, mediaType: MediaType.index, artifactType: "application/vnd.ix", manifests: [], subject: img }, MediaType.index);
    writeIndex(l, [tagged(img, "img"), ixRef]);
    expect(listReferrers(l, img.digest).map((r) => r.desc)).toEqual([{ ...ixRef, artifactType: "application/vnd.ix" }]);
  });

  test("the empty descriptor is the digest of {}", () => {
    expect(EMPTY_DESCRIPTOR.digest).toBe(sha256Digest(EMPTY_JSON));
    expect(Buffer.from(EMPTY_DESCRIPTOR.data!, "base64").equals(EMPTY_JSON)).toBe(true);
  });
});

describe("isSubjectAbsent", () => {
  test("absent only when nothing is there: a symlink or a directory is not absent, embedded data is not", () => {
    const l = fresh();
    const img = image(l, "a");
    expect(isSubjectAbsent(l, img)).toBe(false);
    const ghost = { mediaType: MediaType.manifest, digest: `sha256:${"cd".repeat(32)}`, size: 3 };
    expect(isSubjectAbsent(l, ghost)).toBe(true);
    expect(isSubjectAbsent(l, { ...ghost, data: "e30=" })).toBe(false);
    expect(isSubjectAbsent(l, { ...ghost, digest: "sha256:nothex" })).toBe(false);
    symlinkSync("/etc/passwd", join(l.path, "blobs/sha256", "cd".repeat(32)));
    expect(isSubjectAbsent(l, ghost)).toBe(false);
  });
});

describe("gc and referrers", () => {
  test("orphans: untagged referrers reached only through referrers; a tagged referrer anchors its subject and the subject's other referrers", () => {
    const l = fresh();
    const img = image(l, "a");
    const a = artifact(l, img, "application/vnd.a", "1");
    const b = artifact(l, a, "application/vnd.b", "2"); // a referrer of a referrer
    const c = artifact(l, b, "application/vnd.c", "3");
    writeIndex(l, [c, b, a, tagged(img, "img")]);
    expect(orphans(l)).toEqual([]);
    // the image's tag removed: all three are kept, and named (in index order)
    writeIndex(l, [c, b, a, img]);
    // img listed untagged is not a referrer: it anchors itself and with it everything
    expect(orphans(l)).toEqual([]);
    writeIndex(l, [c, b, a]);
    expect(orphans(l)).toEqual([c.digest, b.digest, a.digest]);
    // a tagged referrer anywhere in the chain anchors its subject, and that subject's referrers
    writeIndex(l, [c, tagged(b, "b"), a]);
    expect(orphans(l)).toEqual([]);
    // c alone, its subject b not listed: kept through c (and so are b, a and img), c named
    writeIndex(l, [c]);
    expect(orphans(l)).toEqual([c.digest]);
    const warnings: string[] = [];
    const r = gc(l, { onWarn: (w) => warnings.push(w) });
    expect(r.removedBlobs).toEqual([]);
    expect(r.orphanReferrers).toEqual([{ digest: c.digest, subject: b.digest, where: "index.json manifests[0]", subjectAbsent: false }]);
    expect(warnings).toEqual([`gc: kept referrer ${c.digest} (index.json manifests[0]) and its subject ${b.digest}, which no tag reaches any more`]);
    for (const d of [img, a, b, c]) expect(l.hasBlob(d.digest)).toBe(true);
  });

  test("an absent subject: the walk is complete, gc removes only what nothing names and warns once", () => {
    const l = fresh();
    const ghost = { mediaType: MediaType.manifest, digest: `sha256:${"ef".repeat(32)}`, size: 10 };
    const a = artifact(l, ghost, "application/vnd.a", "1");
    const stray = l.putBlobBytes(Buffer.from("stray"));
    writeIndex(l, [a]);
    const warnings: string[] = [];
    const r = gc(l, { onWarn: (w) => warnings.push(w) });
    expect(r.removedBlobs).toEqual([stray.digest]);
    expect(r.orphanReferrers).toEqual([{ digest: a.digest, subject: ghost.digest, where: "index.json manifests[0]", subjectAbsent: true }]);
    expect(warnings).toEqual([`gc: kept referrer ${a.digest} (index.json manifests[0]): its subject ${ghost.digest} is not in the layout`]);
    // tagged, it is no orphan; the absent subject is still said
    writeIndex(l, [tagged(a, "a")]);
    warnings.length = 0;
    expect(gc(l, { onWarn: (w) => warnings.push(w) }).orphanReferrers).toEqual([]);
    expect(warnings).toEqual([`gc: subject ${ghost.digest} of manifest ${a.digest} (index.json manifests[0] "a") is not in the layout (left as it is)`]);
  });

  test("a subject that is there but corrupt makes gc refuse (exit 4), nothing removed", () => {
    const l = fresh();
    const img = image(l, "a");
    const a = artifact(l, img, "application/vnd.a", "1");
    const stray = l.putBlobBytes(Buffer.from("stray"));
    writeIndex(l, [a]);
    writeFileSync(join(l.path, "blobs/sha256", img.digest.slice(7)), "corrupt");
    let err: unknown;
    try { gc(l); } catch (e) { err = e; }
    expect((err as { exitCode?: number }).exitCode).toBe(4);
    expect(String((err as Error).message)).toContain(`gc: nothing removed: ${img.digest} (subject of manifest ${a.digest})`);
    expect(existsSync(join(l.path, "blobs/sha256", stray.digest.slice(7)))).toBe(true);
  });
});

describe("attach's media types by extension", () => {
  test("longest ending first, any case; a bare extension-like name is not one", () => {
    const cases: Array<[string, string]> = [
      ["x.spdx.json", "application/spdx+json"], ["dir/X.CDX.JSON", "application/vnd.cyclonedx+json"],
      ["a.json", "application/json"], ["a.txt", "text/plain"], ["a.md", "text/markdown"],
      ["a.tar", MediaType.layer], ["a.tar.gz", MediaType.layerGzip], ["a.tgz", MediaType.layerGzip],
      ["a.tar.zst", MediaType.layerZstd], ["a.gz", "application/gzip"], ["a", "application/octet-stream"],
      [".json", "application/octet-stream"], ["a.json.bak", "application/octet-stream"],
    ];
    for (const [f, mt] of cases) expect([f, mediaTypeForFile(f)]).toEqual([f, mt]);
  });
});
