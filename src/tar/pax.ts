/**
 * Binary-safe PAX extended-header records (POSIX.1-2001 pax, "<len> <key>=<value>\n").
 * Spec: https://pubs.opengroup.org/onlinepubs/9699919799/utilities/pax.html#tag_20_92_13_03
 * Values stay raw bytes: `SCHILY.xattr.*` values are arbitrary binary (e.g. security.capability).
 */
import { InvalidError } from "../errors";

/** Upper bound for a PAX ('x'/'g') or GNU long-name ('L'/'K') body we are willing to buffer. */
export const MAX_EXTENDED_HEADER_SIZE = 1 << 20;

export type PaxRecords = Map<string, Buffer>;

/**
 * Parse a PAX body into key → raw value bytes. Keys are UTF-8. Later records win.
 * Throws InvalidError on a malformed record (bad length, missing "=", missing newline).
 */
export function parsePaxRecords(buf: Buffer): PaxRecords {
  const out: PaxRecords = new Map();
  let off = 0;
  while (off < buf.length) {
    let sp = off;
    let len = 0;
    while (sp < buf.length && buf[sp] !== 0x20) {
      const d = buf[sp]! - 0x30;
      if (d < 0 || d > 9 || sp - off > 15) throw new InvalidError("invalid pax record: bad length");
      len = len * 10 + d;
      sp++;
    }
    if (sp === off || sp >= buf.length) throw new InvalidError("invalid pax record: bad length");
    const end = off + len;
    // The shortest record is "<len> k=\n": the length digits, a space, a key byte, "=" and "\n".
    if (len < sp - off + 4 || end > buf.length) throw new InvalidError("invalid pax record: bad length");
    if (buf[end - 1] !== 0x0a) throw new InvalidError("invalid pax record: missing newline");
    const eq = buf.indexOf(0x3d, sp + 1);
    if (eq < 0 || eq >= end - 1 || eq === sp + 1) throw new InvalidError("invalid pax record: missing key");
    out.set(buf.toString("utf8", sp + 1, eq), buf.subarray(eq + 1, end - 1));
    off = end;
  }
  return out;
}

/** Format one record; the length prefix counts the whole record in bytes, itself included. */
export function formatPaxRecord(key: string, value: Buffer | string): Buffer {
  if (key === "" || key.includes("=") || key.includes("\0")) throw new InvalidError(`invalid pax key ${JSON.stringify(key)}`);
  const k = Buffer.from(key, "utf8");
  const v = typeof value === "string" ? Buffer.from(value, "utf8") : value;
  const base = k.length + v.length + 3; // " ", "=", "\n"
  let size = base + String(base).length;
  if (String(size).length !== String(base).length) size = base + String(size).length;
  const head = Buffer.from(`${size} `, "latin1");
  const rec = Buffer.allocUnsafe(size);
  head.copy(rec, 0);
  k.copy(rec, head.length);
  rec[head.length + k.length] = 0x3d;
  v.copy(rec, head.length + k.length + 1);
  rec[size - 1] = 0x0a;
  return rec;
}

/** Format records sorted bytewise by key (as Go's archive/tar does), for deterministic output. */
export function formatPaxRecords(records: Map<string, Buffer | string>): Buffer {
  const keys = [...records.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return Buffer.concat(keys.map((k) => formatPaxRecord(k, records.get(k)!)));
}

/** Parse a PAX decimal integer value (uid, gid, size). */
export function parsePaxInt(key: string, v: Buffer): number {
  const s = v.toString("latin1");
  if (!/^[0-9]{1,16}$/.test(s)) throw new InvalidError(`invalid pax ${key} value ${JSON.stringify(s)}`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new InvalidError(`invalid pax ${key} value ${JSON.stringify(s)}`);
  return n;
}

/** Parse a PAX time value ("1700000000.123456789", may be negative). */
export function parsePaxTime(key: string, v: Buffer): number {
  const s = v.toString("latin1");
  if (!/^-?[0-9]{1,19}(\.[0-9]*)?$/.test(s)) throw new InvalidError(`invalid pax ${key} value ${JSON.stringify(s)}`);
  return Number(s);
}
