/**
 * The bundle is hostile input: symlinks and FIFOs planted at the names of the bundle's files,
 * a symlinked or dangling bundle directory, and directories the user may not write. Nothing
 * outside the bundle may change, a planted FIFO must not hang a command, and every refusal is
 * one clear line.
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { BIN, boci, have, isRoot, ok, scratch, sh } from "../helpers/cli";
import { dir, file, makeImage, makeTar } from "../helpers/image";
import { expectOneLine, makeSentinel, snapshotTree } from "./lib";

/** A layout with one small image `t`, and a sentinel tree beside it. */
function setup() {
  const s = scratch("boci-bundle-hostile-");
  const L = join(s, "layout");
  ok(["init", "--layout", L]);
  makeImage(L, "t", [makeTar([dir("etc/"), file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), file("hello", "hello\n")])]);
  const outside = makeSentinel(s);
  return { s, L, outside, before: snapshotTree(outside) };
}

function mtreeName(b: string): string {
  const n = readdirSync(b).filter((x) => x.endsWith(".mtree"));
  expect(n.length).toBe(1);
  return n[0]!;
}

/** No temporary names (ours: `.tmp-*`, `*.boci-unpack-*`) left in a directory. */
function temps(d: string): string[] {
  return existsSync(d) ? readdirSync(d).filter((n) => n.startsWith(".tmp-") || n.includes(".boci-unpack-")) : [];
}

/** Run with a deadline: a command that opened a FIFO would hang. */
function bociTimed(args: string[], env: Record<string, string> = {}) {
  const p = Bun.spawnSync([BIN, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, ...env }, timeout: 15000, killSignal: "SIGKILL" });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString(), signal: p.signalCode };
}

describe("bundle files that are symlinks are replaced, never followed", () => {
  test("unpack into an existing directory with umoci.json and .boci-stat planted as symlinks", () => {
    const { s, L, outside, before } = setup();
    const b = join(s, "bundle");
    mkdirSync(b);
    symlinkSync(join(outside, "secret"), join(b, "umoci.json"));
    symlinkSync(join(outside, "sub", "file"), join(b, ".boci-stat"));
    writeFileSync(join(b, "keep"), "mine\n");
    ok(["unpack", "--no-progress", "--image", `${L}:t`, b]);
    expect(snapshotTree(outside)).toEqual(before);
    for (const n of ["umoci.json", ".boci-stat", "config.json", mtreeName(b)]) expect(lstatSync(join(b, n)).isFile()).toBe(true);
    expect(readFileSync(join(b, "keep"), "utf8")).toBe("mine\n");
    expect(JSON.parse(readFileSync(join(b, "umoci.json"), "utf8")).umoci_version).toBe("2");
    expect(temps(b)).toEqual([]);
    expect(temps(s)).toEqual([]);
  });

  test("unpack refuses a config.json or mtree planted as a symlink (exit 5), outside unchanged", () => {
    const { s, L, outside, before } = setup();
    const probe = join(s, "probe");
    ok(["unpack", "--no-progress", "--image", `${L}:t`, probe]);
    for (const n of ["config.json", mtreeName(probe), "rootfs"]) {
      const b = join(s, `b-${n}`);
      mkdirSync(b);
      symlinkSync(n === "rootfs" ? outside : join(outside, "secret"), join(b, n));
      expectOneLine(boci(["unpack", "--no-progress", "--image", `${L}:t`, b]), 5, /already exists/);
      expect(readdirSync(b)).toEqual([n]);
      expect(readlinkSync(join(b, n))).toBe(n === "rootfs" ? outside : join(outside, "secret"));
    }
    expect(snapshotTree(outside)).toEqual(before);
  });

  test("repack --refresh-bundle replaces a symlink planted at the new mtree's name", () => {
    const { s, L, outside, before } = setup();
    const env = { SOURCE_DATE_EPOCH: "1700000000" };
    const args = (layout: string, b: string) => ["repack", "--no-progress", "--refresh-bundle", "--history.created", "2024-01-01T00:00:00Z", "--image", `${layout}:t2`, b];
    // A dry run on copies predicts the new manifest's digest (the layer is reproducible).
    const b = join(s, "bundle");
    ok(["unpack", "--no-progress", "--image", `${L}:t`, b]);
    writeFileSync(join(b, "rootfs", "new"), "new\n");
    sh(`cp -a ${JSON.stringify(L)} ${JSON.stringify(L + "-copy")} && cp -a ${JSON.stringify(b)} ${JSON.stringify(b + "-copy")}`);
    ok(args(L + "-copy", b + "-copy"), { env });
    const predicted = mtreeName(b + "-copy");
    expect(predicted).not.toBe(mtreeName(b));
    symlinkSync(join(outside, "secret"), join(b, predicted));
    ok(args(L, b), { env });
    expect(snapshotTree(outside)).toEqual(before);
    expect(mtreeName(b)).toBe(predicted);
    expect(lstatSync(join(b, predicted)).isFile()).toBe(true);
    const body = (f: string) => readFileSync(f, "utf8").split("\n").filter((l) => !l.startsWith("#")).join("\n");
    expect(body(join(b, predicted))).toBe(body(join(b + "-copy", predicted)));
    for (const n of ["umoci.json", ".boci-stat"]) expect(lstatSync(join(b, n)).isFile()).toBe(true);
    expect(temps(b)).toEqual([]);
    // the refreshed bundle repacks to no change
    ok(["repack", "--no-progress", "--image", `${L}:t3`, b]);
    expect(JSON.parse(ok(["stat", "--json", "--image", `${L}:t3`]).stdout).history.at(-1).empty_layer).toBe(true);
  });

  test("raw runtime-config refuses a symlink or FIFO at its output (exit 5) and replaces a regular file", () => {
    const { s, L, outside, before } = setup();
    const link = join(s, "config.json");
    symlinkSync(join(outside, "secret"), link);
    expectOneLine(boci(["raw", "runtime-config", "--log", "error", "--image", `${L}:t`, link]), 5, /not a regular file \(a symbolic link\); refusing to replace it/);
    expect(readlinkSync(link)).toBe(join(outside, "secret"));
    const fifo = join(s, "fifo.json");
    sh(`mkfifo ${JSON.stringify(fifo)}`);
    const r = bociTimed(["raw", "runtime-config", "--log", "error", "--image", `${L}:t`, fifo]);
    expectOneLine(r, 5, /not a regular file \(a fifo\)/);
    expect(snapshotTree(outside)).toEqual(before);
    const plain = join(s, "plain.json");
    writeFileSync(plain, "old\n");
    ok(["raw", "runtime-config", "--image", `${L}:t`, plain]);
    expect(JSON.parse(readFileSync(plain, "utf8")).root.path).toBe("rootfs");
    expect(temps(s)).toEqual([]);
  });
});

