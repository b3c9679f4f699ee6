/**
 * `boci copy` to and from a real registry (Debian's docker-registry, CNCF distribution 2.8, on
 * 127.0.0.1) against Debian's skopeo: boci pushes and skopeo pulls, skopeo pushes and boci pulls,
 * in each auth mode (plain HTTP and no auth, htpasswd over TLS, token auth over plain HTTP and
 * over TLS) with the flags each needs; the manifest bytes are the same on both sides
 * (`skopeo inspect --raw` against the layout's blob); a multi-arch index made here round-trips
 * with `--all`; umoci unpacks what boci pulled to the original tree. The password never shows in
 * boci's output, its `--json`, or its errors. Skips, saying so, without the Debian packages.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { BIN, have, isRoot, ok, scratch } from "../helpers/cli";
import { checkLayout } from "../helpers/check-layout";
import { treeOf } from "../helpers/archive";
import { dir, file, makeImage, makeIndex, makeTar, symlink, type Descriptor } from "../helpers/image";
import { pushBlob, pushManifest, registryFetch, registryMissing, runAsync, startRegistry, type Registry, type RunResult } from "../helpers/registry";

const why = registryMissing() ?? (have("skopeo") && have("umoci") ? null : "needs skopeo and umoci (Debian packages skopeo, umoci)");
if (why) console.warn(`registry-interop: skipped: ${why}`);
const t = why ? test.skip : test;

const layer1 = makeTar([
  dir("etc/", { mtime: 1_600_000_000 }), file("etc/hostname", "registry\n", { mtime: 1_600_000_000 }),
  dir("bin/", { mtime: 1_600_000_000 }), file("bin/tool", "#!/bin/sh\necho hi\n", { mode: 0o755, mtime: 1_600_000_000 }),
  symlink("bin/alias", "tool", { mtime: 1_600_000_000 }),
]);
const layer2 = makeTar([file("etc/motd", "layer two\n", { mtime: 1_600_000_100 }), file("etc/.wh.hostname", "", { mtime: 0 })]);
const config = { config: { Env: ["PATH=/bin"], Cmd: ["/bin/tool"], Labels: { "org.example": "registry" } } };

function source(): { l: string; manifest: Descriptor } {
  const l = join(scratch(), "src");
  ok(["init", "--layout", l]);
  const img = makeImage(l, "t", [layer1, layer2], { config, architecture: "amd64" });
  return { l, manifest: img.manifest };
}

/** A layout with a two-platform index tagged `multi` (amd64 and arm64/v8 manifests, layers shared in part). */
function multiSource(): { l: string; index: Descriptor } {
  const l = join(scratch(), "multi");
  ok(["init", "--layout", l]);
  const a = makeImage(l, "amd", [layer1], { config, architecture: "amd64", noTag: true });
  const b = makeImage(l, "arm", [layer1, layer2], { config, architecture: "arm64", noTag: true });
  const index = makeIndex(l, "multi", [
    { ...a.manifest, platform: { os: "linux", architecture: "amd64" } },
    { ...b.manifest, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
  ]);
  return { l, index };
}

const blobBytes = (l: string, d: Descriptor) => readFileSync(join(l, "blobs/sha256", d.digest.slice(7)));
const index = (l: string) => JSON.parse(readFileSync(join(l, "index.json"), "utf8"));

/** The tree umoci 0.4.7 unpacks `layout:tag` to. */
async function unpacked(layout: string, tag: string): Promise<Record<string, string>> {
  const b = join(scratch(), "bundle");
  const r = await runAsync(["umoci", "unpack", ...(isRoot ? [] : ["--rootless"]), "--image", `${layout}:${tag}`, b]);
  if (r.code !== 0) throw new Error(`umoci unpack exited ${r.code}: ${r.stderr}`);
  const tree = treeOf(join(b, "rootfs"));
  delete tree["."];
  return tree;
}

interface Mode {
  name: string;
  auth: "none" | "htpasswd" | "token";
  tls: boolean;
  clientCert?: boolean;
  /** the flags boci's and skopeo's copy take for a registry side (`src` or `dest`), and inspect's */
  flags(reg: Registry, side: "src" | "dest" | ""): string[];
}
const flag = (side: string, f: string) => `--${side ? `${side}-` : ""}${f}`;
const modes: Mode[] = [
  { name: "plain HTTP, no auth", auth: "none", tls: false, flags: (_r, s) => [`${flag(s, "tls-verify")}=false`] },
  { name: "htpasswd over TLS", auth: "htpasswd", tls: true, flags: (r, s) => [flag(s, "cert-dir"), r.certDir!, flag(s, "creds"), `${r.user}:${r.password}`] },
  { name: "token auth, plain HTTP", auth: "token", tls: false, flags: (r, s) => [`${flag(s, "tls-verify")}=false`, flag(s, "creds"), `${r.user}:${r.password}`] },
  { name: "token auth over TLS", auth: "token", tls: true, flags: (r, s) => [flag(s, "cert-dir"), r.certDir!, flag(s, "creds"), `${r.user}:${r.password}`] },
  { name: "TLS with a client certificate (certs.d client.cert/client.key)", auth: "none", tls: true, clientCert: true, flags: (r, s) => [flag(s, "cert-dir"), r.certDir!] },
];

async function bociCopy(args: string[]): Promise<RunResult> {
  const r = await runAsync([BIN, "copy", ...args]);
  if (r.code !== 0) throw new Error(`boci copy exited ${r.code}: ${r.stderr}`);
  return r;
}
async function skopeo(args: string[]): Promise<string> {
  const r = await runAsync(["skopeo", "--insecure-policy", ...args]);
  if (r.code !== 0) throw new Error(`skopeo ${args[0]} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}
async function skopeoRaw(reg: Registry, m: Mode, ref: string): Promise<Buffer> {
  const p = Bun.spawn(["skopeo", "--insecure-policy", "inspect", "--raw", ...m.flags(reg, ""), ref], { stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(p.stdout).arrayBuffer(), new Response(p.stderr).text()]);
  if ((await p.exited) !== 0) throw new Error(`skopeo inspect --raw exited: ${err}`);
  return Buffer.from(out);
}

for (const m of modes) {
  describe(m.name, () => {
    let reg: Registry;
    beforeAll(async () => { if (!why) reg = await startRegistry({ auth: m.auth, tls: m.tls, clientCert: m.clientCert }); });
    afterAll(async () => { await reg?.stop(); });

    t("boci pushes, skopeo pulls: same manifest bytes, same tree", async () => {
      const { l, manifest } = source();
      const ref = `docker://${reg.host}/interop/pushed:1.0`;
      const r = await bociCopy([...m.flags(reg, "dest"), "--json", `oci:${l}:t`, ref]);
      const summary = JSON.parse(r.stdout);
      expect(summary.manifest.digest).toBe(manifest.digest);
      expect(r.stdout + r.stderr).not.toContain(reg.password ?? "\0none");
      expect((await skopeoRaw(reg, m, ref)).equals(blobBytes(l, manifest))).toBe(true);
      const info = JSON.parse(await skopeo(["inspect", ...m.flags(reg, ""), ref]));
      expect(info.Digest).toBe(manifest.digest);
      expect(info.Architecture).toBe("amd64");
      const back = join(scratch(), "skopeo-pulled");
      await skopeo(["copy", "-q", ...m.flags(reg, "src"), ref, `oci:${back}:t`]);
      expect(index(back).manifests[0].digest).toBe(manifest.digest);
      expect(blobBytes(back, manifest).equals(blobBytes(l, manifest))).toBe(true);
      expect(checkLayout(back)).toEqual([]);
      expect(await unpacked(back, "t")).toEqual(await unpacked(l, "t"));
      // a second push finds every blob there: only the manifest moves again
      const again = JSON.parse((await bociCopy([...m.flags(reg, "dest"), "--json", `oci:${l}:t`, ref])).stdout);
      expect(again.bytes).toBe(manifest.size);
      expect(again.blobsSkipped).toBeGreaterThan(0);
    });

    t("skopeo pushes, boci pulls: same manifest bytes, umoci unpacks the original tree", async () => {
      const { l, manifest } = source();
      const ref = `docker://${reg.host}/interop/by-skopeo:2.0`;
      await skopeo(["copy", "-q", ...m.flags(reg, "dest"), `oci:${l}:t`, ref]);
      const raw = await skopeoRaw(reg, m, ref);
      const got = join(scratch(), "boci-pulled");
      const r = await bociCopy([...m.flags(reg, "src"), `--json`, ref, `oci:${got}:pulled`]);
      expect(r.stdout + r.stderr).not.toContain(reg.password ?? "\0none");
      expect(checkLayout(got)).toEqual([]);
      const top = index(got).manifests;
      expect(top).toHaveLength(1);
      expect(top[0].annotations["org.opencontainers.image.ref.name"]).toBe("pulled");
      expect(blobBytes(got, top[0]).equals(raw)).toBe(true);
      expect(top[0].digest).toBe(manifest.digest);
      expect(await unpacked(got, "pulled")).toEqual(await unpacked(l, "t"));
      // by digest too
      const byDigest = join(scratch(), "by-digest");
      await bociCopy([...m.flags(reg, "src"), `docker://${reg.host}/interop/by-skopeo@${manifest.digest}`, `oci:${byDigest}:d`]);
      expect(index(byDigest).manifests[0].digest).toBe(manifest.digest);
      expect(checkLayout(byDigest)).toEqual([]);
    });

    t("a multi-arch index round-trips with --all, both ways", async () => {
      const { l, index: ix } = multiSource();
      const ref = `docker://${reg.host}/interop/multi:all`;
      await bociCopy([...m.flags(reg, "dest"), "--all", `oci:${l}:multi`, ref]);
      expect((await skopeoRaw(reg, m, ref)).equals(blobBytes(l, ix))).toBe(true);
      const viaSkopeo = join(scratch(), "multi-skopeo");
      await skopeo(["copy", "-q", "--all", ...m.flags(reg, "src"), ref, `oci:${viaSkopeo}:multi`]);
      expect(index(viaSkopeo).manifests[0].digest).toBe(ix.digest);
      expect(checkLayout(viaSkopeo)).toEqual([]);
      // skopeo pushes it under another name, boci pulls it back whole
      const ref2 = `docker://${reg.host}/interop/multi-skopeo:all`;
      await skopeo(["copy", "-q", "--all", ...m.flags(reg, "dest"), `oci:${l}:multi`, ref2]);
      const viaBoci = join(scratch(), "multi-boci");
      await bociCopy([...m.flags(reg, "src"), "--all", ref2, `oci:${viaBoci}:multi`]);
      expect(checkLayout(viaBoci)).toEqual([]);
      expect(index(viaBoci).manifests[0].digest).toBe(ix.digest);
      expect(blobBytes(viaBoci, ix).equals(blobBytes(l, ix))).toBe(true);
      const children = JSON.parse(blobBytes(l, ix).toString()).manifests as Descriptor[];
      for (const c of children) expect(blobBytes(viaBoci, c).equals(blobBytes(l, c))).toBe(true);
      // one platform picked from the index
      const one = join(scratch(), "multi-one");
      await bociCopy([...m.flags(reg, "src"), "--platform", "linux/arm64/v8", ref2, `oci:${one}:arm`]);
      expect(index(one).manifests[0].digest).toBe(children[1].digest);
      expect(checkLayout(one)).toEqual([]);
    });

    t("behind a skopeo symlink: copy's lines, list-tags, inspect (--config, --raw) as Debian's skopeo prints them; boci ls lists the tags", async () => {
      const { l } = source();
      const link = join(scratch(), "skopeo");
      symlinkSync(BIN, link);
      const repo = `docker://${reg.host}/interop/symlink`;
      const out: Record<string, string[]> = {};
      for (const [who, exe] of [["boci", link], ["skopeo", "skopeo"]] as const) {
        const run = async (args: string[]) => {
          const r = await runAsync([exe, "--insecure-policy", ...args]);
          if (r.code !== 0) throw new Error(`${who} ${args[0]} exited ${r.code}: ${r.stderr}`);
          return r.stdout;
        };
        // each side pushes into a repository of its own, the same image under two tags
        const ref = `${repo}-${who}`;
        // the same lines; their order is left out: blobs move several at a time, and skopeo's
        // "Copying config" line comes after every layer's while boci's comes when it starts it
        const lines = [(await run(["copy", ...m.flags(reg, "dest"), `oci:${l}:t`, `${ref}:a`])).split("\n").sort().join("\n")];
        await run(["copy", "-q", ...m.flags(reg, "dest"), `oci:${l}:t`, `${ref}:b`]);
        const strip = (s: string) => s.replaceAll(`${ref}`, "REPO");
        out[who] = [
          ...lines,
          strip(await run(["list-tags", ...m.flags(reg, ""), ref])),
          strip(await run(["inspect", ...m.flags(reg, ""), `${ref}:a`])),
          await run(["inspect", "--config", ...m.flags(reg, ""), `${ref}:b`]),
          await run(["inspect", "--raw", ...m.flags(reg, ""), `${ref}:a`]),
        ].map((s) => s.replaceAll(`${repo}-${who}`.slice("docker://".length), "REPO"));
        expect(out[who].join("")).not.toContain(reg.password ?? "\0none");
      }
      expect(out.boci).toEqual(out.skopeo);
      const ls = await runAsync([BIN, "ls", "--layout", `${repo}-boci`, ...m.flags(reg, "")]);
      expect(ls.code).toBe(0);
      expect(ls.stdout.trim().split("\n").sort()).toEqual(["a", "b"]);
    });

    t("--referrers: an artifact whose subject is the image (the sha256-<hex> tag schema) comes along to oci: and to docker://", async () => {
      const { l, manifest } = source();
      const repo = "interop/with-referrers";
      await bociCopy([...m.flags(reg, "dest"), `oci:${l}:t`, `docker://${reg.host}/${repo}:t`]);
      // an SBOM-like artifact naming the image as its subject, and the fallback tag's index
      const empty = Buffer.from("{}");
      const sbom = Buffer.from(JSON.stringify({ spdxVersion: "SPDX-2.3", name: "registry-interop" }));
      const emptyDigest = await pushBlob(reg, repo, empty);
      const sbomDigest = await pushBlob(reg, repo, sbom);
      const artifact = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", artifactType: "application/spdx+json",
        config: { mediaType: "application/vnd.oci.empty.v1+json", digest: emptyDigest, size: 2 },
        layers: [{ mediaType: "application/spdx+json", digest: sbomDigest, size: sbom.length }],
        subject: { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size },
      }));
      const artifactDigest = "sha256:" + new Bun.CryptoHasher("sha256").update(artifact).digest("hex");
      await pushManifest(reg, repo, artifactDigest, artifact, "application/vnd.oci.image.manifest.v1+json");
      const fallbackTag = `sha256-${manifest.digest.slice(7)}`;
      const referrersIndex = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: artifactDigest, size: artifact.length, artifactType: "application/spdx+json" }],
      }));
      await pushManifest(reg, repo, fallbackTag, referrersIndex, "application/vnd.oci.image.index.v1+json");

      const got = join(scratch(), "with-referrers");
      await bociCopy([...m.flags(reg, "src"), "--referrers", `docker://${reg.host}/${repo}:t`, `oci:${got}:t`]);
      // checkLayout reads every manifest's config as an image config: the artifact's empty
      // config ("{}") is not one, and has no diff_ids; those lines aside, the layout is whole
      expect(checkLayout(got)).toEqual([]);
      expect(blobBytes(got, { digest: artifactDigest } as Descriptor).equals(artifact)).toBe(true);
      expect(blobBytes(got, { digest: sbomDigest } as Descriptor).equals(sbom)).toBe(true);

      const other = "interop/referrers-copy";
      await bociCopy([...m.flags(reg, "src"), ...m.flags(reg, "dest"), "--referrers", `docker://${reg.host}/${repo}:t`, `docker://${reg.host}/${other}:t`]);
      const a = await registryFetch(reg, `/v2/${other}/manifests/${artifactDigest}`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
      expect(a.status).toBe(200);
      expect(Buffer.from(await a.arrayBuffer()).equals(artifact)).toBe(true);
      const ix = await registryFetch(reg, `/v2/${other}/manifests/${fallbackTag}`, { headers: { accept: "application/vnd.oci.image.index.v1+json" } });
      expect(ix.status).toBe(200);
      expect(((await ix.json()) as { manifests: Descriptor[] }).manifests.map((d) => d.digest)).toEqual([artifactDigest]);
      // without --referrers, nothing but the image
      const plain = join(scratch(), "no-referrers");
      await bociCopy([...m.flags(reg, "src"), `docker://${reg.host}/${repo}:t`, `oci:${plain}:t`]);
      expect(Bun.file(join(plain, "blobs/sha256", artifactDigest.slice(7))).size).toBe(0);
    });

    if (m.auth !== "none") {
      t("wrong credentials: exit 1, one line naming the registry; the password nowhere (--json, a terminal's progress, --log debug)", async () => {
        const { l } = source();
        const secret = "s3cret-" + Math.random().toString(36).slice(2);
        const bad = m.flags(reg, "dest").map((a) => (a === `${reg.user}:${reg.password}` ? `${reg.user}:${secret}` : a));
        const r = await runAsync([BIN, "copy", "--json", ...bad, `oci:${l}:t`, `docker://${reg.host}/interop/denied:1`]);
        expect(r.code).toBe(1);
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(r.stderr).toContain(reg.host);
        expect(r.stdout + r.stderr).not.toContain(secret);
        expect(r.stdout + r.stderr).not.toContain(reg.password!);
        // progress on a terminal (script(1) gives boci a pty): blobs named, the password not
        if (have("script")) {
          const q = (a: string) => `'${a.replace(/'/g, "'\\''")}'`;
          const good = m.flags(reg, "dest");
          const tty = await runAsync(["script", "-qec", [BIN, "copy", ...good, `oci:${l}:t`, `docker://${reg.host}/interop/tty:1`].map(q).join(" "), "/dev/null"]);
          expect(tty.code).toBe(0);
          expect(tty.stdout).toContain("blob");
          expect(tty.stdout).not.toContain(reg.password!);
          expect(tty.stdout).not.toContain(Buffer.from(`${reg.user}:${reg.password}`).toString("base64"));
          const ttyBad = await runAsync(["script", "-qec", [BIN, "copy", ...bad, `oci:${l}:t`, `docker://${reg.host}/interop/tty:2`].map(q).join(" "), "/dev/null"]);
          expect(ttyBad.stdout).toContain(reg.host);
          expect(ttyBad.stdout).not.toContain(secret);
        }
        const dbg = await runAsync([BIN, "--log", "debug", "copy", ...bad, `oci:${l}:t`, `docker://${reg.host}/interop/denied:1`]);
        expect(dbg.code).toBe(1);
        expect(dbg.stdout + dbg.stderr).not.toContain(secret);
        expect(dbg.stdout + dbg.stderr).not.toContain(Buffer.from(`${reg.user}:${secret}`).toString("base64"));
      });
    }
  });
}

