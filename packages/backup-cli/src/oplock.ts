import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import { link, lstat, open, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { BackupError, ioError } from './errors.js';
import { errCode, isPidAlive, randomTag } from './fsutil.js';
import { realPathOf } from './paths.js';

/**
 * One dawn-backup operation per data root (and one prune per backup dir) at a time, across
 * processes.
 *
 * The lock is a small file created with `O_EXCL` (never through a symlink) that names its
 * owner: `{ pid, hostname, bootId, op, path, since }`.
 *
 * - data root: `<parent>/.<basename>.dawn-backup.lock`, beside the root's *real* path (restore
 *   swaps the root itself, so the lock cannot live inside it). Not an atomic-json lock: those
 *   are directories `<file>.lock` inside the data root, held by a running node.
 * - backup dir (prune): `<backup dir>/.dawn-backup-prune.lock` (hidden, so never listed).
 *
 * A second operation fails at once with `BUSY` (no waiting: a cron job retries next time, an
 * operator sees who holds it). A lock whose owner is gone (same host, and the pid is dead or
 * the machine rebooted since) is taken over; a lock of another host is never guessed stale.
 * Within one process the lock is re-entrant along one async call chain (restore's own
 * `pre_restore_*` backup), and exclusive between independent calls. A backup whose data root
 * sits in a directory it cannot write (read-only media, a root-owned parent) runs without
 * the lock: a restore by the same user could not swap that root anyway.
 */

/** Who holds a lock (the content of the lock file). */
export interface LockOwner {
  pid: number;
  hostname: string;
  /** Linux boot id: a lock from before a reboot is stale whatever its pid. */
  bootId?: string;
  /** `backup`, `restore`, `prune`. */
  op: string;
  /** The data root or backup dir the operation works on. */
  path: string;
  /** ISO time the lock was taken. */
  since: string;
}

/** A lock file with no (complete) owner is being written; after this long it is abandoned. */
const UNWRITTEN_GRACE_MS = 10_000;

const heldHere = new AsyncLocalStorage<ReadonlySet<string>>();

let bootIdCache: string | undefined | null = null;
function bootId(): string | undefined {
  if (bootIdCache === null) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
    } catch {
      bootIdCache = undefined;
    }
  }
  return bootIdCache;
}

/** The lock file of a data root (pass its real path). */
export function dataRootLockPath(realRoot: string): string {
  return join(dirname(realRoot), `.${basename(realRoot)}.dawn-backup.lock`);
}

/** The prune lock of a backup dir (pass its real path). */
export function pruneLockPath(realBackupDir: string): string {
  return join(realBackupDir, '.dawn-backup-prune.lock');
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (typeof o.pid === 'number' && typeof o.hostname === 'string') return o as LockOwner;
  } catch {
    // incomplete
  }
  return undefined;
}

/** True when the owner is provably gone. */
function ownerIsGone(o: LockOwner): boolean {
  if (o.hostname !== hostname()) return false;
  const boot = bootId();
  if (boot !== undefined && o.bootId !== undefined && o.bootId !== boot) return true;
  return !isPidAlive(o.pid);
}

function busy(lockPath: string, what: string, o: LockOwner | undefined): BackupError {
  const who = o
    ? `Another dawn-backup ${o.op} (pid ${o.pid}${o.hostname !== hostname() ? ` on host ${o.hostname}` : ''}, since ${o.since})`
    : 'Another dawn-backup (starting up)';
  return new BackupError(
    'BUSY',
    `${who} is working on ${what}; nothing was done. Retry when it has finished. ` +
      `If you are sure no such process runs, remove the lock file ${lockPath}.`,
    { path: lockPath },
  );
}

const LITTER = /^(.+)\.(tmp|stale)-(\d+)-[0-9a-f]{8}$/;

/** Remove temp files of lock attempts whose process died (killed between two syscalls). */
async function sweepLitter(lockPath: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dirname(lockPath));
  } catch {
    return;
  }
  for (const n of names) {
    const m = LITTER.exec(n);
    if (m && m[1] === basename(lockPath) && !isPidAlive(Number(m[3]))) await unlink(join(dirname(lockPath), n)).catch(() => {});
  }
}

/**
 * Create `path` holding `content`, atomically: written to a temp file first, then hard-linked
 * to its name (`link` fails when the name exists, and never follows a symlink), so the lock
 * file is never seen empty. Where hard links are refused, `O_CREAT|O_EXCL` and a write.
 * Returns false when `path` exists.
 */
