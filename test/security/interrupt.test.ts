/**
 * Interrupts: `unpack`, `repack`, `insert` and `config` get SIGINT or SIGTERM at seeded random
 * moments (uniform within their measured run time, four processes at a time). Each must exit
 * 130/143 (or 0 if it finished first; a signal before the handlers are installed kills the
 * process outright, which is counted apart), and then: the layout validates, `.boci-tmp` is
 * empty, every tag names a complete image or is absent, an unpack target is absent or complete
 * with no `.boci-unpack-` directory left, a refreshed bundle names the old or the new image, and
 * the same command run again succeeds. Also: SIGKILL during unpack, then a rerun (which removes
 * the dead process's temporary directory), and a rootless unpack (mode-0000 directories) as an
 * unprivileged user, interrupted.
 */
import { expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, boci, have, isRoot, ok, scratch } from "../helpers/cli";
import { dir, file, makeImage, makeTar, type TarEntrySpec } from "../helpers/image";
import { readJson, rng, tags } from "./lib";

const SEED = 20241107;
const RUNS = 100;
const BATCH = 4;
const NOBODY = 65534;

type Kind = "unpack" | "repack" | "insert" | "config";
type Sig = "SIGINT" | "SIGTERM";

interface Outcome { code: number | null; signal: string | null; sent: boolean; stderr: string; ms: number }
/** finished: exit 0; interrupted: 130/143; early: killed by the signal before the handlers existed. */
type Class = "finished" | "interrupted" | "early";

/** Spawn the binary (optionally as nobody), send `sig` after `delay` ms if it is still running. */
async function runWithSignal(args: string[], delay: number, sig: Sig | "SIGKILL", opts: { nobody?: boolean } = {}): Promise<Outcome> {
  const cmd = opts.nobody ? ["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", BIN, ...args] : [BIN, ...args];
  const t0 = performance.now();
  const p = Bun.spawn(cmd, { stdout: "ignore", stderr: "pipe", stdin: "ignore", env: { ...process.env, HOME: "/tmp" } });
  let sent = false;
  const timer = setTimeout(() => {
    if (p.exitCode === null && p.signalCode === null) { sent = true; p.kill(sig); }
  }, delay);
  await p.exited;
  clearTimeout(timer);
  const stderr = await new Response(p.stderr).text();
  return { code: p.exitCode, signal: p.signalCode === null ? null : String(p.signalCode), sent, stderr, ms: performance.now() - t0 };
}

/** What happened, or a thrown error if the outcome is not one of the three allowed ones. */
function classify(o: Outcome, sig: Sig, what: string): Class {
  if (o.code === 0) return "finished";
  const want = sig === "SIGINT" ? 130 : 143;
  if (o.sent && o.code === want) {
    // one line (a warning before it, such as waiting for a lock, is fine)
    const lines = o.stderr.split("\n").filter((l) => l.trim() !== "" && !/^\s*WARN\s/.test(l));
    if (lines.length !== 1 || !new RegExp(`^boci: interrupted by ${sig}`).test(lines[0]!))
      throw new Error(`${what}: exit ${o.code} but stderr is not the one interrupt line: ${JSON.stringify(o.stderr)}`);
    return "interrupted";
  }
  if (o.sent && o.signal === sig) return "early";
  throw new Error(`${what}: ${sig}${o.sent ? " sent" : " not sent"}, exit ${o.code}, signal ${o.signal}: ${o.stderr}`);
}

/** The median wall time of `n` concurrent runs of `make(i)`. */
async function measure(n: number, make: (i: number) => string[]): Promise<number> {
  const times = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const o = await runWithSignal(make(i), 1e9, "SIGTERM");
    if (o.code !== 0) throw new Error(`measure: ${make(i).join(" ")} exited ${o.code}: ${o.stderr}`);
    return o.ms;
  }));
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/** Names of our temporary directories and files under `d` (not recursive). */
function leftovers(d: string): string[] {
  return existsSync(d) ? readdirSync(d).filter((n) => n.includes(".boci-unpack-") || n.startsWith(".tmp-")) : [];
}

const BUNDLE_FILES = ["config.json", "rootfs", "umoci.json", ".boci-stat"];

