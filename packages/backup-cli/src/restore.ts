import * as fs from 'node:fs';
import { constants, mkdirSync, type Dirent, type Stats } from 'node:fs';
import { chmod, lchown, link, lstat, mkdir, readdir, readlink, rename, symlink, unlink } from 'node:fs/promises';
import { assertOpenedAt, linkConfined, lstatConfined, PathChangedError, readDirConfined, readlinkConfined } from './confine.js';
import { dirname, join, relative, resolve } from 'node:path';
import { createBackup } from './backup.js';
import { makeDurable, plannedDurability } from './durability.js';
import { DEFAULT_CONCURRENCY } from './copy.js';
import { BackupError, ioError, type VerifyProblem } from './errors.js';
import { errCode, fsyncDir, lstatOrUndefined, parseMode, removeTree } from './fsutil.js';
import { cleanBackupDirLeftovers } from './leftovers.js';
import { isTempFileName } from '@dawn/atomic-json';
import { createExcludeMatcher, DEFAULT_EXCLUDES, type ExcludeMatcher } from './exclude.js';
import { isAtomicJsonLockDir, isLockDirName, LIVE_LOCK_MS } from './lockdir.js';
import { checkManifest, nameEscapeOf, type BackupMetadata, type ManifestEntry, type ManifestFile } from './metadata.js';
import { withDataRootLock } from './oplock.js';
import { expandHome, METADATA_FILE, preRestoreName, realPathOf, relatePaths, resolveDataRoot } from './paths.js';
import type { ProgressListener } from './progress.js';
import { recoverInterruptedRestores, removeOld, restoreTempPaths, type RecoveryReport } from './recover.js';
import { entryRel, entryTarget, joinRel } from './relpath.js';
import { createIncludeMatcher } from './include.js';
import { computePlan, publicPlan, restorePartial, type PlanInput, type RestorePlan } from './partial.js';
export type { RestorePlan };
import { compareTree, manifestFromTree, openBackup } from './verify.js';
import { localSource, type OpenedSource, type StageSource } from './stage-source.js';

/** Options of {@link restoreBackup}. */
export interface RestoreOptions {
  /** The backup's name. */
  name: string;
  /** @default `<data root>/../backups` */
  backupDir?: string;
  /**
   * The directory to restore into (replaced as a whole; created when missing).
   * @default the data root
   */
  target?: string;
  /**
   * Replace the target without first saving it as a `pre_restore_YYYYMMDD_HHMMSS` backup.
   * @default false
   */
  overwrite?: boolean;
  /** fsync the restored tree before it replaces the target. @default true */
  fsync?: boolean;
  /** Files copied at once. @default 32 */
  concurrency?: number;
  onProgress?: ProgressListener;
  /** Called with each warning (e.g. a Python backup has no checksums) as it happens. */
  onWarning?: (message: string) => void;
  /** The moment used to name the safety backup. @default now */
  now?: Date;
  /**
   * Restore even when the target holds data of another source than the backup's
   * (`SOURCE_MISMATCH`) or a running node's fresh locks (`TARGET_IN_USE`).
   * @default false
   */
  force?: boolean;
  /**
   * Restore only the paths these globs select (a partial restore), with the rules of
   * `--exclude` (see {@link createIncludeMatcher}): a pattern without `/` matches a name at any
   * depth, one with `/` a path from the root; a selected directory brings its whole subtree.
   * Every other path of the target is left as it is. In-scope target paths the backup does not
   * have are removed (they are in the `pre_restore_*` backup). A pattern that selects nothing
   * in the backup is `INVALID_OPTION` before anything changes.
   * @default a full restore; for a `pre_restore_*` backup of a partial restore, its recorded include
   */
  include?: string | readonly string[];
}

/** What {@link restoreBackup} did. */
export interface RestoreResult {
  name: string;
  /** Path of the backup restored. */
  backupPath: string;
  /** The directory that now holds the restored data. */
  target: string;
  /** Files restored. */
  files: number;
  /** Bytes restored. */
  bytes: number;
  /** True when every file was checked against the manifest's sha256 (false for Python backups). */
  verified: boolean;
  /** Name of the backup of the previous target (`pre_restore_...`), `null` with `overwrite` or when there was no target. */
  preRestoreBackup: string | null;
  /** Entries of the previous target the backup deliberately excluded (logs...), kept in place (relative paths). */
  kept: string[];
  /**
   * Set when the restore succeeded but the previous data could not be fully removed (a mount
   * point, an immutable file): where it now is and what is left. Remove it by hand.
   */
  leftover: { path: string; left: string[] } | null;
  /** The include patterns of a partial restore, `null` for a full restore. */
  include: string[] | null;
  /** Partial restore: target paths in the include's scope that the backup does not have, removed. */
  removed: string[];
  warnings: string[];
}

