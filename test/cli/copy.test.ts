/**
 * `boci copy` through the real binary: oci → oci (new, existing, same layout, skipped blobs,
 * corrupt source), round trips through oci-archive (byte-identical) and docker-archive (diffIDs
 * and config kept), `--all`, `--platform`, `--json`, usage errors, and that a failed or
 * interrupted copy leaves no tag, no archive and no temporary files.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync, mkdirSync, openSync, writeSync, closeSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { BIN, boci, have, ok, scratch } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";
import { makeDockerArchive } from "../helpers/archive";
import { MT, compress, corruptBlob, dir, file, makeImage, makeIndex, makeTar, sha256hex, writeBlob, type Descriptor } from "../helpers/image";

const REF = "org.opencontainers.image.ref.name";

function newLayout(where = scratch()): string {
  const l = join(where, "layout");
  ok(["init", "--layout", l]);
  return l;
}
const index = (l: string) => JSON.parse(readFileSync(join(l, "index.json"), "utf8"));
const tags = (l: string): string[] => (index(l).manifests ?? []).map((d: Descriptor) => d.annotations?.[REF]);
const blob = (l: string, digest: string) => readFileSync(join(l, "blobs", ...digest.split(":")));
const json = (l: string, digest: string) => JSON.parse(blob(l, digest).toString());

const layer1 = makeTar([dir("etc/"), file("etc/hostname", "boci\n", { mode: 0o644 }), file("bin/sh", "#!x\n", { mode: 0o755 })]);
const layer2 = makeTar([file("etc/motd", "hello from layer 2\n"), file(".wh.gone", "")]);
const config = { config: { Env: ["PATH=/bin"], Cmd: ["/bin/sh"], Labels: { a: "b" } }, history: [{ created: "2020-01-01T00:00:00Z", created_by: "one" }, { created_by: "two" }] };

/** A layout with an image of two gzip layers, tagged `t`. */
function source(tag = "t") {
  const l = newLayout();
  const img = makeImage(l, tag, [layer1, layer2], { config });
  return { l, img };
}

/** Every reachable blob of `tag` in `a` is in `b`, byte for byte. */
function sameImage(a: string, b: string, digest: string): void {
  const m = json(a, digest);
  expect(blob(b, digest).equals(blob(a, digest))).toBe(true);
  for (const d of [m.config, ...m.layers]) expect(blob(b, d.digest).equals(blob(a, d.digest))).toBe(true);
}

/** Names in `d` that a copy leaves while it runs (temporary layouts, archives, blobs). */
function leftovers(d: string): string[] {
  return readdirSync(d).filter((n) => n.startsWith(".boci-") || n.includes(".boci-") || n.startsWith(".tmp"));
}

