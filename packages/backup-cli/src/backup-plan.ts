import { realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import { backupInputs, checkTarget, realSourceOf, type CreateBackupOptions } from './backup.js';
import { CopyWorker, DEFAULT_CONCURRENCY, NotRegularFileError } from './copy.js';
import { PathChangedError } from './confine.js';
import { explainExclude } from './exclude.js';
import { errCode, runPool } from './fsutil.js';
import { findPrevious, linkable, type PreviousBackup } from './incremental.js';
import { validatePolicy } from './prune.js';
import { joinRel, manifestPathFields, relKey, type Rel } from './relpath.js';
import { skippedEntry, walkTree, type SkippedEntry } from './walk.js';

/** A file in a {@link BackupPlan}. */
export interface PlannedFile {
  /** Path relative to the source (readable text). */
  path: string;
  /** Base64 of the exact path bytes, only when they are not valid UTF-8. */
  path_b64?: string;
  size: number;
}

/** What the excludes would leave out, and the pattern that does it. */
export interface PlannedExclusion {
  /** Relative to the source; a directory ends with `/` (its content is not listed). */
  path: string;
  /** The pattern (the first that matches), or `(atomic-json temp file)`. */
  pattern: string;
}

/** What {@link planBackup} found: what `backup` with the same options would do. */
export interface BackupPlan {
  dryRun: true;
  /** The name the backup would get, and its path. */
  name: string;
  path: string;
  /** The real path of the source. */
  sourceDir: string;
  backupDir: string;
  /** The backup unchanged files would be hard links to (`null`: none of the same source, or `full`). */
  linkedFrom: string | null;
  /** Files that would be written (new or changed since `linkedFrom`, or every file without one). */
  backup: PlannedFile[];
  /** Files unchanged since `linkedFrom`: would be hard links to its files. */
  link: PlannedFile[];
  /** What the excludes would leave out. */
  excluded: PlannedExclusion[];
  /** Entries that would be skipped (sockets, FIFOs, devices; vanished meanwhile). */
  skipped: SkippedEntry[];
  newFiles: number;
  newBytes: number;
  linkedFiles: number;
  linkedBytes: number;
  dirCount: number;
  symlinkCount: number;
}

/**
 * What {@link createBackup} with the same options would do, without doing it: the files it would
 * write, those it would hard-link to the previous backup of the same source (decided exactly as
 * the backup does: each candidate is read and hashed, and the previous backup's file checked), and
 * what the excludes would leave out, each with the pattern that excludes it. Runs the same
 * checks and throws the same usage errors (`INVALID_NAME`, `INVALID_OPTION`, `SOURCE_NOT_FOUND`,
 * `BACKUP_EXISTS`).
 *
 * Changes nothing: no directory is created (not even a missing backup dir), no temporary
 * directory, no leftover of a killed run is cleaned, no interrupted restore is recovered, and it
 * takes **no** operation lock (it only reads: a backup or restore running meanwhile is neither
 * blocked nor refused because of it; the plan may then be out of date, as any plan can be).
 *
 * @example
 * ```ts
 * const plan = await planBackup({ source: '/srv/dawn', backupDir: '/srv/backups' });
 * console.log(plan.backup.length, 'to write,', plan.link.length, 'to link');
 * ```
 */
export async function planBackup(opts: CreateBackupOptions = {}): Promise<BackupPlan> {
  const { source, name, excludes, backupDir } = backupInputs(opts, opts.now ?? new Date());
  if (opts.keep !== undefined) validatePolicy(opts.keep);
  const why = explainExclude(excludes);
  const realSource = await realSourceOf(source);
  const realBackupDir = await realpath(backupDir).catch(() => resolve(backupDir)); // may not exist yet: nothing is created
  const { finalPath, skipRel } = await checkTarget(backupDir, realBackupDir, realSource, name);
  const previous: PreviousBackup | undefined = opts.full ? undefined : await findPrevious(realBackupDir, realSource);

  const excluded: PlannedExclusion[] = [];
  const walked = await walkTree(realSource, {
    exclude: (rel, isDir, exact) => {
      if (rel === skipRel) return true;
      const pattern = why(rel, isDir, exact);
      if (pattern !== undefined) excluded.push({ path: isDir ? `${rel}/` : rel, pattern });
      return pattern !== undefined;
    },
    skipLockDirs: true,
    confined: true,
  });
  const skipped = [...walked.skipped];
  const plan: BackupPlan = {
    dryRun: true,
    name,
    path: finalPath,
    sourceDir: realSource,
    backupDir,
    linkedFrom: null,
    backup: [],
    link: [],
    excluded,
    skipped,
    newFiles: 0,
    newBytes: 0,
    linkedFiles: 0,
    linkedBytes: 0,
    dirCount: 0,
    symlinkCount: 0,
  };
  const files: { rel: Rel; planned: PlannedFile; linked: boolean }[] = [];
  for (const e of walked.entries) {
    if (e.kind === 'dir') plan.dirCount++;
    else if (e.kind === 'symlink') plan.symlinkCount++;
    else files.push({ rel: e.rel, planned: { ...manifestPathFields(e.rel), size: 0 }, linked: false });
  }
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? DEFAULT_CONCURRENCY));
  const workers: CopyWorker[] = [];
  const gone = new Set<(typeof files)[number]>();
  await runPool(files, concurrency, async (f, lane) => {
    const worker = (workers[lane] ??= new CopyWorker(false));
    const src = joinRel(realSource, f.rel);
    try {
      const prev = previous?.files.get(relKey(f.rel));
      const ok = prev ? await linkable(worker, src, prev, previous!) : undefined;
      // Read (and hashed) as the backup would, never outside the source.
      f.planned.size = ok ? ok.h.size : (await worker.copy({ src, confined: true })).size;
      f.linked = ok !== undefined;
    } catch (err) {
      const code = errCode(err);
      gone.add(f);
      if (code === 'ENOENT') skipped.push(skippedEntry(f.rel, 'vanished meanwhile'));
      else if (code === 'ELOOP' || err instanceof NotRegularFileError) skipped.push(skippedEntry(f.rel, 'no longer a regular file'));
      else if (err instanceof PathChangedError) skipped.push(skippedEntry(f.rel, 'a directory on its path was replaced meanwhile'));
      else throw err;
    }
    await worker.maybeYield();
  });
  for (const f of files) {
    if (gone.has(f)) continue;
    if (f.linked) {
      plan.link.push(f.planned);
      plan.linkedFiles++;
      plan.linkedBytes += f.planned.size;
    } else {
      plan.backup.push(f.planned);
      plan.newFiles++;
      plan.newBytes += f.planned.size;
    }
  }
  plan.linkedFrom = previous && plan.linkedFiles > 0 ? previous.name : null;
  return plan;
}
