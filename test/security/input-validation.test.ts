/**
 * Hostile values that reach ownership, the terminal or the layout: IDs that do not fit in 32
 * bits (or are (uid_t)-1) never become root, NUL bytes and huge numbers in tar headers are an
 * invalid image, control characters from an image are escaped in human output, `raw add-layer`
 * stores only a valid tar, and a full disk says what was being written and what was undone.
 * Everything runs through the real binary.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import * as zlib from "node:zlib";
import { boci, isRoot, ok, scratch, sh, smallTmpfs } from "../helpers/cli";
import { BLOCK, dir, file, makeImage, makeTar, setTag, tarEntry, type TarEntrySpec } from "../helpers/image";
import { expectOneLine, readJson, snapLayout } from "./lib";

const ESC = "\x1b";
const RED = `${ESC}[31m`;
/** No raw ESC, CR, other C0 control (but \n and \t of the layout), DEL or C1 character. */
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]/;

function layout(): string {
  const L = join(scratch("boci-inval-"), "l");
  ok(["init", "--layout", L]);
  return L;
}

/** One image whose single layer is `entries`, tagged `t`; returns the --image reference. */
function image(L: string, entries: TarEntrySpec[] | Buffer, config: Record<string, unknown> = {}): string {
  makeImage(L, "t", [Buffer.isBuffer(entries) ? entries : makeTar(entries)], { config });
  return `${L}:t`;
}

/** Unpack as root keeps owners; otherwise --rootless (the checks under test come first either way). */
const unpackArgs = (img: string, bundle: string, extra: string[] = []) => ["unpack", ...(isRoot ? [] : ["--rootless"]), ...extra, "--image", img, bundle];

/** A tar entry whose header uid field is base-256 (the GNU form for numbers octal cannot hold). */
function base256UidEntry(name: string, uid: bigint): Buffer {
  const e = Buffer.from(tarEntry(file(name, "x")));
  let v = uid;
  for (let i = 115; i >= 108; i--) { e[i] = Number(v & 0xffn); v >>= 8n; }
  e[108]! |= 0x80;
  e.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += e[i]!;
  e.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "latin1");
  return e;
}

describe("ownership never falls back to root", () => {
  const etc = (passwd: string, group = "root:x:0:\n") => [dir("etc"), file("etc/passwd", passwd), file("etc/group", group)];

  test.each([
    ["big:x:4294967296:0::/:/bin/sh\n", "big", /uid 4294967296 for big in the passwd file is out of range \(0-4294967294\)/],
    ["nochown:x:4294967295:0::/:/bin/sh\n", "nochown", /uid 4294967295 for nochown in the passwd file is out of range/],
    ["neg:x:-1:0::/:/bin/sh\n", "neg", /uid -1 for neg/],
    ["wide:x:5:4294967296::/:/bin/sh\n", "wide", /gid 4294967296 for wide in the passwd file/],
  ])("passwd line %p for User %p: unpack exits 4 with one line, nothing left", (passwd, user, re) => {
    const L = layout();
    const bundle = join(scratch(), "b");
    const r = boci(unpackArgs(image(L, etc(passwd), { config: { User: user } }), bundle));
    expectOneLine(r, 4, re);
    expect(existsSync(join(bundle, "rootfs"))).toBe(false);
    expect(existsSync(join(bundle, "config.json"))).toBe(false);
  });

  test("a group id past 2^32-2 (explicit group and supplementary group) exits 4", () => {
    const L = layout();
    const group = "huge:x:4294967296:\nclub:x:4294967295:alice\n";
    const passwd = "alice:x:1000:1000::/home/alice:/bin/sh\n";
    const r1 = boci(unpackArgs(image(L, etc(passwd, group), { config: { User: "1000:huge" } }), join(scratch(), "b")));
    expectOneLine(r1, 4, /gid 4294967296 for huge in the group file/);
    const r2 = boci(unpackArgs(image(L, etc(passwd, group), { config: { User: "alice" } }), join(scratch(), "b")));
    expectOneLine(r2, 4, /gid 4294967295 for alice in the group file/);
  });

  test.each([
    ["--uid-map", "0:4294967290:100", /host range 4294967290-4294967389 goes past 4294967294/],
    ["--uid-map", "0:4294967295", /host range/],
    ["--gid-map", "4294967295:0:1", /container range/],
    ["--gid-map", "1:0:4294967295", /container range 1-4294967295/],
  ])("%p %p is a usage error (exit 2), nothing created", (flag, spec, re) => {
    const L = layout();
    const bundle = join(scratch(), "b");
    const r = boci(["unpack", flag, spec, "--image", image(L, [file("f", "x")]), bundle]);
    expectOneLine(r, 2, re);
    expect(r.stderr).toContain(`invalid ${flag} "${spec}"`);
    expect(existsSync(bundle)).toBe(false);
  });

  test.each([
    ["a PAX uid record of 2^40", tarEntry(file("paxuid", "x", { pax: { uid: String(2 ** 40) } })), /invalid tar entry "paxuid": uid 1099511627776 out of range \(0-4294967294\)/],
    ["a PAX gid record of (gid_t)-1", tarEntry(file("paxgid", "x", { pax: { gid: "4294967295" } })), /invalid tar entry "paxgid": gid 4294967295 out of range/],
    ["a base-256 uid field of 2^40", base256UidEntry("b256", 2n ** 40n), /invalid tar entry "b256": uid 1099511627776 out of range/],
    ["a negative base-256 uid", base256UidEntry("neg", 2n ** 64n - 1n), /invalid tar entry "neg": uid -1 out of range/],
  ])("%s: unpack and validate exit 4 naming the entry", (_what, entry, re) => {
    const L = layout();
    const img = image(L, Buffer.concat([entry, Buffer.alloc(2 * BLOCK)]));
    const bundle = join(scratch(), "b");
    expectOneLine(boci(unpackArgs(img, bundle)), 4, re);
    expect(existsSync(join(bundle, "rootfs"))).toBe(false);
    const v = boci(["validate", "--image", img]);
    expect(v.code).toBe(4);
    expect(v.stdout).toMatch(re);
  });
});

