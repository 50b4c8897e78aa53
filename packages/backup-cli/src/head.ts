import { constants } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import { join } from 'node:path';
import { FORMAT_NAME, metadataProblems, type BackupMetadata } from './metadata.js';
import { METADATA_FILE } from './paths.js';

/**
 * Cheap metadata for `list`: the **head** of `.backup_metadata.json`, every field before
 * `manifest`, read without reading or parsing the per-file manifest.
 *
 * This package writes the metadata with `manifest` as its last field (2-space indentation), so
 * the head ends at the one line `\n  "manifest": [` (a newline inside a JSON string is always
 * escaped, so this text cannot occur inside a value). The head is used only when all of these
 * hold, else the caller reads the whole file as before ({@link readMetadata}):
 * the file is a regular file (`lstat`, then opened `O_NONBLOCK | O_NOFOLLOW` and `fstat`ed);
 * the marker lies in the first {@link HEAD_LIMIT} bytes; the file ends as a manifest that is the
 * last field ends (`]\n}\n`: a truncated file falls back, and is then reported damaged); the head
 * parses and passes the same field checks as the whole file; its `format` is `dawn-backup`.
 *
 * What the head cannot see: damage inside the manifest itself. `show`, `verify`, `restore` and
 * `prune` always read and check the whole file; `list --verify` re-hashes everything.
 */

/** Bytes read from the start of the file to find the head. */
export const HEAD_LIMIT = 256 * 1024;
const MARKER = Buffer.from('\n  "manifest": [');

/** The head of a backup's metadata, with `manifest: []` standing in for the unread manifest; `undefined` when it cannot be used. */
export async function readMetadataHead(backupPath: string): Promise<BackupMetadata | undefined> {
  const file = join(backupPath, METADATA_FILE);
  try {
    const st = await lstat(file);
    if (!st.isFile()) return undefined;
    const fh = await open(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOFOLLOW ?? 0));
    try {
      const fst = await fh.stat();
      if (!fst.isFile() || fst.size < 16) return undefined;
      const want = Math.min(fst.size, HEAD_LIMIT);
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await fh.read(buf, 0, want, 0);
      const head = buf.subarray(0, bytesRead);
      const at = head.indexOf(MARKER);
      if (at < 0) return undefined;
      const tail = Buffer.allocUnsafe(8);
      const { bytesRead: tn } = await fh.read(tail, 0, 8, fst.size - 8);
      const end = tail.subarray(0, tn).toString('latin1');
      if (!end.endsWith(']\n}\n')) return undefined;
      let text = head.subarray(0, at).toString('utf8').trimEnd();
      if (!text.endsWith(',')) return undefined;
      text = `${text.slice(0, -1)}\n}`;
      const raw = JSON.parse(text) as unknown;
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || 'manifest' in raw) return undefined;
      const meta = { ...(raw as Record<string, unknown>), manifest: [] } as unknown as BackupMetadata;
      if (meta.format !== FORMAT_NAME || metadataProblems(meta).length > 0) return undefined;
      return meta;
    } finally {
      await fh.close().catch(() => {});
    }
  } catch {
    return undefined; // the full read says what is wrong
  }
}
