/**
 * Small files finished on the second thread (src/rootfs/file-queue.ts): an unpack with it
 * (BOCI_WORKERS=2) makes the same tree and the same manifest as one without (BOCI_WORKERS=1),
 * through everything that can happen to a file while its job is in flight (replaced by a later
 * entry of the same name, hardlinked, whited out, its directory removed), and a job that fails
 * is one line naming its entry, with nothing left behind.
 */
import { describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { boci, ok, scratch, smallTmpfs } from "../helpers/cli";
import { dir, file, hardlink, makeImage, makeTar, symlink, whiteout, type TarEntrySpec } from "../helpers/image";

/** The queue starts after 256 small files; these layers have well over that. */
const N = 700;

function body(i: number): Buffer {
  // sizes from empty to 40 KiB, bodies that differ
  const n = (i * 7919) % 41000;
  const b = Buffer.alloc(n);
  for (let k = 0; k + 4 <= n; k += 4) b.writeUInt32LE(((i + 1) * 2654435761 + k * 40503) >>> 0, k);
  return b;
}

function layers(): Buffer[] {
  const one: TarEntrySpec[] = [dir("d"), dir("d/sub"), dir("gone")];
  for (let i = 0; i < N; i++) {
    const d = i % 3 === 0 ? "d" : i % 3 === 1 ? "d/sub" : "gone";
    one.push(file(`${d}/f${i}`, body(i), {
      mode: [0o644, 0o600, 0o755, 0o4755, 0o2711, 0o444][i % 6]!, uid: i % 5, gid: (i * 3) % 7, mtime: 1_600_000_000 + i,
      // a few carry an xattr (those stay on the calling thread)
      pax: i % 97 === 0 ? { "SCHILY.xattr.user.note": `n${i}` } : undefined,
    }));
  }
  // in the same layer, while the first jobs may still be in flight
  one.push(file("d/f3", "replaced\n", { mode: 0o640, mtime: 1_700_000_000 }));
  one.push(hardlink("d/link-to-f6", "d/f6"));
  one.push(file("d/sub/f4", "again\n", { mtime: 1_700_000_001 }));
  one.push(dir("d/f9", { mtime: 1_700_000_002 }));
  one.push(symlink("d/f12", "f6"));
  const two: TarEntrySpec[] = [
    whiteout("d/.wh.f15"), whiteout(".wh.gone"), file("d/f18", "layer two\n", { mode: 0o600, mtime: 1_700_000_003 }),
    hardlink("d/link-to-f21", "d/f21"),
  ];
  for (let i = 0; i < N; i++) two.push(file(`two/f${i}`, body(i + N), { mode: 0o644, mtime: 1_650_000_000 + i }));
  two.unshift(dir("two"));
  return [makeTar(one), makeTar(two)];
}

const mtreeBody = (b: string) =>
  readFileSync(join(b, readdirSync(b).find((n) => n.endsWith(".mtree"))!), "utf8").split("\n").filter((l) => !l.startsWith("#")).join("\n");

/** Every inode of a tree: type, mode, owner, size, mtime, nlink, contents' digest. */
function treeOf(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const n of readdirSync(join(root, rel)).sort()) {
      const p = rel ? `${rel}/${n}` : n;
      const st = lstatSync(join(root, p), { bigint: true });
      const data = st.isFile() ? createHash("sha256").update(readFileSync(join(root, p))).digest("hex") : "";
      out.push(`${p} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeNs} ${st.nlink} ${data}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk("");
  return out;
}

describe("small files on the second thread", () => {
  const s = scratch();
  const L = join(s, "l");
  ok(["init", "--layout", L]);
  makeImage(L, "t", layers());

  for (const rootless of [false, true]) {
    test(`the same tree and manifest as made inline${rootless ? " (--rootless)" : ""}`, () => {
      const flag = rootless ? ["--rootless"] : [];
      const queued = join(s, `q${rootless ? "r" : ""}`), inline = join(s, `i${rootless ? "r" : ""}`);
      ok(["unpack", ...flag, "--image", `${L}:t`, queued], { env: { BOCI_WORKERS: "2" } });
      ok(["unpack", ...flag, "--image", `${L}:t`, inline], { env: { BOCI_WORKERS: "1" } });
      expect(mtreeBody(queued)).toBe(mtreeBody(inline));
      const tq = treeOf(join(queued, "rootfs"));
      expect(tq).toEqual(treeOf(join(inline, "rootfs")));
      // and the tree is what the layers say
      expect(readFileSync(join(queued, "rootfs/d/f3"), "utf8")).toBe("replaced\n");
      expect(readFileSync(join(queued, "rootfs/d/link-to-f6")).equals(body(6))).toBe(true);
      expect(lstatSync(join(queued, "rootfs/d/f6")).nlink).toBe(2);
      expect(lstatSync(join(queued, "rootfs/d/f9")).isDirectory()).toBe(true);
      expect(lstatSync(join(queued, "rootfs/d/f12")).isSymbolicLink()).toBe(true);
      expect(existsSync(join(queued, "rootfs/d/f15"))).toBe(false);
      expect(existsSync(join(queued, "rootfs/gone"))).toBe(false);
      expect(readFileSync(join(queued, "rootfs/two/f699")).equals(body(699 + N))).toBe(true);
      const f10 = lstatSync(join(queued, "rootfs/d/sub/f10"));
      expect(f10.mode & 0o7777).toBe(0o2711);
      expect(f10.mtimeMs).toBe((1_600_000_000 + 10) * 1000);
      if (!rootless) expect([f10.uid, f10.gid]).toEqual([0, 2]);
      // the stat cache's keys, taken as each file was finished (a hardlinked one at the end), are
      // what an lstat of the file says now; one per regular file
      for (const b of [queued, inline]) {
        const lines = readFileSync(join(b, ".boci-stat"), "utf8").trim().split("\n").slice(1);
        const files = treeOf(join(b, "rootfs")).filter((l) => (parseInt(l.split(" ")[1]!, 8) & 0o170000) === 0o100000).length;
        expect(lines).toHaveLength(files);
        for (const l of lines) {
          const i = l.indexOf(' "');
          const st = lstatSync(join(b, "rootfs", JSON.parse(l.slice(i + 1)) as string), { bigint: true });
          expect(l.slice(0, i)).toBe(`${st.dev} ${st.ino} ${st.size} ${st.mtimeNs} ${st.ctimeNs}`);
        }
      }
      // the manifest says what the disk holds
      const mt = readdirSync(queued).find((n) => n.endsWith(".mtree"))!;
      expect(ok(["raw", "mtree-validate", "-f", join(queued, mt), "-p", join(queued, "rootfs")]).stdout).toBe("");
    });
  }
});

describe("a job that fails on the second thread", () => {
  const { mnt, mounted } = smallTmpfs("boci-fq-enospc-", "the full-disk test");

  test.skipIf(!mounted)("a full disk: one line naming the entry and the bundle, nothing left behind", () => {
    // 600 files of 8 KiB of noise: more than 2 MiB, every body small enough to be queued
    const entries = [dir("x"), ...Array.from({ length: 600 }, (_, i) => file(`x/f${i}`, randomBytes(8192)))];
    const s = scratch();
    const L = join(s, "l");
    ok(["init", "--layout", L]);
    makeImage(L, "t", [makeTar(entries)]);
    const bundle = join(mnt, "bundle");
    const r = boci(["unpack", "--image", `${L}:t`, bundle], { env: { BOCI_WORKERS: "2" } });
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^boci: unpack layer 1: apply "x/f\\d+": no space left on device writing ${bundle}; the rootfs was removed$`));
    expect(readdirSync(mnt)).toEqual([]);
  });
});
