/**
 * The save protocol: under the state file's cross-process lock, check that the file is still at
 * the revision this instance expects, then write the next revision atomically.
 *
 * To keep a save as cheap as a plain atomic write, the file is not re-read when it is
 * provably the one this instance wrote last: after each write (still under the lock) we keep
 * its identity (device, inode, size, mtime, ctime in ns). Every writer that takes the lock
 * replaces the file by rename, so any other save gives it a new inode; when the identity still
 * matches, the file holds our last revision. Otherwise it is read and parsed.
 */
import { fileMark, readJson, sameFileMark, withLock, writeJson, type FileMark, type LockOptions } from '@dawn/atomic-json';
import { AgentStateError, fromAtomicJson } from './errors.js';
import { buildRecordDocument, parseRecord } from './record.js';
import type { JsonObject } from './types.js';

/** What an instance knows about the file on disk after its last save. */
export interface KnownFile {
  mark: FileMark;
  /** Unknown fields of the file, kept on rewrite. */
  extra: JsonObject;
}

export interface SaveInput {
  path: string;
  agentId: string;
  name: string;
  /** The serialized state (already checked to be JSON). */
  state: unknown;
  stateVersion: number;
  /** Revision this instance loaded or last saved; `undefined`: it expects no file. */
  expected: number | undefined;
  /** The file as this instance last wrote it, when it did. */
  known: KnownFile | undefined;
  force: boolean;
  fsync: boolean;
  lock: LockOptions | undefined;
}

export interface SaveResult {
  revision: number;
  updatedAt: number;
  /** `undefined` when the written file could not be stat'ed (the next save then re-reads it). */
  known: KnownFile | undefined;
}

function conflict(input: SaveInput, actual: number): AgentStateError {
  const { path, agentId, expected } = input;
  const had =
    expected === undefined
      ? 'this instance expected no file (it did not exist when initialize() ran, or initialize() was not called)'
      : `this instance loaded or last saved revision ${expected}`;
  return new AgentStateError(
    'CONFLICT',
    `Cannot save agent ${JSON.stringify(agentId)}: ${path} is at revision ${actual}, but ${had}; another process or ` +
      `agent instance saved it since. Nothing was written. Call reload() to take the newer state, or ` +
      `saveState({ force: true }) to overwrite it deliberately.`,
    { path, agentId, expectedRevision: expected ?? null, actualRevision: actual },
  );
}

/**
 * Save one agent record under the lock, with the conflict check.
 * @throws {AgentStateError} `CONFLICT`, `PARSE`, `INVALID_RECORD`, `NOT_SERIALIZABLE`, `LOCKED`, `LOCK_COMPROMISED`, `IO`.
 */
export async function saveRecord(input: SaveInput): Promise<SaveResult> {
  const { path, agentId } = input;
  try {
    return await withLock(
      path,
      async () => {
        const current = await fileMark(path);
        let onDisk: { revision: number; extra: JsonObject } | undefined;
        if (current === undefined) {
          onDisk = undefined; // nothing to overwrite
        } else if (input.known !== undefined && input.expected !== undefined && sameFileMark(current, input.known.mark)) {
          onDisk = { revision: input.expected, extra: input.known.extra };
        } else {
          const rec = parseRecord(await readJson(path), path, agentId);
          onDisk = { revision: rec.revision, extra: rec.extra };
        }
        if (onDisk !== undefined && !input.force && onDisk.revision !== input.expected) throw conflict(input, onDisk.revision);
        const revision = Math.max(onDisk?.revision ?? 0, input.expected ?? 0) + 1;
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
        await writeJson(path, doc, { fsync: input.fsync });
        const mark = await fileMark(path).catch(() => undefined);
        return { revision, updatedAt, known: mark === undefined ? undefined : { mark, extra } };
      },
      input.lock,
    );
  } catch (err) {
    throw fromAtomicJson(err, agentId);
  }
}
