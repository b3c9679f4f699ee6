import { describe, expect, test } from "bun:test";
import { parseDigest, isDigest, sha256Digest, validateDescriptor, validateManifest, validateIndex, validateConfig, normalizeConfig, normalizeManifest, MediaType, isLayerMediaType, layerSuffix } from "../../src/image";
import { isValidTag } from "../../src/cli/common";
import { goJson, parseJsonStrict } from "../../src/util/json";
import { parseUserTime } from "../../src/util/time";

const D = "sha256:" + "a".repeat(64);

describe("digest grammar", () => {
  test("accepts registered and unknown algorithms that fit the grammar", () => {
    expect(parseDigest(D) as string).toBe(D);
    expect(isDigest("sha512:" + "b".repeat(128))).toBe(true);
    expect(isDigest("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8")).toBe(true);
  });
  test("refuses bad encodings and shapes", () => {
    for (const bad of ["sha256:" + "A".repeat(64), "sha256:abc", "sha256:" + "a".repeat(65), "sha256", ":abc", "SHA256:" + "a".repeat(64), "sha256:" + "g".repeat(64), "sha512:" + "a".repeat(64), "", 5, null, "sha256:../../etc"]) {
      expect(isDigest(bad)).toBe(false);
    }
  });
  test("sha256Digest of the empty JSON object", () => {
    expect(sha256Digest("{}") as string).toBe("sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  });
});

describe("tag grammar (umoci's)", () => {
  test("valid tags", () => {
    for (const t of ["latest", "1.0", "v1.0-rc.1", "a_b", "a--b", "org/app:1", "x@y", "a+b", "A9"]) expect(isValidTag(t)).toBe(true);
  });
  test("invalid tags", () => {
    for (const t of ["", "-a", "a-", ".a", "a b", "a//b", "/a", "a/", "a---b", "ä", "a\nb"]) expect(isValidTag(t)).toBe(false);
  });
});

describe("validation", () => {
  const desc = { mediaType: MediaType.config, digest: D, size: 2 };
  test("descriptors: size, digest and media type are checked", () => {
    expect(validateDescriptor(desc, "d")).toEqual([]);
    expect(validateDescriptor({ ...desc, size: -1 }, "d")).toHaveLength(1);
    expect(validateDescriptor({ ...desc, size: 1.5 }, "d")).toHaveLength(1);
    expect(validateDescriptor({ ...desc, size: 2 ** 60 }, "d")).toHaveLength(1);
    expect(validateDescriptor({ ...desc, digest: "md5:x" }, "d")).toHaveLength(0); // fits the grammar: valid, unverifiable
    expect(validateDescriptor({ ...desc, digest: "sha256:xyz" }, "d")).toHaveLength(1);
    expect(validateDescriptor({ ...desc, mediaType: "not a type" }, "d")).toHaveLength(1);
    expect(validateDescriptor({ ...desc, annotations: { a: 1 } }, "d")).toHaveLength(1);
  });
  test("manifests and indexes refuse media-type confusion (CVE-2021-41190)", () => {
    const m = { schemaVersion: 2, mediaType: MediaType.manifest, config: desc, layers: [] };
    expect(validateManifest(m)).toEqual([]);
    expect(validateManifest({ ...m, manifests: [] }).join()).toContain("media type confusion");
    expect(validateManifest({ ...m, mediaType: MediaType.index }).length).toBeGreaterThan(0);
    expect(validateManifest({ ...m, schemaVersion: 3 }).length).toBeGreaterThan(0);
    const ix = { schemaVersion: 2, mediaType: MediaType.index, manifests: [] };
    expect(validateIndex(ix)).toEqual([]);
    expect(validateIndex({ ...ix, layers: [] }).join()).toContain("media type confusion");
    expect(validateIndex({ ...ix, manifests: null }).length).toBe(1);
    expect(validateIndex({ ...ix, manifests: null }, "i", [], { allowNullManifests: true })).toEqual([]);
  });
  test("configs: rootfs type, diff_ids, field types; every violation listed", () => {
    const c = { architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [D] } };
    expect(validateConfig(c)).toEqual([]);
    const bad = validateConfig({ architecture: 1, os: "", rootfs: { type: "foo", diff_ids: ["x"] }, config: { Env: "A=1" }, history: [{ empty_layer: "yes" }] });
    expect(bad.length).toBeGreaterThanOrEqual(5);
  });
});

describe("JSON as Go writes and strict parsing", () => {
  test("config key order and empty config body like umoci's", () => {
    const out = goJson(normalizeConfig({ os: "linux", architecture: "amd64", rootfs: { type: "layers", diff_ids: [] }, created: "2020-01-01T00:00:00Z" }));
    expect(out).toBe('{"created":"2020-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}');
    const m = goJson(normalizeManifest({ schemaVersion: 2, mediaType: MediaType.manifest, config: { mediaType: MediaType.config, digest: D, size: 2 }, layers: [] }));
    expect(m).toBe(`{"schemaVersion":2,"mediaType":"${MediaType.manifest}","config":{"mediaType":"${MediaType.config}","digest":"${D}","size":2},"layers":[]}`);
  });
  test("goJson escapes <, >, & as Go does", () => {
    expect(goJson({ a: "<b>&" })).toBe('{"a":"\\u003cb\\u003e\\u0026"}');
  });
  test("duplicate keys and deep nesting are refused", () => {
    expect(() => parseJsonStrict('{"a":1,"a":2}')).toThrow("duplicate key");
    expect(() => parseJsonStrict("[".repeat(100) + "]".repeat(100))).toThrow("nesting");
    expect(parseJsonStrict('{"a":{"a":1},"b":"a"}')).toEqual({ a: { a: 1 }, b: "a" });
  });
  test("user times: offsets kept, zero offset as Z, fraction trimmed", () => {
    expect(parseUserTime("created", "2020-01-02T03:04:05+01:00")).toBe("2020-01-02T03:04:05+01:00");
    expect(parseUserTime("created", "2020-01-02T03:04:05-00:00")).toBe("2020-01-02T03:04:05Z");
    expect(parseUserTime("created", "2020-01-02T03:04:05.500Z")).toBe("2020-01-02T03:04:05.5Z");
    expect(() => parseUserTime("created", "2020-01-02")).toThrow();
  });
  test("layer media types", () => {
    expect(isLayerMediaType(MediaType.layerGzip)).toBe(true);
    expect(isLayerMediaType(MediaType.layerNondistZstd)).toBe(true);
    expect(isLayerMediaType("application/vnd.docker.image.rootfs.diff.tar.gzip")).toBe(false);
    expect(layerSuffix(MediaType.layerZstd)).toBe("zstd");
  });
});
