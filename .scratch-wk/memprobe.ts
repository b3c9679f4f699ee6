const jsc = require("bun:jsc");
let best = { rss: 0 } as any;
const t = setInterval(() => {
  const m = process.memoryUsage();
  if (m.rss > best.rss) { const h = jsc.heapStats(); best = { rss: m.rss, heapSize: h.heapSize, heapCapacity: h.heapCapacity, extraMemorySize: h.extraMemorySize, external: m.external, arrayBuffers: m.arrayBuffers, objectCount: h.objectCount, types: Object.entries(h.objectTypeCounts).sort((a: any, b: any) => b[1] - a[1]).slice(0, 14).map(([k, v]) => k + ":" + v).join(",") }; }
}, 20);
t.unref();
process.on("exit", () => { const mb = (x: number) => (x / 1048576).toFixed(1); console.error("PEAK", Object.entries(best).map(([k, v]) => `${k}=${k === "objectCount" || k === "types" ? v : mb(v as number)}`).join(" ")); });
