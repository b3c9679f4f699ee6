/**
 * `validate`: check a whole OCI layout (or the images one tag names) and collect EVERY problem
 * instead of stopping at the first (umoci issue #361). Spec: image-spec image-layout.md,
 * descriptor.md, manifest.md, image-index.md, config.md, layer.md; docs/oci-reference.md §1–3.
 *
 * What is checked:
 *  - `oci-layout` (JSON object, imageLayoutVersion "1.0.0"), `index.json` (strict JSON, image
 *    index shape; `"manifests": null` as umoci 0.4.7 writes it is accepted), `blobs/`;
 *  - every blob reachable from index.json (nested indexes, manifests, configs, layers): present,
 *    size and digest as the descriptor says (an embedded `data` field is checked too);
 *  - JSON shape of indexes, manifests and configs (image/validate.ts), media types (descriptor vs
 *    the blob's own `mediaType`, the manifest's config type, known layer types); Docker schema-2
 *    manifests, manifest lists, configs and layer types are valid as OCI ones are, a Docker
 *    schema-1 manifest only warned about (legal in an index; boci does not read it);
 *  - one diff_id per layer; each layer decompresses, its uncompressed sha256 equals its diffID,
 *    and its tar is well formed, with no absolute, root-escaping or bare `.wh.` names;
 *  - (whole-layout mode) files under blobs/ whose names are not digests (stray temp files), and
 *    unreferenced blobs whose bytes do not hash to their names;
 *  - hostile names (layout-fs.ts): a symlinked `blobs/`, `blobs/<alg>`, `.boci-tmp`, blob, lock
 *    file, `index.json` or `oci-layout`, or a FIFO/device/directory where a file belongs, is a
 *    problem; nothing is followed, and nothing that could block is opened.
 *
 * The traversal is the shared descriptor walk (walk.ts) that gc marks with: each index and
 * manifest is checked once however many routes lead to it, any depth is followed, and the report
 * says whether the walk is `complete` (every reachable index and manifest read and valid, every
 * other reachable blob present). gc removes nothing unless it is.
 *
 * Warnings (reported, but the layout is still valid): a `subject` absent from the layout (the
 * image-spec allows it; gc skips it), duplicate tag names, unverifiable digest
 * algorithms, absent blobs that carry `urls`, trailing data after a gzip stream, a layer whose
 * compression differs from its media type, index platform vs config platform, history entries
 * that do not pair with the layers, stale temporary files (in `.boci-tmp/`, `.tmp-index.json-*`;
 * gc removes them).
 *
 * Memory stays flat: a layer is streamed once, file → (raw sha256) → decompressor → (diffID
 * sha256) → tar reader, bodies drained. Blobs are read with a local verifying reader rather than
 * `Layout.getBlob`, because a validator needs every fact about a bad blob (its real size and
 * digest, and whether the decompressor failed because the blob is corrupt) rather than the first
 * error; the blob is always read to its end even when the decompressor gives up early.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Transform } from "node:stream";
import { BociError, InvalidError, NotFoundError } from "../errors";
import {
  type Descriptor, MediaType, AnnotationRefName, isDigest, splitDigest,
  isDockerSchema1MediaType, layerKind, validateIndex, validateManifest, validateConfig, validateDescriptor,
} from "../image";
import { createDecompressor, sniffCompression, type Compression } from "../compress";
import { readTar, type TarHeader } from "../tar";
import { parseJsonStrict } from "../util/json";
import { takeLock, GC_LOCK, INDEX_LOCK, type HeldLock } from "../cas/lock";
import { TMP_DIR } from "../cas/layout";
import { MAX_JSON_BLOB } from "../cas/source";
import { checkLayoutDir, fileTypeName, layoutOwner, lstatOrNull, notA, openLayoutFile, readFd, readLayoutFile, readUpTo } from "../cas/layout-fs";
import { DescriptorWalk, type WalkChild, type WalkNode } from "../cas/walk";

/** One finding: where (a file, or a digest with the route it was reached by) and what. */
export interface ValidationProblem { path: string; message: string }

export interface ValidationReport {
  /** True when there are no problems (warnings do not count). */
  valid: boolean;
  /**
   * True when the descriptor walk gc marks with is complete: every reachable index and manifest
   * was read and is valid, every other reachable blob is present. gc refuses to run otherwise.
   */
  complete: boolean;
  problems: ValidationProblem[];
  warnings: ValidationProblem[];
  /** Distinct blobs read, manifests parsed, layers streamed, tar entries read. */
  checked: { blobs: number; manifests: number; layers: number; entries: number };
}

export interface ValidateLayoutOptions {
  /** Check only the images this tag names (all of a multi-platform index), not the whole layout. */
  tag?: string;
  /** Called as each layer is about to be streamed (for progress logging). */
  onLayer?: (digest: string, where: string) => void;
  /** Tar-entry findings reported per layer before the rest are summarised in one line (default 20). */
  maxEntryProblemsPerLayer?: number;
}

