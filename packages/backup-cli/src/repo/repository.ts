import { chmod, lstat, mkdir, readFile, rename, rmdir, symlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { BackupError, type VerifyProblem } from '../errors.js';
import { isPidAlive, removeTree, runPool, writeNewFile, randomTag, parseMode } from '../fsutil.js';
import { syncFileSystem } from '../durability.js';
import { listBackups } from '../list.js';
import { planPrune, type RetentionPolicy } from '../prune.js';
import { checkManifest, createdAtOf, nameEscapeOf, readMetadata, type BackupMetadata, type ManifestEntry, type ManifestFile } from '../metadata.js';
import { writeBackupMetadata } from '../write-metadata.js';
import { METADATA_FILE, resolveBackupDir, resolveDataRoot, validateBackupName } from '../paths.js';
import { entryTarget } from '../relpath.js';
import { openBackup, storedPathOf, verifyBackup } from '../verify.js';
import { getBuffer, openBackend, type Backend, type BackendOptions } from './backend.js';
import { selectSubset, type DataSubset } from './subset.js';
import { macName, newEncryption, open as openSealed, readPassword, seal, unlock, type EncryptionConfig, type RepoKeys } from './crypto.js';
import {
  CONFIG_KEY,
  decodeObject,
  encodeObject,
  hashOfKey,
  objectKey,
  OBJECTS_PREFIX,
  REPO_FORMAT,
  REPO_FORMAT_VERSION,
  sha256,
  SNAPSHOT_FORMAT,
  snapshotKey,
  SNAPSHOTS_PREFIX,
} from './format.js';

/** Options every repository operation takes. */
export interface RepoOptions extends BackendOptions {
  /** `s3://bucket/prefix`, `file:///path` or a directory. */
  repo: string;
  /** Requests in flight at once. @default 48 */
  concurrency?: number;
  /** The password of an encrypted repository (else `passwordFile`, else `$DAWN_BACKUP_PASSWORD`). */
  password?: string;
  passwordFile?: string | undefined;
  /**
   * Asked for the password when none of the above gives one (the CLI: a prompt on a terminal);
   * `confirm` when it will encrypt a new repository.
   */
  askPassword?: ((req: { url: string; confirm: boolean }) => Promise<string>) | undefined;
}

/** An open repository: its store, and how contents are named and encoded in it. */
interface Repo {
  backend: Backend;
  url: string;
  /** The object name (64 hex) of a content with this sha256. */
  nameOf(sha256hex: string): string;
  encode(plain: Buffer, key: string): Promise<Buffer>;
  decode(stored: Buffer, key: string): Promise<Buffer | undefined>;
}

function plainRepo(backend: Backend): Repo {
  return { backend, url: backend.url, nameOf: (h) => h, encode: (p) => encodeObject(p), decode: (s) => decodeObject(s) };
}

/** Compression first (ciphertext does not compress), then AES-256-GCM bound to the key name. */
function encryptedRepo(backend: Backend, keys: RepoKeys): Repo {
  return {
    backend,
    url: backend.url,
    nameOf: (h) => macName(keys, h),
    encode: async (p, key) => seal(keys, await encodeObject(p), key),
    decode: async (s, key) => {
      const inner = openSealed(keys, s, key);
      return inner === undefined ? undefined : decodeObject(inner);
    },
  };
}

async function passwordOf(opts: RepoOptions, url: string, confirm = false): Promise<string> {
  const ask = opts.askPassword;
  return opts.password ?? (await readPassword({ passwordFile: opts.passwordFile, env: opts.env ?? process.env, url, ask: ask && (() => ask({ url, confirm })) }));
}

/** The snapshot document of one pushed backup (`snapshots/<name>.json`). */
export interface SnapshotDoc {
  format: typeof SNAPSHOT_FORMAT;
  format_version: number;
  /** Unix seconds when it was pushed. */
  pushed_at: number;
  pushed_from: string;
  /** The backup's `.backup_metadata.json`, manifest included, exactly as it was. */
  metadata: BackupMetadata;
}

const DEFAULT_CONCURRENCY = 48;
const isFile = (m: ManifestEntry): m is ManifestFile => m.type === 'file';

async function openRepo(opts: RepoOptions): Promise<Repo> {
  const backend = await openBackend(opts.repo, opts);
  const raw = await getBuffer(backend, CONFIG_KEY);
  if (raw === undefined) {
    throw new BackupError('REPO_INVALID', `${backend.url} is not a dawn-backup repository (no ${CONFIG_KEY}). Create it with \`dawn-backup init --repo ${backend.url}\`.`, { path: backend.url });
  }
  let config: { format?: unknown; format_version?: unknown; encryption?: EncryptionConfig | null };
  try {
    config = JSON.parse(raw.toString('utf8')) as typeof config;
  } catch (err) {
    throw new BackupError('REPO_INVALID', `${backend.url}/${CONFIG_KEY} is not valid JSON (${(err as Error).message}): not a usable repository.`, { path: backend.url });
  }
  if (config.format !== REPO_FORMAT || config.format_version !== REPO_FORMAT_VERSION) {
    throw new BackupError('REPO_INVALID', `${backend.url} is a repository of format ${JSON.stringify(config.format)} version ${JSON.stringify(config.format_version)}; this dawn-backup reads ${REPO_FORMAT} version ${REPO_FORMAT_VERSION}. Use a newer dawn-backup.`, { path: backend.url });
  }
  if (config.encryption !== undefined && config.encryption !== null) {
    if (typeof config.encryption !== 'object') throw new BackupError('REPO_INVALID', `${backend.url}/${CONFIG_KEY}: malformed encryption settings.`, { path: backend.url });
    return encryptedRepo(backend, await unlock(config.encryption, await passwordOf(opts, backend.url), backend.url));
  }
  return plainRepo(backend);
}

/** Create a repository (and, on S3, the bucket when it does not exist). Idempotent. */
export async function initRepo(opts: RepoOptions & { encrypt?: boolean }): Promise<{ repo: string; created: boolean; encrypted: boolean }> {
  const backend = await openBackend(opts.repo, opts);
  await backend.prepare?.();
  if (await backend.exists(CONFIG_KEY)) {
    await openRepo(opts); // an existing repository must be one of ours (and open with this password)
    return { repo: backend.url, created: false, encrypted: Boolean(opts.encrypt) };
  }
  const encryption = opts.encrypt ? (await newEncryption(await passwordOf(opts, backend.url, true))).config : null;
  const doc = { format: REPO_FORMAT, format_version: REPO_FORMAT_VERSION, created_at: Date.now() / 1000, encryption };
  const created = await backend.putIfAbsent(CONFIG_KEY, Buffer.from(`${JSON.stringify(doc, null, 2)}\n`));
  if (!created) await openRepo(opts);
  return { repo: backend.url, created, encrypted: encryption !== null };
}

/** The outcome of pushing one backup. */
export interface PushResult {
  name: string;
  /** `created`: the snapshot was written now; `exists`: the repository already held this backup. */
  snapshot: 'created' | 'exists';
  files: number;
  /** Distinct contents the backup needs. */
  objects: number;
  /** Objects uploaded by this run (the others were already in the repository). */
  uploaded: number;
  /** Bytes of file content uploaded (before compression). */
  uploadedBytes: number;
  /** Bytes sent for those objects (after compression). */
  storedBytes: number;
}

async function readSnapshot(repo: Repo, name: string): Promise<SnapshotDoc | undefined> {
  const backend = repo.backend;
  const raw = await getBuffer(backend, snapshotKey(name));
  if (raw === undefined) return undefined;
  const plain = await repo.decode(raw, snapshotKey(name));
  let doc: Partial<SnapshotDoc>;
  try {
    if (plain === undefined) throw new Error('not a dawn-backup object, or not sealed with this repository\'s key');
    doc = JSON.parse(plain.toString('utf8')) as Partial<SnapshotDoc>;
  } catch (err) {
    throw new BackupError('BACKUP_INVALID', `Snapshot "${name}" in ${backend.url} is damaged (${(err as Error).message}); it cannot be used.`, { path: `${backend.url}/${snapshotKey(name)}` });
  }
  if (doc.format !== SNAPSHOT_FORMAT || typeof doc.metadata !== 'object' || doc.metadata === null || !Array.isArray(doc.metadata.manifest)) {
    throw new BackupError('BACKUP_INVALID', `Snapshot "${name}" in ${backend.url} is not a valid snapshot document; it cannot be used.`, { path: `${backend.url}/${snapshotKey(name)}` });
  }
  return doc as SnapshotDoc;
}

function checkedManifest(name: string, meta: BackupMetadata, where: string): ManifestEntry[] {
  const unsafe = checkManifest(meta.manifest ?? [], { checksums: true, nameEscape: nameEscapeOf(meta) });
  if (unsafe.length > 0) {
    throw new BackupError('UNSAFE_PATH', `Backup "${name}" (${where}) has an unsafe or malformed manifest (${unsafe.length} problem(s), first: ${unsafe[0]!.path}: ${unsafe[0]!.detail}). It is not used.`, { problems: unsafe });
  }
  return meta.manifest!;
}

async function knownObjects(backend: Backend): Promise<Set<string>> {
  const known = new Set<string>();
  for (const key of await backend.list(OBJECTS_PREFIX)) {
    const h = hashOfKey(key);
    if (h) known.add(h);
  }
  return known;
}

/** The newest local backup of the data root (what `push` pushes by default). */
async function newestLocal(backupDir: string | undefined, env: Readonly<Record<string, string | undefined>>): Promise<string> {
  const { backups, backupDir: dir } = await listBackups(backupDir !== undefined ? { backupDir } : {});
  const root = resolveDataRoot(undefined, env as NodeJS.ProcessEnv);
  const mine = backups.filter((b) => !b.name.startsWith('pre_restore_') && b.sourceDir === root);
  const pick = mine[0] ?? (backups.filter((b) => !b.name.startsWith('pre_restore_')).length > 0 && new Set(backups.map((b) => b.sourceDir)).size === 1 ? backups.find((b) => !b.name.startsWith('pre_restore_')) : undefined);
  if (!pick) throw new BackupError('BACKUP_NOT_FOUND', `No backup of the data root ${root} in ${dir}; name the backup to push (see \`dawn-backup list\`).`, { path: dir });
  return pick.name;
}

/**
 * Push local backups into a repository: every distinct file content not yet there is uploaded
 * (checked against the manifest's sha256 on the way out), then the snapshot document is written
 * last. A push killed at any moment leaves no snapshot naming a missing object; running it again
 * uploads only what is missing.
 */
export async function pushBackups(opts: RepoOptions & { names?: string[]; backupDir?: string | undefined }): Promise<PushResult[]> {
  const env = opts.env ?? process.env;
  const repo = await openRepo(opts);
  const names = opts.names && opts.names.length > 0 ? opts.names : [await newestLocal(opts.backupDir, env)];
  return withPushLock(repo, (beforeCommit) => pushNames(repo, names, opts, beforeCommit), lockStaleSeconds(opts));
}

async function pushNames(repo: Repo, names: string[], opts: RepoOptions & { backupDir?: string | undefined }, beforeCommit: () => Promise<void>): Promise<PushResult[]> {
  const backend = repo.backend;
  const results: PushResult[] = [];
  let known: Set<string> | undefined;
  for (const name of names) {
    const { realPath, meta } = await openBackup({ name, backupDir: opts.backupDir });
    if (!Array.isArray(meta.manifest)) {
      throw new BackupError('BACKUP_INVALID', `Backup "${name}" was made by the Python implementation and carries no checksums: it cannot be pushed. Make a new backup with dawn-backup.`, { path: realPath });
    }
    const manifest = checkedManifest(name, meta, realPath);
    const files = manifest.filter(isFile);
    const byHash = new Map<string, ManifestFile>();
    for (const f of files) if (!byHash.has(f.sha256)) byHash.set(f.sha256, f);
    const result: PushResult = { name, snapshot: 'exists', files: files.length, objects: byHash.size, uploaded: 0, uploadedBytes: 0, storedBytes: 0 };
    const doc: SnapshotDoc = { format: SNAPSHOT_FORMAT, format_version: 1, pushed_at: Date.now() / 1000, pushed_from: hostname(), metadata: meta };
    const existing = await readSnapshot(repo, name).catch((err: unknown) => {
      if (BackupError.is(err) && err.code === 'BACKUP_INVALID') throw new BackupError('BACKUP_EXISTS', `${err.message} Remove it from the repository by hand to push "${name}" again.`);
      throw err;
    });
    if (existing) {
      if (JSON.stringify(existing.metadata) !== JSON.stringify(meta)) {
        throw new BackupError('BACKUP_EXISTS', `The repository ${backend.url} already holds another backup named "${name}"; nothing was pushed. Push it under a new name (backups are never merged).`);
      }
    }
    // Even when the snapshot is there: objects that went missing are uploaded again (a repair).
    known ??= await knownObjects(backend);
    const todo = [...byHash.values()].filter((f) => !known!.has(repo.nameOf(f.sha256)));
    const nameEscape = nameEscapeOf(meta);
    const problems: VerifyProblem[] = [];
    const upload = (list: ManifestFile[]) => runPool(list, opts.concurrency ?? DEFAULT_CONCURRENCY, async (f) => {
      const path = storedPathOf(realPath, f, nameEscape);
      const plain = await readFile(path);
      if (plain.length !== f.size || sha256(plain) !== f.sha256) {
        problems.push({ path: f.path, kind: 'modified', detail: 'the local backup file does not match its manifest' });
        return;
      }
      const key = objectKey(repo.nameOf(f.sha256));
      const stored = await repo.encode(plain, key);
      if (await backend.putIfAbsent(key, stored)) {
        result.uploaded++;
        result.uploadedBytes += plain.length;
        result.storedBytes += stored.length;
      }
      known!.add(repo.nameOf(f.sha256));
    });
    await upload(todo);
    if (problems.length > 0) {
      throw new BackupError('VERIFY_FAILED', `The local backup "${name}" is damaged (${problems.length} file(s) differ from its manifest): no snapshot was written. Run \`dawn-backup verify ${name}\`.`, { problems, path: realPath });
    }
    if (existing) {
      results.push(result);
      continue;
    }
    // The snapshot last: it names only objects that are in the repository now. A prune may have
    // collected some of them while this push was held up (see withPushLock): look again.
    await beforeCommit();
    known = await knownObjects(backend);
    const lost = [...byHash.values()].filter((f) => !known!.has(repo.nameOf(f.sha256)));
    if (lost.length > 0) await upload(lost);
    if (problems.length > 0) throw new BackupError('VERIFY_FAILED', `The local backup "${name}" changed during the push: no snapshot was written. Run \`dawn-backup verify ${name}\`.`, { problems, path: realPath });
    const body = await repo.encode(Buffer.from(JSON.stringify(doc)), snapshotKey(name));
    if (await backend.putIfAbsent(snapshotKey(name), body)) result.snapshot = 'created';
    else if (JSON.stringify((await readSnapshot(repo, name))?.metadata) !== JSON.stringify(meta)) {
      throw new BackupError('BACKUP_EXISTS', `Another push wrote a different backup named "${name}" into ${backend.url} at the same time; its objects are kept, no snapshot of this one was written.`);
    }
    results.push(result);
  }
  return results;
}

/** One backup in a repository, as `list --repo` shows it. */
export interface RepoBackup {
  name: string;
  createdAt: number;
  pushedAt: number;
  fileCount: number;
  totalBytes: number;
  sourceDir: string | null;
  hostname: string | null;
}

/** Every snapshot of a repository, newest first; unreadable snapshot documents in `damaged`. */
export async function listRepo(opts: RepoOptions): Promise<{ repo: string; backups: RepoBackup[]; damaged: { name: string; reason: string }[] }> {
  const repo = await openRepo(opts);
  const backend = repo.backend;
  const keys = (await backend.list(SNAPSHOTS_PREFIX)).filter((k) => k.endsWith('.json') && !k.slice(SNAPSHOTS_PREFIX.length).includes('/'));
  const backups: RepoBackup[] = [];
  const damaged: { name: string; reason: string }[] = [];
  await runPool(keys, opts.concurrency ?? DEFAULT_CONCURRENCY, async (key) => {
    const name = key.slice(SNAPSHOTS_PREFIX.length, -'.json'.length);
    try {
      const doc = await readSnapshot(repo, name);
      if (!doc) return; // deleted meanwhile
      const m = doc.metadata;
      const files = m.manifest!.filter(isFile);
      backups.push({
        name,
        createdAt: createdAtOf(m, doc.pushed_at),
        pushedAt: doc.pushed_at,
        fileCount: files.length,
        totalBytes: files.reduce((a, f) => a + f.size, 0),
        sourceDir: typeof m.source_dir === 'string' ? m.source_dir : null,
        hostname: typeof m.hostname === 'string' ? m.hostname : null,
      });
    } catch (err) {
      if (!BackupError.is(err) || err.code !== 'BACKUP_INVALID') throw err;
      damaged.push({ name, reason: err.message });
    }
  });
  backups.sort((a, b) => b.createdAt - a.createdAt || (a.name < b.name ? 1 : -1));
  damaged.sort((a, b) => (a.name < b.name ? -1 : 1));
  return { repo: backend.url, backups, damaged };
}

/** `latest`: the newest backup of the data root in the repository (any name otherwise: itself). */
export async function resolveRepoName(opts: RepoOptions, name: string): Promise<string> {
  if (name !== 'latest') {
    validateBackupName(name);
    return name;
  }
  const { backups, repo } = await listRepo(opts);
  const root = resolveDataRoot(undefined, (opts.env ?? process.env) as NodeJS.ProcessEnv);
  const usable = backups.filter((b) => !b.name.startsWith('pre_restore_'));
  const pick = usable.find((b) => b.sourceDir === root) ?? (new Set(usable.map((b) => b.sourceDir)).size === 1 ? usable[0] : undefined);
  if (!pick) {
    throw new BackupError('BACKUP_NOT_FOUND', `No backup of the data root ${root} in ${repo} for "latest"${usable.length ? ` (it holds backups of ${[...new Set(usable.map((b) => b.sourceDir))].join(', ')}): name the backup` : ''}. See \`dawn-backup list --repo ${repo}\`.`);
  }
  return pick.name;
}

/** The outcome of {@link verifyRepoBackup}. */
export interface RepoVerifyResult {
  name: string;
  repo: string;
  status: 'ok' | 'damaged';
  ok: boolean;
  files: number;
  objects: number;
  /** Objects downloaded and checked (`readData`, `readDataSubset`). */
  checked: number;
  /** With `readDataSubset`: how the objects to read were chosen (the others were only checked to exist). */
  subset?: string;
  bytes: number;
  problems: VerifyProblem[];
}

async function fetchChecked(repo: Repo, f: ManifestFile): Promise<{ plain?: Buffer; problem?: VerifyProblem }> {
  const key = objectKey(repo.nameOf(f.sha256));
  const stored = await getBuffer(repo.backend, key);
  if (stored === undefined) return { problem: { path: f.path, kind: 'missing', detail: `object ${f.sha256.slice(0, 16)}… is missing from the repository` } };
  const plain = await repo.decode(stored, key);
  if (plain === undefined || plain.length !== f.size || sha256(plain) !== f.sha256) {
    return { problem: { path: f.path, kind: 'modified', detail: `object ${f.sha256.slice(0, 16)}… is damaged (its content does not match the manifest's sha256)` } };
  }
  return { plain };
}

/**
 * Check that every object a pushed backup needs is in the repository; with `readData`, download
 * each one and check it against the manifest's sha256 (the server is never trusted); with
 * `readDataSubset`, download and check only a subset of the stored objects (see subset.ts).
 */
export async function verifyRepoBackup(opts: RepoOptions & { name: string; readData?: boolean; readDataSubset?: DataSubset }): Promise<RepoVerifyResult> {
  const repo = await openRepo(opts);
  const backend = repo.backend;
  const name = await resolveRepoName(opts, opts.name);
  const doc = await readSnapshot(repo, name);
  if (!doc) throw new BackupError('BACKUP_NOT_FOUND', `No backup named "${name}" in ${backend.url}. Run \`dawn-backup list --repo ${backend.url}\`.`);
  const manifest = checkedManifest(name, doc.metadata, backend.url);
  const files = manifest.filter(isFile);
  const byHash = new Map<string, ManifestFile[]>();
  for (const f of files) byHash.set(f.sha256, [...(byHash.get(f.sha256) ?? []), f]);
  const result: RepoVerifyResult = { name, repo: backend.url, status: 'ok', ok: true, files: files.length, objects: byHash.size, checked: 0, bytes: 0, problems: [] };
  // `readData` reads every object; `readDataSubset` checks that every object exists and reads the
  // chosen subset (by stored object id: see subset.ts).
  const subset = opts.readData ? undefined : opts.readDataSubset;
  if (!opts.readData) {
    const known = await knownObjects(backend);
    for (const [h, group] of byHash) {
      if (!known.has(repo.nameOf(h))) for (const f of group) result.problems.push({ path: f.path, kind: 'missing', detail: `object ${h.slice(0, 16)}… is missing from the repository` });
    }
  }
  if (opts.readData || subset) {
    let groups = [...byHash.values()];
    if (subset) {
      const picked = new Set(selectSubset([...byHash.keys()].map((h) => repo.nameOf(h)), subset));
      groups = groups.filter((g) => picked.has(repo.nameOf(g[0]!.sha256)));
      result.subset = subset.kind === 'percent' ? `${subset.percent}%` : `${subset.n}/${subset.m}`;
    }
    await runPool(groups, opts.concurrency ?? DEFAULT_CONCURRENCY, async (group) => {
      const r = await fetchChecked(repo, group[0]!);
      if (r.problem) {
        if (!subset || r.problem.kind !== 'missing') for (const f of group) result.problems.push({ ...r.problem, path: f.path });
      } else {
        result.checked++;
        result.bytes += r.plain!.length;
      }
    });
  }
  result.problems.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  if (result.problems.length > 0) {
    result.status = 'damaged';
    result.ok = false;
  }
  return result;
}

/** The outcome of {@link pullBackup}. */
export interface PullResult {
  name: string;
  repo: string;
  /** The local backup. */
  path: string;
  backupDir: string;
  files: number;
  bytes: number;
  /** `true` when an identical local backup was already there (nothing downloaded). */
  reused: boolean;
}

/**
 * Recreate a pushed backup as a normal local backup in `backupDir`. Every object is checked
 * against the manifest's sha256 before anything is visible; a missing or damaged object fails
 * with `VERIFY_FAILED` and leaves nothing behind. The result is verified like any local backup.
 */
export async function pullBackup(opts: RepoOptions & { name: string; backupDir?: string | undefined }): Promise<PullResult> {
  const repo = await openRepo(opts);
  const backend = repo.backend;
  const name = await resolveRepoName(opts, opts.name);
  const doc = await readSnapshot(repo, name);
  if (!doc) throw new BackupError('BACKUP_NOT_FOUND', `No backup named "${name}" in ${backend.url}. Run \`dawn-backup list --repo ${backend.url}\`.`);
  const meta = doc.metadata;
  const manifest = checkedManifest(name, meta, backend.url);
  const files = manifest.filter(isFile);
  const backupDir = resolveBackupDir(opts.backupDir, (opts.env ?? process.env) as NodeJS.ProcessEnv);
  const final = join(backupDir, name);
  const result: PullResult = { name, repo: backend.url, path: final, backupDir, files: files.length, bytes: files.reduce((a, f) => a + f.size, 0), reused: false };

  if (await lstat(final).catch(() => undefined)) {
    const local = await readMetadata(final, name).catch(() => undefined);
    if (local && JSON.stringify(local) === JSON.stringify(meta)) {
      const v = await verifyBackup({ name, backupDir });
      if (v.ok) return { ...result, reused: true };
    }
    throw new BackupError('BACKUP_EXISTS', `A local backup named "${name}" already exists in ${backupDir} and is not an intact copy of the repository's; nothing was changed. Pull into another --backup-dir.`, { path: final });
  }

  let createdDir = false;
  if (!(await lstat(backupDir).catch(() => undefined))) {
    await mkdir(backupDir, { recursive: true });
    createdDir = true;
  }
  const tmp = join(backupDir, `.dawn-pull-${name}-${process.pid}-${randomTag()}`);
  let done = false;
  try {
    await mkdir(tmp, { mode: 0o700 });
    const nameEscape = nameEscapeOf(meta);
    const dirs = manifest.filter((m) => m.type === 'dir');
    for (const d of dirs) await mkdir(storedPathOf(tmp, d, nameEscape) as string, { recursive: true, mode: 0o700 });
    const problems: VerifyProblem[] = [];
    await runPool(files, opts.concurrency ?? DEFAULT_CONCURRENCY, async (f) => {
      if (problems.length > 0) return;
      const r = await fetchChecked(repo, f);
      if (r.problem) {
        problems.push(r.problem);
        return;
      }
      const path = storedPathOf(tmp, f, nameEscape);
      if (typeof path === 'string') await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await writeNewFile(path, r.plain!, 0o600, false);
      await chmod(path, parseMode(f.mode) ?? 0o644);
    });
    if (problems.length > 0) {
      throw new BackupError('VERIFY_FAILED', `Backup "${name}" in ${backend.url} is damaged (${problems.length} problem(s), first: ${problems[0]!.path}: ${problems[0]!.detail}); nothing was pulled. Run \`dawn-backup verify ${name} --repo ${backend.url} --read-data\`.`, { problems });
    }
    for (const m of manifest) {
      if (m.type !== 'symlink') continue;
      const target = entryTarget(m);
      await symlink(target as string, storedPathOf(tmp, m, nameEscape) as string);
    }
    for (const d of [...dirs].reverse()) await chmod(storedPathOf(tmp, d, nameEscape), parseMode(d.mode) ?? 0o755);
    await writeBackupMetadata(tmp, meta, { mode: 0o644, fsync: false }); // the manifest file too (format 2), or inline as pushed (format 1)
    if (meta.root_mode !== undefined) await chmod(tmp, parseMode(meta.root_mode) ?? 0o755);
    await syncFileSystem(tmp);
    if (await lstat(final).catch(() => undefined)) throw new BackupError('BACKUP_EXISTS', `A local backup named "${name}" appeared in ${backupDir} meanwhile; nothing was changed.`, { path: final });
    await rename(tmp, final);
    done = true;
  } finally {
    if (!done) {
      await removeTree(tmp).catch(() => undefined);
      if (createdDir) await rmdir(backupDir).catch(() => undefined);
    }
  }
  const v = await verifyBackup({ name, backupDir });
  if (!v.ok) {
    await removeTree(final).catch(() => undefined);
    throw new BackupError('VERIFY_FAILED', `The pulled backup "${name}" does not verify (${v.problems[0]?.path}: ${v.problems[0]?.detail}); it was removed.`, { problems: v.problems });
  }
  return result;
}

// --- locks and prune ---------------------------------------------------------------------------

const LOCKS_PREFIX = 'locks/';
/** A lock older than this (by the reader's clock) is stale: its holder was killed. */
export const LOCK_STALE_SECONDS = 6 * 3600;
/** Overrides {@link LOCK_STALE_SECONDS} (seconds) for the command that reads the locks. */
export const LOCK_STALE_ENV = 'DAWN_BACKUP_LOCK_STALE';

/** The stale timeout this command applies to other processes' locks. */
function lockStaleSeconds(opts: RepoOptions): number {
  const raw = (opts.env ?? process.env)[LOCK_STALE_ENV];
  if (raw === undefined || raw === '') return LOCK_STALE_SECONDS;
  const v = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw.trim()) || !Number.isFinite(v)) {
    throw new BackupError('INVALID_OPTION', `${LOCK_STALE_ENV}="${raw}" is not a number of seconds (e.g. 21600 for 6 hours).`);
  }
  return v;
}

