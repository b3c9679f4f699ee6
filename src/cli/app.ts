/**
 * The command-line app. spec.ts checks argv against the command specs and rewrites it; cac
 * parses that and dispatches to the one command registered (the one argv names: building all
 * 16 would cost start-up), whose action checks the positionals cac found and runs the command
 * with the options cac parsed. cac's own help and version output are not used (help.ts prints
 * urfave/cli's layout). Errors propagate to main.ts, which prints one line and exits; an error
 * that is not a BociError gets the command's name as its context here (main adds only the
 * "boci: " prefix).
 */
import type * as Cac from "cac";
import { BociError, UsageError, addContext, explainNoSpace } from "../errors";
import { setLogLevel, isLogLevel, log } from "../util/log";
import { normalJit, normalJitSoon, ftlOff } from "../util/jit";
import {
  type CommandDef, type OptSpec, type HelpTopic, Opts, HELP_COMMAND, HELP_ALIAS,
  normalizeArgv, optsFromCac, checkPositionals, helpTopic, lastBool, cacCommandName, cacOption, cacKey, SENTINEL,
} from "./spec";
import { VERSION, IMAGE_SPEC_VERSION, RUNTIME_SPEC_VERSION } from "../version";
import { registry, allCommands } from "./commands";
import type * as Common from "./common";
import type * as Help from "./help";

export const globalOptions: OptSpec[] = [
  { flag: "verbose", desc: "alias for --log=info" },
  { flag: "quiet", short: "q", desc: "keep warnings off stderr: only errors are printed (alias for --log=error)" },
  { flag: "log", value: "<level>", desc: "set the log level (debug, info, [warn], error, fatal)", choices: ["debug", "info", "warn", "error", "fatal"] },
  { flag: "help", short: "h", desc: "show help" },
  { flag: "version", short: "v", desc: "print the version" },
];

function versionText(): string {
  return `boci version ${VERSION}\nimage spec: ${IMAGE_SPEC_VERSION}\nruntime spec: ${RUNTIME_SPEC_VERSION}\n`;
}

function helpText(t: HelpTopic): string {
  // (help texts, and every command's spec for the listings, are loaded only for a help page)
  const { appHelp, commandHelp, groupHelp } = require("./help") as typeof Help;
  if (t.kind === "command") return commandHelp(t.command);
  if (t.kind === "group") return groupHelp(t.group, allCommands());
  return appHelp(allCommands(), globalOptions);
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
    return { writing: `a blob in ${(require("./common") as typeof Common).parseImageRef(image).layout}`, rolledBack: "the partial blob was removed and index.json is unchanged" };
  },
};

type Parsed = Record<string, unknown> & { "--"?: string[] };

/** A cac action's positionals: the variadic `[...args]`, then what came after `--`. */
function positionals(params: unknown[]): { args: string[]; options: Parsed } {
  const options = params[params.length - 1] as Parsed;
  return { args: [...(params[0] as string[]), ...(options["--"] ?? [])], options };
}

/** --log/--verbose as cac parsed them (before or after the command; the last one counts). */
function applyLogLevel(options: Parsed): void {
  const verbose = lastBool(options.verbose);
  const given = options.log === undefined ? undefined : [options.log].flat().at(-1);
  const logLevel = typeof given === "string" && given.startsWith(SENTINEL) ? given.slice(1) : undefined;
  if (verbose && logLevel !== undefined) throw new UsageError("--log=* and --verbose are mutually exclusive");
  const quiet = lastBool(options.quiet);
  if (quiet && (verbose || logLevel !== undefined)) throw new UsageError("--quiet and --log=*/--verbose are mutually exclusive");
  if (quiet) { setLogLevel("error"); return; }
  const lvl = verbose ? "info" : logLevel;
  if (lvl !== undefined) {
    if (!isLogLevel(lvl)) throw new UsageError(`--log: unknown level ${JSON.stringify(lvl)}`);
    setLogLevel(lvl);
  }
}

async function runCommand(def: CommandDef, args: string[], opts: Opts): Promise<void> {
  log.debug(`running ${def.name}${ftlOff() ? " without the FTL JIT" : ""}`);
  if (def.longRunning) normalJit(); else normalJitSoon();
  try {
    await def.run(args, opts);
  } catch (e) {
    const how = noSpaceRollback[def.name]?.(args, opts);
    const err = how ? explainNoSpace(e, { context: def.name, ...how }) : e;
    throw err instanceof BociError ? err : addContext(def.name, err);
  }
}

export async function runApp(argv: string[], out: (s: string) => void): Promise<void> {
  // `boci --version` alone (what scripts ask to learn which tool they have) needs no parser.
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-v")) { out(versionText()); return; }
  const { argv: norm, command } = normalizeArgv(argv, registry, globalOptions);
  // Loaded here, not at the top: a require() inside a function is a chunk loaded at that call.
  const { cac } = require("cac") as typeof Cac;
  // No cli.help()/cli.version(): those make cac print its own texts.
  const cli = cac("boci");
  // A global flag the command defines itself (copy's --quiet) is registered once, as the command's.
  const globals = globalOptions.filter((g) => !command || command === HELP_COMMAND || !command.options.some((o) => o.flag === g.flag));
  for (const g of globals) cli.option(cacOption(g), g.desc);

  if (command === HELP_COMMAND) {
    cli.command(`${HELP_COMMAND} [...topic]`, "shows a list of commands or help for one command").alias(HELP_ALIAS)
      .action((...params: unknown[]) => { out(helpText(helpTopic(positionals(params).args, allCommands()))); });
  } else if (command) {
    const def = command;
    const c = cli.command(`${cacCommandName(def.name)} [...args]`, def.description);
    for (const a of def.aliases ?? []) c.alias(cacCommandName(a));
    const keys = new Set(globals.map(cacKey));
    for (const o of def.options) {
      // Two flags cac would store under one key would read as one (`--a.b`, `--a-b`).
      if (keys.has(cacKey(o))) throw new Error(`internal error: ${def.name}: --${o.flag} shares cac's key ${cacKey(o)}`);
      keys.add(cacKey(o));
      c.option(cacOption(o), o.desc);
    }
    c.action(async (...params: unknown[]) => {
      const { args, options } = positionals(params);
      // As urfave/cli: `CMD --help` prints the help whatever else is on the command line.
      if (lastBool(options.help)) { out((require("./help") as typeof Help).commandHelp(def)); return; }
      checkPositionals(def, args);
      applyLogLevel(options);
      await runCommand(def, args, optsFromCac(options, def.options));
    });
  }

  const parsed = cli.parse(["boci", "boci", ...norm], { run: false });
  if (!cli.matchedCommand) {
    if (command) throw new Error(`internal error: cac did not match ${norm.join(" ")}`);
    // Only global flags: help (also none at all), or the version.
    out(!lastBool(parsed.options.help) && lastBool(parsed.options.version) ? versionText() : helpText({ kind: "app" }));
    return;
  }
  try {
    await cli.runMatchedCommand();
  } catch (e) {
    // cac's own checks (unknown option, missing value): normalizeArgv refuses all of these first.
    if (e instanceof Error && e.name === "CACError") throw new UsageError(e.message.replaceAll("`", ""));
    throw e;
  }
}