const CHUNK = 1 << 20;
/** Largest `oci-layout` file read. */
const MAX_HEADER = 64 * 1024;
/** A decoder making no progress for this long is treated as stalled. */
const STALL_MS = 60_000;

const errMsg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

interface BlobFacts { size: number; digest: string }

interface LayerFacts {
  /** sha256 of the uncompressed stream, when it decompressed and parsed fully. */
  diffID: string | null;
  /** The blob's bytes do not match its descriptor digest: content checks were skipped. */
  corrupt: boolean;
}

/**
 * Validate the layout at `layoutPath`. Never throws for a problem in the layout itself (those are
 * collected in the report); throws NotFoundError when `layoutPath` is not a directory, holds no
 * `oci-layout` file, or (with `tag`) the tag is not in index.json.
 */
export async function validateLayout(layoutPath: string, opts: ValidateLayoutOptions = {}): Promise<ValidationReport> {
  const v = new Validator(layoutPath, opts);
  return v.run();
}

/** Lexical checks on a tar entry's name (and a hardlink's target); null when fine. */
export function tarNameProblem(h: Pick<TarHeader, "name" | "type" | "linkname">): string | null {
  const own = pathProblem(h.name, "entry");
  if (own) return own;
  const parts = h.name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.length === 0 && h.type !== "dir") return `root entry ${JSON.stringify(h.name)} is a ${h.type}, not a directory`;
  if (parts[parts.length - 1] === ".wh.") return `entry ${JSON.stringify(h.name)} is a bare whiteout ".wh."`;
  if (h.type === "link") {
    const link = pathProblem(h.linkname, "hardlink target");
    if (link) return `entry ${JSON.stringify(h.name)}: ${link}`;
  }
  return null;
}

function pathProblem(name: string, what: string): string | null {
  if (name.startsWith("/")) return `${what} ${JSON.stringify(name)} is an absolute path`;
  let depth = 0;
  for (const p of name.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (--depth < 0) return `${what} ${JSON.stringify(name)} escapes the root with ".."`;
    } else depth++;
  }
  return null;
}

class Validator {
  private readonly problems: ValidationProblem[] = [];
  private readonly warnings: ValidationProblem[] = [];
  private readonly checked = { blobs: 0, manifests: 0, layers: 0, entries: 0 };
  /** Facts about each blob file read (by digest). */
  private readonly blobFacts = new Map<string, BlobFacts | null>();
  /** Parsed JSON by `${kind} ${digest}` (null when unusable); problems reported on first visit. */
  private readonly parsed = new Map<string, unknown>();
  private readonly layers = new Map<string, LayerFacts>();
  private readonly maxEntryProblems: number;
  /** Per `blobs/<alg>` directory: usable (a real directory or absent) or not (reported once). */
  private readonly algDirs = new Map<string, boolean>();
  /** The walk of this run (roots: the index.json entries checked). */
  private walk = new DescriptorWalk([]);
  /** Reasons the walk is incomplete that are not a node of it (index.json, blobs/). */
  private walkBlocked = false;

  constructor(private readonly root: string, private readonly opts: ValidateLayoutOptions) {
    this.maxEntryProblems = opts.maxEntryProblemsPerLayer ?? 20;
  }

  private problem(where: string, message: string): void {
    this.problems.push({ path: where, message });
  }

  private warn(where: string, message: string): void {
    this.warnings.push({ path: where, message });
  }

  async run(): Promise<ValidationReport> {
    let st: fs.Stats;
    try { st = fs.statSync(this.root); } catch { throw new NotFoundError(`validate ${this.root}: no such directory`); }
    if (!st.isDirectory()) throw new NotFoundError(`validate ${this.root}: not a directory`);
    if (!lstatOrNull(path.join(this.root, "oci-layout"))) throw new NotFoundError(`validate ${this.root}: not an OCI layout (no oci-layout file)`);

    let lock: HeldLock | null = null;
    try {
      // Shared gc lock so a concurrent gc does not make blobs vanish mid-check; optional so a
      // read-only layout can still be validated.
      // A lock file made as root gets the layout's owner, as everything boci creates there.
      lock = takeLock(this.root, GC_LOCK, "sh", { optional: true, owner: layoutOwner(this.root) });
    } catch (e) {
      if (e instanceof InvalidError) this.problem(GC_LOCK, e.message);
      else if (e instanceof BociError) this.warn(this.root, `could not take the gc lock: ${e.message}`);
      else throw e;
    }
    try {
      await this.check();
    } finally {
      lock?.release();
    }
    const complete = this.walk.complete && !this.walkBlocked;
    // A walk gc would refuse is always said, even when nothing else was found.
    if (this.problems.length === 0 && !complete) this.warn("index.json", "the descriptor walk is incomplete (gc will refuse to remove anything)");
    return { valid: this.problems.length === 0, complete, problems: this.problems, warnings: this.warnings, checked: this.checked };
  }

