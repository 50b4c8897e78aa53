/**
 * A journaled JSON document: a snapshot file (plain JSON, written by the atomic write protocol)
 * plus an append-only op journal `<file>.journal` beside it. A durable change costs one
 * appended record and one fsync, whatever the size of the document; compaction folds the
 * journal into the snapshot through the atomic write and removes the journal.
 *
 * Journal file: a sequence of records `[u32 LE payload length][u32 LE CRC-32 of the payload][payload]`,
 * each payload a lossless JSON text:
 * - first record, the header: `{"journal": 1, "base": "<sha-256 hex of the snapshot's bytes>" | null, "mark"?: "<dev:ino:size:mtimeNs:ctimeNs>"}`
 *   (`null`: the journal extends a missing snapshot; `mark`: the snapshot's file mark when the
 *   journal was started: a snapshot that still has it is the one named, without hashing it);
 * - `{"ops": [...]}`: one appended batch;
 * - `{"compact": "<sha-256 hex>", "file"?: "<dev:ino:birthtimeNs>"}`: a compaction is about to
 *   replace the snapshot by the document whose bytes have this hash (everything before the marker
 *   is folded into it), by renaming into place the complete temp file whose identity is `file`;
 * - `{"compacted": "<sha-256 hex>"}`: that rename happened and is durable (written just before
 *   the journal is removed).
 */
import { createHash, webcrypto } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import { dirname } from 'node:path';
import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import { crc32Range } from './crc32.js';
import { AtomicJsonError, ioError } from './errors.js';
import { fileMark, sameFileMark, type FileMark } from './file-mark.js';
import { fsl } from './fs-layer.js';
import { MAX_LOCK_POLL_MS, type LockOptions } from './lock.js';
import { withLock } from './operations.js';
import { decodeText, parseJson } from './parse.js';
import { absolute, assertLockStillHeld, directWrite, holdsLock, othersQueued, readBytes, resolveWriteOptions } from './queue.js';
import { serialize } from './serialize.js';

/** Suffix of the journal file beside a journaled document: `<file>.journal`. */
export const JOURNAL_SUFFIX = '.journal';

/**
 * Path of the journal of a journaled document (`<file>.journal`).
 * @throws Never.
 * @example
 * ```ts
 * journalPathOf('/data/mesh/peer_registry.json'); // '/data/mesh/peer_registry.json.journal'
 * ```
 */
export function journalPathOf(file: string): string {
  return `${file}${JOURNAL_SUFFIX}`;
}

/**
 * The lock lease: after an append, the lock is kept while this process has more appends ready
 * by the next macrotask, for at most this long. Back-to-back appends then cost one write each
 * instead of a lock round trip (mkdir, stat, rmdir) each.
 */
export const LEASE_MS = 25;
/**
 * After a lease that ran to {@link LEASE_MS}, the lock is left free this long before this
 * process takes it again: longer than a waiter's longest pause between tries, so that a waiting
 * process gets it.
 */
export const LEASE_GAP_MS = Math.ceil(MAX_LOCK_POLL_MS) + 3;

/** `O_DSYNC` where the platform has it: a write returns once its data (and the file size) are on disk. */
const O_DSYNC = process.platform === 'win32' ? 0 : (constants.O_DSYNC ?? 0);

/** What a {@link JournaledJson} reports through `onEvent`. */
export type JournalEvent =
  /** A torn or checksum-failing record at the journal's end (never acknowledged) was dropped. */
  | { type: 'tail-dropped'; path: string; offset: number; bytes: number; reason: string }
  /**
   * The snapshot was rewritten by a writer that knows nothing of the journal (e.g. the Python
   * implementation): the journal's records were applied onto that new snapshot, then compacted
   * (`records` of them: after a `compaction-resumed` event, only those the killed compaction had
   * not folded into the snapshot the foreign writer rewrote).
   */
  | { type: 'foreign-snapshot'; path: string; records: number }
  /** A compaction killed after replacing the snapshot but before removing the journal was finished. */
  | { type: 'compaction-resumed'; path: string }
  /** The journal was folded into the snapshot. */
  | { type: 'compacted'; path: string; records: number; journalBytes: number };

/** A change other writers made, reported through `onRemote` (under the lock). */
export type RemoteChange<T, Op> =
  /** Records another process appended: apply these ops, in order, to your view. */
  | { kind: 'ops'; ops: Op[] }
  /** The document was replaced (another process compacted, or a foreign rewrite): this is the current document. */
  | { kind: 'reset'; doc: T | undefined };

/** Options of {@link JournaledJson.open}. */
export interface JournalOptions<T, Op> {
  /**
   * Fold `ops` in order onto `doc` (`undefined`: no snapshot yet) and return the result (may
   * mutate `doc`). Must be deterministic. Ops are applied onto whatever the snapshot holds, so
   * make them merge-like (increments, field sets) rather than whole-document replacements when
   * foreign rewrites of the snapshot are possible.
   */
  apply(doc: T | undefined, ops: readonly Op[]): T;
  /** fsync appends, the snapshot and the directory. @default true */
  fsync?: boolean;
  /** The cross-process lock (`<file>.lock`, as every atomic-json writer). @default `{}` */
  lock?: LockOptions;
  /** Indentation of the snapshot. @default 2 */
  spaces?: number;
  /** Compact once the journal is larger than this fraction of the snapshot... @default 0.5 */
  compactRatio?: number;
  /** ...and larger than this many bytes. @default 262144 */
  compactMinBytes?: number;
  /** Told about dropped tails, foreign rewrites, compactions. @default none */
  onEvent?(event: JournalEvent): void;
  /** Told (synchronously, under the lock) about other writers' changes found before an append, on `sync()` or `compact()`. */
  onRemote?(change: RemoteChange<T, Op>): void;
}

