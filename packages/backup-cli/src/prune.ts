import { lstat, realpath, rename } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { BackupError, ioError } from './errors.js';
import { fsyncDir, removeTree } from './fsutil.js';
import { cleanBackupDirLeftovers, deletingDirName } from './leftovers.js';
import { scanBackupDir, type DamagedBackup } from './list.js';
import type { BackupMetadata } from './metadata.js';
import { withPruneLock } from './oplock.js';
import { resolveBackupDir } from './paths.js';

/** How many backups of each source to keep. At least one field must be given. */
export interface RetentionPolicy {
  /** Keep the N newest backups of each source. */
  keepLast?: number;
  /** For the last N days (local time) that have backups, keep the newest backup of each day (per source). */
  keepDaily?: number;
  /** For the last N ISO weeks (local time) that have backups, keep the newest backup of each week (per source). */
  keepWeekly?: number;
  /** For the last N calendar months (local time) that have backups, keep the newest backup of each month (per source). */
  keepMonthly?: number;
  /**
   * Keep every backup made within this duration **before the newest backup of its source** (as
   * restic does; borg counts from now): `36h`, `7d`, `2w`, `6m`, `1y`, or a sum such as `1y6m`
   * (`h` hours, `d` days, `w` weeks, `m` calendar months, `y` calendar years; local time).
   * Counting from the newest backup means a node whose backups stopped never loses its history
   * to the passing of time.
   */
  keepWithin?: string;
  /**
   * `pre_restore_*` backups (the safety copies `restore` makes) have their own policy: keep the
   * N newest of each source. They never count for, nor are removed by, the rules above.
   * @default 5
   */
  keepPreRestore?: number;
  /**
   * ...and every `pre_restore_*` backup made in the last D days (by its recorded time).
   * @default 7
   */
  keepPreRestoreDays?: number;
}

/** Default of {@link RetentionPolicy.keepPreRestore}. */
export const DEFAULT_KEEP_PRE_RESTORE = 5;
/** Default of {@link RetentionPolicy.keepPreRestoreDays}. */
export const DEFAULT_KEEP_PRE_RESTORE_DAYS = 7;

/** A backup as retention sees it. */
export interface PruneCandidate {
  name: string;
  /** Recorded creation time, Unix seconds (orders the backups). */
  createdAt: number;
  /**
   * The source the backup belongs to (host and real path of the backed-up directory); the policy
   * applies to each source on its own. @default one source for all
   */
  source?: string;
  /** A `pre_restore_*` backup (own policy). @default from the name */
  preRestore?: boolean;
  /**
   * When the backup appeared in the backup dir, Unix seconds, from the file system (the
   * directory's ctime: set by the rename that completed the backup; a user cannot set it).
   * Protects the backup made last even when the recorded clocks disagree.
   */
  appearedAt?: number;
}

/**
 * Why a backup is kept:
 * - `future`: its recorded time (or its appearance on disk) lies in the future: a clock ran
 *   ahead, so its place in time is unknown (always kept, and not ranked with the others);
 * - `newest`: of the others, the newest of its source by recorded time (always kept);
 * - `latest-on-disk`: of the others, the last of its source to appear in the backup dir (always kept);
 * - `last`, `daily`, `weekly`, `monthly`, `within`: the rules of {@link RetentionPolicy};
 * - `pre-restore`, `recent`: the `pre_restore_*` policy (the N newest, the last D days).
 */
export type KeepReason = 'newest' | 'latest-on-disk' | 'future' | 'last' | 'daily' | 'weekly' | 'monthly' | 'within' | 'pre-restore' | 'recent';

/** The verdict for one backup. */
export interface PruneDecision {
  name: string;
  /** Unix seconds. */
  createdAt: number;
  /** The source it belongs to (`''` when the caller gave none). */
  source: string;
  preRestore: boolean;
  keep: boolean;
  /** Empty when the backup is removed. */
  reasons: KeepReason[];
}

/** The `pre_restore_*` safety backups made by `restore` are recognised by their name. */
export const isPreRestoreName = (name: string): boolean => name.startsWith('pre_restore_');

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

