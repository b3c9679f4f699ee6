/**
 * The start-up rows of the benchmark: short commands on a tiny layout (one empty image with a
 * config and three history entries), boci against umoci, with the floor every Bun-compiled binary
 * pays: a "hello world" compiled the same way as dist/boci (scripts/build.ts's flags: --compile
 * --bytecode, ESM with splitting, the same JIT policy, minified syntax and whitespace), which writes one line with fs.writeSync
 * as boci writes its output. All three alternate run by run, each its own process under
 * /usr/bin/time (measure.ts), so the spawn and timing overhead is the same in every column.
 *
 * Run by `bun scripts/bench.ts --only startup` (and by the full run).
 */
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BOCI, WORK, log, rmrf, sh } from "./common";
import { START_JIT_POLICY } from "../../src/util/jit";
import { emptySeries, measure, median, medianWall, type Series } from "./measure";

type StartupTool = "boci" | "umoci" | "floor";

export interface StartupRow { op: string; results: Partial<Record<StartupTool, Series>> }
export interface StartupBench { rows: StartupRow[]; floorSize: number; bociSize: number }

const HELLO = `require("node:fs").writeSync(1, "hello\\n");\n`;

/** The hello-world binary, built with scripts/build.ts's flags. */
function buildFloor(dir: string): string {
  const src = join(dir, "hello.ts");
  const out = join(dir, "hello");
  writeFileSync(src, HELLO);
  sh([process.execPath, "build", "--compile", "--bytecode", "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig", "--format=esm", "--splitting", `--compile-jit-policy=${START_JIT_POLICY}`,
    "--minify-syntax", "--minify-whitespace", src, "--outfile", out], "build the hello-world floor");
  return out;
}

export function benchStartup(runs: number, haveUmoci: boolean): StartupBench {
  const dir = join(WORK, "startup");
  rmrf(dir);
  mkdirSync(dir, { recursive: true });
  try {
    const floor = buildFloor(dir);
    // boci runs from a copy beside the floor: the same filesystem for both (a binary read from
    // ext4 maps more of itself per page fault than one on tmpfs: +4-5 MiB peak RSS for either).
    const boci = join(dir, "boci");
    copyFileSync(BOCI, boci);
    chmodSync(boci, 0o755);
    const layout = join(dir, "layout");
    // the image: made by boci, read by both tools (an OCI layout umoci 0.4.7 reads)
    sh([boci, "init", "--layout", layout], "boci init");
    sh([boci, "new", "--image", `${layout}:latest`], "boci new");
    sh([boci, "config", "--image", `${layout}:latest`, "--config.env", "A=B", "--config.cmd", "/bin/sh"], "boci config");
    sh([boci, "config", "--image", `${layout}:latest`, "--config.user", "1000"], "boci config");
    const bin: Record<Exclude<StartupTool, "floor">, string> = { boci, umoci: "umoci" };
    const ops: Array<{ op: string; args: (tool: "boci" | "umoci", i: number) => string[] }> = [
      { op: "--version", args: () => ["--version"] },
      { op: "stat", args: () => ["stat", "--image", `${layout}:latest`] },
      { op: "ls", args: () => ["ls", "--layout", layout] },
      { op: "tag", args: (t, i) => ["tag", "--image", `${layout}:latest`, `${t}-${i}`] },
      { op: "config --config.env", args: () => ["config", "--image", `${layout}:latest`, "--config.env", "X=Y"] },
    ];
    const rows: StartupRow[] = [];
    // the floor, once per run of every row, is one series of its own (the first row shows it)
    const floorSeries = emptySeries();
    for (const o of ops) {
      const row: StartupRow = { op: o.op, results: { boci: emptySeries(), ...(haveUmoci ? { umoci: emptySeries() } : {}) } };
      for (let i = 0; i < runs; i++) {
        for (const t of ["boci", "umoci", "floor"] as const) {
          if (t === "umoci" && !haveUmoci) continue;
          const r = measure(t === "floor" ? [floor] : [bin[t], ...o.args(t, i)], dir);
          const s = t === "floor" ? floorSeries : row.results[t]!;
          if (r.sample) s.samples.push(r.sample);
          else { s.failures++; s.lastError = r.error; }
        }
      }
      rows.push(row);
    }
    for (const r of rows) r.results.floor = floorSeries;
    const size = (p: string) => Bun.file(p).size;
    return { rows, floorSize: size(floor), bociSize: size(BOCI) };
  } catch (e) {
    log(`bench: start-up rows failed: ${(e as Error).message}`);
    return { rows: [], floorSize: 0, bociSize: 0 };
  } finally {
    rmrf(dir);
  }
}

const ms = (s: Series | undefined): string => (s?.samples.length ? `${(medianWall(s) * 1000).toFixed(1)} ms` : "—");
const rss = (s: Series | undefined): string => (s?.samples.length ? `${(median(s.samples.map((x) => x.rss)) / 1024).toFixed(1)} MiB` : "—");
const ratio = (a: Series | undefined, b: Series | undefined): string => {
  const x = medianWall(a), y = medianWall(b);
  return Number.isFinite(x) && Number.isFinite(y) && y > 0 ? `${(x / y).toFixed(2)}×` : "—";
};

export function startupReport(b: StartupBench): string[] {
  if (!b.rows.length) return ["## Start-up", "", "Not measured (see the log).", ""];
  const out = ["## Start-up", "",
    `Short commands on a tiny layout (one image, three history entries). Floor = a Bun "hello world" compiled with dist/boci's build flags (${(b.floorSize / 1048576).toFixed(1)} MiB binary; boci's is ${(b.bociSize / 1048576).toFixed(1)} MiB), run alternately with boci and umoci (boci and the floor from the same tmpfs directory), each run its own process under /usr/bin/time; medians of ${b.rows[0]!.results.boci!.samples.length} runs. The spawn and timing overhead is in every column alike.`, "",
    "| Command | boci | umoci | floor | boci / floor | boci / umoci | boci peak RSS | floor peak RSS | umoci peak RSS |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"];
  for (const r of b.rows) {
    const { boci, umoci, floor } = r.results;
    out.push(`| ${r.op} | ${ms(boci)} | ${ms(umoci)} | ${ms(floor)} | ${ratio(boci, floor)} | ${ratio(boci, umoci)} | ${rss(boci)} | ${rss(floor)} | ${rss(umoci)} |`);
  }
  out.push("");
  return out;
}
