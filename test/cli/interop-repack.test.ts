/**
 * Interoperability of `boci repack` with Debian's umoci (0.4.7) and skopeo: umoci unpacks what
 * boci repacked, boci repacks what umoci unpacked (and the reverse), skopeo reads the result.
 * Skipped (with a message) when umoci or skopeo is missing, or when not root.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, existsSync, readdirSync, lstatSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { boci, ok, scratch, sh, have, isRoot } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";
import { CAP_HEX, REPACK_BASE, REPACK_EDITS } from "../helpers/repack-fixture";

const HAVE_UMOCI = have("umoci");
const HAVE_SKOPEO = have("skopeo");
if (!HAVE_UMOCI) console.log("interop-repack: umoci not installed; skipping the umoci tests");
if (!HAVE_SKOPEO) console.log("interop-repack: skopeo not installed; skipping the skopeo tests");
if (!isRoot) console.log("interop-repack: not root; skipping");


interface Desc { mediaType: string; digest: string; size: number }
interface Stat { manifest: { descriptor: Desc; blob: { layers: Desc[] } }; config: { descriptor: Desc; blob: { rootfs: { diff_ids: string[] } } } }

function newLayout(): string {
  const l = join(scratch(), "layout");
  ok(["init", "--layout", l]);
  return l;
}
function stat(img: string): Stat { return JSON.parse(ok(["stat", "--json", "--image", img]).stdout) as Stat; }
function run(cmd: string, cwd: string): void {
  const r = sh(`set -e\n${cmd}`, { cwd });
  if (r.code !== 0) throw new Error(`shell failed (${r.code}): ${cmd}\n${r.stderr}`);
}
function q(s: string): string { return JSON.stringify(s); }
function umoci(args: string): { code: number; stdout: string; stderr: string } { return sh(`umoci ${args}`); }
function umociOk(args: string): void {
  const r = umoci(args);
  if (r.code !== 0) throw new Error(`umoci ${args} exited ${r.code}: ${r.stderr}`);
}
function bociUnpack(img: string): string {
  const b = join(scratch(), "bundle");
  ok(["unpack", "--no-progress", "--image", img, b]);
  return b;
}
function umociUnpack(img: string): string {
  const b = join(scratch(), "ubundle");
  umociOk(`unpack --image ${q(img)} ${q(b)}`);
  return b;
}
function mtreeFile(bundle: string): string {
  const f = readdirSync(bundle).filter((n) => n.endsWith(".mtree"));
  if (f.length !== 1) throw new Error(`expected one mtree in ${bundle}: ${f.join(",")}`);
  return join(bundle, f[0]!);
}
/** `boci raw mtree-validate` of `dir` against the mtree of bundle `ref`; "" and 0 when equal. */
function validate(ref: string, dir: string): { code: number; out: string } {
  const r = boci(["raw", "mtree-validate", "-f", mtreeFile(ref), "-p", dir]);
  return { code: r.code, out: r.stdout + r.stderr };
}
function xattrHex(p: string, name: string): string {
  const r = sh(`getfattr -h --absolute-names -e hex -n ${name} ${q(p)}`);
  if (r.code !== 0) return "";
  const m = r.stdout.match(new RegExp(`^${name.replace(/\./g, "\\.")}=0x([0-9a-f]*)$`, "m"));
  return m ? m[1]! : "";
}

const BASE = REPACK_BASE;
const EDITS = REPACK_EDITS + `
mkdir -p 'sp ace/ü'; echo u > 'sp ace/ü/f*[x]'
touch -d @1650000000 .
`;
// (the root gets an explicit new time so every new layer carries a '.' entry: a layer without
// one trips a boci unpack bug, root mtime not restored, covered deterministically in repack.test.ts)

/**
 * umoci 0.4.7 packs with Go's archive/tar, which ROUNDS mtimes to the second, while tar_time
 * truncates (umoci 0.6 truncates too): truncate every mtime in the tree first so that layers
 * made by either tool agree.
 */
const TRUNCATE_MTIMES = `find . -depth -exec sh -c 'touch -h -d @$(stat -c %Y "$1") "$1"' _ {} \\;`;

/** boci new + one repacked layer with BASE. */
function bociBase(): { layout: string; img: string } {
  const layout = newLayout();
  const img = `${layout}:base`;
  ok(["new", "--image", img]);
  const b = bociUnpack(img);
  run(BASE, join(b, "rootfs"));
  ok(["repack", "--no-progress", "--image", img, b]);
  expect(checkLayout(layout)).toEqual([]);
  return { layout, img };
}

