import { isUtf8 } from 'node:buffer';
import type { Dirent } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { PathChangedError, readDirConfined } from './confine.js';
import { isAtomicJsonLockDir, isLockDirName } from './lockdir.js';
import { ioError } from './errors.js';
import { errCode } from './fsutil.js';
import { baseText, childRel, compareRel, joinRel, relBytes, relFromBytes, relKey, relText, type Rel } from './relpath.js';

/**
 * One entry of a walked tree. `rel` is relative to the root, `/`-separated: a string, or the
 * raw bytes when the path is not valid UTF-8 (names are bytes; see `relpath.ts`).
 */
export interface TreeEntry {
  rel: Rel;
  kind: 'dir' | 'file' | 'symlink';
  /** Permission bits (directories only; files get theirs when copied). */
  mode?: number;
}

/** Something the walk left out, and why. */
export interface SkippedEntry {
  /** Path relative to the root (readable text; see `relB64` for names that are not UTF-8). */
  rel: string;
  /** Base64 of the exact path bytes, present only when the path is not valid UTF-8. */
  relB64?: string;
  reason: string;
}

/** A {@link SkippedEntry} for a path. */
export function skippedEntry(rel: Rel, reason: string): SkippedEntry {
  return typeof rel === 'string' ? { rel, reason } : { rel: relText(rel), relB64: rel.toString('base64'), reason };
}

export interface WalkOptions {
  /**
   * Excluded entries (and whole excluded directories) are left out silently. `rel` is the
   * readable text; `exact` is false when the entry's own name is not valid UTF-8 (its text shows U+FFFD).
   */
  exclude?: (rel: string, isDir: boolean, exact: boolean) => boolean;
  /**
   * Leave out atomic-json's lock directories, by the one rule of {@link isAtomicJsonLockDir}: an
   * **empty** directory `<name>.lock` beside a file `<name>`, or modified in the last 60 s (a
   * held lock is refreshed every few seconds). Any other `.lock` directory (with entries, or
   * an old empty one with no `<name>` beside it), and any file named `*.lock`, is data. A
   * lock-shaped directory that vanishes during the walk (a lock released) is left out silently.
   * @default false
   */
  skipLockDirs?: boolean;
  /**
   * `root` is a real path (no symlink on the way): read every directory through a checked
   * descriptor ({@link readDirConfined}), so a directory replaced by a symlink during the walk
   * is never listed through it; it is reported in `skipped` instead.
   * @default false
   */
  confined?: boolean;
  /** How many directories are read at once. @default 8 */
  concurrency?: number;
}

export interface WalkResult {
  /** Sorted by path bytes, so every directory comes before what it holds. */
  entries: TreeEntry[];
  /** Special files (sockets, FIFOs, devices) and entries that vanished during the walk. */
  skipped: SkippedEntry[];
  /** Permission bits of the root directory. */
  rootMode: number;
}

function kindOf(d: Dirent<string | Buffer>): TreeEntry['kind'] | 'other' | 'unknown' {
  if (d.isDirectory()) return 'dir';
  if (d.isFile()) return 'file';
  if (d.isSymbolicLink()) return 'symlink';
  if (d.isFIFO() || d.isSocket() || d.isBlockDevice() || d.isCharacterDevice()) return 'other';
  return 'unknown';
}

export { isLockDirName } from './lockdir.js';

/**
 * Read a directory's entries with their exact names: as strings (fast path) unless a name is
 * not valid UTF-8 (Node shows it with U+FFFD), then again as bytes.
 */
async function readEntries(abs: string | Buffer, confined: boolean): Promise<Dirent<string | Buffer>[]> {
  const dirents = confined ? await readDirConfined(abs) : await readdir(abs, { withFileTypes: true });
  if (!dirents.some((d) => d.name.includes('\uFFFD'))) return dirents;
  return confined ? readDirConfined(abs, 'buffer') : readdir(abs, { withFileTypes: true, encoding: 'buffer' });
}

/**
 * Walk a directory tree without following symlinks, reading directories with
 * `readdir({ withFileTypes: true })` (one `lstat` per directory for its mode, none per file).
 * Names that are not valid UTF-8 are kept exactly (as bytes). Errors other than an entry
 * vanishing mid-walk are thrown (nothing is left out silently).
 */
