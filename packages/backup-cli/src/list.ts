import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BackupError } from './errors.js';
import { errCode } from './fsutil.js';
import { infoFromMetadata, type BackupInfo } from './info.js';
import { readMetadata, type ManifestEntry } from './metadata.js';
import { resolveBackupDir } from './paths.js';
import { openBackup } from './verify.js';

/** Options of {@link listBackups}. */
export interface ListOptions {
  /** @default `<data root>/../backups` */
  backupDir?: string;
}

/** What {@link listBackups} found. */
export interface ListResult {
  backupDir: string;
  /** Complete backups, newest first. */
  backups: BackupInfo[];
  /** Directories that are not usable backups (no or damaged metadata), with the reason. */
  ignored: { name: string; reason: string }[];
}

/**
 * List the backups of a backup dir, newest first. Temporary directories (names starting with
 * `.`: unfinished backups, restores in progress) are never listed; directories without valid
 * metadata are reported in `ignored`. A missing backup dir lists nothing.
 *
 * @throws {BackupError} `IO` when the backup dir cannot be read.
 * @example
 * ```ts
 * const { backups } = await listBackups({ backupDir: '/srv/backups' });
 * for (const b of backups) console.log(b.name, new Date(b.createdAt * 1000), b.checksums);
 * ```
 */
export async function listBackups(opts: ListOptions = {}): Promise<ListResult> {
  const backupDir = resolveBackupDir(opts.backupDir);
  const result: ListResult = { backupDir, backups: [], ignored: [] };
  let entries;
  try {
    entries = await readdir(backupDir, { withFileTypes: true });
  } catch (err) {
    if (errCode(err) === 'ENOENT') return result;
    throw new BackupError('IO', `Cannot read the backup dir ${backupDir}: ${(err as Error).message}. Check the path and its permissions.`, {
      path: backupDir,
      cause: err,
    });
  }
  for (const e of entries) {
    if (e.name.startsWith('.') || !e.isDirectory()) continue;
    const path = join(backupDir, e.name);
    try {
      const meta = await readMetadata(path, e.name);
      result.backups.push(await infoFromMetadata(e.name, path, meta));
    } catch (err) {
      if (!BackupError.is(err)) throw err;
      result.ignored.push({ name: e.name, reason: err.message });
    }
  }
  result.backups.sort((a, b) => b.createdAt - a.createdAt || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
  result.ignored.sort((a, b) => (a.name < b.name ? -1 : 1));
  return result;
}

/** Options of {@link showBackup}. */
export interface ShowOptions {
  name: string;
  /** @default `<data root>/../backups` */
  backupDir?: string;
  /** Include the manifest (every file with size, mode and sha256). @default false */
  manifest?: boolean;
}

/** One backup in detail. */
export interface BackupDetails extends BackupInfo {
  dirCount: number | null;
  symlinkCount: number | null;
  /** `syncfs` or `fsync` when every file was made durable before the backup was renamed into place, `none` otherwise. */
  durability: string | null;
  /** Present when asked for (`manifest: true`) and the backup has one. */
  manifest?: ManifestEntry[];
}

/**
 * A backup's metadata and summary (peers, agents, files, bytes, checksums or not).
 *
 * @throws {BackupError} `INVALID_NAME`, `BACKUP_NOT_FOUND`, `BACKUP_INVALID`.
 * @example
 * ```ts
 * const d = await showBackup({ name: 'dawn_backup_20261125_101500' });
 * console.log(d.summary?.peerCount, d.summary?.agentIds);
 * ```
 */
export async function showBackup(opts: ShowOptions): Promise<BackupDetails> {
  const { path, meta } = await openBackup(opts);
  const info = await infoFromMetadata(opts.name, path, meta);
  const details: BackupDetails = {
    ...info,
    dirCount: typeof meta.dir_count === 'number' ? meta.dir_count : null,
    symlinkCount: typeof meta.symlink_count === 'number' ? meta.symlink_count : null,
    durability: typeof meta.durability === 'string' ? meta.durability : null,
  };
  if (opts.manifest && Array.isArray(meta.manifest)) details.manifest = meta.manifest;
  return details;
}