/**
 * Restore a backup into a directory (by default the data root) without ever losing data:
 *
 * 1. the manifest is checked (no absolute path, no `..`, nothing below a symlink) and the
 *    backup's tree compared with it — a damaged backup is refused (`VERIFY_FAILED`) before
 *    anything is written;
 * 2. the target is judged by its real path (every symlink on the way resolved): it may not be
 *    the backup dir, lie inside it or contain it (`TARGET_INVALID`). The data root's operation
 *    lock is taken (`BUSY` when another backup/restore of it runs). Unless `force`, a
 *    non-empty target must be the backup's recorded source (`SOURCE_MISMATCH`) and hold no
 *    fresh atomic-json lock of a running node (`TARGET_IN_USE`);
 * 3. the restored tree is built beside the target, in `.dawn-restore-<id>-<pid>-<tag>.new`,
 *    every file hashed as it is copied and compared with the manifest (a mismatch refuses
 *    the restore; the target is untouched); files are created with `O_EXCL | O_NOFOLLOW` in
 *    fresh directories, symlinks recreated last as links, modes and mtimes restored. Run as
 *    root, every entry gets the owner it had in the target (new ones: the target's owner).
 *    What the backup's own excludes left out (logs...) is hard-linked in from the target.
 *    A full disk here is `NO_SPACE` (the backup is fine), never `VERIFY_FAILED`;
 * 4. unless `overwrite`, the current target is saved as a normal backup `pre_restore_...`;
 * 5. swap by renames: target → `.old`, `.new` → target; then `.old` is removed. What cannot
 *    be removed (a mount point, an immutable file) is renamed to
 *    `<target>.restore-leftover-YYYYMMDD_HHMMSS` and reported in `leftover` and a warning:
 *    the restore itself succeeded.
 *
 * Killed at any moment the target holds the old data or the complete restored data; in the
 * instant between the two renames it is absent and the next `restore` or `backup` of it
 * completes the swap (see {@link recoverInterruptedRestores}). The backup's own
 * `.backup_metadata.json` is never copied into the target (a source entry of that name is,
 * from where the backup stored it). Names are restored as the exact bytes recorded.
 * Python backups (no manifest) restore after a warning.
 *
 * With `include`, only the selected paths are restored, each replaced on its own by a rename
 * from a verified staging copy, and the rest of the target is untouched (see `partial.ts`,
 * {@link restorePartial}); the `pre_restore_*` backup then holds the in-scope paths only and
 * records the include, so restoring it undoes just that.
 *
 * @throws {BackupError} `INVALID_OPTION` (an include pattern that is malformed or selects nothing),
 *   `INVALID_NAME`, `BACKUP_NOT_FOUND`, `BACKUP_INVALID`, `UNSAFE_PATH`,
 *   `VERIFY_FAILED` (with `problems`; target untouched), `TARGET_INVALID`, `SOURCE_MISMATCH`,
 *   `TARGET_IN_USE`, `BUSY`, `NO_SPACE`, `IO`.
 * @example
 * ```ts
 * const r = await restoreBackup({ name: 'dawn_backup_20261125_101500', target: '/srv/dawn' });
 * console.log(`previous data saved as ${r.preRestoreBackup}`);
 * ```
 */
export async function restoreBackup(opts: RestoreOptions): Promise<RestoreResult> {
  return (await run(opts, false)) as RestoreResult;
}

/**
 * What {@link restoreBackup} with the same options would do, without doing it: the entries it
 * would replace, add, remove and keep (with `include`, only in its scope), and whether a
 * `pre_restore_*` backup would be made. Runs the same checks (manifest, target, `SOURCE_MISMATCH`,
 * `TARGET_IN_USE`, an include that selects nothing) and throws the same errors; changes
 * nothing (no lock is left, no leftover of a killed restore is cleaned). Files are not hashed:
 * `verifyBackup` does that.
 *
 * @throws {BackupError} as {@link restoreBackup}, but never `VERIFY_FAILED`, `NO_SPACE` or `BUSY`.
 * @example
 * ```ts
 * const plan = await planRestore({ name: 'nightly', include: ['agents/first_agent/**'] });
 * console.log(plan.replace.length, plan.add.length, plan.remove.length);
 * ```
 */
export async function planRestore(opts: RestoreOptions): Promise<RestorePlan> {
  return (await run(opts, true)) as RestorePlan;
}

/**
 * Open a local backup for a restore: the manifest checked (`UNSAFE_PATH`), and for a full restore
 * the backup's tree compared with it (`VERIFY_FAILED`) before anything is written.
 */
