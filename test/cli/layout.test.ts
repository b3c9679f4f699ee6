import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync, existsSync, readdirSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { boci, ok, scratch } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";

function index(l: string) { return JSON.parse(readFileSync(join(l, "index.json"), "utf8")); }
function stat(img: string) { return JSON.parse(ok(["stat", "--json", "--image", img]).stdout); }
function newLayout(): string {
  const l = join(scratch(), "layout");
  ok(["init", "--layout", l]);
  return l;
}

describe("init", () => {
  test("creates oci-layout, index.json and blobs/sha256", () => {
    const l = join(scratch(), "a", "b", "layout");
    ok(["init", "--layout", l]);
    expect(JSON.parse(readFileSync(join(l, "oci-layout"), "utf8"))).toEqual({ imageLayoutVersion: "1.0.0" });
    expect(index(l)).toEqual({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [] });
    expect(existsSync(join(l, "blobs", "sha256"))).toBe(true);
  });
  test("refuses an existing path with exit 5", () => {
    const l = newLayout();
    const r = boci(["init", "--layout", l]);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain("already exists");
  });
  test("missing --layout is a usage error; ':' in layout refused", () => {
    expect(boci(["init"]).code).toBe(2);
    const r = boci(["init", "--layout", join(scratch(), "a:b")]);
    expect(r.code).toBe(2);
  });
});

describe("new, ls, tag, rm", () => {
  test("new writes a config with host platform and empty layers", () => {
    const l = newLayout();
    ok(["new", "--image", `${l}:t1`]);
    const s = stat(`${l}:t1`);
    expect(s.manifest.blob.layers).toEqual([]);
    expect(s.config.blob.os).toBe("linux");
    expect(s.config.blob.architecture).toBe(process.arch === "x64" ? "amd64" : process.arch);
    expect(s.config.blob.rootfs).toEqual({ type: "layers", diff_ids: [] });
    // umoci 0.6: an image config always gives a history list, empty when the config has none.
    expect(s.history).toEqual([]);
    expect(checkLayout(l)).toEqual([]);
  });
  test("SOURCE_DATE_EPOCH sets created", () => {
    const l = newLayout();
    ok(["new", "--image", `${l}:t`], { env: { SOURCE_DATE_EPOCH: "1700000000" } });
    expect(stat(`${l}:t`).config.blob.created).toBe("2023-11-14T22:13:20Z");
  });
  test("image without tag defaults to latest; ls and list print tags in order", () => {
    const l = newLayout();
    ok(["new", "--image", l]);
    ok(["new", "--image", `${l}:b`]);
    ok(["tag", "--image", `${l}:b`, "1.0"]);
    expect(ok(["ls", "--layout", l]).stdout).toBe("latest\nb\n1.0\n");
    expect(ok(["list", "--layout", l]).stdout).toBe("latest\nb\n1.0\n");
  });
  test("tag keeps the value a string ('1.0', '007') and points at the same manifest", () => {
    const l = newLayout();
    ok(["new", "--image", `${l}:src`]);
    ok(["tag", "--image", `${l}:src`, "007"]);
    ok(["tag", "--image", `${l}:src`, "1.0"]);
    const ix = index(l);
    const names = ix.manifests.map((m: any) => m.annotations["org.opencontainers.image.ref.name"]);
    expect(names).toEqual(["src", "007", "1.0"]);
    expect(new Set(ix.manifests.map((m: any) => m.digest)).size).toBe(1);
    expect(checkLayout(l)).toEqual([]);
  });
  test("tag of an unknown tag is exit 3 and changes nothing", () => {
    const l = newLayout();
    ok(["new", "--image", `${l}:a`]);
    const before = readFileSync(join(l, "index.json"));
    const r = boci(["tag", "--image", `${l}:nope`, "x"]);
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split("\n").length).toBe(1);
    expect(readFileSync(join(l, "index.json"))).toEqual(before);
  });
  test("bad tags are usage errors", () => {
    const l = newLayout();
    ok(["new", "--image", `${l}:a`]);
    for (const bad of ["-x", "a b", "a//b", ".x", "x/"]) {
      const r = boci(["tag", "--image", `${l}:a`, bad]);
      expect(r.code).toBe(2);
    }
    expect(boci(["new", "--image", `${l}:`]).code).toBe(2);
    expect(boci(["new", "--image", `:t`]).code).toBe(2);
    expect(boci(["new", "--image", `${l}:a b`]).code).toBe(2);
    expect(boci(["new"]).code).toBe(2);
  });
  test("wrong argument counts are usage errors", () => {
    const l = newLayout();
    ok(["new", "--image", `${l}:a`]);
    expect(boci(["tag", "--image", `${l}:a`]).code).toBe(2);
    expect(boci(["tag", "--image", `${l}:a`, "x", "y"]).code).toBe(2);
    expect(boci(["ls", "--layout", l, "extra"]).code).toBe(2);
  });
  test("rm and remove drop every entry with the name; rm of a missing tag succeeds", () => {
    const l = newLayout();
    ok(["new", "--image", `${l}:a`]);
    ok(["new", "--image", `${l}:b`]);
    ok(["rm", "--image", `${l}:a`]);
    expect(ok(["ls", "--layout", l]).stdout).toBe("b\n");
    ok(["remove", "--image", `${l}:b`]);
    expect(ok(["ls", "--layout", l]).stdout).toBe("");
    expect(boci(["rm", "--image", `${l}:zzz`]).code).toBe(0);
  });
  test("missing layout is exit 3 with one line", () => {
    const r = boci(["ls", "--layout", join(scratch(), "none")]);
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).not.toContain("    at ");
  });
});

