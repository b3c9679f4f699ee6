/**
 * A registry with the OCI referrers API, for tests: a proxy on 127.0.0.1 (a free port) in front
 * of a plain-HTTP registry without one (Debian's docker-registry, distribution 2.8). Every
 * request is forwarded as it is; on top of that the proxy
 *
 *  - reads each manifest PUT (the body is small; it is buffered, forwarded, and parsed): when the
 *    registry stored it (201) and it has a `subject`, the proxy records it as a referrer of that
 *    digest in that repository and adds `OCI-Subject: <subject digest>` to the reply, as a
 *    registry with the API does;
 *  - answers `GET /v2/<name>/referrers/<digest>` itself: an image index of the recorded
 *    referrers (artifactType: the manifest's, else its config's media type; its annotations), in
 *    push order, filtered by `?artifactType=` (with `OCI-Filters-Applied: artifactType`, unless
 *    `applyFilter` is off: then the client must filter), `pageSize` per page with a
 *    `Link: <…>; rel="next"` to the rest;
 *  - logs every request (method, path and query) and every tag a manifest PUT names, so a test
 *    can tell that no `sha256-<hex>` tag was written.
 *
 * Upload `Location`s naming the registry are rewritten to name the proxy. Only what went through
 * the proxy is known to its referrers API.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface RecordedReferrer {
  repository: string;
  subject: string;
  desc: { mediaType: string; digest: string; size: number; artifactType?: string; annotations?: Record<string, string> };
}

export interface ReferrersProxy {
  /** `127.0.0.1:PORT` */
  host: string;
  url: string;
  /** referrers recorded from manifest PUTs, in push order */
  referrers: RecordedReferrer[];
  /** `METHOD path?query` of every request */
  log: string[];
  /** `repository:tag` of every manifest PUT by tag (not by digest) */
  tagsPut: string[];
  /** descriptors per page of the referrers API (default 2, to exercise `Link`) */
  pageSize: number;
  /** whether `?artifactType=` is applied (and said so with OCI-Filters-Applied); default true */
  applyFilter: boolean;
  stop(): Promise<void>;
}

