/**
 * A real registry for tests: Debian's `docker-registry` (CNCF distribution 2.8) on 127.0.0.1 and a
 * free port, its storage, configuration, certificates and passwords in one scratch directory that
 * `stop()` removes. Auth modes: none; htpasswd (Basic, a bcrypt file made by `htpasswd -Bbn`);
 * token (test/helpers/token-server.ts issues JWTs the registry trusts through `rootcertbundle`).
 * TLS: a CA and a server certificate for 127.0.0.1 (IP SAN) made by `openssl`; `certDir` is a
 * containers certs.d-style directory (`ca.crt`) for `--cert-dir`. Nothing listens beyond loopback.
 *
 * Every registry started is killed when the test process exits, even if a test forgets `stop()`.
 */
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, rmSync, copyFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { startTokenServer, type TokenServer } from "./token-server";

export interface RegistryOptions {
  auth?: "none" | "htpasswd" | "token";
  tls?: boolean;
  /** where the scratch directory (storage included) goes; default $TMPDIR (the bench passes a tmpfs) */
  parent?: string;
  /** token lifetime for auth "token" (seconds) */
  tokenTtlSeconds?: number;
  /**
   * with `tls`: the registry requires a client certificate signed by the test CA; `certDir` then
   * also holds `client.cert` and `client.key` (the containers certs.d names)
   */
  clientCert?: boolean;
}

export interface Registry {
  /** `127.0.0.1:PORT` */
  host: string;
  /** `http(s)://127.0.0.1:PORT` */
  url: string;
  /** the CA certificate (PEM file) that signed the server certificate (tls only) */
  caFile?: string;
  /** a certs.d-style directory for the host holding `ca.crt` (tls only) */
  certDir?: string;
  /** the user and password htpasswd or the token server accepts */
  user?: string;
  password?: string;
  /** the token server (auth "token"): its realm and the requests it saw */
  tokenServer?: TokenServer;
  /** whether the registry requires the client certificate in `certDir` */
  clientCert: boolean;
  /** the registry's storage root (`docker/registry/v2/...` under it) */
  storage: string;
  /** the registry's log so far (stderr and stdout) */
  log(): string;
  /** kill the registry (and its token server) and remove every file it had; idempotent */
  stop(): Promise<void>;
}

/** Why the registry tests cannot run here, or null when they can. */
export function registryMissing(): string | null {
  const missing = ["docker-registry", "openssl", "htpasswd"].filter((t) => !have(t));
  return missing.length ? `needs ${missing.join(", ")} (Debian packages docker-registry, openssl, apache2-utils)` : null;
}