interface LockDoc {
  kind: 'push' | 'prune';
  host: string;
  pid: number;
  created_at: number;
}

async function takeLock(repo: Repo, kind: LockDoc['kind']): Promise<string> {
  const key = `${LOCKS_PREFIX}${kind}-${hostname().replace(/[^A-Za-z0-9.-]/g, '_')}-${process.pid}-${randomTag()}.json`;
  const doc: LockDoc = { kind, host: hostname(), pid: process.pid, created_at: Date.now() / 1000 };
  await repo.backend.putIfAbsent(key, Buffer.from(JSON.stringify(doc)));
  return key;
}

/** Fresh locks of a kind, other than `own`. A lock dated in the future counts as fresh. */
async function freshLocks(repo: Repo, kind: LockDoc['kind'], own: string, stale: number): Promise<LockDoc[]> {
  const out: LockDoc[] = [];
  const now = Date.now() / 1000;
  for (const key of await repo.backend.list(`${LOCKS_PREFIX}${kind}-`)) {
    if (key === own) continue;
    const raw = await getBuffer(repo.backend, key);
    if (!raw) continue;
    let doc: Partial<LockDoc>;
    try {
      doc = JSON.parse(raw.toString('utf8')) as Partial<LockDoc>;
    } catch {
      doc = {};
    }
    const at = typeof doc.created_at === 'number' ? doc.created_at : now; // unreadable: fresh (safe side)
    if (doc.host === hostname() && typeof doc.pid === 'number' && !isPidAlive(doc.pid)) continue; // killed, on this host
    if (now - at < stale) out.push({ kind, host: String(doc.host ?? '?'), pid: Number(doc.pid ?? 0), created_at: at });
  }
  return out;
}

