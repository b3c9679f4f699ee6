/**
 * oci-archive: a tar of an OCI image layout (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`), as
 * skopeo's `oci-archive:` transport reads and writes it.
 *
 *  - `OciArchiveReader` is a BlobReader over the archive's members, read in place at their
 *    offsets (tar-members.ts): nothing is extracted, every blob is verified as it is read
 *    (cas/source.ts streamVerified / readVerified).
 *  - `writeOciArchive` tars a layout directory, streamed, atomically (tar-members.ts
 *    createTarFileWriter), in a fixed order with fixed metadata (README.md).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { InvalidError, NotFoundError, UnsupportedError, addContext } from "../errors";
import { type Descriptor, type ImageIndex, parseDigest } from "../image";
import {
  type BlobStreamOptions, MAX_JSON_BLOB, checkDescriptor, checkSmallBlob, decodeIndexFile, embeddedData,
  readVerified, streamVerified,
} from "../cas/source";
import { Layout } from "../cas/layout";
import { checkLayoutDir, lstatOrNull, notA, openLayoutFile } from "../cas/layout-fs";
import { parseJsonStrict } from "../util/json";
import { ArchiveReader } from "./archive-reader";
import { type TarIndex, type TarMember, createTarFileWriter, openTarFile, readMember } from "./tar-members";

/** Largest `oci-layout` member read. */
const MAX_HEADER = 64 * 1024;

/** A read-only OCI layout inside a tar file; see the module comment. */
export class OciArchiveReader extends ArchiveReader {
  private constructor(
    path: string,
    fd: number,
    private readonly index: TarIndex,
  ) {
    super(path, fd, "oci-archive");
  }

