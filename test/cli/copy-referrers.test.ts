/**
 * `boci copy --referrers` between layouts and archives, through the real binary: the referrers
 * of a layout's image (index.json entries whose manifest names it as `subject`), and their
 * referrers in turn, come along into an `oci:` layout and an `oci-archive:` untagged, bytes
 * unchanged; an artifact of another image does not; without the flag nothing comes; a rerun
 * adds no second entry; a docker-archive destination refuses the flag (exit 2) and a
 * docker-archive source has none to bring. (The registry side: registry-referrers.test.ts.)
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { boci, ok, scratch } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";
import { makeDockerArchive } from "../helpers/archive";
import { file, makeImage, makeTar, type Descriptor } from "../helpers/image";
import { makeArtifact } from "../helpers/referrers-proxy";

const REF = "org.opencontainers.image.ref.name";
const SIG = "application/vnd.example.signature.v1";
const SBOM = "application/spdx+json";
const index = (l: string) => JSON.parse(readFileSync(join(l, "index.json"), "utf8")) as { manifests: (Descriptor & { artifactType?: string })[] };
const blob = (l: string, digest: string) => readFileSync(join(l, "blobs", ...digest.split(":")));
const layer = makeTar([file("etc/hostname", "referrers\n")]);

/** A layout with image `t`, a signature and an SBOM of it, a signature of the SBOM, and an unrelated image `u` with a signature of its own. */
function source() {
  const l = join(scratch(), "src");
  ok(["init", "--layout", l]);
  const img = makeImage(l, "t", [layer]);
  const other = makeImage(l, "u", [makeTar([file("other", "x")])]);
  const sig = makeArtifact(l, img.manifest, SIG, "signature of t\n", { "org.example.signer": "tester" });
  const sbom = makeArtifact(l, img.manifest, SBOM, '{"spdxVersion":"SPDX-2.3"}');
  const sbomSig = makeArtifact(l, sbom.desc, SIG, "signature of the sbom\n");
  const otherSig = makeArtifact(l, other.manifest, SIG, "signature of u\n");
  return { l, img, other, sig, sbom, sbomSig, otherSig };
}

describe("copy --referrers between layouts and archives", () => {
  test("oci: → oci:: the referrers and theirs come along untagged, bytes unchanged; not another image's; a rerun adds nothing", () => {
    const s = source();
    const d = join(scratch(), "dst");
    ok(["copy", "--referrers", `oci:${s.l}:t`, `oci:${d}:x`]);
    const entries = index(d).manifests;
    expect(entries.map((e) => e.digest).sort()).toEqual([s.img.manifest.digest, s.sig.desc.digest, s.sbom.desc.digest, s.sbomSig.desc.digest].sort());
    expect(entries.filter((e) => e.annotations?.[REF]).map((e) => [e.digest, e.annotations![REF]])).toEqual([[s.img.manifest.digest, "x"]]);
    // the tag is the last entry written
    expect(entries.at(-1)!.digest).toBe(s.img.manifest.digest);
    for (const a of [s.sig, s.sbom, s.sbomSig]) {
      expect(blob(d, a.desc.digest).equals(a.bytes)).toBe(true);
      expect(entries.find((e) => e.digest === a.desc.digest)!.artifactType).toBe(a.desc.artifactType);
    }
    expect(blob(d, s.sbomSig.desc.digest).toString()).toContain(s.sbom.desc.digest);
    expect(checkLayout(d)).toEqual([]);

    ok(["copy", "--referrers", `oci:${s.l}:t`, `oci:${d}:x`]);
    expect(index(d).manifests).toHaveLength(4);

    // without the flag: the image alone
    const plain = join(scratch(), "plain");
    ok(["copy", `oci:${s.l}:t`, `oci:${plain}:x`]);
    expect(index(plain).manifests.map((e) => e.digest)).toEqual([s.img.manifest.digest]);
  });

  test("oci: → oci-archive: keeps them untagged in the archive's index.json; oci-archive: → oci: brings them back", () => {
    const s = source();
    const a = join(scratch(), "img.tar");
    ok(["copy", "--referrers", `oci:${s.l}:u`, `oci-archive:${a}:u`]);
    const back = join(scratch(), "back");
    ok(["copy", "--referrers", `oci-archive:${a}:u`, `oci:${back}:u`]);
    const entries = index(back).manifests;
    expect(entries.map((e) => e.digest).sort()).toEqual([s.other.manifest.digest, s.otherSig.desc.digest].sort());
    expect(blob(back, s.otherSig.desc.digest).equals(s.otherSig.bytes)).toBe(true);
    expect(checkLayout(back)).toEqual([]);
    // the archive's own index.json, read with tar: the signature untagged, the image tagged u
    const x = join(scratch(), "x");
    ok(["init", "--layout", x]);
    const t = Bun.spawnSync(["tar", "-xf", a, "-C", x, "index.json"]);
    expect(t.exitCode).toBe(0);
    expect(index(x).manifests.map((e) => e.annotations?.[REF] ?? e.digest)).toEqual([s.otherSig.desc.digest, "u"]);
  });

  test("a docker-archive destination refuses --referrers (exit 2); a docker-archive source has none", () => {
    const s = source();
    const r = boci(["copy", "--referrers", `oci:${s.l}:t`, `docker-archive:${join(scratch(), "d.tar")}:img:t`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--referrers");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);

    const tar = join(scratch(), "in.tar");
    makeDockerArchive(tar, [{ layers: [layer], repoTags: ["img:t"] }]);
    const d = join(scratch(), "from-docker");
    ok(["copy", "--referrers", `docker-archive:${tar}:img:t`, `oci:${d}:t`]);
    expect(index(d).manifests).toHaveLength(1);
  });
});
