import { invalid } from './errors.js';
import { cloneJson, copyJson, getOwn, jsonEqual, MAX_JSON_DEPTH, setOwn, tooDeep, type JsonObject, type JsonValue } from './json.js';
import { nowSeconds } from './time.js';
import {
  checkAddress,
  checkBoolean,
  checkCount,
  checkHealthScore,
  checkNodeId,
  checkOptionalString,
  checkStringArray,
  checkTimestamp,
  normalizePublicKey,
} from './validate.js';

/**
 * What a {@link Peer} is made from: `nodeId` and `address` are required, every other field is
 * optional (defaults: not connected, seen now, no agents/tools/resources/prompts, empty
 * metadata, health 1, no connection attempts).
 */
export interface PeerInit {
  /** The peer's node id: non-empty, at most 256 characters. */
  nodeId: string;
  /** A `ws://`/`wss://` URL or a libp2p multiaddr such as `/ip4/127.0.0.1/tcp/9000`. */
  address: string;
  /** The libp2p peer id, if known. @default null */
  peerId?: string | null;
  /** The Ed25519 public key as hex (stored lower-case) or bytes. @default null */
  publicKey?: string | Uint8Array | null;
  /** @default false */
  connected?: boolean;
  /** Unix seconds (float). @default now */
  lastSeen?: number;
  /** Unix seconds (float). @default now */
  firstSeen?: number;
  /** Ids of the agents running on the peer. @default [] */
  agents?: readonly string[];
  /** Tool descriptors the peer offers (JSON values). @default [] */
  tools?: readonly unknown[];
  /** Resource descriptors the peer offers (JSON values). @default [] */
  resources?: readonly unknown[];
  /** Prompt descriptors the peer offers (JSON values). @default [] */
  prompts?: readonly unknown[];
  /** Free-form JSON metadata. @default {} */
  metadata?: Readonly<Record<string, unknown>>;
  /** Finite number in [0, 1]. @default 1 */
  healthScore?: number;
  /** Non-negative integer (a `bigint` beyond 2^53 − 1, see {@link Count}). @default 0 */
  connectionAttempts?: Count;
  /** @default 0 */
  successfulConnections?: Count;
  /** @default 0 */
  failedConnections?: Count;
}

/**
 * A counter (`connectionAttempts`, `successfulConnections`, `failedConnections`, the `*_count`
 * fields): a `number` while it is a safe integer, a `bigint` beyond ±(2^53 − 1) — as read from
 * a file written by Python (`2**63`), or when an increment leaves the safe range. Counting on a
 * `bigint` uses `bigint` arithmetic, so no count is ever rounded. A `bigint` inside the safe range
 * that you pass in is stored as a `number`.
 */
export type Count = number | bigint;

/** `c + 1`, exactly: a `bigint` once beyond the safe integer range. */
export function increment(c: Count): Count {
  if (typeof c === 'bigint') return c + 1n;
  return c < Number.MAX_SAFE_INTEGER ? c + 1 : BigInt(c) + 1n;
}

/** The fields {@link PeerRegistry.updatePeer} may change: every field of {@link PeerInit} but `nodeId`. */
export type PeerPatch = Partial<Omit<PeerInit, 'nodeId'>>;

/**
 * A peer as stored in `peer_registry.json`: the Python implementation's snake_case record, plus
 * the full `tools`/`resources`/`prompts` lists, plus any field a newer program added (kept as is).
 */
export interface PeerRecord {
  node_id: string;
  address: string;
  peer_id: string | null;
  public_key: string | null;
  connected: boolean;
  last_seen: number;
  first_seen: number;
  agents: string[];
  tools_count: Count;
  resources_count: Count;
  prompts_count: Count;
  health_score: number;
  connection_attempts: Count;
  successful_connections: Count;
  failed_connections: Count;
  metadata: JsonObject;
  tools?: JsonValue[];
  resources?: JsonValue[];
  prompts?: JsonValue[];
  [unknownField: string]: JsonValue | undefined;
}