describe.skipIf(!HAVE_UMOCI || !isRoot)("interop: umoci 0.4.7 and boci repack", () => {
  test("umoci unpack of a boci-repacked image gives the edited tree", () => {
    const { layout, img } = bociBase();
    const b1 = bociUnpack(img);
    run(EDITS, join(b1, "rootfs"));
    ok(["repack", "--no-progress", "--image", `${layout}:new`, b1]);
    expect(checkLayout(layout)).toEqual([]);
    const ub = umociUnpack(`${layout}:new`);
    const v = validate(ub, join(b1, "rootfs"));
    expect(v.out).toBe("");
    expect(v.code).toBe(0);
    const r = join(ub, "rootfs");
    expect(existsSync(join(r, "deltree"))).toBe(false);
    expect(existsSync(join(r, "del-file"))).toBe(false);
    expect(readlinkSync(join(r, "dir2link"))).toBe("usr");
    expect(lstatSync(join(r, "fifo")).isFIFO()).toBe(true);
    expect(statSync(join(r, "hl1")).ino).toBe(statSync(join(r, "hl2")).ino);
    expect(lstatSync(join(r, "suid")).mode & 0o7777).toBe(0o4755);
    expect(lstatSync(join(r, "mod-owner")).uid).toBe(1000);
    expect(xattrHex(join(r, "capfile"), "security.capability")).toBe(CAP_HEX);
    expect(readFileSync(join(r, "sp ace/ü/f*[x]"), "utf8")).toBe("u\n");
    // and umoci's view agrees with boci's own unpack of the same image
    const bb = bociUnpack(`${layout}:new`);
    expect(validate(ub, join(bb, "rootfs")).out).toBe("");
    expect(validate(bb, r).out).toBe("");
  });

  test("boci repack of a bundle made by umoci unpack; umoci unpacks the result", () => {
    const { layout, img } = bociBase();
    const ub = umociUnpack(img);
    run(EDITS, join(ub, "rootfs"));
    ok(["repack", "--no-progress", "--image", `${layout}:new`, ub]);
    expect(checkLayout(layout)).toEqual([]);
    expect(stat(`${layout}:new`).manifest.blob.layers.length).toBe(stat(img).manifest.blob.layers.length + 1);
    const ub2 = umociUnpack(`${layout}:new`);
    const v = validate(ub2, join(ub, "rootfs"));
    expect(v.out).toBe("");
    expect(v.code).toBe(0);
    expect(readFileSync(join(ub2, "rootfs/added"), "utf8")).toBe("new\n");
    expect(existsSync(join(ub2, "rootfs/deltree"))).toBe(false);
  });

  test("boci repack --refresh-bundle of a umoci bundle, then a second boci repack", () => {
    const { layout, img } = bociBase();
    const ub = umociUnpack(img);
    run(`echo 1 > one`, join(ub, "rootfs"));
    ok(["repack", "--no-progress", "--refresh-bundle", "--image", img, ub]);
    const n = stat(img).manifest.blob.layers.length;
    ok(["repack", "--no-progress", "--image", img, ub]);
    expect(stat(img).manifest.blob.layers.length).toBe(n);
    run(`rm one; echo 2 > two`, join(ub, "rootfs"));
    ok(["repack", "--no-progress", "--image", img, ub]);
    expect(checkLayout(layout)).toEqual([]);
    const ub2 = umociUnpack(img);
    expect(existsSync(join(ub2, "rootfs/one"))).toBe(false);
    expect(readFileSync(join(ub2, "rootfs/two"), "utf8")).toBe("2\n");
  });

  test("umoci repack of a bundle made by boci unpack; boci unpacks the result", () => {
    const { layout, img } = bociBase();
    const b = bociUnpack(img);
    run(EDITS + TRUNCATE_MTIMES, join(b, "rootfs"));
    umociOk(`repack --image ${q(`${layout}:byumoci`)} ${q(b)}`);
    expect(checkLayout(layout)).toEqual([]);
    const b2 = bociUnpack(`${layout}:byumoci`);
    const v = validate(b2, join(b, "rootfs"));
    expect(v.out).toBe("");
    expect(v.code).toBe(0);
  });

  test("umoci's layer and boci's layer for the same edit unpack to the same tree", () => {
    const { layout, img } = bociBase();
    const b = bociUnpack(img);
    run(EDITS + TRUNCATE_MTIMES, join(b, "rootfs"));
    ok(["repack", "--no-progress", "--image", `${layout}:boci`, b]);
    umociOk(`repack --image ${q(`${layout}:umoci`)} ${q(b)}`);
    expect(checkLayout(layout)).toEqual([]);
    const fromBoci = bociUnpack(`${layout}:boci`);
    const fromUmoci = bociUnpack(`${layout}:umoci`);
    expect(validate(fromBoci, join(fromUmoci, "rootfs")).out).toBe("");
    expect(validate(fromUmoci, join(fromBoci, "rootfs")).out).toBe("");
    // and the layers list the same paths (GNU tar; order may differ)
    const list = (tag: string) => {
      const d = stat(`${layout}:${tag}`).manifest.blob.layers.at(-1)!;
      const r = sh(`tar -tzf ${q(join(layout, "blobs", ...d.digest.split(":")))} | sed 's,/$,,' | LC_ALL=C sort`);
      return r.stdout;
    };
    // umoci also emits dir2link/.wh.x after the symlink that replaced the directory dir2link (a
    // whiteout that would resolve through the new link); boci leaves it out on purpose.
    expect(list("boci")).toBe(list("umoci").replace("dir2link/.wh.x\n", ""));
  });
});

