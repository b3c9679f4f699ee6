/**
 * The report: machine description, fixture table, boci vs umoci table (with µs per tar entry and
 * MiB/s of uncompressed layer bytes for unpack and repack), what each run left, the floor and
 * boci's unpack against it. Markdown, written to bench/results.md and stdout by the entry point.
 */
import { readFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { BASE, fmtMiB, fmtMiBps, fmtSec, fmtUsPerEntry, firstLine } from "./common";
import type { FixtureInfo } from "./fixtures";
import { median, medianWall, type Recorder, type Series, type Tool } from "./measure";

export interface ReportInfo {
  /** the command line, as run */
  command: string;
  started: Date;
  seconds: number;
  seed: number;
  quick: boolean;
  /** runs per tool, when --runs was given */
  runs: number | null;
  bociVersion: string;
  /** where the measured binary came from */
  bociSource: string;
  umociVersion: string | null;
}

function fmtWall(s: Series | undefined): string {
  if (!s) return "—";
  if (!s.samples.length) return s.failures ? `FAIL (${s.failures}/${s.failures})` : "—";
  const w = s.samples.map((x) => x.wall);
  const fail = s.failures ? ` FAIL ${s.failures}/${s.failures + s.samples.length}` : "";
  return `${fmtSec(median(w))} s (${fmtSec(Math.min(...w))}–${fmtSec(Math.max(...w))})${fail}`;
}
function fmtCpu(s: Series | undefined): string { return s?.samples.length ? `${fmtSec(median(s.samples.map((x) => x.cpu)))} s` : "—"; }
function fmtRss(s: Series | undefined): string { return s?.samples.length ? `${(median(s.samples.map((x) => x.rss)) / 1024).toFixed(0)} MiB` : "—"; }
function fmtRatio(a: Series | undefined, b: Series | undefined): string {
  if (!a?.samples.length || !b?.samples.length) return "—";
  return `${(medianWall(a) / medianWall(b)).toFixed(2)}×`;
}
function usPerEntry(s: Series | undefined, entries: number | undefined): string {
  const w = medianWall(s);
  return entries && Number.isFinite(w) ? fmtUsPerEntry(w, entries) : "—";
}
function mibps(s: Series | undefined, bytes: number | undefined): string {
  const w = medianWall(s);
  return bytes && Number.isFinite(w) ? fmtMiBps(w, bytes) : "—";
}

function machine(rec: Recorder, info: ReportInfo): string[] {
  const cpuModel = (() => {
    try { return /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? cpus()[0]?.model ?? "?"; } catch { return "?"; }
  })();
  return [
    `- CPU: ${cpuModel}; nproc: ${firstLine(["nproc"]) || cpus().length}`,
    `- memory: ${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    `- kernel: ${firstLine(["uname", "-sr"])}`,
    `- bun: ${Bun.version}; boci: ${info.bociVersion} (${info.bociSource}, copied at the start of the run)`,
    `- umoci: ${info.umociVersion ?? "not installed (boci only)"}`,
    `- gzip: ${firstLine(["gzip", "--version"])}; tar: ${firstLine(["tar", "--version"])}`,
    `- work directory: ${BASE} (tmpfs)`,
    `- load average (1 min) at start / max / end: ${rec.loadStart.toFixed(2)} / ${rec.loadMax.toFixed(2)} / ${loadavg()[0]!.toFixed(2)}${rec.loadMax > cpus().length + 1.5 ? " — **other processes were using the CPU during the run: timings are inflated and noisy**" : ""}`,
  ];
}

/** `registry`: the lines of the registry section (scripts/bench/registry.ts registryReport), when it ran. */
export function report(rec: Recorder, fixtures: FixtureInfo[], info: ReportInfo, sections: string[] = []): string {
  const { rows, floorRows } = rec;
  const out: string[] = [];
  out.push("# boci benchmark results", "");
  out.push(`Command: \`${info.command}\` (\`npm run bench\` = build + full run). Started ${info.started.toISOString()}, took ${(info.seconds / 60).toFixed(1)} min.`, "");
  out.push("## Machine", "", ...machine(rec, info), "");
  out.push("## Fixtures", "", `Seed ${info.seed}, ${info.quick ? "--quick sizes" : "full sizes"}. Layers are gzip blobs written by \`boci raw add-layer --compress gzip\`. Entries = tar entries over all layers (files, directories, links; PAX headers not counted).`, "");
  out.push("| Fixture | Content | Layers | Files | Entries | Uncompressed | gzip |", "| --- | --- | --- | --- | --- | --- | --- |");
  for (const f of fixtures) out.push(`| ${f.name} | ${f.description} | ${f.layerTars.length} | ${f.files.toLocaleString("en")} | ${f.entries.toLocaleString("en")} | ${fmtMiB(f.tarBytes)} | ${fmtMiB(f.blobBytes)} |`);
  out.push("");
  out.push("## boci vs umoci", "");
  out.push(`Wall time median (min–max) over ${info.runs ?? "3 (unpack/repack) or 5 (other)"} runs per tool, runs alternating boci/umoci, each from a fresh copy of the same state; CPU = user+sys (median); peak RSS = max resident set (median). Ratio = boci / umoci median wall time (below 1 = boci faster). For unpack and repack: µs/entry = median wall time / the fixture's tar entries, MiB/s = the fixture's uncompressed layer bytes / median wall time (the same units for every fixture, so that small and many show whether the time is linear in the entry count).`, "");
  if (!info.umociVersion) out.push("**umoci is not installed: boci only.**", "");
  out.push("| Fixture | Operation | boci median (spread) | umoci median (spread) | ratio | boci µs/entry | umoci µs/entry | boci MiB/s | umoci MiB/s | boci CPU | umoci CPU | boci peak RSS | umoci peak RSS |");
  out.push("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const r of rows) {
    const b = r.results.boci, u = r.results.umoci;
    out.push(`| ${r.fixture} | ${r.op} | ${fmtWall(b)} | ${fmtWall(u)} | ${fmtRatio(b, u)} | ${usPerEntry(b, r.scale?.entries)} | ${usPerEntry(u, r.scale?.entries)} | ${mibps(b, r.scale?.bytes)} | ${mibps(u, r.scale?.bytes)} | ${fmtCpu(b)} | ${fmtCpu(u)} | ${fmtRss(b)} | ${fmtRss(u)} |`);
  }
  out.push("");
  const errors = rows.flatMap((r) => (Object.entries(r.results) as [Tool, Series][]).filter(([, s]) => s.failures).map(([t, s]) => `- ${r.fixture} / ${r.op} / ${t}: ${s.lastError.replace(/\s+/g, " ").slice(0, 300)}`));
  if (info.umociVersion) {
    out.push("What each run left behind (untimed check after the run; one value when all runs agree). A repack or insert whose new layer is much smaller than the other tool's did not do the same work.", "");
    out.push("| Fixture | Operation | boci result | umoci result |", "| --- | --- | --- | --- |");
    for (const r of rows) out.push(`| ${r.fixture} | ${r.op} | ${[...(r.checks.boci ?? [])].join("; ") || "—"} | ${[...(r.checks.umoci ?? [])].join("; ") || "—"} |`);
    out.push("");
  }
  out.push(...sections);
  for (const f of floorRows) if (f.series.failures) errors.push(`- floor ${f.fixture} / ${f.op}: ${f.series.lastError.replace(/\s+/g, " ").slice(0, 300)}`);
  if (errors.length) out.push("Failures:", "", ...errors, "");
  if (floorRows.length) {
    out.push("## Floor: the same data through the plain tools", "");
    out.push("What the hardware does with the same bytes, without any image logic: Bun's node:zlib gunzip stream of the layer blobs piped into GNU tar -x (one pipeline, both processes at once: floor (a)), extracting the uncompressed layer tars alone (GNU tar into tmpfs), decompressing the layer blobs alone (gzip, Bun's node:zlib), hashing (coreutils sha256sum, and OpenSSL, which uses the CPU's SHA instructions as boci's hasher does). µs/entry and MiB/s of the extracting rows in the same units as above.", "");
    out.push("| Fixture | Operation | median (spread) | CPU | peak RSS | data | throughput | µs/entry |", "| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (const f of floorRows) {
      const w = medianWall(f.series);
      out.push(`| ${f.fixture} | ${f.op} | ${fmtWall(f.series)} | ${fmtCpu(f.series)} | ${fmtRss(f.series)} | ${f.bytes ? fmtMiB(f.bytes) : "—"} | ${Number.isFinite(w) && f.bytes ? fmtMiBps(w, f.bytes) : "—"} | ${f.scale ? usPerEntry(f.series, f.scale.entries) : "—"} |`);
    }
    out.push("");
    // boci's unpack against two floors: (a) gunzip | tar -x as one pipeline (what `tar -xzf` of
    // the layers would do, decompressing on another core), and (b) that plus the hashing a
    // verified unpack with an mtree manifest cannot skip (the blob, the diffID and every file: the
    // uncompressed bytes twice), the hashing as a serial sum on one core.
    const med = (fx: string, key: string): number => medianWall(floorRows.find((r) => r.fixture === fx && r.key === key)?.series);
    const lines: string[] = [];
    for (const fx of fixtures) {
      const u = medianWall(rows.find((r) => r.fixture === fx.name && r.key === "unpack")?.results.boci);
      if (!Number.isFinite(u)) continue;
      const base = med(fx.name, "gunzip-pipe-tar");
      if (!Number.isFinite(base)) continue;
      const hashed = base + med(fx.name, "openssl-blobs") + 2 * med(fx.name, "openssl-tars");
      const hashedOk = Number.isFinite(hashed);
      lines.push(`| ${fx.name} | ${fx.entries.toLocaleString("en")} | ${fmtSec(u)} s | ${fmtUsPerEntry(u, fx.entries)} | ${fmtSec(base)} s | ${fmtUsPerEntry(base, fx.entries)} | ${(u / base).toFixed(2)}× | ${hashedOk ? `${fmtSec(hashed)} s` : "—"} | ${hashedOk ? `${(u / hashed).toFixed(2)}×` : "—"} |`);
    }
    if (lines.length) {
      out.push("boci unpack against the floor: (a) Bun's gunzip stream piped into GNU tar -x, one pipeline (measured); (b) (a) plus the sha256 work an unpack must do (the blob once, the uncompressed layer twice: diffID and the mtree's file digests; OpenSSL, added as a serial sum on one core). boci spreads its hashing over both cores.", "");
      out.push("| Fixture | Entries | boci unpack | boci µs/entry | floor (a) | floor (a) µs/entry | boci / (a) | floor (b) | boci / (b) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |", ...lines, "");
    }
  }
  return out.join("\n");
}
