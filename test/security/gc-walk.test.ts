/**
 * gc and incomplete walks: gc removes nothing reachable, ever. It marks with the shared
 * descriptor walk (src/cas/walk.ts) and removes nothing unless that walk is complete; deep
 * chains and DAGs of indexes are followed whole, fast, each index read once. validate's
 * `complete` says the same as gc does.
 *
 * Every test keeps a sentinel directory beside the layout and checks it by lstat snapshot.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, ok, scratch, type RunResult } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";
import { makeImage, makeTar, file, writeBlob, setTag, corruptBlob, MT, type Descriptor, type MadeImage } from "../helpers/image";
import { makeSentinel, snapshotTree, snapLayout, expectOneLine, blobPath } from "./lib";

// helpers/cli.ts registers its scratch clean-up in the first test file that loads it; when
// several files run in one process, later files' directories outlive it. Remove ours here.
const made: string[] = [];
afterAll(() => { for (const d of made) rmSync(d, { recursive: true, force: true }); });

// Commands run under their own timeout (killed with SIGKILL); a slow machine needs more than 5 s a test.
setDefaultTimeout(60_000);

function run(args: string[]): RunResult {
  const p = Bun.spawnSync([BIN, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore", timeout: 60_000, killSignal: "SIGKILL" });
  if (p.signalCode) throw new Error(`boci ${args.join(" ")} hung: killed by ${p.signalCode}`);
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

interface Env { s: string; L: string; a: MadeImage; b: MadeImage; junk: string; same: () => void }

/** A layout with images `a` and `b` (a layer each, one shared), an unreachable junk blob, a sentinel. */
function env(): Env {
  const s = scratch("boci-gcw-");
  made.push(s);
  const outside = makeSentinel(s);
  const L = join(s, "layout");
  ok(["init", "--layout", L]);
  const shared = makeTar([file("shared", "shared\n")]);
  const a = makeImage(L, "a", [shared, makeTar([file("a", "a\n")])]);
  const b = makeImage(L, "b", [shared, makeTar([file("b", "b\n")])]);
  const junk = writeBlob(L, Buffer.from("unreachable junk\n"), "application/octet-stream").digest;
  const before = snapshotTree(outside);
  return { s, L, a, b, junk, same: () => expect(snapshotTree(outside)).toEqual(before) };
}

function validateJson(L: string): { code: number; report: { valid: boolean; complete: boolean; problems: Array<{ path: string; message: string }> } } {
  const r = run(["validate", "--json", "--layout", L]);
  return { code: r.code, report: JSON.parse(r.stdout) };
}

/** gc must refuse with one line and exit `code`, and the layout must be exactly as it was. */
function expectRefusal(e: Env, code: number, re: RegExp): void {
  const before = snapLayout(e.L);
  expectOneLine(run(["gc", "--layout", e.L]), code, re);
  expect(snapLayout(e.L)).toEqual(before);
  const dry = run(["gc", "--dry-run", "--json", "--layout", e.L]);
  expect(dry.code).toBe(code);
  expect(dry.stdout).toBe("");
  const v = validateJson(e.L);
  expect(v.code).toBe(4);
  expect(v.report.complete).toBe(false);
  e.same();
}

/** `n` nested indexes over `bottom`, each listing the level below `fanout` times; returns the top. */
function nest(L: string, bottom: Descriptor, n: number, fanout = 1): Descriptor {
  let d = bottom;
  for (let i = 0; i < n; i++) {
    const ix = { schemaVersion: 2, mediaType: MT.index, manifests: Array.from({ length: fanout }, () => d), annotations: { level: String(n - i) } };
    d = writeBlob(L, Buffer.from(JSON.stringify(ix)), MT.index);
  }
  return d;
}

