import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { openedAt } from './confine.js';
import { BackupError } from './errors.js';
import { errCode, modeToString, writeNewFile } from './fsutil.js';
import { FORMAT_NAME, FORMAT_VERSION, manifestCounts, manifestFileText, TOOL_VERSION, type BackupMetadata, type ManifestEntry, type ManifestFileRef } from './metadata.js';
import { isoLocal, MANIFEST_FILE, METADATA_FILE } from './paths.js';
import { NAME_ESCAPE } from './relpath.js';
import { machineIdentity } from './repo/machine.js';

/**
 * The text of a format 1 `.backup_metadata.json` (manifest inline): JSON, 2-space indentation,
 * `manifest` last with one entry per line. `list` reads only what comes before
 * `\n  "manifest": [` (head.ts). Written only for a backup pulled from a repository that was
 * pushed in this format (its names may not be escaped for a separate manifest file).
 */
/**
 * The metadata every backup this tool makes carries (a `backup`, a `pre_restore_*` of a partial
 * restore): the Python fields, format, tool, counts from the manifest, and `extra` (what only
 * that kind of backup has) after them.
 */
export function newBackupMetadata(
  f: {
    name: string;
    started: Date;
    sourceDir: string;
    backupPath: string;
    excludes: string[];
    manifest: ManifestEntry[];
    rootMode: number;
    durability: BackupMetadata['durability'];
    summary: BackupMetadata['summary'];
  },
  extra: Partial<BackupMetadata>,
): BackupMetadata {
  const { fileCount, totalBytes, dirCount, symlinkCount } = manifestCounts(f.manifest);
  const { machine_id } = machineIdentity();
  return {
    backup_name: f.name,
    timestamp: isoLocal(f.started),
    source_dir: f.sourceDir,
    backup_dir: f.backupPath,
    format: FORMAT_NAME,
    format_version: FORMAT_VERSION,
    tool: '@dawn/backup-cli',
    tool_version: TOOL_VERSION,
    hostname: hostname(),
    ...(machine_id !== undefined ? { machine_id } : {}),
    created_at: f.started.getTime() / 1000,
    excludes: f.excludes,
    file_count: fileCount,
    dir_count: dirCount,
    symlink_count: symlinkCount,
    total_bytes: totalBytes,
    root_mode: modeToString(f.rootMode),
    durability: f.durability,
    summary: f.summary,
    name_escape: NAME_ESCAPE,
    ...extra,
    manifest: f.manifest,
  };
}

export function metadataText(meta: BackupMetadata): string {
  const { manifest, ...head } = meta;
  const top = JSON.stringify(head, null, 2).slice(0, -2); // without the closing "\n}"
  const entries = (manifest ?? []).map((e) => `    ${JSON.stringify(e)}`).join(',\n');
  return `${top},\n  "manifest": [${entries === '' ? ']' : `\n${entries}\n  ]`}\n}\n`;
}

/** A previous backup whose manifest file may be shared (hard-linked) when byte-identical. */
export interface ManifestLinkBase {
  /** The previous backup's directory (a real path: no symlink on the way). */
  path: string;
  /** Its metadata's `manifest_file`. */
  ref: ManifestFileRef;
}

