/**
 * The command registry (src/cli/commands.ts) names each command without loading its module:
 * the names, aliases and hidden flags there must be the CommandDefs' own, and every command a
 * command module exports must be registered (else argv could never reach it).
 */
import { describe, expect, test } from "bun:test";
import { registry, allCommands } from "../../src/cli/commands";
import type { CommandDef } from "../../src/cli/spec";

const modules = ["layout-commands", "config", "stat", "unpack", "repack", "validate", "copy", "index-commands", "doc-commands", "artifact-commands"];

function exportedDefs(): CommandDef[] {
  const out: CommandDef[] = [];
  for (const m of modules) {
    let mod: Record<string, unknown>;
    try { mod = require(`../../src/cli/${m}`); } catch { continue; }
    for (const v of Object.values(mod)) {
      for (const d of Array.isArray(v) ? v : [v]) {
        const c = d as CommandDef;
        if (c && typeof c === "object" && typeof c.name === "string" && typeof c.run === "function" && Array.isArray(c.options)) out.push(c);
      }
    }
  }
  return out;
}

describe("command registry", () => {
  test("the commands that work through layers or images run with the JIT at its normal pace (util/jit.ts); short ones do not", () => {
    const long = allCommands().filter((c) => c.longRunning).map((c) => c.name).sort();
    expect(long).toEqual(["copy", "insert", "raw add-layer", "raw mtree-validate", "raw unpack", "repack", "unpack", "validate"]);
  });
  test("each entry's names are its CommandDef's", () => {
    for (const e of registry) {
      const d = e.load();
      expect({ name: d.name, aliases: d.aliases ?? [], hidden: d.hidden ?? false }).toEqual({ name: e.name, aliases: e.aliases ?? [], hidden: e.hidden ?? false });
    }
    expect(allCommands().map((c) => c.name)).toEqual(registry.map((e) => e.name));
  });
  test("every command a command module exports is registered, once", () => {
    const names = registry.map((e) => e.name);
    expect(new Set(names).size).toBe(names.length);
    for (const d of exportedDefs()) expect(names).toContain(d.name);
  });
});
