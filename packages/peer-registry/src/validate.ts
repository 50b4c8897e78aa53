import { isIPv4, isIPv6 } from 'node:net';
import { invalid } from './errors.js';

/** Longest accepted `nodeId`. */
export const MAX_NODE_ID_LENGTH = 256;
/** Longest accepted `address`. */
export const MAX_ADDRESS_LENGTH = 2048;

const NOTHING_WRITTEN = 'Nothing was written';

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  return `a ${Array.isArray(v) ? 'array' : typeof v}`;
}

/**
 * Check a node id: a non-empty string of at most 256 characters.
 * @throws {PeerRegistryError} `INVALID_NODE_ID`
 */
export function checkNodeId(v: unknown, field = 'nodeId'): asserts v is string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_NODE_ID_LENGTH) {
    const why =
      typeof v !== 'string'
        ? `must be a string, got ${show(v)}`
        : v.length === 0
          ? 'must not be empty'
          : `is ${v.length} characters long; at most ${MAX_NODE_ID_LENGTH} are allowed`;
    throw invalid('INVALID_NODE_ID', field, `Invalid ${field}: it ${why}. ${NOTHING_WRITTEN}; pass the peer's node id (usually a hex public-key hash).`);
  }
}

type ValueKind = 'none' | 'ip4' | 'ip6' | 'port' | 'host' | 'text' | 'path' | 'cidr';

/** The multiaddr protocols (multiformats registry) and what value each takes. */
const PROTOCOLS: ReadonlyMap<string, ValueKind> = new Map<string, ValueKind>([
  ['ip4', 'ip4'],
  ['ip6', 'ip6'],
  ['ip6zone', 'text'],
  ['ipcidr', 'cidr'],
  ['dns', 'host'],
  ['dns4', 'host'],
  ['dns6', 'host'],
  ['dnsaddr', 'host'],
  ['tcp', 'port'],
  ['udp', 'port'],
  ['dccp', 'port'],
  ['sctp', 'port'],
  ['unix', 'path'],
  ['p2p', 'text'],
  ['ipfs', 'text'],
  ['onion', 'text'],
  ['onion3', 'text'],
  ['garlic64', 'text'],
  ['garlic32', 'text'],
  ['memory', 'text'],
  ['sni', 'host'],
  ['certhash', 'text'],
  ['http-path', 'text'],
  ['tls', 'none'],
  ['noise', 'none'],
  ['quic', 'none'],
  ['quic-v1', 'none'],
  ['webtransport', 'none'],
  ['webrtc', 'none'],
  ['webrtc-direct', 'none'],
  ['p2p-circuit', 'none'],
  ['ws', 'none'],
  ['wss', 'none'],
  ['http', 'none'],
  ['https', 'none'],
  ['udt', 'none'],
  ['utp', 'none'],
  ['p2p-webrtc-star', 'none'],
  ['p2p-webrtc-direct', 'none'],
  ['p2p-websocket-star', 'none'],
  ['p2p-stardust', 'none'],
  ['plaintextv2', 'none'],
]);

/** Protocols a dialable multiaddr may start with. */
const FIRST = new Set(['ip4', 'ip6', 'ip6zone', 'dns', 'dns4', 'dns6', 'dnsaddr', 'unix', 'p2p', 'ipfs', 'onion', 'onion3', 'garlic64', 'garlic32', 'memory']);

const HOST = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/;
const TEXT = /^[^\s/]+$/;

/** Why `addr` is not a valid multiaddr, or `undefined` when it is. */
export function multiaddrProblem(addr: string): string | undefined {
  const parts = addr.split('/');
  // parts[0] is '' (leading slash)
  let i = 1;
  if (parts.length < 2 || parts[1] === '') return 'it has no protocol';
  const first = parts[1]!;
  if (!FIRST.has(first)) {
    return PROTOCOLS.has(first)
      ? `it starts with /${first}; a multiaddr starts with a network part such as /ip4, /ip6, /dns4 or /unix`
      : `"${first}" is not a multiaddr protocol`;
  }
  while (i < parts.length) {
    const name = parts[i]!;
    if (name === '') return `it has an empty part at position ${i}`;
    const kind = PROTOCOLS.get(name);
    if (kind === undefined) return `"${name}" is not a multiaddr protocol`;
    i++;
    if (kind === 'none') continue;
    if (kind === 'path') {
      if (i >= parts.length) return `/${name} needs a path`;
      return undefined; // a path protocol takes the rest of the address
    }
    const value = parts[i];
    if (value === undefined || value === '') return `/${name} needs a value`;
    i++;
    switch (kind) {
      case 'ip4':
        if (!isIPv4(value)) return `${JSON.stringify(value)} is not an IPv4 address`;
        break;
      case 'ip6':
        if (!isIPv6(value)) return `${JSON.stringify(value)} is not an IPv6 address`;
        break;
      case 'port': {
        if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) return `${JSON.stringify(value)} is not a port (0-65535)`;
        break;
      }
      case 'cidr':
        if (!/^\d{1,3}$/.test(value) || Number(value) > 128) return `${JSON.stringify(value)} is not a prefix length`;
        break;
      case 'host':
        if (value.length > 253 || !HOST.test(value)) return `${JSON.stringify(value)} is not a host name`;
        break;
      case 'text':
        if (!TEXT.test(value)) return `${JSON.stringify(value)} is not a valid /${name} value`;
        break;
    }
  }
  return undefined;
}

