/**
 * The state file format of record: `<dataRoot>/agents/<agent_id>/state.json`, holding the
 * Python implementation's fields (`agent_id`, `name`, `state`) plus ours (`revision`,
 * `updated_at`, `state_version`), which Python ignores. Unknown fields are kept on rewrite.
 */
import { join } from 'node:path';
import { assertValidAgentId } from './agent-id.js';
import { AgentStateError } from './errors.js';
import type { JsonObject, JsonValue } from './types.js';

/** Directory under the data root that holds one directory per agent. */
export const AGENTS_DIR = 'agents';
/** Name of an agent's state file inside its directory. */
export const STATE_FILE = 'state.json';

/** The fields this package reads and writes; every other field of a state file is kept as is. */
export const KNOWN_FIELDS = ['agent_id', 'name', 'state', 'revision', 'updated_at', 'state_version'] as const;
const KNOWN = new Set<string>(KNOWN_FIELDS);

/**
 * One agent's state file, as read from disk (camelCase view of the JSON document).
 *
 * @example
 * ```ts
 * const rec = await readAgentRecord('/srv/dawn', 'coordinator');
 * console.log(rec.name, rec.revision, Object.keys(rec.state as object));
 * ```
 */
export interface AgentRecord {
  /** `agent_id` (the directory name when the file lacks the field). */
  agentId: string;
  /** `name` (the agent id when the file lacks the field). */
  name: string;
  /** `state`, as stored (before any migration); `{}` when the file lacks the field, as Python reads it. */
  state: JsonValue;
  /** `revision`: how many saves made it; `0` for files without one (written by the Python implementation). */
  revision: number;
  /** `updated_at`: Unix seconds (float) of the last save, when the file has it. */
  updatedAt: number | undefined;
  /** `state_version`: schema version of `state`; `1` when the file lacks it. */
  stateVersion: number;
  /** Every other top-level field, in file order; written back unchanged on save. */
  extra: JsonObject;
  /** Absolute path of the state file. */
  path: string;
}

/**
 * Path of an agent's state file: `<dataRoot>/agents/<agentId>/state.json`.
 *
 * @throws {AgentStateError} `INVALID_AGENT_ID` for an id that is not a safe directory name.
 * @example
 * ```ts
 * agentStatePath('/srv/dawn', 'coordinator'); // '/srv/dawn/agents/coordinator/state.json'
 * ```
 */
export function agentStatePath(dataRoot: string, agentId: string): string {
  assertValidAgentId(agentId);
  return join(dataRoot, AGENTS_DIR, agentId, STATE_FILE);
}

function invalid(path: string, agentId: string, what: string): AgentStateError {
  return new AgentStateError(
    'INVALID_RECORD',
    `${path} is not a valid agent state file: ${what}. It was left untouched; fix or move it and retry.`,
    { path, agentId },
  );
}

/** Set a property even when its name is `__proto__` (JSON.parse makes such own properties). */
function setOwn(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Check a parsed state file and return its record.
 * @throws {AgentStateError} `INVALID_RECORD`
 */
export function parseRecord(raw: unknown, path: string, agentId: string): AgentRecord {
  if (!isPlainObject(raw)) {
    throw invalid(path, agentId, `the document is ${Array.isArray(raw) ? 'an array' : raw === null ? 'null' : typeof raw}, not an object`);
  }
  const id = raw.agent_id;
  if (id !== undefined && id !== agentId) {
    throw invalid(
      path,
      agentId,
      `its agent_id is ${JSON.stringify(id)} but the file belongs to agent ${JSON.stringify(agentId)} (a copied or renamed directory?)`,
    );
  }
  const name = raw.name;
  if (name !== undefined && typeof name !== 'string') throw invalid(path, agentId, `its name is ${JSON.stringify(name)}, not a string`);
  const revision = raw.revision ?? 0;
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0) {
    throw invalid(path, agentId, `its revision is ${JSON.stringify(raw.revision)}, not a non-negative integer`);
  }
  const stateVersion = raw.state_version ?? 1;
  if (typeof stateVersion !== 'number' || !Number.isSafeInteger(stateVersion) || stateVersion < 1) {
    throw invalid(path, agentId, `its state_version is ${JSON.stringify(raw.state_version)}, not a positive integer`);
  }
  const updatedAt = raw.updated_at;
  if (updatedAt !== undefined && (typeof updatedAt !== 'number' || !Number.isFinite(updatedAt))) {
    throw invalid(path, agentId, `its updated_at is ${JSON.stringify(updatedAt)}, not a number of seconds`);
  }
  const extra: JsonObject = {};
  for (const key of Object.keys(raw)) if (!KNOWN.has(key)) setOwn(extra, key, raw[key]);
  return {
    agentId,
    name: name ?? agentId,
    state: raw.state === undefined ? {} : (raw.state as JsonValue),
    revision,
    updatedAt,
    stateVersion,
    extra,
    path,
  };
}

/** The document written for a save: Python's fields first, then the kept unknown ones, then ours. */
export function buildRecordDocument(fields: {
  agentId: string;
  name: string;
  state: unknown;
  extra: JsonObject;
  revision: number;
  updatedAt: number;
  stateVersion: number;
}): Record<string, unknown> {
  const doc: Record<string, unknown> = { agent_id: fields.agentId, name: fields.name, state: fields.state };
  for (const key of Object.keys(fields.extra)) setOwn(doc, key, fields.extra[key]);
  doc.revision = fields.revision;
  doc.updated_at = fields.updatedAt;
  doc.state_version = fields.stateVersion;
  return doc;
}
