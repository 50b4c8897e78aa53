import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BackupError } from './errors.js';
import { errCode, modeToString, parseMode } from './fsutil.js';
import { infoFromMetadata, type BackupInfo } from './info.js';
import { checkManifest, readMetadata, type BackupMetadata, type ManifestEntry } from './metadata.js';
import { resolveBackupDir } from './paths.js';
import { openBackup } from './verify.js';
import { readMetadataHead } from './head.js';

/** Options of {@link listBackups}. */
export interface ListOptions {
  /** @default `<data root>/../backups` */
  backupDir?: string;
}

/** A directory of the backup dir that is not a usable backup, and why. */
export interface DamagedBackup {
  name: string;
  /** Absolute path of the directory. */
  path: string;
  /** `BACKUP_INVALID` (no, unreadable or malformed metadata, unsafe manifest), `IO`, or `INTERNAL` (a bug). */
  code: string;
  /** What is wrong, and what to do. */
  reason: string;
}

/** What {@link listBackups} found. */
export interface ListResult {
  backupDir: string;
  /** Usable backups, newest first. */
  backups: BackupInfo[];
  /**
   * Directories that look like backups but cannot be used (no metadata, metadata that is not a
   * regular file, not JSON, a field of the wrong type, an unsafe manifest...), by name. `prune`
   * never removes them; `list --verify` exits 3 when there is one.
   */
  damaged: DamagedBackup[];
}

/** One entry of the backup dir, read: a usable backup or a damaged one. */
export type ScannedBackup = { ok: true; info: BackupInfo; meta: BackupMetadata } | { ok: false; damaged: DamagedBackup };

/** Check a backup's manifest entries (structure only); `BACKUP_INVALID` with the problems when unsafe. */
export function assertSoundManifest(name: string, path: string, meta: BackupMetadata): void {
  if (!Array.isArray(meta.manifest)) return;
  const problems = checkManifest(meta.manifest);
  if (problems.length === 0) return;
  const first = problems[0]!;
  throw new BackupError(
    'BACKUP_INVALID',
    `Backup "${name}" has an unsafe or malformed manifest (${problems.length} problem(s), first: ${first.path}: ${first.detail}). Do not restore it; restore from another backup.`,
    { path, problems },
  );
}

/** Read one backup; whatever goes wrong, it becomes a {@link DamagedBackup}, never an exception. */
async function scanOne(name: string, path: string, light: boolean, head: boolean): Promise<ScannedBackup> {
  try {
    if (head) {
      // The head of the metadata (every field but the manifest): see head.ts.
      const h = await readMetadataHead(path);
      if (h) return { ok: true, info: await infoFromMetadata(name, path, h, { light }), meta: h };
    }
    const meta = await readMetadata(path, name);
    assertSoundManifest(name, path, meta);
    return { ok: true, info: await infoFromMetadata(name, path, meta, { light }), meta };
  } catch (err) {
    if (BackupError.is(err)) return { ok: false, damaged: { name, path, code: err.code, reason: err.message } };
    const what = err instanceof Error ? err.message : String(err);
    return { ok: false, damaged: { name, path, code: 'INTERNAL', reason: `Backup "${name}" could not be read (unexpected error: ${what}).` } };
  }
}

/**
 * Read every backup of a backup dir, each on its own: one that cannot be read is reported, never
 * thrown. `light` skips what only `list` needs (walking Python backups, reading their summary).
 * `head` reads only the head of each metadata file when it can (the manifest is then `[]`, not
 * read nor checked: see `head.ts`); without it every manifest is read and checked.
 *
 * @throws {BackupError} `IO` when the backup dir itself cannot be read.
 */
export async function scanBackupDir(backupDirOpt: string | undefined, opts: { light?: boolean; head?: boolean } = {}): Promise<{ backupDir: string; scanned: ScannedBackup[] }> {
  const backupDir = resolveBackupDir(backupDirOpt);
  let names: string[];
  try {
    names = await readdir(backupDir);
  } catch (err) {
    if (errCode(err) === 'ENOENT') return { backupDir, scanned: [] };
    throw new BackupError('IO', `Cannot read the backup dir ${backupDir}: ${(err as Error).message}. Check the path and its permissions.`, {
      path: backupDir,
      cause: err,
    });
  }
  const scanned: ScannedBackup[] = [];
  for (const name of names.sort()) {
    if (name.startsWith('.')) continue; // temporary directories of running or killed operations
    const path = join(backupDir, name);
    const st = await lstat(path).catch(() => undefined);
    if (!st?.isDirectory()) continue; // files, symlinks: not backups (a link is never followed)
    scanned.push(await scanOne(name, path, opts.light ?? false, opts.head ?? false));
  }
  return { backupDir, scanned };
}

