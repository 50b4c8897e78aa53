/**
 * Every failure of `@dawn/peer-registry` carries one of these codes.
 *
 * | code | meaning |
 * | --- | --- |
 * | `INVALID_NODE_ID` | `nodeId` is empty, not a string, or longer than 256 characters |
 * | `INVALID_ADDRESS` | `address` is neither a `ws://`/`wss://` URL nor a libp2p multiaddr |
 * | `INVALID_HEALTH_SCORE` | `healthScore` is not a finite number in [0, 1] |
 * | `INVALID_TIMESTAMP` | `lastSeen`/`firstSeen` is not a finite number (Unix seconds) |
 * | `INVALID_FIELD` | another field has the wrong type, or is unknown (see `field`) |
 * | `INVALID_OPTION` | an option of {@link PeerRegistry.open} is invalid |
 * | `NOT_FOUND` | `updatePeer` named a peer this registry does not know |
 * | `CORRUPT` | the registry file is not valid JSON, not UTF-8, not a registry, or nested deeper than can be written back; it was left untouched |
 * | `NOT_SERIALIZABLE` | a write failed because the registry does not fit in one JSON text (too large for a string, or nested too deeply); the file was left untouched |
 * | `UNSUPPORTED_VERSION` | the registry file has a `version` newer than this program understands |
 * | `LOCKED` | another process held the registry's lock too long, or the lock was lost |
 * | `IO` | the file system failed (permissions, disk full...), or the registry path is not a regular file (a FIFO, device or directory, also behind a symlink) |
 * | `CLOSED` | a mutation was issued after `close()` |
 */
export type PeerRegistryErrorCode =
  | 'INVALID_NODE_ID'
  | 'INVALID_ADDRESS'
  | 'INVALID_HEALTH_SCORE'
  | 'INVALID_TIMESTAMP'
  | 'INVALID_FIELD'
  | 'INVALID_OPTION'
  | 'NOT_FOUND'
  | 'CORRUPT'
  | 'NOT_SERIALIZABLE'
  | 'UNSUPPORTED_VERSION'
  | 'LOCKED'
  | 'IO'
  | 'CLOSED';

const BRAND = Symbol.for('@dawn/peer-registry.PeerRegistryError');

/** Extra facts a {@link PeerRegistryError} may carry. */
export interface PeerRegistryErrorDetails {
  /** The underlying error (an `AtomicJsonError` for file failures). */
  cause?: unknown;
  /** The offending field, in camelCase API terms (`nodeId`, `metadata.region`, `maxPeers`). */
  field?: string;
  /** The registry file concerned, for file errors. */
  path?: string;
  /** 1-based line of a `CORRUPT` file that is not valid JSON. */
  line?: number;
  /** 1-based column of a `CORRUPT` file that is not valid JSON. */
  column?: number;
  /** Where in the file a `CORRUPT` registry is wrong, e.g. `$.peers[3].node_id`. */
  keyPath?: string;
}

/**
 * The one error class of `@dawn/peer-registry`. Check it with {@link PeerRegistryError.is}
 * (works across duplicated copies of the package) and switch on {@link PeerRegistryError.code};
 * never on the message.
 *
 * @example
 * ```ts
 * try {
 *   await registry.addPeer({ nodeId: 'n1', address: 'http://example.com' });
 * } catch (err) {
 *   if (PeerRegistryError.is(err) && err.code === 'INVALID_ADDRESS') console.error(err.field, err.message);
 * }
 * ```
 */
export class PeerRegistryError extends Error {
  override readonly name = 'PeerRegistryError';
  /** Stable machine-readable code. */
  readonly code: PeerRegistryErrorCode;
  /** The offending field for validation errors (camelCase, e.g. `healthScore`). */
  readonly field?: string;
  /** The registry file, for file errors. */
  readonly path?: string;
  /** 1-based line of an unparsable file. */
  readonly line?: number;
  /** 1-based column of an unparsable file. */
  readonly column?: number;
  /** Location of a structural problem in the file, e.g. `$.peers[3].node_id`. */
  readonly keyPath?: string;
  /** @internal */
  readonly [BRAND] = true;

  constructor(code: PeerRegistryErrorCode, message: string, details: PeerRegistryErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    if (details.field !== undefined) this.field = details.field;
    if (details.path !== undefined) this.path = details.path;
    if (details.line !== undefined) this.line = details.line;
    if (details.column !== undefined) this.column = details.column;
    if (details.keyPath !== undefined) this.keyPath = details.keyPath;
  }

  /**
   * True when `err` is a `PeerRegistryError` from any copy of this package.
   * @example
   * ```ts
   * if (PeerRegistryError.is(err) && err.code === 'CORRUPT') { ... }
   * ```
   */
  static is(err: unknown): err is PeerRegistryError {
    return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[BRAND] === true;
  }
}

/** A validation error naming the field. */
export function invalid(code: PeerRegistryErrorCode, field: string, message: string): PeerRegistryError {
  return new PeerRegistryError(code, message, { field });
}
