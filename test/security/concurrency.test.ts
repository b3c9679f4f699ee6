/**
 * Concurrency: 20 processes mutate one layout at once — tags, config changes into different
 * tags, repacks of different bundles into different tags, an insert, and gc running alongside.
 * boci waits on its locks, so every process succeeds; afterwards no update is lost and no
 * reachable blob was deleted.
 */
import { expect, test } from "bun:test";
import { writeFileSync, mkdirSync, cpSync, existsSync } from "node:fs";
import { join } from "node:path";
import { boci, ok, scratch, BIN } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";
import { makeTar, makeImage, file, dir } from "../helpers/image";
import { rng, tags } from "./lib";

const ROUNDS = 3;
const N_TAG = 8, N_CONFIG = 4, N_REPACK = 4, N_INSERT = 1, N_GC = 3; // 20 processes a round

test("20 processes mutating one layout at once all succeed, nothing is lost", async () => {
  const r = rng(7);
  const s = scratch("boci-conc-");
  const L = join(s, "layout");
  ok(["init", "--layout", L]);
  const base = makeImage(L, "base", [makeTar([dir("etc/"), file("etc/hello", "hello\n")])]);

  // one unpacked bundle, copied per repack, each copy with its own changes
  const proto = join(s, "proto");
  ok(["unpack", "--no-progress", "--image", `${L}:base`, proto]);
  const src = join(s, "src");
  mkdirSync(src);
  writeFileSync(join(src, "inserted"), "inserted\n");

  const expected = new Map<string, (d: string) => void>();
  for (let round = 0; round < ROUNDS; round++) {
    const jobs: { args: string[]; tag?: string }[] = [];
    for (let i = 0; i < N_TAG; i++) jobs.push({ args: ["tag", "--image", `${L}:base`, `r${round}t${i}`], tag: `r${round}t${i}` });
    for (let i = 0; i < N_CONFIG; i++) jobs.push({ args: ["config", "--image", `${L}:base`, "--tag", `r${round}cfg${i}`, "--config.env", `I=${round}.${i}`], tag: `r${round}cfg${i}` });
    for (let i = 0; i < N_REPACK; i++) {
      const b = join(s, `bundle-${round}-${i}`);
      cpSync(proto, b, { recursive: true });
      const body = Buffer.alloc(128 << 10);
      for (let k = 0; k < body.length; k++) body[k] = Math.floor(r() * 256);
      writeFileSync(join(b, "rootfs", `file-${round}-${i}`), body);
      jobs.push({ args: ["repack", "--no-progress", "--image", `${L}:r${round}rep${i}`, b], tag: `r${round}rep${i}` });
    }
    for (let i = 0; i < N_INSERT; i++) jobs.push({ args: ["insert", "--image", `${L}:base`, "--tag", `r${round}ins${i}`, src, `/opt/r${round}`], tag: `r${round}ins${i}` });
    for (let i = 0; i < N_GC; i++) jobs.push({ args: ["gc", "--layout", L] });
    expect(jobs.length).toBe(20);
    // shuffle (seeded) so gc starts at different points among the writers
    for (let i = jobs.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [jobs[i], jobs[j]] = [jobs[j]!, jobs[i]!]; }

    const results = await Promise.all(jobs.map(async (j) => {
      const p = Bun.spawn([BIN, ...j.args], { stdout: "pipe", stderr: "pipe" });
      const timer = setTimeout(() => p.kill("SIGKILL"), 60000);
      const code = await p.exited;
      clearTimeout(timer);
      return { ...j, code, signal: p.signalCode, stderr: await new Response(p.stderr).text() };
    }));
    const failed = results.filter((x) => x.code !== 0);
    if (failed.length) throw new Error(`round ${round}: ${failed.length} processes failed:\n${failed.map((x) => `  ${x.args.join(" ")} → ${x.code} ${x.signal ?? ""}: ${x.stderr.trim()}`).join("\n")}`);
    for (const x of results) expect(x.stderr).not.toContain("    at ");
    for (const x of results) if (x.tag) expected.set(x.tag, x.args[0] === "tag" ? (d) => expect(d).toBe(base.manifest.digest) : () => {});

    // no lost update: every tag made so far (this round and earlier) is present and complete
    const now = tags(L);
    for (const [t, check] of expected) {
      const d = now.get(t);
      if (d === undefined) throw new Error(`round ${round}: tag ${t} lost (tags: ${[...now.keys()].join(" ")})`);
      check(d);
    }
    expect(now.get("base")).toBe(base.manifest.digest);
    const v = boci(["validate", "--layout", L]);
    if (v.code !== 0) throw new Error(`round ${round}: validate exited ${v.code}: ${v.stdout}${v.stderr}`);
    expect(checkLayout(L)).toEqual([]);
  }

  // every image still complete: stat each non-alias tag
  for (const t of tags(L).keys()) {
    if (/t\d+$/.test(t)) continue;
    const st = boci(["stat", "--image", `${L}:${t}`]);
    if (st.code !== 0) throw new Error(`stat ${t} exited ${st.code}: ${st.stderr}`);
  }
  expect(boci(["stat", "--image", `${L}:r0t0`]).code).toBe(0);
  expect(tags(L).size).toBe(1 + ROUNDS * (N_TAG + N_CONFIG + N_REPACK + N_INSERT));
}, 180000);