/** Whether `tool` is on PATH (this module is also used by the bench, outside bun test: no ./cli import). */
export function have(tool: string): boolean {
  return Bun.spawnSync(["sh", "-c", `command -v ${tool}`], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
}

/**
 * `setpriv --pdeathsig KILL` where util-linux has it: the registry dies with the test process even
 * when that is killed with SIGKILL (the exit handler below covers every other ending).
 */
const deathSig = have("setpriv") && Bun.spawnSync(["setpriv", "--pdeathsig", "KILL", "true"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0
  ? ["setpriv", "--pdeathsig", "KILL", "--"] : [];

const live = new Set<{ kill(sig?: number | NodeJS.Signals): void }>();
process.on("exit", () => { for (const p of live) { try { p.kill("SIGKILL"); } catch { /* gone */ } } });

function run(cmd: string[], cwd: string): string {
  const p = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd[0]} ${cmd[1] ?? ""} exited ${p.exitCode}: ${p.stderr.toString().trim()}`);
  return p.stdout.toString();
}

/** Bun fetch TLS options trusting the test CA, with the certs.d client certificate when asked. */
function tlsOf(caFile: string, clientDir?: string): { ca: string; cert?: string; key?: string } {
  const ca = readFileSync(caFile, "utf8");
  return clientDir ? { ca, cert: readFileSync(join(clientDir, "client.cert"), "utf8"), key: readFileSync(join(clientDir, "client.key"), "utf8") } : { ca };
}

/** A port free at this moment on 127.0.0.1 (the caller retries if someone takes it meanwhile). */
export function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** CA, server certificate for 127.0.0.1 and the certs.d directory, under `dir`. */
function makeTls(dir: string, clientCert: boolean): { caFile: string; certFile: string; keyFile: string; certDir: string } {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  run(["openssl", "req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=boci test CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], dir);
  run(["openssl", "req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"], dir);
  writeFileSync(join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n");
  run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext"], dir);
  const certDir = join(dir, "certs.d");
  mkdirSync(certDir);
  copyFileSync(join(dir, "ca.crt"), join(certDir, "ca.crt"));
  if (clientCert) {
    run(["openssl", "req", ...ec, "-keyout", join(certDir, "client.key"), "-out", "client.csr", "-subj", "/CN=boci test client"], dir);
    writeFileSync(join(dir, "client.ext"), "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n");
    run(["openssl", "x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", join(certDir, "client.cert"), "-days", "2", "-extfile", "client.ext"], dir);
  }
  return { caFile: join(dir, "ca.crt"), certFile: join(dir, "server.crt"), keyFile: join(dir, "server.key"), certDir };
}

/**
 * Start a registry and wait until `/v2/` answers (200, or 401 behind auth). Throws, with the
 * registry's log, when it does not come up within 20 s; a port taken meanwhile is retried with
 * another. The caller must `stop()` it.
 */
export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const why = registryMissing();
  if (why) throw new Error(`registry harness: ${why}`);
  const auth = opts.auth ?? "none";
  const dir = mkdtempSync(join(opts.parent ?? tmpdir(), "boci-registry-"));
  const storage = join(dir, "storage");
  mkdirSync(storage);
  let token: TokenServer | undefined;
  try {
    if (opts.clientCert && !opts.tls) throw new Error("registry harness: clientCert needs tls");
    const tls = opts.tls ? makeTls(dir, opts.clientCert ?? false) : undefined;
    let user: string | undefined, password: string | undefined;
    let authYaml = "";
    if (auth === "htpasswd" || auth === "token") {
      user = "boci-tester";
      password = "pw-" + randomBytes(9).toString("base64url");
    }
    if (auth === "htpasswd") {
      writeFileSync(join(dir, "htpasswd"), run(["htpasswd", "-Bbn", user!, password!], dir));
      authYaml = `auth:\n  htpasswd:\n    realm: boci-test\n    path: ${join(dir, "htpasswd")}\n`;
    } else if (auth === "token") {
      run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "token.key", "-out", "token.crt", "-days", "2", "-subj", "/CN=boci test token issuer"], dir);
      token = startTokenServer({
        certFile: join(dir, "token.crt"), keyFile: join(dir, "token.key"), user: user!, password: password!,
        ttlSeconds: opts.tokenTtlSeconds, ...(tls ? { tls: { certFile: tls.certFile, keyFile: tls.keyFile } } : {}),
      });
      authYaml = `auth:\n  token:\n    realm: ${token.realm}\n    service: ${token.service}\n    issuer: ${token.issuer}\n    rootcertbundle: ${join(dir, "token.crt")}\n`;
    }
    for (let attempt = 0; ; attempt++) {
      const port = freePort();
      const host = `127.0.0.1:${port}`;
      const config = [
        "version: 0.1",
        "log:\n  level: warn\n  accesslog:\n    disabled: true",
        `storage:\n  filesystem:\n    rootdirectory: ${storage}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false`,
        `http:\n  addr: ${host}\n  secret: ${randomBytes(16).toString("hex")}` + (tls ? `\n  tls:\n    certificate: ${tls.certFile}\n    key: ${tls.keyFile}` : "")
          + (opts.clientCert ? `\n    clientcas:\n      - ${tls!.caFile}` : ""),
        authYaml.trimEnd(),
      ].filter(Boolean).join("\n") + "\n";
      writeFileSync(join(dir, "config.yml"), config);
      const logFile = join(dir, `registry-${attempt}.log`);
      const proc = Bun.spawn([...deathSig, "docker-registry", "serve", join(dir, "config.yml")], {
        cwd: dir, stdin: "ignore", stdout: Bun.file(logFile), stderr: Bun.file(logFile),
      });
      live.add(proc);
      const log = () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
      const url = `${tls ? "https" : "http"}://${host}`;
      const deadline = Date.now() + 20_000;
      let up = false;
      while (Date.now() < deadline && proc.exitCode === null) {
        try {
          const r = await fetch(`${url}/v2/`, { tls: tls ? tlsOf(tls.caFile, opts.clientCert ? tls.certDir : undefined) : undefined, signal: AbortSignal.timeout(2000) });
          await r.arrayBuffer();
          if (r.status === 200 || r.status === 401) { up = true; break; }
        } catch { /* not yet */ }
        await Bun.sleep(50);
      }
      if (!up) {
        proc.kill("SIGKILL");
        await proc.exited;
        live.delete(proc);
        if (/address already in use/.test(log()) && attempt < 5) continue;
        throw new Error(`registry harness: docker-registry did not answer on ${host}: ${log().trim().split("\n").slice(-5).join(" | ")}`);
      }
      let stopped = false;
      return {
        host, url, user, password, storage, log, clientCert: opts.clientCert ?? false,
        caFile: tls?.caFile, certDir: tls?.certDir, tokenServer: token,
        async stop() {
          if (stopped) return;
          stopped = true;
          proc.kill("SIGTERM");
          const t = setTimeout(() => proc.kill("SIGKILL"), 3000);
          await proc.exited;
          clearTimeout(t);
          live.delete(proc);
          await token?.stop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
  } catch (e) {
    await token?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** The blobs (and their sizes) a registry's storage holds, by digest: to check what was pushed without a client. */
export function storedBlobs(reg: Registry): Map<string, number> {
  const out = new Map<string, number>();
  const root = join(reg.storage, "docker/registry/v2/blobs/sha256");
  if (!existsSync(root)) return out;
  const glob = new Bun.Glob("*/*/data");
  for (const p of glob.scanSync({ cwd: root })) {
    const hex = p.split("/")[1];
    out.set(`sha256:${hex}`, statSync(join(root, p)).size);
  }
  return out;
}

/**
 * A request to the registry as its own client would make it, with the harness's credentials
 * (Basic, or a token for the path's repository from the token server) and its CA: for tests to
 * check what a push left, independent of boci's client. `path` starts with `/v2/`.
 */
export async function registryFetch(reg: Registry, path: string, init: { method?: string; headers?: Record<string, string>; actions?: string; body?: Uint8Array } = {}): Promise<Response> {
  const tls = reg.caFile ? tlsOf(reg.caFile, reg.clientCert ? reg.certDir : undefined) : undefined;
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  if (reg.user !== undefined) {
    const basic = "Basic " + Buffer.from(`${reg.user}:${reg.password}`).toString("base64");
    if (reg.tokenServer) {
      const repo = /^\/v2\/(.+?)\/(manifests|blobs|tags|referrers)\//.exec(path)?.[1];
      const q = new URLSearchParams({ service: reg.tokenServer.service });
      if (repo) q.set("scope", `repository:${repo}:${init.actions ?? "pull"}`);
      const tr = await fetch(`${reg.tokenServer.realm}?${q}`, { headers: { authorization: basic }, tls });
      if (!tr.ok) throw new Error(`registry harness: token server answered ${tr.status}`);
      headers.authorization = "Bearer " + ((await tr.json()) as { token: string }).token;
    } else headers.authorization = basic;
  }
  return fetch(path.startsWith("http") ? path : reg.url + path, { method: init.method ?? "GET", headers, tls, body: init.body });
}

/** Upload one blob into `repo` (monolithic POST + PUT), as any client would; returns its digest. */
export async function pushBlob(reg: Registry, repo: string, bytes: Uint8Array): Promise<string> {
  const digest = "sha256:" + new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
  const post = await registryFetch(reg, `/v2/${repo}/blobs/uploads/`, { method: "POST", actions: "pull,push" });
  await post.arrayBuffer();
  if (post.status !== 202) throw new Error(`registry harness: upload start answered ${post.status}`);
  const loc = new URL(post.headers.get("location")!, reg.url);
  loc.searchParams.set("digest", digest);
  const put = await registryFetch(reg, loc.href.replace(reg.url, ""), { method: "PUT", actions: "pull,push", body: bytes, headers: { "content-type": "application/octet-stream" } });
  await put.arrayBuffer();
  if (put.status !== 201) throw new Error(`registry harness: blob upload answered ${put.status}`);
  return digest;
}

/** Put a manifest's exact bytes under `ref` (a tag or its digest) in `repo`. */
export async function pushManifest(reg: Registry, repo: string, ref: string, bytes: Uint8Array, mediaType: string): Promise<void> {
  const r = await registryFetch(reg, `/v2/${repo}/manifests/${ref}`, { method: "PUT", actions: "pull,push", body: bytes, headers: { "content-type": mediaType } });
  const text = await r.text();
  if (r.status !== 201) throw new Error(`registry harness: manifest put answered ${r.status}: ${text.slice(0, 200)}`);
}

export interface RunResult { code: number; stdout: string; stderr: string }

/**
 * Run a command without blocking the event loop: the token server and the fault proxy live in
 * the test process, so a `Bun.spawnSync` of boci or skopeo against them would never get an
 * answer. Killed with SIGKILL after `timeoutMs` (default 100 s).
 */
export async function runAsync(cmd: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const p = Bun.spawn(cmd, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  live.add(p);
  const t = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 100_000);
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const code = await p.exited;
  clearTimeout(t);
  live.delete(p);
  return { code, stdout, stderr };
}
