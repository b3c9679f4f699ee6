/**
 * A command waiting for a busy layout lock stops at once on SIGINT/SIGTERM (flock(2) blocks the
 * thread, so JavaScript handlers could not run: the wait has the default disposition) and the
 * layout is unchanged. Needs util-linux `flock` to hold the lock from outside.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, have, ok, scratch } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";

const HAVE_FLOCK = have("flock");
if (!HAVE_FLOCK) console.log("lock-wait-signal: util-linux flock missing; skipping");

describe.skipIf(!HAVE_FLOCK)("signals while waiting for the layout lock", () => {
  for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    test(`${sig} stops a tag waiting for the index lock; index.json unchanged`, async () => {
      const L = join(scratch(), "layout");
      ok(["init", "--layout", L]);
      ok(["new", "--image", `${L}:a`]);
      const before = readFileSync(join(L, "index.json"));
      // hold the index lock for 30 s from another process
      const holder = Bun.spawn(["flock", "-x", join(L, ".boci-index.lock"), "sleep", "30"], { stdout: "ignore", stderr: "ignore" });
      try {
        await Bun.sleep(300);
        const p = Bun.spawn([BIN, "tag", "--image", `${L}:a`, "b"], { stdout: "pipe", stderr: "pipe" });
        await Bun.sleep(800); // it is waiting now
        const t0 = performance.now();
        p.kill(sig);
        const rc = await p.exited;
        const waited = performance.now() - t0;
        // died of the signal (Bun reports the signal, a shell reports 128+n) or exited with 128+n
        expect(p.signalCode === sig || rc === code).toBe(true);
        expect(waited).toBeLessThan(5000);
        expect(readFileSync(join(L, "index.json")).equals(before)).toBe(true);
        expect(checkLayout(L)).toEqual([]);
      } finally {
        holder.kill("SIGKILL");
        await holder.exited;
      }
    });
  }
});
