/**
 * boci against umoci 0.6, through the real binary: `stat`'s human format and `--json` shape,
 * artifacts, and the command line (usage errors, help, error prefix).
 *
 * Where umoci 0.4.7 (Debian's /usr/bin/umoci) prints the same as 0.6 — the history table, the
 * `--json` history list — the test compares with it byte for byte; the rest is compared with
 * text derived from 0.6's source (utils.go `Format` and the pprint helpers, stat.go).
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { boci, ok, scratch, have } from "../helpers/cli";
import { writeBlob, setTag, MT, type Descriptor } from "../helpers/image";

const hasUmoci = have("umoci") && Bun.spawnSync(["umoci", "--version"]).stdout.toString().includes("0.4.7");
const hex = (c: string) => c.repeat(64);
const LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip";
const EMPTY = { mediaType: "application/vnd.oci.empty.v1+json", digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", size: 2 };

function layout(): string {
  const l = join(scratch("boci-fidelity-"), "l");
  ok(["init", "--layout", l]);
  return l;
}

/** Store `config` (an object, or raw text) and a manifest naming it; tag it "t". */
function image(l: string, manifest: Record<string, unknown>, config?: unknown, configType: string = MT.config): { m: Descriptor; c?: Descriptor; mText: string } {
  let c: Descriptor | undefined;
  if (config !== undefined) c = writeBlob(l, Buffer.from(typeof config === "string" ? config : JSON.stringify(config)), configType);
  const mText = JSON.stringify({ schemaVersion: 2, mediaType: MT.manifest, ...(c ? { config: c } : {}), ...manifest });
  const m = writeBlob(l, Buffer.from(mText), MT.manifest);
  setTag(l, "t", m);
  return { m, c, mText };
}

