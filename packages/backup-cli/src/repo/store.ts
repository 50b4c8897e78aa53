import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { openCheckedFile } from '../copy.js';
import { runPool } from '../fsutil.js';
import { buffers, getBuffer, getRangeBuffer, type Backend } from './backend.js';
import type { IndexCache } from './cache.js';
import { macName, open as openSealed, openStream, seal, sealStream, type RepoKeys } from './crypto.js';
import {
  DamagedError,
  decodeObject,
  decodeStream,
  encodeObject,
  encodeStream,
  hashOfKey,
  idOfPackKey,
  INDEX_FORMAT,
  INDEX_PREFIX,
  indexKey,
  isIndexKey,
  objectKey,
  OBJECTS_PREFIX,
  PACK_MAGIC,
  packKey,
  PACKS_PREFIX,
  sha256,
  tuning,
} from './format.js';

/**
 * The storage layer of a repository: how contents are named, encoded, packed, indexed and read
 * back. A content ("blob") is named by `nameOf(sha256)` (the sha256 itself, or its HMAC in an
 * encrypted repository) and lives either loose (`objects/<2>/<name>`, one object) or in a pack
 * (`packs/<2>/<id>`) that an index (`index/<id>`) describes.
 */
export interface Repo {
  backend: Backend;
  url: string;
  /** The repository's format version (1: loose objects only; 2: packs and indexes too). */
  version: number;
  /** Whether small contents go into packs (version 2). */
  packing: boolean;
  tuning: ReturnType<typeof tuning>;
  /** The blob name (64 hex) of a content with this sha256. */
  nameOf(sha256hex: string): string;
  encode(plain: Buffer, aad: string): Promise<Buffer>;
  decode(stored: Buffer, aad: string): Promise<Buffer | undefined>;
  encodeStream(plain: AsyncIterable<Buffer>, aad: string): AsyncIterable<Buffer>;
  /** Throws {@link DamagedError} when the stored bytes are not a valid object. */
  decodeStream(stored: AsyncIterable<Buffer>, aad: string): AsyncIterable<Buffer>;
  /** The local cache of index objects (`undefined`: none). */
  cache?: IndexCache | undefined;
}

/** What an encrypted blob, loose object or index is bound to (AES-GCM additional data). */
export const blobAad = (name: string): string => `blob/${name}`;
export const looseAad = (name: string): string => objectKey(name);
export const INDEX_AAD = 'index';

type Env = Readonly<Record<string, string | undefined>>;

export function plainRepo(backend: Backend, version: number, env: Env, cache?: IndexCache): Repo {
  return {
    backend,
    cache,
    url: backend.url,
    version,
    packing: version >= 2,
    tuning: tuning(env),
    nameOf: (h) => h,
    encode: (p) => encodeObject(p),
    decode: (s) => decodeObject(s),
    encodeStream: (p) => encodeStream(p),
    decodeStream: (s) => decodeStream(s),
  };
}

/** Compression first (ciphertext does not compress), then AES-256-GCM bound to the name. */
export function encryptedRepo(backend: Backend, keys: RepoKeys, version: number, env: Env, cache?: IndexCache): Repo {
  return {
    ...plainRepo(backend, version, env, cache),
    nameOf: (h) => macName(keys, h),
    encode: async (p, aad) => seal(keys, await encodeObject(p), aad),
    decode: async (s, aad) => {
      const inner = openSealed(keys, s, aad);
      return inner === undefined ? undefined : decodeObject(inner);
    },
    encodeStream: (p, aad) => sealStream(keys, encodeStream(p), aad),
    decodeStream: (s, aad) => decodeStream(openStream(keys, s, aad)),
  };
}

// --- the catalog: where each blob is ------------------------------------------------------------

export interface BlobLoc {
  pack: string;
  offset: number;
  length: number;
  /** The index object that names this location. */
  index: string;
}
/** One pack as an index describes it: `[blob name, offset, stored length]` per blob. */
export interface IndexPack {
  id: string;
  size: number;
  blobs: [string, number, number][];
}
export interface Catalog {
  loose: Set<string>;
  packed: Map<string, BlobLoc>;
  /**
   * Further locations of blobs that more than one pack holds (two pushes at once, or a
   * `push --repair` of a damaged copy): readers try them in turn when a copy fails its sha256.
   */
  alternates: Map<string, BlobLoc[]>;
  /** Packs present in the store (listed). */
  packs: Set<string>;
  /** Every readable index object and the packs it describes. */
  indexes: Map<string, IndexPack[]>;
  /** Index objects that could not be read (damaged): what they describe is unknown. */
  damagedIndexes: string[];
}

