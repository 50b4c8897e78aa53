import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { constants } from 'node:fs';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { currentUmask, fdClose, fdFsync, fdOpen, fdRead, fdWrite } from './fsutil.js';
import type { HashPool } from './hash-pool.js';
import { assertOpenedAt, openInDir, procFdWorks, splitPath, type DirFds } from './confine.js';

export { PathChangedError } from './confine.js';

/**
 * The copy engine shared by backup, verify and restore: read a file once, hash it (sha256)
 * and write the copy from the same buffer.
 *
 * Small files (the common case in a data root) are read and written with synchronous calls
 * on the main thread, which avoids a thread-pool round trip per syscall; their `fsync` is
 * asynchronous, so many are in flight at once (the file system batches their journal commits).
 * Large files go to a {@link HashPool} of worker threads (hashing is the costly part and uses
 * every core), or, without a pool, use asynchronous reads and writes.
 */

/** Files up to this size take the synchronous path. */
const SMALL_FILE = 256 * 1024;
/** Buffer per worker. */
const BUFFER_SIZE = 1024 * 1024;
/** Default number of files in flight. */
export const DEFAULT_CONCURRENCY = 32;

// O_NONBLOCK: opening a FIFO swapped in for a file must not hang (no effect on regular files).
const READ_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);

/** What is known about a file once copied (or hashed). */
export interface CopiedFile {
  /** Bytes read (and written). */
  size: number;
  /** Permission bits of the source. */
  mode: number;
  /** Modification time of the source, Unix seconds. */
  mtime: number;
  /** Access time of the source, Unix seconds. */
  atime: number;
  sha256: string;
}

export interface CopyJob {
  /** The file to read (a `Buffer` for a path that is not valid UTF-8). */
  src: string | Buffer;
  /** Create the copy here (must not exist; never follows a symlink). Omit to only hash. */
  dst?: string | Buffer;
  /** Mode of the copy, from the source's mode. Default: the source's bits. */
  modeFor?: (srcMode: number) => number;
  /** Times of the copy (Unix seconds). Default: the source's. */
  times?: { atime: number; mtime: number };
  /**
   * Hash-only jobs (no `dst`) of a file whose size the caller expects: the `fstat` is skipped
   * (a size that differs still shows in the result; a non-file fails to read). `mode`,
   * `mtime` and `atime` of the result are then 0.
   */
  expectedSize?: number;
  /**
   * `src` is built from a real root (no symlink on the way): check, once open, that the file
   * opened is really there ({@link assertOpenedAt}), so a directory on the way replaced by a
   * symlink never makes the copy read outside the root. Throws {@link PathChangedError}.
   */
  confined?: boolean;
}

/** Thrown (as a plain object-free Error with `code`) when the source is not a regular file. */
export class NotRegularFileError extends Error {
  readonly code = 'ENOTREG';
}

/** A file's size differs from the size its caller expects (the manifest's). */
export class SizeMismatchError extends Error {
  readonly code = 'ESIZE';
}

/**
 * Open a backup's file for reading the way copies are read: `O_NOFOLLOW | O_NONBLOCK` (a
 * symlink is `ELOOP`, a FIFO never blocks), checked to be at `path` ({@link assertOpenedAt}:
 * `path` is built on a real root, so nothing on the way was a symlink), `fstat` a regular file
 * of `size` bytes. With `dirs`, opened through its directory's checked descriptor instead
 * (confine.ts: one check per directory, not per file). The caller closes the descriptor.
 * @throws errno errors; {@link NotRegularFileError}; {@link SizeMismatchError}; `PathChangedError`.
 */
