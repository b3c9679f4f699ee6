/**
 * Command and option specs, and the command-line parser (urfave/cli v1 as umoci 0.6 uses it,
 * with boci's few extensions).
 *
 * - Global flags come before the command: `--log LEVEL`, `--verbose`, `-h/--help`,
 *   `-v/--version`. Any other flag there is a usage error (urfave: "flag provided but not
 *   defined"), never a silent exit.
 * - After the command: its own flags, `-h/--help`, and (boci) `--log`/`--verbose` again. Flags
 *   and positionals mix freely (urfave reorders them); `--` ends the flags.
 * - `-x` and `--x` are the same flag (Go's flag package); a value flag takes `--x=V` or the next
 *   argument verbatim, even when it starts with `-` or looks like a number.
 * - A boolean flag takes `--x=true|false` (Go's ParseBool spellings).
 * - `help`/`h` [COMMAND], and a command group (`raw`) alone, print help.
 * - Unknown flags are named as typed (`--config.bogus`).
 */
import { UsageError } from "../errors";

export interface OptSpec {
  /** the flag as users type it, without dashes: "config.user", "rootless" */
  flag: string;
  /** value placeholder ("<user>"); absent for boolean flags */
  value?: string;
  repeat?: boolean;
  desc: string;
  /** extra names (without dashes), e.g. "os" for "platform.os" */
  aliases?: string[];
  short?: string;
}

export interface CommandDef {
  /** "unpack", "raw unpack" */
  name: string;
  aliases?: string[];
  /** positional names, e.g. ["bundle"]; exact count is enforced (as umoci does) */
  args: string[];
  /** when set, fewer positionals (down to this many) are accepted too */
  minArgs?: number;
  description: string;
  hidden?: boolean;
  options: OptSpec[];
  run(args: string[], opts: Opts): Promise<void> | void;
}

/** Parsed option values with typed accessors. */
export class Opts {
  constructor(private readonly values: Map<string, string[]>, private readonly given: Set<string>) {}
  /** all values of a repeatable value flag, in order */
  all(flag: string): string[] {
    return [...(this.values.get(flag) ?? [])];
  }
  /** the value of a single-value flag (the last one given), or undefined */
  get(flag: string): string | undefined {
    const a = this.values.get(flag);
    return a?.length ? a[a.length - 1] : undefined;
  }
  /** a boolean flag: true when given (and not given as =false) */
  bool(flag: string): boolean {
    return this.given.has(flag);
  }
  /** whether the flag appeared on the command line */
  has(flag: string): boolean {
    return this.given.has(flag);
  }
}

/** Command groups: a word that only introduces subcommands (`raw unpack`). */
export const GROUPS: Record<string, string> = { raw: "advanced internal image tooling" };

/** What a command line asks for. */
export type HelpTopic = { kind: "app" } | { kind: "group"; group: string } | { kind: "command"; command: CommandDef };
export type Invocation =
  | { kind: "help"; topic: HelpTopic }
  | { kind: "version" }
  | { kind: "run"; command: CommandDef; args: string[]; opts: Opts };

export interface ParsedArgv {
  invocation: Invocation;
  /** --log's value, if given (before or after the command) */
  log?: string;
  verbose: boolean;
}

const TRUE = new Set(["1", "t", "T", "TRUE", "true", "True"]);
const FALSE = new Set(["0", "f", "F", "FALSE", "false", "False"]);

interface FlagArg { name: string; typed: string; inline?: string }

/** `--name=v` / `-name` → its parts, or null for a positional ("-", "", "x"). */
function flagArg(a: string): FlagArg | null {
  if (a.length < 2 || a[0] !== "-") return null;
  const body = a.startsWith("--") ? a.slice(2) : a.slice(1);
  const eq = body.indexOf("=");
  const name = eq < 0 ? body : body.slice(0, eq);
  return { name, typed: a.slice(0, a.length - body.length) + name, inline: eq < 0 ? undefined : body.slice(eq + 1) };
}

function indexSpecs(specs: OptSpec[]): Map<string, OptSpec> {
  const m = new Map<string, OptSpec>();
  for (const s of specs) {
    m.set(s.flag, s);
    for (const a of s.aliases ?? []) m.set(a, s);
    if (s.short) m.set(s.short, s);
  }
  return m;
}

function findCommand(commands: CommandDef[], name: string): CommandDef | undefined {
  return commands.find((c) => c.name === name || c.aliases?.includes(name));
}

/**
 * Parse argv (after the program name). Throws UsageError (exit 2, one line) for anything
 * malformed; nothing has been touched then.
 */
