/**
 * boci behind a `skopeo` symlink: the subset of skopeo 1.9's command line that build systems use
 * (KIWI, the Open Build Service, LXC's OCI template), parsed as cobra/pflag parse it:
 *
 *  - global (persistent) flags anywhere, before or after the command: `--insecure-policy`,
 *    `--policy FILE`, `--tmpdir DIR`, `--debug`, `--override-os/-arch/-variant`; `-v/--version`
 *    only before the command; `-h/--help` anywhere;
 *  - `--name=value` or `--name value`, `-x value`, `-xvalue`, `-x=value`, grouped short booleans
 *    (`-qa`), booleans as `--name` or `--name=true|false`; a string-slice flag
 *    (`--additional-tag`) repeatable and split at commas, as pflag does; flags and positionals
 *    mix; `--` ends the flags;
 *  - commands: `copy` (skopeo-copy.ts), `inspect` and `list-tags` (skopeo-inspect.ts), `help`.
 *
 * Anything outside the subset fails before any work with one line naming it: another skopeo
 * command or flag (UsageError, exit 2), a transport boci does not read or write
 * (UnsupportedError, exit 6). `docker://` goes to the registry transport with skopeo's registry
 * flags (skopeoRegistryOptions): `--[src-|dest-]creds`, `--[src-|dest-]username`/`password`,
 * `--[src-|dest-]no-creds`, `--authfile`/`--src-authfile`/`--dest-authfile`,
 * `--[src-|dest-]tls-verify`, `--[src-|dest-]cert-dir`, `--retry-times`; `--[src-|dest-]registry-token`
 * is refused (exit 6). Credentials are never printed: not in help, errors, or a --debug line.
 */
import { UsageError, UnsupportedError } from "../errors";
import { normalJit, normalJitSoon } from "../util/jit";
import type { RegistryOptions } from "../transport/registry/types";
import type * as CredentialsModule from "../transport/registry/credentials";
import { log } from "../util/log";
import { hostPlatform } from "../cas/refs";
import type { Platform } from "../image";
import { setLogLevel } from "../util/log";
import { parseRetryTimes } from "./copy";
import { VERSION } from "../version";
import type * as CopyModule from "./skopeo-copy";
import type * as InspectModule from "./skopeo-inspect";

/** The skopeo release whose command line (and output) this front end follows. */
export const SKOPEO_COMPAT_VERSION = "1.9.3";

/** A skopeo flag. */
export interface SkopeoFlag {
  name: string;
  short?: string;
  /** value placeholder; absent for a boolean */
  value?: string;
  /** a string slice: repeatable, each value split at commas (pflag StringSlice) */
  slice?: boolean;
  desc: string;
}

/** A skopeo command as the front end knows it. */
export interface SkopeoCommand {
  name: string;
  usage: string;
  short: string;
  /** exact positional count */
  args: number;
  flags: SkopeoFlag[];
  run(args: string[], flags: SkopeoFlags, global: SkopeoGlobal): Promise<void> | void;
}

/** The global options a command sees. */
export interface SkopeoGlobal {
  insecurePolicy: boolean;
  policy?: string;
  tmpdir?: string;
  debug: boolean;
  overrideOS?: string;
  overrideArch?: string;
  overrideVariant?: string;
  out: (s: string) => void;
}

/** Parsed flag values of one command. */
export class SkopeoFlags {
  constructor(private readonly values: Map<string, string[]>) {}
  /** whether the flag was given (a boolean: given and not =false) */
  has(name: string): boolean {
    const v = this.values.get(name);
    return v !== undefined && v.length > 0 && v[v.length - 1] !== "false";
  }
  /** the last value of a value flag */
  get(name: string): string | undefined {
    return this.values.get(name)?.at(-1);
  }
  /** every value of a slice flag, in order */
  all(name: string): string[] {
    return [...(this.values.get(name) ?? [])];
  }
  /** the names given, in no particular order */
  names(): string[] {
    return [...this.values.keys()];
  }
}

