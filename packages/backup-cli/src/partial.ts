import { isTempFileName } from '@dawn/atomic-json';
import type { Stats } from 'node:fs';
import { chmod, lchown, mkdir, rename, rmdir, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { lstatConfined, PathChangedError, readlinkConfined } from './confine.js';
import { CopyWorker, DEFAULT_CONCURRENCY, NotRegularFileError } from './copy.js';
import { makeDurable, plannedDurability } from './durability.js';
import { BackupError, ioError, type VerifyProblem } from './errors.js';
import { DEFAULT_EXCLUDES, type ExcludeMatcher } from './exclude.js';
import { errCode, fsyncDir, lstatOrUndefined, modeToString, parseMode, removeTree, runPool } from './fsutil.js';
import { HashPool } from './hash-pool.js';
import { includeMayReach, type IncludeMatcher } from './include.js';
import { partialDirName } from './leftovers.js';
import { type BackupMetadata, type ManifestDir, type ManifestEntry, type ManifestFile } from './metadata.js';
import { preRestoreName } from './paths.js';
import { newBackupMetadata, writeBackupMetadata } from './write-metadata.js';
import { restoreTempPaths } from './recover.js';
import {
  entryRel,
  entryTarget,
  joinRel,
  manifestPathFields,
  manifestTargetFields,
  parentRel,
  relFromBytes,
  relKey,
  relText,
  storedRel,
  type Rel,
  NAME_ESCAPE,
} from './relpath.js';
import { readSummary } from './summary.js';
import type { StageSource } from './stage-source.js';
import { walkTree } from './walk.js';

type Kind = 'file' | 'dir' | 'symlink';

/** One entry of a {@link RestorePlan}. */
export interface PlannedEntry {
  /** Path relative to the target (readable text). */
  path: string;
  /** Base64 of the exact path bytes, only when they are not valid UTF-8. */
  pathB64?: string;
  /** What the entry is (in the backup for `replace`/`add`, in the target for `remove`). */
  type: Kind;
  /** Bytes of a file (the backup's for `replace`/`add`, the target's for `remove`). */
  size?: number;
  /** `replace` only: the type in the target when it differs from the backup's. */
  was?: Kind;
}

/** What a restore would do (see `planRestore`); also the lists behind a partial restore's result. */
export interface RestorePlan {
  name: string;
  backupPath: string;
  /** The directory restored into (its real path). */
  target: string;
  /** The include patterns (a partial restore), or `null` for a full restore. */
  include: string[] | null;
  /** Files and symlinks of the target that the backup's version replaces, and entries whose type changes. */
  replace: PlannedEntry[];
  /** Entries of the backup absent from the target (directories included). */
  add: PlannedEntry[];
  /** Entries of the target (in the include's scope) that the backup does not have: removed. */
  remove: PlannedEntry[];
  /** Entries the backup's excludes left out (logs...): kept as they are (a directory ends in `/`). */
  keep: string[];
  /** Whether a `pre_restore_*` backup would be made first (false with `overwrite`, or no target). */
  preRestore: boolean;
  warnings: string[];
}

/** Everything a plan needs from the restore. */
export interface PlanInput {
  name: string;
  backupPath: string;
  target: string;
  /** Whether the target exists (a directory). */
  targetExists: boolean;
  manifest: readonly ManifestEntry[];
  include?: { patterns: string[]; match: IncludeMatcher; fromUser: boolean };
  /** What the backup deliberately left out (kept in the target). */
  kept: ExcludeMatcher;
  overwrite: boolean;
}

interface TargetEntry {
  rel: Rel;
  kind: Kind;
}

/** A plan and what carrying it out needs. */
export interface DetailedPlan extends RestorePlan {
  /** Manifest entries in scope (all of them for a full restore). */
  selected: ManifestEntry[];
  /** In-scope entries of the target, by {@link relKey}. */
  inTarget: Map<string, TargetEntry>;
  /** Ancestor directories of selected entries, out of scope and absent from the target: created. */
  createAncestors: ManifestDir[];
  /** Paths (by key) of the target that are removed (not in the backup, or changing type). */
  removeEntries: TargetEntry[];
}

const pathFields = (rel: Rel): { path: string; pathB64?: string } =>
  typeof rel === 'string' ? { path: rel } : { path: relText(rel), pathB64: rel.toString('base64') };

const depth = (rel: Rel): number => {
  const t = relText(rel);
  let n = 0;
  for (let i = 0; i < t.length; i++) if (t.charCodeAt(i) === 0x2f) n++;
  return n;
};

/**
 * Compare the backup's manifest (the part the include selects) with the target: what would be
 * replaced, added, removed and kept. Reads the target only (confined: never through a symlink).
 *
 * @throws {BackupError} `INVALID_OPTION` (the include matches nothing in the backup),
 *   `TARGET_INVALID` (a directory on the way to a selected entry is a file or symlink in the target), `IO`.
 */
export async function computePlan(p: PlanInput): Promise<DetailedPlan> {
  const warnings: string[] = [];
  const inc = p.include;
  const scope = (rel: Rel, isDir: boolean): boolean => (inc ? inc.match(relText(rel), isDir) : true);
  const selected = p.manifest.filter((m) => scope(entryRel(m)!, m.type === 'dir'));
  if (inc && inc.fromUser && selected.length === 0) {
    throw new BackupError(
      'INVALID_OPTION',
      `The include pattern(s) ${inc.patterns.map((x) => JSON.stringify(x)).join(', ')} match nothing in backup "${p.name}". Nothing was changed. ` +
        `See what it holds with \`dawn-backup show ${p.name} --files\`.`,
    );
  }
  const keep: string[] = [];
  const reach = inc ? includeMayReach(inc.patterns) : undefined;
  const inTarget = new Map<string, TargetEntry>();
  if (p.targetExists) {
    let walked;
    try {
      walked = await walkTree(p.target, {
        exclude: (rel, isDir, exact) => {
          const name = rel.slice(rel.lastIndexOf('/') + 1);
          if (!isDir && exact && isTempFileName(name)) return true; // a writer's temp file: never touched
          if (p.kept(rel, isDir, exact)) {
            if (scope(rel, isDir)) keep.push(isDir ? `${rel}/` : rel);
            return true;
          }
          // A directory that can neither be selected nor hold a selected path is not entered.
          return isDir && reach !== undefined && !reach(rel) && !scope(rel, true);
        },
        skipLockDirs: true,
        confined: true,
      });
    } catch (err) {
      throw ioError(p.target, 'read the target', err);
    }
    for (const e of walked.entries) if (scope(e.rel, e.kind === 'dir')) inTarget.set(relKey(e.rel), { rel: e.rel, kind: e.kind });
    for (const s of walked.skipped) if (!inc || inc.match(s.rel, false)) warnings.push(`left untouched in the target: ${s.rel} (${s.reason})`);
  }
  const replace: PlannedEntry[] = [];
  const add: PlannedEntry[] = [];
  const remove: PlannedEntry[] = [];
  const removeEntries: TargetEntry[] = [];
  const selectedKeys = new Set<string>();
  for (const m of selected) {
    const rel = entryRel(m)!;
    const key = relKey(rel);
    selectedKeys.add(key);
    const t = inTarget.get(key);
    const size = m.type === 'file' ? { size: m.size } : {};
    if (!t) add.push({ ...pathFields(rel), type: m.type, ...size });
    else if (t.kind !== m.type) replace.push({ ...pathFields(rel), type: m.type, ...size, was: t.kind });
    else if (m.type !== 'dir') replace.push({ ...pathFields(rel), type: m.type, ...size });
  }
  for (const [key, t] of inTarget) {
    const m = selectedKeys.has(key);
    if (!m) {
      const st = t.kind === 'file' ? lstatConfined(joinRel(p.target, t.rel)) : undefined;
      remove.push({ ...pathFields(t.rel), type: t.kind, ...(st ? { size: st.size } : {}) });
      removeEntries.push(t);
    }
  }
  // Type changes: the old entry goes first.
  const changing = new Set(replace.filter((r) => r.was !== undefined).map((r) => relKey(r.pathB64 !== undefined ? relFromBytes(Buffer.from(r.pathB64, 'base64')) : r.path)));
  for (const key of changing) removeEntries.push(inTarget.get(key)!);

  // Directories on the way to a selected entry that are out of scope: must be directories.
  const createAncestors: ManifestDir[] = [];
  if (inc) {
    const dirs = new Map<string, ManifestDir>();
    for (const m of p.manifest) if (m.type === 'dir') dirs.set(relKey(entryRel(m)!), m);
    const seen = new Set<string>();
    for (const m of selected) {
      for (let a = parentRel(entryRel(m)!); a !== undefined; a = parentRel(a)) {
        const key = relKey(a);
        if (seen.has(key)) break;
        seen.add(key);
        if (selectedKeys.has(key)) continue; // in scope: handled as an entry
        const st = p.targetExists ? lstatConfined(joinRel(p.target, a)) : undefined;
        if (st?.isDirectory()) continue;
        if (st) {
          throw new BackupError(
            'TARGET_INVALID',
            `${join(p.target, relText(a))} is a ${st.isSymbolicLink() ? 'symlink' : 'file'} in the target, but a directory in backup "${p.name}" holding what --include selects; ` +
              'a partial restore never writes through or replaces what it does not select. Nothing was changed. Include that path too, or move it away.',
            { path: join(p.target, relText(a)) },
          );
        }
        const d = dirs.get(key);
        if (!d) throw new BackupError('BACKUP_INVALID', `Backup "${p.name}" lists entries below ${relText(a)} but not that directory itself. Nothing was changed.`);
        createAncestors.push(d);
      }
    }
    createAncestors.sort((x, y) => depth(entryRel(x)!) - depth(entryRel(y)!));
  }
  const byPath = (x: PlannedEntry, y: PlannedEntry) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0);
  return {
    name: p.name,
    backupPath: p.backupPath,
    target: p.target,
    include: inc ? [...inc.patterns] : null,
    replace: replace.sort(byPath),
    add: add.sort(byPath),
    remove: remove.sort(byPath),
    keep: keep.sort(),
    preRestore: p.targetExists && !p.overwrite,
    warnings,
    selected,
    inTarget,
    createAncestors,
    removeEntries,
  };
}