/**
 * A journal record as read: an ops record in the form {@link encodeRecord} writes
 * (`{"ops":[...]}`) is its ops array itself, without the wrapper object; any other record (the
 * header, a compaction marker, an ops record written otherwise) is its payload's object.
 */
type RecordValue = unknown[] | Record<string, unknown>;

/** The ops of a record, or `undefined` when it is not an ops record. */
function opsOf(value: RecordValue): unknown[] | undefined {
  if (Array.isArray(value)) return value;
  return Array.isArray(value.ops) ? value.ops : undefined;
}

/** The ops of `values[from..]`, in order, and the number of ops records they came from. */
function collectOps<Op>(values: readonly RecordValue[], from: number): { ops: Op[]; records: number } {
  const ops: Op[] = [];
  let records = 0;
  for (let i = from; i < values.length; i++) {
    const o = opsOf(values[i]!);
    if (o === undefined) continue;
    records++;
    pushAll(ops, o as Op[]);
  }
  return { ops, records };
}

/** `to.push(...from)` without spreading (a spread of ~100,000 items or more overflows the stack). */
function pushAll<X>(to: X[], from: readonly X[]): void {
  for (let i = 0; i < from.length; i++) to.push(from[i]!);
}

const isRecordObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** What a journal's header says of the snapshot it extends. */
interface JournalHeader {
  base: string | null;
  /** The snapshot's file mark when the journal was started ({@link markText}), if recorded. */
  mark?: string;
}

/**
 * A snapshot's {@link FileMark} as a journal header records it: `dev:ino:size:mtimeNs:ctimeNs`.
 * `undefined` when there is no file or the mark proves nothing (no real inode number).
 */
function markText(m: FileMark | undefined): string | undefined {
  if (m === undefined || m.ino === 0n) return undefined;
  return `${m.dev}:${m.ino}:${m.size}:${m.mtimeNs}:${m.ctimeNs}`;
}

/**
 * The header of the journal `buf`, if its first record is a well-formed header; `undefined`
 * otherwise (never throws: the full parse that follows reports damage).
 */
function headerOf(buf: Buffer, jpath: string): JournalHeader | undefined {
  if (buf.length < 8) return undefined;
  const end = 8 + buf.readUInt32LE(0);
  if (end > buf.length || crc32Range(buf, 8, end) !== buf.readUInt32LE(4)) return undefined;
  let v: unknown;
  try {
    v = parseJson(buf.subarray(8, end), jpath);
  } catch {
    return undefined;
  }
  if (!isRecordObject(v) || v.journal !== 1 || (typeof v.base !== 'string' && v.base !== null)) return undefined;
  // A mark is only meaningful beside a hash (a journal on a missing snapshot records none).
  return typeof v.mark === 'string' && typeof v.base === 'string' ? { base: v.base, mark: v.mark } : { base: v.base };
}

/**
 * A file's identity for a compaction marker: `dev:ino:birthtimeNs` (a birth time tells a reused
 * inode number apart). `undefined` when the file is missing or the file system gives no real
 * inode or birth time: such a marker then proves nothing.
 */
async function identityOf(p: string): Promise<string | undefined> {
  let st;
  try {
    st = await fsp.stat(p, { bigint: true });
  } catch {
    return undefined;
  }
  if (st.ino === 0n || st.birthtimeNs === 0n) return undefined;
  return `${st.dev}:${st.ino}:${st.birthtimeNs}`;
}

function sha256(buf: Uint8Array | string): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** sha-256 hex of `buf` computed on libuv's thread pool (WebCrypto), in parallel with the caller's work. */
async function sha256OffThread(buf: Uint8Array): Promise<string> {
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', buf)).toString('hex');
}

function encodeRecord(value: unknown, path: string): Buffer {
  const payload = Buffer.from(serialize(value, path, 0).slice(0, -1), 'utf8');
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32LE(payload.length, 0);
  head.writeUInt32LE(crc32(payload) >>> 0, 4);
  return Buffer.concat([head, payload]);
}

/** `{"ops":[` */
const OPS_OPEN = Buffer.from('{"ops":[', 'latin1');

/**
 * Does the payload `buf[start..end)` look like `{"ops":[…]}`? Then `[…]` (its bytes without the
 * first 7 and the last 1) is the ops array, if the payload is what it seems: the caller checks that
 * by parsing.
 */
function looksLikeOps(buf: Buffer, start: number, end: number): boolean {
  if (end - start < 10 || buf[end - 1] !== 0x7d || buf[end - 2] !== 0x5d) return false;
  for (let k = 0; k < OPS_OPEN.length; k++) if (buf[start + k] !== OPS_OPEN[k]) return false;
  return true;
}

