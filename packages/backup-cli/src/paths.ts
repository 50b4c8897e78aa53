import { realpath } from 'node:fs/promises';
import { expandHome, resolveDataRoot } from '@dawn/atomic-json';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { BackupError } from './errors.js';

/** The file each backup holds at its root, describing it (the Python implementation's name): `.backup_metadata.json`. */
export const METADATA_FILE = '.backup_metadata.json';

/**
 * The file holding a backup's per-file manifest, beside {@link METADATA_FILE} (backups with
 * `format_version` 2 and later; older ones hold the manifest inline in the metadata).
 */
export const MANIFEST_FILE = '.backup_manifest.json';

/** Longest accepted backup name (leaves room for the temporary names built from it). */
export const MAX_NAME_LENGTH = 200;

/**
 * The data root, as every Dawn package resolves it (one rule, `@dawn/atomic-json`'s):
 * `explicit` → env `PROJECT_DAWN_DATA_ROOT` (`~` expanded; empty counts as unset) →
 * `~/.project-dawn`. Always absolute.
 */
export { expandHome, resolveDataRoot };

/** The environment variable naming the backup directory of every command: `DAWN_BACKUP_DIR`. */
export const BACKUP_DIR_ENV = 'DAWN_BACKUP_DIR';

/** The environment, as the path helpers read it (no `@types/node` needed by callers). */
export type Env = Readonly<Record<string, string | undefined>>;

/**
 * The default backup directory of a source: `<source>/../backups` (the Python layout).
 *
 * @example
 * ```ts
 * defaultBackupDir('/home/dawn/.project-dawn'); // '/home/dawn/backups'
 * ```
 */
export function defaultBackupDir(source: string): string {
  return resolve(source, '..', 'backups');
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** `YYYYMMDD_HHMMSS` in local time. */
export function formatStamp(date: Date): string {
  return (
    `${date.getFullYear()}${pad(date.getMonth() + 1)}${pad(date.getDate())}_` +
    `${pad(date.getHours())}${pad(date.getMinutes())}${pad(date.getSeconds())}`
  );
}

/**
 * The default backup name for a moment: `dawn_backup_YYYYMMDD_HHMMSS`, local time.
 *
 * @example
 * ```ts
 * defaultBackupName(new Date(2026, 10, 25, 10, 15, 0)); // 'dawn_backup_20261125_101500'
 * ```
 */
export function defaultBackupName(date: Date = new Date()): string {
  return `dawn_backup_${formatStamp(date)}`;
}

/** The name of the safety backup `restore` makes of the current target: `pre_restore_YYYYMMDD_HHMMSS`. */
export function preRestoreName(date: Date = new Date()): string {
  return `pre_restore_${formatStamp(date)}`;
}

/**
 * Local time as Python's `datetime.now().isoformat()` writes it: `2026-11-26T00:21:37.234654`
 * (no zone, microseconds).
 */
export function isoLocal(date: Date): string {
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}000`
  );
}

const ISO_LOCAL = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * Parse an ISO timestamp as written by Python's `isoformat()` (local time unless it carries a
 * zone) into Unix seconds. `undefined` when it is not such a timestamp.
 */
export function parseIsoLocal(text: string): number | undefined {
  const m = ISO_LOCAL.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const fraction = frac ? Number(`0.${frac}`) : 0;
  if (zone) {
    const ms = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s}${zone.length === 5 ? `${zone.slice(0, 3)}:${zone.slice(3)}` : zone}`);
    return Number.isNaN(ms) ? undefined : ms / 1000 + fraction;
  }
  const date = new Date(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  const ms = date.getTime();
  return Number.isNaN(ms) ? undefined : ms / 1000 + fraction;
}

/**
 * Check a backup name: non-empty, at most {@link MAX_NAME_LENGTH} characters, no `/`, `\`,
 * `..`, leading `.`, NUL or control characters (a name is one directory name inside the
 * backup dir; names starting with `.` are reserved for temporary directories), and not `list`
 * (`restore list` lists backups).
 *
 * @throws {BackupError} `INVALID_NAME` naming the problem.
 * @example
 * ```ts
 * validateBackupName('nightly-007'); // ok
 * validateBackupName('../etc');      // throws INVALID_NAME
 * ```
 */
