/**
 * The registry flags of `boci copy`, `boci ls` and the skopeo front end, through the real
 * binary against Debian's docker-registry (test/helpers/registry.ts): plain HTTP with
 * `--tls-verify=false`, htpasswd Basic auth over TLS with `--creds`/`--cert-dir` and auth files
 * (flag, $REGISTRY_AUTH_FILE, ~/.docker/config.json, a credential helper), token auth; a wrong
 * password fails with one line that holds no password; `skopeo inspect`/`list-tags` of
 * `docker://` print what Debian's skopeo prints for the same registry. Every run has HOME and
 * XDG_RUNTIME_DIR in a scratch directory, so no auth file of the machine is read.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, type RunResult, scratch } from "../helpers/cli";
import { dir, file, makeImage, makeTar } from "../helpers/image";
import { type Registry, registryMissing, startRegistry } from "../helpers/registry";

const missing = registryMissing() ?? (Bun.which("skopeo") ? null : "needs skopeo (Debian package)");
if (missing) console.warn(`registry-cli tests skipped: ${missing}`);
const maybe = missing ? describe.skip : describe;

const s = scratch("boci-regcli-");
const home = join(s, "home");
const runtime = join(s, "run");
const bin = join(s, "bin");
const link = join(bin, "skopeo");
const L = join(s, "L");
/** HOME and XDG_RUNTIME_DIR of every run: empty unless a test writes an auth file there. */
const ENV: Record<string, string> = { HOME: home, XDG_RUNTIME_DIR: runtime, PATH: `${bin}:${process.env.PATH}`, BOCI_REGISTRY_STALL_MS: "5000" };
const SKOPEO = Bun.which("skopeo") ?? "skopeo";

