/**
 * Build layer tars and OCI images in code (no binary fixtures). The tar builder writes USTAR
 * headers by hand so that it can produce hostile archives: arbitrary names and link names,
 * any typeflag, raw PAX records (binary xattr values, bad lengths), bad checksums, truncation.
 */
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import * as zlib from "node:zlib";

export const BLOCK = 512;

export type Bytes = string | Buffer;

export interface TarEntrySpec {
  /** Entry name (raw bytes allowed). Names that do not fit the 100-byte field go into a PAX `path` record unless `noPax` is set (then they are truncated). */
  name: Bytes;
  /** Typeflag: a single character ("0", "5", "S", "Z", ...) or a byte. Default "0". */
  type?: string | number;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: Bytes;
  devmajor?: number;
  devminor?: number;
  /** File body; `size` defaults to its length. */
  body?: Bytes;
  /** Override the size field (the body written is still `body`). */
  size?: number;
  /** Extra PAX records (key → value, values may be binary). */
  pax?: Record<string, Bytes>;
  /** Raw PAX header body, written verbatim (for malformed records). */
  rawPax?: Buffer;
  /** Corrupt the header checksum. */
  badChecksum?: boolean;
  /** Never write a PAX header for a long name/linkname (truncate instead). */
  noPax?: boolean;
  uname?: string;
  gname?: string;
}

const buf = (b: Bytes | undefined): Buffer => (b === undefined ? Buffer.alloc(0) : typeof b === "string" ? Buffer.from(b, "utf8") : b);

function octal(h: Buffer, off: number, len: number, n: number): void {
  const s = n.toString(8).padStart(len - 1, "0");
  if (s.length > len - 1) throw new Error(`tar builder: ${n} does not fit ${len} octal bytes`);
  h.write(s, off, "ascii");
  h[off + len - 1] = 0;
}

/** A raw 512-byte USTAR header. */
export function tarHeader(e: {
  name: Buffer; type: number; mode: number; uid: number; gid: number; size: number; mtime: number;
  linkname: Buffer; devmajor: number; devminor: number; uname?: string; gname?: string; prefix?: Buffer; badChecksum?: boolean;
}): Buffer {
  const h = Buffer.alloc(BLOCK);
  e.name.copy(h, 0, 0, Math.min(100, e.name.length));
  octal(h, 100, 8, e.mode);
  octal(h, 108, 8, e.uid);
  octal(h, 116, 8, e.gid);
  octal(h, 124, 12, e.size);
  octal(h, 136, 12, e.mtime);
  h[156] = e.type;
  e.linkname.copy(h, 157, 0, Math.min(100, e.linkname.length));
  h.write("ustar\0", 257, "ascii");
  h.write("00", 263, "ascii");
  h.write(e.uname ?? "", 265, "ascii");
  h.write(e.gname ?? "", 297, "ascii");
  octal(h, 329, 8, e.devmajor);
  octal(h, 337, 8, e.devminor);
  if (e.prefix) e.prefix.copy(h, 345, 0, Math.min(155, e.prefix.length));
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  if (e.badChecksum) sum += 7;
  h.write(sum.toString(8).padStart(6, "0"), 148, "ascii");
  h[154] = 0;
  h[155] = 0x20;
  return h;
}

function pad(b: Buffer): Buffer {
  const r = b.length % BLOCK;
  return r === 0 ? b : Buffer.concat([b, Buffer.alloc(BLOCK - r)]);
}

/** One PAX record "<len> key=value\n" (len counts the whole record). */
export function paxRecord(key: string, value: Bytes): Buffer {
  const kv = Buffer.concat([Buffer.from(` ${key}=`, "utf8"), buf(value), Buffer.from("\n")]);
  let len = kv.length + 1;
  while (String(len).length + kv.length !== len) len = String(len).length + kv.length;
  return Buffer.concat([Buffer.from(String(len)), kv]);
}

