import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { AtomicJsonError, ioError } from './errors.js';
import { fileTypeOf, fsl } from './fs-layer.js';
import type { LockHandle } from './lock.js';

/**
 * Every temp file atomic-json creates ends with this suffix. Temp names are
 * `.<12 hex>-<16 hex>.ajtmp` (36 characters) in the target's directory.
 *
 * @example
 * ```ts
 * const excludes = ['*.log', `*${TEMP_SUFFIX}`];
 * ```
 */
export const TEMP_SUFFIX = '.ajtmp';

/**
 * True when a directory entry name (not a path) is an atomic-json temp file: for backup and
 * sync tools that must skip them.
 *
 * @throws Never.
 * @example
 * ```ts
 * const files = (await readdir(dir)).filter((name) => !isTempFileName(name));
 * ```
 */
export function isTempFileName(name: string): boolean {
  return TEMP_NAME.test(name);
}

/** Exactly what {@link tempPathFor} makes: `.<12 hex>-<16 hex>.ajtmp` (a user's file of another shape is data). */
const TEMP_NAME = /^\.[0-9a-f]{12}-[0-9a-f]{16}\.ajtmp$/;

/** `.<12 hex of the target's name>-` : identifies the temp files of one target. */
export function tempPrefix(target: string): string {
  return `.${createHash('sha256').update(basename(target)).digest('hex').slice(0, 12)}-`;
}

/**
 * A unique temp name in the target's directory with a fixed length (36 characters),
 * whatever the target's name: long file names never overflow NAME_MAX.
 */
export function tempPathFor(target: string): string {
  return join(dirname(target), `${tempPrefix(target)}${randomBytes(8).toString('hex')}${TEMP_SUFFIX}`);
}

/** The error of a write whose target (or what its link points to) exists but is not a regular file. */
export function notRegular(target: string, real: string, st: import('node:fs').Stats): AtomicJsonError {
  return new AtomicJsonError(
    'IO',
    target,
    `Cannot write ${target}: ${real === target ? 'it' : `it leads to ${real}, which`} is ${fileTypeOf(st)}, not a regular file. ` +
      `Nothing was written; atomic-json only replaces regular files. Remove it (or the link) and retry.`,
  );
}

/**
 * The file a write to `target` replaces: `target` itself, or the file its symbolic link(s)
 * point to (which need not exist yet), with that file's mode when it exists.
 */
export async function resolveTarget(target: string): Promise<{ real: string; mode: number | undefined }> {
  const fs = fsl();
  let p = target;
  for (let hops = 0; ; hops++) {
    let st;
    try {
      st = await fs.lstat(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { real: p, mode: undefined };
      throw ioError(target, 'stat', err);
    }
    if (!st.isSymbolicLink()) {
      // Never replace a FIFO, a device or a directory (`state.json -> /dev/null` must not replace /dev/null).
      if (!st.isFile()) throw notRegular(target, p, st);
      return { real: p, mode: st.mode & 0o7777 };
    }
    if (hops >= 40) {
      throw ioError(target, 'resolve the symbolic link', Object.assign(new Error('too many levels of symbolic links'), { code: 'ELOOP' }));
    }
    try {
      p = resolve(dirname(p), await fs.readlink(p));
    } catch (err) {
      throw ioError(target, 'read the symbolic link', err);
    }
  }
}

/**
 * Remove temp files a killed writer of `target` left behind (next to the file a symbolic link
 * points to, when `target` is one). Only call while holding the target's lock: then no live
 * locking writer can own one of them.
 */
export async function removeStaleTemps(target: string): Promise<void> {
  const fs = fsl();
  let real = target;
  try {
    real = (await resolveTarget(target)).real;
  } catch {
    // Unresolvable link: the write itself will report it.
  }
  const dir = dirname(real);
  const prefix = tempPrefix(real);
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (name.startsWith(prefix) && isTempFileName(name)) {
      await fs.unlink(join(dir, name)).catch(() => {});
    }
  }
}

