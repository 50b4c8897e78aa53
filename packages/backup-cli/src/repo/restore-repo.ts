import { closeSync, constants, fchmodSync, fsyncSync, futimesSync, openSync, writeSync } from 'node:fs';
import { copyFile, open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { BackupError, type VerifyProblem } from '../errors.js';
import { currentUmask } from '../fsutil.js';
import type { ManifestFile } from '../metadata.js';
import { expandHome, resolveBackupDir, resolveDataRoot } from '../paths.js';
import { restoreFrom, type RestoreOptions, type RestoreResult, type SourceOpener } from '../restore.js';
import type { RestorePlan } from '../partial.js';
import { stagedAttrs, type StageSource } from '../stage-source.js';
import { refuseRepoInside } from './backend.js';
import { snapshotKey } from './format.js';
import { blobsOf, checkedManifest, DEFAULT_CONCURRENCY, openRepo, readSnapshot, resolveRepoName, type RepoOptions } from './repository.js';
import { loadCatalog, readBlobs, type Catalog, type Repo } from './store.js';

/**
 * Options of {@link restoreFromRepo}: those of a local restore (`backupDir` is where the
 * `pre_restore_*` backup of the current target goes) and of a repository; `concurrency` is the
 * number of requests in flight.
 */
export type RepoRestoreOptions = Omit<RestoreOptions, 'concurrency'> & RepoOptions;

/** What {@link restoreFromRepo} did: a local restore's result, and the repository. */
export interface RepoRestoreResult extends RestoreResult {
  repo: string;
}

/**
 * Restore a backup of a repository (`latest`: the newest of the data root) straight from its
 * objects, with every guarantee of a local restore (see `restoreBackup`): the restored tree is
 * built beside the target from the repository's contents, each one checked against the
 * manifest's sha256 before it is written and the tree's shape checked against the manifest, then
 * the current target is saved as `pre_restore_*` (unless `overwrite`) and swapped. A damaged or
 * missing object is `VERIFY_FAILED` before anything local changes: no `pre_restore_*`, the target
 * untouched, the staging removed. Each file is written once: no local copy of the backup is kept
 * (`pullBackup` makes one). With `include`, only the contents the selected files need are
 * downloaded.
 *
 * @throws {BackupError} as `restoreBackup`, and `REPO_INVALID`, `WRONG_PASSWORD`.
 */
export async function restoreFromRepo(opts: RepoRestoreOptions): Promise<RepoRestoreResult> {
  await refuseRepoInsideTarget(opts);
  const url = { value: '' };
  const r = (await restoreFrom(localOptions(opts), false, repoOpener(opts, url))) as RestoreResult;
  return { ...r, repo: url.value };
}

/** What {@link restoreFromRepo} would do (see `planRestore`): reads the snapshot only, downloads no content. */
export async function planRestoreFromRepo(opts: RepoRestoreOptions): Promise<RestorePlan> {
  await refuseRepoInsideTarget(opts);
  return (await restoreFrom(localOptions(opts), true, repoOpener(opts, { value: '' }))) as RestorePlan;
}

/** A directory repository inside the target would be replaced by the restore (with `overwrite`, kept nowhere). */
async function refuseRepoInsideTarget(opts: RepoRestoreOptions): Promise<void> {
  const target = opts.target !== undefined ? resolve(expandHome(opts.target)) : resolveDataRoot();
  await refuseRepoInside(opts.repo, target, 'TARGET_INVALID', 'the restore target');
}

function localOptions(opts: RepoRestoreOptions): RestoreOptions {
  const { concurrency: _requests, ...rest } = opts;
  return rest;
}

function repoOpener(ro: RepoOptions, url: { value: string }): SourceOpener {
  return async (opts, how, warn) => {
    const repo = await openRepo(ro);
    url.value = repo.url;
    const requests = ro.concurrency ?? DEFAULT_CONCURRENCY;
    // Where each content is (listings and indexes): read while the snapshot is read and the
    // target checked. A failure shows when the contents are read (never unhandled meanwhile).
    const cat = how.dryRun ? undefined : loadCatalog(repo, requests);
    cat?.catch(() => undefined);
    const name = await resolveRepoName({ ...ro, onWarning: warn }, opts.name, repo);
    const doc = await readSnapshot(repo, name);
    if (!doc) throw new BackupError('BACKUP_NOT_FOUND', `No backup named "${name}" in ${repo.url}. Run \`dawn-backup list --repo ${repo.url}\`.`);
    const manifest = checkedManifest(name, doc.metadata, repo.url);
    const backupDir = resolveBackupDir(opts.backupDir, (ro.env ?? process.env) as NodeJS.ProcessEnv);
    return { name, backupPath: `${repo.url}/${snapshotKey(name)}`, backupDir, meta: doc.metadata, manifest, source: repoSource(repo, requests, cat) };
  };
}

const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);

