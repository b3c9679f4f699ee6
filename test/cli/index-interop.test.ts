/**
 * `boci index` against Debian's skopeo (1.9): skopeo reads the indexes boci writes (`inspect
 * --raw` gives back the very bytes, `inspect` picks the host's image, `copy --all` copies every
 * entry), and boci reads indexes skopeo writes (`copy --all` with a compression change writes
 * new manifests and a new index: `index ls`, `stat`, `unpack --platform`, and `index add` on
 * it, read back by skopeo), and an index built here the way other tools write them (no
 * `mediaType` field, a nested index, os.features). Skips, saying so, where skopeo is missing.
 * (skopeo 1.9's `copy --all` takes no nested index, so nested ones are copied with boci copy.)
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { have, isRoot, ok, runPeer, scratch } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";
import { file, hostArch, makeImage, makeTar, MT, setTag, writeBlob, type Descriptor } from "../helpers/image";

const peers = have("skopeo");
if (!peers) console.warn("index-interop: skipped: needs skopeo (Debian package skopeo)");
const t = peers ? test : test.skip;

const skopeo = (...args: string[]) => runPeer(["skopeo", "--insecure-policy", ...args]);

const REF = "org.opencontainers.image.ref.name";
const host = hostArch();
const other = host === "arm64" ? "amd64" : "arm64";
const rootless = isRoot ? [] : ["--rootless"];

const indexJson = (l: string) => JSON.parse(readFileSync(join(l, "index.json"), "utf8"));
function entry(l: string, tag: string): Descriptor {
  return indexJson(l).manifests.find((d: Descriptor) => d.annotations?.[REF] === tag);
}
const blob = (l: string, d: { digest: string }) => readFileSync(join(l, "blobs", ...d.digest.split(":")));
/** The entries `boci index ls --json` lists. */
const lsEntries = (img: string): Descriptor[] => JSON.parse(ok(["index", "ls", "--image", img, "--json"]).stdout).manifests;

/** A layout with a boci-made index `multi` of two one-layer images (host arch first). */
function source(): { l: string; h: Descriptor; o: Descriptor } {
  const l = join(scratch(), "src");
  ok(["init", "--layout", l]);
  const h = makeImage(l, "h", [makeTar([file("which", `${host}\n`)])], { architecture: host }).manifest;
  const o = makeImage(l, "o", [makeTar([file("which", `${other}\n`)])], { architecture: other }).manifest;
  ok(["index", "create", "--image", `${l}:multi`, "--from", `${l}:h`, "--from", `${l}:o`, "--annotation", "org.example=1"]);
  return { l, h, o };
}

function unpackWhich(img: string, platform: string): string {
  const b = join(scratch(), "bundle");
  ok(["unpack", ...rootless, "--platform", platform, "--image", img, b]);
  return readFileSync(join(b, "rootfs", "which"), "utf8");
}

describe("skopeo reads boci's indexes", () => {
  t("inspect --raw gives back the index blob byte for byte; inspect picks the host's image", () => {
    const { l, h, o } = source();
    const top = entry(l, "multi");
    const raw = skopeo("inspect", "--raw", `oci:${l}:multi`);
    expect(raw).toBe(blob(l, top).toString());
    const ix = JSON.parse(raw);
    expect(ix.mediaType).toBe("application/vnd.oci.image.index.v1+json");
    expect(ix.manifests.map((d: Descriptor) => [d.digest, d.platform?.architecture])).toEqual([[h.digest, host], [o.digest, other]]);
    const info = JSON.parse(skopeo("inspect", `oci:${l}:multi`));
    expect(info.Architecture).toBe(host);
    expect(info.Os).toBe("linux");
  });

  t("copy --all of a boci-made index (after add and remove) copies every entry; boci reads the copy", () => {
    const { l, h, o } = source();
    const s = makeImage(l, "s", [makeTar([file("which", "s390x\n")])], { architecture: "s390x" }).manifest;
    ok(["index", "add", "--image", `${l}:multi`, "--from", `${l}:s`]);
    ok(["index", "remove", "--image", `${l}:multi`, "--platform", `linux/${host}`]);
    ok(["index", "add", "--image", `${l}:multi`, "--from", `${l}:h`]);
    const dst = join(scratch(), "copy");
    skopeo("copy", "--all", `oci:${l}:multi`, `oci:${dst}:copied`);
    // skopeo keeps the index as it is: same digest, same entries
    expect(entry(dst, "copied").digest).toBe(entry(l, "multi").digest);
    expect(lsEntries(`${dst}:copied`).map((d) => d.digest)).toEqual([o.digest, s.digest, h.digest]);
    expect(checkLayout(dst)).toEqual([]);
    ok(["validate", "--layout", dst]);
    expect(unpackWhich(`${dst}:copied`, "linux/s390x")).toBe("s390x\n");
  });
});

