/**
 * Entry-name cleaning, as unpack resolves a name: shared by layer application, the tar check of
 * `raw add-layer`, and the commands that take target paths.
 */

/**
 * Clean a tar entry name to a root-relative path: "" is the root. Leading "/", "." and ".."
 * components that would climb above the root are dropped.
 */
export function cleanEntryPath(name: string): string {
  const out: string[] = [];
  for (const c of name.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") { out.pop(); continue; }
    out.push(c);
  }
  return out.join("/");
}
