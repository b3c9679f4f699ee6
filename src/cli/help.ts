/**
 * Help text in urfave/cli v1's layout (the one umoci's `--help`, `help CMD` and `raw` print):
 * NAME, USAGE, VERSION, COMMANDS (by category), OPTIONS, aligned as Go's tabwriter does it
 * (minimum width 1, padding 2).
 */
import { VERSION } from "../version";
import { GROUPS, positionalUsage, type CommandDef, type OptSpec } from "./spec";
import { formatTable } from "./tabwriter";
import type * as DocsModule from "./docs";

/** umoci's categories; commands not listed here are shown without one. */
const CATEGORY: Record<string, string> = {
  config: "image", unpack: "image", repack: "image", new: "image", tag: "image", rm: "image", stat: "image", insert: "image",
  "raw unpack": "image", "raw runtime-config": "image", "raw add-layer": "image",
  attach: "image", referrers: "image",
  gc: "layout", init: "layout", ls: "layout", validate: "layout", copy: "layout",
  man: "documentation", completion: "documentation",
};

const HELP_FLAG = "--help, -h\tshow help";

function align(text: string): string {
  return formatTable(text.replace(/\n$/, "").split("\n").map((l) => l.split("\t")), { minWidth: 1, padding: 2 });
}

function optionLine(o: OptSpec): string {
  const names = [o.flag, ...(o.aliases ?? [])].map((n) => `--${n}`);
  if (o.short) names.push(`-${o.short}`);
  return `${names.join(", ")}${o.value ? ` ${o.value}` : ""}\t${o.desc}`;
}

/** Command lines of a listing: `name, alias<TAB>description`, grouped by category. */
function listing(entries: { names: string[]; desc: string; category?: string }[]): string {
  let out = "";
  for (const e of entries.filter((x) => !x.category)) out += `\n   ${e.names.join(", ")}\t${e.desc}`;
  const cats = [...new Set(entries.map((e) => e.category).filter((c): c is string => !!c))].sort();
  for (const c of cats) {
    out += `\n\n   ${c}:`;
    for (const e of entries.filter((x) => x.category === c)) out += `\n     ${e.names.join(", ")}\t${e.desc}`;
  }
  return out;
}

export function appHelp(commands: CommandDef[], globals: OptSpec[]): string {
  const entries = [
    ...Object.entries(GROUPS).map(([g, desc]) => ({ names: [g], desc })),
    { names: ["help", "h"], desc: "shows a list of commands or help for one command" },
    ...commands.filter((c) => !c.hidden && !c.name.includes(" ")).map((c) => ({ names: [c.name, ...(c.aliases ?? [])], desc: c.description, category: CATEGORY[c.name] })),
  ];
  return align(`NAME:
   boci - modifies Open Container images (speaks umoci's command line)

USAGE:
   boci [global options] command [command options] [arguments...]

VERSION:
   ${VERSION}

COMMANDS:${listing(entries)}

GLOBAL OPTIONS:
${globals.map((o) => `   ${optionLine(o)}`).join("\n")}
${exitCodes()}`);
}

/** The EXIT CODES section every help page ends with (the table in docs.ts, errors.ts ExitCode). */
function exitCodes(): string {
  const { EXIT_CODES } = require("./docs") as typeof DocsModule;
  return `\nEXIT CODES:\n${EXIT_CODES.map(([n, what]) => `   ${n}\t${what}`).join("\n")}\n`;
}

/** The ENVIRONMENT section of a command's page: the variables it reads, or nothing. */
function environment(name: string): string {
  const { ENVIRONMENT } = require("./docs") as typeof DocsModule;
  const vars = ENVIRONMENT.filter((v) => !v.commands || v.commands.includes(name));
  return vars.length ? `\nENVIRONMENT:\n${vars.map((v) => `   ${v.name}\t${v.desc}`).join("\n")}\n` : "";
}

export function groupHelp(group: string, commands: CommandDef[]): string {
  const subs = commands.filter((c) => !c.hidden && c.name.startsWith(group + " "));
  const strip = (n: string) => n.slice(group.length + 1);
  const entries = subs.map((c) => ({ names: [strip(c.name), ...(c.aliases ?? []).map(strip)], desc: c.description, category: CATEGORY[c.name] }));
  return align(`NAME:
   boci ${group} - ${GROUPS[group]}

USAGE:
   boci ${group} command [command options] [arguments...]

COMMANDS:${listing(entries)}

OPTIONS:
   ${HELP_FLAG}
`);
}

export function commandHelp(c: CommandDef): string {
  const args = positionalUsage(c, (a) => `<${a}>`);
  const opts = [...c.options.map(optionLine), HELP_FLAG];
  const category = CATEGORY[c.name];
  // (the long texts are loaded only for a help page)
  const doc = (require("./docs") as typeof DocsModule).DOCS[c.name];
  const wrap = (p: string) => wrapText(p.replaceAll("`", ""), 76).map((l) => `   ${l}`).join("\n");
  const description = doc ? `\n\nDESCRIPTION:\n${doc.details.map(wrap).join("\n\n")}` : "";
  const examples = doc?.examples?.length ? `\nEXAMPLES:\n${doc.examples.map((e) => `   ${e}`).join("\n")}\n` : "";
  return align(`NAME:
   boci ${c.name} - ${c.description}

USAGE:
   boci ${c.name}${opts.length ? " [command options]" : ""}${args ? ` ${args}` : ""}${c.aliases?.length ? `\n\nALIASES:\n   ${c.aliases.map((a) => `boci ${a}`).join(", ")}` : ""}${category ? `\n\nCATEGORY:\n   ${category}` : ""}${description}

OPTIONS:
${opts.map((l) => `   ${l}`).join("\n")}
${examples}${environment(c.name)}${exitCodes()}`);
}

/** Words of `text` in lines of at most `width` characters (a longer word stands alone). */
function wrapText(text: string, width: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const w of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + w.length > width) { out.push(line); line = w; }
    else line = line ? `${line} ${w}` : w;
  }
  if (line) out.push(line);
  return out;
}
