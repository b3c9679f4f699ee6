/**
 * Deferred directory metadata must never land outside the rootfs.
 *
 * `unpack` sets a directory's mtime (and, rootless, its mode and the mode of directories it
 * opened up to write into) after the layer's last entry. If a later entry of the same layer
 * replaces that directory (or one of its ancestors) with a symlink pointing outside the bundle,
 * the deferred chmod/utimes must not follow the symlink to the host. Each case builds such an
 * image, unpacks it with the real binary in root mode, rootless mode as root, and rootless mode
 * as uid 65534 (setpriv), with a sentinel directory beside the bundle (owned by the unpacking
 * user, so an escape is possible) and checks: the sentinel is unchanged (lstat snapshot: mode,
 * mtime, inode, content), the unpack succeeded as umoci's does (the later symlink replaces the
 * directory), the rootfs looks as umoci leaves it, `validate` passes and the bundle's mtree
 * matches a fresh walk of the rootfs. Where umoci is installed, umoci unpacks the same image to
 * the same tree (types, modes, link targets).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { BIN, boci, ok, scratch, sh, have, isRoot, type RunResult } from "../helpers/cli";
import { makeImage, makeTar, dir, file, symlink, whiteout, type TarEntrySpec } from "../helpers/image";
import { makeSentinel, snapshotTree } from "./lib";

const NOBODY = 65534;
/** An mtime no fresh sentinel has (2001-09-09): a deferred utimes on the host shows as this. */
const OLD = 1000000000;

type Mode = "root" | "rootless" | "rootless-nobody";
const canRoot = isRoot;
const canNobody = isRoot && have("setpriv");
const haveUmoci = have("umoci");
if (!canRoot) console.log("deferred-escape: not root; root-mode and uid-65534 cases skipped");
else if (!canNobody) console.log("deferred-escape: setpriv missing; uid-65534 cases skipped");
if (!haveUmoci || !isRoot) console.log("deferred-escape: umoci missing or not root; interop cases skipped");

/** Where the swapped-in symlink points: the sentinel by absolute host path, or by `../..`. */
type Target = "abs" | "rel";

interface Env { s: string; L: string; outside: string; bundle: string; R: string; mode: Mode; fallback?: boolean }

function env(mode: Mode, prefix = "boci-defer-", fallback = false): Env {
  const s = scratch(prefix);
  const outside = makeSentinel(s);
  const L = join(s, "layout");
  ok(["init", "--layout", L]);
  const bundle = join(s, "bundle");
  return { s, L, outside, bundle, R: join(bundle, "rootfs"), mode, fallback };
}

/** The symlink target for `kind`, as seen from an entry at the top of the rootfs. */
function targetOf(e: Env, kind: Target): string {
  return kind === "abs" ? e.outside : "../../outside";
}

/** For uid 65534: the whole scratch tree (sentinel included) is theirs. */
function handOver(e: Env): void {
  if (e.mode !== "rootless-nobody") return;
  const r = sh(`chown -R ${NOBODY}:${NOBODY} ${JSON.stringify(e.s)} && chmod 755 ${JSON.stringify(e.s)}`);
  if (r.code !== 0) throw new Error(`chown: ${r.stderr}`);
}

/** `fallback`: BOCI_NO_OPENAT2=1, the openat walk that kernels before 5.6 get. */
function runAs(mode: Mode, args: string[], fallback = false): RunResult {
  const extra: Record<string, string> = fallback ? { BOCI_NO_OPENAT2: "1" } : {};
  if (mode !== "rootless-nobody") return boci(args, { env: extra });
  const p = Bun.spawnSync(["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", BIN, ...args], {
    stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, HOME: "/tmp", ...extra },
  });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

function unpack(e: Env): RunResult {
  return runAs(e.mode, ["unpack", ...(e.mode === "root" ? [] : ["--rootless"]), "--no-progress", "--image", `${e.L}:t`, e.bundle], e.fallback);
}

/** Readable differences between two snapshots ("" when equal). */
function snapDiff(before: Record<string, string>, after: Record<string, string>): string[] {
  const out: string[] = [];
  const fields = ["mode", "uid", "gid", "size", "mtimeMs", "ino", "nlink", "content"];
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const a = before[k], b = after[k];
    if (a === b) continue;
    if (a === undefined || b === undefined) { out.push(`${k}: ${a === undefined ? "appeared" : "vanished"}`); continue; }
    const fa = a.split(" "), fb = b.split(" ");
    out.push(`${k}: ` + fields.map((f, i) => (fa[i] !== fb[i] ? `${f} ${fa[i]} -> ${fb[i]}` : "")).filter(Boolean).join(", "));
  }
  return out;
}

