/**
 * Garbage collection: mark every blob reachable from index.json (through indexes and
 * manifests: configs, layers, subjects), then sweep the rest and stale temporary files.
 *
 * Safety: gc holds the gc lock exclusively (no writer is between writing blobs and naming them
 * in index.json) and the index lock while marking. If marking fails anywhere (a corrupt
 * manifest), nothing is deleted. Reachable layer blobs are not rehashed to be kept.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { type Descriptor, type ImageIndex, type Manifest, isIndexMediaType, isManifestMediaType } from "../image";
import { takeLock, INDEX_LOCK } from "./lock";
import { type Layout, TMP_DIR } from "./layout";
import { flock } from "../sys";

export interface GcResult { removedBlobs: string[]; removedTemp: string[]; kept: number; missing: string[] }

export function gc(layout: Layout, opts: { onRemove?: (what: string) => void } = {}): GcResult {
  layout.lockGc("ex");
  const indexLock = takeLock(layout.path, INDEX_LOCK, "ex");
  try {
    const ix = layout.readIndex();
    const marked = new Set<string>();
    const missing: string[] = [];
    const visit = (d: Descriptor, depth: number) => {
      if (marked.has(d.digest)) return;
      marked.add(d.digest);
      if (!layout.hasBlob(d.digest)) { missing.push(d.digest); return; }
      if (depth > 16) return;
      if (isIndexMediaType(d.mediaType)) {
        const child = layout.readJson<ImageIndex>(d, "index");
        for (const c of child.manifests ?? []) visit(c, depth + 1);
        if (child.subject) visit(child.subject, depth + 1);
      } else if (isManifestMediaType(d.mediaType)) {
        const m = layout.readJson<Manifest>(d, "manifest");
        visit(m.config, depth + 1);
        for (const l of m.layers) visit(l, depth + 1);
        if (m.subject) visit(m.subject, depth + 1);
      }
    };
    for (const d of ix.manifests) visit(d, 0);

    const removedBlobs: string[] = [];
    let kept = 0;
    for (const digest of layout.listBlobs()) {
      if (marked.has(digest)) { kept++; continue; }
      const [alg, enc] = [digest.slice(0, digest.indexOf(":")), digest.slice(digest.indexOf(":") + 1)];
      fs.rmSync(path.join(layout.path, "blobs", alg, enc), { force: true, recursive: true });
      removedBlobs.push(digest);
      opts.onRemove?.(`removed unreachable blob ${digest}`);
    }

    // Temporary files: ours (no writer can be live: we hold the gc lock exclusively), and
    // umoci's `.umoci-*` directories when nobody holds their flock.
    const removedTemp: string[] = [];
    const tmp = path.join(layout.path, TMP_DIR);
    for (const n of safeReaddir(tmp)) {
      fs.rmSync(path.join(tmp, n), { force: true, recursive: true });
      removedTemp.push(path.join(TMP_DIR, n));
      opts.onRemove?.(`removed stale temporary file ${path.join(TMP_DIR, n)}`);
    }
    for (const n of safeReaddir(layout.path)) {
      const p = path.join(layout.path, n);
      const umoci = n.startsWith(".umoci-");
      const ours = n.startsWith(".tmp-index.json-");
      if (!umoci && !ours) continue;
      if (umoci && !canLock(p)) continue;
      fs.rmSync(p, { force: true, recursive: true });
      removedTemp.push(n);
      opts.onRemove?.(`removed stale temporary file ${n}`);
    }
    return { removedBlobs, removedTemp, kept, missing };
  } finally {
    indexLock.release();
  }
}

function safeReaddir(p: string): string[] {
  try { return fs.readdirSync(p); } catch { return []; }
}

function canLock(p: string): boolean {
  let fd = -1;
  try {
    fd = fs.openSync(p, fs.constants.O_RDONLY);
    const ok = flock(fd, "ex", { nonblock: true });
    if (ok) flock(fd, "un");
    return ok;
  } catch {
    return false;
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}
