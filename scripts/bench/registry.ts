/**
 * The registry rows of the benchmark: push and pull of the "big" fixture (1 GiB of layer data;
 * 128 MiB with --quick) to and from a loopback registry (Debian's docker-registry, CNCF
 * distribution 2.8, plain HTTP on 127.0.0.1, its storage on tmpfs under the bench's work
 * directory), boci copy against skopeo copy, runs alternating the tools. A push run starts from
 * a registry just started with empty storage (so nothing is skipped and no cross-repository
 * mount is possible); a pull run pulls into an empty directory from one registry seeded once by
 * skopeo. Each run is its own process under /usr/bin/time (measure.ts): wall, CPU, peak RSS. An
 * untimed check after each run records what it left (the manifest digest and the bytes stored).
 *
 * Run by `bun scripts/bench.ts --only registry` (and by the full run).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { registryMissing, startRegistry, storedBlobs, type Registry } from "../../test/helpers/registry";
import { BOCI, WORK, fmtMiB, fmtMiBps, fmtSec, firstLine, log, rmrf } from "./common";
import type { FixtureInfo } from "./fixtures";
import { emptySeries, measure, median, medianWall, type Sample, type Series } from "./measure";

export type RegistryTool = "boci" | "skopeo";
const TOOLS: RegistryTool[] = ["boci", "skopeo"];

export interface RegistryRow {
  key: "push" | "pull";
  op: string;
  /** blob bytes moved by one run (layers, config, manifest) */
  bytes: number;
  results: Record<RegistryTool, Series>;
  checks: Record<RegistryTool, Set<string>>;
}

export interface RegistryBench {
  rows: RegistryRow[];
  skopeoVersion: string | null;
  /** why nothing was measured, when nothing was */
  skipped?: string;
}

const REPO = "bench/big";

function topManifest(image: string): { digest: string; size: number } {
  const ix = JSON.parse(readFileSync(join(image, "index.json"), "utf8")) as { manifests: { digest: string; size: number; annotations?: Record<string, string> }[] };
  const m = ix.manifests.find((d) => d.annotations?.["org.opencontainers.image.ref.name"] === "latest") ?? ix.manifests[0];
  if (!m) throw new Error(`${image}: no manifest`);
  return m;
}

/** Bytes of every blob the image's manifest names, plus the manifest. */
function imageBytes(image: string): number {
  const m = topManifest(image);
  const man = JSON.parse(readFileSync(join(image, "blobs", ...m.digest.split(":")), "utf8")) as { config: { size: number }; layers: { size: number }[] };
  return m.size + man.config.size + man.layers.reduce((s, l) => s + l.size, 0);
}

function argvFor(tool: RegistryTool, src: string, dst: string, side: "src" | "dest"): string[] {
  return tool === "boci"
    ? [BOCI, "copy", "-q", `--${side}-tls-verify=false`, src, dst]
    : ["skopeo", "--insecure-policy", "copy", "-q", `--${side}-tls-verify=false`, src, dst];
}

function record(s: Series, r: { sample: Sample | null; error: string }, label: string, bytes: number): void {
  if (r.sample) {
    s.samples.push(r.sample);
    log(`  ${label}: ${r.sample.wall.toFixed(3)} s wall, ${r.sample.cpu.toFixed(2)} s cpu, ${(r.sample.rss / 1024).toFixed(0)} MiB, ${fmtMiBps(r.sample.wall, bytes)}`);
  } else {
    s.failures++;
    s.lastError = r.error;
    log(`  ${label}: FAILED ${r.error}`);
  }
}

const newRow = (key: RegistryRow["key"], op: string, bytes: number): RegistryRow => ({
  key, op, bytes, results: { boci: emptySeries(), skopeo: emptySeries() }, checks: { boci: new Set(), skopeo: new Set() },
});

