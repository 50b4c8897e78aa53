import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { constants, type Stats } from 'node:fs';
import { chmod, lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** Promise versions of the fd calls (the callback API: no FileHandle objects to track). */
export const fdRead = (fd: number, buf: Buffer, off: number, len: number): Promise<number> =>
  new Promise((res, rej) => fs.read(fd, buf, off, len, null, (e, n) => (e ? rej(e) : res(n))));
export const fdWrite = (fd: number, buf: Buffer, off: number, len: number): Promise<number> =>
  new Promise((res, rej) => fs.write(fd, buf, off, len, null, (e, n) => (e ? rej(e) : res(n))));
export const fdFsync = (fd: number): Promise<void> => new Promise((res, rej) => fs.fsync(fd, (e) => (e ? rej(e) : res())));
export const fdClose = (fd: number): Promise<void> => new Promise((res, rej) => fs.close(fd, (e) => (e ? rej(e) : res())));
export const fdOpen = (path: string | Buffer, flags: number, mode?: number): Promise<number> =>
  new Promise((res, rej) => fs.open(path, flags, mode, (e, fd) => (e ? rej(e) : res(fd))));

/** errno code of an error, or '' */
export const errCode = (err: unknown): string => (err as NodeJS.ErrnoException | undefined)?.code ?? '';

/** `lstat` that returns `undefined` for a missing path. */
export async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') return undefined;
    throw err;
  }
}

const DIR_FSYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EISDIR', 'EBADF', 'EPERM']);

/** fsync a directory so the names created or renamed in it survive a power loss (no-op on Windows). */
export async function fsyncDir(dir: string | Buffer): Promise<void> {
  if (process.platform === 'win32') return;
  const fd = await fdOpen(dir, constants.O_RDONLY | (constants.O_DIRECTORY ?? 0));
  try {
    await fdFsync(fd);
  } catch (err) {
    if (!DIR_FSYNC_UNSUPPORTED.has(errCode(err))) throw err;
  } finally {
    await fdClose(fd).catch(() => {});
  }
}

/**
 * Run `fn` over `items` with at most `limit` calls in flight (`worker` is the 0-based id of
 * the lane running the call, for per-lane buffers); rejects with the first error once all
 * started calls settled.
 */
export async function runPool<T>(items: readonly T[], limit: number, fn: (item: T, worker: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { err: unknown } | undefined;
  const worker = async (_: unknown, id: number) => {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!, id);
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed) throw failed.err;
}

/**
 * Create a new file holding `data`, never through a symlink and never over anything that
 * exists (`O_CREAT | O_EXCL | O_NOFOLLOW`), optionally fsynced.
 * @throws errno errors; `EEXIST` when anything (a symlink included) has the name.
 */
export async function writeNewFile(path: string | Buffer, data: string | Buffer, mode: number, fsync: boolean): Promise<void> {
  const fd = await fdOpen(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0), mode);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.length) {
      const n = await fdWrite(fd, buf, off, buf.length - off);
      if (n <= 0) throw Object.assign(new Error(`write to ${String(path)} made no progress`), { code: 'EIO' });
      off += n;
    }
    if (fsync) await fdFsync(fd);
  } finally {
    await fdClose(fd).catch(() => {});
  }
}

/** 8 random hex characters. */
export const randomTag = (): string => randomBytes(4).toString('hex');

/** True unless the process is known to be gone (ESRCH). A process of another user counts as alive. */
export function isPidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errCode(err) !== 'ESRCH';
  }
}

/** Make every directory below `root` (not following symlinks) owner-writable so it can be removed. */
async function makeRemovable(root: string): Promise<void> {
  const st = await lstatOrUndefined(root);
  if (!st || !st.isDirectory()) return;
  await chmod(root, 0o700).catch(() => {});
  let entries: fs.Dirent[];
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) await makeRemovable(join(root, e.name));
}

/** Remove a directory tree (never following symlinks), even when it holds read-only directories. */
export async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true, maxRetries: 2 });
  } catch (err) {
    const code = errCode(err);
    if (code !== 'EACCES' && code !== 'EPERM') throw err;
    await makeRemovable(path);
    await rm(path, { recursive: true, force: true, maxRetries: 2 });
  }
}

/** Mode bits as an octal string: `0644`. */
export const modeToString = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0');

/** Parse a mode written by {@link modeToString} (or a number); `undefined` when malformed. */
export function parseMode(mode: unknown): number | undefined {
  if (typeof mode === 'number' && Number.isInteger(mode) && mode >= 0 && mode <= 0o7777) return mode;
  if (typeof mode === 'string' && /^[0-7]{1,6}$/.test(mode)) {
    const n = parseInt(mode, 8);
    return n <= 0o7777 ? n : undefined;
  }
  return undefined;
}

let umaskValue: number | undefined;
/** The process umask (read once). */
export function currentUmask(): number {
  umaskValue ??= process.umask();
  return umaskValue;
}
