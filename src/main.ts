/**
 * Entry point: runs the app and maps any error to one line on stderr and an exit code
 * (architecture.md "Errors"). A stack trace only with --log debug.
 */
import { BociError, ExitCode, addContext } from "./errors";
import { runApp } from "./cli/app";
import { log } from "./util/log";
import { writeOut, writeErr } from "./util/stdio";
import { installSignalCleanup } from "./util/cleanup";

async function main(): Promise<number> {
  // SIGINT/SIGTERM remove what the command registered (util/cleanup.ts) and exit 130/143.
  installSignalCleanup();
  try {
    await runApp(process.argv.slice(2), writeOut);
    return 0;
  } catch (e) {
    const err = e instanceof BociError ? e : (addContext(process.argv[2] && !process.argv[2].startsWith("-") ? process.argv[2] : "boci", e) as BociError);
    let msg = err.message;
    if (err.code === "EACCES" || err.code === "EPERM") msg += " (maybe --rootless will help?)";
    writeErr(`boci: ${msg}\n`);
    if (log.level >= 4 && e instanceof Error && e.stack) writeErr(e.stack + "\n");
    return err.exitCode ?? ExitCode.general;
  }
}

main().then((code) => {
  process.exitCode = code;
});