describe("bundle files boci reads must be regular files", () => {
  for (const what of ["umoci.json", "mtree", ".boci-stat"] as const) {
    for (const kind of ["fifo", "symlink", "directory"] as const) {
      test(`repack refuses a ${what} that is a ${kind} (exit 4, one line, no hang)`, () => {
        const { s, L, outside, before } = setup();
        const b = join(s, "bundle");
        ok(["unpack", "--no-progress", "--image", `${L}:t`, b]);
        const name = what === "mtree" ? mtreeName(b) : what;
        const p = join(b, name);
        // the real file is kept aside, as a symlink's target (a follower would read it happily)
        const real = join(s, "real");
        renameSync(p, real);
        if (kind === "fifo") sh(`mkfifo ${JSON.stringify(p)}`);
        else if (kind === "symlink") symlinkSync(real, p);
        else mkdirSync(p);
        const r = bociTimed(["repack", "--no-progress", "--refresh-bundle", "--image", `${L}:t2`, b]);
        expect(r.signal ?? null).toBeNull();
        expectOneLine(r, 4, new RegExp(`${name.replace(/\./g, "\\.")} (is a symbolic link|is not a regular file)`));
        expect(boci(["stat", "--image", `${L}:t2`]).code).toBe(3);
        expect(snapshotTree(outside)).toEqual(before);
      });
    }
  }

  test("repack refuses an oversized umoci.json without reading it (exit 4)", () => {
    const { s, L } = setup();
    const b = join(s, "bundle");
    ok(["unpack", "--no-progress", "--image", `${L}:t`, b]);
    sh(`truncate -s 64M ${JSON.stringify(join(b, "umoci.json"))}`);
    expectOneLine(boci(["repack", "--no-progress", "--image", `${L}:t2`, b]), 4, /umoci\.json is larger than \d+ bytes/);
  });

  test("repack refuses a rootfs that is a symlink (exit 4)", () => {
    const { s, L, outside } = setup();
    const b = join(s, "bundle");
    ok(["unpack", "--no-progress", "--image", `${L}:t`, b]);
    rmSync(join(b, "rootfs"), { recursive: true });
    symlinkSync(outside, join(b, "rootfs"));
    expectOneLine(boci(["repack", "--no-progress", "--image", `${L}:t2`, b]), 4, /rootfs is not a directory \(a symbolic link/);
  });
});

describe("the bundle directory itself", () => {
  test("a symlink to a directory is resolved once: the bundle is made in the target, the link stays", () => {
    const { s, L } = setup();
    const real = join(s, "real");
    mkdirSync(real);
    const link = join(s, "link");
    symlinkSync(real, link);
    ok(["unpack", "--no-progress", "--image", `${L}:t`, link]);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readdirSync(real).sort()).toEqual([".boci-stat", "config.json", mtreeName(real), "rootfs", "umoci.json"].sort());
    expect(lstatSync(real).mode & 0o777).toBe(0o700);
    writeFileSync(join(real, "rootfs", "x"), "x\n");
    ok(["repack", "--no-progress", "--refresh-bundle", "--image", `${L}:t2`, link]);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(temps(s)).toEqual([]);
  });

  test("a dangling symlink is refused (exit 5) and nothing is created at its target", () => {
    const { s, L } = setup();
    const link = join(s, "dangling");
    symlinkSync(join(s, "nowhere"), link);
    expectOneLine(boci(["unpack", "--no-progress", "--image", `${L}:t`, link]), 5, /symbolic link that does not resolve/);
    expect(existsSync(join(s, "nowhere"))).toBe(false);
    expect(temps(s)).toEqual([]);
  });

  test("a failed unpack leaves no bundle directory, no parents it made, no temporary directory", () => {
    const { s, L } = setup();
    makeImage(L, "bad", [makeTar([file("a", "a")])], { diffIds: ["sha256:" + "0".repeat(64)] });
    const b = join(s, "new", "deeper", "bundle");
    expectOneLine(boci(["unpack", "--no-progress", "--image", `${L}:bad`, b]), 4, /diffid mismatch/);
    expect(existsSync(join(s, "new"))).toBe(false);
    expect(temps(s)).toEqual([]);
    // into an existing directory: the directory and its other files stay, nothing is added
    const e = join(s, "existing");
    mkdirSync(e);
    writeFileSync(join(e, "keep"), "k");
    expectOneLine(boci(["unpack", "--no-progress", "--image", `${L}:bad`, e]), 4, /diffid mismatch/);
    expect(readdirSync(e)).toEqual(["keep"]);
  });
});