const globalFlags: SkopeoFlag[] = [
  { name: "debug", desc: "enable debug output" },
  { name: "help", short: "h", desc: "help for skopeo" },
  { name: "insecure-policy", desc: "run the tool without any policy check" },
  { name: "override-arch", value: "ARCH", desc: "use ARCH instead of the architecture of the machine for choosing images" },
  { name: "override-os", value: "OS", desc: "use OS instead of the running OS for choosing images" },
  { name: "override-variant", value: "VARIANT", desc: "use VARIANT instead of the running architecture variant for choosing images" },
  { name: "policy", value: "string", desc: "Path to a trust policy file" },
  { name: "tmpdir", value: "string", desc: "directory used to store temporary files" },
];
const versionFlag: SkopeoFlag = { name: "version", short: "v", desc: "Version for Skopeo (and the boci that answers)" };

/** Commands of skopeo 1.9 outside the subset: named as such when asked for. */
const OTHER_SKOPEO_COMMANDS = new Set([
  "delete", "login", "logout", "manifest-digest", "standalone-sign", "standalone-verify", "sync", "layers",
  "generate-sigstore-key", "proxy", "untrusted-signature-dump-without-verification", "completion",
]);

const TRANSPORT_NOTE = "Supported transports:\ndocker, docker-archive, oci, oci-archive\n";

function copyModule(): typeof CopyModule { return require("./skopeo-copy") as typeof CopyModule; }
function inspectModule(): typeof InspectModule { return require("./skopeo-inspect") as typeof InspectModule; }

/** The commands, in help order (their flags live with them; `run` loads the module lazily). */
export function skopeoCommands(): SkopeoCommand[] {
  return [
    {
      name: "copy", usage: "skopeo copy [command options] SOURCE-IMAGE DESTINATION-IMAGE", short: "Copy an IMAGE-NAME from one location to another",
      args: 2, flags: copyFlags, run: (a, f, g) => copyModule().runSkopeoCopy(a, f, g),
    },
    {
      name: "inspect", usage: "skopeo inspect [command options] IMAGE-NAME", short: "Inspect image IMAGE-NAME",
      args: 1, flags: inspectFlags, run: (a, f, g) => inspectModule().runSkopeoInspect(a, f, g),
    },
    {
      name: "list-tags", usage: "skopeo list-tags [command options] SOURCE-IMAGE", short: "List tags in the transport/repository specified by the SOURCE-IMAGE",
      args: 1, flags: listTagsFlags, run: (a, f, g) => inspectModule().runSkopeoListTags(a, f, g),
    },
  ];
}

const helpFlag = (cmd: string): SkopeoFlag => ({ name: "help", short: "h", desc: `help for ${cmd}` });

/** skopeo 1.9's registry flags (dockerImageFlags) with `prefix` (`src-`, `dest-`, or none). */
function registryFlags(prefix: string, opts: { authfile: boolean }): SkopeoFlag[] {
  const f: SkopeoFlag[] = [
    { name: `${prefix}cert-dir`, value: "PATH", desc: "use certificates at PATH (*.crt, *.cert, *.key) to connect to the registry" },
    { name: `${prefix}creds`, value: "USERNAME[:PASSWORD]", desc: "Use USERNAME[:PASSWORD] for accessing the registry" },
    { name: `${prefix}no-creds`, desc: "Access the registry anonymously" },
    { name: `${prefix}password`, value: "string", desc: "Password for accessing the registry" },
    { name: `${prefix}registry-token`, value: "string", desc: "refused by boci: a Bearer token given directly is not supported" },
    { name: `${prefix}tls-verify`, desc: "require HTTPS and verify certificates when talking to the container registry" },
    { name: `${prefix}username`, value: "string", desc: "Username for accessing the registry" },
  ];
  if (opts.authfile) f.push({ name: `${prefix}authfile`, value: "string", desc: "path of the authentication file. Default is ${XDG_RUNTIME_DIR}/containers/auth.json" });
  return f;
}

