/**
 * Every failure of `@dawn/backup-cli` carries one of these codes.
 *
 * | code | meaning | CLI exit code |
 * | --- | --- | --- |
 * | `USAGE` | unknown command or option, missing or malformed argument | 2 |
 * | `INVALID_NAME` | a backup name with `/`, `\`, `..`, a leading `.`, control characters, or too long | 2 |
 * | `INVALID_OPTION` | an option value that cannot work (negative count, no keep option, bad pattern...) | 2 |
 * | `SOURCE_NOT_FOUND` | the source directory does not exist or is not a directory | 1 |
 * | `BACKUP_EXISTS` | a backup with that name already exists (backups are never merged into) | 1 |
 * | `BACKUP_NOT_FOUND` | no backup of that name in the backup dir | 1 |
 * | `BACKUP_INVALID` | the backup's `.backup_metadata.json` is missing, unreadable or malformed | 3 |
 * | `VERIFY_FAILED` | a file of the backup is missing, extra, or its checksum differs | 3 |
 * | `UNSAFE_PATH` | the manifest names a path outside the backup (absolute, `..`, below a symlink) | 3 |
 * | `TARGET_INVALID` | the restore target cannot be used (a file, a mount point, contains the backup dir or lies inside it, leftovers need attention) | 1 |
 * | `SOURCE_MISMATCH` | the backup was made of another directory than the (non-empty) restore target; `--force` restores anyway | 1 |
 * | `TARGET_IN_USE` | a Dawn node holds fresh atomic-json locks in the restore target; stop it, or `--force` | 1 |
 * | `BUSY` | another dawn-backup operation works on the same data root (or prunes the same backup dir); retry later | 1 |
 * | `NO_SPACE` | the disk (or quota) is full; nothing was changed; `cause` holds the system error | 1 |
 * | `REPO_INVALID` | no dawn-backup repository at that URL (run `init`), or one this version cannot read | 1 |
 * | `WRONG_PASSWORD` | the repository is encrypted and the password is wrong or missing | 1 |
 * | `IO` | the file system failed (permissions, read-only...); `cause` holds the system error | 1 |
 */
export type BackupErrorCode =
  | 'USAGE'
  | 'INVALID_NAME'
  | 'INVALID_OPTION'
  | 'SOURCE_NOT_FOUND'
  | 'BACKUP_EXISTS'
  | 'BACKUP_NOT_FOUND'
  | 'BACKUP_INVALID'
  | 'VERIFY_FAILED'
  | 'UNSAFE_PATH'
  | 'TARGET_INVALID'
  | 'SOURCE_MISMATCH'
  | 'TARGET_IN_USE'
  | 'BUSY'
  | 'NO_SPACE'
  | 'REPO_INVALID'
  | 'WRONG_PASSWORD'
  | 'IO';

/** One finding of a verification: what is wrong with which path of a backup. */
export interface VerifyProblem {
  /** Path relative to the backup root, `/`-separated. */
  path: string;
  /** Base64 of the exact path bytes, present only when they are not valid UTF-8 (names are bytes). */
  pathB64?: string;
  /**
   * - `missing`: in the manifest, not in the backup
   * - `extra`: in the backup, not in the manifest
   * - `modified`: size or sha256 differs
   * - `type`: a file where a directory or symlink was recorded (or the other way round)
   * - `link`: a symlink points somewhere else than recorded
   * - `unsafe`: the manifest entry is unsafe or malformed (absolute path, `..`, below a symlink...)
   * - `unreadable`: the file could not be read
   */
  kind: 'missing' | 'extra' | 'modified' | 'type' | 'link' | 'unsafe' | 'unreadable';
  /** Human-readable detail. */
  detail: string;
  /**
   * For a `modified` or `unreadable` file that is a hard link shared with other backups
   * (incremental backups): the other backups of the backup dir holding the same file (same
   * inode). The damage is the same in each of them.
   */
  sharedWith?: string[];
}

const BRAND = Symbol.for('@dawn/backup-cli.BackupError');

/** Extra facts a {@link BackupError} may carry. */
export interface BackupErrorDetails {
  cause?: unknown;
  /** The file or directory the error is about. */
  path?: string;
  /** For `VERIFY_FAILED` and `UNSAFE_PATH`: what is wrong. */
  problems?: VerifyProblem[];
}

/**
 * The one error class of `@dawn/backup-cli`. Check it with {@link BackupError.is} (works
 * across duplicated copies of the package) and switch on {@link BackupError.code}; see
 * {@link BackupErrorCode} for the codes and {@link exitCodeOf} for the CLI's exit codes.
 *
 * @example
 * ```ts
 * try {
 *   await restoreBackup({ name: 'dawn_backup_20261125_101500' });
 * } catch (err) {
 *   if (BackupError.is(err) && err.code === 'VERIFY_FAILED') console.error(err.problems);
 *   else throw err;
 * }
 * ```
 */
export class BackupError extends Error {
  override readonly name = 'BackupError';
  /** Stable machine-readable code. */
  readonly code: BackupErrorCode;
  /** The file or directory the error is about, when there is one. */
  readonly path?: string;
  /** What is wrong with the backup (`VERIFY_FAILED`, `UNSAFE_PATH`). */
  readonly problems?: VerifyProblem[];
  /** @internal */
  readonly [BRAND] = true;

  constructor(code: BackupErrorCode, message: string, details: BackupErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    if (details.path !== undefined) this.path = details.path;
    if (details.problems !== undefined) this.problems = details.problems;
  }

  /** True when `err` is a `BackupError` from any copy of this package. */
  static is(err: unknown): err is BackupError {
    return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[BRAND] === true;
  }
}

/**
 * The `dawn-backup` exit code for an error: `2` usage, `3` verification failed, `1` anything else.
 *
 * @example
 * ```ts
 * exitCodeOf(new BackupError('INVALID_NAME', 'bad name')); // 2
 * ```
 */
export function exitCodeOf(err: unknown): 1 | 2 | 3 {
  if (!BackupError.is(err)) return 1;
  switch (err.code) {
    case 'USAGE':
    case 'INVALID_NAME':
    case 'INVALID_OPTION':
      return 2;
    case 'VERIFY_FAILED':
    case 'UNSAFE_PATH':
    case 'BACKUP_INVALID':
      return 3;
    default:
      return 1;
  }
}

/** errno codes that mean "the disk or the quota is full". */
export const NO_SPACE_ERRNO: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT']);

/**
 * Wrap a system error into an `IO` error (`NO_SPACE` for `ENOSPC`/`EDQUOT`) with the path, and
 * a hint of what to do. `extra` is appended to the message (e.g. what was left untouched).
 */
export function ioError(path: string, action: string, err: unknown, extra?: string): BackupError {
  if (BackupError.is(err)) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const hint =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? 'Free some disk space and retry.'
      : code === 'EACCES' || code === 'EPERM'
        ? 'Check the permissions of the path and its directory.'
        : code === 'EROFS'
          ? 'The file system is read-only.'
          : code === 'EXDEV'
            ? 'The paths are on different file systems.'
            : 'Retry; if it persists, check the disk and the path.';
  const what = err instanceof Error ? err.message : String(err);
  return new BackupError(code !== undefined && NO_SPACE_ERRNO.has(code) ? 'NO_SPACE' : 'IO', `Cannot ${action} ${path}: ${what}. ${hint}${extra ? ` ${extra}` : ''}`, {
    cause: err,
    path,
  });
}
