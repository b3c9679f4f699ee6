/**
 * Run as root on a layout another user owns, boci gives everything it creates in the layout the
 * owner of the layout's root, as umoci 0.6 does (oci/cas/dir `fchown`: blobs and index.json "to
 * avoid a root umoci repack creating inaccessible files for the original user"); boci applies
 * the rule to all it leaves there: blobs, blobs/<alg>, index.json, .boci-tmp, the lock files.
 * Through the real binary; needs root (skipped otherwise). Debian's umoci 0.4.7 predates the rule.
 */
import { describe, expect, test } from "bun:test";
import { chownSync, lstatSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ok, scratch, isRoot } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";

const UID = 1234;
const GID = 1234;

/** Every path under `root` (root itself included) whose owner is not uid:gid. */
function wrongOwners(root: string, uid: number, gid: number): string[] {
  const out: string[] = [];
  const walk = (p: string, rel: string) => {
    const st = lstatSync(p);
    if (st.uid !== uid || st.gid !== gid) out.push(`${rel || "."} ${st.uid}:${st.gid}`);
    if (st.isDirectory()) for (const n of readdirSync(p)) walk(join(p, n), rel ? `${rel}/${n}` : n);
  };
  walk(root, "");
  return out;
}

function chownTree(p: string, uid: number, gid: number): void {
  chownSync(p, uid, gid);
  if (lstatSync(p).isDirectory()) for (const n of readdirSync(p)) chownTree(join(p, n), uid, gid);
}

describe("files created in a layout get the layout root's owner when run as root", () => {
  test.skipIf(!isRoot)("new, config, tag, unpack+repack, insert, raw add-layer, rm, gc, validate on a layout owned by 1234:1234", () => {
    const dir = scratch("boci-owner-");
    const L = join(dir, "layout");
    ok(["init", "--layout", L]);
    // Make boci create the directories again: blobs/sha256 and .boci-tmp do not exist yet.
    rmSync(join(L, "blobs", "sha256"), { recursive: true });
    chownTree(L, UID, GID);
    ok(["new", "--image", `${L}:a`]);
    expect(wrongOwners(L, UID, GID)).toEqual([]);
    ok(["config", "--image", `${L}:a`, "--config.cmd", "/bin/true", "--tag", "b"]);
    ok(["tag", "--image", `${L}:b`, "c"]);
    const bundle = join(dir, "bundle");
    ok(["unpack", "--no-progress", "--image", `${L}:c`, bundle]);
    writeFileSync(join(bundle, "rootfs", "added"), "new file\n");
    ok(["repack", "--no-progress", "--image", `${L}:d`, bundle]);
    const src = join(dir, "src");
    mkdirSync(src);
    writeFileSync(join(src, "f"), "inserted\n");
    ok(["insert", "--image", `${L}:d`, src, "/opt/src"]);
    const tarDir = join(dir, "t");
    mkdirSync(join(tarDir, "x"), { recursive: true });
    writeFileSync(join(tarDir, "x", "y"), "y\n");
    const tar = join(dir, "layer.tar");
    const p = Bun.spawnSync(["tar", "-C", tarDir, "-cf", tar, "x"]);
    expect(p.exitCode).toBe(0);
    ok(["raw", "add-layer", "--image", `${L}:d`, tar, "--tag", "e"]);
    ok(["rm", "--image", `${L}:a`]);
    ok(["gc", "--layout", L]);
    ok(["validate", "--layout", L]);
    expect(wrongOwners(L, UID, GID)).toEqual([]);
    // Everything the commands leave: each kind named, so the check above saw them.
    const names = readdirSync(L).sort();
    expect(names).toEqual([".boci-gc.lock", ".boci-index.lock", ".boci-tmp", "blobs", "index.json", "oci-layout"]);
    expect(readdirSync(join(L, "blobs", "sha256")).length).toBeGreaterThan(5);
    expect(checkLayout(L)).toEqual([]);
  });

  test.skipIf(!isRoot)("a root-owned layout stays root's; the owner is the root directory's, not a parent's", () => {
    const dir = scratch("boci-owner-");
    chownSync(dir, UID, GID);
    const L = join(dir, "layout");
    ok(["init", "--layout", L]);
    ok(["new", "--image", `${L}:a`]);
    ok(["tag", "--image", `${L}:a`, "b"]);
    expect(wrongOwners(L, 0, 0)).toEqual([]);
  });
});
