/**
 * Where this code runs. In a `bun build --compile` binary every module lives under /$bunfs/root/
 * (scripts/build.ts passes --root .), and the embedded entry point is argv[1]; in a source
 * checkout (`bun src/main.ts`, the unit tests) neither holds.
 */
export function inCompiledBinary(): boolean {
  return (process.argv[1] ?? "").startsWith("/$bunfs/") || __filename.startsWith("/$bunfs/");
}
