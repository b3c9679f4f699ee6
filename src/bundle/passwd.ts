/**
 * Resolve an image's `Config.User` against the rootfs's `/etc/passwd` and `/etc/group`, with
 * the semantics of moby/sys/user `GetExecUserPath` (which umoci uses; oci-reference §4
 * "User resolution"), and read those files without ever leaving the rootfs.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { InvalidError } from "../errors";

/** A parsed /etc/passwd line: `name:password:uid:gid:gecos:home:shell`. */
export interface PasswdEntry {
  name: string;
  pass: string;
  uid: number;
  gid: number;
  gecos: string;
  home: string;
  shell: string;
}

/** A parsed /etc/group line: `name:password:gid:member,member`. */
export interface GroupEntry {
  name: string;
  pass: string;
  gid: number;
  members: string[];
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  /** The home directory from the matched passwd entry; null when none matched or it is empty. */
  home: string | null;
}

const MAX_ID = 2 ** 31 - 1;
const RANGE_MESSAGE = `uids and gids must be in range 0-${MAX_ID}`;
/**
 * The code of every out-of-range ID error from this module: such a spec or entry must fail the
 * command, never fall back to root:root the way an unresolvable name may without a rootfs.
 */
export const ID_RANGE_CODE = "EIDRANGE";
/** bufio.Scanner limits: 64 KiB lines for passwd, 1 MiB for group. */
const PASSWD_MAX_LINE = 64 * 1024;
const GROUP_MAX_LINE = 1024 * 1024;
/** Cap on how much of a user database file is read (moby's limit). */
export const MAX_USER_FILE_BYTES = 10 << 20;

const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

/**
 * Go's strconv.Atoi: optional sign then decimal digits. Returns the value (clamped on overflow,
 * as Go does) and which error, if any, Go would report.
 */
function goAtoi(text: string): { value: number; error: "syntax" | "range" | null } {
  if (!/^[+-]?[0-9]+$/.test(text)) return { value: 0, error: "syntax" };
  const big = BigInt(text);
  if (big > INT64_MAX) return { value: Number(INT64_MAX), error: "range" };
  if (big < INT64_MIN) return { value: Number(INT64_MIN), error: "range" };
  return { value: Number(big), error: null };
}

/** A number field in a passwd/group line: conversion errors are ignored (value 0 or clamped). */
function fieldInt(text: string | undefined): number {
  return text === undefined ? 0 : goAtoi(text).value;
}

// Go's bytes.TrimSpace: ASCII whitespace plus Unicode White_Space (but not U+FEFF).
const GO_SPACE = "\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const TRIM_RE = new RegExp(`^[${GO_SPACE}]+|[${GO_SPACE}]+$`, "g");

/** Split into lines as bufio.ScanLines does (drop one trailing \r per line), then trim. */
function scanLines(content: string, maxLine: number, what: string): string[] {
  const raw = content.split("\n");
  if (raw.length > 0 && raw[raw.length - 1] === "") raw.pop();
  return raw.map((line) => {
    if (Buffer.byteLength(line) >= maxLine) {
      throw new InvalidError(`${what}: line too long`);
    }
    const l = line.endsWith("\r") ? line.slice(0, -1) : line;
    return l.replace(TRIM_RE, "");
  });
}

/** Parse /etc/passwd content. Blank lines are skipped; missing fields are empty or 0. */
export function parsePasswd(content: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of scanLines(content, PASSWD_MAX_LINE, "passwd")) {
    if (line === "") continue;
    const p = line.split(":");
    out.push({
      name: p[0] ?? "",
      pass: p[1] ?? "",
      uid: fieldInt(p[2]),
      gid: fieldInt(p[3]),
      gecos: p[4] ?? "",
      home: p[5] ?? "",
      shell: p[6] ?? "",
    });
  }
  return out;
}

/** Parse /etc/group content. Blank lines and `#` comments are skipped. */
export function parseGroup(content: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of scanLines(content, GROUP_MAX_LINE, "group")) {
    if (line === "" || line.startsWith("#")) continue;
    const p = line.split(":");
    const list = p[3];
    out.push({
      name: p[0] ?? "",
      pass: p[1] ?? "",
      gid: fieldInt(p[2]),
      members: list === undefined || list === "" ? [] : list.split(","),
    });
  }
  return out;
}

interface IdArg {
  name: string;
  id: number;
  isNumeric: boolean;
}

/** A user or group argument: numeric (always an ID, never a name) or a name. "" → null. */
function parseIdArg(text: string): IdArg | null {
  if (text === "") return null;
  const { value, error } = goAtoi(text);
  if (error === "syntax") return { name: text, id: 0, isNumeric: false };
  if (error === "range" || value < 0 || value > MAX_ID) throw new InvalidError(RANGE_MESSAGE, { code: ID_RANGE_CODE });
  return { name: text, id: value, isNumeric: true };
}

/**
 * Resolve a `Config.User` spec (`""`, `user`, `uid`, `user:group`, `uid:gid`, `user:gid`,
 * `uid:group`) against passwd and group file contents (null = file absent), exactly as
 * moby/sys/user GetExecUser does:
 * - the user part, if numeric, is always a uid (a name like "1337" is never looked up by name);
 *   a matching passwd entry (first match wins) supplies gid and home, else gid stays 0;
 * - an empty user part means uid 0, still taking gid/home from a passwd line with uid 0;
 * - an explicit group sets the gid and no supplementary groups;
 * - otherwise, when a passwd entry matched, `additionalGids` are the gids of every group that
 *   lists the user's name.
 * Throws InvalidError for an unknown user or group name, or an out-of-range numeric ID.
 */
