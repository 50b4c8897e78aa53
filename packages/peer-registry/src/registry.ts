import { rename } from 'node:fs/promises';
import {
  JournaledJson,
  journalPathOf,
  withLock,
  type JournalEvent,
  type LockOptions,
  type RemoteChange,
} from '@dawn/atomic-json';
import { resolveRegistryPath, type RegistryPathOptions } from './data-root.js';
import { PeerRegistryError } from './errors.js';
import { PeerEvents, type PeerEventInfo, type PeerEventName, type PeerListener } from './events.js';
import { PeerIndex } from './peer-index.js';
import { fileError, newBatch, readAndCheck, type Batch } from './persistence.js';
import { applyOps, checkDepth, checkDoc, loadPeers, type Op, type RegistryDoc } from './file-format.js';
import {
  assignFields,
  copyInto,
  fieldsOfPeer,
  normalizeFields,
  Peer,
  peerFromFields,
  peerFromRecord,
  recordKeysOf,
  recordMatches,
  type PeerFields,
  type PeerInit,
  type PeerPatch,
} from './peer.js';
import { nowSeconds } from './time.js';

export type { PeerEventInfo, PeerEventName, PeerListener } from './events.js';

/** Decides whether this node may talk to a peer (a trust list, a ban list...). */
export interface PeerValidator {
  /** Return `false` (or a promise of it) to make {@link PeerRegistry.addPeer} refuse the peer. */
  canConnect(nodeId: string): boolean | Promise<boolean>;
}

/** Options of {@link PeerRegistry.open}. */
export interface PeerRegistryOptions extends RegistryPathOptions {
  /**
   * Keep the registry in `<dataRoot>/mesh/peer_registry.json`. With `false` the registry lives
   * in memory only and never touches the disk (not even to create a directory).
   * @default true
   */
  persist?: boolean;
  /**
   * Seconds after `lastSeen` at which a peer counts as dead (`isAlive`, `listAlivePeers`,
   * `cleanupDeadPeers`, stats).
   * @default 300
   */
  peerTimeout?: number;
  /** Consulted by `addPeer` unless `{ skipValidation: true }`; `canConnect(nodeId) === false` refuses the peer. */
  peerValidator?: PeerValidator;
  /**
   * Most peers to keep. Adding a new peer to a full registry first evicts the least healthy
   * peer, and among equally healthy ones the least recently seen.
   * @default unlimited
   */
  maxPeers?: number;
  /**
   * What `open()` does with a registry file that is not valid JSON or not a registry:
   * `'throw'` rejects with `CORRUPT` and leaves the file alone; `'quarantine'` renames it to
   * `peer_registry.json.corrupt-<unix ms>` and starts empty.
   * @default 'throw'
   */
  onCorrupt?: 'throw' | 'quarantine';
  /**
   * How to take the registry file's cross-process lock (see `@dawn/atomic-json`).
   * @default { timeoutMs: 10000, staleMs: 10000 }
   */
  lock?: LockOptions;
  /**
   * fsync each write (file and directory). Turn off only for throw-away data: a power loss may
   * then lose acknowledged writes (never tear the file).
   * @default true
   */
  fsync?: boolean;
  /**
   * Told about the journal's recovery and compactions: `tail-dropped` (a torn, never acknowledged
   * record at the end of `peer_registry.json.journal` was dropped), `foreign-snapshot` (another
   * program rewrote `peer_registry.json`; the journal was applied onto it), `compaction-resumed`,
   * `compacted`. See `JournaledJson` in `@dawn/atomic-json`.
   * @default none
   */
  onJournalEvent?: (event: JournalEvent) => void;
  /**
   * Compact (fold the journal into `peer_registry.json`) once the journal is larger than this
   * fraction of the registry file (and than 256 KiB).
   * @default 0.5
   */
  compactRatio?: number;
  /**
   * ...and only once the journal is larger than this many bytes.
   * @default 262144
   */
  compactMinBytes?: number;
}

/** Options of {@link PeerRegistry.flush}. */
export interface FlushOptions {
  /** Also fold the journal into `peer_registry.json` (one atomic rewrite) and remove the journal. @default false */
  compact?: boolean;
}

/** Options of {@link PeerRegistry.addPeer}. */
export interface AddPeerOptions {
  /** Do not consult the `peerValidator` (bootstrap or otherwise trusted peers). @default false */
  skipValidation?: boolean;
}

/** Options of {@link PeerRegistry.listPeers}. */
export interface ListPeersOptions {
  /** Only peers seen less than `peerTimeout` seconds ago. @default false */
  aliveOnly?: boolean;
}

/** What {@link PeerRegistry.getPeerStats} returns. */
export interface PeerStats {
  totalPeers: number;
  alivePeers: number;
  connectedPeers: number;
  deadPeers: number;
  /** Mean health score; 0 when there is no peer. */
  averageHealthScore: number;
}

const noop = (): void => {};

/** Return `p`, marked as handled: an unawaited mutation that fails never crashes the process (flush() reports it). */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(noop);
  return p;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

