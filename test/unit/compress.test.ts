import { describe, expect, test } from "bun:test";
import { Readable, type Transform } from "node:stream";
import * as zlib from "node:zlib";
import { InvalidError, UnsupportedError } from "../../src/errors";
import { markReleasable, release } from "../../src/util/release";
import { blockLevel, gzipBlock } from "../../src/compress/gzip-block";
import { WorkerPool } from "../../src/worker/pool";
import {
  compressionFromMediaType,
  createCompressor,
  createDecompressor,
  parallelGzip,
  mediaTypeSuffix,
  sniffCompression,
  type Compression,
  type ParallelGzipOptions,
} from "../../src/compress";

/** parallel gzip of `input` in chunks of `chunk` bytes */
async function gz(opts: ParallelGzipOptions, input: Buffer, chunk = 65536): Promise<Buffer> {
  async function* src() {
    for (let i = 0; i < input.length; i += chunk) yield input.subarray(i, i + chunk);
  }
  const out: Buffer[] = [];
  for await (const c of parallelGzip(src(), opts)) out.push(c);
  return Buffer.concat(out);
}

async function run(t: Transform, input: Buffer, chunk = 65536): Promise<Buffer> {
  const src = Readable.from(
    (function* () {
      for (let i = 0; i < input.length; i += chunk) yield input.subarray(i, i + chunk);
    })(),
  );
  const out: Buffer[] = [];
  for await (const c of src.pipe(t)) out.push(c as Buffer);
  return Buffer.concat(out);
}

function semiCompressible(n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = i % 3 === 0 ? x >>> 24 : 0x61 + (i % 17);
  }
  return b;
}

const data = semiCompressible(300000);

describe("media types", () => {
  test("suffix registry", () => {
    expect(compressionFromMediaType("application/vnd.oci.image.layer.v1.tar")).toBe("none");
    expect(compressionFromMediaType("application/vnd.oci.image.layer.v1.tar+gzip")).toBe("gzip");
    expect(compressionFromMediaType("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")).toBe("zstd");
    expect(() => compressionFromMediaType("application/vnd.oci.image.layer.v1.tar+bzip2")).toThrow(UnsupportedError);
    expect(mediaTypeSuffix("none")).toBe("");
    expect(mediaTypeSuffix("gzip")).toBe("+gzip");
    expect(mediaTypeSuffix("zstd")).toBe("+zstd");
  });

  test("sniffing", () => {
    expect(sniffCompression(zlib.gzipSync(data))).toBe("gzip");
    expect(sniffCompression(zlib.zstdCompressSync(data))).toBe("zstd");
    expect(sniffCompression(Buffer.alloc(1024))).toBe("none");
    const h = Buffer.alloc(512);
    h.write("ustar\x0000", 257, "latin1");
    expect(sniffCompression(h)).toBe("none");
    expect(sniffCompression(Buffer.from("hello"))).toBe("unknown");
  });
});

