import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { InvalidError } from "../../src/errors";
import { ID_RANGE_CODE, parseGroup, parsePasswd, readFileInRoot, resolveInRoot, resolveUser } from "../../src/bundle/passwd";

const PASSWD = [
  "root:x:0:0:root:/root:/bin/sh",
  "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin",
  "alice:x:1000:1000:Alice:/home/alice:/bin/bash",
  "bob:x:1001:1002::/home/bob:/bin/sh",
  "nohome:x:1500:1500::",
  "1337:x:4242:4242:numeric name:/home/leet:/bin/sh",
  "alice:x:2000:2000:dup:/dup:/bin/sh",
  "",
].join("\n");

const GROUP = [
  "# a comment line",
  "root:x:0:",
  "daemon:x:1:",
  "wheel:x:10:alice,root",
  "alice:x:1000:",
  "staff:x:50:bob,alice",
  "bobs:x:1002:",
  "audio:x:29:bob",
  "",
].join("\n");

describe("parsePasswd / parseGroup", () => {
  test("fields, short lines, blank lines", () => {
    const p = parsePasswd("a:x:1:2:g:/h:/s\n\n  b:x:3  \nc\n");
    expect(p).toEqual([
      { name: "a", pass: "x", uid: 1, gid: 2, gecos: "g", home: "/h", shell: "/s" },
      { name: "b", pass: "x", uid: 3, gid: 0, gecos: "", home: "", shell: "" },
      { name: "c", pass: "", uid: 0, gid: 0, gecos: "", home: "", shell: "" },
    ]);
  });
  test("CRLF lines and non-numeric ids (ignored → 0)", () => {
    expect(parsePasswd("a:x:zz:+7:g:/h:/s\r\n")[0]).toMatchObject({ uid: 0, gid: 7, shell: "/s" });
  });
  test("group comments and member lists", () => {
    expect(parseGroup(GROUP).map((g) => [g.name, g.gid, g.members])).toEqual([
      ["root", 0, []],
      ["daemon", 1, []],
      ["wheel", 10, ["alice", "root"]],
      ["alice", 1000, []],
      ["staff", 50, ["bob", "alice"]],
      ["bobs", 1002, []],
      ["audio", 29, ["bob"]],
    ]);
  });
});