const byName = (a: SkopeoFlag, b: SkopeoFlag) => a.name.localeCompare(b.name);
const authfileFlag: SkopeoFlag = { name: "authfile", value: "string", desc: "path of the authentication file. Default is ${XDG_RUNTIME_DIR}/containers/auth.json" };
const retryFlag: SkopeoFlag = { name: "retry-times", value: "int", desc: "the number of times to possibly retry" };

const copyFlags: SkopeoFlag[] = [
  { name: "additional-tag", value: "strings", slice: true, desc: "additional tags (supports docker-archive)" },
  { name: "all", short: "a", desc: "Copy all images if SOURCE-IMAGE is a list" },
  authfileFlag,
  { name: "dest-compress", desc: "accepted (skopeo applies it to 'dir' only); layers an oci destination needs compressed are always compressed" },
  { name: "dest-compress-format", value: "FORMAT", desc: "FORMAT to use for the compression (gzip or zstd); layers in another format are recompressed" },
  { name: "dest-shared-blob-dir", value: "DIRECTORY", desc: "keep every blob an oci: destination gets in DIRECTORY/<alg>/ instead of its blobs/" },
  { name: "digestfile", value: "string", desc: "Write the digest of the pushed image to the specified file" },
  { name: "format", short: "f", value: "string", desc: "MANIFEST TYPE (oci or v2s2) to use in the destination" },
  helpFlag("copy"),
  { name: "multi-arch", value: "string", desc: "How to handle multi-architecture images (system or all)" },
  { name: "quiet", short: "q", desc: "Suppress output information when copying images" },
  { name: "remove-signatures", desc: "Do not copy signatures from SOURCE-IMAGE (boci copies none)" },
  retryFlag,
  // Deprecated in skopeo (a warning names the replacements), still honoured for both sides.
  { name: "tls-verify", desc: "deprecated: use --src-tls-verify, --dest-tls-verify" },
  ...registryFlags("src-", { authfile: true }),
  ...registryFlags("dest-", { authfile: true }),
].sort(byName);
const inspectFlags: SkopeoFlag[] = [
  authfileFlag,
  { name: "config", desc: "output configuration" },
  { name: "format", short: "f", value: "string", desc: "Format the output to a Go template (field references such as {{.Digest}} only)" },
  helpFlag("inspect"),
  { name: "no-tags", short: "n", desc: "Do not list the available tags from the repository in the output" },
  { name: "raw", desc: "output raw manifest or configuration" },
  retryFlag,
  ...registryFlags("", { authfile: false }),
].sort(byName);
const listTagsFlags: SkopeoFlag[] = [
  authfileFlag,
  helpFlag("list-tags"),
  retryFlag,
  ...registryFlags("", { authfile: false }),
].sort(byName);

const credentialsModule = () => require("../transport/registry/credentials") as typeof CredentialsModule;

/**
 * RegistryOptions from skopeo's registry flags with `prefix` (`src-`, `dest-`, or "" for
 * inspect and list-tags), as skopeo's imageOptions.newSystemContext maps them: `--PREFIXauthfile`
 * over `--authfile` (whose default, $REGISTRY_AUTH_FILE, resolveCredentials reads);
 * `--PREFIXtls-verify` over the deprecated `--tls-verify` of copy (warned about); `--creds` and
 * `--username`/`--password` exclusive, as are they with `--no-creds` (UsageError with skopeo's
 * words); `--no-creds` anonymous; `--registry-token` refused (UnsupportedError). No message
 * names a credential's value.
 */