function parseIndex(plain: Buffer | undefined): IndexPack[] | undefined {
  try {
    if (plain === undefined) return undefined;
    const doc = JSON.parse(plain.toString('utf8')) as { format?: unknown; packs?: unknown };
    if (doc.format !== INDEX_FORMAT || !Array.isArray(doc.packs)) return undefined;
    const hex = /^[0-9a-f]{64}$/;
    const packs = doc.packs as IndexPack[];
    for (const p of packs) {
      if (typeof p !== 'object' || p === null || typeof p.id !== 'string' || !hex.test(p.id) || !Number.isSafeInteger(p.size) || !Array.isArray(p.blobs)) return undefined;
      for (const b of p.blobs) {
        if (!Array.isArray(b) || typeof b[0] !== 'string' || !hex.test(b[0]) || !Number.isSafeInteger(b[1]) || !Number.isSafeInteger(b[2]) || b[1] < PACK_MAGIC.length || b[2] < 0 || b[1] + b[2] > p.size) return undefined;
      }
    }
    return packs;
  } catch {
    return undefined;
  }
}

/** The keys of a store's loose objects, packs and indexes (three listings, at once). */
export interface StoreListing {
  objects: string[];
  packs: string[];
  indexes: string[];
}

/** List loose objects, packs and indexes (needs no key: a push starts it before the config is read). */
export async function listStore(b: Backend): Promise<StoreListing> {
  const [objects, packs, indexes] = await Promise.all([b.list(OBJECTS_PREFIX), b.list(PACKS_PREFIX), b.list(INDEX_PREFIX)]);
  return { objects, packs, indexes };
}

/**
 * List loose objects and packs, and read every index (one request per index). Index objects are
 * never rewritten (named by their hash): those `previous` has read are not read again. `listed`:
 * a listing already under way (else the store is listed now).
 */
export async function loadCatalog(repo: Repo, concurrency: number, previous?: Catalog, listed?: Promise<StoreListing>): Promise<Catalog> {
  const b = repo.backend;
  const cat: Catalog = { loose: new Set(), packed: new Map(), alternates: new Map(), packs: new Set(), indexes: new Map(), damagedIndexes: [] };
  const { objects, packs, indexes } = await (listed ?? listStore(b));
  for (const k of objects) {
    const h = hashOfKey(k);
    if (h) cat.loose.add(h);
  }
  for (const k of packs) {
    const id = idOfPackKey(k);
    if (id) cat.packs.add(id);
  }
  const known = indexes.filter((k) => previous?.indexes.has(k));
  for (const key of known) addIndex(cat, key, previous!.indexes.get(key)!);
  // Indexes are sealed and named by the sha256 of their bytes: a copy in the local cache, checked
  // against its name, is as good as a GET (see cache.ts). Only listed indexes are looked up.
  const cache = repo.cache;
  await runPool(indexes.filter((k) => isIndexKey(k) && !previous?.indexes.has(k)), concurrency, async (key) => {
    const hash = key.slice(INDEX_PREFIX.length);
    let raw = cache?.get(hash);
    if (raw === undefined) {
      raw = await getBuffer(b, key);
      if (raw === undefined) return; // removed meanwhile (a prune merged it)
      if (cache && sha256(raw) === hash) cache.put(hash, raw); // hashed only to be cached
    }
    const packs = parseIndex(await repo.decode(raw, INDEX_AAD));
    if (!packs) {
      cat.damagedIndexes.push(key);
      return;
    }
    addIndex(cat, key, packs);
  });
  cache?.keepOnly(new Set(indexes.filter(isIndexKey).map((k) => k.slice(INDEX_PREFIX.length))));
  return cat;
}

function addIndex(cat: Catalog, key: string, packs: IndexPack[]): void {
  cat.indexes.set(key, packs);
  // A blob in several packs (two pushes at once, or a repair of a damaged or missing copy): the
  // location in a pack that is there wins; the others (in packs that are there) are alternates.
  for (const p of packs) {
    for (const [name, offset, length] of p.blobs) {
      const cur = cat.packed.get(name);
      const loc: BlobLoc = { pack: p.id, offset, length, index: key };
      if (!cur || !cat.packs.has(cur.pack)) cat.packed.set(name, loc);
      else if (cat.packs.has(p.id) && (cur.pack !== p.id || cur.offset !== offset)) {
        const alts = cat.alternates.get(name) ?? [];
        if (!alts.some((a) => a.pack === p.id && a.offset === offset)) cat.alternates.set(name, [...alts, loc]);
      }
    }
  }
}

