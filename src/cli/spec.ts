/**
 * Command and option specs, and the command-line front end (urfave/cli v1 as umoci 0.6 uses it,
 * with boci's few extensions). cac parses and dispatches (app.ts); this file checks argv against
 * the specs first and rewrites it into a form cac's parser (mri) reads exactly:
 *
 * - Global flags come before the command: `--log LEVEL`, `--verbose`, `-h/--help`,
 *   `-v/--version`. Any other flag there is a usage error (urfave: "flag provided but not
 *   defined"), never a silent exit.
 * - After the command: its own flags, `-h/--help`, and (boci) `--log`/`--verbose` again. Flags
 *   and positionals mix freely (urfave reorders them); `--` ends the flags.
 * - `-x` and `--x` are the same flag (Go's flag package); a value flag takes `--x=V` or the next
 *   argument verbatim, even when it starts with `-`, looks like a number or is empty.
 * - A boolean flag takes `--x=true|false` (Go's ParseBool spellings).
 * - `help`/`h` [COMMAND], and a command group (`raw`) alone, print help.
 * - Unknown flags are named as typed (`--config.bogus`); cac would camel-case them and cut them
 *   at the dot, so they are refused here.
 *
 * What cac is given (normalizeArgv): every flag by its long name with dots as dashes; a value
 * flag as `--name=<SENTINEL>value` (mri casts "1.0" to a number, takes "" as no value and a
 * value starting with "-" as the next flag; the sentinel prefix stops all three); a boolean as
 * `--name=true|false`, and a `no-` flag, which cac and mri read as the negation of `name`, as
 * `--no-name` or `--name=true`; a two-word command as one word (`raw-unpack`); positionals as they
 * are, but from the first one that starts with "-" on after `--` (cac keeps those in
 * `options["--"]`). Help requests become the `help` command (`raw`, `raw --help` → `help raw`).
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
  /** the values the flag takes, when they are a fixed set (shell completion) */
  choices?: string[];
}

export interface CommandDef {
  /** "unpack", "raw unpack" */
  name: string;
  aliases?: string[];
  /** positional names, e.g. ["bundle"]; exact count is enforced (as umoci does) */
  args: string[];
  /** when set, fewer positionals (down to this many) are accepted too */
  minArgs?: number;
  /** the last name in `args` repeats: any number of positionals from minArgs up (no maximum) */
  variadic?: true;
  description: string;
  hidden?: boolean;
  /** works through many entries or bytes: the JIT keeps its normal pace from the start (util/jit.ts) */
  longRunning?: true;
  options: OptSpec[];
  run(args: string[], opts: Opts): Promise<void> | void;
}

/** Parsed option values with typed accessors. */
export class Opts {
  constructor(private readonly values: Map<string, string[]>, private readonly given: Set<string>, private readonly bools: Map<string, boolean> = new Map()) {}
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
  /** a boolean flag's value when it was given (`--x`, `--x=true`: true; `--x=false`: false), else undefined */
  boolValue(flag: string): boolean | undefined {
    return this.bools.get(flag);
  }
  /** whether the flag appeared on the command line */
  has(flag: string): boolean {
    return this.given.has(flag);
  }
}

/** Command groups: a word that only introduces subcommands (`raw unpack`). */
export const GROUPS: Record<string, string> = { raw: "advanced internal image tooling", index: "build and list multi-platform image indexes" };

export type HelpTopic = { kind: "app" } | { kind: "group"; group: string } | { kind: "command"; command: CommandDef };

/** The command name cac knows `help`/`h` by (its positionals are the topic words). */
export const HELP_COMMAND = "help";
export const HELP_ALIAS = "h";

export interface Normalized {
  /** argv for cac, after the program name */
  argv: string[];
  /**
   * The one command cac needs: a command, HELP_COMMAND, or none (only global flags: the app's
   * help or the version).
   */
  command?: CommandDef | typeof HELP_COMMAND;
}

/** Marks a value for mri, so that it stays a string, verbatim (see the header). */
export const SENTINEL = "\u0001";

/** A command's name in cac: one word (`raw unpack` → `raw-unpack`). */
export function cacCommandName(name: string): string {
  return name.replaceAll(" ", "-");
}

/** A flag's name on cac's command line: dots as dashes (cac reads a dot as a nested object). */
export function cacFlag(flag: string): string {
  return flag.replaceAll(".", "-");
}

/** The key cac stores a flag under: its camel-case rule, and `no-x` stored as `x` = false. */
export function cacKey(spec: OptSpec): string {
  const name = !spec.value && spec.flag.startsWith("no-") ? spec.flag.slice(3) : spec.flag;
  return cacFlag(name).replace(/([a-z])-([a-z])/g, (_m, a: string, b: string) => a + b.toUpperCase());
}

