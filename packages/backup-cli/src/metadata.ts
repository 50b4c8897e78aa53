import { constants as bufferConstants } from 'node:buffer';
import { constants, readFileSync, type Stats } from 'node:fs';
import { lstat, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { BackupError, ioError, type VerifyProblem } from './errors.js';
import { errCode, parseMode } from './fsutil.js';
import { MANIFEST_FILE, METADATA_FILE, parseIsoLocal } from './paths.js';
import { createHash } from 'node:crypto';
import { entryRel, entryTarget, ownFiles, parentRel, relKey, relText, storedRel, type NameEscape, type Rel } from './relpath.js';

/**
 * Version of the metadata format this package writes (Python backups have none: 0). `1`: the
 * manifest inline in `.backup_metadata.json` (`manifest`); `2`: the manifest in its own file
 * `.backup_manifest.json`, named by `manifest_file` (both are read).
 */
export const FORMAT_VERSION = 2;

/** The `format` marker of a `.backup_manifest.json`. */
export const MANIFEST_FORMAT = 'dawn-backup-manifest';

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
 * Where a backup's per-file manifest is (`format_version` 2): the file {@link MANIFEST_FILE} beside
 * the metadata, which holds the entries only (nothing about the backup itself), so two backups of
 * an unchanged tree have byte-identical manifests and share one file (a hard link).
 */
export interface ManifestFileRef {
  /** The file's name in the backup: always `.backup_manifest.json`. */
  name: string;
  /** sha256 of the whole file (hex). */
  sha256: string;
  /** Its size in bytes. */
  size: number;
  /** How many entries it holds. */
  entries: number;
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
  /** The host's machine id, hashed for this tool (see repo/machine.ts): tells hosts of one name apart. */
  machine_id?: string;
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
  /** Format 2: where the manifest is (see {@link ManifestFileRef}); `manifest` is then read from it. */
  manifest_file?: ManifestFileRef;
  /**
   * The per-file manifest. In memory, as {@link readMetadata} returns it, always the whole
   * manifest (read from `manifest_file` when the backup has one); on disk, inline only in
   * format 1 backups.
   */
  manifest?: ManifestEntry[];
  [key: string]: unknown;
}

/** Largest `.backup_metadata.json` read (bytes): the longest string a JS engine can hold, at most 512 MiB. */
export const MAX_METADATA_BYTES = Math.min(bufferConstants.MAX_STRING_LENGTH, 512 * 1024 * 1024);

/** Longest accepted text of a short metadata field (`format`, `tool`, `hostname`...). */
const MAX_SHORT_TEXT = 1024;
/** Longest accepted path or pattern in the metadata. */
const MAX_PATH_TEXT = 65_536;
/** Valid `Date` range, in Unix seconds. */
const MAX_SECONDS = 8.64e12;

const invalid = (name: string, file: string, why: string, cause?: unknown) =>
  new BackupError('BACKUP_INVALID', `Backup "${name}": ${file} ${why}. The backup was left untouched; restore from another backup, or fix or remove it by hand.`, {
    path: file,
    ...(cause !== undefined ? { cause } : {}),
  });

function kindOf(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symlink';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * Read a file that must be a regular file, without ever blocking or following a link:
 * `lstat` first, then `open(O_RDONLY | O_NONBLOCK | O_NOFOLLOW)` and `fstat` of what was
 * opened (a FIFO or device swapped in between is refused, never read). Returns `undefined`
 * when the file does not exist; throws `BACKUP_INVALID` for anything that is not a regular file
 * or is larger than `maxBytes`, `IO` when it cannot be read.
 */
export async function readRegularFile(file: string, what: { name: string; maxBytes: number }): Promise<Buffer | undefined> {
  let st: Stats;
  try {
    st = await lstat(file);
  } catch (err) {
    if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') return undefined;
    throw ioError(file, 'read', err);
  }
  if (!st.isFile()) throw invalid(what.name, file, `is ${kindOf(st)}, not a regular file (it is never opened)`);
  let fh: FileHandle;
  try {
    fh = await open(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOFOLLOW ?? 0));
  } catch (err) {
    if (errCode(err) === 'ENOENT') return undefined;
    if (errCode(err) === 'ELOOP') throw invalid(what.name, file, 'is a symlink, not a regular file (it is never followed)', err);
    throw ioError(file, 'read', err);
  }
  try {
    const fst = await fh.stat();
    if (!fst.isFile()) throw invalid(what.name, file, `is ${kindOf(fst)}, not a regular file`);
    const tooBig = () => invalid(what.name, file, `is larger than ${what.maxBytes} bytes, too large to be metadata`);
    if (fst.size > what.maxBytes) throw tooBig();
    // Read to the end (the file may have changed size since fstat), never beyond the limit.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const want = Math.min(Math.max(fst.size - total, 64 * 1024), what.maxBytes + 1 - total);
      if (want <= 0) throw tooBig();
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await fh.read(buf, 0, want, null);
      if (bytesRead === 0) break;
      chunks.push(bytesRead === want ? buf : buf.subarray(0, bytesRead));
      total += bytesRead;
    }
    return Buffer.concat(chunks, total);
  } catch (err) {
    if (BackupError.is(err)) throw err;
    throw ioError(file, 'read', err);
  } finally {
    await fh.close().catch(() => {});
  }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A value in a message: short, and never recursive (a value nested 100,000 deep is "a list"). */
const describe = (v: unknown): string => {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return v.length > 80 ? `${JSON.stringify(v.slice(0, 60))}… (${v.length} characters)` : JSON.stringify(v);
  if (typeof v === 'number') return String(v);
  return typeof v === 'object' ? 'an object' : typeof v;
};

/**
 * Check every field this package reads from a backup's metadata, one by one (the one place
 * where metadata is validated). Returns the problems found, as `field: what is wrong` texts;
 * empty when the metadata can be used. Unknown fields are never looked at. Manifest entries
 * are checked separately by {@link checkManifest}.
 */
export function metadataProblems(raw: unknown): string[] {
  if (!isPlainObject(raw)) return [`the document is ${describe(raw)}, not a JSON object`];
  const problems: string[] = [];
  const text = (field: string, max: number, opts: { required?: boolean; path?: boolean } = {}) => {
    const v = raw[field];
    if (v === undefined) {
      if (opts.required) problems.push(`${field}: missing`);
      return;
    }
    if (typeof v !== 'string') problems.push(`${field}: expected a string, got ${describe(v)}`);
    else if (v.length > max) problems.push(`${field}: longer than ${max} characters`);
    else if (opts.path && (v === '' || v.includes('\0'))) problems.push(`${field}: not a usable path`);
  };
  const count = (field: string) => {
    const v = raw[field];
    if (v !== undefined && !(typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)) problems.push(`${field}: expected a whole number ≥ 0, got ${describe(v)}`);
  };
  const textList = (where: string, v: unknown) => {
    if (!Array.isArray(v)) return problems.push(`${where}: expected a list of strings, got ${describe(v)}`);
    const bad = v.findIndex((x) => typeof x !== 'string' || x.length > MAX_PATH_TEXT);
    if (bad >= 0) problems.push(`${where}[${bad}]: expected a string, got ${describe(v[bad])}`);
    return undefined;
  };

  text('backup_name', MAX_PATH_TEXT, { required: true });
  text('timestamp', MAX_SHORT_TEXT, { required: true });
  text('source_dir', MAX_PATH_TEXT, { required: true, path: true });
  text('backup_dir', MAX_PATH_TEXT, { required: true, path: true });
  for (const f of ['format', 'tool', 'tool_version', 'hostname', 'machine_id', 'durability', 'root_mode']) text(f, MAX_SHORT_TEXT);
  if (typeof raw.root_mode === 'string' && parseMode(raw.root_mode) === undefined) problems.push(`root_mode: not an octal mode, got ${describe(raw.root_mode)}`);
  const fv = raw.format_version;
  if (fv !== undefined) {
    if (!(typeof fv === 'number' && Number.isSafeInteger(fv) && fv >= 0)) problems.push(`format_version: expected a whole number ≥ 0, got ${describe(fv)}`);
    else if (fv > FORMAT_VERSION) problems.push(`format_version: ${fv} is newer than this tool reads (${FORMAT_VERSION}); upgrade @dawn/backup-cli`);
  }
  const ca = raw.created_at;
  if (ca !== undefined && !(typeof ca === 'number' && Number.isFinite(ca) && Math.abs(ca) <= MAX_SECONDS)) {
    problems.push(`created_at: expected Unix seconds, got ${describe(ca)}`);
  }
  if (
    typeof raw.timestamp === 'string' &&
    raw.timestamp.length <= MAX_SHORT_TEXT &&
    typeof ca !== 'number' &&
    parseIsoLocal(raw.timestamp) === undefined
  ) {
    problems.push(`timestamp: ${describe(raw.timestamp)} is not an ISO time, and there is no created_at`);
  }
  for (const f of ['file_count', 'dir_count', 'symlink_count', 'total_bytes']) count(f);
  if (raw.excludes !== undefined) textList('excludes', raw.excludes);
  const s = raw.summary;
  if (s !== undefined) {
    if (!isPlainObject(s)) problems.push(`summary: expected an object, got ${describe(s)}`);
    else {
      const pc = s.peer_count;
      if (pc !== undefined && pc !== null && !(typeof pc === 'number' && Number.isSafeInteger(pc) && pc >= 0)) {
        problems.push(`summary.peer_count: expected a whole number ≥ 0 or null, got ${describe(pc)}`);
      }
      if (s.agent_ids !== undefined && s.agent_ids !== null) textList('summary.agent_ids', s.agent_ids);
      if (s.notes !== undefined) textList('summary.notes', s.notes);
    }
  }
  if (raw.manifest !== undefined && !Array.isArray(raw.manifest)) problems.push(`manifest: expected a list, got ${describe(raw.manifest)}`);
  const mf = raw.manifest_file;
  if (mf !== undefined) {
    if (!isPlainObject(mf)) problems.push(`manifest_file: expected an object, got ${describe(mf)}`);
    else {
      if (mf.name !== MANIFEST_FILE) problems.push(`manifest_file.name: expected "${MANIFEST_FILE}", got ${describe(mf.name)}`);
      if (typeof mf.sha256 !== 'string' || !SHA256.test(mf.sha256)) problems.push(`manifest_file.sha256: expected a sha256 (64 hex digits), got ${describe(mf.sha256)}`);
      for (const f of ['size', 'entries']) {
        const v = mf[f];
        if (!(typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)) problems.push(`manifest_file.${f}: expected a whole number ≥ 0, got ${describe(v)}`);
      }
    }
  }
  if (mf !== undefined && raw.manifest !== undefined) problems.push('manifest: present inline, though manifest_file names the manifest file (one or the other)');
  if (mf !== undefined && raw.name_escape !== 2) problems.push(`name_escape: expected 2 in a backup with a manifest_file, got ${describe(raw.name_escape)}`);
  if (raw.format === FORMAT_NAME && !Array.isArray(raw.manifest) && mf === undefined) problems.push(`manifest: missing, though format is "${FORMAT_NAME}" (its checksums are gone)`);
  return problems;
}

/**
 * Read and validate a backup's metadata (see {@link metadataProblems}). Never blocks and never
 * follows a link: the file must be a regular file ({@link readRegularFile}). The returned
 * `manifest` is the whole manifest, read from the manifest file of a format 2 backup (checked
 * against its recorded sha256), unless `manifest: false` (then `manifest` is absent for format 2).
 * `head: true` (for `list`): of a format 1 file (manifest inline) only the head is parsed, `manifest` being `[]` (see `metadataHeadOf`).
 *
 * @throws {BackupError} `BACKUP_INVALID` (missing, not a regular file, too large, not JSON, a
 *   field of the wrong type...: the message names every problem), `IO`.
 */
export async function readMetadata(backupPath: string, name: string, opts: { manifest?: boolean; head?: boolean } = {}): Promise<BackupMetadata> {
  const file = join(backupPath, METADATA_FILE);
  const bytes = await readRegularFile(file, { name, maxBytes: MAX_METADATA_BYTES });
  if (bytes === undefined) {
    throw new BackupError(
      'BACKUP_INVALID',
      `Backup "${name}" has no ${METADATA_FILE} (${file}): it is incomplete or not a backup. Remove it or restore from another backup.`,
      { path: file },
    );
  }
  if (opts.head) {
    const head = metadataHeadOf(bytes);
    if (head) return head;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw invalid(name, file, `is not valid JSON (${err instanceof Error ? err.message : String(err)})`, err);
  }
  const problems = metadataProblems(raw);
  if (problems.length > 0) {
    const shown = problems.slice(0, 5).join('; ') + (problems.length > 5 ? `; and ${problems.length - 5} more` : '');
    throw invalid(name, file, `is malformed: ${shown}`);
  }
  const meta = raw as BackupMetadata;
  if (meta.manifest_file !== undefined && opts.manifest !== false) {
    const got = await loadManifestFile(backupPath, meta.manifest_file);
    if (!got.ok) {
      throw new BackupError(
        'BACKUP_INVALID',
        `Backup "${name}": its manifest ${got.problem.path} ${got.problem.detail}. The backup was left untouched; run \`dawn-backup verify ${name}\`, and restore from another backup.`,
        { path: join(backupPath, MANIFEST_FILE), problems: [got.problem] },
      );
    }
    meta.manifest = got.manifest;
  }
  return meta;
}

const HEAD_MARKER = Buffer.from('\n  "manifest": [');

/**
 * The **head** of a format 1 `.backup_metadata.json` (manifest inline): every field before
 * `manifest`, without parsing the per-file manifest, with `manifest: []` standing in for it;
 * `undefined` when it cannot be used (then the whole file is parsed). Format 1 files were
 * written with `manifest` last (2-space indentation), so the head ends at the one line
 * `\n  "manifest": [` (a newline inside a JSON string is always escaped). Used only when the
 * file ends as such a manifest ends (`]\n}\n`: a truncated file is parsed whole, and reported),
 * the head parses and passes the same field checks as the whole file, and its `format` is
 * `dawn-backup`. What the head cannot see: damage inside the manifest itself (`show`, `verify`,
 * `restore` and `prune` read the whole file; only `list` uses the head).
 */
function metadataHeadOf(bytes: Buffer): BackupMetadata | undefined {
  const at = bytes.indexOf(HEAD_MARKER);
  if (at < 0 || !bytes.subarray(bytes.length - 4).equals(Buffer.from(']\n}\n'))) return undefined;
  let text = bytes.subarray(0, at).toString('utf8').trimEnd();
  if (!text.endsWith(',')) return undefined;
  text = `${text.slice(0, -1)}\n}`;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isPlainObject(raw) || 'manifest' in raw || 'manifest_file' in raw) return undefined;
  const meta = { ...raw, manifest: [] } as unknown as BackupMetadata;
  if (meta.format !== FORMAT_NAME || metadataProblems(meta).length > 0) return undefined;
  return meta;
}

