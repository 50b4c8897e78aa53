import { lstat, readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { VerifyProblem } from './errors.js';
import type { ManifestEntry } from './metadata.js';
import { entryRel, joinRel, relKey, storedRel } from './relpath.js';

/**
 * Damage that spans backups. Incremental backups share unchanged files as hard links, so a file
 * damaged in one backup is damaged in every backup holding the same inode. For each `modified`
 * or `unreadable` file with more than one link, look at the same path in the other backups of
 * the backup dir and name those holding the same inode (`sharedWith`, and said in `detail`).
 * Only reads (`lstat`); costs nothing when nothing is damaged.
 */
export async function annotateShared(backupPath: string, manifest: readonly ManifestEntry[], nameEscape: boolean, problems: VerifyProblem[]): Promise<void> {
  const hit = problems.filter((p) => p.kind === 'modified' || p.kind === 'unreadable');
  if (hit.length === 0) return;
  const backupDir = dirname(backupPath);
  const self = basename(backupPath);
  let others: string[];
  try {
    others = (await readdir(backupDir)).filter((n) => !n.startsWith('.') && n !== self).sort();
  } catch {
    return;
  }
  const byKey = new Map<string, ManifestEntry>();
  for (const m of manifest) byKey.set(m.path_b64 !== undefined ? `\0${m.path_b64}` : m.path, m);
  for (const p of hit) {
    const m = byKey.get(p.pathB64 !== undefined ? `\0${p.pathB64}` : p.path);
    const rel = m ? entryRel(m) : undefined;
    if (!m || rel === undefined || relKey(rel) === '') continue;
    const stored = storedRel(rel, nameEscape);
    const st = await lstat(joinRel(backupPath, stored)).catch(() => undefined);
    if (!st?.isFile() || st.nlink < 2) continue;
    const shared: string[] = [];
    for (const o of others) {
      const ost = await lstat(joinRel(join(backupDir, o), stored)).catch(() => undefined);
      if (ost && ost.ino === st.ino && ost.dev === st.dev) shared.push(o);
    }
    if (shared.length === 0) {
      p.detail += ` (the file has ${st.nlink} hard links elsewhere (another backup may hold it under another path) and may share the damage)`;
      continue;
    }
    p.sharedWith = shared;
    p.detail += `; the same file (hard link, inode ${st.ino}) is in ${shared.length} other backup(s): ${shared.slice(0, 5).join(', ')}${shared.length > 5 ? ', ...' : ''}`;
  }
}
