/**
 * Entry point: runs the app and maps any error to one line on stderr and an exit code
 * (architecture.md "Errors"). A stack trace only with --log debug (or skopeo's --debug).
 * Invoked as `skopeo` (a symlink; a compiled binary's process.argv0 is the name it was run by)
 * it speaks skopeo's command line instead of umoci's (cli/skopeo.ts).
 */
import { BociError, ExitCode, describeErrno } from "./errors";
import { runApp } from "./cli/app";
import { log } from "./util/log";
import { writeOut, writeErr } from "./util/stdio";
import { installSignalCleanup, runInterruptActions } from "./util/cleanup";
import { escapeText } from "./util/escape";
import type * as SkopeoModule from "./cli/skopeo";

/** Whether this process was started through a link named `skopeo`. */
function invokedAsSkopeo(): boolean {
  const name = process.argv0.slice(process.argv0.lastIndexOf("/") + 1);
  return name === "skopeo";
}

async function main(): Promise<number> {
  // SIGINT/SIGTERM remove what the command registered (util/cleanup.ts) and exit 130/143.
  installSignalCleanup();
  try {
    // Loaded only when needed: a require() inside a function is a chunk loaded at that call.
    if (invokedAsSkopeo()) await (require("./cli/skopeo") as typeof SkopeoModule).runSkopeo(process.argv.slice(2), writeOut);
    else await runApp(process.argv.slice(2), writeOut);
    return 0;
  } catch (e) {
    // runApp gives a command's errors their context; anything else is printed as it is, so the
    // line has one "boci: " prefix whatever global flags came first.
    const err = e instanceof BociError ? e
      : new BociError(e instanceof Error ? ((e as NodeJS.ErrnoException).code ? describeErrno(e) : e.message) : String(e), { code: (e as NodeJS.ErrnoException)?.code, cause: e });
    let msg = err.message;
    if ((err.code === "EACCES" || err.code === "EPERM") && !invokedAsSkopeo()) msg += " (maybe --rootless will help?)";
    // The message may quote image data (tags, paths, history): no raw control character may
    // reach the terminal, and a newline in it must not split the one error line.
    writeErr(`boci: ${escapeText(msg)}\n`);
    if (log.level >= 4 && e instanceof Error && e.stack) writeErr(e.stack.split("\n").map((l) => escapeText(l)).join("\n") + "\n");
    return err.exitCode ?? ExitCode.general;
  }
}

let settled = false;
main().then((code) => {
  settled = true;
  // On success exit now: every write is synchronous (util/stdio.ts) and the command has awaited
  // all of its work, so nothing is left but tearing down idle workers and the runtime (about 8 ms
  // after an insert that used the pool). A failure may leave clean-up running (a temporary blob
  // being removed after a sibling task failed first): the loop drains before exit.
  if (code === 0) process.exit(0);
  process.exitCode = code;
});
// Last resort: the event loop emptied while the command was still waiting on something that
// will never come (a stream that stopped calling back). Never a silent exit 0 with the work half
// done: remove what the command registered for clean-up and fail.
let armed = false;
process.on("beforeExit", () => {
  if (settled) return;
  // The first time, let other beforeExit listeners' work run (a decoder fails itself on this
  // event: compress/index.ts); act only if the loop empties again with the command unsettled.
  if (!armed) { armed = true; setImmediate(() => {}); return; }
  settled = true;
  runInterruptActions();
  writeErr("boci: internal error: the command stopped before it finished (a stream stalled); its temporary files were removed\n");
  process.exitCode = ExitCode.general;
});
