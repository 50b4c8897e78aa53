import { AtomicJsonError, readJson } from '@dawn/atomic-json';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BackupError, type VerifyProblem } from './errors.js';
import { parseMode } from './fsutil.js';
import { METADATA_FILE, parseIsoLocal } from './paths.js';

/** Version of the metadata format this package writes (Python backups have none: 0). */
export const FORMAT_VERSION = 1;

/** The `format` marker of metadata written by this package. */
export const FORMAT_NAME = 'dawn-backup';

/** This package's version, as recorded in each backup. */
export const TOOL_VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
})();

/** A regular file in the manifest. */
export interface ManifestFile {
  path: string;
  type: 'file';
  size: number;
  /** Octal permission bits, e.g. `"0644"`. */
  mode: string;
  sha256: string;
  /** Modification time, Unix seconds. */
  mtime?: number;
}
/** A directory in the manifest (recorded so empty directories and their modes round-trip). */
export interface ManifestDir {
  path: string;
  type: 'dir';
  mode: string;
}
/** A symbolic link in the manifest: restored as a link with the same target, never followed. */
export interface ManifestSymlink {
  path: string;
  type: 'symlink';
  target: string;
}
/** One entry of a backup's manifest; `path` is relative to the backup root, `/`-separated. */
export type ManifestEntry = ManifestFile | ManifestDir | ManifestSymlink;

/** The summary of the data root recorded at backup time (read through the other Dawn packages). */
export interface SummaryRecord {
  peer_count: number | null;
  agent_ids: string[] | null;
  /** Why a field is null, or how it was read. */
  notes: string[];
}

/**
 * The contents of `.backup_metadata.json`. The first four fields are the Python
 * implementation's; the rest are added by this package (absent in Python backups).
 * Unknown fields are kept.
 */
export interface BackupMetadata {
  backup_name: string;
  /** Local time, ISO without zone, as Python's `datetime.now().isoformat()`. */
  timestamp: string;
  source_dir: string;
  /** Absolute path of this backup when it was made. */
  backup_dir: string;
  format?: string;
  format_version?: number;
  tool?: string;
  tool_version?: string;
  hostname?: string;
  /** Unix seconds (float) when the backup started. */
  created_at?: number;
  excludes?: string[];
  file_count?: number;
  dir_count?: number;
  symlink_count?: number;
  total_bytes?: number;
  /** Permission bits of the source directory itself. */
  root_mode?: string;
  /** How files were made durable before the rename: `"syncfs"`, `"fsync"` or `"none"`. */
  durability?: string;
  summary?: SummaryRecord;
  manifest?: ManifestEntry[];
  [key: string]: unknown;
}

/** Read a backup's metadata. */
export async function readMetadata(backupPath: string, name: string): Promise<BackupMetadata> {
  const file = join(backupPath, METADATA_FILE);
  let raw: unknown;
  try {
    raw = await readJson(file);
  } catch (err) {
    if (AtomicJsonError.is(err) && err.code === 'NOT_FOUND') {
      throw new BackupError(
        'BACKUP_INVALID',
        `Backup "${name}" has no ${METADATA_FILE} (${file}): it is incomplete or not a backup. Remove it or restore from another backup.`,
        { path: file, cause: err },
      );
    }
    if (AtomicJsonError.is(err) && err.code === 'PARSE') {
      throw new BackupError('BACKUP_INVALID', `Backup "${name}" has a damaged ${METADATA_FILE}: ${err.message}`, { path: file, cause: err });
    }
    throw new BackupError('IO', `Cannot read ${file}: ${(err as Error).message}`, { path: file, cause: err });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new BackupError('BACKUP_INVALID', `Backup "${name}": ${file} is not a JSON object. Restore from another backup.`, { path: file });
  }
  const meta = raw as BackupMetadata;
  if (meta.manifest !== undefined && !Array.isArray(meta.manifest)) {
    throw new BackupError('BACKUP_INVALID', `Backup "${name}": the manifest in ${file} is not a list. Restore from another backup.`, { path: file });
  }
  return meta;
}

/** Unix seconds of a backup: `created_at`, else the parsed `timestamp`, else `fallback`. */
export function createdAtOf(meta: BackupMetadata, fallback: number): number {
  if (typeof meta.created_at === 'number' && Number.isFinite(meta.created_at)) return meta.created_at;
  if (typeof meta.timestamp === 'string') {
    const t = parseIsoLocal(meta.timestamp);
    if (t !== undefined) return t;
  }
  return fallback;
}

