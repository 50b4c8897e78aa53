import { constants } from 'node:fs';
import { copyFile, lstat, mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errCode } from './fsutil.js';
import type { SummaryRecord } from './metadata.js';

/**
 * The summary of a data root recorded in each backup: the number of peers (read through
 * `@dawn/peer-registry`) and the agent ids (through `@dawn/agent-state`'s store API).
 *
 * Both reads are read-only (opening a registry writes nothing; `close()` without mutations
 * flushes nothing), so `backup` reads the summary from the finished copy itself: it describes
 * exactly what the backup holds. Reading it never fails a backup: whatever cannot be read is
 * `null`, with a note saying why. The two packages are imported lazily, so even a broken or
 * missing install of one of them only degrades the summary, never the backup.
 *
 * Reading it never blocks: the registry is only handed to `@dawn/peer-registry` when
 * `mesh/` is a real directory and `mesh/peer_registry.json` a regular file (checked with
 * `lstat`, then opened with `O_NONBLOCK | O_NOFOLLOW` and checked again with `fstat`); a
 * symlink, FIFO, device or socket there gives `peer_count: null` with a note.
 */
export async function readSummary(dataRoot: string): Promise<SummaryRecord> {
  const notes: string[] = [];
  const [peerCount, agentIds] = await Promise.all([peerCountOf(dataRoot, notes), agentIdsOf(dataRoot, notes)]);
  return { peer_count: peerCount, agent_ids: agentIds, notes };
}

const msg = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Why the registry of `dataRoot` must not be opened, or `undefined` when it is safe to read (or absent). */
async function registryRefusal(dataRoot: string): Promise<string | undefined> {
  const kind = (st: { isSymbolicLink(): boolean; isFIFO(): boolean; isDirectory(): boolean }) =>
    st.isSymbolicLink() ? 'a symlink' : st.isFIFO() ? 'a FIFO' : st.isDirectory() ? 'a directory' : 'a special file';
  const mesh = join(dataRoot, 'mesh');
  const file = join(mesh, 'peer_registry.json');
  try {
    const m = await lstat(mesh);
    if (!m.isDirectory()) return `${mesh} is ${kind(m)}, not a directory (not followed)`;
    const f = await lstat(file);
    if (!f.isFile()) return `${file} is ${kind(f)}, not a regular file (never opened)`;
  } catch (err) {
    if (errCode(err) === 'ENOENT') return undefined;
    return `cannot inspect ${file}: ${msg(err)}`;
  }
  // Between lstat and the registry's own open, a FIFO could be swapped in: open without
  // blocking, check what was opened.
  let fh;
  try {
    fh = await open(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOFOLLOW ?? 0));
    if (!(await fh.stat()).isFile()) return `${file} is not a regular file (never read)`;
  } catch (err) {
    if (errCode(err) === 'ENOENT') return undefined;
    return errCode(err) === 'ELOOP' ? `${file} is a symlink (not followed)` : `cannot open ${file}: ${msg(err)}`;
  } finally {
    await fh?.close().catch(() => {});
  }
  return undefined;
}

/** When `mesh/peer_registry.json.journal` exists: a temporary data root holding a copy of the registry and its journal. */
async function scratchCopyIfJournaled(dataRoot: string): Promise<string | undefined> {
  const mesh = join(dataRoot, 'mesh');
  const journal = await lstat(join(mesh, 'peer_registry.json.journal')).catch(() => undefined);
  if (journal === undefined) return undefined;
  if (!journal.isFile()) throw new Error(`${join(mesh, 'peer_registry.json.journal')} is not a regular file (never opened)`);
  const scratch = await mkdtemp(join(tmpdir(), 'dawn-summary-'));
  try {
    await mkdir(join(scratch, 'mesh'));
    for (const f of ['peer_registry.json', 'peer_registry.json.journal']) {
      await copyFile(join(mesh, f), join(scratch, 'mesh', f), constants.COPYFILE_EXCL).catch((err: unknown) => {
        if (errCode(err) !== 'ENOENT') throw err;
      });
    }
    return scratch;
  } catch (err) {
    await rm(scratch, { recursive: true, force: true });
    throw err;
  }
}

async function peerCountOf(dataRoot: string, notes: string[]): Promise<number | null> {
  try {
    const refusal = await registryRefusal(dataRoot);
    if (refusal !== undefined) {
      notes.push(`peer count not read: ${refusal}`);
      return null;
    }
    const { PeerRegistry } = await import('@dawn/peer-registry');
    // A registry with a journal is folded on open/close (a compaction writes): read a scratch copy
    // of the pair, so that reading a summary never changes the tree it describes (a backup!).
    const scratch = await scratchCopyIfJournaled(dataRoot);
    try {
      const registry = await PeerRegistry.open({ dataRoot: scratch ?? dataRoot, onCorrupt: 'throw' });
      try {
        return registry.getPeerCount();
      } finally {
        await registry.close().catch(() => {});
      }
    } finally {
      if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
    }
  } catch (err) {
    notes.push(`peer count not read: ${msg(err)}`);
    return null;
  }
}

async function agentIdsOf(dataRoot: string, notes: string[]): Promise<string[] | null> {
  try {
    const { listAgentIds } = await import('@dawn/agent-state');
    return await listAgentIds(dataRoot);
  } catch (err) {
    notes.push(`agent ids not read: ${msg(err)}`);
    return null;
  }
}