/** Whether `fchmod` must follow the create (the umask took bits, or special bits). */
const needsChmod = (mode: number) => (mode & ~currentUmask()) !== mode || mode > 0o777;

/** Create a new file holding `chunks`, with the manifest's mode and mtime (synchronous: small contents). */
function writeStagedSync(path: string | Buffer, chunks: Iterable<Buffer>, m: ManifestFile, fsync: boolean): void {
  const { mode, times } = stagedAttrs(m);
  const fd = openSync(path, CREATE_FLAGS, mode);
  try {
    for (const c of chunks) for (let off = 0; off < c.length; ) off += writeSync(fd, c, off, c.length - off);
    if (needsChmod(mode)) fchmodSync(fd, mode);
    if (times) futimesSync(fd, times.atime, times.mtime);
    if (fsync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Create a new file from a stream (a large content), with the manifest's mode and mtime. */
async function writeStagedStream(path: string | Buffer, chunks: AsyncIterable<Buffer>, m: ManifestFile, fsync: boolean): Promise<void> {
  const { mode, times } = stagedAttrs(m);
  const h = await open(path, CREATE_FLAGS, mode);
  try {
    for await (const c of chunks) for (let off = 0; off < c.length; ) off += (await h.write(c, off, c.length - off)).bytesWritten;
    if (needsChmod(mode)) await h.chmod(mode);
    if (times) await h.utimes(times.atime, times.mtime);
    if (fsync) await h.sync();
  } finally {
    await h.close();
  }
}

/** A copy of a staged file (the same content at another path), with its own mode and mtime. */
async function copyStaged(from: string | Buffer, to: string | Buffer, m: ManifestFile, fsync: boolean): Promise<void> {
  await copyFile(from, to, constants.COPYFILE_EXCL);
  const { mode, times } = stagedAttrs(m);
  const h = await open(to, constants.O_WRONLY | (constants.O_NOFOLLOW ?? 0));
  try {
    await h.chmod(mode);
    if (times) await h.utimes(times.atime, times.mtime);
    if (fsync) await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * A repository's blobs as the source of a restore: only the contents of the files staged are
 * read (packed ones by ranged GETs, neighbours together), each checked against its size and
 * sha256 by {@link readBlobs}; a content several files share is downloaded once. A large
 * content is streamed into its file and checked as its last byte goes by: a damaged one is
 * reported like any other, and its file is only ever in the staging directory, which the restore
 * then removes.
 */
function repoSource(repo: Repo, requests: number, catalog: Promise<Catalog> | undefined): StageSource {
  let cat = catalog;
  return {
    verified: true,
    checkStagedTree: true,
    checkEntries: () => [], // the manifest is the only record of directories and symlinks
    damaged: (name, problems) =>
      new BackupError(
        'VERIFY_FAILED',
        `Backup "${name}" in ${repo.url} is damaged (${problems.length} problem(s), first: ${problems[0]!.path}: ${problems[0]!.detail}). Nothing was restored; the target is untouched. ` +
          `Run \`dawn-backup verify ${name} --repo ${repo.url} --read-data\`.`,
        { path: repo.url, problems },
      ),
    async stageFiles(files, dst, o) {
      const blobs = blobsOf(repo, [...files]);
      const index = new Map<ManifestFile, number>();
      for (const [i, f] of files.entries()) index.set(f, i);
      cat ??= loadCatalog(repo, requests);
      // Packed contents are written synchronously, a range of a pack at a time: let the event loop
      // read the other downloads in between, so writing and downloading overlap.
      let lastYield = performance.now();
      const found = await readBlobs(repo, await cat, [...blobs.values()].map((g) => g.w), { concurrency: requests, stopOnProblem: true }, async (w, chunks) => {
        const [first, ...others] = blobs.get(w.name)!.files;
        const path = dst(first!, index.get(first!)!);
        if (Array.isArray(chunks)) {
          // A content read whole (packed): written in place, one synchronous create per file.
          writeStagedSync(path, chunks as Buffer[], first!, o.fsync);
          o.onFile(first!, first!.size);
          for (const f of others) {
            writeStagedSync(dst(f, index.get(f)!), chunks as Buffer[], f, o.fsync);
            o.onFile(f, f.size);
          }
          if (performance.now() - lastYield > 20) {
            await new Promise((resolve) => setImmediate(resolve));
            lastYield = performance.now();
          }
          return;
        }
        await writeStagedStream(path, chunks as AsyncIterable<Buffer>, first!, o.fsync);
        o.onFile(first!, first!.size);
        for (const f of others) {
          await copyStaged(path, dst(f, index.get(f)!), f, o.fsync);
          o.onFile(f, f.size);
        }
      });
      const problems: VerifyProblem[] = [];
      for (const [n, p] of found) {
        for (const f of blobs.get(n)!.files) problems.push({ path: f.path, ...(f.path_b64 !== undefined ? { pathB64: f.path_b64 } : {}), ...p });
      }
      return problems.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    },
  };
}
