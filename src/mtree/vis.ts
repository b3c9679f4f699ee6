/**
 * vis(3) encoding as go-mtree uses it (VisWhite | VisOctal | VisGlob), over a name's raw bytes
 * (names are rootfs/name.ts FileNames: any byte sequence, losslessly).
 *
 * Spec: oci-reference.md §5 "Vis encoding"; vis(3), unvis(3).
 */
import { InvalidError } from "../errors";

import { nameToBytes, bytesToName } from "../rootfs/name";

export { hasRawBytes, nameToBytes, bytesToName, toFsPath, compareBytes, sortByBytes, isAscii } from "../rootfs/name";

const ASCII_ONLY = /^[\x00-\x7f]*$/;

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
