import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  UMOCI_KEYWORDS,
  bytesToName,
  compareMtree,
  createMtreeRecorder,
  createMtreeStore,
  formatDelta,
  formatMtree,
  nameToBytes,
  parseMtree,
  visDecode,
  visEncode,
  walkTree,
  writeMtreeSorted,
  parseSpec,
  compareKeyVals,
  compareSpecs,
  formatSpecDelta,
  selectKeywords,
  parseKeywordList,
  createCksum,
  createGoXattrLister,
  walkSpec,
  type MtreeEntry,
} from "../../src/mtree";
import { goPathClean as goClean } from "../../src/util/go-path";
import { InvalidError } from "../../src/errors";

const KW = UMOCI_KEYWORDS;
let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "boci-mtree-"));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

const isRoot = process.getuid?.() === 0;
const which = (cmd: string) => Bun.which(cmd) !== null;

/** xattrs via getfattr (test-only; production injects src/sys). */
function getfattrList(p: string): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  if (!which("getfattr")) return m;
  const r = Bun.spawnSync(["getfattr", "--absolute-names", "-h", "-d", "-m", "-", "-e", "base64", p]);
  for (const l of r.stdout.toString().split("\n")) {
    if (!l || l.startsWith("#")) continue;
    const eq = l.indexOf("=");
    if (eq < 0) m.set(l, Buffer.alloc(0));
    else m.set(l.slice(0, eq), Buffer.from(l.slice(eq + 1).replace(/^0s/, ""), "base64"));
  }
  return m;
}

function byPath(es: MtreeEntry[]): MtreeEntry[] {
  return [...es].sort((a, b) => Buffer.compare(nameToBytes(a.path), nameToBytes(b.path)));
}