function checkOptions(opts: PeerRegistryOptions): void {
  const bad = (field: string, why: string): never => {
    throw new PeerRegistryError('INVALID_OPTION', `Invalid option ${field}: ${why}.`, { field });
  };
  if (opts.peerTimeout !== undefined && !(typeof opts.peerTimeout === 'number' && opts.peerTimeout > 0 && Number.isFinite(opts.peerTimeout))) {
    bad('peerTimeout', 'it must be a positive finite number of seconds');
  }
  if (opts.maxPeers !== undefined && !(Number.isSafeInteger(opts.maxPeers) && opts.maxPeers >= 1)) {
    bad('maxPeers', 'it must be a positive integer');
  }
  if (opts.onCorrupt !== undefined && opts.onCorrupt !== 'throw' && opts.onCorrupt !== 'quarantine') {
    bad('onCorrupt', "it must be 'throw' or 'quarantine'");
  }
  if (opts.persist !== undefined && typeof opts.persist !== 'boolean') bad('persist', 'it must be a boolean');
  if (opts.peerValidator !== undefined && typeof opts.peerValidator?.canConnect !== 'function') {
    bad('peerValidator', 'it must have a canConnect(nodeId) method');
  }
}

const CONSTRUCT = Symbol('PeerRegistry.construct');

type CounterOp = Extract<Op, { kind: 'success' | 'failure' | 'touch' }>;

/** An op that only changes counters or `last_seen` of an existing peer, well-formed. */
function isCounterOp(op: Op): op is CounterOp {
  if (op === null || typeof op !== 'object' || typeof op.kind !== 'string') return false;
  if (op.kind === 'failure') return typeof op.id === 'string';
  if (op.kind === 'success' || op.kind === 'touch') return typeof op.id === 'string' && typeof op.at === 'number' && Number.isFinite(op.at);
  return false;
}

/**
 * Apply counter ops (found in the journal at open) to the peers, as applyOps applies them to the
 * records (same arithmetic: Peer's own methods); an unknown id is skipped.
 */
function applyCounters(peers: ReadonlyMap<string, Peer>, counters: readonly CounterOp[]): void {
  for (let i = 0; i < counters.length; i++) {
    const op = counters[i]!;
    const p = peers.get(op.id);
    if (p === undefined) continue;
    if (op.kind === 'success') p.recordConnectionSuccess(op.at);
    else if (op.kind === 'failure') p.recordConnectionFailure();
    else p.updateActivity(op.at);
  }
}

/** Delay of the compaction of a journal found at open. */
const OPEN_COMPACTION_DELAY_MS = 100;

/**
 * The mesh's registry of known peers, persisted to `<dataRoot>/mesh/peer_registry.json` in the
 * Python implementation's format.
 *
 * - Reads (`getPeer`, `getPeerByAddress`, `listPeers`, counts) are synchronous and served from
 *   memory; `getPeer`/`getPeerByAddress`/`hasPeer` are O(1).
 * - Every mutation changes the in-memory view at once (and fires its event), then is written:
 *   its promise resolves once the change is durable on disk. Mutations issued without awaiting
 *   are batched into one locked read-modify-write of the file per flush.
 * - Each write applies this instance's changes onto the file's *current* contents under the
 *   cross-process lock, then refreshes the in-memory view from what was written: several
 *   processes may share one registry file without losing each other's peers. When the file's
 *   mark (`fileMark` of `@dawn/atomic-json`) shows it is still this instance's last write, it is
 *   not re-read: the changes are applied onto the document kept from that write.
 *
 * @example
 * ```ts
 * const registry = await PeerRegistry.open({ dataRoot: '/srv/dawn' });
 * registry.on('peer:added', (peer) => console.log('new peer', peer.nodeId));
 * await registry.addPeer({ nodeId: 'a1b2', address: 'ws://10.0.0.7:8000' });
 * await registry.recordConnectionSuccess('a1b2');
 * registry.getPeerByAddress('ws://10.0.0.7:8000')?.healthScore; // 1
 * await registry.close();
 * ```
 */
export class PeerRegistry {
  /** Absolute path of the registry file, or `undefined` with `persist: false`. */
  readonly path: string | undefined;
  /** Seconds after `lastSeen` at which a peer counts as dead. */
  readonly peerTimeout: number;
  /** The most peers kept, if limited. */
  readonly maxPeers: number | undefined;

  readonly #validator: PeerValidator | undefined;
  readonly #lockOpts: LockOptions | undefined;
  readonly #fsync: boolean;
  /** The in-memory view: peers by id and by address, and the eviction ranking. */
  readonly #index: PeerIndex;
  readonly #events = new PeerEvents();
  #pending: Batch | undefined;
  #inflight: Batch | undefined;
  #scheduled = false;
  #closed = false;
  #unreported: unknown;
  #flushCount = 0;
  #quarantinedTo: string | undefined;
  /** Snapshot `peer_registry.json` + journal `peer_registry.json.journal`. */
  #journal: JournaledJson<RegistryDoc, Op> | undefined;
  readonly #journalEvents: ((event: JournalEvent) => void) | undefined;
  readonly #compactRatio: number | undefined;
  readonly #compactMinBytes: number | undefined;
  /** Other processes' changes found during an append: applied to the view once it is durable. */
  #remote: RemoteChange<RegistryDoc, Op>[] = [];

