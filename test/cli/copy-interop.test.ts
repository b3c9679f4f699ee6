/**
 * `boci copy` against Debian's skopeo (1.9) and umoci (0.4.7): skopeo reads what boci wrote and
 * boci reads what skopeo wrote, and umoci unpacks the results to the same trees; plus KIWI's and
 * OBS's exact call lines with `boci copy` in place of `skopeo copy`. Skips, saying so, where
 * skopeo or umoci is not installed.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { have, isRoot, ok, runPeer, scratch } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";
import { treeOf } from "../helpers/archive";
import { dir, file, makeImage, makeTar, symlink, type Descriptor } from "../helpers/image";

const peers = have("skopeo") && have("umoci");
if (!peers) console.warn("copy-interop: skipped: needs skopeo and umoci (Debian packages skopeo, umoci)");
const t = peers ? test : test.skip;

const skopeo = (...args: string[]) => runPeer(["skopeo", "--insecure-policy", ...args]);

const layer1 = makeTar([
  dir("etc/", { mtime: 1_600_000_000 }), file("etc/hostname", "interop\n", { mtime: 1_600_000_000 }),
  dir("bin/", { mtime: 1_600_000_000 }), file("bin/tool", "#!/bin/sh\necho hi\n", { mode: 0o755, mtime: 1_600_000_000 }),
  symlink("bin/alias", "tool", { mtime: 1_600_000_000 }),
]);
const layer2 = makeTar([file("etc/motd", "layer two\n", { mtime: 1_600_000_100 }), file("etc/.wh.hostname", "", { mtime: 0 })]);
const config = { config: { Env: ["PATH=/bin", "A=1"], Cmd: ["/bin/tool"], Labels: { "org.example": "yes" }, WorkingDir: "/etc" } };

function source(): { l: string; manifest: Descriptor; diffIds: string[] } {
  const l = join(scratch(), "src");
  ok(["init", "--layout", l]);
  const img = makeImage(l, "t", [layer1, layer2], { config, architecture: "amd64" });
  return { l, manifest: img.manifest, diffIds: img.diffIds };
}

/** The tree umoci 0.4.7 unpacks `layout:tag` to (the rootfs root's own entry left out). */
function unpacked(layout: string, tag: string): Record<string, string> {
  const b = join(scratch(), "bundle");
  runPeer(["umoci", "unpack", ...(isRoot ? [] : ["--rootless"]), "--image", `${layout}:${tag}`, b]);
  const tree = treeOf(join(b, "rootfs"));
  delete tree["."];
  return tree;
}

const index = (l: string) => JSON.parse(readFileSync(join(l, "index.json"), "utf8"));

describe("skopeo reads what boci writes", () => {
  t("docker-archive: skopeo inspect, skopeo copy to oci, umoci unpack", () => {
    const { l, diffIds } = source();
    const want = unpacked(l, "t");
    expect(Object.keys(want).sort()).toEqual(["bin", "bin/alias", "bin/tool", "etc", "etc/motd"]);
    const f = join(scratch(), "d.tar");
    ok(["copy", `oci:${l}:t`, `docker-archive:${f}:example/app:1.0`]);
    const info = JSON.parse(skopeo("inspect", `docker-archive:${f}`));
    expect(info.Layers).toEqual(diffIds);
    expect(info.Env).toEqual(config.config.Env);
    expect(info.Labels).toEqual(config.config.Labels);
    expect(info.Architecture).toBe("amd64");
    const d = join(scratch(), "oci");
    skopeo("copy", `docker-archive:${f}`, `oci:${d}:t`);
    expect(unpacked(d, "t")).toEqual(want);
  });

  t("oci-archive: skopeo copy oci-archive:F:t oci:D:t keeps the manifest; umoci unpack", () => {
    const { l, manifest } = source();
    const f = join(scratch(), "o.tar");
    ok(["copy", `oci:${l}:t`, `oci-archive:${f}:t`]);
    const d = join(scratch(), "oci");
    skopeo("copy", `oci-archive:${f}:t`, `oci:${d}:t`);
    expect(index(d).manifests[0].digest).toBe(manifest.digest);
    expect(unpacked(d, "t")).toEqual(unpacked(l, "t"));
  });
});

