// The manifest spool (src/mtree/spool.ts) against the in-memory recorder: the same operations
// must give the same entries in the same (go-mtree walk) order, across runs on disk.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, readdirSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createManifestSpool, FROM_DISK, REFRESH } from "../../src/mtree/spool";
import { createMtreeRecorder, type MtreeEntry } from "../../src/mtree";
import { rng } from "../helpers/rng";

const base = mkdtempSync(join(tmpdir(), "boci-spool-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
const spoolDir = () => join(base, `s${n++}`);

function plain(e: MtreeEntry): object {
  return { ...e, xattrs: e.xattrs ? [...e.xattrs].map(([k, v]) => [k, v.toString("hex")]) : undefined };
}

describe("manifest spool", () => {
  test("walk order: files before subdirectories, names by bytes, component-wise sections", () => {
    const s = createManifestSpool(spoolDir());
    const names = [".", "b", "a-c", "a", "a/z", "a/b", "a/b/c", "caf\udce9", "café", "a/b/c/d"];
    const dirs = new Set([".", "a", "a/b", "a/b/c"]);
    for (const p of names) s.set({ path: p, type: dirs.has(p) ? "dir" : "file", mode: 0o644 });
    expect([...s.entries()].map((e) => e.entry.path)).toEqual([".", "a-c", "b", "café", "caf\udce9", "a", "a/z", "a/b", "a/b/c", "a/b/c/d"]);
    s.close();
  });

  test("deletes cover a path and its subtree, only records older than them; patches apply to newer sets", () => {
    const s = createManifestSpool(spoolDir());
    s.set({ path: ".", type: "dir" });
    s.set({ path: "d", type: "dir" });
    s.set({ path: "d/f", type: "file" });
    s.set({ path: "d/e", type: "dir" });
    s.set({ path: "d/e/g", type: "file" });
    s.delete("d");
    s.set({ path: "d", type: "file", size: 3 });
    s.set({ path: "x", type: "dir", mode: 0o700 });
    s.patch("x", { mode: 0o555, flags: REFRESH });
    s.set({ path: "x/y", type: "file" }, FROM_DISK);
    const got = [...s.entries()].map((e) => [e.entry.path, e.entry.type, e.entry.mode, e.flags]);
    expect(got).toEqual([[".", "dir", undefined, 0], ["d", "file", undefined, 0], ["x", "dir", 0o555, REFRESH], ["x/y", "file", undefined, FROM_DISK]]);
    s.close();
  });

  test("a file without its directory is an error, as the formatter's", () => {
    const s = createManifestSpool(spoolDir());
    s.set({ path: ".", type: "dir" });
    s.set({ path: "nodir/f", type: "file" });
    expect(() => [...s.entries()]).toThrow(/nodir/);
    s.close();
  });

  test("random operations: same entries as the in-memory recorder, over many runs", () => {
    const r = rng(7);
    const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
    const comps = ["a", "b", "c", "a-b", "a\x01b", "a\x01", "caf\udce9", "café", "x y", "\udcff"];
    for (let round = 0; round < 4; round++) {
      const dir = spoolDir();
      const s = createManifestSpool(dir);
      const m = createMtreeRecorder();
      const root: MtreeEntry = { path: ".", type: "dir", mode: 0o755 };
      s.set(root);
      m.set(root);
      const live = new Map<string, string>([[".", "dir"]]);
      for (let i = 0; i < 40000; i++) {
        const parents = [...live].filter(([, t]) => t === "dir").map(([p]) => p);
        const parent = pick(parents);
        const p = parent === "." ? pick(comps) : `${parent}/${pick(comps)}`;
        const x = r();
        if (x < 0.15 && live.size > 1) {
          const victim = pick([...live.keys()].filter((k) => k !== "."));
          s.delete(victim);
          m.delete(victim);
          for (const k of [...live.keys()]) if (k === victim || k.startsWith(victim + "/")) live.delete(k);
        } else if (x < 0.2 && live.has(p)) {
          const mode = Math.floor(r() * 0o777);
          s.patch(p, { mode });
          const e = m.get(p)!;
          m.set({ ...e, mode });
        } else {
          // as the applier does: a different type at a taken path is removed first
          const type = r() < 0.3 ? "dir" : r() < 0.5 ? "link" : "file";
          if (live.has(p) && (live.get(p) !== "dir" || type !== "dir")) {
            s.delete(p);
            m.delete(p);
            for (const k of [...live.keys()]) if (k === p || k.startsWith(p + "/")) live.delete(k);
          }
          const e: MtreeEntry = { path: p, type, size: i, uid: i % 7, mode: 0o644, tarTime: i, ...(type === "link" ? { link: `t\t${i}` } : {}), ...(type === "file" ? { sha256: "ab".repeat(32) } : {}) };
          if (i % 11 === 0 && type === "file") e.xattrs = new Map([["user.k", Buffer.from([0, 1, 2, i & 255])]]);
          s.set(e);
          m.set(e);
          live.set(p, type);
        }
      }
      expect(readdirSync(dir).length).toBeGreaterThan(1); // more than one run on disk
      const want = [...m.sorted()].map(plain);
      const got = [...s.entries()].map((e) => plain(e.entry));
      expect(got).toEqual(want);
      s.close();
      expect(existsSync(dir)).toBe(false);
    }
  }, 120_000);
});
