/**
 * Running and timing commands: each measured command is its own process under
 * `/usr/bin/time -f "%e %U %S %M"` (CPU time and peak RSS; Bun's resourceUsage without it), wall
 * time taken around the spawn. Operations alternate the tools run by run, each run from a freshly
 * prepared (untimed) state; results collect in a `Recorder` as series of samples.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { BOCI, WORK, fmtMiBps, fmtUsPerEntry, log, rmrf } from "./common";

export interface Sample { wall: number; cpu: number; rss: number /* KiB */ }
export interface Series { samples: Sample[]; failures: number; lastError: string }

export type Tool = "boci" | "umoci";
export const TOOL_BIN: Record<Tool, string> = { boci: BOCI, umoci: "umoci" };

/** What one run of an operation processes: for µs per entry and MiB/s. */
export interface Scale { entries: number; bytes: number }

export interface OpRow {
  fixture: string;
  /** operation key (unpack, unpack-rootless, repack, ...) */
  key: string;
  /** the label in the tables */
  op: string;
  scale?: Scale;
  results: Partial<Record<Tool, Series>>;
  checks: Partial<Record<Tool, Set<string>>>;
}
export interface FloorRow { fixture: string; key: string; op: string; bytes: number; scale?: Scale; series: Series }

export const HAVE_TIME = existsSync("/usr/bin/time");
export const HAVE_OPENSSL = Bun.spawnSync(["openssl", "version"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;

export function measure(argv: string[], cwd = WORK): { sample: Sample | null; error: string } {
  const tf = join(WORK, ".time");
  rmSync(tf, { force: true });
  const full = HAVE_TIME ? ["/usr/bin/time", "-f", "%e %U %S %M", "-o", tf, ...argv] : argv;
  const t0 = performance.now();
  const p = Bun.spawnSync(full, { cwd, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const wall = (performance.now() - t0) / 1000;
  if (p.exitCode !== 0) return { sample: null, error: `exit ${p.exitCode}: ${p.stderr.toString().trim().slice(-600)}` };
  if (HAVE_TIME) {
    const lines = readFileSync(tf, "utf8").trim().split("\n");
    const f = lines[lines.length - 1]!.trim().split(/\s+/).map(Number);
    return { sample: { wall, cpu: (f[1] ?? 0) + (f[2] ?? 0), rss: f[3] ?? 0 }, error: "" };
  }
  const ru = p.resourceUsage;
  return { sample: { wall, cpu: Number(ru.cpuTime.user + ru.cpuTime.system) / 1e6, rss: ru.maxRSS }, error: "" };
}

export function emptySeries(): Series { return { samples: [], failures: 0, lastError: "" }; }

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** median wall time of a series, NaN without samples */
export function medianWall(s: Series | undefined): number {
  return s?.samples.length ? median(s.samples.map((x) => x.wall)) : NaN;
}

function perEntry(wall: number, scale: Scale | undefined): string {
  return scale ? `, ${fmtUsPerEntry(wall, scale.entries)}/entry, ${fmtMiBps(wall, scale.bytes)}` : "";
}

function record(s: Series, r: { sample: Sample | null; error: string }, label: string, scale?: Scale): void {
  if (r.sample) {
    s.samples.push(r.sample);
    log(`  ${label}: ${r.sample.wall.toFixed(3)} s wall, ${r.sample.cpu.toFixed(2)} s cpu, ${(r.sample.rss / 1024).toFixed(0)} MiB${perEntry(r.sample.wall, scale)}`);
  } else {
    s.failures++;
    s.lastError = r.error;
    log(`  ${label}: FAILED ${r.error}`);
  }
}

export interface OpSpec {
  fixture: string; key: string; op: string; runs: number; scale?: Scale;
  /** builds the run's starting state in `dir` (untimed), returns the argv tail after the tool's binary; null: cannot run */
  prepare: (tool: Tool, dir: string) => string[] | null;
  /** describes what the run left in `dir` (untimed) */
  check: (dir: string) => string;
}

export class Recorder {
  readonly rows: OpRow[] = [];
  readonly floorRows: FloorRow[] = [];
  readonly loadStart = loadavg()[0]!;
  loadMax = loadavg()[0]!;

  sampleLoad(): void { this.loadMax = Math.max(this.loadMax, loadavg()[0]!); }

  /** Run one operation `runs` times per tool, alternating the tools; each run directory is removed afterwards. */
  runOp(tools: Tool[], o: OpSpec): OpRow {
    log(`[${o.fixture}] ${o.op} (${o.runs} runs)`);
    const row: OpRow = { fixture: o.fixture, key: o.key, op: o.op, scale: o.scale, results: {}, checks: {} };
    for (const t of tools) { row.results[t] = emptySeries(); row.checks[t] = new Set(); }
    for (let i = 0; i < o.runs; i++) {
      for (const t of tools) {
        const dir = join(WORK, "run");
        rmrf(dir);
        mkdirSync(dir, { recursive: true });
        const args = o.prepare(t, dir);
        const s = row.results[t]!;
        if (!args) { s.failures++; s.lastError = "preparation failed"; continue; }
        const r = measure([TOOL_BIN[t], ...args], dir);
        record(s, r, `${t} #${i + 1}`, o.scale);
        if (r.sample) {
          // untimed: what the run produced, so a too-good-to-be-true time can be told from a real one
          let c: string;
          try { c = o.check(dir); } catch (e) { c = `check failed: ${(e as Error).message}`; }
          row.checks[t]!.add(c);
        }
        rmrf(dir);
      }
      this.sampleLoad();
    }
    if (o.scale && o.runs > 1) {
      for (const t of tools) {
        const w = medianWall(row.results[t]);
        if (Number.isFinite(w)) log(`  ${t} median: ${w.toFixed(3)} s${perEntry(w, o.scale)}`);
      }
    }
    this.rows.push(row);
    return row;
  }

  /** Run a plain command `runs` times in a fresh directory (`argv` gets its path). */
  runFloor(fx: string, key: string, op: string, bytes: number, runs: number, argv: (dir: string) => string[], scale?: Scale): FloorRow {
    log(`[${fx}] floor: ${op}`);
    const s = emptySeries();
    for (let i = 0; i < runs; i++) {
      const dir = join(WORK, "floor");
      rmrf(dir);
      mkdirSync(dir, { recursive: true });
      record(s, measure(argv(dir), dir), `#${i + 1}`, scale);
      rmrf(dir);
    }
    this.sampleLoad();
    const row: FloorRow = { fixture: fx, key, op, bytes, scale, series: s };
    this.floorRows.push(row);
    return row;
  }
}
