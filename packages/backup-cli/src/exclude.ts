import { isTempFileName } from '@dawn/atomic-json';
import picomatch from 'picomatch';
import { BackupError } from './errors.js';

/**
 * Patterns excluded from every backup, whatever the options: none. What every backup leaves
 * out is recognised exactly, not by pattern (a pattern such as `*.lock` also caught `Cargo.lock`
 * and agents whose id ends in `.lock`, and a restore then deleted them):
 *
 * - atomic-json's temp files: names for which `isTempFileName()` of `@dawn/atomic-json` is true
 *   (not directories);
 * - atomic-json's lock directories: an **empty** directory `<name>.lock` beside a file `<name>`,
 *   or modified in the last 60 s (see `isAtomicJsonLockDir` in `lockdir.ts`).
 *
 * Kept (empty) for compatibility.
 */
export const ALWAYS_EXCLUDES: readonly string[] = Object.freeze([]);

/**
 * The default excludes of `backup` (the Python tool's list): `*.log`, `*.tmp`, `__pycache__`,
 * `*.pyc`. Turn them off with `defaultExcludes: false` (`--no-default-excludes`); atomic-json's
 * lock directories and temp files are left out either way (see {@link ALWAYS_EXCLUDES}).
 */
export const DEFAULT_EXCLUDES: readonly string[] = Object.freeze(['*.log', '*.tmp', '__pycache__', '*.pyc']);

/**
 * Decides whether a path (relative to the source, `/`-separated) is excluded.
 * `isDir` tells whether the entry is a directory (an excluded directory is skipped whole).
 * `exact` is false when the entry's own name is not valid UTF-8 and `relPath` ends in its
 * readable text (patterns still match that text; an atomic-json temp file name never does).
 */
export type ExcludeMatcher = (relPath: string, isDir: boolean, exact?: boolean) => boolean;

interface CompiledPattern {
  test: (s: string) => boolean;
  /** Match the name (basename) rather than the relative path. */
  basename: boolean;
  /** The pattern ended with `/`: directories only. */
  dirOnly: boolean;
}

function compile(pattern: string): CompiledPattern {
  if (typeof pattern !== 'string' || pattern.trim() === '') {
    throw new BackupError('INVALID_OPTION', `Invalid exclude pattern ${JSON.stringify(pattern)}: it is empty. Give a glob such as "*.log".`);
  }
  let p = pattern;
  let dirOnly = false;
  while (p.length > 1 && p.endsWith('/')) {
    p = p.slice(0, -1);
    dirOnly = true;
  }
  if (p.startsWith('./')) p = p.slice(2);
  const anchored = p.startsWith('/');
  if (anchored) p = p.replace(/^\/+/, '');
  if (p === '') {
    throw new BackupError('INVALID_OPTION', `Invalid exclude pattern ${JSON.stringify(pattern)}: it names the source itself. Exclude paths inside it.`);
  }
  const basename = !anchored && !p.includes('/');
  let test: (s: string) => boolean;
  try {
    test = picomatch(p, { dot: true });
  } catch (err) {
    throw new BackupError('INVALID_OPTION', `Invalid exclude pattern ${JSON.stringify(pattern)}: ${(err as Error).message}.`, { cause: err });
  }
  return { test, basename, dirOnly };
}

/**
 * Build the exclude matcher for a list of glob patterns (matched by `picomatch`, `dot: true`):
 *
 * - a pattern **without `/`** matches a file or directory **name at any depth** (as Python's
 *   `shutil.ignore_patterns` did): `*.log` excludes `dawn.log` and `logs/dawn.log`, not
 *   `tools/data.log.json`;
 * - a pattern **with `/`** matches the **path relative to the source**: `agents/*\/cache`
 *   excludes `agents/a1/cache` only; a leading `/` anchors a name to the top (`/logs`);
 * - a trailing `/` restricts the pattern to directories (`cache/`);
 * - an excluded directory is skipped with everything below it.
 *
 * Atomic-json temp files ({@link isTempFileName}; files, not directories) are always excluded.
 *
 * @throws {BackupError} `INVALID_OPTION` for an empty or malformed pattern.
 * @example
 * ```ts
 * const excluded = createExcludeMatcher(['*.log', 'agents/*\/cache']);
 * excluded('logs/dawn.log', false);       // true
 * excluded('tools/data.log.json', false); // false
 * ```
 */
export function createExcludeMatcher(patterns: readonly string[]): ExcludeMatcher {
  const why = explainExclude(patterns);
  return (relPath, isDir, exact = true) => why(relPath, isDir, exact) !== undefined;
}

/** An atomic-json temp file, as {@link explainExclude} names the reason. */
export const TEMP_FILE_REASON = '(atomic-json temp file)';

/**
 * Like {@link createExcludeMatcher}, but says **why**: the first pattern that excludes the path,
 * {@link TEMP_FILE_REASON} for an atomic-json temp file, `undefined` when it is not excluded
 * (for `backup --dry-run`).
 *
 * @throws {BackupError} `INVALID_OPTION` for an empty or malformed pattern.
 */
export function explainExclude(patterns: readonly string[]): (relPath: string, isDir: boolean, exact?: boolean) => string | undefined {
  const compiled = patterns.map((p) => ({ pattern: p, ...compile(p) }));
  return (relPath, isDir, exact = true) => {
    const slash = relPath.lastIndexOf('/');
    const name = slash < 0 ? relPath : relPath.slice(slash + 1);
    if (!isDir && exact && isTempFileName(name)) return TEMP_FILE_REASON;
    for (const c of compiled) {
      if (c.dirOnly && !isDir) continue;
      if (c.test(c.basename ? name : relPath)) return c.pattern;
    }
    return undefined;
  };
}

/**
 * The effective exclude list of a backup: defaults (or only {@link ALWAYS_EXCLUDES} when
 * `defaultExcludes` is false) followed by the user's patterns, without duplicates.
 */
export function effectiveExcludes(user: readonly string[] = [], defaultExcludes = true): string[] {
  const out: string[] = [];
  for (const p of [...(defaultExcludes ? DEFAULT_EXCLUDES : ALWAYS_EXCLUDES), ...user]) if (!out.includes(p)) out.push(p);
  return out;
}