const INDEX = "application/vnd.oci.image.index.v1+json";
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** Start the proxy in front of `upstream` (`http://127.0.0.1:PORT`); the caller stops it. */
export function startReferrersProxy(upstream: string, opts: { pageSize?: number; applyFilter?: boolean } = {}): ReferrersProxy {
  const up = new URL(upstream);
  if (up.protocol !== "http:" || up.hostname !== "127.0.0.1") throw new Error("referrers proxy: the upstream must be plain http on 127.0.0.1");
  const proxy: ReferrersProxy = {
    host: "", url: "", referrers: [], log: [], tagsPut: [],
    pageSize: opts.pageSize ?? 2, applyFilter: opts.applyFilter ?? true,
    stop: async () => { await server.stop(true); },
  };

  const referrersPage = (url: URL, repository: string, subject: string): Response => {
    if (!DIGEST.test(subject)) return Response.json({ errors: [{ code: "DIGEST_INVALID", message: "invalid digest" }] }, { status: 400 });
    const want = url.searchParams.get("artifactType");
    let all = proxy.referrers.filter((r) => r.repository === repository && r.subject === subject).map((r) => r.desc);
    const headers: Record<string, string> = { "content-type": INDEX };
    if (want !== null && proxy.applyFilter) {
      all = all.filter((d) => d.artifactType === want);
      headers["oci-filters-applied"] = "artifactType";
    }
    const from = Number(url.searchParams.get("page") ?? "0");
    const page = all.slice(from, from + proxy.pageSize);
    if (from + proxy.pageSize < all.length) {
      const next = new URL(url.pathname, proxy.url);
      if (want !== null) next.searchParams.set("artifactType", want);
      next.searchParams.set("page", String(from + proxy.pageSize));
      headers.link = `<${next.pathname}${next.search}>; rel="next"`;
    }
    return new Response(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: page }), { status: 200, headers });
  };

  const forward = async (req: Request, url: URL, body?: Uint8Array): Promise<Response> => {
    const headers = new Headers(req.headers);
    headers.delete("host");
    const res = await fetch(`${upstream}${url.pathname}${url.search}`, {
      method: req.method, headers, redirect: "manual",
      body: body ?? (req.method === "GET" || req.method === "HEAD" ? undefined : req.body),
      duplex: "half",
    });
    const out = new Headers(res.headers);
    const loc = out.get("location");
    if (loc?.startsWith(upstream)) out.set("location", proxy.url + loc.slice(upstream.length));
    out.delete("content-encoding");
    return new Response(req.method === "HEAD" ? null : res.body, { status: res.status, headers: out });
  };

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      const url = new URL(req.url);
      proxy.log.push(`${req.method} ${url.pathname}${url.search}`);
      const ref = /^\/v2\/(.+)\/referrers\/([^/]+)$/.exec(url.pathname);
      if (ref && req.method === "GET") return referrersPage(url, ref[1]!, decodeURIComponent(ref[2]!));
      const man = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(url.pathname);
      if (!man || req.method !== "PUT") return forward(req, url);
      const [, repository, reference] = man as unknown as [string, string, string];
      const body = new Uint8Array(await req.arrayBuffer());
      if (!DIGEST.test(reference)) proxy.tagsPut.push(`${repository}:${reference}`);
      const res = await forward(req, url, body);
      if (res.status !== 201) return res;
      let j: { mediaType?: string; artifactType?: string; config?: { mediaType?: string }; subject?: { digest?: string }; annotations?: Record<string, string> };
      try { j = JSON.parse(Buffer.from(body).toString("utf8")); } catch { return res; }
      const subject = j?.subject?.digest;
      if (typeof subject !== "string") return res;
      const digest = res.headers.get("docker-content-digest") ?? `sha256:${new Bun.CryptoHasher("sha256").update(body).digest("hex")}`;
      if (!proxy.referrers.some((r) => r.repository === repository && r.subject === subject && r.desc.digest === digest)) {
        const desc: RecordedReferrer["desc"] = { mediaType: j.mediaType ?? req.headers.get("content-type") ?? "", digest, size: body.length };
        const at = j.artifactType ?? j.config?.mediaType;
        if (at) desc.artifactType = at;
        if (j.annotations && Object.keys(j.annotations).length) desc.annotations = j.annotations;
        proxy.referrers.push({ repository, subject, desc });
      }
      const headers = new Headers(res.headers);
      headers.set("oci-subject", subject);
      return new Response(res.body, { status: res.status, headers });
    },
  });
  proxy.host = `127.0.0.1:${server.port}`;
  proxy.url = `http://${proxy.host}`;
  return proxy;
}

/** The empty descriptor (image-spec 1.1): the config of an artifact that has none. */
export const EMPTY_CONFIG = { mediaType: "application/vnd.oci.empty.v1+json", digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", size: 2 };

/**
 * An artifact written into a layout by hand, as `boci attach` would: the empty config blob, one
 * layer of `content`, the manifest (artifactType, `subject`, `annotations` when given) and an
 * untagged index.json entry for it. Returns the manifest's descriptor and bytes.
 */
export function makeArtifact(
  layout: string, subject: { mediaType: string; digest: string; size: number }, artifactType: string, content: string,
  annotations?: Record<string, string>,
): { desc: { mediaType: string; digest: string; size: number; artifactType: string }; bytes: Buffer } {
  const put = (data: Buffer): { digest: string; size: number } => {
    const hex = new Bun.CryptoHasher("sha256").update(data).digest("hex");
    mkdirSync(join(layout, "blobs", "sha256"), { recursive: true });
    writeFileSync(join(layout, "blobs", "sha256", hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  if (put(Buffer.from("{}")).digest !== EMPTY_CONFIG.digest) throw new Error("makeArtifact: the empty blob's digest");
  const layer = { mediaType: `${artifactType}+blob`, ...put(Buffer.from(content)) };
  const manifest: Record<string, unknown> = {
    schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", artifactType,
    config: EMPTY_CONFIG, layers: [layer], subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
  };
  if (annotations) manifest.annotations = annotations;
  const bytes = Buffer.from(JSON.stringify(manifest));
  const desc = { mediaType: "application/vnd.oci.image.manifest.v1+json", ...put(bytes), artifactType };
  const p = join(layout, "index.json");
  const ix = JSON.parse(readFileSync(p, "utf8"));
  ix.manifests = [...(ix.manifests ?? []), desc];
  writeFileSync(p, JSON.stringify(ix));
  return { desc, bytes };
}