/** Whether a blob is stored (loose, or in a pack that is there). */
export function hasBlob(cat: Catalog, name: string): boolean {
  if (cat.loose.has(name)) return true;
  const loc = cat.packed.get(name);
  return loc !== undefined && cat.packs.has(loc.pack);
}

/** At most this many HEAD requests make {@link stillStored} (more: it says `undefined`, list instead). */
const MAX_STILL_STORED_CHECKS = 12;

/**
 * Whether every blob of `names` is still where `cat` found it: its loose object, or its pack
 * and the index naming it, checked with one HEAD each (all at once). Cheaper than listing the
 * store again when few objects are involved: `undefined` when more than
 * {@link MAX_STILL_STORED_CHECKS} would be needed or when a blob is not in `cat`; `false` when
 * any is gone (the caller lists the store again: a merged index may name the pack now).
 */
export async function stillStored(repo: Repo, cat: Catalog, names: Iterable<string>, concurrency: number): Promise<boolean | undefined> {
  const keys = new Set<string>();
  for (const n of names) {
    if (cat.loose.has(n)) keys.add(objectKey(n));
    else {
      const loc = cat.packed.get(n);
      if (!loc || !cat.packs.has(loc.pack)) return undefined;
      keys.add(packKey(loc.pack));
      keys.add(loc.index);
    }
    if (keys.size > MAX_STILL_STORED_CHECKS) return undefined;
  }
  let all = true;
  await runPool([...keys], concurrency, async (k) => {
    if (!(await repo.backend.exists(k))) all = false;
  });
  return all;
}

/** Write one index describing `packs`; returns its key. */
export async function writeIndex(repo: Repo, packs: IndexPack[]): Promise<string> {
  const stored = await repo.encode(Buffer.from(JSON.stringify({ format: INDEX_FORMAT, format_version: 1, packs })), INDEX_AAD);
  const hash = sha256(stored);
  const key = indexKey(hash);
  await repo.backend.putIfAbsent(key, stored);
  repo.cache?.put(hash, stored);
  return key;
}

// --- writing ------------------------------------------------------------------------------------

/**
 * Collects small blobs into packs. A pack is uploaded once it reaches the target size, then an
 * index naming its blobs; only then do its blobs count as committed (`onCommitted`). At most
 * `maxInFlight` packs are uploading at once, so a push killed at any moment loses at most those.
 */
export class PackWriter {
  private blobs: Buffer[] = [];
  private entries: [string, number, number][] = [];
  private size = PACK_MAGIC.length;
  private readonly inflight = new Set<Promise<void>>();
  private failed: { err: unknown } | undefined;
  packs = 0;

  constructor(
    private readonly repo: Repo,
    private readonly cat: Catalog,
    private readonly onCommitted: (entries: [string, number, number][]) => void,
    private readonly maxInFlight = 3,
  ) {}

  async add(name: string, stored: Buffer): Promise<void> {
    if (this.failed) throw this.failed.err;
    this.entries.push([name, this.size, stored.length]);
    this.blobs.push(stored);
    this.size += stored.length;
    if (this.size >= this.repo.tuning.packTarget) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.entries.length === 0) return;
    const body = Buffer.concat([PACK_MAGIC, ...this.blobs]);
    const entries = this.entries;
    this.blobs = [];
    this.entries = [];
    this.size = PACK_MAGIC.length;
    while (this.inflight.size >= this.maxInFlight) await Promise.race(this.inflight);
    const p: Promise<void> = this.upload(body, entries)
      .catch((err: unknown) => {
        this.failed ??= { err };
      })
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  private async upload(body: Buffer, entries: [string, number, number][]): Promise<void> {
    const id = sha256(body);
    await this.repo.backend.putIfAbsent(packKey(id), body);
    const pack: IndexPack = { id, size: body.length, blobs: entries };
    const key = await writeIndex(this.repo, [pack]);
    this.cat.packs.add(id);
    addIndex(this.cat, key, [pack]);
    this.packs++;
    this.onCommitted(entries);
  }