/** Strip the internal fields of a plan. */
export function publicPlan(d: DetailedPlan, warnings: string[]): RestorePlan {
  return {
    name: d.name,
    backupPath: d.backupPath,
    target: d.target,
    include: d.include,
    replace: d.replace,
    add: d.add,
    remove: d.remove,
    keep: d.keep,
    preRestore: d.preRestore,
    warnings: [...warnings, ...d.warnings],
  };
}

/** What a partial restore needs from `restore.ts`. */
export interface PartialInput {
  name: string;
  backupDir: string;
  backupPath: string;
  /** Where the staged files come from (a local backup, a repository). */
  source: StageSource;
  meta: BackupMetadata;
  target: string;
  /** Target's stats before (undefined: absent). */
  tst: Stats | undefined;
  parentSt: Stats;
  plan: DetailedPlan;
  overwrite: boolean;
  fsync: boolean;
  concurrency?: number;
  now?: Date;
  warn: (m: string) => void;
  onProgress?: (p: { phase: 'restore' | 'sync'; files: number; totalFiles: number; bytes: number }) => void;
}

export interface PartialOutcome {
  files: number;
  bytes: number;
  preRestoreBackup: string | null;
  removed: string[];
}

const sameKind = (st: Stats, type: Kind): boolean => (type === 'dir' ? st.isDirectory() : type === 'file' ? st.isFile() : st.isSymbolicLink());

