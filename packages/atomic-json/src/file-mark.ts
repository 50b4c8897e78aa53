/**
 * A file's identity at one moment, to tell cheaply whether it was replaced since.
 *
 * Every atomic-json writer replaces the file by rename, so each write gives it a new inode:
 * a mark taken right after your own write (under the lock) still matching later proves that
 * no atomic-json writer wrote it since.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ioError } from './errors.js';

/**
 * Identity of a file as returned by {@link fileMark}: device, inode, size and the
 * modification and status-change times in nanoseconds.
 *
 * @example
 * ```ts
 * const mark: FileMark | undefined = await fileMark('/data/peers.json');
 * ```
 */
export interface FileMark {
  /** Device number. */
  readonly dev: bigint;
  /** Inode number (`0n` on file systems without real inodes: such a mark never matches). */
  readonly ino: bigint;
  /** Size in bytes. */
  readonly size: bigint;
  /** Modification time in nanoseconds. */
  readonly mtimeNs: bigint;
  /** Status-change time in nanoseconds. */
  readonly ctimeNs: bigint;
}

/**
 * Take the {@link FileMark} of a file (one `stat`, symbolic links followed).
 * Take it right after your own write, while still holding the lock (inside
 * {@link withLock}), then compare it with {@link sameFileMark} under the lock next time.
 *
 * @param path The file.
 * @returns The mark, or `undefined` when the file does not exist.
 * @throws {AtomicJsonError} `IO` when the file cannot be stat'ed for another reason (permissions...).
 * @example
 * ```ts
 * await withLock(file, async () => {
 *   const now = await fileMark(file);
 *   const doc = now !== undefined && last !== undefined && sameFileMark(now, last) ? cached : await readJson(file);
 *   await writeJson(file, next(doc));
 *   last = await fileMark(file);
 * });
 * ```
 */
export async function fileMark(path: string): Promise<FileMark | undefined> {
  try {
    const s = await stat(path, { bigint: true });
    return { dev: s.dev, ino: s.ino, size: s.size, mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(resolve(path), 'stat', err);
  }
}

/**
 * Whether two marks prove the same, unchanged file. Always `false` when the inode number
 * is `0` (some FUSE/FAT mounts report no real inodes; such a mark proves nothing).
 *
 * Holds only against writers that replace the file by rename (every atomic-json writer):
 * an in-place edit within the same timestamp tick that keeps the size is not detected.
 *
 * @param a A mark from {@link fileMark}.
 * @param b Another mark from {@link fileMark}.
 * @returns `true` when device, inode, size, mtime and ctime are all equal and the inode is not `0`.
 * @throws Never.
 * @example
 * ```ts
 * const now = await fileMark(file);
 * if (now !== undefined && sameFileMark(now, lastWritten)) useCachedDocument();
 * ```
 */
export function sameFileMark(a: FileMark, b: FileMark): boolean {
  if (a.ino === 0n || b.ino === 0n) return false;
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}
