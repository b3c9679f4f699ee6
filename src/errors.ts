/**
 * Errors with a stable code and exit code. Messages are lowercase and chain context
 * ("unpack layer 2: apply etc/passwd: permission denied").
 */
export const ExitCode = {
  general: 1,
  usage: 2,
  notFound: 3,
  invalid: 4,
  clobber: 5,
  unsupported: 6,
} as const;

export class BociError extends Error {
  readonly code: string;
  readonly exitCode: number;
  constructor(message: string, opts: { code?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = opts.code ?? "EGENERAL";
    this.exitCode = opts.exitCode ?? ExitCode.general;
  }
}

/** Bad command-line usage: missing flag, bad tag, wrong argument count. */
export class UsageError extends BociError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { code: "EUSAGE", exitCode: ExitCode.usage, ...opts });
  }
}

/** Something named does not exist: a layout, a tag, a blob. */
export class NotFoundError extends BociError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { code: "ENOTFOUND", exitCode: ExitCode.notFound, ...opts });
  }
}

/** Invalid or corrupt image data: digest/size mismatch, bad JSON, media-type confusion, hostile tar. */
export class InvalidError extends BociError {
  constructor(message: string, opts: { code?: string; cause?: unknown } = {}) {
    super(message, { code: opts.code ?? "EINVALID", exitCode: ExitCode.invalid, cause: opts.cause });
  }
}

/** The operation would overwrite something that exists. */
export class ClobberError extends BociError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { code: "ECLOBBER", exitCode: ExitCode.clobber, ...opts });
  }
}

/** A valid but unsupported input: unknown media type, algorithm, OS. */
export class UnsupportedError extends BociError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { code: "EUNSUPPORTED", exitCode: ExitCode.unsupported, ...opts });
  }
}

/** Prefix an error's message with context, keeping its class and exit code. */
export function withContext<T>(context: string, fn: () => T): T {
  try {
    const r = fn();
    if (r instanceof Promise) return r.catch((e) => { throw addContext(context, e); }) as T;
    return r;
  } catch (e) {
    throw addContext(context, e);
  }
}

export function addContext(context: string, e: unknown): unknown {
  if (e instanceof BociError) {
    e.message = `${context}: ${e.message}`;
    return e;
  }
  if (e instanceof Error) {
    const err = e as NodeJS.ErrnoException;
    const msg = err.code ? describeErrno(err) : err.message;
    const exitCode = err.code === "ENOENT" ? ExitCode.notFound : ExitCode.general;
    return new BociError(`${context}: ${msg}`, { code: err.code ?? "EGENERAL", exitCode, cause: e });
  }
  return new BociError(`${context}: ${String(e)}`);
}

const errnoText: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EEXIST: "file exists",
  ENOTDIR: "not a directory",
  EISDIR: "is a directory",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  ENOTEMPTY: "directory not empty",
  ELOOP: "too many levels of symbolic links",
  ENAMETOOLONG: "file name too long",
  EROFS: "read-only file system",
  EXDEV: "invalid cross-device link",
  ENOTSUP: "operation not supported",
  EOPNOTSUPP: "operation not supported",
};

/**
 * A short lowercase description of a Node errno error: "lchown b/rootfs: operation not permitted".
 * A full disk names what was being written: "no space left on device writing b/rootfs/big".
 */
export function describeErrno(e: NodeJS.ErrnoException): string {
  const known = e.code ? errnoText[e.code] : undefined;
  // (a message that already says "syscall path: text", as sys/ SysError's do, is not said twice)
  if (!known && e.syscall && e.path && e.message.startsWith(`${e.syscall} ${e.path}: `)) return e.message;
  const text = known || e.message.toLowerCase();
  if (e.path && isNoSpaceCode(e.code)) return `${text} writing ${e.path}`;
  if (e.syscall && e.path) return `${e.syscall} ${e.path}: ${text}`;
  return text;
}

function isNoSpaceCode(code: string | undefined): boolean {
  return code === "ENOSPC" || code === "EDQUOT";
}

/** Whether `e`, or an error in its `cause` chain, is ENOSPC or EDQUOT. */
export function isNoSpace(e: unknown): boolean {
  for (let c = e, depth = 0; c instanceof Error && depth < 16; c = c.cause, depth++) {
    if (isNoSpaceCode((c as NodeJS.ErrnoException).code)) return true;
  }
  return false;
}

/**
 * For a full disk or quota (anywhere in the cause chain), an error that says what was being
 * written and what the command rolled back, for the one line main.ts prints:
 * "unpack layer 0: apply \"big\": no space left on device writing b; the rootfs was removed".
 * `context` prefixes a plain errno error ("raw add-layer"). Any other error is returned as is.
 * The message keeps the class's exit code; the code becomes ENOSPC or EDQUOT.
 */
export function explainNoSpace(e: unknown, how: { context: string; writing: string; rolledBack: string }): unknown {
  if (!isNoSpace(e)) return e;
  const err = e instanceof BociError ? e : (addContext(how.context, e) as BociError);
  let code = "ENOSPC";
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 16; c = c.cause, depth++) {
    const k = (c as NodeJS.ErrnoException).code;
    if (isNoSpaceCode(k)) { code = k!; break; }
  }
  const text = errnoText[code]!;
  let msg = err.message;
  if (!msg.includes(text)) msg += `: ${text}`;
  if (!msg.includes(`${text} writing `)) msg = msg.replace(text, `${text} writing ${how.writing}`);
  return new BociError(`${msg}; ${how.rolledBack}`, { code, exitCode: err.exitCode, cause: e });
}

/**
 * A location we may not write: "cannot write PATH: permission denied" (the cause, named by the
 * path the user gave: a bundle, a layout). Code ECANNOTWRITE, so main.ts adds no hint to try
 * --rootless (no ID mapping makes a directory writable). Other errors keep their errno text.
 */
export function cannotWrite(what: string, e: unknown): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "EACCES" || code === "EPERM" || code === "EROFS")
    return new BociError(`cannot write ${what}: ${describeErrno({ code, message: (e as Error).message } as NodeJS.ErrnoException)}`, { code: "ECANNOTWRITE", cause: e });
  return addContext(`cannot write ${what}`, e);
}