describe("config", () => {
  test("every flag lands in the config, manifest and history", () => {
    const l = newLayout();
    ok(["new", "--image", `${l}:t`]);
    ok(["config", "--image", `${l}:t`,
      "--config.user", "1000:1000", "--config.exposedports", "80/tcp", "--config.exposedports=443",
      "--config.env", "A=1", "--config.env", "B=2", "--config.env=A=3",
      "--config.entrypoint", "/bin/sh", "--config.entrypoint", "-c",
      "--config.cmd", "-x", "--config.cmd=echo hi",
      "--config.volume", "/data", "--config.label", "a=b", "--config.label=c=d=e",
      "--config.workingdir", "/srv", "--config.stopsignal", "SIGTERM",
      "--created", "2020-01-02T03:04:05+01:00", "--author", "me <me@x>",
      "--platform.os", "linux", "--platform.arch", "arm64", "--platform.variant", "v8",
      "--manifest.annotation", "org.example=1",
      "--history.comment", "hello", "--history.created_by", "test", "--history.created=2021-01-01T00:00:00.500000000Z"]);
    const s = stat(`${l}:t`);
    const c = s.config.blob;
    expect(c.config).toEqual({
      User: "1000:1000", ExposedPorts: { "80/tcp": {}, "443": {} }, Env: ["A=3", "B=2"] /* A replaced where it stood, as umoci does */,
      Entrypoint: ["/bin/sh", "-c"], Cmd: ["-x", "echo hi"], Volumes: { "/data": {} }, WorkingDir: "/srv",
      Labels: { a: "b", c: "d=e" }, StopSignal: "SIGTERM",
    });
    expect(c.created).toBe("2020-01-02T03:04:05+01:00");
    expect(c.author).toBe("me <me@x>");
    expect([c.os, c.architecture, c.variant]).toEqual(["linux", "arm64", "v8"]);
    expect(s.manifest.blob.annotations).toEqual({ "org.example": "1" });
    expect(s.history).toEqual([{ layer: null, diff_id: "", created: "2021-01-01T00:00:00.5Z", created_by: "test", author: "me <me@x>", comment: "hello", empty_layer: true }]);
    // Key order as Go writes it.
    const raw = readFileSync(join(l, "blobs", ...s.config.descriptor.digest.split(":")), "utf8");
    expect(raw.indexOf('"created"')).toBeLessThan(raw.indexOf('"author"'));
    expect(raw).toContain("\\u003cme@x\\u003e");
    expect(checkLayout(l)).toEqual([]);
  });
  test("old --os/--architecture names work; --clear clears before adding; --tag writes a new tag", () => {
    const l = newLayout();
    ok(["new", "--image", `${l}:t`]);
    ok(["config", "--image", `${l}:t`, "--config.env", "A=1", "--config.label", "x=1", "--os", "freebsd", "--architecture", "riscv64"]);
    ok(["config", "--image", `${l}:t`, "--clear", "config.env", "--clear=config.labels", "--config.env", "Z=9", "--tag", "t2", "--no-history"]);
    const s1 = stat(`${l}:t`), s2 = stat(`${l}:t2`);
    expect(s1.config.blob.os).toBe("freebsd");
    expect(s1.config.blob.architecture).toBe("riscv64");
    expect(s2.config.blob.config.Env).toEqual(["Z=9"]);
    expect(s2.config.blob.config.Labels).toBeUndefined();
    expect(s2.history).toHaveLength(1);
  });
  test("invalid uses are usage errors and leave the layout unchanged", () => {
    const l = newLayout();
    ok(["new", "--image", `${l}:t`]);
    const before = readFileSync(join(l, "index.json"));
    for (const args of [
      ["--clear", "rootfs.diffids"], ["--clear", "bogus"], ["--no-history", "--history.author", "x"],
      ["--created", "yesterday"], ["--config.env", "NOEQUALS"], ["--config.label", "=v"], ["--bogus-flag"],
      ["--config.user"],
    ]) {
      const r = boci(["config", "--image", `${l}:t`, ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    expect(readFileSync(join(l, "index.json"))).toEqual(before);
  });
  test("help mentions --no-history and dotted flags", () => {
    const r = ok(["config", "--help"]);
    expect(r.stdout + r.stderr).toContain("--no-history");
    expect(r.stdout).toContain("--config.user");
    expect(r.stdout).toContain("--history.created_by");
  });
});

describe("global flags", () => {
  test("--version prints the boci, image spec and runtime spec versions", () => {
    const r = ok(["--version"]);
    expect(r.stdout).toMatch(/^boci version \d+\.\d+\.\d+\nimage spec: 1\.\d+\.\d+\nruntime spec: 1\.\d+\.\d+\n$/);
    expect(ok(["-v"]).stdout).toBe(r.stdout);
  });
  test("--help lists commands; unknown command is a usage error", () => {
    expect(ok(["--help"]).stdout).toContain("unpack");
    expect(boci(["frobnicate"]).code).toBe(2);
  });
  test("--log and --verbose together are refused; bad level refused", () => {
    expect(boci(["--log", "info", "--verbose", "ls", "--layout", "x"]).code).toBe(2);
    expect(boci(["--log", "loud", "ls", "--layout", "x"]).code).toBe(2);
  });
});

describe("stat", () => {
  test("human output has manifest, config and history sections", () => {
    const l = newLayout();
    ok(["new", "--image", `${l}:t`]);
    ok(["config", "--image", `${l}:t`, "--config.cmd", "sh", "--history.comment", "c1"]);
    const out = ok(["stat", "--image", `${l}:t`]).stdout;
    expect(out).toContain("== MANIFEST ==");
    expect(out).toContain("== CONFIG ==");
    expect(out).toContain("== HISTORY ==");
    expect(out).toMatch(/<none>\s+\S+\s+boci config\s+<none>\s+c1/);
  });
});

describe("verified reads", () => {
  test("a corrupt config blob is exit 4 naming the digest, and nothing changes", () => {
    const l = newLayout();
    ok(["new", "--image", `${l}:t`]);
    const s = stat(`${l}:t`);
    const p = join(l, "blobs", ...s.config.descriptor.digest.split(":"));
    const orig = readFileSync(p);
    writeFileSync(p, Buffer.from(orig.toString().replace("amd64", "AMD64").replace("arm64", "ARM64")));
    const before = readFileSync(join(l, "index.json"));
    const r = boci(["config", "--image", `${l}:t`, "--config.user", "x"]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(s.config.descriptor.digest);
    expect(r.stderr).toContain("digest mismatch");
    expect(readFileSync(join(l, "index.json"))).toEqual(before);
    writeFileSync(p, Buffer.concat([orig, Buffer.from(" ")]));
    const r2 = boci(["stat", "--image", `${l}:t`]);
    expect(r2.code).toBe(4);
    expect(r2.stderr).toContain("size mismatch");
  });
  test("media-type confusion and negative sizes are refused", () => {
    const l = newLayout();
    ok(["new", "--image", `${l}:t`]);
    const ix = index(l);
    const d = ix.manifests[0];
    // An index entry that calls a manifest an index.
    writeFileSync(join(l, "index.json"), JSON.stringify({ ...ix, manifests: [{ ...d, mediaType: "application/vnd.oci.image.index.v1+json" }] }));
    expect(boci(["stat", "--image", `${l}:t`]).code).toBe(4);
    writeFileSync(join(l, "index.json"), JSON.stringify({ ...ix, manifests: [{ ...d, size: -1 }] }));
    expect(boci(["stat", "--image", `${l}:t`]).code).toBe(4);
    writeFileSync(join(l, "index.json"), JSON.stringify({ ...ix, manifests: [{ ...d, digest: "sha256:ABC" }] }));
    expect(boci(["stat", "--image", `${l}:t`]).code).toBe(4);
  });
  test("reads index.json with \"manifests\": null (umoci 0.4.7)", () => {
    const l = newLayout();
    writeFileSync(join(l, "index.json"), '{"schemaVersion":2,"manifests":null}');
    expect(ok(["ls", "--layout", l]).stdout).toBe("");
    ok(["new", "--image", `${l}:t`]);
    expect(ok(["ls", "--layout", l]).stdout).toBe("t\n");
  });
});

describe("gc", () => {
  test("removes unreachable blobs and stale temp files, keeps reachable ones", () => {
    const l = newLayout();
    ok(["new", "--image", `${l}:keep`]);
    ok(["new", "--image", `${l}:drop`], { env: { SOURCE_DATE_EPOCH: "1" } });
    ok(["rm", "--image", `${l}:drop`]);
    writeFileSync(join(l, "blobs", "sha256", "a".repeat(64)), "junk");
    mkdirSync(join(l, ".boci-tmp"), { recursive: true });
    writeFileSync(join(l, ".boci-tmp", "blob-1-dead"), "partial");
    const before = readdirSync(join(l, "blobs", "sha256")).length;
    // umoci 0.6 logs gc at debug level only (it prints nothing at info).
    expect(ok(["--log", "info", "gc", "--layout", l, "--dry-run"]).stderr).toBe("");
    const r = ok(["--log", "debug", "gc", "--layout", l]);
    expect(r.stderr).toContain("removed unreachable blob");
    expect(readdirSync(join(l, "blobs", "sha256")).length).toBe(2);
    expect(before).toBe(5);
    expect(readdirSync(join(l, ".boci-tmp"))).toEqual([]);
    expect(checkLayout(l)).toEqual([]);
    ok(["stat", "--image", `${l}:keep`]);
  });
  test("gc refuses to sweep when a reachable manifest is corrupt", () => {
    const l = newLayout();
    ok(["new", "--image", `${l}:t`]);
    writeFileSync(join(l, "blobs", "sha256", "b".repeat(64)), "junk");
    const d = index(l).manifests[0].digest.split(":")[1];
    writeFileSync(join(l, "blobs", "sha256", d), "{}");
    expect(boci(["gc", "--layout", l]).code).toBe(4);
    expect(existsSync(join(l, "blobs", "sha256", "b".repeat(64)))).toBe(true);
  });
});

describe("concurrency (layout lock)", () => {
  test("20 concurrent tag processes: all 20 tags present", async () => {
    const l = newLayout();
    ok(["new", "--image", `${l}:base`]);
    const procs = Array.from({ length: 20 }, (_, i) => Bun.spawn([process.env.BOCI_BIN ?? join(import.meta.dir, "../../dist/boci"), "tag", "--image", `${l}:base`, `t${i}`], { stdout: "pipe", stderr: "pipe" }));
    const codes = await Promise.all(procs.map((p) => p.exited));
    expect(codes.every((c) => c === 0)).toBe(true);
    const tags = ok(["ls", "--layout", l]).stdout.trim().split("\n").sort();
    expect(tags).toEqual(["base", ...Array.from({ length: 20 }, (_, i) => `t${i}`)].sort());
    expect(checkLayout(l)).toEqual([]);
  });
  test("gc alongside config writes never deletes a reachable blob", async () => {
    const l = newLayout();
    ok(["new", "--image", `${l}:t`]);
    const bin = process.env.BOCI_BIN ?? join(import.meta.dir, "../../dist/boci");
    const procs: ReturnType<typeof Bun.spawn>[] = [];
    for (let i = 0; i < 10; i++) {
      procs.push(Bun.spawn([bin, "config", "--image", `${l}:t`, "--config.env", `V${i}=${i}`, "--tag", `c${i}`], { stdout: "pipe", stderr: "pipe" }));
      procs.push(Bun.spawn([bin, "gc", "--layout", l], { stdout: "pipe", stderr: "pipe" }));
    }
    const codes = await Promise.all(procs.map((p) => p.exited));
    expect(codes.every((c) => c === 0)).toBe(true);
    expect(checkLayout(l)).toEqual([]);
    for (let i = 0; i < 10; i++) expect(stat(`${l}:c${i}`).config.blob.config.Env).toEqual([`V${i}=${i}`]);
  });
});
