import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { openDirConfined, openInDir, procFdWorks } from './confine.js';
import { NotRegularFileError } from './copy.js';

/**
 * Hash many small files the cheap way (verify of a data root: thousands of files of a few KiB).
 *
 * Files are taken directory by directory: each directory is opened once (`O_DIRECTORY |
 * O_NOFOLLOW`) and checked to be the directory asked for (`/proc/self/fd`, see confine.ts), and
 * each of its files is then opened **through that descriptor**, `/proc/self/fd/<dir>/<name>` —
 * Linux's equivalent of `openat(dirfd, name)`: the lookup starts at the checked directory
 * whatever its path leads to meanwhile, so no per-file check of the path is needed to stay
 * inside the tree. Each file is opened `O_NOFOLLOW | O_NONBLOCK` (a symlink is `ELOOP`, a FIFO
 * never blocks), `fstat`ed (anything but a regular file is {@link NotRegularFileError}), read with
 * synchronous calls into one reused buffer (no thread-pool round trip per call) and hashed in one
 * shot. Only where `/proc/self/fd` works ({@link canHashByDir}); elsewhere callers use the
 * per-file path (copy.ts).
 */

/** Files up to this size are hashed here (larger ones: the worker pool). */
export const DIR_HASH_MAX = 256 * 1024;

const READ_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0);

/** One-shot sha256 (`crypto.hash`, Node ≥ 20.12), else a Hash object. */
const sha256: (b: Buffer) => string =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (b) => (crypto as unknown as { hash: (alg: string, d: Buffer, enc: 'hex') => string }).hash('sha256', b, 'hex')
    : (b) => crypto.createHash('sha256').update(b).digest('hex');

/** Whether {@link hashByDir} can be used here. */
export const canHashByDir = (): boolean => procFdWorks();

/** A file to hash: its name in its directory (bytes for a name that is not UTF-8). */
export interface DirFile<T> {
  name: string | Buffer;
  item: T;
}

/** What hashing one file gave. */
export type DirHashResult = { ok: true; size: number; sha256: string } | { ok: false; error: unknown };

/**
 * Hash the files of `groups` (each: a directory given by a real path, and files directly in it),
 * calling `done` for each file in order. A directory that cannot be opened or checked fails each
 * of its files with that error ({@link PathChangedError}, `ENOENT`...). Yields to the event loop
 * every 30 ms (progress output).
 */
export async function hashByDir<T>(groups: Iterable<{ dir: string | Buffer; files: DirFile<T>[] }>, done: (item: T, r: DirHashResult) => void): Promise<void> {
  const buf = Buffer.allocUnsafe(DIR_HASH_MAX + 1);
  let lastYield = performance.now();
  for (const g of groups) {
    let dfd: number;
    try {
      dfd = openDirConfined(g.dir);
    } catch (error) {
      for (const f of g.files) done(f.item, { ok: false, error });
      continue;
    }
    try {
      for (const f of g.files) {
        let fd: number;
        try {
          fd = openInDir(dfd, f.name, READ_FLAGS);
        } catch (error) {
          done(f.item, { ok: false, error });
          continue;
        }
        let r: DirHashResult;
        try {
          const st = fs.fstatSync(fd);
          if (!st.isFile()) throw new NotRegularFileError(`${String(f.name)} is not a regular file`);
          let off = 0;
          for (;;) {
            const want = buf.length - off;
            const n = fs.readSync(fd, buf, off, want, null);
            off += n;
            // EOF, or a short read at or past the size fstat saw (saves one read per file).
            if (n === 0 || (n < want && off >= st.size) || off === buf.length) break;
          }
          // Larger than this path takes (it grew): report its size; the content cannot match.
          r = off === buf.length ? { ok: true, size: Math.max(off, st.size), sha256: '' } : { ok: true, size: off, sha256: sha256(buf.subarray(0, off)) };
        } catch (error) {
          r = { ok: false, error };
        } finally {
          fs.closeSync(fd);
        }
        done(f.item, r);
      }
    } finally {
      fs.closeSync(dfd);
    }
    if (performance.now() - lastYield > 30) {
      await yieldToLoop();
      lastYield = performance.now();
    }
  }
}