  /** @internal Use {@link PeerRegistry.open}. */
  private constructor(token: symbol, path: string | undefined, opts: PeerRegistryOptions) {
    if (token !== CONSTRUCT) throw new TypeError('Use PeerRegistry.open() to create a PeerRegistry.');
    this.path = path;
    this.peerTimeout = opts.peerTimeout ?? 300;
    this.maxPeers = opts.maxPeers;
    this.#validator = opts.peerValidator;
    this.#lockOpts = opts.lock;
    this.#fsync = opts.fsync ?? true;
    this.#index = new PeerIndex(opts.maxPeers !== undefined);
    this.#journalEvents = opts.onJournalEvent;
    this.#compactRatio = opts.compactRatio;
    this.#compactMinBytes = opts.compactMinBytes;
  }

  /**
   * Open (load) a registry. Nothing is written by opening; the mesh directory is created by
   * the first write. With `persist: false` nothing on disk is touched at all.
   *
   * @throws {PeerRegistryError} `INVALID_OPTION`; `CORRUPT` (with `line`/`column` or `keyPath`)
   *   when the file is not valid JSON or not a registry — it is left untouched unless
   *   `onCorrupt: 'quarantine'` (also for values nested deeper than `MAX_JSON_DEPTH`, and bytes that
   *   are not UTF-8); `UNSUPPORTED_VERSION`; `LOCKED`/`IO` (`IO` at once when the path is a FIFO,
   *   device or directory, also behind a symlink). Integers beyond 2^53 are read as `bigint`.
   * @example
   * ```ts
   * const registry = await PeerRegistry.open();                       // $PROJECT_DAWN_DATA_ROOT or ~/.project-dawn
   * const scratch = await PeerRegistry.open({ persist: false });      // memory only
   * const capped = await PeerRegistry.open({ dataRoot: '/srv/dawn', maxPeers: 500, peerTimeout: 120 });
   * ```
   */
  static async open(opts: PeerRegistryOptions = {}): Promise<PeerRegistry> {
    checkOptions(opts);
    const persist = opts.persist ?? true;
    const path = persist ? resolveRegistryPath(opts) : undefined;
    const registry = new PeerRegistry(CONSTRUCT, path, opts);
    if (path !== undefined) await registry.#load(path, opts.onCorrupt ?? 'throw', opts.lock ?? {});
    return registry;
  }

  #openJournal(path: string, lock: LockOptions): Promise<JournaledJson<RegistryDoc, Op>> {
    return JournaledJson.open<RegistryDoc, Op>(path, {
      apply: (doc, ops) => applyOps(doc, ops, path, this.maxPeers).doc,
      fsync: this.#fsync,
      lock,
      ...(this.#compactRatio !== undefined ? { compactRatio: this.#compactRatio } : {}),
      ...(this.#compactMinBytes !== undefined ? { compactMinBytes: this.#compactMinBytes } : {}),
      onEvent: (e) => this.#journalEvents?.(e),
      onRemote: (change) => {
        this.#remote.push(change);
      },
    });
  }

  /**
   * Open the journal and build the peers of snapshot + journal. When the journal holds only
   * counter ops (`success`, `failure`, `touch`: the bulk of a busy node's journal) and no
   * `maxPeers` applies, the peers are built from the snapshot and those ops are returned to be
   * applied to them (O(ops)), instead of folding them into the parsed document first (which
   * indexes every record again); the journal folds them when it compacts. Same result.
   */
  async #readAll(path: string, lock: LockOptions): Promise<{ peers: Peer[]; counters: readonly CounterOp[] }> {
    try {
      const journal = await this.#openJournal(path, lock);
      this.#journal = journal;
      const { base, ops } = journal.parts();
      const counters = ops.length > 0 && base !== undefined && this.maxPeers === undefined && ops.every(isCounterOp) ? (ops as readonly CounterOp[]) : [];
      const raw = counters.length > 0 ? base : journal.current();
      if (raw === undefined) return { peers: [], counters };
      const doc = checkDoc(raw, path);
      checkDepth(doc, path);
      return { peers: loadPeers(doc, path), counters };
    } catch (err) {
      this.#journal = undefined;
      throw fileError(err, path, 'load');
    }
  }

