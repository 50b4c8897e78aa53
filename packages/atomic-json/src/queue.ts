/**
 * The per-path queue of one process. Operations on one file run one batch at a time; pending
 * writes coalesce (the newest text wins) and pending updates share one lock + read + write
 * cycle, applied in call order, none dropped.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { resolve as resolvePath } from 'node:path';
import { abortedError, AtomicJsonError, ioError } from './errors.js';
import { fsl } from './fs-layer.js';
import { acquireLock, DEFAULT_STALE_MS, DEFAULT_TIMEOUT_MS, type LockHandle, type LockOptions } from './lock.js';
import { decodeText, parseJsonText } from './parse.js';
import { serialize } from './serialize.js';
import { NotRegularFileError } from './fs-layer.js';
import { removeStaleTemps, writeFileAtomic } from './write.js';

/**
 * Options of every write (`writeJson`, `updateJson`, `JsonFile`).
 *
 * @example
 * ```ts
 * await writeJson('/data/keys.json', keys, { mode: 0o600 });
 * await writeJson('/tmp/cache.json', cache, { fsync: false, lock: false }); // single-process scratch file
 * ```
 */
export interface WriteOptions {
  /**
   * Take the cross-process lock `<file>.lock` for the write (`true`: with the default
   * {@link LockOptions}). `false` only when no other process can write the file: then stale
   * temp files are not cleaned up either.
   * @default true
   */
  lock?: boolean | LockOptions;
  /**
   * fsync the temp file before the rename and the directory after it. Without it a power
   * loss may lose the write (never tear it: the rename still makes it atomic).
   * @default true
   */
  fsync?: boolean;
  /**
   * Indentation of the written JSON (`0`: one line). A trailing newline is always added.
   * @default 2
   */
  spaces?: number;
  /**
   * File mode of the written file, applied exactly (whatever the umask).
   * @default the existing file's mode (kept on rewrite), else 0o644 less the umask
   */
  mode?: number;
  /**
   * Give up when this signal fires while the operation waits for its turn in this process or for
   * the lock: it rejects with `ABORTED` and writes nothing. Once it writes, it completes. Calls
   * with a signal are not coalesced or batched with others.
   * @default undefined
   */
  signal?: AbortSignal | undefined;
}

type ResolvedLock = { timeoutMs: number; staleMs: number; signal?: AbortSignal | undefined };

let signalIds = 0;
const signalKeys = new WeakMap<AbortSignal, number>();

export interface ResolvedWrite {
  lock: false | ResolvedLock;
  fsync: boolean;
  spaces: number;
  mode: number | undefined;
  key: string;
  signal?: AbortSignal | undefined;
}

export function resolveWriteOptions(opts: WriteOptions = {}): ResolvedWrite {
  const lock =
    opts.lock === false
      ? false
      : {
          timeoutMs: (typeof opts.lock === 'object' ? opts.lock.timeoutMs : undefined) ?? DEFAULT_TIMEOUT_MS,
          staleMs: (typeof opts.lock === 'object' ? opts.lock.staleMs : undefined) ?? DEFAULT_STALE_MS,
        };
  const signal = opts.signal ?? (typeof opts.lock === 'object' ? opts.lock.signal : undefined);
  if (lock && signal) (lock as ResolvedLock).signal = signal;
  const fsync = opts.fsync ?? true;
  const spaces = opts.spaces ?? 2;
  const mode = opts.mode;
  let key = `${lock ? `${lock.timeoutMs}/${lock.staleMs}` : 'nolock'}|${fsync}|${spaces}|${mode ?? ''}`;
  if (signal) {
    // Its own batch: an abort then concerns this call alone.
    let id = signalKeys.get(signal);
    if (id === undefined) signalKeys.set(signal, (id = ++signalIds));
    key += `|signal${id}:${++signalIds}`;
  }
  return { lock, fsync, spaces, mode, key, signal };
}