async function openLocal(opts: RestoreOptions, how: { dryRun: boolean; partial: boolean }, warn: (m: string) => void): Promise<OpenedSource> {
  const { path: backupPath, realPath: realBackupPath, backupDir, meta } = await openBackup(opts);
  const dmg = (name: string, problems: VerifyProblem[]) => damaged(name, backupPath, problems);
  let manifest: ManifestEntry[];
  const verified = Array.isArray(meta.manifest);
  const nameEscape = nameEscapeOf(meta);
  if (verified) {
    manifest = checkedManifest(opts.name, meta, backupPath);
    // A partial restore checks what it restores as it stages it; a dry run hashes nothing.
    if (!how.partial && !Array.isArray(meta.include) && !how.dryRun) {
      const problems = await compareTree(realBackupPath, manifest, nameEscape);
      if (problems.length > 0) throw dmg(opts.name, problems);
    }
  } else {
    warn(`Backup "${opts.name}" was made by the Python implementation and carries no checksums: it cannot be verified; restoring it as it is.`);
    manifest = await manifestFromTree(realBackupPath);
    const unsafe = checkManifest(manifest, { checksums: false });
    if (unsafe.length > 0) throw dmg(opts.name, unsafe);
  }
  return { name: opts.name, backupPath, backupDir, meta, manifest, source: localSource(realBackupPath, nameEscape, verified, dmg) };
}

/** A backup's manifest, checked: no absolute path, no `..`, nothing below a symlink (`UNSAFE_PATH`). */
function checkedManifest(name: string, meta: BackupMetadata, where: string): ManifestEntry[] {
  const unsafe = checkManifest(meta.manifest!, { nameEscape: nameEscapeOf(meta) });
  if (unsafe.length > 0) {
    throw new BackupError(
      'UNSAFE_PATH',
      `Backup "${name}" has an unsafe manifest (${unsafe.length} problem(s), first: ${unsafe[0]!.path}: ${unsafe[0]!.detail}). Nothing was restored; do not use this backup.`,
      { path: where, problems: unsafe },
    );
  }
  return meta.manifest!;
}

/** How a restore gets its backup: a local backup dir ({@link openLocal}) or a repository (repo/restore-repo.ts). */
export type SourceOpener = (opts: RestoreOptions, how: { dryRun: boolean; partial: boolean }, warn: (m: string) => void) => Promise<OpenedSource>;

/** @internal {@link restoreBackup} / {@link planRestore} with another source of the backup's files. */
export async function restoreFrom(opts: RestoreOptions, dryRun: boolean, open: SourceOpener): Promise<RestoreResult | RestorePlan> {
  return run(opts, dryRun, open);
}

async function run(opts: RestoreOptions, dryRun: boolean, open: SourceOpener = openLocal): Promise<RestoreResult | RestorePlan> {
  const userInclude = opts.include === undefined ? undefined : typeof opts.include === 'string' ? [opts.include] : [...opts.include];
  const userMatch = userInclude !== undefined ? createIncludeMatcher(userInclude) : undefined; // INVALID_OPTION before the disk
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    opts.onWarning?.(m);
  };
  const opened = await open(opts, { dryRun, partial: userInclude !== undefined }, warn);
  const { backupPath, backupDir, meta, manifest } = opened;
  opts = { ...opts, name: opened.name };

  // --- the target, by its real path --------------------------------------------------------
  const given = opts.target !== undefined ? resolve(expandHome(opts.target)) : resolveDataRoot();
  let givenSt: Stats | undefined;
  // A symlink target: restore into the directory it points to (the link stays). Every symlink
  // on the way is resolved, so containment is judged on what is really replaced.
  let target: string;
  let vsBackups: Awaited<ReturnType<typeof relatePaths>>;
  try {
    givenSt = await lstatOrUndefined(given);
    target = givenSt?.isSymbolicLink() ? await realPathOf(resolve(dirname(given), await readlink(given))) : await realPathOf(given);
    vsBackups = await relatePaths(target, backupDir);
  } catch (err) {
    throw new BackupError('TARGET_INVALID', `Cannot resolve the real path of the target ${given}: ${(err as Error).message}. Fix the path (a symlink loop?) or pick another --target.`, {
      path: given,
      cause: err,
    });
  }
  if (vsBackups.relation === 'same' || vsBackups.relation === 'inside') {
    throw new BackupError(
      'TARGET_INVALID',
      `The target ${given} is ${vsBackups.relation === 'same' ? 'the backup dir' : 'inside the backup dir'} ${backupDir}` +
        `${target !== given ? ` (it resolves to ${target})` : ''}: restoring there would replace backups. Pick a target outside it.`,
      { path: given },
    );
  }
  if (vsBackups.relation === 'contains') {
    throw new BackupError(
      'TARGET_INVALID',
      `The backup dir ${backupDir} is inside the target ${given}${target !== given ? ` (${target})` : ''}: replacing the target would take the backups with it. Keep backups outside the data root (--backup-dir).`,
      { path: given },
    );
  }
  let include: RestoreContext['include'];
  if (userInclude !== undefined) include = { patterns: userInclude, match: userMatch!, fromUser: true };
  else if (Array.isArray(meta.include) && meta.include.every((x): x is string => typeof x === 'string')) {
    // A pre_restore_ backup of a partial restore: it holds only the paths that restore replaced.
    const patterns = meta.include as string[];
    if (patterns.length > 0) {
      include = { patterns, match: createIncludeMatcher(patterns), fromUser: false };
      warn(`Backup "${opts.name}" holds only the paths matching ${patterns.map((x) => JSON.stringify(x)).join(' ')} (saved by a partial restore): restoring those paths only.`);
    } else throw new BackupError('BACKUP_INVALID', `Backup "${opts.name}" records an empty include: it cannot be restored. Nothing was changed.`, { path: backupPath });
  }
  const parent = dirname(target);
  const ctx: RestoreContext = { opts, warn, warnings, backupPath, source: opened.source, backupDir, meta, manifest, given, givenIsLink: givenSt?.isSymbolicLink() === true, target, parent, include, dryRun };
  if (dryRun) return restoreLocked(ctx);
  try {
    await mkdir(parent, { recursive: true });
  } catch (err) {
    throw ioError(parent, 'create the parent directory of the target', err);
  }
  return withDataRootLock(target, 'restore', () => restoreLocked(ctx));
}

