import { UsageError } from "../errors";

/** RFC 3339 with optional fraction, as Go's time.RFC3339Nano parser accepts it. */
const rfc3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * Validate a user-given time and return it as Go would re-marshal it: a non-zero offset kept
 * verbatim, a zero offset as "Z", trailing zeros of the fraction trimmed.
 */
export function parseUserTime(flag: string, s: string): string {
  const m = rfc3339.exec(s);
  if (!m || Number.isNaN(Date.parse(s.toUpperCase()))) throw new UsageError(`invalid --${flag}: ${JSON.stringify(s)} is not an RFC 3339 time`);
  let frac = (m[7] ?? "").replace(/0+$/, "");
  if (frac === ".") frac = "";
  // Go writes a zero offset as "Z" whatever its spelling ("+00:00", "-00:00").
  const zone = m[8]!.toUpperCase() === "Z" || /^[+-]00:00$/.test(m[8]!) ? "Z" : m[8]!;
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${frac}${zone}`;
}

/** SOURCE_DATE_EPOCH as seconds, or null when unset. Invalid values are a usage error. */
export function sourceDateEpoch(): number | null {
  const v = process.env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === "") return null;
  if (!/^\d+$/.test(v)) throw new UsageError(`invalid SOURCE_DATE_EPOCH ${JSON.stringify(v)}: must be a non-negative integer`);
  return Number(v);
}

/** "Now" for created/history times: SOURCE_DATE_EPOCH when set, else the clock (UTC, RFC 3339). */
export function nowTimestamp(): string {
  const sde = sourceDateEpoch();
  if (sde !== null) return new Date(sde * 1000).toISOString().replace(/\.000Z$/, "Z");
  const iso = new Date().toISOString();
  return iso.replace(/\.(\d*?)0*Z$/, (_m, f: string) => (f ? `.${f}Z` : "Z"));
}