describe("boci reads what skopeo writes", () => {
  t("docker-archive and oci-archive from skopeo copy", () => {
    const { l, diffIds } = source();
    const want = unpacked(l, "t");
    const s = scratch();
    skopeo("copy", `oci:${l}:t`, `docker-archive:${s}/d.tar:name:tag`);
    skopeo("copy", `oci:${l}:t`, `oci-archive:${s}/o.tar:t`);
    const d = join(scratch(), "oci");
    ok(["copy", `docker-archive:${s}/d.tar:name:tag`, `oci:${d}:from-docker`]);
    ok(["copy", `oci-archive:${s}/o.tar:t`, `oci:${d}:from-oci`]);
    expect(checkLayout(d)).toEqual([]);
    const fromDocker = JSON.parse(readFileSync(join(d, "blobs", ...index(d).manifests[0].digest.split(":")), "utf8"));
    const cfg = JSON.parse(readFileSync(join(d, "blobs", ...fromDocker.config.digest.split(":")), "utf8"));
    expect(cfg.rootfs.diff_ids).toEqual(diffIds);
    expect(cfg.config.Env).toEqual(config.config.Env);
    expect(unpacked(d, "from-docker")).toEqual(want);
    expect(unpacked(d, "from-oci")).toEqual(want);
    const archived = JSON.parse(runPeer(["tar", "-xOf", `${s}/o.tar`, "index.json"]));
    expect(index(d).manifests[1].digest).toBe(archived.manifests[0].digest);
  });
});

describe("build systems' call lines with boci copy", () => {
  t("KIWI: import oci-archive:F:tag oci:D:base_layer; export oci:D:tag docker-archive:F:name:tag --additional-tag T", () => {
    const { l } = source();
    const want = unpacked(l, "t");
    const s = scratch();
    skopeo("copy", `oci:${l}:t`, `oci-archive:${s}/base.tar:latest`);
    const d = join(s, "image");
    ok(["copy", `oci-archive:${s}/base.tar:latest`, `oci:${d}:base_layer`]);
    expect(unpacked(d, "base_layer")).toEqual(want);
    ok(["copy", `oci:${d}:base_layer`, `docker-archive:${s}/out.tar:myimage:1.2`, "--additional-tag", "myimage:latest"]);
    // (skopeo inspect's RepoTags are a registry's tag list, empty for an archive: read manifest.json)
    expect(JSON.parse(runPeer(["tar", "-xOf", `${s}/out.tar`, "manifest.json"]))[0].RepoTags).toEqual(["myimage:1.2", "myimage:latest"]);
    expect(JSON.parse(skopeo("inspect", `docker-archive:${s}/out.tar:myimage:1.2`)).Layers).toHaveLength(2);
    const o = join(s, "check");
    skopeo("copy", `docker-archive:${s}/out.tar:myimage:latest`, `oci:${o}:x`);
    expect(unpacked(o, "x")).toEqual(want);
    // KIWI's oci-archive export
    ok(["copy", `oci:${d}:base_layer`, `oci-archive:${s}/out-oci.tar:1.2`]);
    expect(JSON.parse(skopeo("inspect", `oci-archive:${s}/out-oci.tar:1.2`)).Layers).toHaveLength(2);
  });

  t("OBS: docker-archive:F oci:D:latest", () => {
    const { l } = source();
    const s = scratch();
    skopeo("copy", `oci:${l}:t`, `docker-archive:${s}/obs.tar:obs/base:15`);
    const d = join(s, "oci");
    ok(["copy", `docker-archive:${s}/obs.tar`, `oci:${d}:latest`]);
    expect(unpacked(d, "latest")).toEqual(unpacked(l, "t"));
    expect(checkLayout(d)).toEqual([]);
  });
});