interface RestoreContext {
  opts: RestoreOptions;
  warn: (m: string) => void;
  warnings: string[];
  backupPath: string;
  /** Where the staged files come from (a local backup, a repository). */
  source: StageSource;
  backupDir: string;
  meta: BackupMetadata;
  manifest: ManifestEntry[];
  given: string;
  givenIsLink: boolean;
  target: string;
  parent: string;
  include: PlanInput['include'];
  dryRun: boolean;
}

/**
 * Fresh atomic-json lock directories (`<file>.lock`, see {@link isAtomicJsonLockDir}) at the top,
 * in `mesh/` and in `agents/<id>/` of a data root: younger than {@link LIVE_LOCK_MS}, so held
 * by a running node (a stale one beside its file is a lock, but of no running node).
 */
async function liveLocks(root: string): Promise<string[]> {
  const dirs = ['', 'mesh'];
  try {
    for (const e of await readdir(join(root, 'agents'), { withFileTypes: true })) if (e.isDirectory()) dirs.push(`agents/${e.name}`);
  } catch {
    // no agents
  }
  const out: string[] = [];
  const now = Date.now();
  for (const d of dirs) {
    let entries: Dirent[];
    try {
      entries = await readdir(join(root, d), { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      if (!e.isDirectory() || !isLockDirName(e.name)) continue;
      const rel = d ? `${d}/${e.name}` : e.name;
      const st = await lstatOrUndefined(join(root, rel)).catch(() => undefined);
      if (!st || now - st.mtimeMs >= LIVE_LOCK_MS) continue;
      // A running node locks files it writes: a fresh empty `<x>.lock` counts only beside its file
      // `<x>` (an empty `Cargo.lock/` directory of data made a minute ago is not a node).
      const sibling = await lstatOrUndefined(join(root, rel.slice(0, -'.lock'.length))).catch(() => undefined);
      if (sibling?.isFile() && (await isAtomicJsonLockDir(join(root, rel), { now }))) out.push(rel);
    }
  }
  return out;
}

/**
 * The matcher of what the backup deliberately left out (its own excludes), never atomic-json's
 * temp files (older backups recorded them as `*.ajtmp` patterns). Lock directories are judged
 * by {@link isAtomicJsonLockDir} in {@link collect} (it needs the disk): a real one is never
 * kept, any other `*.lock` directory an old backup's `*.lock` pattern left out is kept.
 */
export function deliberatelyExcluded(meta: BackupMetadata, warn: (m: string) => void): ExcludeMatcher {
  const patterns = Array.isArray(meta.excludes) ? meta.excludes.filter((p): p is string => typeof p === 'string') : [...DEFAULT_EXCLUDES];
  const usable: string[] = [];
  for (const p of patterns) {
    try {
      createExcludeMatcher([p]);
      usable.push(p);
    } catch {
      warn(`ignoring the unusable exclude pattern ${JSON.stringify(p)} recorded in the backup`);
    }
  }
  const excluded = createExcludeMatcher(usable);
  return (rel, isDir, exact) => {
    const name = rel.slice(rel.lastIndexOf('/') + 1);
    if (!isDir && isTempFileName(name)) return false;
    return excluded(rel, isDir, exact);
  };
}

/** Join Buffer path parts with `/` (names are bytes: a name that is not UTF-8 is kept exactly). */
const bjoin = (...parts: (string | Buffer)[]): Buffer =>
  Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [Buffer.from(p)] : [Buffer.from('/'), Buffer.from(p)])));

