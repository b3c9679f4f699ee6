/**
 * How boci talks to a person (issue 16): one line per warning in the error line's shape,
 * "did you mean" for a mistyped command or flag, a bad --platform as a usage error, `rm` of a
 * missing tag said.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { BIN, boci, have, isRoot, ok, scratch } from "../helpers/cli";

const work = scratch();
afterAll(() => rmSync(work, { recursive: true, force: true }));
const layout = join(work, "lay");

describe("messages", () => {
  test("a warning is one line: boci: warning: …, plain when stderr is not a terminal", () => {
    ok(["init", "--layout", layout]);
    ok(["new", "--image", `${layout}:base`]);
    const r = ok(["raw", "runtime-config", "--image", `${layout}:base`, join(work, "config.json")]);
    expect(r.stderr).toBe("boci: warning: no --rootfs given: user and group names cannot be resolved (using root:root where needed)\n");
  });

  test("rm of a tag that is not there says so, and still exits 0 as umoci does", () => {
    const r = boci(["rm", "--image", `${layout}:nope`]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`boci: warning: tag "nope" not found in ${layout}: nothing removed\n`);
    expect(boci(["rm", "--image", `${layout}:base`]).stderr).toBe("");
  });

  test("a mistyped command, subcommand or flag gets the nearest name; a far one gets none", () => {
    const cases: Array<[string[], string]> = [
      [["stt"], 'unknown command "stt" (did you mean "stat"?)'],
      [["raw", "unpak", "x"], 'unknown command "raw unpak" (did you mean "raw unpack"?)'],
      [["stat", "--imagee", "x"], 'stat: unknown option --imagee (did you mean "--image"?)'],
      [["unpack", "--rootles", "x"], 'unpack: unknown option --rootles (did you mean "--rootless"?)'],
    ];
    for (const [args, msg] of cases) {
      const r = boci(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(msg);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    const far = boci(["zzzzzz"]);
    expect(far.code).toBe(2);
    expect(far.stderr).not.toContain("did you mean");
  });

  test("--image docker://… of a read-only command says to copy it first (exit 6, nothing contacted)", () => {
    const r = boci(["stat", "--image", "docker://127.0.0.1:9/a/b:1"]);
    expect(r.code).toBe(6);
    expect(r.stderr).toContain("boci copy docker://127.0.0.1:9/a/b:1 oci:DIR:TAG");
  });

  test("a bad --platform is a usage error (exit 2)", () => {
    ok(["new", "--image", `${layout}:p`]);
    const r = boci(["unpack", "--platform", "bogus", "--image", `${layout}:p`, join(work, "b")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('invalid platform "bogus"');
  });

  test.skipIf(!isRoot || !have("setpriv"))("init where the user may not write: exit 1, cannot write PARENT (needs root for setpriv)", () => {
    const ro = join(work, "ro");
    mkdirSync(ro);
    chmodSync(work, 0o755);
    chmodSync(ro, 0o555);
    try {
      const r = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", BIN, "init", "--layout", join(ro, "sub")], { stdout: "pipe", stderr: "pipe" });
      expect(r.exitCode).toBe(1);
      expect(r.stderr.toString()).toBe(`boci: cannot write ${ro}: permission denied\n`);
    } finally { chmodSync(ro, 0o755); }
  });
});

describe("--json of the commands that write an image", () => {
  test("new, config, insert, raw add-layer, repack, tag print one object; ls a JSON array; nothing without --json", () => {
    const l = join(work, "json");
    ok(["init", "--layout", l]);
    const parse = (args: string[]) => {
      const r = ok(args);
      expect(r.stdout.trim().split("\n")).toHaveLength(1);
      return JSON.parse(r.stdout) as { manifest: { digest: string; mediaType: string; size: number }; tag: string; layersAdded: Array<{ digest: string }>; blobsWritten: number; bytesWritten: number };
    };
    const n = parse(["new", "--image", `${l}:a`, "--json"]);
    expect(n.tag).toBe("a");
    expect(n.manifest.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
    expect(n.blobsWritten).toBe(2);
    expect(n.layersAdded).toEqual([]);
    expect(ok(["config", "--image", `${l}:a`, "--config.cmd", "sh"]).stdout).toBe("");
    const c = parse(["config", "--image", `${l}:a`, "--config.env", "A=1", "--tag", "b", "--json"]);
    expect(c.tag).toBe("b");
    expect(c.blobsWritten).toBe(2);
    const f = join(work, "file.txt");
    require("node:fs").writeFileSync(f, "hello\n");
    const i = parse(["insert", "--image", `${l}:b`, f, "/etc/hello", "--json"]);
    expect(i.layersAdded).toHaveLength(1);
    expect(i.blobsWritten).toBe(3);
    expect(i.bytesWritten).toBeGreaterThan(0);
    const t = parse(["tag", "--image", `${l}:b`, "c", "--json"]);
    expect(t).toMatchObject({ tag: "c", manifest: { digest: i.manifest.digest } });
    // the same insert again: the layer and config exist, the manifest is new (history time)
    const bundle = join(work, "jb");
    ok(["unpack", "--image", `${l}:c`, bundle]);
    const r = parse(["repack", "--image", `${l}:d`, "--no-history", bundle, "--json"]);
    expect(r.layersAdded).toEqual([]);
    expect(JSON.parse(ok(["ls", "--layout", l, "--json"]).stdout)).toEqual(["a", "b", "c", "d"]);
  });
});

describe("exit codes and environment in --help", () => {
  test("boci --help and every command's --help end with the exit code table; a command's page lists the variables it reads", () => {
    const codes = ["0", "1", "2", "3", "4", "5", "6", "130", "143"];
    const section = (text: string) => text.slice(text.indexOf("\nEXIT CODES:\n"));
    for (const args of [["--help"], ["stat", "--help"], ["raw", "unpack", "--help"], ["copy", "--help"]]) {
      const text = ok(args).stdout;
      expect(text).toContain("\nEXIT CODES:\n");
      const rows = section(text).split("\n").slice(2).map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
      expect(rows).toEqual(codes);
    }
    const unpack = ok(["unpack", "--help"]).stdout;
    const env = unpack.slice(unpack.indexOf("\nENVIRONMENT:\n"), unpack.indexOf("\nEXIT CODES:\n"));
    for (const v of ["BOCI_WORKERS", "BOCI_MAX_LAYER_BYTES", "NO_COLOR"]) expect(env).toContain(v);
    expect(env).not.toContain("SOURCE_DATE_EPOCH");
    expect(ok(["config", "--help"]).stdout).toContain("SOURCE_DATE_EPOCH");
    expect(ok(["copy", "--help"]).stdout).toContain("REGISTRY_AUTH_FILE");
  });
});

describe("--quiet", () => {
  test("keeps warnings off stderr, before or after the command; errors still print; copy's own -q is the same", () => {
    const d = scratch();
    const l = join(d, "l");
    ok(["init", "--layout", l]);
    ok(["new", "--image", `${l}:a`]);
    expect(ok(["rm", "--image", `${l}:nope`]).stderr).toContain("warning");
    expect(ok(["rm", "--image", `${l}:nope`, "--quiet"]).stderr).toBe("");
    expect(ok(["-q", "rm", "--image", `${l}:nope`]).stderr).toBe("");
    const e = boci(["--quiet", "stat", "--image", `${l}:nope`]);
    expect(e.code).toBe(3);
    expect(e.stderr).toContain("not found");
    expect(boci(["rm", "-q", "--verbose", "--image", `${l}:nope`]).code).toBe(2);
    expect(ok(["copy", "-q", `oci:${l}:a`, `oci:${join(d, "l2")}:b`]).stderr).toBe("");
  });
});
