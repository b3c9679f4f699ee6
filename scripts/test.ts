/**
 * Run the whole test suite with `bun test` (building dist/boci first, since the CLI tests spawn
 * the real binary) and end with the line CI reads: `N passed, N failed`.
 * Extra arguments go to `bun test` (e.g. a path filter). With BOCI_OUTFILE the binary is built
 * there and tested (so a run is not disturbed by another build of dist/boci in the same checkout).
 */
import { join } from "node:path";
import { chmodSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { removeTreeForce } from "../src/util/cleanup";

const root = join(import.meta.dir, "..");
const bin = process.env.BOCI_OUTFILE ?? join(root, "dist/boci");
const build = Bun.spawnSync([process.execPath, "scripts/build.ts"], { cwd: root, stdout: "inherit", stderr: "inherit" });
if (build.exitCode !== 0) {
  console.log("0 passed, 1 failed");
  process.exit(1);
}
// Every test file works below one fresh TMPDIR (sticky and world-writable like /tmp, for the
// tests that run as uid 65534), removed at the end: a test that forgets its scratch directory
// is reported here and leaves nothing behind on the machine.
const tmp = mkdtempSync(join(tmpdir(), "boci-suite-"));
chmodSync(tmp, 0o1777);
const proc = Bun.spawn([process.execPath, "test", "--timeout", "300000", ...process.argv.slice(2)], {
  cwd: root, stdout: "pipe", stderr: "pipe", env: { ...process.env, BOCI_BIN: bin, TMPDIR: tmp },
});
let pass = 0, fail = 0;
async function pump(stream: ReadableStream<Uint8Array>, out: NodeJS.WriteStream) {
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of stream) {
    const text = dec.decode(chunk, { stream: true });
    out.write(text);
    buf += text;
    const lines = buf.split("\n");
    buf = lines.pop()!;
    for (const l of lines) {
      const m = /^\s*(\d+) (pass|fail)\s*$/.exec(l);
      if (m) { if (m[2] === "pass") pass = Number(m[1]); else fail = Number(m[1]); }
    }
  }
}
await Promise.all([pump(proc.stdout, process.stdout), pump(proc.stderr, process.stderr)]);
const code = await proc.exited;
const left = readdirSync(tmp);
if (left.length) console.log(`test: ${left.length} entries left in TMPDIR by the tests (removed): ${left.slice(0, 10).join(" ")}${left.length > 10 ? " ..." : ""}`);
removeTreeForce(tmp);
if (code !== 0 && fail === 0) fail = 1;
console.log(`${pass} passed, ${fail} failed`);
process.exit(code === 0 && fail === 0 ? 0 : 1);
