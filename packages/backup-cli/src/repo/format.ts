import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { deflateRaw, inflateRaw } from 'node:zlib';
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
export const REPO_FORMAT_VERSION = 1;

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** The key of the object holding a content with this sha256 (hex). */
export const objectKey = (hash: string): string => `${OBJECTS_PREFIX}${hash.slice(0, 2)}/${hash}`;
/** The hash an object key stands for (`undefined` for anything else under `objects/`). */
export function hashOfKey(key: string): string | undefined {
  const m = /^objects\/([0-9a-f]{2})\/([0-9a-f]{64})$/.exec(key);
  return m && m[2]!.startsWith(m[1]!) ? m[2] : undefined;
}
export const snapshotKey = (name: string): string => `${SNAPSHOTS_PREFIX}${name}.json`;

/**
 * Encode a content for storage: magic, one encoding byte, the data (deflate-raw when that makes
 * it smaller by at least 1/8, else raw; above 256 KiB only when a 64 KiB sample compresses). The encoding is recorded in each object itself.
 */
export async function encodeObject(plain: Buffer): Promise<Buffer> {
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

/** The plaintext of a stored object; `undefined` when it is not a valid object (damaged). */
export async function decodeObject(stored: Buffer): Promise<Buffer | undefined> {
  if (stored.length < OBJECT_MAGIC.length + 1 || !stored.subarray(0, OBJECT_MAGIC.length).equals(OBJECT_MAGIC)) return undefined;
  const enc = stored[OBJECT_MAGIC.length];
  const body = stored.subarray(OBJECT_MAGIC.length + 1);
  if (enc === ENCODING.raw) return body;
  if (enc === ENCODING.deflate) return inflate(body).catch(() => undefined);
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
