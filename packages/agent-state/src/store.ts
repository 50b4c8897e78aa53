/**
 * Read-only access to a data root's agents for tools (the backup CLI summarises a data root
 * with these), without constructing an agent.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readJson } from '@dawn/atomic-json';
import { isValidAgentId } from './agent-id.js';
import { AgentStateError, fromAtomicJson } from './errors.js';
import { storeDataRoot, type DataRootOptions } from './data-root.js';
import { AGENTS_DIR, agentStatePath, parseRecord, STATE_FILE, type AgentRecord } from './record.js';

function rootOf(dataRoot: string | DataRootOptions | undefined): string {
  return storeDataRoot(dataRoot);
}

/**
 * The ids of the agents that have a state file under a data root (`<dataRoot>/agents/<id>/state.json`),
 * sorted. Directories without a `state.json` (an agent that never saved) and names that are not
 * valid agent ids are skipped. A data root without an `agents` directory has no agents.
 * Reads directory entries only, never a state file.
 *
 * @param dataRoot - the data root, or `{ dataRoot }` (resolved by `@dawn/atomic-json`'s `resolveDataRoot`)
 * @default dataRoot: env `PROJECT_DAWN_DATA_ROOT`, else `~/.project-dawn`
 * @throws {AgentStateError} `IO` when the agents directory cannot be read (other than not existing);
 *   `INVALID_OPTIONS` for an empty root or a `{ dataDir }` (an agent's directory, not a data root).
 * @example
 * ```ts
 * const ids = await listAgentIds('/srv/dawn'); // ['coordinator', 'first_agent']
 * ```
 */
export async function listAgentIds(dataRoot?: string | DataRootOptions): Promise<string[]> {
  const dir = join(rootOf(dataRoot), AGENTS_DIR);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw new AgentStateError('IO', `Cannot list the agents in ${dir}: ${(err as Error).message}. Check the directory's permissions.`, {
      path: dir,
      cause: err,
    });
  }
  const found = await Promise.all(
    names.map(async (name) => {
      if (!isValidAgentId(name)) return undefined;
      try {
        return (await stat(join(dir, name, STATE_FILE))).isFile() ? name : undefined;
      } catch {
        return undefined;
      }
    }),
  );
  return found.filter((n): n is string => n !== undefined).sort();
}

/**
 * Read one agent's state file without constructing an agent. The file is read whole (writers
 * replace it atomically, so it is never torn), parsed and checked; nothing is migrated or
 * written.
 *
 * @param dataRoot - the data root, or `{ dataRoot }` (`undefined`: env, then `~/.project-dawn`)
 * @throws {AgentStateError} `INVALID_AGENT_ID`; `INVALID_OPTIONS` as {@link listAgentIds}; `NOT_FOUND` when the agent has no state file;
 *   `PARSE` (with `line`/`column`) when it is not JSON; `INVALID_RECORD` when it is not an agent
 *   record; `IO`.
 * @example
 * ```ts
 * const rec = await readAgentRecord('/srv/dawn', 'coordinator');
 * rec.name;     // 'CoordinationAgent'
 * rec.revision; // 0 for a file written by the Python implementation
 * ```
 */
export async function readAgentRecord(dataRoot: string | DataRootOptions | undefined, agentId: string): Promise<AgentRecord> {
  const path = agentStatePath(rootOf(dataRoot), agentId);
  let raw: unknown;
  try {
    raw = await readJson(path);
  } catch (err) {
    const e = fromAtomicJson(err, agentId);
    if (AgentStateError.is(e) && e.code === 'NOT_FOUND') {
      throw new AgentStateError('NOT_FOUND', `Agent ${JSON.stringify(agentId)} has no state file at ${path}. Check the agent id and the data root.`, {
        path,
        agentId,
        cause: err,
      });
    }
    throw e;
  }
  return parseRecord(raw, path, agentId);
}
