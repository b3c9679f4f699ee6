/**
 * tar-stream as an independent peer: archives our writer makes are read back by tar-stream, and
 * archives tar-stream packs are read by our reader. (boci's own codec replaced tar-stream in
 * src/tar because tar-stream cannot bound or binary-safely parse PAX records; see src/tar/README.md.)
 */
import { describe, expect, test } from "bun:test";
import { extract, pack } from "tar-stream";
import { createTarWriter, readTar } from "../../src/tar";

async function collect(r: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

const longName = "d/" + "n".repeat(150) + "/file.txt";

describe("tar-stream interop", () => {
  test("tar-stream reads what boci writes", async () => {
    const w = createTarWriter();
    const done = collect(w.output);
    await w.add({ name: "d", type: "dir", mode: 0o755, mtime: 1000 });
    await w.add({ name: "d/hello", type: "file", mode: 0o4755, uid: 1000, gid: 1000, size: 5, mtime: 1000 }, Buffer.from("hello"));
    await w.add({ name: "d/link", type: "symlink", linkname: "hello", mtime: 1000 });
    await w.add({ name: "d/hard", type: "link", linkname: "d/hello", mtime: 1000 });
    await w.add({ name: longName, type: "file", size: 3, mtime: 1000 }, Buffer.from("abc"));
    await w.finish();
    const bytes = await done;
    const seen: Array<{ name: string; type: string; mode: number; uid: number; linkname: string | null | undefined; body: string }> = [];
    const ex = extract();
    const finished = new Promise<void>((resolve, reject) => {
      ex.on("entry", (h, stream, next) => {
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => {
          seen.push({ name: h.name, type: h.type ?? "", mode: h.mode ?? 0, uid: h.uid ?? 0, linkname: h.linkname, body: Buffer.concat(chunks).toString() });
          next();
        });
      });
      ex.on("finish", resolve);
      ex.on("error", reject);
    });
    ex.end(bytes);
    await finished;
    expect(seen.map((s) => [s.name, s.type])).toEqual([
      ["d/", "directory"], ["d/hello", "file"], ["d/link", "symlink"], ["d/hard", "link"], [longName, "file"],
    ]);
    expect(seen[1]!.mode).toBe(0o4755);
    expect(seen[1]!.uid).toBe(1000);
    expect(seen[1]!.body).toBe("hello");
    expect(seen[2]!.linkname).toBe("hello");
    expect(seen[4]!.body).toBe("abc");
  });

  test("boci reads what tar-stream packs", async () => {
    const p = pack();
    p.entry({ name: "a", type: "directory", mode: 0o755, mtime: new Date(2000) });
    p.entry({ name: "a/f", mode: 0o644, uid: 7, gid: 8, mtime: new Date(2000) }, "content");
    p.entry({ name: "a/s", type: "symlink", linkname: "f", mtime: new Date(2000) });
    p.entry({ name: longName, mtime: new Date(2000) }, "x");
    p.finalize();
    const names: string[] = [];
    const bodies: string[] = [];
    for await (const e of readTar(p as unknown as AsyncIterable<Uint8Array>)) {
      names.push(`${e.header.type}:${e.header.name}`);
      bodies.push((await e.readAll()).toString());
    }
    expect(names).toEqual(["dir:a", "file:a/f", "symlink:a/s", `file:${longName}`]);
    expect(bodies[1]).toBe("content");
    expect(bodies[3]).toBe("x");
  });
});
