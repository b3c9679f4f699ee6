/**
 * The archive readers and writers (src/transport/tar-members.ts, oci-archive.ts,
 * docker-archive.ts): member indexing and hostile archives, round trips, and interop with
 * skopeo 1.9 and umoci 0.4.7 (skipped, with a message, where they are not installed).
 */
import { describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import { join } from "node:path";
import { ok, scratch, sh, have, isRoot } from "../helpers/cli";
import { compress, dir, file, hardlink, makeImage, paxRecord, makeTar, sha256hex, symlink, tarEntry, tarHeader, whiteout, type TarEntrySpec } from "../helpers/image";
import { collect, imageToWrite, makeDockerArchive, makeOciArchive, treeOf } from "../helpers/archive";
import { checkLayout } from "../helpers/check-layout";
import { TarIndex, cleanMemberName, openTarFile, withBase256Size } from "../../src/transport/tar-members";
import { encodeEntryHeader } from "../../src/tar/writer";
import { decodeHeader } from "../../src/tar/header";
import { OciArchiveReader, writeOciArchive } from "../../src/transport/oci-archive";
import { DockerArchiveReader, writeDockerArchive } from "../../src/transport/docker-archive";
import { Layout } from "../../src/cas/layout";
import { BociError, InvalidError, NotFoundError, UnsupportedError } from "../../src/errors";
import type { Descriptor, Manifest } from "../../src/image";

const haveSkopeo = have("skopeo");
const haveUmoci = have("umoci");
if (!haveSkopeo) console.log("transport-archive: skopeo not installed; skipping the skopeo interop tests");
if (!haveUmoci || !isRoot) console.log("transport-archive: umoci not installed or not root; skipping the unpacked-tree comparisons");
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const must = (cmd: string) => {
  const r = sh(cmd);
  if (r.code !== 0) throw new Error(`${cmd}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
};

/** Layer tars with every entry kind the formats must carry. */
function layers(): Buffer[] {
  const long = "d/" + "n".repeat(120);
  return [
    makeTar([
      dir("etc/"), file("etc/hosts", "127.0.0.1 localhost\n", { mode: 0o640, uid: 12, gid: 34 }), dir("usr/"), dir("usr/bin/"),
      file("usr/bin/tool", "#!/bin/sh\necho tool\n", { mode: 0o755 }), symlink("bin", "usr/bin"), hardlink("etc/hosts2", "etc/hosts"),
      dir("d/"), file(long, "long name\n"),
    ]),
    makeTar([whiteout("etc/.wh.hosts2"), file("etc/new", "x".repeat(3000)), file("usr/bin/tool", "#!/bin/sh\necho v2\n", { mode: 0o700 })]),
  ];
}

/** A layout made by the binary (`init`) holding the image `t` over {@link layers}. */
function layoutWithImage(c: "gzip" | "zstd" | "none" = "gzip"): { L: string; manifest: Descriptor } {
  const L = join(scratch("boci-arch-"), "L");
  ok(["init", "--layout", L]);
  const made = makeImage(L, "t", layers(), { compress: c, config: { config: { Env: ["A=1"], Cmd: ["/bin/sh"] }, history: [{ created_by: "one" }, { created_by: "two" }] } });
  return { L, manifest: made.manifest };
}

/** What an error's message is, the test failing when `fn` does not throw `cls`. */
async function failure(fn: () => unknown, cls: typeof BociError = InvalidError): Promise<string> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(cls);
    const msg = (e as Error).message;
    expect(msg).not.toContain("\n");
    return msg;
  }
  throw new Error("expected a failure");
}

function indexOf(bytes: Buffer, opts: { maxMembers?: number } = {}): TarIndex {
  const d = scratch("boci-arch-");
  const f = join(d, "a.tar");
  fs.writeFileSync(f, bytes);
  const fd = fs.openSync(f, "r");
  try {
    return TarIndex.build(fd, f, bytes.length, opts);
  } finally { fs.closeSync(fd); }
}

/** The names of the files in `d` (to show a failed writer left nothing). */
const ls = (d: string) => fs.readdirSync(d).sort();

describe("tar-members", () => {
  test("pax and GNU long names, ./ names, offsets and sizes", () => {
    const long = "x/" + "y".repeat(150);
    const gnuName = "g/" + "z".repeat(130);
    const gnu = Buffer.concat([
      tarHeader({ name: Buffer.from("././@LongLink"), type: 0x4c, mode: 0, uid: 0, gid: 0, size: gnuName.length + 1, mtime: 0, linkname: Buffer.alloc(0), devmajor: 0, devminor: 0 }),
      Buffer.concat([Buffer.from(gnuName + "\0"), Buffer.alloc(512 - gnuName.length - 1)]),
      tarEntry(file("ignored-short-name", "gnu body")),
    ]);
    const tar = Buffer.concat([tarEntry(file("./a", "alpha")), tarEntry(file(long, "long")), gnu, tarEntry(dir("./")), Buffer.alloc(1024)]);
    const ix = indexOf(tar);
    const a = ix.lookup("a")!;
    expect(a.type).toBe("file");
    expect(tar.subarray(a.offset, a.offset + a.size).toString()).toBe("alpha");
    const l = ix.lookup(long)!;
    expect(tar.subarray(l.offset, l.offset + l.size).toString()).toBe("long");
    const g = ix.lookup(gnuName)!;
    expect(tar.subarray(g.offset, g.offset + g.size).toString()).toBe("gnu body");
    expect(ix.lookup("ignored-short-name")).toBeUndefined();
    expect(ix.size).toBe(3);
  });

  test("names are cleaned; absolute and .. are refused", () => {
    expect(cleanMemberName("./a//b/", "t")).toBe("a/b");
    expect(cleanMemberName("./", "t")).toBe("");
    expect(() => cleanMemberName("/etc/passwd", "t")).toThrow(/absolute name/);
    expect(() => cleanMemberName("a/../../x", "t")).toThrow(/"\.\." component/);
  });

  test("hostile member names: one line naming the archive and the member", async () => {
    for (const [name, re] of [["/etc/passwd", /absolute name/], ["../x", /"\.\." component/], ["a/../b", /"\.\." component/]] as const) {
      const msg = await failure(() => indexOf(makeTar([file("ok", "1"), file(name, "evil")])));
      expect(msg).toMatch(re);
      expect(msg).toContain(JSON.stringify(name));
      expect(msg).toMatch(/^archive \//);
    }
  });

  test("duplicate members are refused when used, repeated directories are not", async () => {
    const ix = indexOf(makeTar([dir("d/"), file("x", "1"), dir("d/"), file("x", "2"), file("y", "3")]));
    expect(await failure(() => ix.lookup("x"))).toMatch(/"x" appears more than once/);
    expect(ix.lookup("d")!.type).toBe("dir");
    expect(ix.resolveFile("y")!.size).toBe(1);
  });

  test("a member whose data runs past the end of the file (truncated, lying size)", async () => {
    const good = makeTar([file("a", "x".repeat(2000)), file("b", "y")]);
    const truncated = good.subarray(0, 1500);
    expect(await failure(() => indexOf(truncated))).toMatch(/member "a": data runs past the end of the archive/);
    const lying = makeTar([file("a", "short", { size: 1 << 20 })], { noEnd: true });
    expect(await failure(() => indexOf(lying))).toMatch(/"a": data runs past the end.*truncated or lying header/);
    expect(await failure(() => indexOf(good.subarray(0, 2560 + 100)))).toMatch(/partial header block at offset 2560/);
  });

  test("a lone zero block followed by more members is refused; the end marker may be missing", async () => {
    const hidden = Buffer.concat([tarEntry(file("a", "1")), Buffer.alloc(512), tarEntry(file("hidden", "2")), Buffer.alloc(1024)]);
    expect(await failure(() => indexOf(hidden))).toMatch(/single zero block at offset 1024 followed by data/);
    expect(indexOf(makeTar([file("a", "1")], { noEnd: true })).lookup("a")!.size).toBe(1);
    expect(indexOf(Buffer.concat([tarEntry(file("a", "1")), Buffer.alloc(512)])).lookup("a")!.size).toBe(1);
  });

  test("a header rewritten with a base-256 size (layers of 8 GiB and more) decodes to that size", () => {
    const h = encodeEntryHeader({ name: "x.tar", type: "file", mode: 0o644 }, 0);
    const big = 9 * 2 ** 30 + 12345;
    const raw = decodeHeader(withBase256Size(h, big))!;
    expect(raw.size).toBe(big);
    expect(raw.name).toBe("x.tar");
  });

  test("header-only members carry no data whatever their size says; global pax records apply", () => {
    const paxG = paxRecord("path", "global-name-for-all");
    const tar = Buffer.concat([
      tarEntry({ name: "fifo", type: "6", size: 4096 }), tarEntry({ name: "dev", type: "3", size: 999 }), tarEntry(file("after", "body")),
      tarHeader({ name: Buffer.from("g"), type: 0x67, mode: 0, uid: 0, gid: 0, size: paxG.length, mtime: 0, linkname: Buffer.alloc(0), devmajor: 0, devminor: 0 }),
      paxG, Buffer.alloc(512 - paxG.length), tarEntry(file("named-by-global", "g")), Buffer.alloc(1024),
    ]);
    const ix = indexOf(tar);
    expect(ix.lookup("fifo")!.type).toBe("other");
    const a = ix.lookup("after")!;
    expect(tar.subarray(a.offset, a.offset + a.size).toString()).toBe("body");
    expect(ix.lookup("global-name-for-all")!.size).toBe(1);
    expect(ix.lookup("named-by-global")).toBeUndefined();
  });

  test("an index over the member bound is refused", async () => {
    const many = makeTar(Array.from({ length: 12 }, (_, i) => file(`f${i}`, "")));
    expect(indexOf(many, { maxMembers: 12 }).size).toBe(12);
    expect(await failure(() => indexOf(many, { maxMembers: 11 }))).toMatch(/more than 11 members/);
  });

  test("links resolve inside the archive only", async () => {
    const ix = indexOf(makeTar([
      file("real.tar", "data"), dir("v1/"), symlink("v1/layer.tar", "../real.tar"), hardlink("hard", "real.tar"),
      symlink("chain", "v1/layer.tar"), symlink("out", "../../etc/passwd"), symlink("abs", "/etc/passwd"),
      symlink("loop1", "loop2"), symlink("loop2", "loop1"), symlink("dangling", "nothing"), symlink("todir", "v1"),
    ]));
    const real = ix.lookup("real.tar")!;
    for (const n of ["v1/layer.tar", "hard", "chain"]) expect(ix.resolveFile(n)!.offset).toBe(real.offset);
    expect(await failure(() => ix.resolveFile("out"))).toMatch(/points outside the archive/);
    expect(await failure(() => ix.resolveFile("abs"))).toMatch(/points outside the archive/);
    expect(await failure(() => ix.resolveFile("loop1"))).toMatch(/too many levels of links/);
    expect(await failure(() => ix.resolveFile("dangling"))).toMatch(/not in the archive/);
    expect(await failure(() => ix.resolveFile("todir"))).toMatch(/is not a regular file/);
    expect(ix.resolveFile("missing")).toBeUndefined();
  });

  test("compressed and non-tar files are refused, a missing one is not found", async () => {
    const d = scratch("boci-arch-");
    fs.writeFileSync(join(d, "g.tar"), compress(makeTar([file("a", "1")]), "gzip"));
    fs.writeFileSync(join(d, "z.tar"), compress(makeTar([file("a", "1")]), "zstd"));
    fs.writeFileSync(join(d, "short"), "hello");
    expect(await failure(() => openTarFile(join(d, "g.tar"), "oci-archive"))).toMatch(/gzip-compressed file.*decompress it first/);
    expect(await failure(() => openTarFile(join(d, "z.tar"), "oci-archive"))).toMatch(/zstd-compressed/);
    expect(await failure(() => openTarFile(join(d, "short"), "oci-archive"))).toMatch(/not a tar archive/);
    expect(await failure(() => openTarFile(d, "oci-archive"))).toMatch(/not a regular file/);
    expect(await failure(() => openTarFile(join(d, "none"), "oci-archive"), NotFoundError)).toMatch(/no such file/);
  });
});

/** Every blob a reader's index reaches, read both ways, by digest. */
async function allBlobs(r: { readIndex(): { manifests: Descriptor[] }; readBlob(d: Descriptor): Buffer; readJson<T>(d: Descriptor, k: "manifest"): T; getBlob(d: Descriptor): AsyncGenerator<Buffer> }): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const m of r.readIndex().manifests) {
    out.set(m.digest, r.readBlob(m));
    const man = r.readJson<Manifest>(m, "manifest");
    out.set(man.config.digest, r.readBlob(man.config));
    for (const l of man.layers) out.set(l.digest, await collect(r.getBlob(l)));
  }
  return out;
}

describe("oci-archive", () => {
  test("layout -> writeOciArchive -> OciArchiveReader: same index, byte-identical blobs; deterministic; tar -x gives the layout", async () => {
    const { L } = layoutWithImage();
    // What is not the layout's (a temporary file, the lock files) stays out of the archive.
    fs.mkdirSync(join(L, ".boci-tmp"), { recursive: true });
    fs.writeFileSync(join(L, ".boci-tmp", "blob-1-x"), "partial");
    fs.writeFileSync(join(L, ".boci-gc.lock"), "");
    const d = scratch("boci-arch-");
    const A = join(d, "a.tar");
    let bytes = 0;
    await writeOciArchive(L, A, { onBytes: (n) => { bytes += n; } });
    expect(bytes).toBe(fs.statSync(A).size);
    const r = OciArchiveReader.open(A);
    try {
      expect(r.readIndex()).toEqual(JSON.parse(fs.readFileSync(join(L, "index.json"), "utf8")));
      const blobs = await allBlobs(r);
      expect(blobs.size).toBe(4);
      for (const [digest, b] of blobs) expect(b.equals(fs.readFileSync(join(L, "blobs", ...digest.split(":"))))).toBe(true);
      expect(r.hasBlob(`sha256:${"0".repeat(64)}`)).toBe(false);
      expect(await failure(() => r.readBlob({ digest: `sha256:${"0".repeat(64)}`, size: 1 }), NotFoundError)).toMatch(/not found in oci-archive/);
    } finally { r.close(); }
    // The same layout twice gives the same bytes (fixed order, owners, mtimes).
    await writeOciArchive(L, join(d, "b.tar"));
    expect(fs.readFileSync(A).equals(fs.readFileSync(join(d, "b.tar")))).toBe(true);
    expect(ls(d)).toEqual(["a.tar", "b.tar"]);
    const listing = must(`tar tvf ${q(A)}`).trim().split("\n");
    expect(listing[0]).toMatch(/^drwxr-xr-x 0\/0 +0 1970-01-01 00:00 blobs\/$/);
    expect(listing.at(-2)).toMatch(/index\.json$/);
    expect(listing.at(-1)).toMatch(/^-rw-r--r-- 0\/0 .* oci-layout$/);
    const X = join(d, "x");
    fs.mkdirSync(X);
    must(`tar -xf ${q(A)} -C ${q(X)}`);
    expect(must(`cd ${q(X)} && find . -type f | sort | xargs sha256sum`)).toBe(must(`cd ${q(L)} && find . -type f -not -path './.boci*' | sort | xargs sha256sum`));
  });

  test("concurrent streams of one reader read their own members", async () => {
    const { L, manifest } = layoutWithImage();
    const d = scratch("boci-arch-");
    await writeOciArchive(L, join(d, "a.tar"));
    const r = OciArchiveReader.open(join(d, "a.tar"));
    try {
      const man = r.readJson<Manifest>(manifest, "manifest");
      const got = await Promise.all([...man.layers, ...man.layers].map((l) => collect(r.getBlob(l, { chunkSize: 7 }))));
      for (const [i, b] of got.entries()) expect(b.equals(fs.readFileSync(join(L, "blobs", ...man.layers[i % 2]!.digest.split(":"))))).toBe(true);
    } finally { r.close(); }
    expect(() => r.readIndex()).toThrow(/closed/);
  });

  test("a corrupt blob in the layout: InvalidError, no file written", async () => {
    const { L, manifest } = layoutWithImage();
    const m = JSON.parse(fs.readFileSync(join(L, "blobs", ...manifest.digest.split(":")), "utf8"));
    const layer = join(L, "blobs", ...m.layers[1].digest.split(":"));
    const b = fs.readFileSync(layer);
    b[b.length - 3] ^= 0xff;
    fs.writeFileSync(layer, b);
    const d = scratch("boci-arch-");
    expect(await failure(() => writeOciArchive(L, join(d, "a.tar")))).toMatch(/is corrupt/);
    expect(ls(d)).toEqual([]);
  });

  test("a symlink in blobs/ is refused, not followed; a directory destination is refused", async () => {
    const { L } = layoutWithImage();
    const d = scratch("boci-arch-");
    fs.symlinkSync("/etc/passwd", join(L, "blobs", "sha256", "a".repeat(64)));
    expect(await failure(() => writeOciArchive(L, join(d, "a.tar")))).toMatch(/is a symlink/);
    fs.unlinkSync(join(L, "blobs", "sha256", "a".repeat(64)));
    fs.mkdirSync(join(d, "dir.tar"));
    await failure(() => writeOciArchive(L, join(d, "dir.tar")), BociError);
    expect(ls(d)).toEqual(["dir.tar"]);
  });

  test("reader: missing oci-layout or index.json, a bad version, a blob that lies", async () => {
    const { L, manifest } = layoutWithImage();
    const d = scratch("boci-arch-");
    const A = join(d, "a.tar");
    fs.writeFileSync(A, makeTar([file("index.json", "{}")]));
    expect(await failure(() => OciArchiveReader.open(A))).toMatch(/not an OCI archive \(no oci-layout member\)/);
    fs.writeFileSync(A, makeTar([file("oci-layout", '{"imageLayoutVersion":"1.0.0"}')]));
    expect(await failure(() => OciArchiveReader.open(A))).toMatch(/missing index\.json/);
    fs.writeFileSync(A, makeTar([file("oci-layout", '{"imageLayoutVersion":"2.0.0"}'), file("index.json", "{}")]));
    expect(await failure(() => OciArchiveReader.open(A), UnsupportedError)).toMatch(/unsupported imageLayoutVersion "2.0.0"/);
    // A member whose bytes do not match its name: the read fails (verified), nothing is yielded whole.
    const m = JSON.parse(fs.readFileSync(join(L, "blobs", ...manifest.digest.split(":")), "utf8"));
    const cfgHex = m.config.digest.split(":")[1];
    makeOciArchive(L, A);
    const good = fs.readFileSync(A);
    const at = good.indexOf(Buffer.from(`blobs/sha256/${cfgHex}`)) + 512;
    good[at + 3] ^= 0x01;
    fs.writeFileSync(A, good);
    const r = OciArchiveReader.open(A);
    try {
      expect(await failure(() => r.readBlob(m.config))).toMatch(/digest mismatch/);
    } finally { r.close(); }
    // Hostile members.
    makeOciArchive(L, A, { extra: [file("../escape", "x")] });
    expect(await failure(() => OciArchiveReader.open(A))).toMatch(/"\.\.\/escape".*"\.\." component|"\.\." component/);
    makeOciArchive(L, A, { extra: [file("index.json", "{}")] });
    expect(await failure(() => OciArchiveReader.open(A))).toMatch(/"index.json" appears more than once/);
  });

  test.skipIf(!haveSkopeo)("skopeo interop: skopeo's oci-archive reads here; ours copies with skopeo and unpacks to the same tree", async () => {
    const { L } = layoutWithImage();
    const d = scratch("boci-arch-");
    const S = join(d, "skopeo.tar");
    must(`skopeo copy -q oci:${q(L)}:t oci-archive:${q(S)}:t`);
    const r = OciArchiveReader.open(S);
    let theirs: Map<string, Buffer>;
    try {
      theirs = await allBlobs(r);
      expect(r.readIndex().manifests[0]!.annotations?.["org.opencontainers.image.ref.name"]).toBe("t");
    } finally { r.close(); }
    for (const [digest, b] of theirs) expect(b.equals(fs.readFileSync(join(L, "blobs", ...digest.split(":"))))).toBe(true);
    const A = join(d, "ours.tar");
    await writeOciArchive(L, A);
    const D = join(d, "D");
    must(`skopeo copy -q oci-archive:${q(A)}:t oci:${q(D)}:t`);
    expect(checkLayout(D)).toEqual([]);
    // oci -> oci-archive -> oci keeps the manifest digest.
    expect(JSON.parse(fs.readFileSync(join(D, "index.json"), "utf8")).manifests[0].digest)
      .toBe(JSON.parse(fs.readFileSync(join(L, "index.json"), "utf8")).manifests[0].digest);
    if (haveUmoci && isRoot) {
      must(`umoci unpack --image ${q(L)}:t ${q(join(d, "b1"))} && umoci unpack --image ${q(D)}:t ${q(join(d, "b2"))}`);
      const t1 = treeOf(join(d, "b1", "rootfs"));
      expect(Object.keys(t1)).toContain("etc/new");
      expect(treeOf(join(d, "b2", "rootfs"))).toEqual(t1);
    }
  });
});

describe("docker-archive reader", () => {
  test("skopeo-style archive: synthetic OCI manifest, verified config and layers", async () => {
    const d = scratch("boci-arch-");
    const F = join(d, "d.tar");
    const ls2 = layers();
    const [img] = makeDockerArchive(F, [{ layers: ls2, repoTags: ["docker.io/library/busybox:latest", "example.com/x/y:2"] }]);
    const r = DockerArchiveReader.open(F);
    try {
      const ix = r.readIndex();
      expect(ix.manifests.map((m) => m.annotations?.["org.opencontainers.image.ref.name"])).toEqual(["docker.io/library/busybox:latest", "example.com/x/y:2"]);
      const imgs = r.images();
      expect(imgs.length).toBe(1);
      expect(imgs[0]!.repoTags).toEqual(["docker.io/library/busybox:latest", "example.com/x/y:2"]);
      const mbytes = r.readBlob(imgs[0]!.manifest);
      expect(`sha256:${sha256hex(mbytes)}`).toBe(imgs[0]!.manifest.digest);
      const man = r.readJson<Manifest>(imgs[0]!.manifest, "manifest");
      expect(man.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
      expect(man.config).toEqual({ mediaType: "application/vnd.oci.image.config.v1+json", digest: img!.configDigest, size: img!.configBytes.length });
      expect(r.readBlob(man.config).equals(img!.configBytes)).toBe(true);
      expect(man.layers.map((l) => l.digest)).toEqual(img!.diffIds);
      expect(man.layers.map((l) => l.mediaType)).toEqual(["application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar"]);
      for (const [i, l] of man.layers.entries()) {
        expect(l.size).toBe(ls2[i]!.length);
        expect((await collect(r.getBlob(l))).equals(ls2[i]!)).toBe(true);
      }
      // Stable: a second open gives the same manifest digest.
      const again = DockerArchiveReader.open(F);
      expect(again.images()[0]!.manifest).toEqual(imgs[0]!.manifest);
      again.close();
    } finally { r.close(); }
  });

  test("multi-image archives in Docker's layouts (legacy, 25+), compressed members, untagged images, @N order", async () => {
    const d = scratch("boci-arch-");
    const ls2 = layers();
    const extra = makeTar([file("other", "something else\n")]);
    const extra2 = makeTar([file("third", "a third layer\n")]);
    for (const style of ["legacy", "oci", "skopeo"] as const) {
      const F = join(d, `${style}.tar`);
      const built = makeDockerArchive(F, [
        { layers: ls2, repoTags: ["a:1"] },
        { layers: [ls2[0]!, extra], compressEach: ["none", "gzip"], repoTags: null },
        { layers: [extra2, ls2[1]!], compressEach: ["zstd", "none"], repoTags: ["b:2", "c:3"], config: { author: "x" } },
      ], { style });
      const r = DockerArchiveReader.open(F);
      try {
        const imgs = r.images();
        expect(imgs.map((i) => i.repoTags)).toEqual([["a:1"], [], ["b:2", "c:3"]]);
        const ix = r.readIndex();
        expect(ix.manifests.map((m) => m.annotations?.["org.opencontainers.image.ref.name"] ?? null)).toEqual(["a:1", null, "b:2", "c:3"]);
        expect(ix.manifests.map((m) => m.digest)).toEqual([imgs[0], imgs[1], imgs[2], imgs[2]].map((i) => i!.manifest.digest));
        const m1 = r.readJson<Manifest>(imgs[1]!.manifest, "manifest");
        expect(m1.layers[1]!.mediaType).toBe("application/vnd.oci.image.layer.v1.tar+gzip");
        const gz = compress(extra, "gzip");
        expect(m1.layers[1]!.digest).toBe(`sha256:${sha256hex(gz)}`);
        expect((await collect(r.getBlob(m1.layers[1]!))).equals(gz)).toBe(true);
        const m2 = r.readJson<Manifest>(imgs[2]!.manifest, "manifest");
        expect(m2.layers[0]!.mediaType).toBe("application/vnd.oci.image.layer.v1.tar+zstd");
        expect(r.readBlob(m2.config).equals(built[2]!.configBytes)).toBe(true);
        for (const i of imgs) expect(r.hasBlob(i.manifest.digest)).toBe(true);
      } finally { r.close(); }
      if (haveSkopeo) {
        // The fixtures are archives skopeo reads as well (its @N is ours).
        const cfg = JSON.parse(must(`skopeo inspect --config docker-archive:${q(F)}:@2`));
        expect(cfg.rootfs.diff_ids).toEqual(built[2]!.diffIds);
        expect(cfg.author).toBe("x");
      }
    }
  });

  test("hostile docker-archives: one clear error each", async () => {
    const d = scratch("boci-arch-");
    const F = join(d, "h.tar");
    const l = layers()[0]!;
    const base = (manifestJson: unknown, extra: TarEntrySpec[] = []) => makeDockerArchive(F, [{ layers: [l] }], { manifestJson: JSON.stringify(manifestJson), extra });
    const [img] = makeDockerArchive(F, [{ layers: [l] }]);
    const cfg = `${img!.configDigest.slice(7)}.json`;
    const lay = img!.layerPaths[0]!;
    const cases: [unknown, RegExp, TarEntrySpec[]?][] = [
      [[{ Config: "../x", RepoTags: [], Layers: [lay] }], /config "\.\.\/x" is outside the archive/],
      [[{ Config: "/etc/passwd", RepoTags: [], Layers: [lay] }], /config "\/etc\/passwd" is outside the archive/],
      [[{ Config: cfg, RepoTags: [], Layers: ["../../etc/shadow"] }], /layer 1 "\.\.\/\.\.\/etc\/shadow" is outside the archive/],
      [[{ Config: cfg, RepoTags: [], Layers: ["nothere.tar"] }], /layer 1 "nothere.tar" is not in the archive/],
      [[{ Config: "missing.json", RepoTags: [], Layers: [lay] }], /config "missing.json" is not in the archive/],
      [[{ Config: cfg, RepoTags: [], Layers: [] }], /config has 1 diff_ids but manifest.json lists 0 layers/],
      [[{ Config: cfg, RepoTags: [], Layers: [lay, lay] }], /config has 1 diff_ids but manifest.json lists 2 layers/],
      [[{ Config: cfg, RepoTags: [], Layers: ["esc.tar"] }], /points outside the archive/, [symlink("esc.tar", "../../../etc/passwd")]],
      [[{ Config: cfg, RepoTags: [], Layers: ["junk.bin"] }], /is not a tar archive \(nor gzip or zstd\)/, [file("junk.bin", "j".repeat(600))]],
      [{ Config: cfg }, /manifest.json: must be a JSON array/],
      [[], /manifest.json: holds no image/],
      [[{ Config: cfg, RepoTags: "x", Layers: [lay] }], /RepoTags must be an array of strings/],
    ];
    for (const [mj, re, extra] of cases) {
      base(mj, extra);
      const msg = await failure(() => DockerArchiveReader.open(F));
      expect(msg).toMatch(re);
      expect(msg).toContain(F);
    }
    makeDockerArchive(F, [{ layers: [l] }], { manifestJson: "[{" });
    expect(await failure(() => DockerArchiveReader.open(F))).toMatch(/manifest.json:/);
    fs.writeFileSync(F, makeTar([file("repositories", "{}")]));
    expect(await failure(() => DockerArchiveReader.open(F))).toMatch(/not a docker archive \(no manifest.json member\)/);
    // A manifest.json over the JSON size limit (sparse: the header, then a hole of zeros).
    const big = 33 << 20;
    const h = tarHeader({ name: Buffer.from("manifest.json"), type: 0x30, mode: 0o644, uid: 0, gid: 0, size: big, mtime: 0, linkname: Buffer.alloc(0), devmajor: 0, devminor: 0 });
    fs.writeFileSync(F, h);
    fs.truncateSync(F, 512 + big + 1024);
    expect(await failure(() => DockerArchiveReader.open(F))).toMatch(/manifest.json: 34603008 bytes is over the limit/);
    // A layer member shorter than its diffID says (truncated content, consistent tar headers).
    makeDockerArchive(F, [{ layers: [l], rawLayers: [l.subarray(0, l.length - 1024)] }]);
    const r = DockerArchiveReader.open(F);
    try {
      const man = r.readJson<Manifest>(r.images()[0]!.manifest, "manifest");
      expect(await failure(() => collect(r.getBlob(man.layers[0]!)))).toMatch(/digest mismatch/);
    } finally { r.close(); }
    expect(ls(d)).toEqual(["h.tar"]);
  });
});

describe("docker-archive writer", () => {
  test("image -> writeDockerArchive -> DockerArchiveReader: same config bytes and diffIDs; deterministic; layers uncompressed", async () => {
    for (const c of ["gzip", "zstd", "none"] as const) {
      const { L, manifest } = layoutWithImage(c);
      const layout = Layout.open(L);
      const d = scratch("boci-arch-");
      const F = join(d, "d.tar");
      try {
        const img = imageToWrite(layout, manifest);
        await writeDockerArchive(F, img, ["docker.io/library/t:latest", "example.com/a/b:v1"]);
        const r = DockerArchiveReader.open(F);
        try {
          const [i] = r.images();
          expect(i!.repoTags).toEqual(["docker.io/library/t:latest", "example.com/a/b:v1"]);
          const man = r.readJson<Manifest>(i!.manifest, "manifest");
          expect(r.readBlob(man.config).equals(img.configBytes)).toBe(true);
          expect(man.layers.map((l) => l.digest)).toEqual(img.config.rootfs.diff_ids);
          const raw = layers();
          for (const [n, l] of man.layers.entries()) expect((await collect(r.getBlob(l))).equals(raw[n]!)).toBe(true);
        } finally { r.close(); }
        const listing = must(`tar tf ${q(F)}`).trim().split("\n");
        const cfgHex = img.configDesc.digest.slice(7);
        expect(listing).toEqual([...img.config.rootfs.diff_ids.map((x) => `${x.slice(7)}.tar`), `${cfgHex}.json`, "manifest.json", "repositories"]);
        expect(JSON.parse(must(`tar xOf ${q(F)} repositories`))).toEqual({ "docker.io/library/t": { latest: cfgHex }, "example.com/a/b": { v1: cfgHex } });
        await writeDockerArchive(join(d, "e.tar"), imageToWrite(layout, manifest), ["docker.io/library/t:latest", "example.com/a/b:v1"]);
        expect(fs.readFileSync(F).equals(fs.readFileSync(join(d, "e.tar")))).toBe(true);
        expect(ls(d)).toEqual(["d.tar", "e.tar"]);
      } finally { layout.close(); }
    }
  });

  test("Docker layer media types (crane, buildx) are decompressed by their suffix", async () => {
    const raw = layers();
    const L = join(scratch("boci-arch-"), "L");
    ok(["init", "--layout", L]);
    const made = makeImage(L, "t", raw, { compressEach: ["gzip", "none"], mediaTypes: ["application/vnd.docker.image.rootfs.diff.tar.gzip", "application/vnd.docker.image.rootfs.diff.tar"] });
    const layout = Layout.open(L);
    const d = scratch("boci-arch-");
    try {
      await writeDockerArchive(join(d, "d.tar"), imageToWrite(layout, made.manifest), ["a:b"]);
    } finally { layout.close(); }
    const r = DockerArchiveReader.open(join(d, "d.tar"));
    try {
      const man = r.readJson<Manifest>(r.images()[0]!.manifest, "manifest");
      for (const [n, l] of man.layers.entries()) expect((await collect(r.getBlob(l))).equals(raw[n]!)).toBe(true);
    } finally { r.close(); }
  });

  test("a layer used twice is written once; no tags: no repositories", async () => {
    const l = layers()[0]!;
    const L = join(scratch("boci-arch-"), "L");
    ok(["init", "--layout", L]);
    const made = makeImage(L, "t", [l, l]);
    const layout = Layout.open(L);
    const d = scratch("boci-arch-");
    // The temporary file goes to `tmpdir` (same filesystem here) and is gone afterwards.
    const tmp = scratch("boci-arch-tmp-");
    const seen = new Set<string>();
    try {
      await writeDockerArchive(join(d, "d.tar"), imageToWrite(layout, made.manifest), [], { tmpdir: tmp, onBytes: () => { for (const n of ls(tmp)) seen.add(n); } });
    } finally { layout.close(); }
    expect([...seen].length).toBe(1);
    expect([...seen][0]).toMatch(/^\.d\.tar\.boci-\d+-[0-9a-f]+\.tmp$/);
    expect(ls(tmp)).toEqual([]);
    const hex = sha256hex(l);
    expect(must(`tar tf ${q(join(d, "d.tar"))}`).trim().split("\n")).toEqual([`${hex}.tar`, `${made.config.digest.slice(7)}.json`, "manifest.json"]);
    expect(JSON.parse(must(`tar xOf ${q(join(d, "d.tar"))} manifest.json`))).toEqual([{ Config: `${made.config.digest.slice(7)}.json`, RepoTags: [], Layers: [`${hex}.tar`, `${hex}.tar`] }]);
  });

  test("a layer whose content does not match its diffID, a corrupt blob, a bad repo tag: an error, no file", async () => {
    const d = scratch("boci-arch-");
    const raw = layers();
    const L = join(scratch("boci-arch-"), "L");
    ok(["init", "--layout", L]);
    const wrong = makeImage(L, "w", raw, { diffIds: [`sha256:${sha256hex(raw[0]!)}`, `sha256:${"1".repeat(64)}`] });
    const layout = Layout.open(L);
    try {
      expect(await failure(() => writeDockerArchive(join(d, "a.tar"), imageToWrite(layout, wrong.manifest), ["x:1"]))).toMatch(/layer 2 .*hashes to sha256:[0-9a-f]{64}, not its diffID sha256:1111/);
      expect(ls(d)).toEqual([]);
      const good = makeImage(L, "g", raw);
      const blob = join(L, "blobs", ...good.layers[0]!.digest.split(":"));
      const b = fs.readFileSync(blob);
      const img = imageToWrite(layout, good.manifest);
      fs.writeFileSync(blob, b.subarray(0, b.length - 5));
      expect(await failure(() => writeDockerArchive(join(d, "a.tar"), img, ["x:1"]))).toMatch(/layer 1 .*(size mismatch|digest mismatch)/);
      expect(ls(d)).toEqual([]);
      fs.writeFileSync(blob, b);
      await failure(() => writeDockerArchive(join(d, "a.tar"), img, ["notag"]), BociError);
      expect(ls(d)).toEqual([]);
    } finally { layout.close(); }
  });

  test.skipIf(!haveSkopeo)("skopeo interop: skopeo reads what we write, we read what skopeo writes; unpacked trees match", async () => {
    const { L, manifest } = layoutWithImage();
    const d = scratch("boci-arch-");
    const F = join(d, "ours.tar");
    const layout = Layout.open(L);
    let img;
    try {
      img = imageToWrite(layout, manifest);
      await writeDockerArchive(F, img, ["docker.io/library/t:latest"]);
    } finally { layout.close(); }
    const inspect = JSON.parse(must(`skopeo inspect docker-archive:${q(F)}`));
    expect(inspect.Layers).toEqual(img.config.rootfs.diff_ids);
    expect(inspect.Env).toEqual(["A=1"]);
    const raw = JSON.parse(must(`skopeo inspect --config docker-archive:${q(F)}`));
    expect(raw.rootfs.diff_ids).toEqual(img.config.rootfs.diff_ids);
    const D = join(d, "D");
    must(`skopeo copy -q docker-archive:${q(F)} oci:${q(D)}:t`);
    expect(checkLayout(D)).toEqual([]);
    // skopeo writes a docker-archive of our layout; we read it.
    const S = join(d, "skopeo.tar");
    must(`skopeo copy -q oci:${q(L)}:t docker-archive:${q(S)}:foo/bar:v1`);
    const r = DockerArchiveReader.open(S);
    try {
      const [i] = r.images();
      expect(i!.repoTags).toEqual(["docker.io/foo/bar:v1"]);
      const man = r.readJson<Manifest>(i!.manifest, "manifest");
      expect(man.layers.map((l) => l.digest)).toEqual(img.config.rootfs.diff_ids);
      expect(r.readBlob(man.config).equals(img.configBytes)).toBe(true);
      for (const l of man.layers) await collect(r.getBlob(l));
      // And back out through our writer: the same archive bytes as from the layout itself.
      await writeDockerArchive(join(d, "again.tar"), imageToWrite(r, i!.manifest), ["docker.io/library/t:latest"]);
      expect(fs.readFileSync(join(d, "again.tar")).equals(fs.readFileSync(F))).toBe(true);
    } finally { r.close(); }
    if (haveUmoci && isRoot) {
      must(`umoci unpack --image ${q(L)}:t ${q(join(d, "b1"))} && umoci unpack --image ${q(D)}:t ${q(join(d, "b2"))}`);
      const t1 = treeOf(join(d, "b1", "rootfs"));
      expect(t1["usr/bin/tool"]).toContain("100700");
      expect(treeOf(join(d, "b2", "rootfs"))).toEqual(t1);
    }
  });
});

describe("interrupted writers", () => {
  /** Run a writer in its own process that sends itself SIGINT once the first bytes are written. */
  function interrupted(kind: "oci" | "docker", L: string, out: string): { code: number; stderr: string } {
    const script = join(scratch("boci-arch-"), "w.ts");
    const root = join(import.meta.dir, "../..");
    fs.writeFileSync(script, `
      import { writeOciArchive } from ${JSON.stringify(root + "/src/transport/oci-archive.ts")};
      import { writeDockerArchive } from ${JSON.stringify(root + "/src/transport/docker-archive.ts")};
      import { Layout } from ${JSON.stringify(root + "/src/cas/layout.ts")};
      import { imageToWrite } from ${JSON.stringify(root + "/test/helpers/archive.ts")};
      let sent = false;
      const onBytes = () => { if (!sent) { sent = true; process.kill(process.pid, "SIGINT"); } };
      const L = ${JSON.stringify(L)};
      if (${JSON.stringify(kind)} === "oci") await writeOciArchive(L, ${JSON.stringify(out)}, { onBytes });
      else {
        const layout = Layout.open(L);
        const ix = layout.readIndex();
        await writeDockerArchive(${JSON.stringify(out)}, imageToWrite(layout, ix.manifests[0]), ["x:1"], { onBytes });
      }
      console.log("finished");
    `);
    const p = Bun.spawnSync([process.execPath, script], { stdout: "pipe", stderr: "pipe" });
    return { code: p.exitCode ?? -1, stderr: p.stderr.toString() + p.stdout.toString() };
  }

  for (const kind of ["oci", "docker"] as const) {
    test(`${kind}: SIGINT while writing leaves no archive and no temporary file`, () => {
      const { L } = layoutWithImage();
      const d = scratch("boci-arch-");
      const r = interrupted(kind, L, join(d, "out.tar"));
      expect(r.stderr).not.toContain("finished");
      expect(r.code).toBe(130);
      expect(ls(d)).toEqual([]);
    });
  }
});
