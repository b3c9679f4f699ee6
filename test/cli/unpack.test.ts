/**
 * `unpack`, `raw unpack`, `raw runtime-config`: normal behaviour, as root. Images are built in
 * code (test/helpers/image.ts) and unpacked with the real binary.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync, existsSync, readdirSync, mkdirSync, lstatSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import * as zlib from "node:zlib";
import { boci, ok, scratch, sh, isRoot } from "../helpers/cli";
import { makeTar, makeImage, makeIndex, dir, file, symlink, hardlink, whiteout, hostArch, type TarEntrySpec } from "../helpers/image";

function newLayout(): string {
  const l = join(scratch(), "layout");
  ok(["init", "--layout", l]);
  return l;
}
/** A layout with one image made of these layers (each a list of entries). */
function image(layers: TarEntrySpec[][], opts: Parameters<typeof makeImage>[3] = {}): { layout: string; img: string; made: ReturnType<typeof makeImage> } {
  const layout = newLayout();
  const made = makeImage(layout, "t", layers.map((l) => makeTar(l)), opts);
  return { layout, img: `${layout}:t`, made };
}
function unpack(img: string, bundle: string, extra: string[] = []) {
  return boci(["unpack", "--no-progress", ...extra, "--image", img, bundle]);
}
function unpackOk(img: string, extra: string[] = []): string {
  const b = join(scratch(), "bundle");
  const r = unpack(img, b, extra);
  if (r.code !== 0) throw new Error(`unpack exited ${r.code}: ${r.stderr}`);
  return b;
}
const mode = (p: string) => lstatSync(p).mode & 0o7777;
const mtime = (p: string) => Math.floor(lstatSync(p).mtimeMs / 1000);
/** An xattr's value as hex ("" if absent). */
function xattrHex(p: string, name: string): string {
  const r = sh(`getfattr -h --absolute-names -e hex -n ${name} ${JSON.stringify(p)}`);
  if (r.code !== 0) return "";
  const m = r.stdout.match(new RegExp(`^${name.replace(/\./g, "\\.")}=0x([0-9a-f]*)$`, "m"));
  return m ? m[1]! : "";
}
function mtreeFile(bundle: string): string {
  const f = readdirSync(bundle).find((n) => n.endsWith(".mtree"));
  if (!f) throw new Error(`no mtree in ${bundle}`);
  return join(bundle, f);
}
/** The mtree text without the header comments that vary between runs (user, machine, tree, date). */
export function stripMtreeHeader(text: string): string {
  return text.split("\n").filter((l) => !/^#\s*(user|machine|tree|date):/.test(l)).join("\n");
}

const CAP = Buffer.from("0100000200200000000000000000000000000000", "hex"); // VFS_CAP_REVISION_2, cap_net_raw

describe.skipIf(!isRoot)("unpack: bundle layout", () => {
  test("bundle has rootfs/, config.json, sha256_<manifest>.mtree and umoci.json (+ boci's .boci-stat); modes and times", () => {
    const { img, made } = image([[dir("etc/"), file("etc/hostname", "box\n")]]);
    const b = unpackOk(img);
    const hex = made.manifest.digest.split(":")[1]!;
    expect(readdirSync(b).sort()).toEqual([".boci-stat", "config.json", "rootfs", `sha256_${hex}.mtree`, "umoci.json"]);
    // Without the stat cache, exactly umoci's four.
    const b2 = join(scratch(), "bundle");
    expect(boci(["unpack", "--image", img, b2], { env: { BOCI_STAT_CACHE: "0" } }).code).toBe(0);
    expect(readdirSync(b2).sort()).toEqual(["config.json", "rootfs", `sha256_${hex}.mtree`, "umoci.json"]);
    expect(mode(b)).toBe(0o700);
    const rootfs = join(b, "rootfs");
    expect(mode(rootfs)).toBe(0o755);
    expect(lstatSync(rootfs).uid).toBe(0);
    expect(lstatSync(rootfs).gid).toBe(0);
    expect(lstatSync(rootfs).mtimeMs).toBe(0);
    expect(readFileSync(join(rootfs, "etc/hostname"), "utf8")).toBe("box\n");

    const metaText = readFileSync(join(b, "umoci.json"), "utf8");
    expect(metaText.endsWith("}\n")).toBe(true);
    expect(metaText.trimEnd()).not.toContain("\n");
    const meta = JSON.parse(metaText);
    expect(Object.keys(meta).sort()).toEqual(["from_descriptor_path", "map_options", "umoci_version"]);
    expect(meta.umoci_version).toBe("2");
    const walk = meta.from_descriptor_path.descriptor_walk;
    expect(Array.isArray(walk)).toBe(true);
    expect(walk.at(-1).digest).toBe(made.manifest.digest);
    expect(walk.at(-1).mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
    expect(walk.at(-1).size).toBe(made.manifest.size);
    expect(walk[0].annotations["org.opencontainers.image.ref.name"]).toBe("t");
    expect(meta.map_options).toEqual({ uid_mappings: null, gid_mappings: null, rootless: false });

    const cfg = JSON.parse(readFileSync(join(b, "config.json"), "utf8"));
    expect(cfg.root.path).toBe("rootfs");
    const mt = readFileSync(mtreeFile(b), "utf8");
    expect(mt).toContain("keywords: size,type,uid,gid,mode,link,nlink,tar_time,sha256digest,xattr");
    expect(mt).toContain("hostname");
  });

  test("a '.' entry in the layer sets the rootfs mode and times", () => {
    const { img } = image([[dir("./", { mode: 0o750, mtime: 1234567 }), file("f", "x")]]);
    const b = unpackOk(img);
    expect(mode(join(b, "rootfs"))).toBe(0o750);
    expect(mtime(join(b, "rootfs"))).toBe(1234567);
  });
});

describe.skipIf(!isRoot)("unpack: entry types", () => {
  test("files, dirs, symlinks, hardlinks, devices, fifos, long names, xattrs", () => {
    const s = scratch();
    const b = join(s, "bundle");
    // keep the absolute path of the long file below PATH_MAX
    const rootLen = join(b, "rootfs").length + 1;
    const comp = "d".repeat(200);
    const longParts: string[] = [];
    while ((longParts.length + 1) * 201 + 50 + rootLen < 4000) longParts.push(`${comp}${longParts.length}`);
    const longDir = longParts.join("/");
    const longFile = `${longDir}/${"f".repeat(40)}`;
    const name101 = "n".repeat(101);
    const layer: TarEntrySpec[] = [
      dir("etc/", { mtime: 1500000000 }),
      file("etc/hello", "hello world\n", { mode: 0o640, mtime: 1500000001 }),
      dir("bin/"),
      file("bin/su", "#!/bin/sh\n", { mode: 0o4755, uid: 1000, gid: 1000 }),
      file("bin/sg", "#!/bin/sg\n", { mode: 0o2711, uid: 0, gid: 50 }),
      symlink("etc/link", "../bin/su", { mtime: 123456789 }),
      symlink("etc/dangling", "/nonexistent/target with spaces", { mtime: 987654321 }),
      hardlink("etc/hard", "etc/hello"),
      dir("dev/"),
      { name: "dev/null", type: "3", devmajor: 1, devminor: 3, mode: 0o666 },
      { name: "dev/loop0", type: "4", devmajor: 7, devminor: 0, mode: 0o660, gid: 6 },
      dir("run/"),
      { name: "run/fifo", type: "6", mode: 0o620 },
      file(name101, "long\n"),
      ...longParts.map((_, i) => dir(longParts.slice(0, i + 1).join("/") + "/")),
      file(longFile, "deep\n"),
      file("bin/ping", "ping", {
        mode: 0o755,
        pax: {
          "SCHILY.xattr.security.capability": CAP,
          "SCHILY.xattr.user.bin": Buffer.from([0x00, 0xff, 0x0a, 0x3d, 0x20]),
          "SCHILY.xattr.user.text": "hello",
          "SCHILY.xattr.security.selinux": "system_u:object_r:bin_t:s0",
        },
      }),
      dir("xdir/", { pax: { "SCHILY.xattr.user.dirattr": "on-a-dir" } }),
    ];
    const layout = newLayout();
    makeImage(layout, "t", [makeTar(layer)]);
    const r = unpack(`${layout}:t`, b);
    expect(r.stderr).toContain("security.selinux");
    expect(r.code).toBe(0);
    const R = join(b, "rootfs");

    expect(readFileSync(join(R, "etc/hello"), "utf8")).toBe("hello world\n");
    expect(mode(join(R, "etc/hello"))).toBe(0o640);
    expect(mtime(join(R, "etc/hello"))).toBe(1500000001);
    expect(lstatSync(join(R, "etc")).isDirectory()).toBe(true);
    expect(mtime(join(R, "etc"))).toBe(1500000000);

    const su = lstatSync(join(R, "bin/su"));
    expect(su.mode & 0o7777).toBe(0o4755);
    expect([su.uid, su.gid]).toEqual([1000, 1000]);
    const sg = lstatSync(join(R, "bin/sg"));
    expect(sg.mode & 0o7777).toBe(0o2711);
    expect(sg.gid).toBe(50);

    expect(lstatSync(join(R, "etc/link")).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(R, "etc/link"))).toBe("../bin/su");
    expect(mtime(join(R, "etc/link"))).toBe(123456789);
    expect(readlinkSync(join(R, "etc/dangling"))).toBe("/nonexistent/target with spaces");
    expect(mtime(join(R, "etc/dangling"))).toBe(987654321);

    const h1 = lstatSync(join(R, "etc/hello")), h2 = lstatSync(join(R, "etc/hard"));
    expect(h2.ino).toBe(h1.ino);
    expect(h1.nlink).toBe(2);

    const dn = lstatSync(join(R, "dev/null"));
    expect(dn.isCharacterDevice()).toBe(true);
    expect([Math.floor(dn.rdev / 256), dn.rdev % 256]).toEqual([1, 3]);
    expect(dn.mode & 0o7777).toBe(0o666);
    const bl = lstatSync(join(R, "dev/loop0"));
    expect(bl.isBlockDevice()).toBe(true);
    expect(bl.gid).toBe(6);
    expect(lstatSync(join(R, "run/fifo")).isFIFO()).toBe(true);
    expect(mode(join(R, "run/fifo"))).toBe(0o620);

    expect(readFileSync(join(R, name101), "utf8")).toBe("long\n");
    expect(readFileSync(join(R, longFile), "utf8")).toBe("deep\n");

    expect(xattrHex(join(R, "bin/ping"), "security.capability")).toBe(CAP.toString("hex"));
    expect(xattrHex(join(R, "bin/ping"), "user.bin")).toBe("00ff0a3d20");
    expect(xattrHex(join(R, "bin/ping"), "user.text")).toBe(Buffer.from("hello").toString("hex"));
    expect(sh(`getfattr -h --absolute-names -m - -d ${join(R, "bin/ping")}`).stdout).not.toContain("security.selinux=\"system_u");
    expect(xattrHex(join(R, "xdir"), "user.dirattr")).toBe(Buffer.from("on-a-dir").toString("hex"));
  });

  test("parents missing from the layer are created (0755, root-owned) and recorded in the mtree", () => {
    const { img } = image([[file("a/b/c", "x", { uid: 5, gid: 6 })], [file("n/m", "y")]]);
    const b = unpackOk(img);
    const R = join(b, "rootfs");
    expect(readFileSync(join(R, "a/b/c"), "utf8")).toBe("x");
    expect(mode(join(R, "a"))).toBe(0o755);
    expect(lstatSync(join(R, "a/b")).uid).toBe(0);
    expect(readFileSync(join(R, "n/m"), "utf8")).toBe("y");
    const v = boci(["raw", "mtree-validate", "-f", mtreeFile(b), "-p", R]);
    expect(v.stdout + v.stderr).toBe("");
    expect(v.code).toBe(0);
  });

  test("directory mtimes are restored after their children are written (same and later layers)", () => {
    const { img } = image([
      [dir("d/", { mtime: 1000000 }), file("d/f", "x", { mtime: 2000000 }), dir("d/sub/", { mtime: 3000000 }), file("d/sub/g", "y", { mtime: 4000000 }),
        file("e/f", "z", { mtime: 5000000 }), dir("e/", { mtime: 1100000 })],
      [file("d/later", "l", { mtime: 7000000 }), whiteout("d/.wh.f"), file("d/sub/h", "h")],
    ]);
    const R = join(unpackOk(img), "rootfs");
    expect(mtime(join(R, "d"))).toBe(1000000);
    expect(mtime(join(R, "d/sub"))).toBe(3000000);
    expect(mtime(join(R, "e"))).toBe(1100000);
    expect(existsSync(join(R, "d/f"))).toBe(false);
    expect(mtime(join(R, "d/later"))).toBe(7000000);
  });
});

describe.skipIf(!isRoot)("unpack: whiteouts", () => {
  test(".wh.NAME removes lower files and trees; opaque empties a dir of lower content only; same-layer paths survive", () => {
    const { img } = image([
      [
        dir("a/"), file("a/file1", "1"), file("a/keep", "k"),
        dir("b/"), dir("b/sub/"), file("b/sub/deep", "d"), symlink("b/link", "/etc"),
        dir("c/"), file("c/x", "x"), dir("c/y/"), file("c/y/z", "z"),
        file("top", "t"), file("y", "old-y"),
      ],
      [
        whiteout("a/.wh.file1"),
        whiteout(".wh.b"),
        file("c/new", "new1"),
        whiteout("c/.wh..wh..opq"),
        file("c/new2", "new2"),
        whiteout(".wh.top"),
        // same layer: path then its whiteout, and whiteout then path
        file("x/added", "added"),
        whiteout("x/.wh.added"),
        whiteout(".wh.y"),
        file("y", "new-y"),
        whiteout(".wh.missing-is-fine"),
      ],
    ]);
    const R = join(unpackOk(img), "rootfs");
    expect(existsSync(join(R, "a/file1"))).toBe(false);
    expect(readFileSync(join(R, "a/keep"), "utf8")).toBe("k");
    expect(existsSync(join(R, "b"))).toBe(false);
    expect(readdirSync(join(R, "c")).sort()).toEqual(["new", "new2"]);
    expect(existsSync(join(R, "top"))).toBe(false);
    expect(readFileSync(join(R, "x/added"), "utf8")).toBe("added");
    expect(readFileSync(join(R, "y"), "utf8")).toBe("new-y");
    expect(readdirSync(R).some((n) => n.startsWith(".wh."))).toBe(false);
    expect(readdirSync(join(R, "a")).some((n) => n.startsWith(".wh."))).toBe(false);
  });

  test("an opaque whiteout placed after same-layer children keeps them", () => {
    const { img } = image([
      [dir("o/"), file("o/old", "o"), dir("o/olddir/"), file("o/olddir/f", "f")],
      [dir("o/"), dir("o/olddir/"), file("o/olddir/new", "n"), file("o/mine", "m"), whiteout("o/.wh..wh..opq")],
    ]);
    const R = join(unpackOk(img), "rootfs");
    expect(readdirSync(join(R, "o")).sort()).toEqual(["mine", "olddir"]);
    expect(readdirSync(join(R, "o/olddir")).sort()).toEqual(["new"]);
  });

  test("whiteouts in the first layer remove nothing (nothing lies below it), in any order", () => {
    const { img } = image([[
      dir("o/"), file("o/a", "a"), whiteout("o/.wh.a"), whiteout("o/.wh.later"), file("o/later", "l"),
      dir("p/"), dir("p/q/"), file("p/q/f", "f"), whiteout("p/.wh..wh..opq"), whiteout(".wh.o"),
    ]]);
    const R = join(unpackOk(img), "rootfs");
    expect(readdirSync(join(R, "o")).sort()).toEqual(["a", "later"]);
    expect(readdirSync(join(R, "p/q"))).toEqual(["f"]);
    // Still checked: a bare ".wh." is an error even in the first layer.
    const bad = image([[file("f", "x"), whiteout("d/.wh.")]]);
    expect(unpack(bad.img, join(scratch(), "bundle")).code).not.toBe(0);
  });

  test("raw unpack into a non-empty directory: the first layer's whiteouts remove what was there", () => {
    const { img } = image([[file("keep", "k"), whiteout(".wh.old"), dir("d/"), file("d/new", "n"), whiteout("d/.wh..wh..opq")]]);
    const d = join(scratch(), "rootfs");
    mkdirSync(join(d, "d"), { recursive: true });
    writeFileSync(join(d, "old"), "o");
    writeFileSync(join(d, "d", "stale"), "s");
    expect(boci(["raw", "unpack", "--no-progress", "--image", img, d]).code).toBe(0);
    expect(readdirSync(d).sort()).toEqual(["d", "keep"]);
    expect(readdirSync(join(d, "d"))).toEqual(["new"]);
  });

  test("a bare .wh. entry is an error", () => {
    const { img } = image([[file("f", "x")], [whiteout("d/.wh.")]]);
    const b = join(scratch(), "bundle");
    const r = unpack(img, b);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n").length).toBe(1);
    expect(existsSync(join(b, "rootfs"))).toBe(false);
  });
});

describe.skipIf(!isRoot)("unpack: replacing paths", () => {
  test("a non-directory parent is replaced by a directory", () => {
    const { img } = image([[file("p", "file"), symlink("s", "nowhere")], [file("p/child", "c"), file("s/child", "c2")]]);
    const R = join(unpackOk(img), "rootfs");
    expect(lstatSync(join(R, "p")).isDirectory()).toBe(true);
    expect(readFileSync(join(R, "p/child"), "utf8")).toBe("c");
    // a dangling symlink parent: either followed in-root (creating /nowhere) or replaced; never outside
    expect(existsSync(join(R, "s/child")) || existsSync(join(R, "nowhere/child"))).toBe(true);
  });

  test("a file replaces a directory tree and a directory replaces a file", () => {
    const { img } = image([[dir("d/"), file("d/f", "x"), file("g", "g")], [file("d", "now a file"), dir("g/"), file("g/in", "i")]]);
    const R = join(unpackOk(img), "rootfs");
    expect(readFileSync(join(R, "d"), "utf8")).toBe("now a file");
    expect(readFileSync(join(R, "g/in"), "utf8")).toBe("i");
  });

  test("--keep-dirlinks keeps a symlink to a directory; without it the directory replaces the symlink", () => {
    const layers = [[dir("real/"), file("real/old", "o"), symlink("q", "real")], [dir("q/"), file("q/f", "new")]];
    const { img } = image(layers);
    const R1 = join(unpackOk(img), "rootfs");
    expect(lstatSync(join(R1, "q")).isDirectory()).toBe(true);
    expect(readFileSync(join(R1, "q/f"), "utf8")).toBe("new");
    expect(existsSync(join(R1, "real/f"))).toBe(false);

    const R2 = join(unpackOk(img, ["--keep-dirlinks"]), "rootfs");
    expect(lstatSync(join(R2, "q")).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(R2, "q"))).toBe("real");
    expect(readFileSync(join(R2, "real/f"), "utf8")).toBe("new");
    expect(readFileSync(join(R2, "real/old"), "utf8")).toBe("o");
  });
});