function busy(repo: Repo, what: string, locks: LockDoc[], stale: number): BackupError {
  const l = locks[0]!;
  return new BackupError(
    'BUSY',
    `${what} in ${repo.url}: a ${l.kind} by ${l.host} (pid ${l.pid}) started at ${new Date(l.created_at * 1000).toISOString()} is running. Retry when it has finished; a killed one stops counting after ${stale >= 3600 ? `${stale / 3600} h` : `${stale} s`}.`,
  );
}

/**
 * Run `fn` holding a push lock; `BUSY` while a prune of the repository runs. `fn` calls
 * `beforeCommit` just before it writes a snapshot: the lock is renewed, and `BUSY` is thrown when
 * a prune runs now. A prune that saw this push's lock as stale (the push was stopped for longer
 * than the stale timeout) may have collected its uncommitted objects meanwhile: after
 * `beforeCommit`, the push checks its objects again and uploads the missing ones before the
 * snapshot (a prune starting after the renewal sees the fresh lock and refuses).
 */
export async function withPushLock<T>(repo: Repo, fn: (beforeCommit: () => Promise<void>) => Promise<T>, stale: number = LOCK_STALE_SECONDS): Promise<T> {
  let key = await takeLock(repo, 'push');
  try {
    const prunes = await freshLocks(repo, 'prune', key, stale);
    if (prunes.length > 0) throw busy(repo, 'Cannot push now', prunes, stale);
    return await fn(async () => {
      const renewed = await takeLock(repo, 'push');
      await repo.backend.delete(key).catch(() => undefined);
      key = renewed;
      const running = await freshLocks(repo, 'prune', key, stale);
      if (running.length > 0) throw busy(repo, 'Cannot commit the push now (its uploaded objects stay; run it again afterwards)', running, stale);
    });
  } finally {
    await repo.backend.delete(key).catch(() => undefined);
  }
}

