import { describe, expect, test, afterAll } from "bun:test";
import { mkdtempSync, rmSync, readdirSync, writeFileSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Layout, initLayout, gc, setTag, resolveTag, listTags } from "../../src/cas";
import { MediaType, sha256Digest } from "../../src/image";

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
    await expect(collect(l.getBlob({ ...d, size: d.size - 1 }))).rejects.toThrow("size mismatch");
    await expect(collect(l.getBlob({ ...d, size: d.size + 1 }))).rejects.toThrow("size mismatch");
    const p = join(l.path, "blobs/sha256", d.digest.slice(7));
    const bad = Buffer.from(data); bad[bad.length - 1] = 8;
    writeFileSync(p, bad);
    await expect(collect(l.getBlob(d))).rejects.toThrow(`${d.digest}: verified reader digest mismatch`);
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
