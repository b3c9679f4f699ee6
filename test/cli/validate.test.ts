/**
 * `boci validate`: layouts are built with `boci init/new/config`, layers are added by writing
 * blobs by hand (so they can be corrupted), and every problem must be reported, not only the first.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync, mkdirSync, rmSync, appendFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import * as zlib from "node:zlib";
import { boci, ok, scratch, have, sh } from "../helpers/cli";
import { makeTar, file, dir, writeBlob, setTag, sha256hex, MT, type Descriptor } from "../helpers/image";

const REF = "org.opencontainers.image.ref.name";

function readJson(p: string): any { return JSON.parse(readFileSync(p, "utf8")); }
function blobPath(l: string, digest: string): string { return join(l, "blobs", ...digest.split(":")); }
function blobJson(l: string, d: { digest: string }): any { return readJson(blobPath(l, d.digest)); }
function entry(l: string, tag: string): Descriptor {
  const e = readJson(join(l, "index.json")).manifests.find((m: Descriptor) => m.annotations?.[REF] === tag);
  if (!e) throw new Error(`no tag ${tag}`);
  return e;
}
function digestOf(b: Buffer): string { return `sha256:${sha256hex(b)}`; }

/** A layout with one image `tag` made by boci (init, new, config). */
function newImage(tag = "t"): string {
  const l = join(scratch(), "layout");
  ok(["init", "--layout", l]);
  ok(["new", "--image", `${l}:${tag}`]);
  ok(["config", "--image", `${l}:${tag}`, "--config.env", "A=1"]);
  return l;
}

/** Store `obj` as a new manifest for `tag` (replacing the old entry). */
function putManifest(l: string, tag: string, obj: unknown, mediaType = MT.manifest): Descriptor {
  const d = writeBlob(l, Buffer.from(JSON.stringify(obj)), mediaType);
  setTag(l, tag, d);
  return d;
}

/** Rewrite the manifest of `tag` through `fn`. */
function editManifest(l: string, tag: string, fn: (m: any) => void): Descriptor {
  const m = blobJson(l, entry(l, tag));
  fn(m);
  return putManifest(l, tag, m);
}

/** Rewrite the config of `tag` through `fn` (and its manifest to point at it). */
function editConfig(l: string, tag: string, fn: (c: any) => void): Descriptor {
  const m = blobJson(l, entry(l, tag));
  const c = blobJson(l, m.config);
  fn(c);
  m.config = writeBlob(l, Buffer.from(JSON.stringify(c)), MT.config);
  putManifest(l, tag, m);
  return m.config;
}

/**
 * Append a layer (its tar bytes, stored as `blob` — gzip of the tar by default) to `tag`: the
 * manifest gets the descriptor, the config the diffID, the history an entry.
 */
function addLayer(l: string, tag: string, tar: Buffer, opts: { blob?: Buffer; mediaType?: string } = {}): { layer: Descriptor; diffID: string } {
  const blob = opts.blob ?? zlib.gzipSync(tar);
  const layer = writeBlob(l, blob, opts.mediaType ?? MT.layer + "+gzip");
  const diffID = digestOf(tar);
  const m = blobJson(l, entry(l, tag));
  const c = blobJson(l, m.config);
  c.rootfs.diff_ids = [...(c.rootfs.diff_ids ?? []), diffID];
  c.history = [...(c.history ?? []), { created: "2020-01-01T00:00:00Z", created_by: "test" }];
  m.config = writeBlob(l, Buffer.from(JSON.stringify(c)), MT.config);
  m.layers = [...m.layers, layer];
  putManifest(l, tag, m);
  return { layer, diffID };
}

/** A tar made by GNU tar from a directory tree of a few files. */
function gnuTar(files: Record<string, string>): Buffer {
  const src = join(scratch(), "src");
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(join(src, name, ".."), { recursive: true });
    writeFileSync(join(src, name), body);
  }
  const out = join(scratch(), "layer.tar");
  const p = Bun.spawnSync(["tar", "-C", src, "--numeric-owner", "-cf", out, "."]);
  if (p.exitCode !== 0) throw new Error(`tar: ${p.stderr.toString()}`);
  return readFileSync(out);
}

/** A layout with an image of two gzip layers. */
function twoLayerImage(tag = "t"): { l: string; layers: Descriptor[]; diffIDs: string[] } {
  const l = newImage(tag);
  const a = addLayer(l, tag, gnuTar({ "etc/hostname": "box\n", "bin/sh": "#!fake\n" }));
  const b = addLayer(l, tag, gnuTar({ "etc/motd": "hello\n" }));
  return { l, layers: [a.layer, b.layer], diffIDs: [a.diffID, b.diffID] };
}

