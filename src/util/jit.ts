import { inCompiledBinary } from "./binary";
import { log } from "./log";

/**
 * The JIT's pace. The binary starts with JavaScriptCore's tier-up thresholds scaled up
 * (scripts/build.ts: --compile-jit-policy=START_JIT_POLICY), so that the run-once code of a
 * short command (`stat`, `tag`, `config`) stays in the interpreter instead of waking the JIT
 * compiler threads and paging in their code: about 7 ms and 2-4 MiB of a 30 ms `stat`. A command
 * that works through many entries or bytes (CommandDef.longRunning, and every worker thread)
 * restores the normal pace at once; any other command gets it back after JIT_GRACE_MS, so a short
 * command that turns out long (gc of a big layout) is slowed for that long at most.
 */

/** The tier-up scale the binary is built with (scripts/build.ts passes it to --compile-jit-policy). */
export const START_JIT_POLICY = 100;
/** How long a command not marked long-running keeps the start-up pace. */
export const JIT_GRACE_MS = 50;

/** The normal tier-up thresholds from now on. */
export function normalJit(): void {
  Bun.unsafe.setJITPolicy(1);
}

/** Restore the normal pace after JIT_GRACE_MS, unless the process has exited by then. */
export function normalJitSoon(): void {
  setTimeout(normalJit, JIT_GRACE_MS).unref();
}

/** JavaScriptCore's option for its top tier, read from the environment at start-up only. */
const FTL_OPTION = "BUN_JSC_useFTLJIT";

/**
 * For a command about to work through a big tree (unpack of many MiB of layers, repack of a
 * bundle with many entries): run it in a process whose JIT has no FTL tier, by replacing this
 * process (execve: same pid, descriptors and arguments) with the binary run again with
 * BUN_JSC_useFTLJIT=0, which JavaScriptCore reads only at start-up. The FTL compiler's own code
 * and memory cost 10-16 MiB of peak RSS on 50,000 and 220,000 files and 7-10 MiB on a repack of
 * 50,000, for no gain in time, against one more start-up (~25 ms, which is why a small image is
 * not worth it). Call it before the command has made anything (every descriptor Bun opens is
 * close-on-exec, so a lock is released). Nothing happens where the option is already set (by
 * the user, or by the first run: so never twice) or outside the compiled binary; when execve
 * fails the command goes on as it is (said in the debug log).
 */
export function restartWithoutFtl(why: string): void {
  if (!canRestartWithoutFtl()) return;
  log.debug(`restarting without the FTL JIT: ${why}`);
  try {
    (require("../sys") as typeof import("../sys")).execve(process.execPath, [process.argv0, ...process.argv.slice(2)], { ...process.env, [FTL_OPTION]: "0" });
  } catch (e) {
    log.debug(`restart failed, going on: ${(e as Error).message}`);
  }
}

/** Whether restartWithoutFtl would restart (the option unset, the compiled binary). */
export function canRestartWithoutFtl(): boolean {
  // (in the compiled binary argv[1] is the embedded entry point; argv[2…] are the command's)
  return process.env[FTL_OPTION] === undefined && inCompiledBinary();
}

/** Layers (compressed bytes) from which unpack restarts without the FTL tier. */
export const FTL_RESTART_LAYER_BYTES = 64 << 20;
/** A bundle's mtree manifest size (about 140 bytes per entry) from which repack restarts without it. */
export const FTL_RESTART_MTREE_BYTES = 4 << 20;

/** Whether this process runs without the FTL tier (BUN_JSC_useFTLJIT=0: by restartWithoutFtl, or the caller's). */
export function ftlOff(): boolean {
  return process.env[FTL_OPTION] === "0";
}
