import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { once } from 'node:events';
import type { Transform } from 'node:stream';
import { createDeflateRaw, createInflateRaw, deflateRaw, deflateRawSync, inflateRaw, inflateRawSync } from 'node:zlib';
import { BackupError } from '../errors.js';

const deflate = promisify(deflateRaw);
const inflate = promisify(inflateRaw);

/** First bytes of every stored object and snapshot (format version 1). */
export const OBJECT_MAGIC = Buffer.from('DAWNOBJ1', 'latin1');
/** The byte after the magic: how the rest is encoded. */
export const ENCODING = { raw: 0, deflate: 1 } as const;
/** Smaller contents are stored raw (compression would not pay for its header). */
export const MIN_COMPRESS = 128;
const SAMPLE = 64 * 1024;

export const CONFIG_KEY = 'config.json';
export const OBJECTS_PREFIX = 'objects/';
export const SNAPSHOTS_PREFIX = 'snapshots/';
export const REPO_FORMAT = 'dawn-backup-repository';
export const SNAPSHOT_FORMAT = 'dawn-backup-snapshot';
/**
 * Version 2 adds packs and indexes. A reader of version 1 refuses a version 2 repository
 * (`REPO_INVALID`, "use a newer dawn-backup"); this one reads both, and pushes into a version 1
 * repository keep writing loose objects only, so its older readers keep working.
 */
export const REPO_FORMAT_VERSION = 2;
export const READABLE_FORMAT_VERSIONS: readonly number[] = [1, 2];
export const PACKS_PREFIX = 'packs/';
export const INDEX_PREFIX = 'index/';
export const INDEX_FORMAT = 'dawn-backup-index';
/** First bytes of every pack; the blobs follow back to back, each an object of its own. */
export const PACK_MAGIC = Buffer.from('DAWNPAK1', 'latin1');
/** Contents smaller than this go into packs (larger ones are one object each). */
export const PACK_SMALL = 512 * 1024;
/** A pack is sealed and uploaded once its blobs reach this size. */
export const PACK_TARGET = 4 * 1024 * 1024;
/** Streamed uploads are split into parts of this size (multipart above it; S3's minimum is 5 MiB). */
export const PART_SIZE = 16 * 1024 * 1024;

/** Internal tuning (tests lower the sizes to keep packs and multipart uploads small and fast). */
export function tuning(env: Readonly<Record<string, string | undefined>> = process.env): { packSmall: number; packTarget: number; partSize: number } {
  const num = (v: string | undefined, d: number) => (v !== undefined && /^[1-9][0-9]*$/.test(v) ? Number(v) : d);
  return {
    packSmall: num(env.DAWN_BACKUP_INTERNAL_PACK_SMALL, PACK_SMALL),
    packTarget: num(env.DAWN_BACKUP_INTERNAL_PACK_TARGET, PACK_TARGET),
    partSize: Math.max(5 * 1024 * 1024, num(env.DAWN_BACKUP_INTERNAL_PART_SIZE, PART_SIZE)),
  };
}

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** The key of the object holding a content with this sha256 (hex). */
export const objectKey = (hash: string): string => `${OBJECTS_PREFIX}${hash.slice(0, 2)}/${hash}`;
/** The hash an object key stands for (`undefined` for anything else under `objects/`). */
export function hashOfKey(key: string): string | undefined {
  const m = /^objects\/([0-9a-f]{2})\/([0-9a-f]{64})$/.exec(key);
  return m && m[2]!.startsWith(m[1]!) ? m[2] : undefined;
}
export const snapshotKey = (name: string): string => `${SNAPSHOTS_PREFIX}${name}.json`;
/** The key of a pack (its id: the sha256 of its stored bytes). */
export const packKey = (id: string): string => `${PACKS_PREFIX}${id.slice(0, 2)}/${id}`;
export function idOfPackKey(key: string): string | undefined {
  const m = /^packs\/([0-9a-f]{2})\/([0-9a-f]{64})$/.exec(key);
  return m && m[2]!.startsWith(m[1]!) ? m[2] : undefined;
}
/** The key of an index (its id: the sha256 of its stored bytes). */
export const indexKey = (id: string): string => `${INDEX_PREFIX}${id}`;
export const isIndexKey = (key: string): boolean => /^index\/[0-9a-f]{64}$/.test(key);