export function validateBackupName(name: string): void {
  const bad = (why: string) =>
    new BackupError('INVALID_NAME', `Invalid backup name ${JSON.stringify(name)}: ${why}. Choose a plain name such as "nightly_001".`);
  if (typeof name !== 'string' || name.length === 0) throw bad('it is empty');
  if (name.length > MAX_NAME_LENGTH) throw bad(`it is longer than ${MAX_NAME_LENGTH} characters`);
  if (name.includes('/') || name.includes('\\')) throw bad('it contains a path separator (/ or \\)');
  if (name.includes('..')) throw bad('it contains ".."');
  if (name.startsWith('.')) throw bad('it starts with "." (reserved for temporary directories)');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) throw bad('it contains a control character');
  if (name === 'list') throw bad('"list" is reserved (`restore list` lists backups)');
}

/**
 * The backup directory to use: `backupDir` (`--backup-dir`, `~` expanded) when given, else env
 * `DAWN_BACKUP_DIR`, else `<source>/../backups` — where `source` is the directory being backed up
 * (`backup --source`), or the data root for every other command (see {@link resolveDataRoot},
 * {@link defaultBackupDir}). Always absolute. Empty values count as unset.
 *
 * @example
 * ```ts
 * resolveBackupDir('~/bk');  // '/home/dawn/bk'
 * resolveBackupDir();        // $DAWN_BACKUP_DIR, else '/home/dawn/backups' (data root ~/.project-dawn)
 * ```
 */
export function resolveBackupDir(backupDir?: string, env: Env = process.env, source?: string): string {
  if (backupDir !== undefined && backupDir !== '') return resolve(expandHome(backupDir));
  const fromEnv = env[BACKUP_DIR_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return resolve(expandHome(fromEnv));
  return defaultBackupDir(source ?? resolveDataRoot(undefined, env));
}

/**
 * The real path of `p` even when it does not exist (yet): the real path (`realpath`) of its
 * deepest existing ancestor, with the rest of the path appended. Every symlink that exists on
 * the way is resolved, so `/a/link-to-backups/x` becomes `/srv/backups/x`. A dangling symlink
 * is kept as a name (the part below it cannot be resolved).
 *
 * @throws errno errors of `realpath` other than `ENOENT`/`ENOTDIR`.
 * @example
 * ```ts
 * await realPathOf('/home/dawn/link/not-yet'); // '/srv/real/not-yet' when link -> /srv/real
 * ```
 */
export async function realPathOf(p: string): Promise<string> {
  let head = resolve(p);
  const rest: string[] = [];
  for (;;) {
    try {
      const real = await realpath(head);
      return rest.length === 0 ? real : join(real, ...rest.reverse());
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      const up = dirname(head);
      if (up === head) return resolve(p);
      rest.push(basename(head));
      head = up;
    }
  }
}

/** `child` is `parent` or inside it, comparing the paths as given (pass real paths, see {@link realPathOf}). */
export function isPathInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (rel !== '..' && !rel.startsWith('../') && !rel.startsWith('..\\') && !isAbsolute(rel));
}

/** Where two directories stand to each other: `same`, `inside` (a in b), `contains` (b in a), or `apart`. */
export type PathRelation = 'same' | 'inside' | 'contains' | 'apart';

/**
 * How `a` relates to `b`, by real paths (every symlink on the way resolved, see
 * {@link realPathOf}): the one containment check of backup and restore.
 *
 * @example
 * ```ts
 * await relatePaths('/srv/link-to-backups/t', '/srv/backups'); // 'inside'
 * ```
 */
export async function relatePaths(a: string, b: string): Promise<{ relation: PathRelation; realA: string; realB: string }> {
  const [realA, realB] = await Promise.all([realPathOf(a), realPathOf(b)]);
  const relation: PathRelation = realA === realB ? 'same' : isPathInside(realA, realB) ? 'inside' : isPathInside(realB, realA) ? 'contains' : 'apart';
  return { relation, realA, realB };
}