  private async check(): Promise<void> {
    this.checkHeader();
    const blobsOk = this.checkBlobsDir();
    const before = this.problems.length;
    const entries = this.readIndexJson();
    // gc reads index.json strictly: any problem in it means gc would not walk at all.
    if (entries === null || this.problems.length > before) this.walkBlocked = true;
    if (entries === null) {
      if (this.opts.tag !== undefined) throw new NotFoundError(`tag ${JSON.stringify(this.opts.tag)} not found (index.json is unreadable)`);
      if (blobsOk) await this.scanBlobs();
      this.checkTempFiles();
      return;
    }
    this.checkDuplicateTags(entries);
    const tag = this.opts.tag;
    const roots: WalkChild[] = [];
    for (const [i, d] of entries.entries()) {
      const name = refNameOf(d);
      if (tag !== undefined && name !== tag) continue;
      // Malformed entries were reported with index.json; there is nothing to follow.
      if (!d || typeof d !== "object" || validateDescriptor(d, "descriptor").length) { this.walkBlocked = true; continue; }
      roots.push({ desc: d, where: `index.json manifests[${i}]${name !== undefined ? ` ${JSON.stringify(name)}` : ""}` });
    }
    if (tag !== undefined && roots.length === 0 && !entries.some((d) => refNameOf(d) === tag)) throw new NotFoundError(`tag ${JSON.stringify(tag)} not found`);
    if (blobsOk) await this.runWalk(roots);
    else if (roots.length) this.walkBlocked = true;
    if (tag === undefined && blobsOk) await this.scanBlobs();
    if (tag === undefined) this.checkTempFiles();
  }

  /** Drive the shared walk: each index and manifest once, in depth-first order. */
  private async runWalk(roots: WalkChild[]): Promise<void> {
    this.walk = new DescriptorWalk(roots);
    for (let n = this.walk.next(); n; n = this.walk.next()) {
      if (n.kind === "index") await this.visitIndex(n);
      else if (n.kind === "manifest") await this.visitManifest(n);
      // Unknown media types (artifacts, signatures) are legal in an index: check only the bytes.
      else {
        if (isDockerSchema1MediaType(n.desc?.mediaType))
          this.warn(`${n.desc.digest} (${n.where})`, `docker schema 1 manifest (${n.desc.mediaType}): not supported by boci, only its bytes were checked`);
        await this.visitOpaque(n.desc, n.where);
      }
    }
  }

  /** Mark the walk incomplete because of `d` (the problem itself has been reported). */
  private incomplete(d: Descriptor, where: string, message: string, missing = false): void {
    this.walk.fail({ digest: typeof d?.digest === "string" ? d.digest : "", where, message, missing });
  }

