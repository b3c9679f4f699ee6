/**
 * Tar entries built in code, for tests that drive the layer applier directly (no tar bytes, no
 * fixtures): `entry({ name, type, body, ... })` fills the header defaults and serves the body from
 * a Buffer through `body`, `readAll` and `drain` as the tar reader does.
 */
import type { EntryType, TarEntry, TarHeader } from "../../src/tar/types";

export interface EntrySpec {
  name: string;
  /** Default: "dir" when the name ends in "/", else "file". */
  type?: EntryType;
  /** Default: 0755 for directories, 0777 for symlinks, 0644 otherwise. */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds; default {@link DEFAULT_MTIME}. */
  mtime?: number;
  linkname?: string;
  /** File content (a string is UTF-8). */
  body?: string | Buffer;
  /** Header size; default the body's length for files, 0 otherwise (set it to lie). */
  size?: number;
  devmajor?: number;
  devminor?: number;
  /** A string value is UTF-8. */
  xattrs?: Record<string, string | Buffer>;
  uname?: string;
  gname?: string;
  /** Serve the body in chunks of this many bytes (default: one chunk). */
  chunk?: number;
}

export const DEFAULT_MTIME = 1_500_000_000;

export function toBuffer(v: string | Buffer): Buffer {
  return typeof v === "string" ? Buffer.from(v, "utf8") : v;
}

/** One TarEntry whose body is `spec.body`, iterable once (body, readAll and drain share a cursor). */
export function entry(spec: EntrySpec): TarEntry {
  const type: EntryType = spec.type ?? (spec.name.endsWith("/") ? "dir" : "file");
  const data = toBuffer(spec.body ?? "");
  const header: TarHeader = {
    name: spec.name,
    type,
    mode: spec.mode ?? (type === "dir" ? 0o755 : type === "symlink" ? 0o777 : 0o644),
    uid: spec.uid ?? 0,
    gid: spec.gid ?? 0,
    size: spec.size ?? (type === "file" ? data.length : 0),
    mtime: spec.mtime ?? DEFAULT_MTIME,
    linkname: spec.linkname ?? "",
    devmajor: spec.devmajor ?? 0,
    devminor: spec.devminor ?? 0,
    xattrs: new Map(Object.entries(spec.xattrs ?? {}).map(([k, v]) => [k, toBuffer(v)])),
    uname: spec.uname ?? "",
    gname: spec.gname ?? "",
  };
  const chunk = Math.max(1, spec.chunk ?? (data.length || 1));
  let pos = 0;
  let iterated = false;
  return {
    header,
    body: {
      [Symbol.asyncIterator]: async function* () {
        if (iterated) throw new Error(`body of ${spec.name} iterated twice`);
        iterated = true;
        while (pos < data.length) {
          const part = data.subarray(pos, Math.min(data.length, pos + chunk));
          pos += part.length;
          yield part;
        }
      },
    },
    async readAll() {
      const rest = data.subarray(pos);
      pos = data.length;
      return rest;
    },
    async drain() {
      pos = data.length;
    },
  };
}

/** A layer: the entries of `specs`, made one at a time as the applier asks for them. */
export async function* layerOf(specs: readonly EntrySpec[]): AsyncGenerator<TarEntry> {
  for (const s of specs) yield entry(s);
}
