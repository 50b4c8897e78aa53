import { AtomicJsonError } from '@dawn/atomic-json';

/**
 * Every failure of `@dawn/agent-state` carries one of these codes.
 *
 * | code | meaning |
 * | --- | --- |
 * | `INVALID_AGENT_ID` | the agent id cannot be a directory name (empty, `.`, `..`, `/`, `\`, NUL, too long) |
 * | `INVALID_OPTIONS` | an option has a wrong value (e.g. an empty `dataDir`, a data root passed as `dataDir`, a negative delay) |
 * | `NOT_SERIALIZABLE` | the state is not JSON (BigInt, function, cycle, symbol, NaN...); `keyPath` names the value |
 * | `CONFLICT` | the state file changed (content or existence) since this instance loaded or last saved it |
 * | `PARSE` | the state file is not valid JSON (`line`, `column` set); it was left untouched |
 * | `INVALID_RECORD` | the state file is JSON but not an agent record (wrong `agent_id`, bad `revision`...) |
 * | `NEWER_VERSION` | the file's `state_version` is newer than the agent class's `stateVersion` |
 * | `MIGRATION_FAILED` | `migrateState()` is missing or threw |
 * | `NOT_FOUND` | `readAgentRecord()` found no state file |
 * | `LOCKED` | another process held the state file's lock for longer than the lock timeout |
 * | `LOCK_COMPROMISED` | the lock was lost while saving; the save was abandoned |
 * | `IO` | the file system failed (permissions, disk full...); `cause` holds the system error |
 */
export type AgentStateErrorCode =
  | 'INVALID_AGENT_ID'
  | 'INVALID_OPTIONS'
  | 'NOT_SERIALIZABLE'
  | 'CONFLICT'
  | 'PARSE'
  | 'INVALID_RECORD'
  | 'NEWER_VERSION'
  | 'MIGRATION_FAILED'
  | 'NOT_FOUND'
  | 'LOCKED'
  | 'LOCK_COMPROMISED'
  | 'IO';

/** Extra facts an {@link AgentStateError} may carry. */
export interface AgentStateErrorDetails {
  /** The underlying error (often an `AtomicJsonError`). */
  cause?: unknown;
  /** The agent the operation was about. */
  agentId?: string;
  /** The state file (or data root) the operation was about. */
  path?: string;
  /** Key path of the offending value of a `NOT_SERIALIZABLE` error, e.g. `$.state.tasks.t1.due`. */
  keyPath?: string;
  /** 1-based line of a `PARSE` error. */
  line?: number;
  /** 1-based column of a `PARSE` error. */
  column?: number;
  /** `CONFLICT`: the revision this instance expected on disk (`null`: it expected no file). */
  expectedRevision?: number | null;
  /** `CONFLICT`: the revision found on disk (`null`: the file was deleted). */
  actualRevision?: number | null;
}

const BRAND = Symbol.for('@dawn/agent-state.AgentStateError');

/**
 * The one error class of `@dawn/agent-state`. Check it with {@link AgentStateError.is} (works
 * across duplicated copies of the package) and switch on {@link AgentStateError.code}; never
 * on the message.
 *
 * @example
 * ```ts
 * try {
 *   await agent.saveState();
 * } catch (err) {
 *   if (AgentStateError.is(err) && err.code === 'CONFLICT') {
 *     await agent.reload(); // take the other writer's state, or: await agent.saveState({ force: true })
 *   } else throw err;
 * }
 * ```
 */
export class AgentStateError extends Error {
  override readonly name = 'AgentStateError';
  /** Stable machine-readable code. */
  readonly code: AgentStateErrorCode;
  /** The agent the operation was about, when there is one. */
  readonly agentId?: string;
  /** The file or directory the operation was about, when there is one. */
  readonly path?: string;
  /** `NOT_SERIALIZABLE`: key path of the offending value, e.g. `$.state.items[3]`. */
  readonly keyPath?: string;
  /** `PARSE`: 1-based line. */
  readonly line?: number;
  /** `PARSE`: 1-based column. */
  readonly column?: number;
  /** `CONFLICT`: the revision this instance expected (`null`: no file). */
  readonly expectedRevision?: number | null;
  /** `CONFLICT`: the revision found on disk (`null`: the file was deleted). */
  readonly actualRevision?: number | null;
  /** @internal */
  readonly [BRAND] = true;

  /**
   * @param code - stable code, see {@link AgentStateErrorCode}
   * @param message - what happened, why, and what to do
   * @param details - extra facts (path, key path, revisions, cause)
   */
  constructor(code: AgentStateErrorCode, message: string, details: AgentStateErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    if (details.agentId !== undefined) this.agentId = details.agentId;
    if (details.path !== undefined) this.path = details.path;
    if (details.keyPath !== undefined) this.keyPath = details.keyPath;
    if (details.line !== undefined) this.line = details.line;
    if (details.column !== undefined) this.column = details.column;
    if (details.expectedRevision !== undefined) this.expectedRevision = details.expectedRevision;
    if (details.actualRevision !== undefined) this.actualRevision = details.actualRevision;
  }

  /**
   * True when `err` is an `AgentStateError` from any copy of this package.
   *
   * @example
   * ```ts
   * if (AgentStateError.is(err) && err.code === 'PARSE') console.error(err.path, err.line, err.column);
   * ```
   */
  static is(err: unknown): err is AgentStateError {
    return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[BRAND] === true;
  }
}

/**
 * Translate an error of `@dawn/atomic-json` into an {@link AgentStateError} with the same
 * meaning (the original is kept as `cause`); other errors are returned unchanged.
 */
export function fromAtomicJson(err: unknown, agentId: string | undefined): unknown {
  if (!AtomicJsonError.is(err)) return err;
  const base = { cause: err, path: err.path, ...(agentId === undefined ? {} : { agentId }) };
  switch (err.code) {
    case 'PARSE':
      return new AgentStateError('PARSE', err.message, {
        ...base,
        ...(err.line === undefined ? {} : { line: err.line }),
        ...(err.column === undefined ? {} : { column: err.column }),
      });
    case 'NOT_SERIALIZABLE':
      return new AgentStateError('NOT_SERIALIZABLE', err.message, {
        ...base,
        ...(err.keyPath === undefined ? {} : { keyPath: err.keyPath }),
      });
    case 'NOT_FOUND':
    case 'LOCKED':
    case 'LOCK_COMPROMISED':
    case 'IO':
      return new AgentStateError(err.code, err.message, base);
    default:
      return new AgentStateError('IO', err.message, base);
  }
}
