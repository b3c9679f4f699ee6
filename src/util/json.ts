/**
 * JSON output that matches Go's encoding/json byte for byte for the objects we build:
 * compact, keys in insertion order (callers build objects in spec struct order),
 * `<`, `>`, `&`, U+2028 and U+2029 escaped as Go does, and a trailing newline where asked.
 */
export function goJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/[<>&\u2028\u2029]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

/** Parse JSON text strictly: refuses duplicate keys and nesting deeper than maxDepth. */
export function parseJsonStrict(text: string, opts: { maxDepth?: number } = {}): unknown {
  const maxDepth = opts.maxDepth ?? 64;
  checkJsonShape(text, maxDepth);
  return JSON.parse(text);
}

/**
 * One linear scan of JSON text: rejects nesting deeper than maxDepth (JSON.parse would recurse)
 * and duplicate keys in an object (the spec forbids them; readers disagree on which wins).
 * Throws Error with a short message; assumes JSON.parse will later check the grammar.
 */
function checkJsonShape(text: string, maxDepth: number): void {
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      let hasEscape = false;
      while (j < text.length) {
        const d = text.charCodeAt(j);
        if (d === 0x5c) { hasEscape = true; j += 2; continue; }
        if (d === 0x22) break;
        j++;
      }
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const raw = text.slice(i, j + 1);
        let key: string;
        try { key = hasEscape ? JSON.parse(raw) : raw.slice(1, -1); } catch { key = raw; }
        if (top.has(key)) throw new Error(`duplicate key ${JSON.stringify(key)}`);
        top.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (stack.length >= maxDepth) throw new Error(`nesting deeper than ${maxDepth}`);
      stack.push(c === 0x7b ? new Set() : null);
      expectKey = c === 0x7b;
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] != null;
    }
  }
}
