import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { BackupError, ioError } from './errors.js';
import { fsyncDir, removeTree } from './fsutil.js';
import { cleanBackupDirLeftovers, deletingDirName } from './leftovers.js';
import { listBackups } from './list.js';
import { withPruneLock } from './oplock.js';
import { resolveBackupDir } from './paths.js';

/** How many backups to keep. At least one field must be given. */
export interface RetentionPolicy {
  /** Keep the N newest backups. */
  keepLast?: number;
  /** For the last N days (local time) that have backups, keep the newest backup of each day. */
  keepDaily?: number;
  /** For the last N ISO weeks (local time) that have backups, keep the newest backup of each week. */
  keepWeekly?: number;
}

/** A backup as retention sees it. */
export interface PruneCandidate {
  name: string;
  /** Unix seconds. */
  createdAt: number;
}

/** Why a backup is kept: `newest` (always), `last`, `daily`, `weekly`. */
export type KeepReason = 'newest' | 'last' | 'daily' | 'weekly';

/** The verdict for one backup. */
export interface PruneDecision extends PruneCandidate {
  keep: boolean;
  /** Empty when the backup is removed. */
  reasons: KeepReason[];
}

const pad = (n: number) => String(n).padStart(2, '0');

/** `YYYY-MM-DD`, local time. */
export function dayKey(seconds: number): string {
  const d = new Date(seconds * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** ISO 8601 week `YYYY-Www` (weeks start on Monday; week 1 holds the year's first Thursday), local time. */
export function weekKey(seconds: number): string {
  const d = new Date(seconds * 1000);
  const t = new Date(d.getFullYear(), d.getMonth(), d.getDate(), 12);
  const weekday = (t.getDay() + 6) % 7; // Monday = 0
  t.setDate(t.getDate() - weekday + 3); // the Thursday of this week decides the year
  const year = t.getFullYear();
  const firstThursday = new Date(year, 0, 4, 12);
  firstThursday.setDate(firstThursday.getDate() - ((firstThursday.getDay() + 6) % 7) + 3);
  const week = 1 + Math.round((t.getTime() - firstThursday.getTime()) / (7 * 86_400_000));
  return `${year}-W${pad(week)}`;
}

/** Check a policy: at least one option, each a whole number ≥ 0. */
export function validatePolicy(policy: RetentionPolicy): void {
  const given = (['keepLast', 'keepDaily', 'keepWeekly'] as const).filter((k) => policy[k] !== undefined);
  if (given.length === 0) {
    throw new BackupError('INVALID_OPTION', 'prune needs at least one of --keep-last, --keep-daily, --keep-weekly (nothing is removed without a retention rule).');
  }
  for (const k of given) {
    const v = policy[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      const flag = `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
      throw new BackupError('INVALID_OPTION', `${flag} must be a whole number ≥ 0, got ${JSON.stringify(v)}.`);
    }
  }
}

/**
 * Decide which backups a retention policy keeps (pure; the core of {@link pruneBackups}).
 * The newest backup is always kept. A backup kept by several rules lists every reason.
 * Result: newest first.
 *
 * @throws {BackupError} `INVALID_OPTION` for an empty or malformed policy.
 * @example
 * ```ts
 * planPrune(backups, { keepLast: 3, keepDaily: 7 }).filter((d) => !d.keep); // what prune removes
 * ```
 */
export function planPrune(backups: readonly PruneCandidate[], policy: RetentionPolicy): PruneDecision[] {
  validatePolicy(policy);
  const sorted = [...backups].sort((a, b) => b.createdAt - a.createdAt || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
  const out: PruneDecision[] = sorted.map((b) => ({ name: b.name, createdAt: b.createdAt, keep: false, reasons: [] }));
  const keep = (d: PruneDecision, why: KeepReason) => {
    d.keep = true;
    if (!d.reasons.includes(why)) d.reasons.push(why);
  };
  if (out[0]) keep(out[0], 'newest');
  out.slice(0, policy.keepLast ?? 0).forEach((d) => keep(d, 'last'));
  const bucket = (n: number | undefined, key: (s: number) => string, why: KeepReason) => {
    if (!n) return;
    const seen = new Set<string>();
    for (const d of out) {
      const k = key(d.createdAt);
      if (seen.has(k)) continue;
      if (seen.size >= n) break;
      seen.add(k);
      keep(d, why);
    }
  };
  bucket(policy.keepDaily, dayKey, 'daily');
  bucket(policy.keepWeekly, weekKey, 'weekly');
  return out;
}

/** Options of {@link pruneBackups}. */
export interface PruneOptions extends RetentionPolicy {
  /** @default `<data root>/../backups` */
  backupDir?: string;
  /** Report what would be removed, remove nothing. @default false */
  dryRun?: boolean;
}

/** What {@link pruneBackups} did (or would do, with `dryRun`). */
export interface PruneResult {
  backupDir: string;
  dryRun: boolean;
  /** Newest first. */
  kept: PruneDecision[];
  /** Removed (or to be removed with `dryRun`), newest first. */
  removed: PruneDecision[];
  /** Temporary directories of killed runs that were removed (none with `dryRun`). */
  cleanedLeftovers: string[];
}

/**
 * Remove the backups a retention policy does not keep (see {@link planPrune}); considers
 * every listed backup of the backup dir, `pre_restore_*` and Python ones included. The
 * newest backup is never removed. Each removed backup is first renamed to a hidden
 * `.<name>.deleting-...` (so it vanishes from `list` at once), then deleted.
 *
 * @throws {BackupError} `INVALID_OPTION` (no keep option, negative count), `IO`.
 * @example
 * ```ts
 * const r = await pruneBackups({ keepLast: 7, keepWeekly: 4, dryRun: true });
 * console.log(r.removed.map((d) => d.name));
 * ```
 */
export async function pruneBackups(opts: PruneOptions): Promise<PruneResult> {
  // One prune per backup dir at a time (BUSY otherwise).
  return withPruneLock(resolveBackupDir(opts.backupDir), () => pruneBackupsLocked(opts));
}

async function pruneBackupsLocked(opts: PruneOptions): Promise<PruneResult> {
  const policy: RetentionPolicy = {};
  if (opts.keepLast !== undefined) policy.keepLast = opts.keepLast;
  if (opts.keepDaily !== undefined) policy.keepDaily = opts.keepDaily;
  if (opts.keepWeekly !== undefined) policy.keepWeekly = opts.keepWeekly;
  validatePolicy(policy);
  const { backupDir, backups } = await listBackups(opts.backupDir === undefined ? {} : { backupDir: opts.backupDir });
  const plan = planPrune(backups, policy);
  const dryRun = opts.dryRun ?? false;
  const result: PruneResult = { backupDir, dryRun, kept: plan.filter((d) => d.keep), removed: plan.filter((d) => !d.keep), cleanedLeftovers: [] };
  if (dryRun) return result;
  for (const d of result.removed) {
    const from = join(backupDir, d.name);
    const trash = join(backupDir, deletingDirName(d.name));
    try {
      await rename(from, trash);
    } catch (err) {
      throw ioError(from, 'remove the backup', err);
    }
    await fsyncDir(backupDir).catch(() => {});
    await removeTree(trash);
  }
  result.cleanedLeftovers = await cleanBackupDirLeftovers(backupDir);
  return result;
}