/**
 * Restore the selected entries of a backup into the live target, each path replaced on its own:
 *
 * 1. every selected file is copied from the backup into a staging directory beside the target
 *    (`.dawn-restore-<id>-<pid>-<tag>.new`, the name a full restore builds in, so a killed run's
 *    staging is removed by the next `restore` or `backup`), hashed as it is read and compared
 *    with the manifest; selected symlinks are checked against the backup's own links. A
 *    mismatch is `VERIFY_FAILED` and nothing in the target has changed;
 * 2. unless `overwrite`, the target's in-scope entries are saved as a `pre_restore_*` backup
 *    recording the include (restoring it undoes this restore, and only this);
 * 3. entries the backup does not have are removed (deepest first), missing directories created,
 *    then every staged file and symlink is renamed over its path (one `rename` each: the path
 *    holds the old or the new version, never a mix). Directory modes are set last.
 */
export async function restorePartial(c: PartialInput): Promise<PartialOutcome> {
  const { plan, target, warn } = c;
  const concurrency = Math.max(1, Math.floor(c.concurrency ?? DEFAULT_CONCURRENCY));
  const asRoot = process.getuid?.() === 0;
  const rootOwner = c.tst ?? c.parentSt;
  const ownerFor = (rel: Rel, type: Kind): { uid: number; gid: number } => {
    const prev = c.tst ? lstatConfined(joinRel(target, rel)) : undefined;
    return prev && sameKind(prev, type) ? prev : rootOwner;
  };
  const planned = plannedDurability(c.fsync);
  const staging = restoreTempPaths(target).newDir;
  const files = plan.selected.filter((m): m is ManifestFile => m.type === 'file');
  const links = plan.selected.filter((m) => m.type === 'symlink');
  const dirs = plan.selected.filter((m): m is ManifestDir => m.type === 'dir');
  const staged = new Map<ManifestEntry, string>();
  let bytes = 0;
  let done = 0;

  // --- 1. stage and verify ----------------------------------------------------------------
  try {
    await mkdir(staging, { mode: 0o700 });
    // Directories and symlinks of the backup as the manifest records them (the manifest was checked whole).
    const problems: VerifyProblem[] = c.source.checkEntries([...dirs, ...links]);
    for (const [i, m] of links.entries()) {
      if (problems.length > 0) break;
      const at = join(staging, `l${i}`);
      await symlink(entryTarget(m as Extract<ManifestEntry, { type: 'symlink' }>)!, at);
      if (asRoot) {
        const o = ownerFor(entryRel(m)!, 'symlink');
        await lchown(at, o.uid, o.gid);
      }
      staged.set(m, at);
    }
    c.onProgress?.({ phase: 'restore', files: 0, totalFiles: files.length, bytes: 0 });
    const fileProblems = await c.source.stageFiles(
      files,
      (m, i) => {
        const at = join(staging, `f${i}`);
        staged.set(m, at);
        return at;
      },
      {
        concurrency,
        fsync: planned === 'fsync',
        onFile: (_m, size) => {
          bytes += size;
          done++;
          c.onProgress?.({ phase: 'restore', files: done, totalFiles: files.length, bytes });
        },
      },
    );
    problems.push(...fileProblems);
    if (problems.length > 0) throw c.source.damaged(c.name, problems);
    if (asRoot) {
      for (const [i, m] of files.entries()) {
        const o = ownerFor(entryRel(m)!, 'file');
        const at = join(staging, `f${i}`);
        await lchown(at, o.uid, o.gid);
        const mode = parseMode(m.mode)!;
        if (mode & 0o6000) await chmod(at, mode); // chown clears setuid/setgid
      }
    }
    if (planned !== 'none') c.onProgress?.({ phase: 'sync', files: done, totalFiles: files.length, bytes });
    await makeDurable(planned, staging, files.map((_, i) => `f${i}`), [], concurrency);
  } catch (err) {
    await removeTree(staging).catch(() => {});
    if (BackupError.is(err)) throw err;
    throw ioError(staging, 'stage the restored files in', err, `Nothing was changed in ${target}, and the backup itself is fine: retry once the problem is solved.`);
  }

  // --- 2. save what will be replaced or removed --------------------------------------------
  let preRestoreBackup: string | null = null;
  const removed: string[] = [];
  try {
    if (c.tst && !c.overwrite) preRestoreBackup = await savePartial(c, concurrency);

    // --- 3. apply, path by path --------------------------------------------------------------
    if (!c.tst) await mkdir(target, { mode: 0o700 });
    const touched = new Set<string>();
    const touch = (rel: Rel) => {
      const parent = parentRel(rel);
      touched.add(parent === undefined ? '' : relKey(parent));
    };
    const stillChanging = new Set<string>();
    const removals = [...c.plan.removeEntries].sort((x, y) => depth(y.rel) - depth(x.rel));
    for (const t of removals) {
      const abs = joinRel(target, t.rel);
      const st = lstatConfined(abs); // never through a directory swapped for a symlink
      if (!st) continue;
      try {
        if (st.isDirectory()) await rmdir(abs);
        else await unlink(abs);
        removed.push(relText(t.rel));
        touch(t.rel);
      } catch (err) {
        if (errCode(err) !== 'ENOTEMPTY' && errCode(err) !== 'EEXIST') throw err;
        // It holds entries the restore keeps (logs, a lock): it stays.
        stillChanging.add(relKey(t.rel));
        warn(`kept the directory ${relText(t.rel)}: it holds entries the restore keeps (excluded by the backup, or a lock)`);
      }
    }
    const newDirs: { rel: Rel; mode: number; type: 'ancestor' | 'selected' }[] = [];
    for (const d of c.plan.createAncestors) newDirs.push({ rel: entryRel(d)!, mode: parseMode(d.mode) ?? 0o755, type: 'ancestor' });
    for (const d of dirs) {
      const t = c.plan.inTarget.get(relKey(entryRel(d)!));
      if (!t || t.kind !== 'dir') newDirs.push({ rel: entryRel(d)!, mode: parseMode(d.mode) ?? 0o755, type: 'selected' });
    }
    newDirs.sort((x, y) => depth(x.rel) - depth(y.rel));
    for (const d of newDirs) {
      const abs = joinRel(target, d.rel);
      if (stillChanging.has(relKey(d.rel))) continue;
      const st = lstatConfined(abs);
      if (st?.isDirectory()) continue;
      await mkdir(abs, { mode: 0o700 });
      if (asRoot) await lchown(abs, rootOwner.uid, rootOwner.gid);
      touch(d.rel);
    }
    for (const m of [...files, ...links]) {
      const at = staged.get(m);
      if (at === undefined) continue;
      const rel = entryRel(m)!;
      if (stillChanging.has(relKey(rel))) {
        warn(`could not restore ${relText(rel)}: the target has a directory there that holds entries the restore keeps`);
        continue;
      }
      const parent = parentRel(rel);
      if (parent !== undefined && !lstatConfined(joinRel(target, parent))?.isDirectory()) {
        throw new BackupError('TARGET_INVALID', `${join(target, relText(parent))} changed during the restore (no longer a directory): stopped. Restored paths so far are whole; rerun the restore.`, {
          path: join(target, relText(parent)),
        });
      }
      await rename(at, joinRel(target, rel));
      touch(rel);
    }
    // Modes of the selected directories (and created ones), deepest first.
    const modes: { rel: Rel; mode: number }[] = [...newDirs.map((d) => ({ rel: d.rel, mode: d.mode })), ...dirs.map((d) => ({ rel: entryRel(d)!, mode: parseMode(d.mode) ?? 0o755 }))];
    modes.sort((x, y) => depth(y.rel) - depth(x.rel));
    for (const d of modes) {
      const abs = joinRel(target, d.rel);
      if (lstatConfined(abs)?.isDirectory()) await chmod(abs, d.mode);
    }
    if (c.fsync) {
      for (const key of touched) {
        const rel: Rel = key === '' ? '' : key.startsWith('\0') ? Buffer.from(key.slice(1), 'base64') : key;
        await fsyncDir(joinRel(target, rel)).catch(() => {});
      }
      if (!c.tst) await fsyncDir(join(target, '..')).catch(() => {});
    }
  } catch (err) {
    await removeTree(staging).catch(() => {});
    if (BackupError.is(err)) throw err;
    throw ioError(
      target,
      'restore into',
      err,
      preRestoreBackup
        ? `Each path is whole (its old or its restored version); what was there before is in backup ${preRestoreBackup}. Fix the problem and rerun the restore.`
        : 'Each path is whole (its old or its restored version). Fix the problem and rerun the restore.',
    );
  }
  await removeTree(staging).catch(() => {});
  return { files: files.length, bytes, preRestoreBackup, removed };
}