function typeByte(t: string | number | undefined): number {
  if (t === undefined) return 0x30;
  return typeof t === "number" ? t : t.charCodeAt(0);
}

/** The blocks for one entry (PAX header if needed, header, padded body). */
export function tarEntry(e: TarEntrySpec): Buffer {
  const name = buf(e.name);
  const linkname = buf(e.linkname);
  const body = buf(e.body);
  const out: Buffer[] = [];
  const records: Buffer[] = [];
  if (!e.noPax) {
    if (name.length > 100) records.push(paxRecord("path", name));
    if (linkname.length > 100) records.push(paxRecord("linkpath", linkname));
  }
  for (const [k, v] of Object.entries(e.pax ?? {})) records.push(paxRecord(k, v));
  const paxBody = e.rawPax ?? (records.length ? Buffer.concat(records) : null);
  if (paxBody) {
    out.push(tarHeader({ name: Buffer.from("PaxHeaders.0/x"), type: 0x78, mode: 0o644, uid: 0, gid: 0, size: paxBody.length, mtime: 0, linkname: Buffer.alloc(0), devmajor: 0, devminor: 0 }));
    out.push(pad(paxBody));
  }
  out.push(tarHeader({
    name: name.length > 100 ? name.subarray(0, 100) : name,
    type: typeByte(e.type), mode: e.mode ?? (typeByte(e.type) === 0x35 ? 0o755 : 0o644),
    uid: e.uid ?? 0, gid: e.gid ?? 0, size: e.size ?? body.length, mtime: e.mtime ?? 1000000000,
    linkname: linkname.length > 100 ? linkname.subarray(0, 100) : linkname,
    devmajor: e.devmajor ?? 0, devminor: e.devminor ?? 0, uname: e.uname, gname: e.gname, badChecksum: e.badChecksum,
  }));
  if (body.length) out.push(pad(body));
  return Buffer.concat(out);
}

/** A complete tar (entries + two zero blocks). */
export function makeTar(entries: TarEntrySpec[], opts: { noEnd?: boolean } = {}): Buffer {
  const parts = entries.map(tarEntry);
  if (!opts.noEnd) parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

// Shorthand entry constructors.
export const dir = (name: Bytes, o: Partial<TarEntrySpec> = {}): TarEntrySpec => ({ name, type: "5", mode: 0o755, ...o });
export const file = (name: Bytes, body: Bytes = "", o: Partial<TarEntrySpec> = {}): TarEntrySpec => ({ name, type: "0", body, ...o });
export const symlink = (name: Bytes, target: Bytes, o: Partial<TarEntrySpec> = {}): TarEntrySpec => ({ name, type: "2", linkname: target, mode: 0o777, ...o });
export const hardlink = (name: Bytes, target: Bytes, o: Partial<TarEntrySpec> = {}): TarEntrySpec => ({ name, type: "1", linkname: target, ...o });
export const whiteout = (name: Bytes, o: Partial<TarEntrySpec> = {}): TarEntrySpec => ({ name, type: "0", mode: 0, mtime: 0, ...o });

export function sha256hex(b: Uint8Array): string {
  const h = new Bun.CryptoHasher("sha256");
  h.update(b);
  return h.digest("hex");
}

export type Compress = "gzip" | "zstd" | "none";

export function compress(b: Buffer, c: Compress): Buffer {
  if (c === "gzip") return zlib.gzipSync(b);
  if (c === "zstd") return Buffer.from(zlib.zstdCompressSync(b));
  return b;
}

export const MT = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar",
};

export function layerMediaType(c: Compress): string {
  return MT.layer + (c === "gzip" ? "+gzip" : c === "zstd" ? "+zstd" : "");
}

export interface Descriptor { mediaType: string; digest: string; size: number; annotations?: Record<string, string>; platform?: { os: string; architecture: string; variant?: string } }

