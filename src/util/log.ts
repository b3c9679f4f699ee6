/**
 * The logger: consola writing everything to stderr (stdout is for command output).
 * Levels follow umoci's --log: debug, info, warn (default), error, fatal.
 *
 * consola is loaded on the first message that is actually printed: loading it costs about
 * 25 ms of start-up, and most commands print nothing at the default level.
 */
import type { ConsolaInstance } from "consola";
import { escapeText } from "./escape";

const levels: Record<string, number> = { fatal: 0, error: 0, warn: 1, info: 3, debug: 4 };

let instance: ConsolaInstance | null = null;
let level = 1;

function consola(): ConsolaInstance {
  if (!instance) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { createConsola } = require("consola") as typeof import("consola");
    instance = createConsola({ level, stdout: process.stderr, stderr: process.stderr });
  }
  return instance;
}

export const log = {
  get level(): number { return level; },
  set level(v: number) { level = v; if (instance) instance.level = v; },
  // Messages often carry image data (paths, tags): control characters are escaped.
  error(msg: string): void { if (level >= 0) consola().error(escapeText(msg)); },
  warn(msg: string): void { if (level >= 1) consola().warn(escapeText(msg)); },
  info(msg: string): void { if (level >= 3) consola().info(escapeText(msg)); },
  debug(msg: string): void { if (level >= 4) consola().debug(escapeText(msg)); },
};

export function setLogLevel(name: string): void {
  log.level = levels[name] ?? 1;
}

export function isLogLevel(name: string): boolean {
  return name in levels;
}