describe.skipIf(!HAVE_UMOCI || !isRoot)("interop: the same layer bytes as umoci", () => {
  test("repack of the same edit gives umoci's uncompressed layer byte for byte (same diffID)", () => {
    // Two layers made by umoci, then one edit of every kind (whiteouts of a file and of a tree,
    // a PAX long name, xattrs, a device, a FIFO, a hard link, a symlink, setuid, a new owner),
    // whole-second mtimes (umoci 0.4.7 rounds, 0.6 and boci truncate), the bundle copied with
    // cp -a and repacked by each tool.
    const w = scratch();
    const r = sh(`set -e
umoci init --layout lu; umoci new --image lu:t; umoci unpack --image lu:t bu >/dev/null
cd bu/rootfs; mkdir -p del/sub; echo 1 > del/sub/a; echo z > gone; mkdir keep; echo k > keep/k; cd ../..
umoci repack --image lu:t bu; rm -rf bu; umoci unpack --image lu:t bu >/dev/null
cd bu/rootfs
echo hi > f; mkdir -p d/e; echo x > d/e/g; ln -s f s; ln f hl; mkfifo p; setfattr -n user.foo -v bar f; mknod c c 1 3
rm -rf del gone; echo kk > keep/k; chmod 4755 keep/k; chown 12:34 keep/k
printf 'a%.0s' $(seq 1 200) > "$(printf 'n%.0s' $(seq 1 120))"
${TRUNCATE_MTIMES}
cd ../..; cp -a lu lx; cp -a bu bx
umoci repack --image lu:t bu`, { cwd: w });
    if (r.code !== 0) throw new Error(`fixture failed: ${r.stderr}`);
    ok(["repack", "--no-progress", "--image", `${join(w, "lx")}:t`, join(w, "bx")]);
    const last = (l: string) => {
      const s = stat(`${join(w, l)}:t`);
      const d = s.manifest.blob.layers.at(-1)!;
      return { diffID: s.config.blob.rootfs.diff_ids.at(-1), tar: Bun.gunzipSync(readFileSync(join(w, l, "blobs", ...d.digest.split(":")))) };
    };
    const u = last("lu"), b = last("lx");
    expect(b.diffID).toBe(u.diffID!);
    expect(Buffer.from(b.tar).equals(Buffer.from(u.tar))).toBe(true);
  });
});

describe.skipIf(!HAVE_SKOPEO || !isRoot)("interop: skopeo reads boci-repacked images", () => {
  test("skopeo inspect lists the layers; skopeo copy to docker-archive succeeds", () => {
    const { layout, img } = bociBase();
    const b1 = bociUnpack(img);
    run(EDITS, join(b1, "rootfs"));
    ok(["repack", "--no-progress", "--image", `${layout}:new`, b1]);
    ok(["repack", "--no-progress", "--compress", "none", "--image", `${layout}:new`, b1]);
    expect(checkLayout(layout)).toEqual([]);
    const s = stat(`${layout}:new`);
    const ins = sh(`skopeo inspect ${q(`oci:${layout}:new`)}`);
    expect(ins.stderr).toBe("");
    expect(ins.code).toBe(0);
    const j = JSON.parse(ins.stdout) as { Layers: string[]; Digest: string; Os: string };
    expect(j.Layers).toEqual(s.manifest.blob.layers.map((d) => d.digest));
    expect(j.Digest).toBe(s.manifest.descriptor.digest);
    expect(j.Os).toBe("linux");

    const out = join(scratch(), "out.tar");
    const cp = sh(`skopeo copy ${q(`oci:${layout}:new`)} ${q(`docker-archive:${out}:name:tag`)}`);
    expect(cp.stderr).toBe("");
    expect(cp.code).toBe(0);
    const mf = JSON.parse(sh(`tar -xOf ${q(out)} manifest.json`).stdout) as { RepoTags: string[]; Layers: string[] }[];
    expect(mf).toHaveLength(1);
    expect(mf[0]!.RepoTags).toEqual(["docker.io/library/name:tag"]);
    expect(mf[0]!.Layers).toHaveLength(s.manifest.blob.layers.length);
  });

  test("skopeo copy oci → oci keeps the layers readable by boci", () => {
    const { layout, img } = bociBase();
    const b1 = bociUnpack(img);
    run(EDITS, join(b1, "rootfs"));
    ok(["repack", "--no-progress", "--compress", "zstd", "--image", `${layout}:new`, b1]);
    const dst = join(scratch(), "copy");
    const cp = sh(`skopeo copy ${q(`oci:${layout}:new`)} ${q(`oci:${dst}:c`)}`);
    expect(cp.code).toBe(0);
    expect(checkLayout(dst)).toEqual([]);
    const b2 = bociUnpack(`${dst}:c`);
    expect(validate(b2, join(b1, "rootfs")).code).toBe(0);
  });
});
