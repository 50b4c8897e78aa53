import { AgentStateError } from './errors.js';

/** Longest accepted agent id, in characters (Unicode code points). */
export const MAX_AGENT_ID_LENGTH = 128;

/** Longest accepted agent id in UTF-8 bytes: a directory name must fit the file system's 255-byte limit. */
export const MAX_AGENT_ID_BYTES = 255;

/**
 * Why `agentId` cannot be used as an agent id (a directory name under `<dataRoot>/agents/`),
 * or `undefined` when it can.
 */
export function agentIdProblem(agentId: unknown): string | undefined {
  if (typeof agentId !== 'string') return `it is ${agentId === null ? 'null' : typeof agentId}, not a string`;
  if (agentId === '') return 'it is empty';
  if (agentId === '.' || agentId === '..') return `"${agentId}" names a directory itself, not an entry in it`;
  if (agentId.includes('/')) return 'it contains "/"';
  if (agentId.includes('\\')) return 'it contains "\\"';
  if (agentId.includes('\0')) return 'it contains a NUL character';
  let chars = 0;
  for (const _ of agentId) chars++;
  if (chars > MAX_AGENT_ID_LENGTH) return `it is ${chars} characters long (at most ${MAX_AGENT_ID_LENGTH})`;
  const bytes = Buffer.byteLength(agentId, 'utf8');
  if (bytes > MAX_AGENT_ID_BYTES) return `it is ${bytes} bytes long in UTF-8 (at most ${MAX_AGENT_ID_BYTES})`;
  return undefined;
}

/**
 * True when `agentId` is a valid agent id: a non-empty string of at most 128 characters (and
 * 255 UTF-8 bytes) that is not `.` or `..` and contains no `/`, `\` or NUL. Unicode is fine.
 *
 * @example
 * ```ts
 * isValidAgentId('planner-1'); // true
 * isValidAgentId('../etc');    // false
 * ```
 */
export function isValidAgentId(agentId: unknown): agentId is string {
  return agentIdProblem(agentId) === undefined;
}

/**
 * Throw `INVALID_AGENT_ID` unless `agentId` is a valid agent id (see {@link isValidAgentId}).
 * Never touches the disk.
 *
 * @throws {AgentStateError} `INVALID_AGENT_ID`, naming the id and the reason.
 * @example
 * ```ts
 * assertValidAgentId(process.argv[2]);
 * ```
 */
export function assertValidAgentId(agentId: unknown): asserts agentId is string {
  const problem = agentIdProblem(agentId);
  if (problem === undefined) return;
  const shown = typeof agentId === 'string' ? JSON.stringify(agentId.length > 60 ? `${agentId.slice(0, 60)}…` : agentId) : String(agentId);
  throw new AgentStateError(
    'INVALID_AGENT_ID',
    `Invalid agent id ${shown}: ${problem}. An agent id is a directory name under <dataRoot>/agents/: ` +
      `use a non-empty name of at most ${MAX_AGENT_ID_LENGTH} characters without "/", "\\" or NUL, other than "." and "..". Nothing was read or written.`,
    typeof agentId === 'string' ? { agentId } : {},
  );
}
