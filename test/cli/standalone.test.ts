/** The built binary runs alone: no node, no bun, no node_modules, a bare PATH, any directory. */
import { expect, test } from "bun:test";
import { copyFileSync, chmodSync, existsSync } from "node:fs";
import { join } from "node:path";
import { BIN, scratch, sh } from "../helpers/cli";

test("dist/boci copied alone into an empty directory works with PATH=/usr/bin:/bin", () => {
  const dir = scratch("boci-standalone-");
  const bin = join(dir, "boci");
  copyFileSync(BIN, bin);
  chmodSync(bin, 0o755);
  const env = { PATH: "/usr/bin:/bin", HOME: dir };
  const run = (cmd: string) => Bun.spawnSync(["/bin/sh", "-c", cmd], { cwd: dir, env, stdout: "pipe", stderr: "pipe" });
  // No bun on this PATH (node may be installed system-wide; boci never runs it).
  expect(run("command -v bun || true").stdout.toString()).toBe("");
  const v = run("./boci --version");
  expect(v.exitCode).toBe(0);
  expect(v.stdout.toString()).toContain("boci version");
  const r = run("./boci init --layout l && ./boci new --image l:t && ./boci unpack --image l:t b && echo hi > b/rootfs/f && ./boci repack --image l:t2 b && ./boci ls --layout l");
  expect(r.stderr.toString()).toBe("");
  expect(r.exitCode).toBe(0);
  expect(r.stdout.toString()).toBe("t\nt2\n");
  expect(existsSync(join(dir, "node_modules"))).toBe(false);
});

test("a symlink named umoci runs boci with umoci's command line", () => {
  const dir = scratch("boci-symlink-");
  sh(`ln -s ${BIN} ${join(dir, "umoci")}`);
  const r = Bun.spawnSync([join(dir, "umoci"), "config", "--help"], { stdout: "pipe", stderr: "pipe" });
  expect(r.exitCode).toBe(0);
  expect(r.stdout.toString() + r.stderr.toString()).toContain("--no-history");
});