async function createWithContent(path: string, content: string): Promise<boolean> {
  const tmp = `${path}.tmp-${process.pid}-${randomTag()}`;
  try {
    await writeFile(tmp, content, { flag: 'wx', mode: 0o644 });
    try {
      await link(tmp, path);
      return true;
    } catch (err) {
      if (errCode(err) === 'EEXIST') return false;
      if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EMLINK'].includes(errCode(err))) throw err;
    }
  } finally {
    await unlink(tmp).catch(() => {});
  }
  try {
    const fh = await open(path, 'wx', 0o644);
    try {
      await fh.writeFile(content);
    } finally {
      await fh.close();
    }
    return true;
  } catch (err) {
    if (errCode(err) === 'EEXIST') return false;
    throw err;
  }
}

/** Try once to take the lock; returns the release function. */
async function acquire(lockPath: string, what: string, op: string): Promise<() => Promise<void>> {
  const owner: LockOwner = { pid: process.pid, hostname: hostname(), op, path: what, since: new Date().toISOString() };
  const boot = bootId();
  if (boot !== undefined) owner.bootId = boot;
  const content = `${JSON.stringify(owner)}\n`;
  await sweepLitter(lockPath);
  const release = async () => {
    try {
      if ((await readFile(lockPath, 'utf8')) === content) await unlink(lockPath);
    } catch {
      // already gone: nothing of ours to remove
    }
  };
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      if (await createWithContent(lockPath, content)) return release;
    } catch (err) {
      // No parent directory: nothing exists to protect yet; the operation reports the missing path.
      if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') return async () => {};
      // A backup of a root whose parent this user cannot write (read-only media, a root-owned
      // parent) runs unlocked: no restore by this user can swap that root either.
      if (op === 'backup' && ['EACCES', 'EPERM', 'EROFS'].includes(errCode(err))) return async () => {};
      throw ioError(lockPath, 'create the lock file', err);
    }
    // Held, or left by a dead process?
    let text: string;
    let age: number;
    try {
      text = await readFile(lockPath, 'utf8');
      age = Date.now() - (await lstat(lockPath)).mtimeMs;
    } catch (err) {
      if (errCode(err) === 'ENOENT') continue; // released meanwhile
      throw ioError(lockPath, 'read the lock file', err);
    }
    const o = parseOwner(text);
    const stale = o ? ownerIsGone(o) : age > UNWRITTEN_GRACE_MS;
    if (!stale) throw busy(lockPath, what, o);
    // Take it over: move it aside, and make sure what we moved is the stale lock we looked at.
    const aside = `${lockPath}.stale-${process.pid}-${randomTag()}`;
    try {
      await rename(lockPath, aside);
    } catch (err) {
      if (errCode(err) === 'ENOENT') continue;
      throw ioError(lockPath, 'take over the stale lock file', err);
    }
    const moved = await readFile(aside, 'utf8').catch(() => '');
    if (moved !== text) {
      // Someone took it over and locked meanwhile: put theirs back (link fails if yet another exists).
      await link(aside, lockPath).catch(() => {});
      await unlink(aside).catch(() => {});
      throw busy(lockPath, what, parseOwner(moved));
    }
    await unlink(aside).catch(() => {});
  }
  throw busy(lockPath, what, undefined);
}

async function withLockFile<T>(lockPath: string, what: string, op: string, fn: () => Promise<T>): Promise<T> {
  const mine = heldHere.getStore();
  if (mine?.has(lockPath)) return fn();
  const release = await acquire(lockPath, what, op);
  try {
    return await heldHere.run(new Set([...(mine ?? []), lockPath]), fn);
  } finally {
    await release();
  }
}

/**
 * Run `fn` while holding the operation lock of the data root `root` (resolved to its real
 * path; the lock file sits beside it). When the parent of `root` does not exist there is
 * nothing to protect yet and `fn` runs without the lock (it reports the missing root).
 *
 * @throws {BackupError} `BUSY` when another operation holds it; `IO` if the lock file cannot be made.
 * @example
 * ```ts
 * await withDataRootLock('/srv/dawn', 'backup', () => doBackup());
 * ```
 */
export async function withDataRootLock<T>(root: string, op: string, fn: () => Promise<T>): Promise<T> {
  let real: string;
  try {
    real = await realPathOf(root);
  } catch (err) {
    throw ioError(root, 'resolve the real path of', err);
  }
  return withLockFile(dataRootLockPath(real), `the data root ${real}`, op, fn);
}

/**
 * Run `fn` while holding the prune lock of a backup dir.
 *
 * @throws {BackupError} `BUSY` when another prune of the same backup dir runs.
 */
export async function withPruneLock<T>(backupDir: string, fn: () => Promise<T>): Promise<T> {
  let real: string;
  try {
    real = await realPathOf(backupDir);
  } catch (err) {
    throw ioError(backupDir, 'resolve the real path of', err);
  }
  return withLockFile(pruneLockPath(real), `the backup dir ${real}`, 'prune', fn);
}
