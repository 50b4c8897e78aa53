export { BaseAgent, type BaseAgentOptions, type SaveStateOptions, type AgentStateSnapshot } from './base-agent.js';
export type { AutosaveOptions } from './autosave.js';
export type { ShutdownHookOptions } from './shutdown.js';
export { AgentStateError, type AgentStateErrorCode, type AgentStateErrorDetails } from './errors.js';
export { isValidAgentId, assertValidAgentId, MAX_AGENT_ID_LENGTH, MAX_AGENT_ID_BYTES } from './agent-id.js';
export { resolveDataRoot, DATA_ROOT_ENV, type DataRootOptions } from './data-root.js';
export { listAgentIds, readAgentRecord } from './store.js';
export { agentStatePath, AGENTS_DIR, STATE_FILE, KNOWN_FIELDS, type AgentRecord } from './record.js';
export type { JsonValue, JsonObject, JsonPrimitive } from './types.js';
