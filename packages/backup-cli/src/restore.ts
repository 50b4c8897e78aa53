import { mkdirSync } from 'node:fs';
import { chmod, mkdir, realpath, rename, stat, symlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { createBackup } from './backup.js';
import { HashPool } from './hash-pool.js';
import { makeDurable, plannedDurability } from './durability.js';
import { CopyWorker, DEFAULT_CONCURRENCY } from './copy.js';
import { BackupError, ioError, type VerifyProblem } from './errors.js';
import { errCode, fsyncDir, lstatOrUndefined, parseMode, removeTree, runPool } from './fsutil.js';
import { cleanBackupDirLeftovers } from './leftovers.js';
import { checkManifest, nameEscapeOf, type ManifestEntry, type ManifestFile } from './metadata.js';
import { expandHome, preRestoreName, resolveDataRoot } from './paths.js';
import type { ProgressListener } from './progress.js';
import { recoverInterruptedRestores, restoreTempPaths } from './recover.js';
import { entryRel, entryTarget, joinRel } from './relpath.js';
import { checkFile, compareTree, manifestFromTree, openBackup, readProblem, storedPathOf } from './verify.js';

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
  warnings: string[];
}

/** `child` is `parent` or inside it. */
function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * Restore a backup into a directory (by default the data root) without ever losing data:
 *
 * 1. the manifest is checked (no absolute path, no `..`, nothing below a symlink) and the
 *    backup's tree compared with it — a damaged backup is refused (`VERIFY_FAILED`) before
 *    anything is written;
 * 2. the restored tree is built beside the target, in `.dawn-restore-<id>-<pid>-<tag>.new`,
 *    every file hashed as it is copied and compared with the manifest (a mismatch refuses
 *    the restore; the target is untouched); files are created with `O_EXCL | O_NOFOLLOW` in
 *    fresh directories, symlinks recreated last as links, modes and mtimes restored, fsynced;
 * 3. unless `overwrite`, the current target is saved as a normal backup `pre_restore_...`;
 * 4. swap by renames: target → `.old`, `.new` → target, then `.old` is removed.
 *
 * Killed at any moment the target holds the old data or the complete restored data; in the
 * instant between the two renames it is absent and the next `restore` or `backup` of it
 * completes the swap (see {@link recoverInterruptedRestores}). The backup's own
 * `.backup_metadata.json` is never copied into the target (a source entry of that name is,
 * from where the backup stored it). Names are restored as the exact bytes recorded.
 * Python backups (no manifest) restore after a warning.
 *
 * @throws {BackupError} `INVALID_NAME`, `BACKUP_NOT_FOUND`, `BACKUP_INVALID`, `UNSAFE_PATH`,
 *   `VERIFY_FAILED` (with `problems`; target untouched), `TARGET_INVALID`, `IO`.
 * @example
 * ```ts
 * const r = await restoreBackup({ name: 'dawn_backup_20261125_101500', target: '/srv/dawn' });
 * console.log(`previous data saved as ${r.preRestoreBackup}`);
 * ```
 */