  /** Upload the last, partial pack and wait for every upload. */
  async finish(): Promise<void> {
    await this.flush();
    while (this.inflight.size > 0) await Promise.race(this.inflight);
    if (this.failed) throw this.failed.err;
  }
}

/**
 * A local file that does not match its manifest entry, or cannot be read as a regular file
 * (`cause`: the error of opening it), thrown while it is being uploaded.
 */
export class LocalMismatchError extends Error {}

/**
 * The bytes of a local backup file, opened as copies are read ({@link openCheckedFile}: never
 * through a symlink, never blocking on a FIFO, a regular file of `size` bytes) and checked
 * against its size and sha256 as the last chunk goes by.
 */
export async function* checkedFile(path: string | Buffer, size: number, sha: string): AsyncGenerator<Buffer> {
  let fd: number;
  try {
    fd = openCheckedFile(path, size);
  } catch (cause) {
    throw new LocalMismatchError(`${String(path)} cannot be read as a regular file`, { cause });
  }
  const h = createHash('sha256');
  let n = 0;
  for await (const c of createReadStream('', { fd, highWaterMark: 1024 * 1024 })) {
    const chunk = c as Buffer;
    h.update(chunk);
    n += chunk.length;
    if (n > size) throw new LocalMismatchError('larger than its manifest entry');
    yield chunk;
  }
  if (n !== size || h.digest('hex') !== sha) throw new LocalMismatchError('does not match its manifest entry');
}

/** Count the bytes going by. */
export async function* counted(src: AsyncIterable<Buffer>, into: { bytes: number }): AsyncGenerator<Buffer> {
  for await (const c of src) {
    into.bytes += c.length;
    yield c;
  }
}

// --- reading ------------------------------------------------------------------------------------

export interface Wanted {
  name: string;
  sha256: string;
  size: number;
}
export interface BlobProblem {
  kind: 'missing' | 'modified';
  detail: string;
}

const GAP = 1024 * 1024;
const MAX_RANGE = 16 * 1024 * 1024;

/**
 * Read blobs and hand each one's plaintext to `sink` (a stream for large loose objects); every
 * blob is checked against its size and sha256 (a stream: when the sink has consumed it). Blobs
 * of a pack are read by ranged GETs, neighbours (gaps up to 1 MiB) in one request, so a restore
 * of a whole backup reads whole packs. A blob read whole that fails its check (or whose pack is
 * gone) is read from its next location when several packs hold it (see `Catalog.alternates`):
 * the sink only ever sees checked bytes. Returns the problems by blob name.
 */
