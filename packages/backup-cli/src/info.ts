import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { FORMAT_NAME, createdAtOf, hasManifest, type BackupMetadata, type SummaryRecord } from './metadata.js';
import { METADATA_FILE } from './paths.js';
import { readSummary } from './summary.js';
import { joinRel } from './relpath.js';
import { walkTree } from './walk.js';

/** What a backup's summary says about the data root it was made of. */
export interface BackupSummary {
  /** Number of peers in the registry, `null` when it could not be read (see `notes`). */
  peerCount: number | null;
  /** Agent ids found, sorted; `null` when they could not be read (see `notes`). */
  agentIds: string[] | null;
  /** Why something is `null`, or how it was read. */
  notes: string[];
}

/** One backup as `list` and `show` describe it (camelCase view of its metadata). */
export interface BackupInfo {
  name: string;
  /** Absolute path of the backup directory. */
  path: string;
  /** When the backup started, Unix seconds. */
  createdAt: number;
  /** The metadata's `timestamp` (local ISO time, as Python wrote it). */
  timestamp: string;
  /** The directory that was backed up. */
  sourceDir: string | null;
  /** `dawn-backup` for backups made by this package, `python` for the Python implementation's. */
  origin: 'dawn-backup' | 'python';
  /** True when the backup has a sha256 manifest (`verify` can check it). Python backups have none. */
  checksums: boolean;
  /** Metadata format version (0 for Python backups). */
  formatVersion: number;
  toolVersion: string | null;
  hostname: string | null;
  /** Regular files in the backup. */
  fileCount: number | null;
  /** Bytes of all regular files. */
  totalBytes: number | null;
  /** Exclude patterns used (null for Python backups: unknown). */
  excludes: string[] | null;
  summary: BackupSummary | null;
}

/** camelCase summary from the file's record. */
export function summaryFromRecord(rec: SummaryRecord | undefined): BackupSummary | null {
  if (!rec || typeof rec !== 'object') return null;
  return {
    peerCount: typeof rec.peer_count === 'number' ? rec.peer_count : null,
    agentIds: Array.isArray(rec.agent_ids) ? rec.agent_ids.map(String) : null,
    notes: Array.isArray(rec.notes) ? rec.notes.map(String) : [],
  };
}

/** A backup without a recorded summary (Python): read it from the backup's files now (read-only). */
async function summaryReadNow(path: string): Promise<BackupSummary | null> {
  const rec = await readSummary(path);
  const s = summaryFromRecord(rec);
  s?.notes.push('not recorded in the backup; read from its files');
  return s;
}

/**
 * Build the {@link BackupInfo} of a backup from its (validated) metadata. Python backups carry
 * no counts nor summary: they are walked and read now, unless `light` (then `null`).
 */
export async function infoFromMetadata(name: string, path: string, meta: BackupMetadata, opts: { light?: boolean } = {}): Promise<BackupInfo> {
  const python = meta.format !== FORMAT_NAME || !hasManifest(meta);
  let fallbackTime = 0;
  try {
    fallbackTime = (await lstat(join(path, METADATA_FILE))).mtimeMs / 1000;
  } catch {
    // keep 0
  }
  let fileCount = typeof meta.file_count === 'number' ? meta.file_count : null;
  let totalBytes = typeof meta.total_bytes === 'number' ? meta.total_bytes : null;
  if (python && !opts.light && (fileCount === null || totalBytes === null)) {
    try {
      const walked = await walkTree(path, { exclude: (rel) => rel === METADATA_FILE });
      let files = 0;
      let bytes = 0;
      for (const e of walked.entries) {
        if (e.kind !== 'file') continue;
        files++;
        bytes += (await lstat(joinRel(path, e.rel))).size;
      }
      fileCount = files;
      totalBytes = bytes;
    } catch {
      // leave null
    }
  }
  return {
    name,
    path,
    createdAt: createdAtOf(meta, fallbackTime),
    timestamp: typeof meta.timestamp === 'string' ? meta.timestamp : '',
    sourceDir: typeof meta.source_dir === 'string' ? meta.source_dir : null,
    origin: python ? 'python' : 'dawn-backup',
    checksums: hasManifest(meta),
    formatVersion: typeof meta.format_version === 'number' ? meta.format_version : 0,
    toolVersion: typeof meta.tool_version === 'string' ? meta.tool_version : null,
    hostname: typeof meta.hostname === 'string' ? meta.hostname : null,
    fileCount,
    totalBytes,
    excludes: Array.isArray(meta.excludes) ? meta.excludes.map(String) : null,
    summary: summaryFromRecord(meta.summary) ?? (opts.light ? null : await summaryReadNow(path)),
  };
}
