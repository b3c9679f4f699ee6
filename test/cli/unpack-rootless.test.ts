/**
 * `unpack --rootless` run as an unprivileged user (uid 65534 via setpriv). Needs root to drop
 * privileges; skipped otherwise.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, existsSync, readdirSync, lstatSync, chmodSync, mkdirSync, chownSync } from "node:fs";
import { join } from "node:path";
import { BIN, ok, scratch, sh, isRoot, have } from "../helpers/cli";
import { makeTar, makeImage, dir, file, symlink, hardlink, type TarEntrySpec } from "../helpers/image";

const NOBODY = 65534;
const canRun = isRoot && have("setpriv") && have("getfattr");
if (!canRun) console.log("unpack-rootless: skipped (needs root, setpriv and getfattr to run as uid 65534)");

/** Run the binary as nobody (uid/gid 65534, no supplementary groups). */
function asNobody(args: string[], cwd?: string) {
  const p = Bun.spawnSync(["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", BIN, ...args], {
    cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, HOME: "/tmp" },
  });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

/** A scratch directory the unprivileged user can write into. */
function userScratch(): string {
  const s = scratch("boci-rootless-");
  chmodSync(s, 0o755);
  chownSync(s, NOBODY, NOBODY);
  return s;
}

function xattrHex(p: string, name: string): string | null {
  const r = sh(`getfattr -h --absolute-names -e hex -n ${name} ${JSON.stringify(p)}`);
  if (r.code !== 0) return null;
  const m = r.stdout.match(/=0x([0-9a-f]*)$/m);
  return m ? m[1]! : null;
}

const layers: TarEntrySpec[][] = [
  [
    dir("home/", { mode: 0o755 }),
    dir("home/user/", { mode: 0o700, uid: 1000, gid: 1000 }),
    file("home/user/owned", "mine\n", { uid: 1000, gid: 1000, mode: 0o640 }),
    file("rootfile", "root\n", { uid: 0, gid: 0, mode: 0o644 }),
    file("suid", "#!/bin/sh\n", { uid: 0, gid: 0, mode: 0o4755 }),
    file("suid1000", "#!/bin/sh\n", { uid: 1000, gid: 0, mode: 0o4755 }),
    dir("dev/"),
    { name: "dev/null", type: "3", devmajor: 1, devminor: 3, mode: 0o666 },
    { name: "dev/fifo", type: "6", mode: 0o600 },
    dir("locked/", { mode: 0o000 }),
    file("locked/inside", "hidden\n", { mode: 0o600 }),
    dir("locked/sub/", { mode: 0o000 }),
    file("locked/sub/deeper", "deeper\n"),
    file("ro", "read only\n", { mode: 0o444 }),
    symlink("link", "rootfile"),
    hardlink("hard", "rootfile"),
  ],
  [file("ro", "rewritten read-only\n", { mode: 0o444 }), file("locked/later", "later\n", { mode: 0o400 }), file("home/user/owned", "changed\n", { uid: 1000, gid: 1000, mode: 0o640 })],
];

