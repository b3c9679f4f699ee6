import { describe, expect, test, afterAll } from "bun:test";
import { mkdtempSync, rmSync, readdirSync, writeFileSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Layout, initLayout, gc, setTag, resolveTag, listTags } from "../../src/cas";
import { MediaType, sha256Digest } from "../../src/image";
import { GoImage, GoIndex, GoManifest, encodeGoJson, goString, goTime, goTypeFor } from "../../src/cas/go-json";

const root = mkdtempSync(join(tmpdir(), "boci-cas-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
function fresh(): Layout {
  const p = join(root, `l${n++}`);
  initLayout(p);
  return Layout.open(p);
}
async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

describe("layout store", () => {
  test("init refuses an existing path and makes a complete layout", () => {
    const l = fresh();
    expect(() => initLayout(l.path)).toThrow("already exists");
    expect(readdirSync(l.path).sort()).toEqual(["blobs", "index.json", "oci-layout"]);
  });
  test("putBlobBytes and putBlobStream agree, are idempotent and leave no temp files", async () => {
    const l = fresh();
    const data = Buffer.from("hello blob".repeat(100000));
    const a = l.putBlobBytes(data);
    async function* chunks() { for (let i = 0; i < data.length; i += 7777) yield data.subarray(i, i + 7777); }
    const b = await l.putBlobStream(chunks());
    expect(b).toEqual(a);
    expect(a.digest).toBe(sha256Digest(data));
    expect(readdirSync(join(l.path, "blobs/sha256"))).toEqual([a.digest.slice(7)]);
    expect(readdirSync(join(l.path, ".boci-tmp"))).toEqual([]);
  });
  test("verified reads: exact bytes; size and digest mismatches fail naming the digest", async () => {
    const l = fresh();
    const data = Buffer.alloc(3 << 20, 7);
    const d = l.putBlobBytes(data);
    expect(Buffer.compare(await collect(l.getBlob(d)), data)).toBe(0);
    // As umoci's verified reader: the digest of the first `size` bytes is checked first.
    await expect(collect(l.getBlob({ ...d, size: d.size - 1 }))).rejects.toThrow(`blob ${d.digest}: expected ${d.digest} not sha256:`);
    await expect(collect(l.getBlob({ ...d, size: d.size + 1 }))).rejects.toThrow(`expected ${d.size + 1} bytes (only ${d.size} bytes in stream): verified reader size mismatch`);
    expect(() => l.readBlob({ ...d, size: d.size - 1 }, 1 << 30)).toThrow("verified reader digest mismatch");
    expect(() => l.readBlob({ ...d, size: d.size + 1 }, 1 << 30)).toThrow("verified reader size mismatch");
    const p = join(l.path, "blobs/sha256", d.digest.slice(7));
    const bad = Buffer.from(data); bad[bad.length - 1] = 8;
    writeFileSync(p, bad);
    await expect(collect(l.getBlob(d))).rejects.toThrow(": verified reader digest mismatch");
    expect(() => l.readBlob(d, 1 << 30)).toThrow("digest mismatch");
    expect(() => l.readBlob({ ...d, size: -1 })).toThrow("invalid descriptor size");
    await expect(collect(l.getBlob({ digest: "sha512:" + "a".repeat(128), size: 1 }))).rejects.toThrow("unsupported digest algorithm");
  });
  test("readJson refuses a manifest reached through an index descriptor", () => {
    const l = fresh();
    const cfg = l.putJson({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }, MediaType.config);
    const m = l.putJson({ schemaVersion: 2, mediaType: MediaType.manifest, config: cfg, layers: [] }, MediaType.manifest);
    expect(l.readJson(m, "manifest")).toBeTruthy();
    expect(() => l.readJson({ ...m, mediaType: MediaType.index }, "index")).toThrow();
  });
  test("updateIndex swaps tags atomically; resolveTag and gc", () => {
    const l = fresh();
    const cfg = l.putJson({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }, MediaType.config);
    const m = l.putJson({ schemaVersion: 2, mediaType: MediaType.manifest, config: cfg, layers: [] }, MediaType.manifest);
    const junk = l.putBlobBytes(Buffer.from("junk"));
    l.updateIndex((ix) => ({ index: setTag(setTag(ix, "a", m), "b", m), result: undefined }));
    l.updateIndex((ix) => ({ index: setTag(ix, "a", m), result: undefined }));
    const ix = l.readIndex();
    expect(listTags(ix)).toEqual(["b", "a"]);
    expect(resolveTag(l, ix, "a").walk[0]!.digest).toBe(m.digest);
    expect(() => resolveTag(l, ix, "zzz")).toThrow("not found");
    const r = gc(l);
    l.close();
    expect(r.removedBlobs).toEqual([junk.digest]);
    expect(existsSync(join(l.path, "blobs/sha256", m.digest.slice(7)))).toBe(true);
    expect(JSON.parse(readFileSync(join(l.path, "index.json"), "utf8")).manifests).toHaveLength(2);
  });
});

describe("go-json: what umoci 0.6's Encoder writes for the image-spec 1.1.1 structs", () => {
  const hex = "a".repeat(64);
  test("descriptor and platform: struct order, omitempty, zero values, data and artifactType kept, features dropped", () => {
    const d = { artifactType: "x/y", platform: { features: ["f"], variant: "", os: "linux", architecture: "arm" }, data: "e30=", digest: `sha256:${hex}`, extra: 1 };
    expect(encodeGoJson({ manifests: [d], schemaVersion: 2 }, GoIndex)).toBe(
      `{"schemaVersion":2,"manifests":[{"mediaType":"","digest":"sha256:${hex}","size":0,"data":"e30=","platform":{"architecture":"arm","os":"linux"},"artifactType":"x/y"}]}\n`);
    // nil slices are null where there is no omitempty; a struct value is never omitted.
    expect(encodeGoJson({ schemaVersion: 2, manifests: null }, GoIndex)).toBe(`{"schemaVersion":2,"manifests":null}\n`);
    expect(encodeGoJson({ schemaVersion: 2 }, GoManifest)).toBe(`{"schemaVersion":2,"config":{"mediaType":"","digest":"","size":0},"layers":null}\n`);
    expect(encodeGoJson({ architecture: "amd64", os: "linux", rootfs: { type: "layers" } }, GoImage)).toBe(
      `{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":null}}\n`);
  });
  test("image config: embedded platform order (variant after os.features), sets as {}, times as Go re-marshals them", () => {
    const c = {
      history: [{ empty_layer: false, created: "2020-01-01T00:00:00.500000000+00:00", comment: "" }, { created: null, created_by: "x" }],
      rootfs: { diff_ids: [], type: "layers" }, config: { Volumes: { "/b": { junk: 1 }, "/a": {} }, Labels: {}, Shell: ["dropped"] },
      variant: "v8", "os.features": ["z"], os: "linux", architecture: "arm64", created: "2020-01-01T01:02:03.1234567891-00:00", author: "",
    };
    expect(encodeGoJson(c, GoImage)).toBe(
      `{"created":"2020-01-01T01:02:03.123456789Z","architecture":"arm64","os":"linux","os.features":["z"],"variant":"v8","config":{"Volumes":{"/a":{},"/b":{}}},` +
      `"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created":"2020-01-01T00:00:00.5Z"},{"created_by":"x"}]}\n`);
    expect(goTime("2020-01-01T00:00:00+05:30")).toBe("2020-01-01T00:00:00+05:30");
    expect(goTime("not a time")).toBe("not a time");
  });
  test("strings and maps: HTML escaping, Go 1.22's \\b and \\f, lone surrogates as U+FFFD, keys by UTF-8 bytes, case-insensitive field names", () => {
    expect(goString("<a>&\u2028\u2029\b\f\x01\x7f\ud800")).toBe('"\\u003ca\\u003e\\u0026\\u2028\\u2029\\b\\f\\u0001\x7f\ufffd"');
    const ann = { "\u{1F600}": "2", "\uff71": "1", B: "0", a: "0" };
    expect(encodeGoJson({ SchemaVersion: 2, MANIFESTS: [], annotations: ann }, GoIndex)).toBe(
      `{"schemaVersion":2,"manifests":[],"annotations":{"B":"0","a":"0","\uff71":"1","\u{1F600}":"2"}}\n`);
    // An unknown media type is an interface{}: every object's keys sorted.
    expect(encodeGoJson({ b: { d: 1, c: [true, null] }, a: "<" }, goTypeFor("application/x-other"))).toBe(`{"a":"\\u003c","b":{"c":[true,null],"d":1}}\n`);
    expect(goTypeFor(MediaType.dockerConfig)).toBe(GoImage);
  });
  test("putJson and updateIndex write those bytes; putJson's digest is of them", () => {
    const l = fresh();
    const cfg = l.putJson({ os: "linux", architecture: "amd64", rootfs: { type: "layers", diff_ids: [] }, unknown: 1 }, MediaType.config);
    const bytes = readFileSync(join(l.path, "blobs/sha256", cfg.digest.slice(7)));
    expect(bytes.toString()).toBe(`{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}\n`);
    expect(sha256Digest(bytes) as string).toBe(cfg.digest);
    l.updateIndex((ix) => ({ index: { ...ix, mediaType: "wrong/forced", manifests: [{ ...cfg, annotations: { b: "1", a: "2" } }] }, result: undefined }));
    expect(readFileSync(join(l.path, "index.json"), "utf8")).toBe(
      `{"schemaVersion":2,"mediaType":"${MediaType.index}","manifests":[{"mediaType":"${MediaType.config}","digest":"${cfg.digest}","size":${cfg.size},"annotations":{"a":"2","b":"1"}}]}\n`);
    expect(readdirSync(join(l.path, ".boci-tmp"))).toEqual([]);
  });
});
