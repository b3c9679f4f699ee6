/**
 * Docker schema-2 ⇄ OCI conversions (src/image/convert.ts): mapping tables both ways and
 * refusals; and the reading side they rely on: layerKind and the validators on Docker objects.
 */
import { describe, expect, test } from "bun:test";
import {
  MediaType, ociLayerMediaType, dockerLayerMediaType, toOciManifest, toDockerManifest, toOciIndex, toDockerIndex, toOciConfig,
  validateManifest, validateIndex, assertValid, isUnsupported, layerKind, isLayerMediaType, layerSuffix,
  type Manifest, type ImageIndex, type ImageConfig,
} from "../../src/image";
import { InvalidError, UnsupportedError } from "../../src/errors";

const d = (c: string) => "sha256:" + c.repeat(64);

// [docker, oci] pairs: every Docker layer type and the OCI type with the same compression.
const layerPairs: [string, string][] = [
  [MediaType.dockerLayer, MediaType.layer],
  [MediaType.dockerLayerGzip, MediaType.layerGzip],
  [MediaType.dockerLayerZstd, MediaType.layerZstd],
  [MediaType.dockerForeignLayer, MediaType.layerNondist],
  [MediaType.dockerForeignLayerGzip, MediaType.layerNondistGzip],
];

function catchErr(fn: () => unknown): Error {
  try { fn(); } catch (e) { return e as Error; }
  throw new Error("expected a throw");
}

describe("single layer media types", () => {
  test.each(layerPairs)("docker %s -> oci %s", (docker, oci) => {
    expect(ociLayerMediaType(docker)).toBe(oci);
  });
  test.each(layerPairs.filter(([docker]) => docker !== MediaType.dockerLayerZstd))("oci -> docker: %s <- %s", (docker, oci) => {
    expect(dockerLayerMediaType(oci)).toBe(docker);
    expect(dockerLayerMediaType(docker)).toBe(docker);
  });
  test("oci types map to themselves", () => {
    for (const mt of [MediaType.layer, MediaType.layerGzip, MediaType.layerZstd, MediaType.layerNondist, MediaType.layerNondistGzip, MediaType.layerNondistZstd])
      expect(ociLayerMediaType(mt)).toBe(mt);
  });
  test("zstd has no docker type", () => {
    for (const mt of [MediaType.layerZstd, MediaType.layerNondistZstd, MediaType.dockerLayerZstd]) {
      const e = catchErr(() => dockerLayerMediaType(mt));
      expect(e).toBeInstanceOf(UnsupportedError);
      expect(e.message).toContain("zstd");
    }
  });
  test("unknown types are unsupported both ways", () => {
    for (const mt of ["application/vnd.oci.image.layer.v1.tar+bzip2", "application/octet-stream", MediaType.config, "application/vnd.docker.image.rootfs.foreign.diff.tar.zstd"]) {
      expect(() => ociLayerMediaType(mt)).toThrow(UnsupportedError);
      expect(() => dockerLayerMediaType(mt)).toThrow(UnsupportedError);
    }
  });
});

function dockerManifest(layerTypes: string[]): Manifest {
  return {
    schemaVersion: 2,
    mediaType: MediaType.dockerManifest,
    config: { mediaType: MediaType.dockerConfig, digest: d("c"), size: 1234 },
    layers: layerTypes.map((mediaType, i) => ({ mediaType, digest: d(String(i)), size: 100 + i })),
  };
}

