/** The command registry, in help order. */
import type { CommandDef } from "./spec";
import { initCommand, newCommand, lsCommand, tagCommand, rmCommand, gcCommand } from "./layout-commands";
import { configCommand } from "./config";
import { statCommand } from "./stat";
import { unpackCommand, rawUnpackCommand, rawConfigCommand } from "./unpack";
import { repackCommand, insertCommand, addLayerCommand, mtreeValidateCommand } from "./repack";
import { validateCommand } from "./validate";
import { copyCommand } from "./copy";
import { indexCommands } from "./index-commands";
import { manCommand, completionCommand } from "./doc-commands";

export const commands: CommandDef[] = [
  initCommand, newCommand, lsCommand, tagCommand, rmCommand, statCommand, gcCommand, configCommand,
  unpackCommand, repackCommand, insertCommand, rawUnpackCommand, rawConfigCommand, addLayerCommand, validateCommand, mtreeValidateCommand, copyCommand, ...indexCommands,
  manCommand, completionCommand,
];
