/**
 * The read-only commands (stat, ls, unpack, raw unpack, raw runtime-config) straight from an
 * archive: `--image oci-archive:FILE[:TAG]` and `docker-archive:FILE[:NAME:TAG|@N]`, read in
 * place. The archives are made by Debian's skopeo from a layout built in code; what the
 * commands print and unpack matches what they do from a layout holding the same image, nothing
 * is extracted to TMPDIR, and a corrupt archive fails with one line. Skips, saying so, where
 * skopeo is not installed.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, openSync, writeSync, closeSync, statSync } from "node:fs";
import { boci, have, ok, scratch, type RunResult } from "../helpers/cli";
import { dir, file, hardlink, makeImage, makeTar, symlink } from "../helpers/image";

const HAVE_SKOPEO = have("skopeo");
if (!HAVE_SKOPEO) console.warn("archive-readonly.test.ts: Debian's skopeo is not installed: the archive tests (archives made by skopeo) are skipped");

const s = scratch("boci-archive-ro-");
const tmp = join(s, "tmp");
const L = join(s, "L");
const A = join(s, "image.oci.tar");
const D = join(s, "image.docker.tar");
/** A layout holding exactly the oci-archive's image (skopeo copied it out). */
const LA = join(s, "LA");

/** boci with TMPDIR pointed at a directory that must stay empty. */
function b(args: string[], cwd = s): RunResult {
  return boci(args, { cwd, env: { TMPDIR: tmp } });
}
function okb(args: string[], cwd = s): RunResult {
  const r = b(args, cwd);
  if (r.code !== 0) throw new Error(`boci ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r;
}
function skopeo(...args: string[]): void {
  const p = Bun.spawnSync(["skopeo", ...args], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`skopeo ${args.join(" ")}: ${p.stderr.toString()}`);
}
function oneLine(r: RunResult, code: number, mentions?: string): void {
  expect(r.code).toBe(code);
  expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  if (mentions) expect(r.stderr).toContain(mentions);
}
/** A tree as find lists it: path, type, mode, size, link target (rootless: no owners). */
function tree(root: string): string {
  return Bun.spawnSync(["bash", "-c", "find . -printf '%p %y %m %s %l\\n' | sort"], { cwd: root }).stdout.toString();
}
const tmpEmpty = () => expect(readdirSync(tmp)).toEqual([]);

/**
 * A docker-archive holding the images of several single-image ones (made by `make`), in order,
 * with the RepoTags given: their members side by side and one manifest.json listing them all.
 */
function multiImageArchive(base: string, parts: [string, string[]][], make: () => void): string {
  make();
  const work = join(base, `multi-${parts.length}-${Date.now()}`);
  mkdirSync(work);
  const entries: unknown[] = [];
  for (const [archive, tags] of parts) {
    const x = Bun.spawnSync(["tar", "-xf", archive, "-C", work]);
    if (x.exitCode !== 0) throw new Error(`tar -xf ${archive}: ${x.stderr.toString()}`);
    const m = JSON.parse(readFileSync(join(work, "manifest.json"), "utf8")) as { RepoTags: string[] }[];
    entries.push({ ...m[0], RepoTags: tags });
  }
  writeFileSync(join(work, "manifest.json"), JSON.stringify(entries));
  const out = `${work}.tar`;
  const names = readdirSync(work).filter((n) => n !== "repositories").sort();
  const t = Bun.spawnSync(["tar", "-cf", out, "-C", work, ...names]);
  if (t.exitCode !== 0) throw new Error(`tar -cf ${out}: ${t.stderr.toString()}`);
  return out;
}

describe.skipIf(!HAVE_SKOPEO)("read-only commands from archives made by skopeo", () => {
  beforeAll(() => {
    if (!HAVE_SKOPEO) return;
    mkdirSync(tmp);
    ok(["init", "--layout", L]);
    const l1 = makeTar([
      dir("etc/"), file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"),
      file("etc/group", "root:x:0:\napp:x:1000:\n"), dir("usr/"), dir("usr/bin/"),
      file("usr/bin/tool", "#!/bin/sh\n", { mode: 0o755 }), hardlink("usr/bin/tool2", "usr/bin/tool"), symlink("bin", "usr/bin"),
      dir("var/lib/rpm/", { mode: 0o700 }), file("var/lib/rpm/Packages", Buffer.alloc(70_000, 7)),
    ]);
    const l2 = makeTar([file(".wh.bin"), file("var/lib/rpm/Packages", "replaced\n"), file("etc/motd", "hello\n")]);
    makeImage(L, "t", [l1, l2], {
      compressEach: ["gzip", "none"],
      config: { config: { User: "app", Env: ["PATH=/usr/bin"], Cmd: ["/usr/bin/tool"], WorkingDir: "/var", Labels: { k: "v" } }, history: [{ created_by: "one" }, { created_by: "two" }] },
    });
    skopeo("copy", "-q", `oci:${L}:t`, `oci-archive:${A}:t`);
    skopeo("copy", "-q", `oci:${L}:t`, `docker-archive:${D}:obs/img:7`);
    skopeo("copy", "-q", `oci-archive:${A}:t`, `oci:${LA}:t`);
  });

  test("stat from an oci-archive prints what stat prints from a layout holding that image", () => {
    const want = okb(["stat", "--image", `${LA}:t`]).stdout;
    expect(okb(["stat", "--image", `oci-archive:${A}:t`]).stdout).toBe(want);
    // no TAG: the archive's only image
    expect(okb(["stat", "--image", `oci-archive:${A}`]).stdout).toBe(want);
    expect(okb(["stat", "--json", "--image", `oci-archive:${A}:t`]).stdout).toBe(okb(["stat", "--json", "--image", `${LA}:t`]).stdout);
    tmpEmpty();
  });

  test("stat from a docker-archive: by NAME:TAG, by @0 and alone, the same image", () => {
    const byName = okb(["stat", "--image", `docker-archive:${D}:obs/img:7`]).stdout;
    expect(byName).toContain("== HISTORY ==");
    expect(okb(["stat", "--image", `docker-archive:${D}`]).stdout).toBe(byName);
    expect(okb(["stat", "--image", `docker-archive:${D}:docker.io/obs/img:7`]).stdout).toBe(byName);
    const at0 = okb(["stat", "--image", `docker-archive:${D}:@0`]).stdout;
    // The same manifest whichever way it is named.
    const digest = (t: string) => /Manifest:\n\tMedia Type: \S+\n\tDigest: (\S+)/.exec(t)?.[1] ?? t;
    expect(digest(at0)).toBe(digest(byName));
    oneLine(b(["stat", "--image", `docker-archive:${D}:obs/other:1`]), 3, "obs/other");
    oneLine(b(["stat", "--image", `docker-archive:${D}:@3`]), 3, "@3");
    oneLine(b(["stat", "--image", `oci-archive:${A}:nope`]), 3, "nope");
    tmpEmpty();
  });

  test("unpack and raw unpack from archives give the layout's tree; runtime-config the same config", () => {
    const fromLayout = join(s, "u-layout");
    okb(["unpack", "--rootless", "--image", `${LA}:t`, fromLayout]);
    const want = tree(join(fromLayout, "rootfs"));
    expect(want).toContain("./etc/motd");
    expect(want).not.toContain("./bin ");
    const fromOci = join(s, "u-oci");
    okb(["unpack", "--rootless", "--image", `oci-archive:${A}:t`, fromOci]);
    expect(tree(join(fromOci, "rootfs"))).toBe(want);
    expect(readFileSync(join(fromOci, "config.json"), "utf8")).toBe(readFileSync(join(fromLayout, "config.json"), "utf8"));
    expect(readdirSync(fromOci).sort()).toEqual(readdirSync(fromLayout).sort());
    // umoci.json names the image as the archive's own index does (its tag), as from the layout.
    expect(readFileSync(join(fromOci, "umoci.json"), "utf8")).toBe(readFileSync(join(fromLayout, "umoci.json"), "utf8"));

    const fromDocker = join(s, "u-docker");
    okb(["unpack", "--rootless", "--image", `docker-archive:${D}:obs/img:7`, fromDocker]);
    expect(tree(join(fromDocker, "rootfs"))).toBe(want);
    expect(JSON.parse(readFileSync(join(fromDocker, "config.json"), "utf8"))).toEqual(JSON.parse(readFileSync(join(fromLayout, "config.json"), "utf8")));

    for (const [img, name] of [[`oci-archive:${A}:t`, "r-oci"], [`docker-archive:${D}`, "r-docker"]] as const) {
      okb(["raw", "unpack", "--rootless", "--image", img, join(s, name)]);
      expect(tree(join(s, name))).toBe(want);
      const cfg = join(s, `${name}.json`);
      okb(["raw", "runtime-config", "--rootless", "--rootfs", join(s, name), "--image", img, cfg]);
      okb(["raw", "runtime-config", "--rootless", "--rootfs", join(s, name), "--image", `${LA}:t`, `${cfg}.want`]);
      expect(readFileSync(cfg, "utf8")).toBe(readFileSync(`${cfg}.want`, "utf8"));
      expect(JSON.parse(readFileSync(cfg, "utf8")).process.user.uid).toBe(1000);
    }
    // Nothing was extracted anywhere but the rootfs: TMPDIR is empty, the archives unchanged.
    tmpEmpty();
  }, 60_000);

  test("a multi-image docker-archive (two images, one untagged): @N and NAME:TAG pick, no reference is refused", () => {
    const multi = multiImageArchive(s, [[D, ["docker.io/obs/img:7"]], [join(s, "second.docker.tar"), []]], () => {
      const L2 = join(s, "L2");
      ok(["init", "--layout", L2]);
      makeImage(L2, "two", [makeTar([file("second", "2\n")])], { config: { config: { Labels: { n: "2" } } } });
      skopeo("copy", "-q", `oci:${L2}:two`, `docker-archive:${join(s, "second.docker.tar")}`);
    });
    const first = okb(["stat", "--image", `docker-archive:${D}`]).stdout;
    expect(okb(["stat", "--image", `docker-archive:${multi}:obs/img:7`]).stdout).toBe(first);
    expect(okb(["stat", "--image", `docker-archive:${multi}:@0`]).stdout.split("== HISTORY ==")[1]).toBe(first.split("== HISTORY ==")[1]);
    const r1 = join(s, "multi-r1");
    okb(["raw", "unpack", "--rootless", "--image", `docker-archive:${multi}:@1`, r1]);
    expect(readFileSync(join(r1, "second"), "utf8")).toBe("2\n");
    oneLine(b(["stat", "--image", `docker-archive:${multi}`]), 2, "@N");
    expect(okb(["ls", "--layout", `docker-archive:${multi}`]).stdout).toBe("docker.io/obs/img:7\n");
    tmpEmpty();
  });

  test("ls --layout lists an archive's tags", () => {
    expect(okb(["ls", "--layout", `oci-archive:${A}`]).stdout).toBe("t\n");
    expect(okb(["ls", "--layout", `docker-archive:${D}`]).stdout).toBe("docker.io/obs/img:7\n");
    oneLine(b(["ls", "--layout", `oci-archive:${A}:t`]), 2, "without a tag");
  });

  test("a corrupt archive fails with one line and leaves no bundle", () => {
    // Not a tar at all.
    const junk = join(s, "junk.tar");
    writeFileSync(junk, Buffer.alloc(4096, 0x41));
    for (const img of [`oci-archive:${junk}`, `docker-archive:${junk}`]) oneLine(b(["stat", "--image", img]), 4);
    // A truncated archive.
    const cut = join(s, "cut.tar");
    writeFileSync(cut, readFileSync(A).subarray(0, 3000));
    expect(b(["stat", "--image", `oci-archive:${cut}`]).code).not.toBe(0);
    oneLine(b(["stat", "--image", `oci-archive:${cut}`]), b(["stat", "--image", `oci-archive:${cut}`]).code);
    // A flipped byte in the big layer member: the digest check stops the unpack.
    const bad = join(s, "bad.tar");
    writeFileSync(bad, readFileSync(D));
    const bytes = readFileSync(bad);
    const at = bytes.indexOf(Buffer.alloc(4096, 7));
    expect(at).toBeGreaterThan(0);
    const fd = openSync(bad, "r+");
    writeSync(fd, Buffer.from([8]), 0, 1, at + 100);
    closeSync(fd);
    const bundle = join(s, "bad-bundle");
    oneLine(b(["unpack", "--rootless", "--image", `docker-archive:${bad}`, bundle]), 4, "digest");
    expect(existsSync(bundle)).toBe(false);
    oneLine(b(["stat", "--image", `oci-archive:${join(s, "missing.tar")}`]), 3, "missing.tar");
    tmpEmpty();
  });
});

describe("--image syntax", () => {
  test("a layout directory named oci-archive is reached as ./oci-archive:TAG; write commands refuse archives", () => {
    const cwd = scratch("boci-archive-name-");
    ok(["init", "--layout", "oci-archive"], { cwd });
    makeImage(join(cwd, "oci-archive"), "x", [makeTar([file("a", "1")])]);
    expect(ok(["stat", "--image", "./oci-archive:x"], { cwd }).stdout).toContain("== MANIFEST ==");
    // PATH without a colon stays a layout (tag latest); with one it is the transport.
    expect(boci(["stat", "--image", "oci-archive"], { cwd }).stderr).toContain("latest");
    oneLine(boci(["stat", "--image", "oci-archive:x"], { cwd }), 3);
    oneLine(boci(["config", "--image", "oci-archive:x", "--config.user", "1"], { cwd }), 2, "./oci-archive:x");
    oneLine(boci(["raw", "unpack", "--image", "docker-archive:f.tar", join(cwd, "r")], { cwd }), 3);
    expect(statSync(join(cwd, "oci-archive")).isDirectory()).toBe(true);
  });
});
