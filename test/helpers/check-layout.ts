/**
 * The layout checker run after every mutating test: every blob reachable from index.json (by the
 * same descriptor walk gc and validate use) is present with the right digest and size, JSON blobs have the right shape, configs have one
 * diff_id per layer, and no temporary file is visible under blobs/.
 */
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { type Descriptor, validateIndex, validateManifest, validateConfig } from "../../src/image";
import { DescriptorWalk } from "../../src/cas/walk";

function sha256(b: Uint8Array): string {
  const h = new Bun.CryptoHasher("sha256");
  h.update(b);
  return "sha256:" + h.digest("hex");
}

export function checkLayout(dir: string): string[] {
  const problems: string[] = [];
  const layoutHeader = JSON.parse(readFileSync(join(dir, "oci-layout"), "utf8"));
  if (layoutHeader.imageLayoutVersion !== "1.0.0") problems.push("oci-layout: bad version");
  const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8"));
  problems.push(...validateIndex(index, "index.json", [], { allowNullManifests: true }));
  const blob = (d: { digest: string; size: number }, what: string): Buffer | null => {
    const p = join(dir, "blobs", ...d.digest.split(":"));
    if (!existsSync(p)) { problems.push(`${what} ${d.digest}: missing`); return null; }
    const b = readFileSync(p);
    if (b.length !== d.size) problems.push(`${what} ${d.digest}: size ${b.length} != ${d.size}`);
    if (sha256(b) !== d.digest) problems.push(`${what} ${d.digest}: digest mismatch`);
    return b;
  };
  // The one descriptor walk boci itself uses (src/cas/walk.ts): each digest once, any depth,
  // children of indexes and manifests (subjects too); the reading and checks are this file's own.
  const walk = new DescriptorWalk((index.manifests ?? []).map((d: Descriptor, i: number) => ({ desc: d, where: `index.json manifests[${i}]` })));
  for (let n = walk.next(); n; n = walk.next()) {
    const d = n.desc;
    if (n.kind === "blob") { blob(d, n.where.startsWith("config") ? "config" : "blob"); continue; }
    const b = blob(d, d.mediaType);
    if (!b) continue;
    if (n.kind === "index") {
      const ix = JSON.parse(b.toString());
      problems.push(...validateIndex(ix, d.digest));
      walk.expand(n, [
        ...(ix.manifests ?? []).map((m: Descriptor, i: number) => ({ desc: m, where: `manifests[${i}] of ${d.digest}` })),
        ...(ix.subject ? [{ desc: ix.subject, where: `subject of ${d.digest}` }] : []),
      ]);
    } else {
      const m = JSON.parse(b.toString());
      problems.push(...validateManifest(m, d.digest));
      const cb = blob(m.config, "config");
      // An artifact's config (the empty descriptor, or its own type) is not an image config.
      const imageConfig = m.config?.mediaType === "application/vnd.oci.image.config.v1+json" || m.config?.mediaType === "application/vnd.docker.container.image.v1+json";
      if (cb && imageConfig) {
        const c = JSON.parse(cb.toString());
        problems.push(...validateConfig(c, m.config.digest));
        if ((c.rootfs?.diff_ids ?? []).length !== m.layers.length) problems.push(`${d.digest}: ${m.layers.length} layers but ${(c.rootfs?.diff_ids ?? []).length} diff_ids`);
      }
      walk.expand(n, [
        ...m.layers.map((l: Descriptor, i: number) => ({ desc: l, where: `layer ${i + 1} of ${d.digest}`, kind: "blob" as const })),
        ...(m.subject ? [{ desc: m.subject, where: `subject of ${d.digest}` }] : []),
      ]);
    }
  }
  for (const alg of readdirSync(join(dir, "blobs"))) {
    for (const n of readdirSync(join(dir, "blobs", alg))) {
      if (alg === "sha256" && !/^[a-f0-9]{64}$/.test(n)) problems.push(`blobs/${alg}/${n}: not a blob name (temporary file visible?)`);
    }
  }
  return problems;
}
