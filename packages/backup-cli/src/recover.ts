import { createHash } from 'node:crypto';
import { readdir, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ioError } from './errors.js';
import { errCode, fsyncDir, isPidAlive, lstatOrUndefined, randomTag, removeTree } from './fsutil.js';
import { hostTag, parkLeftover, removeTreeReporting } from './leftovers.js';

/** What {@link recoverInterruptedRestores} did. */
export interface RecoveryReport {
  /** One line per action taken. */
  actions: string[];
  /** Leftovers that were left in place for a human to inspect. */
  warnings: string[];
}

const targetId = (target: string): string => createHash('sha256').update(basename(target)).digest('hex').slice(0, 12);

/** Paths of the temp dirs of one restore of `target` (beside it, so renames stay on one file system). */
export function restoreTempPaths(target: string): { newDir: string; oldDir: string } {
  const base = join(dirname(target), `.dawn-restore-${targetId(target)}-h${hostTag()}-${process.pid}-${randomTag()}`);
  return { newDir: `${base}.new`, oldDir: `${base}.old` };
}

/**
 * Finish or undo restores of `target` whose process died (SIGKILL, power loss), from the
 * temporary directories they left beside it:
 *
 * | left behind | meaning | action |
 * | --- | --- | --- |
 * | `.new` only | killed while building (target untouched) | remove `.new` |
 * | `.old` + `.new`, no target | killed between the two renames of the swap | move `.new` into place (the restore had committed: verified, old data saved), remove `.old` |
 * | `.old`, no `.new`, no target | (not produced by a restore; defensive) | move `.old` back |
 * | `.old`, target present | killed while removing the previous data | remove `.old` |
 * | `.old` + `.new` + target | something recreated the target meanwhile | nothing; warn |
 *
 * Previous data that cannot be fully removed (a mount point, an immutable file) is renamed to
 * `<target>.restore-leftover-YYYYMMDD_HHMMSS` and reported as an action: it never blocks a
 * later run.
 *
 * Temp dirs of live processes are left alone, and so are those of another host (the names carry
 * a host tag; a pid says nothing about another machine sharing the parent over NFS): they are
 * reported in `warnings`, never completed or removed here. Names without a host tag (older
 * versions) are judged by their pid. Called by `restore` (on its target) and by `backup` (on its
 * source) before they start.
 *
 * @throws errno errors of `readdir`/`rename`/`rm` beside the target.
 * @example
 * ```ts
 * const { actions, warnings } = await recoverInterruptedRestores('/srv/dawn');
 * for (const a of actions) console.log(a);
 * ```
 */
export async function recoverInterruptedRestores(target: string): Promise<RecoveryReport> {
  const report: RecoveryReport = { actions: [], warnings: [] };
  const parent = dirname(target);
  let names: string[];
  try {
    names = await readdir(parent);
  } catch (err) {
    if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') return report;
    throw ioError(parent, 'look for leftovers of interrupted restores in', err);
  }
  const re = new RegExp(`^\\.dawn-restore-${targetId(target)}-(?:h([0-9a-f]{8})-)?(\\d+)-([0-9a-f]{8})\\.(new|old)$`);
  const groups = new Map<string, { host?: string; pid: number; newDir?: string; oldDir?: string }>();
  for (const n of names) {
    const m = re.exec(n);
    if (!m) continue;
    const key = `${m[1] ?? ''}-${m[2]}-${m[3]}`;
    const g = groups.get(key) ?? { host: m[1], pid: Number(m[2]) };
    if (m[4] === 'new') g.newDir = join(parent, n);
    else g.oldDir = join(parent, n);
    groups.set(key, g);
  }
  for (const g of groups.values()) {
    if (g.host !== undefined && g.host !== hostTag()) {
      report.warnings.push(
        `Found ${[g.oldDir, g.newDir].filter(Boolean).join(' and ')}, left by a restore of ${target} on another host (tag h${g.host}); ` +
          'left in place: finish or remove it from that host, or remove it by hand once you know that restore is gone.',
      );
      continue;
    }
    if (isPidAlive(g.pid)) continue;
    try {
      await recoverOne(g, target, parent, report);
    } catch (err) {
      throw ioError(g.newDir ?? g.oldDir ?? parent, `recover an interrupted restore (target ${target}) from`, err);
    }
  }
  return report;
}

async function recoverOne(g: { newDir?: string; oldDir?: string }, target: string, parent: string, report: RecoveryReport): Promise<void> {
  const targetExists = (await lstatOrUndefined(target)) !== undefined;
  if (g.oldDir && g.newDir && !targetExists) {
    await rename(g.newDir, target);
    await fsyncDir(parent);
    report.actions.push(`completed an interrupted restore into ${target} (the previous data had been saved before the swap)`);
    await removeOld(g.oldDir, target, report);
  } else if (g.oldDir && !g.newDir && !targetExists) {
    await rename(g.oldDir, target);
    await fsyncDir(parent);
    report.actions.push(`moved the previous data back into ${target}`);
  } else if (g.oldDir && !g.newDir) {
    if ((await removeOld(g.oldDir, target, report)) === null) report.actions.push(`removed the previous data left by a completed restore of ${target}: ${g.oldDir}`);
  } else if (g.oldDir && g.newDir) {
    report.warnings.push(
      `Found ${g.oldDir} (previous data) and ${g.newDir} (restored data) of an interrupted restore, but ${target} exists again; ` +
        'left all three in place: inspect them and remove what you do not need.',
    );
  } else if (g.newDir) {
    await removeTree(g.newDir);
    report.actions.push(`removed an unfinished restored tree: ${g.newDir}`);
  }
}

/**
 * Remove the previous data of a completed restore; what cannot be removed is renamed to a
 * visible leftover name (see {@link parkLeftover}) and reported in `report.actions`.
 * Returns `null` when all was removed, else where the rest is and what it holds.
 */
export async function removeOld(oldDir: string, target: string, report: RecoveryReport): Promise<{ path: string; left: string[] } | null> {
  const left = await removeTreeReporting(oldDir);
  if (left.length === 0) return null;
  const parked = await parkLeftover(oldDir, target);
  report.actions.push(
    `the previous data of ${target} could not be fully removed (left: ${left.slice(0, 5).join(', ')}${left.length > 5 ? `, and ${left.length - 5} more` : ''}); ` +
      `it is in ${parked}: check it (unmount, chattr -i) and remove it by hand`,
  );
  return { path: parked, left: left.map((l) => (parked === oldDir ? l : l.replace(oldDir, parked))) };
}