describe("manifests", () => {
  test("docker -> oci: every layer type, config, media type, digests and sizes kept", () => {
    const m = dockerManifest(layerPairs.map(([docker]) => docker));
    m.layers[3]!.urls = ["https://example.com/foreign.tar"];
    const before = structuredClone(m);
    const o = toOciManifest(m);
    expect(m).toEqual(before); // argument untouched
    expect(o.mediaType).toBe(MediaType.manifest);
    expect(Object.keys(o).slice(0, 2)).toEqual(["schemaVersion", "mediaType"]);
    expect(o.config).toEqual({ mediaType: MediaType.config, digest: d("c"), size: 1234 });
    expect(o.layers.map((l) => l.mediaType)).toEqual(layerPairs.map(([, oci]) => oci));
    expect(o.layers.map((l) => [l.digest, l.size])).toEqual(m.layers.map((l) => [l.digest, l.size]));
    expect(o.layers[3]!.urls).toEqual(["https://example.com/foreign.tar"]);
    expect(validateManifest(o)).toEqual([]);
    o.layers[3]!.urls!.push("x"); // shares nothing mutable with its argument
    expect(m.layers[3]!.urls).toEqual(["https://example.com/foreign.tar"]);
  });

  test("docker -> oci keeps annotations and unknown fields the docker object carried", () => {
    const m = { ...dockerManifest([MediaType.dockerLayerGzip]), annotations: { a: "b" }, extra: 1 } as Manifest;
    m.layers[0]!.annotations = { x: "y" };
    const o = toOciManifest(m);
    expect(o.annotations).toEqual({ a: "b" });
    expect(o.layers[0]!.annotations).toEqual({ x: "y" });
    expect(o.extra).toBe(1);
  });

  test("oci -> oci is a copy (idempotent), a missing mediaType is set", () => {
    const m: Manifest = { schemaVersion: 2, config: { mediaType: MediaType.config, digest: d("c"), size: 2 }, layers: [{ mediaType: MediaType.layerZstd, digest: d("1"), size: 3 }], annotations: { k: "v" } };
    const o = toOciManifest(m);
    expect(o).toEqual({ ...m, mediaType: MediaType.manifest });
    expect(toOciManifest(o)).toEqual(o);
  });

  test("oci -> docker: types mapped, only schema-2 fields kept", () => {
    const m: Manifest = {
      schemaVersion: 2, mediaType: MediaType.manifest, artifactType: "application/x-t",
      config: { mediaType: MediaType.config, digest: d("c"), size: 2, annotations: { c: "d" } },
      layers: [
        { mediaType: MediaType.layerGzip, digest: d("1"), size: 3, annotations: { [ "ci.umo.uncompressed_blob_size" ]: "10" } },
        { mediaType: MediaType.layer, digest: d("2"), size: 4, data: "" },
        { mediaType: MediaType.layerNondistGzip, digest: d("3"), size: 5, urls: ["https://example.com/l"] },
        { mediaType: MediaType.layerNondist, digest: d("4"), size: 6 },
      ],
      subject: { mediaType: MediaType.manifest, digest: d("e"), size: 7 },
      annotations: { "org.opencontainers.image.created": "2020-01-01T00:00:00Z" },
    };
    const k = toDockerManifest(m);
    expect(k).toEqual({
      schemaVersion: 2, mediaType: MediaType.dockerManifest,
      config: { mediaType: MediaType.dockerConfig, digest: d("c"), size: 2 },
      layers: [
        { mediaType: MediaType.dockerLayerGzip, digest: d("1"), size: 3 },
        { mediaType: MediaType.dockerLayer, digest: d("2"), size: 4 },
        { mediaType: MediaType.dockerForeignLayerGzip, digest: d("3"), size: 5, urls: ["https://example.com/l"] },
        { mediaType: MediaType.dockerForeignLayer, digest: d("4"), size: 6 },
      ],
    });
    expect(validateManifest(k)).toEqual([]);
    // and back: the OCI types again
    expect(toOciManifest(k).layers.map((l) => l.mediaType)).toEqual(m.layers.map((l) => l.mediaType));
  });

  test("docker -> oci -> docker is the identity on a docker manifest", () => {
    const m = dockerManifest([MediaType.dockerLayerGzip, MediaType.dockerLayer, MediaType.dockerForeignLayerGzip, MediaType.dockerForeignLayer]);
    expect(toDockerManifest(toOciManifest(m))).toEqual(m);
  });

  test("oci -> docker refuses a zstd layer, naming it", () => {
    const m: Manifest = { schemaVersion: 2, mediaType: MediaType.manifest, config: { mediaType: MediaType.config, digest: d("c"), size: 2 },
      layers: [{ mediaType: MediaType.layerGzip, digest: d("1"), size: 3 }, { mediaType: MediaType.layerZstd, digest: d("2"), size: 4 }] };
    const e = catchErr(() => toDockerManifest(m));
    expect(e).toBeInstanceOf(UnsupportedError);
    expect(e.message).toContain("layer 2");
    expect(e.message).toContain(d("2"));
    expect(e.message).toContain("zstd");
    expect(e.message).not.toContain("\n");
  });

  test("refusals: an artifact config, unknown layer or manifest types", () => {
    const art: Manifest = { schemaVersion: 2, mediaType: MediaType.manifest, config: { mediaType: "application/vnd.example.sbom", digest: d("c"), size: 2 }, layers: [] };
    expect(() => toDockerManifest(art)).toThrow(UnsupportedError);
    const badLayer = dockerManifest([MediaType.dockerLayerGzip, "application/vnd.docker.plugin.v1+json"]);
    const e = catchErr(() => toOciManifest(badLayer));
    expect(e).toBeInstanceOf(UnsupportedError);
    expect(e.message).toContain("layer 2");
    const badConfig = { ...dockerManifest([]), config: { mediaType: "application/vnd.cncf.helm.config.v1+json", digest: d("c"), size: 2 } };
    expect(() => toOciManifest(badConfig)).toThrow(UnsupportedError);
    for (const mediaType of [MediaType.dockerSchema1, MediaType.dockerSchema1Signed, MediaType.index]) {
      const m = { ...dockerManifest([]), mediaType };
      expect(() => toOciManifest(m)).toThrow(UnsupportedError);
      expect(() => toDockerManifest(m)).toThrow(UnsupportedError);
    }
  });
});

