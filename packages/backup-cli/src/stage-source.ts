import { lstatConfined, readlinkConfined } from './confine.js';
import { CopyWorker } from './copy.js';
import type { BackupError, VerifyProblem } from './errors.js';
import { errCode, parseMode, runPool } from './fsutil.js';
import { HashPool } from './hash-pool.js';
import type { BackupMetadata, ManifestEntry, ManifestFile, ManifestSymlink } from './metadata.js';
import { entryRel, entryTarget, relFromBytes, relText, type NameEscape } from './relpath.js';
import { checkFile, problemAt, readProblem, storedPathOf } from './verify.js';

/**
 * Where a restore's staged files come from: a local backup directory ({@link localSource}), or a
 * repository's blobs (`repo/restore-repo.ts`). The restore itself (target checks, locks, staging
 * beside the target, `pre_restore_*`, swap) is the same for both: see restore.ts and partial.ts.
 */
export interface StageSource {
  /** Whether every file is checked against the manifest's sha256 (false: a Python backup). */
  verified: boolean;
  /**
   * Check entries that are not file contents (directories, symlinks) against the manifest, before
   * anything is staged. A local backup's tree is looked at; a repository has only its manifest.
   */
  checkEntries(entries: readonly ManifestEntry[]): VerifyProblem[];
  /**
   * Create each file at `dst(m, i)` (a new file: `O_EXCL | O_NOFOLLOW`) with the manifest's mode
   * and mtime, its content checked against the manifest. Returns the problems of the source
   * (missing, damaged); errors of the disk written (full, read-only...) are thrown.
   */
  stageFiles(files: readonly ManifestFile[], dst: (m: ManifestFile, i: number) => string | Buffer, o: StageOptions): Promise<VerifyProblem[]>;
  /** Check the staged tree's shape (names, types, links) against the manifest once it is built (a full restore). */
  checkStagedTree: boolean;
  /** The error of a damaged source (`VERIFY_FAILED`, with the problems). */
  damaged(name: string, problems: VerifyProblem[]): BackupError;
}

export interface StageOptions {
  concurrency: number;
  /** fsync each file as it is written (the `fsync` durability strategy). */
  fsync: boolean;
  /** Called once per file staged (or found damaged), with its size. */
  onFile: (m: ManifestFile, bytes: number) => void;
}

/** A backup opened for a restore: what it is, and where its files come from. */
export interface OpenedSource {
  /** The backup's name (`latest` resolved). */
  name: string;
  /** Where the backup is (a local path, or its snapshot document in a repository). */
  backupPath: string;
  /** The local backup dir (where `pre_restore_*` goes). */
  backupDir: string;
  meta: BackupMetadata;
  /** The checked manifest (a Python backup's: built from its tree). */
  manifest: ManifestEntry[];
  source: StageSource;
}

/** errno codes that say the destination (the disk being written) failed, not the backup being read. */
export const WRITE_SIDE = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EFBIG', 'EMFILE', 'ENFILE', 'ENOMEM', 'EEXIST']);

/** Mode and times a staged file gets from its manifest entry. */
export function stagedAttrs(m: ManifestFile): { mode: number; times?: { atime: number; mtime: number } } {
  const mode = parseMode(m.mode) ?? 0o644;
  return typeof m.mtime === 'number' && Number.isFinite(m.mtime) ? { mode, times: { atime: m.mtime, mtime: m.mtime } } : { mode };
}

/**
 * A local backup directory (by its real path): files copied and hashed as they are read
 * (copy.ts), every open checked to stay inside the backup (confine.ts).
 */
export function localSource(realBackupPath: string, nameEscape: NameEscape, verified: boolean, damaged: (name: string, problems: VerifyProblem[]) => BackupError): StageSource {
  return {
    verified,
    checkStagedTree: false, // the backup's own tree was compared with the manifest before
    damaged,
    checkEntries(entries) {
      const problems: VerifyProblem[] = [];
      for (const m of entries) {
        if (m.type === 'dir') {
          const st = lstatConfined(storedPathOf(realBackupPath, m, nameEscape));
          if (!st?.isDirectory()) problems.push({ ...problemAt(entryRel(m)!), kind: st ? 'type' : 'missing', detail: st ? 'recorded as dir, found another type' : 'dir is missing from the backup' });
        } else if (m.type === 'symlink' && verified) {
          let raw: Buffer | undefined;
          try {
            raw = readlinkConfined(storedPathOf(realBackupPath, m, nameEscape));
          } catch {
            raw = undefined;
          }
          const recorded = entryTarget(m as ManifestSymlink)!;
          const want = typeof recorded === 'string' ? Buffer.from(recorded, 'utf8') : recorded;
          if (raw === undefined || !raw.equals(want)) {
            problems.push({ ...problemAt(entryRel(m)!), kind: 'link', detail: `points to ${JSON.stringify(raw?.toString())}, recorded ${JSON.stringify(relText(relFromBytes(want)))}` });
          }
        }
      }
      return problems;
    },
    async stageFiles(files, dst, o) {
      const problems: VerifyProblem[] = [];
      const workers: CopyWorker[] = [];
      const pool = new HashPool();
      try {
        await runPool([...files.entries()], o.concurrency, async ([i, m], lane) => {
          const worker = (workers[lane] ??= new CopyWorker(o.fsync, pool));
          const { mode, times } = stagedAttrs(m);
          let size = 0;
          try {
            const got = await worker.copy({ src: storedPathOf(realBackupPath, m, nameEscape), confined: true, dst: dst(m, i), modeFor: () => mode, ...(times ? { times } : {}) });
            const p = verified ? checkFile(m, got) : undefined;
            if (p) problems.push(p);
            size = got.size;
          } catch (err) {
            // A full disk is not a damaged backup: only read errors count against the backup.
            if (WRITE_SIDE.has(errCode(err))) throw err;
            problems.push(readProblem(m.path, err));
          }
          o.onFile(m, size);
          await worker.maybeYield();
        });
      } finally {
        await pool.close();
      }
      return problems;
    },
  };
}
