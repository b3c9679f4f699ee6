/**
 * Worker entry: CPU-heavy tasks off the main thread. Listed as an extra entrypoint in the
 * `bun build --compile` command (scripts/build.ts), so the compiled binary can start it.
 */
import * as fs from "node:fs";
import { gzipBlock } from "../compress/gzip-block";
import { normalJit } from "../util/jit";
import type { StreamMsg, StreamReply, Task, TaskResult } from "./tasks";

declare const self: Worker;

let chunk: Buffer | undefined;

/** sha256 of what `fd` holds, read with pread from offset 0 (its own offset is not moved). */
function hashFd(fd: number): string {
  const h = new Bun.CryptoHasher("sha256");
  const buf = (chunk ??= Buffer.allocUnsafe(4 << 20));
  let pos = 0;
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, pos);
    if (n <= 0) break;
    pos += n;
    h.update(buf.subarray(0, n));
  }
  return h.digest("hex");
}

/** By path (WorkerPool.hashFile): never the name's target, never a FIFO (as rootfs/read.ts openRegularAt). */
function hashFile(p: string): string {
  const c = fs.constants;
  const fd = fs.openSync(p, c.O_RDONLY | c.O_NOFOLLOW | c.O_NONBLOCK);
  try {
    if (!fs.fstatSync(fd).isFile()) throw new Error(`${p}: not a regular file`);
    return hashFd(fd);
  } finally {
    fs.closeSync(fd);
  }
}

const streams = new Map<number, Bun.CryptoHasher>();

function onStream(m: StreamMsg): void {
  switch (m.op) {
    case "hsUpdate": {
      let h = streams.get(m.sid);
      if (!h) streams.set(m.sid, (h = new Bun.CryptoHasher("sha256")));
      h.update(new Uint8Array(m.data, 0, m.n));
      // The buffer goes back for reuse (fresh pages cost more than the copy into them).
      self.postMessage({ ack: m.sid, n: m.n, data: m.data } satisfies StreamReply, [m.data]);
      return;
    }
    case "hsEnd": {
      const h = streams.get(m.sid) ?? new Bun.CryptoHasher("sha256");
      streams.delete(m.sid);
      self.postMessage({ done: m.sid, hex: h.digest("hex") } satisfies StreamReply);
      return;
    }
    case "hsAbort":
      streams.delete(m.sid);
      return;
  }
}

// (long loops over blocks and hashes: the JIT at its normal pace, not the start-up one)
normalJit();

self.onmessage = (ev: MessageEvent<Task | StreamMsg>) => {
  if ("sid" in ev.data) return onStream(ev.data);
  const t = ev.data;
  try {
    let r: TaskResult;
    switch (t.op) {
      case "hashFile":
        r = { id: t.id, ok: true, hex: hashFile(t.path) };
        break;
      case "hashFd":
        r = { id: t.id, ok: true, hex: hashFd(t.fd) };
        break;
      case "hashBytes": {
        const h = new Bun.CryptoHasher("sha256");
        h.update(new Uint8Array(t.data));
        r = { id: t.id, ok: true, hex: h.digest("hex") };
        break;
      }
      case "gzipBlock": {
        const out = gzipBlock(new Uint8Array(t.data, 0, t.n), t.level);
        // The member's own buffer when it is exactly the member (no copy), else a copy.
        const ab = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength
          ? (out.buffer as ArrayBuffer)
          : (out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength) as ArrayBuffer);
        self.postMessage({ id: t.id, ok: true, data: ab, back: t.data } satisfies TaskResult, [ab, t.data]);
        return;
      }
    }
    self.postMessage(r);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    self.postMessage({ id: t.id, ok: false, error: err.message, code: err.code } satisfies TaskResult);
  }
};