/** The outcome of {@link pruneRepo}. */
export interface RepoPruneResult {
  repo: string;
  dryRun: boolean;
  kept: string[];
  removed: string[];
  /** Objects no remaining snapshot names (deleted unless `dryRun`). */
  garbage: number;
  garbageDeleted: number;
}

/**
 * Apply a retention policy to a repository (the same rules as local `prune`, per source), then
 * delete every object that no remaining snapshot names (garbage collection). Holds a prune lock:
 * it refuses to start while a push runs (`BUSY`), and pushes refuse to start while it runs, so an
 * object uploaded by a push but not yet committed is never collected.
 */
export async function pruneRepo(opts: RepoOptions & { policy: RetentionPolicy; dryRun?: boolean }): Promise<RepoPruneResult> {
  const repo = await openRepo(opts);
  const key = await takeLock(repo, 'prune');
  try {
    const stale = lockStaleSeconds(opts);
    const running = [...(await freshLocks(repo, 'push', key, stale)), ...(await freshLocks(repo, 'prune', key, stale))];
    if (running.length > 0) throw busy(repo, 'Cannot prune now', running, stale);
    const { backups, damaged } = await listRepo(opts);
    const plan = planPrune(
      backups.map((b) => ({ name: b.name, createdAt: b.createdAt, appearedAt: b.pushedAt, source: `${b.hostname ?? '?'}:${b.sourceDir ?? '?'}` })),
      opts.policy,
    );
    const result: RepoPruneResult = { repo: repo.url, dryRun: Boolean(opts.dryRun), kept: [], removed: [], garbage: 0, garbageDeleted: 0 };
    for (const d of plan) (d.keep ? result.kept : result.removed).push(d.name);
    if (!opts.dryRun) for (const name of result.removed) await repo.backend.delete(snapshotKey(name));
    if (damaged.length > 0) return result; // an unreadable snapshot may name anything: collect nothing
    const referenced = new Set<string>();
    for (const name of result.kept) {
      const doc = await readSnapshot(repo, name);
      for (const m of doc?.metadata.manifest ?? []) if (m.type === 'file') referenced.add(repo.nameOf(m.sha256));
    }
    const garbage = (await repo.backend.list(OBJECTS_PREFIX)).filter((k) => {
      const h = hashOfKey(k);
      return h !== undefined && !referenced.has(h);
    });
    result.garbage = garbage.length;
    if (!opts.dryRun) {
      await runPool(garbage, opts.concurrency ?? DEFAULT_CONCURRENCY, async (k) => {
        await repo.backend.delete(k);
        result.garbageDeleted++;
      });
    }
    return result;
  } finally {
    await repo.backend.delete(key).catch(() => undefined);
  }
}