const NOBODY = 65534;
const canDrop = isRoot && have("setpriv");
if (!canDrop) console.log("bundle-hostile: permission tests skipped (need root and setpriv to run as uid 65534)");

function asNobody(args: string[]) {
  const p = Bun.spawnSync(["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", BIN, ...args], {
    stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, HOME: "/tmp" },
  });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

describe.skipIf(!canDrop)("permission errors name the path and the cause", () => {
  function nobodySetup() {
    const x = setup();
    chmodSync(x.s, 0o755);
    sh(`chmod -R a+rX ${JSON.stringify(x.L)}`);
    return x;
  }

  test("unpack where the parent is not writable: exit 1, `cannot write PATH: permission denied`", () => {
    const { s, L } = nobodySetup();
    const ro = join(s, "ro");
    mkdirSync(ro, { mode: 0o755 });
    const b = join(ro, "bundle");
    const r = asNobody(["unpack", "--rootless", "--no-progress", "--image", `${L}:t`, b]);
    expectOneLine(r, 1, new RegExp(`^boci: cannot write ${b.replace(/[.]/g, "\\.")}: permission denied\\n$`));
    expect(readdirSync(ro)).toEqual([]);
    // an existing directory the user cannot write: the same line, naming it
    const e = join(ro, "existing");
    mkdirSync(e, { mode: 0o755 });
    const r2 = asNobody(["unpack", "--rootless", "--no-progress", "--image", `${L}:t`, e]);
    expectOneLine(r2, 1, new RegExp(`^boci: cannot write ${e.replace(/[.]/g, "\\.")}: permission denied\\n$`));
    expect(readdirSync(e)).toEqual([]);
    // a missing parent under an unwritable directory
    const deep = join(ro, "a", "b", "bundle");
    expectOneLine(asNobody(["unpack", "--rootless", "--no-progress", "--image", `${L}:t`, deep]), 1, /cannot write .*: permission denied$/m);
    expect(readdirSync(ro)).toEqual(["existing"]);
  });

  test("unpack into a writable directory whose parent is not writable works (the bundle is built inside it)", () => {
    const { s, L } = nobodySetup();
    const ro = join(s, "ro2");
    mkdirSync(ro, { mode: 0o755 });
    const b = join(ro, "bundle");
    mkdirSync(b);
    chownSync(b, NOBODY, NOBODY);
    const r = asNobody(["unpack", "--rootless", "--no-progress", "--image", `${L}:t`, b]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(readdirSync(b).sort()).toEqual([".boci-stat", "config.json", mtreeName(b), "rootfs", "umoci.json"].sort());
  });
});