/** Why `addr` is not a valid `ws://`/`wss://` URL, or `undefined` when it is. */
function wsUrlProblem(addr: string): string | undefined {
  if (/\s/.test(addr)) return 'it contains white space';
  let url: URL;
  try {
    url = new URL(addr);
  } catch {
    return 'it is not a valid URL';
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') return 'its scheme is not ws or wss';
  if (url.hostname === '') return 'it has no host';
  return undefined;
}

/**
 * Check a peer address: a `ws://`/`wss://` URL (`ws://127.0.0.1:8000`) or a libp2p multiaddr
 * (`/ip4/127.0.0.1/tcp/9000`, `/ip6/::1/tcp/4001/ws`, `/dns4/node.example.org/tcp/443/wss`).
 * @throws {PeerRegistryError} `INVALID_ADDRESS`
 */
export function checkAddress(v: unknown, field = 'address'): asserts v is string {
  let problem: string | undefined;
  if (typeof v !== 'string') problem = `it must be a string, got ${show(v)}`;
  else if (v.length === 0) problem = 'it is empty';
  else if (v.length > MAX_ADDRESS_LENGTH) problem = `it is ${v.length} characters long; at most ${MAX_ADDRESS_LENGTH} are allowed`;
  else if (v.startsWith('/')) problem = multiaddrProblem(v);
  else if (/^wss?:\/\//i.test(v)) problem = wsUrlProblem(v);
  else problem = 'it is neither a ws:// or wss:// URL nor a libp2p multiaddr';
  if (problem !== undefined) {
    throw invalid(
      'INVALID_ADDRESS',
      field,
      `Invalid ${field} ${show(v)}: ${problem}. ${NOTHING_WRITTEN}; use a ws:// or wss:// URL (ws://127.0.0.1:8000) ` +
        `or a libp2p multiaddr (/ip4/127.0.0.1/tcp/9000).`,
    );
  }
}

/**
 * Check a health score: a finite number in [0, 1].
 * @throws {PeerRegistryError} `INVALID_HEALTH_SCORE`
 */
export function checkHealthScore(v: unknown, field = 'healthScore'): asserts v is number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
    throw invalid('INVALID_HEALTH_SCORE', field, `Invalid ${field} ${show(v)}: it must be a finite number from 0 to 1. ${NOTHING_WRITTEN}.`);
  }
}

/**
 * Check a timestamp: a finite number of Unix seconds (as Python's `time.time()`).
 * @throws {PeerRegistryError} `INVALID_TIMESTAMP`
 */
export function checkTimestamp(v: unknown, field: string): asserts v is number {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw invalid(
      'INVALID_TIMESTAMP',
      field,
      `Invalid ${field} ${show(v)}: it must be a finite number of Unix seconds (e.g. Date.now() / 1000). ${NOTHING_WRITTEN}.`,
    );
  }
}

/**
 * Check a counter: a non-negative safe integer, or a non-negative `bigint` (for counts beyond
 * 2^53 − 1). Returns it as stored: a `bigint` inside the safe range becomes a `number`.
 */
export function checkCount(v: unknown, field: string): number | bigint {
  if (typeof v === 'bigint' && v >= 0n) return v <= 9007199254740991n ? Number(v) : v;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw invalid(
      'INVALID_FIELD',
      field,
      `Invalid ${field} ${typeof v === 'bigint' ? `${v}n` : show(v)}: it must be a non-negative integer (a bigint beyond 2^53 - 1). ${NOTHING_WRITTEN}.`,
    );
  }
  return v;
}

/** Check a boolean field. */
export function checkBoolean(v: unknown, field: string): asserts v is boolean {
  if (typeof v !== 'boolean') throw invalid('INVALID_FIELD', field, `Invalid ${field} ${show(v)}: it must be true or false. ${NOTHING_WRITTEN}.`);
}

/** Check an optional string (string or null). */
export function checkOptionalString(v: unknown, field: string): asserts v is string | null {
  if (v !== null && typeof v !== 'string') {
    throw invalid('INVALID_FIELD', field, `Invalid ${field} ${show(v)}: it must be a string or null. ${NOTHING_WRITTEN}.`);
  }
}

/** Check an array of strings. */
export function checkStringArray(v: unknown, field: string): asserts v is string[] {
  if (!Array.isArray(v)) throw invalid('INVALID_FIELD', field, `Invalid ${field} ${show(v)}: it must be an array of strings. ${NOTHING_WRITTEN}.`);
  for (let i = 0; i < v.length; i++) {
    if (typeof v[i] !== 'string') {
      throw invalid('INVALID_FIELD', `${field}[${i}]`, `Invalid ${field}[${i}] ${show(v[i])}: it must be a string. ${NOTHING_WRITTEN}.`);
    }
  }
}

const HEX = /^(?:[0-9a-fA-F]{2})*$/;

/**
 * Normalise a public key to lower-case hex (as Python's `bytes.hex()`), or null.
 * Accepts a hex string, a `Uint8Array` or null; the empty string becomes null (as in Python).
 */
export function normalizePublicKey(v: unknown, field = 'publicKey'): string | null {
  if (v === null || v === undefined || v === '') return null;
  if (v instanceof Uint8Array) return v.length === 0 ? null : Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
  if (typeof v === 'string' && HEX.test(v)) return v.toLowerCase();
  throw invalid('INVALID_FIELD', field, `Invalid ${field} ${show(v)}: it must be a hex string (an even number of hex digits), a Uint8Array or null. ${NOTHING_WRITTEN}.`);
}
