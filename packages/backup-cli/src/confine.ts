import * as fs from 'node:fs';
import { constants } from 'node:fs';

/**
 * Reading a tree by paths built from parts (`<root>/<a>/<b>/<file>`) is only as safe as every
 * directory on the way: `O_NOFOLLOW` protects the last component alone, so a directory of the
 * tree replaced by a symlink between the walk and the read (`mv src/agents x; ln -s /etc
 * src/agents`) would make a read of `src/agents/shadow` read `/etc/shadow`. Node has no
 * `openat`, so instead every open is checked *after* it succeeded: the kernel's own path of the
 * open descriptor (`/proc/self/fd/<fd>` on Linux) must be exactly the path asked for, which
 * the callers build from a *real* root (every symlink resolved) — so nothing on the way was a
 * symlink when the file was opened, and what was opened lies inside the root. A mismatch is
 * {@link PathChangedError}: the caller never uses that descriptor's data.
 *
 * Directories are read the same way ({@link readDirConfined}): opened, checked, then listed
 * through `/proc/self/fd/<fd>` (the very directory checked), and symlinks are read through
 * their checked parent ({@link readlinkConfined}).
 *
 * Without `/proc` (macOS, a container without it) the check falls back to: the file's
 * `dev`/`ino` (fstat of the descriptor) equals an `lstat` of the path, and the real path of its
 * parent directory is the one asked for — the same guarantee against a swap that stays in
 * place, narrower against one swapped back and forth between the calls.
 */

/** The path opened was not the path asked for (a directory on the way was replaced, e.g. by a symlink). */
export class PathChangedError extends Error {
  readonly code = 'EPATHCHANGED';
  constructor(readonly path: string | Buffer) {
    super(`${String(path)} changed while it was read (a directory on its path was replaced, e.g. by a symlink)`);
  }
}

let procWorks: boolean | undefined;

/** Whether `/proc/self/fd` shows the paths of open descriptors (tested once on a known descriptor). */
export function procFdWorks(): boolean {
  if (procWorks === undefined) {
    try {
      const fd = fs.openSync('/', constants.O_RDONLY);
      try {
        procWorks = fs.readlinkSync(`/proc/self/fd/${fd}`) === '/';
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      procWorks = false;
    }
  }
  return procWorks;
}

const DELETED = Buffer.from(' (deleted)');

const bytesOf = (p: string | Buffer): Buffer => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p);

function parentOf(p: Buffer): Buffer {
  const i = p.lastIndexOf(0x2f);
  return i <= 0 ? Buffer.from('/') : p.subarray(0, i);
}

/**
 * Check that the open descriptor `fd` is the file at `path` (an absolute path whose directories
 * are real: no symlink, no `.`/`..`). Throws {@link PathChangedError} when it is not.
 */
export function assertOpenedAt(fd: number, path: string | Buffer): void {
  const want = bytesOf(path);
  if (procFdWorks()) {
    let got: Buffer;
    try {
      got = fs.readlinkSync(`/proc/self/fd/${fd}`, { encoding: 'buffer' });
    } catch {
      throw new PathChangedError(path);
    }
    // A file removed (or renamed over, as atomic-json does) since it was opened shows as
    // `<path> (deleted)`: still the file that was at `path`.
    if (!got.equals(want) && !got.equals(Buffer.concat([want, DELETED]))) throw new PathChangedError(path);
    return;
  }
  const st = fs.fstatSync(fd);
  let ok = false;
  try {
    const at = fs.lstatSync(want);
    ok = at.dev === st.dev && at.ino === st.ino && bytesOf(fs.realpathSync(parentOf(want), { encoding: 'buffer' })).equals(parentOf(want));
  } catch {
    ok = false;
  }
  if (!ok) throw new PathChangedError(path);
}

/** Is `fd` the file at `path`? ({@link assertOpenedAt} as a boolean.) */
export function openedAt(fd: number, path: string | Buffer): boolean {
  try {
    assertOpenedAt(fd, path);
    return true;
  } catch {
    return false;
  }
}

const DIR_FLAGS = constants.O_RDONLY | (constants.O_DIRECTORY ?? 0) | (constants.O_NOFOLLOW ?? 0);