export function skopeoRegistryOptions(flags: SkopeoFlags, prefix: "" | "src-" | "dest-"): RegistryOptions {
  const v = (n: string) => flags.get(prefix + n);
  const given = (n: string) => v(n) !== undefined;
  const r: RegistryOptions = {};
  const authFile = (prefix ? v("authfile") : undefined) ?? flags.get("authfile");
  if (authFile) r.authFile = authFile;
  const own = v("tls-verify");
  const deprecated = prefix ? flags.get("tls-verify") : undefined;
  const tls = own ?? deprecated;
  if (tls !== undefined) r.tlsVerify = tls === "true";
  const certDir = v("cert-dir");
  if (certDir) r.certDir = certDir;
  const noCreds = flags.has(prefix + "no-creds");
  if (given("creds") && noCreds) throw new UsageError("creds and no-creds cannot be specified at the same time");
  if (given("username") && noCreds) throw new UsageError("username and no-creds cannot be specified at the same time");
  if (given("creds") && given("username")) throw new UsageError("creds and username cannot be specified at the same time");
  if (given("username") !== given("password"))
    throw new UsageError(given("username") ? "password must be specified when username is specified" : "username must be specified when password is specified");
  if (given("creds")) {
    // skopeo's words ("credentials can't be empty", "username can't be empty") after the flag, never its value.
    r.credentials = credentialsModule().parseCredsFlag(v("creds")!, prefix + "creds");
  } else if (given("username")) {
    r.credentials = { username: v("username")!, password: v("password")! };
  }
  if (noCreds) r.credentials = credentialsModule().ANONYMOUS;
  if (given("registry-token")) throw new UnsupportedError(`--${prefix}registry-token is not supported by boci (a Bearer token given directly); use --${prefix}creds or an auth file`);
  const retries = parseRetryTimes("retry-times", flags.get("retry-times"));
  if (retries !== undefined) r.retries = retries;
  return r;
}

/** skopeo's warning for copy's deprecated `--tls-verify`. */
export function warnDeprecatedTlsVerify(flags: SkopeoFlags): void {
  if (flags.get("tls-verify") !== undefined) log.warn("'--tls-verify' is deprecated, instead use: --src-tls-verify, --dest-tls-verify");
}

interface Parsed {
  command?: SkopeoCommand;
  /** `help [cmd]`, `--help` */
  help: boolean;
  helpTopic?: SkopeoCommand;
  version: boolean;
  args: string[];
  global: Map<string, string[]>;
  flags: Map<string, string[]>;
}

const BOOL_WORDS = new Set(["1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"]);
const boolValue = (flag: string, v: string): string => {
  if (!BOOL_WORDS.has(v)) throw new UsageError(`invalid argument ${JSON.stringify(v)} for "--${flag}" flag: parse error`);
  return /^(1|t|true)$/i.test(v) ? "true" : "false";
};

/**
 * Check argv against the flag sets (cobra's traversal: global flags before the command, global
 * and the command's own after it) and split it into command, flags and positionals. Throws
 * UsageError naming the first unknown or malformed flag or command.
 */
