import { lstat, readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { VerifyProblem } from './errors.js';
import type { ManifestEntry } from './metadata.js';
import { entryRel, joinRel, relKey, storedRel, type NameEscape, type Rel } from './relpath.js';

/**
 * Damage that spans backups. Incremental backups share unchanged files as hard links, so a file
 * damaged in one backup is damaged in every backup holding the same inode. For each `modified`
 * or `unreadable` file with more than one link, look at the same path in the other backups of
 * the backup dir and name those holding the same inode (`sharedWith`, and said in `detail`).
 * Only reads (`lstat`); costs nothing when nothing is damaged.
 */
export async function annotateShared(backupPath: string, manifest: readonly ManifestEntry[], nameEscape: NameEscape, problems: VerifyProblem[]): Promise<void> {
  const hit = problems.filter((p) => p.kind === 'modified' || p.kind === 'unreadable');
  if (hit.length === 0) return;
  const backupDir = dirname(backupPath);
  const others = await otherBackups(backupPath);
  if (!others) return;
  const byKey = new Map<string, ManifestEntry>();
  for (const m of manifest) byKey.set(m.path_b64 !== undefined ? `\0${m.path_b64}` : m.path, m);
  for (const p of hit) {
    const m = byKey.get(p.pathB64 !== undefined ? `\0${p.pathB64}` : p.path);
    const rel = m ? entryRel(m) : undefined;
    if (!m || rel === undefined || relKey(rel) === '') continue;
    await annotateOne(backupDir, backupPath, others, storedRel(rel, nameEscape), p);
  }
}

/** The other backups of the backup dir (names), for {@link annotateOne}. */
async function otherBackups(backupPath: string): Promise<string[] | undefined> {
  const self = basename(backupPath);
  try {
    return (await readdir(dirname(backupPath))).filter((n) => !n.startsWith('.') && n !== self).sort();
  } catch {
    return undefined;
  }
}

/** Name the other backups holding the same inode as `stored` in `backupPath` (see {@link annotateShared}). */
async function annotateOne(backupDir: string, backupPath: string, others: readonly string[], stored: Rel, p: VerifyProblem): Promise<void> {
  const st = await lstat(joinRel(backupPath, stored)).catch(() => undefined);
  if (!st?.isFile() || st.nlink < 2) return;
  const shared: string[] = [];
  for (const o of others) {
    const ost = await lstat(joinRel(join(backupDir, o), stored)).catch(() => undefined);
    if (ost && ost.ino === st.ino && ost.dev === st.dev) shared.push(o);
  }
  if (shared.length === 0) {
    p.detail += ` (the file has ${st.nlink} hard links elsewhere (another backup may hold it under another path) and may share the damage)`;
    return;
  }
  p.sharedWith = shared;
  p.detail += `; the same file (hard link, inode ${st.ino}) is in ${shared.length} other backup(s): ${shared.slice(0, 5).join(', ')}${shared.length > 5 ? ', ...' : ''}`;
}

/**
 * The same for one of the backup's own files (its manifest file, shared by backups of an
 * unchanged tree): a `modified` problem about it names the other backups holding the same inode.
 */
export async function annotateSharedFile(backupPath: string, name: string, p: VerifyProblem): Promise<void> {
  if (p.kind !== 'modified' && p.kind !== 'unreadable') return;
  const others = await otherBackups(backupPath);
  if (others) await annotateOne(dirname(backupPath), backupPath, others, name, p);
}