/** A file tree's names, sizes and mtimes: to show a failed command changed nothing. */
function snapshot(dir: string): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const st = statSync(p);
      out.push(`${p} ${st.size} ${st.mtimeMs}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.join("\n");
}

/** umoci 0.6's go-units HumanSize for what the fixtures use. */
const RICH_CONFIG = {
  created: "2020-01-02T03:04:05.500+00:00", author: "A. U. Thor", architecture: "arm64", variant: "v8", os: "linux",
  "os.version": "6.1", "os.features": ["f1", "f 2"],
  config: {
    User: "1000:1000", ExposedPorts: { "80/tcp": {}, "443/tcp": {} }, Env: ["PATH=/bin", "A=b c"], Entrypoint: ["/bin/sh", "-c"],
    Cmd: ["echo hi"], Volumes: { "/data": {}, "/a,b": {} }, WorkingDir: "/srv", Labels: { k: "v", "sp ace": "1,2" }, StopSignal: "SIGTERM", ArgsEscaped: true,
  },
  rootfs: { type: "layers", diff_ids: [`sha256:${hex("d")}`, `sha256:${hex("e")}`, `sha256:${hex("1")}`] },
  history: [
    { created: "2020-01-01T00:00:00Z", created_by: "/bin/sh -c #(nop) ADD file", comment: "base" },
    { created: "2020-01-01T00:00:01+05:30", created_by: "boci config", empty_layer: true },
    { created: "2020-01-02T00:00:00.123456789Z", created_by: "ünïcödé 日本 😀 wide", author: "x", comment: "" },
    { created: "2020-01-03T00:00:00.100+00:00", created_by: "a", comment: "trailing cell" },
  ],
};
const LAYERS = [
  { mediaType: LAYER_GZ, digest: `sha256:${hex("a")}`, size: 1062500, annotations: { "ci.umo.uncompressed_blob_size": "2048" } },
  { mediaType: MT.layer, digest: `sha256:${hex("b")}`, size: 999, urls: ["https://a.example/x", "b c"] },
  { mediaType: MT.layer, digest: `sha256:${hex("c")}`, size: 1000 },
];

describe("stat: human format (umoci 0.6's Format)", () => {
  test("every section, quoting, sorting, nesting and sizes as 0.6 prints them", () => {
    const l = layout();
    const subject = { mediaType: MT.manifest, digest: `sha256:${hex("f")}`, size: 123, artifactType: "application/vnd.example+json" };
    const { m, c } = image(l, { layers: LAYERS, subject, annotations: { z: "last", "a key": "x, y", b: "" } }, RICH_CONFIG);
    const out = ok(["stat", "--image", `${l}:t`]).stdout;
    const hs = (n: number) => (n < 1000 ? `${n}B` : `${Number((n / 1000).toPrecision(4))}kB`); // no ties among these sizes
    const desc = (p: string, d: Descriptor, extra = "") => `${p}Descriptor:\n${p}\tMedia Type: ${d.mediaType}\n${p}\tDigest: ${d.digest}\n${p}\tSize: ${hs(d.size)}\n${extra}`;
    const expected = [
      "== MANIFEST ==",
      "Schema Version: 2",
      `Media Type: ${MT.manifest}`,
      "Config:",
      desc("\t", c!).trimEnd(),
      "Layers:",
      "\tDescriptor:", `\t\tMedia Type: ${LAYER_GZ}`, `\t\tDigest: sha256:${hex("a")}`, "\t\tSize: 1.062MB", // go-units: %.4g, ties to even
      "\t\tAnnotations:", "\t\t\tci.umo.uncompressed_blob_size: 2048",
      "\tDescriptor:", `\t\tMedia Type: ${MT.layer}`, `\t\tDigest: sha256:${hex("b")}`, "\t\tSize: 999B",
      "\t\tURLs:", "\t\t\thttps://a.example/x", '\t\t\t"b c"',
      "\tDescriptor:", `\t\tMedia Type: ${MT.layer}`, `\t\tDigest: sha256:${hex("c")}`, "\t\tSize: 1kB",
      "Subject:",
      "\tDescriptor:", `\t\tMedia Type: ${MT.manifest}`, "\t\tArtifact Type: application/vnd.example+json", `\t\tDigest: sha256:${hex("f")}`, "\t\tSize: 123B",
      "Annotations:", '\t"a key": "x, y"', '\tb: ""', "\tz: last",
      desc("", m, "\tAnnotations:\n\t\torg.opencontainers.image.ref.name: t\n").trimEnd(),
      "",
      "== CONFIG ==",
      "Created: 2020-01-02T03:04:05.5Z",
      'Author: "A. U. Thor"',
      "Platform:", "\tOS: linux", "\tOS Version: 6.1", '\tOS Features: f1, "f 2"', "\tArchitecture: arm64 (v8)",
      "Image Config:",
      "\tUser: 1000:1000",
      "\tEntrypoint (escaped):", "\t\t/bin/sh", "\t\t-c",
      "\tCommand (escaped):", '\t\t"echo hi"',
      "\tWorking Directory: /srv",
      "\tEnvironment:", "\t\tPATH=/bin", '\t\t"A=b c"',
      "\tStop Signal: SIGTERM",
      "\tExposed Ports: 443/tcp, 80/tcp",
      '\tVolumes: "/a,b", /data',
      "\tLabels:", "\t\tk: v", '\t\t"sp ace": "1,2"',
      desc("", c!).trimEnd(),
      "",
      "== HISTORY ==",
    ].join("\n") + "\n";
    expect(out.slice(0, expected.length)).toBe(expected);
    // The table: tabwriter(minwidth 4, padding 1), widths in runes, the last cell unpadded.
    const table = out.slice(expected.length).split("\n");
    expect(table[0]).toBe("LAYER" + " ".repeat(72 - 5) + "CREATED" + " ".repeat(31 - 7) + "CREATED BY" + " ".repeat(27 - 10) + "SIZE    COMMENT");
    expect(table[3]).toBe(`sha256:${hex("b")} 2020-01-02T00:00:00.123456789Z ünïcödé 日本 😀 wide${" ".repeat(27 - 17)}999B    `); // 17 runes, 27 columns
    if (hasUmoci) expect(out.slice(expected.length)).toBe(Bun.spawnSync(["umoci", "stat", "--image", `${l}:t`]).stdout.toString());
  });

  test.skipIf(!hasUmoci)("history table equals umoci 0.4.7's (rune widths, sizes, empty cells, trailing padding)", () => {
    const l = layout();
    const sizes = [0, 1, 999, 1000, 1001, 1062500, 1063500, 123456789, 999950, 999949999, 2 ** 40];
    const layers = sizes.map((size, i) => ({ mediaType: LAYER_GZ, digest: `sha256:${i.toString(16).padStart(64, "0")}`, size }));
    const words = ["", "x", "ééé", "日本語テキスト", "😀😀", "a b  c", "#(nop) CMD [sh]", "Ω", "long ".repeat(20), "", "end"];
    const history = sizes.flatMap((_, i) => [
      { created: `2021-0${(i % 9) + 1}-1${i % 10}T1${i % 10}:00:0${i % 10}.${"5".repeat(i % 10 + 1)}0+0${i % 10}:00`, created_by: words[i], comment: words[(i + 3) % words.length] },
      ...(i % 3 === 0 ? [{ created: "2021-01-01T00:00:00Z", created_by: words[(i + 1) % words.length], empty_layer: true }] : []),
    ]);
    image(l, { layers }, { architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: sizes.map((_, i) => `sha256:${i.toString(16).padStart(64, "f")}`) }, history });
    const ours = ok(["stat", "--image", `${l}:t`]).stdout;
    const theirs = Bun.spawnSync(["umoci", "stat", "--image", `${l}:t`]).stdout.toString();
    expect(ours.slice(ours.indexOf("== HISTORY ==\n") + 14)).toBe(theirs);
    // And the --json history list, field for field and byte for byte.
    const j = ok(["stat", "--json", "--image", `${l}:t`]).stdout;
    const u = Bun.spawnSync(["umoci", "stat", "--json", "--image", `${l}:t`]).stdout.toString();
    expect(j.slice(j.lastIndexOf(',"history":') + 1)).toBe(u.slice(1));
  });

  test("a string that needs it is Go-quoted; control characters never reach the terminal", () => {
    const l = layout();
    image(l, { layers: [] }, {
      architecture: "amd64", os: "linux", author: "tab\there", rootfs: { type: "layers", diff_ids: [] },
      config: { Env: ['Q="x"', "back\\slash"], Labels: { "": "empty key" } },
      history: [{ created: "2020-01-01T00:00:00Z", created_by: "sh -c \"x\"", comment: "bell\u0007 \u00a0nbsp", empty_layer: true }],
    });
    const out = ok(["stat", "--image", `${l}:t`]).stdout;
    expect(out).toContain('Author: "tab\\there"\n');
    expect(out).toContain('\tEnvironment:\n\t\t"Q=\\"x\\""\n\t\t"back\\\\slash"\n');
    expect(out).toContain('\tLabels:\n\t\t"": "empty key"\n');
    expect(out).toContain('\tUser: ""\n\tCommand: (empty)\n');
    expect(out).toContain('<none> 2020-01-01T00:00:00Z "sh -c \\"x\\"" <none> "bell\\a \\u00a0nbsp"\n');
  });
});

describe("stat --json (umoci 0.6's ManifestStat through encoding/json)", () => {
  test("field order, omitted fields, raw blobs compacted, diff_id \"\" and history [] as 0.6 writes them", () => {
    const l = layout();
    const cfg = '{\n  "architecture": "amd64",\n  "os": "linux",\n  "rootfs": {"type": "layers", "diff_ids": []},\n  "author": "<a&b>"\n}';
    const { m, c, mText } = image(l, { layers: [] }, cfg);
    const out = ok(["stat", "--json", "--image", `${l}:t`]).stdout;
    const d = (x: Descriptor, extra = "") => `{"mediaType":"${x.mediaType}","digest":"${x.digest}","size":${x.size}${extra}}`;
    expect(out).toBe(`{"manifest":{"descriptor":${d(m, ',"annotations":{"org.opencontainers.image.ref.name":"t"}')},"blob":${mText}},` +
      `"config":{"descriptor":${d(c!)},"blob":{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"author":"\\u003ca\\u0026b\\u003e"}},"history":[]}\n`);
  });
  test("history: layer descriptors, diff_id \"\" for empty layers, times as RFC3339Nano, empty strings omitted", () => {
    const l = layout();
    image(l, { layers: LAYERS }, RICH_CONFIG);
    const j = JSON.parse(ok(["stat", "--json", "--image", `${l}:t`]).stdout);
    expect(Object.keys(j)).toEqual(["manifest", "config", "history"]);
    expect(j.history).toEqual([
      { layer: LAYERS[0], diff_id: `sha256:${hex("d")}`, created: "2020-01-01T00:00:00Z", created_by: "/bin/sh -c #(nop) ADD file", comment: "base" },
      { layer: null, diff_id: "", created: "2020-01-01T00:00:01+05:30", created_by: "boci config", empty_layer: true },
      { layer: LAYERS[1], diff_id: `sha256:${hex("e")}`, created: "2020-01-02T00:00:00.123456789Z", created_by: "ünïcödé 日本 😀 wide", author: "x" },
      { layer: LAYERS[2], diff_id: `sha256:${hex("1")}`, created: "2020-01-03T00:00:00.1Z", created_by: "a", comment: "trailing cell" },
    ]);
    expect(Object.keys(j.history[0])).toEqual(["layer", "diff_id", "created", "created_by", "comment"]);
    expect(Object.keys(j.history[0].layer)).toEqual(["mediaType", "digest", "size", "annotations"]);
  });
});

describe("stat of OCI 1.1 artifacts and configs that are not image configs", () => {
  test("the empty config (with embedded data), an artifactType, a layer of another type", () => {
    const l = layout();
    writeBlob(l, Buffer.from("{}"), EMPTY.mediaType);
    const sbom = writeBlob(l, Buffer.from('{"sbom":1}'), "application/vnd.example.sbom+json");
    const config = { ...EMPTY, data: "e30=" };
    const mText = JSON.stringify({ schemaVersion: 2, mediaType: MT.manifest, artifactType: "application/vnd.example.sbom", config, layers: [sbom] });
    const m = writeBlob(l, Buffer.from(mText), MT.manifest);
    setTag(l, "t", m);
    const out = ok(["stat", "--image", `${l}:t`]).stdout;
    const data = (p: string) => `${p}Data: (2 bytes)\n${p}\t0000: 7b7d${" ".repeat(35)}  {}\n`;
    const emptyDesc = (p: string) => `${p}Descriptor:\n${p}\tMedia Type: ${EMPTY.mediaType}\n${p}\tDigest: ${EMPTY.digest}\n${p}\tSize: 2B\n${data(p + "\t")}`;
    expect(out).toBe([
      "== MANIFEST ==", "Schema Version: 2", `Media Type: ${MT.manifest}`, "Artifact Type: application/vnd.example.sbom",
      "Config:", emptyDesc("\t").trimEnd(),
      "Layers:", "\tDescriptor:", "\t\tMedia Type: application/vnd.example.sbom+json", `\t\tDigest: ${sbom.digest}`, "\t\tSize: 10B",
      `Descriptor:\n\tMedia Type: ${MT.manifest}\n\tDigest: ${m.digest}\n\tSize: ${m.size}B\n\tAnnotations:\n\t\torg.opencontainers.image.ref.name: t`,
      "", "== CONFIG ==", emptyDesc("").trimEnd(),
    ].join("\n") + "\n");
    // No history: the config is not an image config. The descriptor keeps its data.
    const j = JSON.parse(ok(["stat", "--json", "--image", `${l}:t`]).stdout);
    expect(Object.keys(j)).toEqual(["manifest", "config"]);
    expect(j.config).toEqual({ descriptor: config, blob: {} });
  });
  test("a config of an artifact's own media type is not read: no config section unless it has embedded data", () => {
    const l = layout();
    const { m } = image(l, { layers: [] }, "not JSON at all", "application/vnd.example.config.v1+json");
    const out = ok(["stat", "--image", `${l}:t`]).stdout;
    expect(out).not.toContain("== CONFIG ==");
    expect(out).not.toContain("== HISTORY ==");
    expect(out.endsWith(`\tSize: ${m.size}B\n\tAnnotations:\n\t\torg.opencontainers.image.ref.name: t\n`)).toBe(true);
    expect(Object.keys(JSON.parse(ok(["stat", "--json", "--image", `${l}:t`]).stdout))).toEqual(["manifest"]);
    // Embedded JSON data is the config blob.
    const l2 = layout();
    const raw = Buffer.from('{ "k" : [1, 2] }');
    const cd = { ...writeBlob(l2, raw, "application/vnd.example.config.v1+json"), data: raw.toString("base64") };
    setTag(l2, "t", writeBlob(l2, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.manifest, config: cd, layers: [] })), MT.manifest));
    expect(JSON.parse(ok(["stat", "--json", "--image", `${l2}:t`]).stdout).config).toEqual({ descriptor: cd, blob: { k: [1, 2] } });
    expect(ok(["stat", "--json", "--image", `${l2}:t`]).stdout).toContain(`"blob":{"k":[1,2]}}}`);
    // The blob must exist, though (umoci opens it).
    const l3 = layout();
    const missing = { mediaType: "application/vnd.example.config.v1+json", digest: `sha256:${hex("9")}`, size: 3 };
    setTag(l3, "t", writeBlob(l3, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.manifest, config: missing, layers: [] })), MT.manifest));
    const r = boci(["stat", "--image", `${l3}:t`]);
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });
  test("a manifest with no layers key; an image config with an empty architecture (config --platform.arch \"\")", () => {
    const l = layout();
    const { mText } = image(l, {}, { architecture: "", os: "", rootfs: { type: "layers", diff_ids: [] } });
    const out = ok(["stat", "--image", `${l}:t`]).stdout;
    expect(out).not.toContain("Layers:");
    expect(out).toContain('Platform:\n\tOS: ""\n\tArchitecture: ""\n');
    expect(JSON.parse(ok(["stat", "--json", "--image", `${l}:t`]).stdout).manifest.blob).toEqual(JSON.parse(mText));
    const l2 = layout();
    ok(["new", "--image", `${l2}:t`]);
    ok(["config", "--image", `${l2}:t`, "--platform.arch", ""]);
    expect(ok(["stat", "--image", `${l2}:t`]).stdout).toContain('\tArchitecture: ""\n');
    expect(JSON.parse(ok(["stat", "--json", "--image", `${l2}:t`]).stdout).config.blob.architecture).toBe("");
    // and the image stays usable, as in umoci 0.6: another config, an unpack
    ok(["config", "--image", `${l2}:t`, "--config.env", "A=1"]);
    ok(["unpack", "--no-progress", "--image", `${l2}:t`, join(scratch(), "bundle")]);
  });
  test("the empty media type with other content, or a config that Go could not decode, is still refused (exit 4)", () => {
    const l = layout();
    image(l, { layers: [] }, "[]", EMPTY.mediaType);
    expect(boci(["stat", "--image", `${l}:t`]).code).toBe(4);
    const l2 = layout();
    image(l2, { layers: [] }, { architecture: 5, os: "linux" });
    expect(boci(["stat", "--image", `${l2}:t`]).code).toBe(4);
    const l3 = layout();
    image(l3, { layers: [] }, { architecture: "amd64", os: "linux", history: [{ created: "yesterday" }] });
    expect(boci(["stat", "--image", `${l3}:t`]).code).toBe(4);
  });
});

describe("command line: usage errors change nothing", () => {
  test("an empty positional argument is a usage error (exit 2, one line), the layout untouched", () => {
    const l = layout();
    ok(["new", "--image", `${l}:t`]);
    const dir = scratch("boci-fidelity-empty-");
    const before = snapshot(l) + snapshot(dir);
    for (const args of [
      ["insert", "--image", `${l}:t`, dir, ""], ["insert", "--image", `${l}:t`, "", "/x"], ["insert", "--image", `${l}:t`, "--whiteout", ""],
      ["tag", "--image", `${l}:t`, ""], ["unpack", "--image", `${l}:t`, ""], ["repack", "--image", `${l}:t`, ""],
      ["raw", "unpack", "--image", `${l}:t`, ""], ["raw", "add-layer", "--image", `${l}:t`, ""], ["raw", "runtime-config", "--image", `${l}:t`, ""],
    ]) {
      const r = boci(args, { cwd: dir });
      expect([args.join(" "), r.code]).toEqual([args.join(" "), 2]);
      expect(r.stderr).toMatch(/^boci: [^\n]*cannot be empty\n$/);
    }
    expect(snapshot(l) + snapshot(dir)).toBe(before);
    expect(readFileSync(join(l, "index.json"), "utf8")).not.toContain('""');
  });
  test("-v/--version after a command and unknown flags before it are usage errors, named as typed", () => {
    const l = layout();
    for (const [args, name] of [
      [["stat", "--image", `${l}:t`, "-v"], "-v"], [["ls", "--layout", l, "--version"], "--version"], [["raw", "unpack", "-v"], "-v"],
      [["--bogus", "ls", "--layout", l], "--bogus"], [["-x"], "-x"], [["--log", "info", "--cpu=1", "ls"], "--cpu"],
      [["config", "--image", `${l}:t`, "--config.bogus", "x"], "--config.bogus"], [["unpack", "--use-keywords", "--image", `${l}:t`, "b"], "--use-keywords"],
      [["config", "--image", `${l}:t`, "--config.bogus=x"], "--config.bogus"],
    ] as [string[], string][]) {
      const r = boci(args);
      expect([args.join(" "), r.code, r.stdout]).toEqual([args.join(" "), 2, ""]);
      expect(r.stderr).toEndWith(`unknown ${args[0]!.startsWith("-") ? "global " : ""}option ${name}\n`);
      expect(r.stderr.split("\n")).toHaveLength(2);
    }
    // Before the command, -v is the version (urfave/cli: exit 0).
    expect(ok(["-v", "ls"]).stdout).toStartWith("boci version ");
  });
  test("one error prefix whatever global flags come first", () => {
    const l = layout();
    ok(["new", "--image", `${l}:t`]);
    for (const args of [["tag", "--image", `${l}:nope`, "x"], ["stat", "--image", `${l}:nope`], ["tag", "--image", `${l}:t`, "a b"], ["stat", "--image", join(l, "missing")], ["tag", "--image", `${l}:t`]]) {
      const plain = boci(args);
      expect(plain.code).not.toBe(0);
      expect(plain.stderr).toMatch(/^boci: (?!boci:)[^\n]+\n$/);
      for (const pre of [["--log", "info"], ["--log=warn"], ["--verbose"]]) {
        const r = boci([...pre, ...args]);
        expect([pre, args, r.code, r.stderr]).toEqual([pre, args, plain.code, plain.stderr]);
      }
    }
    expect(boci(["--log", "info", "tag", "--image", `${l}:t`]).stderr).toBe("boci: tag: expected 1 argument (new-tag), got 0\n");
  });
});

describe("help (urfave/cli as umoci 0.6 uses it)", () => {
  test("help, h, --help and no arguments print the command list; help CMD equals CMD --help", () => {
    const top = ok(["--help"]).stdout;
    expect(top).toContain("COMMANDS:");
    expect(top).toMatch(/\n {3}raw {6}advanced internal image tooling\n/);
    expect(top).toMatch(/\n {5}stat +displays status information of an image manifest\n/);
    for (const args of [["help"], ["h"], []]) expect(ok(args).stdout).toBe(top);
    for (const cmd of [["stat"], ["config"], ["ls"], ["list"], ["raw", "unpack"], ["raw", "config"]]) {
      const h = ok([...cmd, "--help"]).stdout;
      expect(ok(["help", ...cmd]).stdout).toBe(h);
      expect(ok([...cmd, "-h"]).stdout).toBe(h);
      expect(h).toContain("USAGE:\n   boci ");
      expect(h).toContain("--help, -h");
    }
    expect(ok(["config", "--help"]).stdout).toContain("--no-history");
    const r = boci(["help", "nope"]);
    expect([r.code, r.stdout]).toEqual([2, ""]);
  });
  test("raw alone, raw --help, raw help and help raw list raw's subcommands (mtree-validate stays hidden)", () => {
    const raw = ok(["raw"]).stdout;
    expect(raw).toContain("NAME:\n   boci raw - advanced internal image tooling\n");
    for (const sub of ["unpack", "runtime-config, config", "add-layer"]) expect(raw).toMatch(new RegExp(`\\n {5}${sub} +\\S`));
    expect(raw).not.toContain("mtree-validate");
    for (const args of [["raw", "--help"], ["raw", "-h"], ["raw", "help"], ["raw", "h"], ["help", "raw"]]) expect(ok(args).stdout).toBe(raw);
    expect(ok(["raw", "help", "unpack"]).stdout).toBe(ok(["raw", "unpack", "--help"]).stdout);
    const r = boci(["raw", "nope"]);
    expect([r.code, r.stdout]).toEqual([2, ""]);
  });
});