describe("NUL bytes in PAX names", () => {
  test.each([
    ["path", file("f", "x", { pax: { path: "a\0b" } }), /invalid tar entry "a\\x00b": pax path record contains a NUL byte/],
    ["linkpath", { name: "s", type: "2", linkname: "t", pax: { linkpath: "t\0/etc/shadow" } } as TarEntrySpec, /invalid tar entry "s": pax linkpath record contains a NUL byte/],
    ["uname", file("u", "x", { pax: { uname: "root\0x" } }), /invalid tar entry "u": pax uname record contains a NUL byte/],
  ])("a NUL in a PAX %s record: unpack exits 4 with one line, validate lists it", (_key, entry, re) => {
    const L = layout();
    const img = image(L, [entry]);
    const bundle = join(scratch(), "b");
    const r = boci(unpackArgs(img, bundle));
    expectOneLine(r, 4, re);
    expect(r.stderr).not.toContain("\0");
    expect(r.stderr.toLowerCase()).not.toContain("null bytes");
    const v = boci(["validate", "--image", img, "--json"]);
    expect(v.code).toBe(4);
    const report = JSON.parse(v.stdout);
    expect(report.valid).toBe(false);
    expect(report.problems.map((p: { message: string }) => p.message).join("\n")).toMatch(re);
  });
});