describe.skipIf(!isRoot)("unpack: compression and verification", () => {
  const entries = [dir("etc/"), file("etc/a", "A".repeat(3000)), file("etc/b", "B")];
  test("gzip (multi-member), zstd and plain tar layers", () => {
    const layout = newLayout();
    const t1 = makeTar(entries);
    const t2 = makeTar([file("z", "zstd layer")]);
    const t3 = makeTar([file("p", "plain layer")]);
    const multi = Buffer.concat([zlib.gzipSync(t1.subarray(0, 1024)), zlib.gzipSync(t1.subarray(1024))]);
    makeImage(layout, "t", [t1, t2, t3], { compressEach: ["gzip", "zstd", "none"], rawBlobs: [multi] });
    const R = join(unpackOk(`${layout}:t`), "rootfs");
    expect(readFileSync(join(R, "etc/a"), "utf8")).toBe("A".repeat(3000));
    expect(readFileSync(join(R, "etc/b"), "utf8")).toBe("B");
    expect(readFileSync(join(R, "z"), "utf8")).toBe("zstd layer");
    expect(readFileSync(join(R, "p"), "utf8")).toBe("plain layer");
  });

  test("gzip with trailing junk warns but succeeds", () => {
    const t = makeTar(entries);
    const { img } = image([entries], { rawBlobs: [Buffer.concat([zlib.gzipSync(t), Buffer.from("this is trailing junk, not gzip")])] });
    const b = join(scratch(), "bundle");
    const r = unpack(img, b);
    expect(r.code).toBe(0);
    expect(r.stderr.toLowerCase()).toMatch(/junk|trailing|garbage/);
    expect(readFileSync(join(b, "rootfs/etc/b"), "utf8")).toBe("B");
  });

  test("a truncated gzip layer is an error and the rootfs is removed", () => {
    const gz = zlib.gzipSync(makeTar(entries));
    const { img } = image([entries], { rawBlobs: [gz.subarray(0, gz.length - 20)] });
    const b = join(scratch(), "bundle");
    const r = unpack(img, b);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n").length).toBe(1);
    expect(existsSync(join(b, "rootfs"))).toBe(false);
    expect(existsSync(join(b, "config.json"))).toBe(false);
  });

  test("a wrong diff_id is exit 4 'diffid mismatch' and the rootfs is removed", () => {
    const { img } = image([entries], { diffIds: [`sha256:${"0".repeat(64)}`] });
    const b = join(scratch(), "bundle");
    const r = unpack(img, b);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain("diffid mismatch");
    expect(existsSync(join(b, "rootfs"))).toBe(false);
    expect(existsSync(join(b, "config.json"))).toBe(false);
    // the bundle directory it would have made is not left behind either (nor its temporary one)
    expect(existsSync(b)).toBe(false);
    expect(readdirSync(join(b, "..")).filter((n) => n.includes("boci-unpack"))).toEqual([]);
  });

  test("a corrupt layer blob (digest mismatch) is an error", () => {
    const layout = newLayout();
    const made = makeImage(layout, "t", [makeTar(entries)]);
    const p = join(layout, "blobs", ...made.layers[0]!.digest.split(":"));
    const bytes = readFileSync(p);
    bytes[bytes.length - 10] ^= 0xff;
    writeFileSync(p, bytes);
    const b = join(scratch(), "bundle");
    const r = unpack(`${layout}:t`, b);
    expect(r.code).not.toBe(0);
    expect(existsSync(join(b, "rootfs"))).toBe(false);
  });
});

