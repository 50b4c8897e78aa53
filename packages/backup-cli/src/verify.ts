import { lstat, realpath } from 'node:fs/promises';
import { PathChangedError, readlinkConfined } from './confine.js';
import { join } from 'node:path';
import { HashPool } from './hash-pool.js';
import { CopyWorker, DEFAULT_CONCURRENCY, NotRegularFileError } from './copy.js';
import { BackupError, type VerifyProblem } from './errors.js';
import { errCode, modeToString, runPool } from './fsutil.js';
import { checkManifest, loadManifestFile, nameEscapeOf, readMetadata, type BackupMetadata, type ManifestEntry, type ManifestFile } from './metadata.js';
import { canHashByDir, DIR_HASH_MAX, hashByDir, type DirFile } from './hash-dir.js';
import { MANIFEST_FILE, METADATA_FILE, resolveBackupDir, validateBackupName } from './paths.js';
import type { ProgressListener } from './progress.js';
import { entryRel, entryTarget, joinRel, manifestPathFields, manifestTargetFields, relFromBytes, relKey, relText, ownFiles, parentRel, storedRel, unstoredRel, type NameEscape, type Rel } from './relpath.js';
import { walkTree } from './walk.js';
import { annotateShared, annotateSharedFile } from './shared.js';

/** Options of {@link verifyBackup}. */
export interface VerifyOptions {
  /** The backup's name. */
  name: string;
  /** @default `<data root>/../backups` */
  backupDir?: string;
  /** Files hashed at once. @default 32 */
  concurrency?: number;
  onProgress?: ProgressListener;
}

/** The outcome of {@link verifyBackup}. */
export interface VerifyResult {
  name: string;
  path: string;
  /**
   * `ok`: every file matches the manifest; `damaged`: see `problems`;
   * `unverifiable`: the backup has no checksums (made by the Python implementation).
   */
  status: 'ok' | 'damaged' | 'unverifiable';
  /** `status === 'ok'` */
  ok: boolean;
  /** Files hashed. */
  files: number;
  /** Bytes hashed. */
  bytes: number;
  problems: VerifyProblem[];
}

/** Locate a backup and read its metadata. */
export async function openBackup(opts: {
  name: string;
  backupDir?: string | undefined;
  /** Read the manifest file too (format 2). @default true */
  manifest?: boolean;
}): Promise<{ path: string; realPath: string; backupDir: string; meta: BackupMetadata }> {
  validateBackupName(opts.name);
  const backupDir = resolveBackupDir(opts.backupDir);
  const path = join(backupDir, opts.name);
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') {
      throw new BackupError('BACKUP_NOT_FOUND', `No backup named "${opts.name}" in ${backupDir}. Run \`dawn-backup list --backup-dir ${backupDir}\` to see the backups.`, {
        path,
        cause: err,
      });
    }
    throw err;
  }
  if (!st.isDirectory()) {
    throw new BackupError('BACKUP_INVALID', `${path} is not a backup directory. Run \`dawn-backup list\` to see the backups.`, { path });
  }
  const meta = await readMetadata(path, opts.name, { manifest: opts.manifest ?? true });
  // Files are read by paths built on the backup's real path, each open checked (see confine.ts).
  const realPath = await realpath(path).catch(() => path);
  return { path, realPath, backupDir, meta };
}

/** A manifest built from the backup's own tree (Python backups: no checksums, modes from the files). */
export async function manifestFromTree(root: string): Promise<ManifestEntry[]> {
  const walked = await walkTree(root, { exclude: (rel) => rel === METADATA_FILE, confined: true });
  const out: ManifestEntry[] = [];
  for (const e of walked.entries) {
    const p = manifestPathFields(e.rel);
    if (e.kind === 'dir') out.push({ ...p, type: 'dir', mode: modeToString(e.mode ?? 0o755) });
    else if (e.kind === 'symlink') {
      out.push({ ...p, type: 'symlink', ...manifestTargetFields(relFromBytes(readlinkConfined(joinRel(root, e.rel)))) });
    } else {
      const st = await lstat(joinRel(root, e.rel));
      out.push({ ...p, type: 'file', size: st.size, mode: modeToString(st.mode), sha256: '' });
    }
  }
  return out;
}

/** The `path` / `pathB64` of a problem about a path. */
export const problemAt = (rel: Rel): { path: string; pathB64?: string } => (typeof rel === 'string' ? { path: rel } : { path: relText(rel), pathB64: rel.toString('base64') });

/** Where a (checked) manifest entry lies inside the backup's tree. */
export function storedPathOf(root: string, m: ManifestEntry, nameEscape: NameEscape): string | Buffer {
  return joinRel(root, storedRel(entryRel(m)!, nameEscape));
}

/**
 * Compare a backup's tree with its (checked) manifest by names and types only (no hashing):
 * missing, extra, type changed, symlink target changed. Names are compared as bytes;
 * `nameEscape` is the backup's `name_escape` (see {@link nameEscapeOf}).
 */
