/**
 * The registry file `{"version": 1, "peers": [...]}` and the operations a flush applies onto
 * its current contents (under the lock, inside one `updateJson`).
 */
import { PeerRegistryError } from './errors.js';
import { joinPath, MAX_JSON_DEPTH, setOwn, tooDeep } from './json.js';
import { peerFromRecord, type Peer, type PeerRecord } from './peer.js';

/** The file format version this program writes and understands. */
export const FORMAT_VERSION = 1;

/** The registry document. Unknown top-level fields are kept. */
export interface RegistryDoc {
  version: number;
  peers: Record<string, unknown>[];
  [unknownField: string]: unknown;
}

/** One durable change, applied in order onto the file's current contents. */
export type Op =
  /** Create the record, or set `keys` of the existing one (all keys of `record` when `keys` is null). */
  | { kind: 'put'; id: string; record: PeerRecord; keys: readonly string[] | null; create: boolean }
  /** Set `last_seen`. */
  | { kind: 'touch'; id: string; at: number }
  | { kind: 'success'; id: string; at: number }
  | { kind: 'failure'; id: string }
  /** Remove; with `dead`, only if the record is still dead at that time. */
  | { kind: 'remove'; id: string; dead?: { now: number; timeout: number } }
  | { kind: 'clear' };

function corrupt(path: string, keyPath: string, what: string, cause?: unknown): PeerRegistryError {
  return new PeerRegistryError(
    'CORRUPT',
    `${path} is not a valid peer registry: at ${keyPath.length > 160 ? `${keyPath.slice(0, 160)}…` : keyPath}, ${what}. The file was left untouched; fix it, restore it ` +
      `from a backup, or open the registry with { onCorrupt: 'quarantine' } to move it aside and start empty.`,
    { path, keyPath, cause },
  );
}

/**
 * Check the top level of a parsed registry file and return it as a {@link RegistryDoc}
 * (records are checked by {@link indexRecords} / {@link loadPeers}).
 * @throws {PeerRegistryError} `CORRUPT`, `UNSUPPORTED_VERSION`
 */
export function checkDoc(value: unknown, path: string): RegistryDoc {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw corrupt(path, '$', `expected an object {"version": 1, "peers": [...]}, found ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`);
  }
  const doc = value as Record<string, unknown>;
  const version = doc.version;
  if (typeof version === 'bigint' && version > FORMAT_VERSION) {
    throw new PeerRegistryError(
      'UNSUPPORTED_VERSION',
      `${path} has format version ${version}, newer than the ${FORMAT_VERSION} this program understands. ` +
        `It was left untouched; upgrade @dawn/peer-registry to use it.`,
      { path, keyPath: '$.version' },
    );
  }
  if (version !== undefined) {
    if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
      throw corrupt(path, '$.version', `expected the integer ${FORMAT_VERSION}, found ${typeof version === 'bigint' ? String(version) : JSON.stringify(version)}`);
    }
    if (version > FORMAT_VERSION) {
      throw new PeerRegistryError(
        'UNSUPPORTED_VERSION',
        `${path} has format version ${version}, newer than the ${FORMAT_VERSION} this program understands. ` +
          `It was left untouched; upgrade @dawn/peer-registry to use it.`,
        { path, keyPath: '$.version' },
      );
    }
  }
  const peers = doc.peers ?? [];
  if (!Array.isArray(peers)) throw corrupt(path, '$.peers', 'expected an array of peer records');
  if (version === undefined) {
    // Normalise: version first, as the Python implementation writes it.
    const out: RegistryDoc = { version: FORMAT_VERSION, peers };
    for (const k of Object.keys(doc)) if (k !== 'version' && k !== 'peers') setOwn(out, k, doc[k]);
    return out;
  }
  doc.peers = peers;
  return doc as RegistryDoc;
}

/**
 * Refuse a document nested deeper than this program can write back (see `MAX_JSON_DEPTH`):
 * `CORRUPT` naming where, before anything is built or written.
 */
export function checkDepth(doc: RegistryDoc, path: string): void {
  // Records are bounded when their peers are built (peerFromRecord); here the other top-level fields.
  for (const k of Object.keys(doc)) {
    if (k === 'peers' || k === 'version') continue;
    const where = tooDeep(doc[k], joinPath('$', k));
    if (where !== undefined) throw corrupt(path, where, `values are nested deeper than ${MAX_JSON_DEPTH} levels, more than can be written back`);
  }
}

/** Build the peers of a checked document. Later duplicates of a node id win (as in Python). */
export function loadPeers(doc: RegistryDoc, path: string): Peer[] {
  const out: Peer[] = new Array<Peer>(doc.peers.length);
  const recs = doc.peers;
  for (let i = 0; i < recs.length; i++) {
    try {
      out[i] = peerFromRecord(recs[i]!, true);
    } catch (err) {
      const field = PeerRegistryError.is(err) && err.field !== undefined && err.field !== 'peer' ? `.${err.field}` : '';
      throw corrupt(path, `$.peers[${i}]${field}`, (err as Error).message.replace(/^Invalid record field [^:]*: /, '').replace(/\.$/, ''), err);
    }
  }
  return out;
}

function indexRecords(recs: Record<string, unknown>[], path: string): Map<string, number> {
  const index = new Map<string, number>();
  for (let i = 0; i < recs.length; i++) {
    const rec = recs[i];
    if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) throw corrupt(path, `$.peers[${i}]`, 'expected a peer record object');
    const id = rec.node_id;
    if (typeof id !== 'string' || id === '') throw corrupt(path, `$.peers[${i}].node_id`, 'expected a non-empty string');
    index.set(id, i);
  }
  return index;
}