export interface PhysicalWriteOptions {
  fsync: boolean;
  /** Explicit mode; otherwise the existing file's mode, else 0o644 (less the umask). */
  mode?: number | undefined;
  /** Called right after the rename, concurrently with the directory fsync (to release the lock early). */
  afterRename?: (() => Promise<void>) | undefined;
  /** The lock held for this write: checked just before the rename. */
  lock?: LockHandle | undefined;
  /**
   * Called with the temp file's path once it is complete (and fsynced), just before the rename.
   * A throw aborts the write (the temp file is removed, the target untouched).
   */
  beforeRename?: ((tmp: string) => Promise<void>) | undefined;
}

const RENAME_RETRY_CODES = new Set(['EPERM', 'EBUSY', 'EACCES']);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function renameWithRetry(from: string, to: string): Promise<void> {
  const fs = fsl();
  let delay = 10;
  const deadline = Date.now() + 3000;
  for (;;) {
    try {
      await fs.rename(from, to);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      // Windows: an antivirus or indexer briefly holding the target makes rename fail.
      if (fs.platform !== 'win32' || !RENAME_RETRY_CODES.has(code) || Date.now() >= deadline) throw err;
      await sleep(delay);
      delay = Math.min(delay * 2, 250);
    }
  }
}

const DIR_FSYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EISDIR', 'EBADF', 'EPERM']);

async function fsyncDirectory(dir: string, target: string): Promise<void> {
  const fs = fsl();
  if (fs.platform === 'win32') return; // directories cannot be opened for fsync there
  let fd: number;
  try {
    fd = await fs.open(dir, constants.O_RDONLY);
  } catch (err) {
    throw ioError(target, 'open the directory (to make the rename durable) of', err);
  }
  try {
    await fs.fsyncDir(fd);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (!DIR_FSYNC_UNSUPPORTED.has(code)) {
      throw ioError(target, 'fsync the directory (the new file is in place but may not survive a power loss) of', err);
    }
  } finally {
    await fs.close(fd).catch(() => {});
  }
}

/**
 * The write protocol: unique temp file in the target's directory, every byte written,
 * fsync, rename over the target, fsync of the directory. On any failure before the rename
 * the temp file is removed and the target is untouched.
 */
export async function writeFileAtomic(target: string, text: string, opts: PhysicalWriteOptions): Promise<void> {
  const fs = fsl();
  const data = Buffer.from(text, 'utf8');
  // Write through a symbolic link (even a dangling one), keeping the link.
  const { real, mode: existingMode } = await resolveTarget(target);
  const mode = opts.mode ?? existingMode;
  const tmp = tempPathFor(real);
  let fd: number | undefined;
  try {
    try {
      fd = await fs.open(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, mode ?? 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        await fs.mkdir(dirname(real));
        fd = await fs.open(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, mode ?? 0o644);
      } else throw err;
    }
    if (mode !== undefined) await fs.fchmod(fd, mode); // exact mode, whatever the umask
    let off = 0;
    while (off < data.length) {
      const n = await fs.write(fd, data, off, data.length - off);
      if (n <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
      off += n;
    }
    if (opts.fsync) await fs.fsync(fd);
    const closing = fd;
    fd = undefined;
    await fs.close(closing);
    if (opts.beforeRename !== undefined) await opts.beforeRename(tmp);
    if (opts.lock?.compromised) throw opts.lock.compromised;
    await renameWithRetry(tmp, real);
  } catch (err) {
    if (fd !== undefined) await fs.close(fd).catch(() => {});
    await fs.unlink(tmp).catch(() => {});
    if (AtomicJsonError.is(err)) throw err;
    throw ioError(target, 'write', err);
  }
  // Nothing after the rename needs the lock: hand it back while the directory is fsynced.
  const after = opts.afterRename?.();
  try {
    if (opts.fsync) await fsyncDirectory(dirname(real), target);
  } finally {
    await after;
  }
}
