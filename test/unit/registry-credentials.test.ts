/**
 * resolveCredentials, parseCredsFlag and tlsFor: auth files in every location (HOME,
 * XDG_RUNTIME_DIR, XDG_CONFIG_HOME, DOCKER_CONFIG, REGISTRY_AUTH_FILE pointed at scratch
 * directories), their precedence and key forms, a fake docker-credential helper on PATH,
 * malformed files (one line, no secret), and certs.d directories with a CA and a client
 * certificate made by openssl here; a TLS handshake through Bun's fetch with what tlsFor returns.
 */
import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BociError, UsageError } from "../../src/errors";
import {
  authFilePaths, normalizeAuthKey, parseCredsFlag, resolveCredentials, credentialsFromHelper, ANONYMOUS,
  type CredentialEnv,
} from "../../src/transport/registry/credentials";
import { tlsFor, isLoopback, systemCertificates } from "../../src/transport/registry/tls";

const scratch = mkdtempSync(join(tmpdir(), "boci-creds-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let n = 0;
/** A fresh HOME, runtime dir and PATH (with only a bin dir of ours plus the system's). */
function world(): { home: string; run: string; bin: string; env: CredentialEnv } {
  const root = join(scratch, `w${n++}`);
  const home = join(root, "home");
  const run = join(root, "run");
  const bin = join(root, "bin");
  for (const d of [home, run, bin]) mkdirSync(d, { recursive: true });
  return { home, run, bin, env: { HOME: home, XDG_RUNTIME_DIR: run, PATH: `${bin}:/usr/bin:/bin` } };
}

const b64 = (s: string) => Buffer.from(s).toString("base64");
function put(file: string, content: unknown): string {
  mkdirSync(join(file, ".."), { recursive: true });
  writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content));
  return file;
}
const authsOf = (entries: Record<string, string>) => ({ auths: Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, { auth: b64(v) }])) });

/** Errors thrown by an async call, as a BociError. */
async function failure(p: Promise<unknown>): Promise<BociError> {
  try { await p; } catch (e) { return e as BociError; }
  throw new Error("expected a failure");
}

describe("parseCredsFlag", () => {
  test("USER:PASS splits at the first colon", () => {
    expect(parseCredsFlag("alice:pa:ss")).toEqual({ username: "alice", password: "pa:ss" });
    expect(parseCredsFlag("alice:")).toEqual({ username: "alice", password: "" });
  });
  test("USER alone: empty password, as skopeo 1.9.3 (no prompt)", () => {
    expect(parseCredsFlag("alice")).toEqual({ username: "alice", password: "" });
  });
  test("empty value or empty user: usage error naming the flag, not the value", () => {
    for (const [v, msg] of [["", "credentials can't be empty"], [":s3cret", "username can't be empty"]] as const) {
      let err: unknown;
      try { parseCredsFlag(v, "dest-creds"); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).exitCode).toBe(2);
      expect((err as Error).message).toBe(`--dest-creds: ${msg}`);
      expect((err as Error).message).not.toContain("s3cret");
    }
  });
});

