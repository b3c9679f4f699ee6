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

  test.each(["dir:/tmp/x", "containers-storage:busybox", "docker-daemon:busybox:latest"])("%s is an unsupported transport (exit 6)", (s) => {
    let err: unknown;
    try { parseReference(s, { role: "source" }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(UnsupportedError);
    expect((err as UnsupportedError).exitCode).toBe(6);
    expect((err as Error).message).toContain("unsupported transport");
  });
});

const D = "sha256:" + "0123456789abcdef".repeat(4);
// containers/image docker transport (ParseReference: "//" then ParseNormalizedNamed, TagNameOnly).
const dockerGood: Row[] = [
  ["docker://alpine", { transport: "docker", registry: "docker.io", repository: "library/alpine", tag: "latest" }],
  ["docker://alpine:3.19", { transport: "docker", registry: "docker.io", repository: "library/alpine", tag: "3.19" }],
  ["docker://me/app", { transport: "docker", registry: "docker.io", repository: "me/app", tag: "latest" }],
  ["docker://docker.io/alpine", { transport: "docker", registry: "docker.io", repository: "library/alpine", tag: "latest" }],
  ["docker://index.docker.io/library/alpine:edge", { transport: "docker", registry: "docker.io", repository: "library/alpine", tag: "edge" }],
  ["docker://localhost:5000/x", { transport: "docker", registry: "localhost:5000", repository: "x", tag: "latest" }],
  ["docker://localhost/x:1", { transport: "docker", registry: "localhost", repository: "x", tag: "1" }],
  ["docker://127.0.0.1:5000/a/b/c:v1.0", { transport: "docker", registry: "127.0.0.1:5000", repository: "a/b/c", tag: "v1.0" }],
  ["docker://quay.io/org/img_x-y.z:T_1", { transport: "docker", registry: "quay.io", repository: "org/img_x-y.z", tag: "T_1" }],
  ["docker://[::1]:5000/x", { transport: "docker", registry: "[::1]:5000", repository: "x", tag: "latest" }],
  [`docker://alpine@${D}`, { transport: "docker", registry: "docker.io", repository: "library/alpine", digest: D }],
  [`docker://localhost:5000/x/y@${D}`, { transport: "docker", registry: "localhost:5000", repository: "x/y", digest: D }],
];

describe("parseReference docker://", () => {
  test.each(dockerGood)("%s", (s, want) => {
    expect(parseReference(s, { role: "source" })).toEqual(want as never);
    expect(parseReference(s, { role: "destination" })).toEqual(want as never);
  });
  test.each(dockerGood)("%s round-trips through formatReference", (s) => {
    const r = parseReference(s, { role: "source" });
    expect(parseReference(formatReference(r), { role: "source" })).toEqual(r);
  });
  test("formatReference is the normalised form", () => {
    expect(formatReference(parseReference("docker://alpine", { role: "source" }))).toBe("docker://docker.io/library/alpine:latest");
    expect(formatReference(parseReference(`docker://localhost:5000/x@${D}`, { role: "source" }))).toBe(`docker://localhost:5000/x@${D}`);
  });
  const bad: [string, string][] = [
    ["docker:alpine", "starts with //"],
    ["docker:/alpine", "starts with //"],
    ["docker://", "image name is empty"],
    ["docker://Alpine", "must be lowercase"],
    ["docker://alpine:", "bad tag"],
    ["docker://alpine:-x", "bad tag"],
    ["docker://a b", "invalid reference format"],
    ["docker://alpine@sha256:abc", "invalid digest"],
    ["docker://alpine@", "invalid digest"],
    [`docker://alpine:3@${D}`, "both a tag and digest"],
    ["docker://" + "a".repeat(64), "64-byte hexadecimal"],
    ["docker://localhost:5000/" + "a".repeat(300), "255 characters"],
  ];
  test.each(bad)("%p is a usage error", (s, msg) => {
    let err: unknown;
    try { parseReference(s, { role: "source" }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).exitCode).toBe(2);
    expect((err as Error).message).toContain(msg);
    expect((err as Error).message).toContain(JSON.stringify(s));
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
