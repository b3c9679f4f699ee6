import { readFileSync } from "fs";
const seen = new Map<string, number>();
function walk(f: string) {
  if (seen.has(f)) return;
  const s = readFileSync(f, "utf8"); seen.set(f, s.length);
  for (const m of s.matchAll(/(?:from|import)\s*"(\.\/[^"]+)"/g)) walk(m[1]!.replace("./", ""));
}
walk(process.argv[2]!);
let t = 0; for (const [f, n] of [...seen].sort((a, b) => b[1] - a[1])) { t += n; console.log(n, f, readFileSync(f, "utf8").slice(0, 0)); }
console.log("total", t, "chunks", seen.size);
