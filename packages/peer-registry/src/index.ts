export { PeerRegistryError, type PeerRegistryErrorCode, type PeerRegistryErrorDetails } from './errors.js';
export { Peer, type Count, type PeerInit, type PeerPatch, type PeerRecord } from './peer.js';
export {
  PeerRegistry,
  type PeerRegistryOptions,
  type PeerValidator,
  type AddPeerOptions,
  type ListPeersOptions,
  type PeerStats,
  type PeerEventName,
  type PeerEventInfo,
  type PeerListener,
  type FlushOptions,
} from './registry.js';
export {
  resolveDataRoot,
  resolveRegistryPath,
  DATA_ROOT_ENV,
  REGISTRY_FILE_NAME,
  type DataRootOptions,
  type RegistryPathOptions,
} from './data-root.js';
export { FORMAT_VERSION } from './file-format.js';
export { MAX_NODE_ID_LENGTH, MAX_ADDRESS_LENGTH } from './validate.js';
export { MAX_JSON_DEPTH, type JsonValue, type JsonObject } from './json.js';
