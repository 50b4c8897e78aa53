import { chmodSync, closeSync, constants, copyFileSync, fchmodSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { chmod, lstat, mkdir, rename, rmdir, stat, symlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { BackupError, ioError, type VerifyProblem } from '../errors.js';
import { errCode, isPidAlive, removeTree, runPool, randomTag, parseMode } from '../fsutil.js';
import { readCheckedFile, readCheckedFileSync, SizeMismatchError } from '../copy.js';
import { DirFds } from '../confine.js';
import { syncFileSystem } from '../durability.js';
import { listBackups } from '../list.js';
import { planPrune, type RetentionPolicy } from '../prune.js';
import { checkManifest, createdAtOf, nameEscapeOf, readMetadata, type BackupMetadata, type ManifestEntry, type ManifestFile } from '../metadata.js';
import { writeBackupMetadata } from '../write-metadata.js';
import { resolveBackupDir, resolveDataRoot, validateBackupName } from '../paths.js';
import { entryTarget } from '../relpath.js';
import { compareTree, openBackup, readProblem, storedPathOf, verifyBackup } from '../verify.js';
import { getBuffer, openBackend, type Backend, type BackendOptions } from './backend.js';
import { IndexCache } from './cache.js';
import { machineIdentity, samePidSpace, type MachineIdentity } from './machine.js';
import { newEncryption, PASSWORD_ENV, readPassword, unlock, type EncryptionConfig } from './crypto.js';
import { selectSubset, type DataSubset } from './subset.js';
import { CONFIG_KEY, objectKey, packKey, READABLE_FORMAT_VERSIONS, REPO_FORMAT, REPO_FORMAT_VERSION, sha256, SNAPSHOT_FORMAT, snapshotKey, SNAPSHOTS_PREFIX } from './format.js';
import {
  blobAad,
  checkedFile,
  counted,
  encryptedRepo,
  hasBlob,
  INDEX_AAD,
  type IndexPack,
  listStore,
  loadCatalog,
  LocalMismatchError,
  looseAad,
  PackWriter,
  plainRepo,
  readBlobs,
  stillStored,
  type Catalog,
  type Repo,
  type Wanted,
  writeIndex,
  writeNewFileFrom,
} from './store.js';

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
  /**
   * Told what the caller should know although the command goes on (`latest` resolved to another
   * host's backup). Default: a line on stderr.
   */
  onWarning?: ((message: string) => void) | undefined;
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

export const DEFAULT_CONCURRENCY = 48;
const isFile = (m: ManifestEntry): m is ManifestFile => m.type === 'file';

/** How a password was given explicitly (a password says "this repository is encrypted"), if it was. */
function passwordGiven(opts: RepoOptions): string | undefined {
  if (opts.password !== undefined) return 'a password';
  if (opts.passwordFile !== undefined) return `--password-file ${opts.passwordFile}`;
  return (opts.env ?? process.env)[PASSWORD_ENV] ? `$${PASSWORD_ENV}` : undefined;
}

/** The repositories {@link openRepo} opened with a key. */
const ENCRYPTED = new WeakSet<Repo>();

export async function openRepo(opts: RepoOptions, opened?: Backend): Promise<Repo> {
  return openRepoAt(opts, opened ?? (await openBackend(opts.repo, opts)), 'refuse');
}

/** {@link openRepo}; `passwordOnPlain: 'allow'` lets the caller refuse a plain repository itself. */
async function openRepoAt(opts: RepoOptions, backend: Backend, passwordOnPlain: 'refuse' | 'allow'): Promise<Repo> {
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
  if (config.format !== REPO_FORMAT || typeof config.format_version !== 'number' || !READABLE_FORMAT_VERSIONS.includes(config.format_version)) {
    throw new BackupError('REPO_INVALID', `${backend.url} is a repository of format ${JSON.stringify(config.format)} version ${JSON.stringify(config.format_version)}; this dawn-backup reads ${REPO_FORMAT} versions ${READABLE_FORMAT_VERSIONS.join(' and ')}. Use a newer dawn-backup.`, { path: backend.url });
  }
  const env = opts.env ?? process.env;
  if (config.encryption !== undefined && config.encryption !== null) {
    if (typeof config.encryption !== 'object') throw new BackupError('REPO_INVALID', `${backend.url}/${CONFIG_KEY}: malformed encryption settings.`, { path: backend.url });
    const repo = encryptedRepo(backend, await unlock(config.encryption, await passwordOf(opts, backend.url), backend.url), config.format_version, env, IndexCache.for(raw, env));
    ENCRYPTED.add(repo);
    return repo;
  }
  const given = passwordGiven(opts);
  if (given !== undefined && passwordOnPlain === 'refuse') {
    // A password says "this repository is encrypted". config.json is not authenticated: anyone
    // who can write to the store can replace an encrypted repository's config by a plain one,
    // and the next push (cron, password set) would upload every content in plaintext.
    throw new BackupError(
      'REPO_INVALID',
      `${backend.url} is not encrypted (its ${CONFIG_KEY} says "encryption": null), but ${given} was given: nothing was read or written. If this repository was created with --encrypt, its ${CONFIG_KEY} has been replaced (check the store's access; put the original back). If it is meant to be unencrypted, run without a password (unset ${PASSWORD_ENV}, drop --password-file).`,
      { path: `${backend.url}/${CONFIG_KEY}` },
    );
  }
  return sealedGuard(plainRepo(backend, config.format_version, env, IndexCache.for(raw, env)));
}

const SEALED_MAGIC = Buffer.from('DAWNENC1', 'latin1');

/**
 * A plain repository whose snapshots or indexes turn out to be sealed (`DAWNENC1`): its config
 * was replaced by a plain one (damage, or an attempt to make the next push upload plaintext).
 * Refused (`REPO_INVALID`) as soon as such an object is read, before anything is uploaded.
 */
function sealedGuard(repo: Repo): Repo {
  const decode = repo.decode;
  return {
    ...repo,
    decode: async (stored, aad) => {
      if ((aad === INDEX_AAD || aad.startsWith(SNAPSHOTS_PREFIX)) && stored.subarray(0, SEALED_MAGIC.length).equals(SEALED_MAGIC)) {
        throw new BackupError(
          'REPO_INVALID',
          `${repo.url}/${aad === INDEX_AAD ? 'index/…' : aad} is encrypted, but ${repo.url}/${CONFIG_KEY} says the repository is not: the config has been replaced (damage, or someone with write access to the store). Nothing was written. Put the original ${CONFIG_KEY} back (it holds the key derivation settings; without them nothing here can be decrypted).`,
          { path: `${repo.url}/${CONFIG_KEY}` },
        );
      }
      return decode(stored, aad);
    },
  };
}

/** Create a repository (and, on S3, the bucket when it does not exist). Idempotent. */
export async function initRepo(opts: RepoOptions & { encrypt?: boolean }): Promise<{ repo: string; created: boolean; encrypted: boolean }> {
  const backend = await openBackend(opts.repo, opts);
  // A missing directory or bucket reads as no config: nothing is created before the password is
  // settled (two different passwords typed, or one given without --encrypt, leave nothing behind).
  if (await backend.exists(CONFIG_KEY)) return existingRepo(opts, backend);
  const given = passwordGiven(opts);
  if (!opts.encrypt && given !== undefined) {
    // Every later command given that password would refuse the unencrypted repository.
    throw new BackupError('USAGE', `${given} was given but not --encrypt: add --encrypt to create an encrypted repository, or run without a password (unset ${PASSWORD_ENV}, drop --password-file) for an unencrypted one. Nothing was created.`);
  }
  const encryption = opts.encrypt ? (await newEncryption(await passwordOf(opts, backend.url, true))).config : null;
  await backend.prepare?.();
  const doc = { format: REPO_FORMAT, format_version: REPO_FORMAT_VERSION, created_at: Date.now() / 1000, encryption };
  const created = await backend.putIfAbsent(CONFIG_KEY, Buffer.from(`${JSON.stringify(doc, null, 2)}\n`));
  if (!created) return existingRepo(opts, backend); // another init won the race
  return { repo: backend.url, created, encrypted: encryption !== null };
}

/**
 * `init` of a repository that exists: it must be one of ours, open with this password, and be
 * what was asked for (`--encrypt` on a plain one is `REPO_INVALID`: it cannot be applied). The
 * result says what the repository is, never what was asked.
 */
async function existingRepo(opts: RepoOptions & { encrypt?: boolean }, backend: Backend): Promise<{ repo: string; created: boolean; encrypted: boolean }> {
  const repo = await openRepoAt(opts, backend, opts.encrypt ? 'allow' : 'refuse');
  const encrypted = ENCRYPTED.has(repo);
  if (opts.encrypt && !encrypted) {
    throw new BackupError('REPO_INVALID', `${backend.url} already exists and is not encrypted: --encrypt cannot be applied to it (nothing changed). Create a new encrypted repository elsewhere (another prefix or directory) and push into that.`, { path: `${backend.url}/${CONFIG_KEY}` });
  }
  return { repo: backend.url, created: false, encrypted };
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
  /** Packs written by this run (small contents are grouped into packs of a few MiB). */
  packs: number;
  /**
   * With `repair`: contents whose stored copy was damaged (or unreadable) and that were uploaded
   * again (into a new pack; readers fall back to it when the old copy fails its sha256).
   */
  repaired?: number;
  /** Requests made to the store by this push (S3 HTTP requests; file operations for a directory). */
  requests: number;
}

export async function readSnapshot(repo: Repo, name: string): Promise<SnapshotDoc | undefined> {
  return decodeSnapshot(repo, name, await getBuffer(repo.backend, snapshotKey(name)));
}

/** A snapshot document from its stored bytes (`undefined`: there is none). */
async function decodeSnapshot(repo: Repo, name: string, raw: Buffer | undefined): Promise<SnapshotDoc | undefined> {
  const backend = repo.backend;
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

export function checkedManifest(name: string, meta: BackupMetadata, where: string): ManifestEntry[] {
  const unsafe = checkManifest(meta.manifest ?? [], { checksums: true, nameEscape: nameEscapeOf(meta) });
  if (unsafe.length > 0) {
    throw new BackupError('UNSAFE_PATH', `Backup "${name}" (${where}) has an unsafe or malformed manifest (${unsafe.length} problem(s), first: ${unsafe[0]!.path}: ${unsafe[0]!.detail}). It is not used.`, { problems: unsafe });
  }
  return meta.manifest!;
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

/** `p`, marked as handled: started now, awaited later (a rejection meanwhile is not "unhandled"). */
function early<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/** A local backup to push, read and checked, with what the repository holds under its name. */
interface PushSource {
  name: string;
  realPath: string;
  meta: BackupMetadata;
  /** Its distinct contents, by sha256 (the first file holding each). */
  byHash: Map<string, ManifestFile>;
  files: number;
  /** The repository's snapshot of that name (already checked to be this very backup). */
  existing: SnapshotDoc | undefined;
}

async function readPushSource(name: string, backupDir: string | undefined): Promise<Omit<PushSource, 'existing'>> {
  const { realPath, meta } = await openBackup({ name, backupDir });
  if (!Array.isArray(meta.manifest)) {
    throw new BackupError('BACKUP_INVALID', `Backup "${name}" was made by the Python implementation and carries no checksums: it cannot be pushed. Make a new backup with dawn-backup.`, { path: realPath });
  }
  const files = checkedManifest(name, meta, realPath).filter(isFile);
  const byHash = new Map<string, ManifestFile>();
  for (const f of files) if (!byHash.has(f.sha256)) byHash.set(f.sha256, f);
  return { name, realPath, meta, byHash, files: files.length };
}

/** The repository's snapshot `name`, from its stored bytes: `BACKUP_EXISTS` unless it is this backup. */
async function existingSnapshot(repo: Repo, src: Omit<PushSource, 'existing'>, raw: Buffer | undefined): Promise<SnapshotDoc | undefined> {
  const existing = await decodeSnapshot(repo, src.name, raw).catch((err: unknown) => {
    if (BackupError.is(err) && err.code === 'BACKUP_INVALID') throw new BackupError('BACKUP_EXISTS', `${err.message} Remove it from the repository by hand to push "${src.name}" again.`);
    throw err;
  });
  if (existing && JSON.stringify(existing.metadata) !== JSON.stringify(src.meta)) {
    throw new BackupError('BACKUP_EXISTS', `The repository ${repo.url} already holds another backup named "${src.name}"; nothing was pushed. Push it under a new name (backups are never merged).`);
  }
  return existing;
}

/**
 * Push local backups into a repository: every distinct file content not yet there is uploaded
 * (checked against the manifest's sha256 on the way out), then the snapshot document is written
 * last. A push killed at any moment leaves no snapshot naming a missing object; running it again
 * uploads only what is missing. A backup already there, whole, is left as it is: no lock, no
 * write (only reads).
 */
export async function pushBackups(opts: RepoOptions & {
  names?: string[];
  backupDir?: string | undefined;
  /**
   * Also download every stored content the backups need and check it against its sha256 (like
   * `verify --read-data`); a damaged one is uploaded again from the local backup into a new pack
   * and index. Nothing is deleted or overwritten. A damaged content too large for a pack (a loose
   * object) cannot be repaired so: `VERIFY_FAILED` names the object to remove by hand.
   */
  repair?: boolean;
}): Promise<PushResult[]> {
  const env = opts.env ?? process.env;
  const conc = opts.concurrency ?? DEFAULT_CONCURRENCY;
  const backend = await openBackend(opts.repo, opts);
  // Everything that can be asked at once is asked at once, and the local backups are read while
  // the answers come: the config, the store's listing, each name's snapshot. Errors keep their
  // order: the repository's first (unreachable, not a repository, wrong password), then the
  // local backups'.
  const repoP = early(openRepo(opts, backend));
  const listed = early(listStore(backend));
  const given = opts.names && opts.names.length > 0 ? opts.names : undefined;
  const namesP = early(given ? Promise.resolve(given) : newestLocal(opts.backupDir, env).then((n) => [n]));
  const rawsP = early(namesP.then((names) => names.map((n) => early(getBuffer(backend, snapshotKey(n))))));
  const localsP = early(namesP.then((names) => names.map((n) => early(readPushSource(n, opts.backupDir)))));
  const repo = await repoP;
  const catP = early(loadCatalog(repo, conc, undefined, listed));
  const names = await namesP;
  const raws = await Promise.all(await rawsP);
  // A snapshot to write: the lock is taken now (a PUT, then a listing of prune locks), while the
  // indexes are read and the local backups checked. Nothing is uploaded before it is held.
  const stale = lockStaleSeconds(opts);
  let lockP = raws.includes(undefined) || opts.repair ? early(PushLock.take(repo, stale)) : undefined;
  try {
    const locals = await localsP;
    const sources: PushSource[] = [];
    for (let i = 0; i < names.length; i++) {
      const src = await locals[i]!;
      sources.push({ ...src, existing: await existingSnapshot(repo, src, raws[i]) });
    }
    const cat = await catP;
    // Backups already there with every content stored: nothing to write, no lock needed.
    const complete = (s: PushSource) => s.existing !== undefined && [...s.byHash.keys()].every((h) => hasBlob(cat, repo.nameOf(h)));
    if (lockP === undefined && sources.every(complete)) {
      return sources.map((s, i) => ({ ...emptyResult(s), requests: i === 0 ? backend.requests : 0 }));
    }
    const lock = await (lockP ??= PushLock.take(repo, stale));
    let mark = 0;
    const results = await pushSources(repo, sources, cat, conc, Boolean(opts.repair), () => lock.beforeCommit(), (r) => {
      r.requests = backend.requests - mark;
      mark = backend.requests;
    });
    await lock.release();
    results[results.length - 1]!.requests += backend.requests - mark; // the lock's removal
    return results;
  } finally {
    await lockP?.then((l) => l.release(), () => undefined);
  }
}

function emptyResult(s: PushSource): PushResult {
  return { name: s.name, snapshot: 'exists', files: s.files, objects: s.byHash.size, uploaded: 0, uploadedBytes: 0, storedBytes: 0, packs: 0, requests: 0 };
}

async function pushSources(repo: Repo, sources: PushSource[], catalog: Catalog, conc: number, repair: boolean, beforeCommit: () => Promise<void>, count: (r: PushResult) => void): Promise<PushResult[]> {
  const backend = repo.backend;
  const results: PushResult[] = [];
  let cat = catalog;
  for (const src of sources) {
    const { name, realPath, meta, byHash, existing } = src;
    const result = emptyResult(src);
    const doc: SnapshotDoc = { format: SNAPSHOT_FORMAT, format_version: 1, pushed_at: Date.now() / 1000, pushed_from: hostname(), metadata: meta };
    // Even when the snapshot is there: contents that went missing are uploaded again (a repair).
    const catalog = cat;
    const todo = [...byHash.values()].filter((f) => !hasBlob(catalog, repo.nameOf(f.sha256)));
    const nameEscape = nameEscapeOf(meta);
    const problems: VerifyProblem[] = [];
    const mismatch = (f: ManifestFile) => problems.push({ path: f.path, kind: 'modified', detail: 'the local backup file does not match its manifest' });
    /** The backup's directories, each opened and checked once (closed after each upload). */
    const dirs = new DirFds();
    /** Read a local file as copies are read (copy.ts): a symlink, FIFO or wrong size is a problem. */
    const readLocal = async (f: ManifestFile): Promise<Buffer | undefined> => {
      try {
        // Small files synchronously: a promise-based open/stat/read/close costs more than reading
        // a few KiB, and the event loop is free again within microseconds.
        const path = storedPathOf(realPath, f, nameEscape);
        return f.size <= 64 * 1024 ? readCheckedFileSync(path, f.size, dirs) : await readCheckedFile(path, f.size, dirs);
      } catch (err) {
        localProblem(f, err);
        return undefined;
      }
    };
    const localProblem = (f: ManifestFile, err: unknown) => {
      if (err instanceof SizeMismatchError) mismatch(f);
      else if (errCode(err) !== '') problems.push(readProblem(f.path, err)); // ELOOP, ENOTREG, EPATHCHANGED, ENOENT...
      else throw err;
    };
    /** Upload `list` into `into`: small contents packed (pack, then its index), the others loose. */
    const upload = async (list: ManifestFile[], into: Catalog) => {
      const small = list.filter((f) => repo.packing && f.size < repo.tuning.packSmall);
      const loose = list.filter((f) => !(repo.packing && f.size < repo.tuning.packSmall));
      // Small contents: into packs; each pack is followed by its index before its blobs count.
      const plainSize = new Map<string, number>();
      const writer = new PackWriter(repo, into, (entries) => {
        for (const [n, , len] of entries) {
          result.uploaded++;
          result.uploadedBytes += plainSize.get(n) ?? 0;
          result.storedBytes += len;
        }
      });
      const packing = runPool(small, conc, async (f) => {
        const plain = await readLocal(f);
        if (plain === undefined) return;
        if (sha256(plain) !== f.sha256) return void mismatch(f);
        const n = repo.nameOf(f.sha256);
        plainSize.set(n, plain.length);
        await writer.add(n, await repo.encode(plain, blobAad(n)));
      }).then(() => writer.finish());
      // Larger contents (and every content of a version 1 repository): one object each, streamed.
      const uploadLoose = async (f: ManifestFile) => {
        const n = repo.nameOf(f.sha256);
        const key = objectKey(n);
        const path = storedPathOf(realPath, f, nameEscape);
        const sent = { bytes: 0 };
        let created: boolean;
        if (f.size < repo.tuning.packSmall) {
          const plain = await readLocal(f);
          if (plain === undefined) return;
          if (sha256(plain) !== f.sha256) return void mismatch(f);
          const stored = await repo.encode(plain, looseAad(n));
          sent.bytes = stored.length;
          created = await backend.putIfAbsent(key, stored);
        } else {
          try {
            created = await backend.putStreamIfAbsent(key, counted(repo.encodeStream(checkedFile(path, f.size, f.sha256), looseAad(n)), sent), f.size + 64);
          } catch (err) {
            if (err instanceof LocalMismatchError) return void (err.cause === undefined ? mismatch(f) : localProblem(f, err.cause));
            throw err;
          }
        }
        if (created) {
          result.uploaded++;
          result.uploadedBytes += f.size;
          result.storedBytes += sent.bytes;
        }
        into.loose.add(n);
      };
      // Streams hold a part or two each (lib-storage): a few at once keep the memory bounded.
      const large = loose.filter((f) => f.size >= repo.tuning.packSmall);
      const uploading = Promise.all([runPool(loose.filter((f) => f.size < repo.tuning.packSmall), conc, uploadLoose), runPool(large, Math.min(conc, 4), uploadLoose)]);
      await Promise.all([packing, uploading]);
      result.packs += writer.packs;
    };
    try {
      await upload(todo, catalog);
      if (repair) await repairStored(repo, catalog, src, todo, conc, result, (list) => upload(list, catalog));
    } finally {
      dirs.close();
    }
    if (problems.length > 0) {
      problems.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
      throw new BackupError('VERIFY_FAILED', `The local backup "${name}" is damaged (${problems.length} file(s) differ from its manifest, first: ${join(realPath, problems[0]!.path)}: ${problems[0]!.detail}): no snapshot was written. Run \`dawn-backup verify ${name}\`.`, { problems, path: realPath });
    }
    if (existing) {
      count(result);
      results.push(result);
      continue;
    }
    // The snapshot last: it names only contents that are in the repository now. A prune may have
    // collected some of them while this push was held up (see PushLock.beforeCommit): a pack, its index, or
    // both, or a loose object. Look again and upload what is missing, small contents into a new
    // pack and its index. When few objects hold the contents, each is checked with a HEAD;
    // otherwise (or when one is gone) the store is listed anew (indexes already read are not read
    // again).
    await beforeCommit();
    const blobNames = [...byHash.keys()].map((h) => repo.nameOf(h));
    if ((await stillStored(repo, catalog, blobNames, conc)) !== true) {
      cat = await loadCatalog(repo, conc, catalog);
      const now = cat;
      const lost = [...byHash.values()].filter((f) => !hasBlob(now, repo.nameOf(f.sha256)));
      if (lost.length > 0) await upload(lost, now).finally(() => dirs.close());
    }
    if (problems.length > 0) throw new BackupError('VERIFY_FAILED', `The local backup "${name}" changed during the push: no snapshot was written. Run \`dawn-backup verify ${name}\`.`, { problems, path: realPath });
    const body = await repo.encode(Buffer.from(JSON.stringify(doc)), snapshotKey(name));
    if (await backend.putIfAbsent(snapshotKey(name), body)) result.snapshot = 'created';
    else if (JSON.stringify((await readSnapshot(repo, name))?.metadata) !== JSON.stringify(meta)) {
      throw new BackupError('BACKUP_EXISTS', `Another push wrote a different backup named "${name}" into ${backend.url} at the same time; its objects are kept, no snapshot of this one was written.`);
    }
    count(result);
    results.push(result);
  }
  return results;
}

/**
 * `push --repair`: read every stored content of `src` (all but `uploaded`, just written) and
 * check it against its sha256; upload the damaged ones again through `upload` (into a new pack:
 * the old copy stays, readers fall back to the new one). A damaged loose object cannot be
 * written again under its name (objects are never overwritten): `VERIFY_FAILED` names it.
 */
async function repairStored(repo: Repo, cat: Catalog, src: PushSource, uploaded: ManifestFile[], conc: number, result: PushResult, upload: (list: ManifestFile[]) => Promise<void>): Promise<void> {
  const fresh = new Set(uploaded.map((f) => f.sha256));
  const stored = [...src.byHash.values()].filter((f) => !fresh.has(f.sha256));
  const byName = new Map(stored.map((f) => [repo.nameOf(f.sha256), f]));
  const found = await readBlobs(repo, cat, [...byName].map(([name, f]) => ({ name, sha256: f.sha256, size: f.size })), { concurrency: conc }, async (_w, chunks) => {
    for await (const _ of chunks); // read (and so checked), nothing kept
  });
  const damaged = [...found.keys()].map((n) => byName.get(n)!);
  const packable = damaged.filter((f) => repo.packing && f.size < repo.tuning.packSmall);
  const stuck = damaged.filter((f) => !packable.includes(f));
  await upload(packable);
  result.repaired = packable.length;
  if (stuck.length > 0) {
    const key = objectKey(repo.nameOf(stuck[0]!.sha256));
    throw new BackupError(
      'VERIFY_FAILED',
      `${stuck.length} content(s) of "${src.name}" are damaged in ${repo.url} and stored as single objects, which are never overwritten (first: ${stuck[0]!.path}, object ${key}). Remove ${stuck.length > 1 ? 'those objects' : 'that object'} from the repository by hand, then push again.${packable.length > 0 ? ` ${packable.length} packed content(s) were repaired.` : ''}`,
      { path: `${repo.url}/${key}`, problems: stuck.map((f) => ({ path: f.path, kind: 'modified', detail: `object ${objectKey(repo.nameOf(f.sha256))} is damaged` })) },
    );
  }
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
  /** The machine id of the host that made it (recorded by this release's backups; else `null`). */
  machineId: string | null;
}

/** Every snapshot of a repository, newest first; unreadable snapshot documents in `damaged`. */
export async function listRepo(opts: RepoOptions): Promise<RepoListing> {
  return listOpenRepo(opts, await openRepo(opts));
}

/** What {@link listRepo} returns. */
export interface RepoListing {
  repo: string;
  backups: RepoBackup[];
  damaged: { name: string; reason: string }[];
}

/**
 * {@link listRepo} of a repository already open (an encrypted one's key is not derived again).
 * `contents`, when given, gets each listed backup's file contents (sha256s), read in the same pass.
 */
async function listOpenRepo(opts: RepoOptions, repo: Repo, contents?: Map<string, string[]>): Promise<RepoListing> {
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
      // The manifest's shape is checked here: one malformed snapshot is listed as damaged, it
      // must not blind list, prune and `latest` to all the others.
      const files = checkedManifest(name, m, backend.url).filter(isFile);
      contents?.set(name, files.map((f) => f.sha256));
      backups.push({
        name,
        createdAt: createdAtOf(m, doc.pushed_at),
        pushedAt: doc.pushed_at,
        fileCount: files.length,
        totalBytes: files.reduce((a, f) => a + f.size, 0),
        sourceDir: typeof m.source_dir === 'string' ? m.source_dir : null,
        hostname: typeof m.hostname === 'string' ? m.hostname : null,
        machineId: typeof m.machine_id === 'string' ? m.machine_id : null,
      });
    } catch (err) {
      if (!BackupError.is(err) || (err.code !== 'BACKUP_INVALID' && err.code !== 'UNSAFE_PATH')) throw err;
      damaged.push({ name, reason: err.message });
    }
  });
  backups.sort((a, b) => b.createdAt - a.createdAt || (a.name < b.name ? 1 : -1));
  damaged.sort((a, b) => (a.name < b.name ? -1 : 1));
  return { repo: backend.url, backups, damaged };
}

/**
 * `latest`: the newest backup of the data root made by this host (its host name, and its machine
 * id when the backup records one). When this host has none: the newest of the one other host
 * whose backups match (a brand-new machine restoring), with a warning; several other hosts: refused,
 * naming them. Any other name: itself.
 */
export async function resolveRepoName(opts: RepoOptions, name: string, opened: Repo): Promise<string> {
  if (name !== 'latest') {
    validateBackupName(name);
    return name;
  }
  const { backups, repo } = await listOpenRepo(opts, opened); // open already: its key is not derived again
  const root = resolveDataRoot(undefined, (opts.env ?? process.env) as NodeJS.ProcessEnv);
  const usable = backups.filter((b) => !b.name.startsWith('pre_restore_'));
  let matching = usable.filter((b) => b.sourceDir === root);
  if (matching.length === 0 && new Set(usable.map((b) => b.sourceDir)).size === 1) matching = usable;
  if (matching.length === 0) {
    throw new BackupError('BACKUP_NOT_FOUND', `No backup of the data root ${root} in ${repo} for "latest"${usable.length ? ` (it holds backups of ${[...new Set(usable.map((b) => b.sourceDir))].join(', ')}): name the backup` : ''}. See \`dawn-backup list --repo ${repo}\`.`);
  }
  const me = machineIdentity();
  const hostOf = (b: RepoBackup) => b.hostname ?? '?';
  // This host's: same host name and, when both are known, same machine id (host names repeat on
  // cloned images; a machine id alone would take a renamed host's backups for its own, harmless).
  const mine = (b: RepoBackup) => b.hostname === me.host && (b.machineId === null || me.machine_id === undefined || b.machineId === me.machine_id);
  const own = matching.find(mine);
  if (own) return own.name;
  const hosts = [...new Set(matching.map(hostOf))];
  if (hosts.length > 1) {
    throw new BackupError(
      'BACKUP_NOT_FOUND',
      `"latest" is ambiguous in ${repo}: this host (${me.host}) has no backup of ${root} there, and ${hosts.length} other hosts do (${hosts.map((h) => `${h}: ${matching.find((b) => hostOf(b) === h)!.name}`).join(', ')}). Name the backup to use (see \`dawn-backup list --repo ${repo}\`).`,
    );
  }
  const pick = matching[0]!;
  const warn = opts.onWarning ?? ((m: string) => process.stderr.write(`dawn-backup: warning: ${m}\n`));
  warn(`this host (${me.host}) has no backup of ${root} in ${repo}; "latest" is ${pick.name}, made by ${hostOf(pick)}.`);
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
  /** With `readDataSubset`: the stored objects (packs and loose objects) holding the backup's contents. */
  stored?: number;
  /** With `readDataSubset`: how many of those were picked; `checked` counts the contents read from them. */
  storedRead?: number;
  bytes: number;
  problems: VerifyProblem[];
}

/** Create a new file (`O_EXCL|O_NOFOLLOW`) holding `chunks`, with `mode`. */
function writeNewFileSync(path: string | Buffer, chunks: Buffer[], mode: number): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0), 0o600);
  try {
    for (const c of chunks) for (let off = 0; off < c.length; ) off += writeSync(fd, c, off, c.length - off);
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}

