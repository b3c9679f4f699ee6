/**
 * Runs the mutation fuzzer (scripts/fuzz.ts) for 60 s with seed 1: no crash, stack trace, hang
 * or escape on any mutated seed image, nor on the structural "swap" images (a directory with
 * deferred metadata replaced by a symlink pointing outside the bundle, then written below and
 * whited out through; unpacked as root and with --rootless).
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { BIN } from "../helpers/cli";

test("fuzz: seed 1 for 60 s finds no crash, hang, stack trace or escape", async () => {
  const script = join(import.meta.dir, "../../scripts/fuzz.ts");
  const p = Bun.spawn([process.execPath, script, "--seed", "1", "--seconds", "60", "--bin", BIN], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const code = await p.exited;
  if (code !== 0) throw new Error(`fuzz exited ${code}:\n${stdout}\n${stderr}`);
  console.log(stdout.trim());
  expect(stdout).toMatch(/^fuzz: \d+ iterations, 0 failures$/m);
  const n = Number(/fuzz: (\d+) iterations/.exec(stdout)?.[1]);
  expect(n).toBeGreaterThanOrEqual(50);
}, 180000);
