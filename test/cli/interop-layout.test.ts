/**
 * Layout interop with Debian's umoci 0.4.7 and skopeo 1.9: umoci and skopeo read layouts boci
 * writes; boci reads, stats, tags and gc's layouts umoci and skopeo write. Skipped (with a
 * message) where a peer is missing; CI installs both.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { boci, ok, sh, scratch, have } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";

const HAVE_UMOCI = have("umoci");
const HAVE_SKOPEO = have("skopeo");
if (!HAVE_UMOCI) console.log("interop-layout: umoci not installed; skipping the umoci tests");
if (!HAVE_SKOPEO) console.log("interop-layout: skopeo not installed; skipping the skopeo tests");

function must(cmd: string): string {
  const r = sh(cmd);
  if (r.code !== 0) throw new Error(`${cmd} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

function bociLayout(): string {
  const L = join(scratch(), "layout");
  ok(["init", "--layout", L]);
  ok(["new", "--image", `${L}:base`]);
  ok(["config", "--image", `${L}:base`, "--config.cmd", "/bin/sh", "--config.env", "A=1", "--author", "me", "--history.comment", "configured"]);
  ok(["tag", "--image", `${L}:base`, "1.0"]);
  return L;
}

describe.skipIf(!HAVE_UMOCI)("umoci 0.4.7 and boci layouts", () => {
  test("umoci ls and umoci stat read a layout boci wrote", () => {
    const L = bociLayout();
    expect(must(`umoci ls --layout ${L}`).trim().split("\n").sort()).toEqual(["1.0", "base"]);
    const st = JSON.parse(must(`umoci stat --json --image ${L}:1.0`));
    expect(st.history).toHaveLength(1);
    expect(st.history[0].comment).toBe("configured");
    expect(st.history[0].empty_layer).toBe(true);
    // umoci can also change it, and boci reads the result.
    must(`umoci config --image ${L}:1.0 --config.user 1000 --tag 1.1`);
    const s = JSON.parse(ok(["stat", "--json", "--image", `${L}:1.1`]).stdout);
    expect(s.config.blob.config.User).toBe("1000");
    expect(checkLayout(L)).toEqual([]);
  });

  test("boci reads, stats, tags and gc's a layout umoci wrote (index.json with \"manifests\": null)", () => {
    const L = join(scratch(), "layout");
    must(`umoci init --layout ${L}`);
    expect(readFileSync(join(L, "index.json"), "utf8")).toContain('"manifests":null');
    expect(ok(["ls", "--layout", L]).stdout).toBe("");
    must(`umoci new --image ${L}:t`);
    must(`umoci config --image ${L}:t --config.env X=1 --tag t2`);
    must(`umoci rm --image ${L}:t`);
    expect(ok(["ls", "--layout", L]).stdout).toBe("t2\n");
    const s = JSON.parse(ok(["stat", "--json", "--image", `${L}:t2`]).stdout);
    expect(s.config.blob.config.Env).toEqual(["X=1"]);
    ok(["tag", "--image", `${L}:t2`, "t3"]);
    const before = sh(`ls ${L}/blobs/sha256 | wc -l`).stdout.trim();
    ok(["gc", "--layout", L]);
    const after = sh(`ls ${L}/blobs/sha256 | wc -l`).stdout.trim();
    expect(Number(after)).toBeLessThan(Number(before));
    expect(ok(["ls", "--layout", L]).stdout).toBe("t2\nt3\n");
    expect(boci(["validate", "--layout", L]).code).toBe(0);
    // and umoci still reads what boci left
    expect(must(`umoci ls --layout ${L}`).trim().split("\n").sort()).toEqual(["t2", "t3"]);
  });
});

describe.skipIf(!HAVE_SKOPEO)("skopeo and boci layouts", () => {
  test("skopeo inspects and copies a layout boci wrote, to docker-archive and to another layout boci reads", () => {
    const L = bociLayout();
    const ins = JSON.parse(must(`skopeo inspect oci:${L}:1.0`));
    expect(ins.Env).toContain("A=1");
    const s = scratch();
    must(`skopeo copy oci:${L}:1.0 docker-archive:${join(s, "out.tar")}:example/boci:1.0`);
    expect(must(`tar -tf ${join(s, "out.tar")}`)).toContain("manifest.json");
    const L2 = join(s, "copy");
    must(`skopeo copy oci:${L}:1.0 oci:${L2}:copied`);
    expect(ok(["ls", "--layout", L2]).stdout).toBe("copied\n");
    const st = JSON.parse(ok(["stat", "--json", "--image", `${L2}:copied`]).stdout);
    expect(st.config.blob.config.Env).toEqual(["A=1"]);
    ok(["config", "--image", `${L2}:copied`, "--config.env", "B=2"]);
    expect(boci(["validate", "--layout", L2]).code).toBe(0);
  });
});