/** `YYYY-MM`, local time. */
export function monthKey(seconds: number): string {
  const d = new Date(seconds * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}`;
}

const DURATION = /^(?:\d+[hdwmy])+$/;

/**
 * Parse a `keepWithin` duration (`36h`, `7d`, `2w`, `6m`, `1y`, `1y6m`...) and return the
 * instant (Unix seconds) that lies that long before `from` (calendar months and years, local time).
 * @throws {BackupError} `INVALID_OPTION` for anything else.
 */
export function withinStart(duration: string, from: number): number {
  if (typeof duration !== 'string' || !DURATION.test(duration) || duration.length > 40) {
    throw new BackupError('INVALID_OPTION', `--keep-within needs a duration such as 36h, 7d, 2w, 6m, 1y or 1y6m (h, d, w, m = months, y = years), got ${JSON.stringify(duration)}.`);
  }
  const d = new Date(from * 1000);
  for (const [, n, unit] of duration.matchAll(/(\d+)([hdwmy])/g)) {
    const k = Number(n);
    if (unit === 'h') d.setHours(d.getHours() - k);
    else if (unit === 'd') d.setDate(d.getDate() - k);
    else if (unit === 'w') d.setDate(d.getDate() - 7 * k);
    else if (unit === 'm') d.setMonth(d.getMonth() - k);
    else d.setFullYear(d.getFullYear() - k);
  }
  const t = d.getTime();
  return Number.isFinite(t) ? t / 1000 : -Infinity;
}

const POLICY_KEYS = ['keepLast', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepPreRestore', 'keepPreRestoreDays'] as const;

/** True when the policy has at least one rule for regular backups. */
export const hasRetentionRule = (p: RetentionPolicy): boolean =>
  p.keepLast !== undefined || p.keepDaily !== undefined || p.keepWeekly !== undefined || p.keepMonthly !== undefined || p.keepWithin !== undefined;

/** Check a policy: at least one of keepLast / keepDaily / keepWeekly / keepMonthly / keepWithin, each count a whole number ≥ 0. */
export function validatePolicy(policy: RetentionPolicy): void {
  if (!hasRetentionRule(policy)) {
    throw new BackupError(
      'INVALID_OPTION',
      'prune needs at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly, --keep-within (nothing is removed without a retention rule).',
    );
  }
  if (policy.keepWithin !== undefined) withinStart(policy.keepWithin, Date.now() / 1000);
  for (const k of POLICY_KEYS) {
    const v = policy[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      const flag = `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
      throw new BackupError('INVALID_OPTION', `${flag} must be a whole number ≥ 0, got ${JSON.stringify(v)}.`);
    }
  }
}

const byNewest = (a: PruneDecision, b: PruneDecision) => b.createdAt - a.createdAt || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0);

/**
 * Decide which backups a retention policy keeps (pure; the core of {@link pruneBackups}).
 *
 * The backups are split by source (and `pre_restore_*` apart from the others); each group is
 * ordered by recorded time and gets the policy on its own. In every group, backups dated in the
 * future (recorded time or `appearedAt` after `now`) are kept and left out of the ranking; of
 * the others, the newest and the one that appeared on disk last are always kept. A backup kept by several rules lists every reason. Result: newest first.
 *
 * @param now Unix seconds. @default the current time
 * @throws {BackupError} `INVALID_OPTION` for an empty or malformed policy.
 * @example
 * ```ts
 * planPrune(backups, { keepLast: 3, keepDaily: 7 }).filter((d) => !d.keep); // what prune removes
 * ```
 */
