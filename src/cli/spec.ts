/**
 * Command and option specs. cac does the dispatch, help and unknown-option checks, but its
 * parser (mri) casts numeric-looking values ("1.0" → 1), cannot take a value that starts with
 * "-", mishandles dotted names (`--config.user`) and cannot name two-word commands
 * (`raw unpack`). So argv is normalised first from these specs: every value flag becomes
 * `--dashed-name=<SENTINEL>value`, which mri leaves a string, and `raw X` becomes `raw-X`.
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

export interface Ctx {
  stdout: (s: string) => void;
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

export const SENTINEL = "\u0001";

/** cac's internal (dashed) name for a flag. */
export function cacName(flag: string): string {
  return flag.replaceAll(".", "-");
}

/** The key cac stores a dashed option under (its camelcase rule). */
export function cacKey(flag: string): string {
  return cacName(flag).replace(/([a-z])-([a-z])/g, (_m, a: string, b: string) => a + b.toUpperCase());
}

/** Parsed option values with typed accessors. */
export class Opts {
  constructor(private readonly raw: Record<string, unknown>, private readonly given: Set<string>) {}
  /** all values of a repeatable value flag, in order */
  all(flag: string): string[] {
    const v = this.raw[cacKey(flag)];
    if (v === undefined || v === null) return [];
    const arr = Array.isArray(v) ? v : [v];
    return arr.map((x) => String(x).replace(SENTINEL, ""));
  }
  /** the value of a single-value flag (the last one given), or undefined */
  get(flag: string): string | undefined {
    const a = this.all(flag);
    return a.length ? a[a.length - 1] : undefined;
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

/**
 * Rewrite argv (after the program name) for cac. Returns the new argv and the flags given.
 * Values of known value flags are taken verbatim, even when they start with "-".
 */
export function normalizeArgv(argv: string[], commands: CommandDef[], globals: OptSpec[]): { argv: string[]; given: Set<string>; command?: CommandDef } {
  const out: string[] = [];
  const given = new Set<string>();
  let i = 0;
  // Find the command: the first non-flag word (global value flags consume their value).
  const globalByName = indexSpecs(globals);
  let cmd: CommandDef | undefined;
  const pre: string[] = [];
  while (i < argv.length) {
    const a = argv[i]!;
    if (a.startsWith("-")) {
      const name = a.replace(/^--?/, "").split("=")[0]!;
      const spec = globalByName.get(name);
      pre.push(a);
      if (spec?.value && !a.includes("=") && i + 1 < argv.length) pre.push(argv[++i]!);
      i++;
      continue;
    }
    const two = a === "raw" && argv[i + 1] ? `raw ${argv[i + 1]}` : null;
    cmd = (two !== null ? commands.find((c) => c.name === two || c.aliases?.includes(two)) : undefined)
      ?? commands.find((c) => c.name === a || c.aliases?.includes(a));
    if (cmd) { i += cmd.name.includes(" ") ? 2 : 1; }
    break;
  }
  const specs = indexSpecs([...globals, ...(cmd?.options ?? [])]);
  const rewrite = (list: string[], into: string[]) => {
    for (let j = 0; j < list.length; j++) {
      const a = list[j]!;
      if (a === "--") { into.push(...list.slice(j)); break; }
      if (!a.startsWith("-") || a === "-") { into.push(a); continue; }
      const m = /^(--?)([^=]+)(=(.*))?$/s.exec(a)!;
      const name = m[2]!;
      const spec = specs.get(name);
      if (!spec) { into.push(a); continue; }
      if (spec.value) {
        given.add(spec.flag);
        let val: string;
        if (m[3] !== undefined) val = m[4]!;
        else if (j + 1 < list.length) val = list[++j]!;
        else throw new UsageError(`flag --${spec.flag} needs a value`);
        into.push(`--${cacName(spec.flag)}=${SENTINEL}${val}`);
      } else {
        if (m[3] !== undefined) {
          const v = m[4]!.toLowerCase();
          if (v === "false" || v === "0") continue;
          if (v !== "true" && v !== "1") throw new UsageError(`flag --${spec.flag} takes no value`);
        }
        given.add(spec.flag);
        // mri only knows cac's camel-cased names as booleans, so a bare dashed flag would take
        // the next word as its value: spell the value out ("no-" flags are never given one).
        into.push(spec.flag.startsWith("no-") ? `--${cacName(spec.flag)}` : `--${cacName(spec.flag)}=true`);
      }
    }
  };
  rewrite(pre, out);
  if (cmd) out.push(cmd.name.replace(" ", "-"));
  rewrite(argv.slice(i), out);
  return { argv: out, given, command: cmd };
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
