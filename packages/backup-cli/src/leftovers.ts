import type { Stats } from 'node:fs';
import { chmod, lstat, readdir, readFile, rename, rmdir, unlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { ioError } from './errors.js';
import { errCode, fsyncDir, isPidAlive, lstatOrUndefined, randomTag, removeTree, runPool } from './fsutil.js';
import { formatStamp } from './paths.js';

/**
 * Temporary directories, named so a later run can tell whose they are:
 *
 * - `<backup-dir>/.<name>.partial-h<host>-<pid>-<tag>`: a backup being built (renamed to `<name>` when complete);
 * - `<backup-dir>/.<name>.deleting-h<host>-<pid>-<tag>`: a backup being removed by `prune`;
 * - `<parent of target>/.dawn-restore-<id>-h<host>-<pid>-<tag>.new`: a restored tree being built;
 * - `<parent of target>/.dawn-restore-<id>-h<host>-<pid>-<tag>.old`: the previous target during the swap
 *   (another host's are never touched, only reported: see `recoverInterruptedRestores`).
 *
 * `<host>` is {@link hostTag}: a backup dir may be shared by several machines (NFS) or
 * containers, whose pids mean nothing here. Names start with `.`, so `list` never shows them.
 * A leftover of this host whose process is gone is cleaned (or, for a restore, finished) by the
 * next run; one of a live process is left alone. One of another host is left alone unless it
 * has not changed for {@link FOREIGN_LEFTOVER_MS} (24 h): then it is removed with a warning.
 * Names of older versions (`.<name>.partial-<pid>-<tag>`, no host) are judged by their pid, as
 * those versions did.
 */
const BACKUP_TEMP = /^\.(.+)\.(partial|deleting)-(?:h([0-9a-f]{8})-)?(\d+)-([0-9a-f]{8})$/;

/** A leftover of another host is removed only once it has not changed for this long. */
export const FOREIGN_LEFTOVER_MS = 24 * 3_600_000;

let hostTagCache: string | undefined;
/** This machine (or container) in temporary names: 8 hex digits of the sha256 of its hostname. */
export function hostTag(): string {
  return (hostTagCache ??= createHash('sha256').update(hostname()).digest('hex').slice(0, 8));
}

export const partialDirName = (name: string): string => `.${name}.partial-h${hostTag()}-${process.pid}-${randomTag()}`;
export const deletingDirName = (name: string): string => `.${name}.deleting-h${hostTag()}-${process.pid}-${randomTag()}`;

/** Options of {@link cleanBackupDirLeftovers}. */
export interface CleanLeftoversOptions {
  /** Told about each leftover of another host removed because it is old. */
  warn?: (message: string) => void;
  /** The current time, ms. @default Date.now() */
  now?: number;
}

/**
 * Remove the temporary directories of dead processes from a backup dir. Returns the names
 * removed; one that cannot be fully removed is left (never crossing a mount point) and does
 * not fail the call.
 */
export async function cleanBackupDirLeftovers(backupDir: string, opts: CleanLeftoversOptions = {}): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(backupDir);
  } catch (err) {
    if (errCode(err) === 'ENOENT') return [];
    throw ioError(backupDir, 'read the backup dir', err);
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = BACKUP_TEMP.exec(n);
    if (!m) continue;
    const host = m[3];
    let foreignAge: number | undefined;
    if (host === undefined || host === hostTag()) {
      if (isPidAlive(Number(m[4]))) continue;
    } else {
      // Another machine's (or container's): its pid says nothing here. Left alone while it
      // changes; after a day without change it is abandoned.
      const st = await lstatOrUndefined(join(backupDir, n));
      if (!st) continue;
      foreignAge = (opts.now ?? Date.now()) - Math.max(st.mtimeMs, st.ctimeMs);
      if (foreignAge < FOREIGN_LEFTOVER_MS) continue;
    }
    // What cannot be removed (an immutable file, a mount point) stays for a human and is tried
    // again next time; it never blocks the run (hidden, so never listed as a backup).
    if ((await removeTreeReporting(join(backupDir, n))).length === 0) {
      removed.push(n);
      if (foreignAge !== undefined) {
        opts.warn?.(
          `removed ${join(backupDir, n)}: a temporary directory of a dawn-backup ${m[2] === 'partial' ? 'backup' : 'prune'} on another host (h${host}), unchanged for ${Math.floor(foreignAge / 3_600_000)} h, so taken for abandoned`,
        );
      }
    }
  }
  return removed;
}

