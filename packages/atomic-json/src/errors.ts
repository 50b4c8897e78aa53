/**
 * Every failure of `@dawn/atomic-json` carries one of these codes (see {@link AtomicJsonError}
 * for their meaning). Codes are stable: switch on them, never on messages.
 *
 * @example
 * ```ts
 * const retryable: AtomicJsonErrorCode[] = ['LOCKED', 'LOCK_COMPROMISED'];
 * ```
 */
export type AtomicJsonErrorCode =
  | 'NOT_FOUND'
  | 'PARSE'
  | 'LOCKED'
  | 'LOCK_COMPROMISED'
  | 'NOT_SERIALIZABLE'
  | 'INVALID'
  | 'IO'
  | 'ABORTED'
  | 'CORRUPT';

const BRAND = Symbol.for('@dawn/atomic-json.AtomicJsonError');

/**
 * Extra facts an {@link AtomicJsonError} may carry (the constructor's last argument).
 *
 * @example
 * ```ts
 * new AtomicJsonError('PARSE', file, message, { line: 3, column: 7, cause: syntaxError });
 * ```
 */
export interface AtomicJsonErrorDetails {
  /** The underlying error (a system error for `IO`). @default undefined */
  cause?: unknown;
  /** 1-based line of a `PARSE` error. */
  line?: number;
  /** 1-based column of a `PARSE` error. */
  column?: number;
  /** Key path of the offending value of a `NOT_SERIALIZABLE` or `INVALID` error, e.g. `$.peers[3].lastSeen`. */
  keyPath?: string;
}

/**
 * The one error class of `@dawn/atomic-json`. Check it with {@link AtomicJsonError.is}
 * (works across duplicated copies of the package) and switch on {@link AtomicJsonError.code}.
 *
 * | code | meaning |
 * | --- | --- |
 * | `NOT_FOUND` | the file does not exist and no default was given |
 * | `PARSE` | the file is not valid JSON (`line`, `column` set); it was left untouched |
 * | `LOCKED` | another process held the lock for longer than `timeoutMs` |
 * | `LOCK_COMPROMISED` | the lock was lost (taken over as stale, or its mtime could not be refreshed) during the operation |
 * | `NOT_SERIALIZABLE` | the value is not JSON (cycle, BigInt, function, symbol, `undefined` root, NaN...); `keyPath` names it |
 * | `INVALID` | a `JsonFile` validator rejected the value |
 * | `IO` | the file system failed (permissions, disk full...), or the path is not a regular file; `cause` holds the system error |
 * | `CORRUPT` | a journal (see `JournaledJson`) is damaged before its last record; nothing was replayed or written |
 * | `ABORTED` | the caller's `AbortSignal` fired while the operation waited (for the lock or its turn); nothing was written; `cause` is the signal's reason |
 *
 * @example
 * ```ts
 * try { await readJson('/data/x.json') }
 * catch (err) { if (AtomicJsonError.is(err) && err.code === 'NOT_FOUND') { ... } }
 * ```
 */
export class AtomicJsonError extends Error {
  override readonly name = 'AtomicJsonError';
  /** Stable machine-readable code. */
  readonly code: AtomicJsonErrorCode;
  /** The file the operation was about (absolute). */
  readonly path: string;
  /** `PARSE` only: 1-based line of the first syntax error. */
  readonly line?: number;
  /** `PARSE` only: 1-based column of the first syntax error. */
  readonly column?: number;
  /** `NOT_SERIALIZABLE` only: where the offending value is, e.g. `$.peers[3].lastSeen`. */
  readonly keyPath?: string;
  /** @internal */
  readonly [BRAND] = true;

  /**
   * Made by atomic-json itself; packages built on it may raise it too (e.g. `INVALID`).
   * @param message What happened, why, and what to do; should name `path`.
   */
  constructor(code: AtomicJsonErrorCode, path: string, message: string, details: AtomicJsonErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.path = path;
    if (details.line !== undefined) this.line = details.line;
    if (details.column !== undefined) this.column = details.column;
    if (details.keyPath !== undefined) this.keyPath = details.keyPath;
  }

  /**
   * True when `err` is an `AtomicJsonError` from any copy of this package (a brand check,
   * not `instanceof`, so it works when two versions are installed).
   * @example
   * ```ts
   * if (AtomicJsonError.is(err) && err.code === 'LOCKED') retryLater();
   * ```
   */
  static is(err: unknown): err is AtomicJsonError {
    return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[BRAND] === true;
  }
}

/** The error of an operation whose `AbortSignal` fired before it wrote anything. */
export function abortedError(path: string, signal: AbortSignal): AtomicJsonError {
  return new AtomicJsonError(
    'ABORTED',
    path,
    `The operation on ${path} was aborted (its AbortSignal fired) before it wrote anything; the file is as it was.`,
    { cause: signal.reason },
  );
}

/** Wrap a system error from `fs` into an `IO` error (or return it unchanged if it is already ours). */
export function ioError(path: string, action: string, err: unknown): AtomicJsonError {
  if (AtomicJsonError.is(err)) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const hint =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? 'Free some disk space and retry.'
      : code === 'EACCES' || code === 'EPERM'
        ? 'Check the permissions of the file and its directory.'
        : code === 'EROFS'
          ? 'The file system is read-only.'
          : 'Retry; if it persists, check the disk and the path.';
  const what = err instanceof Error ? err.message : String(err);
  return new AtomicJsonError('IO', path, `Cannot ${action} ${path}: ${what}. ${hint}`, { cause: err });
}