describe("resolveUser (moby/sys/user GetExecUser semantics)", () => {
  test("empty spec: uid 0 with root's gid/home and memberships", () => {
    expect(resolveUser("", PASSWD, GROUP)).toEqual({ uid: 0, gid: 0, additionalGids: [10], home: "/root" });
  });
  test("empty spec without files: 0:0", () => {
    expect(resolveUser("", null, null)).toEqual({ uid: 0, gid: 0, additionalGids: [], home: null });
  });
  test("name: uid, gid, home, supplementary groups (first match wins)", () => {
    expect(resolveUser("alice", PASSWD, GROUP)).toEqual({ uid: 1000, gid: 1000, additionalGids: [10, 50], home: "/home/alice" });
    expect(resolveUser("bob", PASSWD, GROUP)).toEqual({ uid: 1001, gid: 1002, additionalGids: [50, 29], home: "/home/bob" });
  });
  test("uid in passwd: entry data, supplementary groups too", () => {
    expect(resolveUser("1000", PASSWD, GROUP)).toEqual({ uid: 1000, gid: 1000, additionalGids: [10, 50], home: "/home/alice" });
  });
  test("numeric spec is always a uid, never a name", () => {
    // "1337" names a user whose uid is 4242, but a numeric spec only matches by uid.
    expect(resolveUser("1337", PASSWD, GROUP)).toEqual({ uid: 1337, gid: 0, additionalGids: [], home: null });
  });
  test("numeric uid not in passwd → gid 0, no home", () => {
    expect(resolveUser("5555", PASSWD, GROUP)).toEqual({ uid: 5555, gid: 0, additionalGids: [], home: null });
    expect(resolveUser("5555", null, null)).toEqual({ uid: 5555, gid: 0, additionalGids: [], home: null });
  });
  test("name:group sets gid and no supplementary groups", () => {
    expect(resolveUser("alice:staff", PASSWD, GROUP)).toEqual({ uid: 1000, gid: 50, additionalGids: [], home: "/home/alice" });
  });
  test("uid:gid", () => {
    expect(resolveUser("1000:29", PASSWD, GROUP)).toEqual({ uid: 1000, gid: 29, additionalGids: [], home: "/home/alice" });
    expect(resolveUser("7:8", PASSWD, GROUP)).toEqual({ uid: 7, gid: 8, additionalGids: [], home: null });
    expect(resolveUser("7:8", null, null)).toEqual({ uid: 7, gid: 8, additionalGids: [], home: null });
  });
  test("uid:groupname", () => {
    expect(resolveUser("5555:audio", PASSWD, GROUP)).toEqual({ uid: 5555, gid: 29, additionalGids: [], home: null });
  });
  test("name:gid (gid not in group file is fine)", () => {
    expect(resolveUser("bob:4321", PASSWD, GROUP)).toEqual({ uid: 1001, gid: 4321, additionalGids: [], home: "/home/bob" });
  });
  test("empty home field → null", () => {
    expect(resolveUser("nohome", PASSWD, GROUP).home).toBeNull();
  });
  test("unknown user name → InvalidError", () => {
    expect(() => resolveUser("mallory", PASSWD, GROUP)).toThrow(InvalidError);
    expect(() => resolveUser("mallory", PASSWD, GROUP)).toThrow("unable to find user mallory: no matching entries in passwd file");
    expect(() => resolveUser("alice", null, null)).toThrow("unable to find user alice");
  });
  test("unknown group name → InvalidError", () => {
    expect(() => resolveUser("alice:nogroup", PASSWD, GROUP)).toThrow(InvalidError);
    expect(() => resolveUser("alice:nogroup", PASSWD, GROUP)).toThrow("unable to find group nogroup: no matching entries in group file");
    expect(() => resolveUser("0:staff", PASSWD, null)).toThrow("unable to find group staff");
  });
  test("out-of-range numeric ids → InvalidError", () => {
    expect(() => resolveUser("2147483648", PASSWD, GROUP)).toThrow("uids and gids must be in range 0-2147483647");
    expect(() => resolveUser("-1", PASSWD, GROUP)).toThrow(InvalidError);
    expect(() => resolveUser("0:99999999999999999999", PASSWD, GROUP)).toThrow(InvalidError);
    expect(resolveUser("2147483647", null, null).uid).toBe(2147483647);
  });
  test("an entry id past 2^32-2 or negative is refused, never wrapped to root", () => {
    const pw = "big:x:4294967296:0::/:/bin/sh\nnochown:x:4294967295:0::/:/bin/sh\nneg:x:-1:0::/:/bin/sh\nbiggid:x:7:4294967296::/:/bin/sh\nok:x:4294967294:4294967294::/:/bin/sh\n";
    const gr = "huge:x:99999999999:\nclub:x:4294967295:ok\n";
    expect(() => resolveUser("big", pw, null)).toThrow(InvalidError);
    expect(() => resolveUser("big", pw, null)).toThrow("uid 4294967296 for big in the passwd file is out of range (0-4294967294)");
    expect(() => resolveUser("nochown", pw, null)).toThrow("uid 4294967295");
    expect(() => resolveUser("neg", pw, null)).toThrow("uid -1");
    expect(() => resolveUser("biggid", pw, null)).toThrow("gid 4294967296 for biggid in the passwd file");
    expect(() => resolveUser("0:huge", pw, gr)).toThrow("gid 99999999999 for huge in the group file");
    expect(() => resolveUser("ok", pw, gr)).toThrow("gid 4294967295 for ok in the group file");
    expect(resolveUser("ok", pw, null)).toEqual({ uid: 4294967294, gid: 4294967294, additionalGids: [], home: "/" });
    for (const [spec, p, g] of [["big", pw, null], ["0:huge", pw, gr], ["4294967296", null, null]] as const) {
      expect((() => { try { resolveUser(spec, p, g); } catch (e) { return (e as InvalidError).code; } })()).toBe(ID_RANGE_CODE);
    }
  });
  test("only the first colon splits user and group", () => {
    expect(() => resolveUser("alice:staff:extra", PASSWD, GROUP)).toThrow("unable to find group staff:extra");
  });
});

