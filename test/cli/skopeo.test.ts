/**
 * boci behind a `skopeo` symlink: the exact call lines build systems use (KIWI, the Open Build
 * Service, LXC's OCI template), inspect and list-tags compared byte for byte with Debian's
 * skopeo 1.9 on the same images, and the refusals (other commands, flags, transports), each one
 * line with its exit code. Images are built in code; archives are made by Debian's skopeo
 * where the test is about reading what skopeo writes. Interop parts skip, saying so, where
 * skopeo is not installed.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { BIN, have, ok, scratch, type RunResult } from "../helpers/cli";
import { dir, file, makeImage, makeTar, setTag, symlink, writeBlob } from "../helpers/image";
import { checkLayout } from "../helpers/check-layout";

const HAVE_SKOPEO = have("skopeo");
if (!HAVE_SKOPEO) console.warn("skopeo.test.ts: Debian's skopeo is not installed: the interop tests (archives made by skopeo, output compared with skopeo) are skipped");
const SKOPEO = HAVE_SKOPEO ? Bun.which("skopeo")! : "";

const s = scratch("boci-skopeo-");
const link = join(s, "bin", "skopeo");

function run(cmd: string[], cwd = s): RunResult {
  const p = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env } });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}
/** boci through the symlink. */
const sk = (...args: string[]) => run([link, ...args]);
/** Debian's skopeo. */
const real = (...args: string[]) => run([SKOPEO, ...args]);
function must(r: RunResult, what: string): RunResult {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr}`);
  return r;
}
/** A failure as one line on stderr, with that exit code. */
function refused(r: RunResult, code: number, mentions: string): void {
  expect(r.code).toBe(code);
  const lines = r.stderr.trimEnd().split("\n");
  expect(lines).toHaveLength(1);
  expect(r.stderr).toContain(mentions);
}
const tagsOf = (layout: string) => ok(["ls", "--layout", layout]).stdout.trim().split("\n").filter(Boolean);
const indexJson = (layout: string) => JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));

const L = join(s, "L");
beforeAll(() => {
  Bun.spawnSync(["mkdir", "-p", join(s, "bin")]);
  symlinkSync(BIN, link);
  ok(["init", "--layout", L]);
  const base = makeTar([dir("etc/"), file("etc/os-release", "NAME=skopeo-test\n"), dir("usr/"), dir("usr/bin/"), file("usr/bin/app", "#!/bin/sh\necho app\n", { mode: 0o755 }), symlink("bin", "usr/bin")]);
  const top = makeTar([dir("var/"), file("var/data", "x".repeat(5000))]);
  makeImage(L, "t", [base, top], {
    compressEach: ["gzip", "none"],
    config: {
      created: "2020-01-02T03:04:05.123456789+02:00",
      author: "tests <t@example.org>",
      config: { Env: ["PATH=/usr/bin", "A=<&>"], Cmd: ["/usr/bin/app"], Labels: { zeta: "1", alpha: "a&b", "m<id>": "x" }, ExposedPorts: { "80/tcp": {} }, WorkingDir: "/var" },
      history: [{ created: "2020-01-02T03:04:05Z", created_by: "base" }, { created: "2020-01-02T03:04:06Z", created_by: "top", comment: "c" }],
    },
  });
  makeImage(L, "bare", [], { config: { config: {} } });
});

describe("front end", () => {
  test("--version is a skopeo line that says it is boci", () => {
    const r = must(sk("--version"), "--version");
    expect(r.stdout).toMatch(/^skopeo version \d+\.\d+\.\d+ \(boci \d+\.\d+\.\d+/);
    expect(must(sk("-v"), "-v").stdout).toBe(r.stdout);
  });

  test("--help lists what is supported, and only that", () => {
    const h = must(sk("--help"), "--help").stdout;
    for (const c of ["copy", "inspect", "list-tags", "--insecure-policy", "--policy", "--tmpdir", "--override-arch"]) expect(h).toContain(c);
    expect(h).not.toContain("sync");
    expect(h).toContain("boci");
    const c = must(sk("copy", "--help"), "copy --help").stdout;
    for (const f of ["--additional-tag", "--remove-signatures", "--src-creds", "--dest-creds", "--dest-shared-blob-dir", "--format", "--quiet", "--dest-compress-format", "--multi-arch", "--all"]) expect(c).toContain(f);
    expect(must(sk("help", "inspect"), "help inspect").stdout).toContain("--raw");
    expect(must(sk("help"), "help").stdout).toBe(h);
    refused(sk(), 2, "missing command");
    refused(sk("--debug"), 2, "missing command");
  });

  test("other commands, flags and transports are refused with one line", () => {
    refused(sk("sync", "a", "b"), 2, '"skopeo sync" is not supported');
    refused(sk("frobnicate"), 2, "frobnicate");
    refused(sk("copy", "--sign-by", "KEY", `oci:${L}:t`, `oci:${s}/x:t`), 2, "--sign-by");
    refused(sk("--registries.d", "d", "inspect", `oci:${L}:t`), 2, "--registries.d");
    refused(sk("inspect", "-v", `oci:${L}:t`), 2, '"v"');
    const leak = sk("inspect", "-Xs3cretD", `oci:${L}:t`);
    refused(leak, 2, '"X"');
    expect(leak.stderr).not.toContain("s3cret");
    refused(sk("copy", `oci:${L}:t`), 2, "exactly 2 arguments");
    // (docker:// is spoken now: test/cli/registry-*.test.ts; these transports are not)
    refused(sk("copy", "docker-daemon:alpine:latest", `oci:${s}/lxc:alpine`), 6, '"docker-daemon"');
    refused(sk("copy", `oci:${L}:t`, "containers-storage:x:1"), 6, '"containers-storage"');
    refused(sk("inspect", "docker-daemon:alpine:latest"), 6, '"docker-daemon"');
    refused(sk("copy", `oci:${L}:t`, `dir:${s}/d`), 6, '"dir"');
    refused(sk("list-tags", `oci:${L}`), 6, "'oci'");
    refused(sk("copy", "--dest-shared-blob-dir", join(s, "shared"), `oci:${L}:t`, `oci-archive:${s}/shared-dst.tar:t`), 2, "--dest-shared-blob-dir");
    refused(sk("copy", "--format", "v2s1", `oci:${L}:t`, `oci:${s}/v1:t`), 6, "v2s1");
    refused(sk("copy", "--format", "bogus", `oci:${L}:t`, `oci:${s}/v1:t`), 2, "bogus");
    refused(sk("copy", "--multi-arch", "index-only", `oci:${L}:t`, `oci:${s}/ia:t`), 6, "index-only");
    refused(sk("copy", "--all", "--multi-arch", "all", `oci:${L}:t`, `oci:${s}/ia:t`), 2, "--multi-arch");
    refused(sk("copy", "--dest-compress-format", "zstd:chunked", `oci:${L}:t`, `oci:${s}/zc:t`), 6, "zstd:chunked");
    refused(sk("inspect", "--raw", "--format", "{{.Digest}}", `oci:${L}:t`), 2, "raw output does not support format option");
    refused(sk("inspect", "--format", "{{json .Labels}}", `oci:${L}:t`), 6, "json .Labels");
    refused(sk("inspect", "--format", "{{.Nope}}", `oci:${L}:t`), 2, "Nope");
    for (const d of ["shared-dst", "v1", "ia", "zc", "x", "lxc"]) expect(existsSync(join(s, d))).toBe(false);
  });

  test("credentials are accepted and never printed", () => {
    const dst = join(s, "creds");
    const r = must(sk("copy", "--src-creds", "me:s3cretA", "--dest-creds=you:s3cretB", `oci:${L}:t`, `oci:${dst}:t`), "copy with creds");
    const bad = sk("copy", "--src-creds", "me:s3cretC", `oci:${s}/missing:t`, `oci:${dst}:u`);
    expect(bad.code).not.toBe(0);
    for (const x of [r.stdout, r.stderr, bad.stdout, bad.stderr]) expect(x).not.toMatch(/s3cret/);
    refused(sk("copy", "--src-creds", "", `oci:${L}:t`, `oci:${dst}:v`), 2, "--src-creds");
  });

  test("pflag forms: --flag=value, grouped short booleans, comma-separated slices, -- ", () => {
    const F = join(s, "forms.tar");
    const r = must(sk("copy", "-q", "--additional-tag=extra/one:1,extra/two:2", "--additional-tag", "three:3", "--", `oci:${L}:t`, `docker-archive:${F}:main/img:1`), "copy");
    expect(r.stdout).toBe("");
    const m = JSON.parse(Bun.spawnSync(["tar", "-xOf", F, "manifest.json"]).stdout.toString());
    expect(m[0].RepoTags).toEqual(["main/img:1", "extra/one:1", "extra/two:2", "three:3"]);
    // -qa: --quiet and --all grouped (a single manifest: --all copies it as it is)
    const G = join(s, "grouped");
    expect(must(sk("copy", "-qa", `oci:${L}:t`, `oci:${G}:t`), "copy -qa").stdout).toBe("");
    expect(tagsOf(G)).toEqual(["t"]);
  });

  test("--dest-compress-format zstd recompresses; --format v2s2 into a docker-archive; --tmpdir is used and left empty", () => {
    const Z = join(s, "zstd");
    must(sk("copy", "-q", "--dest-compress", "--dest-compress-format", "zstd", `oci:${L}:t`, `oci:${Z}:t`), "zstd copy");
    expect(checkLayout(Z)).toEqual([]);
    const m = JSON.parse(readFileSync(join(Z, "blobs", ...indexJson(Z).manifests[0].digest.split(":")), "utf8"));
    expect(m.layers.map((l: { mediaType: string }) => l.mediaType)).toEqual(["application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.v1.tar+zstd"]);
    const T = join(s, "tmpdir");
    Bun.spawnSync(["mkdir", "-p", T]);
    const V = join(s, "v2s2.tar");
    must(sk("--tmpdir", T, "copy", "-q", "--format", "v2s2", `oci:${Z}:t`, `docker-archive:${V}:v/img:1`), "v2s2 copy");
    must(sk("copy", "-q", "--tmpdir", T, `oci:${Z}:t`, `oci-archive:${join(s, "tmpdir.oci.tar")}:t`), "oci-archive copy with --tmpdir");
    expect(readdirSync(T)).toEqual([]);
    expect(must(sk("list-tags", `docker-archive:${V}`), "list-tags").stdout).toContain('"v/img:1"');
  });

  test("the trust policy: --policy is read, reject refuses, --insecure-policy overrides", () => {
    const reject = join(s, "reject.json");
    writeFileSync(reject, JSON.stringify({ default: [{ type: "reject" }] }));
    const dst = join(s, "policy-dst");
    refused(sk("--policy", reject, "copy", `oci:${L}:t`, `oci:${dst}:t`), 1, "rejected");
    expect(existsSync(dst)).toBe(false);
    // A transport scope wins over the default.
    const scoped = join(s, "scoped.json");
    writeFileSync(scoped, JSON.stringify({ default: [{ type: "reject" }], transports: { oci: { "": [{ type: "insecureAcceptAnything" }] } } }));
    must(sk("--policy", scoped, "copy", "-q", `oci:${L}:t`, `oci:${dst}:t`), "scoped policy");
    const signed = join(s, "signed.json");
    writeFileSync(signed, JSON.stringify({ default: [{ type: "signedBy", keyType: "GPGKeys", keyPath: "/k" }] }));
    refused(sk("copy", "--policy", signed, `oci:${L}:t`, `oci:${dst}:u`), 1, "signature");
    must(sk("copy", "--policy", reject, "--insecure-policy", "-q", `oci:${L}:t`, `oci:${dst}:w`), "insecure");
    refused(sk("--policy", join(s, "nope.json"), "copy", `oci:${L}:t`, `oci:${dst}:x`), 3, "nope.json");
    expect(tagsOf(dst)).toEqual(["t", "w"]);
  });
});

describe.skipIf(!HAVE_SKOPEO)("build systems' call lines (archives made by Debian's skopeo)", () => {
  const A = join(s, "base.oci.tar");
  const D = join(s, "base.docker.tar");
  beforeAll(() => {
    if (!HAVE_SKOPEO) return;
    must(real("copy", "-q", `oci:${L}:t`, `oci-archive:${A}:t`), "skopeo copy oci-archive");
    must(real("copy", "-q", `oci:${L}:t`, `docker-archive:${D}:obs/base:1.0`), "skopeo copy docker-archive");
  });

  test("KIWI: import a base (oci-archive → oci:D:base_layer), export to docker-archive with --additional-tag and to oci-archive", () => {
    const D1 = join(s, "kiwi-layout");
    const r = must(sk("copy", `oci-archive:${A}:t`, `oci:${D1}:base_layer`), "kiwi import");
    // skopeo's lines: one per layer, one for the config, none for the manifest.
    expect(r.stdout).toMatch(/^Getting image source signatures\n(Copying blob sha256:[0-9a-f]{64}\n){2}Copying config sha256:[0-9a-f]{64}\nWriting manifest to image destination\nStoring signatures\n$/);
    expect(tagsOf(D1)).toEqual(["base_layer"]);
    expect(checkLayout(D1)).toEqual([]);
    // oci-archive → oci keeps the manifest's digest (skopeo compressed the plain layer when it made the archive).
    const src = { digest: JSON.parse(must(real("inspect", `oci-archive:${A}:t`), "skopeo inspect").stdout).Digest as string };
    expect(indexJson(D1).manifests[0].digest).toBe(src.digest);

    const out = join(s, "kiwi.docker.tar");
    must(sk("copy", `oci:${D1}:base_layer`, `docker-archive:${out}:kiwi/image:1.2`, "--additional-tag", "kiwi/image:latest"), "kiwi export docker-archive");
    // RepoTags in docker save's short form; both list them as written.
    const listed = must(real("list-tags", `docker-archive:${out}`), "skopeo list-tags").stdout;
    expect(JSON.parse(listed).Tags).toEqual(["kiwi/image:1.2", "kiwi/image:latest"]);
    expect(must(sk("list-tags", `docker-archive:${out}`), "list-tags").stdout).toBe(listed);
    // Debian's skopeo reads it back into a layout with the same layers.
    const back = join(s, "kiwi-back");
    must(real("copy", "-q", `docker-archive:${out}:kiwi/image:latest`, `oci:${back}:x`), "skopeo reads boci's docker-archive");
    const a = JSON.parse(must(sk("inspect", "--config", `oci:${L}:t`), "inspect").stdout);
    const b = JSON.parse(must(sk("inspect", "--config", `oci:${back}:x`), "inspect back").stdout);
    expect(b.rootfs.diff_ids).toEqual(a.rootfs.diff_ids);
    expect(b.config).toEqual(a.config);

    const oa = join(s, "kiwi.oci.tar");
    must(sk("copy", `oci:${D1}:base_layer`, `oci-archive:${oa}:base_layer`), "kiwi export oci-archive");
    expect(JSON.parse(must(real("inspect", `oci-archive:${oa}:base_layer`), "skopeo inspect").stdout).Digest).toBe(src.digest);
  }, 30_000);

  test("OBS: docker-archive and oci-archive without a tag into oci:D:latest; list-tags docker-archive:F", () => {
    const D2 = join(s, "obs-layout");
    must(sk("copy", `docker-archive:${D}`, `oci:${D2}:latest`), "obs docker-archive import");
    expect(tagsOf(D2)).toEqual(["latest"]);
    expect(checkLayout(D2)).toEqual([]);
    const D3 = join(s, "obs-layout2");
    must(sk("copy", `oci-archive:${A}`, `oci:${D3}:latest`), "obs oci-archive import");
    expect(checkLayout(D3)).toEqual([]);
    // Both unpack to the tree the source layout unpacks to.
    const trees = [`${L}:t`, `${D2}:latest`, `${D3}:latest`].map((img, i) => {
      const b = join(s, `obs-bundle-${i}`);
      ok(["raw", "unpack", "--rootless", "--image", img, b]);
      return Bun.spawnSync(["bash", "-c", "find . -printf '%p %y %m %s %l\\n' | sort"], { cwd: b }).stdout.toString();
    });
    expect(trees[1]).toBe(trees[0]);
    expect(trees[2]).toBe(trees[0]);
    const mine = must(sk("list-tags", `docker-archive:${D}`), "list-tags");
    expect(mine.stdout).toBe(must(real("list-tags", `docker-archive:${D}`), "skopeo list-tags").stdout);
    expect(JSON.parse(mine.stdout)).toEqual({ Tags: ["docker.io/obs/base:1.0"] });
  }, 30_000);

  test("list-tags of a multi-image docker-archive (one image untagged) prints what skopeo prints", () => {
    const U = join(s, "lt-untagged.docker.tar");
    must(real("copy", "-q", `oci:${L}:bare`, `docker-archive:${U}`), "skopeo untagged");
    // Both archives' members side by side, one manifest.json listing both images.
    const work = join(s, "lt-multi");
    Bun.spawnSync(["mkdir", "-p", work]);
    const entries = [D, U].map((a, i) => {
      expect(Bun.spawnSync(["tar", "-xf", a, "-C", work]).exitCode).toBe(0);
      const m = JSON.parse(readFileSync(join(work, "manifest.json"), "utf8"));
      return { ...m[0], RepoTags: i === 0 ? ["docker.io/obs/base:1.0", "other/name:2"] : [] };
    });
    writeFileSync(join(work, "manifest.json"), JSON.stringify(entries));
    const F = `${work}.tar`;
    const names = readdirSync(work).filter((n) => n !== "repositories");
    expect(Bun.spawnSync(["tar", "-cf", F, "-C", work, ...names]).exitCode).toBe(0);
    const want = must(real("list-tags", `docker-archive:${F}`), "skopeo list-tags").stdout;
    expect(JSON.parse(want).Tags).toEqual(["docker.io/obs/base:1.0", "other/name:2", "@1"]);
    expect(must(sk("list-tags", `docker-archive:${F}`), "list-tags").stdout).toBe(want);
    // inspect by @1 and by a second RepoTag, as skopeo.
    for (const r of [`docker-archive:${F}:@1`, `docker-archive:${F}:other/name:2`]) expect(sk("inspect", r).stdout).toBe(real("inspect", r).stdout);
  }, 30_000);

  test("LXC: copy --remove-signatures --insecure-policy oci:SRC:t oci:DIR:NAME (a docker:// source that cannot be reached fails cleanly)", () => {
    const DIR = join(s, "lxc-cache");
    must(sk("copy", "--remove-signatures", "--insecure-policy", `oci:${L}:t`, `oci:${DIR}:alpine`), "lxc copy");
    expect(tagsOf(DIR)).toEqual(["alpine"]);
    expect(checkLayout(DIR)).toEqual([]);
    // The URL form, against a loopback port nothing listens on (never another address): one
    // line, exit 1, the cache untouched. (A real registry: test/cli/registry-interop.test.ts.)
    const down = sk("copy", "--remove-signatures", "--insecure-policy", "--retry-times", "0", "--src-tls-verify=false", "docker://127.0.0.1:9/library/alpine:latest", `oci:${DIR}:other`);
    expect(down.code).toBe(1);
    expect(down.stderr.trim().split("\n")).toHaveLength(1);
    expect(down.stderr).toContain("127.0.0.1:9");
    expect(tagsOf(DIR)).toEqual(["alpine"]);
  });

  test("inspect prints what Debian's skopeo prints, key for key and byte for byte", () => {
    const U = join(s, "untagged.docker.tar");
    must(real("copy", "-q", `oci:${L}:bare`, `docker-archive:${U}`), "skopeo untagged docker-archive");
    const refs = [`oci:${L}:t`, `oci:${L}:bare`, `oci-archive:${A}`, `oci-archive:${A}:t`, `docker-archive:${D}`, `docker-archive:${D}:obs/base:1.0`, `docker-archive:${D}:@0`, `docker-archive:${U}`];
    const flagSets = [[], ["--config"], ["--raw"], ["--raw", "--config"], ["--format", "{{.Name}}|{{.Digest}}|{{.Created}}|{{.Labels}}|{{.Env}}|{{.Layers}}|{{.Labels.alpha}}|{{.RepoTags}}"], ["--config", "--format", "{{.Architecture}} {{.Config.Cmd}} {{.Config.ExposedPorts}} {{.Author}}"], ["--format", "json"]];
    let compared = 0;
    for (const r of refs) {
      for (const f of flagSets) {
        const a = sk("inspect", ...f, r);
        const b = real("inspect", ...f, r);
        expect({ r, f, code: a.code, out: a.stdout }).toEqual({ r, f, code: b.code, out: b.stdout });
        compared++;
      }
    }
    expect(compared).toBe(refs.length * flagSets.length);
    // The default output has skopeo's keys, in its order.
    const keys = Object.keys(JSON.parse(sk("inspect", `docker-archive:${D}:obs/base:1.0`).stdout));
    expect(keys).toEqual(["Name", "Digest", "RepoTags", "Created", "DockerVersion", "Labels", "Architecture", "Os", "Layers", "Env"]);
  }, 120_000);

  test("inspect of odd configs (no created, empty Labels and Env, keys in other cases, variant, docker_version) and of a docker-archive with gzip layers, as skopeo", () => {
    const O = join(s, "odd");
    ok(["init", "--layout", O]);
    makeImage(O, "a", [], { config: { created: undefined, variant: "v7", "os.version": "10", config: { Labels: {}, Env: [], Volumes: { "/v": {} }, StopSignal: "SIGTERM", ArgsEscaped: true } } });
    makeImage(O, "b", [], { config: { Architecture: "arm", OS: "linux", docker_version: "20.10.1", container_config: { Hostname: "x" }, config: { labels: { b: "1", a: "2" }, env: ["X=1"] } } });
    makeImage(O, "c", [makeTar([file("f", "1")])], { config: { created: "2021-03-04T05:06:07.000000000Z", history: [{ created_by: "x", empty_layer: false }] } });
    const tpl = ["--config", "--format", "{{.Created}}|{{.Variant}}|{{.Config.Volumes}}|{{.Config.ArgsEscaped}}|{{.OSVersion}}|{{.Config.StopSignal}}"];
    for (const t of ["a", "b", "c"]) {
      for (const f of [[], ["--config"], ["--format", "{{.Created}}/{{.Labels}}/{{.Env}}/{{.DockerVersion}}"], tpl]) {
        const a = sk("inspect", ...f, `oci:${O}:${t}`);
        const b = real("inspect", ...f, `oci:${O}:${t}`);
        expect({ t, f, code: a.code, out: a.stdout }).toEqual({ t, f, code: b.code, out: b.stdout });
      }
    }
    // An artifact (a config that is not an image config): only --raw shows it, as in skopeo.
    const cfg = writeBlob(O, Buffer.from("{}"), "application/vnd.example.thing+json");
    setTag(O, "art", writeBlob(O, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: cfg, layers: [] })), "application/vnd.oci.image.manifest.v1+json"));
    refused(sk("inspect", `oci:${O}:art`), 6, "artifact");
    refused(sk("inspect", "--config", `oci:${O}:art`), 6, "artifact");
    expect(real("inspect", `oci:${O}:art`).code).not.toBe(0);
    for (const f of [["--raw"], ["--raw", "--config"]]) expect(must(sk("inspect", ...f, `oci:${O}:art`), "raw").stdout).toBe(real("inspect", ...f, `oci:${O}:art`).stdout);
    // A docker-archive whose layer members are gzip-compressed (skopeo reads those too): Layers
    // name the diffIDs, sizes are uncompressed, so the made manifest is the same.
    const work = join(s, "gz-docker");
    Bun.spawnSync(["mkdir", "-p", work]);
    expect(Bun.spawnSync(["tar", "-xf", D, "-C", work]).exitCode).toBe(0);
    const m = JSON.parse(readFileSync(join(work, "manifest.json"), "utf8"));
    for (const l of m[0].Layers as string[]) writeFileSync(join(work, l), Bun.gzipSync(readFileSync(join(work, l))));
    const G = `${work}.tar`;
    expect(Bun.spawnSync(["tar", "-cf", G, "-C", work, ...readdirSync(work)]).exitCode).toBe(0);
    for (const f of [[], ["--raw"]]) {
      const a = sk("inspect", ...f, `docker-archive:${G}`);
      expect(a.code).toBe(0);
      expect(a.stdout).toBe(real("inspect", ...f, `docker-archive:${G}`).stdout);
      expect(a.stdout).toBe(sk("inspect", ...f, `docker-archive:${D}`).stdout);
    }
  }, 60_000);

  test("--override-arch picks from a multi-platform index as skopeo does; a missing platform fails", () => {
    const M = join(s, "multi");
    ok(["init", "--layout", M]);
    const l1 = makeTar([file("arch", "amd64\n")]);
    const l2 = makeTar([file("arch", "arm64\n")]);
    const a = makeImage(M, "a", [l1], { architecture: "amd64", noTag: true });
    const b = makeImage(M, "b", [l2], { architecture: "arm64", noTag: true });
    const { makeIndex } = require("../helpers/image") as typeof import("../helpers/image");
    makeIndex(M, "multi", [{ ...a.manifest, platform: { os: "linux", architecture: "amd64" } }, { ...b.manifest, platform: { os: "linux", architecture: "arm64", variant: "v8" } }]);
    for (const arch of ["amd64", "arm64"]) {
      const x = sk("--override-arch", arch, "inspect", `oci:${M}:multi`);
      const y = real("--override-arch", arch, "inspect", `oci:${M}:multi`);
      expect(x.stdout).toBe(y.stdout);
      expect(x.code).toBe(0);
    }
    expect(sk("--override-arch", "s390x", "inspect", `oci:${M}:multi`).code).not.toBe(0);
    // --all copies the index; system (default) the host's image.
    const all = join(s, "multi-all");
    must(sk("copy", "-q", "--multi-arch", "all", `oci:${M}:multi`, `oci:${all}:m`), "copy --multi-arch all");
    expect(checkLayout(all)).toEqual([]);
    expect(readdirSync(join(all, "blobs/sha256")).length).toBe(7);
    const one = join(s, "multi-one");
    must(sk("copy", "-q", "--override-arch", "arm64", `oci:${M}:multi`, `oci:${one}:m`), "copy one arch");
    expect(indexJson(one).manifests[0].digest).toBe(b.manifest.digest);
  }, 30_000);
});