export async function walkTree(root: string, opts: WalkOptions = {}): Promise<WalkResult> {
  const entries: TreeEntry[] = [];
  const skipped: SkippedEntry[] = [];
  const exclude = opts.exclude ?? (() => false);
  const rootMode = (await lstat(root)).mode & 0o7777;
  const queue: Rel[] = [''];
  const lockDirs = new Set<string>(); // relKey of empty lock directories
  const emptyLockShaped: Rel[] = []; // empty `<x>.lock` directories not (yet) taken for locks
  let active = 0;
  let failure: { err: unknown } | undefined;

  const readOne = async (rel: Rel) => {
    const abs = joinRel(root, rel);
    const lockShaped = opts.skipLockDirs === true && rel !== '' && isLockDirName(baseText(rel));
    let dirents: Dirent<string | Buffer>[];
    try {
      dirents = await readEntries(abs, opts.confined === true);
    } catch (err) {
      if (rel !== '' && lockShaped && (err instanceof PathChangedError || errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR')) {
        lockDirs.add(relKey(rel)); // a lock released (and maybe taken again) while we looked
        return;
      }
      if (rel !== '' && (err instanceof PathChangedError || errCode(err) === 'ELOOP')) {
        skipped.push(skippedEntry(rel, 'replaced during the backup (a directory became a symlink or moved): not read'));
        return;
      }
      if (rel !== '' && (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR')) {
        if (lockShaped) lockDirs.add(relKey(rel));
        else skipped.push(skippedEntry(rel, 'vanished during the backup'));
        return;
      }
      throw ioError(relText(abs as Rel), 'read the directory', err);
    }
    if (lockShaped && dirents.length === 0) {
      // A held lock is released (its directory removed) at any moment: one gone by now was a lock
      // (or an empty directory deleted meanwhile); either way it is not in the tree any more.
      const gone = async () => lstat(abs).then(() => false, (e: unknown) => errCode(e) === 'ENOENT' || errCode(e) === 'ENOTDIR');
      // A node that releases and takes the lock again back to back (atomic-json's lease) removes
      // and re-creates it between two looks: gone at the first, back at the second. Look again;
      // only what is neither a lock nor gone three times over is data.
      for (let look = 0; look < 3; look++) {
        if ((await isAtomicJsonLockDir(abs, { entries: 0 })) || (await gone())) {
          lockDirs.add(relKey(rel));
          return;
        }
      }
      emptyLockShaped.push(rel); // judged again on the walk's own listing, below

    }
    for (const d of dirents) {
      const child = childRel(rel, d.name);
      const childText = relText(child);
      let kind: TreeEntry['kind'] | 'other' | 'unknown' = kindOf(d);
      let mode: number | undefined;
      if (kind === 'unknown' || kind === 'dir') {
        try {
          const st = await lstat(joinRel(root, child));
          mode = st.mode & 0o7777;
          kind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other';
        } catch (err) {
          if (errCode(err) === 'ENOENT') continue;
          throw ioError(relText(joinRel(root, child) as Rel), 'stat', err);
        }
      }
      if (exclude(childText, kind === 'dir', typeof d.name === 'string' || isUtf8(d.name))) continue;
      if (kind !== 'dir' && kind !== 'file' && kind !== 'symlink') {
        skipped.push(skippedEntry(child, 'not a regular file, directory or symlink'));
        continue;
      }
      if (kind === 'dir') {
        entries.push({ rel: child, kind, mode: mode! });
        queue.push(child);
      } else {
        entries.push({ rel: child, kind });
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

  // The rule's "beside its file" half, on the walk's own listing rather than on a later look at
  // the file system (which a lock released and taken again meanwhile can fool): an empty
  // `<x>.lock` listed beside a regular file `<x>` is a lock.
  if (emptyLockShaped.length > 0) {
    const files = new Set(entries.filter((e) => e.kind === 'file').map((e) => relKey(e.rel)));
    for (const rel of emptyLockShaped) {
      const sibling = typeof rel === 'string' ? rel.slice(0, -'.lock'.length) : relFromBytes(rel.subarray(0, rel.length - '.lock'.length));
      if (files.has(relKey(sibling))) lockDirs.add(relKey(rel));
    }
  }
  const kept = lockDirs.size === 0 ? entries : entries.filter((e) => !lockDirs.has(relKey(e.rel)));
  if (kept.every((e) => typeof e.rel === 'string')) {
    kept.sort((a, b) => compareRel(a.rel, b.rel));
    return { entries: kept, skipped, rootMode };
  }
  // Some names are bytes: order everything by bytes (one consistent order, parents first).
  const keyed = kept.map((e) => ({ e, b: relBytes(e.rel) }));
  keyed.sort((x, y) => Buffer.compare(x.b, y.b));
  return { entries: keyed.map((k) => k.e), skipped, rootMode };
}
