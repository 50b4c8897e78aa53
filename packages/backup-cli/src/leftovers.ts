import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ioError } from './errors.js';
import { errCode, isPidAlive, randomTag, removeTree } from './fsutil.js';

/**
 * Temporary directories, named so a later run can tell whose they are:
 *
 * - `<backup-dir>/.<name>.partial-<pid>-<tag>`: a backup being built (renamed to `<name>` when complete);
 * - `<backup-dir>/.<name>.deleting-<pid>-<tag>`: a backup being removed by `prune`;
 * - `<parent of target>/.dawn-restore-<id>-<pid>-<tag>.new`: a restored tree being built;
 * - `<parent of target>/.dawn-restore-<id>-<pid>-<tag>.old`: the previous target during the swap.
 *
 * Names start with `.`, so `list` never shows them. A leftover whose process is gone is
 * cleaned (or, for a restore, finished) by the next run; one of a live process is left alone.
 */
const BACKUP_TEMP = /^\.(.+)\.(partial|deleting)-(\d+)-([0-9a-f]{8})$/;

export const partialDirName = (name: string): string => `.${name}.partial-${process.pid}-${randomTag()}`;
export const deletingDirName = (name: string): string => `.${name}.deleting-${process.pid}-${randomTag()}`;

/** Remove the temporary directories of dead processes from a backup dir. Returns the names removed. */
export async function cleanBackupDirLeftovers(backupDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(backupDir);
  } catch (err) {
    if (errCode(err) === 'ENOENT') return [];
    throw ioError(backupDir, 'read the backup dir', err);
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = BACKUP_TEMP.exec(n);
    if (!m || isPidAlive(Number(m[3]))) continue;
    try {
      await removeTree(join(backupDir, n));
    } catch (err) {
      throw ioError(join(backupDir, n), 'remove the leftover of an interrupted run', err);
    }
    removed.push(n);
  }
  return removed;
}