/** How to declare a flag to cac: `--name`, or `--name <value>` for a value flag. */
export function cacOption(spec: OptSpec): string {
  return `--${cacFlag(spec.flag)}${spec.value ? " <value>" : ""}`;
}

/** The Opts of a command, from the options cac parsed (values as normalizeArgv wrote them). */
export function optsFromCac(parsed: Record<string, unknown>, specs: OptSpec[]): Opts {
  const values = new Map<string, string[]>();
  const given = new Set<string>();
  const bools = new Map<string, boolean>();
  for (const spec of specs) {
    const v = parsed[cacKey(spec)];
    if (v === undefined) continue;
    const list = Array.isArray(v) ? (v as unknown[]) : [v];
    if (spec.value) {
      values.set(spec.flag, list.map((x) => {
        if (typeof x !== "string" || !x.startsWith(SENTINEL)) throw new Error(`internal error: cac read --${spec.flag} as ${JSON.stringify(x)}`);
        return x.slice(1);
      }));
      given.add(spec.flag);
    } else {
      if (!spec.flag.startsWith("no-")) bools.set(spec.flag, lastBool(list));
      if (lastBool(list) === !spec.flag.startsWith("no-")) given.add(spec.flag);
    }
  }
  return new Opts(values, given, bools);
}

/**
 * A boolean as cac leaves it: true/false, or "true"/"false" for a dashed name (mri knows cac's
 * camel-cased names as booleans, not the dashed ones it parses); the last one given wins.
 */
export function lastBool(v: unknown): boolean {
  const x = Array.isArray(v) ? v[v.length - 1] : v;
  return x === true || x === "true";
}

/** Positional count and emptiness (umoci's checks), before a command runs. */
export function checkPositionals(command: CommandDef, positional: string[]): void {
  const max = command.variadic ? Infinity : command.args.length;
  const min = command.minArgs ?? command.args.length;
  if (positional.length < min || positional.length > max) {
    const want = command.variadic ? `at least ${min}` : min === max ? `${min}` : `${min} to ${max}`;
    const names = command.args.join(" ") + (command.variadic ? "..." : "");
    throw new UsageError(`${command.name}: expected ${want} argument${max === 1 ? "" : "s"}${names ? ` (${names})` : ""}, got ${positional.length}`);
  }
  // As umoci: an empty path or tag is never meant (and would name the current directory).
  const empty = positional.indexOf("");
  if (empty >= 0) {
    const what = command.minArgs === undefined && !command.variadic ? command.args[empty] : `positional argument ${empty + 1}`;
    throw new UsageError(`${command.name}: ${what} cannot be empty`);
  }
}

/**
 * The positionals of a usage line, each name as `name(a)` writes it: optional ones (from minArgs
 * on) in brackets, and a variadic last one followed by `...` (help and man pages).
 */
