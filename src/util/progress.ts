/**
 * Progress on stderr for a terminal: one line redrawn in place, at most every 100 ms.
 * Silent when stderr is not a TTY or when disabled (--no-progress).
 */
import { writeErr, stderrIsTTY } from "./stdio";

export interface Progress {
  update(line: () => string): void;
  done(): void;
}

export function createProgress(opts: { enabled: boolean }): Progress {
  const on = opts.enabled && stderrIsTTY();
  let last = -Infinity; // (the first update draws at once, however soon after start-up)
  let drawn = false;
  return {
    update(line) {
      if (!on) return;
      const now = performance.now();
      if (now - last < 100) return;
      last = now;
      const cols = process.stderr.columns || 80;
      writeErr(`\r\x1b[K${line().slice(0, cols - 1)}`);
      drawn = true;
    },
    done() {
      if (on && drawn) writeErr("\r\x1b[K");
      drawn = false;
    },
  };
}

export function formatBytes(n: number): string {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}