/** A complete bundle: every file, the mtree umoci.json names, nothing temporary. */
function bundleState(b: string, extra: string[] = []): "absent" | "complete" | string {
  if (!existsSync(b)) return "absent";
  // (temporary directories are looked for apart, by leftovers())
  const names = readdirSync(b).filter((n) => !extra.includes(n) && !n.includes(".boci-unpack-")).sort();
  if (names.length === 0) return "absent";
  const mtree = names.filter((n) => n.endsWith(".mtree"));
  const rest = names.filter((n) => !n.endsWith(".mtree"));
  if (mtree.length !== 1 || rest.join(",") !== [...BUNDLE_FILES].sort().join(",")) return `partial: ${names.join(",")}`;
  const walk = readJson(join(b, "umoci.json")).from_descriptor_path.descriptor_walk;
  const m = walk[walk.length - 1].digest.split(":")[1];
  return mtree[0] === `sha256_${m}.mtree` ? "complete" : `umoci.json names ${m}, mtree is ${mtree[0]}`;
}

function layerEntries(r: () => number, files: number, opts: { locked?: boolean } = {}): TarEntrySpec[] {
  const out: TarEntrySpec[] = [dir("etc/"), file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), file("etc/group", "root:x:0:\n")];
  const dirs = Math.ceil(files / 25);
  for (let d = 0; d < dirs; d++) {
    out.push(dir(`usr/d${d}/`));
    for (let i = 0; i < 25 && d * 25 + i < files; i++) out.push(file(`usr/d${d}/f${i}`, "x".repeat(500 + Math.floor(r() * 3000))));
  }
  if (opts.locked) {
    // directories unreadable in the image: a rootless unpack must still be able to remove them
    out.unshift(dir("usr/"));
    out.push(dir("locked/", { mode: 0o000 }), dir("locked/inner/", { mode: 0o000 }), file("locked/inner/f", "f"), file("locked/g", "g", { mode: 0o000 }));
  }
  return out;
}

/** A summary line per kind, printed at the end. */
const summary: string[] = [];