export function resolveUser(userSpec: string, passwd: string | null, group: string | null): ResolvedUser {
  const colon = userSpec.indexOf(":");
  const userPart = colon < 0 ? userSpec : userSpec.slice(0, colon);
  const groupPart = colon < 0 ? "" : userSpec.slice(colon + 1);
  const userArg = parseIdArg(userPart);
  const groupArg = parseIdArg(groupPart);

  const result: ResolvedUser = { uid: 0, gid: 0, additionalGids: [], home: null };

  let users: PasswdEntry[] = [];
  if (passwd !== null) {
    try {
      users = parsePasswd(passwd).filter((u) => {
        if (userArg === null) return u.uid === result.uid;
        return userArg.isNumeric ? u.uid === userArg.id : u.name === userArg.name;
      });
    } catch (e) {
      const name = userArg === null ? String(result.uid) : userPart;
      throw new InvalidError(`unable to find user ${name}: ${(e as Error).message}`, { cause: e });
    }
  }

  let matchedName = "";
  const first = users[0];
  if (first !== undefined) {
    matchedName = first.name;
    result.uid = first.uid;
    result.gid = first.gid;
    result.home = first.home === "" ? null : first.home;
  } else if (userArg !== null) {
    if (!userArg.isNumeric) {
      throw new InvalidError(`unable to find user ${userArg.name}: no matching entries in passwd file`);
    }
    result.uid = userArg.id;
  }

  if (groupArg !== null || matchedName !== "") {
    let groups: GroupEntry[] = [];
    if (group !== null) {
      try {
        groups = parseGroup(group).filter((g) => {
          if (groupArg === null) return g.members.includes(matchedName);
          return groupArg.isNumeric ? g.gid === groupArg.id : g.name === groupArg.name;
        });
      } catch (e) {
        throw new InvalidError(`unable to find groups for spec ${matchedName}: ${(e as Error).message}`, { cause: e });
      }
    }
    if (groupArg !== null) {
      const g = groups[0];
      if (g !== undefined) result.gid = g.gid;
      else if (!groupArg.isNumeric) {
        throw new InvalidError(`unable to find group ${groupArg.name}: no matching entries in group file`);
      } else result.gid = groupArg.id;
    } else if (groups.length > 0) {
      result.additionalGids = groups.map((g) => g.gid);
    }
  }
  checkEntryId("uid", result.uid, "passwd", matchedName);
  checkEntryId("gid", result.gid, groupArg !== null && !groupArg.isNumeric ? "group" : "passwd", groupArg?.name ?? matchedName);
  for (const g of result.additionalGids) checkEntryId("gid", g, "group", matchedName);
  return result;
}

/** The largest ID an entry may give: uid_t is 32 bits and (uid_t)-1 means "no change" to chown. */
const MAX_ENTRY_ID = 0xfffffffe;

/**
 * An ID read from the image's passwd or group file must fit in 32 bits and not be (uid_t)-1:
 * the runtime would otherwise wrap it, and 4294967296 would become root.
 */
function checkEntryId(kind: "uid" | "gid", id: number, file: "passwd" | "group", who: string): void {
  if (Number.isSafeInteger(id) && id >= 0 && id <= MAX_ENTRY_ID) return;
  const whose = who === "" ? "" : ` for ${who}`;
  throw new InvalidError(`${kind} ${id}${whose} in the ${file} file is out of range (0-${MAX_ENTRY_ID})`, { code: ID_RANGE_CODE });
}

const MAX_SYMLINKS = 255;

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}

/**
 * Resolve `relPath` inside `rootfs` without leaving it, following symlinks (including the final
 * component) the way the kernel would if `rootfs` were `/`: absolute link targets restart at
 * `rootfs`, `..` never climbs above it. Returns the host path of the result, or null when a
 * component is missing, a non-directory is traversed, or more than 255 links are followed.
 */
export function resolveInRoot(rootfs: string, relPath: string): string | null {
  const root = path.resolve(rootfs);
  const pending = relPath.split("/").reverse(); // a stack: next component at the end
  const current: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const comp = pending.pop()!;
    if (comp === "" || comp === ".") continue;
    if (comp === "..") {
      current.pop();
      continue;
    }
    const candidate = path.join(root, ...current, comp);
    const st = lstatOrNull(candidate);
    if (st === null) return null;
    if (st.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) return null;
      let target: string;
      try {
        target = fs.readlinkSync(candidate);
      } catch {
        return null;
      }
      if (target.startsWith("/")) current.length = 0;
      const parts = target.split("/");
      for (let i = parts.length - 1; i >= 0; i--) pending.push(parts[i]!);
      continue;
    }
    if (pending.some((c) => c !== "" && c !== ".") && !st.isDirectory()) return null;
    current.push(comp);
  }
  return path.join(root, ...current);
}

/**
 * Read a regular file inside a rootfs (e.g. `etc/passwd`), resolving every component in-root
 * (see {@link resolveInRoot}) so a hostile `etc -> /` symlink cannot make us read host files.
 * Returns null when the file is missing, unreadable or not a regular file (GetExecUserPath
 * treats those as "no file"). Throws InvalidError when it exceeds `maxBytes` (10 MiB).
 */
export function readFileInRoot(rootfs: string, relPath: string, maxBytes = MAX_USER_FILE_BYTES): string | null {
  const resolved = resolveInRoot(rootfs, relPath);
  if (resolved === null) return null;
  let fd: number;
  try {
    // O_NOFOLLOW: the resolved final component is not a symlink unless swapped underneath us.
    fd = fs.openSync(resolved, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return null;
    if (st.size > maxBytes) {
      throw new InvalidError(`${relPath}: file exceeds ${maxBytes} bytes`);
    }
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = fs.readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off).toString("utf8");
  } catch (e) {
    if (e instanceof InvalidError) throw e;
    return null;
  } finally {
    fs.closeSync(fd);
  }
}