  async #load(path: string, onCorrupt: 'throw' | 'quarantine', lock: LockOptions): Promise<void> {
    let peers: { peers: Peer[]; counters: readonly CounterOp[] };
    try {
      peers = await this.#readAll(path, lock);
    } catch (err) {
      if (!(PeerRegistryError.is(err) && err.code === 'CORRUPT' && onCorrupt === 'quarantine')) throw err;
      // Move it aside under the lock, unless someone repaired or replaced it meanwhile: a damaged
      // journal alone (the registry file is kept), else the registry file with its journal.
      await withLock(
        path,
        async () => {
          try {
            await readAndCheck(path);
          } catch (again) {
            if (!(PeerRegistryError.is(again) && again.code === 'CORRUPT')) throw again;
            const target = `${path}.corrupt-${Date.now()}`;
            await rename(path, target);
            await rename(journalPathOf(path), `${target}.journal`).catch(() => {});
            this.#quarantinedTo = target;
            return;
          }
          const target = `${journalPathOf(path)}.corrupt-${Date.now()}`;
          await rename(journalPathOf(path), target).catch((e: unknown) => {
            if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
          });
          this.#quarantinedTo = target;
        },
        lock,
      ).catch((e: unknown) => {
        throw fileError(e, path, 'quarantine');
      });
      peers = await this.#readAll(path, lock);
    }
    this.#remote = [];
    // A journal found at open is folded into the registry file in the background, shortly after
    // open() resolved: on an unref'd timer, so that a process that opens, reads and exits takes
    // no lock (it would leave the lock behind, making the next process wait for it to go stale).
    // close() and flush({ compact: true }) compact anyway.
    const journal = this.#journal;
    if (journal !== undefined && journal.journalBytes > 0) {
      const timer = setTimeout(() => {
        if (!this.#closed) void journal.compact().catch(noop);
      }, OPEN_COMPACTION_DELAY_MS);
      timer.unref?.();
    }
    this.#index.load(peers.peers);
    applyCounters(this.#index.peers, peers.counters);
  }

  /** Where `open()` moved a corrupt file with `onCorrupt: 'quarantine'`, if it did. */
  get quarantinedTo(): string | undefined {
    return this.#quarantinedTo;
  }

  /**
   * Number of write cycles this instance has run: each is one record appended to the journal
   * (one write + one fsync under the lock), however many mutations it carried.
   */
  get flushCount(): number {
    return this.#flushCount;
  }

  /** Number of times this instance folded the journal into the registry file. */
  get compactionCount(): number {
    return this.#journal?.compactions ?? 0;
  }

  /**
   * What this instance wrote: `journal` bytes of appended records, `snapshot` bytes of registry
   * files written by compaction.
   */
  get bytesWritten(): { journal: number; snapshot: number } {
    return { journal: this.#journal?.appendedBytes ?? 0, snapshot: this.#journal?.compactedBytes ?? 0 };
  }

  // ---------------------------------------------------------------- events

  /**
   * Listen to `peer:added`, `peer:removed` or `peer:updated`. Listeners run synchronously
   * when the in-memory view changes: at the call for local changes (before the write is
   * durable), and when a write or `reload()` finds another process's changes in the file
   * (`info.origin === 'file'`). A throwing listener does not disturb the registry; its error
   * is re-thrown asynchronously.
   * @example
   * ```ts
   * registry.on('peer:removed', (peer, { origin }) => console.log(peer.nodeId, 'gone', origin));
   * ```
   */
  on(event: PeerEventName, listener: PeerListener): this {
    this.#events.on(event, listener);
    return this;
  }

  /** Stop calling `listener` for `event`. */
  off(event: PeerEventName, listener: PeerListener): this {
    this.#events.off(event, listener);
    return this;
  }

  /** Call `listener` for the next `event` only. */
  once(event: PeerEventName, listener: PeerListener): this {
    this.#events.once(event, listener);
    return this;
  }

  // ---------------------------------------------------------------- in-memory view

  #evictFor(): void {
    const heap = this.#index.heap;
    if (heap === undefined || this.maxPeers === undefined) return;
    if (heap.length > 2 * this.#index.peers.size + 1024) heap.rebuild(this.#index.peers.values());
    while (this.#index.peers.size >= this.maxPeers) {
      const victim = heap.popWorst((p) => this.#index.peers.get(p.nodeId) === p);
      if (victim === undefined) break;
      this.#index.delete(victim);
      this.#commit({ kind: 'remove', id: victim.nodeId });
      this.#events.emit('peer:removed', victim, 'local');
    }
  }

  /**
   * Bring the in-memory view in line with the file's records (after a write or a reload).
   * Peers with changes still waiting to be written are left as they are.
   */
  #refresh(records: readonly Record<string, unknown>[]): void {
    const pending = this.#pending;
    if (pending?.cleared) return; // a clear is on its way: the file's peers are about to go
    const dirty = pending?.touched;
    let matched = 0;
    for (const rec of records) {
      const id = rec.node_id as string;
      const mine = this.#index.peers.get(id);
      if (mine !== undefined) matched++;
      if (dirty?.has(id) || (mine !== undefined && recordMatches(mine, rec))) continue;
      let fresh: Peer;
      try {
        fresh = peerFromRecord(rec, true);
      } catch {
        continue; // written by someone else, malformed: left in the file as it is; open() reports it
      }
      if (mine === undefined) {
        this.#index.insert(fresh);
        matched++;
        this.#events.emit('peer:added', fresh, 'file');
      } else {
        const oldAddress = mine.address;
        copyInto(mine, fresh);
        this.#index.changed(mine, oldAddress);
        this.#events.emit('peer:updated', mine, 'file');
      }
    }
    if (this.#index.peers.size > matched) {
      const inFile = new Set<string>();
      for (const rec of records) inFile.add(rec.node_id as string);
      for (const p of [...this.#index.peers.values()]) {
        if (!inFile.has(p.nodeId) && !dirty?.has(p.nodeId)) {
          this.#index.delete(p);
          this.#events.emit('peer:removed', p, 'file');
        }
      }
    }
  }

  // ---------------------------------------------------------------- persistence

  #assertOpen(): void {
    if (this.#closed) {
      throw new PeerRegistryError('CLOSED', `The peer registry${this.path ? ` ${this.path}` : ''} is closed; open a new one to change it.`);
    }
  }

  /** Queue `op` for the next write; resolves when it is durable. */
  #commit(op: Op): Promise<void> {
    if (this.path === undefined) return Promise.resolve();
    let b = this.#pending;
    if (b === undefined) {
      b = this.#pending = newBatch();
      this.#schedule();
    }
    b.ops.push(op);
    if (op.kind === 'clear') b.cleared = true;
    else b.touched.add(op.id);
    return b.promise;
  }

  /** Resolves once everything queued so far is durable (or failed). */
  #settled(): Promise<void> {
    const b = this.#pending ?? this.#inflight;
    return b ? b.promise.catch(noop) : Promise.resolve();
  }