test("SIGINT/SIGTERM at random moments of unpack, repack, insert and config", async () => {
  const r = rng(SEED);
  const s = scratch("boci-interrupt-");
  const L = join(s, "layout");
  ok(["init", "--layout", L]);
  makeImage(L, "base", [makeTar(layerEntries(r, 150, { locked: true }))]);
  const baseDigest = tags(L).get("base")!;
  const t0 = Date.now();

  // Fixtures: one repack bundle per slot (a changing file each run), an insert source tree.
  const bundles = Array.from({ length: BATCH }, (_, i) => join(s, `rb${i}`));
  for (const b of bundles) ok(["unpack", "--no-progress", "--image", `${L}:base`, b]);
  let touch = 0;
  const change = (b: string) => {
    mkdirSync(join(b, "rootfs", "new"), { recursive: true });
    for (let k = 0; k < 40; k++) writeFileSync(join(b, "rootfs", "new", `c${k}`), `${touch++}\n`.repeat(50));
  };
  const src = join(s, "insert-src");
  for (let d = 0; d < 4; d++) {
    mkdirSync(join(src, `d${d}`), { recursive: true });
    for (let i = 0; i < 25; i++) writeFileSync(join(src, `d${d}`, `f${i}`), "y".repeat(200 + i * 40));
  }
  const U = join(s, "u");
  mkdirSync(U);

  let seq = 0;
  const argsFor = (kind: Kind, slot: number, n: number, refresh: boolean): { args: string[]; tag?: string; target?: string } => {
    switch (kind) {
      case "unpack": { const target = join(U, `b${n}`); return { args: ["unpack", "--no-progress", "--image", `${L}:base`, target], target }; }
      case "repack": { const tag = `rep${n}`; return { args: ["repack", "--no-progress", ...(refresh ? ["--refresh-bundle"] : []), "--image", `${L}:${tag}`, bundles[slot]!], tag }; }
      case "insert": { const tag = `ins${n}`; return { args: ["insert", "--image", `${L}:base`, "--tag", tag, src, `/opt/ins${n}`], tag }; }
      case "config": { const tag = `cfg${n}`; return { args: ["config", "--image", `${L}:base`, "--tag", tag, "--config.env", `N=${n}`, "--config.label", `l=${n}`], tag }; }
    }
  };

  for (const kind of ["unpack", "repack", "insert", "config"] as Kind[]) {
    const k0 = Date.now();
    // The run time as the loop sees it: BATCH at once.
    if (kind === "repack") for (const b of bundles) change(b);
    // (then kept up to date from the runs that finish: the machine's load changes)
    let T = await measure(BATCH, (i) => argsFor(kind, i, seq++, false).args);
    const T0 = T;
    if (kind === "unpack") for (const n of readdirSync(U)) rmSync(join(U, n), { recursive: true, force: true });
    const counts = { finished: 0, interrupted: 0, early: 0, late: 0, reruns: 0 };
    for (let done = 0; done < RUNS; done += BATCH) {
      const runs = Array.from({ length: BATCH }, (_, slot) => {
        const n = seq++;
        const sig: Sig = r() < 0.5 ? "SIGINT" : "SIGTERM";
        const delay = Math.floor(r() * T);
        const refresh = kind === "repack" && r() < 0.5;
        // unpack into: a new directory, an existing empty one, an existing one with a file
        const variant = kind === "unpack" ? Math.floor(r() * 3) : 0;
        const a = argsFor(kind, slot, n, refresh);
        if (kind === "repack") change(bundles[slot]!);
        if (a.target && variant > 0) {
          mkdirSync(a.target);
          if (variant === 2) writeFileSync(join(a.target, "keep"), "keep\n");
        }
        const before = kind === "repack" ? readFileSync(join(bundles[slot]!, "umoci.json"), "utf8") : "";
        return runWithSignal(a.args, delay, sig).then((o) => ({ ...a, o, sig, delay, variant, refresh, slot, before }));
      });
      const results = await Promise.all(runs);
      const ctx = (x: (typeof results)[number]) => `${kind} #${done} ${x.sig}@${x.delay}ms of ${T.toFixed(0)}ms (${x.args.join(" ")})`;
      const cls = results.map((x) => classify(x.o, x.sig, ctx(x)));
      cls.forEach((c) => counts[c]++);
      results.forEach((x, i) => { if (cls[i] === "finished" && !x.o.sent) T = 0.8 * T + 0.2 * x.o.ms; });

      // The layout: valid, no temporary files, tags old or new.
      const v = boci(["validate", "--layout", L]);
      if (v.code !== 0) throw new Error(`${kind} batch ${done}: validate exited ${v.code}: ${v.stdout}${v.stderr}`);
      const tmp = join(L, ".boci-tmp");
      expect(existsSync(tmp) ? readdirSync(tmp) : []).toEqual([]);
      expect(leftovers(L)).toEqual([]);
      const now = tags(L);
      expect(now.get("base")).toBe(baseDigest);
      // (validate --layout has checked every tag's image: a tag is absent or complete)
      const rerun: number[] = [];
      const stoppedUnpacks: number[] = [];
      for (const [i, x] of results.entries()) {
        if (x.tag && cls[i] === "finished") expect(now.has(x.tag)).toBe(true);
        if (kind === "repack") {
          // the bundle names the old image or (refresh, finished) the new one, with its mtree
          const b = bundles[x.slot]!;
          expect(bundleState(b)).toBe("complete");
          expect(leftovers(b)).toEqual([]);
          const meta = readFileSync(join(b, "umoci.json"), "utf8");
          if (!x.refresh || cls[i] === "early") expect(meta).toBe(x.before);
          else if (cls[i] === "finished") expect(meta).not.toBe(x.before);
        }
        if (x.target) {
          const extra = x.variant === 2 ? ["keep"] : [];
          const st = bundleState(x.target, extra);
          if (st !== "absent" && st !== "complete") throw new Error(`${ctx(x)}: bundle is ${st}`);
          if (cls[i] === "finished") expect(st).toBe("complete");
          if (x.variant > 0) expect(existsSync(x.target)).toBe(true);
          if (x.variant === 2) expect(readFileSync(join(x.target, "keep"), "utf8")).toBe("keep\n");
          expect(leftovers(x.target)).toEqual([]);
          // a signal after the bundle was in place (130/143, bundle complete): nothing to rerun
          if (cls[i] !== "finished" && st === "complete") counts.late++;
          else if (cls[i] !== "finished") stoppedUnpacks.push(i);
        } else if (x.tag && cls[i] !== "finished" && now.has(x.tag)) counts.late++;
      }
      if (kind === "unpack") expect(leftovers(U)).toEqual([]);
      // The same command again succeeds where it was stopped: two stopped unpacks (their bundle
      // absent) and one stopped run of the other commands per batch (to keep the time down).
      const stopped = kind === "unpack" ? stoppedUnpacks : results.map((_, i) => i).filter((i) => cls[i] !== "finished");
      for (let k = 0; k < (kind === "unpack" ? 2 : 1) && stopped.length; k++) rerun.push(stopped.splice(Math.floor(r() * stopped.length), 1)[0]!);
      await Promise.all(rerun.map(async (i) => {
        const x = results[i]!;
        counts.reruns++;
        const o = await runWithSignal(x.args, 1e9, "SIGTERM");
        if (o.code !== 0) throw new Error(`${ctx(x)}: rerun exited ${o.code}: ${o.stderr}`);
        if (x.target) expect(bundleState(x.target, x.variant === 2 ? ["keep"] : [])).toBe("complete");
        if (x.tag) expect(tags(L).has(x.tag)).toBe(true);
      }));
      for (const x of results) if (x.target) rmSync(x.target, { recursive: true, force: true });
    }
    summary.push(`${kind}: run time ${T0.toFixed(0)} ms at first, ${T.toFixed(0)} ms at the end (${BATCH} at once); ${counts.interrupted} interrupted (130/143; ${counts.late} of them after the work was in place), ${counts.finished} finished first, ${counts.early} killed before the handlers were installed; ${counts.reruns} reruns; ${((Date.now() - k0) / 1000).toFixed(1)} s`);
    console.log(`interrupt: ${summary.at(-1)}`);
    // Signals must land while the command works, not all before start-up or after the end.
    // config does its work in a few milliseconds after a start-up of ~100: few land there.
    expect(counts.interrupted).toBeGreaterThanOrEqual(kind === "config" ? 3 : RUNS / 5);
  }
  const v = boci(["validate", "--layout", L]);
  expect(v.code).toBe(0);
  console.log(`interrupt: ${((Date.now() - t0) / 1000).toFixed(1)} s in all`);
}, 240000);

