/**
 * Command output through plain write(2) on fds 1 and 2. Touching process.stdout/stderr makes
 * Bun build its stream machinery, which costs more start-up time than a short command takes.
 */
import { writeSync } from "node:fs";
import type * as Tty from "node:tty";

function writeAll(fd: number, s: string | Uint8Array): void {
  const buf = typeof s === "string" ? Buffer.from(s) : s;
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      // A non-blocking pipe that is full: wait a moment and retry.
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") { Bun.sleepSync(1); continue; }
      if ((e as NodeJS.ErrnoException).code === "EPIPE") return;
      throw e;
    }
  }
}

export function writeOut(s: string): void { writeAll(1, s); }
/** Bytes as they are (stat's hex dump writes Latin-1 bytes raw, as umoci does). */
export function writeOutBytes(b: Uint8Array): void { writeAll(1, b); }
export function writeErr(s: string): void { writeAll(2, s); }
// node:tty loaded only when asked (start-up RSS)
export function stderrIsTTY(): boolean { return (require("node:tty") as typeof Tty).isatty(2); }
