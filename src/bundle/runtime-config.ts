/**
 * Generate a bundle's runtime-spec `config.json` from an OCI image config, as umoci 0.6 does
 * (UM `oci/config/convert/{runtime,default}.go`, `oci/layer/unpack.go`; oci-reference §4,
 * umoci-behaviour §4). The template is runc-like; the image config is mapped onto it; ID maps
 * add a user namespace; `--rootless` rewrites what an unprivileged runc cannot do.
 */
import * as fs from "node:fs";
import { type BociError, InvalidError, UnsupportedError } from "../errors";
import type { IdMapping, MapOptions } from "../layer/idmap";
import { ID_RANGE_CODE, readFileInRoot, resolveUser, type ResolvedUser } from "./passwd";

/** The runtime-spec version umoci 0.6.0 vendors (its `-dev` suffix, if any, stripped). */
export const RUNTIME_SPEC_VERSION = "1.2.1";

export const ANNOTATION_OS = "org.opencontainers.image.os";
export const ANNOTATION_ARCH = "org.opencontainers.image.architecture";
export const ANNOTATION_VARIANT = "org.opencontainers.image.variant";
export const ANNOTATION_OS_VERSION = "org.opencontainers.image.os.version";
export const ANNOTATION_OS_FEATURES = "org.opencontainers.image.os.features";
export const ANNOTATION_AUTHOR = "org.opencontainers.image.author";
export const ANNOTATION_CREATED = "org.opencontainers.image.created";
export const ANNOTATION_STOP_SIGNAL = "org.opencontainers.image.stopSignal";
export const ANNOTATION_EXPOSED_PORTS = "org.opencontainers.image.exposedPorts";

export interface RuntimeConfigOptions {
  /** `root.path`; default "rootfs". */
  rootfsName?: string;
  /**
   * The real rootfs directory, used to read `etc/passwd` and `etc/group` (in-root, never
   * following links out of it). null/undefined: only numeric users resolve; anything else
   * warns and falls back to root:root.
   */
  rootfsPath?: string | null;
  mapOptions: MapOptions;
  onWarning?: (msg: string) => void;
  /** Host resolv.conf bind-mounted in rootless mode; default /etc/resolv.conf. */
  hostResolvConf?: string;
  /** mountinfo used to find the resolv.conf mount's locked flags; default /proc/self/mountinfo. */
  mountInfoPath?: string;
}

interface SpecMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

interface SpecUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
}

interface SpecProcess {
  terminal: boolean;
  user: SpecUser;
  args: string[];
  env: string[];
  cwd: string;
  capabilities: Record<string, string[]>;
  rlimits: { type: string; hard: number; soft: number }[];
  noNewPrivileges: boolean;
}

interface SpecLinux {
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
  resources?: { devices: { allow: boolean; access: string }[] };
  namespaces: { type: string }[];
  maskedPaths: string[];
  readonlyPaths: string[];
}

interface Spec {
  ociVersion: string;
  process: SpecProcess;
  root: { path: string };
  hostname: string;
  mounts: SpecMount[];
  annotations?: Record<string, string>;
  linux: SpecLinux;
}

const DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/** umoci's template (`convert.Example()`), derived from `runc spec`. */
function template(): Spec {
  return {
    ociVersion: RUNTIME_SPEC_VERSION,
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: ["sh"],
      env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
      cwd: "/",
      capabilities: {
        bounding: [...DEFAULT_CAPS],
        effective: [...DEFAULT_CAPS],
        inheritable: [...DEFAULT_CAPS],
        permitted: [...DEFAULT_CAPS],
        ambient: [...DEFAULT_CAPS],
      },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs" },
    hostname: "umoci-default",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
      {
        destination: "/dev/pts",
        type: "devpts",
        source: "devpts",
        options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
      },
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
      { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
      { destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "noexec", "nodev", "relatime", "ro"] },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: "rwm" }] },
      namespaces: [{ type: "cgroup" }, { type: "pid" }, { type: "network" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }],
      maskedPaths: [
        "/proc/kcore",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
      ],
      readonlyPaths: ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
  };
}

// ---- reading the image config (parsed JSON; unknown keys ignored, null = absent) ----

function bad(field: string, want: string): InvalidError {
  return new InvalidError(`image config: ${field} must be ${want}`);
}