export async function compareTree(root: string, manifest: readonly ManifestEntry[], nameEscape: NameEscape = false, opts: { own?: readonly string[] } = {}): Promise<VerifyProblem[]> {
  // Confined: a directory of the backup replaced by a symlink is never listed through it.
  // The backup's own files (metadata, manifest) are never source entries; a restored tree (`own: []`) has none.
  const own = opts.own ?? ownFiles(nameEscape);
  const walked = await walkTree(root, { exclude: (rel) => own.includes(rel), confined: true });
  // Keyed by the source path each stored entry stands for.
  const actual = new Map<string, { rel: Rel; kind: string }>();
  for (const e of walked.entries) {
    const rel = unstoredRel(e.rel, nameEscape);
    actual.set(relKey(rel), { rel, kind: e.kind });
  }
  for (const s of walked.skipped) {
    const rel = unstoredRel(s.relB64 !== undefined ? relFromBytes(Buffer.from(s.relB64, 'base64')) : s.rel, nameEscape);
    actual.set(relKey(rel), { rel, kind: s.reason.startsWith('replaced') ? 'replaced' : 'special' });
  }
  const problems: VerifyProblem[] = [];
  const listed = new Set<string>();
  for (const m of manifest) {
    const rel = entryRel(m)!;
    listed.add(relKey(rel));
    const kind = actual.get(relKey(rel))?.kind;
    const at = problemAt(rel);
    if (kind === undefined) problems.push({ ...at, kind: 'missing', detail: `${m.type} is missing from the backup` });
    else if (kind === 'replaced') problems.push({ ...at, kind: 'type', detail: REPLACED });
    else if (kind !== m.type) problems.push({ ...at, kind: 'type', detail: `recorded as ${m.type}, found ${kind === 'special' ? 'a special file' : `a ${kind}`}` });
    else if (m.type === 'symlink') {
      let raw: Buffer | undefined;
      try {
        raw = readlinkConfined(storedPathOf(root, m, nameEscape));
      } catch {
        raw = undefined;
      }
      const recorded = entryTarget(m);
      const same = raw !== undefined && recorded !== undefined && raw.equals(typeof recorded === 'string' ? Buffer.from(recorded, 'utf8') : recorded);
      if (!same) {
        const target = raw === undefined ? undefined : relText(relFromBytes(raw));
        problems.push({ ...at, kind: 'link', detail: `points to ${JSON.stringify(target)}, recorded ${JSON.stringify(m.target)}` });
      }
    }
  }
  for (const [key, { rel, kind }] of actual) {
    if (!listed.has(key)) problems.push({ ...problemAt(rel), kind: 'extra', detail: `${kind === 'special' ? 'special file' : kind} not in the manifest` });
  }
  return problems;
}

/** A directory of the backup was swapped (for a symlink, or moved): nothing was read through it. */
const REPLACED = 'a directory on its path in the backup was replaced (by a symlink, or moved) while it was read: refused to read outside the backup';

/** Compare one hashed file with its manifest entry. */
export function checkFile(m: { path: string; path_b64?: string; size: number; sha256: string }, got: { size: number; sha256: string }): VerifyProblem | undefined {
  const at = m.path_b64 !== undefined ? { path: m.path, pathB64: m.path_b64 } : { path: m.path };
  if (got.size !== m.size) return { ...at, kind: 'modified', detail: `size is ${got.size} bytes, recorded ${m.size}` };
  if (got.sha256 !== m.sha256) return { ...at, kind: 'modified', detail: 'sha256 differs from the manifest' };
  return undefined;
}

/** Turn an error of reading a backup file into a problem. */
export function readProblem(path: string, err: unknown): VerifyProblem {
  if (err instanceof PathChangedError) return { path, kind: 'type', detail: REPLACED };
  if (err instanceof NotRegularFileError || errCode(err) === 'ELOOP') return { path, kind: 'type', detail: 'not a regular file' };
  if (errCode(err) === 'ENOENT') return { path, kind: 'missing', detail: 'file is missing from the backup' };
  return { path, kind: 'unreadable', detail: (err as Error).message };
}

/**
 * Re-hash every file of a backup against its manifest (sha256 and size), and check that no
 * file is missing or extra and that symlinks point where they did. Does not throw for a
 * damaged backup: read `status` / `problems` (the CLI exits 3).
 *
 * @throws {BackupError} `INVALID_NAME`, `BACKUP_NOT_FOUND`, `BACKUP_INVALID` (no or unreadable metadata).
 * @example
 * ```ts
 * const r = await verifyBackup({ name: 'dawn_backup_20261125_101500', backupDir: '/srv/backups' });
 * if (!r.ok) console.error(r.status, r.problems);
 * ```
 */
