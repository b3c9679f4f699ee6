/**
 * Reference parsing in skopeo's syntax (containers/image oci/layout, oci/archive,
 * docker/archive ParseReference and docker/distribution's ParseNormalizedNamed).
 */
import { describe, expect, test } from "bun:test";
import {
  parseReference, formatReference, normalizeDockerName, familiarDockerName, sameDockerName, isValidOciTag,
} from "../../src/transport/reference";
import { UnsupportedError, UsageError } from "../../src/errors";

type Row = [string, unknown];

const good: Row[] = [
  ["oci:/tmp/l", { transport: "oci", path: "/tmp/l" }],
  ["oci:/tmp/l:latest", { transport: "oci", path: "/tmp/l", tag: "latest" }],
  ["oci:rel/dir:base_layer", { transport: "oci", path: "rel/dir", tag: "base_layer" }],
  // The path ends at the first ":" (as containers/image on Linux): the rest is the tag.
  ["oci:/tmp/a:b:c", { transport: "oci", path: "/tmp/a", tag: "b:c" }],
  ["oci:/tmp/l:", { transport: "oci", path: "/tmp/l" }],
  ["oci:/tmp/l:v1.0-rc.1+build", { transport: "oci", path: "/tmp/l", tag: "v1.0-rc.1+build" }],
  ["oci:/tmp/l:org/name--x", { transport: "oci", path: "/tmp/l", tag: "org/name--x" }],
  ["oci-archive:/tmp/f.tar", { transport: "oci-archive", path: "/tmp/f.tar" }],
  ["oci-archive:/tmp/f.tar:tag", { transport: "oci-archive", path: "/tmp/f.tar", tag: "tag" }],
  ["oci-archive:f.tar:a@b", { transport: "oci-archive", path: "f.tar", tag: "a@b" }],
  ["docker-archive:/tmp/d.tar", { transport: "docker-archive", path: "/tmp/d.tar" }],
  ["docker-archive:/tmp/d.tar:busybox", { transport: "docker-archive", path: "/tmp/d.tar", name: "docker.io/library/busybox:latest" }],
  ["docker-archive:/tmp/d.tar:busybox:1.36", { transport: "docker-archive", path: "/tmp/d.tar", name: "docker.io/library/busybox:1.36" }],
  ["docker-archive:d.tar:me/app:v2", { transport: "docker-archive", path: "d.tar", name: "docker.io/me/app:v2" }],
  ["docker-archive:d.tar:localhost:5000/app:v2", { transport: "docker-archive", path: "d.tar", name: "localhost:5000/app:v2" }],
  ["docker-archive:d.tar:localhost/app", { transport: "docker-archive", path: "d.tar", name: "localhost/app:latest" }],
  ["docker-archive:d.tar:registry.example.com/a/b/c:t", { transport: "docker-archive", path: "d.tar", name: "registry.example.com/a/b/c:t" }],
  ["docker-archive:d.tar:index.docker.io/library/x:y", { transport: "docker-archive", path: "d.tar", name: "docker.io/library/x:y" }],
  ["docker-archive:d.tar:docker.io/x", { transport: "docker-archive", path: "d.tar", name: "docker.io/library/x:latest" }],
  ["docker-archive:d.tar:@0", { transport: "docker-archive", path: "d.tar", index: 0 }],
  ["docker-archive:d.tar:@12", { transport: "docker-archive", path: "d.tar", index: 12 }],
];

describe("parseReference", () => {
  test.each(good)("%s", (s, want) => {
    expect(parseReference(s, { role: "source" })).toEqual(want as never);
  });

  const usage: [string, "source" | "destination", string][] = [
    ["", "source", "expected TRANSPORT:REFERENCE"],
    ["/tmp/layout", "source", "expected TRANSPORT:REFERENCE"],
    ["oci:", "source", "path is empty"],
    ["oci::tag", "source", "path is empty"],
    ["oci:/l:-bad", "source", "invalid tag"],
    ["oci:/l:a b", "source", "invalid tag"],
    ["oci:/l:a//b", "source", "invalid tag"],
    ["oci:/l:@0", "source", "invalid tag"],
    ["oci-archive:", "source", "path is empty"],
    ["docker-archive:", "source", "path is empty"],
    ["docker-archive::x:y", "source", "path is empty"],
    ["docker-archive:d.tar:@", "source", "invalid source index"],
    ["docker-archive:d.tar:@-1", "source", "invalid source index"],
    ["docker-archive:d.tar:@x", "source", "invalid source index"],
    ["docker-archive:d.tar:@0", "destination", "not one to write"],
    ["docker-archive:d.tar:BusyBox:1", "source", "must be lowercase"],
    ["docker-archive:d.tar:busy box", "source", "invalid reference format"],
    ["docker-archive:d.tar:x:", "source", "bad tag"],
    ["docker-archive:d.tar:x:-t", "source", "bad tag"],
    ["docker-archive:d.tar:x@sha256:" + "a".repeat(64), "source", "digest references"],
    ["docker-archive:d.tar:" + "a".repeat(64), "source", "64-byte hexadecimal"],
    ["docker-archive:d.tar:" + "a".repeat(300) + ":t", "source", "255 characters"],
    ["bogus:x", "source", "unknown transport \"bogus\""],
    ["OCI:/x", "source", "unknown transport"],
  ];
  test.each(usage)("%p (%s) is a usage error", (s, role, msg) => {
    let err: unknown;
    try { parseReference(s, { role }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).exitCode).toBe(2);
    expect((err as Error).message).toContain(msg);
    expect((err as Error).message).toContain(JSON.stringify(s));
  });

  test.each(["docker://busybox:latest", "dir:/tmp/x", "containers-storage:busybox", "docker-daemon:busybox:latest"])("%s is an unsupported transport (exit 6)", (s) => {
    let err: unknown;
    try { parseReference(s, { role: "source" }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(UnsupportedError);
    expect((err as UnsupportedError).exitCode).toBe(6);
    expect((err as Error).message).toContain("unsupported transport");
  });
});

describe("formatReference", () => {
  test.each(good)("%s round-trips", (s) => {
    const r = parseReference(s, { role: "source" });
    expect(parseReference(formatReference(r), { role: "source" })).toEqual(r);
  });
});

describe("docker names", () => {
  test("normalise and shorten", () => {
    expect(normalizeDockerName("busybox:latest", { defaultTag: false })).toBe("docker.io/library/busybox:latest");
    expect(() => normalizeDockerName("busybox", { defaultTag: false })).toThrow("not a tagged reference");
    expect(familiarDockerName("docker.io/library/busybox:latest")).toBe("busybox:latest");
    expect(familiarDockerName("docker.io/me/x:1")).toBe("me/x:1");
    expect(familiarDockerName("docker.io/library/a/b:1")).toBe("library/a/b:1");
    expect(familiarDockerName("quay.io/a/b:c")).toBe("quay.io/a/b:c");
    expect(familiarDockerName("localhost:5000/x:y")).toBe("localhost:5000/x:y");
    expect(sameDockerName("busybox", "docker.io/library/busybox:latest")).toBe(true);
    expect(sameDockerName("busybox:1", "busybox:2")).toBe(false);
    expect(sameDockerName("BAD NAME", "busybox")).toBe(false);
  });
  test("oci tags", () => {
    expect(isValidOciTag("a.b-c_d:e@f+g/h--i")).toBe(true);
    for (const t of ["", "-a", "a-", "a..b", "/a", "a/", "a b", "é"]) expect(isValidOciTag(t)).toBe(false);
  });
});