describe("oci → oci", () => {
  test("into a new layout: same digests, same bytes, tag set", () => {
    const { l, img } = source();
    const d = join(scratch(), "new");
    const r = ok(["copy", `oci:${l}:t`, `oci:${d}:copied`]);
    expect(r.stdout).toBe("");
    expect(tags(d)).toEqual(["copied"]);
    expect(index(d).manifests[0].digest).toBe(img.manifest.digest);
    sameImage(l, d, img.manifest.digest);
    expect(checkLayout(d)).toEqual([]);
    expect(readdirSync(join(d, ".."))).toEqual(["new"]);
  });

  test("into an existing layout keeps its tags; a missing TAG writes latest; an empty directory becomes a layout", () => {
    const { l, img } = source();
    const d = newLayout();
    makeImage(d, "other", [layer2]);
    ok(["copy", `oci:${l}:t`, `oci:${d}`]);
    expect(tags(d)).toEqual(["other", "latest"]);
    expect(checkLayout(d)).toEqual([]);
    const empty = join(scratch(), "empty");
    mkdirSync(empty);
    ok(["copy", `oci:${l}`, `oci:${empty}:x`]);
    expect(tags(empty)).toEqual(["x"]);
    sameImage(l, empty, img.manifest.digest);
  });

  test("the same layout: another tag for the same image, nothing copied", () => {
    const { l, img } = source();
    const r = JSON.parse(ok(["copy", "--json", `oci:${l}:t`, `oci:${l}:t2`]).stdout);
    expect(r.blobsCopied).toBe(0);
    expect(r.blobsSkipped).toBe(4);
    expect(tags(l)).toEqual(["t", "t2"]);
    expect(index(l).manifests[1].digest).toBe(img.manifest.digest);
    expect(checkLayout(l)).toEqual([]);
  });

  test("blobs the destination has are skipped", () => {
    const { l } = source();
    const d = join(scratch(), "d");
    const a = JSON.parse(ok(["copy", "--json", `oci:${l}:t`, `oci:${d}:a`]).stdout);
    expect([a.blobsCopied, a.blobsSkipped]).toEqual([4, 0]);
    expect(a.bytes).toBeGreaterThan(layer1.length / 100);
    const b = JSON.parse(ok(["copy", "--json", `oci:${l}:t`, `oci:${d}:b`]).stdout);
    expect([b.blobsCopied, b.blobsSkipped, b.bytes]).toEqual([0, 4, 0]);
    expect(tags(d)).toEqual(["a", "b"]);
  });

  test("a corrupt source blob fails with exit 4 and leaves no tag (and no new layout)", () => {
    const { l, img } = source();
    corruptBlob(l, img.layers[1]!, Buffer.from("not the layer"));
    const fresh = join(scratch(), "fresh");
    let r = boci(["copy", `oci:${l}:t`, `oci:${fresh}:x`]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(img.layers[1]!.digest);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(existsSync(fresh)).toBe(false);
    expect(readdirSync(join(fresh, ".."))).toEqual([]);
    const d = newLayout();
    r = boci(["copy", `oci:${l}:t`, `oci:${d}:x`]);
    expect(r.code).toBe(4);
    expect(tags(d)).toEqual([]);
    expect(existsSync(join(d, ".boci-tmp")) ? readdirSync(join(d, ".boci-tmp")) : []).toEqual([]);
  });

  test("a missing tag, an ambiguous source and a missing layout are clear errors", () => {
    const { l } = source();
    makeImage(l, "u", [layer2]);
    let r = boci(["copy", `oci:${l}:nope`, `oci:${scratch()}/x`]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("tag \"nope\" not found (tags: t, u)");
    r = boci(["copy", `oci:${l}`, `oci:${scratch()}/x`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("name one with :TAG (tags: t, u)");
    r = boci(["copy", `oci:${scratch()}/none:t`, `oci:${scratch()}/x`]);
    expect(r.code).toBe(3);
  });

  test("Docker schema-2 types in a layout become OCI types, the config's bytes kept", () => {
    const l = newLayout();
    const lb = writeBlob(l, compress(layer1, "gzip"), "application/vnd.docker.image.rootfs.diff.tar.gzip");
    const cfg = writeBlob(l, Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config: {}, rootfs: { type: "layers", diff_ids: [`sha256:${sha256hex(layer1)}`] } })), "application/vnd.docker.container.image.v1+json");
    const m = writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.docker.distribution.manifest.v2+json", config: cfg, layers: [lb] })), "application/vnd.docker.distribution.manifest.v2+json");
    writeFileSync(join(l, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ ...m, annotations: { [REF]: "d" } }] }));
    const d = join(scratch(), "d");
    ok(["copy", `oci:${l}:d`, `oci:${d}:d`]);
    const top = index(d).manifests[0];
    expect(top.mediaType).toBe(MT.manifest);
    const om = json(d, top.digest);
    expect(om.mediaType).toBe(MT.manifest);
    expect(om.config).toEqual({ ...cfg, mediaType: MT.config });
    expect(om.layers).toEqual([{ ...lb, mediaType: MT.layer + "+gzip" }]);
    expect(checkLayout(d)).toEqual([]);
    // A Docker manifest list with --all: an OCI index over the converted manifests.
    const list = writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.docker.distribution.manifest.list.v2+json", manifests: [{ ...m, platform: { os: "linux", architecture: "amd64" } }] })), "application/vnd.docker.distribution.manifest.list.v2+json");
    writeFileSync(join(l, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ ...list, annotations: { [REF]: "list" } }] }));
    ok(["copy", "--all", `oci:${l}:list`, `oci:${d}:list`]);
    const ix = json(d, index(d).manifests[1].digest);
    expect(index(d).manifests[1].mediaType).toBe(MT.index);
    expect(ix.mediaType).toBe(MT.index);
    expect(ix.manifests).toEqual([{ mediaType: MT.manifest, digest: top.digest, size: top.size, platform: { os: "linux", architecture: "amd64" } }]);
    expect(checkLayout(d)).toEqual([]);
  });
});

