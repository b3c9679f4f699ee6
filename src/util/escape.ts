/**
 * Text from an image (tags, history, author, comments, file names) on its way to a terminal.
 * A raw ESC, CR or C1 byte there could rewrite what the user sees, so every character that is
 * not printable is written as an escape. The escapes are those of Go's `strconv.Quote`, which
 * umoci 0.6's `stat` printer uses: `\a \b \f \n \r \t \v`, `\xHH` for the other C0 controls and
 * DEL, `\uHHHH` / `\UHHHHHHHH` for other characters that are not printable (C1, format
 * characters, non-ASCII spaces, unpaired surrogates). Printable Unicode is kept as it is.
 * JSON output needs none of this: JSON.stringify already escapes control characters.
 */

/**
 * How `escapeText` wraps its result:
 * - `inline`: no quotes; only unprintable characters are escaped (messages, warnings).
 * - `needed`: Go-quoted (`"…"`, with `\"` and `\\`) when quoting changes anything, else as is
 *   (umoci's `quote(s, false)`: history columns, `ls`).
 * - `precise`: as `needed`, and also quoted when empty or holding white space (umoci's
 *   `quote(s, true)`: stat's values).
 * - `always`: always Go-quoted (`strconv.Quote`), for naming a value inside a message.
 */
export type EscapeMode = "inline" | "needed" | "precise" | "always";

/** Letters, marks, numbers, punctuation, symbols and the ASCII space (Go's unicode.IsPrint). */
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;
/** Fast paths: printable ASCII; the same without quote, backslash or space. */
const ASCII = /^[\x20-\x7e]*$/;
const PLAIN = /^[\x21\x23-\x5b\x5d-\x7e]*$/;
const SHORT: Record<number, string> = { 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r" };

function escapeChar(ch: string): string {
  const cp = ch.codePointAt(0)!;
  const short = SHORT[cp];
  if (short) return short;
  if (cp < 0x20 || cp === 0x7f) return `\\x${cp.toString(16).padStart(2, "0")}`;
  if (cp < 0x10000) return `\\u${cp.toString(16).padStart(4, "0")}`;
  return `\\U${cp.toString(16).padStart(8, "0")}`;
}

/**
 * Escape `s` for a terminal; see {@link EscapeMode} for the quoting. Pure; never throws.
 * The escaped text has no control character in it, and in the quoting modes it reads back
 * with Go's `strconv.Unquote`.
 */
export function escapeText(s: string, mode: EscapeMode = "inline"): string {
  if (mode === "inline" ? ASCII.test(s) : mode !== "always" && (s !== "" || mode === "needed") && PLAIN.test(s)) return s;
  const quoting = mode !== "inline";
  let out = "";
  let changed = false;
  for (const ch of s) {
    if (quoting && (ch === '"' || ch === "\\")) {
      out += "\\" + ch;
      changed = true;
    } else if (PRINTABLE.test(ch)) {
      out += ch;
    } else {
      out += escapeChar(ch);
      changed = true;
    }
  }
  if (!quoting) return out;
  if (mode === "always" || changed || (mode === "precise" && (s === "" || /\s/u.test(s)))) return `"${out}"`;
  return s;
}
