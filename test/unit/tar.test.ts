import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { InvalidError } from "../../src/errors";
import { checkTarStream, createTarWriter, readTar, type TarHeader, type TarWriterHeader } from "../../src/tar";
import { encodeHeader } from "../../src/tar/header";
import { formatPaxRecord } from "../../src/tar/pax";
import { lsetxattr } from "../../src/sys";
import { isReleasable, markReleasable, release, unmark } from "../../src/util/release";

type In = { header: TarWriterHeader; body?: Buffer };

async function writeTar(entries: In[]): Promise<Buffer> {
  const w = createTarWriter();
  const chunks: Buffer[] = [];
  const reading = (async () => {
    for await (const c of w.output) chunks.push(c);
  })();
  for (const e of entries) await w.add(e.header, e.body);
  await w.finish();
  await reading;
  return Buffer.concat(chunks);
}

async function readAll(input: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<{ header: TarHeader; body: Buffer }[]> {
  const out: { header: TarHeader; body: Buffer }[] = [];
  for await (const e of readTar(input)) out.push({ header: e.header, body: Buffer.from(await e.readAll()) });
  return out;
}

/** Feed a buffer in small chunks to exercise block-spanning reads. */
function* chunked(b: Buffer, n: number): Generator<Buffer> {
  for (let i = 0; i < b.length; i += n) yield b.subarray(i, i + n);
}

function block(fields: Partial<Parameters<typeof encodeHeader>[0]> & { name: string; typeflag: number; size?: number }): Buffer {
  return encodeHeader({ mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, linkname: "", uname: "", gname: "", devmajor: 0, devminor: 0, ...fields });
}

function pad(b: Buffer): Buffer {
  const r = b.length % 512;
  return r ? Buffer.concat([b, Buffer.alloc(512 - r)]) : b;
}

const END = Buffer.alloc(1024);
const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "boci-tar-"));
}