/** Write a blob into layout/blobs/sha256 and return its descriptor. */
export function writeBlob(layout: string, data: Buffer, mediaType: string): Descriptor {
  const hex = sha256hex(data);
  mkdirSync(join(layout, "blobs", "sha256"), { recursive: true });
  writeFileSync(join(layout, "blobs", "sha256", hex), data);
  return { mediaType, digest: `sha256:${hex}`, size: data.length };
}

export interface MakeImageOptions {
  compress?: Compress;
  /** Per-layer compression (overrides `compress`). */
  compressEach?: Compress[];
  /** Image config fields merged over the default (os/architecture/config/rootfs). */
  config?: Record<string, unknown>;
  /** Override rootfs.diff_ids (to test mismatches). */
  diffIds?: string[];
  /** Replace a layer's stored blob bytes after compression (the descriptor matches these bytes). */
  rawBlobs?: (Buffer | undefined)[];
  /** Media type override per layer. */
  mediaTypes?: (string | undefined)[];
  architecture?: string;
  /** Don't tag: just return the manifest descriptor. */
  noTag?: boolean;
}

export interface MadeImage { manifest: Descriptor; config: Descriptor; layers: Descriptor[]; diffIds: string[] }

export function hostArch(): string {
  return process.arch === "x64" ? "amd64" : process.arch === "ia32" ? "386" : process.arch;
}

/**
 * Write an image (layers, config, manifest) into an existing layout (made with `boci init`) and
 * tag it in index.json (replacing an existing tag of that name).
 */
export function makeImage(layout: string, tag: string, layers: Buffer[], opts: MakeImageOptions = {}): MadeImage {
  const diffIds = layers.map((l) => `sha256:${sha256hex(l)}`);
  const layerDescs = layers.map((l, i) => {
    const c = opts.compressEach?.[i] ?? opts.compress ?? "gzip";
    const data = opts.rawBlobs?.[i] ?? compress(l, c);
    return writeBlob(layout, data, opts.mediaTypes?.[i] ?? layerMediaType(c));
  });
  const cfg = {
    created: "2020-01-01T00:00:00Z",
    architecture: opts.architecture ?? hostArch(),
    os: "linux",
    config: {},
    ...(opts.config ?? {}),
    rootfs: { type: "layers", diff_ids: opts.diffIds ?? diffIds },
  };
  const configDesc = writeBlob(layout, Buffer.from(JSON.stringify(cfg)), MT.config);
  const manifest = { schemaVersion: 2, mediaType: MT.manifest, config: configDesc, layers: layerDescs };
  const manifestDesc = writeBlob(layout, Buffer.from(JSON.stringify(manifest)), MT.manifest);
  if (!opts.noTag) setTag(layout, tag, manifestDesc);
  return { manifest: manifestDesc, config: configDesc, layers: layerDescs, diffIds };
}

/** Point `tag` at `desc` in index.json (replacing any entry with that tag). */
export function setTag(layout: string, tag: string, desc: Descriptor): void {
  const p = join(layout, "index.json");
  const ix = JSON.parse(readFileSync(p, "utf8"));
  ix.manifests = (ix.manifests ?? []).filter((m: Descriptor) => m.annotations?.["org.opencontainers.image.ref.name"] !== tag);
  ix.manifests.push({ ...desc, annotations: { ...(desc.annotations ?? {}), "org.opencontainers.image.ref.name": tag } });
  writeFileSync(p, JSON.stringify(ix));
}

/** A multi-platform image index blob over the given manifests (each with a platform), tagged. */
export function makeIndex(layout: string, tag: string, manifests: Descriptor[]): Descriptor {
  const ix = { schemaVersion: 2, mediaType: MT.index, manifests };
  const d = writeBlob(layout, Buffer.from(JSON.stringify(ix)), MT.index);
  setTag(layout, tag, d);
  return d;
}

/** Overwrite a stored blob's bytes in place (digest no longer matches). */
export function corruptBlob(layout: string, d: Descriptor, bytes: Buffer): void {
  writeFileSync(join(layout, "blobs", ...d.digest.split(":")), bytes);
}