/** Whether a backup has a sha256 manifest (inline, or in its manifest file); Python backups have none. */
export const hasManifest = (meta: BackupMetadata): boolean => Array.isArray(meta.manifest) || meta.manifest_file !== undefined;

/** What {@link loadManifestFile} found: the entries, or what is wrong with the file (a verify problem). */
export type ManifestLoad = { ok: true; manifest: ManifestEntry[] } | { ok: false; problem: VerifyProblem };

/**
 * Read a backup's manifest file and check it against its {@link ManifestFileRef} (size, sha256,
 * entry count). Never follows a link nor blocks (see {@link readRegularFile}). Problems are
 * returned (path {@link MANIFEST_FILE}), never thrown, but for `IO` errors.
 */
export async function loadManifestFile(backupPath: string, ref: ManifestFileRef): Promise<ManifestLoad> {
  const file = join(backupPath, MANIFEST_FILE);
  const bad = (kind: VerifyProblem['kind'], detail: string): ManifestLoad => ({ ok: false, problem: { path: MANIFEST_FILE, kind, detail } });
  let bytes: Buffer | undefined;
  try {
    bytes = await readRegularFile(file, { name: MANIFEST_FILE, maxBytes: MAX_METADATA_BYTES });
  } catch (err) {
    if (BackupError.is(err) && err.code === 'BACKUP_INVALID') return bad('type', `is not a regular file of a sane size (${err.message.split(': ').slice(1).join(': ') || err.message})`);
    throw err;
  }
  if (bytes === undefined) return bad('missing', 'is missing (the per-file checksums are gone)');
  if (bytes.length !== ref.size) return bad('modified', `is ${bytes.length} bytes, the metadata records ${ref.size} (damaged)`);
  if (createHash('sha256').update(bytes).digest('hex') !== ref.sha256) return bad('modified', 'does not match the sha256 the metadata records (damaged)');
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    return bad('modified', 'is not valid JSON');
  }
  if (!isPlainObject(doc) || doc.format !== MANIFEST_FORMAT || !Array.isArray(doc.entries)) return bad('modified', `is not a ${MANIFEST_FORMAT} document`);
  if (doc.entries.length !== ref.entries) return bad('modified', `holds ${doc.entries.length} entries, the metadata records ${ref.entries}`);
  return { ok: true, manifest: doc.entries as ManifestEntry[] };
}