/** camelCase field -> snake_case record key(s) it is written to. */
export const RECORD_KEYS_OF: Readonly<Record<keyof PeerInit, readonly string[]>> = {
  nodeId: ['node_id'],
  address: ['address'],
  peerId: ['peer_id'],
  publicKey: ['public_key'],
  connected: ['connected'],
  lastSeen: ['last_seen'],
  firstSeen: ['first_seen'],
  agents: ['agents'],
  tools: ['tools_count', 'tools'],
  resources: ['resources_count', 'resources'],
  prompts: ['prompts_count', 'prompts'],
  metadata: ['metadata'],
  healthScore: ['health_score'],
  connectionAttempts: ['connection_attempts'],
  successfulConnections: ['successful_connections'],
  failedConnections: ['failed_connections'],
};

const INIT_FIELDS = new Set(Object.keys(RECORD_KEYS_OF));

/** Record keys this version knows; any other key of a record is kept in {@link Peer.extra}. */
export const KNOWN_RECORD_KEYS: ReadonlySet<string> = new Set([
  'node_id',
  'address',
  'peer_id',
  'public_key',
  'connected',
  'last_seen',
  'first_seen',
  'agents',
  'tools_count',
  'resources_count',
  'prompts_count',
  'health_score',
  'connection_attempts',
  'successful_connections',
  'failed_connections',
  'metadata',
  'tools',
  'resources',
  'prompts',
]);

/** Counts read from a record that had a `*_count` but no list (files written by Python). */
interface LegacyCounts {
  tools?: Count;
  resources?: Count;
  prompts?: Count;
}

function jsonArray(v: unknown, field: string): JsonValue[] {
  if (!Array.isArray(v)) throw invalid('INVALID_FIELD', field, `Invalid ${field}: it must be an array of JSON values. Nothing was written.`);
  return cloneJson(v, field) as JsonValue[];
}

function jsonObject(v: unknown, field: string): JsonObject {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw invalid('INVALID_FIELD', field, `Invalid ${field}: it must be a plain JSON object. Nothing was written.`);
  }
  return cloneJson(v, field) as JsonObject;
}

/** Validate and copy the fields present in `src` (a {@link PeerInit} or a {@link PeerPatch}). */
export function normalizeFields(src: Readonly<Record<string, unknown>>, what: 'init' | 'patch'): Partial<PeerFields> {
  if (src === null || typeof src !== 'object') {
    throw invalid('INVALID_FIELD', what === 'init' ? 'peer' : 'patch', `Invalid ${what === 'init' ? 'peer' : 'patch'}: expected an object. Nothing was written.`);
  }
  const out: Partial<PeerFields> = {};
  for (const key of Object.keys(src)) {
    const v = src[key];
    if (v === undefined) continue;
    if (!INIT_FIELDS.has(key)) {
      throw invalid('INVALID_FIELD', key, `Unknown peer field ${JSON.stringify(key)}. Nothing was written; use one of ${[...INIT_FIELDS].join(', ')}.`);
    }
    switch (key as keyof PeerInit) {
      case 'nodeId':
        checkNodeId(v);
        out.nodeId = v;
        break;
      case 'address':
        checkAddress(v);
        out.address = v;
        break;
      case 'peerId':
        checkOptionalString(v, 'peerId');
        out.peerId = v;
        break;
      case 'publicKey':
        out.publicKey = normalizePublicKey(v);
        break;
      case 'connected':
        checkBoolean(v, 'connected');
        out.connected = v;
        break;
      case 'lastSeen':
        checkTimestamp(v, 'lastSeen');
        out.lastSeen = v;
        break;
      case 'firstSeen':
        checkTimestamp(v, 'firstSeen');
        out.firstSeen = v;
        break;
      case 'agents':
        checkStringArray(v, 'agents');
        out.agents = v.slice();
        break;
      case 'tools':
        out.tools = jsonArray(v, 'tools');
        break;
      case 'resources':
        out.resources = jsonArray(v, 'resources');
        break;
      case 'prompts':
        out.prompts = jsonArray(v, 'prompts');
        break;
      case 'metadata':
        out.metadata = jsonObject(v, 'metadata');
        break;
      case 'healthScore':
        checkHealthScore(v);
        out.healthScore = v;
        break;
      case 'connectionAttempts':
        out.connectionAttempts = checkCount(v, 'connectionAttempts');
        break;
      case 'successfulConnections':
        out.successfulConnections = checkCount(v, 'successfulConnections');
        break;
      case 'failedConnections':
        out.failedConnections = checkCount(v, 'failedConnections');
        break;
    }
  }
  if (what === 'init') {
    if (out.nodeId === undefined) checkNodeId(src.nodeId);
    if (out.address === undefined) checkAddress(src.address);
  } else if ('nodeId' in out) {
    throw invalid('INVALID_FIELD', 'nodeId', 'A patch cannot change nodeId. Nothing was written; remove the peer and add it under the new id.');
  }
  return out;
}

