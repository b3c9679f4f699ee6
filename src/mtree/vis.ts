/**
 * vis(3) encoding as go-mtree uses it (VisWhite | VisOctal | VisGlob), plus a lossless mapping
 * between raw file-name bytes and JS strings.
 *
 * Names on Linux are bytes, JS strings are UTF-16. Valid UTF-8 decodes as usual; every byte that is
 * not part of a valid UTF-8 sequence becomes the lone surrogate U+DC00+byte ("surrogateescape", as
 * Python does). Such code units never come out of a valid UTF-8 decode, so the mapping round-trips.
 * Use {@link nameToBytes} / {@link toFsPath} before handing such a name to the kernel.
 *
 * Spec: oci-reference.md §5 "Vis encoding"; vis(3), unvis(3).
 */
import { InvalidError } from "../errors";

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

/** Bytes kept as themselves: printable ASCII except space and the glob characters. */
function keepByte(c: number): boolean {
  return c > 0x20 && c < 0x7f && c !== 0x2a && c !== 0x3f && c !== 0x5b && c !== 0x23;
}

function octal(c: number): string {
  return "\\" + c.toString(8).padStart(3, "0");
}

/**
 * vis-encode a name, link target or xattr name: the raw bytes, with printable ASCII other than
 * space and `* ? [ #` kept, `\` doubled, everything else as three-digit octal `\ooo`.
 * `dir with space` → `dir\040with\040space`.
 */
export function visEncode(s: string): string {
  if (ASCII_ONLY.test(s)) {
    let fast = true;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (!keepByte(c) || c === 0x5c) {
        fast = false;
        break;
      }
    }
    if (fast) return s;
  }
  const bytes = nameToBytes(s);
  let out = "";
  for (const c of bytes) {
    if (c === 0x5c) out += "\\\\";
    else if (keepByte(c)) out += String.fromCharCode(c);
    else out += octal(c);
  }
  return out;
}

/**
 * Decode vis(3) text (inverse of {@link visEncode}, and also the other unvis forms: `\n \r \b \a
 * \v \t \f \s \E`, `\xHH`, `\^C`, `\M-C`, `\M^C`, hidden newline `\<newline>` and `\$`).
 * Throws InvalidError on a malformed escape.
 */
export function visDecode(s: string): string {
  if (s.indexOf("\\") < 0) return s;
  const out: number[] = [];
  const fail = (why: string): never => {
    throw new InvalidError(`unvis ${JSON.stringify(s)}: ${why}`);
  };
  let i = 0;
  const next = (): number => {
    if (i >= s.length) fail("unexpected end of string");
    return s.charCodeAt(i++);
  };
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c !== 0x5c) {
      // a plain character: copy its bytes (surrogate pairs and escapes included)
      let j = i + 1;
      while (j < s.length && s.charCodeAt(j) !== 0x5c) j++;
      for (const b of nameToBytes(s.slice(i, j))) out.push(b);
      i = j;
      continue;
    }
    i++;
    const e = next();
    if (e === 0x5c) {
      out.push(0x5c);
    } else if (e >= 0x30 && e <= 0x37) {
      let v = e - 0x30;
      for (let k = 0; k < 2 && i < s.length; k++) {
        const d = s.charCodeAt(i);
        if (d < 0x30 || d > 0x37) break;
        v = v * 8 + (d - 0x30);
        i++;
      }
      if (v > 0xff) fail(`octal escape out of range`);
      out.push(v);
    } else if (e === 0x78 /* x */) {
      const h = s.slice(i, i + 2);
      if (!/^[0-9a-fA-F]{2}$/.test(h)) fail("bad hex escape");
      out.push(parseInt(h, 16));
      i += 2;
    } else if (e === 0x5e /* ^ */) {
      out.push(ctrl(next(), 0));
    } else if (e === 0x4d /* M */) {
      const m = next();
      if (m === 0x5e) out.push(ctrl(next(), 0x80));
      else if (m === 0x2d /* - */) {
        const ch = next();
        if (ch > 0xff) fail("meta escape outside latin-1");
        out.push(0x80 | ch);
      } else fail(`unknown meta escape ${JSON.stringify(String.fromCharCode(m))}`);
    } else {
      const map: Record<string, number | null> = {
        n: 0x0a, r: 0x0d, b: 0x08, a: 0x07, v: 0x0b, t: 0x09, f: 0x0c, s: 0x20, E: 0x1b,
        "\n": null, $: null,
      };
      const k = String.fromCharCode(e);
      if (!(k in map)) fail(`unknown escape ${JSON.stringify("\\" + k)}`);
      const v = map[k];
      if (v !== null && v !== undefined) out.push(v);
    }
  }
  return bytesToName(Uint8Array.from(out));

  function ctrl(ch: number, mask: number): number {
    if (ch > 0xff) fail("control escape outside latin-1");
    return mask | (ch === 0x3f ? 0x7f : ch & 0x1f);
  }
}