describe.skipIf(!canRun)("unpack --rootless as uid 65534", () => {
  test("unpacks with emulated ownership, no devices, a rootless config and a removable tree", () => {
    const layout = join(scratch("boci-rootless-layout-"), "layout");
    ok(["init", "--layout", layout]);
    makeImage(layout, "t", layers.map((l) => makeTar(l)));
    sh(`chmod -R a+rX ${JSON.stringify(join(layout, ".."))}`);
    const s = userScratch();
    const b = join(s, "bundle");
    const r = asNobody(["unpack", "--rootless", "--no-progress", "--image", `${layout}:t`, b]);
    if (r.code !== 0) throw new Error(`rootless unpack exited ${r.code}: ${r.stderr}`);
    expect(r.stderr.toLowerCase()).toContain("dev/null");
    const R = join(b, "rootfs");

    // every path is owned by the caller
    const walk = (p: string, f: (p: string) => void) => {
      f(p);
      if (lstatSync(p).isDirectory()) for (const n of readdirSync(p)) walk(join(p, n), f);
    };
    walk(b, (p) => {
      const st = lstatSync(p);
      expect(`${p} ${st.uid}:${st.gid}`).toBe(`${p} ${NOBODY}:${NOBODY}`);
    });

    expect(readFileSync(join(R, "home/user/owned"), "utf8")).toBe("changed\n");
    expect(xattrHex(join(R, "home/user/owned"), "user.rootlesscontainers")).toBe("08e80710e807");
    expect(xattrHex(join(R, "home/user"), "user.rootlesscontainers")).toBe("08e80710e807");
    expect(xattrHex(join(R, "suid1000"), "user.rootlesscontainers")).toBe("08e80710ffffffff0f"); // gid 0 is NoopID
    expect(xattrHex(join(R, "rootfile"), "user.rootlesscontainers")).toBeNull();
    expect(xattrHex(join(R, "suid"), "user.rootlesscontainers")).toBeNull();

    expect(lstatSync(join(R, "suid")).mode & 0o7777).toBe(0o4755);
    expect(lstatSync(join(R, "suid1000")).mode & 0o7777).toBe(0o4755);

    const dev = lstatSync(join(R, "dev/null"));
    expect(dev.isFile()).toBe(true);
    expect(dev.size).toBe(0);
    expect(dev.mode & 0o7777).toBe(0o666); // the header's mode, as umoci 0.6 leaves it
    expect(lstatSync(join(R, "dev/fifo")).isFIFO()).toBe(true);

    expect(lstatSync(join(R, "locked")).mode & 0o7777).toBe(0);
    expect(lstatSync(join(R, "locked/sub")).mode & 0o7777).toBe(0);
    expect(readFileSync(join(R, "locked/inside"), "utf8")).toBe("hidden\n");
    expect(readFileSync(join(R, "locked/later"), "utf8")).toBe("later\n");
    expect(readFileSync(join(R, "locked/sub/deeper"), "utf8")).toBe("deeper\n");
    expect(lstatSync(join(R, "ro")).mode & 0o7777).toBe(0o444);
    expect(readFileSync(join(R, "ro"), "utf8")).toBe("rewritten read-only\n");
    expect(lstatSync(join(R, "hard")).ino).toBe(lstatSync(join(R, "rootfile")).ino);
    expect(lstatSync(b).mode & 0o7777).toBe(0o700);

    const cfg = JSON.parse(readFileSync(join(b, "config.json"), "utf8"));
    const ns = (cfg.linux.namespaces as { type: string }[]).map((n) => n.type);
    expect(ns).toContain("user");
    expect(ns).toContain("mount");
    expect(ns).not.toContain("network");
    expect(cfg.linux.uidMappings).toEqual([{ containerID: 0, hostID: NOBODY, size: 1 }]);
    expect(cfg.linux.gidMappings).toEqual([{ containerID: 0, hostID: NOBODY, size: 1 }]);

    const meta = JSON.parse(readFileSync(join(b, "umoci.json"), "utf8"));
    expect(meta.map_options.rootless).toBe(true);
    expect(meta.map_options.uid_mappings).toEqual([{ containerID: 0, hostID: NOBODY, size: 1 }]);

    // the mtree matches a fresh (unprivileged) walk
    const mt = readdirSync(b).find((n) => n.endsWith(".mtree"))!;
    const mtText = readFileSync(join(b, mt), "utf8");
    expect(mtText).toContain("xattr.user.rootlesscontainers=");
    const v = asNobody(["raw", "mtree-validate", "--rootless", "-f", join(b, mt), "-p", R]);
    expect(v.stdout + v.stderr).toBe("");
    expect(v.code).toBe(0);
    // ...and the unprivileged walk restored the locked directory's mode
    expect(lstatSync(join(R, "locked")).mode & 0o7777).toBe(0);

    // root can remove the bundle
    const rm = sh(`rm -rf ${JSON.stringify(b)}`);
    expect(rm.code).toBe(0);
    expect(existsSync(b)).toBe(false);
  });

  test("a failed rootless unpack removes its rootfs even with locked directories", () => {
    const layout = join(scratch("boci-rootless-layout-"), "layout");
    ok(["init", "--layout", layout]);
    // the second layer blob is not a tar: the unpack fails after the locked directory exists
    makeImage(layout, "t", [makeTar([dir("locked/", { mode: 0o000 }), file("locked/f", "x")]), makeTar([file("g", "y")])], { rawBlobs: [undefined, Buffer.from("not a layer at all")] });
    sh(`chmod -R a+rX ${JSON.stringify(join(layout, ".."))}`);
    const s = userScratch();
    const b = join(s, "bundle");
    const r = asNobody(["unpack", "--rootless", "--no-progress", "--image", `${layout}:t`, b]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n").length).toBe(1);
    expect(existsSync(join(b, "rootfs"))).toBe(false);
  });

  test("rootless unpack into a directory the user cannot write is a one-line error", () => {
    const layout = join(scratch("boci-rootless-layout-"), "layout");
    ok(["init", "--layout", layout]);
    makeImage(layout, "t", [makeTar([file("f", "x")])]);
    sh(`chmod -R a+rX ${JSON.stringify(join(layout, ".."))}`);
    const s = scratch("boci-rootless-ro-");
    chmodSync(s, 0o755);
    mkdirSync(join(s, "sub"), { mode: 0o755 });
    const r = asNobody(["unpack", "--rootless", "--no-progress", "--image", `${layout}:t`, join(s, "sub", "bundle")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n").length).toBe(1);
    expect(r.stderr).toMatch(/permission denied/);
  });
});