/** Every data field of a {@link Peer}. */
export interface PeerFields {
  nodeId: string;
  address: string;
  peerId: string | null;
  publicKey: string | null;
  connected: boolean;
  lastSeen: number;
  firstSeen: number;
  agents: string[];
  tools: JsonValue[];
  resources: JsonValue[];
  prompts: JsonValue[];
  metadata: JsonObject;
  healthScore: number;
  connectionAttempts: Count;
  successfulConnections: Count;
  failedConnections: Count;
}

/** Copy every data field of `src` into `dst` (keeps `dst`'s identity). Set in `Peer`'s static block. */
export let copyInto: (dst: Peer, src: Peer) => void;
let forgetLegacyCount: (peer: Peer, list: 'tools' | 'resources' | 'prompts') => void;
/**
 * True when the file record `rec` holds exactly `peer`'s data (what `peerFromRecord(rec).equals(peer)`
 * would say, without building a peer). A record without timestamps matches any. Set in `Peer`'s static block.
 */
export let recordMatches: (peer: Peer, rec: Readonly<Record<string, unknown>>) => boolean;

/** Hand-off of already-validated fields from the factories below to the constructor. */
let trustedFields: PeerFields | undefined;
let trustedExtra: JsonObject | undefined;
let trustedLegacy: LegacyCounts | undefined;

/** Build a peer from fields that are already validated and owned (no copy, no check). */
function trustedPeer(fields: PeerFields, extra: JsonObject | undefined, legacy: LegacyCounts | undefined): Peer {
  trustedFields = fields;
  trustedExtra = extra;
  trustedLegacy = legacy;
  return new Peer(fields as unknown as PeerInit);
}

/**
 * A peer of the mesh: a camelCase mirror of the Python record, with the same behaviour
 * (health +0.1 on success up to 1, -0.2 on failure down to 0, success rate 1 with no attempts).
 * Timestamps are Unix seconds as floats.
 *
 * Peers handed out by a {@link PeerRegistry} are its live objects: read them, but change them
 * only through the registry (`updatePeer`, `recordConnectionSuccess`...), or the change is
 * neither persisted nor indexed.
 *
 * @throws {PeerRegistryError} from the constructor: `INVALID_NODE_ID`, `INVALID_ADDRESS`,
 *   `INVALID_HEALTH_SCORE`, `INVALID_TIMESTAMP`, `INVALID_FIELD` (with `field`).
 * @example
 * ```ts
 * const peer = new Peer({ nodeId: 'a1b2', address: '/ip4/10.0.0.7/tcp/9000', agents: ['coordinator'] });
 * peer.recordConnectionSuccess();
 * peer.getConnectionSuccessRate(); // 1
 * ```
 */
export class Peer {
  /** Node id (non-empty, at most 256 characters). */
  nodeId: string;
  /** `ws://`/`wss://` URL or libp2p multiaddr. */
  address: string;
  /** libp2p peer id, or null. */
  peerId: string | null;
  /** Public key as lower-case hex, or null. */
  publicKey: string | null;
  /** Whether a connection is currently open. */
  connected: boolean;
  /** Last activity, Unix seconds. */
  lastSeen: number;
  /** First sighting, Unix seconds. */
  firstSeen: number;
  /** Agent ids running on the peer. */
  agents: string[];
  /** Tool descriptors. */
  tools: JsonValue[];
  /** Resource descriptors. */
  resources: JsonValue[];
  /** Prompt descriptors. */
  prompts: JsonValue[];
  /** Free-form metadata. */
  metadata: JsonObject;
  /** Health in [0, 1]. */
  healthScore: number;
  /** Number of connection attempts (a `bigint` beyond 2^53 − 1, see {@link Count}). */
  connectionAttempts: Count;
  /** Number of successful connections (see {@link Count}). */
  successfulConnections: Count;
  /** Number of failed connections (see {@link Count}). */
  failedConnections: Count;
  /** Fields of the record this version does not know (written by a newer program); kept on rewrite. */
  extra: JsonObject;
  #legacy: LegacyCounts | undefined;