export async function verifyBackup(opts: VerifyOptions): Promise<VerifyResult> {
  const { path, realPath, meta } = await openBackup({ ...opts, manifest: false });
  const result: VerifyResult = { name: opts.name, path, status: 'ok', ok: true, files: 0, bytes: 0, problems: [] };
  if (meta.manifest_file !== undefined) {
    // The manifest file, checked against the sha256 the metadata records: a missing or damaged
    // one is damage like any other (and names the backups sharing it).
    const got = await loadManifestFile(realPath, meta.manifest_file);
    if (!got.ok) {
      await annotateSharedFile(path, MANIFEST_FILE, got.problem);
      result.status = 'damaged';
      result.ok = false;
      result.problems = [got.problem];
      return result;
    }
    meta.manifest = got.manifest;
  }
  if (!Array.isArray(meta.manifest)) {
    result.status = 'unverifiable';
    result.ok = false;
    return result;
  }
  const nameEscape = nameEscapeOf(meta);
  const unsafe = checkManifest(meta.manifest, { nameEscape });
  if (unsafe.length > 0) {
    result.status = 'damaged';
    result.ok = false;
    result.problems = unsafe;
    return result;
  }
  const manifest = meta.manifest;
  const problems = await compareTree(realPath, manifest, nameEscape);
  const broken = new Set(problems.map((p) => (p.pathB64 !== undefined ? `\0${p.pathB64}` : p.path))); // relKey
  const files = manifest.filter((m): m is ManifestFile => m.type === 'file' && !broken.has(relKey(entryRel(m)!)));
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? DEFAULT_CONCURRENCY));
  const workers: CopyWorker[] = [];
  opts.onProgress?.({ phase: 'verify', files: 0, totalFiles: files.length, bytes: 0 });
  // Small files directory by directory, synchronously (hash-dir.ts); the others through the pool.
  const byDir = canHashByDir() ? files.filter((m) => m.size <= DIR_HASH_MAX) : [];
  const rest = byDir.length > 0 ? files.filter((m) => m.size > DIR_HASH_MAX) : files;
  await hashByDir(groupByDir(realPath, byDir, nameEscape), (m, r) => {
    if (r.ok) {
      const p = checkFile(m, r);
      if (p) problems.push(p);
      result.bytes += r.size;
    } else problems.push(readProblem(m.path, r.error));
    result.files++;
    opts.onProgress?.({ phase: 'verify', files: result.files, totalFiles: files.length, bytes: result.bytes });
  });
  if (rest.length === 0) return finishVerify(path, manifest, nameEscape, problems, result);
  const pool = new HashPool();
  try {
    await runPool(rest, concurrency, async (m, lane) => {
      const worker = (workers[lane] ??= new CopyWorker(false, pool));
      try {
        const got = await worker.copy({ src: storedPathOf(realPath, m, nameEscape), expectedSize: m.size, confined: true });
        const p = checkFile(m, got);
        if (p) problems.push(p);
        result.bytes += got.size;
      } catch (err) {
        problems.push(readProblem(m.path, err));
      }
      result.files++;
      opts.onProgress?.({ phase: 'verify', files: result.files, totalFiles: files.length, bytes: result.bytes });
      await worker.maybeYield();
    });
  } finally {
    await pool.close();
  }
  return finishVerify(path, manifest, nameEscape, problems, result);
}

async function finishVerify(path: string, manifest: readonly ManifestEntry[], nameEscape: NameEscape, problems: VerifyProblem[], result: VerifyResult): Promise<VerifyResult> {
  problems.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  await annotateShared(path, manifest, nameEscape, problems); // incremental backups: damage shared by hard links
  result.problems = problems;
  if (problems.length > 0) {
    result.status = 'damaged';
    result.ok = false;
  }
  return result;
}

/** Files grouped by the directory of the backup they are stored in (for {@link hashByDir}). */
function groupByDir(root: string, files: readonly ManifestFile[], nameEscape: NameEscape): { dir: string | Buffer; files: DirFile<ManifestFile>[] }[] {
  const groups = new Map<string, { dir: string | Buffer; files: DirFile<ManifestFile>[] }>();
  let last: { key: string; g: { dir: string | Buffer; files: DirFile<ManifestFile>[] } } | undefined;
  for (const m of files) {
    const stored = storedRel(entryRel(m)!, nameEscape);
    let key: string;
    let name: string | Buffer;
    if (typeof stored === 'string') {
      const i = stored.lastIndexOf('/');
      key = i < 0 ? '' : stored.slice(0, i);
      name = stored.slice(i + 1);
    } else {
      const parent = parentRel(stored);
      key = parent === undefined ? '' : relKey(parent);
      name = relFromBytes(stored.subarray(stored.lastIndexOf(0x2f) + 1));
    }
    // The manifest is sorted (parents first): files of one directory mostly come together.
    let g = last?.key === key ? last.g : groups.get(key);
    if (!g) {
      const parent = parentRel(stored);
      groups.set(key, (g = { dir: parent === undefined ? root : joinRel(root, parent), files: [] }));
    }
    last = { key, g };
    g.files.push({ name, item: m });
  }
  return [...groups.values()];
}
