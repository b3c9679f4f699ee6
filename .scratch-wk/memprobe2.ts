const jsc = require("bun:jsc");
let best = { rss: 0 } as any; let bestTypes = "";
const t = setInterval(() => {
  const m = process.memoryUsage();
  if (m.rss > best.rss) { const h = jsc.heapStats(); best = { rss: m.rss, heapSize: h.heapSize, external: m.external, objects: h.objectCount }; bestTypes = Object.entries(h.objectTypeCounts).sort((a: any, b: any) => b[1] - a[1]).slice(0, 10).map(([k, v]) => k + ":" + v).join(","); }
}, 20);
t.unref();
process.on("exit", () => {
  const mb = (x: number) => (x / 1048576).toFixed(1);
  console.error("PEAK", Object.entries(best).map(([k, v]) => `${k}=${k === "objects" ? v : mb(v as number)}`).join(" "), bestTypes);
});