  private checkHeader(): void {
    let obj: unknown;
    let bytes: Buffer | null;
    try {
      bytes = readLayoutFile(this.root, "oci-layout", MAX_HEADER);
    } catch (e) {
      this.problem("oci-layout", errMsg(e));
      return;
    }
    if (!bytes) { this.problem("oci-layout", "missing"); return; }
    try {
      obj = parseJsonStrict(bytes.toString("utf8"));
    } catch (e) {
      this.problem("oci-layout", `invalid JSON: ${errMsg(e)}`);
      return;
    }
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) { this.problem("oci-layout", "must be a JSON object"); return; }
    const ver = (obj as { imageLayoutVersion?: unknown }).imageLayoutVersion;
    if (ver !== "1.0.0") this.problem("oci-layout", `imageLayoutVersion must be "1.0.0", got ${JSON.stringify(ver)}`);
  }

  private checkBlobsDir(): boolean {
    try {
      if (checkLayoutDir(this.root, "blobs")) return true;
      this.problem("blobs", "missing blobs directory");
    } catch (e) {
      this.problem("blobs", errMsg(e));
    }
    return false;
  }

  /** Whether `blobs/<alg>` may be read through: a real directory, or absent (blobs then missing). */
  private algDirOk(alg: string): boolean {
    let ok = this.algDirs.get(alg);
    if (ok === undefined) {
      try {
        checkLayoutDir(this.root, `blobs/${alg}`);
        ok = true;
      } catch (e) {
        this.problem(`blobs/${alg}`, errMsg(e));
        ok = false;
      }
      this.algDirs.set(alg, ok);
    }
    return ok;
  }

  /** Lock files must be regular files; stale temporary files are warned about (gc removes them). */
  private checkTempFiles(): void {
    const st = lstatOrNull(path.join(this.root, INDEX_LOCK));
    if (st && !st.isFile()) this.problem(INDEX_LOCK, notA(INDEX_LOCK, "regular file", st).message);
    const stale = "stale temporary file, unless a writer is running now (gc removes it)";
    const tmp = lstatOrNull(path.join(this.root, TMP_DIR));
    if (tmp && !tmp.isDirectory()) {
      this.problem(TMP_DIR, `${notA(TMP_DIR, "directory", tmp).message}; boci refuses to write through it`);
    } else if (tmp) {
      let names: string[] = [];
      try { names = fs.readdirSync(path.join(this.root, TMP_DIR)).sort(); } catch (e) { this.problem(TMP_DIR, `read directory: ${errMsg(e)}`); }
      for (const n of names) {
        const t = lstatOrNull(path.join(this.root, TMP_DIR, n));
        if (!t) continue;
        if (t.isFile() || t.isDirectory()) this.warn(`${TMP_DIR}/${n}`, stale);
        else this.warn(`${TMP_DIR}/${n}`, `unexpected ${fileTypeName(t).replace(/^an? /, "")} (gc leaves it alone)`);
      }
    }
    let top: string[] = [];
    try { top = fs.readdirSync(this.root).sort(); } catch { /* reported elsewhere */ }
    for (const n of top) if (n.startsWith(".tmp-index.json-")) this.warn(n, stale);
  }

  /** index.json's top-level descriptors (only the well-formed ones), or null when unusable. */
  private readIndexJson(): Descriptor[] | null {
    let obj: unknown;
    let bytes: Buffer | null;
    try {
      bytes = readLayoutFile(this.root, "index.json", MAX_JSON_BLOB);
    } catch (e) {
      this.problem("index.json", errMsg(e));
      return null;
    }
    if (!bytes) { this.problem("index.json", "missing"); return null; }
    try {
      obj = parseJsonStrict(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch (e) {
      this.problem("index.json", `invalid JSON: ${errMsg(e)}`);
      return null;
    }
    for (const v of validateIndex(obj, "index.json", [], { allowNullManifests: true })) this.problem("index.json", v);
    const ix = obj as { mediaType?: unknown; manifests?: unknown };
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) return null;
    if (ix.manifests === null) return [];
    if (!Array.isArray(ix.manifests)) return null;
    // Malformed entries were reported above; keep their positions so paths name the right index.
    return ix.manifests as Descriptor[];
  }

  private checkDuplicateTags(entries: Descriptor[]): void {
    const counts = new Map<string, number>();
    for (const d of entries) {
      const n = refNameOf(d);
      if (n !== undefined) counts.set(n, (counts.get(n) ?? 0) + 1);
    }
    for (const [name, c] of counts) {
      if (c > 1 && (this.opts.tag === undefined || this.opts.tag === name))
        this.warn("index.json", `tag ${JSON.stringify(name)} names ${c} entries (resolving it is ambiguous)`);
    }
  }

  private blobRel(digest: string): string {
    const [alg, enc] = splitDigest(digest);
    return `blobs/${alg}/${enc}`;
  }

  /**
   * Per-descriptor checks common to every blob: a sane descriptor, a verifiable algorithm, the
   * blob present (a regular file, by lstat: a symlink is not followed) with the size the
   * descriptor says. Returns false when the content cannot be read (the problem has been
   * reported, and the walk marked incomplete where gc would refuse). `leaf`: a config, layer or
   * other blob without children, for which presence is all the walk needs.
   */
  private checkPresence(d: Descriptor, where: string, opts: { leaf: boolean }): "file" | "data" | false {
    // Shape problems were reported by the parent's validator; just refuse to follow them.
    if (!d || typeof d !== "object" || validateDescriptor(d, "descriptor").length) {
      this.incomplete(d, where, "malformed descriptor");
      return false;
    }
    const [alg, enc] = splitDigest(d.digest);
    const at = `${d.digest} (${where})`;
    if (!this.algDirOk(alg)) { this.incomplete(d, where, `blobs/${alg} is unusable`); return false; }
    let st: fs.Stats | null;
    try {
      st = lstatOrNull(path.join(this.root, "blobs", alg, enc));
    } catch (e) {
      this.problem(at, `read blob: ${errMsg(e)}`);
      this.incomplete(d, where, errMsg(e));
      return false;
    }
    const external = typeof d.data === "string" || (d.urls !== undefined && d.urls.length > 0);
    if (st && !st.isFile()) {
      this.problem(at, st.isSymbolicLink() ? "blob is a symlink (not followed)" : `blob path is not a regular file (it is ${fileTypeName(st)})`);
      this.incomplete(d, where, "not a regular file");
      return false;
    }
    if (alg !== "sha256") {
      this.warn(at, `cannot verify digest algorithm ${alg}; blob not checked`);
      if (!opts.leaf) this.incomplete(d, where, `unverifiable digest algorithm ${alg}`);
      else if (!st && !external) { this.problem(at, "blob missing"); this.incomplete(d, where, "blob missing", true); }
      return false;
    }
    if (typeof d.data === "string") {
      const bytes = Buffer.from(d.data, "base64");
      const got = sha256(bytes);
      if (bytes.length !== d.size) this.problem(at, `embedded data is ${bytes.length} bytes, descriptor says ${d.size}`);
      else if (got !== d.digest) this.problem(at, `embedded data digest mismatch: got ${got}`);
    }
    if (!st) {
      if (typeof d.data === "string") return "data";
      if (d.urls && d.urls.length) {
        this.warn(at, `blob not in the layout (it lists urls for an external copy); not checked`);
        if (!opts.leaf) this.incomplete(d, where, "blob not in the layout");
        return false;
      }
      this.problem(at, "blob missing");
      this.incomplete(d, where, "blob missing", true);
      return false;
    }
    if (st.size !== d.size) this.problem(at, `size mismatch: descriptor says ${d.size} bytes, blob has ${st.size}`);
    return "file";
  }

  /** Report a digest mismatch once per blob (by the route first seen); true when the bytes match. */
  private recordFacts(d: Descriptor, where: string, facts: BlobFacts): boolean {
    const first = !this.blobFacts.has(d.digest);
    this.blobFacts.set(d.digest, facts);
    if (first) this.checked.blobs++;
    if (facts.digest !== d.digest) {
      if (first) this.problem(`${d.digest} (${where})`, `digest mismatch: blob content hashes to ${facts.digest}`);
      return false;
    }
    return true;
  }

  private async visitOpaque(d: Descriptor, where: string): Promise<void> {
    const how = this.checkPresence(d, where, { leaf: true });
    if (how !== "file") return;
    if (this.blobFacts.has(d.digest)) {
      const f = this.blobFacts.get(d.digest);
      if (f && f.digest !== d.digest) this.problem(`${d.digest} (${where})`, `digest mismatch: blob content hashes to ${f.digest}`);
      return;
    }
    try {
      this.recordFacts(d, where, await hashFile(this.root, this.blobRel(d.digest)));
    } catch (e) {
      this.problem(`${d.digest} (${where})`, `read blob: ${errMsg(e)}`);
      this.blobFacts.set(d.digest, null);
    }
  }

  /** Read, verify and parse a JSON blob, reporting problems once per blob. Returns the object or null. */
  private readJsonBlob(d: Descriptor, where: string, kind: "index" | "manifest" | "config"): Record<string, unknown> | null {
    const key = `${kind} ${d.digest}`;
    const how = this.checkPresence(d, where, { leaf: kind === "config" });
    if (!how) return null;
    if (this.parsed.has(key)) return this.parsed.get(key) as Record<string, unknown> | null;
    this.parsed.set(key, null);
    const at = `${d.digest} (${where})`;
    let bytes: Buffer;
    if (how === "data") {
      bytes = Buffer.from(d.data!, "base64");
      if (bytes.length !== d.size || sha256(bytes) !== d.digest) return null;
    } else {
      try {
        const f = openLayoutFile(this.root, this.blobRel(d.digest));
        if (!f) { this.problem(at, "blob missing"); return null; }
        try {
          if (f.size > MAX_JSON_BLOB) {
            this.problem(at, `${kind} blob is ${f.size} bytes, over the ${MAX_JSON_BLOB}-byte limit for JSON blobs`);
            return null;
          }
          bytes = readUpTo(f.fd, MAX_JSON_BLOB);
        } finally { fs.closeSync(f.fd); }
      } catch (e) {
        this.problem(at, `read blob: ${errMsg(e)}`);
        return null;
      }
      if (!this.recordFacts(d, where, { size: bytes.length, digest: sha256(bytes) })) return null;
    }
    let obj: unknown;
    try {
      obj = parseJsonStrict(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch (e) {
      this.problem(at, `${kind} is not valid JSON: ${errMsg(e)}`);
      return null;
    }
    const violations = kind === "index" ? validateIndex(obj, kind) : kind === "manifest" ? validateManifest(obj, kind) : validateConfig(obj, kind);
    for (const v of violations) this.problem(at, v);
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) return null;
    const o = obj as Record<string, unknown>;
    // Media-type confusion (CVE-2021-41190): the blob's own type must agree with the descriptor's.
    if (kind !== "config" && o.mediaType !== undefined && o.mediaType !== d.mediaType && !violations.some((v) => v.startsWith(`${kind}.mediaType`)))
      this.problem(at, `${kind} media type ${JSON.stringify(o.mediaType)} does not match its descriptor's ${d.mediaType}`);
    this.parsed.set(key, o);
    return o;
  }

  private async visitIndex(n: WalkNode): Promise<void> {
    const { desc: d, where } = n;
    const before = this.problems.length;
    const ix = this.readJsonBlob(d, where, "index");
    // gc reads an index strictly: any problem with it leaves its children unknown to gc.
    if (!ix || this.problems.length > before) this.incomplete(d, where, "index unreadable or invalid");
    if (!ix) return;
    const kids: WalkChild[] = [];
    if (Array.isArray(ix.manifests)) {
      for (const [i, c] of (ix.manifests as Descriptor[]).entries())
        if (c && typeof c === "object") kids.push({ desc: c, where: `manifests[${i}] of index ${d.digest}` });
    }
    kids.push(...this.subjectChild(n, ix.subject, "index"));
    this.walk.expand(n, kids);
  }

  private async visitManifest(n: WalkNode): Promise<void> {
    const { desc: d, where } = n;
    const platform = d.platform;
    const before = this.problems.length;
    const m = this.readJsonBlob(d, where, "manifest");
    if (!m || this.problems.length > before) this.incomplete(d, where, "manifest unreadable or invalid");
    if (!m) return;
    this.checked.manifests++;
    // A subject is followed as gc follows it (to keep a referrer's subject alive).
    this.walk.expand(n, this.subjectChild(n, m.subject, "manifest"));
    const at = `${d.digest} (${where})`;
    const configDesc = m.config as Descriptor | undefined;
    const layers = Array.isArray(m.layers) ? (m.layers as Descriptor[]) : [];
    const artifact = typeof m.artifactType === "string" || configDesc?.mediaType === MediaType.empty;
    const wantConfig = d.mediaType === MediaType.dockerManifest ? MediaType.dockerConfig : MediaType.config;
    let diffIDs: unknown[] | null = null;
    const configWhere = `config of manifest ${d.digest}`;
    if (configDesc && typeof configDesc === "object") {
      if (artifact) {
        await this.visitOpaque(configDesc, configWhere);
      } else if (configDesc.mediaType !== wantConfig && configDesc.mediaType !== MediaType.config) {
        this.problem(at, `config media type ${JSON.stringify(configDesc.mediaType)} is not an image config (${wantConfig})`);
        await this.visitOpaque(configDesc, configWhere);
      } else {
        const c = this.readJsonBlob(configDesc, configWhere, "config");
        if (c) {
          const rootfs = c.rootfs as { diff_ids?: unknown } | undefined;
          // A missing or null diff_ids list means no layers; anything else malformed was reported.
          if (rootfs && typeof rootfs === "object") diffIDs = Array.isArray(rootfs.diff_ids) ? rootfs.diff_ids : rootfs.diff_ids == null ? [] : null;
          if (diffIDs && diffIDs.length !== layers.length)
            this.problem(at, `manifest has ${layers.length} layer${layers.length === 1 ? "" : "s"} but config ${configDesc.digest} has ${diffIDs.length} diff_id${diffIDs.length === 1 ? "" : "s"}`);
          this.checkPlatform(at, platform, c);
          this.checkHistory(at, c, layers.length);
        }
      }
    }
    for (const [i, l] of layers.entries()) {
      const lwhere = `layer ${i + 1} of manifest ${d.digest}`;
      if (artifact) { await this.visitOpaque(l, lwhere); continue; }
      if (!l || typeof l !== "object") continue;
      if (typeof l.mediaType === "string" && !layerKind(l.mediaType)) {
        this.problem(`${l.digest} (${lwhere})`, `unknown layer media type ${l.mediaType}`);
        await this.visitOpaque(l, lwhere);
        continue;
      }
      const want = diffIDs && i < diffIDs.length && isDigest(diffIDs[i]) ? (diffIDs[i] as string) : null;
      await this.visitLayer(l, lwhere, want);
    }
  }

  /**
   * The subject to follow, as gc does; none when it is absent from the layout, which is a
   * warning, not a problem: image-spec 1.1 lets a referrer be stored before (or without) its
   * subject, and gc neither follows nor refuses for it. A subject that is there but unreadable
   * or corrupt is followed, and reported as any blob.
   */
  private subjectChild(n: WalkNode, subject: unknown, what: "manifest" | "index"): WalkChild[] {
    if (!subject || typeof subject !== "object") return [];
    const s = subject as Descriptor;
    // A malformed one was reported by the object's validator; checkPresence refuses to follow it.
    if (!validateDescriptor(s, "subject").length && typeof s.data !== "string") {
      const [alg, enc] = splitDigest(s.digest);
      let absent = false;
      try { absent = this.algDirOk(alg) && !lstatOrNull(path.join(this.root, "blobs", alg, enc)); } catch { absent = false; }
      if (absent) {
        this.warn(`subject ${s.digest} of ${what} ${n.desc.digest} (${n.where})`, "not found in the layout (a referrer may be stored before its subject; gc keeps the referrer)");
        return [];
      }
    }
    return [{ desc: s, where: `subject of ${what} ${n.desc.digest}` }];
  }

  private checkPlatform(at: string, platform: Descriptor["platform"], c: Record<string, unknown>): void {
    if (!platform || typeof platform !== "object") return;
    const differs = (k: "os" | "architecture" | "variant") =>
      typeof platform[k] === "string" && typeof c[k] === "string" && platform[k] !== c[k];
    if (differs("os") || differs("architecture") || differs("variant")) {
      const fmt = (p: Record<string, unknown>) => [p.os, p.architecture, p.variant].filter((x) => typeof x === "string" && x).join("/");
      this.warn(at, `index platform ${fmt(platform as unknown as Record<string, unknown>)} differs from the config's ${fmt(c)}`);
    }
  }

  private checkHistory(at: string, c: Record<string, unknown>, nLayers: number): void {
    if (!Array.isArray(c.history) || c.history.length === 0) return;
    const nonEmpty = c.history.filter((h) => !(h && typeof h === "object" && (h as { empty_layer?: unknown }).empty_layer === true)).length;
    if (nonEmpty !== nLayers) this.warn(at, `config history has ${nonEmpty} non-empty entr${nonEmpty === 1 ? "y" : "ies"} for ${nLayers} layer${nLayers === 1 ? "" : "s"}`);
  }

  private async visitLayer(l: Descriptor, where: string, wantDiffID: string | null): Promise<void> {
    const at = `${l.digest} (${where})`;
    const how = this.checkPresence(l, where, { leaf: true });
    if (!how) return;
    let facts = this.layers.get(l.digest);
    if (!facts) {
      this.opts.onLayer?.(l.digest, where);
      facts = await this.streamLayer(l, where, how);
      this.layers.set(l.digest, facts);
    } else {
      const f = this.blobFacts.get(l.digest);
      if (f && f.digest !== l.digest) this.problem(at, `digest mismatch: blob content hashes to ${f.digest}`);
    }
    if (facts.corrupt || facts.diffID === null || wantDiffID === null) return;
    if (facts.diffID !== wantDiffID) this.problem(at, `diffid mismatch: got ${facts.diffID}, want ${wantDiffID}`);
  }

  /**
   * One pass over a layer: raw sha256 → decompressor → diffID sha256 → tar reader. The raw bytes
   * are read to EOF whatever happens downstream, so a decompression error on a corrupt blob is
   * reported as the corruption it is.
   */
  private async streamLayer(l: Descriptor, where: string, how: "file" | "data"): Promise<LayerFacts> {
    const at = `${l.digest} (${where})`;
    this.checked.layers++;
    let source: ChunkSource;
    try {
      source = how === "data" ? dataSource(Buffer.from(l.data!, "base64")) : fileSource(this.root, this.blobRel(l.digest));
    } catch (e) {
      this.problem(at, `read blob: ${errMsg(e)}`);
      return { diffID: null, corrupt: true };
    }
    const rawHash = new Bun.CryptoHasher("sha256");
    let rawSize = 0;
    const findings: Array<{ warn: boolean; message: string }> = [];
    // (only known layer types get here: visitManifest sends the others to visitOpaque)
    let comp: Compression = layerKind(l.mediaType)?.compression ?? "none";
    let first: Buffer;
    try {
      first = await source.next();
    } catch (e) {
      await source.close();
      this.problem(at, `read blob: ${errMsg(e)}`);
      return { diffID: null, corrupt: true };
    }
    if (first.length) {
      const sniffed = sniffCompression(first);
      if (sniffed !== "unknown" && sniffed !== comp) {
        findings.push({ warn: true, message: `media type ${l.mediaType} says ${comp} but the blob is ${sniffed}` });
        comp = sniffed;
      }
    }
    const dec = createDecompressor(comp, { onWarning: (m) => findings.push({ warn: true, message: m }) });
    dec.on("error", () => {}); // surfaced through the async iterator below
    // Stall guard: a decoder that stops calling back on corrupt input (Bun's zlib does not call a
    // write callback after an inflate error) must not turn into a hang or, worse, a silent exit 0
    // when the event loop empties. Either way the stream is failed with a problem to report.
    let lastProgress = Date.now();
    const stall = (why: string) => {
      if (!dec.destroyed) dec.destroy(new InvalidError(`${comp} decoder stalled (${why}); the data is probably corrupt`));
    };
    const onBeforeExit = () => stall("no pending work");
    process.on("beforeExit", onBeforeExit);
    const watchdog = setInterval(() => { if (Date.now() - lastProgress > STALL_MS) stall(`no progress for ${STALL_MS / 1000}s`); }, 1000);
    watchdog.unref();
    let readError: unknown = null;
    const pump = (async () => {
      try {
        let chunk = first;
        while (chunk.length) {
          rawHash.update(chunk);
          rawSize += chunk.length;
          if (!dec.destroyed && !dec.writableEnded && !dec.write(chunk)) await drained(dec);
          lastProgress = Date.now();
          chunk = await source.next();
        }
        if (!dec.destroyed && !dec.writableEnded) dec.end();
      } catch (e) {
        readError = e;
        dec.destroy(e as Error);
      } finally {
        await source.close();
      }
    })();

    const diffHash = new Bun.CryptoHasher("sha256");
    async function* tapped(): AsyncGenerator<Buffer> {
      for await (const c of dec) {
        lastProgress = Date.now();
        diffHash.update(c as Buffer);
        yield c as Buffer;
      }
    }
    let entries = 0;
    let entryProblems = 0;
    let contentError: string | null = null;
    try {
      for await (const entry of readTar(tapped())) {
        entries++;
        const p = tarNameProblem(entry.header);
        if (p) {
          if (entryProblems < this.maxEntryProblems) findings.push({ warn: false, message: p });
          entryProblems++;
        }
        await entry.drain();
      }
    } catch (e) {
      contentError = errMsg(e);
    } finally {
      if (!dec.destroyed) dec.destroy();
    }
    await pump;
    clearInterval(watchdog);
    process.off("beforeExit", onBeforeExit);
    this.checked.entries += entries;

    if (readError) {
      this.problem(at, `read blob: ${errMsg(readError)}`);
      return { diffID: null, corrupt: true };
    }
    const rawDigest = "sha256:" + rawHash.digest("hex");
    if (!this.recordFacts(l, where, { size: rawSize, digest: rawDigest })) {
      // The bytes are not the blob the descriptor names: what they decompress to is beside the point.
      return { diffID: null, corrupt: true };
    }
    for (const f of findings) (f.warn ? this.warn(at, f.message) : this.problem(at, f.message));
    if (entryProblems > this.maxEntryProblems) this.problem(at, `${entryProblems - this.maxEntryProblems} more hostile tar entries not listed`);
    if (contentError !== null) {
      this.problem(at, `layer content (${comp === "none" ? "tar" : comp + " tar"}) is unreadable after ${entries} entr${entries === 1 ? "y" : "ies"}: ${contentError}`);
      return { diffID: null, corrupt: false };
    }
    return { diffID: "sha256:" + diffHash.digest("hex"), corrupt: false };
  }

  /** Whole-layout mode: names under blobs/ must be digests; unreferenced blobs must hash to their names. */
  private async scanBlobs(): Promise<void> {
    const root = path.join(this.root, "blobs");
    let algs: fs.Dirent[];
    try { algs = fs.readdirSync(root, { withFileTypes: true }); } catch (e) {
      this.problem("blobs", `read directory: ${errMsg(e)}`);
      return;
    }
    for (const a of algs.sort((x, y) => (x.name < y.name ? -1 : 1))) {
      const rel = `blobs/${a.name}`;
      if (a.isSymbolicLink()) { this.algDirOk(a.name); continue; }
      if (!a.isDirectory()) { this.warn(rel, "unexpected file directly under blobs/ (expected blobs/<algorithm>/<encoded>)"); continue; }
      let names: fs.Dirent[];
      try { names = fs.readdirSync(path.join(root, a.name), { withFileTypes: true }); } catch (e) {
        this.problem(rel, `read directory: ${errMsg(e)}`);
        continue;
      }
      for (const n of names.sort((x, y) => (x.name < y.name ? -1 : 1))) {
        const p = `${rel}/${n.name}`;
        const digest = `${a.name}:${n.name}`;
        if (!isDigest(digest)) { this.problem(p, "file name is not a valid digest (a leftover temporary file?)"); continue; }
        if (!n.isFile()) { this.problem(p, n.isSymbolicLink() ? "a symlink (not followed)" : "not a regular file"); continue; }
        if (a.name !== "sha256" || this.blobFacts.has(digest)) continue;
        try {
          const f = await hashFile(this.root, p);
          this.blobFacts.set(digest, f);
          this.checked.blobs++;
          if (f.digest !== digest) this.problem(p, `unreferenced blob content does not match its name: hashes to ${f.digest}`);
        } catch (e) {
          this.problem(p, `read blob: ${errMsg(e)}`);
        }
      }
    }
  }
}

function refNameOf(d: unknown): string | undefined {
  if (!d || typeof d !== "object") return undefined;
  const a = (d as Descriptor).annotations;
  const n = a && typeof a === "object" ? a[AnnotationRefName] : undefined;
  return typeof n === "string" ? n : undefined;
}

function sha256(b: Uint8Array): string {
  const h = new Bun.CryptoHasher("sha256");
  h.update(b);
  return "sha256:" + h.digest("hex");
}

interface ChunkSource {
  /** The next chunk; an empty buffer at EOF. */
  next(): Promise<Buffer>;
  close(): Promise<void>;
}

function dataSource(b: Buffer): ChunkSource {
  let done = false;
  return {
    async next() { if (done) return Buffer.alloc(0); done = true; return b; },
    async close() {},
  };
}

/** Chunks of a layout file, opened safely (layout-fs.ts: no symlink, no FIFO). */
function fileSource(root: string, rel: string): ChunkSource {
  const f = openLayoutFile(root, rel);
  if (!f) throw new NotFoundError(`${rel}: no such file`);
  let closed = false;
  return {
    async next() {
      // A fresh buffer each time: the decompressor may still hold the previous one.
      const buf = Buffer.allocUnsafe(CHUNK);
      const bytesRead = await readFd(f.fd, buf, 0, CHUNK);
      return bytesRead === CHUNK ? buf : buf.subarray(0, bytesRead);
    },
    async close() { if (!closed) { closed = true; fs.closeSync(f.fd); } },
  };
}

async function hashFile(root: string, rel: string): Promise<BlobFacts> {
  const src = fileSource(root, rel);
  const h = new Bun.CryptoHasher("sha256");
  let size = 0;
  try {
    for (;;) {
      const c = await src.next();
      if (!c.length) break;
      h.update(c);
      size += c.length;
    }
  } finally {
    await src.close();
  }
  return { size, digest: "sha256:" + h.digest("hex") };
}

/** Resolves when `s` can take more input, or is gone. */
function drained(s: Transform): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      s.off("drain", done);
      s.off("close", done);
      s.off("error", done);
      resolve();
    };
    s.on("drain", done);
    s.on("close", done);
    s.on("error", done);
  });
}
