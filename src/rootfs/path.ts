/**
 * Paths inside a root filesystem: `/`-separated FileName strings relative to the root, no `.` or
 * `..` components, no leading or trailing `/`. The root itself is "" here; the mtree spells it
 * "." ({@link mtreePath}), and so do tar names (a tar writer writes "." for the root).
 */

const DOT_COMPONENT = /(?:^|\/)\.\.?(?:\/|$)/;

/**
 * Clean a tar entry name (or a path a person typed) to a root-relative path: "" is the root.
 * Leading "/", "." and ".." components that would climb above the root are dropped — the one
 * path cleaner for unpack, the tar check of `raw add-layer`, and the commands that take paths.
 */
export function cleanEntryPath(name: string): string {
  // The common shapes ("a/b", "./a/b", "a/b/") need no splitting.
  let s = name.startsWith("./") ? name.slice(2) : name;
  if (s.endsWith("/")) s = s.slice(0, -1);
  if (s !== "" && s.charCodeAt(0) !== 0x2f && !s.endsWith("/") && !s.includes("//") && !DOT_COMPONENT.test(s)) return s;
  const out: string[] = [];
  for (const c of name.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") { out.pop(); continue; }
    out.push(c);
  }
  return out.join("/");
}

/** The directory of a clean path ("" for a name in the root, and for the root itself). */
export function parentOf(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? "" : p.slice(0, i);
}

/** The last component of a clean path. */
export function baseOf(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}

/** `a/b` of two clean paths, either of which may be "" (the root). */
export function joinPath(a: string, b: string): string {
  return a === "" ? b : b === "" ? a : `${a}/${b}`;
}

/** The mtree's spelling of a clean path: "." for the root. */
export function mtreePath(p: string): string {
  return p === "" ? "." : p;
}

/** A clean path from the mtree's spelling ("." → ""). */
export function fromMtreePath(p: string): string {
  return p === "." ? "" : p;
}
