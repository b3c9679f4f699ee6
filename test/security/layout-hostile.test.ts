/**
 * A hostile layout changes nothing outside it, and every command fails closed.
 *
 * The layout is input: any name in it may be a symlink (to outside, or dangling), a FIFO, a
 * directory where a file belongs. Each test plants such names, runs the real binary, and checks
 * a sentinel directory beside the layout by lstat snapshot (mode, mtime, inode, content): it must
 * be unchanged. Commands run under a timeout, so a FIFO that blocks a read fails the test
 * instead of hanging it.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync, copyFileSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { BIN, ok, scratch, type RunResult } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";
import { makeImage, makeTar, file, sha256hex } from "../helpers/image";
import { makeSentinel, snapshotTree, expectOneLine, readJson, blobPath } from "./lib";

// helpers/cli.ts registers its scratch clean-up in the first test file that loads it; when
// several files run in one process, later files' directories outlive it. Remove ours here.
const made: string[] = [];
afterAll(() => { for (const d of made) rmSync(d, { recursive: true, force: true }); });

// Commands run under their own timeout (killed with SIGKILL); a slow machine needs more than 5 s a test.
setDefaultTimeout(60_000);

/** Run the binary; a command still running after 10 s is killed and fails the test (a hang). */
function run(args: string[], env: Record<string, string> = {}): RunResult {
  const p = Bun.spawnSync([BIN, ...args], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe", stdin: "ignore", timeout: 10_000, killSignal: "SIGKILL" });
  if (p.signalCode) throw new Error(`boci ${args.join(" ")} hung: killed by ${p.signalCode} after 10 s`);
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

function mkfifo(p: string): void {
  const r = Bun.spawnSync(["mkfifo", p]);
  if (r.exitCode !== 0) throw new Error(`mkfifo ${p} failed`);
}

interface Env { s: string; L: string; outside: string; snap: () => void; same: () => void }

/**
 * A scratch dir with a sentinel tree (plus `outside/blobs/` holding a file named like a digest
 * and one that is not, and `outside/tmp/` holding a file named like a temporary blob) and a
 * layout with image `t` (one real layer). `snap()` records the sentinel after planting; `same()`
 * checks it.
 */
function env(): Env {
  const s = scratch("boci-lh-");
  made.push(s);
  const outside = makeSentinel(s);
  mkdirSync(join(outside, "blobs"));
  writeFileSync(join(outside, "blobs", "a".repeat(64)), "named like a blob\n");
  writeFileSync(join(outside, "blobs", "notablob"), "not a blob\n");
  mkdirSync(join(outside, "tmp"));
  writeFileSync(join(outside, "tmp", "blob-1-0000"), "named like a temporary blob\n");
  const L = join(s, "layout");
  ok(["init", "--layout", L]);
  makeImage(L, "t", [makeTar([file("a", "hello\n")])]);
  let before: Record<string, string> = {};
  const snap = () => { before = snapshotTree(outside); };
  snap();
  return { s, L, outside, snap, same: () => expect(snapshotTree(outside)).toEqual(before) };
}

describe("symlinked directories in the layout are refused, never followed", () => {
  test("blobs/sha256 a symlink to outside: gc, new, stat, unpack and validate refuse; nothing outside changes", () => {
    const e = env();
    renameSync(join(e.L, "blobs", "sha256"), join(e.s, "real-sha256"));
    symlinkSync(join(e.outside, "blobs"), join(e.L, "blobs", "sha256"));
    e.snap();
    expectOneLine(run(["gc", "--layout", e.L]), 4, /gc: nothing removed: layout is invalid: blobs\/sha256 is a symlink/);
    e.same();
    expectOneLine(run(["new", "--image", `${e.L}:u`]), 4, /blobs\/sha256 is a symlink/);
    expectOneLine(run(["stat", "--image", `${e.L}:t`]), 4, /blobs\/sha256 is a symlink/);
    expectOneLine(run(["unpack", "--no-progress", "--image", `${e.L}:t`, join(e.s, "bundle")]), 4, /blobs\/sha256 is a symlink/);
    const v = run(["validate", "--layout", e.L]);
    expect(v.code).toBe(4);
    expect(v.stdout).toContain("blobs/sha256: layout is invalid: blobs/sha256 is a symlink");
    e.same();
    expect(existsSync(join(e.s, "bundle"))).toBe(false);
  });

  test("blobs/<other algorithm> a symlink: gc refuses before removing anything", () => {
    const e = env();
    writeFileSync(join(e.L, "blobs", "sha256", "b".repeat(64)), "unreachable junk");
    symlinkSync(join(e.outside, "blobs"), join(e.L, "blobs", "sha512"));
    e.snap();
    expectOneLine(run(["gc", "--layout", e.L]), 4, /blobs\/sha512 is a symlink/);
    e.same();
    expect(existsSync(join(e.L, "blobs", "sha256", "b".repeat(64)))).toBe(true);
  });

  test("blobs itself a symlink: every command refuses with one line", () => {
    const e = env();
    renameSync(join(e.L, "blobs"), join(e.s, "real-blobs"));
    symlinkSync(join(e.outside), join(e.L, "blobs"));
    e.snap();
    for (const args of [["gc", "--layout", e.L], ["ls", "--layout", e.L], ["new", "--image", `${e.L}:u`], ["stat", "--image", `${e.L}:t`], ["tag", "--image", `${e.L}:t`, "u"]])
      expectOneLine(run(args), 4, /blobs is a symlink/);
    expect(run(["validate", "--layout", e.L]).code).toBe(4);
    e.same();
  });

  test(".boci-tmp a symlink (to a directory, or dangling): gc, config, new, tag and rm refuse; nothing is written or removed outside", () => {
    for (const target of ["tmp", "not-yet"]) {
      const e = env();
      symlinkSync(join(e.outside, target), join(e.L, ".boci-tmp"));
      e.snap();
      expectOneLine(run(["gc", "--layout", e.L]), 4, /\.boci-tmp is a symlink/);
      expectOneLine(run(["config", "--image", `${e.L}:t`, "--config.env", "A=1"]), 4, /\.boci-tmp is a symlink/);
      expectOneLine(run(["new", "--image", `${e.L}:u`]), 4, /\.boci-tmp is a symlink/);
      expectOneLine(run(["tag", "--image", `${e.L}:t`, "u"]), 4, /\.boci-tmp is a symlink/);
      expectOneLine(run(["rm", "--image", `${e.L}:t`]), 4, /\.boci-tmp is a symlink/);
      const v = run(["validate", "--layout", e.L]);
      expect(v.code).toBe(4);
      expect(v.stdout).toContain(".boci-tmp: layout is invalid: .boci-tmp is a symlink");
      e.same();
      expect(existsSync(join(e.outside, "not-yet"))).toBe(false);
      expect(readJson(join(e.L, "index.json")).manifests).toHaveLength(1);
    }
  });
});

describe("lock files are opened O_NOFOLLOW and must be regular files", () => {
  for (const lock of [".boci-index.lock", ".boci-gc.lock"]) {
    test(`${lock} as a symlink (dangling, or to a file outside), a FIFO or a directory: tag refuses, nothing is created outside`, () => {
      const e = env();
      const p = join(e.L, lock);
      const cases: Array<[string, () => void, RegExp]> = [
        ["dangling symlink", () => symlinkSync(join(e.outside, "created-by-lock"), p), /is a symlink/],
        ["symlink to a file", () => symlinkSync(join(e.outside, "secret"), p), /is a symlink/],
        ["fifo", () => mkfifo(p), /is not a regular file \(it is a fifo\)/],
        ["directory", () => mkdirSync(p), /is not a regular file \(it is a directory\)/],
      ];
      for (const [what, plant, re] of cases) {
        rmSync(p, { recursive: true, force: true });
        plant();
        e.snap();
        const r = run(["tag", "--image", `${e.L}:t`, "u"]);
        try {
          expectOneLine(r, 4, re);
          expect(r.stderr).toContain(lock);
        } catch (err) { throw new Error(`${lock} as a ${what}: ${(err as Error).message}`); }
        e.same();
        expect(existsSync(join(e.outside, "created-by-lock"))).toBe(false);
      }
      expect(readJson(join(e.L, "index.json")).manifests).toHaveLength(1);
    });
  }

  test("a symlinked gc lock makes readers (unpack, validate) fail closed too", () => {
    const e = env();
    symlinkSync(join(e.outside, "created-by-lock"), join(e.L, ".boci-gc.lock"));
    e.snap();
    expectOneLine(run(["unpack", "--no-progress", "--image", `${e.L}:t`, join(e.s, "bundle")]), 4, /\.boci-gc\.lock is a symlink/);
    const v = run(["validate", "--layout", e.L]);
    expect(v.code).toBe(4);
    expect(v.stdout).toContain(".boci-gc.lock: layout is invalid: .boci-gc.lock is a symlink");
    e.same();
    expect(existsSync(join(e.outside, "created-by-lock"))).toBe(false);
  });
});

describe("an existing blob name is trusted only after a look", () => {
  /** The blobs `new` writes with SOURCE_DATE_EPOCH=1, learnt from a throwaway layout. */
  function newDigests(s: string): { manifest: string; config: string } {
    const L0 = join(s, "probe");
    ok(["init", "--layout", L0]);
    ok(["new", "--image", `${L0}:p`], { env: { SOURCE_DATE_EPOCH: "1" } });
    const m = readJson(join(L0, "index.json")).manifests[0];
    const config = readJson(blobPath(L0, m.digest)).config.digest;
    rmSync(L0, { recursive: true, force: true });
    return { manifest: m.digest, config };
  }

  test("a blob name planted as a symlink to outside, a wrong file or a FIFO is replaced by the real blob, never written through", () => {
    const e = env();
    const d = newDigests(e.s);
    symlinkSync(join(e.outside, "secret"), blobPath(e.L, d.config));
    writeFileSync(blobPath(e.L, d.manifest), "not the manifest");
    e.snap();
    const r = run(["new", "--image", `${e.L}:u`], { SOURCE_DATE_EPOCH: "1" });
    expect(r.code).toBe(0);
    e.same();
    for (const dg of [d.config, d.manifest]) {
      const p = blobPath(e.L, dg);
      expect(lstatSync(p).isFile()).toBe(true);
      expect(`sha256:${sha256hex(readFileSync(p))}`).toBe(dg);
    }
    expect(checkLayout(e.L)).toEqual([]);
    expect(run(["validate", "--layout", e.L]).code).toBe(0);

    // A FIFO at the name: replaced without ever being opened for reading (no hang).
    unlinkSync(blobPath(e.L, d.config));
    mkfifo(blobPath(e.L, d.config));
    ok(["rm", "--image", `${e.L}:u`]);
    expect(run(["new", "--image", `${e.L}:u`], { SOURCE_DATE_EPOCH: "1" }).code).toBe(0);
    expect(lstatSync(blobPath(e.L, d.config)).isFile()).toBe(true);
    expect(run(["validate", "--layout", e.L]).code).toBe(0);
    e.same();
  });

  test("a directory at a blob name is refused with one line", () => {
    const e = env();
    const d = newDigests(e.s);
    mkdirSync(blobPath(e.L, d.config));
    expectOneLine(run(["new", "--image", `${e.L}:u`], { SOURCE_DATE_EPOCH: "1" }), 4, /is not a regular file \(it is a directory\)/);
    expect(readJson(join(e.L, "index.json")).manifests).toHaveLength(1);
    expect(readdirSync(join(e.L, ".boci-tmp"))).toEqual([]);
    e.same();
  });
});

describe("non-regular files where a layout file belongs fail closed, without blocking", () => {
  test("index.json as a FIFO: ls, stat, unpack, tag, gc fail with one line naming it; validate reports it", () => {
    const e = env();
    renameSync(join(e.L, "index.json"), join(e.s, "index.json.real"));
    mkfifo(join(e.L, "index.json"));
    e.snap();
    for (const args of [["ls", "--layout", e.L], ["stat", "--image", `${e.L}:t`], ["unpack", "--no-progress", "--image", `${e.L}:t`, join(e.s, "bundle")], ["tag", "--image", `${e.L}:t`, "u"], ["gc", "--layout", e.L]])
      expectOneLine(run(args), 4, /index\.json is not a regular file \(it is a fifo\)/);
    const v = run(["validate", "--layout", e.L]);
    expect(v.code).toBe(4);
    expect(v.stdout).toContain("index.json: layout is invalid: index.json is not a regular file (it is a fifo)");
    e.same();
  });

  test("index.json as a symlink to a valid copy outside: refused, not followed", () => {
    const e = env();
    copyFileSync(join(e.L, "index.json"), join(e.outside, "index.json"));
    unlinkSync(join(e.L, "index.json"));
    symlinkSync(join(e.outside, "index.json"), join(e.L, "index.json"));
    e.snap();
    expectOneLine(run(["ls", "--layout", e.L]), 4, /index\.json is a symlink/);
    expectOneLine(run(["tag", "--image", `${e.L}:t`, "u"]), 4, /index\.json is a symlink/);
    expect(run(["validate", "--layout", e.L]).code).toBe(4);
    e.same();
  });

  test("oci-layout as a FIFO: every command fails with one line naming it", () => {
    const e = env();
    unlinkSync(join(e.L, "oci-layout"));
    mkfifo(join(e.L, "oci-layout"));
    for (const args of [["ls", "--layout", e.L], ["stat", "--image", `${e.L}:t`], ["gc", "--layout", e.L]])
      expectOneLine(run(args), 4, /oci-layout is not a regular file \(it is a fifo\)/);
    const v = run(["validate", "--layout", e.L]);
    expect(v.code).toBe(4);
    expect(v.stdout).toContain("oci-layout: layout is invalid: oci-layout is not a regular file");
    e.same();
  });

  test("a blob as a FIFO (manifest, layer) or a symlink to a valid copy outside (config): stat, unpack, validate refuse it", () => {
    const e = env();
    const m = readJson(join(e.L, "index.json")).manifests[0];
    const man = readJson(blobPath(e.L, m.digest));
    // the manifest as a FIFO
    renameSync(blobPath(e.L, m.digest), join(e.s, "manifest.real"));
    mkfifo(blobPath(e.L, m.digest));
    expectOneLine(run(["stat", "--image", `${e.L}:t`]), 4, /is not a regular file \(it is a fifo\)/);
    let v = run(["validate", "--layout", e.L]);
    expect(v.code).toBe(4);
    expect(v.stdout).toContain(`${m.digest} (index.json manifests[0] "t"): blob path is not a regular file (it is a fifo)`);
    unlinkSync(blobPath(e.L, m.digest));
    renameSync(join(e.s, "manifest.real"), blobPath(e.L, m.digest));
    // the layer as a FIFO
    const layer = man.layers[0].digest;
    renameSync(blobPath(e.L, layer), join(e.s, "layer.real"));
    mkfifo(blobPath(e.L, layer));
    expectOneLine(run(["unpack", "--no-progress", "--image", `${e.L}:t`, join(e.s, "bundle")]), 4, /is not a regular file \(it is a fifo\)/);
    expect(run(["validate", "--layout", e.L]).code).toBe(4);
    unlinkSync(blobPath(e.L, layer));
    renameSync(join(e.s, "layer.real"), blobPath(e.L, layer));
    // the config as a symlink to a byte-identical copy outside: still refused
    copyFileSync(blobPath(e.L, man.config.digest), join(e.outside, "config-copy"));
    unlinkSync(blobPath(e.L, man.config.digest));
    symlinkSync(join(e.outside, "config-copy"), blobPath(e.L, man.config.digest));
    e.snap();
    expectOneLine(run(["stat", "--image", `${e.L}:t`]), 4, /is a symlink/);
    v = run(["validate", "--layout", e.L]);
    expect(v.code).toBe(4);
    expect(v.stdout).toContain(`${man.config.digest} (config of manifest ${m.digest}): blob is a symlink (not followed)`);
    expectOneLine(run(["gc", "--layout", e.L]), 4, /gc: nothing removed: .*is a symlink/);
    e.same();
    expect(existsSync(join(e.s, "bundle"))).toBe(false);
  });
});

describe("stale temporary files", () => {
  test("validate warns about them; gc removes regular files and real directories only, never through a symlink", () => {
    const e = env();
    const tmp = join(e.L, ".boci-tmp");
    mkdirSync(join(tmp, "olddir"), { recursive: true });
    writeFileSync(join(tmp, "blob-999999999-dead"), "partial");
    symlinkSync(e.outside, join(tmp, "olddir", "into-outside"));
    writeFileSync(join(tmp, "olddir", "f"), "x");
    symlinkSync(join(e.outside, "secret"), join(tmp, "link"));
    writeFileSync(join(e.L, ".tmp-index.json-999999999-ab"), "{}");
    symlinkSync(join(e.outside, "secret"), join(e.L, ".tmp-index.json-link"));
    e.snap();

    const v = run(["validate", "--layout", e.L]);
    expect(v.code).toBe(0);
    expect(v.stdout).toContain("warning: .boci-tmp/blob-999999999-dead: stale temporary file");
    expect(v.stdout).toContain("warning: .boci-tmp/olddir: stale temporary file");
    expect(v.stdout).toContain("warning: .tmp-index.json-999999999-ab: stale temporary file");
    expect(v.stdout).toContain("warning: .boci-tmp/link: unexpected symlink (gc leaves it alone)");

    const dry = run(["gc", "--dry-run", "--layout", e.L]);
    expect(dry.code).toBe(0);
    expect(dry.stdout.split("\n").filter(Boolean).sort()).toEqual([
      "would remove temporary file .boci-tmp/blob-999999999-dead",
      "would remove temporary file .boci-tmp/olddir",
      "would remove temporary file .tmp-index.json-999999999-ab",
    ]);
    expect(existsSync(join(tmp, "blob-999999999-dead"))).toBe(true);

    const r = run(["gc", "--json", "--layout", e.L]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.removedBlobs).toEqual([]);
    expect(j.removedTemp.sort()).toEqual([".boci-tmp/blob-999999999-dead", ".boci-tmp/olddir", ".tmp-index.json-999999999-ab"]);
    expect(j.skipped.sort()).toEqual([".boci-tmp/link", ".tmp-index.json-link"]);
    expect(readdirSync(tmp)).toEqual(["link"]);
    expect(lstatSync(join(tmp, "link")).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(e.L, ".tmp-index.json-link")).isSymbolicLink()).toBe(true);
    e.same();
    expect(checkLayout(e.L)).toEqual([]);
  });

  test("SIGINT while a blob streams in leaves no temporary file", async () => {
    const e = env();
    const src = join(e.s, "big");
    // Random bytes: gzip cannot shrink them, so the layer takes a while to stream.
    const chunk = Buffer.alloc(1 << 20);
    const parts: Buffer[] = [];
    for (let i = 0; i < 48; i++) { crypto.getRandomValues(chunk); parts.push(Buffer.from(chunk)); }
    writeFileSync(src, Buffer.concat(parts));
    const tmp = join(e.L, ".boci-tmp");
    const p = Bun.spawn([BIN, "insert", "--image", `${e.L}:t`, src, "/big"], { stdout: "pipe", stderr: "pipe" });
    let seen = false;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && p.exitCode === null) {
      if (existsSync(tmp) && readdirSync(tmp).some((n) => n.startsWith("blob-"))) { seen = true; break; }
      await Bun.sleep(2);
    }
    if (!seen) { p.kill(); throw new Error(`insert finished (exit ${p.exitCode}) before a temporary blob was seen`); }
    p.kill("SIGINT");
    const code = await p.exited;
    expect(code).toBe(130);
    expect(readdirSync(tmp)).toEqual([]);
    expect(readJson(join(e.L, "index.json")).manifests).toHaveLength(1);
    expect(run(["validate", "--layout", e.L]).code).toBe(0);
    e.same();
  }, 60_000);
});

describe.skipIf(process.getuid?.() !== 0 || !Bun.which("setpriv"))("a layout the user may not write", () => {
  test("new, tag, config and rm as uid 65534 on root's layout: 'cannot write L: permission denied', exit 1, layout unchanged", () => {
    const s = scratch("boci-perm-");
    const L = join(s, "L");
    ok(["init", "--layout", L]);
    ok(["new", "--image", `${L}:a`]);
    Bun.spawnSync(["chmod", "755", s]);
    const before = snapshotTree(L);
    for (const args of [["new", "--image", `${L}:b`], ["tag", "--image", `${L}:a`, "b"], ["config", "--image", `${L}:a`, "--config.env", "A=1"], ["rm", "--image", `${L}:a`]]) {
      const p = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", BIN, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
      const r: RunResult = { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
      expectOneLine(r, 1, new RegExp(`^boci: cannot write ${L.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: permission denied\\n$`));
      expect(r.stderr).not.toContain("rootless");
    }
    expect(snapshotTree(L)).toEqual(before);
  });
});
