/**
 * Build dist/boci: one executable from `bun build --compile`, with each worker entry file
 * listed as an extra entrypoint so the compiled binary can start it.
 */
import { readdirSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { START_JIT_POLICY } from "../src/util/jit";

const root = join(import.meta.dir, "..");
const workers = readdirSync(join(root, "src/worker")).filter((f) => f.endsWith(".worker.ts")).map((f) => `./src/worker/${f}`);
mkdirSync(join(root, "dist"), { recursive: true });
// BOCI_OUTFILE: build elsewhere (parallel work on one checkout must not replace a binary under a running test).
// --bytecode: precompiled JavaScript (start-up). --format=esm --splitting: every module that is
// only require()d inside a function (the commands, tar, zlib, the registry client; see
// src/cli/commands.ts) becomes a chunk of its own, loaded at that call, so a short command loads
// and deserializes only the bytecode it runs (one CommonJS file of 0.67 MB cost every command
// about 5 ms before its first line ran, measured with a hello world that merely contains it).
// --compile-jit-policy: tier-up thresholds scaled up at start, so a short command's run-once code
// stays in the interpreter; long commands and workers restore the normal pace (src/util/jit.ts).
// --root . fixes embedded paths: the worker is /$bunfs/root/src/worker/task.worker.js (src/worker/pool.ts).
// The binary must not pick up a .env or bunfig.toml from whatever directory it runs in.
const args = ["build", "--compile", "--bytecode", "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig", "--format=esm", "--splitting", `--compile-jit-policy=${START_JIT_POLICY}`, "--root", ".", "--minify-syntax", "--minify-whitespace", "./src/main.ts", ...workers, "--outfile", process.env.BOCI_OUTFILE ?? "dist/boci"];
const p = Bun.spawnSync([process.execPath, ...args], { cwd: root, stdout: "inherit", stderr: "inherit" });
if (p.exitCode !== 0) {
  console.error("build failed");
  process.exit(p.exitCode ?? 1);
}

// The man pages, from the same command specs as --help (src/cli/man.ts): dist/man/boci.1 and
// one page per command. Written whatever the binary's --outfile (they depend on the source only).
{
  const { allPages } = await import("../src/cli/man");
  const commands = (await import("../src/cli/commands")).allCommands();
  const { globalOptions } = await import("../src/cli/app");
  const dir = join(root, "dist/man");
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of allPages(commands, globalOptions)) await Bun.write(join(dir, name), text);
}