function validate(args: string[]) {
  const r = boci(["validate", ...args]);
  return { ...r, lines: r.stdout.split("\n").filter(Boolean) };
}

function validateJson(args: string[]) {
  const r = boci(["validate", "--json", ...args]);
  return { ...r, report: JSON.parse(r.stdout) as { valid: boolean; problems: { path: string; message: string }[]; warnings: { path: string; message: string }[]; checked: { blobs: number; manifests: number; layers: number; entries: number } } };
}

describe("validate: clean layouts", () => {
  test("a fresh layout and an image with layers are valid (exit 0, one summary line)", () => {
    const empty = join(scratch(), "empty");
    ok(["init", "--layout", empty]);
    expect(ok(["validate", "--layout", empty]).stdout).toBe(`layout ${empty} is valid: 0 manifests, 0 layers, 0 blobs checked\n`);

    const { l } = twoLayerImage();
    const r = validate(["--layout", l]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    // Every blob file is read: the 4 reachable ones and the old manifests and configs (unreferenced).
    expect(r.lines).toEqual([`layout ${l} is valid: 1 manifest, 2 layers, 10 blobs checked`]);
    const j = validateJson(["--layout", l]);
    expect(j.code).toBe(0);
    expect(j.report.valid).toBe(true);
    expect(j.report.problems).toEqual([]);
    expect(j.report.checked).toMatchObject({ manifests: 1, layers: 2, blobs: 10 });
    expect(j.report.checked.entries).toBeGreaterThanOrEqual(5);
    expect(validate(["--image", `${l}:t`]).lines).toEqual([`image ${l}:t is valid: 1 manifest, 2 layers, 4 blobs checked`]);
  });

  test('index.json with "manifests": null (umoci 0.4.7) is accepted silently', () => {
    const l = join(scratch(), "layout");
    ok(["init", "--layout", l]);
    writeFileSync(join(l, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: null }));
    const r = validate(["--layout", l]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("is valid");
  });

  test("zstd and plain tar layers, a shared layer and unreferenced blobs are fine", () => {
    const l = newImage();
    const tar = makeTar([dir("a/"), file("a/b", "x")]);
    addLayer(l, "t", tar, { blob: Buffer.from(zlib.zstdCompressSync(tar)), mediaType: MT.layer + "+zstd" });
    addLayer(l, "t", makeTar([file("c", "y")]), { blob: makeTar([file("c", "y")]), mediaType: MT.layer });
    ok(["new", "--image", `${l}:other`]);
    addLayer(l, "other", tar, { blob: Buffer.from(zlib.zstdCompressSync(tar)), mediaType: MT.layer + "+zstd" });
    writeBlob(l, Buffer.from("unreferenced"), "x/y");
    const j = validateJson(["--layout", l]);
    expect(j.report.problems).toEqual([]);
    expect(j.code).toBe(0);
    expect(j.report.checked.layers).toBe(2); // the shared layer is streamed once
  });

  test("duplicate tag names are a warning, not a failure", () => {
    const l = newImage();
    const ix = readJson(join(l, "index.json"));
    ix.manifests.push(ix.manifests[0]);
    writeFileSync(join(l, "index.json"), JSON.stringify(ix));
    const r = validate(["--layout", l]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('warning: index.json: tag "t" names 2 entries');
    expect(validateJson(["--layout", l]).report.warnings.length).toBe(1);
  });

  test("--image on a multi-platform index validates every manifest under it", () => {
    const l = newImage("amd");
    ok(["new", "--image", `${l}:arm`]);
    const bad = addLayer(l, "arm", makeTar([file("x", "1")]));
    const amd = { ...entry(l, "amd"), annotations: undefined, platform: { os: "linux", architecture: "amd64" } };
    const arm = { ...entry(l, "arm"), annotations: undefined, platform: { os: "linux", architecture: "arm64" } };
    const ix = writeBlob(l, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: [amd, arm] })), MT.index);
    setTag(l, "multi", ix);
    expect(validate(["--image", `${l}:multi`]).code).toBe(0);
    corrupt(l, bad.layer);
    const r = validate(["--image", `${l}:multi`]);
    expect(r.code).toBe(4);
    expect(r.stdout).toContain(`${bad.layer.digest} (layer 1 of manifest ${arm.digest}): digest mismatch`);
    expect(r.stdout).toContain(`manifests[1] of index ${ix.digest}`);
  });
});

