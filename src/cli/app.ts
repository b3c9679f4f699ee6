/**
 * The command-line app: parses argv (spec.ts), prints help or the version, or runs the command.
 * Errors propagate to main.ts, which prints one line and exits; an error that is not a
 * BociError gets the command's name as its context here (main adds only the "boci: " prefix).
 */
import { BociError, UsageError, addContext, explainNoSpace } from "../errors";
import { setLogLevel, isLogLevel, log } from "../util/log";
import { type OptSpec, type HelpTopic, Opts, parseArgv } from "./spec";
import { VERSION, IMAGE_SPEC_VERSION, RUNTIME_SPEC_VERSION } from "../version";
import { commands } from "./commands";
import { parseImageRef } from "./common";
import { appHelp, commandHelp, groupHelp } from "./help";

export const globalOptions: OptSpec[] = [
  { flag: "verbose", desc: "alias for --log=info" },
  { flag: "log", value: "<level>", desc: "set the log level (debug, info, [warn], error, fatal)" },
  { flag: "help", short: "h", desc: "show help" },
  { flag: "version", short: "v", desc: "print the version" },
];

function versionText(): string {
  return `boci version ${VERSION}\nimage spec: ${IMAGE_SPEC_VERSION}\nruntime spec: ${RUNTIME_SPEC_VERSION}\n`;
}

function helpText(t: HelpTopic): string {
  if (t.kind === "command") return commandHelp(t.command);
  if (t.kind === "group") return groupHelp(t.group, commands);
  return appHelp(commands, globalOptions);
}

/**
 * What a command has undone when a write fails for want of space, for the error line (see
 * errors.ts explainNoSpace). Only what the command's own clean-up guarantees: unpack removes the
 * rootfs it made (bundle/unpack.ts); raw add-layer removes its temporary blob and writes
 * index.json last, atomically (cas/layout.ts).
 */
const noSpaceRollback: Record<string, (args: string[], opts: Opts) => { writing: string; rolledBack: string } | undefined> = {
  unpack: (args) => (args[0] ? { writing: args[0], rolledBack: "the rootfs was removed" } : undefined),
  "raw add-layer": (_args, opts) => {
    const image = opts.get("image");
    if (!image) return undefined;
    return { writing: `a blob in ${parseImageRef(image).layout}`, rolledBack: "the partial blob was removed and index.json is unchanged" };
  },
};

export async function runApp(argv: string[], out: (s: string) => void): Promise<void> {
  const { invocation: inv, log: logLevel, verbose } = parseArgv(argv, commands, globalOptions);
  // As urfave/cli: help and --version come first, whatever else the command line holds.
  if (inv.kind === "help") { out(helpText(inv.topic)); return; }
  if (inv.kind === "version") { out(versionText()); return; }
  if (verbose && logLevel !== undefined) throw new UsageError("--log=* and --verbose are mutually exclusive");
  const lvl = verbose ? "info" : logLevel;
  if (lvl !== undefined) {
    if (!isLogLevel(lvl)) throw new UsageError(`--log: unknown level ${JSON.stringify(lvl)}`);
    setLogLevel(lvl);
  }
  const { command: def, args, opts } = inv;
  log.debug(`running ${def.name}`);
  try {
    await def.run(args, opts);
  } catch (e) {
    const how = noSpaceRollback[def.name]?.(args, opts);
    const err = how ? explainNoSpace(e, { context: def.name, ...how }) : e;
    throw err instanceof BociError ? err : addContext(def.name, err);
  }
}
