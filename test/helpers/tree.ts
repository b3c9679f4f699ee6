/** Describe a real directory tree, one line per path, for comparing trees in tests. */
import { lstatSync, readFileSync, readdirSync, readlinkSync, type Stats } from "node:fs";
import { join } from "node:path";
import { sha256hex } from "./image";

/**
 * Every path under `root` (the root as "."), by name order, mapped to `line(st, extra)` where
 * extra is a regular file's sha256 or a symlink's target ("" otherwise). Symlinks not followed.
 */
export function describeTree(root: string, line: (st: Stats, extra: string) => string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    const p = rel ? join(root, rel) : root;
    const st = lstatSync(p);
    const extra = st.isFile() ? sha256hex(readFileSync(p)) : st.isSymbolicLink() ? readlinkSync(p) : "";
    out[rel || "."] = line(st, extra);
    if (st.isDirectory()) for (const n of readdirSync(p).sort()) walk(rel ? `${rel}/${n}` : n);
  };
  walk("");
  return out;
}
