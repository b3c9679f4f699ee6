/**
 * `--layer.annotation K=V` on repack, insert and raw add-layer, through the real binary: the new
 * layer's descriptor in the manifest carries them (and `--json`'s layersAdded shows them), the
 * other layers keep theirs, a bad value is a usage error that writes nothing. With umoci 0.4.7
 * installed, it unpacks the result.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { boci, ok, scratch, have } from "../helpers/cli";
import { makeTar, file } from "../helpers/image";

/** the annotation boci (as umoci) puts on every layer it writes */
const SIZE = { "ci.umo.uncompressed_blob_size": expect.stringMatching(/^\d+$/) };

interface Desc { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }

function newImage(): { l: string; img: string } {
  const l = join(scratch("boci-layer-annotations-"), "l");
  ok(["init", "--layout", l]);
  ok(["new", "--image", `${l}:t`]);
  return { l, img: `${l}:t` };
}
const layers = (img: string): Desc[] => JSON.parse(ok(["stat", "--json", "--image", img]).stdout).manifest.blob.layers ?? [];
const plain = (body: string): string => { const f = join(scratch(), "f"); writeFileSync(f, body); return f; };
const tarFile = (name: string, body: string): string => { const f = join(scratch(), "l.tar"); writeFileSync(f, makeTar([file(name, body, { mode: 0o644 })])); return f; };

describe("--layer.annotation", () => {
  test("insert: the new layer's descriptor carries them (repeatable, '=' in a value, a later key wins); earlier layers keep theirs", () => {
    const { l, img } = newImage();
    ok(["insert", "--image", img, "--layer.annotation", "org.example.first=1", plain("a"), "/a"]);
    const r = JSON.parse(ok(["insert", "--image", img, "--json", "--layer.annotation", "org.example.k=a=b", "--layer.annotation", "org.example.x=1", "--layer.annotation", "org.example.x=2", "--layer.annotation", "org.example.empty=", plain("b"), "/b"]).stdout);
    const ls = layers(img);
    expect(ls).toHaveLength(2);
    expect(ls[0]!.annotations).toEqual({ ...SIZE, "org.example.first": "1" });
    expect(ls[1]!.annotations).toEqual({ ...SIZE, "org.example.k": "a=b", "org.example.x": "2", "org.example.empty": "" });
    expect(r.layersAdded).toEqual([ls[1]]);
    // stat shows them, validate accepts the image, unpack reads it
    expect(ok(["stat", "--image", img]).stdout).toContain('\t\t\torg.example.empty: ""\n\t\t\torg.example.k: a=b\n\t\t\torg.example.x: 2\n');
    ok(["validate", "--layout", l]);
    const b = join(scratch(), "bundle");
    ok(["unpack", "--no-progress", "--image", img, b]);
    expect(readFileSync(join(b, "rootfs/b"), "utf8")).toBe("b");
  });

  test("raw add-layer: the same", () => {
    const { img } = newImage();
    const r = JSON.parse(ok(["raw", "add-layer", "--image", img, "--json", "--layer.annotation", "org.opencontainers.image.title=l.tar", tarFile("x", "x")]).stdout);
    expect(layers(img)[0]!.annotations).toEqual({ ...SIZE, "org.opencontainers.image.title": "l.tar" });
    expect(r.layersAdded).toEqual(layers(img));
  });

  test("repack: the new layer carries them; with no change there is no layer and a warning says they went unused", () => {
    const { l, img } = newImage();
    const b = join(scratch(), "bundle");
    ok(["unpack", "--no-progress", "--image", img, b]);
    writeFileSync(join(b, "rootfs/new"), "n");
    const r = JSON.parse(ok(["repack", "--no-progress", "--json", "--image", img, "--layer.annotation", "org.example.built-by=test", b]).stdout);
    const ls = layers(img);
    expect(ls).toHaveLength(1);
    expect(ls[0]!.annotations).toEqual({ ...SIZE, "org.example.built-by": "test" });
    expect(r.layersAdded).toEqual([ls[0]]);
    ok(["validate", "--layout", l]);
    const b2 = join(scratch(), "bundle2");
    ok(["unpack", "--no-progress", "--image", img, b2]);
    const none = ok(["repack", "--no-progress", "--image", img, "--layer.annotation", "org.example.k=v", b2]);
    expect(none.stderr).toBe("boci: warning: no changes, so no new layer: --layer.annotation is not used\n");
    expect(layers(img)).toHaveLength(1);
  });

  test("a value without '=' or with an empty key is a usage error (exit 2) and writes nothing", () => {
    const { l, img } = newImage();
    const before = readFileSync(join(l, "index.json"));
    const cases: [string[], string][] = [
      [["insert", "--image", img, plain("a"), "/a"], "noequals"],
      [["raw", "add-layer", "--image", img, tarFile("x", "x")], "=v"],
      [["repack", "--image", img, join(scratch(), "nobundle")], "noequals"],
    ];
    for (const [args, bad] of cases) {
      const r = boci([...args, "--layer.annotation", bad]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`boci: invalid --layer.annotation ${JSON.stringify(bad)}: expected key=value\n`);
    }
    expect(readFileSync(join(l, "index.json"))).toEqual(before);
    expect(layers(img)).toHaveLength(0);
  });

  test.skipIf(!have("umoci"))("umoci unpacks an image whose layers carry annotations", () => {
    const { l, img } = newImage();
    ok(["insert", "--image", img, "--layer.annotation", "org.example.k=v", plain("u"), "/u"]);
    const b = join(scratch(), "ubundle");
    const r = Bun.spawnSync(["umoci", "unpack", "--rootless", "--image", `${l}:t`, b], { stdout: "pipe", stderr: "pipe" });
    expect(r.exitCode).toBe(0);
    expect(readFileSync(join(b, "rootfs/u"), "utf8")).toBe("u");
  });
});
