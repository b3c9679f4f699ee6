/**
 * Crash safety: `repack`, `config`, `tag`, `insert` and `gc` processes are killed with SIGKILL
 * at random (seeded) moments while they write one layout. After every batch the layout is
 * valid, every tag names a complete image (the old or the new one), and no partially written
 * blob is visible under blobs/. At the end `gc` removes the temporary files left behind.
 */
import { expect, test } from "bun:test";
import { readFileSync, writeFileSync, readdirSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { boci, ok, scratch, BIN } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";
import { makeTar, makeImage, file, dir, sha256hex } from "../helpers/image";
import { rng, tags } from "./lib";

const SEED = 20240601;
const MIN_KILLS = 200;
const BATCH = 4;
const MAX_DELAY_MS = 150;

type Kind = "repack" | "config" | "config-mut" | "tag" | "insert" | "gc";
const KINDS: Kind[] = ["repack", "repack", "repack", "config", "config", "config-mut", "tag", "insert", "insert", "gc"];

/** Every file under blobs/ hashes to its name (no partial blob visible). */
function blobProblems(L: string): string[] {
  const out: string[] = [];
  const dirp = join(L, "blobs", "sha256");
  for (const n of readdirSync(dirp)) {
    if (!/^[a-f0-9]{64}$/.test(n)) { out.push(`blobs/sha256/${n}: not a digest name`); continue; }
    if (sha256hex(readFileSync(join(dirp, n))) !== n) out.push(`blobs/sha256/${n}: content does not hash to its name`);
  }
  return out;
}

/** Deterministic incompressible bytes. */
function noise(r: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = Math.floor(r() * 0xffffffff) >>> 0;
  for (let i = 0; i < n; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b.writeUInt32LE(x, i);
  }
  return b;
}

test("SIGKILL at random moments never leaves a broken layout", async () => {
  const r = rng(SEED);
  const s = scratch("boci-crash-");
  const L = join(s, "layout");
  ok(["init", "--layout", L]);
  const base = makeImage(L, "base", [makeTar([dir("etc/"), file("etc/hello", "hello\n"), file("data", noise(r, 64 << 10))])]);
  ok(["tag", "--image", `${L}:base`, "mut"]);

  // bundles with a few MiB of changes, so repack takes long enough to be killed mid-write
  const bundles: string[] = [];
  for (let i = 0; i < 2; i++) {
    const b = join(s, `bundle${i}`);
    ok(["unpack", "--no-progress", "--image", `${L}:base`, b]);
    writeFileSync(join(b, "rootfs", "big"), noise(r, 3 << 20));
    mkdirSync(join(b, "rootfs", "more"));
    for (let k = 0; k < 20; k++) writeFileSync(join(b, "rootfs", "more", `f${k}`), noise(r, 32 << 10));
    bundles.push(b);
  }
  const src = join(s, "insert-src");
  mkdirSync(src);
  writeFileSync(join(src, "blob"), noise(r, 1 << 20));
  writeFileSync(join(src, "small"), "small\n");

  let kills = 0;
  let finished = 0;
  let seq = 0;
  /** Temporary files seen after batches: evidence that kills landed mid-write. */
  const leftovers = new Set<string>();
  let mutDigests = new Set([tags(L).get("mut")!]);
  const baseDigest = base.manifest.digest;
  const t0 = Date.now();

  for (let batch = 0; kills < MIN_KILLS && batch < 200; batch++) {
    const runs = Array.from({ length: BATCH }, () => {
      const kind = KINDS[Math.floor(r() * KINDS.length)]!;
      const n = seq++;
      const delay = Math.floor(r() * (MAX_DELAY_MS + 1));
      let args: string[];
      let newTag: string | undefined;
      switch (kind) {
        case "repack": newTag = `rep${n}`; args = ["repack", "--no-progress", "--image", `${L}:${newTag}`, bundles[n % bundles.length]!]; break;
        case "config": newTag = `cfg${n}`; args = ["config", "--image", `${L}:base`, "--tag", newTag, "--config.env", `N=${n}`]; break;
        case "config-mut": args = ["config", "--image", `${L}:mut`, "--config.env", `M=${n}`]; break;
        case "tag": newTag = `t${n}`; args = ["tag", "--image", `${L}:base`, newTag]; break;
        case "insert": newTag = `ins${n}`; args = ["insert", "--image", `${L}:base`, "--tag", newTag, src, `/opt/ins${n}`]; break;
        case "gc": args = ["gc", "--layout", L]; break;
      }
      const p = Bun.spawn([BIN, ...args], { stdout: "ignore", stderr: "pipe" });
      let killed = false;
      const timer = setTimeout(() => {
        if (p.exitCode === null && p.signalCode === null) { killed = true; p.kill("SIGKILL"); }
      }, delay);
      const done = (async () => {
        const code = await p.exited;
        clearTimeout(timer);
        const stderr = await new Response(p.stderr).text();
        return { kind, args, newTag, killed: killed && p.signalCode === "SIGKILL", code, signal: p.signalCode, stderr };
      })();
      return done;
    });
    const results = await Promise.all(runs);
    const before = mutDigests;
    for (const x of results) {
      if (x.killed) { kills++; continue; }
      finished++;
      if (x.code !== 0) throw new Error(`batch ${batch}: ${x.args.join(" ")} exited ${x.code} (signal ${x.signal}) without being killed: ${x.stderr}`);
    }

    const tmpDir = join(L, ".boci-tmp");
    if (existsSync(tmpDir)) for (const n of readdirSync(tmpDir)) leftovers.add(n);
    const v = boci(["validate", "--layout", L]);
    if (v.code !== 0) throw new Error(`batch ${batch} (${results.map((x) => `${x.kind}${x.killed ? "†" : ""}`).join(",")}): validate exited ${v.code}: ${v.stdout}${v.stderr}`);
    expect(checkLayout(L)).toEqual([]);
    expect(blobProblems(L)).toEqual([]);

    const now = tags(L);
    expect(now.get("base")).toBe(baseDigest);
    for (const x of results) {
      if (!x.newTag) continue;
      const d = now.get(x.newTag);
      if (d === undefined) { expect(x.killed).toBe(true); continue; }
      if (x.kind === "tag") expect(d).toBe(baseDigest);
      const st = boci(["stat", "--image", `${L}:${x.newTag}`]);
      if (st.code !== 0) throw new Error(`batch ${batch}: stat ${x.newTag} exited ${st.code}: ${st.stderr}`);
    }
    // mut is either an earlier state or a complete new one made by a config-mut of this batch
    const mut = now.get("mut");
    expect(mut).toBeDefined();
    if (!before.has(mut!)) {
      expect(results.some((x) => x.kind === "config-mut")).toBe(true);
      const st = boci(["stat", "--image", `${L}:mut`]);
      expect(st.code).toBe(0);
    }
    mutDigests = new Set([mut!]);
  }

  expect(kills).toBeGreaterThanOrEqual(MIN_KILLS);
  console.log(`crash: ${kills} kills, ${finished} completed runs, ${seq} processes, ${leftovers.size} temporary files left by killed writers, ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const tmp = join(L, ".boci-tmp");
  console.log(`crash: ${existsSync(tmp) ? readdirSync(tmp).length : 0} temporary files left by killed processes before the final gc`);
  ok(["gc", "--layout", L]);
  expect(existsSync(tmp) ? readdirSync(tmp) : []).toEqual([]);
  expect(readdirSync(L).filter((n) => /tmp/i.test(n) && n !== ".boci-tmp")).toEqual([]);
  expect(readdirSync(join(L, "blobs")).filter((n) => n !== "sha256")).toEqual([]);
  const v = boci(["validate", "--layout", L]);
  if (v.code !== 0) throw new Error(`final validate exited ${v.code}: ${v.stdout}${v.stderr}`);
  expect(checkLayout(L)).toEqual([]);
  expect(blobProblems(L)).toEqual([]);
  for (const t of tags(L).keys()) {
    // every tag still resolves after gc (the tN tags all name base: one stat covers them)
    if (!/^t\d+$/.test(t)) {
      const st = boci(["stat", "--image", `${L}:${t}`]);
      if (st.code !== 0) throw new Error(`after gc: stat ${t} exited ${st.code}: ${st.stderr}`);
    }
  }
}, 240000);

test("SIGKILL at random moments during attach and gc never loses a referrer of a reachable image", async () => {
  const r = rng(SEED + 17);
  const s = scratch("boci-crash-ref-");
  const L = join(s, "layout");
  ok(["init", "--layout", L]);
  makeImage(L, "base", [makeTar([dir("etc/"), file("etc/hello", "hello\n")])]);
  // files large enough that a kill lands while they are streamed in
  const files: string[] = [];
  for (let i = 0; i < 4; i++) {
    const f = join(s, `payload${i}.bin`);
    writeFileSync(f, noise(r, (1 << 20) + i * 4096));
    files.push(f);
  }
  writeFileSync(join(s, "sig.txt"), "sig\n");
  ok(["attach", "--image", `${L}:base`, "--artifact-type", "application/vnd.seed", "--tag", "seed", join(s, "sig.txt")]);

  const listed = (tag: string): Set<string> => {
    const x = boci(["referrers", "--image", `${L}:${tag}`, "--json"]);
    if (x.code !== 0) throw new Error(`referrers ${tag} exited ${x.code}: ${x.stderr}`);
    return new Set(JSON.parse(x.stdout).manifests.map((d: { digest: string }) => d.digest));
  };
  let known = { base: listed("base"), seed: listed("seed") };
  let kills = 0;
  let attached = 0;
  const leftovers = new Set<string>();
  const MIN_REF_KILLS = 40;
  for (let batch = 0; kills < MIN_REF_KILLS && batch < 60; batch++) {
    const runs = Array.from({ length: BATCH }, (_, k) => {
      const pick = r();
      const delay = Math.floor(r() * (MAX_DELAY_MS + 1));
      const n = batch * BATCH + k;
      const args = pick < 0.5 ? ["attach", "--json", "--image", `${L}:base`, "--artifact-type", "application/vnd.payload", "--annotation", `n=${n}`, files[n % files.length]!]
        : pick < 0.75 ? ["attach", "--json", "--image", `${L}:seed`, "--artifact-type", "application/vnd.sig", "--annotation", `n=${n}`, join(s, "sig.txt")]
        : ["gc", "--layout", L];
      const p = Bun.spawn([BIN, ...args], { stdout: "pipe", stderr: "pipe" });
      let killed = false;
      const timer = setTimeout(() => {
        if (p.exitCode === null && p.signalCode === null) { killed = true; p.kill("SIGKILL"); }
      }, delay);
      return (async () => {
        const code = await p.exited;
        clearTimeout(timer);
        return { args, code, killed: killed && p.signalCode === "SIGKILL", stdout: await new Response(p.stdout).text(), stderr: await new Response(p.stderr).text() };
      })();
    });
    const results = await Promise.all(runs);
    const done = { base: new Set<string>(), seed: new Set<string>() };
    for (const x of results) {
      if (x.killed) { kills++; continue; }
      if (x.code !== 0) throw new Error(`batch ${batch}: ${x.args.join(" ")} exited ${x.code} without being killed: ${x.stderr}`);
      if (x.args[0] === "attach") { attached++; done[x.args[3] === `${L}:base` ? "base" : "seed"].add(JSON.parse(x.stdout).manifest.digest); }
    }
    if (existsSync(join(L, ".boci-tmp"))) for (const f of readdirSync(join(L, ".boci-tmp"))) leftovers.add(f);
    const v = boci(["validate", "--layout", L]);
    if (v.code !== 0) throw new Error(`batch ${batch}: validate exited ${v.code}: ${v.stdout}${v.stderr}`);
    expect(checkLayout(L)).toEqual([]);
    expect(blobProblems(L)).toEqual([]);
    // every referrer listed before is listed still, and every attach that finished is listed
    const now = { base: listed("base"), seed: listed("seed") };
    for (const k of ["base", "seed"] as const) {
      for (const d of [...known[k], ...done[k]]) if (!now[k].has(d)) throw new Error(`batch ${batch}: referrer ${d} of ${k} lost`);
    }
    known = now;
  }
  expect(kills).toBeGreaterThanOrEqual(MIN_REF_KILLS);
  expect(attached).toBeGreaterThan(0);
  console.log(`crash (referrers): ${kills} kills, ${attached} attaches completed, ${known.base.size + known.seed.size} referrers, ${leftovers.size} temporary files left by killed writers`);
  ok(["gc", "--layout", L]);
  const tmp = join(L, ".boci-tmp");
  expect(existsSync(tmp) ? readdirSync(tmp) : []).toEqual([]);
  expect(listed("base")).toEqual(known.base);
  expect(listed("seed")).toEqual(known.seed);
  expect(checkLayout(L)).toEqual([]);
  expect(blobProblems(L)).toEqual([]);
}, 120000);
