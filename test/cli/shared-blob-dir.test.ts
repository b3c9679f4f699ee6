/**
 * `--dest-shared-blob-dir DIR` through the real binary, as `skopeo copy` (a `skopeo` symlink to
 * the binary) and as `boci copy`: every blob of an `oci:` destination goes to `DIR/<alg>/…`, the
 * layout keeps only `oci-layout`, `index.json` and an empty `blobs/`; a second image skips what
 * the directory has; the directory holds what Debian's skopeo writes for the same copies, byte
 * for byte (and skopeo reads the result back with `--src-shared-blob-dir`). Refusals: a symlink
 * at `DIR/sha256` (nothing written through it), a directory on another filesystem, the flag
 * with a destination that is not `oci:`; a failed copy leaves no tag and no temporary file.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, symlinkSync,
} from "node:fs";
import { join } from "node:path";
import { BIN, type RunResult, boci, have, ok, scratch } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";
import { removeTreeForce } from "../../src/util/cleanup";
import { corruptBlob, dir, file, makeImage, makeTar, sha256hex, type Descriptor, type MadeImage } from "../helpers/image";

const HAVE_SKOPEO = have("skopeo");
if (!HAVE_SKOPEO) console.warn("shared-blob-dir.test.ts: Debian's skopeo is not installed: the comparison with what skopeo writes is skipped");
const SKOPEO = HAVE_SKOPEO ? Bun.which("skopeo")! : "";
const REF = "org.opencontainers.image.ref.name";

const s = scratch("boci-shared-");
const link = join(s, "bin", "skopeo");
const L = join(s, "src");
let one: MadeImage;
let two: MadeImage;

function run(cmd: string[]): RunResult {
  const p = Bun.spawnSync(cmd, { cwd: s, stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env } });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}
/** boci through the symlink. */
const sk = (...args: string[]) => run([link, ...args]);
/** Debian's skopeo. */
const real = (...args: string[]) => run([SKOPEO, "--insecure-policy", ...args]);
function must(r: RunResult, what: string): RunResult {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr}`);
  return r;
}
/** A failure as one line on stderr, with that exit code. */
function refused(r: RunResult, code: number, mentions: string): void {
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code, stderr: expect.stringContaining(mentions) });
  expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
}

/** Every file under `d`, relative, sorted ("" when `d` is missing). */
function files(d: string): string[] {
  if (!existsSync(d)) return [];
  return (readdirSync(d, { recursive: true }) as string[]).filter((n) => statSync(join(d, n)).isFile()).sort();
}
const tags = (l: string): string[] => (JSON.parse(readFileSync(join(l, "index.json"), "utf8")).manifests ?? []).map((m: Descriptor) => m.annotations?.[REF]);
const digestsOf = (img: MadeImage) => [img.manifest, img.config, ...img.layers].map((d) => d.digest.replace(":", "/"));

/** Every file in a blob directory is named by the sha256 of its bytes. */
function allVerified(shared: string): void {
  for (const f of files(shared)) expect({ f, hex: sha256hex(readFileSync(join(shared, f))) }).toEqual({ f, hex: f.split("/")[1]! });
}

/** The layout as if its blobs were its own (a copy with DIR as blobs/), checked as every layout is. */
function checkWithShared(layout: string, shared: string): string[] {
  const merged = mkdtempSync(join(s, "merged-"));
  try {
    for (const n of ["oci-layout", "index.json"]) cpSync(join(layout, n), join(merged, n));
    cpSync(shared, join(merged, "blobs"), { recursive: true });
    return checkLayout(merged);
  } finally {
    removeTreeForce(merged);
  }
}

beforeAll(() => {
  mkdirSync(join(s, "bin"));
  symlinkSync(BIN, link);
  ok(["init", "--layout", L]);
  const base = makeTar([dir("etc/"), file("etc/os-release", "NAME=shared-test\n"), dir("usr/"), file("usr/app", "#!/bin/sh\n", { mode: 0o755 })]);
  const a = makeTar([file("etc/one", "image one\n")]);
  const b = makeTar([file("etc/two", "x".repeat(3000))]);
  one = makeImage(L, "one", [base, a], { config: { config: { Cmd: ["/usr/app", "1"] } } });
  two = makeImage(L, "two", [base, b], { config: { config: { Cmd: ["/usr/app", "2"] } } });
});

describe("skopeo copy --dest-shared-blob-dir", () => {
  test("two images into two layouts share one directory: the second skips the shared layer, the layouts hold no blob, the directory is what skopeo writes", () => {
    const S = join(s, "shared-boci");
    const A1 = join(s, "a1");
    const A2 = join(s, "a2");
    const r1 = must(sk("copy", "--dest-shared-blob-dir", S, `oci:${L}:one`, `oci:${A1}:one`), "first copy");
    expect(r1.stdout).not.toContain("skipped");
    const r2 = must(sk("copy", "--dest-shared-blob-dir", S, `oci:${L}:two`, `oci:${A2}:two`), "second copy");
    expect(r2.stdout).toContain(`Copying blob ${one.layers[0]!.digest} skipped: already exists\n`);
    expect(r2.stdout).toContain(`Copying blob ${two.layers[1]!.digest}\n`);
    expect(r2.stdout).not.toContain(`Copying blob ${two.layers[1]!.digest} skipped`);

    for (const [l, tag, img] of [[A1, "one", one], [A2, "two", two]] as const) {
      expect(tags(l)).toEqual([tag]);
      expect(JSON.parse(readFileSync(join(l, "index.json"), "utf8")).manifests[0].digest).toBe(img.manifest.digest);
      expect(readFileSync(join(l, "oci-layout"), "utf8")).toContain('"imageLayoutVersion":"1.0.0"');
      // blobs/ is there (an OCI layout needs it) and empty, as skopeo leaves it.
      expect(readdirSync(join(l, "blobs"))).toEqual([]);
      expect(readdirSync(join(l, ".boci-tmp"))).toEqual([]);
      expect(checkWithShared(l, S)).toEqual([]);
    }
    const want = [...new Set([...digestsOf(one), ...digestsOf(two)])].sort();
    expect(files(S)).toEqual(want);
    for (const f of want) expect(readFileSync(join(S, f)).equals(readFileSync(join(L, "blobs", f)))).toBe(true);
    allVerified(S);

    if (!HAVE_SKOPEO) return;
    // Debian's skopeo, the same two copies with the same flag: the same files with the same bytes.
    const SR = join(s, "shared-skopeo");
    must(real("copy", "-q", "--dest-shared-blob-dir", SR, `oci:${L}:one`, `oci:${join(s, "r1")}:one`), "skopeo first copy");
    must(real("copy", "-q", "--dest-shared-blob-dir", SR, `oci:${L}:two`, `oci:${join(s, "r2")}:two`), "skopeo second copy");
    expect(files(S)).toEqual(files(SR));
    for (const f of files(SR)) expect({ f, same: readFileSync(join(S, f)).equals(readFileSync(join(SR, f))) }).toEqual({ f, same: true });
    for (const [mine, theirs] of [[A1, "r1"], [A2, "r2"]] as const) {
      expect(readdirSync(join(s, theirs, "blobs"))).toEqual([]);
      const m = JSON.parse(readFileSync(join(mine, "index.json"), "utf8")).manifests;
      const t = JSON.parse(readFileSync(join(s, theirs, "index.json"), "utf8")).manifests;
      expect(m).toEqual(t);
    }
    // And skopeo reads boci's layout back through the shared directory.
    const back = join(s, "back");
    must(real("copy", "-q", "--src-shared-blob-dir", S, `oci:${A2}:two`, `oci:${back}:two`), "skopeo reads boci's layout");
    expect(checkLayout(back)).toEqual([]);
    expect(files(join(back, "blobs")).sort()).toEqual(digestsOf(two).sort());
  }, 30_000);

  test("a missing directory is made with its parents; the flag with another destination is refused before anything is written", () => {
    const S = join(s, "deep", "er", "shared");
    const A = join(s, "deep-layout");
    must(sk("copy", "-q", "--dest-shared-blob-dir", S, `oci:${L}:one`, `oci:${A}:x`), "copy");
    expect(files(S)).toEqual(digestsOf(one).sort());
    expect(files(join(A, "blobs"))).toEqual([]);

    const none = join(s, "not-made");
    refused(sk("copy", "--dest-shared-blob-dir", none, `oci:${L}:one`, `docker-archive:${s}/x.tar:a:b`), 2, "--dest-shared-blob-dir");
    refused(sk("copy", "--dest-shared-blob-dir", none, `oci:${L}:one`, `oci-archive:${s}/x.tar:t`), 2, "--dest-shared-blob-dir");
    refused(boci(["copy", "--dest-shared-blob-dir", none, `oci:${L}:one`, `docker-archive:${s}/x.tar`]), 2, "--dest-shared-blob-dir");
    refused(boci(["copy", "--dest-shared-blob-dir", none, `oci:${L}:one`, `oci-archive:${s}/x.tar:t`]), 2, "--dest-shared-blob-dir");
    refused(boci(["copy", "--dest-shared-blob-dir", "", `oci:${L}:one`, `oci:${s}/empty-flag:t`]), 2, "--dest-shared-blob-dir");
    expect(existsSync(none)).toBe(false);
    expect(existsSync(join(s, "x.tar"))).toBe(false);
    expect(existsSync(join(s, "empty-flag"))).toBe(false);
  });
});

describe("boci copy --dest-shared-blob-dir", () => {
  test("the same store: every blob in DIR, the second image's shared layer skipped, a third copy skips everything", () => {
    const S = join(s, "shared-copy");
    const r1 = JSON.parse(ok(["copy", "--json", "--dest-shared-blob-dir", S, `oci:${L}:one`, `oci:${s}/c1:one`]).stdout);
    expect({ copied: r1.blobsCopied, skipped: r1.blobsSkipped }).toEqual({ copied: 4, skipped: 0 });
    const r2 = JSON.parse(ok(["copy", "--json", "--dest-shared-blob-dir", S, `oci:${L}:two`, `oci:${s}/c2:two`]).stdout);
    expect({ copied: r2.blobsCopied, skipped: r2.blobsSkipped }).toEqual({ copied: 3, skipped: 1 });
    expect(files(S)).toEqual([...new Set([...digestsOf(one), ...digestsOf(two)])].sort());
    expect(files(join(s, "c1", "blobs"))).toEqual([]);
    expect(files(join(s, "c2", "blobs"))).toEqual([]);
    // Copying again is a no-op: everything skipped, the tag unchanged.
    const r3 = JSON.parse(ok(["copy", "--json", "--dest-shared-blob-dir", S, `oci:${L}:two`, `oci:${s}/c2:two`]).stdout);
    expect({ copied: r3.blobsCopied, skipped: r3.blobsSkipped }).toEqual({ copied: 0, skipped: 4 });
    expect(tags(join(s, "c2"))).toEqual(["two"]);
    allVerified(S);
    expect(checkWithShared(join(s, "c2"), S)).toEqual([]);
  });
});

describe("refusals and failures", () => {
  test("a symlink at DIR/sha256 is refused (exit 4) and nothing is written through it", () => {
    for (const form of ["skopeo", "boci"] as const) {
      const S = join(s, `hostile-${form}`);
      const victim = join(s, `victim-${form}`);
      mkdirSync(S);
      mkdirSync(victim);
      symlinkSync(victim, join(S, "sha256"));
      const existing = join(s, `existing-${form}`);
      ok(["init", "--layout", existing]);
      for (const dst of [join(s, `new-${form}`), existing]) {
        const args = ["--dest-shared-blob-dir", S, `oci:${L}:one`, `oci:${dst}:t`];
        const r = form === "skopeo" ? sk("copy", ...args) : boci(["copy", ...args]);
        refused(r, 4, "sha256 is a symlink");
        expect(r.stderr).toContain(S);
        expect(readdirSync(victim)).toEqual([]);
      }
      expect(existsSync(join(s, `new-${form}`))).toBe(false);
      expect(tags(existing)).toEqual([]);
      expect(files(existing).filter((f) => f !== ".boci-gc.lock" && f !== ".boci-index.lock").sort()).toEqual(["index.json", "oci-layout"]);
    }
  });

  test("a failed copy (a corrupt source layer) leaves no tag and no temporary file; what the directory got is whole", () => {
    const bad = join(s, "bad-src");
    ok(["init", "--layout", bad]);
    const img = makeImage(bad, "t", [makeTar([file("a", "first\n")]), makeTar([file("b", "second\n")])]);
    corruptBlob(bad, img.layers[1]!, Buffer.from("junk"));
    const S = join(s, "shared-failed");
    const existing = join(s, "failed-existing");
    ok(["init", "--layout", existing]);
    for (const dst of [join(s, "failed-new"), existing]) {
      const r = boci(["copy", "--dest-shared-blob-dir", S, `oci:${bad}:t`, `oci:${dst}:t`]);
      refused(r, 4, img.layers[1]!.digest);
    }
    refused(sk("copy", "--dest-shared-blob-dir", S, `oci:${bad}:t`, `oci:${existing}:t`), 4, img.layers[1]!.digest);
    expect(existsSync(join(s, "failed-new"))).toBe(false);
    expect(tags(existing)).toEqual([]);
    expect(readdirSync(join(existing, ".boci-tmp"))).toEqual([]);
    expect(files(join(existing, "blobs"))).toEqual([]);
    // The first layer was stored whole before the second failed; nothing else, nothing partial.
    expect(files(S)).toEqual([img.layers[0]!.digest.replace(":", "/")]);
    allVerified(S);
  });

  // /dev/shm is a tmpfs where there is one: another filesystem than the scratch directory's.
  const shm = existsSync("/dev/shm") && statSync("/dev/shm").dev !== statSync(s).dev ? "/dev/shm" : undefined;
  let shmDir: string | undefined;
  afterAll(() => { if (shmDir) removeTreeForce(shmDir); });
  test.skipIf(!shm)("a directory on another filesystem is refused with one line naming both paths; no layout, no blob, no temporary file", () => {
    shmDir = mkdtempSync(join(shm!, "boci-shared-"));
    const S = join(shmDir, "blobs");
    const dst = join(s, "xdev-new");
    const r = boci(["copy", "--dest-shared-blob-dir", S, `oci:${L}:one`, `oci:${dst}:t`]);
    refused(r, 1, "not on the same filesystem");
    expect(r.stderr).toContain(join(S, "sha256"));
    expect(r.stderr).toContain(join(dst, ".boci-tmp"));
    expect(existsSync(dst)).toBe(false);
    expect(files(S)).toEqual([]);
  });
});
