/**
 * Interoperability of `unpack` with umoci 0.4.7 and runc 1.1: boci and umoci unpack the same
 * image to the same tree, umoci repacks a bundle boci unpacked, and runc runs a bundle boci
 * unpacked (as root and rootless). Skipped when the tools are missing (CI installs them).
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync, readdirSync, chmodSync, chownSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { BIN, ok, scratch, sh, have, isRoot } from "../helpers/cli";
import { makeTar, makeImage, dir, file, symlink, hardlink, whiteout } from "../helpers/image";

const haveUmoci = have("umoci");
const haveRunc = have("runc");
if (!haveUmoci) console.log("interop-unpack: umoci not installed; skipping the umoci tests");
if (!haveRunc) console.log("interop-unpack: runc not installed; skipping the runc tests");
if (!isRoot) console.log("interop-unpack: not root; skipping (umoci unpack and runc need root)");

const q = (s: string) => JSON.stringify(s);
function must(cmd: string, cwd?: string): string {
  const r = sh(cmd, { cwd });
  if (r.code !== 0) throw new Error(`${cmd} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}
function mtreeOf(bundle: string): string {
  const f = readdirSync(bundle).find((n) => n.endsWith(".mtree"));
  if (!f) throw new Error(`no mtree in ${bundle}`);
  return join(bundle, f);
}
/** Drop the header comments that vary between runs and tools (user, machine, tree, date). */
function stripHeader(t: string): string {
  return t.split("\n").filter((l) => !/^#\s*(user|machine|tree|date):/.test(l)).join("\n");
}

/** Build a several-layer image with umoci itself; returns the layout. Final tag: v3. */
function umociImage(): string {
  const s = scratch("boci-interop-");
  const L = join(s, "layout");
  const B = join(s, "work");
  must(`umoci init --layout ${q(L)} && umoci new --image ${q(L + ":base")} && umoci unpack --image ${q(L + ":base")} ${q(B)}`);
  const R = join(B, "rootfs");
  // layer 1: files, dirs, hardlinks, symlinks, setuid, xattrs, owners, fifo, device
  must(`set -e; cd ${q(R)}
    mkdir -p etc usr/bin data/sub opt/gone/deep var/empty dev
    printf 'root:x:0:0:root:/root:/bin/sh\\napp:x:1000:1000::/home/app:/bin/sh\\n' > etc/passwd
    printf 'root:x:0:\\napp:x:1000:\\n' > etc/group
    echo hello > usr/bin/tool && chmod 0755 usr/bin/tool
    ln usr/bin/tool usr/bin/tool-hard
    ln -s tool usr/bin/tool-sym
    ln -s /etc/passwd etc/abs-link
    echo suid > usr/bin/suid && chmod 4755 usr/bin/suid
    echo sgid > usr/bin/sgid && chmod 2711 usr/bin/sgid && chown 0:50 usr/bin/sgid
    echo owned > data/owned && chown 1000:1000 data/owned
    echo one > data/sub/one; echo two > data/sub/two
    setfattr -n user.x -v value data/owned
    setfattr -n user.bin -v 0x00ff0a3d data/sub/one
    echo deep > opt/gone/deep/file
    echo remove-me > etc/remove-me
    mkfifo var/fifo
    mknod dev/null c 1 3 && chmod 666 dev/null
    touch -h -d @1000000 usr/bin/tool-sym
    touch -d @2000000 var/empty`);
  must(`umoci repack --refresh-bundle --image ${q(L + ":v1")} ${q(B)}`);
  // layer 2: deletions (whiteouts), a dir removed and recreated with different content
  must(`set -e; cd ${q(R)}
    rm etc/remove-me
    rm -rf opt/gone
    rm -rf data/sub && mkdir data/sub && echo three > data/sub/three
    echo changed >> usr/bin/tool
    rm usr/bin/tool-sym && ln -s ../../etc/passwd usr/bin/tool-sym`);
  must(`umoci repack --refresh-bundle --image ${q(L + ":v2")} ${q(B)}`);
  // layer 3: more hardlinks across layers, a file replaced by a dir, chmod-only changes
  must(`set -e; cd ${q(R)}
    ln data/owned data/owned-link
    rm etc/abs-link && mkdir etc/abs-link && echo inner > etc/abs-link/file
    chmod 0600 etc/group
    mkdir -p long/$(printf 'n%.0s' $(seq 1 120))
    echo long > long/$(printf 'n%.0s' $(seq 1 120))/$(printf 'f%.0s' $(seq 1 150))`);
  must(`umoci repack --refresh-bundle --image ${q(L + ":v3")} ${q(B)}`);
  return L;
}

describe.skipIf(!haveUmoci || !isRoot)("unpack vs umoci 0.4.7", () => {
  test("boci unpack and umoci unpack of a umoci-built image give the same tree", () => {
    const L = umociImage();
    const s = scratch("boci-interop-");
    const bb = join(s, "boci-bundle"), ub = join(s, "umoci-bundle");
    ok(["unpack", "--no-progress", "--image", `${L}:v3`, bb]);
    must(`umoci unpack --image ${q(L + ":v3")} ${q(ub)}`);
    // boci adds only its stat cache (.boci-stat) to umoci's bundle files.
    expect(readdirSync(bb).filter((n) => n !== ".boci-stat").sort()).toEqual(readdirSync(ub).sort());
    const a = stripHeader(readFileSync(mtreeOf(bb), "utf8"));
    const b = stripHeader(readFileSync(mtreeOf(ub), "utf8"));
    expect(a).toBe(b);
    expect(b).toContain("tool-hard");
    expect(b).toContain("xattr.user.x=");
    expect(b).toMatch(/\bthree\b/);
    expect(JSON.parse(must(`umoci stat --json --image ${q(L + ":v3")}`)).history.filter((h: { empty_layer?: boolean }) => !h.empty_layer).length).toBe(3);
    const v = sh(`${q(BIN)} raw mtree-validate -f ${q(mtreeOf(ub))} -p ${q(join(bb, "rootfs"))}`);
    expect(v.stdout + v.stderr).toBe("");
    expect(v.code).toBe(0);
    // and the other way round: umoci's tree matches boci's manifest
    const w = sh(`${q(BIN)} raw mtree-validate -f ${q(mtreeOf(bb))} -p ${q(join(ub, "rootfs"))}`);
    expect(w.stdout + w.stderr).toBe("");
    expect(w.code).toBe(0);
    // spot checks
    expect(existsSync(join(bb, "rootfs/opt/gone"))).toBe(false);
    expect(readdirSync(join(bb, "rootfs/data/sub"))).toEqual(["three"]);
    expect(must(`getfattr --absolute-names -e hex -n user.bin ${q(join(ub, "rootfs/data/sub/three"))} 2>/dev/null || true`)).not.toContain("user.bin");
    expect(must(`getfattr --absolute-names -n user.x --only-values ${q(join(bb, "rootfs/data/owned"))}`)).toBe("value");
    // config.json: same process and root
    const bc = JSON.parse(readFileSync(join(bb, "config.json"), "utf8"));
    const uc = JSON.parse(readFileSync(join(ub, "config.json"), "utf8"));
    expect(bc.process.user).toEqual(uc.process.user);
    expect(bc.root).toEqual(uc.root);
    // umoci.json: same descriptor walk
    const bm = JSON.parse(readFileSync(join(bb, "umoci.json"), "utf8"));
    const um = JSON.parse(readFileSync(join(ub, "umoci.json"), "utf8"));
    expect(bm.from_descriptor_path).toEqual(um.from_descriptor_path);
  });

  test("boci and umoci agree on a hand-built image (implicit parents, whiteouts, opaque dirs, hardlinks, no '.' entry)", () => {
    const L = join(scratch("boci-interop-"), "layout");
    ok(["init", "--layout", L]);
    makeImage(L, "t", [
      makeTar([
        file("implicit/parent/file", "a", { mtime: 1500000000 }), dir("d/", { mtime: 1000000 }), file("d/f", "f", { mtime: 2000000 }),
        dir("o/"), file("o/old", "o"), dir("o/olddir/"), file("o/olddir/f", "f"), file("w", "w"), dir("tree/"), dir("tree/x/"), file("tree/x/y", "y"),
        file("h1", "hard"), hardlink("h2", "h1"), symlink("s", "h1", { mtime: 3000000 }),
        file("x", "x", { pax: { "SCHILY.xattr.user.a": Buffer.from([1, 2, 3]) } }),
      ]),
      makeTar([
        file("d/later", "l", { mtime: 7000000 }), whiteout(".wh.w"), whiteout(".wh.tree"),
        dir("o/"), dir("o/olddir/"), file("o/olddir/new", "n"), file("o/mine", "m"), whiteout("o/.wh..wh..opq"),
        file("new/implicit", "n"), hardlink("h3", "h1"), file("added", "a"), whiteout(".wh.added"),
      ]),
    ]);
    const s = scratch("boci-interop-");
    const bb = join(s, "boci-bundle"), ub = join(s, "umoci-bundle");
    const r = sh(`${q(BIN)} unpack --no-progress --image ${q(L + ":t")} ${q(bb)}`);
    must(`umoci unpack --image ${q(L + ":t")} ${q(ub)}`);
    if (r.code !== 0) throw new Error(`boci unpack exited ${r.code}: ${r.stderr}`);
    expect(must(`cd ${q(join(bb, "rootfs"))} && find . | sort`)).toBe(must(`cd ${q(join(ub, "rootfs"))} && find . | sort`));
    // Deliberate difference: when a layer creates or removes entries inside a directory it does
    // not name (implicit parents, an opaque whiteout below a child), umoci 0.4.7 leaves that
    // directory's mtime at the time of the unpack; boci restores the time the image gave it, so
    // its manifests are deterministic. Mask tar_time values that are "now" in umoci's manifest.
    const now = Math.floor(Date.now() / 1000) - 600;
    const maskNow = (t: string) => t.replace(/tar_time=(\d+)\.000000000/g, (m, sec: string) => (Number(sec) >= now ? "tar_time=<unpack time>" : m));
    const bText = stripHeader(readFileSync(mtreeOf(bb), "utf8"));
    const uText = stripHeader(readFileSync(mtreeOf(ub), "utf8"));
    const masked = uText.split("\n").map((line, i) => (maskNow(line) !== line ? maskNow(line) : bText.split("\n")[i] === undefined ? line : line)).join("\n");
    const bMasked = bText.split("\n").map((line, i) => (maskNow(uText.split("\n")[i] ?? "") !== (uText.split("\n")[i] ?? "") ? line.replace(/tar_time=\d+\.000000000/, "tar_time=<unpack time>") : line)).join("\n");
    expect(bMasked).toBe(masked);
    const v = sh(`${q(BIN)} raw mtree-validate -k size,type,uid,gid,mode,link,nlink,sha256digest,xattr -f ${q(mtreeOf(ub))} -p ${q(join(bb, "rootfs"))}`);
    expect(v.stdout + v.stderr).toBe("");
    expect(v.code).toBe(0);
  });

  test("umoci repack accepts a bundle boci unpacked", () => {
    const L = umociImage();
    const s = scratch("boci-interop-");
    const bb = join(s, "boci-bundle"), ub = join(s, "umoci-bundle");
    ok(["unpack", "--no-progress", "--image", `${L}:v3`, bb]);
    // an unchanged bundle repacks to no new layer
    must(`umoci repack --image ${q(L + ":same")} ${q(bb)}`);
    const st = JSON.parse(must(`umoci stat --json --image ${q(L + ":same")}`));
    const st3 = JSON.parse(must(`umoci stat --json --image ${q(L + ":v3")}`));
    const layersOf = (x: { history: { empty_layer?: boolean }[] }) => x.history.filter((h) => !h.empty_layer).length;
    expect(layersOf(st)).toBe(layersOf(st3));
    // a changed file is carried over
    writeFileSync(join(bb, "rootfs/usr/bin/tool"), "changed by the boci bundle\n");
    must(`rm ${q(join(bb, "rootfs/etc/passwd"))}`);
    must(`umoci repack --image ${q(L + ":v4")} ${q(bb)}`);
    must(`umoci unpack --image ${q(L + ":v4")} ${q(ub)}`);
    expect(readFileSync(join(ub, "rootfs/usr/bin/tool"), "utf8")).toBe("changed by the boci bundle\n");
    expect(readFileSync(join(ub, "rootfs/usr/bin/tool-hard"), "utf8")).toBe("changed by the boci bundle\n");
    expect(existsSync(join(ub, "rootfs/etc/passwd"))).toBe(false);
    expect(readFileSync(join(ub, "rootfs/data/owned"), "utf8")).toBe("owned\n");
  });
});

// ---- runc ------------------------------------------------------------------------------------

/** An image (made with boci init + the tar builder) holding the host's static busybox. */
function busyboxImage(): string {
  const L = join(scratch("boci-runc-layout-"), "layout");
  ok(["init", "--layout", L]);
  const bb = readFileSync("/bin/busybox");
  makeImage(L, "t", [makeTar([
    dir("bin/"), file("bin/busybox", bb, { mode: 0o755 }), symlink("bin/sh", "busybox"),
    dir("proc/"), dir("dev/"), dir("sys/"), dir("tmp/", { mode: 0o1777 }), dir("etc/"),
    file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), file("etc/group", "root:x:0:\n"),
  ])]);
  ok(["config", "--image", `${L}:t`, "--config.cmd", "/bin/busybox", "--config.cmd", "echo", "--config.cmd", "hello-from-runc"]);
  sh(`chmod -R a+rX ${q(join(L, ".."))}`);
  return L;
}

