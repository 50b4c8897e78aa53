import { mkdirSync } from 'node:fs';
import { chmod, mkdir, realpath, rename, stat, symlink } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { AtomicJsonError, withLock } from '@dawn/atomic-json';
import { HashPool } from './hash-pool.js';
import { makeDurable, plannedDurability } from './durability.js';
import { CopyWorker, DEFAULT_CONCURRENCY, NotRegularFileError } from './copy.js';
import { PathChangedError, readlinkConfined } from './confine.js';
import { BackupError, ioError } from './errors.js';
import { createExcludeMatcher, effectiveExcludes } from './exclude.js';
import { errCode, fsyncDir, lstatOrUndefined, modeToString, removeTree, runPool } from './fsutil.js';
import { infoFromMetadata, type BackupInfo } from './info.js';
import { cleanBackupDirLeftovers, partialDirName } from './leftovers.js';
import { manifestCounts, type ManifestEntry } from './metadata.js';
import { defaultBackupName, expandHome, resolveBackupDir, resolveDataRoot, validateBackupName } from './paths.js';
import { newBackupMetadata, writeBackupMetadata } from './write-metadata.js';
import type { ProgressListener } from './progress.js';
import { withDataRootLock } from './oplock.js';
import { recoverInterruptedRestores } from './recover.js';
import { readSummary } from './summary.js';
import { joinRel, manifestPathFields, manifestTargetFields, NAME_ESCAPE, relFromBytes, relKey, relText, storedRel, type Rel } from './relpath.js';
import { skippedEntry, walkTree, type SkippedEntry, type TreeEntry } from './walk.js';
import { findPrevious, storedMode, tryLink, type PreviousBackup } from './incremental.js';
import { hasRetentionRule, pruneBackups, validatePolicy, type PruneResult, type RetentionPolicy } from './prune.js';

/** Options of {@link createBackup}. */
export interface CreateBackupOptions {
  /**
   * The directory to back up (`~` expanded).
   * @default the data root: env `PROJECT_DAWN_DATA_ROOT`, else `~/.project-dawn`
   */
  source?: string;
  /**
   * Where backups live (created with mode 0700 when missing).
   * @default `<source>/../backups`
   */
  backupDir?: string;
  /**
   * Name of the new backup: a plain directory name (no `/`, `\`, `..`, leading `.`).
   * @default `dawn_backup_YYYYMMDD_HHMMSS` (local time)
   */
  name?: string;
  /** Extra exclude patterns (see {@link createExcludeMatcher}), added to the defaults. */
  exclude?: string | readonly string[];
  /**
   * Apply {@link DEFAULT_EXCLUDES}. When false only {@link ALWAYS_EXCLUDES} apply.
   * @default true
   */
  defaultExcludes?: boolean;
  /**
   * Make every file and directory durable before the backup is renamed into place, so a
   * backup that exists survives a power loss: one `syncfs` on Linux, else an fsync per file
   * and directory (see the README's Durability). `false` is faster; an interrupted *process*
   * still never leaves a complete-looking backup, but a power loss soon after may.
   * @default true
   */
  fsync?: boolean;
  /**
   * Files copied at once.
   * @default 32
   */
  concurrency?: number;
  /** Called as files are copied. */
  onProgress?: ProgressListener;
  /** The moment the backup is made (name and timestamp). @default now */
  now?: Date;
  /**
   * Copy every file. By default (`false`) a file whose sha256, size, mode and mtime equal those
   * recorded by the newest complete backup of the same source is a hard link to that backup's
   * file (see the README's Incremental backups).
   * @default false
   */
  full?: boolean;
  /**
   * After a successful backup, prune the backups of the same source with this policy
   * (`keepLast`, `keepDaily`, `keepWeekly`, `keepMonthly`, `keepWithin`, and the `pre_restore_*`
   * rules): never before the backup, never when it failed. Checked before anything is written.
   */
  keep?: RetentionPolicy;
}

