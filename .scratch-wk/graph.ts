// static import graph from an entry, following only top-level (non-type) imports
import { readFileSync, existsSync, statSync } from "fs";
import { dirname, resolve } from "path";
const seen = new Map<string, number>();
function res(from: string, spec: string): string | null {
  if (!spec.startsWith(".")) return null;
  const base = resolve(dirname(from), spec);
  for (const c of [base + ".ts", base + "/index.ts", base]) if (existsSync(c) && statSync(c).isFile()) return c;
  return null;
}
function walk(f: string) {
  if (seen.has(f)) return;
  const src = readFileSync(f, "utf8");
  seen.set(f, src.length);
  for (const m of src.matchAll(/^import\s+(?!type\b)([^;]*?)\s+from\s+"([^"]+)";/gms)) {
    if (/^\{[^}]*\}$/.test(m[1]!.trim()) && m[1]!.replace(/[{}\s]/g, "").split(",").every((x) => x.startsWith("type"))) continue;
    const r = res(f, m[2]!); if (r) walk(r); else if (m[2]!.startsWith("node:") || m[2]!.startsWith("bun:")) seen.set(m[2]!, 0);
  }
  for (const m of src.matchAll(/^export\s+(?!type\b)[^;]*?from\s+"([^"]+)";/gms)) { const r = res(f, m[1]!); if (r) walk(r); }
}
for (const e of process.argv.slice(2)) walk(resolve(e));
let tot = 0; for (const [f, n] of [...seen].sort((a, b) => b[1] - a[1])) { tot += n; console.log(n, f.replace(process.cwd() + "/", "")); }
console.log("total", tot, "modules", seen.size);