/** The in-scope entries of the target (all that a partial restore replaces or removes), as a `pre_restore_*` backup. */
async function savePartial(c: PartialInput, concurrency: number): Promise<string> {
  const started = c.now ?? new Date();
  let name = preRestoreName(started);
  for (let i = 2; await lstatOrUndefined(join(c.backupDir, name)); i++) name = `${preRestoreName(started)}_${i}`;
  const finalPath = join(c.backupDir, name);
  const partial = join(c.backupDir, partialDirName(name));
  const stored = (rel: Rel): Rel => storedRel(rel, NAME_ESCAPE);
  const planned = plannedDurability(c.fsync);
  try {
    await mkdir(partial, { mode: 0o700 });
    const entries = [...c.plan.inTarget.values()];
    // Every directory on the way to what is saved, so the backup is a tree like any other.
    const dirs = new Map<string, Rel>();
    for (const e of entries) {
      if (e.kind === 'dir') dirs.set(relKey(e.rel), e.rel);
      for (let a = parentRel(e.rel); a !== undefined; a = parentRel(a)) dirs.set(relKey(a), a);
    }
    const manifest: ManifestEntry[] = [];
    const dirRels = [...dirs.values()].sort((x, y) => depth(x) - depth(y));
    const dirsMade: Rel[] = [];
    for (const d of dirRels) {
      const st = lstatConfined(joinRel(c.target, d));
      if (!st?.isDirectory()) continue; // gone meanwhile: what is below it is skipped too
      await mkdir(joinRel(partial, stored(d)), { mode: 0o700 });
      dirsMade.push(d);
      manifest.push({ ...manifestPathFields(d), type: 'dir', mode: modeToString(st.mode) });
    }
    const made = new Set(dirsMade.map(relKey));
    const under = (rel: Rel) => {
      const p = parentRel(rel);
      return p === undefined || made.has(relKey(p));
    };
    const fileEntries = entries.filter((e) => e.kind === 'file' && under(e.rel));
    const pool = new HashPool();
    const workers: CopyWorker[] = [];
    const savedFiles: Rel[] = [];
    try {
      await runPool(fileEntries, concurrency, async (e, lane) => {
        const worker = (workers[lane] ??= new CopyWorker(planned === 'fsync', pool));
        try {
          const got = await worker.copy({ src: joinRel(c.target, e.rel), dst: joinRel(partial, stored(e.rel)), modeFor: (m) => (m & 0o777) | 0o400, confined: true });
          manifest.push({ ...manifestPathFields(e.rel), type: 'file', size: got.size, mode: modeToString(got.mode), sha256: got.sha256, mtime: got.mtime });
          savedFiles.push(stored(e.rel));
        } catch (err) {
          const code = errCode(err);
          if (code === 'ENOENT' || code === 'ELOOP' || err instanceof NotRegularFileError || err instanceof PathChangedError) {
            c.warn(`while saving the current target: skipped ${relText(e.rel)} (vanished or changed type meanwhile)`);
          } else throw err;
        }
        await worker.maybeYield();
      });
    } finally {
      await pool.close();
    }
    for (const e of entries) {
      if (e.kind !== 'symlink' || !under(e.rel)) continue;
      let t: Buffer;
      try {
        t = readlinkConfined(joinRel(c.target, e.rel));
      } catch {
        c.warn(`while saving the current target: skipped the symlink ${relText(e.rel)} (vanished or changed meanwhile)`);
        continue;
      }
      const target = relFromBytes(t);
      await symlink(target, joinRel(partial, stored(e.rel)));
      manifest.push({ ...manifestPathFields(e.rel), type: 'symlink', ...manifestTargetFields(target) });
    }
    const summary = await readSummary(partial);
    const durability = await makeDurable(planned, partial, savedFiles, dirsMade.map(stored), concurrency);
    const excludes = Array.isArray(c.meta.excludes) ? c.meta.excludes.filter((x): x is string => typeof x === 'string') : [...DEFAULT_EXCLUDES];
    const meta = newBackupMetadata(
      { name, started, sourceDir: c.target, backupPath: finalPath, excludes, manifest, rootMode: c.tst!.mode, durability, summary },
      { include: c.plan.include ?? [], restored_from: c.name },
    );
    await writeBackupMetadata(partial, meta, { mode: 0o600, fsync: c.fsync });
    if (c.fsync) await fsyncDir(partial);
    await rename(partial, finalPath);
    if (c.fsync) await fsyncDir(c.backupDir);
    return name;
  } catch (err) {
    await removeTree(partial).catch(() => {});
    const code = errCode(err);
    const what = `Could not save the current target's selected paths as backup ${name}, so nothing was changed in ${c.target}`;
    if (code === 'ENOSPC' || code === 'EDQUOT') throw new BackupError('NO_SPACE', `${what}: the disk is full. Free space and retry.`, { path: c.backupDir, cause: err });
    if (BackupError.is(err)) throw err;
    throw ioError(c.backupDir, 'save the current target in', err, `${what}.`);
  }
}