describe.skipIf(!isRoot)("unpack: existing bundles", () => {
  const { img } = isRoot ? image([[file("f", "x")]]) : { img: "" };
  test("refuses an existing rootfs/ with exit 5 and leaves it alone", () => {
    const b = join(scratch(), "bundle");
    mkdirSync(join(b, "rootfs"), { recursive: true });
    writeFileSync(join(b, "rootfs/marker"), "mine");
    const r = unpack(img, b);
    expect(r.code).toBe(5);
    expect(readdirSync(join(b, "rootfs"))).toEqual(["marker"]);
    expect(readFileSync(join(b, "rootfs/marker"), "utf8")).toBe("mine");
    expect(readdirSync(b)).toEqual(["rootfs"]);
  });
  test("refuses an existing config.json with exit 5 and leaves it alone", () => {
    const b = join(scratch(), "bundle");
    mkdirSync(b);
    writeFileSync(join(b, "config.json"), "{\"mine\":true}");
    const r = unpack(img, b);
    expect(r.code).toBe(5);
    expect(readFileSync(join(b, "config.json"), "utf8")).toBe("{\"mine\":true}");
    expect(readdirSync(b)).toEqual(["config.json"]);
  });
  test("unpacks into an existing empty directory (and makes it 0700)", () => {
    const b = join(scratch(), "bundle");
    mkdirSync(b, { mode: 0o755 });
    const r = unpack(img, b);
    expect(r.code).toBe(0);
    expect(readFileSync(join(b, "rootfs/f"), "utf8")).toBe("x");
    expect(mode(b)).toBe(0o700);
  });
});