export function openCheckedFile(path: string | Buffer, size: number, dirs?: DirFds): number {
  let fd: number;
  const viaDir = dirs !== undefined && procFdWorks();
  if (viaDir) {
    // Through its checked directory (kept open): no per-file check needed (see confine.ts).
    const { dir, name } = splitPath(path);
    fd = openInDir(dirs!.get(dir), name, READ_FLAGS);
  } else {
    fd = fs.openSync(path, READ_FLAGS);
  }
  try {
    if (!viaDir) assertOpenedAt(fd, path);
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new NotRegularFileError(`${String(path)} is not a regular file`);
    if (st.size !== size) throw new SizeMismatchError(`${String(path)} is ${st.size} bytes, recorded ${size}`);
    return fd;
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

/**
 * The whole content of a backup's file of `size` bytes, opened by {@link openCheckedFile}, read
 * with synchronous calls (for small files: no thread-pool round trip). A file that grew or shrank
 * meanwhile is {@link SizeMismatchError}.
 */
export function readCheckedFileSync(path: string | Buffer, size: number, dirs?: DirFds): Buffer {
  const fd = openCheckedFile(path, size, dirs);
  try {
    const buf = Buffer.allocUnsafe(size + 1);
    let off = 0;
    for (let n = -1; n !== 0 && off <= size; off += n) n = fs.readSync(fd, buf, off, buf.length - off, null);
    if (off !== size) throw new SizeMismatchError(`${String(path)} changed size while it was read`);
    return buf.subarray(0, size);
  } finally {
    fs.closeSync(fd);
  }
}

/** {@link readCheckedFileSync}, reading through the thread pool (larger files). */
export async function readCheckedFile(path: string | Buffer, size: number, dirs?: DirFds): Promise<Buffer> {
  const fd = openCheckedFile(path, size, dirs);
  try {
    const buf = Buffer.allocUnsafe(size + 1);
    let off = 0;
    for (let n = -1; n !== 0 && off <= size; off += n) n = await fdRead(fd, buf, off, buf.length - off);
    if (off !== size) throw new SizeMismatchError(`${String(path)} changed size while it was read`);
    return buf.subarray(0, size);
  } finally {
    fs.closeSync(fd);
  }
}

/** Per-worker state: one buffer, reused for every file. */
export class CopyWorker {
  private readonly buf = Buffer.allocUnsafe(BUFFER_SIZE);
  private lastYield = performance.now();

  constructor(
    private readonly fsync: boolean,
    private readonly pool?: HashPool,
  ) {}

  /** Let timers (progress output) run after a stretch of synchronous work. */
  async maybeYield(): Promise<void> {
    const now = performance.now();
    if (now - this.lastYield > 30) {
      await yieldToLoop();
      this.lastYield = performance.now();
    }
  }

  /**
   * Copy (or hash) one file.
   * @throws errno errors of the file system; `ELOOP` when the source is a symlink;
   *   {@link NotRegularFileError} when it is not a regular file; `EEXIST` when `dst` exists.
   */
  async copy(job: CopyJob): Promise<CopiedFile> {
    const buf = this.buf;
    const sfd = fs.openSync(job.src, READ_FLAGS);
    let dfd: number | undefined;
    try {
      if (job.confined) assertOpenedAt(sfd, job.src);
      const st =
        job.dst === undefined && job.expectedSize !== undefined
          ? { size: job.expectedSize, mode: 0, atimeMs: 0, mtimeMs: 0, isFile: () => true }
          : fs.fstatSync(sfd);
      if (!st.isFile()) throw new NotRegularFileError(`${String(job.src)} is not a regular file`);
      const small = st.size <= SMALL_FILE;
      const srcMode = st.mode & 0o7777;
      const mode = job.modeFor ? job.modeFor(srcMode) : srcMode;
      const atime = st.atimeMs / 1000;
      const mtime = st.mtimeMs / 1000;
      if (!small && this.pool) {
        const times = job.times ?? { atime, mtime };
        const r = await this.pool.run({
          sfd,
          ...(job.dst !== undefined ? { dst: job.dst } : {}),
          mode,
          atime: times.atime,
          mtime: times.mtime,
          fsync: this.fsync,
          size: st.size,
          umask: currentUmask(),
        });
        return { size: r.size, mode: srcMode, mtime, atime, sha256: r.sha256 };
      }
      if (job.dst !== undefined) {
        // Created with its final mode: O_CREAT does not check permissions of a new file.
        dfd = small ? fs.openSync(job.dst, CREATE_FLAGS, mode) : await fdOpen(job.dst, CREATE_FLAGS, mode);
      }
      const hash = createHash('sha256');
      let total = 0;
      for (;;) {
        const n = small ? fs.readSync(sfd, buf, 0, buf.length, null) : await fdRead(sfd, buf, 0, buf.length);
        if (n === 0) break;
        hash.update(buf.subarray(0, n));
        if (dfd !== undefined) {
          let off = 0;
          while (off < n) {
            const w = small ? fs.writeSync(dfd, buf, off, n - off) : await fdWrite(dfd, buf, off, n - off);
            if (w <= 0) throw Object.assign(new Error(`write to ${String(job.dst)} made no progress`), { code: 'EIO' });
            off += w;
          }
        }
        total += n;
        // A short read of a regular file at or past the size seen by fstat is the end of it:
        // saves one read call per file.
        if (n < buf.length && total >= st.size) break;
      }
      const result: CopiedFile = {
        size: total,
        mode: srcMode,
        mtime,
        atime,
        sha256: hash.digest('hex'),
      };
      if (dfd !== undefined) {
        if ((mode & ~currentUmask()) !== mode || mode > 0o777) fs.fchmodSync(dfd, mode); // umask or special bits
        const times = job.times ?? { atime: result.atime, mtime: result.mtime };
        fs.futimesSync(dfd, times.atime, times.mtime);
        if (this.fsync) await fdFsync(dfd);
        const closing = dfd;
        dfd = undefined;
        if (small) fs.closeSync(closing);
        else await fdClose(closing);
      }
      return result;
    } finally {
      if (dfd !== undefined) fs.close(dfd, () => {});
      fs.closeSync(sfd);
    }
  }
}
