/**
 * A command whose last positional repeats (CommandDef.variadic; attach's FILE...): any number of
 * them reaches the command in order, the count is still checked below minArgs, and help and the
 * man page show the repeat.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { boci, ok, scratch } from "../helpers/cli";

describe("variadic positionals", () => {
  test("attach takes 12 files, one layer each, in the order given", () => {
    const d = scratch();
    const l = join(d, "l");
    ok(["init", "--layout", l]);
    ok(["new", "--image", `${l}:t`]);
    const files: string[] = [];
    for (let i = 12; i >= 1; i--) { const f = join(d, `n${i}.txt`); writeFileSync(f, `${i}\n`); files.push(f); }
    const r = JSON.parse(ok(["attach", "--image", `${l}:t`, "--artifact-type", "text/x-test", ...files, "--json"]).stdout);
    const m = JSON.parse(readFileSync(join(l, "blobs", "sha256", r.manifest.digest.slice(7)), "utf8"));
    expect(m.layers.map((x: { annotations: Record<string, string> }) => x.annotations["org.opencontainers.image.title"])).toEqual(files.map((f) => f.slice(d.length + 1)));
  });
  test("help and man show the repeat; a fixed-count command still refuses extra arguments", () => {
    expect(ok(["attach", "--help"]).stdout).toContain("boci attach [command options] [<file>]...");
    expect(ok(["man", "attach"]).stdout).toContain("[\\fIfile\\fR]...");
    const r = boci(["tag", "--image", "x:y", "a", "b"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("expected 1 argument");
  });
});