describe("readFileInRoot", () => {
  let tmp: string;
  let root: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "boci-passwd-"));
    root = path.join(tmp, "rootfs");
    fs.mkdirSync(root);
    // Sentinel files outside the rootfs that must never be read.
    fs.mkdirSync(path.join(tmp, "etc"));
    fs.writeFileSync(path.join(tmp, "etc", "passwd"), "HOST SENTINEL\n");
    fs.writeFileSync(path.join(tmp, "secret"), "HOST SECRET\n");
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const fresh = (name: string) => {
    const r = path.join(tmp, name);
    fs.mkdirSync(r);
    return r;
  };

  test("reads a plain file; null when missing", () => {
    const r = fresh("plain");
    fs.mkdirSync(path.join(r, "etc"));
    fs.writeFileSync(path.join(r, "etc", "passwd"), "root:x:0:0::/root:/bin/sh\n");
    expect(readFileInRoot(r, "etc/passwd")).toBe("root:x:0:0::/root:/bin/sh\n");
    expect(readFileInRoot(r, "/etc/passwd")).toBe("root:x:0:0::/root:/bin/sh\n");
    expect(readFileInRoot(r, "etc/group")).toBeNull();
    expect(readFileInRoot(path.join(tmp, "nonexistent"), "etc/passwd")).toBeNull();
  });

  test("absolute symlink etc -> / resolves against the rootfs, not the host", () => {
    const r = fresh("abs");
    fs.symlinkSync("/", path.join(r, "etc"));
    // rootfs/etc -> / means rootfs/etc/passwd is rootfs/passwd, which does not exist.
    expect(readFileInRoot(r, "etc/passwd")).toBeNull();
    fs.writeFileSync(path.join(r, "passwd"), "in-root\n");
    expect(readFileInRoot(r, "etc/passwd")).toBe("in-root\n");
  });

  test("etc -> the host's parent of the rootfs (absolute path) stays in root", () => {
    const r = fresh("abs2");
    fs.symlinkSync(tmp, path.join(r, "etc"));
    expect(readFileInRoot(r, "etc/etc/passwd")).toBeNull();
    expect(readFileInRoot(r, "etc/passwd")).toBeNull();
  });

  test("relative ../../ symlinks cannot climb out", () => {
    const r = fresh("rel");
    fs.symlinkSync("../../../../../../etc", path.join(r, "etc"));
    expect(readFileInRoot(r, "etc/passwd")).toBeNull();
    fs.mkdirSync(path.join(r, "x"));
    fs.symlinkSync("../../secret", path.join(r, "x", "s"));
    expect(readFileInRoot(r, "x/s")).toBeNull();
    expect(readFileInRoot(r, "../secret")).toBeNull();
    expect(readFileInRoot(r, "../../etc/passwd")).toBeNull();
    // An in-root relative target works.
    fs.mkdirSync(path.join(r, "real"));
    fs.writeFileSync(path.join(r, "real", "passwd"), "ok\n");
    fs.symlinkSync("../real/passwd", path.join(r, "x", "p"));
    expect(readFileInRoot(r, "x/p")).toBe("ok\n");
  });

  test("final-component symlink to an absolute host path stays in root", () => {
    const r = fresh("final");
    fs.mkdirSync(path.join(r, "etc"));
    fs.symlinkSync(path.join(tmp, "secret"), path.join(r, "etc", "passwd"));
    expect(readFileInRoot(r, "etc/passwd")).toBeNull();
  });

  test("symlink loops → null", () => {
    const r = fresh("loop");
    fs.symlinkSync("b", path.join(r, "a"));
    fs.symlinkSync("a", path.join(r, "b"));
    expect(readFileInRoot(r, "a")).toBeNull();
    fs.symlinkSync("self/x", path.join(r, "self"));
    expect(readFileInRoot(r, "self")).toBeNull();
  });

  test("non-regular files and non-directory parents → null", () => {
    const r = fresh("nonreg");
    fs.mkdirSync(path.join(r, "etc", "passwd"), { recursive: true });
    expect(readFileInRoot(r, "etc/passwd")).toBeNull();
    fs.writeFileSync(path.join(r, "file"), "x");
    expect(readFileInRoot(r, "file/passwd")).toBeNull();
    expect(resolveInRoot(r, "file/..")).toBeNull();
  });

  test("oversized file → InvalidError", () => {
    const r = fresh("big");
    fs.writeFileSync(path.join(r, "f"), "0123456789");
    expect(() => readFileInRoot(r, "f", 5)).toThrow(InvalidError);
  });
});
