// The repack side reaches the rootfs through descriptors: walkTree (mtree/walk.ts) and
// writeChanges (layer/generate.ts) on real trees: byte names, symlinks never followed (not even
// when a directory is swapped for one mid-walk), FIFOs never opened, the rootless open-up and
// give-back of a u-rwx directory and a u-r file (after the walk and after a thrown error), and
// the same with the openat fallback (BOCI_NO_OPENAT2=1, read once per process: a subprocess).
import { afterAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { walkTree } from "../../src/mtree/walk";
import { writeChanges } from "../../src/layer/generate";
import { createTarWriter, readTar } from "../../src/tar";
import { fileName } from "../../src/rootfs/name";
import { openRegularAt } from "../../src/rootfs/read";
import { openDirHandle } from "../../src/sys";
import { closeFd } from "../../src/sys/at";
import type { MtreeEntry } from "../../src/mtree/entry";

const KW = ["size", "type", "uid", "gid", "mode", "link", "nlink", "tar_time", "sha256digest", "xattr"];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "boci-rootfs-walk-"));
afterAll(() => {
  // (a failed test may leave modes locked)
  Bun.spawnSync(["chmod", "-R", "u+rwx", tmp]);
  fs.rmSync(tmp, { recursive: true, force: true });
});

const sha = (s: string | Buffer) => new Bun.CryptoHasher("sha256").update(s).digest("hex");
const raw = (dir: string, name: Buffer) => Buffer.concat([Buffer.from(dir + "/"), name]);
let n = 0;
const fresh = (): string => {
  const d = path.join(tmp, `t${n++}`);
  fs.mkdirSync(d);
  return d;
};

/** A tree with names that are not UTF-8, a symlink out, a FIFO and a hard link. */
function byteTree(outside: string): string {
  const root = fresh();
  fs.writeFileSync(raw(root, Buffer.from("caf\xe9", "latin1")), "latin-1 name\n");
  fs.mkdirSync(raw(root, Buffer.from([0xff, 0xfe])));
  fs.writeFileSync(Buffer.concat([raw(root, Buffer.from([0xff, 0xfe])), Buffer.from("/in")]), "inside\n");
  fs.writeFileSync(path.join(root, "café"), "utf-8 name\n");
  fs.writeFileSync(path.join(root, "B"), "b\n");
  fs.mkdirSync(path.join(root, "a"));
  fs.writeFileSync(path.join(root, "a/z"), "z\n");
  fs.symlinkSync(outside, path.join(root, "out"));
  fs.symlinkSync(path.join(outside, "secret"), path.join(root, "a/secretlink"));
  Bun.spawnSync(["mkfifo", path.join(root, "a/fifo")]);
  fs.linkSync(path.join(root, "B"), path.join(root, "a/hard"));
  return root;
}

function outsideDir(): string {
  const o = fresh();
  fs.writeFileSync(path.join(o, "secret"), "outside\n");
  fs.mkdirSync(path.join(o, "deep"));
  fs.writeFileSync(path.join(o, "deep/x"), "x\n");
  return o;
}

const paths = (es: MtreeEntry[]) => es.map((e) => e.path);