function run(cmd: string[], env: Record<string, string> = {}): RunResult {
  const e: Record<string, string> = { ...(process.env as Record<string, string>), ...ENV, ...env };
  delete e.REGISTRY_AUTH_FILE;
  if (env.REGISTRY_AUTH_FILE) e.REGISTRY_AUTH_FILE = env.REGISTRY_AUTH_FILE;
  const p = Bun.spawnSync(cmd, { cwd: s, env: e, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}
/**
 * The same, without blocking this process: the token server runs in it (test/helpers/token-server.ts),
 * so a child that asks it for a token must not be waited for by spawnSync.
 */
async function runAsync(cmd: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const e: Record<string, string> = { ...(process.env as Record<string, string>), ...ENV, ...env };
  delete e.REGISTRY_AUTH_FILE;
  const p = Bun.spawn(cmd, { cwd: s, env: e, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}
const boci = (args: string[], env?: Record<string, string>) => run([BIN, ...args], env);
const sk = (args: string[], env?: Record<string, string>) => run([link, ...args], env);
const real = (args: string[], env?: Record<string, string>) => run([SKOPEO, "--insecure-policy", ...args], env);
function ok(r: RunResult, what: string): RunResult {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr}`);
  return r;
}
/** A failure: that exit code, one line on stderr, and none of `secrets` anywhere in the output. */
function fails(r: RunResult, code: number, mentions: string, secrets: string[] = []): void {
  expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code });
  expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(r.stderr).toContain(mentions);
  for (const x of secrets) expect(r.stdout + r.stderr).not.toContain(x);
}
const digestOf = (layout: string, tag: string): string => {
  const ix = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  return ix.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag)!.digest;
};
let fresh = 0;
const newDir = () => join(s, `d${fresh++}`);

let image: ReturnType<typeof makeImage>;
beforeAll(() => {
  for (const d of [home, runtime, bin]) mkdirSync(d, { recursive: true });
  symlinkSync(BIN, link);
  ok(boci(["init", "--layout", L]), "init");
  image = makeImage(L, "t", [
    makeTar([dir("etc/"), file("etc/os-release", "NAME=registry-cli\n")]),
    makeTar([dir("var/"), file("var/data", "y".repeat(3000))]),
  ], { config: { config: { Env: ["PATH=/usr/bin"], Labels: { a: "1" } } } });
});

maybe("plain HTTP registry", () => {
  let reg: Registry;
  beforeAll(async () => { reg = await startRegistry({ auth: "none" }); });
  afterAll(async () => { await reg?.stop(); });

  test("copy to and from it with --dest-tls-verify=false / --src-tls-verify=false / --tls-verify=false; ls lists its tags", () => {
    const ref = `docker://${reg.host}/r2/plain:1`;
    ok(boci(["copy", "--dest-tls-verify=false", `oci:${L}:t`, ref]), "push");
    ok(boci(["copy", "--tls-verify=false", `oci:${L}:t`, `docker://${reg.host}/r2/plain:2`]), "push with --tls-verify=false");
    const d = newDir();
    const j = ok(boci(["copy", "--json", "--src-tls-verify=false", ref, `oci:${d}:x`]), "pull");
    expect(JSON.parse(j.stdout).manifest.digest).toBe(image.manifest.digest);
    expect(digestOf(d, "x")).toBe(image.manifest.digest);
    // In the registry's order (distribution's: not always lexical).
    const lines = (r: RunResult) => r.stdout.split("\n").filter(Boolean).sort();
    expect(lines(ok(boci(["ls", "--layout", `docker://${reg.host}/r2/plain`, "--tls-verify=false"]), "ls"))).toEqual(["1", "2"]);
    expect(lines(ok(boci(["ls", "--tls-verify=false", "--layout", `docker://${reg.host}/r2/plain:ignored`]), "ls"))).toEqual(["1", "2"]);
  });

  test("without --tls-verify=false: HTTPS only, one line", () => {
    fails(boci(["copy", `oci:${L}:t`, `docker://${reg.host}/r2/plain:3`]), 1, reg.host);
    fails(boci(["ls", "--layout", `docker://${reg.host}/r2/plain`]), 1, reg.host);
  });

  test("bad flag values: usage errors (exit 2)", () => {
    fails(boci(["copy", "--dest-tls-verify=maybe", `oci:${L}:t`, `docker://${reg.host}/r2/plain:4`]), 2, "--dest-tls-verify");
    fails(boci(["copy", "--retry-times", "many", `oci:${L}:t`, `docker://${reg.host}/r2/plain:4`]), 2, "--retry-times");
    fails(boci(["copy", "--dest-creds", ":s3cretpw", `oci:${L}:t`, `docker://${reg.host}/r2/plain:4`]), 2, "--dest-creds: username can't be empty", ["s3cretpw"]);
    fails(boci(["copy", "--dest-creds", "u:s3cretpw", "--dest-no-creds", `oci:${L}:t`, `docker://${reg.host}/r2/plain:4`]), 2, "cannot be specified at the same time", ["s3cretpw"]);
    fails(sk(["copy", "--src-registry-token", "s3crettok", `docker://${reg.host}/r2/plain:1`, `oci:${newDir()}:x`]), 6, "--src-registry-token", ["s3crettok"]);
    fails(sk(["inspect", "--creds", "u:s3cretpw", "--no-creds", `docker://${reg.host}/r2/plain:1`]), 2, "creds and no-creds cannot be specified at the same time", ["s3cretpw"]);
    fails(sk(["inspect", "--username", "u", `docker://${reg.host}/r2/plain:1`]), 2, "password must be specified when username is specified");
    fails(sk(["list-tags", "--tls-verify=false", `docker://${reg.host}/r2/plain:1`]), 2, "no tag or digest allowed");
  });

  test("skopeo copy through the symlink: --dest-tls-verify, --src-tls-verify, --retry-times, --digestfile", () => {
    const df = join(s, "digest");
    const r = ok(sk(["copy", "--insecure-policy", "--dest-tls-verify=false", "--retry-times", "2", "--digestfile", df, `oci:${L}:t`, `docker://${reg.host}/r2/sk:1`]), "skopeo copy push");
    expect(r.stdout).toContain("Copying config");
    expect(readFileSync(df, "utf8")).toBe(image.manifest.digest);
    const d = newDir();
    ok(sk(["copy", "--insecure-policy", "--src-tls-verify=false", `docker://${reg.host}/r2/sk:1`, `oci:${d}:x`]), "skopeo copy pull");
    expect(digestOf(d, "x")).toBe(image.manifest.digest);
    // Debian's skopeo reads what boci pushed.
    const raw = ok(real(["inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/r2/sk:1`]), "real inspect --raw");
    expect(raw.stdout).toBe(readFileSync(join(L, "blobs/sha256", image.manifest.digest.slice(7)), "utf8"));
    // The deprecated --tls-verify of copy: warned, and honoured.
    const dep = sk(["copy", "--insecure-policy", "--tls-verify=false", `docker://${reg.host}/r2/sk:1`, `oci:${newDir()}:x`]);
    expect(dep.code).toBe(0);
    expect(dep.stderr).toContain("'--tls-verify' is deprecated");
  });

  test("skopeo inspect and list-tags of docker:// print what Debian's skopeo prints", () => {
    ok(real(["copy", "--dest-tls-verify=false", `oci:${L}:t`, `docker://${reg.host}/r2/cmp:b`]), "real push");
    ok(real(["copy", "--dest-tls-verify=false", `oci:${L}:t`, `docker://${reg.host}/r2/cmp:a`]), "real push");
    const same = (args: string[]) => {
      const want = ok(real(args), `skopeo ${args.join(" ")}`);
      const got = ok(sk(args), `boci-skopeo ${args.join(" ")}`);
      expect(got.stdout).toBe(want.stdout);
    };
    same(["list-tags", "--tls-verify=false", `docker://${reg.host}/r2/cmp`]);
    same(["inspect", "--tls-verify=false", `docker://${reg.host}/r2/cmp:a`]);
    same(["inspect", "--tls-verify=false", "--no-tags", `docker://${reg.host}/r2/cmp:a`]);
    same(["inspect", "--tls-verify=false", "--raw", `docker://${reg.host}/r2/cmp:a`]);
    same(["inspect", "--tls-verify=false", "--config", `docker://${reg.host}/r2/cmp:a`]);
    same(["inspect", "--tls-verify=false", "--format", "{{.Name}} {{.Digest}} {{.RepoTags}}", `docker://${reg.host}/r2/cmp:b`]);
    same(["inspect", "--tls-verify=false", `docker://${reg.host}/r2/cmp@${image.manifest.digest}`]);
    // A repository the registry does not know: both fail.
    expect(sk(["list-tags", "--tls-verify=false", `docker://${reg.host}/r2/none`]).code).not.toBe(0);
  });
});

maybe("htpasswd Basic auth over TLS", () => {
  let reg: Registry;
  beforeAll(async () => { reg = await startRegistry({ auth: "htpasswd", tls: true }); });
  afterAll(async () => { await reg?.stop(); });
  const authFile = (where: string, key?: string): string => {
    mkdirSync(join(where, ".."), { recursive: true });
    writeFileSync(where, JSON.stringify({ auths: { [key ?? reg.host]: { auth: Buffer.from(`${reg.user}:${reg.password}`).toString("base64") } } }));
    return where;
  };

  test("--dest-creds and --dest-cert-dir push; --src-creds and --src-cert-dir pull; --creds and --cert-dir both", () => {
    const creds = `${reg.user}:${reg.password}`;
    const ref = `docker://${reg.host}/r2/basic:1`;
    const r = ok(boci(["copy", "--json", "--dest-creds", creds, "--dest-cert-dir", reg.certDir!, `oci:${L}:t`, ref]), "push");
    expect(r.stdout + r.stderr).not.toContain(reg.password!);
    const d = newDir();
    ok(boci(["copy", "--src-creds", creds, "--src-cert-dir", reg.certDir!, ref, `oci:${d}:x`]), "pull");
    expect(digestOf(d, "x")).toBe(image.manifest.digest);
    const d2 = newDir();
    ok(boci(["copy", "--creds", creds, "--cert-dir", reg.certDir!, ref, `oci:${d2}:x`]), "pull with --creds");
    expect(ok(boci(["ls", "--layout", `docker://${reg.host}/r2/basic`, "--creds", creds, "--cert-dir", reg.certDir!]), "ls").stdout).toBe("1\n");
    // --tls-verify=false: HTTPS without a certificate check, so no --cert-dir needed.
    ok(boci(["copy", "--src-creds", creds, "--src-tls-verify=false", ref, `oci:${newDir()}:x`]), "pull without verification");
  });

  test("credentials from auth files: --authfile, --src-authfile, $REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, ~/.docker/config.json, a helper", () => {
    const ref = `docker://${reg.host}/r2/files:1`;
    const cd = ["--cert-dir", reg.certDir!];
    ok(boci(["copy", "--authfile", authFile(join(s, "af/auth.json")), ...cd, `oci:${L}:t`, ref]), "push --authfile");
    ok(boci(["copy", "--src-authfile", authFile(join(s, "af/https.json"), `https://${reg.host}`), "--src-cert-dir", reg.certDir!, ref, `oci:${newDir()}:x`]), "pull --src-authfile (https:// key)");
    ok(boci(["copy", ...cd, ref, `oci:${newDir()}:x`], { REGISTRY_AUTH_FILE: authFile(join(s, "af/env.json")) }), "pull $REGISTRY_AUTH_FILE");
    const w = join(s, "w1");
    authFile(join(w, "run/containers/auth.json"));
    mkdirSync(join(w, "home"), { recursive: true });
    ok(boci(["copy", ...cd, ref, `oci:${newDir()}:x`], { HOME: join(w, "home"), XDG_RUNTIME_DIR: join(w, "run") }), "pull XDG_RUNTIME_DIR");
    const w2 = join(s, "w2");
    authFile(join(w2, ".docker/config.json"));
    ok(boci(["copy", ...cd, ref, `oci:${newDir()}:x`], { HOME: w2 }), "pull ~/.docker/config.json");
    // A credential helper named by credHelpers, on PATH.
    const w3 = join(s, "w3");
    mkdirSync(join(w3, "bin"), { recursive: true });
    const helper = join(w3, "bin/docker-credential-test");
    writeFileSync(helper, `#!/bin/sh\nread -r server\n[ "$server" = "${reg.host}" ] || { echo "credentials not found in native keychain"; exit 1; }\necho '{"Username":"${reg.user}","Secret":"${reg.password}"}'\n`);
    chmodSync(helper, 0o755);
    mkdirSync(join(w3, ".docker"), { recursive: true });
    writeFileSync(join(w3, ".docker/config.json"), JSON.stringify({ credHelpers: { [reg.host]: "test" } }));
    ok(boci(["copy", ...cd, ref, `oci:${newDir()}:x`], { HOME: w3, PATH: `${join(w3, "bin")}:${process.env.PATH}` }), "pull through a credential helper");
    // skopeo inspect with an auth file, compared with Debian's.
    const af = join(s, "af/auth.json");
    const want = ok(real(["inspect", "--authfile", af, "--cert-dir", reg.certDir!, ref]), "real inspect");
    expect(ok(sk(["inspect", "--authfile", af, "--cert-dir", reg.certDir!, ref]), "inspect").stdout).toBe(want.stdout);
    const wantTags = ok(real(["list-tags", "--authfile", af, "--cert-dir", reg.certDir!, `docker://${reg.host}/r2/files`]), "real list-tags");
    expect(ok(sk(["list-tags", "--authfile", af, "--cert-dir", reg.certDir!, `docker://${reg.host}/r2/files`]), "list-tags").stdout).toBe(wantTags.stdout);
    // --src-no-creds / --no-creds: anonymous even with an auth file that has credentials (refused by this registry).
    fails(boci(["copy", "--authfile", af, "--src-no-creds", ...cd, ref, `oci:${newDir()}:x`]), 1, reg.host, [reg.password!]);
    expect(sk(["inspect", "--authfile", af, "--no-creds", "--cert-dir", reg.certDir!, ref]).code).toBe(1);
    // skopeo's --src-username/--src-password and --dest-creds through the symlink.
    ok(sk(["copy", "--insecure-policy", "--src-username", reg.user!, "--src-password", reg.password!, "--src-cert-dir", reg.certDir!,
      "--dest-creds", `${reg.user}:${reg.password}`, "--dest-cert-dir", reg.certDir!, ref, `docker://${reg.host}/r2/files:2`]), "skopeo copy registry to registry");
    expect(ok(sk(["list-tags", "--creds", `${reg.user}:${reg.password}`, "--cert-dir", reg.certDir!, `docker://${reg.host}/r2/files`]), "list-tags").stdout).toContain('"2"');
    // A malformed auth file: one line naming it.
    writeFileSync(join(s, "af/bad.json"), `{"auths": {"${reg.host}": {"auth": "${reg.password}"`);
    fails(boci(["copy", "--authfile", join(s, "af/bad.json"), ...cd, ref, `oci:${newDir()}:x`]), 1, `auth file ${join(s, "af/bad.json")}: invalid JSON`, [reg.password!]);
  });

  test("a wrong password, no credentials, no CA: one line each, no password anywhere (--log debug and --json included)", () => {
    const ref = `docker://${reg.host}/r2/basic:1`;
    const wrong = `${reg.user}:wrong-${reg.password}`;
    for (const args of [
      ["copy", "--dest-creds", wrong, "--dest-cert-dir", reg.certDir!, `oci:${L}:t`, ref],
      ["copy", "--json", "--src-creds", wrong, "--src-cert-dir", reg.certDir!, ref, `oci:${newDir()}:x`],
      ["--log", "debug", "copy", "--src-creds", wrong, "--src-cert-dir", reg.certDir!, ref, `oci:${newDir()}:x`],
      ["ls", "--layout", `docker://${reg.host}/r2/basic`, "--creds", wrong, "--cert-dir", reg.certDir!],
    ]) {
      const r = boci(args);
      expect(r.code).toBe(1);
      if (!args.includes("debug")) expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain(reg.host);
      expect(r.stdout + r.stderr).not.toContain(reg.password!);
      expect(r.stdout + r.stderr).not.toContain(Buffer.from(wrong).toString("base64"));
    }
    const sr = sk(["--debug", "inspect", "--creds", wrong, "--cert-dir", reg.certDir!, ref]);
    expect(sr.code).toBe(1);
    expect(sr.stdout + sr.stderr).not.toContain(reg.password!);
    fails(boci(["copy", "--dest-cert-dir", reg.certDir!, `oci:${L}:t`, ref]), 1, reg.host);
    fails(boci(["copy", "--dest-creds", `${reg.user}:${reg.password}`, `oci:${L}:t`, ref]), 1, reg.host, [reg.password!]);
    // Help never shows a value.
    expect(ok(boci(["copy", "--help"]), "help").stdout).not.toContain(reg.password!);
  });
});

maybe("token auth", () => {
  let reg: Registry;
  beforeAll(async () => { reg = await startRegistry({ auth: "token" }); });
  afterAll(async () => { await reg?.stop(); });

  test("--dest-creds through the token server; skopeo list-tags as Debian's", async () => {
    const creds = `${reg.user}:${reg.password}`;
    const ref = `docker://${reg.host}/r2/tok:1`;
    ok(await runAsync([BIN, "copy", "--dest-tls-verify=false", "--dest-creds", creds, `oci:${L}:t`, ref]), "push");
    const d = newDir();
    ok(await runAsync([BIN, "copy", "--src-tls-verify=false", "--src-creds", creds, ref, `oci:${d}:x`]), "pull");
    expect(digestOf(d, "x")).toBe(image.manifest.digest);
    const args = ["list-tags", "--tls-verify=false", "--creds", creds, `docker://${reg.host}/r2/tok`];
    expect(ok(await runAsync([link, ...args]), "list-tags").stdout).toBe(ok(await runAsync([SKOPEO, ...args]), "real list-tags").stdout);
    fails(await runAsync([BIN, "copy", "--src-tls-verify=false", "--src-creds", `${reg.user}:nope-${reg.password}`, ref, `oci:${newDir()}:x`]), 1, reg.host, [reg.password!]);
  });
});