function isSymlink(path: string | Buffer): boolean {
  try {
    return fs.lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Open a directory (never through a symlink anywhere on its path), checked; the caller closes it. */
export function openDirConfined(path: string | Buffer): number {
  let fd: number;
  try {
    fd = fs.openSync(path, DIR_FLAGS);
  } catch (err) {
    // The directory itself became a symlink (O_DIRECTORY | O_NOFOLLOW: ELOOP, or ENOTDIR on Linux).
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || (code === 'ENOTDIR' && isSymlink(path))) throw new PathChangedError(path);
    throw err;
  }
  try {
    assertOpenedAt(fd, path);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  return fd;
}

/**
 * List a directory exactly as {@link fs.promises.readdir} with `withFileTypes`, but never
 * through a symlink anywhere on its path (see the module comment).
 * @throws `ENOENT`/`ENOTDIR`/`ELOOP` as `open` does; {@link PathChangedError}.
 */
export async function readDirConfined(path: string | Buffer, encoding: 'buffer'): Promise<fs.Dirent<Buffer>[]>;
export async function readDirConfined(path: string | Buffer, encoding?: 'utf8'): Promise<fs.Dirent<string>[]>;
export async function readDirConfined(path: string | Buffer, encoding: 'utf8' | 'buffer' = 'utf8'): Promise<fs.Dirent<string | Buffer>[]> {
  const fd = openDirConfined(path);
  try {
    // Through the descriptor: the directory just checked, whatever its path now leads to.
    const via = procFdWorks() ? `/proc/self/fd/${fd}` : path;
    const list = await fs.promises.readdir(via, { withFileTypes: true, encoding: encoding as 'buffer' });
    if (!procFdWorks()) assertOpenedAt(fd, path);
    // Dirent's parentPath shows the /proc path: callers use only names and types.
    return list;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Read a symlink's target (bytes) without following a symlink anywhere on the way to it.
 * @throws `ENOENT`, `EINVAL` (not a symlink) as `readlink` does; {@link PathChangedError}.
 */
export function readlinkConfined(path: string | Buffer): Buffer {
  const p = bytesOf(path);
  const parent = parentOf(p);
  const name = p.subarray(p.lastIndexOf(0x2f) + 1);
  const fd = openDirConfined(parent);
  try {
    if (procFdWorks()) return fs.readlinkSync(Buffer.concat([Buffer.from(`/proc/self/fd/${fd}/`), name]), { encoding: 'buffer' });
    const target = fs.readlinkSync(p, { encoding: 'buffer' });
    assertOpenedAt(fd, parent);
    return target;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Hard-link the file at `src` to `dst` without following a symlink anywhere on the way to `src`
 * (Linux: `link` through the checked parent's descriptor, `/proc/self/fd/<fd>/<name>`; needs no
 * read permission on the file). Where `/proc` cannot be used, throws `unsupported`.
 */
export async function linkConfined(src: string | Buffer, dst: string | Buffer, unsupported: unknown): Promise<void> {
  if (!procFdWorks()) throw unsupported;
  const p = bytesOf(src);
  const fd = openDirConfined(parentOf(p));
  try {
    await fs.promises.link(Buffer.concat([Buffer.from(`/proc/self/fd/${fd}/`), p.subarray(p.lastIndexOf(0x2f) + 1)]), dst);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * `lstat` of `path` without following a symlink anywhere on the way (Linux: through the checked
 * parent's descriptor; elsewhere: `lstat`, then the parent checked). `undefined` when it is gone
 * or its path changed.
 */
export function lstatConfined(path: string | Buffer): fs.Stats | undefined {
  const p = bytesOf(path);
  let fd: number;
  try {
    fd = openDirConfined(parentOf(p));
  } catch {
    return undefined;
  }
  try {
    if (procFdWorks()) return fs.lstatSync(Buffer.concat([Buffer.from(`/proc/self/fd/${fd}/`), p.subarray(p.lastIndexOf(0x2f) + 1)]));
    const st = fs.lstatSync(p);
    return openedAt(fd, parentOf(p)) ? st : undefined;
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Open `name` inside the directory `dfd` (opened by {@link openDirConfined}) through
 * `/proc/self/fd/<dfd>/<name>`: Linux's `openat(dfd, name)`, the lookup starts at the checked
 * directory whatever its path leads to now, so the file needs no check of its own. Only where
 * {@link procFdWorks}.
 */
export function openInDir(dfd: number, name: string | Buffer, flags: number): number {
  const prefix = `/proc/self/fd/${dfd}/`;
  return fs.openSync(typeof name === 'string' ? prefix + name : Buffer.concat([Buffer.from(prefix), name]), flags);
}

/**
 * Directories opened by {@link openDirConfined}, kept open for files opened one by one through
 * {@link openInDir} (a push reads a backup's files in manifest order: one open and check per
 * directory, not one check per file). At most `max` stay open (the oldest is closed first).
 * Callers open a file right after {@link get}, with no `await` in between.
 */
export class DirFds {
  private readonly fds = new Map<string, number>();

  constructor(private readonly max = 64) {}

  get(dir: string | Buffer): number {
    const key = typeof dir === 'string' ? dir : `\0${dir.toString('base64')}`;
    let fd = this.fds.get(key);
    if (fd === undefined) {
      fd = openDirConfined(dir);
      if (this.fds.size >= this.max) {
        const [oldKey, oldFd] = this.fds.entries().next().value as [string, number];
        this.fds.delete(oldKey);
        fs.closeSync(oldFd);
      }
      this.fds.set(key, fd);
    }
    return fd;
  }

  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }
}

/** A path's parent directory and last component (bytes stay bytes). */
export function splitPath(path: string | Buffer): { dir: string | Buffer; name: string | Buffer } {
  if (typeof path === 'string') {
    const i = path.lastIndexOf('/');
    return { dir: i <= 0 ? '/' : path.slice(0, i), name: path.slice(i + 1) };
  }
  const i = path.lastIndexOf(0x2f);
  return { dir: i <= 0 ? Buffer.from('/') : path.subarray(0, i), name: path.subarray(i + 1) };
}