  constructor(init: PeerInit) {
    let f: PeerFields;
    let extra: JsonObject;
    let legacy: LegacyCounts | undefined;
    if (trustedFields !== undefined && (init as unknown) === trustedFields) {
      f = trustedFields;
      extra = trustedExtra ?? {};
      legacy = trustedLegacy;
      trustedFields = trustedExtra = trustedLegacy = undefined;
    } else {
      f = fillDefaults(normalizeFields(init as unknown as Record<string, unknown>, 'init'), nowSeconds());
      extra = {};
    }
    this.nodeId = f.nodeId;
    this.address = f.address;
    this.peerId = f.peerId;
    this.publicKey = f.publicKey;
    this.connected = f.connected;
    this.lastSeen = f.lastSeen;
    this.firstSeen = f.firstSeen;
    this.agents = f.agents;
    this.tools = f.tools;
    this.resources = f.resources;
    this.prompts = f.prompts;
    this.metadata = f.metadata;
    this.healthScore = f.healthScore;
    this.connectionAttempts = f.connectionAttempts;
    this.successfulConnections = f.successfulConnections;
    this.failedConnections = f.failedConnections;
    this.extra = extra;
    this.#legacy = legacy;
  }

  /** Number of tools (what `tools_count` in the file says). */
  get toolsCount(): Count {
    return this.tools.length > 0 ? this.tools.length : (this.#legacy?.tools ?? 0);
  }

  /** Number of resources (what `resources_count` in the file says). */
  get resourcesCount(): Count {
    return this.resources.length > 0 ? this.resources.length : (this.#legacy?.resources ?? 0);
  }

  /** Number of prompts (what `prompts_count` in the file says). */
  get promptsCount(): Count {
    return this.prompts.length > 0 ? this.prompts.length : (this.#legacy?.prompts ?? 0);
  }

  /**
   * Mark the peer as seen now.
   * @param now Unix seconds. @default the current time
   */
  updateActivity(now: number = nowSeconds()): void {
    this.lastSeen = now;
  }

  /**
   * True when the peer was seen less than `timeoutSeconds` ago.
   * @param timeoutSeconds @default 300
   * @param now Unix seconds. @default the current time
   * @example
   * ```ts
   * peer.isAlive(60);
   * ```
   */
  isAlive(timeoutSeconds = 300, now: number = nowSeconds()): boolean {
    return now - this.lastSeen < timeoutSeconds;
  }

  /** Seconds since the peer was first seen. @param now @default the current time */
  getAge(now: number = nowSeconds()): number {
    return now - this.firstSeen;
  }

  /**
   * Count a successful connection: attempts +1, successes +1, health +0.1 (at most 1), seen now.
   * @param now Unix seconds. @default the current time
   */
  recordConnectionSuccess(now: number = nowSeconds()): void {
    this.connectionAttempts = increment(this.connectionAttempts);
    this.successfulConnections = increment(this.successfulConnections);
    this.healthScore = Math.min(1, this.healthScore + 0.1);
    this.lastSeen = now;
  }

  /** Count a failed connection: attempts +1, failures +1, health -0.2 (at least 0). */
  recordConnectionFailure(): void {
    this.connectionAttempts = increment(this.connectionAttempts);
    this.failedConnections = increment(this.failedConnections);
    this.healthScore = Math.max(0, this.healthScore - 0.2);
  }

  /** Successful connections / attempts; 1 when there was no attempt yet. */
  getConnectionSuccessRate(): number {
    if (this.connectionAttempts === 0) return 1;
    return Number(this.successfulConnections) / Number(this.connectionAttempts);
  }

  /**
   * The snake_case record written to `peer_registry.json` (a fresh copy): the Python fields in
   * the Python order, then `tools`, `resources`, `prompts`, then the unknown fields kept from the file.
   * @example
   * ```ts
   * stringifyJson(peer.toDict()); // from @dawn/atomic-json: bigints written digit for digit (JSON.stringify throws on them)
   * ```
   */
  toDict(): PeerRecord {
    const legacy = this.#legacy;
    const rec: PeerRecord = {
      node_id: this.nodeId,
      address: this.address,
      peer_id: this.peerId,
      public_key: this.publicKey,
      connected: this.connected,
      last_seen: this.lastSeen,
      first_seen: this.firstSeen,
      agents: this.agents.slice(),
      tools_count: this.toolsCount,
      resources_count: this.resourcesCount,
      prompts_count: this.promptsCount,
      health_score: this.healthScore,
      connection_attempts: this.connectionAttempts,
      successful_connections: this.successfulConnections,
      failed_connections: this.failedConnections,
      metadata: copyJson(this.metadata),
    };
    // A list we never saw (Python wrote only its count) is left out rather than written as [].
    if (!(legacy?.tools && this.tools.length === 0)) rec.tools = copyJson(this.tools);
    if (!(legacy?.resources && this.resources.length === 0)) rec.resources = copyJson(this.resources);
    if (!(legacy?.prompts && this.prompts.length === 0)) rec.prompts = copyJson(this.prompts);
    for (const k of Object.keys(this.extra)) setOwn(rec, k, copyJson(this.extra[k]!));
    return rec;
  }

  /**
   * Build a peer from a record of the file (snake_case). Missing fields take the defaults the
   * Python implementation used; unknown fields are kept in {@link Peer.extra}. The address is
   * not format-checked (files written by older programs load as they are).
   * @throws {PeerRegistryError} `INVALID_FIELD` (with `field` set to the record key) when a field has the wrong type.
   * @example
   * ```ts
   * const peer = Peer.fromDict(JSON.parse(text).peers[0]);
   * ```
   */
  static fromDict(record: Readonly<Record<string, unknown>>): Peer {
    return peerFromRecord(record, false);
  }

  /** A deep copy. */
  clone(): Peer {
    const fields: PeerFields = {
      nodeId: this.nodeId,
      address: this.address,
      peerId: this.peerId,
      publicKey: this.publicKey,
      connected: this.connected,
      lastSeen: this.lastSeen,
      firstSeen: this.firstSeen,
      agents: this.agents.slice(),
      tools: copyJson(this.tools),
      resources: copyJson(this.resources),
      prompts: copyJson(this.prompts),
      metadata: copyJson(this.metadata),
      healthScore: this.healthScore,
      connectionAttempts: this.connectionAttempts,
      successfulConnections: this.successfulConnections,
      failedConnections: this.failedConnections,
    };
    return trustedPeer(fields, copyJson(this.extra), this.#legacy && { ...this.#legacy });
  }

  /** True when `other` holds the same data (every field, including unknown ones). */
  equals(other: Peer): boolean {
    return (
      this.nodeId === other.nodeId &&
      this.address === other.address &&
      this.peerId === other.peerId &&
      this.publicKey === other.publicKey &&
      this.connected === other.connected &&
      this.lastSeen === other.lastSeen &&
      this.firstSeen === other.firstSeen &&
      this.healthScore === other.healthScore &&
      this.connectionAttempts === other.connectionAttempts &&
      this.successfulConnections === other.successfulConnections &&
      this.failedConnections === other.failedConnections &&
      this.toolsCount === other.toolsCount &&
      this.resourcesCount === other.resourcesCount &&
      this.promptsCount === other.promptsCount &&
      jsonEqual(this.agents, other.agents) &&
      jsonEqual(this.metadata, other.metadata) &&
      jsonEqual(this.tools, other.tools) &&
      jsonEqual(this.resources, other.resources) &&
      jsonEqual(this.prompts, other.prompts) &&
      jsonEqual(this.extra, other.extra)
    );
  }

  static {
    copyInto = (dst, src) => {
      dst.address = src.address;
      dst.peerId = src.peerId;
      dst.publicKey = src.publicKey;
      dst.connected = src.connected;
      dst.lastSeen = src.lastSeen;
      dst.firstSeen = src.firstSeen;
      dst.agents = src.agents;
      dst.tools = src.tools;
      dst.resources = src.resources;
      dst.prompts = src.prompts;
      dst.metadata = src.metadata;
      dst.healthScore = src.healthScore;
      dst.connectionAttempts = src.connectionAttempts;
      dst.successfulConnections = src.successfulConnections;
      dst.failedConnections = src.failedConnections;
      dst.extra = src.extra;
      dst.#legacy = src.#legacy;
    };
    const listMatches = (list: JsonValue[], raw: unknown, countRaw: unknown, legacy: Count | undefined): boolean => {
      if (raw === undefined || raw === null) {
        const count = (typeof countRaw === 'number' || typeof countRaw === 'bigint') && countRaw > 0 ? countRaw : undefined;
        return list.length === 0 && count === legacy;
      }
      return legacy === undefined && jsonEqual(list, raw);
    };
    recordMatches = (peer, rec) => {
      const legacy = peer.#legacy;
      const ts = (v: unknown, mine: number) => v === undefined || v === mine;
      if (
        rec.address !== peer.address ||
        (rec.peer_id ?? null) !== peer.peerId ||
        ((rec.public_key ?? null) || null) !== peer.publicKey ||
        (rec.connected ?? false) !== peer.connected ||
        !ts(rec.last_seen, peer.lastSeen) ||
        !ts(rec.first_seen, peer.firstSeen) ||
        (rec.health_score ?? 1) !== peer.healthScore ||
        (rec.connection_attempts ?? 0) !== peer.connectionAttempts ||
        (rec.successful_connections ?? 0) !== peer.successfulConnections ||
        (rec.failed_connections ?? 0) !== peer.failedConnections ||
        !jsonEqual(rec.agents ?? [], peer.agents) ||
        !jsonEqual(rec.metadata ?? {}, peer.metadata) ||
        !listMatches(peer.tools, rec.tools, rec.tools_count, legacy?.tools) ||
        !listMatches(peer.resources, rec.resources, rec.resources_count, legacy?.resources) ||
        !listMatches(peer.prompts, rec.prompts, rec.prompts_count, legacy?.prompts)
      ) {
        return false;
      }
      let extras = 0;
      for (const k in rec) {
        if (KNOWN_RECORD_KEYS.has(k) || rec[k] === undefined) continue;
        extras++;
        if (!jsonEqual(rec[k], getOwn(peer.extra, k))) return false;
      }
      return extras === Object.keys(peer.extra).length;
    };
    forgetLegacyCount = (peer, list) => {
      if (peer.#legacy) delete peer.#legacy[list];
    };
  }
}

function recordError(key: string, expected: string, v: unknown): Error {
  const got = v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
  return invalid('INVALID_FIELD', key, `Invalid record field ${key}: expected ${expected}, got ${got}.`);
}

const num = (rec: Readonly<Record<string, unknown>>, key: string, dflt: number): number => {
  const v = rec[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw recordError(key, 'a finite number', v);
  return v;
};

/** A counter of a record: a finite number, or a `bigint` (kept exact; a safe one becomes a number). */
const count = (rec: Readonly<Record<string, unknown>>, key: string): Count => {
  const v = rec[key];
  if (v === undefined) return 0;
  if (typeof v === 'bigint') return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw recordError(key, 'a finite number', v);
  return v;
};

const arr = (rec: Readonly<Record<string, unknown>>, key: string, adopt: boolean): JsonValue[] | undefined => {
  const v = rec[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw recordError(key, 'an array', v);
  return adopt ? (v as JsonValue[]) : (cloneJson(v, key) as JsonValue[]);
};

const scratch: PeerFields = {
  nodeId: '',
  address: '',
  peerId: null,
  publicKey: null,
  connected: false,
  lastSeen: 0,
  firstSeen: 0,
  agents: [],
  tools: [],
  resources: [],
  prompts: [],
  metadata: {},
  healthScore: 1,
  connectionAttempts: 0,
  successfulConnections: 0,
  failedConnections: 0,
};

/**
 * Build a peer from a file record. With `adopt`, arrays and objects of `rec` are taken over
 * without copying (for freshly parsed documents nobody else holds).
 */
export function peerFromRecord(rec: Readonly<Record<string, unknown>>, adopt: boolean): Peer {
  if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) throw recordError('peer', 'an object', rec);
  const nodeId = rec.node_id;
  if (typeof nodeId !== 'string' || nodeId.length === 0) throw recordError('node_id', 'a non-empty string', nodeId);
  const address = rec.address;
  if (typeof address !== 'string') throw recordError('address', 'a string', address);
  const peerId = rec.peer_id ?? null;
  if (peerId !== null && typeof peerId !== 'string') throw recordError('peer_id', 'a string or null', peerId);
  let publicKey = rec.public_key ?? null;
  if (publicKey !== null && typeof publicKey !== 'string') throw recordError('public_key', 'a hex string or null', publicKey);
  if (publicKey === '') publicKey = null;
  const connected = rec.connected ?? false;
  if (typeof connected !== 'boolean') throw recordError('connected', 'a boolean', connected);
  const now = rec.last_seen === undefined || rec.first_seen === undefined ? nowSeconds() : 0;
  const agentsRaw = rec.agents ?? [];
  if (!Array.isArray(agentsRaw)) throw recordError('agents', 'an array', agentsRaw);
  for (let i = 0; i < agentsRaw.length; i++) if (typeof agentsRaw[i] !== 'string') throw recordError(`agents[${i}]`, 'a string', agentsRaw[i]);
  const metadataRaw = rec.metadata ?? {};
  if (typeof metadataRaw !== 'object' || metadataRaw === null || Array.isArray(metadataRaw)) throw recordError('metadata', 'an object', metadataRaw);
  const tools = arr(rec, 'tools', adopt);
  const resources = arr(rec, 'resources', adopt);
  const prompts = arr(rec, 'prompts', adopt);
  let legacy: LegacyCounts | undefined;
  const toolsCount = count(rec, 'tools_count');
  const resourcesCount = count(rec, 'resources_count');
  const promptsCount = count(rec, 'prompts_count');
  if (tools === undefined && toolsCount > 0) (legacy ??= {}).tools = toolsCount;
  if (resources === undefined && resourcesCount > 0) (legacy ??= {}).resources = resourcesCount;
  if (prompts === undefined && promptsCount > 0) (legacy ??= {}).prompts = promptsCount;
  // A reused scratch object: the constructor copies it out synchronously (no allocation per record).
  const f = scratch;
  f.nodeId = nodeId;
  f.address = address;
  f.peerId = peerId as string | null;
  f.publicKey = publicKey as string | null;
  f.connected = connected;
  f.lastSeen = num(rec, 'last_seen', now);
  f.firstSeen = num(rec, 'first_seen', now);
  f.agents = adopt ? (agentsRaw as string[]) : (agentsRaw as string[]).slice();
  f.tools = tools ?? [];
  f.resources = resources ?? [];
  f.prompts = prompts ?? [];
  f.metadata = adopt ? (metadataRaw as JsonObject) : (cloneJson(metadataRaw, 'metadata') as JsonObject);
  f.healthScore = num(rec, 'health_score', 1);
  f.connectionAttempts = count(rec, 'connection_attempts');
  f.successfulConnections = count(rec, 'successful_connections');
  f.failedConnections = count(rec, 'failed_connections');
  let extra: JsonObject | undefined;
  for (const k in rec) {
    if (!KNOWN_RECORD_KEYS.has(k)) {
      const v = rec[k];
      if (v === undefined) continue;
      setOwn((extra ??= {}), k, adopt ? (v as JsonValue) : cloneJson(v, k));
    }
  }
  if (adopt) {
    // Adopted values were not copied (nor checked) by cloneJson: bound their depth here.
    checkAdoptedDepth(f.metadata, 'metadata');
    if (f.tools.length > 0) checkAdoptedDepth(f.tools, 'tools');
    if (f.resources.length > 0) checkAdoptedDepth(f.resources, 'resources');
    if (f.prompts.length > 0) checkAdoptedDepth(f.prompts, 'prompts');
    if (extra !== undefined) for (const k of Object.keys(extra)) checkAdoptedDepth(extra[k]!, k);
  }
  return trustedPeer(f, extra ?? (adopt ? NO_EXTRA : undefined), legacy);
}

function checkAdoptedDepth(v: JsonValue, key: string): void {
  if (v === null || typeof v !== 'object') return;
  // Flat values (the common case: `{}`, `{"region": "eu"}`) need no walk.
  let flat = true;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length && flat; i++) flat = v[i] === null || typeof v[i] !== 'object';
  } else {
    for (const k in v) {
      const x = v[k];
      if (x !== null && typeof x === 'object') {
        flat = false;
        break;
      }
    }
  }
  if (flat) return;
  const where = tooDeep(v, key);
  if (where !== undefined) {
    throw invalid('INVALID_FIELD', where, `Invalid record field ${key}: it is nested deeper than ${MAX_JSON_DEPTH} levels, more than can be written back.`);
  }
}

/** Shared by the registry's peers that have no unknown field (most): one object less per peer. */
const NO_EXTRA: JsonObject = Object.freeze({}) as JsonObject;

/**
 * Apply validated fields to a peer. Returns true when something actually changed.
 * `f` must come from {@link normalizeFields} (already copied).
 */
export function assignFields(peer: Peer, f: Partial<PeerFields>): boolean {
  let changed = false;
  const p = peer as unknown as Record<string, unknown>;
  for (const key of Object.keys(f) as (keyof PeerFields)[]) {
    if (key === 'nodeId') continue;
    const v = f[key];
    if (!jsonEqual(p[key], v)) {
      p[key] = v;
      changed = true;
    }
    if (key === 'tools' || key === 'resources' || key === 'prompts') forgetLegacyCount(peer, key);
  }
  return changed;
}

/** The record keys a set of changed fields touches. */
export function recordKeysOf(f: Partial<PeerFields>): string[] {
  const keys: string[] = [];
  for (const k of Object.keys(f) as (keyof PeerInit)[]) {
    const ks = RECORD_KEYS_OF[k];
    if (ks) keys.push(...ks);
  }
  return keys;
}

/** A new peer from fields already validated by {@link normalizeFields}, defaults filled in. */
export function peerFromFields(n: Partial<PeerFields>, now: number = nowSeconds()): Peer {
  const fields = fillDefaults(n, now);
  return trustedPeer(fields, undefined, undefined);
}

function fillDefaults(n: Partial<PeerFields>, now: number): PeerFields {
  return {
    nodeId: n.nodeId!,
    address: n.address!,
    peerId: n.peerId ?? null,
    publicKey: n.publicKey ?? null,
    connected: n.connected ?? false,
    lastSeen: n.lastSeen ?? now,
    firstSeen: n.firstSeen ?? now,
    agents: n.agents ?? [],
    tools: n.tools ?? [],
    resources: n.resources ?? [],
    prompts: n.prompts ?? [],
    metadata: n.metadata ?? {},
    healthScore: n.healthScore ?? 1,
    connectionAttempts: n.connectionAttempts ?? 0,
    successfulConnections: n.successfulConnections ?? 0,
    failedConnections: n.failedConnections ?? 0,
  };
}

/** The validated fields of an existing {@link Peer} instance (throws like the constructor if one is bad). */
export function fieldsOfPeer(peer: Peer): Partial<PeerFields> {
  return normalizeFields(
    {
      nodeId: peer.nodeId,
      address: peer.address,
      peerId: peer.peerId,
      publicKey: peer.publicKey,
      connected: peer.connected,
      lastSeen: peer.lastSeen,
      firstSeen: peer.firstSeen,
      agents: peer.agents,
      tools: peer.tools,
      resources: peer.resources,
      prompts: peer.prompts,
      metadata: peer.metadata,
      healthScore: peer.healthScore,
      connectionAttempts: peer.connectionAttempts,
      successfulConnections: peer.successfulConnections,
      failedConnections: peer.failedConnections,
    },
    'init',
  );
}