describe("indexes and manifest lists", () => {
  const list: ImageIndex = {
    schemaVersion: 2, mediaType: MediaType.dockerManifestList,
    manifests: [
      { mediaType: MediaType.dockerManifest, digest: d("1"), size: 10, platform: { architecture: "amd64", os: "linux" } },
      { mediaType: MediaType.dockerManifest, digest: d("2"), size: 11, platform: { architecture: "arm", os: "linux", variant: "v7", features: ["sse4"] } },
      { mediaType: MediaType.dockerManifestList, digest: d("3"), size: 12, urls: ["https://example.com/m"], platform: { architecture: "amd64", os: "windows", "os.version": "10.0.17763.1", "os.features": ["win32k"] } },
    ],
  };

  test("docker list -> oci index: entry types mapped, platform features dropped", () => {
    const before = structuredClone(list);
    const o = toOciIndex(list);
    expect(list).toEqual(before);
    expect(o.mediaType).toBe(MediaType.index);
    expect(o.manifests.map((m) => m.mediaType)).toEqual([MediaType.manifest, MediaType.manifest, MediaType.index]);
    expect(o.manifests[1]!.platform).toEqual({ architecture: "arm", os: "linux", variant: "v7" });
    expect(o.manifests[2]!.platform).toEqual(list.manifests[2]!.platform!);
    expect(o.manifests[2]!.urls).toEqual(["https://example.com/m"]);
    expect(o.manifests.map((m) => [m.digest, m.size])).toEqual(list.manifests.map((m) => [m.digest, m.size]));
    expect(validateIndex(o)).toEqual([]);
  });

  test("oci index -> docker list: annotations dropped, missing platform needs a default", () => {
    const ix: ImageIndex = {
      schemaVersion: 2, mediaType: MediaType.index, annotations: { a: "b" },
      manifests: [
        { mediaType: MediaType.manifest, digest: d("1"), size: 10, annotations: { "org.opencontainers.image.ref.name": "t" }, platform: { architecture: "amd64", os: "linux" } },
        { mediaType: MediaType.index, digest: d("2"), size: 11 },
      ],
    };
    const e = catchErr(() => toDockerIndex(ix));
    expect(e).toBeInstanceOf(UnsupportedError);
    expect(e.message).toContain("manifests[1]");
    const k = toDockerIndex(ix, { defaultPlatform: { architecture: "arm64", os: "linux" } });
    expect(k).toEqual({
      schemaVersion: 2, mediaType: MediaType.dockerManifestList,
      manifests: [
        { mediaType: MediaType.dockerManifest, digest: d("1"), size: 10, platform: { architecture: "amd64", os: "linux" } },
        { mediaType: MediaType.dockerManifestList, digest: d("2"), size: 11, platform: { architecture: "arm64", os: "linux" } },
      ],
    });
  });

  test("round trip docker -> oci -> docker keeps all but platform features", () => {
    const back = toDockerIndex(toOciIndex(list));
    const want = structuredClone(list);
    delete want.manifests[1]!.platform!.features;
    expect(back).toEqual(want);
  });

  test("refusals: artifact entries, other index types", () => {
    const ix: ImageIndex = { schemaVersion: 2, mediaType: MediaType.index, manifests: [{ mediaType: "application/vnd.example+json", digest: d("1"), size: 1, platform: { architecture: "amd64", os: "linux" } }] };
    expect(() => toDockerIndex(ix)).toThrow(UnsupportedError);
    const dl = { ...list, manifests: [{ ...list.manifests[0]!, mediaType: MediaType.dockerSchema1Signed }] };
    expect(() => toOciIndex(dl)).toThrow(UnsupportedError);
    expect(() => toOciIndex({ ...list, mediaType: MediaType.manifest })).toThrow(UnsupportedError);
    // an OCI index goes through toOciIndex as a copy, whatever its entries
    expect(toOciIndex(ix)).toEqual(ix);
  });
});

