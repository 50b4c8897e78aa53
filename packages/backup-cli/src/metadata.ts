import { AtomicJsonError, readJson } from '@dawn/atomic-json';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BackupError, type VerifyProblem } from './errors.js';
import { parseMode } from './fsutil.js';
import { METADATA_FILE, parseIsoLocal } from './paths.js';
import { entryRel, entryTarget, parentRel, relKey, relText, storedRel, type Rel } from './relpath.js';

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

/**
 * Fields of every manifest entry. `path` is relative to the backup root, `/`-separated, as
 * readable text. Names are bytes: when the path is not valid UTF-8, `path` shows the invalid
 * bytes as U+FFFD and `path_b64` holds the exact bytes (base64); restore and verify use those.
 */
export interface ManifestPath {
  path: string;
  /** Base64 of the exact path bytes; present only when they are not valid UTF-8. */
  path_b64?: string;
}

/** A regular file in the manifest. */
export interface ManifestFile extends ManifestPath {
  type: 'file';
  size: number;
  /** Octal permission bits, e.g. `"0644"`. */
  mode: string;
  sha256: string;
  /** Modification time, Unix seconds. */
  mtime?: number;
}
/** A directory in the manifest (recorded so empty directories and their modes round-trip). */
export interface ManifestDir extends ManifestPath {
  type: 'dir';
  mode: string;
}
/** A symbolic link in the manifest: restored as a link with the same target, never followed. */
export interface ManifestSymlink extends ManifestPath {
  type: 'symlink';
  target: string;
  /** Base64 of the exact target bytes; present only when they are not valid UTF-8. */
  target_b64?: string;
}
/** One entry of a backup's manifest; `path` is relative to the source root, `/`-separated. */
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
  /**
   * `1`: in the backup's tree, a top-level name `.backup_metadata.json`, `.backup_metadata.json~`,
   * ... of the source is stored with one more `~` (so a source file of that name is backed up
   * and restored, never confused with this file). Absent in older and Python backups: names are
   * stored as they are.
   */
  name_escape?: number;
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

/** Whether a backup stores reserved top-level names escaped (see {@link BackupMetadata.name_escape}). */
export const nameEscapeOf = (meta: BackupMetadata): boolean => meta.name_escape === 1;

/** Why a manifest path is unsafe, or `undefined` when it is a plain relative path. */
export function unsafePathReason(path: unknown, opts: { nameEscape?: boolean } = {}): string | undefined {
  if (Buffer.isBuffer(path)) {
    // Structure only (segments are split at the byte 0x2f): latin1 maps each byte to one char.
    if (path.length === 0) return 'empty';
    return unsafePathReason(path.toString('latin1'), opts);
  }
  if (typeof path !== 'string' || path === '') return 'empty or not a string';
  if (path.includes('\0')) return 'contains a NUL character';
  if (path.startsWith('/')) return 'is absolute';
  // On POSIX `\\` and `:` are ordinary name characters (`\\x`, `C:notes` are valid names a backup holds).
  if (process.platform === 'win32' && (path.includes('\\') || path.includes(':'))) return 'contains \\ or :';
  const parts = path.split('/');
  for (const part of parts) {
    if (part === '') return 'has an empty segment (// or a trailing /)';
    if (part === '.') return 'has a "." segment';
    if (part === '..') return 'has a ".." segment (would leave the target)';
  }
  if (storedRel(path, opts.nameEscape ?? false) === METADATA_FILE) return `is the reserved ${METADATA_FILE}`;
  return undefined;
}

/**
 * Check every manifest entry: safe relative path (the bytes of `path_b64` when present), no
 * duplicates, known type with well-formed fields, and every parent recorded as a directory (so
 * nothing is ever written below a symlink). Returns the problems found (empty when the manifest
 * is sound). `checksums: false` accepts file entries without a sha256 (a manifest built from a
 * Python backup's tree); `nameEscape` is the backup's {@link nameEscapeOf}.
 */
export function checkManifest(manifest: readonly unknown[], opts: { checksums?: boolean; nameEscape?: boolean } = {}): VerifyProblem[] {
  const needSha = opts.checksums ?? true;
  const nameEscape = opts.nameEscape ?? false;
  const problems: VerifyProblem[] = [];
  const kinds = new Map<string, { rel: Rel; type: string }>();
  for (const raw of manifest) {
    const e = raw as Partial<ManifestEntry> | null;
    const path = typeof e === 'object' && e !== null && typeof e.path === 'string' ? e.path : String((e as { path?: unknown } | null)?.path);
    if (typeof e !== 'object' || e === null) {
      problems.push({ path, kind: 'unsafe', detail: 'manifest entry is not an object' });
      continue;
    }
    if (typeof e.path !== 'string') {
      problems.push({ path, kind: 'unsafe', detail: 'manifest path is not a string' });
      continue;
    }
    const rel = entryRel(e as ManifestPath);
    if (rel === undefined) {
      problems.push({ path, kind: 'unsafe', detail: 'manifest entry has a malformed path_b64' });
      continue;
    }
    const why = unsafePathReason(rel, { nameEscape });
    if (why) {
      problems.push({ path, kind: 'unsafe', detail: `manifest path ${JSON.stringify(relText(rel))} ${why}` });
      continue;
    }
    const key = relKey(rel);
    if (kinds.has(key)) {
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
      const l = e as Partial<ManifestSymlink>;
      const t = typeof l.target === 'string' ? entryTarget(l as ManifestSymlink) : undefined;
      if (t === undefined || t.length === 0 || (typeof t === 'string' ? t.includes('\0') : t.includes(0))) {
        problems.push({ path, kind: 'unsafe', detail: 'symlink entry without a valid target' });
      }
    } else {
      problems.push({ path, kind: 'unsafe', detail: `unknown entry type ${JSON.stringify(e.type)}` });
      continue;
    }
    kinds.set(key, { rel, type: e.type });
  }
  for (const { rel } of kinds.values()) {
    const parent = parentRel(rel);
    if (parent === undefined) continue;
    const parentKind = kinds.get(relKey(parent))?.type;
    if (parentKind !== 'dir') {
      const p = relText(parent);
      problems.push({
        path: relText(rel),
        kind: 'unsafe',
        detail:
          parentKind === 'symlink'
            ? `lies below the symlink ${p} (writing it would follow the link)`
            : parentKind === undefined
              ? `its directory ${p} is not in the manifest`
              : `its parent ${p} is not a directory`,
      });
    }
  }
  return problems;
}