/** A stored object or blob that cannot be decoded (damaged, or not sealed with this key). */
export class DamagedError extends Error {}

/** Pipe an async iterable through a zlib transform. */
export async function* through(src: AsyncIterable<Buffer>, t: Transform): AsyncGenerator<Buffer> {
  const feed = (async () => {
    try {
      for await (const c of src) if (!t.write(c)) await once(t, 'drain');
      t.end();
    } catch (err) {
      t.destroy(err as Error);
    }
  })();
  try {
    for await (const c of t) yield c as Buffer;
  } finally {
    t.destroy();
  }
  await feed;
}

/**
 * {@link encodeObject} as a stream: the first 64 KiB decide (deflate when they shrink by 1/8),
 * then the rest follows without ever being held whole.
 */
export async function* encodeStream(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const it = src[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let headLen = 0;
  let ended = false;
  while (headLen < SAMPLE) {
    const n = await it.next();
    if (n.done) {
      ended = true;
      break;
    }
    head.push(n.value);
    headLen += n.value.length;
  }
  const first = Buffer.concat(head);
  const sample = first.subarray(0, SAMPLE);
  const packed = first.length >= MIN_COMPRESS ? await deflate(sample, { level: 1 }) : undefined;
  const rest = async function* (): AsyncGenerator<Buffer> {
    yield first;
    if (ended) return;
    for (let n = await it.next(); !n.done; n = await it.next()) yield n.value;
  };
  if (packed === undefined || packed.length > sample.length - (sample.length >> 3)) {
    yield Buffer.concat([OBJECT_MAGIC, Buffer.of(ENCODING.raw)]);
    yield* rest();
    return;
  }
  yield Buffer.concat([OBJECT_MAGIC, Buffer.of(ENCODING.deflate)]);
  yield* through(rest(), createDeflateRaw({ level: 6 }));
}

/** The plaintext of a stored object, as a stream; throws {@link DamagedError} when it is not valid. */
export async function* decodeStream(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const it = src[Symbol.asyncIterator]();
  try {
    yield* decodeFrom(it);
  } finally {
    // A consumer that stops early (a full disk): the source (a file, a socket) is closed now, not at GC.
    await it.return?.();
  }
}

async function* decodeFrom(it: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  let head = Buffer.alloc(0);
  const hl = OBJECT_MAGIC.length + 1;
  while (head.length < hl) {
    const n = await it.next();
    if (n.done) throw new DamagedError('truncated object');
    head = Buffer.concat([head, n.value]);
  }
  if (!head.subarray(0, OBJECT_MAGIC.length).equals(OBJECT_MAGIC)) throw new DamagedError('not a dawn-backup object');
  const enc = head[OBJECT_MAGIC.length];
  const rest = async function* (): AsyncGenerator<Buffer> {
    if (head.length > hl) yield head.subarray(hl);
    for (let n = await it.next(); !n.done; n = await it.next()) yield n.value;
  };
  if (enc === ENCODING.raw) yield* rest();
  else if (enc === ENCODING.deflate) {
    try {
      yield* through(rest(), createInflateRaw());
    } catch (err) {
      if (String((err as NodeJS.ErrnoException).code ?? '').startsWith('Z_')) throw new DamagedError(`cannot inflate (${(err as Error).message})`);
      throw err;
    }
  } else throw new DamagedError('unknown encoding');
}

/**
 * Encode a content for storage: magic, one encoding byte, the data (deflate-raw when that makes
 * it smaller by at least 1/8, else raw; above 256 KiB only when a 64 KiB sample compresses). The encoding is recorded in each object itself.
 */
export async function encodeObject(plain: Buffer): Promise<Buffer> {
  if (plain.length >= MIN_COMPRESS && plain.length <= SMALL_SYNC) {
    // Small contents (the many files of a data root): deflated in place, synchronously (a zlib
    // job on the thread pool costs more than deflating a few KiB), and not at all when their
    // bytes look random (order-0 entropy above 7.2 bits per byte: deflate could not save 1/8).
    if (entropyBits(plain.subarray(0, 4096)) > 7.2) return Buffer.concat([OBJECT_MAGIC, Buffer.of(ENCODING.raw), plain]);
    const packed = deflateRawSync(plain, { level: 6 });
    if (packed.length <= plain.length - (plain.length >> 3)) return Buffer.concat([OBJECT_MAGIC, Buffer.of(ENCODING.deflate), packed]);
    return Buffer.concat([OBJECT_MAGIC, Buffer.of(ENCODING.raw), plain]);
  }
  if (plain.length >= MIN_COMPRESS) {
    // Large contents: a 64 KiB sample decides first (random or already compressed data is not
    // worth deflating whole).
    if (plain.length > SAMPLE * 4) {
      const sample = await deflate(plain.subarray(0, SAMPLE), { level: 1 });
      if (sample.length > SAMPLE - (SAMPLE >> 3)) return Buffer.concat([OBJECT_MAGIC, Buffer.of(ENCODING.raw), plain]);
    }
    const packed = await deflate(plain, { level: 6 });
    if (packed.length <= plain.length - (plain.length >> 3)) return Buffer.concat([OBJECT_MAGIC, Buffer.of(ENCODING.deflate), packed]);
  }
  return Buffer.concat([OBJECT_MAGIC, Buffer.of(ENCODING.raw), plain]);
}

const SMALL_SYNC = 64 * 1024;

/** Order-0 entropy of some bytes, in bits per byte. */
function entropyBits(b: Buffer): number {
  const counts = new Uint32Array(256);
  for (let i = 0; i < b.length; i++) counts[b[i]!]!++;
  let h = 0;
  for (const c of counts) if (c > 0) h -= (c / b.length) * Math.log2(c / b.length);
  return h;
}

/**
 * The most a stored object read whole may inflate to: 64 MiB, or 32 times its stored size. Read
 * whole are snapshots and indexes (JSON full of sha256 hex, which deflate cannot shrink 5 times)
 * and blobs under the pack threshold (well under 64 MiB, however well they compress); larger
 * contents are streamed and checked against their size. A damaged or hostile object that would
 * inflate further (a "zip bomb": 6 MB made `list --repo` hold 4 GiB) is damaged.
 */
export const maxInflated = (storedLength: number): number => Math.max(64 * 1024 * 1024, 32 * storedLength);

/** The plaintext of a stored object; `undefined` when it is not a valid object (damaged). */
export async function decodeObject(stored: Buffer): Promise<Buffer | undefined> {
  if (stored.length < OBJECT_MAGIC.length + 1 || !stored.subarray(0, OBJECT_MAGIC.length).equals(OBJECT_MAGIC)) return undefined;
  const enc = stored[OBJECT_MAGIC.length];
  const body = stored.subarray(OBJECT_MAGIC.length + 1);
  if (enc === ENCODING.raw) return body;
  if (enc === ENCODING.deflate) {
    const limit = { maxOutputLength: maxInflated(stored.length) };
    if (body.length <= SMALL_SYNC) {
      try {
        return inflateRawSync(body, limit);
      } catch {
        return undefined;
      }
    }
    return inflate(body, limit).catch(() => undefined);
  }
  return undefined;
}

/** The decoded JSON of a snapshot or config document. */
export async function decodeJson(stored: Buffer, what: string): Promise<unknown> {
  const plain = await decodeObject(stored);
  try {
    if (plain === undefined) throw new Error('not a dawn-backup object');
    return JSON.parse(plain.toString('utf8'));
  } catch (err) {
    throw new BackupError('BACKUP_INVALID', `${what} is damaged (${(err as Error).message}); it cannot be used.`);
  }
}
