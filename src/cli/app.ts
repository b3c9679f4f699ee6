/**
 * The command-line app: builds cac from the command specs, normalises argv (see spec.ts),
 * runs the matched command. Errors propagate to main.ts, which prints one line and exits.
 */
import cac from "cac";
import { UsageError, explainNoSpace } from "../errors";
import { setLogLevel, isLogLevel, log } from "../util/log";
import { type CommandDef, type OptSpec, Opts, normalizeArgv, cacName } from "./spec";
import { VERSION, IMAGE_SPEC_VERSION, RUNTIME_SPEC_VERSION } from "../version";
import { commands } from "./commands";
import { parseImageRef } from "./common";

export const globalOptions: OptSpec[] = [
  { flag: "log", value: "<level>", desc: "set the log level (debug, info, warn, error, fatal)" },
  { flag: "verbose", desc: "alias for --log=info" },
  { flag: "help", short: "h", desc: "show help" },
  { flag: "version", short: "v", desc: "print the version" },
];

function versionText(): string {
  return `boci version ${VERSION}\nimage spec: ${IMAGE_SPEC_VERSION}\nruntime spec: ${RUNTIME_SPEC_VERSION}\n`;
}

function optionLabel(o: OptSpec): string {
  const names = [o.flag, ...(o.aliases ?? [])].map((n) => `--${cacName(n)}`);
  if (o.short) names.unshift(`-${o.short}`);
  return names.join(", ") + (o.value ? ` ${o.value}` : "");
}

/** Undo the dashed internal names in help text. */
function redot(text: string, all: OptSpec[]): string {
  let t = text;
  for (const o of all) for (const n of [o.flag, ...(o.aliases ?? [])]) if (n.includes(".")) t = t.replaceAll(`--${cacName(n)}`, `--${n}`);
  return t.replace(/\braw-(\w[\w-]*)/g, "raw $1");
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
  const { argv: norm, given, command } = normalizeArgv(argv, commands, globalOptions);
  if (given.has("verbose") && given.has("log")) throw new UsageError("--log=* and --verbose are mutually exclusive");
  const cli = cac("boci");
  const allSpecs: OptSpec[] = [...globalOptions];
  cli.option("--log <level>", "set the log level (debug, info, warn, error, fatal)", { default: undefined });
  cli.option("--verbose", "alias for --log=info");
  // Start-up: a command line naming a command only needs that command's definition in cac
  // (the full set, 30-odd commands with their options, costs milliseconds to build).
  // Top-level help, --version and unknown words get them all.
  const registered = command && !given.has("help") ? [command] : commands;
  for (const def of registered) {
    const argSpec = def.args.map((a) => `[${a}]`).join(" ");
    const c = cli.command(`${def.name.replace(" ", "-")} ${argSpec}`.trim(), def.description, { allowUnknownOptions: false });
    for (const a of def.aliases ?? []) c.alias(a);
    for (const o of def.options) {
      allSpecs.push(o);
      c.option(optionLabel(o), o.desc, o.repeat ? { type: [String] } : undefined);
    }
    c.action(async (...params: unknown[]) => {
      const raw = params[params.length - 1] as Record<string, unknown>;
      const positional = (params.slice(0, -1) as (string | undefined)[]).filter((x): x is string => x !== undefined);
      const extra = (cli.args ?? []).slice(def.args.length);
      const min = def.minArgs ?? def.args.length;
      if (positional.length < min || positional.length > def.args.length || extra.length) {
        const want = min === def.args.length ? `${min}` : `${min} to ${def.args.length}`;
        throw new UsageError(`${def.name}: expected ${want} argument${def.args.length === 1 ? "" : "s"}${def.args.length ? ` (${def.args.join(" ")})` : ""}, got ${positional.length + extra.length}`);
      }
      const opts = new Opts(raw, given);
      try {
        await def.run(positional, opts);
      } catch (e) {
        const how = noSpaceRollback[def.name]?.(positional, opts);
        throw how ? explainNoSpace(e, { context: def.name, ...how }) : e;
      }
    });
  }
  cli.help((sections) => {
    // Hide hidden commands from the main help.
    for (const s of sections) {
      if (s.title === "Commands") {
        s.body = s.body.split("\n").filter((line) => !commands.some((c) => c.hidden && line.trim().startsWith(c.name.replace(" ", "-")))).join("\n");
      }
      if (s.title?.startsWith("For more info")) {
        s.body = s.body.split("\n").filter((line) => !commands.some((c) => c.hidden && line.includes(` ${c.name.replace(" ", "-")} `))).join("\n");
      }
      s.body = redot(s.body, allSpecs);
      if (s.title) s.title = redot(s.title, allSpecs);
    }
    return sections;
  });
  cli.version(VERSION);
  cli.globalCommand.versionNumber = VERSION;
  cli.outputVersion = () => out(versionText());

  if (norm.length === 0) { cli.outputHelp(); return; }
  const parsed = cli.parse(["boci", "boci", ...norm], { run: false });
  const lvl = given.has("verbose") ? "info" : (parsed.options.log as string | undefined)?.replace(/^\u0001/, "");
  if (lvl !== undefined) {
    if (!isLogLevel(lvl)) throw new UsageError(`--log: unknown level ${JSON.stringify(lvl)}`);
    setLogLevel(lvl);
  }
  if (parsed.options.help || parsed.options.version) return;
  if (!cli.matchedCommand) {
    const word = parsed.args[0];
    if (word !== undefined) throw new UsageError(`unknown command ${JSON.stringify(word)}; see 'boci --help'`);
    cli.outputHelp();
    return;
  }
  log.debug(`running ${cli.matchedCommandName}`);
  try {
    await cli.runMatchedCommand();
  } catch (e) {
    const msg = (e as Error).message ?? "";
    if (e instanceof Error && !(e instanceof UsageError) && /^(Unknown option|Unused args|option `|missing required args)/.test(msg)) {
      throw new UsageError(redot(msg.replace(/`/g, ""), allSpecs));
    }
    throw e;
  }
}
