/**
 * Man pages from the command specs (spec.ts) and their long texts (docs.ts): boci(1) and one
 * page per command, `boci-unpack(1)`, `boci-raw-unpack(1)`, … in man(7) macros. `boci man
 * [COMMAND]` prints one; the build writes them all into `dist/man/` (scripts/build.ts).
 */
import { UsageError } from "../errors";
import { VERSION } from "../version";
import { positionalUsage, type CommandDef, type OptSpec } from "./spec";
import { DOCS, ENVIRONMENT, EXIT_CODES } from "./docs";

/** The page name of a command: `boci-raw-unpack`. */
export function pageName(c: CommandDef): string {
  return `boci-${c.name.replaceAll(" ", "-")}`;
}

/** Text for roff: backslashes and leading dots/quotes escaped; `code` in backquotes made bold. */
function roff(s: string): string {
  const esc = s.replaceAll("\\", "\\e").replaceAll("-", "\\-");
  const bold = esc.replace(/`([^`]+)`/g, "\\fB$1\\fR");
  return bold.replace(/^([.'])/gm, "\\&$1");
}

function optionLine(o: OptSpec): string {
  const names = [o.flag, ...(o.aliases ?? [])].map((n) => `\\fB\\-\\-${n.replaceAll("-", "\\-")}\\fR`);
  if (o.short) names.push(`\\fB\\-${o.short}\\fR`);
  return `.TP\n${names.join(", ")}${o.value ? ` \\fI${roff(o.value)}\\fR` : ""}\n${roff(o.desc)}`;
}

function header(name: string): string {
  return `.TH ${name.toUpperCase()} 1 "" "boci ${VERSION}" "boci manual"\n`;
}

function exitSection(): string {
  return `.SH EXIT STATUS\n${EXIT_CODES.map(([c, d]) => `.TP\n.B ${c}\n${roff(d)}`).join("\n")}\n`;
}

function envSection(vars: typeof ENVIRONMENT): string {
  if (!vars.length) return "";
  return `.SH ENVIRONMENT\n${vars.map((v) => `.TP\n.B ${v.name}\n${roff(v.desc)}`).join("\n")}\n`;
}

/** The man page of one command. */
export function commandPage(c: CommandDef, globals: OptSpec[]): string {
  const doc = DOCS[c.name];
  const args = positionalUsage(c, (a) => `\\fI${a}\\fR`);
  let s = header(pageName(c));
  s += `.SH NAME\n${pageName(c).replaceAll("-", "\\-")} \\- ${roff(c.description)}\n`;
  s += `.SH SYNOPSIS\n.B boci ${c.name}\n[\\fIoptions\\fR]${args ? ` ${args}` : ""}\n`;
  s += `.SH DESCRIPTION\n${(doc?.details ?? [c.description]).map(roff).join("\n.PP\n")}\n`;
  s += `.SH OPTIONS\n${[...c.options, { flag: "help", short: "h", desc: "show help" }].map(optionLine).join("\n")}\n`;
  s += `.PP\nGlobal options (before the command): ${globals.map((g) => `\\fB\\-\\-${g.flag}\\fR`).join(", ")}; see \\fBboci\\fR(1).\n`;
  if (doc?.examples?.length) s += `.SH EXAMPLES\n${doc.examples.map((e) => `.PP\n.nf\n${roff(e)}\n.fi`).join("\n")}\n`;
  s += exitSection();
  s += envSection(ENVIRONMENT.filter((v) => !v.commands || v.commands.includes(c.name)));
  s += `.SH SEE ALSO\n\\fBboci\\fR(1)\n`;
  return s;
}

/** boci(1): every command, the global options, exit codes, environment. */
export function mainPage(commands: CommandDef[], globals: OptSpec[]): string {
  let s = header("boci");
  s += `.SH NAME\nboci \\- create and modify OCI images in a local image layout (speaks umoci's command line)\n`;
  s += `.SH SYNOPSIS\n.B boci\n[\\fIglobal options\\fR] \\fIcommand\\fR [\\fIoptions\\fR] [\\fIarguments\\fR]\n`;
  s += `.SH DESCRIPTION\n${roff("boci creates and modifies OCI container images in a local OCI image layout, with no daemon and no other tool installed. It speaks umoci's command line (a `umoci` symlink to boci works), moves images between layouts and archives with `boci copy`, and behind a `skopeo` symlink answers the `skopeo copy`, `inspect` and `list-tags` calls build systems make.")}\n`;
  s += `.SH COMMANDS\n${commands.filter((c) => !c.hidden).map((c) => `.TP\n\\fB${c.name}\\fR\n${roff(c.description)} (\\fB${pageName(c).replaceAll("-", "\\-")}\\fR(1))`).join("\n")}\n`;
  s += `.SH GLOBAL OPTIONS\n${globals.map(optionLine).join("\n")}\n`;
  s += exitSection();
  s += envSection(ENVIRONMENT);
  s += `.SH SEE ALSO\n${commands.filter((c) => !c.hidden).map((c) => `\\fB${pageName(c).replaceAll("-", "\\-")}\\fR(1)`).join(", ")}\n`;
  return s;
}

/** Every page: [file name, text]. */
export function allPages(commands: CommandDef[], globals: OptSpec[]): Array<[string, string]> {
  return [["boci.1", mainPage(commands, globals)], ...commands.filter((c) => !c.hidden).map((c) => [`${pageName(c)}.1`, commandPage(c, globals)] as [string, string])];
}

/** The page `topic` names (a command name in one or more words, or none for boci(1)). */
export function manPage(topic: string[], commands: CommandDef[], globals: OptSpec[]): string {
  if (topic.length === 0) return mainPage(commands, globals);
  const words = topic.join(" ").replace(/^boci[- ]/, "");
  // `raw unpack`, `raw-unpack`, `boci-raw-unpack`, or an alias (`list`, `raw config`)
  const c = commands.find((x) => x.name === words || (x.aliases ?? []).includes(words) || pageName(x) === `boci-${words.replaceAll(" ", "-")}`);
  if (!c) throw new UsageError(`man: no page for ${JSON.stringify(topic.join(" "))}`);
  return commandPage(c, globals);
}
