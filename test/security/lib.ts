/**
 * Shared helpers for the security suite: sentinel trees, layout snapshots (index.json bytes and
 * the blob list), and the "one clear line" error check.
 */
import { expect } from "bun:test";
import { readFileSync, writeFileSync, mkdirSync, readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { describeTree } from "../helpers/tree";
import type { RunResult } from "../helpers/cli";

export const REF = "org.opencontainers.image.ref.name";

/** Create `dir/outside` with a few files: nothing may ever change it. */
export function makeSentinel(dir: string): string {
  const o = join(dir, "outside");
  mkdirSync(join(o, "sub"), { recursive: true });
  writeFileSync(join(o, "secret"), "secret\n");
  writeFileSync(join(o, "sub/file"), "file\n");
  return o;
}

/** Every path under `root` with type, mode, size, mtime, inode and content hash. */
export function snapshotTree(root: string): Record<string, string> {
  return describeTree(root, (st, extra) => [st.mode.toString(8), st.uid, st.gid, st.size, st.mtimeMs, st.ino, st.nlink, extra].join(" "));
}

export interface LayoutSnap { index: string; blobs: string[] }

/** index.json bytes and the sorted list of blob files. */
export function snapLayout(l: string): LayoutSnap {
  const blobs: string[] = [];
  const bd = join(l, "blobs");
  if (existsSync(bd)) for (const a of readdirSync(bd).sort()) for (const n of readdirSync(join(bd, a)).sort()) blobs.push(`${a}/${n}`);
  return { index: existsSync(join(l, "index.json")) ? readFileSync(join(l, "index.json")).toString("latin1") : "", blobs };
}

/** A user error: exactly one line on stderr, no stack frames, the expected exit code(s). */
export function expectOneLine(r: RunResult, codes: number | number[], re?: RegExp): void {
  const want = Array.isArray(codes) ? codes : [codes];
  const lines = r.stderr.trim().split("\n").filter((x) => x.length > 0);
  const ctx = `exit ${r.code}, stderr: ${JSON.stringify(r.stderr.slice(0, 2000))}`;
  if (!want.includes(r.code)) throw new Error(`expected exit ${want.join("|")}, got ${ctx}`);
  if (lines.length !== 1) throw new Error(`expected exactly one stderr line, got ${lines.length}: ${ctx}`);
  expect(r.stderr).not.toContain("    at ");
  if (re) expect(r.stderr).toMatch(re);
}

export function readJson(p: string): any {
  return JSON.parse(readFileSync(p, "utf8"));
}

export function blobPath(l: string, digest: string): string {
  return join(l, "blobs", ...digest.split(":"));
}

export { rng } from "../helpers/rng";

/** Tag name → digest of the top-level entries of a layout's index.json. */
export function tags(L: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const d of readJson(join(L, "index.json")).manifests ?? []) {
    const n = d.annotations?.[REF];
    if (typeof n === "string") m.set(n, d.digest);
  }
  return m;
}
