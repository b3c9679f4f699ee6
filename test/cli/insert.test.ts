/**
 * `insert` and `raw add-layer` through the real binary. Base images are made with
 * `boci init/new/unpack/repack`; layers are inspected with GNU tar and unpacked again.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync, existsSync, lstatSync, readdirSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import * as zlib from "node:zlib";
import { boci, ok, scratch, sh, isRoot } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";

const GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd";
const TAR = "application/vnd.oci.image.layer.v1.tar";

interface Desc { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }
interface Hist { created?: string; created_by?: string; author?: string; comment?: string; empty_layer?: boolean }
interface Stat { manifest: { descriptor: Desc; blob: { layers: Desc[] } }; config: { descriptor: Desc; blob: { author?: string; rootfs: { diff_ids: string[] }; history?: Hist[] } } }

function newLayout(): string {
  const l = join(scratch(), "layout");
  ok(["init", "--layout", l]);
  return l;
}
function stat(img: string): Stat { return JSON.parse(ok(["stat", "--json", "--image", img]).stdout) as Stat; }
function layers(img: string): Desc[] { return stat(img).manifest.blob.layers; }
function hist(img: string): Hist[] { return stat(img).config.blob.history ?? []; }
function blobPath(l: string, digest: string): string { return join(l, "blobs", ...digest.split(":")); }
function indexBytes(l: string): Buffer { return readFileSync(join(l, "index.json")); }
function sha256(b: Uint8Array): string {
  const h = new Bun.CryptoHasher("sha256");
  h.update(b);
  return "sha256:" + h.digest("hex");
}
function run(cmd: string, cwd: string): void {
  const r = sh(`set -e\n${cmd}`, { cwd });
  if (r.code !== 0) throw new Error(`shell failed (${r.code}): ${cmd}\n${r.stderr}`);
}
function unpack(img: string): string {
  const b = join(scratch(), "bundle");
  ok(["unpack", "--no-progress", "--image", img, b]);
  return b;
}
function layerTar(l: string, d: Desc): Buffer {
  const b = readFileSync(blobPath(l, d.digest));
  if (d.mediaType.endsWith("+gzip")) return zlib.gunzipSync(b);
  if (d.mediaType.endsWith("+zstd")) return Buffer.from(Bun.zstdDecompressSync(b));
  return b;
}
/** `tar -tv` lines of the newest layer: [{type char, mode string, owner, name, link}] */
function listing(layout: string, img: string): { kind: string; perms: string; owner: string; name: string; link: string }[] {
  const f = join(scratch(), "layer.tar");
  writeFileSync(f, layerTar(layout, layers(img).at(-1)!));
  const r = sh(`tar --numeric-owner --quoting-style=literal -tvf ${f}`);
  if (r.code !== 0) throw new Error(`tar -tv: ${r.stderr}`);
  return r.stdout.split("\n").filter(Boolean).map((line) => {
    const m = line.match(/^(.)(\S+)\s+(\S+)\s+\d+(?:,\s*\d+)?\s+\S+\s+\S+\s+(.*)$/);
    if (!m) throw new Error(`unparsed tar line: ${line}`);
    let name = m[4]!;
    let link = "";
    const arrow = name.match(/^(.*) (?:->|link to) (.*)$/);
    if (arrow) { name = arrow[1]!; link = arrow[2]!; }
    return { kind: m[1]!, perms: m[2]!, owner: m[3]!, name, link };
  });
}
function names(layout: string, img: string): string[] { return listing(layout, img).map((e) => e.name); }