/** The distinct contents of a manifest's files, by blob name, with the files holding each. */
export function blobsOf(repo: Repo, files: ManifestFile[]): Map<string, { w: Wanted; files: ManifestFile[] }> {
  const out = new Map<string, { w: Wanted; files: ManifestFile[] }>();
  for (const f of files) {
    const name = repo.nameOf(f.sha256);
    const g = out.get(name);
    if (g) g.files.push(f);
    else out.set(name, { w: { name, sha256: f.sha256, size: f.size }, files: [f] });
  }
  return out;
}

/**
 * Check that every object a pushed backup needs is in the repository; with `readData`, download
 * each one and check it against the manifest's sha256 (the server is never trusted); with
 * `readDataSubset`, download and check only a subset of the stored objects (see subset.ts).
 */
export async function verifyRepoBackup(opts: RepoOptions & { name: string; readData?: boolean; readDataSubset?: DataSubset }): Promise<RepoVerifyResult> {
  const repo = await openRepo(opts);
  const backend = repo.backend;
  const name = await resolveRepoName(opts, opts.name, repo);
  const doc = await readSnapshot(repo, name);
  if (!doc) throw new BackupError('BACKUP_NOT_FOUND', `No backup named "${name}" in ${backend.url}. Run \`dawn-backup list --repo ${backend.url}\`.`);
  const manifest = checkedManifest(name, doc.metadata, backend.url);
  const files = manifest.filter(isFile);
  const blobs = blobsOf(repo, files);
  const result: RepoVerifyResult = { name, repo: backend.url, status: 'ok', ok: true, files: files.length, objects: blobs.size, checked: 0, bytes: 0, problems: [] };
  const cat = await loadCatalog(repo, opts.concurrency ?? DEFAULT_CONCURRENCY);
  const report = (name: string, p: { kind: 'missing' | 'modified'; detail: string }) => {
    for (const f of blobs.get(name)!.files) result.problems.push({ path: f.path, ...p });
  };
  // `readData` reads every content; otherwise every content must be present, and with
  // `readDataSubset` the contents held by a subset of the stored objects (packs and loose
  // objects, by id: see subset.ts) are read.
  let toRead = [...blobs.values()].map((g) => g.w);
  const subset = opts.readData ? undefined : opts.readDataSubset;
  if (!opts.readData) {
    for (const [n, g] of blobs) {
      if (!hasBlob(cat, n)) report(n, { kind: 'missing', detail: `object ${g.w.sha256.slice(0, 16)}… is missing from the repository` });
    }
    toRead = subset ? toRead.filter((w) => hasBlob(cat, w.name)) : [];
  }
  if (subset) {
    const storedIn = (w: Wanted) => (cat.loose.has(w.name) ? w.name : cat.packed.get(w.name)!.pack);
    const ids = [...new Set(toRead.map(storedIn))];
    const picked = new Set(selectSubset(ids, subset));
    toRead = toRead.filter((w) => picked.has(storedIn(w)));
    result.subset = subset.kind === 'percent' ? `${subset.percent}%` : `${subset.n}/${subset.m}`;
    result.stored = ids.length;
    result.storedRead = picked.size;
  }
  if (toRead.length > 0) {
    const problems = await readBlobs(repo, cat, toRead, { concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY }, async (w, chunks) => {
      for await (const c of chunks) result.bytes += c.length;
    });
    result.checked = toRead.length - problems.size;
    for (const [n, p] of problems) report(n, p);
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
export async function pullBackup(opts: RepoOptions & { name: string; backupDir?: string | undefined; /** `false`: skip the syncfs before the rename (`restore --no-fsync`). @default true */ fsync?: boolean }): Promise<PullResult> {
  const repo = await openRepo(opts);
  const backend = repo.backend;
  const name = await resolveRepoName(opts, opts.name, repo);
  const doc = await readSnapshot(repo, name);
  if (!doc) throw new BackupError('BACKUP_NOT_FOUND', `No backup named "${name}" in ${backend.url}. Run \`dawn-backup list --repo ${backend.url}\`.`);
  const meta = doc.metadata;
  const manifest = checkedManifest(name, meta, backend.url);
  const files = manifest.filter(isFile);
  const backupDir = resolveBackupDir(opts.backupDir, (opts.env ?? process.env) as NodeJS.ProcessEnv);
  const final = join(backupDir, name);
  const result: PullResult = { name, repo: backend.url, path: final, backupDir, files: files.length, bytes: files.reduce((a, f) => a + f.size, 0), reused: false };

  /** A local backup of that name is there: reused when it is an intact copy, else `BACKUP_EXISTS`. */
  const alreadyThere = async (): Promise<PullResult> => {
    const local = await readMetadata(final, name).catch(() => undefined);
    if (local && JSON.stringify(local) === JSON.stringify(meta)) {
      const v = await verifyBackup({ name, backupDir });
      if (v.ok) return { ...result, reused: true };
    }
    throw new BackupError('BACKUP_EXISTS', `A local backup named "${name}" already exists in ${backupDir} and is not an intact copy of the repository's; nothing was changed. Pull into another --backup-dir.`, { path: final });
  };
  // The backup dir: a directory (or nothing yet) before anything is downloaded.
  const dirSt = await stat(backupDir).catch((err: unknown) => {
    if (errCode(err) === 'ENOENT') return undefined;
    throw ioError(backupDir, 'use the backup dir', err);
  });
  if (dirSt && !dirSt.isDirectory()) {
    throw new BackupError('IO', `The backup dir ${backupDir} exists and is not a directory; nothing was pulled. Pass another --backup-dir (or set DAWN_BACKUP_DIR).`, { path: backupDir });
  }
  if (await lstat(final).catch(() => undefined)) return alreadyThere();

  /** The outermost directory this pull created for the backup dir (removed again on failure). */
  let createdFrom: string | undefined;
  const tmp = join(backupDir, `.dawn-pull-${name}-${process.pid}-${randomTag()}`);
  let done = false;
  try {
    if (!dirSt) createdFrom = await mkdir(backupDir, { recursive: true });
    await mkdir(tmp, { mode: 0o700 });
    const nameEscape = nameEscapeOf(meta);
    const dirs = manifest.filter((m) => m.type === 'dir');
    for (const d of dirs) await mkdir(storedPathOf(tmp, d, nameEscape) as string, { recursive: true, mode: 0o700 });
    const blobs = blobsOf(repo, files);
    const cat = await loadCatalog(repo, opts.concurrency ?? DEFAULT_CONCURRENCY);
    const made = new Set<string>(dirs.map((d) => storedPathOf(tmp, d, nameEscape)).filter((p): p is string => typeof p === 'string'));
    const parentOf = (p: string | Buffer) => {
      if (typeof p !== 'string') return; // a name that is not UTF-8: its directory is in the manifest
      const dir = dirname(p);
      if (!made.has(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
      made.add(dir);
    };
    const found = await readBlobs(repo, cat, [...blobs.values()].map((g) => g.w), { concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY, stopOnProblem: true }, async (w, chunks) => {
      // The first file gets the bytes, the others (same content) a copy. Contents read whole
      // (packed blobs) are written synchronously: creating thousands of small files through the
      // thread pool is slower than doing it in place.
      const [first, ...others] = blobs.get(w.name)!.files;
      const path = storedPathOf(tmp, first!, nameEscape);
      parentOf(path);
      if (Array.isArray(chunks)) writeNewFileSync(path, chunks as Buffer[], parseMode(first!.mode) ?? 0o644);
      else {
        await writeNewFileFrom(path, chunks, 0o600);
        await chmod(path, parseMode(first!.mode) ?? 0o644);
      }
      for (const f of others) {
        const p = storedPathOf(tmp, f, nameEscape);
        parentOf(p);
        copyFileSync(path, p, constants.COPYFILE_EXCL);
        chmodSync(p, parseMode(f.mode) ?? 0o644);
      }
    });
    const problems: VerifyProblem[] = [];
    for (const [n, p] of found) for (const f of blobs.get(n)!.files) problems.push({ path: f.path, ...p });
    problems.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
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
    // Every content was checked against its sha256 before it was written; the tree itself
    // (names, types, symlink targets) is checked against the manifest before it becomes visible.
    const shape = await compareTree(tmp, manifest, nameEscape);
    if (shape.length > 0) {
      throw new BackupError('VERIFY_FAILED', `The pulled backup "${name}" does not match its manifest (${shape[0]!.path}: ${shape[0]!.detail}); nothing was pulled.`, { problems: shape });
    }
    if (opts.fsync !== false) await syncFileSystem(tmp);
    // Another pull of this name may win the race up to the rename: its copy is checked like one
    // that was there before (reused when intact, else BACKUP_EXISTS), and this one is removed.
    if (await lstat(final).catch(() => undefined)) return await alreadyThere();
    try {
      await rename(tmp, final);
    } catch (err) {
      if (errCode(err) === 'EEXIST' || errCode(err) === 'ENOTEMPTY') return await alreadyThere();
      throw err;
    }
    done = true;
  } catch (err) {
    // The disk being written: full, read-only... (a damaged or missing object is VERIFY_FAILED).
    throw errCode(err) !== '' && !BackupError.is(err) ? ioError(backupDir, 'write the pulled backup into', err, 'Nothing was pulled; the partial copy was removed.') : err;
  } finally {
    if (!done) {
      await removeTree(tmp).catch(() => undefined);
      // Every level `mkdir -p` made, innermost first; a level something else was put in stays.
      for (let d = backupDir; createdFrom !== undefined; d = dirname(d)) {
        if (!(await rmdir(d).then(() => true, () => false)) || d === createdFrom || d === dirname(d)) break;
      }
    }
  }
  return result;
}

// --- locks and prune ---------------------------------------------------------------------------

const LOCKS_PREFIX = 'locks/';
/** A lock older than this (measured on the store's clock) is stale: its holder was killed. */
export const LOCK_STALE_SECONDS = 6 * 3600;
/** Overrides {@link LOCK_STALE_SECONDS} (seconds) for the command that reads the locks. */
export const LOCK_STALE_ENV = 'DAWN_BACKUP_LOCK_STALE';
/**
 * The shortest stale timeout {@link LOCK_STALE_ENV} may set: a push renews its lock just before
 * it commits, but between its start and that renewal (reading, packing, uploading) a shorter
 * timeout would let a prune collect what it uploaded, or what it deduplicated against.
 */
export const LOCK_STALE_FLOOR = 300;
/** Tests only: any stale timeout, below the floor too (0: every other lock is stale at once). */
export const LOCK_STALE_TEST_ENV = 'DAWN_BACKUP_INTERNAL_LOCK_STALE_FOR_TESTS';

/** The stale timeout this command applies to other processes' locks. */
function lockStaleSeconds(opts: RepoOptions): number {
  const env = opts.env ?? process.env;
  const forTests = env[LOCK_STALE_TEST_ENV];
  if (forTests !== undefined && forTests !== '' && Number.isFinite(Number(forTests)) && Number(forTests) >= 0) return Number(forTests);
  const raw = env[LOCK_STALE_ENV];
  if (raw === undefined || raw === '') return LOCK_STALE_SECONDS;
  const v = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw.trim()) || !Number.isFinite(v)) {
    throw new BackupError('INVALID_OPTION', `${LOCK_STALE_ENV}="${raw}" is not a number of seconds (e.g. 21600 for 6 hours).`);
  }
  if (v < LOCK_STALE_FLOOR) {
    throw new BackupError('INVALID_OPTION', `${LOCK_STALE_ENV}=${raw} is below ${LOCK_STALE_FLOOR} seconds: a running push or prune would count as dead before it could renew its lock, and a prune could delete what a push is about to commit. Use at least ${LOCK_STALE_FLOOR} (the default is ${LOCK_STALE_SECONDS}).`);
  }
  return v;
}

/** A lock document (`locks/<kind>-<host>-<pid>-<tag>.json`). */
interface LockDoc extends MachineIdentity {
  kind: 'push' | 'prune';
  pid: number;
  /** Unix seconds, by the writer's clock: informative only (ages are measured on the store's clock). */
  created_at: number;
}

/** Another process's lock, as {@link otherLocks} found it. */
interface LockSeen {
  kind: LockDoc['kind'];
  host: string;
  pid: number;
  /** When the store wrote it (Unix seconds, the store's clock). */
  stored_at: number;
  /** Its age on the store's clock (seconds), against the lock this process just wrote. */
  age: number;
}

async function takeLock(repo: Repo, kind: LockDoc['kind']): Promise<string> {
  const me = machineIdentity();
  const key = `${LOCKS_PREFIX}${kind}-${me.host.replace(/[^A-Za-z0-9.-]/g, '_')}-${process.pid}-${randomTag()}.json`;
  const doc: LockDoc = { kind, ...me, pid: process.pid, created_at: Date.now() / 1000 };
  await repo.backend.putIfAbsent(key, Buffer.from(JSON.stringify(doc)));
  return key;
}

/**
 * The fresh locks of the given kinds, other than `own` (the lock this process has just written).
 * Ages are measured on the store's clock: a lock's time as the store recorded it (S3
 * LastModified, the file's mtime) against `own`'s, so a writer whose clock is wrong (hours
 * behind, or ahead) changes nothing. A lock written after `own` counts as fresh. A lock of this
 * very machine, boot and pid namespace (see {@link samePidSpace}) whose process is gone is
 * ignored at once; any other lock, unreadable ones too, counts until it is `stale` seconds old.
 */
async function otherLocks(repo: Repo, kinds: LockDoc['kind'][], own: string, stale: number): Promise<LockSeen[]> {
  const out: LockSeen[] = [];
  const listed = await repo.backend.listModified(LOCKS_PREFIX);
  const mine = listed.find((l) => l.key === own)?.modified;
  // (Not listed, or no time: a store without read-after-write listings. This machine's clock then.)
  const now = mine !== undefined && Number.isFinite(mine) ? mine : Date.now();
  await runPool(
    listed.filter((l) => l.key !== own && kinds.some((k) => l.key.startsWith(`${LOCKS_PREFIX}${k}-`))),
    8,
    async ({ key, modified }) => {
      const age = Number.isFinite(modified) ? (now - modified) / 1000 : 0; // no time: fresh (the safe side)
      if (age >= stale) return;
      const raw = await getBuffer(repo.backend, key);
      if (!raw) return; // released meanwhile
      let doc: Partial<LockDoc>;
      try {
        doc = JSON.parse(raw.toString('utf8')) as Partial<LockDoc>;
      } catch {
        doc = {};
      }
      if (typeof doc.pid === 'number' && samePidSpace(doc) && !isPidAlive(doc.pid)) return; // killed, here
      const kind = key.slice(LOCKS_PREFIX.length).startsWith('push-') ? 'push' : 'prune';
      out.push({ kind, host: String(doc.host ?? '?'), pid: Number(doc.pid ?? 0), stored_at: (Number.isFinite(modified) ? modified : now) / 1000, age: Math.max(0, age) });
    },
  );
  return out;
}

const duration = (s: number) => (s >= 3600 ? `${Math.round((s / 3600) * 10) / 10} h` : s >= 120 ? `${Math.round(s / 60)} min` : `${Math.round(s)} s`);

function busy(repo: Repo, what: string, locks: LockSeen[], stale: number): BackupError {
  const l = locks[0]!;
  return new BackupError(
    'BUSY',
    `${what} in ${repo.url}: a ${l.kind} by ${l.host} (pid ${l.pid}) whose lock the store wrote ${duration(l.age)} ago (${new Date(l.stored_at * 1000).toISOString()}, the store's clock) is running. Retry when it has finished; a killed one stops counting ${duration(stale)} after its lock was written.`,
  );
}

/**
 * A push lock: `BUSY` while a prune of the repository runs. A push calls `beforeCommit` just
 * before it writes a snapshot: the lock is renewed, and `BUSY` is thrown when a prune runs now. A
 * prune that saw this push's lock as stale (the push was stopped for longer than the stale
 * timeout) may have collected its uncommitted objects meanwhile: after `beforeCommit`, the push
 * checks its objects again and uploads the missing ones before the snapshot (a prune starting
 * after the renewal sees the fresh lock and refuses).
 */
class PushLock {
  private released = false;

  private constructor(
    private readonly repo: Repo,
    private key: string,
    private readonly stale: number,
  ) {}

  /** Write the lock, then look for a running prune (`BUSY`: the lock is removed again). */
  static async take(repo: Repo, stale: number): Promise<PushLock> {
    const lock = new PushLock(repo, await takeLock(repo, 'push'), stale);
    try {
      const prunes = await otherLocks(repo, ['prune'], lock.key, stale);
      if (prunes.length > 0) throw busy(repo, 'Cannot push now', prunes, stale);
    } catch (err) {
      await lock.release();
      throw err;
    }
    return lock;
  }

  async beforeCommit(): Promise<void> {
    const old = this.key;
    this.key = await takeLock(this.repo, 'push');
    // The old lock goes while the prune locks are listed (the new one is there already).
    const [running] = await Promise.all([otherLocks(this.repo, ['prune'], this.key, this.stale), this.repo.backend.delete(old).catch(() => undefined)]);
    if (running.length > 0) throw busy(this.repo, 'Cannot commit the push now (its uploaded objects stay; run it again afterwards)', running, this.stale);
  }

  /** Remove the lock (once; a failure is ignored: a lock left behind goes stale). */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.repo.backend.delete(this.key).catch(() => undefined);
  }
}

/** The outcome of {@link pruneRepo}. */
export interface RepoPruneResult {
  repo: string;
  dryRun: boolean;
  kept: string[];
  removed: string[];
  /** Contents (blobs) no remaining snapshot names. */
  garbage: number;
  /** Of those, how many are gone from the store (loose objects, and blobs of deleted packs). */
  garbageDeleted: number;
  /** Packs deleted: every blob unreferenced, or named by no index (unless `dryRun`: would be). */
  packsDeleted: number;
  /** Packs kept because some of their blobs are still referenced although others are not. */
  packsPartlyLive: number;
  /** Stored bytes of unreferenced blobs inside kept packs. */
  deadBytesKept: number;
  /**
   * Set when garbage collection was skipped (nothing was deleted but the snapshots retention
   * removed): a snapshot or an index could not be read, and it may name anything. `damaged`: the
   * snapshot names and index keys concerned. The CLI exits 3.
   */
  gcSkipped?: { reason: string; damaged: string[] };
}

/**
 * Apply a retention policy to a repository (the same rules as local `prune`, per source), then
 * delete every object that no remaining snapshot names (garbage collection). Holds a prune lock:
 * it refuses to start while a push runs (`BUSY`), and pushes refuse to start while it runs, so an
 * object uploaded by a push but not yet committed is never collected.
 */
export async function pruneRepo(opts: RepoOptions & { policy: RetentionPolicy; dryRun?: boolean }): Promise<RepoPruneResult> {
  const stale = lockStaleSeconds(opts);
  const repo = await openRepo(opts);
  const key = await takeLock(repo, 'prune');
  try {
    const running = await otherLocks(repo, ['push', 'prune'], key, stale);
    if (running.length > 0) throw busy(repo, 'Cannot prune now', running, stale);
    const contents = new Map<string, string[]>();
    const { backups, damaged } = await listOpenRepo(opts, repo, contents);
    const plan = planPrune(
      backups.map((b) => ({ name: b.name, createdAt: b.createdAt, appearedAt: b.pushedAt, source: `${b.hostname ?? '?'}:${b.sourceDir ?? '?'}` })),
      opts.policy,
    );
    const result: RepoPruneResult = { repo: repo.url, dryRun: Boolean(opts.dryRun), kept: [], removed: [], garbage: 0, garbageDeleted: 0, packsDeleted: 0, packsPartlyLive: 0, deadBytesKept: 0 };
    for (const d of plan) (d.keep ? result.kept : result.removed).push(d.name);
    if (!opts.dryRun) for (const name of result.removed) await repo.backend.delete(snapshotKey(name));
    if (damaged.length > 0) {
      // An unreadable snapshot may name anything: collect nothing, and say so.
      result.gcSkipped = {
        reason: `${damaged.length} snapshot(s) cannot be read (${damaged.map((d) => d.name).join(', ')}): they may name any object, so no object was deleted. Check them with \`dawn-backup list --repo ${repo.url}\`; remove a snapshot that cannot be repaired (snapshots/NAME.json) by hand, then prune again.`,
        damaged: damaged.map((d) => d.name),
      };
      return result;
    }
    const conc = opts.concurrency ?? DEFAULT_CONCURRENCY;
    const referenced = new Set<string>();
    // The kept backups' contents, as the listing read them (after the prune lock was taken).
    for (const name of result.kept) for (const h of contents.get(name) ?? []) referenced.add(repo.nameOf(h));
    const cat = await loadCatalog(repo, conc);
    // An unreadable index may describe live packs: collect nothing (a repair is a matter for a person).
    if (cat.damagedIndexes.length > 0) {
      result.gcSkipped = {
        reason: `${cat.damagedIndexes.length} index object(s) cannot be read (${cat.damagedIndexes.join(', ')}): the packs they describe are unknown, so no object was deleted. Run \`dawn-backup verify NAME --repo ${repo.url}\` on the backups; an index that cannot be repaired must be removed by hand (then push the backups again), then prune again.`,
        damaged: [...cat.damagedIndexes].sort(),
      };
      return result;
    }
    const deadLoose = [...cat.loose].filter((n) => !referenced.has(n));
    const dead = new Set(deadLoose);
    for (const n of cat.packed.keys()) if (!referenced.has(n)) dead.add(n);
    result.garbage = dead.size;
    // Packs: deleted when none of their blobs is referenced; a partly-live pack is kept whole.
    const packs = new Map<string, IndexPack>();
    for (const list of cat.indexes.values()) for (const p of list) packs.set(p.id, p);
    const deadPacks = [...packs.values()].filter((p) => p.blobs.every(([n]) => !referenced.has(n)));
    // (A pack that went missing is left out of the merged index.)
    const livePacks = [...packs.values()].filter((p) => cat.packs.has(p.id) && p.blobs.some(([n]) => referenced.has(n)));
    for (const p of livePacks) {
      const deadBlobs = p.blobs.filter(([n]) => !referenced.has(n));
      if (deadBlobs.length > 0) {
        result.packsPartlyLive++;
        result.deadBytesKept += deadBlobs.reduce((a, [, , len]) => a + len, 0);
      }
    }
    // Packs no index names: left by a push killed between a pack and its index (no running
    // push holds a fresh lock, checked above).
    const orphans = [...cat.packs].filter((id) => !packs.has(id));
    const deadInPacks = new Set<string>();
    for (const p of deadPacks) for (const [n] of p.blobs) if (!cat.loose.has(n) || dead.has(n)) deadInPacks.add(n);
    result.packsDeleted = deadPacks.length + orphans.length;
    if (!opts.dryRun) {
      // One index for the packs that stay, before the old ones go (a kill in between leaves
      // duplicates, which are harmless); the dead packs go last, once no index names them.
      if (deadPacks.length > 0 || cat.indexes.size > 1) {
        const fresh = livePacks.length > 0 ? await writeIndex(repo, livePacks) : undefined;
        await runPool([...cat.indexes.keys()].filter((k) => k !== fresh), conc, (k) => repo.backend.delete(k));
      }
      await runPool([...deadPacks.map((p) => p.id), ...orphans], conc, (id) => repo.backend.delete(packKey(id)));
      await runPool(deadLoose, conc, async (n) => {
        await repo.backend.delete(objectKey(n));
      });
      const stillStored = new Set([...livePacks.flatMap((p) => p.blobs.map(([n]) => n))]);
      result.garbageDeleted = [...dead].filter((n) => !stillStored.has(n)).length;
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
  const name = await resolveRepoName(opts, opts.name, repo);
  const doc = await readSnapshot(repo, name);
  if (!doc) throw new BackupError('BACKUP_NOT_FOUND', `No backup named "${name}" in ${repo.url}. Run \`dawn-backup list --repo ${repo.url}\`.`);
  const manifest = checkedManifest(name, doc.metadata, repo.url);
  // Read through the same blob reader as pull (a content may be loose or in a pack): the catalog
  // is loaded once, on the first read.
  let cat: Promise<Catalog> | undefined;
  return {
    repo: repo.url,
    name,
    doc,
    manifest,
    readFile: async (f) => {
      cat ??= loadCatalog(repo, opts.concurrency ?? DEFAULT_CONCURRENCY);
      const parts: Buffer[] = [];
      const w: Wanted = { name: repo.nameOf(f.sha256), sha256: f.sha256, size: f.size };
      const problems = await readBlobs(repo, await cat, [w], { concurrency: 1 }, async (_w, chunks) => {
        for await (const c of chunks) parts.push(c);
      });
      const p = problems.get(w.name);
      if (p) throw new BackupError('VERIFY_FAILED', `Backup "${name}" in ${repo.url}: ${f.path}: ${p.detail}.`, { problems: [{ path: f.path, ...p }] });
      return Buffer.concat(parts);
    },
  };
}
