import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipBlock } from "../../src/compress/gzip-block";
import { gunzipSync } from "node:zlib";
import { WorkerPool } from "../../src/worker/pool";

const dir = mkdtempSync(join(tmpdir(), "boci-pool-"));
const pool = new WorkerPool(2);
afterAll(() => { pool.terminate(); rmSync(dir, { recursive: true, force: true }); });

function inline(data: Uint8Array): string {
  const h = new Bun.CryptoHasher("sha256");
  h.update(data);
  return h.digest("hex");
}

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; b[i] = x >>> 24; }
  return b;
}

describe("worker pool", () => {
  test("file digests from the pool equal inline digests (empty, small, multi-chunk)", async () => {
    const sizes = [0, 1, 4095, 1 << 20, (9 << 20) + 7];
    const files = sizes.map((n, i) => { const p = join(dir, `f${i}`); const b = bytes(n, i + 1); writeFileSync(p, b); return { p, b }; });
    const got = await Promise.all(files.map((f) => pool.hashFile(f.p)));
    expect(got).toEqual(files.map((f) => inline(f.b)));
  });
  test("byte digests from the pool equal inline digests, and a Buffer view is not detached", async () => {
    const big = bytes(3 << 20, 9);
    const view = big.subarray(100, 200000);
    expect(await pool.hashBytes(view)).toBe(inline(view));
    expect(view.length).toBe(199900);
  });
  test("gzip members from the pool decode to the input, equal the inline member, and the block comes back", async () => {
    const data = bytes(2 << 20, 5);
    const ab = new ArrayBuffer(3 << 20);
    new Uint8Array(ab).set(data);
    const { member, back } = await pool.gzipBlock(ab, data.length, 2);
    expect(ab.byteLength).toBe(0); // transferred
    expect(back.byteLength).toBe(3 << 20);
    expect(Buffer.compare(gunzipSync(member), data)).toBe(0);
    expect(Buffer.compare(member, Buffer.from(gzipBlock(data, 2)))).toBe(0);
  });
  test("streamed digests equal inline digests, whatever the chunking, many streams at once", async () => {
    const datas = [0, 1, 511, (512 << 10) - 1, 512 << 10, (5 << 20) + 3].map((n, i) => bytes(n, 40 + i));
    const digests = await Promise.all(datas.map(async (d, i) => {
      const h = pool.hashStream();
      // Uneven pieces, some of them views into a larger buffer.
      let off = 0, k = 0;
      while (off < d.length) {
        const n = Math.min(d.length - off, [1, 700, 65536, 300000, 1 << 20][(k++ + i) % 5]!);
        const w = h.update(d.subarray(off, off + n));
        off += n;
        if (w) await w;
      }
      return h.digest();
    }));
    expect(digests).toEqual(datas.map(inline));
    // The caller's buffers are copied, never detached.
    expect(datas[5]!.length).toBe((5 << 20) + 3);
  });
  test("an aborted stream leaves the pool usable; digest() twice is refused", async () => {
    const a = pool.hashStream();
    a.update(bytes(3 << 20, 7));
    a.abort();
    const b = pool.hashStream();
    b.update(Buffer.from("abc"));
    expect(await b.digest()).toBe(inline(Buffer.from("abc")));
    await expect(b.digest()).rejects.toThrow();
    expect(await pool.hashFile(join(dir, "f1"))).toBe(inline(bytes(1, 2)));
  });
  test("a pool of one hashes streams inline", async () => {
    const one = new WorkerPool(1);
    const h = one.hashStream();
    h.update(bytes(100000, 3));
    expect(await h.digest()).toBe(inline(bytes(100000, 3)));
    one.terminate();
  });
  test("errors come back as rejections", async () => {
    await expect(pool.hashFile(join(dir, "missing"))).rejects.toThrow();
  });
});
