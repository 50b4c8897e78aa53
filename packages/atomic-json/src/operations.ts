import { AtomicJsonError } from './errors.js';
import type { LockOptions } from './lock.js';
import { parseJson } from './parse.js';
import {
  absolute,
  barrier,
  directUpdate,
  directWrite,
  holdsLock,
  queueExclusive,
  queueUpdate,
  queueWrite,
  readBytes,
  resolveWriteOptions,
  type WriteOptions,
} from './queue.js';
import { serialize } from './serialize.js';

/**
 * Options of {@link readJson}.
 *
 * @example
 * ```ts
 * await readJson('/data/peers.json', { default: { version: 1, peers: [] } });
 * ```
 */
export interface ReadOptions<T> {
  /**
   * Returned (a fresh copy) when the file does not exist, instead of throwing `NOT_FOUND`.
   * Never used for a corrupt file. Must be JSON (checked like a written value).
   * @default undefined (a missing file is `NOT_FOUND`)
   */
  default?: T;
}

function defaultText(path: string, opts: { default?: unknown } | undefined): { has: boolean; text: string | undefined } {
  if (!opts || !('default' in opts) || opts.default === undefined) return { has: false, text: undefined };
  return { has: true, text: serialize(opts.default, path, 0) };
}

/**
 * Read and parse a JSON file. Waits for this process's writes to `path` that were issued
 * before the call, so a read sees your own writes. Reads take no lock: atomic-json's writers
 * replace files by rename, so a read never sees a torn file.
 *
 * @throws {AtomicJsonError} `NOT_FOUND` when the file is missing and no `default` is given;
 *   `PARSE` (with `line`/`column`) when it is not valid JSON; `IO` on a file-system error.
 * @example
 * ```ts
 * const config = await readJson<Config>('/data/config.json', { default: { port: 8000 } });
 * ```
 */
export async function readJson<T = unknown>(path: string, opts?: ReadOptions<T>): Promise<T> {
  const abs = absolute(path);
  if (!holdsLock(abs)) await barrier(abs);
  const bytes = await readBytes(abs);
  if (bytes === undefined) {
    const d = defaultText(abs, opts);
    if (d.has) return parseJson(d.text!, abs) as T;
    throw new AtomicJsonError(
      'NOT_FOUND',
      abs,
      `Cannot read ${abs}: the file does not exist. Create it first, or pass { default } to start from a default value.`,
    );
  }
  return parseJson(bytes, abs) as T;
}

/**
 * Write `value` as JSON, atomically and durably: serialized first (nothing is touched if it
 * is not JSON), written to a unique temp file, fsynced, renamed over `path`, directory fsynced,
 * all under the cross-process lock. Calls on one path in one process are queued; pending
 * writes coalesce and every promise resolves once a write containing its value, or a newer
 * one, is durable. The value is snapshotted at call time.
 *
 * @throws {AtomicJsonError} `NOT_SERIALIZABLE` (with `keyPath`), `LOCKED`, `LOCK_COMPROMISED`, `IO`.
 *   On any failure the previous file is intact and no temp file remains.
 * @example
 * ```ts
 * await writeJson('/data/state.json', { round: 12 });
 * ```
 */
export async function writeJson(path: string, value: unknown, opts?: WriteOptions): Promise<void> {
  const abs = absolute(path);
  const resolved = resolveWriteOptions(opts);
  const text = serialize(value, abs, resolved.spaces);
  if (holdsLock(abs)) return directWrite(abs, text, resolved);
  return queueWrite(abs, text, resolved);
}

/**
 * Options of {@link updateJson}: the {@link WriteOptions} plus `default`.
 *
 * @example
 * ```ts
 * await updateJson(file, (c) => ({ ...c, n: c.n + 1 }), { default: { n: 0 }, lock: { timeoutMs: 30_000 } });
 * ```
 */
export interface UpdateOptions<T> extends WriteOptions {
  /**
   * What `fn` receives (a fresh copy) when the file does not exist.
   * @default undefined (`fn` receives `undefined` for a missing file)
   */
  default?: T;
}

/**
 * Atomic read-modify-write under the cross-process lock: reads the file's current contents,
 * calls `fn` with a private parsed copy, writes what it returns. K processes doing M
 * increments each end with exactly K×M. Pending updates in one process may share one lock +
 * read + write cycle, applied in call order, none dropped. If `fn` returns a document equal
 * to the file's, nothing is written. Resolves with `fn`'s result once it is durable.
 *
 * @throws {AtomicJsonError} `PARSE` when the file is corrupt (it is never overwritten),
 *   `NOT_SERIALIZABLE`, `LOCKED`, `LOCK_COMPROMISED`, `IO`; or whatever `fn` throws
 *   (then nothing of that update is written).
 * @example
 * ```ts
 * const next = await updateJson<{ n: number }>('/data/counter.json', (c) => ({ n: (c?.n ?? 0) + 1 }));
 * ```
 */
export async function updateJson<T = unknown>(
  path: string,
  fn: (current: T | undefined) => T | Promise<T>,
  opts?: UpdateOptions<T>,
): Promise<T> {
  const abs = absolute(path);
  const resolved = resolveWriteOptions(opts);
  const d = defaultText(abs, opts);
  const f = fn as (current: unknown) => unknown;
  if (holdsLock(abs)) return (await directUpdate(abs, f, resolved, d.text, d.has)) as T;
  return (await queueUpdate(abs, f, resolved, d.text, d.has)) as T;
}

/**
 * Run `fn` while holding the cross-process lock of `path` (the lock is `<path>.lock`; the
 * file itself need not exist). Inside `fn`, `readJson`/`writeJson`/`updateJson` on the same
 * path run directly under this lock (no deadlock). Other operations of this process on the
 * path wait until `fn` settles.
 *
 * @throws {AtomicJsonError} `LOCKED` after `timeoutMs`; `LOCK_COMPROMISED` as soon as the lock
 *   is lost while `fn` runs (the promise rejects, the process lives on); or what `fn` throws.
 * @example
 * ```ts
 * await withLock('/data/registry.json', async () => { ...read, decide, write... });
 * ```
 */
export function withLock<R>(path: string, fn: () => R | Promise<R>, opts?: LockOptions): Promise<R> {
  const abs = absolute(path);
  if (holdsLock(abs)) return Promise.resolve().then(fn);
  return queueExclusive(abs, fn, opts);
}