export function positionalUsage(command: CommandDef, name: (a: string) => string): string {
  const n = command.args.length;
  return command.args.map((a, i) => {
    const repeat = command.variadic && i === n - 1 ? "..." : "";
    return command.minArgs !== undefined && i >= command.minArgs ? `[${name(a)}]${repeat}` : `${name(a)}${repeat}`;
  }).join(" ");
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

/** What argv matching needs of a command: its names (the full CommandDef has these too). */
export interface CommandName { name: string; aliases?: string[]; hidden?: boolean }

function findCommand<C extends CommandName>(commands: readonly C[], name: string): C | undefined {
  return commands.find((c) => c.name === name || c.aliases?.includes(name));
}

/** Positionals for cac: as they are until one starts with "-", then that one and the rest after `--`. */
class PositionalWriter {
  private tail: string[] | null = null;
  constructor(private readonly out: string[]) {}
  push(a: string): void {
    if (this.tail === null && a.startsWith("-")) this.tail = [];
    if (this.tail) this.tail.push(a); else this.out.push(a);
  }
  end(): string[] {
    if (this.tail) this.out.push("--", ...this.tail);
    return this.out;
  }
}

/**
 * Check argv (after the program name) against the specs and rewrite it for cac (see the
 * header). Throws UsageError (exit 2, one line) for anything malformed; nothing has been touched
 * then.
 */
export function normalizeArgv(argv: string[], commands: ReadonlyArray<CommandName & { load(): CommandDef }>, globals: OptSpec[]): Normalized {
  const globalSpecs = indexSpecs(globals);
  const out: string[] = [];
  const state = new Map<string, boolean>();

  /** Take flag `f` (known spec `spec`) at argv[i] into `out`; returns the next index. */
  const take = (f: FlagArg, spec: OptSpec, i: number): number => {
    const name = cacFlag(spec.flag);
    if (spec.value) {
      let val: string;
      if (f.inline !== undefined) val = f.inline;
      else if (i + 1 < argv.length) val = argv[++i]!;
      else throw new UsageError(`flag --${spec.flag} needs a value`);
      out.push(`--${name}=${SENTINEL}${val}`);
      return i + 1;
    }
    let on = true;
    if (f.inline !== undefined && !TRUE.has(f.inline)) {
      if (!FALSE.has(f.inline)) throw new UsageError(`flag --${spec.flag} takes no value (or true/false), got ${JSON.stringify(f.inline)}`);
      on = false;
    }
    state.set(spec.flag, on);
    if (spec.flag.startsWith("no-")) out.push(on ? `--${name}` : `--${name.slice(3)}=true`);
    else out.push(`--${name}=${on}`);
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
  // urfave checks --help, then --version, before it looks at the command: cac gets only these.
  if (state.get("help") || state.get("version") || i >= argv.length) return { argv: out };

  const help = (words: string[], as = HELP_COMMAND): Normalized => {
    out.push(as);
    const pos = new PositionalWriter(out);
    for (const w of words) if (!flagArg(w)) pos.push(w);
    return { argv: pos.end(), command: HELP_COMMAND };
  };

  // The command word(s).
  const word = argv[i++]!;
  let command: CommandDef | undefined;
  if (word === HELP_COMMAND || word === HELP_ALIAS) return help(argv.slice(i), word);
  if (word in GROUPS) {
    const sub = argv[i];
    const subFlag = sub === undefined ? null : flagArg(sub);
    if (sub === undefined || (subFlag && (subFlag.name === "help" || subFlag.name === "h"))) return help([word]);
    if (subFlag) throw new UsageError(`${word}: unknown option ${subFlag.typed}`);
    if (sub === HELP_COMMAND || sub === HELP_ALIAS) return help([word, ...argv.slice(i + 1)]);
    const entry = findCommand(commands, `${word} ${sub}`);
    if (!entry) throw new UsageError(`unknown command ${JSON.stringify(`${word} ${sub}`)}${didYouMean(sub, commands.filter((c) => c.name.startsWith(word + " ") && !c.hidden).map((c) => c.name.slice(word.length + 1)), `${word} `)}; see 'boci ${word} --help'`);
    command = entry.load();
    out.push(cacCommandName(`${word} ${sub}`));
    i++;
  } else {
    const entry = findCommand(commands, word);
    if (!entry) throw new UsageError(`unknown command ${JSON.stringify(word)}${didYouMean(word, [...new Set(commands.filter((c) => !c.hidden).flatMap((c) => [c.name.split(" ")[0]!, ...(c.aliases ?? [])]))])}; see 'boci --help'`);
    command = entry.load();
    out.push(word);
  }

  // The command's flags and positionals, in any order.
  // --log, --verbose and --quiet may follow the command too (a command's own flag of that name wins).
  const cmd = command;
  const late = globals.filter((g) => (g.flag === "log" || g.flag === "verbose" || g.flag === "quiet") && !cmd.options.some((o) => o.flag === g.flag));
  const specs = indexSpecs([...late, ...command.options]);
  const helpSpec = globalSpecs.get("help")!;
  const pos = new PositionalWriter(out);
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") { for (const p of argv.slice(i + 1)) pos.push(p); break; }
    const f = flagArg(a);
    if (!f) { pos.push(a); continue; }
    // `CMD --help` (any value) asks for the command's help, as urfave's help flag does.
    if (f.name === "help" || f.name === "h") { out.push(`--${helpSpec.flag}=true`); continue; }
    const spec = specs.get(f.name);
    if (!spec) throw new UsageError(`${command.name}: unknown option ${f.typed}${didYouMean(f.name, [...specs.keys()].filter((k) => k.length > 1), "--")}`);
    i = take(f, spec, i) - 1;
  }
  return { argv: pos.end(), command };
}

/** `help [TOPIC...]`: the app, a group, or a command (by name or alias; `raw unpack` too). */
export function helpTopic(words: string[], commands: CommandDef[]): HelpTopic {
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

/**
 * ` (did you mean "X"?)` for the nearest of `names` to `typed` (edit distance at most 2, or a
 * quarter of its length for long names), or "" when none is near.
 */
export function didYouMean(typed: string, names: string[], prefix = ""): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const n of names) {
    const d = editDistance(typed, n);
    if (d < bestD) { best = n; bestD = d; }
  }
  if (best === undefined || bestD > Math.max(2, Math.floor(typed.length / 4))) return "";
  return ` (did you mean ${JSON.stringify(prefix + best)}?)`;
}

/** Levenshtein distance, adjacent transpositions counting one (optimal string alignment). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
