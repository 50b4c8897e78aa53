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
 */
export async function readSummary(dataRoot: string): Promise<SummaryRecord> {
  const notes: string[] = [];
  const [peerCount, agentIds] = await Promise.all([peerCountOf(dataRoot, notes), agentIdsOf(dataRoot, notes)]);
  return { peer_count: peerCount, agent_ids: agentIds, notes };
}

const msg = (err: unknown) => (err instanceof Error ? err.message : String(err));

async function peerCountOf(dataRoot: string, notes: string[]): Promise<number | null> {
  try {
    const { PeerRegistry } = await import('@dawn/peer-registry');
    const registry = await PeerRegistry.open({ dataRoot, onCorrupt: 'throw' });
    try {
      return registry.getPeerCount();
    } finally {
      await registry.close().catch(() => {});
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