describe("walkTree through descriptors", () => {
  test("byte names: bytes order, files before subdirectories, names kept as bytes", async () => {
    const out = outsideDir();
    const root = byteTree(out);
    const es = await walkTree(root, { keywords: KW });
    const ff = fileName(Buffer.from([0xff, 0xfe]));
    const cafe1 = fileName(Buffer.from("caf\xe9", "latin1"));
    expect(paths(es)).toEqual([".", "B", "caf\u00e9", cafe1, "out", "a", "a/fifo", "a/hard", "a/secretlink", "a/z", ff, `${ff}/in`]);
    expect(es.find((e) => e.path === cafe1)).toMatchObject({ type: "file", size: 13, sha256: sha("latin-1 name\n") });
    expect(es.find((e) => e.path === `${ff}/in`)!.sha256).toBe(sha("inside\n"));
    expect(es.find((e) => e.path === "a/hard")).toMatchObject({ nlink: 2, sha256: sha("b\n") });
  });

  test("symlinks are recorded, never followed; the FIFO is never opened (no hang)", async () => {
    const out = outsideDir();
    const root = byteTree(out);
    const seen: string[] = [];
    const es = await walkTree(root, {
      keywords: KW,
      listXattrsFd: () => new Map(),
      hashFile: async (fd) => { seen.push(String(fd)); return sha(fs.readFileSync(fd)); },
    });
    expect(es.find((e) => e.path === "out")).toMatchObject({ type: "link", link: out });
    expect(es.find((e) => e.path === "a/secretlink")).toMatchObject({ type: "link", link: path.join(out, "secret") });
    expect(es.find((e) => e.path === "a/fifo")).toMatchObject({ type: "fifo", size: 0 });
    expect(es.find((e) => e.path === "a/fifo")!.sha256).toBeUndefined();
    expect(paths(es).some((p) => p.includes("secret") && p !== "a/secretlink")).toBe(false);
    expect(paths(es).some((p) => p.startsWith("out/"))).toBe(false);
    // (hashed through the descriptors the walk opened: one per regular file)
    expect(seen.length).toBe(6);
  }, 20_000);

  test("a walk root that is a symlink is refused", async () => {
    const out = outsideDir();
    const link = path.join(fresh(), "rootlink");
    fs.symlinkSync(out, link);
    await expect(walkTree(link, { keywords: KW })).rejects.toThrow(/is not a directory/);
  });

  test("a directory swapped for a symlink mid-walk is walked as the inode it was, never through the link", async () => {
    const out = outsideDir();
    const root = fresh();
    fs.mkdirSync(path.join(root, "a"));
    fs.writeFileSync(path.join(root, "a/inner"), "in\n");
    const es = await walkTree(root, {
      keywords: KW,
      inspect: (e) => {
        // (called once "a" is open: a path walk would now list the outside directory)
        if (e.path === "a") {
          fs.renameSync(path.join(root, "a"), path.join(root, "moved"));
          fs.symlinkSync(out, path.join(root, "a"));
        }
      },
    });
    expect(paths(es)).toEqual([".", "a", "a/inner"]);
    expect(es.find((e) => e.path === "a/inner")!.sha256).toBe(sha("in\n"));
  });

  test("xattrs are read through the entry's own descriptor and the path form names it through its parent's", async () => {
    const root = fresh();
    fs.writeFileSync(path.join(root, "f"), "f");
    fs.mkdirSync(path.join(root, "d"));
    const set = Bun.spawnSync(["setfattr", "-n", "user.k", "-v", "v1", path.join(root, "f")]);
    if (set.exitCode !== 0) return; // (no setfattr or no user xattrs here)
    Bun.spawnSync(["setfattr", "-n", "user.d", "-v", "v2", path.join(root, "d")]);
    const { readXattrsFd } = await import("../../src/rootfs/read");
    const byFd = await walkTree(root, { keywords: KW, listXattrsFd: readXattrsFd });
    expect(byFd.find((e) => e.path === "f")!.xattrs).toEqual(new Map([["user.k", Buffer.from("v1")]]));
    expect(byFd.find((e) => e.path === "d")!.xattrs).toEqual(new Map([["user.d", Buffer.from("v2")]]));
    const asked: string[] = [];
    const { lgetxattr } = await import("../../src/sys");
    await walkTree(root, { keywords: KW, listXattrs: (p) => { asked.push(p); const v = lgetxattr(p, "user.k"); return v ? new Map([["user.k", v]]) : new Map(); } });
    expect(asked[0]).toBe(root);
    expect(asked.slice(1).every((p) => p.startsWith(`/proc/${process.pid}/fd/`))).toBe(true);
  });

  test("openRegularAt refuses a FIFO and a symlink without blocking or following", () => {
    const out = outsideDir();
    const root = byteTree(out);
    const dfd = openDirHandle(path.join(root, "a"));
    try {
      expect(() => openRegularAt(dfd, Buffer.from("fifo\0"), "a/fifo")).toThrow(/a\/fifo: not a regular file/);
      expect(() => openRegularAt(dfd, Buffer.from("secretlink\0"), "a/secretlink")).toThrow(/too many levels of symbolic links/);
      const { fd } = openRegularAt(dfd, Buffer.from("z\0"), "a/z");
      expect(fs.readFileSync(fd, "utf8")).toBe("z\n");
      closeFd(fd);
    } finally {
      closeFd(dfd);
    }
  }, 20_000);
});