/** Newest first; equal times by name, descending. */
export const newestFirst = (a: { createdAt: number; name: string }, b: { createdAt: number; name: string }): number =>
  b.createdAt - a.createdAt || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0);

/**
 * List the backups of a backup dir, newest first. Temporary directories (names starting with
 * `.`: unfinished backups, restores in progress) are never listed. A directory whose metadata
 * cannot be used is reported in `damaged` with the reason, and never stops the listing of the
 * others. A missing backup dir lists nothing.
 *
 * @throws {BackupError} `IO` when the backup dir cannot be read.
 * @example
 * ```ts
 * const { backups, damaged } = await listBackups({ backupDir: '/srv/backups' });
 * for (const b of backups) console.log(b.name, new Date(b.createdAt * 1000), b.checksums);
 * for (const d of damaged) console.warn(d.name, d.reason);
 * ```
 */
export async function listBackups(opts: ListOptions = {}): Promise<ListResult> {
  // The head of each metadata file only: a 20,000-file manifest is never parsed to be listed.
  const { backupDir, scanned } = await scanBackupDir(opts.backupDir, { head: true });
  const result: ListResult = { backupDir, backups: [], damaged: [] };
  for (const s of scanned) {
    if (s.ok) result.backups.push(s.info);
    else result.damaged.push(s.damaged);
  }
  result.backups.sort(newestFirst);
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
 * @throws {BackupError} `INVALID_NAME`, `BACKUP_NOT_FOUND`, `BACKUP_INVALID` (unusable metadata, or
 *   an unsafe or malformed manifest: `problems` lists them), `IO`.
 * @example
 * ```ts
 * const d = await showBackup({ name: 'dawn_backup_20261125_101500' });
 * console.log(d.summary?.peerCount, d.summary?.agentIds);
 * ```
 */
export async function showBackup(opts: ShowOptions): Promise<BackupDetails> {
  const { path, meta } = await openBackup(opts);
  assertSoundManifest(opts.name, path, meta);
  return detailsOf(await infoFromMetadata(opts.name, path, meta), meta, opts.manifest === true);
}

/** The details `show` prints, from a backup's info and (validated) metadata; the manifest when asked for. */
export function detailsOf(info: BackupInfo, meta: BackupMetadata, manifest: boolean): BackupDetails {
  const details: BackupDetails = {
    ...info,
    dirCount: typeof meta.dir_count === 'number' ? meta.dir_count : null,
    symlinkCount: typeof meta.symlink_count === 'number' ? meta.symlink_count : null,
    durability: typeof meta.durability === 'string' ? meta.durability : null,
  };
  if (manifest && Array.isArray(meta.manifest)) details.manifest = meta.manifest.map(knownFields);
  return details;
}

/** A checked manifest entry with only the fields this package knows (unknown ones are never printed). */
function knownFields(e: ManifestEntry): ManifestEntry {
  // checkManifest accepts a mode as an octal string or a number: always show the string.
  const mode = (m: unknown) => (typeof m === 'string' ? m : modeToString(parseMode(m) ?? 0));
  // A name that is not UTF-8 keeps its exact bytes (checked by checkManifest).
  const bytes = typeof e.path_b64 === 'string' ? { path_b64: e.path_b64 } : {};
  if (e.type === 'dir') return { path: e.path, ...bytes, type: 'dir', mode: mode(e.mode) };
  if (e.type === 'symlink') {
    return { path: e.path, ...bytes, type: 'symlink', target: e.target, ...(typeof e.target_b64 === 'string' ? { target_b64: e.target_b64 } : {}) };
  }
  const f: ManifestEntry = { path: e.path, ...bytes, type: 'file', size: e.size, mode: mode(e.mode), sha256: e.sha256 };
  if (typeof e.mtime === 'number' && Number.isFinite(e.mtime)) f.mtime = e.mtime;
  return f;
}
