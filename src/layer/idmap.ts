/**
 * User-namespace ID maps: the `--uid-map` / `--gid-map` flags and the translation of owners
 * between the image (container IDs) and the host, as umoci's `pkg/idtools` does.
 * Runtime-spec form: `linux.uidMappings: [{containerID, hostID, size}]` (RS config-linux.md).
 */
import { InvalidError, UsageError } from "../errors";

export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface MapOptions {
  uidMappings: IdMapping[];
  gidMappings: IdMapping[];
  rootless: boolean;
}

const MAX_U32 = 0xffffffff;
/** The largest usable ID: uid_t is 32 bits and (uid_t)-1 means "no change" to chown. */
export const MAX_ID = 0xfffffffe;

function parseU32(text: string): number | null {
  // Go's strconv.ParseUint(s, 10, 32): plain decimal digits only, no sign, no spaces.
  if (!/^[0-9]+$/.test(text)) return null;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n > MAX_U32) return null;
  return n;
}

/**
 * Parse a mapping `CONTAINER:HOST[:SIZE]` (size defaults to 1).
 * Throws UsageError naming `flag` (default `--uid-map`) on a bad field count, a
 * non-decimal, negative or >2^32-1 value, a zero size, or a range whose last ID on either side
 * is past 2^32-2.
 */
export function parseIdMap(spec: string, flag = "--uid-map"): IdMapping {
  const bad = (why: string) => new UsageError(`invalid ${flag} ${JSON.stringify(spec)}: ${why}`);
  const parts = spec.split(":");
  if (parts.length !== 2 && parts.length !== 3) {
    throw bad(`expected container:host[:size], got ${parts.length} field${parts.length === 1 ? "" : "s"}`);
  }
  const containerID = parseU32(parts[0]!);
  if (containerID === null) throw bad(`invalid container id ${JSON.stringify(parts[0])}`);
  const hostID = parseU32(parts[1]!);
  if (hostID === null) throw bad(`invalid host id ${JSON.stringify(parts[1])}`);
  let size = 1;
  if (parts.length === 3) {
    const s = parseU32(parts[2]!);
    if (s === null) throw bad(`invalid size ${JSON.stringify(parts[2])}`);
    if (s === 0) throw bad("size must be at least 1");
    size = s;
  }
  // Every ID of the range must be usable on both sides: a range that runs past 2^32-2 would
  // wrap (to root) or reach (uid_t)-1.
  if (containerID + size - 1 > MAX_ID) throw bad(`container range ${containerID}-${containerID + size - 1} goes past ${MAX_ID}`);
  if (hostID + size - 1 > MAX_ID) throw bad(`host range ${hostID}-${hostID + size - 1} goes past ${MAX_ID}`);
  return { containerID, hostID, size };
}

function checkId(id: number, kind: "uid" | "gid", side: string): number {
  if (!Number.isInteger(id) || id < 0 || id > MAX_ID) {
    throw new InvalidError(`${kind} ${id} out of range for the ${side} (0-${MAX_ID})`, { code: "EIDMAP" });
  }
  return id;
}

/**
 * Translate a container ID to the host ID. With no maps the translation is the identity.
 * The first range containing the ID wins. Throws InvalidError when no range covers it, or when
 * the ID or its translation is negative or past 2^32-2 (never a wrapped or "no change" ID).
 */
export function toHost(id: number, maps: readonly IdMapping[], kind: "uid" | "gid" = "uid"): number {
  checkId(id, kind, "image");
  if (maps.length === 0) return id;
  for (const m of maps) {
    if (id >= m.containerID && id < m.containerID + m.size) return checkId(m.hostID + (id - m.containerID), kind, "host");
  }
  throw new InvalidError(`${kind} ${id} cannot be mapped to host`, { code: "EIDMAP" });
}

/**
 * Translate a host ID back to the container ID (the reverse of {@link toHost}). With no maps
 * the translation is the identity. Throws InvalidError when no range covers it or an ID is out
 * of range (as {@link toHost}).
 */
export function toContainer(id: number, maps: readonly IdMapping[], kind: "uid" | "gid" = "uid"): number {
  checkId(id, kind, "host");
  if (maps.length === 0) return id;
  for (const m of maps) {
    if (id >= m.hostID && id < m.hostID + m.size) return checkId(m.containerID + (id - m.hostID), kind, "image");
  }
  throw new InvalidError(`${kind} ${id} cannot be mapped to container`, { code: "EIDMAP" });
}

/**
 * Build MapOptions from the CLI flags, as umoci does: each `--uid-map`/`--gid-map` is parsed
 * in order; with `--rootless`, a missing uid map list defaults to `0:<euid>:1` and a missing
 * gid map list to `0:<egid>:1` (each independently).
 */
export function resolveMapOptions(opts: {
  uidMaps: string[];
  gidMaps: string[];
  rootless: boolean;
  euid: number;
  egid: number;
}): MapOptions {
  const uidMappings = opts.uidMaps.map((s) => parseIdMap(s, "--uid-map"));
  const gidMappings = opts.gidMaps.map((s) => parseIdMap(s, "--gid-map"));
  if (opts.rootless) {
    if (uidMappings.length === 0) uidMappings.push({ containerID: 0, hostID: opts.euid, size: 1 });
    if (gidMappings.length === 0) gidMappings.push({ containerID: 0, hostID: opts.egid, size: 1 });
  }
  return { uidMappings, gidMappings, rootless: opts.rootless };
}