/** What {@link createBackup} made. */
export interface BackupResult extends BackupInfo {
  /** Things left out that were not excluded (sockets, entries that vanished meanwhile), as text. */
  warnings: string[];
  /** The entries behind `warnings`. */
  skipped: SkippedEntry[];
  /**
   * What the excludes left out, relative to the source (a directory with a trailing `/`; its
   * content is not listed).
   */
  excluded: string[];
  /** Temporary directories of killed runs that were removed first. */
  cleanedLeftovers: string[];
  /** Milliseconds the backup took. */
  durationMs: number;
  /** The backup unchanged files were hard-linked to (`null`: none of the same source, or `full`). */
  linkedFrom: string | null;
  /** Files and bytes newly written (copied) into this backup. */
  newFiles: number;
  newBytes: number;
  /** Files and bytes that are hard links to `linkedFrom`'s files (no data written). */
  linkedFiles: number;
  linkedBytes: number;
  /** What `keep` pruned (absent without `keep`, or when the prune failed: see `pruneError`). */
  pruned?: PruneResult;
  /** Why the prune after the backup failed (the backup itself is complete). */
  pruneError?: { code: string; message: string };
}

const toArray = (x: string | readonly string[] | undefined): string[] => (x === undefined ? [] : typeof x === 'string' ? [x] : [...x]);

/** Why an entry whose path changed under the backup was not copied. */
const CHANGED_PATH = 'a directory on its path was replaced during the backup (by a symlink, or moved): not copied, nothing outside the source is ever read';

/** Posix form of a relative path. */
const posix = (p: string): string => (sep === '/' ? p : p.split(sep).join('/'));

/**
 * Back up a directory (by default the data root) into `<backupDir>/<name>`, all or nothing:
 * the copy is built in a temporary directory `.<name>.partial-h<host>-<pid>-<tag>` in the backup dir,
 * every file hashed (sha256) as it is copied, made durable (fsync), and renamed to `<name>`
 * only when complete, with `.backup_metadata.json` (manifest + summary) inside. Killed at
 * any moment, no complete-looking backup appears; the next run removes the leftover.
 *
 * Never reads an atomic-json temp file as data; JSON files written by atomic-json (rename
 * over) are read whole even while a node writes them. A backup dir inside the source is
 * excluded automatically. Symlinks are recorded as links (never followed).
 *
 * @throws {BackupError} `INVALID_NAME`, `INVALID_OPTION` (bad exclude pattern, backup dir is
 *   the source), `SOURCE_NOT_FOUND`, `BACKUP_EXISTS`, `IO`. Nothing is left behind on failure.
 * @example
 * ```ts
 * const b = await createBackup({ source: '/srv/dawn', backupDir: '/srv/backups', exclude: ['cache/'] });
 * console.log(b.path, b.fileCount, b.totalBytes, b.summary?.peerCount);
 * ```
 */
export async function createBackup(opts: CreateBackupOptions = {}): Promise<BackupResult> {
  // One operation per data root at a time (re-entrant for restore's own pre_restore_ backup);
  // usage errors first, so they never touch the disk.
  if (opts.name !== undefined) validateBackupName(opts.name);
  createExcludeMatcher(effectiveExcludes(toArray(opts.exclude), opts.defaultExcludes ?? true));
  if (opts.keep !== undefined) validatePolicy(opts.keep);
  return withDataRootLock(opts.source !== undefined ? resolve(expandHome(opts.source)) : resolveDataRoot(), 'backup', () => createBackupLocked(opts));
}

