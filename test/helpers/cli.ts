/** Run the real binary (dist/boci, built by `npm test`) and make scratch directories. */
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "bun:test";
import { removeTreeForce } from "../../src/util/cleanup";

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

/** Run a peer program (skopeo, umoci, …) that must succeed; its stdout. Throws with its stderr otherwise. */
export function runPeer(cmd: string[]): string {
  const p = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")} exited ${p.exitCode}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

export function have(tool: string): boolean {
  return Bun.spawnSync(["sh", "-c", `command -v ${tool}`]).exitCode === 0;
}

const dirs: string[] = [];
/**
 * A fresh scratch directory, removed after the test file that first loaded this module (bun test
 * runs every file in one process and loads a module once, so that afterAll belongs to one
 * file), and in any case when the test process exits. Trees a rootless unpack left without
 * u+rwx are opened up to be removed.
 */
export function scratch(prefix = "boci-test-"): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}
/** Remove every scratch directory made so far (test/helpers/preload.ts runs it after all files). */
export function removeScratch(): void {
  for (const d of dirs.splice(0)) {
    try { removeTreeForce(d); } catch { /* reported by npm test's TMPDIR check */ }
  }
}
afterAll(removeScratch);
process.on("exit", removeScratch);

export const isRoot = process.getuid?.() === 0;

/**
 * A full disk to test against: a 2 MiB tmpfs mounted on a scratch directory, unmounted after the
 * calling file's (or describe block's) tests. `mounted` is false, with a warning that the tests
 * named by `what` are skipped, where it cannot be (not root, no mount permission).
 */
export function smallTmpfs(prefix: string, what: string): { mnt: string; mounted: boolean } {
  const mnt = join(scratch(prefix), "mnt");
  mkdirSync(mnt);
  const mounted = isRoot && sh(`mount -t tmpfs -o size=2m tmpfs '${mnt}'`).code === 0;
  if (!mounted) console.warn(`skipping ${what}: cannot mount a 2 MiB tmpfs on ${mnt} (needs root and mount permission)`);
  afterAll(() => { if (mounted) sh(`umount '${mnt}'`); });
  return { mnt, mounted };
}
