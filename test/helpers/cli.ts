/** Run the real binary (dist/boci, built by `npm test`) and make scratch directories. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "bun:test";

export const BIN = process.env.BOCI_BIN ?? join(import.meta.dir, "../../dist/boci");

export interface RunResult { code: number; stdout: string; stderr: string }

export function boci(args: string[], opts: { cwd?: string; env?: Record<string, string>; input?: string } = {}): RunResult {
  const p = Bun.spawnSync([BIN, ...args], {
    cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdout: "pipe", stderr: "pipe",
    stdin: opts.input !== undefined ? Buffer.from(opts.input) : "ignore",
  });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

/** Run and expect success; throws with stderr otherwise. */
export function ok(args: string[], opts: Parameters<typeof boci>[1] = {}): RunResult {
  const r = boci(args, opts);
  if (r.code !== 0) throw new Error(`boci ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r;
}

export function sh(cmd: string, opts: { cwd?: string; env?: Record<string, string> } = {}): RunResult {
  const p = Bun.spawnSync(["bash", "-c", cmd], { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

export function have(tool: string): boolean {
  return Bun.spawnSync(["sh", "-c", `command -v ${tool}`]).exitCode === 0;
}

const dirs: string[] = [];
/** A fresh scratch directory, removed after the test file. */
export function scratch(prefix = "boci-test-"): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

export const isRoot = process.getuid?.() === 0;