async function createBackupLocked(opts: CreateBackupOptions): Promise<BackupResult> {
  const t0 = performance.now();
  const started = opts.now ?? new Date();
  const fsync = opts.fsync ?? true;
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? DEFAULT_CONCURRENCY));

  // --- check everything before touching the disk -------------------------------------------
  const { source, name, excludes, backupDir } = backupInputs(opts, started);
  const excluded = createExcludeMatcher(excludes);

  // Finish or undo a restore of this source that was killed (it may even be absent for an
  // instant of the swap: its data is then beside it).
  const recovery = await recoverInterruptedRestores(source);
  const realSource = await realSourceOf(source);

  if (realSource !== source) {
    const more = await recoverInterruptedRestores(realSource);
    recovery.actions.push(...more.actions);
    recovery.warnings.push(...more.warnings);
  }
  const warnings: string[] = [...recovery.actions.map((a) => `recovered: ${a}`), ...recovery.warnings];

  try {
    await mkdir(backupDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw ioError(backupDir, 'create the backup dir', err);
  }
  const realBackupDir = await realpath(backupDir);
  const { finalPath, skipRel } = await checkTarget(backupDir, realBackupDir, realSource, name);
  const cleanedLeftovers = await cleanBackupDirLeftovers(backupDir, { warn: (m) => warnings.push(m) });
  // The newest complete backup of the same source: unchanged files become hard links to its files.
  const previous: PreviousBackup | undefined = opts.full ? undefined : await findPrevious(realBackupDir, realSource);

  // --- build under a temporary name ---------------------------------------------------------
  const partial = join(backupDir, partialDirName(name));
  try {
    await mkdir(partial, { mode: 0o700 });
    await chmod(partial, 0o700);
  } catch (err) {
    throw ioError(partial, 'create the temporary backup directory', err);
  }
  let committed = false;
  try {
    opts.onProgress?.({ phase: 'scan', files: 0, totalFiles: 0, bytes: 0 });
    const excludedPaths: string[] = [];
    const walked = await walkTree(realSource, {
      exclude: (rel, isDir, exact) => {
        if (rel === skipRel) return true;
        const out = excluded(rel, isDir, exact);
        if (out) excludedPaths.push(isDir ? `${rel}/` : rel);
        return out;
      },
      skipLockDirs: true,
      confined: true,
    });
    const skipped = [...walked.skipped];
    const entries = walked.entries;
    const manifest: (ManifestEntry | undefined)[] = new Array(entries.length);
    // Where each entry goes inside the backup: its own path, but for the reserved top-level
    // names (`.backup_metadata.json`, `.backup_manifest.json`...), stored with one more `~`
    // (metadata `name_escape: 2`).
    const stored = (rel: Rel): Rel => storedRel(rel, NAME_ESCAPE);

    // Directories: created 0700 inside the backup (their real modes are in the manifest).
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.kind !== 'dir') continue;
      mkdirSync(joinRel(partial, stored(e.rel)), { mode: 0o700 }); // sync: no thread-pool hop per directory; fails on anything existing
      manifest[i] = { ...manifestPathFields(e.rel), type: 'dir', mode: modeToString(e.mode ?? 0o755) };
    }

    const fileIdx: number[] = [];
    const linkIdx: number[] = [];
    for (let i = 0; i < entries.length; i++) {
      if (entries[i]!.kind === 'file') fileIdx.push(i);
      else if (entries[i]!.kind === 'symlink') linkIdx.push(i);
    }
    // A journaled document (a snapshot `X` with its op journal `X.journal`, atomic-json's
    // JournaledJson: the peer registry) is copied as one: both files under X's lock, so the
    // backup holds a snapshot and the journal that extends it, never a pair from two moments.
    const journaled = journaledPairs(entries, fileIdx);
    const pairedIdx = new Set(journaled.flatMap((p) => [p.snapshot, ...(p.journal !== undefined ? [p.journal] : [])]));
    const plainIdx = fileIdx.filter((i) => !pairedIdx.has(i));
    let doneFiles = 0;
    let doneBytes = 0;
    let linkedFiles = 0;
    let linkedBytes = 0;
    const totalFiles = fileIdx.length;
    opts.onProgress?.({ phase: 'copy', files: 0, totalFiles, bytes: 0 });
    const workers: CopyWorker[] = [];
    const lateLinks: number[] = [];
    const planned = plannedDurability(fsync);
    const pool = new HashPool();
    try {
      const copyOne = async (i: number, lane: number, expectMissing = false) => {
        const worker = (workers[lane] ??= new CopyWorker(planned === 'fsync', pool));
        const e = entries[i]!;
        try {
          const src = joinRel(realSource, e.rel);
          const dst = joinRel(partial, stored(e.rel));
          const prev = previous?.files.get(relKey(e.rel));
          const link = prev ? await tryLink(worker, src, dst, prev, previous!) : undefined;
          const c =
            link?.linked ??
            (await worker.copy({
              src,
              dst,
              // Inside the backup: owner can always read; no setuid/setgid/sticky. Real mode in the manifest.
              modeFor: storedMode,
              confined: true, // a directory on the way swapped for a symlink never makes it read outside the source
            }));
          if (link) {
            linkedFiles++;
            linkedBytes += c.size;
          }
          manifest[i] = { ...manifestPathFields(e.rel), type: 'file', size: c.size, mode: modeToString(c.mode), sha256: c.sha256, mtime: c.mtime };
          doneBytes += c.size;
        } catch (err) {
          const code = errCode(err);
          if (code === 'ENOENT' && expectMissing) {
            // a journal folded into its snapshot since the walk: the snapshot copied under the lock holds it all
          } else if (code === 'ENOENT') skipped.push(skippedEntry(e.rel, 'vanished during the backup'));
          else if (code === 'ELOOP') lateLinks.push(i); // replaced by a symlink meanwhile
          else if (err instanceof NotRegularFileError) skipped.push(skippedEntry(e.rel, 'no longer a regular file'));
          else if (err instanceof PathChangedError) skipped.push(skippedEntry(e.rel, CHANGED_PATH));
          else throw ioError(join(realSource, relText(e.rel)), 'copy', err);
        }
        doneFiles++;
        opts.onProgress?.({ phase: 'copy', files: doneFiles, totalFiles, bytes: doneBytes });
        await worker.maybeYield();
      };
      await runPool(plainIdx, concurrency, (i, lane) => copyOne(i, lane));
      for (const pair of journaled) {
        const snapshotFile = join(realSource, relText(entries[pair.snapshot]!.rel));
        await copyJournaled(snapshotFile, warnings, async () => {
          await copyOne(pair.snapshot, 0);
          // A journal started after the walk listed the directory extends this very snapshot: taken too.
          const journal = pair.journal ?? (await lateJournal(entries, pair.snapshot, snapshotFile, (rel) => excluded(rel, false, true)));
          if (journal !== undefined) await copyOne(journal, 0, true);
        });
      }
    } finally {
      await pool.close();
    }

    // Symlinks: recorded and recreated as links, never followed.
    for (const i of [...linkIdx, ...lateLinks]) {
      const e = entries[i]!;
      let target: string | Buffer;
      try {
        // Targets are bytes too: kept exactly.
        target = relFromBytes(readlinkConfined(joinRel(realSource, e.rel)));
      } catch (err) {
        const code = errCode(err);
        if (code === 'ENOENT') skipped.push(skippedEntry(e.rel, 'vanished during the backup'));
        else if (code === 'EINVAL') skipped.push(skippedEntry(e.rel, 'changed type during the backup'));
        else if (err instanceof PathChangedError || code === 'ELOOP' || code === 'ENOTDIR') skipped.push(skippedEntry(e.rel, CHANGED_PATH));
        else throw ioError(join(realSource, relText(e.rel)), 'read the symlink', err);
        continue;
      }
      await symlink(target, joinRel(partial, stored(e.rel))); // fails on anything existing
      manifest[i] = { ...manifestPathFields(e.rel), type: 'symlink', ...manifestTargetFields(target) };
    }

    const finalManifest = manifest.filter((m): m is ManifestEntry => m !== undefined);
    const { fileCount, totalBytes } = manifestCounts(finalManifest);

    // Read from the finished copy (read-only): the summary describes exactly what the backup holds.
    const summary = await readSummary(partial);
    // Every file and directory durable before the metadata that declares the backup complete.
    if (planned !== 'none') opts.onProgress?.({ phase: 'sync', files: doneFiles, totalFiles, bytes: doneBytes });
    const durability = await makeDurable(
      planned,
      partial,
      entries.filter((_, i) => manifest[i]?.type === 'file').map((e) => stored(e.rel)),
      entries.filter((e) => e.kind === 'dir').map((e) => stored(e.rel)),
      concurrency,
    );
    const meta = newBackupMetadata(
      { name, started, sourceDir: realSource, backupPath: finalPath, excludes, manifest: finalManifest, rootMode: walked.rootMode, durability, summary },
      { linked_from: previous && linkedFiles > 0 ? previous.name : null, linked_files: linkedFiles, linked_bytes: linkedBytes },
    );
    // `.backup_manifest.json` (a hard link to the previous backup's when byte-identical), then
    // `.backup_metadata.json`, each created exclusively (never through a symlink, never over
    // anything): the partial dir is ours and fresh, and no source entry is stored under these
    // names (name_escape).
    await writeBackupMetadata(partial, meta, { mode: 0o600, fsync, linkBase: previous?.manifestRef !== undefined ? { path: previous.path, ref: previous.manifestRef } : undefined });
    if (fsync) await fsyncDir(partial);


    // --- commit: one rename -----------------------------------------------------------------
    try {
      await rename(partial, finalPath);
    } catch (err) {
      const code = errCode(err);
      if (code === 'EEXIST' || code === 'ENOTEMPTY') {
        throw new BackupError('BACKUP_EXISTS', `A backup named "${name}" appeared at ${finalPath} while this one was made. Choose another --name.`, {
          path: finalPath,
          cause: err,
        });
      }
      throw ioError(finalPath, 'rename the finished backup into place at', err);
    }
    if (fsync) await fsyncDir(backupDir);

    for (const s of skipped) warnings.push(`skipped ${s.rel}${s.relB64 !== undefined ? ` (name bytes, base64: ${s.relB64})` : ''}: ${s.reason}`);
    const info = await infoFromMetadata(name, finalPath, meta);
    const result: BackupResult = {
      ...info,
      warnings,
      skipped,
      excluded: excludedPaths,
      cleanedLeftovers,
      durationMs: 0,
      linkedFrom: previous && linkedFiles > 0 ? previous.name : null,
      newFiles: fileCount - linkedFiles,
      newBytes: totalBytes - linkedBytes,
      linkedFiles,
      linkedBytes,
    };
    committed = true;
    // Retention of this source, only now that the backup is complete and durable.
    if (opts.keep !== undefined && hasRetentionRule(opts.keep)) {
      try {
        result.pruned = await pruneBackups({ ...opts.keep, backupDir, source: realSource, ...(opts.now ? { now: opts.now } : {}) });
      } catch (err) {
        result.pruneError = { code: BackupError.is(err) ? err.code : 'IO', message: err instanceof Error ? err.message : String(err) };
      }
    }
    result.durationMs = Math.round(performance.now() - t0);
    return result;
  } catch (err) {
    if (committed) throw err;
    await removeTree(partial).catch(() => {});
    if (BackupError.is(err)) throw err;
    throw ioError(partial, 'build the backup in', err);
  }
}