/** Options of {@link writeBackupMetadata}. */
export interface WriteMetadataOptions {
  /** Mode of the files written. */
  mode: number;
  /** fsync each file written. */
  fsync: boolean;
  /** Share this backup's manifest file when it is byte-identical to ours. */
  linkBase?: ManifestLinkBase | undefined;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** errno codes of `link` that mean "write a copy instead". */
const NO_LINK = new Set(['EMLINK', 'EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOENT', 'ENOTDIR', 'EACCES']);

/**
 * Link `dst` to the base's manifest file when it holds exactly `text` (read and hashed first:
 * never link to damage), checking that what was linked is the inode that was read. Returns false
 * when a copy must be written instead.
 */
function linkManifest(base: ManifestLinkBase, text: Buffer, dst: string): boolean {
  const src = join(base.path, MANIFEST_FILE);
  let ino: number;
  let dev: number;
  try {
    const fd = fs.openSync(src, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0));
    try {
      if (!openedAt(fd, src)) return false;
      const st = fs.fstatSync(fd);
      if (!st.isFile() || st.size !== text.length) return false;
      const buf = Buffer.allocUnsafe(text.length + 1);
      let off = 0;
      for (;;) {
        const n = fs.readSync(fd, buf, off, buf.length - off, off);
        if (n === 0) break;
        off += n;
        if (off === buf.length) return false; // grew meanwhile
      }
      if (off !== text.length || !buf.subarray(0, off).equals(text)) return false;
      ({ ino, dev } = st);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
  try {
    fs.linkSync(src, dst); // never follows a symlink; fails on anything existing
  } catch (err) {
    if (NO_LINK.has(errCode(err))) return false;
    throw err;
  }
  const lst = fs.lstatSync(dst);
  if (lst.ino !== ino || lst.dev !== dev) {
    fs.unlinkSync(dst);
    return false;
  }
  return true;
}

/**
 * Write a backup's metadata into its fresh, private directory `dir` (one writer for `backup`, the
 * `pre_restore_*` of a partial restore and `pull`). Every file is created exclusively, never
 * through a symlink, never over anything.
 *
 * Format 2 (every backup made now, and pulled backups pushed so): the manifest goes to
 * {@link MANIFEST_FILE} (entries only, deterministic: see `manifestFileText`), and
 * `.backup_metadata.json` names it by `manifest_file` (name, sha256, size, entries), set on
 * `meta` here. When `linkBase`'s manifest file holds the same bytes it is hard-linked, as any
 * unchanged file: nothing in a backup is ever modified in place, so sharing is safe. A
 * `manifest_file` already in `meta` (a pulled backup) must match what is written.
 *
 * Format 1 (`format_version` < 2 and no `manifest_file`: a pulled backup pushed by an older
 * version): the manifest is written inline, as it was.
 *
 * @returns whether the manifest file was hard-linked to `linkBase`'s.
 * @throws {BackupError} `BACKUP_INVALID` when a recorded `manifest_file` does not match the manifest; system errors as they are.
 */
export async function writeBackupMetadata(dir: string, meta: BackupMetadata, opts: WriteMetadataOptions): Promise<{ manifestLinked: boolean }> {
  const legacy = meta.manifest_file === undefined && typeof meta.format_version === 'number' && meta.format_version < 2;
  if (legacy || !Array.isArray(meta.manifest)) {
    await writeNewFile(join(dir, METADATA_FILE), legacy ? metadataText(meta) : `${JSON.stringify(meta, null, 2)}\n`, opts.mode, opts.fsync);
    return { manifestLinked: false };
  }
  const text = Buffer.from(manifestFileText(meta.manifest), 'utf8');
  const ref: ManifestFileRef = { name: MANIFEST_FILE, sha256: sha256(text), size: text.length, entries: meta.manifest.length };
  if (meta.manifest_file !== undefined && (meta.manifest_file.sha256 !== ref.sha256 || meta.manifest_file.size !== ref.size)) {
    throw new BackupError('BACKUP_INVALID', `Backup "${meta.backup_name}": its manifest does not match the sha256 its metadata records; it was not written.`, { path: dir });
  }
  // A source entry named like the manifest file must be stored escaped (`name_escape` 2).
  if (meta.name_escape !== NAME_ESCAPE) throw new Error(`internal: a backup with a manifest file must have name_escape ${NAME_ESCAPE}`);
  meta.manifest_file = ref;
  const dst = join(dir, MANIFEST_FILE);
  const base = opts.linkBase;
  const manifestLinked = base !== undefined && base.ref.sha256 === ref.sha256 && base.ref.size === ref.size && linkManifest(base, text, dst);
  if (!manifestLinked) await writeNewFile(dst, text, opts.mode, opts.fsync);
  const { manifest: _inMemory, ...onDisk } = meta;
  await writeNewFile(join(dir, METADATA_FILE), `${JSON.stringify(onDisk, null, 2)}\n`, opts.mode, opts.fsync);
  return { manifestLinked };
}
