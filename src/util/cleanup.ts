/**
 * Clean-up on SIGINT and SIGTERM: a command registers what it would remove if it were stopped
 * now (a temporary file, a half-built bundle) and unregisters it once the work is in place.
 * On a signal every registered action runs (newest first, synchronously, errors ignored) and the
 * process exits 130 (SIGINT) or 143 (SIGTERM), as a shell reports a death by that signal.
 *
 * SIGKILL cannot be caught: whatever is registered then stays behind, named so that a rerun and
 * `gc` recognise it (temporary names carry the writer's pid).
 */
import * as fs from "node:fs";

type Action = () => void;

const actions = new Map<number, Action>();
let nextId = 1;
let installed = false;
let exiting = false;

/**
 * Register `fn` to run if the process is stopped by SIGINT/SIGTERM. Returns the function that
 * unregisters it (call it when the work is complete, or after cleaning up yourself).
 */
export function onInterrupt(fn: Action): () => void {
  installSignalCleanup();
  const id = nextId++;
  actions.set(id, fn);
  return () => { actions.delete(id); };
}

/** Register a path (file or tree) to remove on SIGINT/SIGTERM; returns the unregister function. */
export function removeOnInterrupt(p: string): () => void {
  return onInterrupt(() => removeTreeForce(p));
}

/** Run every registered action now (newest first); used by the signal handlers and tests. */
export function runInterruptActions(): void {
  const list = [...actions.entries()].reverse();
  actions.clear();
  for (const [, fn] of list) {
    try { fn(); } catch { /* best effort: we are exiting */ }
  }
}

/**
 * One turn of the event loop. Signal handlers run only there, so a command calls this before a
 * step that makes its work visible (a rename into place, a tag update): a signal that came
 * during the synchronous work before it is acted on first, and the step never happens.
 */
export function yieldToSignals(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Install the SIGINT/SIGTERM handlers once (main.ts does it at start-up). */
export function installSignalCleanup(): void {
  if (installed) return;
  installed = true;
  const handler = (signal: "SIGINT" | "SIGTERM") => () => {
    if (exiting) return;
    exiting = true;
    const had = actions.size;
    runInterruptActions();
    // (nothing registered: the signal came before any temporary file, or after the work was done)
    try { process.stderr.write(`boci: interrupted by ${signal}${had ? "; removed this command's temporary files" : ""}\n`); } catch { /* closed */ }
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  handlers = { SIGINT: handler("SIGINT"), SIGTERM: handler("SIGTERM") };
  process.on("SIGINT", handlers.SIGINT);
  process.on("SIGTERM", handlers.SIGTERM);
}

let handlers: { SIGINT: () => void; SIGTERM: () => void } | null = null;

/**
 * Run `fn`, a call that blocks the thread (a flock(2) wait for a busy layout), with the default
 * disposition of SIGINT/SIGTERM: JavaScript handlers cannot run while the thread is blocked, so a
 * Ctrl-C would otherwise wait for the lock. The process then dies of the signal at once (exit
 * 130/143 to its shell) and leaves what a SIGKILL leaves, which the rerun and `gc` clear.
 */
export function withDefaultSignals<T>(fn: () => T): T {
  const h = handlers;
  if (!h) return fn();
  process.off("SIGINT", h.SIGINT);
  process.off("SIGTERM", h.SIGTERM);
  try {
    return fn();
  } finally {
    process.on("SIGINT", h.SIGINT);
    process.on("SIGTERM", h.SIGTERM);
  }
}

/**
 * Whether a process with this pid exists (signal 0: ESRCH means gone; EPERM means it exists but
 * belongs to someone else). Our own pid counts as gone: callers ask about temporary names made
 * before this process created any of its own (a container's boci is often pid 1 every time).
 */
export function isOtherProcessAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/**
 * Remove the entries of `dir` that `pidOf` recognises as temporary names (it returns the
 * writer's pid) and whose writer is gone: what a SIGKILL left behind. Returns the names removed;
 * errors are ignored (a leftover we cannot remove only costs space).
 */
export function removeStaleTemps(dir: string, pidOf: (name: string) => number | undefined): string[] {
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return []; }
  const removed: string[] = [];
  for (const n of names) {
    const pid = pidOf(n);
    if (pid === undefined || isOtherProcessAlive(pid)) continue;
    try { removeTreeForce(`${dir}/${n}`); removed.push(n); } catch { /* leave it */ }
  }
  return removed;
}

/**
 * rm -rf that never follows a symlink and copes with directories left without u+rwx (a rootless
 * unpack's mode-0000 directories): opens them up (chmod u+rwx, the directory itself, reached by
 * lstat) and retries.
 */
export function removeTreeForce(p: string): void {
  try {
    fs.rmSync(p, { recursive: true, force: true });
    return;
  } catch { /* fall through: open up and retry */ }
  openUpTree(p);
  fs.rmSync(p, { recursive: true, force: true });
}

/**
 * chmod u+rwx every directory at and below `p` (each reached by lstat, symlinks never followed)
 * so the tree can be listed and removed. Errors are ignored: what cannot be opened stays shut.
 */
export function openUpTree(p: string): void {
  let st: fs.Stats;
  try { st = fs.lstatSync(p); } catch { return; }
  if (!st.isDirectory()) return;
  try { fs.chmodSync(p, (st.mode & 0o7777) | 0o700); } catch { /* not ours */ }
  let names: string[] = [];
  try { names = fs.readdirSync(p); } catch { return; }
  for (const n of names) openUpTree(`${p}/${n}`);
}