/** The source, name, effective excludes and backup dir of a backup (usage errors thrown here, before the disk). */
export function backupInputs(opts: CreateBackupOptions, started: Date): { source: string; name: string; excludes: string[]; backupDir: string } {
  const source = opts.source !== undefined ? resolve(expandHome(opts.source)) : resolveDataRoot();
  const name = opts.name ?? defaultBackupName(started);
  validateBackupName(name);
  const excludes = effectiveExcludes(toArray(opts.exclude), opts.defaultExcludes ?? true);
  createExcludeMatcher(excludes); // INVALID_OPTION
  return { source, name, excludes, backupDir: resolveBackupDir(opts.backupDir, process.env, source) };
}

/** The real path of the source directory. @throws {BackupError} `SOURCE_NOT_FOUND`, `IO`. */
export async function realSourceOf(source: string): Promise<string> {
  try {
    const st = await stat(source);
    if (!st.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    return await realpath(source);
  } catch (err) {
    const code = errCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new BackupError(
        'SOURCE_NOT_FOUND',
        `The source ${source} does not exist or is not a directory. Pass --source DIR (or set PROJECT_DAWN_DATA_ROOT) to the Dawn data root.`,
        { path: source, cause: err },
      );
    }
    throw ioError(source, 'read the source', err);
  }
}