describe("configs", () => {
  test("toOciConfig keeps the OCI fields and drops Docker-only ones", () => {
    const docker = {
      architecture: "amd64", os: "linux", created: "2020-01-01T00:00:00Z", author: "a",
      id: "x", parent: "y", container: "z", docker_version: "20.10", Size: 5,
      container_config: { Hostname: "h", Cmd: ["/bin/sh"] },
      config: { Hostname: "h", User: "1", Env: ["A=b"], Cmd: ["sh"], Healthcheck: { Test: ["NONE"] }, Shell: ["/bin/sh"], OnBuild: null, Labels: { l: "v" }, ArgsEscaped: true },
      rootfs: { type: "layers", diff_ids: [d("1")] },
      history: [{ created: "2020-01-01T00:00:00Z", created_by: "RUN x", empty_layer: true, extra: 1 }],
    } as unknown as ImageConfig;
    const before = structuredClone(docker);
    expect(toOciConfig(docker)).toEqual({
      created: "2020-01-01T00:00:00Z", author: "a", architecture: "amd64", os: "linux",
      config: { User: "1", Env: ["A=b"], Cmd: ["sh"], Labels: { l: "v" }, ArgsEscaped: true },
      rootfs: { type: "layers", diff_ids: [d("1")] },
      history: [{ created: "2020-01-01T00:00:00Z", created_by: "RUN x", empty_layer: true }],
    } as unknown as ImageConfig);
    expect(docker).toEqual(before);
  });
});

describe("reading Docker objects", () => {
  test("layerKind: compression and foreign-ness of every type boci applies; others undefined", () => {
    expect(layerKind(MediaType.dockerLayerGzip)).toEqual({ compression: "gzip", nondistributable: false, docker: true });
    expect(layerKind(MediaType.dockerLayer)).toEqual({ compression: "none", nondistributable: false, docker: true });
    expect(layerKind(MediaType.dockerLayerZstd)).toEqual({ compression: "zstd", nondistributable: false, docker: true });
    expect(layerKind(MediaType.dockerForeignLayer)).toEqual({ compression: "none", nondistributable: true, docker: true });
    expect(layerKind(MediaType.dockerForeignLayerGzip)).toEqual({ compression: "gzip", nondistributable: true, docker: true });
    expect(layerKind(MediaType.layerNondistZstd)).toEqual({ compression: "zstd", nondistributable: true, docker: false });
    for (const mt of ["application/vnd.oci.image.layer.v1.tar+bzip2", "application/vnd.docker.image.rootfs.diff.tar.bzip2", MediaType.dockerConfig])
      expect(layerKind(mt)).toBeUndefined();
    // the OCI predicates keep their meaning
    expect(isLayerMediaType(MediaType.dockerLayerGzip)).toBe(false);
    expect(layerSuffix(MediaType.dockerLayerZstd)).toBe("zstd");
  });

  test("a Docker manifest and manifest list validate as manifests and indexes do", () => {
    const m = dockerManifest([MediaType.dockerLayerGzip, MediaType.dockerForeignLayer]);
    expect(validateManifest(m)).toEqual([]);
    const list = { schemaVersion: 2, mediaType: MediaType.dockerManifestList, manifests: [{ mediaType: MediaType.dockerManifest, digest: d("1"), size: 1, platform: { architecture: "amd64", os: "linux", features: ["sse4"] } }] };
    expect(validateIndex(list)).toEqual([]);
    // confusion is still refused: a list read as a manifest, a manifest read as an index
    expect(validateManifest({ ...list, config: m.config, layers: [] }).some((v) => v.includes("media type confusion") || v.includes("mediaType"))).toBe(true);
    expect(validateIndex({ ...m, manifests: [] }).length).toBeGreaterThan(0);
    expect(validateManifest({ ...m, mediaType: MediaType.dockerManifestList }).length).toBeGreaterThan(0);
  });

  test("schema 1 is unsupported (exit 6), not invalid", () => {
    for (const s1 of [
      { schemaVersion: 1, name: "x", fsLayers: [], history: [] },
      { schemaVersion: 1, mediaType: MediaType.dockerSchema1Signed, name: "x", fsLayers: [] },
      { schemaVersion: 2, mediaType: MediaType.dockerSchema1, config: { mediaType: MediaType.config, digest: d("c"), size: 2 }, layers: [] },
    ]) {
      const v = validateManifest(s1);
      expect(v).toHaveLength(1);
      expect(isUnsupported(v)).toBe(true);
      const e = catchErr(() => assertValid(v, "manifest sha256:x"));
      expect(e).toBeInstanceOf(UnsupportedError);
      expect(e.message).toContain("schema 1");
    }
    const bad = validateManifest({ schemaVersion: 3, config: {}, layers: [] });
    expect(isUnsupported(bad)).toBe(false);
    expect(catchErr(() => assertValid(bad, "manifest"))).toBeInstanceOf(InvalidError);
  });
});
