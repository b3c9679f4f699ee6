/** The trust policy with no policy file at all: local sources accepted, a registry source not. */
import { describe, expect, test } from "bun:test";
import { checkPolicy } from "../../src/cli/skopeo-copy";
import type { SkopeoGlobal } from "../../src/cli/skopeo";
import type { ImageReference } from "../../src/transport/types";

const g: SkopeoGlobal = { insecurePolicy: false, debug: false, out: () => {} };
const none = () => undefined;

describe("no policy file", () => {
  test("a layout or an archive is accepted (it carries no signatures)", () => {
    for (const ref of [
      { transport: "oci", path: "/l", tag: "t" },
      { transport: "oci-archive", path: "/a.tar" },
      { transport: "docker-archive", path: "/d.tar" },
    ] as ImageReference[]) expect(() => checkPolicy(g, ref, "x", none)).not.toThrow();
  });

  test("a registry source needs --policy or --insecure-policy, and the line says so", () => {
    const ref = { transport: "docker", registry: "127.0.0.1:5000", repository: "a/b", tag: "1" } as ImageReference;
    let err: unknown;
    try { checkPolicy(g, ref, "docker://127.0.0.1:5000/a/b:1", none); } catch (e) { err = e; }
    expect(String((err as Error)?.message)).toContain("no policy file");
    expect(String((err as Error)?.message)).toContain("--insecure-policy");
    expect(() => checkPolicy({ ...g, insecurePolicy: true }, ref, "x", none)).not.toThrow();
  });
});
