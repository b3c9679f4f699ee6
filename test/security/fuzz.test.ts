/**
 * Runs the mutation fuzzer (scripts/fuzz.ts) with seed 1: no crash, stack trace, hang or escape
 * on any mutated seed image, nor on the structural "swap" images (a directory with deferred
 * metadata replaced by a symlink pointing outside the bundle, then written below and whited out
 * through; unpacked as root and with --rootless).
 *
 * Two passes: 60 s as boci runs on this kernel (openat2), then 30 s with BOCI_NO_OPENAT2=1 in the
 * fuzzer's environment, which every boci it spawns inherits (the openat fallback of kernels
 * before 5.6). The fallback pass is shorter to keep the suite's runtime reasonable: iterations are
 * deterministic for a seed, so it replays the first half or so of the openat2 pass's iterations
 * on the other path, and it must reach the same rate (50 iterations a minute, so 25 in 30 s).
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { BIN } from "../helpers/cli";

const PASSES = [
  { fallback: false, seconds: 60 },
  { fallback: true, seconds: 30 },
];

for (const { fallback, seconds } of PASSES) {
  describe(fallback ? "fuzz [openat fallback, BOCI_NO_OPENAT2=1]" : "fuzz [openat2]", () => {
    test(`fuzz: seed 1 for ${seconds} s finds no crash, hang, stack trace or escape`, async () => {
      const script = join(import.meta.dir, "../../scripts/fuzz.ts");
      const env: Record<string, string | undefined> = { ...process.env };
      if (fallback) env.BOCI_NO_OPENAT2 = "1";
      else delete env.BOCI_NO_OPENAT2;
      const p = Bun.spawn([process.execPath, script, "--seed", "1", "--seconds", String(seconds), "--bin", BIN], { stdout: "pipe", stderr: "pipe", env });
      const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
      const code = await p.exited;
      if (code !== 0) throw new Error(`fuzz${fallback ? " (BOCI_NO_OPENAT2=1)" : ""} exited ${code}:\n${stdout}\n${stderr}`);
      console.log(stdout.trim());
      expect(stdout).toMatch(/^fuzz: \d+ iterations, 0 failures$/m);
      const n = Number(/fuzz: (\d+) iterations/.exec(stdout)?.[1]);
      expect(n).toBeGreaterThanOrEqual(Math.ceil((50 * seconds) / 60));
    }, 180000);
  });
}
