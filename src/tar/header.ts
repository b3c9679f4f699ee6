/**
 * 512-byte tar header blocks: decoding (USTAR, GNU, V7) and encoding (USTAR/PAX, as Go's
 * archive/tar writes them). Field layout: see docs/oci-reference.md §3 and
 * https://pubs.opengroup.org/onlinepubs/9699919799/utilities/pax.html#tag_20_92_13_06
 */
import { InvalidError } from "../errors";
import { escapeText } from "../util/escape";
import { fileName } from "../rootfs/name";

export const BLOCK = 512;

/** A header block as stored, before PAX / GNU long-name overrides. */
export interface RawHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: number; // the byte at offset 156
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

function decodeString(b: Buffer, off: number, len: number): string {
  let end = off;
  const max = off + len;
  while (end < max && b[end] !== 0) end++;
  return end === off ? "" : b.toString("utf8", off, end);
}

/**
 * Decode a path name (or link target) as the FileName of its exact bytes (rootfs/name.ts): a name
 * that is not valid UTF-8 keeps every byte, and no two byte strings decode alike.
 */
export function decodeName(b: Uint8Array, off = 0, end = b.length): string {
  return fileName(b.subarray(off, end));
}

function decodeNameField(b: Buffer, off: number, len: number): string {
  let end = off;
  const max = off + len;
  while (end < max && b[end] !== 0) end++;
  return end === off ? "" : decodeName(b, off, end);
}

/** Octal text ended by NUL/space, or base-256 when the top bit of the first byte is set. */
function decodeNumber(b: Buffer, off: number, len: number, field: string, entry = ""): number {
  // (made only for an error: this runs for every numeric field of every entry)
  const where = () => (entry ? ` for ${escapeText(entry, "always")}` : "");
  const first = b[off]!;
  if (first & 0x80) {
    // Base-256 (GNU/Go): big-endian two's complement with the marker bit masked off.
    const inv = first & 0x40 ? 0xff : 0;
    let x = 0n;
    for (let i = off; i < off + len; i++) {
      let c = b[i]! ^ inv;
      if (i === off) c &= 0x7f;
      x = (x << 8n) | BigInt(c);
    }
    const n = inv ? -Number(x) - 1 : Number(x);
    if (!Number.isSafeInteger(n)) throw new InvalidError(`invalid tar header${where()}: ${field} out of range`);
    return n;
  }
  let s = off;
  let e = off + len;
  while (s < e && (b[s] === 0x20 || b[s] === 0)) s++;
  while (e > s && (b[e - 1] === 0x20 || b[e - 1] === 0)) e--;
  let v = 0;
  for (let i = s; i < e; i++) {
    const d = b[i]! - 0x30;
    if (d < 0 || d > 7) throw new InvalidError(`invalid tar header${where()}: bad ${field} field`);
    v = v * 8 + d;
  }
  return v;
}

/** Historic writers summed the header as signed bytes. */
function signedChecksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i]!;
    sum += c > 127 ? c - 256 : c;
  }
  return sum;
}

/**
 * Decode a header block. Returns null for an all-zero block (end-of-archive marker).
 * Throws InvalidError on a checksum mismatch or a malformed numeric field.
 */