function stripHeader(s: string): string {
  return s
    .split("\n")
    .filter((l) => !/^#\s+(user|machine|tree|date|keywords): /.test(l))
    .join("\n");
}

describe("vis", () => {
  test("documented examples", () => {
    expect(visEncode("dir with space")).toBe("dir\\040with\\040space");
    expect(visEncode("f*?[#].txt")).toBe("f\\052\\077\\133\\043].txt");
    expect(visEncode("back\\slash")).toBe("back\\\\slash");
    expect(visEncode("new\nline\ttab")).toBe("new\\012line\\011tab");
    expect(visEncode("ü")).toBe("\\303\\274");
    expect(visEncode("~!@$%^&()")).toBe("~!@$%^&()");
    expect(visEncode("\x7f\x00")).toBe("\\177\\000");
  });

  test("round trip, including bytes that are not UTF-8", () => {
    const raw = bytesToName(Buffer.from([0xff, 0xfe, 0x62, 0x61, 0x64, 0xc3]));
    expect(Buffer.from(nameToBytes(raw))).toEqual(Buffer.from([0xff, 0xfe, 0x62, 0x61, 0x64, 0xc3]));
    expect(visEncode(raw)).toBe("\\377\\376bad\\303");
    for (const s of ["\uFEFFbom", "", "plain", "a b", "x*y?z[w]#", "\\", "\\\\n", "é😀", raw, "\n\r\t\x01", "tab\there", "%41"]) {
      expect(visDecode(visEncode(s))).toBe(s);
    }
  });

  test("other unvis forms and errors", () => {
    expect(visDecode("a\\sb\\n\\x41\\^A\\M-a\\M^A\\$")).toBe(
      bytesToName(Buffer.from([0x61, 0x20, 0x62, 0x0a, 0x41, 0x01, 0xe1, 0x81])),
    );
    expect(visDecode("\\7x")).toBe("\x07x");
    expect(() => visDecode("bad\\")).toThrow(InvalidError);
    expect(() => visDecode("\\q")).toThrow(InvalidError);
    expect(() => visDecode("\\777")).toThrow(InvalidError);
  });
});

/** Entries as a walk of the umoci keywords would produce them. */
function sampleEntries(): MtreeEntry[] {
  const t = 1795700994;
  const raw = bytesToName(Buffer.from([0xff, 0x41]));
  const d = (p: string, extra: Partial<MtreeEntry> = {}): MtreeEntry => ({
    path: p, type: "dir", size: 4096, uid: 0, gid: 0, mode: 0o755, nlink: 2, tarTime: t, ...extra,
  });
  const f = (p: string, extra: Partial<MtreeEntry> = {}): MtreeEntry => ({
    path: p, type: "file", size: 3, uid: 0, gid: 0, mode: 0o644, nlink: 1, tarTime: t,
    sha256: "98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4", ...extra,
  });
  return [
    f("zz/last"),
    d("zz"),
    d(".", { nlink: 7 }),
    f("a file*?"),
    f("mode0", { mode: 0, size: 0 }),
    f("setuid", { mode: 0o4755, nlink: 2 }),
    f("x", { mode: 0o664, xattrs: new Map([["user.foo", Buffer.from("bar")], ["user.sp ace", Buffer.from([0, 1, 255])]]) }),
    f(raw),
    f("new\nline"),
    { path: "sym", type: "link", size: 18, uid: 0, gid: 0, mode: 0o777, nlink: 1, tarTime: t, link: "target with space*" },
    { path: "dev/null", type: "char", size: 0, uid: 0, gid: 0, mode: 0o666, nlink: 1, tarTime: t },
    { path: "dev/loop", type: "block", size: 0, uid: 0, gid: 6, mode: 0o660, nlink: 1, tarTime: t },
    { path: "dev/fifo", type: "fifo", size: 0, uid: 0, gid: 0, mode: 0o644, nlink: 1, tarTime: t },
    { path: "dev/sock", type: "socket", size: 0, uid: 0, gid: 0, mode: 0o755, nlink: 1, tarTime: t },
    d("dev"),
    d("home", { uid: 1000, gid: 1000, xattrs: new Map([["user.d", Buffer.from("x")]]) }),
    f("home/.profile", { uid: 1000, gid: 1000 }),
    f("home/rootfile"),
    d("home/sub"),
    d("home/sub/deeper", { uid: 1000, gid: 1000, mode: 0o1777, nlink: 1 }),
    d("dir with space"),
    d("dir with space/sub"),
    f("dir with space/sub/f[1]"),
    d("after"),
  ];
}

describe("format", () => {
  test("structure matches go-mtree", () => {
    const text = formatMtree(sampleEntries(), {
      keywords: KW, user: "root", machine: "vm", tree: "b/rootfs", date: new Date(2026, 10, 6, 1, 2, 3),
    });
    const lines = text.split("\n");
    expect(lines.slice(0, 5)).toEqual([
      "#          user: root",
      "#       machine: vm",
      "#          tree: b/rootfs",
      "#          date: Fri Nov  6 01:02:03 2026",
      "#      keywords: size,type,uid,gid,mode,link,nlink,tar_time,sha256digest,xattr",
    ]);
    expect(text).toContain(
      "\n\n# .\n/set type=file nlink=1 mode=0664 uid=0 gid=0\n. size=4096 type=dir mode=0755 nlink=7 tar_time=1795700994.000000000\n",
    );
    expect(text).toContain("    a\\040file\\052\\077 size=3 mode=0644 tar_time=");
    expect(text).toContain("    mode0 size=0 mode=0 tar_time=");
    expect(text).toContain("    setuid size=3 mode=04755 nlink=2 tar_time=");
    expect(text).toContain(" sha256digest=98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4 xattr.user.foo=YmFy xattr.user.sp\\040ace=AAH/\n");
    expect(text).toContain("    x size=3 tar_time=");
    expect(text).toContain("    sym size=18 type=link mode=0777 link=target\\040with\\040space\\052 tar_time=1795700994.000000000\n");
    expect(text).toContain("    \\377A size=3 mode=0644");
    // /set follows the directory owner, and persists in walk order
    expect(text).toContain(
      "\n# home\n/set type=file nlink=1 mode=0664 uid=1000 gid=1000\nhome size=4096 type=dir mode=0755 nlink=2 tar_time=1795700994.000000000 xattr.user.d=eA==\n" +
        "    .profile size=3 mode=0644 tar_time=",
    );
    expect(text).toContain("    rootfile size=3 uid=0 gid=0 mode=0644");
    expect(text).toContain("\n# home/sub\n/set type=file nlink=1 mode=0664 uid=0 gid=0\nsub size=4096");
    expect(text).toContain("\n# home/sub/deeper\n/set type=file nlink=1 mode=0664 uid=1000 gid=1000\ndeeper size=4096 type=dir mode=01777 tar_time=");
    expect(text).toContain("\n# after\nafter size=4096");
    expect(text).toContain("\n# zz\n/set type=file nlink=1 mode=0664 uid=0 gid=0\nzz size=4096");
    expect(text).toContain("\n# dir with space/sub\nsub size=4096");
    expect(text.endsWith("..\n..\n")).toBe(true);
    // non-dirs first (byte order), then dirs (byte order)
    const rootKids = lines.filter((l) => l.startsWith("    ")).slice(0, 7).map((l) => l.trim().split(" ")[0]);
    expect(rootKids).toEqual(["a\\040file\\052\\077", "mode0", "new\\012line", "setuid", "sym", "x", "\\377A"]);
    const dirOrder = lines.slice(5).filter((l) => l.startsWith("# ")).map((l) => l.slice(2));
    expect(dirOrder).toEqual([".", "after", "dev", "dir with space", "dir with space/sub", "home", "home/sub", "home/sub/deeper", "zz"]);
  });

  test("parse(format(x)) == x", () => {
    const es = sampleEntries();
    const back = parseMtree(formatMtree(es, { keywords: KW }));
    expect(byPath(back)).toEqual(byPath(es));
    expect(compareMtree(es, back, KW)).toEqual([]);
  });

  test("rejects inconsistent trees", () => {
    const d = (p: string): MtreeEntry => ({ path: p, type: "dir", mode: 0o755 });
    expect(() => formatMtree([d("a")], { keywords: KW })).toThrow(InvalidError);
    expect(() => formatMtree([d("."), d("a/b")], { keywords: KW })).toThrow(InvalidError);
    expect(() => formatMtree([d("."), { path: "f", type: "file" }, d("f/x")], { keywords: KW })).toThrow(InvalidError);
    expect(() => formatMtree([d("."), d("./a")], { keywords: KW })).toThrow(InvalidError);
    expect(() => formatMtree([d(".")], { keywords: ["bogus"] })).toThrow();
  });
});

describe("parse", () => {
  test("set, unset, full paths, continuation, comments, signature", () => {
    const text = [
      "#mtree v2.0",
      "# comment",
      "/set type=file uid=5 gid=6 mode=0644",
      ". type=dir mode=0755",
      "    a size=1 \\",
      "      tar_time=12.000000000",
      "  sub type=dir",
      "    b uid=7 time=99.5",
      "    ..",
      "/unset uid",
      "c",
      "./sub/deep/../full type=link link=x\\040y",
      "/unset all",
      "d type=fifo",
      "..",
      "",
    ].join("\n");
    expect(parseMtree(text)).toEqual([
      { path: ".", type: "dir", uid: 5, gid: 6, mode: 0o755 },
      { path: "a", type: "file", uid: 5, gid: 6, mode: 0o644, size: 1, tarTime: 12 },
      { path: "sub", type: "dir", uid: 5, gid: 6, mode: 0o644 },
      { path: "sub/b", type: "file", uid: 7, gid: 6, mode: 0o644, tarTime: 99 },
      { path: "c", type: "file", gid: 6, mode: 0o644 },
      { path: "sub/full", type: "link", gid: 6, mode: 0o644, link: "x y" },
      { path: "d", type: "fifo" },
    ]);
  });

  test("errors carry the line number", () => {
    const bad = (t: string, line: number) => {
      let err: unknown;
      try {
        parseMtree(t);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidError);
      expect((err as Error).message).toStartWith(`mtree line ${line}: `);
    };
    bad(". type=dir\nx type=weird", 2);
    bad(". type=dir\n\nx size=abc", 3);
    bad("x mode=0999", 1);
    bad("../../etc/passwd type=file", 1);
    bad("a\\057b type=file", 1);
    bad("x\\q", 1);
    bad("x xattr.user.a=!!!", 1);
    bad("/frob x=1", 1);
    bad("x \\", 1);
    bad("a\nb size=1 =x", 2);
  });

  test("a line's keywords over /set: last value wins, xattrs keep the /set order, bare type resets", () => {
    const text = [
      "/set type=dir mode=0700 xattr.user.a=QQ== xattr.user.z=Wg==",
      "x xattr.user.b=Qg== xattr.user.a=YQ== size=1 size=2 type",
      "y type=file mode=0644 mode=0600",
      // a continuation whose next line is the trailing empty one (as text.split gives it)
      "z \\",
      "",
    ].join("\n");
    const es = parseMtree(text);
    expect(es.map((e) => e.path)).toEqual(["x", "y", "z"]);
    const x = es[0]!;
    expect(x.type).toBe("file");
    expect(x.size).toBe(2);
    expect(x.mode).toBe(0o700);
    expect([...x.xattrs!.entries()].map(([k, v]) => [k, v.toString()])).toEqual([["user.a", "a"], ["user.z", "Z"], ["user.b", "B"]]);
    expect(es[1]).toMatchObject({ type: "file", mode: 0o600 });
    expect(es[2]!.type).toBe("dir");
  });
});

describe("compare", () => {
  const base = (): MtreeEntry[] => sampleEntries();
  const mod = (fn: (m: Map<string, MtreeEntry>) => void): MtreeEntry[] => {
    const m = new Map(base().map((e) => [e.path, { ...e }]));
    fn(m);
    return [...m.values()];
  };

  test("each kind of change", () => {
    const after = mod((m) => {
      m.get("a file*?")!.sha256 = "0".repeat(64); // content
      m.get("mode0")!.mode = 0o600; // mode
      m.get("setuid")!.uid = 1; // uid
      m.get("home/rootfile")!.tarTime = 1795700995; // mtime
      m.get("x")!.xattrs = new Map([["user.foo", Buffer.from("baz")]]); // xattr change + removal
      m.get("home")!.xattrs = undefined; // xattr removed
      m.set("zz/last", { ...m.get("zz/last")!, type: "dir", sha256: undefined }); // type change
      m.set("zz/new", { path: "zz/new", type: "file", size: 0 }); // new
      m.delete("dev/fifo"); // deleted
      m.get("sym")!.link = "elsewhere"; // symlink target
    });
    const ds = compareMtree(base(), after, KW);
    expect(ds.map((d) => [d.kind, d.path, d.keys])).toEqual([
      ["modified", "a file*?", ["sha256digest"]],
      ["missing", "dev/fifo", undefined],
      ["modified", "home", ["xattr.user.d"]],
      ["modified", "home/rootfile", ["tar_time"]],
      ["modified", "mode0", ["mode"]],
      ["modified", "setuid", ["uid"]],
      ["modified", "sym", ["link"]],
      ["modified", "x", ["xattr.user.foo", "xattr.user.sp\\040ace"]],
      ["modified", "zz/last", ["type", "sha256digest"]],
      ["extra", "zz/new", undefined],
    ]);
    const line = (p: string) => formatDelta(ds.find((d) => d.path === p)!);
    expect(line("mode0")).toBe('"mode0": keyword "mode": expected 0; got 0600');
    expect(line("zz/new")).toBe('"zz/new": unexpected path');
    expect(line("dev/fifo")).toBe('"dev/fifo": missing path');
    expect(line("home")).toBe('"home": keyword "xattr.user.d": expected eA==; got ');
    expect(line("home/rootfile")).toBe(
      '"home/rootfile": keyword "tar_time": expected 1795700994.000000000; got 1795700995.000000000',
    );
  });

  test("a key on one side only is a change (go-mtree as umoci 0.6 vendors it); keyword filter applies", () => {
    const a: MtreeEntry[] = [{ path: "f", type: "file", size: 1, mode: 0o644 }];
    const b: MtreeEntry[] = [{ path: "f", type: "file", mode: 0o644, sha256: "a".repeat(64) }];
    const ds = compareMtree(a, b, KW);
    expect(ds.map((d) => d.keys)).toEqual([["size", "sha256digest"]]);
    expect(formatDelta(ds[0]!)).toBe('"f": keyword "size": expected 1; got ');
    expect(compareMtree(a, b, ["type", "mode"])).toEqual([]);
    const c: MtreeEntry[] = [{ path: "f", type: "file", size: 2, mode: 0o600, tarTime: 5 }];
    expect(compareMtree(a, c, ["size"]).map((d) => d.keys)).toEqual([["size"]]);
    expect(compareMtree(a, c, KW).map((d) => d.keys)).toEqual([["size", "mode", "tar_time"]]);
    expect(compareMtree(a, c, ["type", "uid"])).toEqual([]);
  });
});

function buildTree(root: string): void {
  fs.mkdirSync(path.join(root, "dir with space/sub"), { recursive: true });
  fs.mkdirSync(path.join(root, "a/b/c"), { recursive: true });
  fs.mkdirSync(path.join(root, "bin"));
  fs.mkdirSync(path.join(root, "etc"));
  fs.writeFileSync(path.join(root, "dir with space/f*?[#].txt"), "hi\n");
  fs.writeFileSync(path.join(root, "new\nline"), "x");
  fs.writeFileSync(Buffer.from(root + "/\xff\xfebad", "latin1"), "y");
  fs.writeFileSync(path.join(root, "ü"), "ü");
  fs.writeFileSync(path.join(root, "back\\slash"), "");
  fs.writeFileSync(path.join(root, "\ttab"), "");
  fs.symlinkSync("../etc/hello", path.join(root, "bin/link"));
  fs.symlinkSync("target with space*", path.join(root, "sl"));
  fs.writeFileSync(path.join(root, "bin/tool"), "tool\n");
  fs.chmodSync(path.join(root, "bin/tool"), 0o4755);
  fs.linkSync(path.join(root, "bin/tool"), path.join(root, "bin/tool2"));
  fs.writeFileSync(path.join(root, "etc/hello"), "hello\n");
  fs.writeFileSync(path.join(root, "big"), Buffer.alloc(9 << 20, 7));
  fs.writeFileSync(path.join(root, "zero"), "");
  fs.chmodSync(path.join(root, "zero"), 0);
  fs.chmodSync(path.join(root, "a/b"), 0o1777);
  fs.chmodSync(path.join(root, "a/b/c"), 0);
  Bun.spawnSync(["mkfifo", path.join(root, "a/fifo")]);
  if (isRoot) {
    fs.chownSync(path.join(root, "etc/hello"), 1000, 1000);
    fs.mkdirSync(path.join(root, "owned/zsub"), { recursive: true });
    fs.chownSync(path.join(root, "owned"), 1000, 1001);
    fs.writeFileSync(path.join(root, "owned/x"), "");
    fs.chownSync(path.join(root, "owned/x"), 1000, 1001);
    fs.writeFileSync(path.join(root, "owned/y"), "");
    fs.mkdirSync(path.join(root, "p"));
    Bun.spawnSync(["mknod", path.join(root, "a/null"), "c", "1", "3"]);
    Bun.spawnSync(["mknod", path.join(root, "a/blk"), "b", "7", "0"]);
  }
  if (which("setfattr")) {
    Bun.spawnSync(["setfattr", "-n", "user.foo", "-v", "bar", path.join(root, "etc/hello")]);
    Bun.spawnSync(["setfattr", "-n", "user.dx", "-v", "a b", path.join(root, "a")]);
  }
}

describe("walk", () => {
  test("formatter output equals umoci's manifest", async () => {
    if (!which("umoci") || !isRoot) {
      console.log("skip: umoci comparison needs `umoci` on PATH and root (chown, mknod)");
      return;
    }
    const w = path.join(tmp, "umoci");
    fs.mkdirSync(w);
    const run = (...args: string[]) => {
      const r = Bun.spawnSync(["umoci", ...args], { cwd: w });
      if (r.exitCode !== 0) throw new Error(`umoci ${args.join(" ")}: ${r.stderr.toString()}`);
    };
    run("init", "--layout", "l");
    run("new", "--image", "l:t");
    run("unpack", "--image", "l:t", "b");
    buildTree(path.join(w, "b/rootfs"));
    run("repack", "--image", "l:t2", "b");
    run("unpack", "--image", "l:t2", "b2");
    const mfile = fs.readdirSync(path.join(w, "b2")).find((f) => f.endsWith(".mtree"))!;
    const ref = fs.readFileSync(path.join(w, "b2", mfile), "utf8");
    const rootfs = path.join(w, "b2/rootfs");
    const walked = await walkTree(rootfs, { keywords: KW, listXattrs: getfattrList });
    const ours = formatMtree(walked, { keywords: KW, tree: "b2/rootfs" });
    expect(stripHeader(ours)).toBe(stripHeader(ref));
    // and umoci's file reads back as exactly what we walked
    expect(compareMtree(parseMtree(ref), walked, KW)).toEqual([]);
    expect(byPath(parseMtree(ref))).toEqual(byPath(walked));
  });

  test("walk then compare of an unchanged tree gives no deltas; changes are seen", async () => {
    const root = path.join(tmp, "plain");
    fs.mkdirSync(root);
    buildTree(root);
    const before = await walkTree(root, { keywords: KW, listXattrs: getfattrList });
    const manifest = formatMtree(before, { keywords: KW });
    const again = await walkTree(root, {
      keywords: KW,
      listXattrs: getfattrList,
      hashFile: async (p) => new Bun.CryptoHasher("sha256").update(fs.readFileSync(p)).digest("hex"),
    });
    expect(compareMtree(parseMtree(manifest), again, KW)).toEqual([]);
    const big = before.find((e) => e.path === "big")!;
    expect(big.sha256).toBe(new Bun.CryptoHasher("sha256").update(Buffer.alloc(9 << 20, 7)).digest("hex"));
    expect(before.find((e) => e.path === "bin/link")).toMatchObject({ type: "link", link: "../etc/hello", size: 12 });
    expect(before.find((e) => e.path === "bin/tool")).toMatchObject({ mode: 0o4755, nlink: 2 });
    expect(before.find((e) => e.path === bytesToName(Buffer.from([0xff, 0xfe, 0x62, 0x61, 0x64])))).toBeDefined();

    fs.appendFileSync(path.join(root, "etc/hello"), "more");
    fs.utimesSync(path.join(root, "etc/hello"), 1000, 1000);
    fs.rmSync(path.join(root, "bin/tool2"));
    fs.writeFileSync(path.join(root, "added"), "");
    const after = await walkTree(root, { keywords: KW, listXattrs: getfattrList });
    const ds = compareMtree(parseMtree(manifest), after, KW);
    const kinds = new Map(ds.map((d) => [d.path, d.kind]));
    expect(kinds.get("etc/hello")).toBe("modified");
    expect(ds.find((d) => d.path === "etc/hello")!.keys).toEqual(["size", "tar_time", "sha256digest"]);
    expect(kinds.get("bin/tool2")).toBe("missing");
    expect(kinds.get("bin/tool")).toBe("modified"); // nlink 2 → 1
    expect(kinds.get("added")).toBe("extra");
  });

  test("rootless walk opens unreadable dirs and files, then restores them", async () => {
    const root = path.join(tmp, "rootless");
    fs.mkdirSync(path.join(root, "locked/inner"), { recursive: true });
    fs.writeFileSync(path.join(root, "locked/inner/f"), "data");
    fs.writeFileSync(path.join(root, "noread"), "secret");
    fs.chmodSync(path.join(root, "noread"), 0);
    fs.chmodSync(path.join(root, "locked/inner"), 0o100);
    fs.chmodSync(path.join(root, "locked"), 0);
    fs.utimesSync(path.join(root, "locked"), 12345, 23456);
    const es = await walkTree(root, { keywords: KW, rootless: true });
    expect(es.map((e) => e.path).sort()).toEqual([".", "locked", "locked/inner", "locked/inner/f", "noread"]);
    expect(es.find((e) => e.path === "locked")).toMatchObject({ mode: 0, tarTime: 23456 });
    expect(es.find((e) => e.path === "noread")!.sha256).toBe(new Bun.CryptoHasher("sha256").update("secret").digest("hex"));
    const st = fs.lstatSync(path.join(root, "locked"));
    expect(st.mode & 0o7777).toBe(0);
    expect(Math.floor(st.mtimeMs / 1000)).toBe(23456);
    expect(fs.lstatSync(path.join(root, "noread")).mode & 0o7777).toBe(0);
    fs.chmodSync(path.join(root, "locked"), 0o755);
    expect(fs.lstatSync(path.join(root, "locked/inner")).mode & 0o7777).toBe(0o100);
    fs.chmodSync(path.join(root, "locked/inner"), 0o755);
  });

  test("walk of a 20k-file tree completes", async () => {
    const root = path.join(tmp, "many");
    for (let d = 0; d < 100; d++) {
      const dir = path.join(root, `d${d}`);
      fs.mkdirSync(dir, { recursive: true });
      for (let f = 0; f < 200; f++) fs.writeFileSync(path.join(dir, `f${f}`), `${d}/${f}`);
    }
    const es = await walkTree(root, { keywords: KW });
    expect(es.length).toBe(1 + 100 + 20000);
    const text = formatMtree(es, { keywords: KW });
    expect(parseMtree(text).length).toBe(es.length);
    expect(compareMtree(es, es, KW)).toEqual([]);
  }, 120_000);
});

describe("recorder", () => {
  test("set, get, delete subtree, replace dir by file, format", () => {
    const r = createMtreeRecorder();
    const d = (p: string): MtreeEntry => ({ path: p, type: "dir", mode: 0o755, uid: 0, gid: 0, nlink: 2 });
    const f = (p: string): MtreeEntry => ({ path: p, type: "file", mode: 0o644, uid: 0, gid: 0, nlink: 1 });
    r.set(d("."));
    r.set(d("a"));
    r.set(d("a/b"));
    r.set(f("a/b/x"));
    r.set(f("a/y"));
    r.set(d("c"));
    r.set(f("c/z"));
    expect(r.size).toBe(7);
    expect(r.get("a/b/x")?.type).toBe("file");
    r.delete("a/b");
    expect(r.get("a/b/x")).toBeUndefined();
    expect(r.has("a/b")).toBe(false);
    expect(r.size).toBe(5);
    r.set(f("c")); // a file replaces the directory and its children
    expect(r.get("c/z")).toBeUndefined();
    expect(r.size).toBe(4);
    r.set(d("a")); // a directory over a directory keeps its children
    expect(r.get("a/y")).toBeDefined();
    r.delete("nope/deeper");
    expect([...r.entries()].map((e) => e.path).sort()).toEqual([".", "a", "a/y", "c"]);
    expect(parseMtree(formatMtree(r.entries(), { keywords: KW })).length).toBe(4);
    expect(() => r.delete(".")).toThrow(InvalidError);
  });
});

describe("columnar store", () => {
  const d = (p: string, extra: Partial<MtreeEntry> = {}): MtreeEntry => ({ path: p, type: "dir", mode: 0o755, uid: 0, gid: 0, nlink: 2, size: 4096, tarTime: 1600000000, ...extra });
  const f = (p: string, extra: Partial<MtreeEntry> = {}): MtreeEntry => ({ path: p, type: "file", mode: 0o644, uid: 1000, gid: 100, nlink: 1, size: 3, tarTime: 1600000001, sha256: "ab".repeat(32), ...extra });
  /** A shuffled tree with every kind of value the store keeps in a column or beside one. */
  const sample = (): MtreeEntry[] => [
    f("b/\udcff-raw"), d("."), f("b/a"), d("b"), d("a", { xattrs: new Map([["user.x", Buffer.from([0, 1, 255])]]) }),
    { path: "a/link", type: "link", link: "../b/a", mode: 0o777, uid: 0, gid: 0, nlink: 1, size: 6, tarTime: 5 },
    f("a/Z", { sha256: "pending:7", size: 2 ** 40 + 3, uid: 4294967295 }), f("a/big", { tarTime: -86400 }), d("a/sub"), f("a/sub/x"),
    { path: "a/fifo", type: "fifo", mode: 0o600, uid: 0, gid: 0, nlink: 1, size: 0, tarTime: 0 },
  ];

  test("sorted() gives the entries back exactly, in the order formatMtree writes them", () => {
    const r = createMtreeRecorder();
    for (const e of sample()) r.set(e);
    const got = [...r.sorted()];
    // the same text both ways: sorted() is walk order and loses nothing
    const opts = { keywords: KW, user: "u", machine: "m", tree: "t", date: new Date(0) };
    const chunks: string[] = [];
    writeMtreeSorted(got, opts, (c) => chunks.push(c));
    expect(chunks.join("")).toBe(formatMtree(sample(), opts));
    expect(got.map((e) => e.path)).toEqual([".", "a", "a/Z", "a/big", "a/fifo", "a/link", "a/sub", "a/sub/x", "b", "b/a", "b/\udcff-raw"]);
    const byPath = new Map(sample().map((e) => [e.path, e]));
    for (const e of got) expect(e).toEqual(byPath.get(e.path)!);
  });

  test("a copy comes out: changing it changes nothing stored; resolveDigests fills placeholders", () => {
    const r = createMtreeRecorder();
    for (const e of sample()) r.set(e);
    const z = r.get("a/Z")!;
    z.mode = 0o4755;
    expect(r.get("a/Z")!.mode).toBe(0o644);
    r.resolveDigests((s) => (s === "pending:7" ? "cd".repeat(32) : undefined));
    expect(r.get("a/Z")!.sha256).toBe("cd".repeat(32));
    expect(r.get("b/a")!.sha256).toBe("ab".repeat(32));
  });

  test("errors as the formatter's: a parent without an entry, a non-directory with children", () => {
    const r = createMtreeRecorder();
    r.set(d("."));
    r.set(f("x/y"));
    expect(() => [...r.sorted()]).toThrow(/"x": no entry for this parent directory/);
    const s = createMtreeStore({ replaceSubtrees: false });
    s.set(d("."));
    s.set(d("x"));
    s.set(f("x/y"));
    s.set(f("x"));
    expect(s.get("x/y")).toBeDefined(); // kept: a manifest read back keeps every line
    expect(() => [...s.sorted()]).toThrow(/"x": has children but is of type file/);
    expect(() => [...createMtreeRecorder().sorted()]).toThrow(/no entry for the root/);
  });

  test("take() and untaken(); stat keys by value", () => {
    const s = createMtreeStore();
    for (const e of sample()) s.set(e);
    expect(s.take("a/big")?.tarTime).toBe(-86400);
    expect(s.take("nope")).toBeUndefined();
    s.take("b");
    expect([...s.untaken()].map((e) => e.path).sort()).toEqual([".", "a", "a/Z", "a/fifo", "a/link", "a/sub", "a/sub/x", "b/a", "b/\udcff-raw"]);
    const st = { dev: 2049n, ino: 77n, size: 3n, mtimeNs: 1600000001123456789n, ctimeNs: -5n };
    s.setStat("b/a", [st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs]);
    expect(s.sameStat("b/a", st)).toBe(true);
    expect(s.sameStat("b/a", { ...st, ctimeNs: -4n })).toBe(false);
    expect(s.sameStat("b/a", { ...st, mtimeNs: st.mtimeNs + 1n })).toBe(false);
    expect(s.sameStat("a/big", st)).toBe(false);
    s.set(f("b/a")); // a new value drops the key
    expect(s.sameStat("b/a", st)).toBe(false);
    s.setStat("b/a", [st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs]);
    s.clearStats();
    expect(s.sameStat("b/a", st)).toBe(false);
  });

  test("many entries: rows grow, deletes of subtrees keep the count", () => {
    const r = createMtreeRecorder();
    r.set(d("."));
    for (let i = 0; i < 40; i++) {
      r.set(d(`d${i}`));
      for (let j = 0; j < 100; j++) r.set(f(`d${i}/f${j}`, { size: i * 1000 + j }));
    }
    expect(r.size).toBe(1 + 40 * 101);
    r.delete("d7");
    r.set(f("d8")); // a file replaces the directory and its 100 files
    expect(r.size).toBe(1 + 38 * 101 + 1);
    expect(r.get("d39/f99")!.size).toBe(39099);
    expect([...r.sorted()].length).toBe(r.size);
  });

  test("writeMtreeSorted rejects entries out of walk order", () => {
    const opts = { keywords: KW, user: "u", machine: "m", tree: "t", date: new Date(0) };
    const run = (es: MtreeEntry[]) => writeMtreeSorted(es, opts, () => {});
    expect(() => run([d("."), d("a"), f("b/x")])).toThrow(/not in walk order/);
    expect(() => run([d("a")])).toThrow(/no entry for the root/);
    expect(() => run([d("."), d("a/b")])).toThrow(/not in walk order/);
    expect(() => run([])).toThrow(/no entry for the root/);
  });
});

describe("validate (go-mtree's Check as umoci 0.6 vendors it)", () => {
  test("parseSpec: /set replaces, /unset clears, paths as Entry.Path gives them, used keywords", () => {
    const spec = parseSpec([
      "#mtree v2.0",
      "/set type=file uid=0 gid=0 mode=0644",
      ". type=dir mode=0755",
      "    a size=1",
      "/set type=file nlink=1",
      "    b size=2 sha256=x optional",
      "sub type=dir",
      "    c\\040d size=3",
      "/unset uid",
      "    e size=4 \\",
      "  mode=0600",
      "..",
      "..",
      "./x/../../y type=file",
      "/other k=v",
      "  /abs type=file",
      "sub type=file size=9",
      "sub type=file size=10",
      "",
    ].join("\r\n"));
    const get = (p: string) => Object.fromEntries(spec.entries.get(p) ?? []);
    expect([...spec.entries.keys()]).toEqual([".", "a", "b", "sub", "sub/c d", "sub/e", "y", "/abs"]);
    expect(get("a")).toEqual({ type: "file", uid: "0", gid: "0", mode: "0644", size: "1" });
    expect(get("b")).toEqual({ type: "file", nlink: "1", size: "2", sha256: "x", "": "" });
    expect(get("sub/e")).toEqual({ size: "4", mode: "0600" });
    expect(get("sub")).toEqual({ type: "file", size: "10" }); // the last entry for a path wins
    expect(spec.usedKeywords).toEqual(["type", "uid", "gid", "mode", "size", "nlink", "sha256digest", ""]);
    expect(spec.pathError).toBeUndefined();
    expect(parseSpec("bad\\q type=file\n").pathError).toMatch(/unvis/);
    expect(() => parseSpec("x" + "y".repeat(65535) + "\n")).toThrow(/token too long/);
    expect(parseSpec("x" + "y".repeat(65534) + "\n").entries.size).toBe(1);
  });

  test("goClean is Go's filepath.Clean", () => {
    const cases: [string, string][] = [["", "."], ["a//b/./c/..", "a/b"], ["/../x", "/x"], ["../../a", "../../a"], ["a/../..", ".."], ["/", "/"], ["./", "."]];
    for (const [i, o] of cases) expect(goClean(i)).toBe(o);
  });

  test("keyword selection: -k, then --umoci-keywords, else the manifest's; -K appended; type first", () => {
    expect(parseKeywordList("sha256, md5 xattrs,,rmd160")).toEqual(["sha256digest", "md5digest", "xattr", "ripemd160digest"]);
    expect(parseKeywordList("")).toEqual([]);
    expect(selectKeywords({ manifest: ["size", "time"] })).toEqual(["type", "size", "time"]);
    expect(selectKeywords({ use: [], manifest: ["size"] })).toEqual(["type"]);
    expect(selectKeywords({ use: ["size"], umoci: ["uid"], manifest: ["gid"], add: ["size", "uid"] })).toEqual(["type", "size", "uid"]);
    expect(selectKeywords({ umoci: UMOCI_KEYWORDS, manifest: [] })).toEqual([...UMOCI_KEYWORDS]);
  });

  test("compareKeyVals: one-sided keys count; time becomes tar_time when either side has tar_time", () => {
    const m = (o: Record<string, string>) => new Map(Object.entries(o));
    expect(compareKeyVals(m({ size: "1", link: "x" }), m({ size: "2", mode: "0644" }))).toEqual([
      { kind: "modified", name: "size", old: "1", new: "2" },
      { kind: "extra", name: "mode", old: "", new: "0644" },
      { kind: "missing", name: "link", old: "x", new: "" },
    ]);
    expect(compareKeyVals(m({ time: "5.9" }), m({ tar_time: "5.000000000" }))).toEqual([]);
    expect(compareKeyVals(m({ tar_time: "5.000000000" }), m({ time: "+5.123456789" }))).toEqual([]);
    expect(compareKeyVals(m({ tar_time: "5.000000000", time: "9.0" }), m({ time: "5.1" }))).toEqual([]); // the manifest's tar_time wins
    expect(compareKeyVals(m({ time: "5.9" }), m({ time: "5.900000000" }))).toEqual([{ kind: "modified", name: "time", old: "5.9", new: "5.900000000" }]);
    expect(compareKeyVals(m({ tar_time: "5" }), m({ tar_time: "5.000000000" }))[0]!.kind).toBe("modified");
    for (const bad of ["5", "5.", "5.1x", "x.1", "1.2.3", "99999999999999999999.0"]) {
      expect(() => compareKeyVals(m({ time: bad }), m({ tar_time: "5.000000000" }))).toThrow(`old entry: failed to parse "time" key: invalid format "${bad}"`);
    }
    expect(() => compareKeyVals(m({ tar_time: "1.000000000" }), m({ time: "x" }))).toThrow(/^new entry: /);
  });

  test("compareSpecs: the keyword filter goes by prefix, time and tar_time stand for each other; one line per delta", () => {
    const m = (o: Record<string, string>) => new Map(Object.entries(o));
    const old = new Map([["f", m({ type: "file", size: "1", "xattr.user.a": "YQ==", time: "1.5", uname: "root" })], ["gone", m({ type: "file" })]]);
    const cur = new Map([["f", m({ type: "file", size: "2", "xattr.user.a": "Yg==", tar_time: "2.000000000" })], ["new", m({ type: "file" })]]);
    const ds = compareSpecs(old, cur, ["type", "time", "xattr", "size"]);
    expect(ds.map((d) => [d.path, d.kind, d.keys?.map((k) => k.name)])).toEqual([
      ["f", "modified", ["tar_time", "xattr.user.a", "size"]],
      ["gone", "missing", undefined],
      ["new", "extra", undefined],
    ]);
    expect(ds.map(formatSpecDelta)).toEqual([
      '"f": keyword "tar_time": expected 1.000000000; got 2.000000000', '"gone": missing path', '"new": unexpected path',
    ]);
    expect(compareSpecs(old, cur, ["type", "xattr.user.a"]).map((d) => d.keys?.length)).toEqual([undefined, undefined]);
    expect(() => compareSpecs(new Map([["f", m({ time: "bad" })]]), new Map([["f", m({ tar_time: "1.000000000" })]]), ["tar_time"])).toThrow(/^comparison failed f: old entry/);
  });

  test("cksum equals cksum(1) and go-mtree's bit-by-bit CRC", () => {
    const bitwise = (data: Uint8Array): number => {
      let sum = 0;
      const f = (b: number) => {
        for (let i = 0; i < 8; i++) {
          const msb = sum & 0x80000000;
          sum = (sum << 1) >>> 0;
          if (msb) sum = (sum ^ 0x04c11db7) >>> 0;
        }
        sum = (sum ^ b) >>> 0;
      };
      for (const b of data) f(b);
      let n = data.length;
      do { f(n & 0xff); n = Math.floor(n / 256); } while (n > 0);
      for (let i = 0; i < 4; i++) f(0);
      return ~sum >>> 0;
    };
    for (const data of [Buffer.alloc(0), Buffer.from("a"), Buffer.from("hello world\n"), Buffer.alloc(70000, 0xa5)]) {
      const c = createCksum();
      c.update(data.subarray(0, 3));
      c.update(data.subarray(3));
      expect(c.digest()).toBe(bitwise(data));
      if (which("cksum")) expect(String(c.digest())).toBe(Bun.spawnSync(["cksum"], { stdin: data }).stdout.toString().split(" ")[0]!);
    }
  });

  test("xattr lister with go-mtree's 1024-byte limits; any error lists none", () => {
    const vals: Record<string, Buffer> = { "user.a": Buffer.from("1"), "user.e": Buffer.alloc(0), "user.big": Buffer.alloc(1025) };
    const lister = (names: string[]) => createGoXattrLister(() => names, (_p, n) => vals[n] ?? null);
    expect([...lister(["user.a", "user.e"])("p")]).toEqual([["user.a", Buffer.from("1")], ["user.e", Buffer.alloc(0)]]);
    expect(lister(["user.a", "user.big"])("p").size).toBe(0);
    expect(lister(["user.a", "user.gone"])("p").size).toBe(0);
    expect(lister(Array.from({ length: 100 }, (_, i) => `user.name${i}`))("p").size).toBe(0);
    expect(createGoXattrLister(() => { throw new Error("ENOTSUP"); }, () => null)("p").size).toBe(0);
  });

  test("walkSpec: keys per path as go-mtree's walk gives them", async () => {
    const root = path.join(tmp, "walkspec");
    fs.mkdirSync(path.join(root, "d"), { recursive: true });
    fs.writeFileSync(path.join(root, "f"), "abc");
    fs.symlinkSync("f", path.join(root, "l"));
    fs.utimesSync(path.join(root, "f"), 1000.25, 1000.25);
    const w = await walkSpec(root, ["type", "size", "time", "tar_time", "link", "sha1", "sha512256", "flags", "cksum", "mode"]);
    expect(Object.fromEntries(w.get("f")!)).toEqual({
      type: "file", size: "3", time: "1000.250000000", tar_time: "1000.000000000", sha1digest: "a9993e364706816aba3e25717850c26c9cd0d89d",
      sha512digest: "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23", flags: "none", cksum: "1219131554", mode: formatModeOf(path.join(root, "f")),
    });
    expect(w.get("l")!.get("link")).toBe("f");
    expect(w.get("l")!.has("sha1digest")).toBe(false);
    expect([...w.keys()].sort()).toEqual([".", "d", "f", "l"]);
    await expect(walkSpec(root, ["type", "xattr.user.a", "nope.x"])).rejects.toThrow(`unknown keyword "nope" for file ${JSON.stringify(root)}`);
    await expect(walkSpec(path.join(root, "f"), ["type"])).rejects.toThrow("f: Not a directory");
  });
});

function formatModeOf(p: string): string {
  const m = fs.lstatSync(p).mode & 0o7777;
  return m ? "0" + m.toString(8) : "0";
}
