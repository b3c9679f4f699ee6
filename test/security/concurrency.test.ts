/**
 * Concurrency: 20 processes mutate one layout at once — tags, config changes into different
 * tags, repacks of different bundles into different tags, an insert, and gc running alongside.
 * boci waits on its locks, so every process succeeds; afterwards no update is lost and no
 * reachable blob was deleted.
 */
import { expect, test } from "bun:test";
import { writeFileSync, mkdirSync, cpSync } from "node:fs";
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