/** What a push left in the registry: the tag's manifest digest and the bytes stored. */
async function pushCheck(reg: Registry): Promise<string> {
  const r = await fetch(`${reg.url}/v2/${REPO}/manifests/latest`, { method: "HEAD", headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
  const stored = [...storedBlobs(reg).values()].reduce((a, b) => a + b, 0);
  return `${r.status} ${r.headers.get("docker-content-digest")?.slice(7, 19) ?? "-"}, ${fmtMiB(stored)} stored`;
}

/** What a pull left: the layout's tag, its digest and the blob bytes in it. */
function pullCheck(layout: string): string {
  const m = topManifest(layout);
  return `${m.digest.slice(7, 19)}, ${fmtMiB(imageBytes(layout))}`;
}

/**
 * Push and pull `fx` (the big fixture) with boci and skopeo, `runs` times each, alternating.
 * Every registry it starts is stopped and its storage removed; nothing listens beyond 127.0.0.1.
 */
export async function benchRegistry(fx: FixtureInfo, runs: number): Promise<RegistryBench> {
  const missing = registryMissing() ?? (firstLine(["skopeo", "--version"]) ? null : "needs skopeo (Debian package skopeo)");
  const skopeoVersion = firstLine(["skopeo", "--version"]) || null;
  if (missing) {
    log(`bench: registry rows skipped: ${missing}`);
    return { rows: [], skopeoVersion, skipped: missing };
  }
  const bytes = imageBytes(fx.image);
  const want = topManifest(fx.image).digest.slice(7, 19);
  const src = `oci:${fx.image}:latest`;
  const rows: RegistryRow[] = [];

  log(`[registry] push ${fx.name} (${runs} runs)`);
  const push = newRow("push", `push ${fx.name} (oci: → docker://)`, bytes);
  for (let i = 0; i < runs; i++) {
    for (const t of TOOLS) {
      const reg = await startRegistry({ parent: WORK });
      try {
        const r = measure(argvFor(t, src, `docker://${reg.host}/${REPO}:latest`, "dest"));
        record(push.results[t], r, `${t} #${i + 1}`, bytes);
        if (r.sample) push.checks[t].add(await pushCheck(reg));
      } finally { await reg.stop(); }
    }
  }
  rows.push(push);

  log(`[registry] pull ${fx.name} (${runs} runs)`);
  const pull = newRow("pull", `pull ${fx.name} (docker:// → oci:)`, bytes);
  const reg = await startRegistry({ parent: WORK });
  try {
    // seeded once, by the peer (untimed)
    const seeded = measure(argvFor("skopeo", src, `docker://${reg.host}/${REPO}:latest`, "dest"));
    if (!seeded.sample) throw new Error(`registry bench: seeding the registry failed: ${seeded.error}`);
    for (let i = 0; i < runs; i++) {
      for (const t of TOOLS) {
        const dir = join(WORK, "pull");
        rmrf(dir);
        const r = measure(argvFor(t, `docker://${reg.host}/${REPO}:latest`, `oci:${dir}:latest`, "src"));
        record(pull.results[t], r, `${t} #${i + 1}`, bytes);
        if (r.sample) {
          let c: string;
          try { c = pullCheck(dir); } catch (e) { c = `check failed: ${(e as Error).message}`; }
          pull.checks[t].add(c);
        }
        rmrf(dir);
      }
    }
  } finally { await reg.stop(); }
  rows.push(pull);
  for (const r of rows) for (const t of TOOLS) if (r.results[t].samples.length) log(`  ${r.key} ${t} median: ${medianWall(r.results[t]).toFixed(3)} s`);
  log(`  (source manifest ${want})`);
  return { rows, skopeoVersion };
}

function fmtWall(s: Series): string {
  if (!s.samples.length) return s.failures ? `FAIL (${s.failures}/${s.failures})` : "—";
  const w = s.samples.map((x) => x.wall);
  const fail = s.failures ? ` FAIL ${s.failures}/${s.failures + s.samples.length}` : "";
  return `${fmtSec(median(w))} s (${fmtSec(Math.min(...w))}–${fmtSec(Math.max(...w))})${fail}`;
}
const fmtCpu = (s: Series) => (s.samples.length ? `${fmtSec(median(s.samples.map((x) => x.cpu)))} s` : "—");
const fmtRss = (s: Series) => (s.samples.length ? `${(median(s.samples.map((x) => x.rss)) / 1024).toFixed(0)} MiB` : "—");
const fmtRate = (s: Series, bytes: number) => { const w = medianWall(s); return Number.isFinite(w) ? fmtMiBps(w, bytes) : "—"; };

/** The report's "boci vs skopeo (registry)" section, in the style of the boci vs umoci table. */
export function registryReport(b: RegistryBench): string[] {
  const out = ["## boci vs skopeo: registry push and pull", ""];
  if (b.skipped) return [...out, `Not measured: ${b.skipped}.`, ""];
  out.push(`A loopback registry (Debian's docker-registry, CNCF distribution 2.8; plain HTTP on 127.0.0.1, storage on tmpfs), \`boci copy\` against ${b.skopeoVersion ?? "skopeo"} \`copy\`, runs alternating. Push: \`oci:\` → \`docker://\` into a registry started empty for each run (nothing skipped, nothing mounted). Pull: \`docker://\` → a new \`oci:\` layout from a registry seeded once by skopeo. Wall time median (min–max), CPU = user+sys, peak RSS (medians). Ratio = boci / skopeo median wall time (the target is at most 0.70×).`, "");
  out.push("| Operation | data | boci median (spread) | skopeo median (spread) | ratio | boci MiB/s | skopeo MiB/s | boci CPU | skopeo CPU | boci peak RSS | skopeo peak RSS |");
  out.push("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const r of b.rows) {
    const x = r.results.boci, y = r.results.skopeo;
    const ratio = x.samples.length && y.samples.length ? `${(medianWall(x) / medianWall(y)).toFixed(2)}×` : "—";
    out.push(`| ${r.op} | ${fmtMiB(r.bytes)} | ${fmtWall(x)} | ${fmtWall(y)} | ${ratio} | ${fmtRate(x, r.bytes)} | ${fmtRate(y, r.bytes)} | ${fmtCpu(x)} | ${fmtCpu(y)} | ${fmtRss(x)} | ${fmtRss(y)} |`);
  }
  out.push("");
  out.push("What each run left (untimed check; one value when all runs agree): push = the tag's HEAD status, digest and the bytes the registry stores; pull = the layout tag's digest and its blob bytes.", "");
  out.push("| Operation | boci result | skopeo result |", "| --- | --- | --- |");
  for (const r of b.rows) out.push(`| ${r.op} | ${[...r.checks.boci].join("; ") || "—"} | ${[...r.checks.skopeo].join("; ") || "—"} |`);
  out.push("");
  const errors = b.rows.flatMap((r) => TOOLS.filter((t) => r.results[t].failures).map((t) => `- ${r.op} / ${t}: ${r.results[t].lastError.replace(/\s+/g, " ").slice(0, 300)}`));
  if (errors.length) out.push("Failures:", "", ...errors, "");
  return out;
}
