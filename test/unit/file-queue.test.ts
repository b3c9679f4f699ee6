/**
 * rootfs/file-queue.ts driven directly: files finished on the worker (body, mode, times, digest)
 * and a job that fails. Skipped where the queue is off (one core, or BOCI_WORKERS below 2).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, lstatSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileQueue, MAX_BODY, stopFileWorker } from "../../src/rootfs/file-queue";
import type { FileStat } from "../../src/rootfs/file-queue-layout";

const q = FileQueue.shared();
const dir = mkdtempSync(join(tmpdir(), "boci-fq-unit-"));
afterAll(() => {
  stopFileWorker();
  rmSync(dir, { recursive: true, force: true });
});
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe.skipIf(!q)("the file queue", () => {
  test("files: bodies, digests, modes, times, in order of push", () => {
    const got: Array<string | undefined> = [];
    const stats: Array<FileStat | undefined> = [];
    const bodies: Buffer[] = [];
    for (let i = 0; i < 600; i++) {
      const body = randomBytes(i % 50 === 0 ? MAX_BODY : (i * 331) % 9000);
      bodies.push(body);
      const fd = openSync(join(dir, `f${i}`), "wx", 0o600);
      q!.push({ fd, body, owner: null, mode: i % 2 ? 0o640 : -1, mtime: 1_500_000_000 + i + 0.25, hash: i % 3 !== 0, stat: i % 4 === 0, name: `f${i}` }, (d, st) => { got[i] = d; stats[i] = st; });
    }
    q!.drain();
    for (let i = 0; i < 600; i++) {
      const p = join(dir, `f${i}`);
      expect(readFileSync(p).equals(bodies[i]!)).toBe(true);
      const st = lstatSync(p, { bigint: true });
      expect(Number(st.mode & 0o7777n)).toBe(i % 2 ? 0o640 : 0o600);
      expect(st.mtimeNs).toBe(BigInt(1_500_000_000 + i) * 1_000_000_000n + 250_000_000n);
      expect(got[i]).toBe(i % 3 !== 0 ? sha(bodies[i]!) : undefined);
      // the statx the worker read back is the finished file's
      if (i % 4 === 0) expect([stats[i]!.ino, stats[i]!.size, stats[i]!.mtimeSec, stats[i]!.mtimeNsec, stats[i]!.ctimeNsec]).toEqual([Number(st.ino), bodies[i]!.length, 1_500_000_000 + i, 250_000_000, Number(st.ctimeNs % 1_000_000_000n)]);
      else expect(stats[i]).toBeUndefined();
    }
  });

  test("a job that fails: drain throws one error naming the entry; close() makes the queue usable again", () => {
    // a descriptor open read-only: the worker's write fails with EBADF
    const p = join(dir, "ro");
    closeSync(openSync(p, "wx", 0o600));
    const fd = openSync(p, "r");
    q!.push({ fd, body: Buffer.from("x"), owner: null, mode: -1, mtime: 0, hash: false, stat: false, name: "some/entry" }, () => {});
    expect(() => q!.drain()).toThrow(/^apply "some\/entry": write fd \d+: bad file descriptor$/);
    expect(() => q!.push({ fd: -1, body: Buffer.alloc(0), owner: null, mode: -1, mtime: 0, hash: false, stat: false, name: "later" }, () => {})).toThrow(/some\/entry/);
    q!.close();
    const fd2 = openSync(join(dir, "after"), "wx", 0o600);
    let d: string | undefined;
    q!.push({ fd: fd2, body: Buffer.from("ok\n"), owner: null, mode: -1, mtime: 0, hash: true, stat: false, name: "after" }, (x) => { d = x; });
    q!.drain();
    expect(d).toBe(sha(Buffer.from("ok\n")));
  });
});