export function parseSkopeoArgv(argv: string[]): Parsed {
  const commands = skopeoCommands();
  const p: Parsed = { help: false, version: false, args: [], global: new Map(), flags: new Map() };
  let endOfFlags = false;
  let sawHelpWord = false;
  const where = () => (p.command ? ` for "skopeo ${p.command.name}"` : "");
  const lookup = (long: string | undefined, short: string | undefined): { f: SkopeoFlag; global: boolean } | undefined => {
    const match = (f: SkopeoFlag) => (long !== undefined ? f.name === long : f.short === short);
    if (p.command) {
      const own = p.command.flags.find(match);
      if (own) return { f: own, global: false };
    } else if (match(versionFlag)) {
      return { f: versionFlag, global: true };
    }
    const g = globalFlags.find(match);
    return g ? { f: g, global: true } : undefined;
  };
  const set = (hit: { f: SkopeoFlag; global: boolean }, v: string) => {
    const m = hit.global ? p.global : p.flags;
    const vals = hit.f.slice ? (v === "" ? [] : v.split(",")) : [v];
    if (hit.f.name === "help" && v === "true") p.help = true;
    if (hit.f.name === "version") p.version = v === "true";
    m.set(hit.f.name, hit.f.slice || hit.f.value ? [...(m.get(hit.f.name) ?? []), ...vals] : vals);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (endOfFlags || a === "-" || !a.startsWith("-")) {
      if (!p.command && !sawHelpWord && p.args.length === 0) {
        if (a === "help") { sawHelpWord = true; p.help = true; continue; }
        const c = commands.find((x) => x.name === a);
        if (c) { p.command = c; continue; }
        if (OTHER_SKOPEO_COMMANDS.has(a)) throw new UsageError(`command "skopeo ${a}" is not supported by boci (supported: ${commands.map((x) => x.name).join(", ")})`);
        throw new UsageError(`unrecognized command "skopeo ${a}" (supported: ${commands.map((x) => x.name).join(", ")})`);
      }
      if (sawHelpWord && !p.helpTopic && p.args.length === 0) {
        const c = commands.find((x) => x.name === a);
        if (!c) throw new UsageError(`unknown help topic ${JSON.stringify(a)}`);
        p.helpTopic = c;
        continue;
      }
      p.args.push(a);
      continue;
    }
    if (a === "--") { endOfFlags = true; continue; }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const hit = lookup(name, undefined);
      if (!hit) throw new UsageError(`unknown or unsupported flag: --${name}${where()}`);
      if (!hit.f.value) { set(hit, eq < 0 ? "true" : boolValue(name, a.slice(eq + 1))); continue; }
      if (eq >= 0) { set(hit, a.slice(eq + 1)); continue; }
      if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: --${name}${where()}`);
      set(hit, argv[++i]!);
      continue;
    }
    // Short flags: booleans may be grouped; a value flag takes the rest or the next argument.
    for (let j = 1; j < a.length; j++) {
      const c = a[j]!;
      const hit = lookup(undefined, c);
      // Named by its letter only: the rest of the argument may be a value (a password).
      if (!hit) throw new UsageError(`unknown or unsupported shorthand flag: ${JSON.stringify(c)}${where()}`);
      if (!hit.f.value) {
        if (a[j + 1] === "=") { set(hit, boolValue(hit.f.name, a.slice(j + 2))); break; }
        set(hit, "true");
        continue;
      }
      const rest = a.slice(j + 1);
      if (rest) { set(hit, rest.startsWith("=") ? rest.slice(1) : rest); break; }
      if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: -${c}${where()}`);
      set(hit, argv[++i]!);
      break;
    }
  }
  if (sawHelpWord && p.helpTopic === undefined && p.command === undefined && p.args.length) throw new UsageError(`unknown help topic ${JSON.stringify(p.args[0])}`);
  return p;
}

function pad(rows: [string, string][]): string {
  const w = Math.max(0, ...rows.map((r) => r[0].length));
  return rows.map(([a, b]) => `  ${a.padEnd(w)}   ${b}\n`).join("");
}

function flagRows(flags: SkopeoFlag[]): [string, string][] {
  return flags.map((f) => [`${f.short ? `-${f.short}, ` : "    "}--${f.name}${f.value ? ` ${f.value}` : ""}`, f.desc]);
}

/** The top-level help: what the subset supports. */
export function skopeoHelp(): string {
  const cmds = skopeoCommands();
  return "Various operations with container images and container image registries\n" +
    `(boci ${VERSION}, answering for skopeo: the subset build systems use; anything else is refused)\n\n` +
    "Usage:\n  skopeo [flags]\n  skopeo [command]\n\nAvailable Commands:\n" +
    pad([...cmds.map((c): [string, string] => [c.name, c.short]), ["help", "Help about any command"]]) +
    "\nFlags:\n" + pad(flagRows([...globalFlags, versionFlag].sort((a, b) => a.name.localeCompare(b.name)))) +
    '\nUse "skopeo [command] --help" for more information about a command.\n';
}