/** A layout with tag "base": one layer with etc/passwd, etc/group, opt/tree/old, usr/bin/. */
function baseImage(): { layout: string; img: string } {
  const layout = newLayout();
  const img = `${layout}:base`;
  ok(["new", "--image", img]);
  const b = unpack(img);
  run(`mkdir -p etc opt/tree/olddir usr/bin
printf 'root:x:0:0:root:/root:/bin/sh\\n' > etc/passwd
printf 'root:x:0:\\n' > etc/group
echo old > opt/tree/old; echo od > opt/tree/olddir/f; echo same > opt/tree/same`, join(b, "rootfs"));
  ok(["repack", "--no-progress", "--image", img, b]);
  expect(checkLayout(layout)).toEqual([]);
  return { layout, img };
}

describe.skipIf(!isRoot)("insert", () => {
  test("a file at TARGET: one new layer with usr/bin/x; unpack shows it; history 'boci insert'", () => {
    const { layout, img } = baseImage();
    const n = layers(img).length;
    const h = hist(img).length;
    const src = join(scratch(), "tool");
    writeFileSync(src, "#!/bin/sh\necho hi\n", { mode: 0o755 });
    ok(["insert", "--image", img, src, "/usr/bin/x"]);
    expect(checkLayout(layout)).toEqual([]);
    expect(layers(img).length).toBe(n + 1);
    const es = listing(layout, img);
    const x = es.find((e) => e.name === "usr/bin/x");
    expect(x).toBeDefined();
    expect(x!.kind).toBe("-");
    expect(x!.perms).toBe("rwxr-xr-x");
    expect(x!.owner).toBe("0/0");
    expect(es.filter((e) => e.name.includes("tool"))).toEqual([]);
    const hs = hist(img);
    expect(hs.length).toBe(h + 1);
    expect(hs.at(-1)!.created_by).toBe("boci insert");
    expect(hs.at(-1)!.empty_layer ?? false).toBe(false);
    const b = unpack(img);
    expect(readFileSync(join(b, "rootfs/usr/bin/x"), "utf8")).toBe("#!/bin/sh\necho hi\n");
    expect(statSync(join(b, "rootfs/usr/bin/x")).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(b, "rootfs/etc/passwd"), "utf8")).toContain("root:x:0:0");
  });

  test("a directory tree lands at TARGET with its contents, links and modes; lower content is kept", () => {
    const { layout, img } = baseImage();
    const src = join(scratch(), "src");
    mkdirSync(src);
    run(`mkdir -p a/b; echo 1 > a/b/one; echo 2 > two; chmod 600 two; ln -s a/b/one link; ln two hard; chmod 750 a; echo new > old`, src);
    ok(["insert", "--image", img, src, "/opt/tree"]);
    expect(checkLayout(layout)).toEqual([]);
    const es = listing(layout, img);
    const ns = es.map((e) => e.name);
    for (const p of ["opt/tree/", "opt/tree/a/", "opt/tree/a/b/", "opt/tree/a/b/one", "opt/tree/two", "opt/tree/link", "opt/tree/hard", "opt/tree/old"]) expect(ns).toContain(p);
    expect(ns.some((x) => x.includes(".wh."))).toBe(false);
    // exactly one of the hardlink pair is a link entry, pointing to the other
    const hl = es.filter((e) => e.name === "opt/tree/hard" || e.name === "opt/tree/two");
    expect(hl.filter((e) => e.kind === "h")).toHaveLength(1);
    const linkEntry = hl.find((e) => e.kind === "h")!;
    expect(linkEntry.link).toBe(linkEntry.name === "opt/tree/hard" ? "opt/tree/two" : "opt/tree/hard");
    expect(es.find((e) => e.name === "opt/tree/link")!.link).toBe("a/b/one");
    const b = unpack(img);
    const r = join(b, "rootfs/opt/tree");
    expect(readFileSync(join(r, "a/b/one"), "utf8")).toBe("1\n");
    expect(statSync(join(r, "two")).mode & 0o777).toBe(0o600);
    expect(lstatSync(join(r, "a")).mode & 0o777).toBe(0o750);
    expect(statSync(join(r, "two")).ino).toBe(statSync(join(r, "hard")).ino);
    expect(lstatSync(join(r, "link")).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(r, "old"), "utf8")).toBe("new\n");
    // without --opaque the lower content under TARGET survives
    expect(readFileSync(join(r, "same"), "utf8")).toBe("same\n");
    expect(readFileSync(join(r, "olddir/f"), "utf8")).toBe("od\n");
  });

  test("--opaque emits TARGET/.wh..wh..opq and hides the lower content", () => {
    const { layout, img } = baseImage();
    const src = join(scratch(), "src");
    mkdirSync(src);
    run(`echo fresh > fresh; echo new > old`, src);
    ok(["insert", "--opaque", "--image", img, src, "/opt/tree"]);
    expect(checkLayout(layout)).toEqual([]);
    const ns = names(layout, img);
    expect(ns).toContain("opt/tree/.wh..wh..opq");
    expect(ns).toContain("opt/tree/fresh");
    const b = unpack(img);
    expect(readdirSync(join(b, "rootfs/opt/tree")).sort()).toEqual(["fresh", "old"]);
    expect(readFileSync(join(b, "rootfs/opt/tree/old"), "utf8")).toBe("new\n");
    // other directories are untouched
    expect(existsSync(join(b, "rootfs/etc/passwd"))).toBe(true);
  });

  test("--whiteout TARGET removes it in an unpack", () => {
    const { layout, img } = baseImage();
    ok(["insert", "--whiteout", "--image", img, "/etc/passwd"]);
    expect(checkLayout(layout)).toEqual([]);
    expect(names(layout, img)).toEqual(["etc/.wh.passwd"]);
    const b = unpack(img);
    expect(existsSync(join(b, "rootfs/etc/passwd"))).toBe(false);
    expect(existsSync(join(b, "rootfs/etc/group"))).toBe(true);
    // a whole directory
    ok(["insert", "--whiteout", "--image", img, "opt/tree"]);
    expect(checkLayout(layout)).toEqual([]);
    const b2 = unpack(img);
    expect(existsSync(join(b2, "rootfs/opt/tree"))).toBe(false);
    expect(existsSync(join(b2, "rootfs/opt"))).toBe(true);
  });

  test("--tag writes a new tag and leaves the source tag unchanged", () => {
    const { layout, img } = baseImage();
    const before = stat(img).manifest.descriptor.digest;
    const n = layers(img).length;
    const src = join(scratch(), "f");
    writeFileSync(src, "x");
    ok(["insert", "--tag", "withx", "--image", img, src, "/x"]);
    expect(checkLayout(layout)).toEqual([]);
    expect(stat(img).manifest.descriptor.digest).toBe(before);
    expect(layers(`${layout}:withx`).length).toBe(n + 1);
    expect(ok(["ls", "--layout", layout]).stdout).toBe("base\nwithx\n");
  });

  test("history flags, --no-history, and --no-history with a history flag", () => {
    const { layout, img } = baseImage();
    const src = join(scratch(), "f");
    writeFileSync(src, "x");
    ok(["insert", "--history.author", "A", "--history.comment", "C", "--history.created", "2021-01-01T00:00:00Z", "--history.created_by", "cb", "--image", img, src, "/a"]);
    expect(checkLayout(layout)).toEqual([]);
    const h = hist(img).at(-1)!;
    expect([h.author, h.comment, h.created, h.created_by]).toEqual(["A", "C", "2021-01-01T00:00:00Z", "cb"]);
    const hn = hist(img).length;
    const n = layers(img).length;
    ok(["insert", "--no-history", "--image", img, src, "/b"]);
    expect(checkLayout(layout)).toEqual([]);
    expect(hist(img).length).toBe(hn);
    expect(layers(img).length).toBe(n + 1);
    const before = indexBytes(layout);
    expect(boci(["insert", "--no-history", "--history.comment", "x", "--image", img, src, "/c"]).code).toBe(2);
    expect(indexBytes(layout)).toEqual(before);
  });

  test("--compress and SOURCE_DATE_EPOCH clamp", () => {
    const { layout, img } = baseImage();
    const src = join(scratch(), "f");
    writeFileSync(src, "x");
    ok(["insert", "--compress", "zstd", "--image", img, src, "/z"], { env: { SOURCE_DATE_EPOCH: "1700000000" } });
    expect(checkLayout(layout)).toEqual([]);
    const s = stat(img);
    const d = s.manifest.blob.layers.at(-1)!;
    expect(d.mediaType).toBe(ZSTD);
    const tar = layerTar(layout, d);
    expect(s.config.blob.rootfs.diff_ids.at(-1)).toBe(sha256(tar));
    expect(d.annotations?.["ci.umo.uncompressed_blob_size"]).toBe(String(tar.length));
    expect(s.config.blob.history!.at(-1)!.created).toBe("2023-11-14T22:13:20Z");
    const f = join(scratch(), "l.tar");
    writeFileSync(f, tar);
    expect(sh(`tar --numeric-owner --full-time -tvf ${f}`).stdout).toContain("2023-11-14 22:13:20 z");
    // auto follows the newest (zstd) layer
    ok(["insert", "--image", img, src, "/z2"]);
    expect(layers(img).at(-1)!.mediaType).toBe(ZSTD);
    ok(["insert", "--compress", "none", "--image", img, src, "/z3"]);
    expect(layers(img).at(-1)!.mediaType).toBe(TAR);
    expect(checkLayout(layout)).toEqual([]);
    const b = unpack(img);
    for (const p of ["z", "z2", "z3"]) expect(readFileSync(join(b, "rootfs", p), "utf8")).toBe("x");
  });

  test("a source tree containing a '.wh.' file is refused with one line; nothing changes", () => {
    const { layout, img } = baseImage();
    const src = join(scratch(), "src");
    mkdirSync(src);
    run(`echo a > a; echo w > .wh.b`, src);
    const before = indexBytes(layout);
    const r = boci(["insert", "--image", img, src, "/opt/x"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n")[0]).toContain(".wh.");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(indexBytes(layout)).toEqual(before);
    expect(checkLayout(layout)).toEqual([]);
  });

  test("argument errors: wrong counts → exit 2, missing source → exit 3; nothing changes", () => {
    const { layout, img } = baseImage();
    const before = indexBytes(layout);
    const src = join(scratch(), "f");
    writeFileSync(src, "x");
    expect(boci(["insert", "--image", img, "a"]).code).toBe(2);
    expect(boci(["insert", "--image", img]).code).toBe(2);
    expect(boci(["insert", "--image", img, src, "/a", "/b"]).code).toBe(2);
    expect(boci(["insert", "--whiteout", "--image", img, "a", "b"]).code).toBe(2);
    expect(boci(["insert", "--whiteout", "--image", img]).code).toBe(2);
    expect(boci(["insert", src, "/a"]).code).toBe(2);
    const r = boci(["insert", "--image", img, join(scratch(), "nope"), "/a"]);
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(boci(["insert", "--image", `${layout}:nosuchtag`, src, "/a"]).code).toBe(3);
    expect(indexBytes(layout)).toEqual(before);
    expect(checkLayout(layout)).toEqual([]);
  });
});

