/**
 * Synchronous `readJsonSync`, `writeJsonSync`, `updateJsonSync`: the same formats, write
 * protocol, durability and cross-process lock as the promise API, for code that must block
 * (configuration read at start-up, a CLI's last write before exit).
 */
import * as fs from 'node:fs';
import { dirname, resolve } from 'node:path';
import { AtomicJsonError, ioError } from './errors.js';
import { fileTypeOf } from './fs-layer.js';
import { DEFAULT_STALE_MS, DEFAULT_TIMEOUT_MS, lockHeldInThisProcess, lockPathOf, properLockfile, type LockOptions } from './lock.js';
import type { ReadOptions, UpdateOptions } from './operations.js';
import { parseJson } from './parse.js';
import { holdsLock, type WriteOptions } from './queue.js';
import { serialize } from './serialize.js';
import { isTempFileName, notRegular, tempPathFor, tempPrefix } from './write.js';

const { O_RDONLY, O_NONBLOCK = 0, O_NOCTTY = 0, O_CREAT, O_EXCL, O_WRONLY } = fs.constants;

const sleepSync = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

/** The bytes of a regular file, `undefined` when missing; never blocks on a FIFO or device. */
function readBytesSync(path: string): Buffer | undefined {
  let fd: number;
  try {
    fd = fs.openSync(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(path, 'read', err);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) {
      throw new AtomicJsonError(
        'IO',
        path,
        `Cannot read ${path}: it is ${fileTypeOf(st)}, not a regular file. Only regular files are read as JSON; ` +
          `replace it with the real file (or remove it) and retry.`,
      );
    }
    return fs.readFileSync(fd);
  } catch (err) {
    throw AtomicJsonError.is(err) ? err : ioError(path, 'read', err);
  } finally {
    fs.closeSync(fd);
  }
}

function refuseIfBusy(path: string): void {
  if (!holdsLock(path) && lockHeldInThisProcess(path)) {
    throw new AtomicJsonError(
      'LOCKED',
      path,
      `Cannot write ${path} synchronously: an asynchronous operation of this process holds its lock ` +
        `(waiting for it would block the event loop it needs to finish). Await it first, or use the promise API.`,
    );
  }
}

/** Take `<path>.lock`, spinning with backoff until `timeoutMs`; returns the release function. */
function lockSync(path: string, opts: LockOptions): () => void {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const stale = Math.max(opts.staleMs ?? DEFAULT_STALE_MS, 2000);
  const deadline = Date.now() + timeoutMs;
  let delay = 2;
  let madeDir = false;
  for (;;) {
    try {
      const release = properLockfile().lockSync(path, { realpath: false, stale, onCompromised: () => {} });
      return () => {
        try {
          release();
        } catch {
          // Already released or taken over: nothing of ours to remove.
        }
      };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && !madeDir) {
        madeDir = true;
        try {
          fs.mkdirSync(dirname(path), { recursive: true });
        } catch (e) {
          throw ioError(path, 'create the directory of', e);
        }
        continue;
      }
      if (code !== 'ELOCKED') throw ioError(path, 'lock', err);
      if (Date.now() >= deadline) {
        throw new AtomicJsonError(
          'LOCKED',
          path,
          `Cannot lock ${path}: another process has held ${lockPathOf(path)} for more than ${timeoutMs} ms. ` +
            `Retry later or raise timeoutMs; if no process is using it, the lock is taken over automatically after staleMs (${stale} ms).`,
          { cause: err },
        );
      }
      sleepSync(Math.min(delay * (0.5 + Math.random()), deadline - Date.now()));
      delay = Math.min(delay * 2, 32);
    }
  }
}

/** The file a write replaces: `path`, or what its symbolic link(s) point to. */
function resolveTargetSync(target: string): { real: string; mode: number | undefined } {
  let p = target;
  for (let hops = 0; hops < 40; hops++) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { real: p, mode: undefined };
      throw ioError(target, 'stat', err);
    }
    if (!st.isSymbolicLink()) {
      if (!st.isFile()) throw notRegular(target, p, st);
      return { real: p, mode: st.mode & 0o7777 };
    }
    p = resolve(dirname(p), fs.readlinkSync(p));
  }
  throw ioError(target, 'resolve the symbolic link', Object.assign(new Error('too many levels of symbolic links'), { code: 'ELOOP' }));
}