describe("codecs", () => {
  for (const c of ["none", "gzip", "zstd"] as Compression[]) {
    test(`${c} round trip`, async () => {
      const z = await run(createCompressor(c), data);
      if (c !== "none") expect(z.length).toBeLessThan(data.length);
      for (const chunk of [z.length, 4096]) expect((await run(createDecompressor(c), z, chunk)).equals(data)).toBe(true);
      const small = data.subarray(0, 3000);
      const zs = await run(createCompressor(c), small);
      expect((await run(createDecompressor(c), zs, 13)).equals(small)).toBe(true);
    });
  }

  test("gzip header is deterministic: mtime 0, no name", async () => {
    const z = await run(createCompressor("gzip"), data);
    expect(z[0]).toBe(0x1f);
    expect(z[1]).toBe(0x8b);
    expect(z[3]! & 0x08).toBe(0); // no FNAME
    expect(z.readUInt32LE(4)).toBe(0);
    expect((await run(createCompressor("gzip"), data)).equals(z)).toBe(true);
  });

  test("gzip multi-member: every member is decoded", async () => {
    const small = data.subarray(0, 6000);
    const parts = [small.subarray(0, 1000), Buffer.alloc(0), small.subarray(1000)];
    const z = Buffer.concat(parts.map((p) => zlib.gzipSync(p)));
    for (const chunk of [z.length, 1000, 7]) expect((await run(createDecompressor("gzip"), z, chunk)).equals(small)).toBe(true);
  });

  test("gzip trailing junk warns but succeeds, without losing output", async () => {
    const small = data.subarray(0, 20000);
    const z = Buffer.concat([zlib.gzipSync(small.subarray(0, 5000)), zlib.gzipSync(small.subarray(5000)), Buffer.from("JUNK after the stream")]);
    for (const chunk of [z.length, 1000, 7]) {
      const warnings: string[] = [];
      const out = await run(createDecompressor("gzip", { onWarning: (m) => warnings.push(m) }), z, chunk);
      expect(out.equals(small)).toBe(true);
      expect(warnings).toEqual(["ignoring 21 bytes of trailing data after gzip stream"]);
    }
    // trailing zeros: silently ignored
    const warnings: string[] = [];
    const zz = Buffer.concat([zlib.gzipSync(data), Buffer.alloc(100)]);
    expect((await run(createDecompressor("gzip", { onWarning: (m) => warnings.push(m) }), zz)).equals(data)).toBe(true);
    expect(warnings).toEqual([]);
  });

  test("truncated and corrupt gzip are InvalidError", async () => {
    const z = zlib.gzipSync(data);
    for (const cut of [1, 5, 8, 100, z.length - 12]) {
      const err = await run(createDecompressor("gzip"), z.subarray(0, z.length - cut)).catch((e) => e);
      expect(err).toBeInstanceOf(InvalidError);
      expect(err.message).toContain("truncated gzip stream");
    }
    const bad = Buffer.from(z);
    bad[z.length - 6] ^= 0xff; // crc32
    await expect(run(createDecompressor("gzip"), bad)).rejects.toBeInstanceOf(InvalidError);
    await expect(run(createDecompressor("gzip"), Buffer.from("not gzip at all"))).rejects.toBeInstanceOf(InvalidError);
    await expect(run(createDecompressor("gzip"), Buffer.alloc(0))).rejects.toBeInstanceOf(InvalidError);
  });

  test("zstd: concatenated frames, truncation is InvalidError", async () => {
    const z = Buffer.concat([zlib.zstdCompressSync(data.subarray(0, 1000)), zlib.zstdCompressSync(data.subarray(1000))]);
    expect((await run(createDecompressor("zstd"), z, 999)).equals(data)).toBe(true);
    for (const cut of [1, 4, 100]) {
      const err = await run(createDecompressor("zstd"), z.subarray(0, z.length - cut)).catch((e) => e);
      expect(err).toBeInstanceOf(InvalidError);
    }
  });

  test.each(["gzip", "zstd"] as const)("a slow reader holds the %s decoder back: a bomb's output never piles up", async (c) => {
    const zeros = Buffer.alloc(48 * 1024 * 1024);
    const bomb = c === "gzip" ? zlib.gzipSync(zeros, { level: 9 }) : zlib.zstdCompressSync(zeros);
    const dec = createDecompressor(c);
    Readable.from([bomb]).pipe(dec);
    let total = 0, most = 0;
    for await (const x of dec) {
      total += (x as Buffer).length;
      most = Math.max(most, dec.readableLength);
      await Bun.sleep(3);
    }
    expect(total).toBe(zeros.length);
    // 4 MiB may wait, plus what one decoder step hands out before it is paused
    expect(most).toBeLessThan(8 * 1024 * 1024);
  });

  test("maxOutputBytes bounds decompression", async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(10 * 1024 * 1024));
    const err = await run(createDecompressor("gzip", { maxOutputBytes: 1024 * 1024 }), bomb).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidError);
    expect(err.message).toBe("decompressed size exceeds limit 1048576");
    const zbomb = zlib.zstdCompressSync(Buffer.alloc(10 * 1024 * 1024));
    await expect(run(createDecompressor("zstd", { maxOutputBytes: 1024 * 1024 }), zbomb)).rejects.toBeInstanceOf(InvalidError);
    await expect(run(createDecompressor("none", { maxOutputBytes: 10 }), data)).rejects.toBeInstanceOf(InvalidError);
  });
});

