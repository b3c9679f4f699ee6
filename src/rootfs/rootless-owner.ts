/**
 * The `user.rootlesscontainers` xattr: the owner an emulated chown would have set, stored as the
 * protobuf `message Resource { uint32 uid = 1; uint32 gid = 2; }`
 * (github.com/rootless-containers/proto, rootlesscontainers.proto). See oci-reference §6.
 *
 * Value 0 means root, 0xFFFFFFFF ("noop") means unchanged; zero-valued fields are omitted on
 * the wire (proto3), and when both IDs are noop the xattr is removed altogether.
 */
import { InvalidError } from "../errors";

export const ROOTLESS_XATTR = "user.rootlesscontainers";
export const NOOP_ID = 0xffffffff;

function pushVarint(out: number[], value: number): void {
  let v = value >>> 0;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
}

/**
 * Encode the xattr payload for a tar entry owned by `uid:gid` during a rootless unpack.
 * An ID of 0 becomes NOOP (the unprivileged owner already stands for root); returns null when
 * both IDs are NOOP, meaning the xattr must be omitted.
 */
export function encodeRootlessOwner(uid: number, gid: number): Buffer | null {
  const u = uid === 0 ? NOOP_ID : uid >>> 0;
  const g = gid === 0 ? NOOP_ID : gid >>> 0;
  if (u === NOOP_ID && g === NOOP_ID) return null;
  const out: number[] = [];
  // proto3 omits zero-valued scalars; after the 0→NOOP rewrite neither field can be zero,
  // but keep the rule for fidelity.
  if (u !== 0) {
    out.push(0x08);
    pushVarint(out, u);
  }
  if (g !== 0) {
    out.push(0x10);
    pushVarint(out, g);
  }
  return Buffer.from(out);
}

function malformed(why: string): InvalidError {
  return new InvalidError(`malformed ${ROOTLESS_XATTR} xattr: ${why}`, { code: "EROOTLESSXATTR" });
}

/**
 * Decode the raw protobuf fields, keeping NOOP as 0xFFFFFFFF. Absent fields are 0 (proto3
 * defaults); fields may appear in any order and repeat (last wins); unknown fields (and known
 * numbers with an unexpected wire type) are skipped by wire type. Truncated or otherwise
 * malformed input throws InvalidError.
 */
export function decodeRootlessResource(buf: Uint8Array): { uid: number; gid: number } {
  let pos = 0;
  const readVarint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (pos >= buf.length) throw malformed("truncated varint");
      const b = buf[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result & 0xffffffffffffffffn;
      shift += 7n;
    }
    throw malformed("varint longer than 10 bytes");
  };
  const skip = (n: number) => {
    if (pos + n > buf.length) throw malformed("truncated field");
    pos += n;
  };
  const skipField = (field: number, wire: number, depth: number): void => {
    switch (wire) {
      case 0:
        readVarint();
        return;
      case 1:
        skip(8);
        return;
      case 2: {
        const len = readVarint();
        if (len > BigInt(buf.length - pos)) throw malformed("truncated length-delimited field");
        skip(Number(len));
        return;
      }
      case 5:
        skip(4);
        return;
      case 3: {
        // A (deprecated) group: skip nested fields up to the matching end-group tag.
        if (depth > 64) throw malformed("groups nested too deeply");
        for (;;) {
          if (pos >= buf.length) throw malformed("unterminated group");
          const tag = readVarint();
          const w = Number(tag & 7n);
          const f = Number(tag >> 3n);
          if (f === 0) throw malformed("field number 0");
          if (w === 4) {
            if (f !== field) throw malformed("mismatched end group");
            return;
          }
          skipField(f, w, depth + 1);
        }
      }
      default:
        throw malformed(`unexpected wire type ${wire}`);
    }
  };

  let uid = 0;
  let gid = 0;
  while (pos < buf.length) {
    const tag = readVarint();
    const wire = Number(tag & 7n);
    const field = tag >> 3n;
    if (field === 0n || field > 0x1fffffffn) throw malformed(`invalid field number ${field}`);
    if (wire === 0 && (field === 1n || field === 2n)) {
      // uint32 fields decode a varint and truncate to 32 bits, as protobuf-go does.
      const v = Number(readVarint() & 0xffffffffn);
      if (field === 1n) uid = v;
      else gid = v;
      continue;
    }
    if (wire === 4) throw malformed("unexpected end group");
    skipField(Number(field), wire, 0);
  }
  return { uid, gid };
}

/**
 * Decode the xattr into the owner to record when repacking: NOOP (unchanged) becomes 0 (root),
 * as does an absent field. Malformed input throws InvalidError.
 */
export function decodeRootlessOwner(buf: Uint8Array): { uid: number; gid: number } {
  const r = decodeRootlessResource(buf);
  return { uid: r.uid === NOOP_ID ? 0 : r.uid, gid: r.gid === NOOP_ID ? 0 : r.gid };
}