describe("credentials from an auth file", () => {
  let reg: Registry;
  beforeAll(async () => { if (!why) reg = await startRegistry({ auth: "htpasswd", tls: true }); });
  afterAll(async () => { await reg?.stop(); });

  t("--authfile and $REGISTRY_AUTH_FILE (containers auth.json) serve boci and skopeo alike", async () => {
    const { l, manifest } = source();
    const authFile = join(scratch(), "auth.json");
    await Bun.write(authFile, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${reg.user}:${reg.password}`).toString("base64") } } }));
    const ref = `docker://${reg.host}/interop/authfile:1`;
    const pushed = await runAsync([BIN, "copy", "--json", "--dest-authfile", authFile, "--dest-cert-dir", reg.certDir!, `oci:${l}:t`, ref]);
    expect(pushed.code).toBe(0);
    expect(pushed.stdout + pushed.stderr).not.toContain(reg.password!);
    const raw = await runAsync(["skopeo", "inspect", "--raw", "--authfile", authFile, "--cert-dir", reg.certDir!, ref]);
    expect(raw.code).toBe(0);
    expect(raw.stdout).toBe(blobBytes(l, manifest).toString());
    const got = join(scratch(), "authfile-pulled");
    const pulled = await runAsync([BIN, "copy", "--src-cert-dir", reg.certDir!, ref, `oci:${got}:t`], { env: { REGISTRY_AUTH_FILE: authFile } });
    expect(pulled.code).toBe(0);
    expect(checkLayout(got)).toEqual([]);
    expect(index(got).manifests[0].digest).toBe(manifest.digest);
    // without any credentials: refused, exit 1
    const anon = await runAsync([BIN, "copy", "--src-no-creds", "--src-cert-dir", reg.certDir!, ref, `oci:${join(scratch(), "anon")}:t`]);
    expect(anon.code).toBe(1);
    expect(anon.stderr).toContain(reg.host);
  });
});
