/**
 * Where an agent's files live. The data-root rule itself has one home, `@dawn/atomic-json`'s
 * `resolveDataRoot`; this adds the agent's own directory, `<dataRoot>/agents/<agentId>`, which
 * `dataDir` replaces (the Python `BaseAgent(data_dir=...)`).
 */
import { join, resolve } from 'node:path';
import { expandHome, resolveDataRoot } from '@dawn/atomic-json';
import { assertValidAgentId } from './agent-id.js';
import { AgentStateError } from './errors.js';
import { AGENTS_DIR } from './record.js';

/** How the store API (`listAgentIds`, `readAgentRecord`) is told the data root. */
export interface DataRootOptions {
  /**
   * The data root directory. A leading `~` is expanded.
   * @default env `PROJECT_DAWN_DATA_ROOT`, else `~/.project-dawn`
   */
  dataRoot?: string;
}

function checkDir(key: string, v: unknown, agentId: string | undefined): void {
  if (v !== undefined && (typeof v !== 'string' || v === '')) {
    throw new AgentStateError('INVALID_OPTIONS', `Option ${key} must be a non-empty directory path, got ${JSON.stringify(v) ?? typeof v}.`, {
      ...(agentId === undefined ? {} : { agentId }),
    });
  }
}

/**
 * The data root of the store API: a path, or `{ dataRoot }`, else the environment / default.
 * @throws {AgentStateError} `INVALID_OPTIONS` for a non-string or empty root, or a `dataDir`
 *   option (an agent's own directory since 0.1, never a data root).
 */
export function storeDataRoot(dataRoot: string | DataRootOptions | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (typeof dataRoot === 'object' && dataRoot !== null) {
    if ('dataDir' in dataRoot && (dataRoot as { dataDir?: unknown }).dataDir !== undefined) {
      throw new AgentStateError(
        'INVALID_OPTIONS',
        `The store API takes the data root: pass { dataRoot } (or the path itself). dataDir names one agent's own directory ` +
          `(<dataRoot>/agents/<agentId>) since @dawn/agent-state 0.1, so it cannot select a data root.`,
      );
    }
    checkDir('dataRoot', dataRoot.dataRoot, undefined);
    return resolveDataRoot(dataRoot.dataRoot, env);
  }
  checkDir('dataRoot', dataRoot, undefined);
  return resolveDataRoot(dataRoot, env);
}

/** Where one agent's files are. */
export interface AgentLocation {
  /** The absolute data root. */
  dataRoot: string;
  /** The agent's own directory: `dataDir`, else `<dataRoot>/agents/<agentId>`. */
  dataDir: string;
  /** Whether `dataDir` was given explicitly. */
  explicitDir: boolean;
}

/**
 * Resolve an agent's data root and own directory from its options.
 * @throws {AgentStateError} `INVALID_AGENT_ID`; `INVALID_OPTIONS` for a non-string or empty directory.
 */
export function resolveAgentLocation(
  agentId: string,
  opts: { dataRoot?: string; dataDir?: string },
  env: NodeJS.ProcessEnv = process.env,
): AgentLocation {
  assertValidAgentId(agentId);
  checkDir('dataRoot', opts.dataRoot, agentId);
  checkDir('dataDir', opts.dataDir, agentId);
  const dataRoot = resolveDataRoot(opts.dataRoot, env);
  if (opts.dataDir !== undefined) return { dataRoot, dataDir: resolve(expandHome(opts.dataDir)), explicitDir: true };
  return { dataRoot, dataDir: join(dataRoot, AGENTS_DIR, agentId), explicitDir: false };
}