/**
 * Where the backup goes, checked: not the source itself (`INVALID_OPTION`), no backup of that
 * name yet (`BACKUP_EXISTS`); and the backup dir's path inside the source, if it is there (never
 * copied into itself).
 */
export async function checkTarget(backupDir: string, realBackupDir: string, realSource: string, name: string): Promise<{ finalPath: string; skipRel: string | undefined }> {
  if (realBackupDir === realSource) {
    throw new BackupError('INVALID_OPTION', `The backup dir ${backupDir} is the source itself. Choose a backup dir outside the source (--backup-dir).`, {
      path: backupDir,
    });
  }
  const finalPath = join(backupDir, name);
  if (await lstatOrUndefined(finalPath)) {
    throw new BackupError('BACKUP_EXISTS', `A backup named "${name}" already exists at ${finalPath}. Choose another --name, or remove the old backup first.`, {
      path: finalPath,
    });
  }
  const backupRel = relative(realSource, realBackupDir);
  const skipRel = backupRel !== '' && !backupRel.startsWith('..') && !isAbsolute(backupRel) ? posix(backupRel) : undefined;
  return { finalPath, skipRel };
}

/** A snapshot file and its journal (`X` and `X.journal`), by entry index. */
interface JournaledPair {
  snapshot: number;
  journal: number | undefined;
}

