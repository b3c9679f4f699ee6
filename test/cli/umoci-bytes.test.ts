/**
 * The bytes boci leaves in a layout, and what it prints, against umoci 0.6 (through the real
 * binary). Where Debian's umoci 0.4.7 is installed, it runs the same commands on a copy and its
 * bytes are turned into 0.6's by the differences 0.6's source makes, each named where it is
 * applied:
 *  - PutIndex sets `"mediaType":"application/vnd.oci.image.index.v1+json"` (image-spec 1.1's
 *    Index has the field, after schemaVersion; 1.0.1's, which 0.4.7 uses, has none);
 *  - Create (init) writes `"manifests":[]` (an empty slice; 0.4.7's nil one is `null`);
 *  - NewImage writes the manifest's `mediaType` (after schemaVersion) and honours
 *    SOURCE_DATE_EPOCH for `created` (0.4.7 writes the clock's time);
 *  - Go 1.22+ (0.6 needs 1.24) writes U+0008 and U+000C as `\b` and `\f`, not `\u0008`, `\u000c`.
 * Everything else (key order, omitempty, sorted maps, HTML escaping, the Encoder's newline,
 * unknown fields dropped) is the same in both and compared as it is.
 */
import { describe, expect, test } from "bun:test";
import { cpSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { boci, ok, scratch, have, sh } from "../helpers/cli";
import { makeImage, makeTar, file, MT, hostArch } from "../helpers/image";

const hasUmoci = have("umoci") && sh("umoci --version").stdout.includes("0.4.7");
const INDEX_MT = `"mediaType":"${MT.index}",`;
const SDE = "1700000000";
const SDE_TIME = "2023-11-14T22:13:20Z";

function umoci(args: string[]): void {
  const p = Bun.spawnSync(["umoci", ...args], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`umoci ${args.join(" ")}: ${p.stderr.toString()}`);
}
const read = (l: string, rel: string) => readFileSync(join(l, rel));
const blob = (l: string, digest: string) => read(l, `blobs/sha256/${digest.slice(7)}`);
const indexOf = (l: string) => JSON.parse(read(l, "index.json").toString());
/** 0.4.7's index.json as 0.6 writes it: the media type PutIndex sets, Go 1.22's \b and \f. */
const as06Index = (b: Buffer) => b.toString().replace(/^\{"schemaVersion":2,/, `{"schemaVersion":2,${INDEX_MT}`).replaceAll("\\u0008", "\\b").replaceAll("\\u000c", "\\f");

describe("JSON as umoci 0.6 writes it (Go's Encoder over image-spec 1.1.1's structs)", () => {
  test("init: oci-layout and index.json, each with the Encoder's newline", () => {
    const l = join(scratch("boci-bytes-"), "l");
    ok(["init", "--layout", l]);
    expect(read(l, "oci-layout").toString()).toBe('{"imageLayoutVersion":"1.0.0"}\n');
    expect(read(l, "index.json").toString()).toBe(`{"schemaVersion":2,${INDEX_MT}"manifests":[]}\n`);
    if (!hasUmoci) return console.log("skip: umoci 0.4.7 not installed (compared with 0.6's source only)");
    const u = join(scratch("boci-bytes-"), "u");
    umoci(["init", "--layout", u]);
    expect(read(l, "oci-layout")).toEqual(read(u, "oci-layout"));
    // 0.6's Create: Manifests: []ispec.Descriptor{} (0.4.7 leaves the slice nil: null).
    expect(read(l, "index.json").toString()).toBe(as06Index(read(u, "index.json")).replace('"manifests":null', '"manifests":[]'));
  });

  test("new (SOURCE_DATE_EPOCH), tag, tag, rm: config, manifest and index.json byte for byte", () => {
    const l = join(scratch("boci-bytes-"), "l");
    ok(["init", "--layout", l]);
    ok(["new", "--image", `${l}:a`], { env: { SOURCE_DATE_EPOCH: SDE } });
    ok(["tag", "--image", `${l}:a`, "b"]);
    ok(["tag", "--image", `${l}:b`, "c"]);
    ok(["rm", "--image", `${l}:a`]);
    const ix = indexOf(l);
    const m = ix.manifests[0];
    const manifest = blob(l, m.digest);
    const cfgDesc = JSON.parse(manifest.toString()).config;
    const config = blob(l, cfgDesc.digest);
    // 0.6's NewImage: created from SOURCE_DATE_EPOCH (UTC), host platform, empty config and
    // rootfs, no history (omitempty); the manifest with its media type and "layers":[].
    const variant = hostArch() === "arm64" ? ',"variant":"v8"' : "";
    expect(config.toString()).toBe(`{"created":"${SDE_TIME}","architecture":"${hostArch()}","os":"linux"${variant},"config":{},"rootfs":{"type":"layers","diff_ids":[]}}\n`);
    expect(manifest.toString()).toBe(`{"schemaVersion":2,"mediaType":"${MT.manifest}","config":{"mediaType":"${MT.config}","digest":"${cfgDesc.digest}","size":${config.length}},"layers":[]}\n`);
    const entry = (t: string) => `{"mediaType":"${MT.manifest}","digest":"${m.digest}","size":${manifest.length},"annotations":{"org.opencontainers.image.ref.name":"${t}"}}`;
    expect(read(l, "index.json").toString()).toBe(`{"schemaVersion":2,${INDEX_MT}"manifests":[${entry("b")},${entry("c")}]}\n`);

    if (!hasUmoci) return console.log("skip: umoci 0.4.7 not installed (compared with 0.6's source only)");
    if (hostArch() !== "amd64") return console.log("skip: umoci 0.4.7 writes no variant; compared on amd64 only");
    const u = join(scratch("boci-bytes-"), "u");
    umoci(["init", "--layout", u]);
    umoci(["new", "--image", `${u}:a`]);
    umoci(["tag", "--image", `${u}:a`, "b"]);
    umoci(["tag", "--image", `${u}:b`, "c"]);
    umoci(["rm", "--image", `${u}:a`]);
    const uix = indexOf(u);
    const um = blob(u, uix.manifests[0].digest);
    const ucfg = JSON.parse(um.toString()).config;
    // 0.4.7 ignores SOURCE_DATE_EPOCH: its clock time is the one difference in the config.
    expect(blob(u, ucfg.digest).toString().replace(/^\{"created":"[^"]*"/, `{"created":"${SDE_TIME}"`)).toBe(config.toString());
    // 0.4.7 writes no manifest media type; with it, and boci's config digest, the bytes agree.
    expect(um.toString().replace(/^\{"schemaVersion":2,/, `{"schemaVersion":2,"mediaType":"${MT.manifest}",`)
      .replace(`"digest":"${ucfg.digest}","size":${ucfg.size}`, `"digest":"${cfgDesc.digest}","size":${cfgDesc.size}`)).toBe(manifest.toString());
    expect(as06Index(read(u, "index.json")).replaceAll(uix.manifests[0].digest, m.digest).replaceAll(`"size":${um.length}`, `"size":${manifest.length}`))
      .toBe(read(l, "index.json").toString());
  });

  /** A layout made by umoci, its index.json replaced by a hand-written, pretty-printed one. */
  function handWritten(): { u: string; b: string } {
    const dir = scratch("boci-bytes-");
    const u = join(dir, "u");
    umoci(["init", "--layout", u]);
    umoci(["new", "--image", `${u}:x`]);
    const { digest, size } = indexOf(u).manifests[0];
    const d = (extra: Record<string, unknown>) => ({ size, digest, mediaType: MT.manifest, ...extra });
    const ix = {
      manifests: [
        d({
          annotations: {
            zeta: "1", "org.opencontainers.image.ref.name": "x", alpha: "<b>&amp;</b>",
            // Go sorts map keys by UTF-8 bytes: U+FF71 before U+1F600 (UTF-16 order is the reverse).
            "\uff71": "fw", "\u{1F600}": "e\u2028f\u2029", ctl: "\x01\x1f\x7f",
          },
          platform: { variant: "v1", os: "linux", architecture: "amd64", "os.features": ["a", "b"], "os.version": "1" },
          urls: ["http://a/?x=1&y=<2>"], "x-unknown": 1,
        }),
        d({ annotations: { "org.opencontainers.image.ref.name": "y" }, platform: { "os.version": "", os: "linux", architecture: "amd64", "os.features": [] }, urls: [] }),
        d({}),
        d({ annotations: { "org.opencontainers.image.ref.name": 'a b"c' } }),
        d({ annotations: { "org.opencontainers.image.ref.name": "" } }),
        d({ annotations: { "org.opencontainers.image.ref.name": "w" }, platform: { architecture: "amd64", os: "linux", features: ["dropped: not in 1.1.1"] } }),
      ],
      schemaVersion: 2,
      "x-extra": { k: true },
      annotations: { b: "2", a: "1" },
    };
    writeFileSync(join(u, "index.json"), JSON.stringify(ix, null, 2));
    const b = join(dir, "b");
    cpSync(u, b, { recursive: true });
    return { u, b };
  }

  test.skipIf(!hasUmoci)("rm of an absent tag and tag rewrite a hand-written index.json exactly as umoci does", () => {
    const { u, b } = handWritten();
    // umoci's DeleteReference writes index.json back even when no entry goes.
    umoci(["rm", "--image", `${u}:nonexistent`]);
    ok(["rm", "--image", `${b}:nonexistent`]);
    expect(read(b, "index.json").toString()).toBe(as06Index(read(u, "index.json")));
    umoci(["tag", "--image", `${u}:y`, "z"]);
    ok(["tag", "--image", `${b}:y`, "z"]);
    umoci(["tag", "--image", `${u}:x`, "y"]);
    ok(["tag", "--image", `${b}:x`, "y"]);
    const got = read(b, "index.json").toString();
    expect(got).toBe(as06Index(read(u, "index.json")));
    // What that means, spelled out for the first entry.
    expect(got).toContain(`"urls":["http://a/?x=1\\u0026y=\\u003c2\\u003e"],"annotations":{"alpha":"\\u003cb\\u003e\\u0026amp;\\u003c/b\\u003e","ctl":"\\u0001\\u001f\x7f","org.opencontainers.image.ref.name":"x","zeta":"1","\uff71":"fw","\u{1F600}":"e\\u2028f\\u2029"},"platform":{"architecture":"amd64","os":"linux","os.version":"1","os.features":["a","b"],"variant":"v1"}}`);
    expect(got).not.toContain("x-unknown");
    expect(got).not.toContain("x-extra");
    expect(got).toEndWith(`],"annotations":{"a":"1","b":"2"}}\n`);
  });

  test.skipIf(!hasUmoci)("config: every blob ends in the Encoder's newline, maps sorted; umoci re-encoding the config gives the same bytes", () => {
    const l = join(scratch("boci-bytes-"), "l");
    ok(["init", "--layout", l]);
    ok(["new", "--image", `${l}:a`]);
    ok(["config", "--image", `${l}:a`, "--config.label", "z=<1>", "--config.label", "a=&", "--config.exposedports", "80/tcp", "--config.volume", "/v"]);
    for (const n of readdirSync(join(l, "blobs/sha256"))) expect(read(l, `blobs/sha256/${n}`).toString()).toEndWith("}\n");
    const cfg = blob(l, JSON.parse(blob(l, indexOf(l).manifests[0].digest).toString()).config.digest).toString();
    expect(cfg).toContain(`"ExposedPorts":{"80/tcp":{}},"Volumes":{"/v":{}},"Labels":{"a":"\\u0026","z":"\\u003c1\\u003e"}`);
    // umoci re-encodes the config on its own config command: the bytes of what it keeps agree.
    const u = join(scratch("boci-bytes-"), "u");
    cpSync(l, u, { recursive: true });
    umoci(["config", "--image", `${u}:a`, "--no-history", "--tag", "b"]);
    const uix = indexOf(u);
    const ub = uix.manifests.find((e: { annotations: Record<string, string> }) => e.annotations["org.opencontainers.image.ref.name"] === "b");
    const ucfg = blob(u, JSON.parse(blob(u, ub.digest).toString()).config.digest).toString();
    expect(ucfg).toBe(cfg);
  });
});

describe("verified reads: the digest of the first size bytes before the size (umoci's pkg/hardening)", () => {
  function layoutWithImage(): { l: string; img: ReturnType<typeof makeImage> } {
    const l = join(scratch("boci-bytes-"), "l");
    ok(["init", "--layout", l]);
    return { l, img: makeImage(l, "t", [makeTar([file("f", "hello")])], { compress: "none" }) };
  }
  const blobPath = (l: string, d: { digest: string }) => join(l, "blobs/sha256", d.digest.slice(7));

  test("readBlob (stat's config): right first bytes plus extra is a size mismatch; wrong ones plus extra a digest mismatch", () => {
    const { l, img } = layoutWithImage();
    const orig = readFileSync(blobPath(l, img.config));
    writeFileSync(blobPath(l, img.config), Buffer.concat([orig, Buffer.from("extra")]));
    let r = boci(["stat", "--image", `${l}:t`]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`blob ${img.config.digest}: expected ${img.config.size} bytes (extra bytes in stream): verified reader size mismatch`);
    const wrong = Buffer.from(orig); wrong[0] = 0x20;
    writeFileSync(blobPath(l, img.config), Buffer.concat([wrong, Buffer.from("extra")]));
    r = boci(["stat", "--image", `${l}:t`]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(new RegExp(`blob ${img.config.digest}: expected ${img.config.digest} not sha256:[0-9a-f]{64}: verified reader digest mismatch`));
    expect(r.stderr).not.toContain("size mismatch");
    // Too short: the digest of what is there is already wrong, and said first.
    writeFileSync(blobPath(l, img.config), orig.subarray(0, orig.length - 1));
    r = boci(["stat", "--image", `${l}:t`]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain("verified reader digest mismatch");
  });

  test("getBlob (unpack's layer stream): the same two cases", () => {
    const { l, img } = layoutWithImage();
    const layer = img.layers[0]!;
    const orig = readFileSync(blobPath(l, layer));
    writeFileSync(blobPath(l, layer), Buffer.concat([orig, Buffer.alloc(4096, 1)]));
    let r = boci(["unpack", "--no-progress", "--image", `${l}:t`, join(scratch("boci-bytes-"), "b")]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`blob ${layer.digest}: expected ${layer.size} bytes (extra bytes in stream): verified reader size mismatch`);
    const wrong = Buffer.from(orig); wrong[600] ^= 1; // a byte of the file's body: the tar still reads
    writeFileSync(blobPath(l, layer), Buffer.concat([wrong, Buffer.alloc(4096, 1)]));
    r = boci(["unpack", "--no-progress", "--image", `${l}:t`, join(scratch("boci-bytes-"), "b")]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(new RegExp(`blob ${layer.digest}: expected ${layer.digest} not sha256:[0-9a-f]{64}: verified reader digest mismatch`));
  });
});

describe("what ls and gc print (umoci 0.6: cmd/umoci/tag.go tagList, gc.go)", () => {
  test.skipIf(!hasUmoci)("ls: every name in index order, duplicates and the empty name included, as umoci prints them", () => {
    const dir = scratch("boci-bytes-");
    const l = join(dir, "l");
    ok(["init", "--layout", l]);
    const img = makeImage(l, "x", [makeTar([file("f", "x")])]);
    const e = (name?: string) => ({ ...img.manifest, ...(name === undefined ? {} : { annotations: { "org.opencontainers.image.ref.name": name } }) });
    writeFileSync(join(l, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [e("x"), e("b"), e(), e("x"), e(""), e('q "u" o\\te'), e("ünï")] }));
    const u = join(dir, "u");
    cpSync(l, u, { recursive: true });
    const mine = ok(["ls", "--layout", l]);
    const theirs = sh(`umoci ls --layout '${u}'`);
    expect(mine.stdout).toBe('x\nb\nx\n\nq "u" o\\te\nünï\n');
    expect(mine.stdout).toBe(theirs.stdout);
    expect(mine.stderr).toBe("");
  });

  test("gc prints nothing (umoci logs gc at debug level only), also at --log info; it removes what umoci removes", () => {
    const dir = scratch("boci-bytes-");
    const l = join(dir, "l");
    ok(["init", "--layout", l]);
    makeImage(l, "keep", [makeTar([file("k", "1")])]);
    makeImage(l, "drop", [makeTar([file("d", "2")])]);
    ok(["rm", "--image", `${l}:drop`]);
    const u = join(dir, "u");
    cpSync(l, u, { recursive: true });
    const r = ok(["--log", "info", "gc", "--layout", l]);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("");
    if (!hasUmoci) return console.log("skip: umoci 0.4.7 not installed");
    const ur = sh(`umoci --log info gc --layout '${u}'`);
    expect(ur.code).toBe(0);
    expect(ur.stdout).toBe("");
    expect(readdirSync(join(l, "blobs/sha256")).sort()).toEqual(readdirSync(join(u, "blobs/sha256")).sort());
  });
});
