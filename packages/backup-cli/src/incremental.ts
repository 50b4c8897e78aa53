import * as fs from 'node:fs';
import { hostname } from 'node:os';
import type { CopiedFile, CopyWorker } from './copy.js';
import { openedAt } from './confine.js';
import { errCode, parseMode } from './fsutil.js';
import { newestFirst, scanBackupDir } from './list.js';
import { checkManifest, FORMAT_NAME, nameEscapeOf, readMetadata, type ManifestFile, type ManifestFileRef } from './metadata.js';
import { sourceKey } from './prune.js';
import { entryRel, relKey, type NameEscape } from './relpath.js';
import { storedPathOf } from './verify.js';

/**
 * Incremental backups: a file that did not change since the previous backup of the same source
 * is a hard link to that backup's file instead of a new copy (as `rsync --link-dest`).
 *
 * What proves "unchanged": the source file is read and hashed (the manifest needs its sha256
 * anyway), and it is linked only when its sha256, size, mode and mtime equal the previous
 * manifest entry's, and the previous backup's file itself still looks as that entry recorded it
 * (a regular file, not a symlink, with the recorded size, the mode a backup gives it and the
 * recorded mtime). A file modified in place within the same second (same size, same mtime)
 * has another sha256: it is copied. Linking never writes to the file linked to.
 */

/** The previous backup files are linked to. */
export interface PreviousBackup {
  name: string;
  path: string;
  nameEscape: NameEscape;
  /** Its file entries, by `relKey` of the source path. */
  files: Map<string, ManifestFile>;
  /** Its manifest file (format 2), shared by the new backup when byte-identical. */
  manifestRef?: ManifestFileRef;
}

/**
 * The newest complete backup of the same source (the same host and real source path, as
 * `prune` groups them) in the backup dir, with a sound manifest; `undefined` when there is none.
 * Python backups (no checksums) are never linked to. `realBackupDir`: the real path (no symlink on
 * the way), so that opening a previous backup's file can be checked to be inside it. Reads the head of every metadata file and
 * the whole metadata of at most three candidates (newest first).
 */
export async function findPrevious(realBackupDir: string, realSource: string): Promise<PreviousBackup | undefined> {
  let scanned;
  try {
    ({ scanned } = await scanBackupDir(realBackupDir, { light: true, head: true }));
  } catch {
    return undefined;
  }
  const ours = await sourceKey({ hostname: hostname(), source_dir: realSource });
  const candidates: { name: string; path: string; createdAt: number }[] = [];
  for (const s of scanned) {
    if (!s.ok || s.meta.format !== FORMAT_NAME) continue;
    if ((await sourceKey(s.meta)) !== ours) continue;
    candidates.push({ name: s.info.name, path: s.info.path, createdAt: s.info.createdAt });
  }
  candidates.sort(newestFirst);
  for (const c of candidates.slice(0, 3)) {
    try {
      const meta = await readMetadata(c.path, c.name);
      if (!Array.isArray(meta.manifest)) continue;
      const nameEscape = nameEscapeOf(meta);
      if (checkManifest(meta.manifest, { nameEscape }).length > 0) continue;
      const files = new Map<string, ManifestFile>();
      for (const m of meta.manifest) if (m.type === 'file') files.set(relKey(entryRel(m)!), m);
      return { name: c.name, path: c.path, nameEscape, files, ...(meta.manifest_file !== undefined ? { manifestRef: meta.manifest_file } : {}) };
    } catch {
      // damaged: try the next one
    }
  }
  return undefined;
}

/** The mode a backup gives its copy of a file (owner can always read; no setuid/setgid/sticky). */
export const storedMode = (m: number): number => (m & 0o777) | 0o400;

/** Same instant, to the millisecond (times go through floating-point seconds). */
const sameTime = (a: number, b: number): boolean => Math.abs(a - b) < 0.001;

/** errno codes of `link` that mean "copy instead". */
const NO_LINK = new Set(['EMLINK', 'EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOENT', 'ENOTDIR', 'EACCES']);

/**
 * Try to back up `src` as a hard link at `dst` to the previous backup's file for it. Returns the
 * hashed source (for the manifest) when linked, or `{ hashed }` / `undefined` when the file must be
 * copied (`hashed`: the source was read, it changed or the previous file cannot be trusted).
 * Source read errors are thrown as by {@link CopyWorker.copy}.
 */
export async function tryLink(
  worker: CopyWorker,
  src: string | Buffer,
  dst: string | Buffer,
  prev: ManifestFile,
  previous: PreviousBackup,
): Promise<{ linked: CopiedFile } | undefined> {
  const ok = await linkable(worker, src, prev, previous);
  if (!ok) return undefined;
  const { h, prevPath, pst } = ok;
  try {
    fs.linkSync(prevPath, dst); // never follows a symlink (linkat without AT_SYMLINK_FOLLOW); fails on anything existing
  } catch (err) {
    if (NO_LINK.has(errCode(err))) return undefined;
    throw err;
  }
  // What was linked is the inode checked above (not something swapped in meanwhile).
  const lst = fs.lstatSync(dst);
  if (lst.ino !== pst.ino || lst.dev !== pst.dev) {
    fs.unlinkSync(dst);
    return undefined;
  }
  return { linked: h };
}

/**
 * Whether `src` would be linked to the previous backup's file (every check of {@link tryLink}
 * but the link itself: read-only, for `backup --dry-run` too). Returns the hashed source and the
 * previous file examined, or `undefined` (it would be copied).
 */
export async function linkable(
  worker: CopyWorker,
  src: string | Buffer,
  prev: ManifestFile,
  previous: PreviousBackup,
): Promise<{ h: CopiedFile; prevPath: string | Buffer; pst: fs.Stats } | undefined> {
  const prevMode = parseMode(prev.mode);
  if (prevMode === undefined || typeof prev.mtime !== 'number') return undefined;
  // Cheap first: a size, mode or mtime that differs means a copy (one read, not two).
  let st: fs.Stats;
  try {
    st = fs.lstatSync(src);
  } catch {
    return undefined; // the copy reports it
  }
  if (!st.isFile() || st.size !== prev.size || (st.mode & 0o7777) !== prevMode || !sameTime(st.mtimeMs / 1000, prev.mtime)) return undefined;
  const h = await worker.copy({ src, confined: true }); // read and hash (the manifest needs it anyway), never outside the source
  if (h.sha256 !== prev.sha256 || h.size !== prev.size || h.mode !== prevMode || !sameTime(h.mtime, prev.mtime)) return undefined;
  // The previous backup's file must still be what its manifest says (never link to damage we can
  // see), and lie inside that backup: opened without following a link, the open checked against
  // its path (built from the real backup dir, so no directory on the way was swapped for a link).
  const prevPath = storedPathOf(previous.path, prev, previous.nameEscape);
  let pst: fs.Stats;
  try {
    const fd = fs.openSync(prevPath, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0));
    try {
      if (!openedAt(fd, prevPath)) return undefined;
      pst = fs.fstatSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return undefined;
  }
  if (!pst.isFile() || pst.size !== prev.size || (pst.mode & 0o7777) !== storedMode(prevMode) || !sameTime(pst.mtimeMs / 1000, prev.mtime)) return undefined;
  return { h, prevPath, pst };
}