/** The referrer digests `boci referrers` lists for `ref` (a layout and tag). */
function referrerDigests(ref: string): string[] {
  const r = boci(["referrers", "--image", ref, "--json"]);
  if (r.code !== 0) throw new Error(`referrers ${ref} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout).manifests.map((d: { digest: string }) => d.digest);
}

test("attach, referrers of referrers, tag, rm and gc at once: no referrer of a reachable image is lost", async () => {
  const s = scratch("boci-conc-ref-");
  const L = join(s, "layout");
  ok(["init", "--layout", L]);
  makeImage(L, "base", [makeTar([dir("etc/"), file("etc/hello", "hello\n")])]);
  // an artifact tagged so that referrers of it can be attached by tag
  writeFileSync(join(s, "seed.txt"), "seed\n");
  const seed = JSON.parse(ok(["attach", "--json", "--image", `${L}:base`, "--artifact-type", "application/vnd.seed", "--tag", "seed", join(s, "seed.txt")]).stdout).manifest.digest as string;
  const onBase = new Set<string>([seed]);
  const onSeed = new Set<string>();
  const ROUNDS_REF = 2;
  for (let round = 0; round < ROUNDS_REF; round++) {
    const jobs: { args: string[]; on?: Set<string> }[] = [];
    for (let i = 0; i < 6; i++) {
      const f = join(s, `f-${round}-${i}.json`);
      writeFileSync(f, JSON.stringify({ round, i, pad: "x".repeat(64 << 10) }));
      jobs.push({ args: ["attach", "--json", "--image", `${L}:base`, "--artifact-type", "application/vnd.conc", f], on: onBase });
    }
    for (let i = 0; i < 4; i++) {
      const f = join(s, `g-${round}-${i}.txt`);
      writeFileSync(f, `sig ${round} ${i}\n`);
      jobs.push({ args: ["attach", "--json", "--image", `${L}:seed`, "--artifact-type", "application/vnd.sig", f], on: onSeed });
    }
    // throwaway images and artifacts, tagged and removed while the rest runs
    for (let i = 0; i < 3; i++) jobs.push({ args: ["config", "--image", `${L}:base`, "--tag", `tmp${round}-${i}`, "--config.env", `T=${i}`] });
    for (let i = 0; i < 2; i++) jobs.push({ args: ["rm", "--image", `${L}:tmp${round - 1}-${i}`] });
    for (let i = 0; i < 5; i++) jobs.push({ args: ["gc", "--layout", L] });
    expect(jobs.length).toBe(20);
    const results = await Promise.all(jobs.map(async (j) => {
      const p = Bun.spawn([BIN, ...j.args], { stdout: "pipe", stderr: "pipe" });
      const timer = setTimeout(() => p.kill("SIGKILL"), 60000);
      const code = await p.exited;
      clearTimeout(timer);
      return { ...j, code, stdout: await new Response(p.stdout).text(), stderr: await new Response(p.stderr).text() };
    }));
    const failed = results.filter((x) => x.code !== 0);
    if (failed.length) throw new Error(`round ${round}: ${failed.length} processes failed:\n${failed.map((x) => `  ${x.args.join(" ")} → ${x.code}: ${x.stderr.trim()}`).join("\n")}`);
    for (const x of results) expect(x.stderr).not.toContain("    at ");
    for (const x of results) if (x.on) x.on.add(JSON.parse(x.stdout).manifest.digest);

    // every referrer attached so far is still listed, and everything it names is there
    expect(new Set(referrerDigests(`${L}:base`))).toEqual(onBase);
    expect(new Set(referrerDigests(`${L}:seed`))).toEqual(onSeed);
    const v = boci(["validate", "--layout", L]);
    if (v.code !== 0) throw new Error(`round ${round}: validate exited ${v.code}: ${v.stdout}${v.stderr}`);
    expect(checkLayout(L)).toEqual([]);
  }
  // untagging the artifact its referrers name keeps them all: it refers to a tagged image
  ok(["rm", "--image", `${L}:seed`]);
  expect(ok(["gc", "--layout", L]).stderr).toBe("");
  // (seed itself is no index.json entry any more, so it is not listed, but it is kept)
  expect(new Set(referrerDigests(`${L}:base`))).toEqual(new Set([...onBase].filter((d) => d !== seed)));
  // and untagging the image too keeps every referrer (gc never deletes one), each named
  const baseDigest = tags(L).get("base")!;
  ok(["rm", "--image", `${L}:base`]);
  const g = ok(["gc", "--layout", L]);
  expect(g.stderr.split("\n").filter((l) => l.includes("kept referrer")).length).toBe(onBase.size - 1 + onSeed.size);
  expect(checkLayout(L)).toEqual([]);
  for (const d of [baseDigest, ...onBase, ...onSeed]) expect(existsSync(join(L, "blobs", ...d.split(":")))).toBe(true);
}, 120000);