describe("tar writer → reader round trip", () => {
  test("every entry type and attribute", async () => {
    const entries: In[] = [
      { header: { name: "./", type: "dir", mode: 0o755, mtime: 1700000000 } },
      { header: { name: "etc", type: "dir", mode: 0o1777, uid: 5, gid: 6 } },
      { header: { name: "etc/passwd", type: "file", mode: 0o4755, uid: 1000, gid: 1001, mtime: 1234567890 }, body: Buffer.from("root:x:0:0\n") },
      { header: { name: "etc/hard", type: "link", linkname: "etc/passwd" } },
      { header: { name: "etc/sym", type: "symlink", linkname: "../x/y", mode: 0o777 } },
      { header: { name: "dev/null", type: "char", devmajor: 1, devminor: 3, mode: 0o666 } },
      { header: { name: "dev/sda", type: "block", devmajor: 8, devminor: 0, mode: 0o660 } },
      { header: { name: "run/fifo", type: "fifo", mode: 0o600 } },
      { header: { name: "empty", type: "file" }, body: Buffer.alloc(0) },
      { header: { name: "big", type: "file" }, body: Buffer.alloc(70000, 7) },
    ];
    const tar = await writeTar(entries);
    expect(tar.length % 512).toBe(0);
    expect(tar.subarray(tar.length - 1024).equals(END)).toBe(true);
    for (const chunk of [tar.length, 512, 100, 1]) {
      const got = await readAll(chunked(tar, chunk));
      expect(got.map((e) => e.header.name)).toEqual(["./", "etc/", "etc/passwd", "etc/hard", "etc/sym", "dev/null", "dev/sda", "run/fifo", "empty", "big"]);
      expect(got.map((e) => e.header.type)).toEqual(["dir", "dir", "file", "link", "symlink", "char", "block", "fifo", "file", "file"]);
      const [, etc, passwd, hard, sym, nul, sda, fifo, , big] = got;
      expect(etc!.header).toMatchObject({ mode: 0o1777, uid: 5, gid: 6, size: 0 });
      expect(passwd!.header).toMatchObject({ mode: 0o4755, uid: 1000, gid: 1001, mtime: 1234567890, size: 11, uname: "", gname: "" });
      expect(passwd!.body.toString()).toBe("root:x:0:0\n");
      expect(hard!.header).toMatchObject({ linkname: "etc/passwd", size: 0 });
      expect(sym!.header).toMatchObject({ linkname: "../x/y", mode: 0o777 });
      expect(nul!.header).toMatchObject({ devmajor: 1, devminor: 3 });
      expect(sda!.header).toMatchObject({ devmajor: 8, devminor: 0 });
      expect(fifo!.header.mode).toBe(0o600);
      expect(big!.body.equals(Buffer.alloc(70000, 7))).toBe(true);
    }
  });

  test("plain entries use no PAX; GNU tar agrees with the contents", async () => {
    const tar = await writeTar([
      { header: { name: "a", type: "dir", mode: 0o755 } },
      { header: { name: "a/f", type: "file", mode: 0o644, mtime: 1700000000 }, body: Buffer.from("hi") },
    ]);
    expect(tar.length).toBe(512 * 3 + 1024); // two headers, one data block, end marker
    expect(tar[156]).toBe(0x35);
    expect(tar.subarray(257, 265).toString("latin1")).toBe("ustar\x0000");
    const dir = tmpdir();
    fs.writeFileSync(path.join(dir, "t.tar"), tar);
    const r = spawnSync("tar", ["-tvf", "t.tar", "--numeric-owner"], { cwd: dir, encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("a/f");
    fs.rmSync(dir, { recursive: true });
  });

  test("long names, long link names, large uid, binary xattrs", async () => {
    const splittable = "d".repeat(90) + "/" + "f".repeat(90); // fits USTAR prefix/name
    const long300 = ("x".repeat(99) + "/").repeat(3) + "leaf";
    const long4096 = ("p".repeat(127) + "/").repeat(31) + "z".repeat(4096 - 128 * 31);
    expect(Buffer.byteLength(long4096)).toBe(4096);
    const utf = "dir/ünïcødé-файл";
    const entries: In[] = [
      { header: { name: splittable, type: "file" }, body: Buffer.from("s") },
      { header: { name: long300, type: "file" }, body: Buffer.from("l") },
      { header: { name: long4096, type: "file" }, body: Buffer.from("4") },
      { header: { name: long300 + "-dir", type: "dir" } },
      { header: { name: utf, type: "file" }, body: Buffer.from("u") },
      { header: { name: "ln", type: "symlink", linkname: "t".repeat(150) } },
      { header: { name: "hl", type: "link", linkname: long300 } },
      { header: { name: "ids", type: "file", uid: 3000000, gid: 2097152 }, body: Buffer.alloc(0) },
      { header: { name: "caps", type: "file", xattrs: new Map([["security.capability", allBytes], ["user.text", Buffer.from("v=1\n")]]) }, body: Buffer.from("c") },
    ];
    const tar = await writeTar(entries);
    // The splittable name needs no PAX header: its header is the first block.
    expect(tar[156]).toBe(0x30);
    const got = await readAll(chunked(tar, 333));
    expect(got.map((e) => e.header.name)).toEqual([splittable, long300, long4096, long300 + "-dir/", utf, "ln", "hl", "ids", "caps"]);
    expect(got[5]!.header.linkname).toBe("t".repeat(150));
    expect(got[6]!.header.linkname).toBe(long300);
    expect(got[7]!.header).toMatchObject({ uid: 3000000, gid: 2097152 });
    const caps = got[8]!.header.xattrs;
    expect([...caps.keys()].sort()).toEqual(["security.capability", "user.text"]);
    expect(caps.get("security.capability")!.equals(allBytes)).toBe(true);
    expect(caps.get("user.text")!.toString()).toBe("v=1\n");
    expect(got.map((e) => e.body.toString())).toEqual(["s", "l", "4", "", "u", "", "", "", "c"]);

    // PAX pseudo-entries are named like Go's: dir/PaxHeaders.0/base
    const names: string[] = [];
    for (let off = 0; off + 512 <= tar.length; ) {
      const h = tar.subarray(off, off + 512);
      if (h.every((c) => c === 0)) break;
      const size = parseInt(h.toString("latin1", 124, 135), 8);
      if (h[156] === 0x78) names.push(h.toString("latin1", 0, 100).replace(/\0.*$/s, ""));
      off += 512 + Math.ceil(size / 512) * 512;
    }
    expect(names).toContain("PaxHeaders.0/ids");
    expect(names).toContain("PaxHeaders.0/caps");
    expect(names.every((n) => n.length <= 100 && !n.endsWith("/"))).toBe(true);

    // GNU tar reads the same names and the binary xattr.
    const dir = tmpdir();
    fs.writeFileSync(path.join(dir, "t.tar"), tar);
    const r = spawnSync("tar", ["--xattrs", "--xattrs-include=*", "-tvf", "t.tar", "--numeric-owner"], { cwd: dir, encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(long4096);
    expect(r.stdout).toContain("3000000/2097152");
    fs.rmSync(dir, { recursive: true });
  });

  test("output is deterministic", async () => {
    const mk = () => writeTar([{ header: { name: "x".repeat(200), type: "file", mtime: 1.9, xattrs: new Map([["user.b", allBytes], ["user.a", Buffer.from("1")]]) }, body: Buffer.from("abc") }]);
    const [a, b] = [await mk(), await mk()];
    expect(a.equals(b)).toBe(true);
    const [e] = await readAll([a]);
    expect(e!.header.mtime).toBe(1); // whole seconds
  });

  test("an empty archive is exactly two zero blocks", async () => {
    const tar = await writeTar([]);
    expect(tar.length).toBe(1024);
    expect(tar.equals(END)).toBe(true);
    expect(await readAll([tar])).toEqual([]);
  });

  test("body size mismatches are refused", async () => {
    const w = createTarWriter();
    void (async () => { for await (const _ of w.output); })();
    await expect(w.add({ name: "f", type: "file", size: 5 }, Buffer.from("abc"))).rejects.toBeInstanceOf(InvalidError);
    async function* two() {
      yield Buffer.from("ab");
    }
    await expect(w.add({ name: "g", type: "file", size: 5 }, two())).rejects.toBeInstanceOf(InvalidError);
  });

  test("backpressure: add waits for the reader", async () => {
    const w = createTarWriter();
    const size = 32 * 1024 * 1024;
    async function* body() {
      for (let i = 0; i < size / 65536; i++) yield Buffer.alloc(65536, i & 0xff);
    }
    let done = false;
    const p = w.add({ name: "big", type: "file", size }, body()).then(() => (done = true));
    await Bun.sleep(50);
    expect(done).toBe(false);
    expect(w.queuedBytes).toBeLessThan(4 * 1024 * 1024);
    let n = 0;
    const reading = (async () => {
      for await (const c of w.output) n += c.length;
    })();
    await p;
    await w.finish();
    await reading;
    expect(n).toBe(512 + size + 1024);
  });

  test("50,000 small files stream quickly", async () => {
    const N = 50000;
    const w = createTarWriter();
    const chunks: Buffer[] = [];
    const reading = (async () => {
      for await (const c of w.output) chunks.push(c);
    })();
    const t0 = performance.now();
    const body = Buffer.from("small file body\n");
    for (let i = 0; i < N; i++) await w.add({ name: `d${i % 100}/file-${i}`, type: "file", mode: 0o644, mtime: 1700000000 }, body);
    await w.finish();
    await reading;
    const t1 = performance.now();
    let count = 0;
    for await (const e of readTar(chunks)) {
      await e.readAll();
      count++;
    }
    const t2 = performance.now();
    expect(count).toBe(N);
    console.log(`50k files: write ${(t1 - t0).toFixed(0)} ms, read ${(t2 - t1).toFixed(0)} ms`);
    expect(t2 - t0).toBeLessThan(20000);
  });
});

describe("tar reader", () => {
  test("reads GNU tar archives (gnu, posix, xattrs)", async () => {
    const dir = tmpdir();
    const src = path.join(dir, "src");
    const longDir = "l".repeat(120);
    fs.mkdirSync(path.join(src, longDir), { recursive: true });
    fs.writeFileSync(path.join(src, longDir, "file.txt"), "gnu data\n");
    fs.symlinkSync("t".repeat(130), path.join(src, "sym"));
    fs.writeFileSync(path.join(src, "xa"), "x");
    fs.utimesSync(path.join(src, "xa"), 1600000000, 1600000000.5);
    let xattrs = true;
    try {
      lsetxattr(path.join(src, "xa"), "user.bin", allBytes);
    } catch (e) {
      xattrs = false;
      console.log(`skipping xattr part: ${(e as Error).message}`);
    }
    for (const format of ["gnu", "posix"]) {
      const out = path.join(dir, `${format}.tar`);
      const args = [`--format=${format}`, "--numeric-owner", "--owner=1234", "--group=5678", ...(xattrs && format === "posix" ? ["--xattrs", "--xattrs-include=user.*"] : []), "-cf", out, "-C", src, "."];
      const r = spawnSync("tar", args, { encoding: "utf8" });
      expect(r.status).toBe(0);
      const got = await readAll(fs.createReadStream(out));
      const byName = new Map(got.map((e) => [e.header.name.replace(/^\.\//, ""), e]));
      const f = byName.get(`${longDir}/file.txt`)!;
      expect(f.header).toMatchObject({ type: "file", size: 9, uid: 1234, gid: 5678 });
      expect(f.body.toString()).toBe("gnu data\n");
      expect(byName.get(`${longDir}/`)!.header.type).toBe("dir");
      expect(byName.get("sym")!.header).toMatchObject({ type: "symlink", linkname: "t".repeat(130) });
      const xa = byName.get("xa")!.header;
      if (format === "posix") {
        expect(xa.mtime).toBeCloseTo(1600000000.5, 3);
        if (xattrs) expect(xa.xattrs.get("user.bin")!.equals(allBytes)).toBe(true);
      } else expect(xa.mtime).toBe(1600000000);
    }
    fs.rmSync(dir, { recursive: true });
  });

  test("bad checksum is InvalidError", async () => {
    const h = block({ name: "f", typeflag: 0x30 });
    h[0] = 0x67;
    await expect(readAll([Buffer.concat([h, END])])).rejects.toBeInstanceOf(InvalidError);
  });

  test("truncated body and truncated header are InvalidError", async () => {
    const tar = await writeTar([{ header: { name: "f", type: "file" }, body: Buffer.alloc(1000, 1) }]);
    await expect(readAll([tar.subarray(0, 900)])).rejects.toBeInstanceOf(InvalidError);
    await expect(readAll([tar.subarray(0, 300)])).rejects.toBeInstanceOf(InvalidError);
    // body complete but padding cut
    await expect(readAll([tar.subarray(0, 512 + 1000)])).rejects.toBeInstanceOf(InvalidError);
  });

  test("PAX record with a bad length is InvalidError", async () => {
    for (const rec of ["99 path=foo\n", "5 path=foo\n", "x path=foo\n", "12 pathfoo\n\n", "12 path=fooX"]) {
      const data = Buffer.from(rec);
      const tar = Buffer.concat([block({ name: "p", typeflag: 0x78, size: data.length }), pad(data), block({ name: "f", typeflag: 0x30 }), END]);
      await expect(readAll([tar]), rec).rejects.toBeInstanceOf(InvalidError);
    }
  });

  test("unknown type flags (sparse 'S', 'V') are InvalidError naming the entry", async () => {
    for (const flag of [0x53, 0x56]) {
      const tar = Buffer.concat([block({ name: "sparse-file", typeflag: flag }), END]);
      const err = await readAll([tar]).catch((e) => e);
      expect(err).toBeInstanceOf(InvalidError);
      expect(err.message).toBe(`unsupported tar entry type ${String.fromCharCode(flag)} for sparse-file`);
    }
    const data = formatPaxRecord("GNU.sparse.major", "1");
    const tar = Buffer.concat([block({ name: "p", typeflag: 0x78, size: data.length }), pad(data), block({ name: "f", typeflag: 0x30 }), END]);
    await expect(readAll([tar])).rejects.toBeInstanceOf(InvalidError);
  });

  test("PAX overrides: size, uid, gid, fractional mtime, path, linkpath; global records", async () => {
    const local = Buffer.concat([
      formatPaxRecord("size", "5"),
      formatPaxRecord("uid", "4000000"),
      formatPaxRecord("gid", "7"),
      formatPaxRecord("mtime", "1700000000.25"),
      formatPaxRecord("path", "real/name"),
    ]);
    const global = Buffer.concat([formatPaxRecord("uid", "42"), formatPaxRecord("SCHILY.xattr.user.g", allBytes), formatPaxRecord("comment", "git")]);
    const tar = Buffer.concat([
      block({ name: "pax_global_header", typeflag: 0x67, size: global.length }),
      pad(global),
      block({ name: "a", typeflag: 0x30 }),
      block({ name: "p", typeflag: 0x78, size: local.length }),
      pad(local),
      block({ name: "short", typeflag: 0x30, size: 0 }),
      pad(Buffer.from("12345")),
      block({ name: "p2", typeflag: 0x78, size: formatPaxRecord("linkpath", "L".repeat(200)).length }),
      pad(formatPaxRecord("linkpath", "L".repeat(200))),
      block({ name: "s", typeflag: 0x32 }),
      END,
    ]);
    const got = await readAll(chunked(tar, 64));
    expect(got[0]!.header).toMatchObject({ name: "a", uid: 42 });
    expect(got[0]!.header.xattrs.get("user.g")!.equals(allBytes)).toBe(true);
    expect(got[1]!.header).toMatchObject({ name: "real/name", uid: 4000000, gid: 7, mtime: 1700000000.25, size: 5 });
    expect(got[1]!.body.toString()).toBe("12345");
    expect(got[2]!.header).toMatchObject({ name: "s", linkname: "L".repeat(200), uid: 42 });
  });

  test("a huge PAX header is refused without buffering it", async () => {
    let pulled = 0;
    async function* input() {
      yield block({ name: "p", typeflag: 0x78, size: 64 * 1024 * 1024 });
      for (let i = 0; i < 1024; i++) {
        pulled++;
        yield Buffer.alloc(65536, 0x31);
      }
    }
    const err = await readAll(input()).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidError);
    expect(err.message).toContain("pax header too large");
    expect(pulled).toBeLessThan(2);
  });

  test("after the end marker, the rest of the input is drained", async () => {
    const tar = await writeTar([{ header: { name: "f", type: "file" }, body: Buffer.from("x") }]);
    let consumed = 0;
    async function* input() {
      for (const c of [tar, Buffer.alloc(10240 - tar.length), Buffer.from("trailing junk")]) {
        yield c;
        consumed += c.length;
      }
    }
    const got = await readAll(input());
    expect(got.length).toBe(1);
    expect(consumed).toBe(10240 + 13);
  });

  test("a missing end marker at a block boundary is accepted; a lone zero block then data is not", async () => {
    const tar = await writeTar([{ header: { name: "f", type: "file" }, body: Buffer.from("x") }]);
    expect((await readAll([tar.subarray(0, tar.length - 1024)])).length).toBe(1);
    const bad = Buffer.concat([tar.subarray(0, tar.length - 1024), Buffer.alloc(512), block({ name: "g", typeflag: 0x30 })]);
    await expect(readAll([bad])).rejects.toBeInstanceOf(InvalidError);
  });

  test("bodies may be streamed, partly read, or skipped", async () => {
    const tar = await writeTar([
      { header: { name: "a", type: "file" }, body: Buffer.alloc(100000, 1) },
      { header: { name: "b", type: "file" }, body: Buffer.alloc(3000, 2) },
      { header: { name: "c", type: "file" }, body: Buffer.from("c") },
    ]);
    const seen: string[] = [];
    for await (const e of readTar(chunked(tar, 4096))) {
      if (e.header.name === "a") {
        let n = 0;
        for await (const c of e.body) n += c.length;
        expect(n).toBe(100000);
      } else if (e.header.name === "c") expect((await e.readAll()).toString()).toBe("c");
      seen.push(e.header.name); // "b" is skipped unread
    }
    expect(seen).toEqual(["a", "b", "c"]);
  });
});

/** A header block whose uid field is base-256 (GNU/Go form for values that octal cannot hold). */
function base256Uid(name: string, uid: bigint): Buffer {
  const b = Buffer.from(block({ name, typeflag: 0x30 }));
  let v = uid;
  for (let i = 115; i >= 108; i--) { b[i] = Number(v & 0xffn); v >>= 8n; }
  b[108]! |= 0x80;
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of b) sum += c;
  b.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "latin1");
  return b;
}

function paxEntry(records: Buffer, name = "f", typeflag = 0x30): Buffer {
  return Buffer.concat([block({ name: "p", typeflag: 0x78, size: records.length }), pad(records), block({ name, typeflag })]);
}

describe("tar reader: releaseChunks", () => {
  // Each chunk its own marked buffer, as unpack's decoder hands them on (util/release.ts).
  function marked(b: Buffer, n: number): Buffer[] {
    const out: Buffer[] = [];
    for (let i = 0; i < b.length; i += n) {
      const c = Buffer.allocUnsafeSlow(Math.min(n, b.length - i));
      c.set(b.subarray(i, i + n));
      out.push(markReleasable(c));
    }
    return out;
  }
  const small = Buffer.from(Array.from({ length: 1500 }, (_, i) => (i * 7) & 255));
  const large = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 13) & 255));

  test("bodies read with readAll across chunk ends are whole; chunks read past are freed", async () => {
    const tar = await writeTar([
      { header: { name: "a", type: "file", size: small.length, mode: 0o644, mtime: 0 }, body: small },
      { header: { name: "b", type: "file", size: large.length, mode: 0o644, mtime: 0 }, body: large },
      { header: { name: "c", type: "file", size: small.length, mode: 0o644, mtime: 0 }, body: small },
    ]);
    // 700-byte chunks: every header and body spans chunk ends
    const chunks = marked(tar, 700);
    const got: Array<[string, Buffer]> = [];
    for await (const e of readTar(chunks, { releaseChunks: true })) got.push([e.header.name, Buffer.from(await e.readAll())]);
    expect(got.map(([n]) => n)).toEqual(["a", "b", "c"]);
    expect(got[0]![1].equals(small)).toBe(true);
    expect(got[1]![1].equals(large)).toBe(true);
    expect(got[2]![1].equals(small)).toBe(true);
    // every chunk was read to its end and none went out as a body piece: all freed
    expect(chunks.every((c) => c.buffer.byteLength === 0)).toBe(true);
  });

  test("a body piece that is a whole chunk is handed over (still marked, the consumer frees it); a part of one is unmarked and kept", async () => {
    const tar = await writeTar([
      { header: { name: "b", type: "file", size: large.length, mode: 0o644, mtime: 0 }, body: large },
      { header: { name: "a", type: "file", size: small.length, mode: 0o644, mtime: 0 }, body: small },
    ]);
    // 1024-byte chunks: b's body (bytes 512-5512) is a part of chunk 0, chunks 1-4 whole, a part of chunk 5
    const chunks = marked(tar, 1024);
    const copies: Buffer[] = [];
    const partial: Buffer[] = [];
    let whole = 0;
    let small2: Buffer | null = null;
    for await (const e of readTar(chunks, { releaseChunks: true })) {
      if (e.header.name !== "b") { small2 = Buffer.from(await e.readAll()); continue; }
      for await (const p of e.body) {
        copies.push(Buffer.from(p));
        if (isReleasable(p)) { whole++; expect(p.length).toBe(1024); release(p); } else partial.push(p);
      }
    }
    expect(Buffer.concat(copies).equals(large)).toBe(true);
    expect(whole).toBe(4);
    // the parts are left to the collector: still readable after the whole tar was read
    expect(partial.map((p) => p.length)).toEqual([512, 5512 - 5120]);
    expect(Buffer.concat(partial).equals(Buffer.concat([large.subarray(0, 512), large.subarray(5000 - 392)]))).toBe(true);
    expect(small2!.equals(small)).toBe(true);
  });

  test("without the option nothing is freed or unmarked", async () => {
    const tar = await writeTar([{ header: { name: "b", type: "file", size: large.length, mode: 0o644, mtime: 0 }, body: large }]);
    const kept = marked(tar, 1024);
    for await (const e of readTar(kept)) for await (const p of e.body) void p;
    expect(kept.every((c) => c.buffer.byteLength > 0 && isReleasable(c))).toBe(true);
  });
});

describe("tar reader: hostile ids and names", () => {
  test("uid/gid past 2^32-2 (PAX or base-256) are InvalidError naming the entry", async () => {
    const cases: [Buffer, RegExp][] = [
      [paxEntry(formatPaxRecord("uid", String(2 ** 40)), "big"), /^invalid tar entry "big": uid 1099511627776 out of range \(0-4294967294\)$/],
      [paxEntry(formatPaxRecord("gid", "4294967295"), "nochown"), /^invalid tar entry "nochown": gid 4294967295 out of range/],
      [base256Uid("b256", 2n ** 40n), /^invalid tar entry "b256": uid 1099511627776 out of range/],
      [base256Uid("neg", (1n << 63n) * 2n - 1n), /^invalid tar entry "neg": uid -1 out of range/],
    ];
    for (const [entry, re] of cases) {
      const err = await readAll([Buffer.concat([entry, END])]).catch((e) => e);
      expect(err).toBeInstanceOf(InvalidError);
      expect(err.message).toMatch(re);
    }
    const fine = await readAll([Buffer.concat([paxEntry(formatPaxRecord("uid", "4294967294")), END])]);
    expect(fine[0]!.header.uid).toBe(4294967294);
  });
  test("a NUL in a PAX path, linkpath, uname or gname is InvalidError naming the entry (escaped)", async () => {
    for (const key of ["path", "linkpath", "uname", "gname"]) {
      const tar = Buffer.concat([paxEntry(formatPaxRecord(key, "a\0b"), "ok", key === "linkpath" ? 0x32 : 0x30), END]);
      const err = await readAll([tar]).catch((e) => e);
      expect(err).toBeInstanceOf(InvalidError);
      expect(err.message).toBe(`invalid tar entry ${key === "path" ? '"a\\x00b"' : '"ok"'}: pax ${key} record contains a NUL byte`);
    }
  });
});

describe("checkTarStream", () => {
  async function run(b: Buffer, n = 700): Promise<{ out: Buffer; err: unknown }> {
    const got: Buffer[] = [];
    try {
      for await (const c of checkTarStream((async function* () { yield* chunked(b, n); })(), "in.tar")) got.push(c);
      return { out: Buffer.concat(got), err: null };
    } catch (e) {
      return { out: Buffer.concat(got), err: e };
    }
  }
  test("a valid tar passes through byte for byte, in any chunking", async () => {
    const tar = await writeTar([{ header: { name: "d", type: "dir" } }, { header: { name: "d/f", type: "file" }, body: Buffer.alloc(5000, 7) }]);
    for (const n of [1, 511, 512, 700, 1 << 20]) {
      const r = await run(Buffer.concat([tar, Buffer.from("trailing")]), n);
      expect(r.err).toBeNull();
      expect(r.out.equals(Buffer.concat([tar, Buffer.from("trailing")]))).toBe(true);
    }
  });
  test("text, gzip, truncation and entries unpack refuses throw InvalidError before the end", async () => {
    const tar = await writeTar([{ header: { name: "f", type: "file" }, body: Buffer.alloc(3000, 1) }]);
    const cases: [Buffer, RegExp][] = [
      [Buffer.from("just some text\n".repeat(80)), /^in\.tar is not a valid tar layer: invalid tar header/],
      [Buffer.from("short\n"), /^in\.tar is not a valid tar layer: truncated tar archive/],
      [zlib.gzipSync(tar), /^in\.tar is not a valid tar layer \(it is gzip-compressed; an uncompressed tar is expected\): /],
      [tar.subarray(0, 2000), /^in\.tar is not a valid tar layer: truncated tar entry f$/],
      [await writeTar([{ header: { name: "./", type: "file" } }]), /would replace the root directory with a file$/],
      [await writeTar([{ header: { name: "a/.wh.", type: "file" } }]), /"a\/\.wh\." is a whiteout with no name$/],
      [await writeTar([{ header: { name: "a/.wh..", type: "file" } }]), /is a whiteout of "\." or "\.\."$/],
      [await writeTar([{ header: { name: "x", type: "link", linkname: "a/.." } }]), /is a hardlink to the root directory$/],
    ];
    for (const [input, re] of cases) {
      const r = await run(Buffer.from(input));
      expect(r.err).toBeInstanceOf(InvalidError);
      expect((r.err as Error).message).toMatch(re);
    }
  });
  test("a large body is handed on chunk by chunk (no buffering of the input)", async () => {
    const tar = await writeTar([{ header: { name: "big", type: "file" }, body: Buffer.alloc(8 << 20, 3) }]);
    let pulled = 0;
    let maxAhead = 0;
    let seen = 0;
    const src = (async function* () { for (const c of chunked(tar, 64 << 10)) { pulled += c.length; yield c; } })();
    for await (const c of checkTarStream(src, "big.tar")) {
      seen += c.length;
      maxAhead = Math.max(maxAhead, pulled - seen);
    }
    expect(seen).toBe(tar.length);
    expect(maxAhead).toBeLessThanOrEqual(64 << 10);
  });
});

describe("tar writer: output and abort", () => {
  test("a reader that stops early fails the writer's next add; abort fails both sides", async () => {
    const w = createTarWriter();
    const big = Buffer.alloc(1 << 20, 7);
    const reading = (async () => { for await (const _ of w.output) break; })();
    let err: unknown;
    try {
      for (let i = 0; i < 4; i++) await w.add({ name: `f${i}`, type: "file", size: big.length }, big);
    } catch (e) { err = e; }
    await reading;
    expect((err as Error).message).toBe("tar output closed");

    const w2 = createTarWriter();
    const got = (async () => { for await (const _ of w2.output); })().catch((e) => e);
    const adding = w2.add({ name: "g", type: "file", size: 8 << 20 }, (async function* () { for (;;) { yield big; await Bun.sleep(1); } })()).catch((e) => e);
    await Bun.sleep(5);
    w2.abort(new Error("producer failed"));
    expect(((await got) as Error).message).toBe("producer failed");
    expect(((await adding) as Error).message).toBe("producer failed");
    expect(() => w2.output[Symbol.asyncIterator]()).toThrow("tar output is read once");
  });
});

describe("BufferRecycler", () => {
  test("released buffers come back to take(); at most max wait; unmark keeps a buffer out", async () => {
    const { BufferRecycler } = await import("../../src/util/release");
    const r = new BufferRecycler(4096, 2);
    const a = r.take(), b = r.take(), c = r.take();
    expect(a.length).toBe(4096);
    expect(isReleasable(a)).toBe(true);
    const [abA, abB] = [a.buffer, b.buffer];
    release(a.subarray(0, 10)); // a view of it releases the whole buffer
    release(b);
    release(c); // the free list is full: freed
    expect(c.length).toBe(0);
    expect(a.length).toBe(4096); // kept, not detached
    const again = [r.take().buffer, r.take().buffer];
    expect(again.sort()).toEqual([abA, abB].sort());
    const d = r.take();
    expect(d.buffer).not.toBe(abA);
    const e = r.take();
    unmark(e);
    release(e);
    expect(e.length).toBe(4096);
    expect(r.take().buffer).not.toBe(e.buffer);
  });
});