describe("parallel gzip", () => {
  test("multi-member output decodes everywhere and is deterministic", async () => {
    const opts = { blockSize: 64 * 1024 };
    const a = await gz(opts, data, 10000);
    const b = await gz(opts, data, 77777);
    expect(a.equals(b)).toBe(true);
    expect(zlib.gunzipSync(a).equals(data)).toBe(true);
    expect((await run(createDecompressor("gzip"), a)).equals(data)).toBe(true);
    // empty input is still valid gzip
    expect(zlib.gunzipSync(await gz({}, Buffer.alloc(0))).length).toBe(0);
  });

  test("input chunks marked releasable are freed once copied; unmarked ones are left alone", async () => {
    const src = Buffer.from(data.subarray(0, 300_000));
    // the same bytes in chunks that straddle the 64 KiB blocks, every other one marked
    const chunks: Buffer[] = [];
    for (let off = 0; off < src.length; off += 50_000) {
      const c = Buffer.from(src.subarray(off, off + 50_000));
      chunks.push(chunks.length % 2 ? c : markReleasable(c));
    }
    const out: Buffer[] = [];
    async function* input() { yield* chunks; }
    for await (const c of parallelGzip(input(), { blockSize: 64 * 1024 })) out.push(c);
    expect(zlib.gunzipSync(Buffer.concat(out)).equals(src)).toBe(true);
    expect(chunks.map((c) => c.length)).toEqual([0, 50_000, 0, 50_000, 0, 50_000]);
    // every output member is marked for the writer to free, and release() empties it
    const member = out[0]!;
    expect(member.length).toBeGreaterThan(0);
    release(member);
    expect(member.length).toBe(0);
    const plain = Buffer.from("kept");
    release(plain);
    expect(plain.toString()).toBe("kept");
  });

  test("on a pool of workers and inline the bytes are the same", async () => {
    const big = Buffer.concat([data, Buffer.from(Array.from({ length: 3 << 20 }, (_, i) => (i * 7919) >> 5 & 255)), data]);
    const two = new WorkerPool(2);
    const one = new WorkerPool(1);
    try {
      const a = await gz({ pool: two }, big, 300_001);
      const b = await gz({ pool: one }, big, 65_536);
      expect(a.equals(b)).toBe(true);
      expect(zlib.gunzipSync(a).equals(big)).toBe(true);
      // more than one member, each with mtime 0 and no name
      expect(a.readUInt32LE(4)).toBe(0);
      expect(a[3]).toBe(0);
    } finally {
      two.terminate();
      one.terminate();
    }
  });

  test("the pool is woken by the first full block only, and blocks go to it once a worker has started", async () => {
    const big = Buffer.concat([data, Buffer.from(Array.from({ length: 3 << 20 }, (_, i) => (i * 7919) >> 5 & 255)), data]);
    const one = new WorkerPool(1);
    const cold = new WorkerPool(2);
    const warm = new WorkerPool(2);
    try {
      const spy = (p: WorkerPool) => {
        const calls = { n: 0 };
        const orig = p.gzipBlock.bind(p);
        p.gzipBlock = (b, n, l) => { calls.n++; return orig(b, n, l); };
        return calls;
      };
      // shorter than one block: compressed here, no worker ever spawned
      const coldCalls = spy(cold);
      const small = await gz({ pool: cold }, data.subarray(0, 100_000), 4096);
      expect(cold.workerCount).toBe(0);
      expect(coldCalls.n).toBe(0);
      expect(zlib.gunzipSync(small).equals(data.subarray(0, 100_000))).toBe(true);
      // a longer stream wakes every worker; whichever block went where, the bytes are the inline ones
      const inline = await gz({ pool: one }, big, 65_536);
      expect((await gz({ pool: cold }, big, 300_001)).equals(inline)).toBe(true);
      expect(cold.workerCount).toBe(2);
      // started workers get the blocks
      warm.warm();
      while (!warm.anyStarted) await Bun.sleep(2);
      const warmCalls = spy(warm);
      expect((await gz({ pool: warm }, big, 300_001)).equals(inline)).toBe(true);
      expect(warmCalls.n).toBeGreaterThan(1);
    } finally {
      one.terminate();
      cold.terminate();
      warm.terminate();
    }
  });

  test("a stream of known length wakes the pool only for work worth it, and blocks done inline go out at once", async () => {
    const block = 1 << 20;
    const big = Buffer.alloc(6 * block);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) >> 7 & 255;
    const pool = new WorkerPool(2);
    const other = new WorkerPool(2);
    try {
      let pulled = 0;
      const lags: number[] = [];
      async function* src() { for (let o = 0; o < big.length; o += block) { pulled++; yield big.subarray(o, o + block); } }
      const out: Buffer[] = [];
      // (told it is short: nothing is left to do after the first block, by its own account)
      for await (const m of parallelGzip(src(), { pool, expectedBytes: block })) { out.push(m); lags.push(pulled - out.length); }
      expect(zlib.gunzipSync(Buffer.concat(out)).equals(big)).toBe(true);
      expect(pool.workerCount).toBe(0);
      // each member is handed out as soon as its block is done (not held behind the pool's bound)
      expect(Math.max(...lags)).toBeLessThanOrEqual(1);
      // a long stream (a TiB to go): the first full block wakes the pool; the bytes are the same
      expect((await gz({ pool: other, expectedBytes: 2 ** 40 }, big, block)).equals(Buffer.concat(out))).toBe(true);
      expect(other.workerCount).toBe(2);
    } finally {
      pool.terminate();
      other.terminate();
    }
  });

  test("a block that does not compress is stored; one with text anywhere in it is deflated", () => {
    let x = 12345;
    const random = Buffer.alloc(1 << 20);
    for (let i = 0; i < random.length; i++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; random[i] = x >>> 24; }
    expect(blockLevel(random, 2)).toBe(0);
    expect(gzipBlock(random, 2).length).toBeGreaterThan(random.length);
    expect(gzipBlock(random, 2).length).toBeLessThan(random.length + 200);
    // text in the last eighth only: a probe there finds it
    const mixed = Buffer.from(random);
    mixed.fill("hello text ", mixed.length - (mixed.length >> 3));
    expect(blockLevel(mixed, 2)).toBe(2);
    expect(blockLevel(Buffer.alloc(1 << 20), 6)).toBe(6);
    expect(blockLevel(random.subarray(0, 1000), 2)).toBe(2); // too small to probe
  });

  test("a custom compressBlock is used in order", async () => {
    const seen: number[] = [];
    const z = await gz(
      {
        blockSize: 1000,
        compressBlock: async (b) => {
          seen.push(b.length);
          await Bun.sleep(Math.random() * 5);
          return zlib.gzipSync(b);
        },
      },
      data.subarray(0, 4500),
    );
    expect(seen).toEqual([1000, 1000, 1000, 1000, 500]);
    expect(zlib.gunzipSync(z).equals(data.subarray(0, 4500))).toBe(true);
  });
});