/**
 * The text of a `.backup_manifest.json`: the entries only, one per line, in the order given
 * (deterministic: the same entries always give the same bytes, so an unchanged tree gives a
 * byte-identical file that the next backup hard-links).
 */
export function manifestFileText(manifest: readonly ManifestEntry[]): string {
  const lines = manifest.map((e) => JSON.stringify(e));
  return `{"format":"${MANIFEST_FORMAT}","format_version":1,"entries":[${lines.length > 0 ? `\n${lines.join(',\n')}\n` : ''}]}\n`;
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

/** How a backup stores reserved top-level names (see {@link BackupMetadata.name_escape}, {@link NameEscape}). */
export const nameEscapeOf = (meta: BackupMetadata): number => (meta.name_escape === 1 || meta.name_escape === 2 ? meta.name_escape : 0);

/** Why a manifest path is unsafe, or `undefined` when it is a plain relative path. */
export function unsafePathReason(path: unknown, opts: { nameEscape?: NameEscape } = {}): string | undefined {
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
  if (parts.length === 1) {
    // Only a top-level name can be stored as one of the backup's own files.
    const stored = storedRel(path, opts.nameEscape ?? false);
    if (typeof stored === 'string' && ownFiles(opts.nameEscape ?? false).includes(stored)) return `is the reserved ${stored}`;
  }
  return undefined;
}

/**
 * Check every manifest entry: safe relative path (the bytes of `path_b64` when present), no
 * duplicates, known type with well-formed fields, and every parent recorded as a directory (so
 * nothing is ever written below a symlink). Returns the problems found (empty when the manifest
 * is sound). `checksums: false` accepts file entries without a sha256 (a manifest built from a
 * Python backup's tree); `nameEscape` is the backup's {@link nameEscapeOf}.
 */
export function checkManifest(manifest: readonly unknown[], opts: { checksums?: boolean; nameEscape?: NameEscape } = {}): VerifyProblem[] {
  const needSha = opts.checksums ?? true;
  const nameEscape = opts.nameEscape ?? false;
  const problems: VerifyProblem[] = [];
  const kinds = new Map<string, { rel: Rel; type: string }>();
  for (const raw of manifest) {
    const e = raw as Partial<ManifestEntry> | null;
    const path = typeof e === 'object' && e !== null && typeof e.path === 'string' ? e.path : describe((e as { path?: unknown } | null)?.path);
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
      problems.push({ path, kind: 'unsafe', detail: `unknown entry type ${describe(e.type)}` });
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

/** The counts recorded in a backup's metadata: files (and their bytes), directories, symlinks. */
export function manifestCounts(manifest: readonly ManifestEntry[]): { fileCount: number; totalBytes: number; dirCount: number; symlinkCount: number } {
  const c = { fileCount: 0, totalBytes: 0, dirCount: 0, symlinkCount: 0 };
  for (const m of manifest) {
    if (m.type === 'file') {
      c.fileCount++;
      c.totalBytes += m.size;
    } else if (m.type === 'dir') c.dirCount++;
    else c.symlinkCount++;
  }
  return c;
}