/** Flip one byte in the middle of a stored blob. */
function corrupt(l: string, d: Descriptor): void {
  const p = blobPath(l, d.digest);
  const b = readFileSync(p);
  const i = Math.floor(b.length / 2);
  b[i] = b[i]! ^ 0xff;
  writeFileSync(p, b);
}

describe("validate: single problems", () => {
  test("a corrupt layer byte names the digest (exit 4, summary on stderr)", () => {
    const { l, layers } = twoLayerImage();
    corrupt(l, layers[1]!);
    const r = validate(["--layout", l]);
    expect(r.code).toBe(4);
    expect(r.stderr).toBe("boci: 1 problem found\n");
    expect(r.lines.length).toBe(1);
    expect(r.lines[0]).toMatch(new RegExp(`^${layers[1]!.digest} \\(layer 2 of manifest sha256:[0-9a-f]{64}\\): digest mismatch: blob content hashes to sha256:[0-9a-f]{64}$`));
  });

  test("a missing blob", () => {
    const { l, layers } = twoLayerImage();
    rmSync(blobPath(l, layers[0]!.digest));
    const r = validate(["--layout", l]);
    expect(r.code).toBe(4);
    expect(r.lines).toEqual([`${layers[0]!.digest} (layer 1 of manifest ${entry(l, "t").digest}): blob missing`]);
  });

  test("a missing config", () => {
    const l = newImage();
    const m = blobJson(l, entry(l, "t"));
    rmSync(blobPath(l, m.config.digest));
    const r = validate(["--image", `${l}:t`]);
    expect(r.code).toBe(4);
    expect(r.stdout).toContain(`${m.config.digest} (config of manifest ${entry(l, "t").digest}): blob missing`);
  });

  test("a wrong size in a descriptor", () => {
    const { l, layers } = twoLayerImage();
    editManifest(l, "t", (m) => { m.layers[0].size += 1; });
    const r = validate(["--layout", l]);
    expect(r.code).toBe(4);
    expect(r.lines).toEqual([`${layers[0]!.digest} (layer 1 of manifest ${entry(l, "t").digest}): size mismatch: descriptor says ${layers[0]!.size + 1} bytes, blob has ${layers[0]!.size}`]);
  });

  test("a wrong diff_id", () => {
    const { l, layers, diffIDs } = twoLayerImage();
    const wrong = digestOf(Buffer.from("nope"));
    editConfig(l, "t", (c) => { c.rootfs.diff_ids[0] = wrong; });
    const r = validate(["--layout", l]);
    expect(r.code).toBe(4);
    expect(r.lines).toEqual([`${layers[0]!.digest} (layer 1 of manifest ${entry(l, "t").digest}): diffid mismatch: got ${diffIDs[0]}, want ${wrong}`]);
  });

  test("layer count differs from diff_ids count", () => {
    const { l } = twoLayerImage();
    const cfg = editConfig(l, "t", (c) => { c.rootfs.diff_ids.pop(); });
    const r = validate(["--layout", l]);
    expect(r.code).toBe(4);
    expect(r.lines).toEqual([`${entry(l, "t").digest} (index.json manifests[0] "t"): manifest has 2 layers but config ${cfg.digest} has 1 diff_id`]);
  });

  test('a manifest carrying "manifests" (media type confusion)', () => {
    const l = newImage();
    const d = editManifest(l, "t", (m) => { m.manifests = []; });
    const r = validate(["--layout", l]);
    expect(r.code).toBe(4);
    expect(r.stdout).toContain(`${d.digest} (index.json manifests[0] "t"): manifest: a manifest must not contain "manifests" (media type confusion)`);
  });

  test("an index descriptor pointing at a manifest blob, and a wrong own mediaType", () => {
    const l = newImage();
    const e = entry(l, "t");
    setTag(l, "asindex", { ...e, mediaType: MT.index, annotations: undefined });
    const r = validate(["--layout", l]);
    expect(r.code).toBe(4);
    expect(r.stdout).toContain(`${e.digest} (index.json manifests[1] "asindex"): index: an index must not contain "config" or "layers"`);
  });

  test('a config with rootfs.type "foo"', () => {
    const l = newImage();
    const cfg = editConfig(l, "t", (c) => { c.rootfs.type = "foo"; });
    const r = validate(["--layout", l]);
    expect(r.code).toBe(4);
    expect(r.lines).toEqual([`${cfg.digest} (config of manifest ${entry(l, "t").digest}): config.rootfs.type: must be "layers", got "foo"`]);
  });

  test("a config of the wrong media type and an unknown layer media type", () => {
    const l = newImage();
    addLayer(l, "t", makeTar([file("a", "1")]), { mediaType: "application/x-weird" });
    editManifest(l, "t", (m) => { m.config.mediaType = "application/vnd.oci.image.manifest.v1+json"; });
    const r = validate(["--layout", l]);
    expect(r.code).toBe(4);
    expect(r.stdout).toContain("config media type \"application/vnd.oci.image.manifest.v1+json\" is not an image config");
    expect(r.stdout).toContain("unknown layer media type application/x-weird");
  });

  test("a truncated gzip layer (stored under its own digest)", () => {
    const l = newImage();
    const tar = gnuTar({ "a/file": "x".repeat(50000) + Math.random() });
    const gz = zlib.gzipSync(tar);
    const { layer } = addLayer(l, "t", tar, { blob: gz.subarray(0, gz.length - 100) });
    const r = validate(["--layout", l]);
    expect(r.code).toBe(4);
    expect(r.lines.length).toBe(1);
    expect(r.lines[0]).toStartWith(`${layer.digest} (layer 1 of manifest ${entry(l, "t").digest}): layer content (gzip tar) is unreadable`);
    expect(r.lines[0]).toContain("truncated");
  });

  test("corrupt deflate data under its own digest is reported, without a hang", () => {
    const l = newImage();
    const tar = gnuTar({ "f": "data ".repeat(2000) });
    const gz = Buffer.from(zlib.gzipSync(tar));
    for (let i = 20; i < 40; i++) gz[i] = 0xff;
    const { layer } = addLayer(l, "t", tar, { blob: gz });
    const r = validate(["--layout", l]);
    expect(r.code).toBe(4);
    expect(r.lines.length).toBe(1);
    expect(r.lines[0]).toStartWith(`${layer.digest} (layer 1 of manifest ${entry(l, "t").digest}): layer content (gzip tar) is unreadable after 0 entries`);
  });

  test("hostile tar names are reported, and checking goes on (diffID still verified)", () => {
    const l = newImage();
    const tar = makeTar([dir("ok/"), file("../escape", "x"), file("/abs", "y"), file("a/.wh.", ""), file("a/../../up", ""), file("a/../fine", "")]);
    const { layer } = addLayer(l, "t", tar);
    const good = addLayer(l, "t", makeTar([file("z", "z")]));
    corrupt(l, good.layer);
    const r = validate(["--layout", l]);
    expect(r.code).toBe(4);
    const at = `${layer.digest} (layer 1 of manifest ${entry(l, "t").digest})`;
    expect(r.lines).toContain(`${at}: entry "../escape" escapes the root with ".."`);
    expect(r.lines).toContain(`${at}: entry "/abs" is an absolute path`);
    expect(r.lines).toContain(`${at}: entry "a/.wh." is a bare whiteout ".wh."`);
    expect(r.lines).toContain(`${at}: entry "a/../../up" escapes the root with ".."`);
    expect(r.stdout).not.toContain("a/../fine");
    expect(r.stdout).not.toContain("diffid");
    expect(r.stdout).toContain(`${good.layer.digest} (layer 2 of`); // the next layer is still checked
    expect(r.stderr).toBe("boci: 5 problems found\n");
  });

  test("a leftover temporary file under blobs/ and a bad index.json entry", () => {
    const l = newImage();
    writeFileSync(join(l, "blobs", "sha256", "tmp-123"), "partial");
    const r = validate(["--layout", l]);
    expect(r.code).toBe(4);
    expect(r.lines).toEqual(["blobs/sha256/tmp-123: file name is not a valid digest (a leftover temporary file?)"]);
    // --image checks one image only: stray files elsewhere are not its business.
    expect(validate(["--image", `${l}:t`]).code).toBe(0);
  });

  test("an unreferenced blob whose bytes do not match its name", () => {
    const l = newImage();
    const d = writeBlob(l, Buffer.from("orphan"), "x/y");
    appendFileSync(blobPath(l, d.digest), "!");
    const r = validate(["--layout", l]);
    expect(r.code).toBe(4);
    expect(r.stdout).toContain(`blobs/sha256/${d.digest.slice(7)}: unreferenced blob content does not match its name`);
  });

  test("a broken oci-layout and index.json are problems, not crashes", () => {
    const l = newImage();
    writeFileSync(join(l, "oci-layout"), '{"imageLayoutVersion":"2.0.0"}');
    writeFileSync(join(l, "index.json"), '{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:zz","size":-1}]}');
    const j = validateJson(["--layout", l]);
    expect(j.code).toBe(4);
    expect(j.report.problems.map((p) => p.path)).toEqual(["oci-layout", "index.json", "index.json", "index.json", "index.json"].slice(0, j.report.problems.length));
    expect(j.report.problems[0]!.message).toContain('imageLayoutVersion must be "1.0.0"');
    expect(j.report.problems.length).toBeGreaterThanOrEqual(3);
  });
});