describe("gc removes nothing unless the walk is complete", () => {
  test("a missing manifest: exit 3 naming it, and the blobs only it named are kept", () => {
    const e = env();
    unlinkSync(blobPath(e.L, e.b.manifest.digest));
    expectRefusal(e, 3, new RegExp(`gc: nothing removed: ${e.b.manifest.digest} \\(index.json manifests\\[1\\] "b"\\): blob missing`));
  });

  test("a missing config or layer (a leaf): exit 3", () => {
    const e = env();
    unlinkSync(blobPath(e.L, e.b.config.digest));
    expectRefusal(e, 3, new RegExp(`${e.b.config.digest} \\(config of manifest ${e.b.manifest.digest}\\): blob missing`));
    const f = env();
    unlinkSync(blobPath(f.L, f.a.layers[1]!.digest));
    expectRefusal(f, 3, new RegExp(`${f.a.layers[1]!.digest} \\(layer 2 of manifest ${f.a.manifest.digest}\\): blob missing`));
  });

  test("a corrupt manifest, a directory or a FIFO in a manifest's place: exit 4, nothing removed", () => {
    const e = env();
    const bad = readFileSync(blobPath(e.L, e.b.manifest.digest));
    bad[bad.length - 2] ^= 1; // same size, other bytes
    corruptBlob(e.L, e.b.manifest, bad);
    expectRefusal(e, 4, new RegExp(`gc: nothing removed: ${e.b.manifest.digest} \\(index.json manifests\\[1\\] "b"\\): .*digest mismatch`));
    const f = env();
    unlinkSync(blobPath(f.L, f.b.manifest.digest));
    mkdirSync(blobPath(f.L, f.b.manifest.digest));
    expectRefusal(f, 4, /is not a regular file \(it is a directory\)/);
    const g = env();
    unlinkSync(blobPath(g.L, g.b.manifest.digest));
    expect(Bun.spawnSync(["mkfifo", blobPath(g.L, g.b.manifest.digest)]).exitCode).toBe(0);
    expectRefusal(g, 4, /is not a regular file \(it is a fifo\)/);
  });

  test("a missing index deep in a chain: exit 3, nothing removed", () => {
    const e = env();
    const mid = nest(e.L, e.b.manifest, 10);
    const top = nest(e.L, mid, 10);
    setTag(e.L, "b", top);
    unlinkSync(blobPath(e.L, mid.digest));
    expectRefusal(e, 3, new RegExp(`${mid.digest} \\(manifests\\[0\\] of index sha256:[0-9a-f]{64}\\): blob missing`));
  });

  test("a complete walk: only the unreachable blob goes; --dry-run and --json say so first", () => {
    const e = env();
    const before = snapLayout(e.L);
    const dry = run(["gc", "--dry-run", "--layout", e.L]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toBe(`would remove blob ${e.junk}\n`);
    const junkSize = statSync(blobPath(e.L, e.junk)).size;
    const dj = run(["gc", "--dry-run", "--json", "--layout", e.L]);
    expect(JSON.parse(dj.stdout)).toEqual({ dryRun: true, removedBlobs: [e.junk], removedTemp: [], bytesFreed: junkSize, kept: before.blobs.length - 1, skipped: [] });
    expect(snapLayout(e.L)).toEqual(before);
    const r = run(["gc", "--json", "--layout", e.L]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ dryRun: false, removedBlobs: [e.junk], removedTemp: [], bytesFreed: junkSize, kept: before.blobs.length - 1, skipped: [] });
    expect(snapLayout(e.L).blobs).toEqual(before.blobs.filter((b) => b !== e.junk.replace(":", "/")));
    expect(validateJson(e.L).report).toMatchObject({ valid: true, complete: true });
    e.same();
  });

  test("names under blobs/ that are not digests (or are symlinks) are left alone", () => {
    const e = env();
    const sha = join(e.L, "blobs", "sha256");
    writeFileSync(join(sha, "not-a-digest"), "x");
    writeFileSync(join(sha, "c".repeat(63)), "short");
    mkdirSync(join(e.L, "blobs", "weird"));
    writeFileSync(join(e.L, "blobs", "weird", "d".repeat(64)), "unknown algorithm");
    renameSync(blobPath(e.L, e.junk), join(e.s, "junk"));
    Bun.spawnSync(["ln", "-s", join(e.s, "junk"), blobPath(e.L, e.junk)]);
    const r = run(["gc", "--json", "--layout", e.L]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.removedBlobs).toEqual([]);
    expect(j.skipped).toEqual([`blobs/${e.junk.replace(":", "/")}`]);
    expect(readdirSync(sha)).toContain("not-a-digest");
    expect(readdirSync(sha)).toContain("c".repeat(63));
    expect(readdirSync(join(e.L, "blobs", "weird"))).toEqual(["d".repeat(64)]);
    expect(readdirSync(e.s)).toContain("junk");
    e.same();
  });
});

describe("deep chains and DAGs of indexes are walked whole, once per index", () => {
  for (const depth of [20, 1000]) {
    test(`a chain of ${depth} nested indexes: gc keeps every reachable blob; validate, ls, stat and unpack agree`, () => {
      const e = env();
      setTag(e.L, "b", nest(e.L, e.b.manifest, depth));
      const before = snapLayout(e.L);
      const t0 = Date.now();
      const r = run(["gc", "--json", "--layout", e.L]);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout).removedBlobs).toEqual([e.junk]);
      expect(snapLayout(e.L).blobs).toEqual(before.blobs.filter((b) => b !== e.junk.replace(":", "/")));
      expect(Date.now() - t0).toBeLessThan(30_000);
      const v = validateJson(e.L);
      expect(v.report.problems).toEqual([]);
      expect(v.report).toMatchObject({ valid: true, complete: true });
      expect(ok(["ls", "--layout", e.L]).stdout).toBe("a\nb\n");
      const st = run(["stat", "--json", "--image", `${e.L}:b`]);
      expect(st.stderr).toBe("");
      expect(st.code).toBe(0);
      const u = run(["unpack", "--no-progress", "--image", `${e.L}:b`, join(e.s, "bundle")]);
      expect(u.stderr).toBe("");
      expect(u.code).toBe(0);
      expect(readdirSync(join(e.s, "bundle", "rootfs")).sort()).toEqual(["b", "shared"]);
      if (depth === 20) {
        // A mutation through the chain rewrites every index on the way back up.
        ok(["config", "--image", `${e.L}:b`, "--config.env", "A=1"]);
        expect(checkLayout(e.L)).toEqual([]);
        expect(validateJson(e.L).report).toMatchObject({ valid: true, complete: true });
      }
      e.same();
    }, 120_000);
  }

  test("a 40-level DAG whose indexes each list the next level twice (2^40 routes) is walked in one visit per index", () => {
    const e = env();
    setTag(e.L, "b", nest(e.L, e.b.manifest, 40, 2));
    const t0 = Date.now();
    const r = run(["gc", "--json", "--layout", e.L]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).removedBlobs).toEqual([e.junk]);
    const v = validateJson(e.L);
    expect(v.report).toMatchObject({ valid: true, complete: true });
    expect(run(["stat", "--image", `${e.L}:b`]).code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(20_000);
    // Breaking the bottom of the DAG is still found (and gc then removes nothing).
    unlinkSync(blobPath(e.L, e.b.config.digest));
    expectRefusal(e, 3, new RegExp(`${e.b.config.digest} \\(config of manifest ${e.b.manifest.digest}\\): blob missing`));
  }, 60_000);
});