interface Settle<T> {
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

type Op =
  | ({ kind: 'write'; text: string; opts: ResolvedWrite; also: Settle<void>[] } & Settle<void>)
  | ({
      kind: 'update';
      fn: (current: unknown) => unknown;
      hasDefault: boolean;
      defaultText: string | undefined;
      opts: ResolvedWrite;
    } & Settle<unknown>)
  | ({ kind: 'exclusive'; fn: () => unknown; lock: ResolvedLock } & Settle<unknown>)
  | ({ kind: 'barrier' } & Settle<void>);

interface PathQueue {
  ops: Op[];
  running: boolean;
}

const queues = new Map<string, PathQueue>();

/**
 * Paths whose lock the current async context holds (inside `withLock` or an update function),
 * with the lock handle (`undefined` for `lock: false`), so that nested writes check it.
 */
const held = new AsyncLocalStorage<ReadonlyMap<string, LockHandle | undefined>>();

export function absolute(path: string): string {
  return resolvePath(path);
}

/**
 * True when the calling async context already holds the lock of `path`: inside `withLock` (or an
 * update function) while its lock is not yet released (or was lost). A call made from that
 * context after a normal release (e.g. a promise callback that ran late) queues and locks like
 * any other.
 */
export function holdsLock(path: string): boolean {
  const store = held.getStore();
  if (store === undefined || !store.has(path)) return false;
  const lock = store.get(path);
  // A lost lock still counts: the direct path then refuses to write (LOCK_COMPROMISED).
  return lock === undefined || !lock.released || lock.compromised !== undefined;
}

/** The lock the current async context holds on `path` (see {@link holdsLock}). */
function heldLock(path: string): LockHandle | undefined {
  return held.getStore()?.get(path);
}

function runHolding<R>(path: string, lock: LockHandle | undefined, fn: () => R): R {
  const next = new Map(held.getStore());
  next.set(path, lock);
  return held.run(next, fn);
}

/** Reject `op` with `ABORTED` when `signal` fires while it still waits in the queue. */
function abortWhileQueued(path: string, op: Op, signal: AbortSignal | undefined): void {
  if (!signal) return;
  if (signal.aborted) {
    op.reject(abortedError(path, signal));
    return;
  }
  signal.addEventListener(
    'abort',
    () => {
      const q = queues.get(path);
      const i = q ? q.ops.indexOf(op) : -1;
      if (i < 0) return; // already running: it checks the signal itself
      q!.ops.splice(i, 1);
      op.reject(abortedError(path, signal));
    },
    { once: true },
  );
}

function enqueue(path: string, op: Op, signal?: AbortSignal): void {
  if (signal?.aborted) {
    op.reject(abortedError(path, signal));
    return;
  }
  abortWhileQueued(path, op, signal);
  let q = queues.get(path);
  if (!q) {
    q = { ops: [], running: false };
    queues.set(path, q);
  }
  const last = q.ops[q.ops.length - 1];
  if (op.kind === 'write' && last?.kind === 'write' && last.opts.key === op.opts.key) {
    // A newer write supersedes a queued one: keep one text, settle both once it is durable.
    last.text = op.text;
    last.also.push(op);
    return;
  }
  q.ops.push(op);
  if (!q.running) {
    q.running = true;
    // Start on a microtask: every operation issued in the same synchronous run joins the batch.
    queueMicrotask(() => void drain(path, q));
  }
}

async function drain(path: string, q: PathQueue): Promise<void> {
  try {
    while (q.ops.length > 0) {
      const first = q.ops[0]!;
      if (first.kind === 'barrier') {
        q.ops.shift();
        first.resolve();
        continue;
      }
      if (first.kind === 'exclusive') {
        q.ops.shift();
        await runExclusive(path, first);
        continue;
      }
      const key = first.opts.key;
      let n = 1;
      while (n < q.ops.length) {
        const op = q.ops[n]!;
        if ((op.kind !== 'write' && op.kind !== 'update') || op.opts.key !== key) break;
        n++;
      }
      const batch = q.ops.splice(0, n) as Extract<Op, { kind: 'write' | 'update' }>[];
      await runBatch(path, batch, first.opts);
    }
  } finally {
    q.running = false;
    if (q.ops.length > 0) {
      q.running = true;
      queueMicrotask(() => void drain(path, q));
    } else if (queues.get(path) === q) queues.delete(path);
  }
}

/** When this process last swept `path`'s directory for stale temp files. */
const lastSweep = new Map<string, number>();

/**
 * Remove temp files a killed writer left behind, while holding the lock. A directory read per
 * write is wasted work when nobody died, so sweep on this process's first lock of the path,
 * whenever another process held the lock while we waited (it may have died holding it), and
 * otherwise at most once per `staleMs` (a lock abandoned by a killed process is only taken over
 * after `staleMs` anyway).
 */
async function cleanTempsIfDue(path: string, lock: LockHandle, staleMs: number): Promise<void> {
  const now = Date.now();
  const last = lastSweep.get(path);
  if (last !== undefined && !lock.contended && now - last < staleMs) return;
  lastSweep.set(path, now);
  await removeStaleTemps(path);
}

/**
 * Read a file's text (strict UTF-8); `undefined` when it does not exist. Only regular files are
 * read: a FIFO or device (also behind a symlink) is refused with `IO`, never waited on.
 */
export async function readText(path: string): Promise<string | undefined> {
  const bytes = await readBytes(path);
  return bytes === undefined ? undefined : decodeText(bytes, path);
}

/** Read a regular file's bytes; `undefined` when it does not exist. */
export async function readBytes(path: string): Promise<Buffer | undefined> {
  try {
    return await fsl().readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (err instanceof NotRegularFileError) {
      throw new AtomicJsonError(
        'IO',
        path,
        `Cannot read ${path}: it is ${err.fileType}, not a regular file. Only regular files are read as JSON; ` +
          `replace it with the real file (or remove it) and retry.`,
        { cause: err },
      );
    }
    throw ioError(path, 'read', err);
  }
}

/** What an update function receives: a fresh parse of the file's text, else of the default, else `undefined`. */
function currentValue(path: string, text: string | undefined, hasDefault: boolean, defaultText: string | undefined): unknown {
  const source = text ?? (hasDefault ? defaultText : undefined);
  return source === undefined ? undefined : parseJsonText(source, path);
}

type Outcome = { ok: true; settle: () => void } | { ok: false; settle: () => void };

/**
 * Apply update functions in order to `text`; each gets its own parsed copy. Records how each
 * op is to be settled (once the batch is durable and the lock released).
 */
async function applyUpdates(
  path: string,
  initial: string | undefined,
  ops: readonly Op[],
  spaces: number,
  lock: LockHandle | undefined,
  outcomes: Map<Op, Outcome>,
): Promise<string | undefined> {
  let text = initial;
  for (const op of ops) {
    if (op.kind === 'write') {
      text = op.text;
      outcomes.set(op, { ok: true, settle: () => op.resolve() });
      continue;
    }
    if (op.kind !== 'update') continue;
    try {
      if (op.opts.signal?.aborted) throw abortedError(path, op.opts.signal);
      const current = currentValue(path, text, op.hasDefault, op.defaultText);
      const result = await runHolding(path, lock, () => op.fn(current));
      text = serialize(result, path, spaces);
      outcomes.set(op, { ok: true, settle: () => op.resolve(result) });
    } catch (err) {
      // This function alone fails; the batch goes on from the previous text.
      outcomes.set(op, { ok: false, settle: () => op.reject(err) });
    }
  }
  return text;
}

/**
 * One lock + (read) + write cycle for a batch of writes and updates. Promises settle only
 * after the lock is released, so when one resolves another process can take the lock at once.
 */
async function runBatch(path: string, batch: Extract<Op, { kind: 'write' | 'update' }>[], opts: ResolvedWrite): Promise<void> {
  let lock: LockHandle | undefined;
  const outcomes = new Map<Op, Outcome>();
  let failure: { err: unknown } | undefined;
  try {
    if (opts.lock) {
      lock = await acquireLock(path, opts.lock);
      await cleanTempsIfDue(path, lock, opts.lock.staleMs);
    }
    const needsRead = batch[0]!.kind === 'update';
    const onDisk = needsRead ? await readText(path) : undefined;
    const text = await applyUpdates(path, onDisk, batch, opts.spaces, lock, outcomes);
    const changed = text !== undefined && (!needsRead || text !== onDisk || batch.some((op) => op.kind === 'write'));
    if (changed) {
      const held = lock;
      await writeFileAtomic(path, text, { fsync: opts.fsync, mode: opts.mode, lock, afterRename: held && (() => held.release()) });
    }
  } catch (err) {
    failure = { err };
  } finally {
    await lock?.release();
  }
  for (const op of batch) {
    const outcome = outcomes.get(op);
    // A function that threw keeps its own error; the others share the batch's failure.
    if (failure && outcome?.ok !== false) op.reject(failure.err);
    else outcome?.settle();
  }
}

async function runExclusive(path: string, op: Extract<Op, { kind: 'exclusive' }>): Promise<void> {
  let lock: LockHandle | undefined;
  let outcome: { ok: true; value: unknown } | { ok: false; err: unknown };
  try {
    lock = await acquireLock(path, op.lock);
    await cleanTempsIfDue(path, lock, op.lock.staleMs);
    const result = await Promise.race([runHolding(path, lock, op.fn), lock.lost]);
    if (lock.compromised) throw lock.compromised;
    outcome = { ok: true, value: result };
  } catch (err) {
    outcome = { ok: false, err };
  } finally {
    await lock?.release();
  }
  // Settle after the release: when withLock's promise settles, the lock is free.
  if (outcome.ok) op.resolve(outcome.value);
  else op.reject(outcome.err);
}

/** Queue a write of already-serialized text. */
export function queueWrite(path: string, text: string, opts: ResolvedWrite): Promise<void> {
  return new Promise((resolve, reject) => {
    const also: Settle<void>[] = [];
    enqueue(path, {
      kind: 'write',
      text,
      opts,
      also,
      resolve: () => {
        resolve();
        for (const a of also) a.resolve();
      },
      reject: (err) => {
        reject(err);
        for (const a of also) a.reject(err);
      },
    }, opts.signal);
  });
}

/** Queue an update function. */
export function queueUpdate(
  path: string,
  fn: (current: unknown) => unknown,
  opts: ResolvedWrite,
  defaultText: string | undefined,
  hasDefault: boolean,
): Promise<unknown> {
  return new Promise((resolve, reject) =>
    enqueue(path, { kind: 'update', fn, opts, defaultText, hasDefault, resolve, reject }, opts.signal),
  );
}

/** Queue a function to run alone, holding the lock. */
export function queueExclusive<R>(path: string, fn: () => R | Promise<R>, lock: LockOptions = {}): Promise<R> {
  const resolved: ResolvedLock = {
    timeoutMs: lock.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    staleMs: lock.staleMs ?? DEFAULT_STALE_MS,
    signal: lock.signal,
  };
  return new Promise<unknown>((resolve, reject) =>
    enqueue(path, { kind: 'exclusive', fn, lock: resolved, resolve, reject }, lock.signal),
  ) as Promise<R>;
}

/**
 * For a context holding the lock of `path` (inside `withLock`): throws `LOCK_COMPROMISED` when
 * that lock has been lost meanwhile, so that nothing more is written under it.
 */
export function assertLockStillHeld(path: string): void {
  const lock = heldLock(path);
  if (lock?.compromised) throw lock.compromised;
}

/** True when other operations of this process wait for `path`'s queue (behind the one running). */
export function othersQueued(path: string): boolean {
  return (queues.get(path)?.ops.length ?? 0) > 0;
}

/** Resolves once every operation queued on `path` before this call has finished. */
export function barrier(path: string): Promise<void> {
  const q = queues.get(path);
  if (!q || q.ops.length === 0 && !q.running) return Promise.resolve();
  return new Promise((resolve, reject) => enqueue(path, { kind: 'barrier', resolve, reject }));
}

/**
 * Run a write or update directly, for a context that already holds the lock. If that lock has
 * been compromised meanwhile (the enclosing `withLock` already rejected), the file is not replaced.
 */
export async function directWrite(path: string, text: string, opts: ResolvedWrite, beforeRename?: (tmp: string) => Promise<void>): Promise<void> {
  await writeFileAtomic(path, text, { fsync: opts.fsync, mode: opts.mode, lock: heldLock(path), beforeRename });
}

export async function directUpdate(
  path: string,
  fn: (current: unknown) => unknown,
  opts: ResolvedWrite,
  defaultText: string | undefined,
  hasDefault: boolean,
): Promise<unknown> {
  const onDisk = await readText(path);
  const result = await fn(currentValue(path, onDisk, hasDefault, defaultText));
  const text = serialize(result, path, opts.spaces);
  const lock = heldLock(path);
  if (lock?.compromised) throw lock.compromised;
  if (text !== onDisk) await writeFileAtomic(path, text, { fsync: opts.fsync, mode: opts.mode, lock });
  return result;
}

export { AtomicJsonError };