describe("boci reads skopeo's indexes", () => {
  t("copy --all with a compression change: new manifests and a new index, read by index ls, stat and unpack --platform; index add on it, read back by skopeo", () => {
    const { l, h, o } = source();
    const dst = join(scratch(), "zstd");
    skopeo("copy", "--all", "--dest-compress-format", "zstd", `oci:${l}:multi`, `oci:${dst}:z`);
    const top = entry(dst, "z");
    const skopeoIndex = JSON.parse(blob(dst, top).toString());
    // skopeo wrote it: its manifests are new (zstd layers), not boci's
    expect(skopeoIndex.manifests.map((d: Descriptor) => d.digest)).not.toContain(h.digest);
    const listed = lsEntries(`${dst}:z`);
    expect(listed).toEqual(skopeoIndex.manifests);
    expect(listed.map((d) => d.platform?.architecture)).toEqual([host, other]);
    const text = ok(["index", "ls", "--image", `${dst}:z`]).stdout.split("\n");
    expect(text[1]).toContain(skopeoIndex.manifests[0].digest);
    expect(ok(["stat", "--image", `${dst}:z`]).stdout).toContain("zstd");
    expect(unpackWhich(`${dst}:z`, `linux/${other}`)).toBe(`${other}\n`);
    expect(unpackWhich(`${dst}:z`, `linux/${host}`)).toBe(`${host}\n`);
    // boci edits skopeo's index; skopeo reads the result and copies it
    makeImage(dst, "riscv", [makeTar([file("which", "riscv64\n")])], { architecture: "riscv64" });
    ok(["index", "add", "--image", `${dst}:z`, "--from", `${dst}:riscv`]);
    const raw = JSON.parse(skopeo("inspect", "--raw", `oci:${dst}:z`));
    expect(raw.manifests.map((d: Descriptor) => d.platform?.architecture)).toEqual([host, other, "riscv64"]);
    expect(raw.manifests.slice(0, 2)).toEqual(skopeoIndex.manifests);
    const again = join(scratch(), "again");
    skopeo("copy", "--all", `oci:${dst}:z`, `oci:${again}:z`);
    expect(unpackWhich(`${again}:z`, "linux/riscv64")).toBe("riscv64\n");
    void o;
  });

  t("an index as other tools write it (no mediaType field, a nested index, os.features) is read by boci and skopeo alike", () => {
    const { l, h, o } = source();
    const inner = writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MT.manifest, digest: o.digest, size: o.size, platform: { architecture: other, os: "linux", "os.features": ["x"] } }] })), "application/vnd.oci.image.index.v1+json");
    const outer = writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [
      { mediaType: MT.manifest, digest: h.digest, size: h.size, platform: { architecture: host, os: "linux" } },
      { mediaType: "application/vnd.oci.image.index.v1+json", digest: inner.digest, size: inner.size },
    ] })), "application/vnd.oci.image.index.v1+json");
    setTag(l, "foreign", outer);
    const lines = ok(["index", "ls", "--image", `${l}:foreign`]).stdout.split("\n");
    expect(lines[1]).toMatch(new RegExp(`^linux/${host} +${h.digest} `));
    expect(lines[2]).toMatch(new RegExp(`^- +${inner.digest} `));
    expect(lines[3]).toMatch(new RegExp(`^  linux/${other} \\(os.features x\\) +${o.digest} `));
    expect(JSON.parse(skopeo("inspect", "--raw", `oci:${l}:foreign`)).manifests).toHaveLength(2);
    expect(ok(["stat", "--image", `${l}:foreign`]).stdout).toContain("== MANIFEST ==");
    expect(unpackWhich(`${l}:foreign`, `linux/${other}`)).toBe(`${other}\n`);
    // --nested of it; skopeo 1.9 reads it (inspect --raw) but its copy --all takes no nested
    // index ("a manifest list instead of a manifest"): boci copy --all carries it
    ok(["index", "create", "--nested", "--image", `${l}:wrap`, "--from", `${l}:foreign`]);
    expect(JSON.parse(skopeo("inspect", "--raw", `oci:${l}:wrap`)).manifests[0].digest).toBe(outer.digest);
    const dst = join(scratch(), "wrap");
    ok(["copy", "--all", `oci:${l}:wrap`, `oci:${dst}:wrap`]);
    expect(Object.keys(JSON.parse(ok(["index", "ls", "--image", `${dst}:wrap`, "--json"]).stdout).nested)).toEqual([outer.digest, inner.digest]);
  });
});
