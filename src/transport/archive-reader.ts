/**
 * What the archive readers (oci-archive.ts, docker-archive.ts) share: the archive's one open
 * descriptor, which every read goes through at a member's offset, its closing, and the parts of
 * a BlobReader that do not depend on the format.
 */
import * as fs from "node:fs";
import type { Descriptor, ImageIndex } from "../image";
import { type BlobReader, type BlobStreamOptions, type JsonKind, decodeJsonBlob } from "../cas/source";

export abstract class ArchiveReader implements BlobReader {
  private closed = false;

  protected constructor(readonly path: string, protected readonly fd: number, private readonly kind: string) {}

  abstract readIndex(): ImageIndex;
  abstract hasBlob(digest: string): boolean;
  abstract readBlob(desc: Pick<Descriptor, "digest" | "size" | "data">, maxSize?: number): Buffer;
  abstract getBlob(desc: Pick<Descriptor, "digest" | "size">, opts?: BlobStreamOptions): AsyncGenerator<Buffer>;

  /** Refuses a read after close() (a programming error, not bad input). */
  protected check(): void {
    if (this.closed) throw new Error(`${this.kind} ${this.path}: reader already closed`);
  }

  readJson<T>(desc: Descriptor, kind: JsonKind): T {
    return decodeJsonBlob<T>(this.readBlob(desc), desc, kind);
  }

  /** Nothing can collect an archive's blobs. */
  lockGc(): void {}

  /** Close the archive (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }
}
