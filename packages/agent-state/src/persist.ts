/**
 * The save protocol: under the state file's cross-process lock, check that the file is still
 * the one this instance loaded or last saved, then write the next revision atomically.
 *
 * "Still the one" means: its identity is unchanged (device, inode, size, mtime, ctime in ns:
 * every locking writer replaces the file by rename, which gives it a new inode), or else its
 * content, read and digested under the lock, is the same as what this instance loaded or
 * wrote. Revisions alone are not enough: the Python implementation writes no revision, so two
 * of its saves look alike (revision 0) — the content tells them apart. An unchanged identity
 * needs no read, so a save usually costs about one atomic write.
 */
import { fileMark, readJson, sameFileMark, stringifyJson, withLock, writeJson, type FileMark, type LockOptions } from '@dawn/atomic-json';
import { recordDigest, valueDigest } from './digest.js';
import { AgentStateError, fromAtomicJson } from './errors.js';
import { buildRecordDocument, parseRecord } from './record.js';
import type { JsonObject } from './types.js';

/** What an instance knows about the state file as it last loaded or saved it. */
export interface KnownFile {
  /** Identity when loaded (taken before the read) or right after our write; `undefined`: unknown. */
  mark: FileMark | undefined;
  /** Whether an unchanged `mark` alone proves an unchanged file (see {@link settledMark}). */
  markProves: boolean;
  /**
   * {@link recordDigest} of the document; `undefined`: not kept (after our own save on a file
   * system with inode numbers: then any other identity counts as a change).
   */
  digest: string | undefined;
  /** Its revision (`0` for a file without one). */
  revision: number;
  /** Its unknown fields, kept on rewrite. */
  extra: JsonObject;
  /** {@link valueDigest} of its `state` (see `BaseAgent.stop()`); `undefined`: not kept, read it back. */
  stateDigest: string | undefined;
  name: string;
  stateVersion: number;
}

/**
 * Whether a mark taken now can prove, later, that the file did not change. A writer that
 * rewrites the file in place (Python's `open(path, "w")`) keeps its inode; within one tick of
 * the file system's clock it may keep its size and times too. A mark whose times are at least
 * a tick old when taken cannot be matched by a later write (the git "racy clean" rule), so it
 * proves; a fresher one is checked by content at the next save. Ticks: at most 10 ms for the
 * kernel clock on file systems with sub-second times; 2 s on those with whole seconds (FAT).
 */
export function settledMark(mark: FileMark, nowMs = Date.now()): boolean {
  const newest = mark.mtimeNs > mark.ctimeNs ? mark.mtimeNs : mark.ctimeNs;
  const coarse = mark.mtimeNs % 1_000_000_000n === 0n;
  const marginNs = coarse ? 3_000_000_000n : 20_000_000n;
  return BigInt(Math.floor(nowMs)) * 1_000_000n - newest > marginNs;
}

export interface SaveInput {
  path: string;
  agentId: string;
  name: string;
  /** The serialized state (already checked to be JSON). */
  state: unknown;
  stateVersion: number;
  /** The file as this instance loaded or last saved it; `undefined`: it expects no file. */
  known: KnownFile | undefined;
  force: boolean;
  fsync: boolean;
  lock: LockOptions | undefined;
}

export interface SaveResult {
  revision: number;
  updatedAt: number;
  known: KnownFile;
}

type Found = { kind: 'appeared' | 'changed'; revision: number } | { kind: 'deleted' };

function conflict(input: SaveInput, found: Found): AgentStateError {
  const { path, agentId, known } = input;
  const had =
    known === undefined
      ? 'this instance expected no file (it did not exist when initialize() ran, or initialize() was not called)'
      : `this instance loaded or last saved revision ${known.revision}`;
  const what =
    found.kind === 'deleted'
      ? `${path} was deleted since this instance loaded or last saved it (${had})`
      : found.kind === 'appeared'
        ? `${path} now exists, at revision ${found.revision}, but ${had}`
        : `${path} was changed by another writer since this instance loaded or last saved it (${had}; the file is now at revision ${found.revision}` +
          `${found.revision === known?.revision ? ', but its content differs: a writer that keeps no revision, such as the Python implementation' : ''})`;
  return new AgentStateError(
    'CONFLICT',
    `Cannot save agent ${JSON.stringify(agentId)}: ${what}. Nothing was written. Call reload() to take the file as it is now, or ` +
      `saveState({ force: true }) to overwrite it deliberately.`,
    { path, agentId, expectedRevision: known?.revision ?? null, actualRevision: found.kind === 'deleted' ? null : found.revision },
  );
}

/**
 * Save one agent record under the lock, with the conflict check.
 * @throws {AgentStateError} `CONFLICT`, `PARSE`, `INVALID_RECORD`, `NOT_SERIALIZABLE`, `LOCKED`, `LOCK_COMPROMISED`, `IO`.
 */
export async function saveRecord(input: SaveInput): Promise<SaveResult> {
  const { path, agentId, known } = input;
  try {
    return await withLock(
      path,
      async () => {
        const current = await fileMark(path);
        let onDisk: { revision: number; extra: JsonObject } | undefined;
        if (current === undefined) {
          if (known !== undefined && !input.force) throw conflict(input, { kind: 'deleted' });
          onDisk = undefined; // nothing to overwrite
        } else if (known?.mark !== undefined && known.markProves && sameFileMark(current, known.mark)) {
          onDisk = known; // provably the file we loaded or wrote
        } else {
          const raw = await readJson(path);
          const rec = parseRecord(raw, path, agentId); // a damaged file is never overwritten, not even by force
          const same = known?.digest !== undefined && recordDigest(raw) === known.digest;
          if (!same && !input.force) {
            // A state too deep or too large to write has no digest either: say what really stops
            // the save (NOT_SERIALIZABLE), not a conflict the digests could not rule out.
            if (valueDigest(input.state) === undefined) stringifyJson(input.state, { spaces: 0, filePath: path });
            throw conflict(input, { kind: known === undefined ? 'appeared' : 'changed', revision: rec.revision });
          }
          onDisk = same ? known : rec;
        }
        const revision = Math.max(onDisk?.revision ?? 0, known?.revision ?? 0) + 1;
        const updatedAt = Date.now() / 1000;
        const extra = onDisk?.extra ?? {};
        const doc = buildRecordDocument({
          agentId,
          name: input.name,
          state: input.state,
          extra,
          revision,
          updatedAt,
          stateVersion: input.stateVersion,
        });
        // After this write, an unchanged identity proves the file is ours, and a changed one
        // means another writer replaced or edited it: no digest is needed to decide, and a
        // save costs no more than the write. Only where identities prove nothing (no file yet
        // to tell, or a file system without inode numbers) is the content digested, at the
        // moment writeJson serializes it (synchronously, when called).
        const needDigest = current === undefined || current.ino === 0n;
        const stateDigest = needDigest ? valueDigest(input.state) : undefined;
        const digest = stateDigest === undefined ? undefined : recordDigest(doc, stateDigest);
        await writeJson(path, doc, { fsync: input.fsync });
        const mark = await fileMark(path).catch(() => undefined);
        return {
          revision,
          updatedAt,
          known: {
            mark,
            // The file is a new inode we just renamed into place under the lock: only a writer
            // bypassing the lock and rewriting it in place within the same clock tick could keep
            // this mark (atomic-json's documented limit).
            markProves: true,
            digest,
            revision,
            extra,
            stateDigest,
            name: input.name,
            stateVersion: input.stateVersion,
          },
        };
      },
      input.lock,
    );
  } catch (err) {
    throw fromAtomicJson(err, agentId);
  }
}