/** A rootless tree: a u-rwx directory (mode 0) holding a file, and a u-r file (mode 0o200), with old times. */
function lockedTree(): { root: string; check: (opts?: { atime?: boolean }) => void } {
  const root = fresh();
  fs.mkdirSync(path.join(root, "locked/sub"), { recursive: true });
  fs.writeFileSync(path.join(root, "locked/sub/f"), "deep\n");
  fs.writeFileSync(path.join(root, "noread"), "secret\n");
  fs.chmodSync(path.join(root, "noread"), 0o200);
  fs.utimesSync(path.join(root, "noread"), 111, 222);
  fs.chmodSync(path.join(root, "locked"), 0);
  fs.utimesSync(path.join(root, "locked"), 333, 444);
  const check = (opts: { atime?: boolean } = {}) => {
    const d = fs.lstatSync(path.join(root, "locked"), { bigint: true });
    const f = fs.lstatSync(path.join(root, "noread"), { bigint: true });
    expect(Number(d.mode & 0o7777n)).toBe(0);
    expect(d.mtimeNs).toBe(444_000_000_000n);
    if (opts.atime !== false) expect(d.atimeNs).toBe(333_000_000_000n);
    expect(Number(f.mode & 0o7777n)).toBe(0o200);
    expect(f.mtimeNs).toBe(222_000_000_000n);
    if (opts.atime !== false) expect(f.atimeNs).toBe(111_000_000_000n);
  };
  return { root, check };
}

describe("walkTree rootless: the one open-up and give-back rule", () => {
  test("a u-rwx directory and a u-r file are opened up, read, and given back their modes and times", async () => {
    const { root, check } = lockedTree();
    const es = await walkTree(root, { keywords: KW, rootless: true, hashFile: async (fd) => sha(fs.readFileSync(fd)) });
    expect(paths(es)).toEqual([".", "noread", "locked", "locked/sub", "locked/sub/f"]);
    expect(es.find((e) => e.path === "locked")).toMatchObject({ mode: 0, tarTime: 444 });
    expect(es.find((e) => e.path === "noread")).toMatchObject({ mode: 0o200, sha256: sha("secret\n") });
    expect(es.find((e) => e.path === "locked/sub/f")!.sha256).toBe(sha("deep\n"));
    check();
  });

  test("given back after a thrown error too (from a callback, and from a failed hash)", async () => {
    const a = lockedTree();
    await expect(walkTree(a.root, {
      keywords: KW, rootless: true,
      onEntry: (e) => { if (e.path === "locked/sub/f") throw new Error("stop here"); },
    })).rejects.toThrow(/stop here/);
    a.check();
    const b = lockedTree();
    await expect(walkTree(b.root, {
      keywords: KW, rootless: true,
      hashFile: async () => { throw new Error("hash failed"); },
    })).rejects.toThrow(/hash failed/);
    b.check();
  });

  test("without rootless nothing is opened up", async () => {
    const { root, check } = lockedTree();
    const isRoot = process.geteuid?.() === 0;
    const walk = walkTree(root, { keywords: KW });
    if (isRoot) await walk; else await expect(walk).rejects.toThrow();
    // (modes and mtimes untouched; reading a directory may move its atime, which is not put back)
    check({ atime: false });
  });
});

async function tarOf(root: string, changes: Parameters<typeof writeChanges>[1]): Promise<Map<string, { type: string; linkname?: string; body: string }>> {
  const tar = createTarWriter();
  const got = new Map<string, { type: string; linkname?: string; body: string }>();
  const reading = (async () => {
    for await (const e of readTar(tar.output)) {
      const chunks: Buffer[] = [];
      for await (const c of e.body) chunks.push(Buffer.from(c));
      got.set(e.header.name, { type: e.header.type, linkname: e.header.linkname || undefined, body: Buffer.concat(chunks).toString("latin1") });
    }
  })();
  await writeChanges(root, changes, tar, { mapOptions: { rootless: false, uidMappings: [], gidMappings: [] } as never });
  await tar.finish();
  await reading;
  return got;
}

