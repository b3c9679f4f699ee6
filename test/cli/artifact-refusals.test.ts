/**
 * An OCI 1.1 artifact (boci attach) given to a command that needs an image's root filesystem or
 * config: one line saying it is an artifact, exit 6 (unsupported), nothing written.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { boci, ok, scratch } from "../helpers/cli";

describe("artifacts are not images", () => {
  test("unpack, raw unpack, raw runtime-config, config, insert and raw add-layer refuse an artifact (exit 6), writing nothing", () => {
    const d = scratch();
    const l = join(d, "l");
    ok(["init", "--layout", l]);
    ok(["new", "--image", `${l}:img`]);
    const f = join(d, "sbom.spdx.json");
    writeFileSync(f, "{}\n");
    ok(["attach", "--image", `${l}:img`, "--artifact-type", "application/spdx+json", "--tag", "sbom", f]);
    const index = readFileSync(join(l, "index.json"), "utf8");
    const cases: string[][] = [
      ["unpack", "--image", `${l}:sbom`, join(d, "bundle")],
      ["raw", "unpack", "--image", `${l}:sbom`, join(d, "rootfs")],
      ["raw", "runtime-config", "--image", `${l}:sbom`, join(d, "config.json")],
      ["config", "--image", `${l}:sbom`, "--config.cmd", "sh"],
      ["insert", "--image", `${l}:sbom`, f, "/sbom.json"],
      ["raw", "add-layer", "--image", `${l}:sbom`, f],
    ];
    for (const c of cases) {
      const r = boci(c);
      expect({ c: c.slice(0, 2), code: r.code }).toEqual({ c: c.slice(0, 2), code: 6 });
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain("is an artifact (application/spdx+json), not an image");
    }
    expect(readFileSync(join(l, "index.json"), "utf8")).toBe(index);
    for (const p of ["bundle", "rootfs", "config.json"]) expect(existsSync(join(d, p))).toBe(false);
  });
});