function allZero(buf: Uint8Array, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

function corruptJournal(jpath: string, offset: number, what: string): AtomicJsonError {
  return new AtomicJsonError(
    'CORRUPT',
    jpath,
    `The journal ${jpath} is damaged at byte ${offset} (${what}), before its last record: acknowledged changes after it ` +
      `cannot be trusted, so nothing was replayed or written. Restore the journal and its snapshot from a backup, ` +
      `or move the journal aside to fall back to the snapshot alone (losing the changes it held).`,
  );
}

/**
 * Whether a whole, checksummed record (a JSON object payload: `{` first) starts somewhere at or
 * after `from`. Only called on the failure path.
 */
function frameAfter(buf: Buffer, from: number): boolean {
  for (let p = from; p + 9 <= buf.length; p++) {
    const len = buf.readUInt32LE(p);
    if (len === 0 || buf[p + 8] !== 0x7b || p + 8 + len > buf.length) continue;
    if ((crc32(buf.subarray(p + 8, p + 8 + len)) >>> 0) === buf.readUInt32LE(p + 4)) return true;
  }
  return false;
}

/**
 * Parse records from `buf` (which starts at file offset `base`). A bad record followed only by
 * zeros or nothing is a torn tail; a bad record followed by data is `CORRUPT`. `buf` is used as
 * scratch space: the records' frame headers are overwritten (the payloads and any torn tail are
 * left as they were).
 */
function parseRecords(
  buf: Buffer,
  base: number,
  jpath: string,
): { values: RecordValue[]; validEnd: number; torn?: { offset: number; bytes: number; reason: string } } {
  // Pass 1: framing and checksums, over the one buffer (no object or slice per record).
  // Pass 2: every payload parsed in one go, as one JSON array; an ops record enters it as its ops
  // array alone (no wrapper object to build and drop). If that array does not come out as one
  // value of the expected kind per record, each record is parsed alone to find the bad one.
  const starts: number[] = [];
  const ends: number[] = [];
  let off = 0;
  let torn: { offset: number; bytes: number; reason: string } | undefined;
  const fail = (reason: string, recordEnd: number, at: number) => {
    if (recordEnd >= buf.length || allZero(buf, Math.min(recordEnd, buf.length))) {
      torn = { offset: base + at, bytes: buf.length - at, reason };
      return;
    }
    throw corruptJournal(jpath, base + at, reason);
  };
  while (off < buf.length) {
    if (buf.length - off < 8) {
      fail('incomplete record header', buf.length, off);
      break;
    }
    const len = buf.readUInt32LE(off);
    const sum = buf.readUInt32LE(off + 4);
    const end = off + 8 + len;
    if (end > buf.length) {
      // A torn append leaves a prefix of one record, so nothing checksummed can follow its
      // header. A record found after it means this length field is damaged: CORRUPT, never a
      // tail to drop (that would drop every acknowledged record after it).
      if (frameAfter(buf, off + 8)) throw corruptJournal(jpath, base + off, 'record length runs past the end of the file, with records after it');
      fail('record longer than the file', buf.length, off);
      break;
    }
    if (crc32Range(buf, off + 8, end) !== sum) {
      fail('checksum mismatch', end, off);
      break;
    }
    starts.push(off + 8);
    ends.push(end);
    off = end;
  }
  const validEnd = base + off;
  const n = starts.length;
  if (n === 0) return torn === undefined ? { values: [], validEnd } : { values: [], validEnd, torn };
  // Pass 2 works in place, copying nothing: the records become the text `[v1,v2,...]`. Each
  // 8-byte frame header turns into its separator (`[` first, then `,`) and spaces; an ops record
  // `{"ops":[…]}` turns its `{"ops":` and its last `}` into spaces, leaving its ops array (the
  // last record's `}` becomes the closing `]`; after any other last record, a `]` is appended).
  const opsShaped = new Uint8Array(n);
  const prefix = OPS_OPEN.length - 1; // `{"ops":`, without the `[`
  for (let i = 0; i < n; i++) {
    const s = starts[i]!;
    const e = ends[i]!;
    buf[s - 8] = i === 0 ? 0x5b : 0x2c;
    for (let k = s - 7; k < s; k++) buf[k] = 0x20;
    if (looksLikeOps(buf, s, e)) {
      opsShaped[i] = 1;
      for (let k = s; k < s + prefix; k++) buf[k] = 0x20;
      buf[e - 1] = 0x20;
    }
  }
  const closed = opsShaped[n - 1] === 1;
  if (closed) buf[ends[n - 1]! - 1] = 0x5d;
  let values: RecordValue[] | undefined;
  try {
    const text = decodeText(buf.subarray(0, off), jpath);
    const parsed = parseJson(closed ? text : `${text}]`, jpath);
    if (Array.isArray(parsed) && parsed.length === n) {
      let ok = true;
      for (let i = 0; i < n && ok; i++) ok = opsShaped[i] === 1 ? Array.isArray(parsed[i]) : isRecordObject(parsed[i]);
      if (ok) values = parsed as RecordValue[];
    }
  } catch {
    values = undefined;
  }
  if (values !== undefined) return torn === undefined ? { values, validEnd } : { values, validEnd, torn };
  // Some record is not what it seemed: put the payloads back and parse them one by one.
  for (let i = 0; i < n; i++) {
    if (opsShaped[i] !== 1) continue;
    OPS_OPEN.copy(buf, starts[i]!, 0, prefix);
    buf[ends[i]! - 1] = 0x7d;
  }
  values = [];
  for (let i = 0; i < n; i++) {
    let value: unknown;
    try {
      value = parseJson(buf.subarray(starts[i]!, ends[i]!), jpath);
    } catch {
      value = undefined;
    }
    if (!isRecordObject(value)) {
      // A checksummed record that is not a record object: a writer's bug, never a torn write.
      const recStart = starts[i]! - 8;
      if (i === n - 1 && torn === undefined && (ends[i]! >= buf.length || allZero(buf, ends[i]!))) {
        return { values, validEnd: base + recStart, torn: { offset: base + recStart, bytes: buf.length - recStart, reason: 'payload is not a record object' } };
      }
      throw corruptJournal(jpath, base + recStart, 'payload is not a record object');
    }
    values.push(value);
  }
  return torn === undefined ? { values, validEnd } : { values, validEnd, torn };
}

/** `O_NOFOLLOW` where the platform has it: a journal is never opened through a symbolic link. */
const O_NOFOLLOW = process.platform === 'win32' ? 0 : (constants.O_NOFOLLOW ?? 0);

/** The journal path holds a symbolic link or another non-regular file: never followed, replaced or removed. */
function notAJournal(jpath: string, what: string): AtomicJsonError {
  return new AtomicJsonError(
    'IO',
    jpath,
    `The journal ${jpath} is ${what}, not a regular file. A journal is never followed, replaced or removed, ` +
      `so nothing was read or written. If it is a leftover, remove it; if it leads to the real journal ` +
      `(e.g. on another volume), move that file to ${jpath} in its place; then retry.`,
  );
}

/** lstat of the journal; `undefined` when there is none; a symbolic link or non-regular file is refused. */
async function statOrUndefined(p: string) {
  let st;
  try {
    st = await fsp.lstat(p, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(p, 'stat', err);
  }
  if (!st.isFile()) throw notAJournal(p, st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a directory' : 'a special file');
  return st;
}

async function readRange(p: string, start: number, end: number): Promise<Buffer> {
  const h = await fsp.open(p, constants.O_RDONLY | O_NOFOLLOW);
  try {
    const buf = Buffer.allocUnsafe(end - start);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await h.read(buf, got, buf.length - got, start + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  } finally {
    await h.close();
  }
}

async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  try {
    const h = await fsp.open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // Directory fsync unsupported here: the rename/unlink is still atomic.
  }
}

interface Deferred {
  ops: unknown[];
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((a, b) => {
    resolve = a;
    reject = b;
  });
  promise.catch(() => {});
  return { ops: [], promise, resolve, reject };
}

/**
 * A JSON document kept as a snapshot file plus an append-only op journal. See the README
 * section "Journaled documents" for the guarantees.
 *
 * @example
 * ```ts
 * const doc = await JournaledJson.open<{ n: number }, number>('/data/counter.json', {
 *   apply: (d, ops) => ({ n: (d?.n ?? 0) + ops.reduce((a, b) => a + b, 0) }),
 * });
 * await doc.append([1]);     // one record + one fsync
 * doc.current();             // { n: ... }
 * await doc.close();         // folds the journal into counter.json and removes the journal
 * ```
 */
export class JournaledJson<T, Op> {
  /** The snapshot file (absolute). */
  readonly path: string;
  /** The journal file (`<path>.journal`). */
  readonly journalPath: string;
  readonly #opts: JournalOptions<T, Op>;
  readonly #fsync: boolean;
  /** Parsed snapshot with some ops folded in; together with #unfolded it is the document. */
  #base: T | undefined;
  #unfolded: Op[] = [];
  /** #base holds folded ops the snapshot file does not. */
  #dirty = false;
  /** Journal records (of ops) the on-disk journal holds beyond the snapshot. */
  #records = 0;
  /** sha-256 of the snapshot's bytes; `null`: no snapshot; `undefined`: not computed yet (see #ensureHash). */
  #snapHash: string | null | undefined = null;
  #snapSize = 0;
  #snapMark: FileMark | undefined;
  #jIno: bigint | undefined;
  #jEnd = 0;
  /** The in-memory state can no longer be trusted (a fold failed half-way): reload under the lock. */
  #stale = false;
  #chain: Promise<unknown> = Promise.resolve();
  #pending: Deferred | undefined;
  #closed = false;
  /** An append loop (a lease) is scheduled or running. */
  #draining = false;
  /** Operations waiting in #chain behind the running one (a lease ends early for them). */
  #queued = 0;
  /** A lease ran to its bound: do not take the lock again before this time (ms since epoch). */
  #gapUntil = 0;
  #compactions = 0;
  #appends = 0;
  #appendedBytes = 0;
  /** The journal kept open for appends (O_APPEND), and the inode it was opened on. */
  #fd: number | undefined;
  #fdIno: bigint | undefined;
  #compactedBytes = 0;

  private constructor(path: string, opts: JournalOptions<T, Op>) {
    this.path = path;
    this.journalPath = journalPathOf(path);
    this.#opts = opts;
    this.#fsync = opts.fsync ?? true;
  }

  /**
   * Open a journaled document: read the snapshot and replay the journal. Without a journal this
   * takes no lock and writes nothing; with one, it reads both under the lock (and drops a torn
   * tail). Compaction is not done here: call {@link JournaledJson.compact} when you want it.
   *
   * @throws {AtomicJsonError} `PARSE` (snapshot not JSON), `CORRUPT` (journal damaged before its
   *   end), `LOCKED`, `IO` (also when `<file>.journal` is a symbolic link or not a regular file:
   *   never followed).
   */
  static async open<T, Op>(path: string, opts: JournalOptions<T, Op>): Promise<JournaledJson<T, Op>> {
    const j = new JournaledJson<T, Op>(absolute(path), opts);
    if ((await statOrUndefined(j.journalPath)) === undefined) {
      await j.#readSnapshot(false);
      // A journal created meanwhile is found (from offset 0) by the first append or sync().
    } else {
      await withLock(j.path, () => j.#loadAll(false), opts.lock);
    }
    return j;
  }

  /** Number of journal records (batches) not yet folded into the snapshot. */
  get journalRecords(): number {
    return this.#records;
  }

  /** Size of the journal in bytes (0 when there is none). */
  get journalBytes(): number {
    return this.#jEnd;
  }

  /** Number of compactions this instance ran. */
  get compactions(): number {
    return this.#compactions;
  }

  /** Number of appended records (each one write, through `O_DSYNC` unless `fsync: false`) this instance made. */
  get appends(): number {
    return this.#appends;
  }

  /** Bytes of op records this instance appended (headers and markers not counted). */
  get appendedBytes(): number {
    return this.#appendedBytes;
  }

  /** Bytes of snapshots this instance wrote by compaction. */
  get compactedBytes(): number {
    return this.#compactedBytes;
  }

  /**
   * The current document (snapshot + every known op folded). Folding is O(document) when ops
   * are pending; afterwards it is cached.
   * @throws whatever `apply` throws (then the state is re-read from disk at the next operation).
   */
  current(): T | undefined {
    this.#fold();
    return this.#base;
  }

  /**
   * The document in two parts, without folding: `base` (the snapshot as parsed, with any ops
   * folded earlier) and the `ops` not folded into it yet; {@link JournaledJson.current} is
   * `apply(base, ops)`. For a caller that can apply the ops to its own view more cheaply than
   * folding them into the document (e.g. after opening with a long journal). Do not mutate them.
   */
  parts(): { base: T | undefined; ops: readonly Op[] } {
    return { base: this.#base, ops: this.#unfolded };
  }

  #fold(): void {
    if (this.#unfolded.length === 0) return;
    const ops = this.#unfolded;
    this.#unfolded = [];
    try {
      this.#base = this.#opts.apply(this.#base, ops);
      this.#dirty = true;
    } catch (err) {
      this.#stale = true;
      this.#unfolded = ops;
      throw err;
    }
  }

  #serial<R>(fn: () => Promise<R>): Promise<R> {
    this.#queued++;
    const start = () => {
      this.#queued--;
      return fn();
    };
    const run = this.#chain.then(start, start);
    this.#chain = run.catch(() => {});
    return run;
  }

  /**
   * Append `ops` as one durable record (one write under the lock, fsynced). Appends issued
   * while another is in flight share the next record (group commit). Resolves once durable.
   * Other processes' records found first are reported through `onRemote`. Compacts when the
   * journal passes the threshold.
   *
   * The lock is released after the promise resolves, not before: it is kept (a *lease*) while
   * more appends of this process are ready by the next macrotask, for at most {@link LEASE_MS},
   * then left free for {@link LEASE_GAP_MS} before this process takes it again.
   * @throws {AtomicJsonError} `LOCKED`, `LOCK_COMPROMISED`, `IO`, `CORRUPT`, `NOT_SERIALIZABLE`.
   */
  append(ops: readonly Op[]): Promise<void> {
    if (this.#closed) return Promise.reject(new AtomicJsonError('INVALID', this.path, `The journaled document ${this.path} is closed; open it again to change it.`));
    let p = this.#pending;
    if (p === undefined) {
      p = this.#pending = deferred();
      if (!this.#draining) this.#startDrain();
    }
    pushAll(p.ops, ops);
    return p.promise;
  }

  #startDrain(): void {
    this.#draining = true;
    void this.#serial(() => this.#drain());
  }

  /**
   * One lease: take the lock, append the pending batch (catching up with other writers first),
   * acknowledge it, compact past the threshold, and go on with the batches that are ready by the
   * next macrotask, until none is, the lease's time is up, or another operation waits.
   */
  async #drain(): Promise<void> {
    let lease: Promise<void> | undefined;
    try {
      const gap = this.#gapUntil - Date.now();
      if (gap > 0) await new Promise((r) => setTimeout(r, gap));
      // Inside the caller's own withLock of this file: that lock is the caller's to release, so no lease.
      const nested = holdsLock(this.path);
      await withLock(this.path, () => (lease = this.#lease(nested)), this.#opts.lock);
    } catch (err) {
      // No lock (LOCKED, ABORTED, IO) or it was lost: the batch that did not get written fails.
      const batch = this.#pending;
      this.#pending = undefined;
      batch?.reject(err);
    } finally {
      // A lost lock rejects withLock at once: let the loop see it and stop before anything else runs.
      await lease?.catch(() => {});
      this.#draining = false;
      if (this.#pending !== undefined) this.#startDrain();
    }
  }

  async #lease(single: boolean): Promise<void> {
    const start = Date.now();
    let first = true;
    for (;;) {
      const batch = this.#pending;
      if (batch === undefined) return;
      this.#pending = undefined;
      try {
        assertLockStillHeld(this.path);
        // Within a lease no other locking writer ran since our last append: nothing to catch up.
        if (first || this.#stale) await this.#catchUp();
        first = false;
        assertLockStillHeld(this.path);
        await this.#appendLocked(batch.ops as Op[]);
      } catch (err) {
        batch.reject(err);
        return; // the lease ends; the next batch starts afresh
      }
      batch.resolve(); // durable now: acknowledged before the lock's release
      if (this.#overThreshold()) {
        try {
          await this.#catchUp();
          if (this.#overThreshold()) await this.#compactLocked();
        } catch {
          // The appends are durable; the compaction is retried at the next append past the threshold.
        }
      }
      if (single) return;
      if (this.#pending === undefined) await nextMacrotask();
      if (this.#pending === undefined || this.#queued > 0 || othersQueued(this.path)) return;
      if (Date.now() - start >= LEASE_MS) {
        this.#gapUntil = Date.now() + LEASE_GAP_MS;
        return;
      }
    }
  }

  /**
   * Bring this instance up to date with other writers (under the lock), reporting their changes
   * through `onRemote`. Cheap when nothing changed (two `stat`s, no lock when there is no journal
   * and the snapshot did not change).
   */
  sync(): Promise<void> {
    return this.#serial(async () => {
      if (await this.#nothingOnDiskChanged()) return;
      await withLock(this.path, () => this.#catchUp(), this.#opts.lock);
    });
  }

  /** No journal (ours or another's) and the snapshot is the one we know: nothing to catch up. */
  async #nothingOnDiskChanged(): Promise<boolean> {
    if (this.#stale || this.#jIno !== undefined || (await statOrUndefined(this.journalPath)) !== undefined) return false;
    const m = await fileMark(this.path);
    return (m === undefined && this.#snapMark === undefined && this.#snapHash === null) || (m !== undefined && this.#snapMark !== undefined && sameFileMark(m, this.#snapMark));
  }

  /**
   * Fold the journal into the snapshot (atomic write under the lock) and remove the journal.
   * Without a journal and pending ops, nothing is written.
   */
  compact(): Promise<void> {
    return this.#serial(async () => {
      if (this.#unfolded.length === 0 && !this.#dirty && (await this.#nothingOnDiskChanged())) return;
      await withLock(this.path, async () => {
      await this.#catchUp();
      await this.#compactLocked();
    }, this.#opts.lock);
    });
  }

  /** Compact, then refuse further appends. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return this.#serial(async () => {});
    await this.compact();
    this.#closed = true;
    await this.#serial(() => this.#closeFd());
  }

  /**
   * Run `fn` under the document's lock once this instance is up to date: nothing is appended or
   * compacted by any process while it runs, so the snapshot and the journal it reads belong to
   * one instant (for backups: copy `path` and `journalPath` here, or compact first).
   */
  withConsistentFiles<R>(fn: (files: { snapshot: string; journal: string }) => R | Promise<R>): Promise<R> {
    return this.#serial(() =>
      withLock(this.path, async () => {
        await this.#catchUp();
        return fn({ snapshot: this.path, journal: this.journalPath });
      }, this.#opts.lock),
    );
  }

  // ------------------------------------------------------------------ internals (under the lock)

  /**
   * Read and parse the snapshot. Its hash is only needed next to a journal: computed here (on
   * the thread pool, while the snapshot parses) when `hash`, else on first need by #ensureHash.
   */
  async #readSnapshot(hash: boolean, header?: JournalHeader): Promise<Buffer | undefined> {
    const mark = await fileMark(this.path);
    const bytes = await readBytes(this.path);
    // A journal header that recorded this very file's mark gives its hash: nothing to compute.
    const named = header?.mark !== undefined && header.mark === markText(mark) ? header.base : undefined;
    const hashing = hash && bytes !== undefined && named === undefined ? sha256OffThread(bytes) : undefined;
    hashing?.catch(() => {});
    this.#base = bytes === undefined ? undefined : (parseJson(bytes, this.path) as T);
    this.#snapSize = bytes?.length ?? 0;
    const after = await fileMark(this.path);
    // A mark that moved during the read: force a re-check at the next locked operation.
    this.#snapMark = mark !== undefined && after !== undefined && sameFileMark(mark, after) ? after : undefined;
    if (bytes === undefined) this.#snapHash = null;
    else if (!hash) this.#snapHash = undefined;
    else if (hashing !== undefined) this.#snapHash = await hashing;
    else this.#snapHash = this.#snapMark !== undefined ? named : sha256(bytes); // named, unless the file moved meanwhile
    if (bytes !== undefined && this.#snapMark === undefined) this.#stale = true;
    this.#unfolded = [];
    this.#dirty = false;
    this.#records = 0;
    this.#jIno = undefined;
    this.#jEnd = 0;
    return bytes;
  }

  /**
   * Read snapshot + journal (under the lock) and resolve how they relate:
   * - header base = snapshot hash: replay every ops record;
   * - a compaction marker whose hash is the snapshot's: the records before it are already in the
   *   snapshot (a compaction was killed before removing the journal): replay only those after it;
   * - otherwise the snapshot was rewritten by a writer ignorant of the journal: apply every ops
   *   record onto it (nothing of either side is lost), then compact to rebase.
   */
  async #loadAll(report: boolean): Promise<void> {
    this.#stale = false;
    // The journal first (only lock holders change it): its header may name the snapshot by its
    // mark, which spares hashing the snapshot.
    const jst = await statOrUndefined(this.journalPath);
    let bytes: Buffer | undefined;
    try {
      bytes = jst === undefined ? undefined : await readRange(this.journalPath, 0, Number(jst.size));
    } catch (err) {
      throw ioError(this.journalPath, 'read', err);
    }
    await this.#readSnapshot(true, bytes === undefined ? undefined : headerOf(bytes, this.journalPath));
    if (jst === undefined || bytes === undefined) {
      if (report) this.#opts.onRemote?.({ kind: 'reset', doc: this.current() });
      return;
    }
    const parsed = parseRecords(bytes, 0, this.journalPath);
    if (parsed.torn) {
      this.#opts.onEvent?.({ type: 'tail-dropped', path: this.journalPath, ...parsed.torn });
    }
    const values = parsed.values;
    const header = values[0];
    if (header === undefined || Array.isArray(header) || header.journal !== 1) {
      if (header !== undefined) throw corruptJournal(this.journalPath, 0, 'no journal header');
      // Only a torn header: the journal never acknowledged anything.
      await this.#removeJournal();
      if (report) this.#opts.onRemote?.({ kind: 'reset', doc: this.current() });
      return;
    }
    if (parsed.torn) await this.#truncate(parsed.validEnd);
    let marker = 0; // index of the compaction marker naming the snapshot (or its ancestor), if any
    let foreign = false;
    if (header.base !== this.#snapHash) {
      for (let i = values.length - 1; i >= 1 && marker === 0; i--) {
        const v = values[i]!;
        if (!Array.isArray(v) && v.compact === this.#snapHash && this.#snapHash !== null) marker = i;
      }
      if (marker === 0) {
        foreign = true;
        // A foreign rewrite of the snapshot a killed compaction put in place: that compaction's
        // records are in what the foreign writer read. Otherwise (or when it cannot be told) every
        // record is applied onto the foreign snapshot: nothing acknowledged is lost.
        if (this.#snapHash !== null) marker = await this.#compactedThenRewritten(values);
      }
    }
    const { ops, records } = collectOps<Op>(values, marker + 1);
    this.#unfolded = ops;
    this.#records = records;
    this.#jIno = jst.ino;
    this.#jEnd = parsed.validEnd;
    if (marker > 0) this.#opts.onEvent?.({ type: 'compaction-resumed', path: this.path });
    if (marker > 0 && !foreign) {
      if (records === 0) {
        await this.#removeJournal();
      } else {
        // Records after a marker that did not stick cannot happen (the journal is removed under the
        // same lock); fold them anyway, onto the snapshot they were meant for.
        await this.#compactLocked();
      }
    } else if (foreign) {
      this.#opts.onEvent?.({ type: 'foreign-snapshot', path: this.path, records });
      await this.#compactLocked();
    }
    if (report) this.#opts.onRemote?.({ kind: 'reset', doc: this.current() });
  }

  /**
   * When the snapshot matches neither the journal's base nor a marker: the index of the journal's
   * last compaction marker if that compaction is proven to have renamed its snapshot into place
   * (so the snapshot on disk was written, by a foreign writer, after that: in place over the
   * compacted file, or read from it), else 0. Proof: no ops record follows the marker (a record
   * appended after it means the snapshot was still the old one then), and either the marker's
   * `compacted` record follows it (written once the rename was durable) or the snapshot is still
   * the very file the marker names (same device, inode and birth time: rewritten in place).
   */
  async #compactedThenRewritten(values: readonly RecordValue[]): Promise<number> {
    let done: unknown;
    for (let i = values.length - 1; i >= 1; i--) {
      const v = values[i]!;
      if (opsOf(v) !== undefined) return 0;
      const rec = v as Record<string, unknown>;
      if (typeof rec.compacted === 'string') {
        done ??= rec.compacted;
        continue;
      }
      if (typeof rec.compact !== 'string') continue;
      if (done === rec.compact) return i;
      if (typeof rec.file === 'string' && rec.file === (await identityOf(this.path))) return i;
      return 0;
    }
    return 0;
  }

  /**
   * Compute the snapshot's hash if it is not known yet (opened without a journal: the hash is
   * only needed once a journal names the snapshot). Under the lock. False when the snapshot is
   * no longer the one this instance read (the caller then re-reads it with #loadAll).
   */
  async #ensureHash(): Promise<boolean> {
    if (this.#snapHash !== undefined) return true;
    const known = this.#snapMark;
    const before = await fileMark(this.path);
    const bytes = await readBytes(this.path);
    const after = await fileMark(this.path);
    if (bytes === undefined || known === undefined || before === undefined || after === undefined) return false;
    if (!sameFileMark(before, known) || !sameFileMark(after, known)) return false;
    this.#snapHash = sha256(bytes);
    return true;
  }

  async #truncate(length: number): Promise<void> {
    try {
      await fsp.truncate(this.journalPath, length);
    } catch (err) {
      throw ioError(this.journalPath, 'truncate the torn tail of', err);
    }
  }

  async #removeJournal(): Promise<void> {
    await this.#closeFd();
    try {
      await fsl().unlink(this.journalPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(this.journalPath, 'remove', err);
    }
    if (this.#fsync) await fsyncDir(dirname(this.journalPath));
    this.#jIno = undefined;
    this.#jEnd = 0;
    this.#records = 0;
  }

  /** Find other writers' changes since this instance last looked (under the lock). */
  async #catchUp(): Promise<void> {
    if (this.#stale) return this.#loadAll(true);
    const [mark, jst] = await Promise.all([fileMark(this.path), statOrUndefined(this.journalPath)]);
    const sameSnap = mark === undefined ? this.#snapMark === undefined && this.#snapHash === null : this.#snapMark !== undefined && sameFileMark(mark, this.#snapMark);
    if (!sameSnap) return this.#loadAll(true);
    if (jst === undefined) {
      if (this.#jIno !== undefined) return this.#loadAll(true);
      return;
    }
    let from = this.#jEnd;
    if (this.#jIno !== jst.ino) {
      if (this.#jIno !== undefined) return this.#loadAll(true);
      from = 0; // a journal another process started on our snapshot
    }
    const size = Number(jst.size);
    if (size < from) return this.#loadAll(true);
    if (size === from) return;
    let bytes: Buffer;
    try {
      bytes = await readRange(this.journalPath, from, size);
    } catch (err) {
      throw ioError(this.journalPath, 'read', err);
    }
    const parsed = parseRecords(bytes, from, this.journalPath);
    if (parsed.torn) {
      this.#opts.onEvent?.({ type: 'tail-dropped', path: this.journalPath, ...parsed.torn });
      await this.#truncate(parsed.validEnd);
    }
    const values = parsed.values;
    if (from === 0) {
      const header = values[0];
      if (header === undefined) {
        await this.#removeJournal();
        return;
      }
      // Started by another process on the snapshot we know (its header recorded that file's mark):
      // its base is that snapshot's hash, no need to compute it.
      if (this.#snapHash === undefined && !Array.isArray(header) && typeof header.base === 'string' && header.mark !== undefined && header.mark === markText(this.#snapMark)) {
        this.#snapHash = header.base;
      }
      if (!(await this.#ensureHash())) return this.#loadAll(true);
      if (Array.isArray(header) || header.journal !== 1 || header.base !== this.#snapHash) return this.#loadAll(true);
    }
    // A compaction marker here: another process is compacting and died before replacing the
    // snapshot (else the snapshot's mark moved); the records around it stay valid.
    const { ops, records } = collectOps<Op>(values, from === 0 ? 1 : 0);
    this.#records += records;
    this.#jIno = jst.ino;
    this.#jEnd = parsed.validEnd;
    if (ops.length > 0) {
      pushAll(this.#unfolded, ops);
      this.#opts.onRemote?.({ kind: 'ops', ops });
    }
  }

  async #closeFd(): Promise<void> {
    const fd = this.#fd;
    this.#fd = undefined;
    this.#fdIno = undefined;
    if (fd !== undefined) await fsl().close(fd).catch(() => {});
  }

  async #writeToJournal(records: Buffer[], create: boolean): Promise<void> {
    const fs = fsl();
    const data = records.length === 1 ? records[0]! : Buffer.concat(records);
    // With O_DSYNC each write returns once durable (data and size: what fdatasync makes durable);
    // one system call instead of a write and an fsync. Elsewhere: write, then fsync.
    const dsync = this.#fsync ? O_DSYNC : 0;
    let fd: number | undefined;
    if (!create && this.#fd !== undefined && this.#fdIno === this.#jIno) fd = this.#fd;
    else await this.#closeFd();
    try {
      if (fd === undefined) try {
        fd = await fs.open(this.journalPath, (create ? constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_APPEND : constants.O_WRONLY | constants.O_APPEND) | O_NOFOLLOW | dsync, 0o644);
      } catch (err) {
        if (create && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          await fs.mkdir(dirname(this.journalPath));
          fd = await fs.open(this.journalPath, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_APPEND | O_NOFOLLOW | dsync, 0o644);
        } else {
          // EEXIST (a dangling link where a new journal goes) or ELOOP (a link, never followed).
          const code = (err as NodeJS.ErrnoException).code;
          if ((code === 'EEXIST' || code === 'ELOOP') && (await fsp.lstat(this.journalPath).catch(() => undefined))?.isSymbolicLink()) {
            throw notAJournal(this.journalPath, 'a symbolic link');
          }
          throw err;
        }
      }
      let off = 0;
      while (off < data.length) {
        const n = await fs.write(fd, data, off, data.length - off);
        if (n <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
        off += n;
      }
      if (this.#fsync && dsync === 0) await fs.fsync(fd);
    } catch (err) {
      // Cut off what this failed append may have left, so that no later record follows it.
      if (fd !== undefined) {
        if (fd === this.#fd) this.#fd = undefined;
        await fs.close(fd).catch(() => {});
        fd = undefined;
        if (create) await fs.unlink(this.journalPath).catch(() => {});
        else await fsp.truncate(this.journalPath, this.#jEnd).catch(() => {});
      }
      if (AtomicJsonError.is(err)) throw err;
      throw ioError(this.journalPath, 'append to', err);
    }
    if (create) {
      if (this.#fsync) await fsyncDir(dirname(this.journalPath));
      const st = await statOrUndefined(this.journalPath);
      this.#jIno = st?.ino;
    }
    if (fd !== this.#fd) {
      this.#fd = fd;
      this.#fdIno = this.#jIno;
    }
    this.#jEnd += data.length;
  }

  async #appendLocked(ops: Op[]): Promise<void> {
    if (ops.length === 0) return;
    // A new journal names the snapshot it extends (its hash); if the snapshot moved meanwhile, re-read it first.
    if (this.#jIno === undefined && !(await this.#ensureHash())) await this.#loadAll(true);
    const rec = encodeRecord({ ops }, this.journalPath);
    if (this.#jIno === undefined) {
      if (this.#snapHash === undefined) throw new Error('internal: the snapshot hash is unknown when starting a journal');
      const mark = this.#snapHash === null ? undefined : markText(this.#snapMark);
      const header = encodeRecord({ journal: 1, base: this.#snapHash, ...(mark === undefined ? {} : { mark }) }, this.journalPath);
      this.#jEnd = 0;
      await this.#writeToJournal([header, rec], true);
    } else {
      await this.#writeToJournal([rec], false);
    }
    pushAll(this.#unfolded, ops);
    this.#records++;
    this.#appends++;
    this.#appendedBytes += rec.length;
  }

  #overThreshold(): boolean {
    const ratio = this.#opts.compactRatio ?? 0.5;
    const min = this.#opts.compactMinBytes ?? 262_144;
    return this.#jIno !== undefined && this.#jEnd > min && this.#jEnd > ratio * this.#snapSize;
  }

  /**
   * The compaction protocol (under the lock): fold; write the new snapshot to a temp file
   * (fsynced); append a marker naming its hash and the temp file's identity (fsynced); rename it
   * into place (directory fsynced); append a `compacted` record (fsynced); remove the journal. A
   * kill before the rename leaves the old snapshot + the whole journal; after it, a journal whose
   * marker matches the snapshot (the next open discards it), or, after a foreign rewrite of that
   * snapshot, whose `compacted` record or marker identity proves it (see #compactedThenRewritten).
   */
  async #compactLocked(): Promise<void> {
    if (this.#jIno === undefined && this.#unfolded.length === 0 && !this.#dirty) return;
    const records = this.#records;
    const journalBytes = this.#jEnd;
    const journal = this.#jIno !== undefined;
    try {
      if (this.#unfolded.length > 0 || this.#dirty) {
        this.#fold();
        const text = serialize(this.#base, this.path, this.#opts.spaces ?? 2);
        const bytes = Buffer.from(text, 'utf8');
        const hash = sha256(bytes);
        const mark = journal
          ? async (tmp: string) => {
              const file = await identityOf(tmp);
              await this.#writeToJournal([encodeRecord(file === undefined ? { compact: hash } : { compact: hash, file }, this.journalPath)], false);
            }
          : undefined;
        await directWrite(this.path, text, resolveWriteOptions({ fsync: this.#fsync, spaces: this.#opts.spaces ?? 2 }), mark);
        this.#snapHash = hash;
        this.#snapSize = bytes.length;
        this.#compactedBytes += bytes.length;
        this.#snapMark = await fileMark(this.path);
        this.#dirty = false;
        if (journal) await this.#writeToJournal([encodeRecord({ compacted: hash }, this.journalPath)], false);
      }
      await this.#removeJournal();
    } catch (err) {
      // Whether the snapshot was replaced is not known here: re-read both files under the lock
      // before anything else is appended (never an ops record after a marker whose rename happened).
      if (journal) this.#stale = true;
      throw err;
    }
    this.#compactions++;
    this.#opts.onEvent?.({ type: 'compacted', path: this.path, records, journalBytes });
  }
}