describe("storeLayer", () => {
  test("a producer that fails leaves no blob and no temporary file, and its own error reaches the caller (gzip, none, zstd)", async () => {
    const { mkdtempSync, readdirSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { Layout, initLayout } = await import("../../src/cas");
    const { storeLayer } = await import("../../src/bundle/layer-blob");
    const root = mkdtempSync(join(tmpdir(), "boci-store-"));
    try {
      for (const c of ["gzip", "none", "zstd"] as const) {
        const p = join(root, c);
        initLayout(p);
        const layout = Layout.open(p);
        const before = readdirSync(join(p, "blobs/sha256")).sort();
        async function* failing() {
          yield Buffer.alloc(3 << 20, 1); // past one gzip block
          throw new Error(`producer failed (${c})`);
        }
        const err = await storeLayer(layout, failing(), c).catch((e) => e);
        expect((err as Error).message).toBe(`producer failed (${c})`);
        expect(readdirSync(join(p, "blobs/sha256")).sort()).toEqual(before);
        const tmp = join(p, ".boci-tmp");
        expect(readdirSync(tmp, { withFileTypes: false }).length).toBe(0);
        // and the same writer stores a good layer afterwards, with its diffID
        async function* good() { yield data; }
        const stored = await storeLayer(layout, good(), c);
        expect(stored.diffID).toBe("sha256:" + new Bun.CryptoHasher("sha256").update(data).digest("hex"));
        expect(stored.uncompressedSize).toBe(data.length);
        layout.close();
      }
    } finally { rmSync(root, { recursive: true, force: true }); }
  });
});