test("SIGKILL during unpack: the rerun succeeds and removes the dead process's temporary directory", async () => {
  const r = rng(SEED + 1);
  const s = scratch("boci-interrupt-kill-");
  const L = join(s, "layout");
  ok(["init", "--layout", L]);
  makeImage(L, "base", [makeTar(layerEntries(r, 150, { locked: true }))]);
  const U = join(s, "u");
  mkdirSync(U);
  const T = await measure(1, () => ["unpack", "--no-progress", "--image", `${L}:base`, join(U, "m")]);
  rmSync(join(U, "m"), { recursive: true });
  let leftBehind = 0;
  let killed = 0;
  let partial = 0;
  for (let n = 0; n < 16; n++) {
    const target = join(U, `k${n}`);
    const existing = n % 2 === 1;
    if (existing) mkdirSync(target);
    const args = ["unpack", "--no-progress", "--image", `${L}:base`, target];
    const o = await runWithSignal(args, Math.floor(T * r()), "SIGKILL");
    if (o.signal === "SIGKILL") killed++;
    else expect(o.code).toBe(0);
    const left = [...leftovers(U), ...leftovers(target)];
    leftBehind += left.length;
    const st = bundleState(target);
    if (st !== "absent" && st !== "complete") {
      // Into an existing directory the bundle's names are moved in by one rename each, rootfs
      // last (README, known limits): a SIGKILL between two of them leaves the first few, in that
      // order, and nothing else. A rerun replaces .boci-stat and umoci.json; it refuses (exit 5)
      // once the manifest or config.json is there, rather than mix two unpacks.
      const names = readdirSync(target).filter((x) => !x.includes(".boci-unpack-"));
      const order = [".boci-stat", "umoci.json", names.find((x) => x.endsWith(".mtree")) ?? "(mtree)", "config.json"];
      if (!existing || names.length === 0 || names.length >= order.length || [...names].sort().join() !== order.slice(0, names.length).sort().join()) {
        throw new Error(`SIGKILL ${n}: bundle is ${st}`);
      }
      partial++;
      if (names.length > 2) {
        expect(boci(args).code).toBe(5);
        rmSync(target, { recursive: true });
      }
    }
    if (st === "complete") rmSync(target, { recursive: true });
    if (existing) mkdirSync(target, { recursive: true });
    ok(args);
    expect(bundleState(target)).toBe("complete");
    expect(leftovers(U)).toEqual([]);
    expect(leftovers(target)).toEqual([]);
  }
  expect(killed).toBeGreaterThanOrEqual(6);
  expect(leftBehind).toBeGreaterThan(0);
  console.log(`interrupt: SIGKILL: ${killed} of 16 unpacks killed (run time ${T.toFixed(0)} ms), ${leftBehind} temporary directories left behind, every one removed by the rerun; ${partial} killed between the final renames`);
}, 60000);