export async function restoreBackup(opts: RestoreOptions): Promise<RestoreResult> {
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    opts.onWarning?.(m);
  };
  const fsync = opts.fsync ?? true;
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? DEFAULT_CONCURRENCY));
  const { path: backupPath, backupDir, meta } = await openBackup(opts);

  // --- 1. the manifest, and the backup's tree against it ----------------------------------
  let manifest: ManifestEntry[];
  const verified = Array.isArray(meta.manifest);
  const nameEscape = nameEscapeOf(meta);
  if (verified) {
    const unsafe = checkManifest(meta.manifest!, { nameEscape });
    if (unsafe.length > 0) {
      throw new BackupError(
        'UNSAFE_PATH',
        `Backup "${opts.name}" has an unsafe manifest (${unsafe.length} problem(s), first: ${unsafe[0]!.path}: ${unsafe[0]!.detail}). Nothing was restored; do not use this backup.`,
        { path: backupPath, problems: unsafe },
      );
    }
    manifest = meta.manifest!;
    const problems = await compareTree(backupPath, manifest, nameEscape);
    if (problems.length > 0) throw damaged(opts.name, backupPath, problems);
  } else {
    warn(`Backup "${opts.name}" was made by the Python implementation and carries no checksums: it cannot be verified; restoring it as it is.`);
    manifest = await manifestFromTree(backupPath);
    const unsafe = checkManifest(manifest, { checksums: false });
    if (unsafe.length > 0) throw damaged(opts.name, backupPath, unsafe);
  }

  // --- the target --------------------------------------------------------------------------
  let target = opts.target !== undefined ? resolve(expandHome(opts.target)) : resolveDataRoot();
  const recover = async (t: string) => {
    const recovery = await recoverInterruptedRestores(t);
    for (const a of recovery.actions) warn(`recovered: ${a}`);
    if (recovery.warnings.length > 0) {
      for (const w of recovery.warnings) warn(w);
      throw new BackupError('TARGET_INVALID', `Leftovers of an interrupted restore need attention next to ${t}: ${recovery.warnings.join(' ')}`, { path: t });
    }
  };
  // First finish or undo a killed restore of this target (it may be absent for an instant of the swap).
  await recover(target);
  const st = await lstatOrUndefined(target);
  if (st?.isSymbolicLink()) {
    // Restore into the directory the link points to; the link stays.
    try {
      target = await realpath(target);
    } catch (err) {
      throw new BackupError('TARGET_INVALID', `The target ${target} is a dangling symlink. Fix or remove the link, or pick another --target.`, {
        path: target,
        cause: err,
      });
    }
  }
  if (st?.isSymbolicLink()) await recover(target);
  const tst = await lstatOrUndefined(target);
  if (tst && !tst.isDirectory()) {
    throw new BackupError('TARGET_INVALID', `The target ${target} exists and is not a directory. Move it away or pick another --target.`, { path: target });
  }
  const realBackupDir = await realpath(backupDir);
  if (tst) {
    const realTarget = await realpath(target);
    if (isInside(realBackupDir, realTarget)) {
      throw new BackupError(
        'TARGET_INVALID',
        `The backup dir ${backupDir} is inside the target ${target}: replacing the target would take the backups with it. Keep backups outside the data root (--backup-dir).`,
        { path: target },
      );
    }
  }
  if (isInside(target, backupPath) || isInside(target, realBackupDir)) {
    throw new BackupError('TARGET_INVALID', `The target ${target} is inside the backup dir ${backupDir}. Pick a target outside it.`, { path: target });
  }
  const parent = dirname(target);
  try {
    await mkdir(parent, { recursive: true });
  } catch (err) {
    throw ioError(parent, 'create the parent directory of the target', err);
  }

  // --- 2. build the restored tree beside the target ---------------------------------------
  const { newDir, oldDir } = restoreTempPaths(target);
  const planned = plannedDurability(fsync);
  let files = 0;
  let bytes = 0;
  try {
    await mkdir(newDir, { mode: 0o700 });
    const dirs = manifest.filter((m) => m.type === 'dir');
    // Exact names (bytes); every create fails on anything existing (mkdir, O_EXCL | O_NOFOLLOW, symlink).
    for (const d of dirs) mkdirSync(joinRel(newDir, entryRel(d)!), { mode: 0o700 }); // sync: no thread-pool hop per directory
    const fileEntries = manifest.filter((m): m is ManifestFile => m.type === 'file');
    const problems: VerifyProblem[] = [];
    const workers: CopyWorker[] = [];
    opts.onProgress?.({ phase: 'restore', files: 0, totalFiles: fileEntries.length, bytes: 0 });
    const pool = new HashPool();
    try {
      await runPool(fileEntries, concurrency, async (m, lane) => {
        const worker = (workers[lane] ??= new CopyWorker(planned === 'fsync', pool));
        const mode = parseMode(m.mode)!;
        try {
          const got = await worker.copy({
            src: storedPathOf(backupPath, m, nameEscape),
            dst: joinRel(newDir, entryRel(m)!),
            modeFor: () => mode,
            ...(typeof m.mtime === 'number' && Number.isFinite(m.mtime) ? { times: { atime: m.mtime, mtime: m.mtime } } : {}),
          });
          const p = verified ? checkFile(m, got) : undefined;
          if (p) problems.push(p);
          bytes += got.size;
        } catch (err) {
          if (errCode(err) === 'EEXIST') throw err;
          problems.push(readProblem(m.path, err));
        }
        files++;
        opts.onProgress?.({ phase: 'restore', files, totalFiles: fileEntries.length, bytes });
        await worker.maybeYield();
      });
    } finally {
      await pool.close();
    }
    if (problems.length > 0) throw damaged(opts.name, backupPath, problems);
    // Symlinks last: no write ever goes through one.
    for (const m of manifest) if (m.type === 'symlink') await symlink(entryTarget(m)!, joinRel(newDir, entryRel(m)!));
    // Directory modes deepest first (a read-only directory is only made so once filled).
    for (const d of [...dirs].reverse()) {
      await chmod(joinRel(newDir, entryRel(d)!), parseMode(d.mode)!);
    }
    const rootMode = parseMode(meta.root_mode) ?? (tst ? (await stat(target)).mode & 0o7777 : 0o700);
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
    throw ioError(newDir, 'build the restored tree in', err);
  }

  // --- 3. save the current target -----------------------------------------------------------
  let preRestoreBackup: string | null = null;
  try {
    const exists = (await lstatOrUndefined(target)) !== undefined;
    if (exists && !opts.overwrite) {
      const now = opts.now ?? new Date();
      let name = preRestoreName(now);
      for (let i = 2; await lstatOrUndefined(join(backupDir, name)); i++) name = `${preRestoreName(now)}_${i}`;
      // Everything but lock dirs and temp files: "never lose the current data" includes logs.
      const saved = await createBackup({ source: target, backupDir, name, defaultExcludes: false, fsync, concurrency, now });
      preRestoreBackup = saved.name;
      for (const w of saved.warnings) warn(`while saving the current target: ${w}`);
    }

    // --- 4. swap ------------------------------------------------------------------------------
    if (exists) {
      await rename(target, oldDir);
      try {
        await rename(newDir, target);
      } catch (err) {
        await rename(oldDir, target).catch(() => {});
        throw err;
      }
      await fsyncDir(parent);
      await removeTree(oldDir);
    } else {
      await rename(newDir, target);
      await fsyncDir(parent);
    }
  } catch (err) {
    await removeTree(newDir).catch(() => {});
    if (BackupError.is(err)) throw err;
    throw ioError(target, 'replace', err);
  }
  await cleanBackupDirLeftovers(backupDir).catch(() => {});
  return { name: opts.name, backupPath, target, files, bytes, verified, preRestoreBackup, warnings };
}

function damaged(name: string, path: string, problems: VerifyProblem[]): BackupError {
  const first = problems[0]!;
  return new BackupError(
    'VERIFY_FAILED',
    `Backup "${name}" failed verification (${problems.length} problem(s), first: ${first.path}: ${first.detail}). Nothing was restored; the target is untouched. Restore from another backup.`,
    { path, problems },
  );
}
