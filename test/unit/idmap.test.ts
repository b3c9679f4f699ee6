import { describe, expect, test } from "bun:test";
import { InvalidError, UsageError } from "../../src/errors";
import { parseIdMap, resolveMapOptions, toContainer, toHost, type IdMapping } from "../../src/layer/idmap";

describe("parseIdMap", () => {
  test("container:host defaults size to 1", () => {
    expect(parseIdMap("0:1000")).toEqual({ containerID: 0, hostID: 1000, size: 1 });
  });
  test("container:host:size", () => {
    expect(parseIdMap("1:100000:65536")).toEqual({ containerID: 1, hostID: 100000, size: 65536 });
    expect(parseIdMap("4294967294:0:1")).toEqual({ containerID: 4294967294, hostID: 0, size: 1 });
    expect(parseIdMap("0:0:4294967295")).toEqual({ containerID: 0, hostID: 0, size: 4294967295 });
  });
  test.each([
    "",
    "0",
    "0:1:2:3",
    "a:1",
    "0:b",
    "0:1:c",
    "-1:0",
    "0:-5",
    "+1:0",
    " 1:0",
    "0x1:0",
    "4294967296:0",
    "0:4294967296",
    "0:0:4294967296",
    "0:0:0",
    "1.5:0",
    // A range reaching (uid_t)-1 or past 2^32-1 on either side.
    "4294967295:0:1",
    "0:4294967295",
    "0:4294967290:100",
    "4294967290:0:100",
    "1:0:4294967295",
  ])("rejects %p with UsageError", (spec) => {
    expect(() => parseIdMap(spec)).toThrow(UsageError);
  });
  test("message names the flag", () => {
    expect(() => parseIdMap("x:1")).toThrow(/^invalid --uid-map "x:1"/);
    expect(() => parseIdMap("x:1", "--gid-map")).toThrow(/^invalid --gid-map/);
  });
});

describe("toHost / toContainer", () => {
  const maps: IdMapping[] = [
    { containerID: 0, hostID: 1000, size: 1 },
    { containerID: 1, hostID: 100000, size: 65536 },
    { containerID: 70000, hostID: 5000, size: 10 },
  ];
  test("identity without maps", () => {
    expect(toHost(1234, [])).toBe(1234);
    expect(toContainer(1234, [])).toBe(1234);
  });
  test("maps across several ranges", () => {
    expect(toHost(0, maps)).toBe(1000);
    expect(toHost(1, maps)).toBe(100000);
    expect(toHost(65536, maps)).toBe(165535);
    expect(toHost(70009, maps)).toBe(5009);
    expect(toContainer(1000, maps)).toBe(0);
    expect(toContainer(100000, maps)).toBe(1);
    expect(toContainer(165535, maps)).toBe(65536);
    expect(toContainer(5000, maps)).toBe(70000);
  });
  test("round trip", () => {
    for (const id of [0, 1, 2, 500, 65536, 70000, 70009]) expect(toContainer(toHost(id, maps), maps)).toBe(id);
  });
  test("unmappable ids throw InvalidError", () => {
    expect(() => toHost(65537, maps)).toThrow(InvalidError);
    expect(() => toHost(65537, maps)).toThrow("uid 65537 cannot be mapped to host");
    expect(() => toHost(70010, maps, "gid")).toThrow("gid 70010 cannot be mapped to host");
    expect(() => toContainer(999, maps)).toThrow(InvalidError);
    expect(() => toContainer(165536, maps)).toThrow("uid 165536 cannot be mapped to container");
  });
  test("ids past 2^32-2 or negative never map, with or without maps", () => {
    for (const id of [4294967295, 2 ** 40, -1, 1.5]) {
      expect(() => toHost(id, [])).toThrow(InvalidError);
      expect(() => toHost(id, maps)).toThrow(InvalidError);
      expect(() => toContainer(id, [])).toThrow(InvalidError);
    }
    expect(() => toHost(4294967295, [])).toThrow("uid 4294967295 out of range for the image (0-4294967294)");
    expect(toHost(4294967294, [])).toBe(4294967294);
  });
  test("first matching range wins", () => {
    const overlap: IdMapping[] = [
      { containerID: 0, hostID: 10, size: 5 },
      { containerID: 0, hostID: 20, size: 5 },
    ];
    expect(toHost(3, overlap)).toBe(13);
  });
});

describe("resolveMapOptions", () => {
  test("no maps, not rootless: empty", () => {
    expect(resolveMapOptions({ uidMaps: [], gidMaps: [], rootless: false, euid: 1000, egid: 1000 })).toEqual({
      uidMappings: [],
      gidMappings: [],
      rootless: false,
    });
  });
  test("rootless implies 0:euid:1 and 0:egid:1", () => {
    expect(resolveMapOptions({ uidMaps: [], gidMaps: [], rootless: true, euid: 1000, egid: 1001 })).toEqual({
      uidMappings: [{ containerID: 0, hostID: 1000, size: 1 }],
      gidMappings: [{ containerID: 0, hostID: 1001, size: 1 }],
      rootless: true,
    });
  });
  test("rootless keeps explicit maps, defaults only the missing kind", () => {
    const r = resolveMapOptions({ uidMaps: ["0:2000:1", "1:3000:10"], gidMaps: [], rootless: true, euid: 1000, egid: 1001 });
    expect(r.uidMappings).toEqual([
      { containerID: 0, hostID: 2000, size: 1 },
      { containerID: 1, hostID: 3000, size: 10 },
    ]);
    expect(r.gidMappings).toEqual([{ containerID: 0, hostID: 1001, size: 1 }]);
  });
  test("bad gid map names --gid-map", () => {
    expect(() => resolveMapOptions({ uidMaps: [], gidMaps: ["z"], rootless: false, euid: 0, egid: 0 })).toThrow(/--gid-map/);
  });
});