describe("auth file locations and precedence", () => {
  test("the search order (containers/image's)", () => {
    const w = world();
    const paths = authFilePaths({}, w.env).map((p) => p.path);
    expect(paths).toEqual([
      join(w.run, "containers/auth.json"), join(w.home, ".config/containers/auth.json"),
      join(w.home, ".docker/config.json"), join(w.home, ".dockercfg"),
    ]);
    expect(authFilePaths({ authFile: "/x/a.json" }, { ...w.env, REGISTRY_AUTH_FILE: "/y/b.json" })[0]!.path).toBe("/x/a.json");
    expect(authFilePaths({}, { ...w.env, REGISTRY_AUTH_FILE: "/y/b.json" })[0]!.path).toBe("/y/b.json");
    expect(authFilePaths({}, { ...w.env, XDG_CONFIG_HOME: "/cfg", DOCKER_CONFIG: "/dc" }).map((p) => p.path).slice(1, 3)).toEqual(["/cfg/containers/auth.json", "/dc/config.json"]);
    // A runtime dir that does not exist is skipped (warned).
    expect(authFilePaths({}, { ...w.env, XDG_RUNTIME_DIR: join(w.run, "nope") })[0]!.path).toBe(join(w.home, ".config/containers/auth.json"));
    expect(authFilePaths({}, { HOME: w.home }).at(-1)).toEqual({ path: join(w.home, ".dockercfg"), legacy: true });
  });

  test("each location is read, the first with credentials wins", async () => {
    const w = world();
    const reg = "127.0.0.1:5000";
    const get = (opts = {}, env = w.env) => resolveCredentials(reg, opts, { env });
    expect(await get()).toBeNull();
    put(join(w.home, ".dockercfg"), { [reg]: { auth: b64("legacy:p0") } });
    expect(await get()).toEqual({ username: "legacy", password: "p0" });
    put(join(w.home, ".docker/config.json"), authsOf({ [reg]: "docker:p1" }));
    expect(await get()).toEqual({ username: "docker", password: "p1" });
    put(join(w.home, ".config/containers/auth.json"), authsOf({ [reg]: "xdgcfg:p2" }));
    expect(await get()).toEqual({ username: "xdgcfg", password: "p2" });
    put(join(w.run, "containers/auth.json"), authsOf({ [reg]: "runtime:p3" }));
    expect(await get()).toEqual({ username: "runtime", password: "p3" });
    const envFile = put(join(w.home, "env.json"), authsOf({ [reg]: "envfile:p4" }));
    expect(await get({}, { ...w.env, REGISTRY_AUTH_FILE: envFile })).toEqual({ username: "envfile", password: "p4" });
    const flagFile = put(join(w.home, "flag.json"), authsOf({ [reg]: "flagfile:p5" }));
    expect(await get({ authFile: flagFile }, { ...w.env, REGISTRY_AUTH_FILE: envFile })).toEqual({ username: "flagfile", password: "p5" });
    // --creds wins over every file; empty credentials (--no-creds) are anonymous.
    expect(await get({ authFile: flagFile, credentials: { username: "cli", password: "p6" } })).toEqual({ username: "cli", password: "p6" });
    expect(await get({ authFile: flagFile, credentials: ANONYMOUS })).toBeNull();
    // An --authfile that does not exist: the other files are still read (as containers/image).
    expect(await get({ authFile: join(w.home, "missing.json") })).toEqual({ username: "xdgcfg", password: "p2" });
    // A file with an entry for another host only: the search goes on.
    put(join(w.run, "containers/auth.json"), authsOf({ "other:5000": "x:y" }));
    expect(await get()).toEqual({ username: "xdgcfg", password: "p2" });
    // DOCKER_CONFIG replaces ~/.docker.
    rmSync(join(w.home, ".config"), { recursive: true });
    const dc = join(w.home, "dc");
    put(join(dc, "config.json"), authsOf({ [reg]: "dockerconfig:p7" }));
    expect(await get({}, { ...w.env, DOCKER_CONFIG: dc })).toEqual({ username: "dockerconfig", password: "p7" });
  });

  test("key forms: host, https://host, host/v1/, namespaces, docker.io's index URL", async () => {
    const w = world();
    const file = join(w.home, "a.json");
    const get = (reg: string, entries: Record<string, string>, repository?: string) => {
      put(file, authsOf(entries));
      return resolveCredentials(reg, { authFile: file }, { env: { HOME: w.home }, repository });
    };
    expect(await get("reg.example:5000", { "https://reg.example:5000": "a:1" })).toEqual({ username: "a", password: "1" });
    expect(await get("reg.example:5000", { "http://reg.example:5000/v1/": "a:2" })).toEqual({ username: "a", password: "2" });
    expect(await get("reg.example:5000", { "reg.example:5000/v1/": "a:3" })).toEqual({ username: "a", password: "3" });
    expect(await get("docker.io", { "https://index.docker.io/v1/": "hub:4" })).toEqual({ username: "hub", password: "4" });
    expect(await get("docker.io", { "registry-1.docker.io": "hub:5" })).toEqual({ username: "hub", password: "5" });
    // The exact host wins over a normalised key; the longest namespace wins over the host.
    expect(await get("reg.example", { "https://reg.example": "n:1", "reg.example": "exact:2" })).toEqual({ username: "exact", password: "2" });
    const ns = { "reg.example": "host:1", "reg.example/team": "team:2", "reg.example/team/app": "app:3" };
    expect(await get("reg.example", ns, "team/app")).toEqual({ username: "app", password: "3" });
    expect(await get("reg.example", ns, "team/other")).toEqual({ username: "team", password: "2" });
    expect(await get("reg.example", ns, "solo")).toEqual({ username: "host", password: "1" });
    expect(await get("reg.example", ns)).toEqual({ username: "host", password: "1" });
    // A port is part of the host: no match for another port.
    expect(await get("reg.example:5001", { "reg.example:5000": "a:1" })).toBeNull();
    // Password with colons; NULs trimmed as Docker does.
    expect(await get("h", { h: "u:p:w\0" })).toEqual({ username: "u", password: "p:w" });
  });

  test("identitytoken; an entry without a password or a colon is no credential", async () => {
    const w = world();
    const file = put(join(w.home, "a.json"), { auths: { h1: { auth: b64("u:"), identitytoken: "refresh-tok" }, h2: { auth: b64("nocolon") }, h3: { auth: b64("u:") }, h4: { identitytoken: "t4" } } });
    const get = (reg: string) => resolveCredentials(reg, { authFile: file }, { env: { HOME: w.home } });
    expect(await get("h1")).toEqual({ username: "u", password: "", identityToken: "refresh-tok" });
    expect(await get("h2")).toBeNull();
    expect(await get("h3")).toBeNull();
    expect(await get("h4")).toEqual({ username: "", password: "", identityToken: "t4" });
  });

  test("malformed and unreadable files: one line naming the file, never its content", async () => {
    const w = world();
    const file = join(w.home, "bad.json");
    const get = () => failure(resolveCredentials("h", { authFile: file }, { env: { HOME: w.home } }));
    const cases: [string, string][] = [
      ['{"auths": {"h": {"auth": "s3cretvalue"', "invalid JSON"],
      ['{"auths": {"h": {"auth": s3cretvalue}}}', "invalid JSON"],
      ["", "empty file, not JSON"],
      ["[1]", "not a JSON object"],
      ['{"auths": ["s3cretvalue"]}', '"auths" is not an object'],
      ['{"auths": {"h": "s3cretvalue"}}', 'auths entry "h" is not an object'],
      ['{"auths": {"h": {"auth": "s3cret!value"}}}', 'auths entry "h": "auth" is not base64'],
      ['{"credHelpers": {"h": 1}}', '"credHelpers" is not an object of helper names'],
      ['{"credsStore": 7}', '"credsStore" is not a helper name'],
    ];
    for (const [content, why] of cases) {
      put(file, content);
      const e = await get();
      expect(e).toBeInstanceOf(BociError);
      expect(e.exitCode).toBe(1);
      expect(e.message).toBe(`auth file ${file}: ${why}`);
      expect(e.message).not.toContain("s3cret");
    }
    mkdirSync(join(w.home, "dir.json"));
    const d = await failure(resolveCredentials("h", { authFile: join(w.home, "dir.json") }, { env: { HOME: w.home } }));
    expect(d.message).toBe(`auth file ${join(w.home, "dir.json")}: is a directory`);
    if (process.getuid?.() !== 0) {
      put(file, authsOf({ h: "u:p" }));
      chmodSync(file, 0);
      expect((await get()).message).toBe(`auth file ${file}: permission denied`);
    }
    // A malformed file later in the order is an error too when it is reached.
    const w2 = world();
    put(join(w2.home, ".docker/config.json"), "{nope");
    const e2 = await failure(resolveCredentials("h", {}, { env: w2.env }));
    expect(e2.message).toBe(`auth file ${join(w2.home, ".docker/config.json")}: invalid JSON`);
    // ... and not when an earlier file already gave credentials.
    put(join(w2.run, "containers/auth.json"), authsOf({ h: "u:p" }));
    expect(await resolveCredentials("h", {}, { env: w2.env })).toEqual({ username: "u", password: "p" });
  });

  test("normalizeAuthKey", () => {
    expect(normalizeAuthKey("https://index.docker.io/v1/")).toBe("index.docker.io");
    expect(normalizeAuthKey("docker.io")).toBe("index.docker.io");
    expect(normalizeAuthKey("http://r:5000/v2/")).toBe("r:5000");
    expect(normalizeAuthKey("r:5000")).toBe("r:5000");
  });
});

