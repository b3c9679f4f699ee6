/**
 * The contracts between the parts of the registry transport (issue 15), written by different
 * hands at once: keep them stable, extend by adding optional fields.
 *
 *  - credentials.ts  resolveCredentials(): where a registry's user and password come from.
 *  - tls.ts          tlsFor(): the TLS options (CAs, client certificate, verification) for a host.
 *  - client.ts       RegistryClient: the distribution-spec HTTP API with auth, retries, resume.
 *  - reader.ts       RegistryReader: a BlobReader over one repository (copy's source side).
 *  - push.ts         pushImage(): copy's registry destination.
 *
 * Credentials never reach a log line, an error message or JSON output: errors name the
 * registry and the HTTP status, never a header or a token.
 */

/** `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`, normalised as skopeo does (docker.io/library/…). */
export interface DockerReference {
  transport: "docker";
  /** the registry host as given (normalised: `docker.io` for Docker Hub), with `:PORT` if any */
  registry: string;
  /** the repository path, e.g. `library/alpine` */
  repository: string;
  tag?: string;
  digest?: string;
}

export interface Credentials {
  username: string;
  password: string;
  /** an identity token (docker config `identitytoken`): used as a refresh token with the token endpoint */
  identityToken?: string;
}

/** Where credentials and TLS settings come from (the command line of skopeo and boci copy). */
export interface RegistryOptions {
  /** `--creds USER[:PASS]` (or `--src-creds`/`--dest-creds`) already split; wins over files */
  credentials?: Credentials;
  /** `--authfile` (else $REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.docker/config.json) */
  authFile?: string;
  /** `--tls-verify=false`: no certificate check, and plain HTTP allowed */
  tlsVerify?: boolean;
  /** `--cert-dir DIR` (else /etc/containers/certs.d/HOST[:PORT], /etc/docker/certs.d/HOST[:PORT]) */
  certDir?: string;
  /** attempts after the first for connection errors, 5xx and 429 (default 3) */
  retries?: number;
  /** base delay of the exponential backoff in ms (default 500; tests set it small) */
  retryDelayMs?: number;
  /** blobs moved at once (default 4) */
  concurrency?: number;
}

/** TLS settings for Bun's fetch (`tls` option) for one host; `plainHttp` when the host speaks HTTP. */
export interface TlsSettings {
  rejectUnauthorized: boolean;
  /** PEM CA certificates to trust besides the system's */
  ca?: string[];
  /** PEM client certificate and key */
  cert?: string;
  key?: string;
}
