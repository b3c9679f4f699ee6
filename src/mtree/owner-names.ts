/**
 * User and group names for the `uname` / `gname` keywords, looked up the way Go's os/user does
 * on Linux from the files: the first /etc/passwd (or /etc/group) line whose id field matches,
 * skipping comments, short lines and NIS `+`/`-` entries. No name: no keyword (as go-mtree).
 */
import * as fs from "node:fs";

function lookup(file: string, minFields: number, id: number): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  const want = String(id);
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const parts = line.split(":");
    if (parts.length < minFields) continue;
    const name = parts[0]!;
    if (name === "" || name.startsWith("+") || name.startsWith("-")) continue;
    if (parts[2] === want) return name;
  }
  return undefined;
}

/** A cached id → name lookup over one file (undefined when there is no such id). */
function createLookup(file: string, minFields: number): (id: number) => string | undefined {
  const cache = new Map<number, string | undefined>();
  return (id) => {
    if (!cache.has(id)) cache.set(id, lookup(file, minFields, id));
    return cache.get(id);
  };
}

/** Fresh lookups (each caches what it read; make one per walk so edits to the files are seen). */
export function createOwnerNames(root = "/etc"): { user: (uid: number) => string | undefined; group: (gid: number) => string | undefined } {
  return { user: createLookup(`${root}/passwd`, 7), group: createLookup(`${root}/group`, 4) };
}