describe("credential helpers", () => {
  /** docker-credential-NAME: a shell script answering from a table, logging what it was asked. */
  function helper(bin: string, name: string, body: string): string {
    const f = join(bin, `docker-credential-${name}`);
    writeFileSync(f, `#!/bin/sh\n[ "$1" = get ] || exit 9\nread -r server\necho "$server" >> "${f}.asked"\n${body}\n`);
    chmodSync(f, 0o755);
    return f;
  }

  test("credHelpers[host] and credsStore run docker-credential-NAME get with the server on stdin", async () => {
    const w = world();
    const test1 = helper(w.bin, "test", `case "$server" in
  h1:5000) echo '{"ServerURL":"h1:5000","Username":"helped","Secret":"hs3cret"}';;
  tok) echo '{"ServerURL":"tok","Username":"<token>","Secret":"idtok"}';;
  *) echo "credentials not found in native keychain"; exit 1;;
esac`);
    helper(w.bin, "store", `echo '{"Username":"stored","Secret":"ss3cret"}'`);
    const file = put(join(w.home, "a.json"), { auths: { h1: { auth: b64("file:p") }, "h3": {} }, credHelpers: { "h1:5000": "test", tok: "test", nf: "test" }, credsStore: "store" });
    const get = (reg: string) => resolveCredentials(reg, { authFile: file }, { env: w.env });
    expect(await get("h1:5000")).toEqual({ username: "helped", password: "hs3cret" });
    expect(readFileSync(`${test1}.asked`, "utf8")).toBe("h1:5000\n");
    expect(await get("tok")).toEqual({ username: "", password: "", identityToken: "idtok" });
    // The helper has none: no credentials from this file, and the credHelpers entry wins over auths/credsStore.
    expect(await get("nf")).toBeNull();
    // auths entry first, then credsStore (an empty auths entry, as docker login leaves with a store).
    expect(await get("h1")).toEqual({ username: "file", password: "p" });
    expect(await get("h3")).toEqual({ username: "stored", password: "ss3cret" });
    expect(await get("elsewhere")).toEqual({ username: "stored", password: "ss3cret" });
  });

  test("a missing helper is skipped (warned); a failing one is one line naming it, not its output", async () => {
    const w = world();
    helper(w.bin, "broken", `echo "oops leaked-s3cret" >&2; echo "leaked-s3cret"; exit 3`);
    helper(w.bin, "garbage", `echo "leaked-s3cret not json"`);
    helper(w.bin, "shape", `echo '{"Username":"u"}'`);
    const file = join(w.home, "a.json");
    const get = (helpers: Record<string, string>) => {
      put(file, { credHelpers: helpers, auths: {} });
      return resolveCredentials("h", { authFile: file }, { env: w.env });
    };
    expect(await get({ h: "absent" })).toBeNull();
    for (const [name, what] of [["broken", "failed (exit status 3)"], ["garbage", "answered something that is not JSON"], ["shape", 'answered JSON without a "Username" and "Secret"'], ["../evil", "is not a valid helper name"]] as const) {
      const e = await failure(get({ h: name }));
      expect(e).toBeInstanceOf(BociError);
      expect(e.exitCode).toBe(1);
      expect(e.message).toBe(`registry h: credential helper docker-credential-${name} ${what}`);
      expect(e.message).not.toContain("s3cret");
    }
  });

  test("credentialsFromHelper directly, with its own env", async () => {
    const w = world();
    helper(w.bin, "env", `echo "{\\"Username\\":\\"$HELPER_USER\\",\\"Secret\\":\\"x\\"}"`);
    expect(await credentialsFromHelper("env", "r", { ...w.env, HELPER_USER: "from-env" })).toEqual({ username: "from-env", password: "x" });
  });
});

