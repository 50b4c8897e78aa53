export { createBackup, type CreateBackupOptions, type BackupResult } from './backup.js';
export { planBackup, type BackupPlan, type PlannedFile, type PlannedExclusion } from './backup-plan.js';
export { listBackups, showBackup, type ListOptions, type ListResult, type DamagedBackup, type ShowOptions, type BackupDetails } from './list.js';
export { verifyBackup, type VerifyOptions, type VerifyResult } from './verify.js';
export { diffBackup, type DiffOptions, type DiffResult, type DiffEntry } from './diff.js';
export { restoreBackup, planRestore, type RestoreOptions, type RestoreResult } from './restore.js';
export type { RestorePlan, PlannedEntry } from './partial.js';
export { createIncludeMatcher, type IncludeMatcher } from './include.js';
export {
  pruneBackups,
  planPrune,
  DEFAULT_KEEP_PRE_RESTORE,
  DEFAULT_KEEP_PRE_RESTORE_DAYS,
  type PruneOptions,
  type PruneResult,
  type RetentionPolicy,
  type PruneCandidate,
  type PruneDecision,
  type KeepReason,
} from './prune.js';
export { recoverInterruptedRestores, type RecoveryReport } from './recover.js';
export { BackupError, exitCodeOf, type BackupErrorCode, type BackupErrorDetails, type VerifyProblem } from './errors.js';
export { ALWAYS_EXCLUDES, DEFAULT_EXCLUDES, createExcludeMatcher, type ExcludeMatcher } from './exclude.js';
export {
  METADATA_FILE,
  MANIFEST_FILE,
  defaultBackupDir,
  defaultBackupName,
  resolveBackupDir,
  resolveDataRoot,
  validateBackupName,
} from './paths.js';
export {
  FORMAT_VERSION,
  TOOL_VERSION,
  type BackupMetadata,
  type ManifestFileRef,
  type ManifestEntry,
  type ManifestFile,
  type ManifestDir,
  type ManifestSymlink,
  type SummaryRecord,
} from './metadata.js';
export type { BackupInfo, BackupSummary } from './info.js';
export type { ProgressEvent, ProgressListener } from './progress.js';
export {
  initRepo,
  pushBackups,
  listRepo,
  verifyRepoBackup,
  pullBackup,
  pruneRepo,
  type RepoOptions,
  type PushResult,
  type RepoBackup,
  type RepoListing,
  type RepoVerifyResult,
  type PullResult,
  type RepoPruneResult,
  type SnapshotDoc,
} from './repo/repository.js';
export { parseRepoUrl, openBackend, REPO_ENV, type Backend, type RepoLocation } from './repo/backend.js';
export { showRepoBackup, diffRepo, type RepoBackupDetails } from './repo/view.js';
export { restoreFromRepo, planRestoreFromRepo, type RepoRestoreOptions, type RepoRestoreResult } from './repo/restore-repo.js';
export { parseDataSubset, selectSubset, type DataSubset } from './repo/subset.js';
