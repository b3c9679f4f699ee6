/**
 * A pass-through that proves a byte stream is a tar layer while it flows to its consumer
 * (`raw add-layer` hashes and stores a user's file as it reads it).
 */
import { InvalidError } from "../errors";
import { escapeText } from "../util/escape";
import { readTar } from "./reader";
import { cleanEntryPath } from "../rootfs/path";
import type { TarHeader } from "./types";

const WHITEOUT_PREFIX = ".wh.";


/**
 * The entries unpack refuses whatever the rootfs holds: a root that is not a directory, a
 * whiteout with no name (`.wh.`, `.wh..`, `.wh...`), a hardlink to the root. Null when fine.
 */
export function tarEntryProblem(h: Pick<TarHeader, "name" | "type" | "linkname">): string | null {
  const rel = cleanEntryPath(h.name);
  const q = (s: string) => escapeText(s, "always");
  if (rel === "") return h.type === "dir" ? null : `tar entry ${q(h.name)} would replace the root directory with a ${h.type}`;
  const base = rel.slice(rel.lastIndexOf("/") + 1);
  if (base === WHITEOUT_PREFIX) return `tar entry ${q(h.name)} is a whiteout with no name`;
  if (base === ".wh.." || base === ".wh...") return `tar entry ${q(h.name)} is a whiteout of "." or ".."`;
  if (h.type === "link" && cleanEntryPath(h.linkname) === "") return `tar entry ${q(h.name)} is a hardlink to the root directory`;
  return null;
}

/** " (it is gzip-compressed; …)" when the input starts with a gzip or zstd magic number. */
function compressedHint(head: Buffer | null): string {
  if (!head) return "";
  const kind = head[0] === 0x1f && head[1] === 0x8b ? "gzip" : head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528 ? "zstd" : null;
  return kind ? ` (it is ${kind}-compressed; an uncompressed tar is expected)` : "";
}

/**
 * Yield the chunks of `input` unchanged while parsing them as an uncompressed tar: every header
 * and body is read to the end of the archive, with the reader's rules (checksums, numeric
 * ranges, PAX records, NUL bytes, entry types) and {@link tarEntryProblem}'s. When the input is
 * not a valid tar the generator throws InvalidError ("LABEL is not a valid tar layer: …")
 * before it ends, so a consumer that only keeps what ended cleanly (putBlobStream) keeps
 * nothing. The parser takes each chunk before the next is read (memory stays at one chunk).
 * Closing the generator early closes `input`.
 */
export async function* checkTarStream(input: AsyncIterable<Uint8Array>, label: string): AsyncGenerator<Buffer> {
  // A hand-over between this loop and the parser: `pull` is set while the parser waits for a
  // chunk, `hungry` wakes this loop when it does (or when the parser has stopped).
  let pull: ((r: IteratorResult<Buffer>) => void) | null = null;
  let hungry: (() => void) | null = null;
  let stopped = false;
  const wake = () => { const h = hungry; hungry = null; h?.(); };
  const feed: AsyncIterableIterator<Buffer> = {
    [Symbol.asyncIterator]() { return this; },
    next: () => new Promise<IteratorResult<Buffer>>((resolve) => { pull = resolve; wake(); }),
    return: async () => { stopped = true; wake(); return { done: true, value: undefined }; },
  };
  const parsing = (async () => {
    try {
      for await (const entry of readTar(feed)) {
        const problem = tarEntryProblem(entry.header);
        if (problem) throw new InvalidError(problem);
        await entry.drain();
      }
    } finally {
      stopped = true;
      wake();
    }
  })();
  parsing.catch(() => undefined); // awaited below; this only keeps an early failure from going unhandled
  const parserReady = () => (pull || stopped ? Promise.resolve() : new Promise<void>((r) => { hungry = r; }));
  const give = (r: IteratorResult<Buffer>) => { const p = pull!; pull = null; p(r); };
  let head: Buffer | null = null; // the first bytes, to recognise a compressed file
  const settle = async () => {
    try {
      await parsing;
    } catch (e) {
      if (!(e instanceof InvalidError)) throw e;
      throw new InvalidError(`${label} is not a valid tar layer${compressedHint(head)}: ${e.message}`, { cause: e });
    }
  };
  let finished = false;
  try {
    for await (const c of input) {
      const b = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
      head ??= Buffer.from(b.subarray(0, 4));
      await parserReady();
      if (stopped) await settle(); // throws if the parser failed
      else give({ value: b, done: false });
      yield b;
    }
    await parserReady();
    if (!stopped) give({ value: undefined, done: true });
    await settle();
    finished = true;
  } finally {
    if (!finished && pull) give({ value: undefined, done: true });
  }
}
