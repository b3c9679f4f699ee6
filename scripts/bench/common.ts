/**
 * Paths, constants and small helpers shared by the benchmark's modules (scripts/bench.ts is the
 * entry point; see its header for what the benchmark does).
 */
import { readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "..", "..");
/** the binary measured by default (`--boci PATH` measures another one) */
export const BOCI_BUILT = join(ROOT, "dist/boci");
export const BASE = "/dev/shm/boci-bench";
/** the binary under test is copied here at the start, so a rebuild during the run cannot change what is measured */
export const BOCI = join(BASE, "bin", "boci");
export const FIXTURES = join(BASE, "fixtures");
export const WORK = join(BASE, "work");
export const MiB = 1024 * 1024;

export function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

/** Run a command to completion; throw with its stderr when it fails. */
export function sh(argv: string[], what: string): string {
  const p = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${what} failed (${argv.join(" ")}): ${p.stderr.toString().trim().slice(-2000)}`);
  return p.stdout.toString();
}

/** The first line a command prints (stdout, else stderr), "" when it cannot run. */
export function firstLine(argv: string[]): string {
  try {
    const p = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
    return (p.stdout.toString() + p.stderr.toString()).trim().split("\n")[0] ?? "";
  } catch { return ""; }
}

export function cpA(src: string, dst: string): void { sh(["cp", "-a", src, dst], "cp -a"); }
export function rmrf(p: string): void { rmSync(p, { recursive: true, force: true }); }

export function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
}

/** Layer descriptors of the image tagged "latest" (or the first manifest) in an OCI layout. */
export function manifestLayers(image: string): { digest: string; size: number }[] {
  const index = JSON.parse(readFileSync(join(image, "index.json"), "utf8")) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const m = index.manifests.find((d) => d.annotations?.["org.opencontainers.image.ref.name"] === "latest") ?? index.manifests[0];
  if (!m) throw new Error(`${image}: no manifest`);
  const blob = (d: string): string => join(image, "blobs", ...d.split(":"));
  const manifest = JSON.parse(readFileSync(blob(m.digest), "utf8")) as { layers: { digest: string; size: number }[] };
  return manifest.layers.map((l) => ({ digest: l.digest, size: l.size }));
}

export function fmtSec(x: number): string { return x < 10 ? x.toFixed(3) : x < 100 ? x.toFixed(2) : x.toFixed(1); }
export function fmtMiB(bytes: number): string { return `${(bytes / MiB).toFixed(bytes < 10 * MiB ? 1 : 0)} MiB`; }
/** µs per entry and MiB/s of a wall time over `entries` tar entries holding `bytes` uncompressed bytes */
export function fmtUsPerEntry(wall: number, entries: number): string { return entries ? `${((wall * 1e6) / entries).toFixed(1)} µs` : "—"; }
export function fmtMiBps(wall: number, bytes: number): string { return wall > 0 && bytes ? `${(bytes / MiB / wall).toFixed(0)} MiB/s` : "—"; }