describe.skipIf(!isRoot)("unpack: config.json", () => {
  test("user resolved from the image's /etc/passwd and /etc/group; env, args, cwd", () => {
    const passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:App:/home/app:/bin/sh\n";
    const group = "root:x:0:\nappgrp:x:2345:\nextra:x:3456:app,other\nnone:x:5000:other\nmore:x:4567:other,app\n";
    const { img } = image([[dir("etc/"), file("etc/passwd", passwd), file("etc/group", group), dir("srv/")]], {
      config: { config: { User: "app", Env: ["PATH=/usr/bin:/bin", "FOO=bar"], Entrypoint: ["/bin/app"], Cmd: ["--flag", "x"], WorkingDir: "/srv" } },
    });
    const b = unpackOk(img);
    const cfg = JSON.parse(readFileSync(join(b, "config.json"), "utf8"));
    expect(cfg.process.user.uid).toBe(1234);
    expect(cfg.process.user.gid).toBe(2345);
    expect([...(cfg.process.user.additionalGids ?? [])].sort()).toEqual([3456, 4567]);
    expect(cfg.process.env).toContain("FOO=bar");
    expect(cfg.process.env).toContain("PATH=/usr/bin:/bin");
    expect(cfg.process.args).toEqual(["/bin/app", "--flag", "x"]);
    expect(cfg.process.cwd).toBe("/srv");
    expect(cfg.root.path).toBe("rootfs");
    expect(typeof cfg.ociVersion).toBe("string");
  });

  test("numeric User uid:gid passes through", () => {
    const { img } = image([[file("f", "x")]], { config: { config: { User: "42:43" } } });
    const cfg = JSON.parse(readFileSync(join(unpackOk(img), "config.json"), "utf8"));
    expect([cfg.process.user.uid, cfg.process.user.gid]).toEqual([42, 43]);
  });
});

