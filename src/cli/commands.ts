/**
 * The command registry, in help order: each command's names and the module that defines it,
 * loaded only when that command runs. Start-up then loads one command's code instead of every
 * command's (in the binary a require() inside a function is a chunk loaded at that call; a static import
 * would run every module's top level before argv is even read). Help, man pages and completion
 * need every spec: allCommands() loads them all.
 *
 * To add a command: one entry here with its name, aliases and hidden flag exactly as its
 * CommandDef has them (test/unit/cli-registry.test.ts checks they agree).
 */
import type { CommandDef } from "./spec";
import type * as LayoutCommands from "./layout-commands";
import type * as ConfigCommand from "./config";
import type * as StatCommand from "./stat";
import type * as UnpackCommands from "./unpack";
import type * as RepackCommands from "./repack";
import type * as ValidateCommand from "./validate";
import type * as CopyCommand from "./copy";
import type * as IndexCommands from "./index-commands";
import type * as DocCommands from "./doc-commands";

/** A command as argv matching needs it (its names) and how to get the rest. */
export interface CommandEntry {
  name: string;
  aliases?: string[];
  hidden?: boolean;
  load(): CommandDef;
}

const layout = () => require("./layout-commands") as typeof LayoutCommands;
const unpack = () => require("./unpack") as typeof UnpackCommands;
const repack = () => require("./repack") as typeof RepackCommands;
const docs = () => require("./doc-commands") as typeof DocCommands;
const index = (name: string) => (): CommandDef => {
  const def = (require("./index-commands") as typeof IndexCommands).indexCommands.find((c) => c.name === name);
  if (!def) throw new Error(`internal error: no command ${name} in index-commands`);
  return def;
};

export const registry: CommandEntry[] = [
  { name: "init", load: () => layout().initCommand },
  { name: "new", load: () => layout().newCommand },
  { name: "ls", aliases: ["list"], load: () => layout().lsCommand },
  { name: "tag", load: () => layout().tagCommand },
  { name: "rm", aliases: ["remove"], load: () => layout().rmCommand },
  { name: "stat", load: () => (require("./stat") as typeof StatCommand).statCommand },
  { name: "gc", load: () => layout().gcCommand },
  { name: "config", load: () => (require("./config") as typeof ConfigCommand).configCommand },
  { name: "unpack", load: () => unpack().unpackCommand },
  { name: "repack", load: () => repack().repackCommand },
  { name: "insert", load: () => repack().insertCommand },
  { name: "raw unpack", load: () => unpack().rawUnpackCommand },
  { name: "raw runtime-config", aliases: ["raw config"], load: () => unpack().rawConfigCommand },
  { name: "raw add-layer", load: () => repack().addLayerCommand },
  { name: "validate", load: () => (require("./validate") as typeof ValidateCommand).validateCommand },
  { name: "raw mtree-validate", hidden: true, load: () => repack().mtreeValidateCommand },
  { name: "copy", load: () => (require("./copy") as typeof CopyCommand).copyCommand },
  { name: "attach", load: () => (require("./artifact-commands") as typeof import("./artifact-commands")).attachCommand },
  { name: "referrers", load: () => (require("./artifact-commands") as typeof import("./artifact-commands")).referrersCommand },
  { name: "index create", load: index("index create") },
  { name: "index add", load: index("index add") },
  { name: "index remove", aliases: ["index rm"], load: index("index remove") },
  { name: "index ls", aliases: ["index list"], load: index("index ls") },
  { name: "man", load: () => docs().manCommand },
  { name: "completion", load: () => docs().completionCommand },
];

/** Every command's full spec, in help order (loads every command module). */
export function allCommands(): CommandDef[] {
  return registry.map((e) => e.load());
}