// --- read-only views (show and diff --repo) ----------------------------------------------------

/** A pushed backup: its snapshot document, and a reader of its file contents. */
export interface RepoSnapshotView {
  repo: string;
  name: string;
  doc: SnapshotDoc;
  /** The checked manifest (safe paths, a sha256 for every file). */
  manifest: ManifestEntry[];
  /** A file's content, downloaded and checked against its sha256 (`VERIFY_FAILED` when missing or damaged). */
  readFile(f: ManifestFile): Promise<Buffer>;
}

/**
 * Open one snapshot of a repository (`latest`: the newest of the data root) without downloading
 * any file content.
 *
 * @throws {BackupError} `BACKUP_NOT_FOUND`, `BACKUP_INVALID`, `UNSAFE_PATH`, `REPO_INVALID`, `WRONG_PASSWORD`, `IO`.
 */
export async function openRepoSnapshot(opts: RepoOptions & { name: string }): Promise<RepoSnapshotView> {
  const repo = await openRepo(opts);
  const name = await resolveRepoName(opts, opts.name);
  const doc = await readSnapshot(repo, name);
  if (!doc) throw new BackupError('BACKUP_NOT_FOUND', `No backup named "${name}" in ${repo.url}. Run \`dawn-backup list --repo ${repo.url}\`.`);
  const manifest = checkedManifest(name, doc.metadata, repo.url);
  return {
    repo: repo.url,
    name,
    doc,
    manifest,
    readFile: async (f) => {
      const r = await fetchChecked(repo, f);
      if (r.problem) throw new BackupError('VERIFY_FAILED', `Backup "${name}" in ${repo.url}: ${r.problem.path}: ${r.problem.detail}.`, { problems: [r.problem] });
      return r.plain!;
    },
  };
}
