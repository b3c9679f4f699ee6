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