function optString(obj: Record<string, unknown>, key: string, field: string): string {
  const v = obj[key];
  if (v === undefined || v === null) return "";
  if (typeof v !== "string") throw bad(field, "a string");
  return v;
}

function optStringArray(obj: Record<string, unknown>, key: string, field: string): string[] {
  const v = obj[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw bad(field, "an array of strings");
  return v as string[];
}

function optObject(obj: Record<string, unknown>, key: string, field: string): Record<string, unknown> {
  const v = obj[key];
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw bad(field, "an object");
  return v as Record<string, unknown>;
}

/** Compare strings by UTF-8 bytes, as Go's sort.Strings and map-key ordering do. */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

const RFC3339_RE = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Re-render an RFC 3339 timestamp the way Go's `Format(time.RFC3339Nano)` prints a parsed
 * time: fraction truncated to 9 digits with trailing zeros removed, a zero offset as `Z`.
 * Unparseable input is returned unchanged.
 */
export function formatRFC3339Nano(created: string): string {
  const m = RFC3339_RE.exec(created);
  if (!m) return created;
  const frac = (m[3] ?? "").slice(0, 9).replace(/0+$/, "");
  const zone = m[4] === "+00:00" || m[4] === "-00:00" ? "Z" : m[4];
  return `${m[1]}T${m[2]}${frac ? "." + frac : ""}${zone}`;
}

/** Split `NAME=value`; the name must be non-empty. */
function parseEnv(entry: string): [string, string] {
  const eq = entry.indexOf("=");
  if (eq < 0) throw new InvalidError(`parsing image.Config.Env: environment variable must contain '=': ${entry}`);
  if (eq === 0) throw new InvalidError(`parsing image.Config.Env: environment variable must have non-empty name: ${entry}`);
  return [entry.slice(0, eq), entry.slice(eq + 1)];
}

/** Set NAME=value, replacing the first existing NAME= entry, else appending. */
function setEnv(env: string[], name: string, value: string): void {
  const entry = `${name}=${value}`;
  const idx = env.findIndex((e) => e.startsWith(name + "="));
  if (idx >= 0) env[idx] = entry;
  else env.push(entry);
}

const u32 = (n: number): number => Number(BigInt.asUintN(32, BigInt(Math.trunc(n))));

// ---- rootless: locked mount flags of the resolv.conf source ----

function unescapeMountInfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * The mount flags locked by CL_UNPRIVILEGED on the mount holding `realPath`, given the text of
 * /proc/self/mountinfo. umoci reads them with statfs(2) and tests them against MS_* constants,
 * so it can report ro, nodev, noexec, nosuid, noatime and nodiratime (MS_RELATIME never matches
 * a statfs flag, so relatime is never reported). A read-only superblock also counts as ro.
 */
export function lockedMountFlags(realPath: string, mountinfo: string): string[] {
  let best: { point: string; opts: string[]; superOpts: string[] } | null = null;
  for (const line of mountinfo.split("\n")) {
    if (line.trim() === "") continue;
    const f = line.split(" ");
    const sep = f.indexOf("-", 6);
    if (f.length < 6 || sep < 0) continue;
    const point = unescapeMountInfo(f[4]!);
    const inside = realPath === point || realPath.startsWith(point === "/" ? "/" : point + "/");
    if (!inside) continue;
    // Longest mount point wins; for the same point a later line is mounted on top.
    if (best === null || point.length >= best.point.length) {
      best = { point, opts: f[5]!.split(","), superOpts: (f[sep + 3] ?? "").split(",") };
    }
  }
  if (best === null) return [];
  const flags: string[] = [];
  if (best.opts.includes("ro") || best.superOpts.includes("ro")) flags.push("ro");
  for (const flag of ["nodev", "noexec", "nosuid", "noatime", "nodiratime"]) {
    if (best.opts.includes(flag)) flags.push(flag);
  }
  return flags;
}

function hostLockedFlags(p: string, mountInfoPath: string): string[] {
  let real: string;
  try {
    real = fs.realpathSync(p);
  } catch {
    real = p;
  }
  let info: string;
  try {
    info = fs.readFileSync(mountInfoPath, "utf8");
  } catch {
    return [];
  }
  return lockedMountFlags(real, info);
}

function applyRootless(spec: Spec, opts: RuntimeConfigOptions, warn: (msg: string) => void): void {
  delete spec.process.user.additionalGids;

  const namespaces = spec.linux.namespaces.filter((ns) => ns.type !== "network" && ns.type !== "user");
  namespaces.push({ type: "user" });
  spec.linux.namespaces = namespaces;

  const mounts: SpecMount[] = [];
  for (const m of spec.mounts) {
    if (m.destination.startsWith("/sys")) continue;
    const out: SpecMount = { ...m };
    if (m.options !== undefined) {
      const options = m.options.filter((o) => !o.startsWith("gid=") && !o.startsWith("uid="));
      if (options.length > 0) out.options = options;
      else delete out.options;
    }
    mounts.push(out);
  }
  // "bind" rather than "none" matches umoci (see opencontainers/runc#2035).
  mounts.push({ destination: "/sys", type: "bind", source: "/sys", options: ["rbind", "nosuid", "noexec", "nodev", "ro"] });

  const resolvConf = opts.hostResolvConf ?? "/etc/resolv.conf";
  if (!fs.existsSync(resolvConf)) {
    // umoci 0.6 also discards the /sys and uid=/gid= edits here (a quirk that leaves a config
    // an unprivileged runc cannot start); we keep them and only skip the resolv.conf mount.
    warn(`rootless configuration: automatic bind-mount for "${resolvConf}" cannot be added as the source doesn't exist`);
  } else {
    // Keep the source mount's CL_UNPRIVILEGED-locked flags, or runc's remount fails in the userns.
    const locked = hostLockedFlags(resolvConf, opts.mountInfoPath ?? "/proc/self/mountinfo");
    mounts.push({ destination: "/etc/resolv.conf", type: "bind", source: resolvConf, options: [...locked, "rbind", "ro"] });
  }
  spec.mounts = mounts;

  delete spec.linux.resources;
}

/**
 * Build the runtime-spec `config.json` object from a parsed OCI image config, as umoci 0.6 does:
 * - template (runc-like, hostname `umoci-default`, namespaces cgroup/pid/network/ipc/uts/mount);
 * - `Env` merged over the template's PATH/TERM by name; args = Entrypoint+Cmd, else `["sh"]`;
 *   cwd = WorkingDir or `/`;
 * - `User` resolved via the rootfs's passwd/group; `HOME` added only when Env lacks it;
 * - annotations os/architecture/variant/os.version/os.features/author/created/stopSignal/
 *   exposedPorts with empty values dropped, then Labels copied over them (labels win);
 * - Volumes → tmpfs mounts (sorted); no seccomp;
 * - ID maps → a single `user` namespace plus linux.uidMappings/gidMappings;
 * - rootless → no network namespace or additionalGids, /sys rbind, /etc/resolv.conf rbind,
 *   no uid=/gid= mount options, no linux.resources.
 * Throws UnsupportedError when `os` is not "linux", InvalidError for malformed fields, an
 * invalid Env entry or an unresolvable user. Pure apart from reading passwd/group and the
 * host's resolv.conf mount flags.
 */
export function generateRuntimeConfig(imageConfig: any, opts: RuntimeConfigOptions): Record<string, unknown> {
  const warn = opts.onWarning ?? (() => {});
  if (imageConfig === null || typeof imageConfig !== "object" || Array.isArray(imageConfig)) {
    throw new InvalidError("image config must be a JSON object");
  }
  const image = imageConfig as Record<string, unknown>;
  const config = optObject(image, "config", "config");

  const os = optString(image, "os", "os");
  if (os !== "linux") throw new UnsupportedError(`unsupported OS: ${os}`);

  const spec = template();
  spec.root.path = opts.rootfsName ?? "rootfs";

  const workingDir = optString(config, "WorkingDir", "config.WorkingDir");
  spec.process.cwd = workingDir !== "" ? workingDir : "/";

  for (const entry of optStringArray(config, "Env", "config.Env")) {
    const [name, value] = parseEnv(entry);
    setEnv(spec.process.env, name, value);
  }

  const args = [
    ...optStringArray(config, "Entrypoint", "config.Entrypoint"),
    ...optStringArray(config, "Cmd", "config.Cmd"),
  ];
  if (args.length > 0) spec.process.args = args;

  // User: GetExecUserPath semantics against the rootfs's own passwd/group.
  const userSpec = optString(config, "User", "config.User");
  let user: ResolvedUser;
  if (opts.rootfsPath) {
    const rootfs = opts.rootfsPath;
    try {
      user = resolveUser(userSpec, readFileInRoot(rootfs, "etc/passwd"), readFileInRoot(rootfs, "etc/group"));
    } catch (e) {
      throw new InvalidError(`cannot parse user spec: ${JSON.stringify(userSpec)}: ${(e as Error).message}`, { cause: e });
    }
  } else {
    try {
      user = resolveUser(userSpec, null, null);
    } catch (e) {
      // A numeric ID out of range is never "root": it is an invalid image.
      if ((e as BociError).code === ID_RANGE_CODE) throw e;
      warn(`could not parse user spec ${JSON.stringify(userSpec)} without a rootfs -- defaulting to root:root`);
      user = { uid: 0, gid: 0, additionalGids: [], home: null };
    }
  }
  spec.process.user = { uid: u32(user.uid), gid: u32(user.gid) };
  if (user.additionalGids.length > 0) spec.process.user.additionalGids = user.additionalGids.map(u32);
  if (user.home !== null && !spec.process.env.some((e) => e.startsWith("HOME="))) {
    setEnv(spec.process.env, "HOME", user.home);
  }

  // Annotations: implicit keys (empties dropped), then labels win.
  const annotations: Record<string, string> = {};
  const exposed = Object.keys(optObject(config, "ExposedPorts", "config.ExposedPorts")).sort(compareBytes);
  const created = optString(image, "created", "created");
  const implicit: [string, string][] = [
    [ANNOTATION_OS, os],
    [ANNOTATION_ARCH, optString(image, "architecture", "architecture")],
    [ANNOTATION_VARIANT, optString(image, "variant", "variant")],
    [ANNOTATION_OS_VERSION, optString(image, "os.version", "os.version")],
    [ANNOTATION_OS_FEATURES, optStringArray(image, "os.features", "os.features").join(",")],
    [ANNOTATION_AUTHOR, optString(image, "author", "author")],
    [ANNOTATION_CREATED, created === "" ? "" : formatRFC3339Nano(created)],
    [ANNOTATION_STOP_SIGNAL, optString(config, "StopSignal", "config.StopSignal")],
    [ANNOTATION_EXPOSED_PORTS, exposed.join(",")],
  ];
  for (const [k, v] of implicit) if (v !== "") annotations[k] = v;
  const labels = optObject(config, "Labels", "config.Labels");
  for (const [k, v] of Object.entries(labels)) {
    if (typeof v !== "string") throw bad(`config.Labels[${JSON.stringify(k)}]`, "a string");
    annotations[k] = v;
  }
  const annotationKeys = Object.keys(annotations).sort(compareBytes);
  if (annotationKeys.length > 0) {
    spec.annotations = Object.fromEntries(annotationKeys.map((k) => [k, annotations[k]!]));
  }

  // Volumes become private tmpfs mounts (umoci ranges a Go map: we sort for determinism).
  for (const vol of Object.keys(optObject(config, "Volumes", "config.Volumes")).sort(compareBytes)) {
    spec.mounts.push({ destination: vol, type: "tmpfs", source: "none", options: ["rw", "nosuid", "nodev", "noexec", "relatime"] });
  }

  // ID maps: exactly one user namespace, at the end.
  const { uidMappings, gidMappings } = opts.mapOptions;
  if (uidMappings.length > 0 || gidMappings.length > 0) {
    spec.linux.namespaces = spec.linux.namespaces.filter((ns) => ns.type !== "user");
    spec.linux.namespaces.push({ type: "user" });
  }
  const copyMap = (m: IdMapping): IdMapping => ({ containerID: m.containerID, hostID: m.hostID, size: m.size });
  if (uidMappings.length > 0) spec.linux.uidMappings = uidMappings.map(copyMap);
  if (gidMappings.length > 0) spec.linux.gidMappings = gidMappings.map(copyMap);

  if (opts.mapOptions.rootless) applyRootless(spec, opts, warn);

  return serializable(spec);
}

function serializable(spec: Spec): Record<string, unknown> {
  // Re-key through the field-order schema so the object iterates in Go struct order.
  return orderValue(spec, SPEC_SCHEMA) as Record<string, unknown>;
}

// ---- serialisation in Go struct field order ----

interface Schema {
  /** Field order of a Go struct; unknown keys follow in insertion order. */
  order?: readonly string[];
  /** Schemas of known fields. */
  fields?: Record<string, Schema>;
  /** Schema of each array element. */
  items?: Schema;
  /** A Go map: keys sorted by bytes. */
  map?: boolean;
}

const ID_MAPPING: Schema = { order: ["containerID", "hostID", "size"] };
const HOOK_LIST: Schema = { items: { order: ["path", "args", "env", "timeout"] } };

const SPEC_SCHEMA: Schema = {
  order: ["ociVersion", "process", "root", "hostname", "domainname", "mounts", "hooks", "annotations", "linux", "solaris", "windows", "vm", "zos"],
  fields: {
    process: {
      order: [
        "terminal",
        "consoleSize",
        "user",
        "args",
        "commandLine",
        "env",
        "cwd",
        "capabilities",
        "rlimits",
        "noNewPrivileges",
        "apparmorProfile",
        "oomScoreAdj",
        "scheduler",
        "selinuxLabel",
        "ioPriority",
        "execCPUAffinity",
      ],
      fields: {
        consoleSize: { order: ["height", "width"] },
        user: { order: ["uid", "gid", "umask", "additionalGids", "username"] },
        capabilities: { order: ["bounding", "effective", "inheritable", "permitted", "ambient"] },
        rlimits: { items: { order: ["type", "hard", "soft"] } },
      },
    },
    root: { order: ["path", "readonly"] },
    mounts: {
      items: {
        order: ["destination", "type", "source", "options", "uidMappings", "gidMappings"],
        fields: { uidMappings: { items: ID_MAPPING }, gidMappings: { items: ID_MAPPING } },
      },
    },
    hooks: {
      order: ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
      fields: {
        prestart: HOOK_LIST,
        createRuntime: HOOK_LIST,
        createContainer: HOOK_LIST,
        startContainer: HOOK_LIST,
        poststart: HOOK_LIST,
        poststop: HOOK_LIST,
      },
    },
    annotations: { map: true },
    linux: {
      order: [
        "uidMappings",
        "gidMappings",
        "sysctl",
        "resources",
        "cgroupsPath",
        "namespaces",
        "devices",
        "seccomp",
        "rootfsPropagation",
        "maskedPaths",
        "readonlyPaths",
        "mountLabel",
        "intelRdt",
        "personality",
        "timeOffsets",
      ],
      fields: {
        uidMappings: { items: ID_MAPPING },
        gidMappings: { items: ID_MAPPING },
        sysctl: { map: true },
        resources: {
          order: ["devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits", "network", "rdma", "unified"],
          fields: {
            devices: { items: { order: ["allow", "type", "major", "minor", "access"] } },
            unified: { map: true },
            rdma: { map: true },
          },
        },
        namespaces: { items: { order: ["type", "path"] } },
        devices: { items: { order: ["path", "type", "major", "minor", "fileMode", "uid", "gid"] } },
        timeOffsets: { map: true },
      },
    },
  },
};

function orderValue(value: unknown, schema: Schema | undefined): unknown {
  if (Array.isArray(value)) return value.map((v) => orderValue(v, schema?.items));
  if (value === null || typeof value !== "object") return value;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined);
  let ordered: string[];
  if (schema?.map) {
    ordered = keys.sort(compareBytes);
  } else if (schema?.order) {
    const known = schema.order.filter((k) => keys.includes(k));
    ordered = [...known, ...keys.filter((k) => !schema.order!.includes(k))];
  } else {
    ordered = keys;
  }
  const out: Record<string, unknown> = {};
  for (const k of ordered) out[k] = orderValue(obj[k], schema?.map ? undefined : schema?.fields?.[k]);
  return out;
}

/**
 * Serialise a runtime config as umoci writes config.json (Go `json.Encoder` with
 * `SetIndent("", "\t")`): tab-indented, keys in runtime-spec Go struct order, map keys
 * (annotations, sysctl…) sorted by bytes, `<`, `>`, `&`, U+2028 and U+2029 escaped, and a
 * trailing newline.
 */
export function serializeRuntimeConfig(cfg: Record<string, unknown>): string {
  const text = JSON.stringify(orderValue(cfg, SPEC_SCHEMA), null, "\t");
  return goEscape(text) + "\n";
}

/** Apply Go encoding/json's HTML-safe escaping to already-encoded JSON text. */
function goEscape(json: string): string {
  return json.replace(/[<>&\u2028\u2029]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}