function asPeer(rec: Record<string, unknown>, i: number, path: string): Peer {
  try {
    return peerFromRecord(rec, true);
  } catch (err) {
    const field = PeerRegistryError.is(err) && err.field !== undefined ? `.${err.field}` : '';
    throw corrupt(path, `$.peers[${i}]${field}`, (err as Error).message, err);
  }
}

const plainCount = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < Number.MAX_SAFE_INTEGER;

/** A record whose counters (and score) a success/failure can update in place exactly as `Peer` would. */
function countsApplyDirectly(rec: Record<string, unknown>, kind: 'success' | 'failure'): boolean {
  const h = rec.health_score;
  return (
    plainCount(rec.connection_attempts) &&
    plainCount(kind === 'success' ? rec.successful_connections : rec.failed_connections) &&
    typeof h === 'number' &&
    h >= 0 &&
    h <= 1 &&
    (kind === 'failure' || typeof rec.last_seen === 'number')
  );
}

/** What {@link applyOps} produced. */
export interface ApplyResult {
  /** The document to write. */
  doc: RegistryDoc;
  /** Node ids removed to respect `maxPeers`. */
  evicted: string[];
}

/**
 * Apply `ops` in order onto the file's current document (`undefined` when there is no file).
 * Mutates and returns the document. O(file) for indexing, plus O(1) per op. Records the ops
 * do not touch are written back as they are (only their node ids are checked).
 * @throws {PeerRegistryError} `CORRUPT` when a record the ops touch is malformed (nothing is written).
 */
export function applyOps(current: unknown, ops: readonly Op[], path: string, maxPeers: number | undefined): ApplyResult {
  const doc = current === undefined ? { version: FORMAT_VERSION, peers: [] } : checkDoc(current, path);
  let recs: (Record<string, unknown> | undefined)[] = doc.peers;
  const index = indexRecords(doc.peers, path);
  let holes = recs.length - index.size; // earlier duplicates of a node id are dropped
  if (holes > 0) {
    for (let i = 0; i < recs.length; i++) if (index.get(recs[i]!.node_id as string) !== i) recs[i] = undefined;
  }
  for (const op of ops) {
    if (op.kind === 'clear') {
      recs = [];
      index.clear();
      holes = 0;
      continue;
    }
    const i = index.get(op.id);
    switch (op.kind) {
      case 'put': {
        if (i === undefined) {
          if (op.create) {
            index.set(op.id, recs.length);
            recs.push(op.record);
          }
          break;
        }
        const rec = recs[i]!;
        const src = op.record as Record<string, unknown>;
        const keys = op.keys ?? Object.keys(src);
        for (const k of keys) if (Object.prototype.hasOwnProperty.call(src, k) && k !== 'node_id') setOwn(rec, k, src[k]);
        break;
      }
      case 'touch':
        if (i !== undefined) recs[i]!.last_seen = op.at;
        break;
      case 'success':
      case 'failure': {
        if (i === undefined) break;
        const rec = recs[i]!;
        if (countsApplyDirectly(rec, op.kind)) {
          // The common case (plain counters, a valid score): the same arithmetic as Peer's, without building a Peer.
          rec.connection_attempts = (rec.connection_attempts as number) + 1;
          if (op.kind === 'success') {
            rec.successful_connections = (rec.successful_connections as number) + 1;
            rec.health_score = Math.min(1, (rec.health_score as number) + 0.1);
            rec.last_seen = op.at;
          } else {
            rec.failed_connections = (rec.failed_connections as number) + 1;
            rec.health_score = Math.max(0, (rec.health_score as number) - 0.2);
          }
          break;
        }
        const p = asPeer(rec, i, path);
        if (op.kind === 'success') {
          p.recordConnectionSuccess(op.at);
          rec.last_seen = p.lastSeen;
          rec.successful_connections = p.successfulConnections;
        } else {
          p.recordConnectionFailure();
          rec.failed_connections = p.failedConnections;
        }
        rec.connection_attempts = p.connectionAttempts;
        rec.health_score = p.healthScore;
        break;
      }
      case 'remove': {
        if (i === undefined) break;
        if (op.dead) {
          const p = asPeer(recs[i]!, i, path);
          if (p.isAlive(op.dead.timeout, op.dead.now)) break;
        }
        recs[i] = undefined;
        index.delete(op.id);
        holes++;
        break;
      }
    }
  }
  let out = (holes > 0 ? recs.filter((r) => r !== undefined) : recs) as Record<string, unknown>[];
  const evicted: string[] = [];
  if (maxPeers !== undefined && out.length > maxPeers) {
    const excess = out.length - maxPeers;
    const ranked = out.map((rec, i) => ({ i, p: asPeer(rec, i, path) }));
    ranked.sort((a, b) => a.p.healthScore - b.p.healthScore || a.p.lastSeen - b.p.lastSeen);
    const drop = new Set<number>();
    for (let k = 0; k < excess; k++) {
      drop.add(ranked[k]!.i);
      evicted.push(ranked[k]!.p.nodeId);
    }
    out = out.filter((_, i) => !drop.has(i));
  }
  doc.peers = out;
  // Records written by Python lack the lists; add them when their count says they are empty.
  for (const rec of out) {
    if (rec.tools === undefined && !((rec.tools_count as number) > 0)) rec.tools = [];
    if (rec.resources === undefined && !((rec.resources_count as number) > 0)) rec.resources = [];
    if (rec.prompts === undefined && !((rec.prompts_count as number) > 0)) rec.prompts = [];
  }
  return { doc, evicted };
}
