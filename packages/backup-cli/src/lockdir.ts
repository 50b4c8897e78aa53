import { lstat, readdir } from 'node:fs/promises';

/**
 * The one rule for "is this an atomic-json lock directory?", shared by the backup's walk (left
 * out), restore's keeping of excluded entries (never kept) and restore's `TARGET_IN_USE` check
 * (a fresh one means a running node).
 *
 * atomic-json locks `<x>` with proper-lockfile, which makes `<x>.lock` with `mkdir`, removes it
 * with `rmdir`, and, while the lock is held, refreshes its mtime every `staleMs / 2` (5 s by
 * default; `staleMs` is at least 2 s). So a lock directory is:
 *
 * - named `<x>.lock` with a non-empty `<x>`, **and**
 * - an **empty** directory, **and**
 * - either its sibling `<x>` exists as a regular file (the file it locks; a stale lock left by
 *   a killed node), or its mtime is less than {@link LOCK_FRESH_MS} (60 s) old (a held lock,
 *   possibly of a file not written yet).
 *
 * Everything else is data and is backed up and restored: `Cargo.lock/` with content, an old
 * empty `foo.lock/` with no `foo` beside it. (An empty `foo.lock/` made less than 60 s ago,
 * or one beside a file `foo`, is taken for a lock: an empty directory holds nothing to lose
 * but its name.)
 */

/** An empty `<x>.lock` directory modified less than this long ago counts as a held lock (12 refresh periods of the default `staleMs`). */
export const LOCK_FRESH_MS = 60_000;

/** A held lock is refreshed at least this often by default; a lock younger than this belongs to a running node (atomic-json's default `staleMs`). */
export const LIVE_LOCK_MS = 10_000;

const LOCK = Buffer.from('.lock');

/** `<x>.lock` with a non-empty `<x>`: the shape of a lock directory's name (not enough by itself: see {@link isAtomicJsonLockDir}). */
export function isLockDirName(name: string | Buffer): boolean {
  const b = typeof name === 'string' ? Buffer.from(name, 'utf8') : name;
  return b.length > LOCK.length && b.subarray(b.length - LOCK.length).equals(LOCK);
}

/** What is known of a lock-shaped directory. */
export interface LockDirFacts {
  /** `readdir` is empty. */
  empty: boolean;
  /** mtime of the directory, ms. */
  mtimeMs: number;
  /** The sibling `<x>` exists and is a regular file. */
  siblingIsFile: boolean;
}

/** The rule on known facts (see the module comment). */
export function lockDirVerdict(f: LockDirFacts, now: number = Date.now()): boolean {
  return f.empty && (f.siblingIsFile || Math.abs(now - f.mtimeMs) < LOCK_FRESH_MS);
}

/**
 * Is the directory at `abs` (an absolute path; its last component `<x>.lock`) an atomic-json
 * lock directory? `false` when it is not lock-shaped, not a directory, not empty, or gone.
 * Pass `entries` when the caller already listed it.
 */
export async function isAtomicJsonLockDir(abs: string | Buffer, opts: { entries?: number; now?: number } = {}): Promise<boolean> {
  const b = typeof abs === 'string' ? Buffer.from(abs, 'utf8') : abs;
  const name = b.subarray(b.lastIndexOf(0x2f) + 1);
  if (!isLockDirName(name)) return false;
  let mtimeMs: number;
  try {
    const st = await lstat(abs);
    if (!st.isDirectory()) return false;
    mtimeMs = st.mtimeMs;
  } catch {
    return false;
  }
  const empty = opts.entries !== undefined ? opts.entries === 0 : (await readdir(abs).catch(() => ['?'])).length === 0;
  if (!empty) return false;
  const sibling = typeof abs === 'string' ? abs.slice(0, -LOCK.length) : abs.subarray(0, abs.length - LOCK.length);
  const siblingIsFile = await lstat(sibling).then(
    (st) => st.isFile(),
    () => false,
  );
  return lockDirVerdict({ empty, mtimeMs, siblingIsFile }, opts.now);
}