describe("control characters from an image are escaped in human output", () => {
  test("ls quotes a tag with ESC and CR, escaped as Go does", () => {
    const L = layout();
    const img = makeImage(L, "plain", [makeTar([file("f", "x")])]);
    const evil = `${RED}red\rtag`;
    setTag(L, evil, img.manifest);
    const r = ok(["ls", "--layout", L]);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    expect(r.stdout.split("\n")).toEqual(["plain", '"\\x1b[31mred\\rtag"', ""]);
  });

  test("stat: history, author, config values and C1 characters are escaped; --json stays exact", () => {
    const L = layout();
    ok(["new", "--image", `${L}:t`]);
    const comment = `${RED}comment\r\u009b2J`;
    const createdBy = `sh -c ${ESC}]0;title\x07`;
    const author = `${RED}author\r`;
    ok(["config", "--image", `${L}:t`, "--author", author, "--config.env", `E=${RED}\r`, "--config.label", `k${ESC}=v\u0085`,
      "--history.comment", comment, "--history.created_by", createdBy]);
    const human = ok(["stat", "--image", `${L}:t`]).stdout;
    expect(human).not.toMatch(RAW_CONTROL);
    expect(human).toContain('"\\x1b[31mcomment\\r\\u009b2J"');
    expect(human).toContain('"sh -c \\x1b]0;title\\a"');
    expect(human).toContain('Author: "\\x1b[31mauthor\\r"');
    expect(human).toContain('"E=\\x1b[31m\\r"');
    expect(human).toContain('"k\\x1b": "v\\u0085"');
    const json = JSON.parse(ok(["stat", "--image", `${L}:t`, "--json"]).stdout);
    const h = json.history[json.history.length - 1];
    expect(h.comment).toBe(comment);
    expect(h.created_by).toBe(createdBy);
    expect(json.config.blob.author).toBe(author);
  });

  test("the error line escapes an entry name from the image", () => {
    const L = layout();
    const name = `${RED}evil\r`;
    // A body cut short: the reader's error names the entry as the archive spells it.
    const tar = tarEntry(file(name, "y".repeat(2000))).subarray(0, BLOCK + 700);
    const r = boci(unpackArgs(image(L, Buffer.from(tar)), join(scratch(), "b")));
    expectOneLine(r, 4, /truncated tar entry \\x1b\[31mevil\\r/);
    expect(r.stderr).not.toMatch(RAW_CONTROL);
  });

  test("warnings escape an entry name from the image", () => {
    const L = layout();
    const name = `${RED}dev\r\u009b`;
    const img = image(L, [{ name, type: "3", mode: 0o600, devmajor: 1, devminor: 3 }]);
    const r = ok(["unpack", "--rootless", "--image", img, join(scratch(), "b")]);
    expect(r.stderr).toContain("\\x1b[31mdev\\r\\u009b");
    expect(r.stderr).not.toMatch(RAW_CONTROL);
  });
});

describe("raw add-layer stores only a valid tar", () => {
  test.each([
    ["a text file", () => Buffer.from("this is not a tar archive\n".repeat(50)), /is not a valid tar layer: invalid tar header/],
    ["a short text file", () => Buffer.from("hello\n"), /is not a valid tar layer: truncated tar archive/],
    ["a gzip file", () => zlib.gzipSync(makeTar([file("f", "x")])), /is not a valid tar layer \(it is gzip-compressed; an uncompressed tar is expected\)/],
    ["a truncated tar", () => makeTar([file("f", "z".repeat(5000))]).subarray(0, 3000), /is not a valid tar layer: truncated tar entry f/],
    ["a tar whose root entry is a file", () => makeTar([file("./", "x")]), /would replace the root directory with a file/],
  ])("%s: exit 4 with one line, the layout unchanged", (_what, make, re) => {
    const L = layout();
    ok(["new", "--image", `${L}:t`]);
    const input = join(scratch(), "layer");
    writeFileSync(input, make());
    const before = snapLayout(L);
    const r = boci(["raw", "add-layer", "--image", `${L}:t`, input]);
    expectOneLine(r, 4, re);
    expect(r.stderr).toContain(input);
    expect(snapLayout(L)).toEqual(before);
    expect(readdirSync(join(L, ".boci-tmp")).length === 0 || !existsSync(join(L, ".boci-tmp"))).toBe(true);
  });

  test("a valid tar is added, then validates and unpacks", () => {
    const L = layout();
    ok(["new", "--image", `${L}:t`]);
    const input = join(scratch(), "layer.tar");
    writeFileSync(input, makeTar([dir("etc"), file("etc/hello", "hi\n")]));
    ok(["raw", "add-layer", "--image", `${L}:t`, input]);
    ok(["validate", "--image", `${L}:t`]);
    const bundle = join(scratch(), "b");
    ok(unpackArgs(`${L}:t`, bundle));
    expect(readFileSync(join(bundle, "rootfs/etc/hello"), "utf8")).toBe("hi\n");
  });
});

describe("a full disk says what was being written and what was undone", () => {
  const { mnt, mounted } = smallTmpfs("boci-enospc-", "the full-disk tests");
  // 3 MiB of random bytes: no compression makes it fit in 2 MiB.
  const bigTar = makeTar([file("big", randomBytes(3 << 20))]);

  test.skipIf(!mounted)("raw add-layer onto a full layout: one line, the partial blob removed, index.json unchanged", () => {
    const L = join(mnt, "l");
    ok(["init", "--layout", L]);
    ok(["new", "--image", `${L}:t`]);
    const input = join(scratch(), "big.tar");
    writeFileSync(input, bigTar);
    const before = snapLayout(L);
    const r = boci(["raw", "add-layer", "--image", `${L}:t`, input]);
    expectOneLine(r, 1, new RegExp(`raw add-layer: no space left on device writing a blob in ${L}; the partial blob was removed and index.json is unchanged`));
    expect(snapLayout(L)).toEqual(before);
    expect(readdirSync(join(L, ".boci-tmp"))).toEqual([]);
    sh(`rm -rf '${L}'`);
  });

  test.skipIf(!mounted)("unpack onto a full disk: one line naming the bundle, the rootfs removed", () => {
    const L = layout();
    const img = image(L, bigTar);
    const bundle = join(mnt, "bundle");
    const r = boci(unpackArgs(img, bundle));
    expectOneLine(r, 1, new RegExp(`unpack layer 1: apply "big": no space left on device writing ${bundle}; the rootfs was removed`));
    expect(existsSync(join(bundle, "rootfs"))).toBe(false);
    expect(readJson(join(L, "index.json")).manifests).toHaveLength(1);
    sh(`rm -rf '${bundle}'`);
  });
});