export function decodeHeader(b: Buffer): RawHeader | null {
  let unsigned = 0;
  for (let i = 0; i < BLOCK; i++) unsigned += b[i]!;
  if (unsigned === 0) return null;
  for (let i = 148; i < 156; i++) unsigned -= b[i]!;
  unsigned += 8 * 0x20;
  const stored = decodeNumber(b, 148, 8, "checksum");
  if (stored !== unsigned && stored !== signedChecksum(b)) throw new InvalidError("invalid tar header: checksum mismatch");

  const typeflag = b[156]!;
  let name = decodeNameField(b, 0, 100);
  // "ustar\0" + "00" is POSIX (USTAR/PAX), whose prefix field extends the name; GNU ("ustar  \0")
  // uses those bytes for atime/ctime.
  const posix = b[257] === 0x75 && b[258] === 0x73 && b[259] === 0x74 && b[260] === 0x61 && b[261] === 0x72 && b[262] === 0;
  const ustarish = b[257] === 0x75 && b[258] === 0x73 && b[259] === 0x74 && b[260] === 0x61 && b[261] === 0x72;
  if (posix && b[345] !== 0) name = decodeNameField(b, 345, 155) + "/" + name;
  return {
    name,
    mode: decodeNumber(b, 100, 8, "mode", name),
    uid: decodeNumber(b, 108, 8, "uid", name),
    gid: decodeNumber(b, 116, 8, "gid", name),
    size: decodeNumber(b, 124, 12, "size", name),
    mtime: decodeNumber(b, 136, 12, "mtime", name),
    typeflag,
    linkname: decodeNameField(b, 157, 100),
    uname: ustarish ? decodeString(b, 265, 32) : "",
    gname: ustarish ? decodeString(b, 297, 32) : "",
    devmajor: ustarish ? decodeNumber(b, 329, 8, "devmajor", name) : 0,
    devminor: ustarish ? decodeNumber(b, 337, 8, "devminor", name) : 0,
  };
}

/** Fields for `encodeHeader`; strings must already be ASCII and fit (the writer checks). */
export interface EncodeFields {
  name: string;
  prefix?: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: number;
  linkname: string;
  uname: string;
  gname: string;
  /** undefined leaves the field zero bytes (Go does this for PAX pseudo-entries). */
  devmajor?: number;
  devminor?: number;
}

/** Go's formatOctal: zero-padded to len-1 digits and NUL-terminated; 0 if it does not fit. */
function encodeOctal(b: Buffer, off: number, len: number, v: number): void {
  if (v < 0 || v >= 8 ** (len - 1)) v = 0;
  b[off + len - 1] = 0;
  let i = off + len - 2;
  for (; v >= 0x40000000 && i >= off; i--) {
    b[i] = 0x30 + (v % 8);
    v = Math.floor(v / 8);
  }
  for (; i >= off; i--) {
    b[i] = 0x30 | (v & 7);
    v >>>= 3;
  }
}

/** Go's formatString: truncates; a truncated name never ends in "/". */
function encodeString(b: Buffer, off: number, len: number, s: string): void {
  if (s === "") return;
  const n = b.write(s, off, len, "latin1");
  if (s.length > len && b[off + len - 1] === 0x2f) {
    let e = off + len;
    while (e > off && b[e - 1] === 0x2f) e--;
    b[e] = 0;
  } else if (n < len) b[off + n] = 0;
}

export function encodeHeader(f: EncodeFields, out: Buffer = Buffer.alloc(BLOCK), at = 0): Buffer {
  const b = at === 0 && out.length === BLOCK ? out : out.subarray(at, at + BLOCK);
  encodeString(b, 0, 100, f.name);
  encodeOctal(b, 100, 8, f.mode);
  encodeOctal(b, 108, 8, f.uid);
  encodeOctal(b, 116, 8, f.gid);
  encodeOctal(b, 124, 12, f.size);
  encodeOctal(b, 136, 12, f.mtime);
  b[156] = f.typeflag;
  encodeString(b, 157, 100, f.linkname);
  b.write("ustar\x0000", 257, "latin1");
  encodeString(b, 265, 32, f.uname);
  encodeString(b, 297, 32, f.gname);
  if (f.devmajor !== undefined) encodeOctal(b, 329, 8, f.devmajor);
  if (f.devminor !== undefined) encodeOctal(b, 337, 8, f.devminor);
  if (f.prefix) encodeString(b, 345, 155, f.prefix);
  let sum = 8 * 0x20;
  for (let i = 0; i < 148; i++) sum += b[i]!;
  for (let i = 156; i < BLOCK; i++) sum += b[i]!;
  encodeOctal(b, 148, 7, sum); // six digits and a NUL, then a space
  b[155] = 0x20;
  return b;
}