function runcRun(bundle: string, opts: { asUser?: number } = {}): { code: number; stdout: string; stderr: string } {
  const id = `boci-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const root = join(scratch("runc-root-"), "state");
  mkdirSync(root, { mode: 0o700 });
  const prefix: string[] = [];
  const env: Record<string, string> = { ...process.env } as Record<string, string>;
  if (opts.asUser !== undefined) {
    chmodSync(join(root, ".."), 0o755);
    chownSync(root, opts.asUser, opts.asUser);
    prefix.push("setpriv", `--reuid=${opts.asUser}`, `--regid=${opts.asUser}`, "--clear-groups");
    env.XDG_RUNTIME_DIR = root;
    env.HOME = "/tmp";
  }
  const run = (args: string[]) => {
    const p = Bun.spawnSync([...prefix, "runc", "--root", root, ...args], { cwd: bundle, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
  };
  try {
    return run(["run", id]);
  } finally {
    run(["delete", "-f", id]);
  }
}

describe.skipIf(!haveRunc || !isRoot || !existsSync("/bin/busybox"))("runc runs a bundle boci unpacked", () => {
  test("as root", () => {
    const L = busyboxImage();
    const b = join(scratch("boci-runc-"), "bundle");
    ok(["unpack", "--no-progress", "--image", `${L}:t`, b]);
    must(`jq '.process.terminal=false' config.json > config.json.new && mv config.json.new config.json`, b);
    const r = runcRun(b);
    if (r.code !== 0) throw new Error(`runc run exited ${r.code}: ${r.stderr}`);
    expect(r.stdout).toContain("hello-from-runc");
  });

  test("rootless (unpack --rootless and runc as uid 65534)", () => {
    const L = busyboxImage();
    const s = scratch("boci-runc-");
    chmodSync(s, 0o755);
    chownSync(s, 65534, 65534);
    const b = join(s, "bundle");
    const u = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", BIN, "unpack", "--rootless", "--no-progress", "--image", `${L}:t`, b], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    if (u.exitCode !== 0) throw new Error(`rootless unpack failed: ${u.stderr}`);
    must(`jq '.process.terminal=false' config.json > config.json.new && mv config.json.new config.json && chown 65534:65534 config.json`, b);
    const r = runcRun(b, { asUser: 65534 });
    if (r.code !== 0) throw new Error(`rootless runc run exited ${r.code}: ${r.stderr}`);
    expect(r.stdout).toContain("hello-from-runc");
  });
});
