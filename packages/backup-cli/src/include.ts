import picomatch from 'picomatch';
import { createExcludeMatcher } from './exclude.js';
import { BackupError } from './errors.js';

/**
 * Decides whether a path (relative to the data root, `/`-separated) is selected by `--include`.
 * A selected directory selects everything below it.
 */
export type IncludeMatcher = (relPath: string, isDir: boolean) => boolean;

/** The journal of a journaled JSON document (`@dawn/atomic-json`): `<file>.journal`. */
const JOURNAL_SUFFIX = '.journal';

/**
 * Build the matcher of `restore --include` from glob patterns, with the rules of `--exclude`
 * ({@link createExcludeMatcher}): a pattern without `/` matches a name at any depth, one with
 * `/` a path from the root (a leading `/` anchors a name to the top), a trailing `/` means
 * directories only. A path is selected when it or one of its parent directories matches (a
 * matching directory brings its whole subtree). A selected file's journal (`<file>.journal`) is
 * selected with it. Atomic-json temp file names are not special here.
 *
 * @throws {BackupError} `INVALID_OPTION` for an empty or malformed pattern, or no pattern.
 * @example
 * ```ts
 * const included = createIncludeMatcher(['agents/first_agent/**']);
 * included('agents/first_agent/state.json', false); // true
 * included('mesh/peer_registry.json', false);       // false
 * ```
 */
export function createIncludeMatcher(patterns: readonly string[]): IncludeMatcher {
  if (patterns.length === 0) throw new BackupError('INVALID_OPTION', 'No --include pattern given. Give a glob such as "agents/first_agent/**".');
  let direct: ReturnType<typeof createExcludeMatcher>;
  try {
    direct = createExcludeMatcher(patterns);
  } catch (err) {
    if (BackupError.is(err)) throw new BackupError('INVALID_OPTION', err.message.replace('exclude pattern', 'include pattern'), { cause: err });
    throw err;
  }
  const dirCache = new Map<string, boolean>();
  const dirSelected = (dir: string): boolean => {
    let hit = dirCache.get(dir);
    if (hit === undefined) {
      const slash = dir.lastIndexOf('/');
      hit = (slash > 0 && dirSelected(dir.slice(0, slash))) || direct(dir, true, false);
      dirCache.set(dir, hit);
    }
    return hit;
  };
  const fileSelected = (relPath: string): boolean => {
    const slash = relPath.lastIndexOf('/');
    return (slash > 0 && dirSelected(relPath.slice(0, slash))) || direct(relPath, false, false);
  };
  return (relPath, isDir) => {
    if (isDir) return dirSelected(relPath);
    // A journaled document's journal goes with its snapshot (`X.journal` with `X`): restoring the
    // snapshot alone would leave the current journal to be replayed onto it.
    return fileSelected(relPath) || (relPath.endsWith(JOURNAL_SUFFIX) && fileSelected(relPath.slice(0, -JOURNAL_SUFFIX.length)));
  };
}

/**
 * For walking a tree with `--include`: whether a directory (relative path) may hold a selected
 * path or be one, judged from the patterns' static parts (`agents/first_agent/**` → only
 * `agents` and `agents/first_agent` are worth entering). A pattern without `/` (a name at any
 * depth), or whose static part is escaped, makes every directory worth entering.
 */
export function includeMayReach(patterns: readonly string[]): (dirRel: string) => boolean {
  const bases: string[] = [];
  for (const pattern of patterns) {
    let p = pattern;
    while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
    if (p.startsWith('./')) p = p.slice(2);
    const anchored = p.startsWith('/');
    if (anchored) p = p.replace(/^\/+/, '');
    if (!anchored && !p.includes('/')) return () => true;
    const base = picomatch.scan(p).base;
    if (base === '' || base.includes('\\')) return () => true;
    bases.push(base);
  }
  return (dir) => bases.some((b) => b === dir || b.startsWith(`${dir}/`) || dir.startsWith(`${b}/`));
}
