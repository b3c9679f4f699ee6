/**
 * Go's path.Clean (and filepath.Clean for "/"-separated paths): the shortest path equal to `p`
 * by purely lexical processing. `.` components and repeated slashes go, `..` removes the
 * component before it, a rooted path never climbs above "/", an unrooted one keeps leading
 * `..`, and the empty result is ".".
 */
export function goPathClean(p: string): string {
  const rooted = p.startsWith("/");
  const out: string[] = [];
  for (const c of p.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") {
      if (out.length && out[out.length - 1] !== "..") out.pop();
      else if (!rooted) out.push("..");
      continue;
    }
    out.push(c);
  }
  const s = out.join("/");
  return rooted ? "/" + s : s === "" ? "." : s;
}