describe("tlsFor", () => {
  const pki = join(scratch, "pki");
  const ssl = (...args: string[]) => {
    const p = Bun.spawnSync(["openssl", ...args], { cwd: pki, stderr: "pipe" });
    if (p.exitCode !== 0) throw new Error(`openssl ${args[0]}: ${p.stderr.toString()}`);
  };
  const haveOpenssl = Bun.which("openssl") !== null;
  let made = false;
  function makePki(): void {
    if (made) return;
    mkdirSync(pki, { recursive: true });
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=boci test ca");
    writeFileSync(join(pki, "srv.ext"), "subjectAltName=IP:127.0.0.1\n");
    writeFileSync(join(pki, "cli.ext"), "extendedKeyUsage=clientAuth\n");
    for (const who of ["srv", "cli"]) {
      ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${who}.key`, "-out", `${who}.csr`, "-subj", `/CN=${who === "srv" ? "127.0.0.1" : "boci client"}`);
      ssl("x509", "-req", "-in", `${who}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${who}.crt`, "-days", "2", "-extfile", `${who}.ext`);
    }
    made = true;
  }
  const read = (f: string) => readFileSync(join(pki, f), "utf8");
  /** A certs.d-style directory with the given files copied from the pki. */
  function certDir(files: Record<string, string>): string {
    const d = join(scratch, `certs${n++}`);
    mkdirSync(d, { recursive: true });
    for (const [name, src] of Object.entries(files)) writeFileSync(join(d, name), src.startsWith("=") ? src.slice(1) : read(src));
    return d;
  }
  beforeEach(() => { if (haveOpenssl) makePki(); });

  test("defaults: verify, https only, no extra CA", () => {
    expect(tlsFor("127.0.0.1:5000", {}, { certsDirs: [] })).toEqual({ tls: { rejectUnauthorized: true }, plainHttp: false });
    expect(tlsFor("127.0.0.1:5000", { tlsVerify: true }, { certsDirs: [] }).plainHttp).toBe(false);
    expect(tlsFor("127.0.0.1:5000", { tlsVerify: false }, { certsDirs: [] })).toEqual({ tls: { rejectUnauthorized: false }, plainHttp: true });
    expect(isLoopback("127.0.0.1:5000") && isLoopback("localhost") && isLoopback("[::1]:5000")).toBe(true);
    expect(isLoopback("reg.example:5000")).toBe(false);
  });

  test.skipIf(!haveOpenssl)("--cert-dir: *.crt CAs after the system bundle, *.cert + *.key client pair", () => {
    const d = certDir({ "ca.crt": "ca.crt", "client.cert": "cli.crt", "client.key": "cli.key", "README": "=not a cert" });
    const t = tlsFor("127.0.0.1:5000", { certDir: d }, { certsDirs: [] });
    expect(t.certDir).toBe(d);
    expect(t.tls.rejectUnauthorized).toBe(true);
    expect(t.tls.ca).toEqual([...systemCertificates(), read("ca.crt")]);
    expect(t.tls.cert).toBe(read("cli.crt"));
    expect(t.tls.key).toBe(read("cli.key"));
    // tls-verify=false still presents the client certificate.
    const t2 = tlsFor("127.0.0.1:5000", { certDir: d, tlsVerify: false }, { certsDirs: [] });
    expect(t2.tls.cert).toBe(read("cli.crt"));
    expect(t2.plainHttp).toBe(true);
    // A client pair alone: no ca (Bun's defaults).
    expect(tlsFor("h", { certDir: certDir({ "c.cert": "cli.crt", "c.key": "cli.key" }) }, { certsDirs: [] }).tls.ca).toBeUndefined();
  });

  test.skipIf(!haveOpenssl)("certs.d/HOST[:PORT]: the first root that has the host", () => {
    const roots = [join(scratch, `r${n++}`), join(scratch, `r${n++}`)];
    mkdirSync(join(roots[1]!, "127.0.0.1:5000"), { recursive: true });
    writeFileSync(join(roots[1]!, "127.0.0.1:5000/ca.crt"), read("ca.crt"));
    expect(tlsFor("127.0.0.1:5000", {}, { certsDirs: roots }).certDir).toBe(join(roots[1]!, "127.0.0.1:5000"));
    expect(tlsFor("127.0.0.1:5001", {}, { certsDirs: roots }).certDir).toBeUndefined();
    // An empty directory for the host in the first root wins, as containers/image (the first that exists).
    mkdirSync(join(roots[0]!, "127.0.0.1:5000"), { recursive: true });
    const t = tlsFor("127.0.0.1:5000", {}, { certsDirs: roots });
    expect(t.certDir).toBe(join(roots[0]!, "127.0.0.1:5000"));
    expect(t.tls.ca).toBeUndefined();
    // $HOME/.config/containers/certs.d is the first default root.
    const home = join(scratch, `home${n++}`);
    mkdirSync(join(home, ".config/containers/certs.d/reg:1"), { recursive: true });
    expect(tlsFor("reg:1", {}, { env: { HOME: home } }).certDir).toBe(join(home, ".config/containers/certs.d/reg:1"));
  });

  test.skipIf(!haveOpenssl)("bad directories: one line naming the file, never a key's content", () => {
    const cases: [Record<string, string>, (d: string) => string][] = [
      [{ "client.cert": "cli.crt" }, (d) => `certificate file ${d}/client.cert: missing key client.key for this client certificate (CA certificates should use the extension .crt)`],
      [{ "client.key": "cli.key" }, (d) => `certificate file ${d}/client.key: missing client certificate client.cert for this key`],
      [{ "ca.crt": "=garbage s3cret" }, (d) => `certificate file ${d}/ca.crt: no PEM certificate in it`],
      [{ "c.cert": "cli.crt", "c.key": "=s3cret not a key" }, (d) => `certificate file ${d}/c.key: no PEM private key in it`],
    ];
    for (const [files, msg] of cases) {
      const d = certDir(files);
      let err: BociError | undefined;
      try { tlsFor("127.0.0.1:5000", { certDir: d }, { certsDirs: [] }); } catch (e) { err = e as BociError; }
      expect(err).toBeInstanceOf(BociError);
      expect(err!.exitCode).toBe(1);
      expect(err!.message).toBe(`registry 127.0.0.1:5000: ${msg(d)}`);
      expect(err!.message).not.toContain("s3cret");
    }
    const d = certDir({});
    mkdirSync(join(d, "x.crt"));
    expect(() => tlsFor("h", { certDir: d }, { certsDirs: [] })).toThrow(`registry h: certificate file ${d}/x.crt: is a directory`);
  });

  test.skipIf(!haveOpenssl)("Bun's fetch with tlsFor's settings: the CA verifies the server, the client certificate is presented", async () => {
    // The server requires a client certificate the CA signed.
    const server = Bun.serve({
      port: 0, hostname: "127.0.0.1",
      tls: { cert: read("srv.crt"), key: read("srv.key"), ca: read("ca.crt"), requestCert: true, rejectUnauthorized: true },
      fetch: () => new Response("ok"),
    });
    try {
      const host = `127.0.0.1:${server.port}`;
      const url = `https://${host}/v2/`;
      const full = tlsFor(host, { certDir: certDir({ "ca.crt": "ca.crt", "client.cert": "cli.crt", "client.key": "cli.key" }) }, { certsDirs: [] });
      expect((await fetch(url, { tls: full.tls })).status).toBe(200);
      // The CA alone: the server verifies, but refuses a client without a certificate.
      const caOnly = tlsFor(host, { certDir: certDir({ "ca.crt": "ca.crt" }) }, { certsDirs: [] });
      await expect(fetch(url, { tls: caOnly.tls })).rejects.toThrow();
      // Without the CA the server's certificate does not verify; with --tls-verify=false it is not checked.
      const clientOnly = tlsFor(host, { certDir: certDir({ "client.cert": "cli.crt", "client.key": "cli.key" }) }, { certsDirs: [] });
      await expect(fetch(url, { tls: clientOnly.tls })).rejects.toThrow();
      const insecure = tlsFor(host, { certDir: certDir({ "client.cert": "cli.crt", "client.key": "cli.key" }), tlsVerify: false }, { certsDirs: [] });
      expect((await fetch(url, { tls: insecure.tls })).status).toBe(200);
    } finally { server.stop(true); }
  });
});
