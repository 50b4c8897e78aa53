import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type * as ProperLockfile from 'proper-lockfile';
import { abortedError, AtomicJsonError, ioError } from './errors.js';
import { fsl } from './fs-layer.js';

let lockfileModule: typeof ProperLockfile | undefined;
/**
 * proper-lockfile, loaded on first use: it (with graceful-fs) takes about 25 ms to load, which
 * a program that only reads (a CLI's `list`, `verify`) should not pay at every start.
 * @internal
 */
export function properLockfile(): typeof ProperLockfile {
  return (lockfileModule ??= createRequire(import.meta.url)('proper-lockfile') as typeof ProperLockfile);
}

/**
 * How to take the cross-process lock on `<file>.lock` (for `withLock`, and as `lock` of
 * `WriteOptions`).
 *
 * @example
 * ```ts
 * await writeJson(file, value, { lock: { timeoutMs: 30_000, staleMs: 5_000 } });
 * ```
 */
export interface LockOptions {
  /**
   * How long to keep retrying (with jittered exponential backoff, at most 12 ms apart) while
   * another process holds the lock, before failing with `LOCKED`. `0` tries once.
   * @default 10000
   */
  timeoutMs?: number;
  /**
   * A lock whose mtime has not been refreshed for this long is considered abandoned (its
   * process died) and is taken over. The holder refreshes it every `staleMs / 2`.
   * Minimum 2000 (proper-lockfile's floor).
   * @default 10000
   */
  staleMs?: number;
  /**
   * Give up waiting for the lock when this signal fires: the operation rejects with `ABORTED`
   * and nothing is written. Once the lock is held, the operation runs to its end.
   * @default undefined
   */
  signal?: AbortSignal | undefined;
}

export const DEFAULT_TIMEOUT_MS = 10_000;
/**
 * Base of the longest wait between two attempts at a held lock (jittered to 0.5–1.5×, so at
 * most {@link MAX_LOCK_POLL_MS} apart). Short, because a journaled document's holder frees the
 * lock for a short gap between leases (see `JournaledJson`): a waiter must try within it.
 */
const MAX_RETRY_DELAY_MS = 8;
/** The longest wait between two attempts at a held lock. */
export const MAX_LOCK_POLL_MS = MAX_RETRY_DELAY_MS * 1.5;
export const DEFAULT_STALE_MS = 10_000;

/** A held lock. `compromised` becomes set (and `onCompromised` fires) if it is lost. */
export interface LockHandle {
  readonly path: string;
  compromised: AtomicJsonError | undefined;
  /** True when another process held the lock while we waited for it. */
  contended: boolean;
  /** Set once {@link LockHandle.release} was called. */
  released: boolean;
  /** Rejects when the lock is compromised; never resolves otherwise. */
  readonly lost: Promise<never>;
  release(): Promise<void>;
}

/**
 * Path of the lock directory of a file: `<file>.lock` (a directory, made by proper-lockfile).
 * Backup tools should skip it; deleting it while a process holds it makes that process's
 * operation fail with `LOCK_COMPROMISED`.
 *
 * @throws Never.
 * @example
 * ```ts
 * lockPathOf('/data/mesh/peer_registry.json'); // '/data/mesh/peer_registry.json.lock'
 * ```
 */
export function lockPathOf(file: string): string {
  return `${file}.lock`;
}

/** Sleep `ms`, cut short when `signal` fires. */
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((r) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      r();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/** Locks this process holds through {@link acquireLock}, by file (a count: nested holders). */
const heldHere = new Map<string, number>();

/** True while an asynchronous operation of this process holds the lock of `file`. */
export function lockHeldInThisProcess(file: string): boolean {
  return (heldHere.get(file) ?? 0) > 0;
}

/**
 * Acquire the lock on `file` (which need not exist), retrying with jittered exponential
 * backoff until `timeoutMs`, then `LOCKED`. Creates the parent directory if it is missing.
 */
export async function acquireLock(file: string, opts: LockOptions = {}): Promise<LockHandle> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const staleMs = Math.max(opts.staleMs ?? DEFAULT_STALE_MS, 2000);
  const deadline = Date.now() + timeoutMs;
  let delay = 2;
  let madeDir = false;
  let rejectLost!: (e: AtomicJsonError) => void;
  const lost = new Promise<never>((_, reject) => {
    rejectLost = reject;
  });
  lost.catch(() => {}); // observed by whoever races it; never an unhandled rejection
  const handle: LockHandle = {
    path: file,
    compromised: undefined,
    contended: false,
    released: false,
    lost,
    release: async () => {},
  };
  for (;;) {
    if (opts.signal?.aborted) throw abortedError(file, opts.signal);
    try {
      const release = await properLockfile().lock(file, {
        realpath: false,
        stale: staleMs,
        retries: 0,
        onCompromised: (err) => {
          // proper-lockfile's default throws from a timer and kills the process. We record it
          // and fail the operation in flight instead.
          const e = new AtomicJsonError(
            'LOCK_COMPROMISED',
            file,
            `The lock on ${file} was lost while in use (${err.message}): another process may have taken it over ` +
              `as stale. The operation was abandoned before replacing the file; retry it. If this repeats, raise staleMs.`,
            { cause: err },
          );
          handle.compromised = e;
          rejectLost(e);
        },
      });
      heldHere.set(file, (heldHere.get(file) ?? 0) + 1);
      let released = false;
      handle.release = async () => {
        if (released) return;
        released = true;
        handle.released = true;
        const n = (heldHere.get(file) ?? 1) - 1;
        if (n > 0) heldHere.set(file, n);
        else heldHere.delete(file);
        try {
          await release();
        } catch {
          // Already released or compromised: nothing of ours to remove.
        }
      };
      return handle;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && !madeDir) {
        madeDir = true;
        try {
          await fsl().mkdir(dirname(file));
        } catch (e) {
          throw ioError(file, 'create the directory of', e);
        }
        continue;
      }
      if (code !== 'ELOCKED') throw ioError(file, 'lock', err);
      handle.contended = true;
      const now = Date.now();
      if (now >= deadline) {
        throw new AtomicJsonError(
          'LOCKED',
          file,
          `Cannot lock ${file}: another process has held ${lockPathOf(file)} for more than ${timeoutMs} ms. ` +
            `Retry later or raise timeoutMs; if no process is using it, the lock is taken over automatically after staleMs (${staleMs} ms).`,
          { cause: err },
        );
      }
      const wait = Math.min(delay * (0.5 + Math.random()), deadline - now);
      await sleep(wait, opts.signal);
      delay = Math.min(delay * 2, MAX_RETRY_DELAY_MS);
    }
  }
}