async function lstatMaybe(p: Buffer): Promise<Stats | undefined> {
  try {
    return await lstat(p);
  } catch (err) {
    if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** An entry of the previous target: its name bytes (path parts) and its text for matching and messages. */
interface PickedEntry {
  parts: Buffer[];
  rel: string;
}

/** Entries of `root` the matcher selects (a selected directory whole), never following symlinks. */
async function collect(root: string, match: ExcludeMatcher): Promise<PickedEntry[]> {
  const out: PickedEntry[] = [];
  const walk = async (parts: Buffer[]): Promise<void> => {
    let entries: Dirent<Buffer>[];
    try {
      entries = await readDirConfined(bjoin(root, ...parts), 'buffer'); // never through a swapped-in symlink
    } catch {
      return;
    }
    for (const e of entries) {
      const p = [...parts, e.name];
      const rel = p.map((b) => b.toString()).join('/');
      if (parts.length === 0 && rel === METADATA_FILE) continue;
      if (e.isDirectory() && isLockDirName(e.name) && (await isAtomicJsonLockDir(bjoin(root, ...p)))) continue; // a lock: never kept
      if (match(rel, e.isDirectory())) out.push({ parts: p, rel });
      else if (e.isDirectory()) await walk(p);
    }
  };
  await walk([]);
  return out;
}

interface Owner {
  uid: number;
  gid: number;
}

const KEEP_READ_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);
const KEEP_CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);

/**
 * Put `src` (a file, directory or symlink of the previous target, by a path built on the
 * target's real path) at `dst` in the restored tree without copying data: files are hard-linked
 * (same inode: content, mode, owner, times kept; copied when the file system refuses links),
 * directories recreated, symlinks recreated. Special files (FIFOs, sockets, devices) are not
 * kept: pushed to `skipped`.
 *
 * Never takes anything from outside the target when a directory on the way is swapped for a
 * symlink meanwhile: directories are listed and symlinks read through checked descriptors
 * (confine.ts); a file is opened (`O_NOFOLLOW`) and checked to be at `src`, then linked by
 * path, and the link is kept only if it is that very inode (`dev`/`ino`), else removed again.
 * The copy fallback copies from the checked descriptor.
 * @throws {PathChangedError} (what was already put at `dst` stays: all of it from inside the target).
 * @internal exported for tests
 */
export async function linkInto(src: Buffer, dst: Buffer, skipped: Buffer[]): Promise<void> {
  const st = await lstat(src);
  if (st.isDirectory()) {
    const names = (await readDirConfined(src, 'buffer')).map((d) => d.name);
    await mkdir(dst, { mode: 0o700 });
    for (const n of names) await linkInto(bjoin(src, n), bjoin(dst, n), skipped);
    if (process.getuid?.() === 0) await lchown(dst, st.uid, st.gid);
    await chmod(dst, st.mode & 0o7777);
  } else if (st.isSymbolicLink()) {
    await symlink(readlinkConfined(src), dst);
    if (process.getuid?.() === 0) await lchown(dst, st.uid, st.gid);
  } else if (st.isFile()) {
    let fd: number;
    try {
      fd = fs.openSync(src, KEEP_READ_FLAGS);
    } catch (err) {
      if (errCode(err) === 'ELOOP') throw new PathChangedError(src); // became a symlink meanwhile
      // A file we may not read (mode 000...) is still linked, through its checked parent directory.
      if (errCode(err) === 'EACCES') return linkConfined(src, dst, err);
      throw err;
    }
    try {
      assertOpenedAt(fd, src);
      const fst = fs.fstatSync(fd);
      if (!fst.isFile()) {
        skipped.push(src);
        return;
      }
      try {
        await link(src, dst);
        const got = await lstat(dst);
        if (got.dev !== fst.dev || got.ino !== fst.ino) {
          await unlink(dst); // swapped between the check and the link: never keep that
          throw new PathChangedError(src);
        }
      } catch (err) {
        if (!['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP'].includes(errCode(err))) throw err;
        copyFromFd(fd, fst, dst);
      }
    } finally {
      fs.closeSync(fd);
    }
  } else skipped.push(src);
}

/** Copy an open (checked) file into a new file `dst` with its mode, times and (as root) owner. */
function copyFromFd(fd: number, st: Stats, dst: Buffer): void {
  const out = fs.openSync(dst, KEEP_CREATE_FLAGS, 0o600);
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (let pos = 0; ; ) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      for (let off = 0; off < n; ) off += fs.writeSync(out, buf, off, n - off);
      pos += n;
    }
    if (process.getuid?.() === 0) fs.fchownSync(out, st.uid, st.gid);
    fs.fchmodSync(out, st.mode & 0o7777);
    fs.futimesSync(out, st.atime, st.mtime);
  } finally {
    fs.closeSync(out);
  }
}

/**
 * Keep what the backup deliberately left out (logs...) of the previous target: linked into the
 * restored tree before the swap. Returns what was kept and what could not be.
 */