export async function readBlobs(
  repo: Repo,
  cat: Catalog,
  wanted: Wanted[],
  opts: { concurrency: number; stopOnProblem?: boolean },
  sink: (w: Wanted, chunks: AsyncIterable<Buffer> | Iterable<Buffer>) => Promise<void>,
): Promise<Map<string, BlobProblem>> {
  const problems = new Map<string, BlobProblem>();
  const short = (w: Wanted) => `${w.sha256.slice(0, 16)}…`;
  const damagedProblem = (w: Wanted, why = 'its content does not match the manifest\'s sha256'): BlobProblem => ({ kind: 'modified', detail: `object ${short(w)} is damaged (${why})` });
  const missingProblem = (w: Wanted, why = ''): BlobProblem => ({ kind: 'missing', detail: `object ${short(w)} is missing from the repository${why}` });
  const stop = () => Boolean(opts.stopOnProblem) && problems.size > 0;
  // A copy read whole that fails (damaged, or its pack gone) is not a problem yet while another
  // location holds the blob: that one is read next (see `alternates`).
  const others = new Map<string, BlobLoc[]>();
  const retry: { w: Wanted; loc: BlobLoc }[] = [];
  const failed = (w: Wanted, p: BlobProblem) => {
    const alt = others.get(w.name)?.shift();
    if (alt) retry.push({ w, loc: alt });
    else problems.set(w.name, p);
  };
  const first: { w: Wanted; loc: BlobLoc }[] = [];
  const loose: Wanted[] = [];
  for (const w of wanted) {
    const loc = cat.packed.get(w.name);
    const alts = [...(loc ? [loc] : []), ...(cat.alternates.get(w.name) ?? [])];
    if (cat.loose.has(w.name)) {
      loose.push(w);
      if (alts.length > 0) others.set(w.name, alts);
    } else if (loc) {
      first.push({ w, loc });
      if (alts.length > 1) others.set(w.name, alts.slice(1));
    } else problems.set(w.name, missingProblem(w));
  }
  const check = async (w: Wanted, plain: Buffer | undefined) => {
    if (plain === undefined || plain.length !== w.size || sha256(plain) !== w.sha256) failed(w, damagedProblem(w));
    else await sink(w, [plain]);
  };
  /** Read blobs from packs: ranged GETs, neighbours (gaps up to 1 MiB) in one request. */
  const readPacked = (items: { w: Wanted; loc: BlobLoc }[]) => {
    const byPack = new Map<string, { w: Wanted; loc: BlobLoc }[]>();
    for (const it of items) byPack.set(it.loc.pack, [...(byPack.get(it.loc.pack) ?? []), it]);
    const ranges: { pack: string; start: number; end: number; items: { w: Wanted; loc: BlobLoc }[] }[] = [];
    for (const [pack, list] of byPack) {
      list.sort((a, b) => a.loc.offset - b.loc.offset);
      let cur: (typeof ranges)[number] | undefined;
      for (const it of list) {
        const end = it.loc.offset + it.loc.length;
        if (cur && it.loc.offset - cur.end <= GAP && end - cur.start <= MAX_RANGE) {
          cur.end = Math.max(cur.end, end);
          cur.items.push(it);
        } else {
          cur = { pack, start: it.loc.offset, end, items: [it] };
          ranges.push(cur);
        }
      }
    }
    return runPool(ranges, Math.min(opts.concurrency, 8), async (r) => {
      if (stop()) return;
      const buf = await getRangeBuffer(repo.backend, packKey(r.pack), r.start, r.end - r.start);
      for (const { w, loc } of r.items) {
        if (buf === undefined) {
          failed(w, missingProblem(w, ` (its pack ${r.pack.slice(0, 16)}… is gone)`));
          continue;
        }
        const slice = buf.subarray(loc.offset - r.start, loc.offset - r.start + loc.length);
        await check(w, slice.length === loc.length ? await repo.decode(slice, blobAad(w.name)) : undefined);
      }
    });
  };
  const fromPacks = readPacked(first);
  const fromLoose = runPool(loose, opts.concurrency, async (w) => {
    if (stop()) return;
    const key = objectKey(w.name);
    if (w.size < repo.tuning.packSmall) {
      const stored = await getBuffer(repo.backend, key);
      if (stored === undefined) failed(w, missingProblem(w));
      else await check(w, await repo.decode(stored, looseAad(w.name)));
      return;
    }
    const s = await repo.backend.getStream(key);
    if (s === undefined) {
      failed(w, missingProblem(w));
      return;
    }
    const h = createHash('sha256');
    let n = 0;
    const hashed = async function* (): AsyncGenerator<Buffer> {
      for await (const c of repo.decodeStream(buffers(s), looseAad(w.name))) {
        h.update(c);
        n += c.length;
        if (n > w.size) throw new DamagedError('longer than its manifest entry');
        yield c;
      }
    };
    try {
      await sink(w, hashed());
    } catch (err) {
      // A stream the sink has consumed: no other copy is tried (large contents are never packed).
      if (err instanceof DamagedError) {
        problems.set(w.name, damagedProblem(w, err.message));
        return;
      }
      throw err;
    }
    if (n !== w.size || h.digest('hex') !== w.sha256) problems.set(w.name, damagedProblem(w));
  });
  // Both settled before returning or throwing: nothing is still writing when the caller cleans up.
  for (const r of await Promise.allSettled([fromPacks, fromLoose])) if (r.status === 'rejected') throw r.reason;
  // Contents whose copy failed its sha256 or whose pack is gone: their next location, one round at a time.
  while (retry.length > 0 && !stop()) await readPacked(retry.splice(0));
  return problems;
}

/** Consume a stream into a new file (`O_EXCL|O_NOFOLLOW`, never over anything). */
export async function writeNewFileFrom(path: string | Buffer, chunks: AsyncIterable<Buffer> | Iterable<Buffer>, mode: number): Promise<void> {
  const h = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0), mode);
  try {
    for await (const c of chunks) for (let off = 0; off < c.length; ) off += (await h.write(c, off, c.length - off)).bytesWritten;
  } finally {
    await h.close();
  }
}