/** The write protocol, synchronously: temp file (O_EXCL), every byte, fsync, rename, directory fsync. */
function writeFileAtomicSync(target: string, text: string, opts: { fsync: boolean; mode?: number | undefined }): void {
  const data = Buffer.from(text, 'utf8');
  const { real, mode: existing } = resolveTargetSync(target);
  const mode = opts.mode ?? existing;
  const tmp = tempPathFor(real);
  let fd: number | undefined;
  try {
    try {
      fd = fs.openSync(tmp, O_CREAT | O_EXCL | O_WRONLY, mode ?? 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      fs.mkdirSync(dirname(real), { recursive: true });
      fd = fs.openSync(tmp, O_CREAT | O_EXCL | O_WRONLY, mode ?? 0o644);
    }
    if (mode !== undefined) fs.fchmodSync(fd, mode);
    let off = 0;
    while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off);
    if (opts.fsync) fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, real);
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    try {
      fs.unlinkSync(tmp);
    } catch {
      // never created, or already renamed
    }
    throw ioError(target, 'write', err);
  }
  if (opts.fsync && process.platform !== 'win32') {
    const dfd = fs.openSync(dirname(real), O_RDONLY);
    try {
      fs.fsyncSync(dfd);
    } catch {
      // Some file systems cannot fsync a directory; the rename is done.
    } finally {
      fs.closeSync(dfd);
    }
  }
}

/** Temp files of killed writers, removed while holding the lock (as the promise API does when due). */
function removeStaleTempsSync(target: string): void {
  const real = resolveTargetSync(target).real;
  const prefix = tempPrefix(real);
  let names: string[];
  try {
    names = fs.readdirSync(dirname(real));
  } catch {
    return;
  }
  for (const name of names) {
    if (name.startsWith(prefix) && isTempFileName(name)) {
      try {
        fs.unlinkSync(resolve(dirname(real), name));
      } catch {
        // gone already
      }
    }
  }
}

function withLockSync<R>(path: string, lock: WriteOptions['lock'], fn: () => R): R {
  // Inside withLock/updateJson of this path the lock is already ours.
  if (lock === false || holdsLock(path)) return fn();
  const release = lockSync(path, typeof lock === 'object' ? lock : {});
  try {
    removeStaleTempsSync(path);
    return fn();
  } finally {
    release();
  }
}

/**
 * {@link readJson}, synchronously: a regular file, parsed losslessly.
 *
 * @throws {AtomicJsonError} `NOT_FOUND` (missing, no `default`), `PARSE`, `IO`.
 * @example
 * ```ts
 * const config = readJsonSync<{ port: number }>('/etc/dawn/config.json', { default: { port: 8000 } });
 * ```
 */
export function readJsonSync<T = unknown>(path: string, opts?: ReadOptions<T>): T {
  const abs = resolve(path);
  const bytes = readBytesSync(abs); // no lock needed: writers replace files by rename
  if (bytes !== undefined) return parseJson(bytes, abs) as T;
  if (opts && opts.default !== undefined) return parseJson(serialize(opts.default, abs, 0), abs) as T;
  throw new AtomicJsonError(
    'NOT_FOUND',
    abs,
    `Cannot read ${abs}: the file does not exist. Create it first, or pass { default } to start from a default value.`,
  );
}

/**
 * {@link writeJson}, synchronously: serialized first, then temp file, fsync, rename, directory
 * fsync, under the cross-process lock (waited for by sleeping the thread, up to `timeoutMs`).
 *
 * @throws {AtomicJsonError} `NOT_SERIALIZABLE`, `LOCKED` (also at once when an asynchronous operation of
 *   this process holds the lock: await it first), `IO`. The previous file is intact on failure.
 * @example
 * ```ts
 * writeJsonSync('/etc/dawn/config.json', { port: 8080 });
 * ```
 */
export function writeJsonSync(path: string, value: unknown, opts: WriteOptions = {}): void {
  const abs = resolve(path);
  const text = serialize(value, abs, opts.spaces ?? 2);
  refuseIfBusy(abs);
  withLockSync(abs, opts.lock ?? true, () => writeFileAtomicSync(abs, text, { fsync: opts.fsync ?? true, mode: opts.mode }));
}

/**
 * {@link updateJson}, synchronously: read, `fn`, write, all under the lock. Nothing is written
 * when `fn` returns a document equal to the file's.
 *
 * @throws {AtomicJsonError} `PARSE` (the file is never overwritten), `NOT_SERIALIZABLE`, `LOCKED`,
 *   `IO`; or what `fn` throws (nothing written).
 * @example
 * ```ts
 * updateJsonSync<{ runs: number }>('/var/lib/dawn/stats.json', (s) => ({ runs: (s?.runs ?? 0) + 1 }));
 * ```
 */
export function updateJsonSync<T = unknown>(path: string, fn: (current: T | undefined) => T, opts: UpdateOptions<T> = {}): T {
  const abs = resolve(path);
  const spaces = opts.spaces ?? 2;
  const defaultText = opts.default !== undefined ? serialize(opts.default, abs, 0) : undefined;
  refuseIfBusy(abs);
  return withLockSync(abs, opts.lock ?? true, () => {
    const bytes = readBytesSync(abs);
    const source = bytes ?? defaultText;
    const current = source === undefined ? undefined : (parseJson(source, abs) as T);
    const result = fn(current);
    const text = serialize(result, abs, spaces);
    if (bytes === undefined || text !== bytes.toString('utf8')) writeFileAtomicSync(abs, text, { fsync: opts.fsync ?? true, mode: opts.mode });
    return result;
  });
}