async function keepExcluded(c: RestoreContext, newDir: string, owner: Owner | undefined): Promise<{ kept: string[]; removed: string[]; changed: string[] }> {
  const kept: string[] = [];
  const removed: string[] = [];
  const changed: string[] = [];
  const picks = await collect(c.target, deliberatelyExcluded(c.meta, c.warn));
  const madeDirs: { path: Buffer; mode: number }[] = [];
  for (const { parts, rel } of picks) {
    let ok = true;
    for (let i = 1; i < parts.length && ok; i++) {
      const here = bjoin(newDir, ...parts.slice(0, i));
      const st = await lstatMaybe(here);
      if (st?.isDirectory()) continue;
      if (st) {
        ok = false; // the restored tree has a file or symlink there: never write through it
        break;
      }
      const old = lstatConfined(bjoin(c.target, ...parts.slice(0, i)));
      if (!old?.isDirectory()) {
        ok = false; // changed meanwhile
        break;
      }
      await mkdir(here, { mode: 0o700 });
      if (owner) await lchown(here, old.uid, old.gid);
      madeDirs.push({ path: here, mode: old.mode & 0o7777 });
    }
    if (!ok || (await lstatMaybe(bjoin(newDir, ...parts)))) {
      removed.push(rel);
      continue;
    }
    const special: Buffer[] = [];
    try {
      await linkInto(bjoin(c.target, ...parts), bjoin(newDir, ...parts), special);
    } catch (err) {
      if (!(err instanceof PathChangedError)) throw err;
      changed.push(rel);
      continue;
    }
    for (const s of special) removed.push(relative(c.target, s.toString()));
    kept.push(rel);
  }
  for (const d of madeDirs.reverse()) await chmod(d.path, d.mode);
  return { kept, removed, changed };
}

const sameKind = (st: Stats, type: ManifestEntry['type']): boolean =>
  type === 'dir' ? st.isDirectory() : type === 'file' ? st.isFile() : st.isSymbolicLink();