export function planPrune(backups: readonly PruneCandidate[], policy: RetentionPolicy, now: number = Date.now() / 1000): PruneDecision[] {
  validatePolicy(policy);
  const groups = new Map<string, { d: PruneDecision; appearedAt: number | undefined }[]>();
  for (const b of backups) {
    const preRestore = b.preRestore ?? isPreRestoreName(b.name);
    const d: PruneDecision = { name: b.name, createdAt: b.createdAt, source: b.source ?? '', preRestore, keep: false, reasons: [] };
    const key = `${preRestore ? 'pre' : 'regular'}\0${d.source}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push({ d, appearedAt: b.appearedAt });
  }
  const keep = (d: PruneDecision, why: KeepReason) => {
    d.keep = true;
    if (!d.reasons.includes(why)) d.reasons.push(why);
  };
  const out: PruneDecision[] = [];
  for (const group of groups.values()) {
    out.push(...group.map((x) => x.d));
    // A backup dated in the future (by its recorded time or its ctime) was made while a clock
    // ran ahead: its place in time is unknown. It is kept, and takes no one's place: the rules
    // below rank only the others, so the backup made after it is still the newest.
    const ranked = group.filter((x) => {
      const ahead = x.d.createdAt > now || (x.appearedAt ?? -Infinity) > now;
      if (ahead) keep(x.d, 'future');
      return !ahead;
    });
    if (ranked.length === 0) continue;
    ranked.sort((a, b) => byNewest(a.d, b.d));
    const ds = ranked.map((x) => x.d);
    keep(ds[0]!, 'newest');
    let latest: { d: PruneDecision; appearedAt: number } | undefined;
    for (const x of ranked) {
      if (x.appearedAt !== undefined && (latest === undefined || x.appearedAt > latest.appearedAt)) latest = { d: x.d, appearedAt: x.appearedAt };
    }
    if (latest) keep(latest.d, 'latest-on-disk');
    if (ds[0]!.preRestore) {
      ds.slice(0, policy.keepPreRestore ?? DEFAULT_KEEP_PRE_RESTORE).forEach((d) => keep(d, 'pre-restore'));
      const since = now - (policy.keepPreRestoreDays ?? DEFAULT_KEEP_PRE_RESTORE_DAYS) * 86_400;
      for (const d of ds) if (d.createdAt >= since) keep(d, 'recent');
      continue;
    }
    ds.slice(0, policy.keepLast ?? 0).forEach((d) => keep(d, 'last'));
    const bucket = (n: number | undefined, key: (s: number) => string, why: KeepReason) => {
      if (!n) return;
      const seen = new Set<string>();
      for (const d of ds) {
        const k = key(d.createdAt);
        if (seen.has(k)) continue;
        if (seen.size >= n) break;
        seen.add(k);
        keep(d, why);
      }
    };
    bucket(policy.keepDaily, dayKey, 'daily');
    bucket(policy.keepWeekly, weekKey, 'weekly');
    bucket(policy.keepMonthly, monthKey, 'monthly');
    if (policy.keepWithin !== undefined) {
      const since = withinStart(policy.keepWithin, ds[0]!.createdAt); // from the newest backup of the source
      for (const d of ds) if (d.createdAt >= since) keep(d, 'within');
    }
  }
  return out.sort(byNewest);
}

/** Options of {@link pruneBackups}. */
export interface PruneOptions extends RetentionPolicy {
  /** @default `<data root>/../backups` */
  backupDir?: string;
  /** Report what would be removed, remove nothing. @default false */
  dryRun?: boolean;
  /** The current time (decides what is `future` or `recent`). @default new Date() */
  now?: Date;
  /**
   * Prune only the backups of this source directory (made on this host): the others are not
   * looked at (neither kept nor removed). What `backup --keep-*` uses. @default every source
   */
  source?: string;
}

/** What {@link pruneBackups} did (or would do, with `dryRun`). */
export interface PruneResult {
  backupDir: string;
  dryRun: boolean;
  /** Newest first. */
  kept: PruneDecision[];
  /** Removed (or to be removed with `dryRun`), newest first. */
  removed: PruneDecision[];
  /** Backups whose metadata cannot be used: never removed, never counted (see `list`). */
  damaged: DamagedBackup[];
  /** Temporary directories of killed runs that were removed (none with `dryRun`). */
  cleanedLeftovers: string[];
}

/**
 * The source a backup belongs to: its host and the backed-up directory, made real (resolved,
 * symlinks followed when it exists here) for backups made on this host or by the Python
 * implementation (no host recorded: `?`).
 */
export async function sourceKey(meta: Pick<BackupMetadata, 'hostname' | 'source_dir'>): Promise<string> {
  const host = typeof meta.hostname === 'string' ? meta.hostname : '?';
  let dir = resolve(meta.source_dir);
  if (host === '?' || host === hostname()) dir = await realpath(dir).catch(() => dir);
  return `${host}:${dir}`;
}

/**
 * Remove the backups a retention policy does not keep (see {@link planPrune}). The policy
 * applies to each source on its own (host + real path of `source_dir`; Python backups, which
 * record no host, form their own group per source); `pre_restore_*` backups follow their own
 * policy (`keepPreRestore`, `keepPreRestoreDays`). The newest backup of each source (by recorded
 * time, and the last to appear on disk), and any dated in the future, are never removed. A
 * backup whose metadata cannot be used is never removed nor counted: it is reported in
 * `damaged`. Each removed backup is first renamed to a hidden `.<name>.deleting-...` (so it
 * vanishes from `list` at once), then deleted.
 *
 * @throws {BackupError} `INVALID_OPTION` (no keep option, negative count), `IO`.
 * @example
 * ```ts
 * const r = await pruneBackups({ keepLast: 7, keepWeekly: 4, dryRun: true });
 * console.log(r.removed.map((d) => d.name), r.damaged);
 * ```
 */
export async function pruneBackups(opts: PruneOptions): Promise<PruneResult> {
  // One prune per backup dir at a time (BUSY otherwise).
  return withPruneLock(resolveBackupDir(opts.backupDir), () => pruneBackupsLocked(opts));
}

async function pruneBackupsLocked(opts: PruneOptions): Promise<PruneResult> {
  const policy: RetentionPolicy = {};
  for (const k of POLICY_KEYS) if (opts[k] !== undefined) policy[k] = opts[k];
  if (opts.keepWithin !== undefined) policy.keepWithin = opts.keepWithin;
  validatePolicy(policy);
  const only = opts.source !== undefined ? await sourceKey({ hostname: hostname(), source_dir: opts.source }) : undefined;
  const { backupDir, scanned } = await scanBackupDir(opts.backupDir, { light: true });
  const candidates: PruneCandidate[] = [];
  const damaged: DamagedBackup[] = [];
  for (const s of scanned) {
    if (!s.ok) {
      damaged.push(s.damaged);
      continue;
    }
    const source = await sourceKey(s.meta);
    if (only !== undefined && source !== only) continue;
    const st = await lstat(s.info.path).catch(() => undefined);
    candidates.push({
      name: s.info.name,
      createdAt: s.info.createdAt,
      source,
      ...(st ? { appearedAt: st.ctimeMs / 1000 } : {}),
    });
  }
  const plan = planPrune(candidates, policy, (opts.now ?? new Date()).getTime() / 1000);
  const dryRun = opts.dryRun ?? false;
  const result: PruneResult = { backupDir, dryRun, kept: plan.filter((d) => d.keep), removed: plan.filter((d) => !d.keep), damaged, cleanedLeftovers: [] };
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
