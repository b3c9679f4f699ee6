import { describe, expect, test } from "bun:test";
import { InvalidError } from "../../src/errors";
import {
  NOOP_ID,
  ROOTLESS_XATTR,
  decodeRootlessOwner,
  decodeRootlessResource,
  encodeRootlessOwner,
} from "../../src/rootfs/rootless-owner";

const hex = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString("hex"));
const unhex = (s: string) => Buffer.from(s, "hex");

describe("encodeRootlessOwner", () => {
  test.each([
    [992, 123, "08e007107b"],
    [0, 456, "08ffffffff0f10c803"],
    [98, 0, "086210ffffffff0f"],
    [0, 0, null],
    [1000, 1000, "08e80710e807"],
  ] as const)("%d:%d", (uid, gid, want) => {
    expect(hex(encodeRootlessOwner(uid, gid))).toBe(want);
  });
  test("constants", () => {
    expect(ROOTLESS_XATTR).toBe("user.rootlesscontainers");
    expect(NOOP_ID).toBe(0xffffffff);
  });
  test("large ids", () => {
    expect(hex(encodeRootlessOwner(4294967294, 65534))).toBe("08feffffff0f10feff03");
  });
});

describe("decodeRootlessOwner", () => {
  test("round trips (NOOP back to 0)", () => {
    for (const [u, g] of [
      [992, 123],
      [0, 456],
      [98, 0],
      [1000, 1000],
      [65534, 4294967294],
    ] as const) {
      expect(decodeRootlessOwner(encodeRootlessOwner(u, g)!)).toEqual({ uid: u, gid: g });
    }
  });
  test("raw decode keeps NOOP", () => {
    expect(decodeRootlessResource(unhex("08ffffffff0f10c803"))).toEqual({ uid: NOOP_ID, gid: 456 });
  });
  test("omitted zero fields and empty payload", () => {
    expect(decodeRootlessOwner(unhex("1005"))).toEqual({ uid: 0, gid: 5 });
    expect(decodeRootlessOwner(unhex("08e807"))).toEqual({ uid: 1000, gid: 0 });
    expect(decodeRootlessOwner(new Uint8Array())).toEqual({ uid: 0, gid: 0 });
  });
  test("any field order", () => {
    expect(decodeRootlessOwner(unhex("107b08e007"))).toEqual({ uid: 992, gid: 123 });
  });
  test("repeated field: last wins", () => {
    expect(decodeRootlessOwner(unhex("0801080210030804"))).toEqual({ uid: 4, gid: 3 });
  });
  test("skips unknown fields of every wire type", () => {
    const payload =
      "18ff01" + // field 3 varint
      "210102030405060708" + // field 4 fixed64
      "2a03616263" + // field 5 length-delimited "abc"
      "3d01020304" + // field 7 fixed32
      "43" + "4801" + "44" + // field 8 group containing field 9 varint
      "08e007" +
      "0a0100" + // field 1 with the wrong wire type (bytes): skipped as unknown
      "107b";
    expect(decodeRootlessOwner(unhex(payload))).toEqual({ uid: 992, gid: 123 });
  });
  test("oversized varint truncated to uint32", () => {
    // 2^32 + 5 encoded as varint → uint32 5
    expect(decodeRootlessOwner(unhex("088580808010"))).toEqual({ uid: 5, gid: 0 });
  });
  test.each([
    ["08", "truncated varint"],
    ["08ff", "truncated varint"],
    ["08ffffffffffffffffffff01", "varint longer than 10 bytes"],
    ["2a05616263", "truncated length-delimited"],
    ["21010203", "truncated field"],
    ["3d0102", "truncated field"],
    ["0001", "field number 0"],
    ["0e", "wire type 6"],
    ["0f", "wire type 7"],
    ["44", "end group"],
    ["434801", "unterminated group"],
    ["43480154", "mismatched end group"],
  ])("malformed %s → InvalidError", (h, msg) => {
    expect(() => decodeRootlessOwner(unhex(h))).toThrow(InvalidError);
    expect(() => decodeRootlessOwner(unhex(h))).toThrow(msg);
  });
});
