/** `man` and `completion`: texts made from the command specs themselves. */
import type * as ManModule from "./man";
import type * as CompletionModule from "./completion";
import type * as AppModule from "./app";
import type * as CommandsModule from "./commands";
import type { CommandDef } from "./spec";
import { writeOut } from "../util/stdio";

// Lazy: the registry and the app import this file, and the texts are only made when asked for.
const specs = () => ({
  commands: (require("./commands") as typeof CommandsModule).allCommands(),
  globals: (require("./app") as typeof AppModule).globalOptions,
});

export const manCommand: CommandDef = {
  name: "man",
  args: ["command", "subcommand"],
  minArgs: 0,
  description: "print the manual page of boci or of a command (roff: pipe it to `man -l -`)",
  options: [],
  run(args) {
    const { commands, globals } = specs();
    writeOut((require("./man") as typeof ManModule).manPage(args, commands, globals));
  },
};

export const completionCommand: CommandDef = {
  name: "completion",
  args: ["shell"],
  description: "print a shell completion script: bash, zsh or fish",
  options: [],
  run(args) {
    const { commands, globals } = specs();
    writeOut((require("./completion") as typeof CompletionModule).completionScript(args[0]!, commands, globals));
  },
};