/** Mount points (Linux `/proc/self/mountinfo`), or `undefined` where that cannot be read. */
async function mountPoints(): Promise<Set<string> | undefined> {
  let text: string;
  try {
    text = await readFile('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (field) out.add(field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

/**
 * Remove a directory tree as far as possible, never crossing into another file system (a
 * mount point inside it is left mounted, with its contents) and never following a symlink.
 * Returns what could not be removed (each path with the reason); empty when all is gone.
 *
 * @example
 * ```ts
 * const left = await removeTreeReporting('/srv/.dawn-restore-...old');
 * if (left.length > 0) console.warn(`left: ${left.join(', ')}`);
 * ```
 */
export async function removeTreeReporting(root: string): Promise<string[]> {
  const rootSt = await lstatOrUndefined(root);
  if (!rootSt) return [];
  const mounts = await mountPoints();
  const prefix = root.endsWith(sep) ? root : root + sep;
  const hasMountsInside = mounts === undefined || [...mounts].some((m) => m === root || m.startsWith(prefix));
  if (!hasMountsInside) {
    try {
      await removeTree(root);
      return [];
    } catch {
      // fall through: remove what can be removed and say what is left
    }
  }
  const left: string[] = [];
  const why = (err: unknown) => errCode(err) || (err as Error).message;
  // Buffer paths throughout: names are bytes (a name that is not UTF-8 is removed like any other).
  const at = (dir: Buffer, name: Buffer) => Buffer.concat([dir, Buffer.from(sep), name]);
  const show = (p: Buffer) => p.toString();
  const isMount = (p: Buffer, st: Stats, parentDev: number) => st.dev !== parentDev || mounts?.has(show(p)) === true;
  const rmDir = async (dir: Buffer, dev: number): Promise<boolean> => {
    let names: Buffer[];
    try {
      names = await readdir(dir, { encoding: 'buffer' });
    } catch (err) {
      await chmod(dir, 0o700).catch(() => {});
      try {
        names = await readdir(dir, { encoding: 'buffer' });
      } catch {
        left.push(`${show(dir)} (${why(err)})`);
        return false;
      }
    }
    let complete = true;
    await runPool(names, 16, async (n) => {
      const p = at(dir, n);
      let st: Stats;
      try {
        st = await lstat(p);
      } catch {
        return;
      }
      if (st.isDirectory()) {
        if (isMount(p, st, dev)) {
          left.push(`${show(p)} (a mount point)`);
          complete = false;
        } else if (!(await rmDir(p, dev))) complete = false;
        return;
      }
      try {
        await unlink(p);
      } catch (err) {
        if (errCode(err) === 'ENOENT') return;
        await chmod(dir, 0o700).catch(() => {});
        try {
          await unlink(p);
        } catch {
          left.push(`${show(p)} (${why(err)})`);
          complete = false;
        }
      }
    });
    if (!complete) return false;
    try {
      await rmdir(dir);
      return true;
    } catch (err) {
      if (errCode(err) === 'ENOENT') return true;
      left.push(`${show(dir)} (${errCode(err) === 'EBUSY' ? 'a mount point' : why(err)})`);
      return false;
    }
  };
  if (rootSt.isDirectory()) {
    if (mounts?.has(root)) return [`${root} (a mount point)`];
    await rmDir(Buffer.from(root), rootSt.dev);
  } else {
    try {
      await unlink(root);
    } catch (err) {
      if (errCode(err) !== 'ENOENT') left.push(`${root} (${why(err)})`);
    }
  }
  return left;
}

/**
 * Give the previous data of a restore that could not be fully removed a visible name that no
 * later run mistakes for an interrupted restore: `<target>.restore-leftover-YYYYMMDD_HHMMSS`
 * beside the target. Returns the new path (or `dir` itself when even the rename fails).
 */
export async function parkLeftover(dir: string, target: string, now: Date = new Date()): Promise<string> {
  const base = `${target}.restore-leftover-${formatStamp(now)}`;
  for (let i = 1; i < 100; i++) {
    const to = i === 1 ? base : `${base}_${i}`;
    if (await lstatOrUndefined(to)) continue;
    try {
      await rename(dir, to);
      await fsyncDir(dirname(to)).catch(() => {});
      return to;
    } catch (err) {
      if (errCode(err) === 'EEXIST' || errCode(err) === 'ENOTEMPTY') continue;
      return dir;
    }
  }
  return dir;
}