describe.skipIf(!isRoot)("unpack: determinism and mtree", () => {
  const layers: TarEntrySpec[][] = [
    [dir("etc/", { mtime: 1 }), file("etc/a", "a"), hardlink("etc/b", "etc/a"), symlink("etc/c", "a"), { name: "dev", type: "5", mode: 0o755 }, { name: "dev/null", type: "3", devmajor: 1, devminor: 3, mode: 0o666 },
      file("x", "x", { pax: { "SCHILY.xattr.user.a": Buffer.from([1, 2, 3]) } })],
    [whiteout("etc/.wh.c"), file("etc/d", "d", { uid: 7, gid: 8, mode: 0o4711 })],
  ];
  test("unpacking the same image twice gives identical mtree files", () => {
    const { img } = image(layers);
    const a = readFileSync(mtreeFile(unpackOk(img)), "utf8");
    const b = readFileSync(mtreeFile(unpackOk(img)), "utf8");
    expect(stripMtreeHeader(a)).toBe(stripMtreeHeader(b));
    expect(a).toContain("xattr.user.a=AQID");
  });

  test("the mtree file equals a fresh walk of the rootfs (raw mtree-validate)", () => {
    const { img } = image(layers);
    const b = unpackOk(img);
    const r = boci(["raw", "mtree-validate", "-f", mtreeFile(b), "-p", join(b, "rootfs")]);
    expect(r.stdout + r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  test("mtree-validate detects a change", () => {
    const { img } = image(layers);
    const b = unpackOk(img);
    writeFileSync(join(b, "rootfs/x"), "changed");
    const r = boci(["raw", "mtree-validate", "-f", mtreeFile(b), "-p", join(b, "rootfs")]);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toContain("x");
  });
});

describe.skipIf(!isRoot)("raw unpack, raw runtime-config", () => {
  test("raw unpack into an existing dir writes only the rootfs", () => {
    const { img } = image([[dir("etc/"), file("etc/a", "a")], [file("b", "b")]]);
    const d = join(scratch(), "rootfs");
    mkdirSync(d);
    const r = boci(["raw", "unpack", "--no-progress", "--image", img, d]);
    expect(r.code).toBe(0);
    expect(readdirSync(d).sort()).toEqual(["b", "etc"]);
    expect(readFileSync(join(d, "etc/a"), "utf8")).toBe("a");
    expect(existsSync(join(d, "..", "config.json"))).toBe(false);
  });

  test("raw runtime-config writes a config", () => {
    const { img } = image([[file("f", "x")]], { config: { config: { Cmd: ["/bin/true"], Env: ["A=1"] } } });
    const out = join(scratch(), "out.json");
    const r = boci(["raw", "runtime-config", "--image", img, out]);
    expect(r.code).toBe(0);
    const cfg = JSON.parse(readFileSync(out, "utf8"));
    expect(cfg.process.args).toEqual(["/bin/true"]);
    expect(cfg.process.env).toContain("A=1");
    expect(cfg.root.path).toBe("rootfs");
  });
});

describe.skipIf(!isRoot)("unpack: multi-platform index", () => {
  function multi() {
    const layout = newLayout();
    const host = hostArch();
    const other = host === "arm64" ? "amd64" : "arm64";
    const mk = (arch: string) => {
      const m = makeImage(layout, "unused", [makeTar([file(`only-${arch}`, arch)])], { architecture: arch, noTag: true });
      return { ...m.manifest, platform: { os: "linux", architecture: arch } };
    };
    makeIndex(layout, "multi", [mk("amd64"), mk("arm64")]);
    return { img: `${layout}:multi`, host, other };
  }
  test("picks the host's manifest by default and --platform picks another", () => {
    const { img, host, other } = multi();
    const R1 = join(unpackOk(img), "rootfs");
    expect(readdirSync(R1)).toEqual([`only-${host}`]);
    const R2 = join(unpackOk(img, ["--platform", `linux/${other}`]), "rootfs");
    expect(readdirSync(R2)).toEqual([`only-${other}`]);
  });
  test("--platform with no match lists the available platforms", () => {
    const { img } = multi();
    const b = join(scratch(), "bundle");
    const r = unpack(img, b, ["--platform", "linux/s390x"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("linux/amd64");
    expect(r.stderr).toContain("linux/arm64");
    expect(existsSync(join(b, "rootfs"))).toBe(false);
  });
});

