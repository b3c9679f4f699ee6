/**
 * The logger: consola writing everything to stderr (stdout is for command output).
 * Levels follow umoci's --log: debug, info, warn (default), error, fatal.
 */
import { createConsola, type ConsolaInstance } from "consola";

const levels: Record<string, number> = { fatal: 0, error: 0, warn: 1, info: 3, debug: 4 };

export let log: ConsolaInstance = createConsola({ level: 1, stdout: process.stderr, stderr: process.stderr });

export function setLogLevel(name: string): void {
  log.level = levels[name] ?? 1;
}

export function isLogLevel(name: string): boolean {
  return name in levels;
}

export function logLevelName(): string {
  return Object.entries(levels).find(([, v]) => v === log.level)?.[0] ?? "warn";
}