/** The peer registry's file: always copied under its lock (a journal may appear during the backup). */
const REGISTRY_REL = 'mesh/peer_registry.json';

function journaledPairs(entries: readonly { rel: Rel; kind: string }[], fileIdx: readonly number[]): JournaledPair[] {
  const byRel = new Map<string, number>();
  for (const i of fileIdx) {
    const rel = entries[i]!.rel;
    if (typeof rel === 'string') byRel.set(rel, i);
  }
  const pairs: JournaledPair[] = [];
  for (const [rel, i] of byRel) {
    const journal = byRel.get(`${rel}.journal`);
    if (journal !== undefined || rel === REGISTRY_REL) pairs.push({ snapshot: i, journal });
  }
  return pairs;
}

/**
 * Under the document's lock: when `<file>.journal` exists now but was not in the walk (a writer
 * started it after the directory was listed), add it as an entry and return its index.
 */
async function lateJournal(entries: TreeEntry[], snapshot: number, file: string, isExcluded: (rel: string) => boolean): Promise<number | undefined> {
  const rel = entries[snapshot]!.rel;
  if (typeof rel !== 'string' || isExcluded(`${rel}.journal`)) return undefined;
  const st = await lstatOrUndefined(`${file}.journal`);
  if (st === undefined || !st.isFile()) return undefined; // no journal: the snapshot alone is the document
  return entries.push({ rel: `${rel}.journal`, kind: 'file' }) - 1;
}

/**
 * Run `copy` holding the atomic-json lock of `file` (as a writer of the journaled document would).
 * Where the lock cannot be made (a read-only source, no permission to create `<file>.lock`), no
 * process can be writing there either: the files are copied without it, with a warning.
 */
async function copyJournaled(file: string, warnings: string[], copy: () => Promise<void>): Promise<void> {
  try {
    await withLock(file, copy, { timeoutMs: 30_000 });
  } catch (err) {
    if (!AtomicJsonError.is(err)) throw err;
    if (err.code === 'LOCKED') {
      throw new BackupError(
        'BUSY',
        `Cannot back up ${file} consistently: its lock has been held for more than 30 s (a node writing it, or one that hangs). ` +
          'Nothing was kept of this backup; retry later.',
        { path: file, cause: err },
      );
    }
    const sys = errCode(err.cause);
    if (err.code === 'IO' && (sys === 'EROFS' || sys === 'EACCES' || sys === 'EPERM')) {
      warnings.push(`copied ${file} and its journal without its lock (cannot create ${file}.lock: ${sys}); nothing can be writing there`);
      await copy();
      return;
    }
    throw err;
  }
}
