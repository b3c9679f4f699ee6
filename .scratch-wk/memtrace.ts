const jsc = require("bun:jsc");
const t0 = performance.now(); let last = 0;
const t = setInterval(() => {
  const now = performance.now(); if (now - last < 500) return; last = now;
  const m = process.memoryUsage(); const h = jsc.heapStats();
  const mb = (x: number) => (x / 1048576).toFixed(1);
  console.error(`${((now - t0) / 1000).toFixed(1)}s rss=${mb(m.rss)} heap=${mb(h.heapSize)} cap=${mb(h.heapCapacity)} extra=${mb(h.extraMemorySize)} ab=${mb(m.arrayBuffers)} objs=${h.objectCount}`);
}, 50);
t.unref();