describe("validate: many problems at once", () => {
  test("every problem is listed, in text and in --json", () => {
    const { l, layers } = twoLayerImage();
    ok(["new", "--image", `${l}:second`]);
    const trunc = gnuTar({ "big": "q".repeat(40000) + Math.random() });
    const gz = zlib.gzipSync(trunc);
    addLayer(l, "second", trunc, { blob: gz.subarray(0, 30) });
    corrupt(l, layers[0]!);                                                     // 1: digest
    const wrong = digestOf(Buffer.from("nope"));
    editConfig(l, "t", (c) => { c.rootfs.diff_ids[1] = wrong; c.rootfs.type = "foo"; }); // 2: diffid, 3: rootfs.type
    writeFileSync(join(l, "blobs", "sha256", ".boci-tmp-xyz"), "");            // 4: stray file
    const r = validate(["--layout", l]);
    expect(r.code).toBe(4);
    expect(r.lines.length).toBeGreaterThanOrEqual(5);
    expect(r.stdout).toContain("digest mismatch");
    expect(r.stdout).toContain(`diffid mismatch: got `);
    expect(r.stdout).toContain(`want ${wrong}`);
    expect(r.stdout).toContain('config.rootfs.type: must be "layers"');
    expect(r.stdout).toContain("blobs/sha256/.boci-tmp-xyz");
    expect(r.stdout).toContain("layer content (gzip tar) is unreadable");
    expect(r.stderr).toBe(`boci: ${r.lines.length} problems found\n`);

    const j = validateJson(["--layout", l]);
    expect(j.code).toBe(4);
    expect(j.stderr).toBe(`boci: ${r.lines.length} problems found\n`);
    expect(j.report.valid).toBe(false);
    expect(j.report.problems.length).toBe(r.lines.length);
    expect(j.report.problems.map((p) => `${p.path}: ${p.message}`)).toEqual(r.lines);
    expect(j.report.checked.manifests).toBe(2);
  });
});

