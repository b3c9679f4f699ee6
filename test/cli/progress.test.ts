/** Progress lines appear on a terminal (a pty from script(1)) and never on a pipe. */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { ok, boci, scratch, have, BIN } from "../helpers/cli";

test.skipIf(!have("script"))("unpack draws progress on a terminal, not on a pipe, not with --no-progress", () => {
  const s = scratch();
  const L = join(s, "l");
  ok(["init", "--layout", L]);
  ok(["new", "--image", `${L}:t`]);
  ok(["unpack", "--image", `${L}:t`, join(s, "b0")]);
  const big = Buffer.alloc(24 << 20);
  for (let i = 0; i < big.length; i += 8) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(join(s, "b0/rootfs/big"), big);
  ok(["repack", "--image", `${L}:t`, join(s, "b0")]);
  const piped = boci(["unpack", "--image", `${L}:t`, join(s, "b1")]);
  expect(piped.code).toBe(0);
  expect(piped.stderr).toBe("");
  const tty = Bun.spawnSync(["script", "-qec", `${BIN} unpack --image ${L}:t ${join(s, "b2")}`, "/dev/null"], { stdout: "pipe", stderr: "pipe" });
  expect(tty.exitCode).toBe(0);
  expect(tty.stdout.toString()).toMatch(/unpack: layer 1 of 1 .* of .*\/s/);
  const quiet = Bun.spawnSync(["script", "-qec", `${BIN} unpack --no-progress --image ${L}:t ${join(s, "b3")}`, "/dev/null"], { stdout: "pipe", stderr: "pipe" });
  expect(quiet.exitCode).toBe(0);
  expect(quiet.stdout.toString()).not.toContain("unpack: layer");
});

test.skipIf(!have("script"))("repack draws progress on a terminal (files scanned, bytes written, rate)", () => {
  const s = scratch();
  const L = join(s, "l");
  ok(["init", "--layout", L]);
  ok(["new", "--image", `${L}:t`]);
  ok(["unpack", "--image", `${L}:t`, join(s, "b")]);
  const big = Buffer.alloc(48 << 20);
  for (let i = 0; i < big.length; i += 8) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  for (let i = 0; i < 4; i++) writeFileSync(join(s, `b/rootfs/f${i}`), big.subarray(i * (12 << 20), (i + 1) * (12 << 20)));
  const tty = Bun.spawnSync(["script", "-qec", `${BIN} repack --image ${L}:t2 ${join(s, "b")}`, "/dev/null"], { stdout: "pipe", stderr: "pipe" });
  expect(tty.exitCode).toBe(0);
  expect(tty.stdout.toString()).toMatch(/repack: (scanned \d+ files|writing \d+ changed paths)/);
  const piped = boci(["repack", "--image", `${L}:t3`, join(s, "b")]);
  expect(piped.code).toBe(0);
  expect(piped.stderr).toBe("");
});
