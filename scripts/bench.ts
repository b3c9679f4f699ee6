/**
 * Benchmark boci against umoci on the same images, side by side.
 *
 *   npm run bench                      # build dist/boci, then the full run (~30 min on 2 cores, estimated)
 *   bun scripts/bench.ts --quick       # smaller fixtures (~5 min)
 *   bun scripts/bench.ts --only small,many --runs 3
 *
 * Options:
 *   --quick          smaller fixtures (5,000 small files, 20,000 many files, 128 MiB of big files, ...)
 *   --only A,B       only these fixtures: small, many, big, distro, layered; `registry`: the
 *                    registry push/pull rows (boci against skopeo, the big fixture; scripts/bench/registry.ts);
 *                    `startup`: short commands against umoci and a compiled hello world (scripts/bench/startup.ts)
 *   --ops A,B        only these operations (by key): unpack, unpack-rootless, repack, repack-1pct,
 *                    repack-add, stat, config, gc, insert, floor
 *   --runs N         runs per operation and tool (default: 5 for fast operations, 3 for slow ones)
 *   --seed N         PRNG seed of the fixtures (default 1)
 *   --boci PATH      the binary to measure (default dist/boci)
 *   --no-umoci       run boci only
 *   --clean          also drop the fixture cache at the end (it is kept in /dev/shm between runs)
 *
 * Modules: scripts/bench/fixtures.ts (fixture generation: contents, layer tars written entry by
 * entry with the test helpers' tar writer and PRNG, images), measure.ts (running commands under
 * /usr/bin/time, series, medians), ops.ts (the operations and floor rows of a fixture),
 * report.ts (the tables of bench/results.md), common.ts (paths and small helpers).
 *
 * Fixtures are built in code from the seed (no downloads): each layer is a tar written by the
 * bench, added with `boci raw add-layer --compress gzip` to a layout made with `boci init` /
 * `boci new`. They are cached by name+seed+size+generator version in /dev/shm/boci-bench/fixtures.
 * Everything else happens in /dev/shm/boci-bench/work (tmpfs), which is removed at the start and
 * at the end.
 *
 * The binary under test is copied to /dev/shm/boci-bench/bin at the start, so a rebuild by someone
 * else during the run cannot change the binary being measured. The "+100 MiB" repack adds 16 MiB
 * with --quick.
 *
 * Every measured command is its own process, run under `/usr/bin/time -f "%e %U %S %M"` (CPU time
 * and peak RSS); wall time is taken around the spawn. boci and umoci alternate run by run, each
 * run starting from an identical, freshly prepared (untimed) state. Unpack and repack rows also
 * give µs per tar entry and MiB/s of uncompressed layer bytes. Floor (a) is Bun's gunzip stream of
 * the layer blobs piped into GNU tar -x (one pipeline). The script only reports: it asserts nothing
 * about the timings. Results go to bench/results.md and stdout.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { BASE, BOCI, BOCI_BUILT, ROOT, WORK, firstLine, log, rmrf, sh } from "./bench/common";
import { FIXTURE_NAMES, fixture, pruneFixtureCache, sizesFor, writeContentFile, type FixtureInfo, type FixtureName } from "./bench/fixtures";
import { HAVE_TIME, Recorder, type Tool } from "./bench/measure";
import { GUNZIP_SCRIPT, OP_KEYS, benchFixture, benchSharedFloor, type BenchConfig, type OpKey, type Shared } from "./bench/ops";
import { report } from "./bench/report";
import { benchRegistry, registryReport, type RegistryBench } from "./bench/registry";
import { benchStartup, startupReport, type StartupBench } from "./bench/startup";

interface Options {
  quick: boolean; only: FixtureName[]; registry: boolean; startup: boolean; ops: OpKey[]; runs: number | null; seed: number; boci: string; noUmoci: boolean; clean: boolean;
}

function usage(msg?: string): never {
  if (msg) console.error(`bench: ${msg}`);
  console.error(`usage: bun scripts/bench.ts [--quick] [--only ${FIXTURE_NAMES.join(",")},registry,startup] [--ops KEYS] [--runs N] [--seed N] [--boci PATH] [--no-umoci] [--clean]`);
  process.exit(2);
}

function parseArgs(argv: string[]): Options {
  const o: Options = { quick: false, only: [...FIXTURE_NAMES], registry: true, startup: true, ops: [...OP_KEYS], runs: null, seed: 1, boci: BOCI_BUILT, noUmoci: false, clean: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) usage(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--quick": o.quick = true; break;
      case "--no-umoci": o.noUmoci = true; break;
      case "--clean": o.clean = true; break;
      case "--boci": o.boci = resolve(value()); break;
      case "--only": {
        const names = value().split(",").map((s) => s.trim()).filter(Boolean);
        o.registry = names.includes("registry");
        o.startup = names.includes("startup");
        const groups = ["registry", "startup"];
        for (const n of names) if (!groups.includes(n) && !(FIXTURE_NAMES as readonly string[]).includes(n)) usage(`unknown fixture ${JSON.stringify(n)} (one of ${FIXTURE_NAMES.join(", ")}, ${groups.join(", ")})`);
        o.only = names.filter((n) => !groups.includes(n)) as FixtureName[];
        break;
      }
      case "--ops": {
        const names = value().split(",").map((s) => s.trim()).filter(Boolean);
        for (const n of names) if (!(OP_KEYS as readonly string[]).includes(n)) usage(`unknown operation ${JSON.stringify(n)} (one of ${OP_KEYS.join(", ")})`);
        o.ops = names as OpKey[];
        break;
      }
      case "--runs": {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 1) usage("--runs needs a positive integer");
        o.runs = n;
        break;
      }
      case "--seed": {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 0) usage("--seed needs a non-negative integer");
        o.seed = n;
        break;
      }
      case "-h": case "--help": usage();
      default: usage(`unknown argument ${JSON.stringify(a)}`);
    }
  }
  return o;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const cfg: BenchConfig = { seed: opts.seed, sizes: sizesFor(opts.quick), ops: opts.ops, fastRuns: opts.runs ?? 5, slowRuns: opts.runs ?? 3 };
  const started = new Date();
  const t0 = performance.now();
  if (!existsSync(opts.boci)) usage(`${opts.boci} not found: run \`bun scripts/build.ts\` first (npm run bench does), or give --boci PATH`);
  if (!HAVE_TIME) log("bench: /usr/bin/time not found; CPU and RSS come from Bun's resourceUsage (apt-get install time for the usual tool)");
  const umociVersion = opts.noUmoci ? null : firstLine(["umoci", "--version"]) || null;
  if (!umociVersion && !opts.noUmoci) log("bench: umoci not found: running boci only");
  const tools: Tool[] = umociVersion ? ["boci", "umoci"] : ["boci"];

  // tmpfs work area: removed at start and end; fixtures are kept (cached by seed and size)
  mkdirSync(BASE, { recursive: true });
  for (const n of readdirSync(BASE)) if (n !== "fixtures") rmrf(join(BASE, n));
  pruneFixtureCache();
  mkdirSync(WORK, { recursive: true });
  mkdirSync(dirname(BOCI), { recursive: true });
  copyFileSync(opts.boci, BOCI);
  sh(["chmod", "755", BOCI], "chmod");
  const commit = firstLine(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]);
  const dirty = firstLine(["git", "-C", ROOT, "status", "--porcelain", "--", "src"]) ? ", src/ modified" : "";
  const bociVersion = `${firstLine([BOCI, "--version"])}, commit ${commit || "?"}${dirty}`;
  const bociSource = opts.boci === BOCI_BUILT ? "dist/boci" : opts.boci;

  try {
    const shared: Shared = { addFile: join(WORK, "added.bin"), insertFile: join(WORK, "insert.bin"), gunzipScript: join(WORK, "gunzip.ts") };
    writeContentFile(shared.addFile, opts.seed ^ 0xadd, cfg.sizes.addSize, opts.seed);
    writeContentFile(shared.insertFile, opts.seed ^ 0x1e5, 10 * 1024 * 1024, opts.seed);
    writeFileSync(shared.gunzipScript, GUNZIP_SCRIPT);

    const rec = new Recorder();
    const fixtures: FixtureInfo[] = [];
    for (const name of opts.only) {
      const fx = fixture(name, opts.seed, cfg.sizes, opts.quick ? "quick" : "full");
      fixtures.push(fx);
      benchFixture(rec, cfg, fx, tools, shared);
    }
    if (opts.only.length) benchSharedFloor(rec, cfg, shared);
    let registry: RegistryBench | undefined;
    if (opts.registry) {
      const big = fixtures.find((f) => f.name === "big") ?? fixture("big", opts.seed, cfg.sizes, opts.quick ? "quick" : "full");
      if (!fixtures.includes(big)) fixtures.push(big);
      registry = await benchRegistry(big, cfg.slowRuns);
    }
    let startup: StartupBench | undefined;
    if (opts.startup) startup = benchStartup(opts.runs ?? 20, tools.includes("umoci"));
    const md = report(rec, fixtures, {
      command: `bun scripts/bench.ts${process.argv.length > 2 ? " " + process.argv.slice(2).join(" ") : ""}`,
      started, seconds: (performance.now() - t0) / 1000, seed: opts.seed, quick: opts.quick, runs: opts.runs,
      bociVersion, bociSource, umociVersion,
    }, [...(startup ? startupReport(startup) : []), ...(registry ? registryReport(registry) : [])]);
    mkdirSync(join(ROOT, "bench"), { recursive: true });
    writeFileSync(join(ROOT, "bench", "results.md"), md + "\n");
    console.log(md);
    log(`bench: wrote bench/results.md (${((performance.now() - t0) / 60000).toFixed(1)} min)`);
  } finally {
    rmrf(WORK);
    rmrf(dirname(BOCI));
    if (opts.clean) rmrf(BASE);
  }
}

await main();