describe("validate: usage", () => {
  test("flags: exactly one of --layout and --image; missing layout is exit 3", () => {
    const l = newImage();
    expect(boci(["validate"]).code).toBe(2);
    expect(boci(["validate", "--layout", l, "--image", `${l}:t`]).code).toBe(2);
    const missing = boci(["validate", "--layout", join(scratch(), "nope")]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain("no such directory");
    const noHeader = join(scratch(), "plain");
    mkdirSync(noHeader);
    expect(boci(["validate", "--layout", noHeader]).code).toBe(3);
    expect(boci(["validate", "--image", `${l}:absent`]).code).toBe(3);
  });
});

describe("validate: interop", () => {
  const umoci = have("umoci");
  test.skipIf(!umoci)("a layout made by umoci (init, new, unpack, add files, repack) validates clean", () => {
    const root = scratch();
    const l = join(root, "layout");
    const b = join(root, "bundle");
    const run = (cmd: string) => {
      const r = sh(cmd);
      if (r.code !== 0) throw new Error(`${cmd}: ${r.stderr}`);
    };
    run(`umoci init --layout ${l}`);
    run(`umoci new --image ${l}:base`);
    run(`umoci unpack --rootless --image ${l}:base ${b}`);
    mkdirSync(join(b, "rootfs", "etc"), { recursive: true });
    writeFileSync(join(b, "rootfs", "etc", "hostname"), "umoci\n");
    writeFileSync(join(b, "rootfs", "hello"), "world\n");
    run(`umoci repack --image ${l}:base ${b}`);
    run(`umoci config --image ${l}:base --config.env A=1 --tag cfg`);
    const r = validate(["--layout", l]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.lines.at(-1)).toMatch(/is valid: 2 manifests, 1 layer, \d+ blobs checked$/);
    expect(existsSync(join(l, "oci-layout"))).toBe(true);
  });
  if (!umoci) test("umoci interop skipped: umoci is not installed", () => {});
});