describe("writeChanges through descriptors", () => {
  test("byte names, symlinks as links, a big file read at offsets, hard links", async () => {
    const out = outsideDir();
    const root = byteTree(out);
    fs.writeFileSync(path.join(root, "big"), Buffer.alloc(3 << 20, 5));
    const cafe1 = fileName(Buffer.from("caf\xe9", "latin1"));
    const got = await tarOf(root, [
      { kind: "add", path: "B" }, { kind: "add", path: "a" }, { kind: "add", path: "a/hard" }, { kind: "add", path: "a/secretlink" },
      { kind: "add", path: "big" }, { kind: "add", path: cafe1 }, { kind: "add", path: "out" },
    ]);
    expect(got.get("a/secretlink")).toMatchObject({ type: "symlink", linkname: path.join(out, "secret") });
    expect(got.get("out")).toMatchObject({ type: "symlink", linkname: out });
    expect(got.get("a/hard")).toMatchObject({ type: "link", linkname: "B" });
    expect(got.get("a/")).toMatchObject({ type: "dir" });
    expect(got.get(cafe1)?.body).toBe("latin-1 name\n");
    expect(got.get("big")?.body.length).toBe(3 << 20);
  });

  test("a parent that became a symlink is refused, never followed", async () => {
    const out = outsideDir();
    const root = fresh();
    fs.symlinkSync(out, path.join(root, "a"));
    await expect(tarOf(root, [{ kind: "add", path: "a/secret" }])).rejects.toThrow(/archive a\/secret: .*(too many levels of symbolic links|not a directory)/);
    await expect(tarOf(root, [{ kind: "add", path: "a/deep/x" }])).rejects.toThrow(/too many levels of symbolic links|not a directory/);
  });
});

describe("the openat fallback (BOCI_NO_OPENAT2=1, in a subprocess)", () => {
  test("walk and writeChanges give the same answers; a symlinked parent is still refused", async () => {
    const out = outsideDir();
    const root = byteTree(out);
    const locked = lockedTree();
    fs.symlinkSync(out, path.join(root, "s"));
    const src = path.resolve(import.meta.dir, "../../src");
    const script = path.join(tmp, "fallback.ts");
    fs.writeFileSync(script, `
      import { walkTree } from ${JSON.stringify(src + "/mtree/walk")};
      import { writeChanges } from ${JSON.stringify(src + "/layer/generate")};
      import { createTarWriter } from ${JSON.stringify(src + "/tar")};
      import { usesOpenat2 } from ${JSON.stringify(src + "/sys")};
      const KW = ${JSON.stringify(KW)};
      const [root, lockedRoot] = process.argv.slice(2);
      const es = await walkTree(root, { keywords: KW });
      const rl = await walkTree(lockedRoot, { keywords: KW, rootless: true });
      let refused = "";
      const tar = createTarWriter();
      (async () => { for await (const _ of tar.output); })().catch(() => {});
      try {
        await writeChanges(root, [{ kind: "add", path: "s/secret" }], tar, { mapOptions: { rootless: false, uidMappings: [], gidMappings: [] } });
      } catch (e) { refused = String(e); }
      const tar2 = createTarWriter();
      const chunks = [];
      const ended = (async () => { for await (const c of tar2.output) chunks.push(c); })();
      await writeChanges(root, [{ kind: "add", path: "a/z" }], tar2, { mapOptions: { rootless: false, uidMappings: [], gidMappings: [] } });
      await tar2.finish();
      await ended;
      console.log(JSON.stringify({ openat2: usesOpenat2(), paths: es.map((e) => e.path), sums: es.map((e) => e.sha256 ?? ""), locked: rl.map((e) => e.path), refused, tarHasZ: Buffer.concat(chunks).includes("z\\n") }));
    `);
    const run = (env: Record<string, string>) => {
      const r = Bun.spawnSync([process.execPath, script, root, locked.root], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
      if (r.exitCode !== 0) throw new Error(r.stderr.toString());
      return JSON.parse(r.stdout.toString()) as { openat2: boolean; paths: string[]; sums: string[]; locked: string[]; refused: string; tarHasZ: boolean };
    };
    const fallback = run({ BOCI_NO_OPENAT2: "1" });
    const normal = run({ BOCI_NO_OPENAT2: "0" });
    expect(fallback.openat2).toBe(false);
    expect(normal.openat2).toBe(true);
    // (the same answers; only the refusal names the other system call)
    expect({ ...fallback, openat2: true, refused: "" }).toEqual({ ...normal, refused: "" });
    expect(normal.refused).toMatch(/archive s\/secret: openat2 s: (too many levels of symbolic links|not a directory)/);
    expect(fallback.refused).toMatch(/archive s\/secret: .*(too many levels of symbolic links|not a directory)/);
    expect(fallback.tarHasZ).toBe(true);
    expect(fallback.locked).toEqual([".", "noread", "locked", "locked/sub", "locked/sub/f"]);
    locked.check();
    const inProcess = await walkTree(root, { keywords: KW });
    expect(fallback.paths).toEqual(inProcess.map((e) => e.path));
  }, 60_000);
});