  /**
   * Open and index the archive `file`, checking its `oci-layout` and `index.json` members as
   * Layout.open checks a directory's. NotFoundError when `file` does not exist; InvalidError
   * for a file that is not an uncompressed tar, a hostile member (tar-members.ts), a missing
   * `oci-layout` or `index.json`; UnsupportedError for an imageLayoutVersion other than 1.0.0.
   * The caller closes the reader.
   */
  static open(file: string): OciArchiveReader {
    const { fd, index } = openTarFile(file, "oci-archive");
    try {
      const what = `open oci-archive ${file}`;
      const header = index.resolveFile("oci-layout");
      if (!header) throw new InvalidError(`${what}: not an OCI archive (no oci-layout member)`);
      let ver: unknown;
      try {
        ver = (parseJsonStrict(readMember(fd, header, MAX_HEADER, "oci-layout").toString("utf8")) as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
      } catch (e) {
        throw e instanceof InvalidError ? addContext(what, e) : new InvalidError(`${what}: oci-layout: ${(e as Error).message}`);
      }
      if (ver !== "1.0.0") throw new UnsupportedError(`${what}: unsupported imageLayoutVersion ${JSON.stringify(ver)}`);
      if (!index.resolveFile("index.json")) throw new InvalidError(`${what}: missing index.json`);
      return new OciArchiveReader(file, fd, index);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }


  /** The member holding the blob, or undefined (the digest is checked). */
  private member(digest: string): TarMember | undefined {
    const d = parseDigest(digest);
    const i = d.indexOf(":");
    return this.index.resolveFile(`blobs/${d.slice(0, i)}/${d.slice(i + 1)}`, `blob ${d}`);
  }

  private need(digest: string): TarMember {
    const m = this.member(digest);
    if (!m) throw new NotFoundError(`blob ${digest}: not found in oci-archive ${this.path}`);
    return m;
  }

  /** index.json, strict as Layout.readIndex ("manifests": null reads as []). */
  readIndex(): ImageIndex {
    this.check();
    const m = this.index.resolveFile("index.json");
    if (!m) throw new InvalidError(`read index.json of oci-archive ${this.path}: missing`);
    return decodeIndexFile(readMember(this.fd, m, MAX_JSON_BLOB, `index.json of oci-archive ${this.path}`), `index.json of oci-archive ${this.path}`);
  }

  hasBlob(digest: string): boolean {
    this.check();
    return this.member(digest) !== undefined;
  }

  /** A whole small blob, verified; embedded `data` honoured as Layout.readBlob does. */
  readBlob(desc: Pick<Descriptor, "digest" | "size" | "data">, maxSize = MAX_JSON_BLOB): Buffer {
    this.check();
    const digest = checkSmallBlob(desc, maxSize);
    const embedded = embeddedData(desc);
    if (embedded) return embedded;
    const m = this.need(digest);
    return readVerified(this.fd, desc, { start: m.offset, limit: m.offset + m.size, maxSize });
  }

  /** A verified stream of the blob, read in place (never past its member). */
  async *getBlob(desc: Pick<Descriptor, "digest" | "size">, opts: BlobStreamOptions = {}): AsyncGenerator<Buffer> {
    this.check();
    const m = this.need(checkDescriptor(desc));
    yield* streamVerified(this.fd, desc, { start: m.offset, limit: m.offset + m.size, chunkSize: opts.chunkSize, releasable: opts.releasable });
  }



}

/** Options of the archive writers. */
export interface WriteArchiveOptions {
  /** where the temporary file goes when it is on the destination's filesystem (else beside it) */
  tmpdir?: string;
  /** told about every byte written */
  onBytes?: (n: number) => void;
}

/**
 * Write the layout `layoutDir` as the oci-archive `file`: members `blobs/`, each `blobs/<alg>/`
 * and every file in it, then `index.json` and `oci-layout` (byte order of names, as skopeo's
 * walk writes them), with fixed metadata (uid/gid 0, no owner names, mtime 0, 0755/0644).
 * `.boci-tmp/` and the lock files are left out. Every blob is streamed from disk and, for
 * sha256 and sha512, hashed on the way: a blob whose bytes do not match its name is an
 * InvalidError. The layout is read by cas/layout-fs.ts's rules (no symlink followed, no FIFO
 * read): anything under `blobs/` that is not a real directory or a regular file is refused.
 * Atomic: a temporary file is renamed over `file` at the end; a failure leaves no file.
 */
export async function writeOciArchive(layoutDir: string, file: string, opts: WriteArchiveOptions = {}): Promise<void> {
  // Held shared while the blobs are listed and copied, so a concurrent gc cannot remove one.
  const layout = Layout.open(layoutDir);
  try {
    layout.lockGc("sh", { optional: true });
    await writeLayoutTar(layoutDir, file, opts);
  } finally {
    layout.close();
  }
}

async function writeLayoutTar(layoutDir: string, file: string, opts: WriteArchiveOptions): Promise<void> {
  const what = `write oci-archive ${file}`;
  // The members, listed before the temporary file exists (a bad layout writes nothing).
  const algs: { alg: string; names: string[] }[] = [];
  if (checkLayoutDir(layoutDir, "blobs")) {
    for (const alg of fs.readdirSync(path.join(layoutDir, "blobs")).sort(byteOrder)) {
      const rel = `blobs/${alg}`;
      const st = lstatOrNull(path.join(layoutDir, rel));
      if (!st) continue;
      if (!st.isDirectory()) throw addContext(what, notA(rel, "directory", st));
      const names = fs.readdirSync(path.join(layoutDir, rel)).sort(byteOrder);
      for (const n of names) {
        const fst = lstatOrNull(path.join(layoutDir, rel, n));
        if (fst && !fst.isFile()) throw addContext(what, notA(`${rel}/${n}`, "regular file", fst));
      }
      algs.push({ alg, names });
    }
  }
  const out = createTarFileWriter(file, opts);
  try {
    await out.addDir("blobs/");
    for (const { alg, names } of algs) {
      await out.addDir(`blobs/${alg}/`);
      for (const n of names) await addLayoutFile(out, layoutDir, `blobs/${alg}/${n}`, hashFor(alg, n));
    }
    for (const n of ["index.json", "oci-layout"]) await addLayoutFile(out, layoutDir, n, null);
    await out.commit();
  } catch (e) {
    out.abort();
    throw addContext(what, e);
  }
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** The hash a blob name is checked against, or null for an algorithm we do not check. */
function hashFor(alg: string, name: string): { alg: "sha256" | "sha512"; hex: string } | null {
  if (alg === "sha256" && /^[a-f0-9]{64}$/.test(name)) return { alg, hex: name };
  if (alg === "sha512" && /^[a-f0-9]{128}$/.test(name)) return { alg, hex: name };
  return null;
}

async function addLayoutFile(out: ReturnType<typeof createTarFileWriter>, root: string, rel: string, hash: { alg: "sha256" | "sha512"; hex: string } | null): Promise<void> {
  const f = openLayoutFile(root, rel);
  if (!f) throw new InvalidError(`layout ${root}: ${rel} disappeared`);
  try {
    const h = hash ? new Bun.CryptoHasher(hash.alg) : null;
    await out.addStream(rel, f.size, readChunks(f.fd, f.size), (c) => h?.update(c));
    if (h && hash) {
      const got = h.digest("hex");
      if (got !== hash.hex) throw new InvalidError(`layout ${root}: blob ${hash.alg}:${hash.hex} is corrupt (its bytes hash to ${hash.alg}:${got})`);
    }
  } finally {
    fs.closeSync(f.fd);
  }
}

/** The file's bytes in 1 MiB chunks, at most `size` of them (a file that grew is cut, then refused by the size check). */
async function* readChunks(fd: number, size: number): AsyncGenerator<Buffer> {
  let pos = 0;
  for (;;) {
    const want = Math.min(1 << 20, size + 1 - pos);
    if (want <= 0) break;
    const buf = Buffer.allocUnsafe(want);
    const n = await new Promise<number>((resolve, reject) => fs.read(fd, buf, 0, want, pos, (e, r) => (e ? reject(e) : resolve(r))));
    if (n === 0) break;
    pos += n;
    yield n === want ? buf : buf.subarray(0, n);
  }
}