const canDrop = isRoot && have("setpriv");
if (!canDrop) console.log("interrupt: rootless test skipped (needs root and setpriv to run as uid 65534)");

test.skipIf(!canDrop)("rootless unpack as an unprivileged user, interrupted: mode-0000 directories are removed too", async () => {
  const r = rng(SEED + 2);
  const s = scratch("boci-interrupt-rootless-");
  chmodSync(s, 0o755);
  const L = join(s, "layout");
  ok(["init", "--layout", L]);
  makeImage(L, "base", [makeTar(layerEntries(r, 150, { locked: true }))]);
  Bun.spawnSync(["chmod", "-R", "a+rX", L]);
  const U = join(s, "u");
  mkdirSync(U);
  chownSync(U, NOBODY, NOBODY);
  const args = (t: string) => ["unpack", "--rootless", "--no-progress", "--image", `${L}:base`, t];
  const T = await measure(2, (i) => ["unpack", "--rootless", "--no-progress", "--image", `${L}:base`, join(U, `m${i}`)]);
  const counts = { finished: 0, interrupted: 0, early: 0 };
  for (let n = 0; n < 24; n += 2) {
    const results = await Promise.all([0, 1].map(async (k) => {
      const target = join(U, `r${n + k}`);
      const sig: Sig = r() < 0.5 ? "SIGINT" : "SIGTERM";
      const o = await runWithSignal(args(target), Math.floor(r() * T), sig, { nobody: true });
      return { target, sig, o, c: classify(o, sig, `rootless unpack ${sig}`) };
    }));
    for (const x of results) {
      counts[x.c]++;
      const st = bundleState(x.target);
      if (st !== "absent" && st !== "complete") throw new Error(`rootless ${x.sig}: bundle is ${st}`);
      expect(leftovers(U)).toEqual([]);
      if (x.c !== "finished" && st === "absent") {
        const o = await runWithSignal(args(x.target), 1e9, "SIGTERM", { nobody: true });
        if (o.code !== 0) throw new Error(`rootless rerun exited ${o.code}: ${o.stderr}`);
      }
      expect(bundleState(x.target)).toBe("complete");
    }
  }
  expect(counts.interrupted).toBeGreaterThanOrEqual(4);
  // And at a known moment: once config.json is in the temporary directory, every layer has been
  // applied and the locked directories are mode 0000 again; the signal must still remove it all.
  let tail = 0;
  for (let n = 0; n < 4; n++) {
    const target = join(U, `tail${n}`);
    const sig: Sig = n % 2 ? "SIGINT" : "SIGTERM";
    const p = Bun.spawn(["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", BIN, ...args(target)], { stdout: "ignore", stderr: "pipe", stdin: "ignore" });
    let locked = false;
    while (p.exitCode === null) {
      const t = readdirSync(U).find((x) => x.startsWith(`.tail${n}.boci-unpack-`));
      if (t && existsSync(join(U, t, "config.json"))) {
        locked = (Bun.spawnSync(["stat", "-c", "%a", join(U, t, "rootfs", "locked")]).stdout.toString().trim() === "0");
        p.kill(sig);
        break;
      }
      await Bun.sleep(0);
    }
    await p.exited;
    const o: Outcome = { code: p.exitCode, signal: p.signalCode === null ? null : String(p.signalCode), sent: true, stderr: await new Response(p.stderr).text(), ms: 0 };
    if (o.code === 0) continue;
    expect(classify(o, sig, `rootless tail ${sig}`)).toBe("interrupted");
    expect(bundleState(target)).toBe("absent");
    expect(leftovers(U)).toEqual([]);
    if (locked) tail++;
  }
  expect(tail).toBeGreaterThanOrEqual(1);
  console.log(`interrupt: rootless: ${tail} of 4 signalled with mode-0000 directories in the temporary directory, all removed`);
  console.log(`interrupt: rootless: run time ${T.toFixed(0)} ms; ${counts.interrupted} interrupted, ${counts.finished} finished first, ${counts.early} killed before the handlers were installed`);
}, 90000);
