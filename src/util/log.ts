/**
 * The logger: consola writing everything to stderr (stdout is for command output), one line per
 * message in the shape of the error line main.ts prints: `boci: warning: …`, `boci: info: …`.
 * Plain ASCII; the level word is coloured only on a terminal without NO_COLOR.
 * Levels follow umoci's --log: debug, info, warn (default), error, fatal.
 *
 * consola is loaded on the first message that is actually printed (through log-consola.ts, so
 * that it is a chunk of the binary of its own): most commands print nothing at the default level.
 */
import type { ConsolaInstance } from "consola";
import { escapeText } from "./escape";
import { writeErr } from "./stdio";

const levels: Record<string, number> = { fatal: 0, error: 0, warn: 1, info: 3, debug: 4 };

let instance: ConsolaInstance | null = null;
let level = 1;

function consola(): ConsolaInstance {
  if (!instance) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { createConsola } = require("./log-consola") as typeof import("./log-consola");
    const color = process.stderr.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== "dumb";
    const paint: Record<string, string> = { warn: "33", error: "31", fatal: "31", info: "36", debug: "90" };
    const word: Record<string, string> = { warn: "warning", fatal: "error" };
    instance = createConsola({
      level,
      reporters: [{
        log(o) {
          const w = word[o.type] ?? o.type;
          const label = color && paint[o.type] ? `\x1b[${paint[o.type]}m${w}\x1b[0m` : w;
          // (the message is one line: escapeText turned any newline in it into \n)
          writeErr(`boci: ${label}: ${o.args.map(String).join(" ")}\n`);
        },
      }],
    });
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