  #schedule(): void {
    if (this.#inflight !== undefined || this.#scheduled) return;
    this.#scheduled = true;
    // A microtask: every mutation issued in the same synchronous run joins the batch.
    queueMicrotask(() => void this.#run());
  }

  async #run(): Promise<void> {
    this.#scheduled = false;
    const batch = this.#pending;
    const journal = this.#journal;
    const path = this.path;
    if (batch === undefined || journal === undefined || path === undefined) return;
    this.#pending = undefined;
    this.#inflight = batch;
    try {
      await journal.append(batch.ops);
      this.#flushCount++;
      batch.resolve(); // durable: whatever happens below, these mutations are acknowledged
      try {
        this.#applyRemote();
      } catch (err) {
        // Others' changes could not be folded (e.g. a malformed record another program wrote):
        // reported by the next flush(); the next append or reload() re-reads the files.
        this.#unreported ??= fileError(err, path, 'read the changes of other processes in');
      }
    } catch (err) {
      const e = fileError(err, path, 'write');
      this.#unreported ??= e;
      batch.reject(e);
      // The in-memory view may now hold changes the files do not: bring it back in line.
      this.#remote = [];
      try {
        await journal.sync();
        this.#remote = [];
        this.#refresh(journal.current()?.peers ?? []);
      } catch {
        // The files cannot be read either; the next successful write or reload() re-syncs.
      }
    } finally {
      this.#inflight = undefined;
      if (this.#pending !== undefined) this.#schedule();
    }
  }

  /** Apply the changes other processes made (found by the journal) to the in-memory view. */
  #applyRemote(): void {
    const changes = this.#remote;
    if (changes.length === 0) return;
    this.#remote = [];
    const journal = this.#journal!;
    if (changes.some((c) => c.kind === 'reset')) {
      this.#refresh(journal.current()?.peers ?? []);
      return;
    }
    for (const c of changes) if (c.kind === 'ops') for (const op of c.ops) this.#applyRemoteOp(op);
    // Others' peers count towards maxPeers too: evict down to it (written with the next batch).
    const heap = this.#index.heap;
    if (heap === undefined || this.maxPeers === undefined) return;
    while (this.#index.peers.size > this.maxPeers) {
      const victim = heap.popWorst((p) => this.#index.peers.get(p.nodeId) === p);
      if (victim === undefined) break;
      this.#index.delete(victim);
      void this.#commit({ kind: 'remove', id: victim.nodeId });
      this.#events.emit('peer:removed', victim, 'local');
    }
  }

  /** One op another process appended, applied to the view as the file will apply it. */
  #applyRemoteOp(op: Op): void {
    if (op.kind === 'clear') {
      const all = [...this.#index.peers.values()];
      this.#index.peers.clear();
      this.#index.byAddress.clear();
      this.#index.heap?.rebuild([]);
      for (const p of all) this.#events.emit('peer:removed', p, 'file');
      return;
    }
    const mine = this.#index.peers.get(op.id);
    if (op.kind === 'remove') {
      if (mine !== undefined && (op.dead === undefined || !mine.isAlive(op.dead.timeout, op.dead.now))) {
        this.#index.delete(mine);
        this.#events.emit('peer:removed', mine, 'file');
      }
      return;
    }
    let fresh: Peer;
    try {
      if (mine === undefined) {
        if (op.kind !== 'put' || !op.create) return;
        fresh = peerFromRecord(op.record as unknown as Record<string, unknown>, false);
        this.#index.insert(fresh);
        this.#events.emit('peer:added', fresh, 'file');
        return;
      }
      const rec = applyOps({ version: 1, peers: [mine.toDict() as unknown as Record<string, unknown>] }, [op], this.path ?? '', undefined).doc.peers[0]!;
      fresh = peerFromRecord(rec, false);
    } catch {
      return; // malformed: the next compaction or open() reports it
    }
    if (mine.equals(fresh)) return;
    const oldAddress = mine.address;
    copyInto(mine, fresh);
    this.#index.changed(mine, oldAddress);
    this.#events.emit('peer:updated', mine, 'file');
  }

  /**
   * Resolve once every mutation issued before the call is durable.
   * @throws {PeerRegistryError} the first write failure since the last `flush()` (`LOCKED`, `IO`,
   *   `CORRUPT`, `NOT_SERIALIZABLE`), so that failures of mutations nobody awaited are not lost.
   * @example
   * ```ts
   * for (const p of discovered) void registry.addPeer(p); // one write for all of them
   * await registry.flush();
   * ```
   */
  async flush(opts: FlushOptions = {}): Promise<void> {
    await this.#settled();
    if (opts.compact && this.#journal !== undefined) {
      try {
        await this.#journal.compact();
        this.#afterCompaction();
      } catch (err) {
        this.#unreported ??= fileError(err, this.path!, 'compact');
      }
    }
    if (this.#unreported !== undefined) {
      const err = this.#unreported;
      this.#unreported = undefined;
      throw err;
    }
  }

  /** After a compaction: the view follows the compacted document (others' changes, `maxPeers` evictions). */
  #afterCompaction(): void {
    this.#remote = [];
    if (this.#pending === undefined && this.#inflight === undefined) this.#refresh(this.#journal!.current()?.peers ?? []);
  }

  /**
   * Flush, fold the journal into `peer_registry.json` (so a closed registry is that one plain
   * file, readable by the Python implementation), then refuse further mutations (`CLOSED`).
   * Reads keep working. Idempotent.
   * @throws {PeerRegistryError} like {@link PeerRegistry.flush}.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush({ compact: true });
  }

  /**
   * Bring the in-memory view in line with the files (firing `origin: 'file'` events for other
   * processes' changes): records other processes appended to the journal, or a registry file
   * another program rewrote. Waits for this instance's pending writes first.
   * @throws {PeerRegistryError} `CORRUPT`, `UNSUPPORTED_VERSION`, `IO`, `LOCKED`.
   */
  async reload(): Promise<void> {
    const path = this.path;
    const journal = this.#journal;
    if (path === undefined || journal === undefined) return;
    await this.#settled();
    try {
      await journal.sync();
      const changes = this.#remote;
      if (changes.some((c) => c.kind === 'reset')) {
        // Check the new document as open() does (a foreign writer may have left anything).
        const raw = journal.current();
        if (raw !== undefined) {
          checkDepth(checkDoc(raw, path), path);
          loadPeers(checkDoc(raw, path), path);
        }
      }
    } catch (err) {
      this.#remote = [];
      throw fileError(err, path, 'reload');
    }
    this.#applyRemote();
  }

  /**
   * Run `fn` while the registry's files are consistent and no process can change them (under the
   * registry's lock): for a backup that copies `peer_registry.json` and, when it exists,
   * `peer_registry.json.journal` as of one instant. Or call `flush({ compact: true })` and copy the
   * registry file alone.
   * @example
   * ```ts
   * await registry.withConsistentFiles(async ({ snapshot, journal }) => { await copy(snapshot); await copyIfExists(journal); });
   * ```
   */
  async withConsistentFiles<R>(fn: (files: { snapshot: string; journal: string }) => R | Promise<R>): Promise<R> {
    const journal = this.#journal;
    if (journal === undefined) throw new PeerRegistryError('INVALID_OPTION', 'withConsistentFiles() needs a persisted registry (persist: true).', { field: 'persist' });
    await this.#settled();
    return journal.withConsistentFiles(fn);
  }

  // ---------------------------------------------------------------- mutations

  /**
   * Add a peer, or update the one with the same `nodeId` (upsert). A {@link Peer} instance
   * replaces every field of an existing peer (as the Python implementation did); a plain
   * {@link PeerInit} object sets the fields it names and keeps the others. Fields a newer
   * program stored in the file are kept either way. With `maxPeers` reached, adding a new peer
   * first evicts the least healthy, least recently seen one.
   *
   * @returns `false` when `peerValidator.canConnect(nodeId)` said no (nothing changed, nothing
   *   written); `true` once the change is durable.
   * @throws {PeerRegistryError} (rejects, before anything is changed or written) `INVALID_NODE_ID`,
   *   `INVALID_ADDRESS`, `INVALID_HEALTH_SCORE`, `INVALID_TIMESTAMP`, `INVALID_FIELD`, `CLOSED`;
   *   after: `LOCKED`, `IO`, `CORRUPT`, `NOT_SERIALIZABLE` when the write failed.
   * @example
   * ```ts
   * await registry.addPeer({ nodeId: 'c0ff', address: '/ip4/127.0.0.1/tcp/9000', agents: ['coordinator'] });
   * await registry.addPeer(new Peer({ nodeId: 'b00t', address: 'wss://boot.example.org' }), { skipValidation: true });
   * ```
   */
  addPeer(peer: Peer | PeerInit, opts: AddPeerOptions = {}): Promise<boolean> {
    try {
      this.#assertOpen();
      const replace = peer instanceof Peer;
      const fields = replace ? fieldsOfPeer(peer) : normalizeFields(peer as unknown as Record<string, unknown>, 'init');
      const nodeId = fields.nodeId!;
      const source = replace ? peer : undefined;
      if (!opts.skipValidation && this.#validator !== undefined) {
        const verdict = this.#validator.canConnect(nodeId);
        if (isThenable(verdict)) {
          return handled(
            Promise.resolve(verdict).then((ok) => {
              if (!ok) return false;
              this.#assertOpen();
              return this.#applyAdd(fields, source);
            }),
          );
        }
        if (!verdict) return Promise.resolve(false);
      }
      return handled(this.#applyAdd(fields, source));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #applyAdd(fields: Partial<PeerFields>, source: Peer | undefined): Promise<boolean> {
    const nodeId = fields.nodeId!;
    const existing = this.#index.peers.get(nodeId);
    let keys: string[] | null;
    if (existing !== undefined) {
      const oldAddress = existing.address;
      let changed: boolean;
      if (source !== undefined) {
        const candidate = source.clone();
        if (Object.keys(source.extra).length === 0) candidate.extra = existing.extra; // keep what the file had
        changed = !existing.equals(candidate);
        if (changed) copyInto(existing, candidate);
        keys = null;
      } else {
        changed = assignFields(existing, fields);
        keys = recordKeysOf(fields).filter((k) => k !== 'node_id');
      }
      if (changed) this.#index.changed(existing, oldAddress);
      // Queue before emitting: a listener's own mutations must be written after this one.
      const done = this.#commit({ kind: 'put', id: nodeId, record: existing.toDict(), keys, create: true });
      if (changed) this.#events.emit('peer:updated', existing, 'local');
      return done.then(() => true);
    }
    this.#evictFor();
    const added = source !== undefined ? source.clone() : peerFromFields(fields);
    this.#index.insert(added);
    keys = source !== undefined ? null : recordKeysOf(fields).filter((k) => k !== 'node_id');
    const done = this.#commit({ kind: 'put', id: nodeId, record: added.toDict(), keys, create: true });
    this.#events.emit('peer:added', added, 'local');
    return done.then(() => true);
  }

  /**
   * Change some fields of a known peer. Fires `peer:updated` only if a value actually changed
   * (the write happens either way, so the file holds the values you set).
   * @returns the registry's peer once the change is durable.
   * @throws {PeerRegistryError} `NOT_FOUND`, the validation codes of {@link PeerRegistry.addPeer}
   *   (before anything changes), `CLOSED`; `LOCKED`/`IO`/`CORRUPT`/`NOT_SERIALIZABLE` when the write failed.
   * @example
   * ```ts
   * await registry.updatePeer('c0ff', { connected: true, metadata: { region: 'eu-west' } });
   * ```
   */
  updatePeer(nodeId: string, patch: PeerPatch): Promise<Peer> {
    try {
      this.#assertOpen();
      const fields = normalizeFields(patch as unknown as Record<string, unknown>, 'patch');
      const peer = this.#index.peers.get(nodeId);
      if (peer === undefined) {
        throw new PeerRegistryError('NOT_FOUND', `Cannot update peer ${typeof nodeId === 'string' ? JSON.stringify(nodeId) : String(nodeId)}: it is not in the registry. Add it with addPeer() first.`, {
          field: 'nodeId',
        });
      }
      const oldAddress = peer.address;
      const changed = assignFields(peer, fields);
      if (changed) this.#index.changed(peer, oldAddress);
      const keys = recordKeysOf(fields);
      const done = keys.length === 0 ? this.#settled() : this.#commit({ kind: 'put', id: nodeId, record: peer.toDict(), keys, create: false });
      if (changed) this.#events.emit('peer:updated', peer, 'local');
      return handled(done.then(() => peer));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Remove a peer (also from the file when another process added it and this one never saw it).
   * @returns the removed peer (`undefined` if this instance did not know it), once durable.
   * @example
   * ```ts
   * const gone = await registry.removePeer('c0ff');
   * ```
   */
  removePeer(nodeId: string): Promise<Peer | undefined> {
    try {
      this.#assertOpen();
      const peer = this.#index.peers.get(nodeId);
      if (peer !== undefined) this.#index.delete(peer);
      const done = typeof nodeId === 'string' && nodeId !== '' ? this.#commit({ kind: 'remove', id: nodeId }) : Promise.resolve();
      if (peer !== undefined) this.#events.emit('peer:removed', peer, 'local');
      return handled(done.then(() => peer));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Remove every peer (fires `peer:removed` for each). Other fields of the file are kept.
   * @example
   * ```ts
   * await registry.clear();
   * ```
   */
  clear(): Promise<void> {
    try {
      this.#assertOpen();
      const all = [...this.#index.peers.values()];
      this.#index.peers.clear();
      this.#index.byAddress.clear();
      this.#index.heap?.rebuild([]);
      const done = this.#commit({ kind: 'clear' });
      for (const p of all) this.#events.emit('peer:removed', p, 'local');
      return handled(done);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Mark a peer as seen now (persisted, like every mutation).
   * @returns `false` when this instance does not know the peer (nothing written).
   * @example
   * ```ts
   * socket.on('message', () => void registry.updatePeerActivity(nodeId));
   * ```
   */
  updatePeerActivity(nodeId: string): Promise<boolean> {
    return this.#changePeer(nodeId, (peer, now) => {
      const changed = peer.lastSeen !== now;
      if (changed) peer.updateActivity(now);
      return { op: { kind: 'touch', id: nodeId, at: now }, changed };
    });
  }

  /**
   * Count a successful connection (attempts +1, successes +1, health +0.1 up to 1, seen now).
   * Applied onto the file's current record, so concurrent processes' counts add up.
   * @returns `false` when this instance does not know the peer.
   * @example
   * ```ts
   * await registry.recordConnectionSuccess(nodeId);
   * ```
   */
  recordConnectionSuccess(nodeId: string): Promise<boolean> {
    return this.#changePeer(nodeId, (peer, now) => {
      peer.recordConnectionSuccess(now);
      return { op: { kind: 'success', id: nodeId, at: now }, changed: true };
    });
  }

  /**
   * Count a failed connection (attempts +1, failures +1, health -0.2 down to 0).
   * @returns `false` when this instance does not know the peer.
   * @example
   * ```ts
   * await registry.recordConnectionFailure(nodeId);
   * ```
   */
  recordConnectionFailure(nodeId: string): Promise<boolean> {
    return this.#changePeer(nodeId, (peer) => {
      peer.recordConnectionFailure();
      return { op: { kind: 'failure', id: nodeId }, changed: true };
    });
  }

  /**
   * Apply a local change to a known peer: queue its op, re-rank it for eviction and fire
   * `peer:updated` when it changed. Resolves `false` for a peer this instance does not know.
   */
  #changePeer(nodeId: string, change: (peer: Peer, now: number) => { op: Op; changed: boolean }): Promise<boolean> {
    try {
      this.#assertOpen();
      const peer = this.#index.peers.get(nodeId);
      if (peer === undefined) return Promise.resolve(false);
      const { op, changed } = change(peer, nowSeconds());
      if (changed) this.#index.heap?.push(peer);
      const done = this.#commit(op);
      if (changed) this.#events.emit('peer:updated', peer, 'local');
      return handled(done.then(() => true));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Remove every peer not seen for `peerTimeout` seconds, in one write however many there are.
   * In the file, a peer is removed only if it is still dead there (another process may have
   * seen it since).
   * @returns the peers removed from this instance's view.
   * @example
   * ```ts
   * setInterval(() => void registry.cleanupDeadPeers(), 60_000);
   * ```
   */
  cleanupDeadPeers(): Promise<Peer[]> {
    try {
      this.#assertOpen();
      const now = nowSeconds();
      const dead: Peer[] = [];
      for (const p of this.#index.peers.values()) if (!p.isAlive(this.peerTimeout, now)) dead.push(p);
      if (dead.length === 0) return handled(this.#settled().then(() => dead));
      const cutoff = { now, timeout: this.peerTimeout };
      let done: Promise<void> = Promise.resolve();
      for (const p of dead) {
        this.#index.delete(p);
        done = this.#commit({ kind: 'remove', id: p.nodeId, dead: cutoff });
      }
      for (const p of dead) this.#events.emit('peer:removed', p, 'local');
      return handled(done.then(() => dead));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  // ---------------------------------------------------------------- reads

  /**
   * The peer with this node id. O(1).
   * @example
   * ```ts
   * registry.getPeer('c0ff')?.address;
   * ```
   */
  getPeer(nodeId: string): Peer | undefined {
    return this.#index.peers.get(nodeId);
  }

  /**
   * The peer with this address (the earliest indexed one if several share it). O(1).
   * @example
   * ```ts
   * registry.getPeerByAddress('/ip4/127.0.0.1/tcp/9000');
   * ```
   */
  getPeerByAddress(address: string): Peer | undefined {
    const v = this.#index.byAddress.get(address);
    return Array.isArray(v) ? v[0] : v;
  }

  /** Whether the registry knows this node id. O(1). */
  hasPeer(nodeId: string): boolean {
    return this.#index.peers.has(nodeId);
  }

  /**
   * Every peer (or only the alive ones), in insertion order. A new array; the peers are the live objects.
   * @example
   * ```ts
   * registry.listPeers({ aliveOnly: true }).map((p) => p.address);
   * ```
   */
  listPeers(opts: ListPeersOptions = {}): Peer[] {
    if (!opts.aliveOnly) return [...this.#index.peers.values()];
    const now = nowSeconds();
    const out: Peer[] = [];
    for (const p of this.#index.peers.values()) if (p.isAlive(this.peerTimeout, now)) out.push(p);
    return out;
  }

  /** Peers seen less than `peerTimeout` seconds ago. */
  listAlivePeers(): Peer[] {
    return this.listPeers({ aliveOnly: true });
  }

  /** Peers marked `connected`. */
  listConnectedPeers(): Peer[] {
    const out: Peer[] = [];
    for (const p of this.#index.peers.values()) if (p.connected) out.push(p);
    return out;
  }

  /** Number of peers. O(1). */
  getPeerCount(): number {
    return this.#index.peers.size;
  }

  /** Number of alive peers. */
  getAlivePeerCount(): number {
    const now = nowSeconds();
    let n = 0;
    for (const p of this.#index.peers.values()) if (p.isAlive(this.peerTimeout, now)) n++;
    return n;
  }

  /** Number of connected peers. */
  getConnectedPeerCount(): number {
    let n = 0;
    for (const p of this.#index.peers.values()) if (p.connected) n++;
    return n;
  }

  /**
   * Counts and mean health, in one pass.
   * @example
   * ```ts
   * const { totalPeers, alivePeers, averageHealthScore } = registry.getPeerStats();
   * ```
   */
  getPeerStats(): PeerStats {
    const now = nowSeconds();
    let alive = 0;
    let connected = 0;
    let health = 0;
    for (const p of this.#index.peers.values()) {
      if (p.isAlive(this.peerTimeout, now)) alive++;
      if (p.connected) connected++;
      health += p.healthScore;
    }
    const total = this.#index.peers.size;
    return {
      totalPeers: total,
      alivePeers: alive,
      connectedPeers: connected,
      deadPeers: total - alive,
      averageHealthScore: total > 0 ? health / total : 0,
    };
  }
}