async function restoreLocked(c: RestoreContext): Promise<RestoreResult | RestorePlan> {
  const { opts, warn, warnings, backupPath, backupDir, meta, manifest, target, parent } = c;
  const verified = c.source.verified;
  const fsync = opts.fsync ?? true;
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? DEFAULT_CONCURRENCY));
  // First finish or undo a killed restore of this target (it may be absent for an instant of the swap).
  const recovery = c.dryRun ? { actions: [], warnings: [] } : await recoverInterruptedRestores(target);
  for (const a of recovery.actions) warn(`recovered: ${a}`);
  if (recovery.warnings.length > 0) {
    for (const w of recovery.warnings) warn(w);
    throw new BackupError('TARGET_INVALID', `Leftovers of an interrupted restore need attention next to ${target}: ${recovery.warnings.join(' ')}`, { path: target });
  }
  const tst = await lstatOrUndefined(target);
  if (!tst && c.givenIsLink) {
    throw new BackupError('TARGET_INVALID', `The target ${c.given} is a dangling symlink (to ${target}). Fix or remove the link, or pick another --target.`, { path: c.given });
  }
  if (tst && !tst.isDirectory()) {
    throw new BackupError('TARGET_INVALID', `The target ${target} exists and is not a directory. Move it away or pick another --target.`, { path: target });
  }

  const parentSt = await lstatOrUndefined(parent);
  if (tst && parentSt && tst.dev !== parentSt.dev) throw mountedTarget(target); // checked again at the swap (bind mounts)

  // --- what is about to be replaced ----------------------------------------------------------
  const nonEmpty = tst !== undefined && (await readdir(target)).length > 0;
  if (nonEmpty && !opts.force) {
    const recorded = typeof meta.source_dir === 'string' && meta.source_dir !== '' ? meta.source_dir : undefined;
    const realRecorded = recorded !== undefined ? await realPathOf(recorded) : undefined;
    if (realRecorded !== target) {
      throw new BackupError(
        'SOURCE_MISMATCH',
        `Backup "${opts.name}" was made of ${recorded ?? 'an unknown directory'}, not of the target ${target}, which holds data: ` +
          'restoring would replace that data with another directory\'s. Nothing was changed. Pick the right backup or --target, ' +
          'or pass --force to replace it anyway (it is saved as a pre_restore_ backup first unless --overwrite).',
        { path: target },
      );
    }
    const live = await liveLocks(target);
    if (live.length > 0) {
      throw new BackupError(
        'TARGET_IN_USE',
        `A Dawn node seems to be running on ${target}: it holds ${live.length} fresh lock(s) (${live.slice(0, 3).join(', ')}${live.length > 3 ? ', ...' : ''}). ` +
          'Nothing was changed. Stop the node and retry, or pass --force if no node uses this directory.',
        { path: target },
      );
    }
  }

  if (c.dryRun || c.include) {
    const plan = await computePlan({
      name: opts.name,
      backupPath,
      target,
      targetExists: tst !== undefined,
      manifest,
      ...(c.include ? { include: c.include } : {}),
      kept: deliberatelyExcluded(meta, warn),
      overwrite: opts.overwrite === true,
    });
    if (c.dryRun) {
      // Leftovers of a killed restore are finished or removed by the real run first: say so.
      const beside = await readdir(parent).catch(() => [] as string[]);
      if (beside.some((n) => n.startsWith('.dawn-restore-'))) {
        warn(`${parent} holds leftovers of an interrupted restore (.dawn-restore-*): the restore will first complete or remove them, which this plan does not show.`);
      }
      return publicPlan(plan, warnings);
    }
    for (const w of plan.warnings) warn(w);
    const out = await restorePartial({
      name: opts.name,
      backupDir,
      backupPath,
      source: c.source,
      meta,
      target,
      tst,
      parentSt: parentSt ?? (await lstat(parent)),
      plan,
      overwrite: opts.overwrite === true,
      fsync,
      concurrency,
      ...(opts.now ? { now: opts.now } : {}),
      warn,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
    await cleanBackupDirLeftovers(backupDir, { warn }).catch(() => {});
    return {
      name: opts.name,
      backupPath,
      target,
      files: out.files,
      bytes: out.bytes,
      verified,
      preRestoreBackup: out.preRestoreBackup,
      kept: plan.keep,
      leftover: null,
      include: plan.include,
      removed: out.removed,
      warnings,
    };
  }

  // --- 2. build the restored tree beside the target ---------------------------------------
  const { newDir, oldDir } = restoreTempPaths(target);
  const planned = plannedDurability(fsync);
  const asRoot = process.getuid?.() === 0;
  let owner: Owner | undefined;
  if (asRoot) {
    const ref = tst ?? (await lstat(parent));
    owner = { uid: ref.uid, gid: ref.gid };
  }
  let files = 0;
  let bytes = 0;
  let kept: { kept: string[]; removed: string[]; changed: string[] } = { kept: [], removed: [], changed: [] };
  try {
    await mkdir(newDir, { mode: 0o700 });
    const dirs = manifest.filter((m) => m.type === 'dir');
    // Exact names (bytes); every create fails on anything existing (mkdir, O_EXCL | O_NOFOLLOW, symlink).
    for (const d of dirs) mkdirSync(joinRel(newDir, entryRel(d)!), { mode: 0o700 }); // sync: no thread-pool hop per directory
    const fileEntries = manifest.filter((m): m is ManifestFile => m.type === 'file');
    opts.onProgress?.({ phase: 'restore', files: 0, totalFiles: fileEntries.length, bytes: 0 });
    const problems = await c.source.stageFiles(fileEntries, (m) => joinRel(newDir, entryRel(m)!), {
      concurrency,
      fsync: planned === 'fsync',
      onFile: (_m, size) => {
        files++;
        bytes += size;
        opts.onProgress?.({ phase: 'restore', files, totalFiles: fileEntries.length, bytes });
      },
    });
    if (problems.length > 0) throw c.source.damaged(opts.name, problems);
    // Symlinks last: no write ever goes through one.
    for (const m of manifest) if (m.type === 'symlink') await symlink(entryTarget(m)!, joinRel(newDir, entryRel(m)!));
    // Built from a repository's blobs: the tree's names, types and links checked against the manifest too.
    if (c.source.checkStagedTree) {
      const shape = await compareTree(newDir, manifest, false, { own: [] });
      if (shape.length > 0) throw c.source.damaged(opts.name, shape);
    }
    // Run as root: every entry gets the owner it had in the target, new ones the target's owner
    // (nothing to do for a new target when what this process creates is already theirs).
    if (owner && (tst || !(await createsAs(newDir, owner)))) {
      for (const m of manifest) {
        // Never the owner of something outside the target (a directory on the way swapped for a symlink).
        const prev = tst ? lstatConfined(joinRel(target, entryRel(m)!)) : undefined;
        const o = prev && sameKind(prev, m.type) ? prev : owner;
        await lchown(joinRel(newDir, entryRel(m)!), o.uid, o.gid);
        const mode = m.type === 'file' ? parseMode(m.mode)! : 0;
        if (mode & 0o6000) await chmod(joinRel(newDir, entryRel(m)!), mode); // chown clears setuid/setgid
      }
      await lchown(newDir, owner.uid, owner.gid);
    }
    // What the backup deliberately left out (logs...) stays: linked in from the current target.
    if (tst) {
      kept = await keepExcluded(c, newDir, owner);
      if (kept.kept.length > 0) {
        warn(`kept ${kept.kept.length} entr${kept.kept.length === 1 ? 'y' : 'ies'} the backup excludes from the current target: ${kept.kept.slice(0, 5).join(', ')}${kept.kept.length > 5 ? ', ...' : ''}`);
      }
      if (kept.changed.length > 0) {
        warn(
          `did not keep (wholly) ${kept.changed.length} excluded entr${kept.changed.length === 1 ? 'y' : 'ies'} of the current target whose path changed meanwhile ` +
            `(a directory replaced by a symlink, or moved): nothing outside the target is ever taken (the pre_restore backup, unless --overwrite, holds what was there): ${kept.changed.join(', ')}`,
        );
      }
      if (kept.removed.length > 0) {
        warn(`removed ${kept.removed.length} entr${kept.removed.length === 1 ? 'y' : 'ies'} the backup excludes, which could not be kept (the restored tree has something else there, or not a file): ${kept.removed.join(', ')}`);
      }
    }
    // Directory modes deepest first (a read-only directory is only made so once filled).
    for (const d of [...dirs].reverse()) {
      await chmod(joinRel(newDir, entryRel(d)!), parseMode(d.mode)!);
    }
    const rootMode = parseMode(meta.root_mode) ?? (tst ? tst.mode & 0o7777 : 0o700);
    await chmod(newDir, rootMode | 0o700);
    if (planned !== 'none') opts.onProgress?.({ phase: 'sync', files, totalFiles: fileEntries.length, bytes });
    await makeDurable(
      planned,
      newDir,
      fileEntries.map((m) => entryRel(m)!),
      dirs.map((d) => entryRel(d)!),
      concurrency,
    );
  } catch (err) {
    await removeTree(newDir).catch(() => {});
    if (BackupError.is(err)) throw err;
    throw ioError(newDir, 'build the restored tree in', err, `Nothing was changed in ${target}, and the backup itself is fine: retry once the problem is solved.`);
  }

  // --- 3. save the current target -----------------------------------------------------------
  let preRestoreBackup: string | null = null;
  let leftover: RestoreResult['leftover'] = null;
  try {
    const exists = (await lstatOrUndefined(target)) !== undefined;
    if (exists && !opts.overwrite) {
      const now = opts.now ?? new Date();
      let name = preRestoreName(now);
      for (let i = 2; await lstatOrUndefined(join(backupDir, name)); i++) name = `${preRestoreName(now)}_${i}`;
      // Everything but lock dirs and temp files: "never lose the current data" includes logs.
      // (The data-root lock is held: createBackup re-enters it.)
      let saved;
      try {
        saved = await createBackup({ source: target, backupDir, name, defaultExcludes: false, fsync, concurrency, now });
      } catch (err) {
        if (BackupError.is(err) && (err.code === 'IO' || err.code === 'NO_SPACE')) {
          throw new BackupError(err.code, `Could not save the current target as backup ${name}, so nothing was changed in ${target}: ${err.message}`, {
            cause: err,
            ...(err.path !== undefined ? { path: err.path } : {}),
          });
        }
        throw err;
      }
      preRestoreBackup = saved.name;
      for (const w of saved.warnings) warn(`while saving the current target: ${w}`);
    }

    // --- 4. swap ------------------------------------------------------------------------------
    if (exists) {
      try {
        await rename(target, oldDir);
      } catch (err) {
        if (errCode(err) === 'EBUSY') throw mountedTarget(target, err);
        throw err;
      }
      try {
        await rename(newDir, target);
      } catch (err) {
        await rename(oldDir, target).catch(() => {});
        throw err;
      }
      await fsyncDir(parent);
    } else {
      await rename(newDir, target);
      await fsyncDir(parent);
    }
  } catch (err) {
    await removeTree(newDir).catch(() => {});
    if (BackupError.is(err)) throw err;
    throw ioError(target, 'replace', err, `Nothing was changed in ${target}; the backup itself is fine.`);
  }
  // The restore is done. The previous data is removed as far as possible; what cannot be
  // (a mount point, an immutable file) is set aside under a visible name and reported.
  const report: RecoveryReport = { actions: [], warnings: [] };
  leftover = await removeOld(oldDir, target, report).catch((err: unknown) => ({ path: oldDir, left: [`${oldDir} (${(err as Error).message})`] }));
  if (leftover) warn(`restored, but ${report.actions[0] ?? `the previous data could not be fully removed: it is in ${leftover.path}`}`);
  await cleanBackupDirLeftovers(backupDir, { warn }).catch(() => {});
  return { name: opts.name, backupPath, target, files, bytes, verified, preRestoreBackup, kept: kept.kept, leftover, include: null, removed: [], warnings };
}

/**
 * Whether entries created in `dir` (made by this process) get `owner` already: this process's
 * effective uid and gid are the owner's, and so is `dir`'s group (a set-group-ID parent passes its
 * group on).
 */
async function createsAs(dir: string, owner: Owner): Promise<boolean> {
  const st = await lstat(dir);
  return process.geteuid?.() === owner.uid && process.getegid?.() === owner.gid && st.uid === owner.uid && st.gid === owner.gid;
}

function mountedTarget(target: string, cause?: unknown): BackupError {
  return new BackupError(
    'TARGET_INVALID',
    `The target ${target} is a mount point (or otherwise in use by the system), so it cannot be swapped: nothing was changed in it. ` +
      'Make the data root a directory inside the mounted file system, or restore elsewhere with --target and copy.',
    { path: target, ...(cause !== undefined ? { cause } : {}) },
  );
}

function damaged(name: string, path: string, problems: VerifyProblem[]): BackupError {
  const first = problems[0]!;
  return new BackupError(
    'VERIFY_FAILED',
    `Backup "${name}" failed verification (${problems.length} problem(s), first: ${first.path}: ${first.detail}). Nothing was restored; the target is untouched. Restore from another backup.`,
    { path, problems },
  );
}
