/**
 * File names as bytes. Linux names are byte strings; JS strings are UTF-16. A `FileName` is a JS
 * string standing for exact bytes: valid UTF-8 decodes as usual, and every byte that is not part
 * of a valid UTF-8 sequence becomes the lone surrogate U+DC00+byte ("surrogateescape", as Python
 * does). No valid UTF-8 decode yields such a code unit, so the mapping is one-to-one: two names
 * that differ in bytes never compare equal, and `nameToBytes(fileName(b))` is `b` again.
 *
 * Made from bytes by one function, {@link fileName}; every name read from a tar header, a
 * directory, a symlink or an mtree manifest goes through it. Before a name reaches the kernel it
 * becomes bytes again ({@link cname}, {@link toFsPath}); before it reaches a person it becomes
 * text ({@link displayName}).
 */

declare const fileNameBrand: unique symbol;
/** A name or `/`-separated path whose raw bytes are exactly known (see the module comment). */
export type FileName = string & { readonly [fileNameBrand]: true };

const LONE_ESCAPE = /(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/;
const ASCII_ONLY = /^[\x00-\x7f]*$/;
const fatalDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** True when `s` carries surrogate-escaped raw bytes (a name that is not valid UTF-8). */
export function hasRawBytes(s: string): boolean {
  return LONE_ESCAPE.test(s);
}

/** The raw bytes a name stands for (inverse of {@link bytesToName}). */
export function nameToBytes(s: string): Buffer {
  if (!hasRawBytes(s)) return Buffer.from(s, "utf8");
  const parts: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xdc80 && c <= 0xdcff && !(i > 0 && isHigh(s.charCodeAt(i - 1)))) {
      parts.push(c - 0xdc00);
      continue;
    }
    let cp = c;
    if (isHigh(c) && i + 1 < s.length && isLow(s.charCodeAt(i + 1))) {
      cp = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(i + 1) - 0xdc00);
      i++;
    } else if (isHigh(c) || isLow(c)) {
      cp = 0xfffd;
    }
    pushUtf8(parts, cp);
  }
  return Buffer.from(parts);
}

/** Decode raw name bytes into a string; invalid UTF-8 bytes become U+DC00+byte. */
export function bytesToName(b: Uint8Array): string {
  try {
    return fatalDecoder.decode(b);
  } catch {
    // fall through to the slow, byte-by-byte decoder
  }
  let out = "";
  let i = 0;
  while (i < b.length) {
    const n = utf8SeqLen(b, i);
    if (n === 0) {
      out += String.fromCharCode(0xdc00 + b[i]!);
      i++;
    } else {
      out += fatalDecoder.decode(b.subarray(i, i + n));
      i += n;
    }
  }
  return out;
}

/** A path usable with node:fs: the string itself, or its raw bytes when it is not valid UTF-8. */
export function toFsPath(s: string): string | Buffer {
  return hasRawBytes(s) ? nameToBytes(s) : s;
}

/** Compare two names (or paths) by the byte order of their raw bytes. */
export function compareBytes(a: string, b: string): number {
  if (ASCII_ONLY.test(a) && ASCII_ONLY.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(nameToBytes(a), nameToBytes(b));
}

/**
 * Sort by a string key in byte order (as compareBytes), testing for ASCII once per list rather
 * than once per comparison.
 */
export function sortByBytes<T>(xs: T[], key: (x: T) => string): void {
  if (xs.every((x) => ASCII_ONLY.test(key(x)))) xs.sort((a, b) => { const p = key(a), q = key(b); return p < q ? -1 : p > q ? 1 : 0; });
  else xs.sort((a, b) => Buffer.compare(nameToBytes(key(a)), nameToBytes(key(b))));
}

/** True when the string is plain ASCII (byte order equals JS string order). */
export function isAscii(s: string): boolean {
  return ASCII_ONLY.test(s);
}

function isHigh(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}
function isLow(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

function pushUtf8(out: number[], cp: number): void {
  if (cp < 0x80) out.push(cp);
  else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
  else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  else
    out.push(
      0xf0 | (cp >> 18),
      0x80 | ((cp >> 12) & 0x3f),
      0x80 | ((cp >> 6) & 0x3f),
      0x80 | (cp & 0x3f),
    );
}

/** Length of the valid UTF-8 sequence starting at i, or 0 if the byte there starts none. */
function utf8SeqLen(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean =>
    i + k < b.length && b[i + k]! >= lo && b[i + k]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}


/** The one way to make a FileName from bytes (a tar header field, a directory entry, a link). */
export function fileName(b: Uint8Array): FileName {
  return bytesToName(b) as FileName;
}

/**
 * A string already in FileName form: one that came out of {@link fileName}, or text typed by a
 * person or read from JSON (valid UTF-8 by construction, so its bytes are its UTF-8 encoding).
 */
export function asFileName(s: string): FileName {
  return s as FileName;
}

/** A name for messages: the text, with each raw byte shown as `\xNN`. */
export function displayName(s: string): string {
  if (!hasRawBytes(s)) return s;
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xdc80 && c <= 0xdcff && !(i > 0 && isHigh(s.charCodeAt(i - 1)))) out += `\\x${(c - 0xdc00).toString(16).padStart(2, "0")}`;
    else out += s[i];
  }
  return out;
}

// ---- C strings for the kernel ----------------------------------------------------------------

const slots: Buffer[] = [Buffer.alloc(4096), Buffer.alloc(4096), Buffer.alloc(4096)];
/** the name each slot holds now, and its length in bytes (without the NUL) */
const held: Array<string | null> = [null, null, null];
const heldLength = [0, 0, 0];

/**
 * `name`'s bytes as a C string (NUL-terminated) in reused buffer `slot` (0–2), valid until that
 * slot is used for another name: the whole buffer is returned (the kernel reads up to the NUL;
 * see {@link cnameExact} for a view of just the name). Throws an EINVAL error for a name holding
 * a NUL. (The same name asked again, as each inode's calls do, is not encoded again.)
 */
export function cname(name: string, slot = 0): Buffer {
  if (held[slot] === name) return slots[slot]!;
  let buf = slots[slot]!;
  // (at most 3 bytes per UTF-16 unit)
  if (name.length * 3 + 1 > buf.length) buf = slots[slot] = Buffer.alloc(name.length * 3 + 1);
  if (name.includes("\0")) throw Object.assign(new Error(`invalid name ${JSON.stringify(displayName(name))}: contains a NUL byte`), { code: "EINVAL" });
  let n = buf.write(name, 0, "utf8");
  // (only a name with non-ASCII text can carry raw bytes)
  if (n !== name.length && hasRawBytes(name)) {
    const raw = nameToBytes(name);
    raw.copy(buf, 0);
    n = raw.length;
  }
  buf[n] = 0;
  held[slot] = name;
  heldLength[slot] = n;
  return buf;
}

/** As {@link cname}, a view of exactly the name and its NUL (still in the reused buffer). */
export function cnameExact(name: string, slot = 0): Buffer {
  const buf = cname(name, slot);
  return buf.subarray(0, heldLength[slot]! + 1);
}
