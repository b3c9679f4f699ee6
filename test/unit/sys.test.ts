import { describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import * as os from "node:os";
import { S_IFCHR, S_IFIFO, flock, getegid, geteuid, lgetxattr, llistxattr, lremovexattr, lsetxattr, makedev, mknod } from "../../src/sys";

const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

/** A temp dir on a filesystem that takes user xattrs (/tmp, else /dev/shm), or null. */
function xattrDir(): string | null {
  for (const base of ["/tmp", "/dev/shm"]) {
    if (!fs.existsSync(base)) continue;
    const d = fs.mkdtempSync(path.join(base, "boci-sys-"));
    try {
      lsetxattr(d, "user.probe", Buffer.from("1"));
      lremovexattr(d, "user.probe");
      return d;
    } catch (e) {
      console.log(`no user xattrs on ${base}: ${(e as Error).message}`);
      fs.rmSync(d, { recursive: true });
    }
  }
  return null;
}

describe("xattrs", () => {
  test("set, get, list, remove a binary value", () => {
    const d = xattrDir();
    if (!d) return console.log("skipping: no filesystem with user xattrs");
    try {
      const f = path.join(d, "f");
      fs.writeFileSync(f, "x");
      lsetxattr(f, "user.bin", allBytes);
      lsetxattr(f, "user.empty", new Uint8Array(0));
      expect(lgetxattr(f, "user.bin")!.equals(allBytes)).toBe(true);
      expect(lgetxattr(f, "user.empty")!.length).toBe(0);
      expect(lgetxattr(f, "user.missing")).toBeNull();
      expect(llistxattr(f).sort()).toEqual(["user.bin", "user.empty"]);
      lremovexattr(f, "user.bin");
      lremovexattr(f, "user.empty");
      expect(llistxattr(f)).toEqual([]);
      const err = (() => {
        try {
          lremovexattr(f, "user.bin");
        } catch (e) {
          return e as NodeJS.ErrnoException;
        }
      })();
      expect(err?.code).toBe("ENODATA");
      expect(err?.message).toBe(`lremovexattr ${f} user.bin: no data available`);

      // on the link itself, not its target
      const l = path.join(d, "link");
      fs.symlinkSync("f", l);
      expect(llistxattr(l)).toEqual([]);
      expect(() => lgetxattr(path.join(d, "nope"), "user.x")).toThrow(expect.objectContaining({ code: "ENOENT", errno: 2 }));
    } finally {
      fs.rmSync(d, { recursive: true });
    }
  });
});

describe("mknod", () => {
  test("makedev matches glibc", () => {
    expect(makedev(1, 3)).toBe(0x103n);
    expect(makedev(300, 70000)).toBe(286338160n);
  });

  test("fifo and (as root) a char device", () => {
    const d = fs.mkdtempSync("/tmp/boci-sys-");
    try {
      mknod(path.join(d, "fifo"), S_IFIFO | 0o644, 0, 0);
      expect(fs.lstatSync(path.join(d, "fifo")).isFIFO()).toBe(true);
      if (geteuid() !== 0) return console.log("skipping char device: needs root");
      mknod(path.join(d, "null"), S_IFCHR | 0o666, 1, 3);
      const st = fs.lstatSync(path.join(d, "null"));
      expect(st.isCharacterDevice()).toBe(true);
      expect(st.rdev).toBe(0x103);
      expect(() => mknod(path.join(d, "null"), S_IFCHR | 0o666, 1, 3)).toThrow(expect.objectContaining({ code: "EEXIST" }));
    } finally {
      fs.rmSync(d, { recursive: true });
    }
  });
});

describe("flock", () => {
  test("exclusive locks conflict across open file descriptions", () => {
    const d = fs.mkdtempSync("/tmp/boci-sys-");
    const f = path.join(d, "lock");
    fs.writeFileSync(f, "");
    const a = fs.openSync(f, "r");
    const b = fs.openSync(f, "r");
    try {
      expect(flock(a, "ex", { nonblock: true })).toBe(true);
      expect(flock(b, "ex", { nonblock: true })).toBe(false);
      expect(flock(b, "sh", { nonblock: true })).toBe(false);
      expect(flock(a, "un")).toBe(true);
      expect(flock(b, "sh", { nonblock: true })).toBe(true);
      expect(flock(a, "sh", { nonblock: true })).toBe(true);
      expect(() => flock(9999, "ex")).toThrow(expect.objectContaining({ code: "EBADF" }));
    } finally {
      fs.closeSync(a);
      fs.closeSync(b);
      fs.rmSync(d, { recursive: true });
    }
  });

  test("ids", () => {
    expect(geteuid()).toBe(process.geteuid!());
    expect(getegid()).toBe(process.getegid!());
  });
});

describe("openBeneath (openat2, and the openat walk it falls back to)", () => {
  // Run in a child so BOCI_NO_OPENAT2 picks the path (the choice is made once per process).
  const probe = (forceFallback: boolean) => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "boci-beneath-"));
    try {
      fs.mkdirSync(path.join(d, "root/a/b"), { recursive: true });
      fs.mkdirSync(path.join(d, "outside"));
      fs.symlinkSync(path.join(d, "outside"), path.join(d, "root/abs"));
      fs.symlinkSync("a", path.join(d, "root/rel"));
      fs.writeFileSync(path.join(d, "root/a/f"), "");
      const script = `
        const s = require(${JSON.stringify(path.join(import.meta.dir, "../../src/sys/index.ts"))});
        const fs = require("node:fs");
        const root = s.openDirHandle(${JSON.stringify(path.join(d, "root"))});
        const out = { uses: s.usesOpenat2() };
        for (const p of [".", "a", "a/b", "abs", "rel", "rel/b", "a/f", "missing", "a/../a"]) {
          try { const fd = s.openBeneath(root, p, s.O_RDONLY | s.O_DIRECTORY); out[p] = fs.fstatSync(fd).ino; fs.closeSync(fd); }
          catch (e) { out[p] = e.code; }
        }
        out.inoA = fs.lstatSync(${JSON.stringify(path.join(d, "root/a"))}).ino;
        console.log(JSON.stringify(out));`;
      const r = Bun.spawnSync([process.execPath, "-e", script], { env: { ...process.env, BOCI_NO_OPENAT2: forceFallback ? "1" : "" }, stdout: "pipe", stderr: "pipe" });
      if (r.exitCode !== 0) throw new Error(r.stderr.toString());
      return JSON.parse(r.stdout.toString());
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  };
  for (const fallback of [false, true]) {
    test(fallback ? "forced fallback: openat with O_NOFOLLOW, component by component" : "openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS", () => {
      const o = probe(fallback);
      expect(o.uses).toBe(!fallback);
      expect(o.a).toBe(o.inoA);
      expect(typeof o["."]).toBe("number");
      expect(typeof o["a/b"]).toBe("number");
      // no symlink is followed, wherever it points, first component or last
      expect(["ELOOP", "ENOTDIR"]).toContain(o.abs);
      expect(["ELOOP", "ENOTDIR"]).toContain(o.rel);
      expect(["ELOOP", "ENOTDIR"]).toContain(o["rel/b"]);
      expect(o["a/f"]).toBe("ENOTDIR");
      expect(o.missing).toBe("ENOENT");
      // `..` never climbs: the fallback refuses it outright, openat2 keeps it beneath the root
      if (fallback) expect(o["a/../a"]).toBe("EXDEV");
      else expect(o["a/../a"]).toBe(o.inoA);
    });
  }
});