describe("archives", () => {
  test("oci → oci-archive → oci is byte-identical (every blob, the manifest)", () => {
    const { l, img } = source();
    const s = scratch();
    const a = join(s, "img.tar");
    const r = JSON.parse(ok(["copy", "--json", `oci:${l}:t`, `oci-archive:${a}:v1`]).stdout);
    expect(r.manifest.digest).toBe(img.manifest.digest);
    expect(r.tags).toEqual(["v1"]);
    expect(readdirSync(s)).toEqual(["img.tar"]);
    const back = join(s, "back");
    ok(["copy", `oci-archive:${a}:v1`, `oci:${back}:v1`]);
    expect(index(back).manifests[0].digest).toBe(img.manifest.digest);
    sameImage(l, back, img.manifest.digest);
    expect(checkLayout(back)).toEqual([]);
    // A missing TAG reads the archive's only image.
    ok(["copy", `oci-archive:${a}`, `oci:${back}:again`]);
    expect(index(back).manifests[1].digest).toBe(img.manifest.digest);
  });

  test("oci → docker-archive → oci keeps the diffIDs and the config", () => {
    const { l, img } = source();
    const s = scratch();
    const a = join(s, "d.tar");
    const r = JSON.parse(ok(["copy", "--json", `oci:${l}:t`, `docker-archive:${a}:busybox:1.0`, "--additional-tag", "example.com/me/app:2", "--additional-tag", "docker.io/library/x:y"]).stdout);
    expect(r.tags).toEqual(["busybox:1.0", "example.com/me/app:2", "x:y"]);
    const manifestJson = JSON.parse(Bun.spawnSync(["tar", "-xOf", a, "manifest.json"]).stdout.toString());
    expect(manifestJson[0].RepoTags).toEqual(["busybox:1.0", "example.com/me/app:2", "x:y"]);
    const back = join(s, "back");
    for (const [src, tag] of [[`docker-archive:${a}`, "a"], [`docker-archive:${a}:busybox:1.0`, "b"], [`docker-archive:${a}:docker.io/library/busybox:1.0`, "c"], [`docker-archive:${a}:@0`, "d"]] as const)
      ok(["copy", src, `oci:${back}:${tag}`]);
    expect(tags(back)).toEqual(["a", "b", "c", "d"]);
    const m = json(back, index(back).manifests[0].digest);
    expect(m.mediaType).toBe(MT.manifest);
    // The config's exact bytes: same digest, so the same diffIDs and fields.
    expect(m.config.digest).toBe(img.config.digest);
    expect(json(back, m.config.digest).rootfs.diff_ids).toEqual(img.diffIds);
    expect(json(back, m.config.digest).history).toEqual(config.history);
    expect(m.layers.map((x: Descriptor) => x.mediaType)).toEqual([MT.layer + "+gzip", MT.layer + "+gzip"]);
    expect(checkLayout(back)).toEqual([]);
    // --compress zstd / none for the import
    ok(["copy", "--compress", "zstd", `docker-archive:${a}`, `oci:${back}:z`]);
    ok(["copy", "--compress", "none", `docker-archive:${a}`, `oci:${back}:n`]);
    const z = json(back, index(back).manifests[4].digest);
    const n = json(back, index(back).manifests[5].digest);
    expect(z.layers.map((x: Descriptor) => x.mediaType)).toEqual([MT.layer + "+zstd", MT.layer + "+zstd"]);
    expect(n.layers.map((x: Descriptor) => x.digest)).toEqual(img.diffIds);
    expect(checkLayout(back)).toEqual([]);
    const miss = boci(["copy", `docker-archive:${a}:nope:1`, `oci:${back}:x`]);
    expect(miss.code).toBe(3);
    expect(miss.stderr).toContain("busybox:1.0");
  });

  test("--dest-compress recompresses layers into another format, diffIDs unchanged", () => {
    const { l, img } = source();
    const d = join(scratch(), "d");
    ok(["copy", "--dest-compress", "--compress", "zstd", `oci:${l}:t`, `oci:${d}:z`]);
    const m = json(d, index(d).manifests[0].digest);
    expect(m.layers.map((x: Descriptor) => x.mediaType)).toEqual([MT.layer + "+zstd", MT.layer + "+zstd"]);
    expect(m.config.digest).toBe(img.config.digest);
    expect(checkLayout(d)).toEqual([]);
    // Already gzip: --dest-compress with gzip keeps the blobs.
    ok(["copy", "--dest-compress", `oci:${l}:t`, `oci:${d}:g`]);
    expect(index(d).manifests[1].digest).toBe(img.manifest.digest);
  });
});