const SHA256 = /^[0-9a-f]{64}$/;

/** Why a manifest path is unsafe, or `undefined` when it is a plain relative path. */
export function unsafePathReason(path: unknown): string | undefined {
  if (typeof path !== 'string' || path === '') return 'empty or not a string';
  if (path.includes('\0')) return 'contains a NUL character';
  if (path.startsWith('/') || path.startsWith('\\') || /^[A-Za-z]:/.test(path)) return 'is absolute';
  if (process.platform === 'win32' && (path.includes('\\') || path.includes(':'))) return 'contains \\ or :';
  const parts = path.split('/');
  for (const part of parts) {
    if (part === '') return 'has an empty segment (// or a trailing /)';
    if (part === '.') return 'has a "." segment';
    if (part === '..') return 'has a ".." segment (would leave the target)';
  }
  if (path === METADATA_FILE) return `is the reserved ${METADATA_FILE}`;
  return undefined;
}

/**
 * Check every manifest entry: safe relative path, no duplicates, known type with well-formed
 * fields, and every parent recorded as a directory (so nothing is ever written below a
 * symlink). Returns the problems found (empty when the manifest is sound). `checksums: false`
 * accepts file entries without a sha256 (a manifest built from a Python backup's tree).
 */
export function checkManifest(manifest: readonly unknown[], opts: { checksums?: boolean } = {}): VerifyProblem[] {
  const needSha = opts.checksums ?? true;
  const problems: VerifyProblem[] = [];
  const kinds = new Map<string, string>();
  for (const raw of manifest) {
    const e = raw as Partial<ManifestEntry> | null;
    const path = typeof e === 'object' && e !== null && typeof e.path === 'string' ? e.path : String((e as { path?: unknown } | null)?.path);
    if (typeof e !== 'object' || e === null) {
      problems.push({ path, kind: 'unsafe', detail: 'manifest entry is not an object' });
      continue;
    }
    const why = unsafePathReason(e.path);
    if (why) {
      problems.push({ path, kind: 'unsafe', detail: `manifest path ${JSON.stringify(e.path)} ${why}` });
      continue;
    }
    if (kinds.has(path)) {
      problems.push({ path, kind: 'unsafe', detail: 'listed twice in the manifest' });
      continue;
    }
    if (e.type === 'file') {
      const f = e as Partial<ManifestFile>;
      if (typeof f.size !== 'number' || !Number.isSafeInteger(f.size) || f.size < 0) problems.push({ path, kind: 'unsafe', detail: 'file entry without a valid size' });
      else if (needSha && (typeof f.sha256 !== 'string' || !SHA256.test(f.sha256))) problems.push({ path, kind: 'unsafe', detail: 'file entry without a valid sha256' });
      else if (parseMode(f.mode) === undefined) problems.push({ path, kind: 'unsafe', detail: 'file entry without a valid mode' });
    } else if (e.type === 'dir') {
      if (parseMode((e as Partial<ManifestDir>).mode) === undefined) problems.push({ path, kind: 'unsafe', detail: 'directory entry without a valid mode' });
    } else if (e.type === 'symlink') {
      const t = (e as Partial<ManifestSymlink>).target;
      if (typeof t !== 'string' || t === '' || t.includes('\0')) problems.push({ path, kind: 'unsafe', detail: 'symlink entry without a valid target' });
    } else {
      problems.push({ path, kind: 'unsafe', detail: `unknown entry type ${JSON.stringify(e.type)}` });
      continue;
    }
    kinds.set(path, e.type);
  }
  for (const [path] of kinds) {
    const slash = path.lastIndexOf('/');
    if (slash < 0) continue;
    const parent = path.slice(0, slash);
    const parentKind = kinds.get(parent);
    if (parentKind !== 'dir') {
      problems.push({
        path,
        kind: 'unsafe',
        detail:
          parentKind === 'symlink'
            ? `lies below the symlink ${parent} (writing it would follow the link)`
            : parentKind === undefined
              ? `its directory ${parent} is not in the manifest`
              : `its parent ${parent} is not a directory`,
      });
    }
  }
  return problems;
}