/** Build the image, unpack it, and check everything that must hold whatever the case. */
function unpackChecked(e: Env, layers: TarEntrySpec[][]): void {
  makeImage(e.L, "t", layers.map((l) => makeTar(l)));
  handOver(e);
  const before = snapshotTree(e.outside);
  const r = unpack(e);
  // 1. nothing outside the bundle changed
  expect(snapDiff(before, snapshotTree(e.outside))).toEqual([]);
  expect(readdirSync(e.s).sort()).toEqual(existsSync(e.bundle) ? ["bundle", "layout", "outside"] : ["layout", "outside"]);
  // 2. umoci unpacks these images: so must boci
  if (r.code !== 0) throw new Error(`unpack (${e.mode}) exited ${r.code}: ${r.stderr}`);
  expect(r.stderr).not.toContain("    at ");
  // 3. the layout is untouched and valid; the mtree matches a fresh walk
  const v = boci(["validate", "--layout", e.L]);
  if (v.code !== 0) throw new Error(`validate exited ${v.code}: ${v.stdout}${v.stderr}`);
  const mt = readdirSync(e.bundle).find((n) => n.endsWith(".mtree"));
  if (!mt) throw new Error("no mtree file in the bundle");
  const m = runAs(e.mode, ["raw", "mtree-validate", ...(e.mode === "root" ? [] : ["--rootless"]), "-f", join(e.bundle, mt), "-p", e.R]);
  expect(m.stdout + m.stderr).toBe("");
  expect(m.code).toBe(0);
}

function expectLink(p: string, target: string): void {
  const st = lstatSync(p, { throwIfNoEntry: false });
  expect(st?.isSymbolicLink() ? readlinkSync(p) : `not a symlink: ${st ? st.mode.toString(8) : "missing"}`).toBe(target);
}

function names(p: string): string[] {
  return readdirSync(p).sort();
}

interface Case {
  name: string;
  /** umoci is compared for this case */
  interop: boolean;
  /** the symlink target is outside (run with both target kinds) */
  outsideTarget: boolean;
  layers: (t: string) => TarEntrySpec[][];
  check: (R: string, t: string) => void;
}

const CASES: Case[] = [
  {
    name: "1: one layer 'd/' (0777, old mtime), 'd/x', then 'd' -> outside",
    interop: true, outsideTarget: true,
    layers: (t) => [[dir("d/", { mode: 0o777, mtime: OLD }), file("d/x", "x"), symlink("d", t)]],
    check: (R, t) => { expectLink(join(R, "d"), t); expect(names(R)).toEqual(["d"]); },
  },
  {
    name: "2: layer 2 adds 'd/y' (d's time deferred), then 'd' -> outside",
    interop: true, outsideTarget: true,
    layers: (t) => [[dir("d/", { mode: 0o777, mtime: OLD }), file("d/x", "x")], [file("d/y", "y"), symlink("d", t)]],
    check: (R, t) => { expectLink(join(R, "d"), t); expect(names(R)).toEqual(["d"]); },
  },
  {
    name: "3: layer 2 whites out 'd/.wh.x', then 'd' -> outside",
    interop: true, outsideTarget: true,
    layers: (t) => [[dir("d/", { mode: 0o777, mtime: OLD }), file("d/x", "x")], [whiteout("d/.wh.x"), symlink("d", t)]],
    check: (R, t) => { expectLink(join(R, "d"), t); expect(names(R)).toEqual(["d"]); },
  },
  {
    name: "4: 'd/' is 0500 (rootless opens it to 0700 for 'd/y'), then 'd' -> outside",
    interop: true, outsideTarget: true,
    layers: (t) => [[dir("d/", { mode: 0o500, mtime: OLD }), file("d/x", "x")], [file("d/y", "y"), symlink("d", t)]],
    check: (R, t) => { expectLink(join(R, "d"), t); expect(names(R)).toEqual(["d"]); },
  },
  {
    name: "5a: one layer 'y/' (0777, old mtime) then 'y' -> outside",
    interop: true, outsideTarget: true,
    layers: (t) => [[dir("y/", { mode: 0o777, mtime: OLD }), symlink("y", t)]],
    check: (R, t) => { expectLink(join(R, "y"), t); expect(names(R)).toEqual(["y"]); },
  },
  {
    name: "5b: one layer 'y/' with children ('y/sub/' 0777, 'y/sub/file', 'y/f') then 'y' -> outside",
    interop: true, outsideTarget: true,
    layers: (t) => [[dir("y/", { mode: 0o777, mtime: OLD }), dir("y/sub/", { mode: 0o777, mtime: OLD }), file("y/sub/file", "mine"), file("y/f", "f"), symlink("y", t)]],
    check: (R, t) => { expectLink(join(R, "y"), t); expect(names(R)).toEqual(["y"]); },
  },
  {
    // umoci keys its upper paths by the symlink-resolved path: "d/.wh.new" names e/new, which
    // this layer created, so it stays; "d/.wh.old" names e/old from below, which goes.
    name: "6a: whiteouts through an inner symlink 'd' -> 'e': 'd/.wh.new' spares e/new (this layer's), 'd/.wh.old' removes e/old",
    interop: true, outsideTarget: false,
    layers: () => [[dir("e/", { mtime: OLD }), file("e/old", "old"), file("e/keep", "keep"), symlink("d", "e")], [file("e/new", "new"), whiteout("d/.wh.new"), whiteout("d/.wh.old")]],
    check: (R) => {
      expectLink(join(R, "d"), "e");
      expect(names(join(R, "e"))).toEqual(["keep", "new"]);
      expect(readFileSync(join(R, "e/new"), "utf8")).toBe("new");
    },
  },
  {
    name: "6b: opaque whiteout through an inner symlink: 'd/.wh..wh..opq' keeps e/new (this layer's), removes e/old",
    interop: true, outsideTarget: false,
    layers: () => [[dir("e/", { mtime: OLD }), file("e/old", "old"), symlink("d", "e")], [file("e/new", "new"), whiteout("d/.wh..wh..opq")]],
    check: (R) => {
      expectLink(join(R, "d"), "e");
      expect(names(join(R, "e"))).toEqual(["new"]);
      expect(readFileSync(join(R, "e/new"), "utf8")).toBe("new");
    },
  },
  {
    name: "7a: intermediate directory: 'a/', 'a/sub/' (0777, old mtime), 'a/sub/x', then 'a' -> outside",
    interop: false, outsideTarget: true,
    layers: (t) => [[dir("a/", { mtime: OLD }), dir("a/sub/", { mode: 0o777, mtime: OLD }), file("a/sub/x", "x"), symlink("a", t)]],
    check: (R, t) => { expectLink(join(R, "a"), t); expect(names(R)).toEqual(["a"]); },
  },
  {
    name: "7b: intermediate directory across layers: layer 2 'a/sub/y' (a/sub deferred), then 'a' -> outside",
    interop: false, outsideTarget: true,
    layers: (t) => [[dir("a/", { mtime: OLD }), dir("a/sub/", { mode: 0o500, mtime: OLD }), file("a/sub/x", "x")], [file("a/sub/y", "y"), symlink("a", t)]],
    check: (R, t) => { expectLink(join(R, "a"), t); expect(names(R)).toEqual(["a"]); },
  },
];

