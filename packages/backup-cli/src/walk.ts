import type { Dirent } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ioError } from './errors.js';
import { errCode } from './fsutil.js';

/** One entry of a walked tree. `rel` is relative to the root, `/`-separated. */
export interface TreeEntry {
  rel: string;
  kind: 'dir' | 'file' | 'symlink';
  /** Permission bits (directories only; files get theirs when copied). */
  mode?: number;
}

/** Something the walk left out, and why. */
export interface SkippedEntry {
  rel: string;
  reason: string;
}

export interface WalkOptions {
  /** Excluded entries (and whole excluded directories) are left out silently. */
  exclude?: (rel: string, isDir: boolean) => boolean;
  /** How many directories are read at once. @default 8 */
  concurrency?: number;
}

export interface WalkResult {
  /** Sorted by path, so every directory comes before what it holds. */
  entries: TreeEntry[];
  /** Special files (sockets, FIFOs, devices) and entries that vanished during the walk. */
  skipped: SkippedEntry[];
  /** Permission bits of the root directory. */
  rootMode: number;
}

function kindOf(d: Dirent): TreeEntry['kind'] | 'other' | 'unknown' {
  if (d.isDirectory()) return 'dir';
  if (d.isFile()) return 'file';
  if (d.isSymbolicLink()) return 'symlink';
  if (d.isFIFO() || d.isSocket() || d.isBlockDevice() || d.isCharacterDevice()) return 'other';
  return 'unknown';
}

/**
 * Walk a directory tree without following symlinks, reading directories with
 * `readdir({ withFileTypes: true })` (one `lstat` per directory for its mode, none per file).
 * Errors other than an entry vanishing mid-walk are thrown (nothing is left out silently).
 */
export async function walkTree(root: string, opts: WalkOptions = {}): Promise<WalkResult> {
  const entries: TreeEntry[] = [];
  const skipped: SkippedEntry[] = [];
  const exclude = opts.exclude ?? (() => false);
  const rootMode = (await lstat(root)).mode & 0o7777;
  const queue: string[] = [''];
  let active = 0;
  let failure: { err: unknown } | undefined;

  const readOne = async (rel: string) => {
    const abs = rel === '' ? root : join(root, rel);
    let dirents: Dirent[];
    try {
      dirents = await readdir(abs, { withFileTypes: true });
    } catch (err) {
      if (rel !== '' && (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR')) {
        skipped.push({ rel, reason: 'vanished during the backup' });
        return;
      }
      throw ioError(abs, 'read the directory', err);
    }
    for (const d of dirents) {
      const childRel = rel === '' ? d.name : `${rel}/${d.name}`;
      let kind: TreeEntry['kind'] | 'other' | 'unknown' = kindOf(d);
      let mode: number | undefined;
      if (kind === 'unknown' || kind === 'dir') {
        try {
          const st = await lstat(join(abs, d.name));
          mode = st.mode & 0o7777;
          kind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other';
        } catch (err) {
          if (errCode(err) === 'ENOENT') continue;
          throw ioError(join(abs, d.name), 'stat', err);
        }
      }
      if (exclude(childRel, kind === 'dir')) continue;
      if (kind !== 'dir' && kind !== 'file' && kind !== 'symlink') {
        skipped.push({ rel: childRel, reason: 'not a regular file, directory or symlink' });
        continue;
      }
      if (kind === 'dir') {
        entries.push({ rel: childRel, kind, mode: mode! });
        queue.push(childRel);
      } else {
        entries.push({ rel: childRel, kind });
      }
    }
  };

  await new Promise<void>((resolve, reject) => {
    const limit = Math.max(1, opts.concurrency ?? 8);
    const pump = () => {
      if (failure) {
        if (active === 0) reject(failure.err);
        return;
      }
      if (queue.length === 0 && active === 0) {
        resolve();
        return;
      }
      while (active < limit && queue.length > 0) {
        const rel = queue.shift()!;
        active++;
        readOne(rel).then(
          () => {
            active--;
            pump();
          },
          (err) => {
            active--;
            failure ??= { err };
            pump();
          },
        );
      }
    };
    pump();
  });

  entries.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  return { entries, skipped, rootMode };
}