describe("multi-image docker-archives", () => {
  test("@N, NAME:TAG (normalised) and the only image; several without a name list them", () => {
    const s = scratch();
    const f = join(s, "multi.tar");
    const built = makeDockerArchive(f, [
      { layers: [layer1], repoTags: ["busybox:latest", "example.com/a/b:1"], config: { architecture: "amd64", os: "linux" } },
      { layers: [layer2], repoTags: ["other:2"], config: { architecture: "amd64", os: "linux" } },
      { layers: [layer1, layer2], repoTags: null, config: { architecture: "amd64", os: "linux" } },
    ], { style: "legacy" });
    const d = join(s, "d");
    const cfgOf = (tag: string) => json(d, index(d).manifests.find((m: Descriptor) => m.annotations?.[REF] === tag).digest).config.digest;
    ok(["copy", `docker-archive:${f}:@1`, `oci:${d}:at1`]);
    ok(["copy", `docker-archive:${f}:@2`, `oci:${d}:at2`]);
    ok(["copy", `docker-archive:${f}:docker.io/library/busybox`, `oci:${d}:bb`]);
    ok(["copy", `docker-archive:${f}:example.com/a/b:1`, `oci:${d}:ab`]);
    expect([cfgOf("at1"), cfgOf("at2"), cfgOf("bb"), cfgOf("ab")]).toEqual([built[1]!.configDigest, built[2]!.configDigest, built[0]!.configDigest, built[0]!.configDigest]);
    expect(checkLayout(d)).toEqual([]);
    let r = boci(["copy", `docker-archive:${f}`, `oci:${d}:x`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("holds 3 images");
    expect(r.stderr).toContain("@0 busybox:latest example.com/a/b:1, @1 other:2, @2 (untagged)");
    r = boci(["copy", `docker-archive:${f}:@3`, `oci:${d}:x`]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("no image @3, the archive holds 3");
    expect(tags(d)).toEqual(["at1", "at2", "bb", "ab"]);
  });
});

describe("indexes", () => {
  function multi() {
    const l = newLayout();
    const amd = makeImage(l, "x", [layer1], { architecture: "amd64", noTag: true });
    const arm = makeImage(l, "x", [layer2], { architecture: "arm64", noTag: true });
    const ix = makeIndex(l, "multi", [
      { ...amd.manifest, platform: { os: "linux", architecture: "amd64" } },
      { ...arm.manifest, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
    ]);
    return { l, amd, arm, ix };
  }

  test("--all copies the whole index (same digest); --platform picks one manifest", () => {
    const { l, amd, arm, ix } = multi();
    const d = join(scratch(), "d");
    const r = JSON.parse(ok(["copy", "--all", "--json", `oci:${l}:multi`, `oci-archive:${d}.tar:m`]).stdout);
    expect(r.manifest).toEqual({ mediaType: MT.index, digest: ix.digest, size: ix.size });
    ok(["copy", `oci-archive:${d}.tar:m`, `oci:${d}:all`, "--all"]);
    expect(index(d).manifests[0].digest).toBe(ix.digest);
    sameImage(l, d, amd.manifest.digest);
    sameImage(l, d, arm.manifest.digest);
    ok(["copy", "--platform", "linux/arm64", `oci:${l}:multi`, `oci:${d}:arm`]);
    expect(index(d).manifests[1].digest).toBe(arm.manifest.digest);
    ok(["copy", "--platform", "linux/amd64", `oci:${l}:multi`, `oci:${d}:amd`]);
    expect(index(d).manifests[2].digest).toBe(amd.manifest.digest);
    expect(checkLayout(d)).toEqual([]);
    const r2 = boci(["copy", "--platform", "linux/s390x", `oci:${l}:multi`, `oci:${d}:none`]);
    expect(r2.code).toBe(3);
    expect(r2.stderr).toContain("available: linux/amd64, linux/arm64/v8");
    expect(boci(["copy", "--all", `oci:${l}:multi`, `docker-archive:${d}.d.tar`]).code).toBe(2);
    expect(existsSync(`${d}.d.tar`)).toBe(false);
  });
});

describe("progress", () => {
  test.skipIf(!have("script"))("a line per blob on a terminal; nothing on a pipe, with --quiet or --no-progress", () => {
    const { l } = source();
    const s = scratch();
    const tty = (extra: string) => Bun.spawnSync(["script", "-qec", `${BIN} copy ${extra} oci:${l}:t oci:${s}/d:${extra ? "q" : "x"}`, "/dev/null"], { stdout: "pipe" }).stdout.toString();
    const shown = tty("");
    for (let i = 1; i <= 4; i++) expect(shown).toContain(`copied blob ${i}/4 sha256:`);
    expect(tty("--quiet")).not.toContain("blob");
    expect(tty("--no-progress")).not.toContain("blob");
    const piped = boci(["copy", `oci:${l}:t`, `oci:${s}/d:y`]);
    expect([piped.code, piped.stdout, piped.stderr]).toEqual([0, "", ""]);
    expect(tags(`${s}/d`)).toEqual(["x", "q", "y"]);
  });
});

describe("usage", () => {
  test("bad references, unsupported transports and impossible flag pairs", () => {
    const { l } = source();
    const s = scratch();
    const cases: [string[], number, string][] = [
      [[l, `oci:${s}/x`], 2, "expected TRANSPORT:REFERENCE"],
      [[`oci:${l}:t`, "bogus:x"], 2, "unknown transport"],
      [["docker-daemon:busybox:latest", `oci:${s}/x`], 6, "unsupported transport"],
      [[`oci:${l}:t`, "dir:/tmp/x"], 6, "unsupported transport"],
      [[`oci:${l}:t`, `docker-archive:${s}/a.tar:@1`], 2, "not one to write"],
      [[`oci:${l}:t`, `oci:${s}/x:-bad`], 2, "invalid tag"],
      [["--format", "v2s2", `oci:${l}:t`, `oci:${s}/x`], 2, "--format v2s2"],
      [["--format", "oci", `oci:${l}:t`, `docker-archive:${s}/a.tar`], 2, "--format oci"],
      [["--format", "v2", `oci:${l}:t`, `oci:${s}/x`], 2, "invalid --format"],
      [["--compress", "xz", `oci:${l}:t`, `oci:${s}/x`], 2, "invalid --compress"],
      [["--additional-tag", "a:b", `oci:${l}:t`, `oci:${s}/x`], 2, "--additional-tag"],
      [["--additional-tag", "untagged", `oci:${l}:t`, `docker-archive:${s}/a.tar`], 2, "not a tagged reference"],
      [["--platform", "linux", `oci:${l}:t`, `oci:${s}/x`], 2, "--platform"],
      [[`oci:${l}:t`], 2, "expected 2 arguments"],
    ];
    for (const [args, code, msg] of cases) {
      const r = boci(["copy", ...args]);
      expect({ args, code: r.code }).toEqual({ args, code });
      expect(r.stderr).toContain(msg);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    expect(readdirSync(s)).toEqual([]);
    expect(ok(["copy", "--help"]).stdout).toContain("boci copy [command options] <source> <destination>");
  });
});

describe("failures leave nothing", () => {
  test("a corrupt blob: no archive, no temporary directory (oci-archive, docker-archive, --tmpdir)", () => {
    const { l, img } = source();
    corruptBlob(l, img.layers[0]!, Buffer.from("junk"));
    const s = scratch();
    const t = scratch();
    for (const dst of [`oci-archive:${s}/a.tar:t`, `docker-archive:${s}/d.tar:x:y`]) {
      for (const extra of [[], ["--tmpdir", t]]) {
        const r = boci(["copy", ...extra, `oci:${l}:t`, dst]);
        expect(r.code).toBe(4);
        expect(readdirSync(s)).toEqual([]);
        expect(readdirSync(t)).toEqual([]);
      }
    }
    // An existing archive is not replaced by a failed copy.
    writeFileSync(join(s, "a.tar"), "old");
    expect(boci(["copy", `oci:${l}:t`, `oci-archive:${s}/a.tar:t`]).code).toBe(4);
    expect(readFileSync(join(s, "a.tar"), "utf8")).toBe("old");
  });

  test("a docker-archive destination that is a non-empty file is refused (exit 5), untouched, as skopeo refuses it; an empty one is written", () => {
    const { l } = source();
    const s = scratch();
    const f = join(s, "d.tar");
    const old = randomBytes(700);
    writeFileSync(f, old);
    for (const args of [[`oci:${l}:t`, `docker-archive:${f}:x:y`], [`oci:${l}:t`, `docker-archive:${f}`], [`docker-archive:${f}`, `docker-archive:${f}`]]) {
      const r = boci(["copy", ...args]);
      expect({ args, code: r.code }).toEqual({ args, code: 5 });
      expect(r.stderr).toContain(f);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(readFileSync(f).equals(old)).toBe(true);
      expect(readdirSync(s)).toEqual(["d.tar"]);
    }
    // An empty file is written, as a missing one is.
    writeFileSync(f, "");
    ok(["copy", `oci:${l}:t`, `docker-archive:${f}:x:y`]);
    expect(readdirSync(s)).toEqual(["d.tar"]);
    const back = join(s, "back");
    ok(["copy", `docker-archive:${f}:x:y`, `oci:${back}:t`]);
    expect(checkLayout(back)).toEqual([]);
  });

  /** A layout with one big uncompressed layer (random bytes, written in chunks). */
  function bigSource(mib: number): string {
    const l = newLayout();
    const tmp = join(l, "big.tmp");
    const fd = openSync(tmp, "w");
    const h = new Bun.CryptoHasher("sha256");
    for (let i = 0; i < mib; i++) {
      const c = randomBytes(1 << 20);
      h.update(c);
      writeSync(fd, c);
    }
    closeSync(fd);
    const hex = h.digest("hex");
    renameSync(tmp, join(l, "blobs", "sha256", hex));
    const layer: Descriptor = { mediaType: MT.layer, digest: `sha256:${hex}`, size: mib << 20 };
    const cfg = writeBlob(l, Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [layer.digest] } })), MT.config);
    const m = writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.manifest, config: cfg, layers: [layer] })), MT.manifest);
    writeFileSync(join(l, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ ...m, annotations: { [REF]: "big" } }] }));
    return l;
  }

  async function termWhen(args: string[], ready: () => boolean): Promise<{ code: number; stderr: string }> {
    const p = Bun.spawn([BIN, ...args], { stdout: "pipe", stderr: "pipe" });
    const t0 = Date.now();
    while (!ready()) {
      if (p.exitCode !== null) throw new Error(`copy ended before the signal: ${await new Response(p.stderr).text()}`);
      if (Date.now() - t0 > 20000) { p.kill(9); throw new Error("copy never reached the point to interrupt"); }
      await Bun.sleep(5);
    }
    p.kill("SIGTERM");
    const code = await p.exited;
    return { code, stderr: await new Response(p.stderr).text() };
  }

  test("SIGTERM mid-copy: no tag, no new layout, no archive, no temporary files", async () => {
    const l = bigSource(384);
    const s = scratch();
    // oci: a new layout, interrupted while its big blob is being written.
    const d = join(s, "d");
    let r = await termWhen(["copy", `oci:${l}:big`, `oci:${d}:x`], () => existsSync(join(d, ".boci-tmp")) && readdirSync(join(d, ".boci-tmp")).length > 0);
    expect(r.code).toBe(143);
    expect(readdirSync(s)).toEqual([]);
    // oci: an existing layout keeps its tags and gets no temporary file.
    const e = newLayout(s);
    r = await termWhen(["copy", `oci:${l}:big`, `oci:${e}:x`], () => existsSync(join(e, ".boci-tmp")) && readdirSync(join(e, ".boci-tmp")).length > 0);
    expect(r.code).toBe(143);
    expect(tags(e)).toEqual([]);
    expect(readdirSync(join(e, ".boci-tmp"))).toEqual([]);
    expect(readdirSync(join(e, "blobs", "sha256"))).toEqual([]);
    // oci-archive: the temporary layout beside the archive is removed.
    r = await termWhen(["copy", `oci:${l}:big`, `oci-archive:${s}/a.tar:x`], () => readdirSync(s).some((n) => n.startsWith(".boci-copy-")));
    expect(r.code).toBe(143);
    expect(readdirSync(s).sort()).toEqual(["layout"]);
    expect(leftovers(s)).toEqual([]);
    // docker-archive: the archive's temporary file is removed, no archive appears.
    r = await termWhen(["copy", `oci:${l}:big`, `docker-archive:${s}/d.tar:x:y`], () => readdirSync(s).some((n) => n.startsWith(".d.tar.boci-")));
    expect(r.code).toBe(143);
    expect(readdirSync(s).sort()).toEqual(["layout"]);
  }, 90000);
});