export function parseArgv(argv: string[], commands: CommandDef[], globals: OptSpec[]): ParsedArgv {
  const globalSpecs = indexSpecs(globals);
  const result: ParsedArgv = { invocation: { kind: "help", topic: { kind: "app" } }, verbose: false };
  const values = new Map<string, string[]>();
  const given = new Set<string>();

  /** Take flag `f` (known spec `spec`) at argv[i]; returns the next index. */
  const take = (f: FlagArg, spec: OptSpec, i: number): number => {
    if (spec.value) {
      let val: string;
      if (f.inline !== undefined) val = f.inline;
      else if (i + 1 < argv.length) val = argv[++i]!;
      else throw new UsageError(`flag --${spec.flag} needs a value`);
      given.add(spec.flag);
      const list = values.get(spec.flag);
      if (list) list.push(val); else values.set(spec.flag, [val]);
    } else {
      if (f.inline !== undefined && !TRUE.has(f.inline)) {
        if (!FALSE.has(f.inline)) throw new UsageError(`flag --${spec.flag} takes no value (or true/false), got ${JSON.stringify(f.inline)}`);
        given.delete(spec.flag);
        return i + 1;
      }
      given.add(spec.flag);
    }
    return i + 1;
  };

  // Global flags, up to the first word.
  let i = 0;
  while (i < argv.length) {
    const a = argv[i]!;
    if (a === "--") { i++; break; }
    const f = flagArg(a);
    if (!f) break;
    const spec = globalSpecs.get(f.name);
    if (!spec) throw new UsageError(`unknown global option ${f.typed}`);
    i = take(f, spec, i);
  }
  const globalsGiven = new Set(given);
  result.log = values.get("log")?.at(-1);
  result.verbose = given.has("verbose");
  // urfave checks --help, then --version, before it looks at the command.
  if (globalsGiven.has("help")) return result;
  if (globalsGiven.has("version")) { result.invocation = { kind: "version" }; return result; }
  if (i >= argv.length) return result;

  // The command word(s).
  const word = argv[i++]!;
  let command: CommandDef | undefined;
  if (word === "help" || word === "h") {
    result.invocation = { kind: "help", topic: helpTopic(argv.slice(i), commands) };
    return result;
  }
  if (word in GROUPS) {
    const sub = argv[i];
    const subFlag = sub === undefined ? null : flagArg(sub);
    if (sub === undefined || (subFlag && (subFlag.name === "help" || subFlag.name === "h"))) {
      result.invocation = { kind: "help", topic: { kind: "group", group: word } };
      return result;
    }
    if (subFlag) throw new UsageError(`${word}: unknown option ${subFlag.typed}`);
    if (sub === "help" || sub === "h") {
      const rest = argv.slice(i + 1);
      result.invocation = { kind: "help", topic: rest.length ? helpTopic([word, ...rest], commands) : { kind: "group", group: word } };
      return result;
    }
    command = findCommand(commands, `${word} ${sub}`);
    if (!command) throw new UsageError(`unknown command ${JSON.stringify(`${word} ${sub}`)}; see 'boci ${word} --help'`);
    i++;
  } else {
    command = findCommand(commands, word);
    if (!command) throw new UsageError(`unknown command ${JSON.stringify(word)}; see 'boci --help'`);
  }

  // The command's flags and positionals, in any order.
  const specs = indexSpecs([...command.options, ...globals.filter((g) => g.flag === "log" || g.flag === "verbose")]);
  const positional: string[] = [];
  let help = false;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") { positional.push(...argv.slice(i + 1)); break; }
    const f = flagArg(a);
    if (!f) { positional.push(a); continue; }
    if (f.name === "help" || f.name === "h") { help = true; continue; }
    const spec = specs.get(f.name);
    if (!spec) throw new UsageError(`${command.name}: unknown option ${f.typed}`);
    i = take(f, spec, i) - 1;
  }
  result.log = values.get("log")?.at(-1);
  result.verbose = given.has("verbose");
  if (help) { result.invocation = { kind: "help", topic: { kind: "command", command } }; return result; }

  const max = command.args.length;
  const min = command.minArgs ?? max;
  if (positional.length < min || positional.length > max) {
    const want = min === max ? `${min}` : `${min} to ${max}`;
    throw new UsageError(`${command.name}: expected ${want} argument${max === 1 ? "" : "s"}${max ? ` (${command.args.join(" ")})` : ""}, got ${positional.length}`);
  }
  // As umoci: an empty path or tag is never meant (and would name the current directory).
  const empty = positional.indexOf("");
  if (empty >= 0) {
    const what = command.minArgs === undefined ? command.args[empty] : `positional argument ${empty + 1}`;
    throw new UsageError(`${command.name}: ${what} cannot be empty`);
  }
  result.invocation = { kind: "run", command, args: positional, opts: new Opts(values, given) };
  return result;
}

/** `help [TOPIC...]`: the app, a group, or a command (by name or alias; `raw unpack` too). */
function helpTopic(words: string[], commands: CommandDef[]): HelpTopic {
  const w = words.filter((x) => !flagArg(x));
  if (!w.length) return { kind: "app" };
  if (w[0]! in GROUPS) {
    if (w.length === 1) return { kind: "group", group: w[0]! };
    const c = findCommand(commands, `${w[0]} ${w[1]}`);
    if (c) return { kind: "command", command: c };
    throw new UsageError(`no help topic for '${w[0]} ${w[1]}'`);
  }
  const c = findCommand(commands, w[0]!);
  if (!c) throw new UsageError(`no help topic for '${w[0]}'`);
  return { kind: "command", command: c };
}