/** One command's help. */
export function skopeoCommandHelp(c: SkopeoCommand): string {
  return `${c.short}\n\n${TRANSPORT_NOTE}\nUsage:\n${c.usage}\n\nFlags:\n${pad(flagRows(c.flags))}\nGlobal Flags:\n${pad(flagRows(globalFlags.filter((f) => f.name !== "help")))}`;
}

/** `skopeo --version`: skopeo's line, saying which boci answers. */
export function skopeoVersionText(): string {
  return `skopeo version ${SKOPEO_COMPAT_VERSION} (boci ${VERSION}, skopeo-compatible subset)\n`;
}

/**
 * Run skopeo's command line. Output goes through `out`; errors are thrown (BociError subclasses)
 * for main.ts to print as one line.
 */
export async function runSkopeo(argv: string[], out: (s: string) => void): Promise<void> {
  const p = parseSkopeoArgv(argv);
  if (p.help) { out(p.helpTopic ? skopeoCommandHelp(p.helpTopic) : p.command ? skopeoCommandHelp(p.command) : skopeoHelp()); return; }
  if (p.version) { out(skopeoVersionText()); return; }
  if (!p.command) {
    // As skopeo: no command is an error (`skopeo help` and `--help` print the help).
    throw new UsageError("missing command 'skopeo COMMAND' (try 'skopeo --help')");
  }
  const c = p.command;
  if (p.args.length !== c.args)
    throw new UsageError(`skopeo ${c.name}: exactly ${c.args} argument${c.args === 1 ? "" : "s"} expected (${c.usage.replace(/^skopeo \S+ \[command options\] /, "")}), got ${p.args.length}`);
  const g = (n: string) => p.global.get(n)?.at(-1);
  const global: SkopeoGlobal = {
    insecurePolicy: g("insecure-policy") === "true",
    policy: g("policy"),
    tmpdir: g("tmpdir"),
    debug: g("debug") === "true",
    overrideOS: g("override-os"),
    overrideArch: g("override-arch"),
    overrideVariant: g("override-variant"),
    out,
  };
  if (global.debug) setLogLevel("debug");
  // copy moves whole images (the JIT at its normal pace at once); inspect and list-tags are short
  if (c.name === "copy") normalJit(); else normalJitSoon();
  await c.run(p.args, new SkopeoFlags(p.flags), global);
}

/**
 * A transport prefix boci does not handle, as one line: skopeo's other transports. Returns
 * normally for oci:, oci-archive:, docker-archive: and docker://.
 */
export function refuseOtherTransport(s: string, role: "source" | "destination"): void {
  const m = /^([a-z][a-z0-9-]*):/.exec(s);
  const t = m?.[1];
  if (t === "oci" || t === "oci-archive" || t === "docker-archive" || t === "docker") return;
  if (t && ["containers-storage", "dir", "docker-daemon", "ostree", "sif", "tarball"].includes(t))
    throw new UnsupportedError(`${role} ${JSON.stringify(s)}: transport ${JSON.stringify(t)} is not supported by boci (supported: docker, oci, oci-archive, docker-archive)`);
  throw new UsageError(`invalid ${role} ${JSON.stringify(s)}: expected TRANSPORT:DETAILS (docker://, oci:, oci-archive:, docker-archive:)`);
}

/**
 * The platform `--override-os/-arch/-variant` ask for (the host's for what is not given; the
 * host's variant only when the architecture is not overridden), or undefined when none is given.
 */
export function overridePlatform(g: SkopeoGlobal): Platform | undefined {
  if (!g.overrideOS && !g.overrideArch && !g.overrideVariant) return undefined;
  const host = hostPlatform();
  const p: Platform = { os: g.overrideOS ?? host.os, architecture: g.overrideArch ?? host.architecture };
  const variant = g.overrideVariant ?? (g.overrideArch === undefined ? host.variant : undefined);
  if (variant) p.variant = variant;
  return p;
}