describe.skipIf(!isRoot)("raw add-layer", () => {
  function makeLayerTar(): { file: string; bytes: Buffer } {
    const d = join(scratch(), "content");
    mkdirSync(d);
    run(`mkdir -p etc srv/www; echo hello > srv/www/index.html; echo cfg > etc/app.conf; ln -s www/index.html srv/link`, d);
    const file = join(scratch(), "layer.tar");
    run(`tar --numeric-owner -C ${JSON.stringify(d)} -cf ${JSON.stringify(file)} .`, d);
    return { file, bytes: readFileSync(file) };
  }

  test("appends the tar verbatim: diffID = sha256(file), gzip by default on a fresh image", () => {
    const layout = newLayout();
    const img = `${layout}:t`;
    ok(["new", "--image", img]);
    const { file, bytes } = makeLayerTar();
    ok(["raw", "add-layer", "--image", img, file]);
    expect(checkLayout(layout)).toEqual([]);
    const s = stat(img);
    expect(s.manifest.blob.layers).toHaveLength(1);
    const d = s.manifest.blob.layers[0]!;
    expect(d.mediaType).toBe(GZIP);
    expect(s.config.blob.rootfs.diff_ids).toEqual([sha256(bytes)]);
    expect(layerTar(layout, d)).toEqual(bytes);
    expect(d.annotations?.["ci.umo.uncompressed_blob_size"]).toBe(String(bytes.length));
    expect(s.config.blob.history!.at(-1)!.created_by).toBe("boci raw add-layer");
    const b = unpack(img);
    expect(readFileSync(join(b, "rootfs/srv/www/index.html"), "utf8")).toBe("hello\n");
    expect(readFileSync(join(b, "rootfs/srv/link"), "utf8")).toBe("hello\n");
    expect(readFileSync(join(b, "rootfs/etc/app.conf"), "utf8")).toBe("cfg\n");
  });

  test("--compress none stores the file bytes as the blob; zstd round-trips", () => {
    const layout = newLayout();
    const img = `${layout}:t`;
    ok(["new", "--image", img]);
    const { file, bytes } = makeLayerTar();
    ok(["raw", "add-layer", "--compress", "none", "--image", img, file]);
    ok(["raw", "add-layer", "--compress", "zstd", "--image", img, file]);
    expect(checkLayout(layout)).toEqual([]);
    const s = stat(img);
    const [a, z] = s.manifest.blob.layers;
    expect(a!.mediaType).toBe(TAR);
    expect(a!.digest).toBe(sha256(bytes));
    expect(a!.size).toBe(bytes.length);
    expect(z!.mediaType).toBe(ZSTD);
    expect(layerTar(layout, z!)).toEqual(bytes);
    expect(s.config.blob.rootfs.diff_ids).toEqual([sha256(bytes), sha256(bytes)]);
    const b = unpack(img);
    expect(readFileSync(join(b, "rootfs/srv/www/index.html"), "utf8")).toBe("hello\n");
  });

  test("--tag, author default, history flags", () => {
    const layout = newLayout();
    const img = `${layout}:t`;
    ok(["new", "--image", img]);
    ok(["config", "--image", img, "--author", "Img Author"]);
    const before = stat(img).manifest.descriptor.digest;
    const { file } = makeLayerTar();
    ok(["raw", "add-layer", "--tag", "t2", "--history.comment", "added", "--image", img, file]);
    expect(checkLayout(layout)).toEqual([]);
    expect(stat(img).manifest.descriptor.digest).toBe(before);
    const h = hist(`${layout}:t2`).at(-1)!;
    expect(h.author).toBe("Img Author");
    expect(h.comment).toBe("added");
    expect(h.created_by).toBe("boci raw add-layer");
    expect(layers(`${layout}:t2`)).toHaveLength(1);
  });

  test("missing file → exit 3; wrong arg count → exit 2; nothing changes", () => {
    const layout = newLayout();
    const img = `${layout}:t`;
    ok(["new", "--image", img]);
    const before = indexBytes(layout);
    const r = boci(["raw", "add-layer", "--image", img, join(scratch(), "none.tar")]);
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(boci(["raw", "add-layer", "--image", img]).code).toBe(2);
    const { file } = makeLayerTar();
    expect(boci(["raw", "add-layer", "--image", img, file, file]).code).toBe(2);
    expect(indexBytes(layout)).toEqual(before);
    expect(checkLayout(layout)).toEqual([]);
  });
});
