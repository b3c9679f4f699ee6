/**
 * Man pages and shell completion, made from the command specs: every page renders with man(1)
 * (groff from Debian) without a warning; the bash completion function, sourced into a real bash
 * and driven as bash drives it (COMP_WORDS split at ':' as COMP_WORDBREAKS does), completes
 * commands, flags, fixed values and a layout's tags.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { BIN, boci, have, ok, scratch, sh } from "../helpers/cli";

const work = scratch();
afterAll(() => rmSync(work, { recursive: true, force: true }));

const commandNames = ["init", "new", "ls", "tag", "rm", "stat", "gc", "config", "unpack", "repack", "insert", "raw unpack", "raw runtime-config", "raw add-layer", "validate", "copy", "man", "completion"];

describe("man pages", () => {
  const hasMan = have("man");
  test.skipIf(!hasMan)("boci(1) and every command's page render with man -l, without warnings (needs man-db and groff-base)", () => {
    for (const topic of [[], ...commandNames.map((n) => n.split(" "))]) {
      const page = ok(["man", ...topic]).stdout;
      const f = join(work, `${topic.join("-") || "boci"}.1`);
      writeFileSync(f, page);
      const r = sh(`man --warnings -l ${JSON.stringify(f)} 2>&1 >/dev/null`);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("");
      const text = sh(`MANWIDTH=200 man -l ${JSON.stringify(f)}`).stdout.replace(/.\x08/g, "");
      expect(text).toContain("NAME");
      expect(text).toContain("EXIT STATUS");
      if (topic.length) {
        expect(text).toContain(`boci ${topic.join(" ")}`);
        expect(text).toContain("--help");
      } else {
        for (const n of commandNames) expect(text).toContain(n);
        expect(text).toContain("SOURCE_DATE_EPOCH");
      }
    }
    // the options of a command are on its page, and its examples
    const unpack = ok(["man", "unpack"]).stdout;
    for (const f of ["rootless", "uid\\-map", "keep\\-dirlinks", "platform"]) expect(unpack).toContain(`\\-\\-${f}`);
    expect(ok(["man", "copy"]).stdout).toContain("EXAMPLES");
  });

  test("a page is found by its page name too, and an unknown one is a usage error", () => {
    expect(ok(["man", "boci-raw-unpack"]).stdout).toBe(ok(["man", "raw", "unpack"]).stdout);
    expect(ok(["man", "raw-runtime-config"]).stdout).toContain(".TH BOCI-RAW-RUNTIME-CONFIG 1");
    const r = boci(["man", "nope"]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });
});

describe("help", () => {
  test("a command's help has its description and examples; config --help still names --no-history (KIWI looks for it)", () => {
    const copy = ok(["copy", "--help"]).stdout;
    expect(copy).toContain("DESCRIPTION:");
    expect(copy).toContain("EXAMPLES:");
    expect(copy).toContain("boci copy oci-archive:base.tar:1.0 oci:layout:base");
    expect(ok(["config", "--help"]).stdout).toContain("--no-history");
    expect(ok(["unpack", "--help"]).stdout).toContain("USAGE:\n   boci unpack [command options] <bundle>");
  });
});

describe("bash completion", () => {
  const hasBash = have("bash");
  const layout = join(work, "lay");
  const script = join(work, "boci.bash");

  /** COMPREPLY for `line` (the text up to the cursor), run in a real bash with the script sourced. */
  function complete(line: string): string[] {
    // As readline splits: at blanks, and at ':' (a word of its own); the cursor's word last.
    const words = line.split(/\s+/).flatMap((w, i, all) => (w === "" ? (i === all.length - 1 ? [""] : []) : w.split(/(:)/).filter((p) => p !== "")));
    const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
    const prog = [
      `source ${q(script)}`,
      `_boci_bin=${q(BIN)}`,
      `COMP_WORDS=(${words.map(q).join(" ")})`,
      `COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 ))`,
      `COMP_LINE=${q(line)}`,
      `COMP_POINT=\${#COMP_LINE}`,
      `_boci`,
      `printf '%s\\n' "\${COMPREPLY[@]}"`,
    ].join("\n");
    const r = Bun.spawnSync(["bash", "-c", prog], { cwd: work, stdout: "pipe", stderr: "pipe" });
    expect(r.stderr.toString()).toBe("");
    return r.stdout.toString().split("\n").filter((l) => l !== "").sort();
  }

  test.skipIf(!hasBash)("commands, raw subcommands, flags, fixed values, paths and a layout's tags", () => {
    ok(["init", "--layout", layout]);
    ok(["new", "--image", `${layout}:base`]);
    ok(["tag", "--image", `${layout}:base`, "v1.0"]);
    writeFileSync(script, ok(["completion", "bash"]).stdout);
    expect(complete("boci st")).toEqual(["stat"]);
    expect(complete("boci ")).toContain("unpack");
    expect(complete("boci ")).toContain("raw");
    expect(complete("boci ")).not.toContain("mtree-validate");
    expect(complete("boci raw ")).toEqual(["add-layer", "runtime-config", "unpack"]);
    expect(complete("boci unpack --ro")).toEqual(["--rootless"]);
    expect(complete("boci raw unpack --pl")).toEqual(["--platform"]);
    expect(complete("boci repack --compress ")).toEqual(["auto", "gzip", "none", "zstd"]);
    expect(complete("boci repack --compress=z")).toEqual(["zstd"]);
    expect(complete("boci --log ")).toEqual(["debug", "error", "fatal", "info", "warn"]);
    expect(complete("boci config --clear config.e")).toEqual(["config.entrypoint", "config.env", "config.exposedports"]);
    // tags after PATH: (bash replaces only what follows the last ':')
    expect(complete(`boci unpack --image ${layout}:`)).toEqual(["base", "v1.0"]);
    expect(complete(`boci unpack --image ${layout}:v`)).toEqual(["v1.0"]);
    expect(complete(`boci unpack --image ${work}/la`)).toEqual([`${layout}/`]);
    // a flag's value is not taken for the command
    expect(complete(`boci --log info st`)).toEqual(["stat"]);
    // positionals complete paths
    expect(complete(`boci unpack --image ${layout}:base ${work}/boci.ba`)).toEqual([script]);
  });

  test("zsh loads the bash function through bashcompinit; fish gets complete lines; another shell is a usage error", () => {
    const zsh = ok(["completion", "zsh"]).stdout;
    expect(zsh).toContain("bashcompinit");
    expect(zsh).toContain("complete -F _boci boci");
    const fish = ok(["completion", "fish"]).stdout;
    expect(fish).toContain("complete -c boci");
    expect(fish).toContain("-l 'rootless'");
    if (have("fish")) expect(sh(`fish -n <<'EOF'\n${fish}\nEOF`).code).toBe(0);
    const r = boci(["completion", "tcsh"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("tcsh");
  });
});