const MODES: { mode: Mode; can: boolean; fallback?: boolean }[] = [
  { mode: "root", can: canRoot },
  { mode: "rootless", can: true },
  { mode: "rootless-nobody", can: canNobody },
  { mode: "root", can: canRoot, fallback: true },
  { mode: "rootless-nobody", can: canNobody, fallback: true },
];

for (const { mode, can, fallback } of MODES) {
  describe.skipIf(!can)(`deferred directory metadata stays inside the rootfs (${mode}${fallback ? ", openat fallback" : ""})`, () => {
    for (const c of CASES) {
      for (const kind of (c.outsideTarget ? ["abs", "rel"] : ["abs"]) as Target[]) {
        test(`${c.name}${c.outsideTarget ? ` [${kind}]` : ""}`, () => {
          const e = env(mode, undefined, fallback);
          const t = targetOf(e, kind);
          unpackChecked(e, c.layers(t));
          c.check(e.R, t);
        });
      }
    }
  });
}

// ---- umoci interop ---------------------------------------------------------------------------

/** path -> type, permission bits (not for symlinks) and link target, for every path under `root`. */
function shape(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    const p = rel ? join(root, rel) : root;
    const st = lstatSync(p);
    const type = st.isDirectory() ? "dir" : st.isSymbolicLink() ? "link" : st.isFile() ? "file" : "other";
    out[rel || "."] = type === "link" ? `link -> ${readlinkSync(p)}` : `${type} ${(st.mode & 0o7777).toString(8)}`;
    if (st.isDirectory()) for (const n of readdirSync(p).sort()) walk(rel ? `${rel}/${n}` : n);
  };
  walk("");
  return out;
}

describe.skipIf(!haveUmoci || !isRoot)("deferred-escape images: boci and umoci 0.4.7 unpack the same tree", () => {
  for (const rootless of [false, true]) {
    for (const c of CASES.filter((x) => x.interop)) {
      test(`${c.name}${rootless ? " (rootless)" : ""}`, () => {
        // umoci gets its own scratch dir and sentinel: what it does is not under test here
        const eb = env(rootless ? "rootless" : "root");
        const eu = env(rootless ? "rootless" : "root", "boci-defer-umoci-");
        // the same image bytes in both layouts (targets relative, so they do not name the scratch dir)
        const layers = c.layers("../../outside").map((l) => makeTar(l));
        makeImage(eb.L, "t", layers);
        makeImage(eu.L, "t", layers);
        const r = unpack(eb);
        if (r.code !== 0) throw new Error(`boci unpack exited ${r.code}: ${r.stderr}`);
        const u = sh(`umoci unpack ${rootless ? "--rootless " : ""}--image ${JSON.stringify(`${eu.L}:t`)} ${JSON.stringify(eu.bundle)}`);
        if (u.code !== 0) throw new Error(`umoci unpack exited ${u.code}: ${u.stderr}`);
        expect(shape(eb.R)).toEqual(shape(eu.R));
      });
    }
  }
});
