import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackupError } from '../errors.js';
import { relatePaths } from '../paths.js';

/**
 * Where a repository keeps its bytes: a flat key → bytes store. Keys are `/`-separated,
 * relative to the repository root (e.g. `objects/ab/ab12...`). Nothing is ever overwritten.
 */
export interface Backend {
  /** How the repository was named, for messages (`s3://bucket/prefix`, `/mnt/nas/dawn`). */
  readonly url: string;
  /** Store `body` under `key` unless the key exists. `false` when it existed (nothing written). */
  putIfAbsent(key: string, body: Uint8Array): Promise<boolean>;
  /**
   * Store a stream under `key` unless the key exists, never holding it whole (multipart on S3).
   * `false` when it existed. When `body` throws, nothing is stored under `key`. `sizeHint`: about
   * how many bytes the body holds (lets S3 skip the existence check for a single PUT).
   */
  putStreamIfAbsent(key: string, body: AsyncIterable<Uint8Array>, sizeHint?: number): Promise<boolean>;
  /** The bytes under `key`, or `undefined` when there is no such key. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** `length` bytes from `offset` (fewer when the object is shorter); `undefined` when there is no such key. */
  getRange(key: string, offset: number, length: number): Promise<Uint8Array | undefined>;
  /** The bytes under `key` as a stream, or `undefined` when there is no such key. */
  getStream(key: string): Promise<AsyncIterable<Uint8Array> | undefined>;
  /** Requests (S3) or file operations (directory) made so far. */
  readonly requests: number;
  /** Whether `key` exists. */
  exists(key: string): Promise<boolean>;
  /** Every key starting with `prefix` (any order). */
  list(prefix: string): Promise<string[]>;
  /**
   * Every key starting with `prefix`, with the time the store says it was written (ms since the
   * epoch: S3's LastModified, the file's mtime): the store's clock, not this machine's.
   */
  listModified(prefix: string): Promise<{ key: string; modified: number }[]>;
  /** Make the store usable (create the directory, or the bucket when it does not exist). */
  prepare?(): Promise<void>;
  /** Remove `key` (no error when it is already gone). */
  delete(key: string): Promise<void>;
}

/** What a repository URL names. */
export type RepoLocation = { kind: 'dir'; path: string; url: string } | { kind: 's3'; bucket: string; prefix: string; url: string };

/** The environment variable holding the default repository. */
export const REPO_ENV = 'DAWN_BACKUP_REPO';

/**
 * Parse `s3://bucket[/prefix]`, `file:///path` or a directory path (absolute or relative to the
 * working directory).
 *
 * @throws {BackupError} `USAGE` for an empty URL, an unknown scheme or an S3 URL without bucket.
 */
export function parseRepoUrl(url: string): RepoLocation {
  if (url.trim() === '') throw new BackupError('USAGE', 'The repository URL is empty: give --repo s3://bucket/prefix or --repo /path/to/dir.');
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(url)?.[1]?.toLowerCase();
  if (scheme === 's3') {
    const rest = url.slice('s3://'.length);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = (slash < 0 ? '' : rest.slice(slash + 1)).replace(/^\/+|\/+$/g, '');
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
      throw new BackupError('USAGE', `"${url}" does not name a valid S3 bucket: use s3://bucket/prefix (bucket: 3-63 lower-case letters, digits, "." or "-").`);
    }
    if (prefix.split('/').some((p) => p === '' || p === '.' || p === '..') && prefix !== '') {
      throw new BackupError('USAGE', `"${url}": the prefix may not contain empty, "." or ".." parts.`);
    }
    return { kind: 's3', bucket, prefix, url: `s3://${bucket}${prefix ? `/${prefix}` : ''}` };
  }
  if (scheme === 'file') {
    let path: string;
    try {
      path = fileURLToPath(url);
    } catch (err) {
      throw new BackupError('USAGE', `"${url}" is not a valid file:// URL (${(err as Error).message}); use file:///absolute/path.`);
    }
    return { kind: 'dir', path, url: path };
  }
  if (scheme !== undefined) {
    throw new BackupError('USAGE', `Unsupported repository URL "${url}": use s3://bucket/prefix, file:///path or a directory path.`);
  }
  // A scheme without "//" (`file:/mnt/nas`, restic's `s3:bucket/x` or `s3:http://host/bucket`) is
  // never a relative directory: taken for one, the backups would silently stay on the local disk.
  const bare = isAbsolute(url) ? undefined : /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase(); // (C:\ on Windows is absolute)
  if (bare === 'file') return parseRepoUrl(`file://${url.slice('file:'.length)}`);
  if (bare !== undefined) {
    throw new BackupError('USAGE', `"${url}" looks like a URL but is not one this tool reads: use s3://bucket/prefix, file:///path or a directory path (write ./${url} for a directory of that name).`);
  }
  if (url.startsWith('~')) {
    throw new BackupError('USAGE', `"${url}": "~" is not expanded here (the shell expands it only unquoted, crontab variables never): give the absolute path.`);
  }
  const path = isAbsolute(url) ? url : resolve(url);
  return { kind: 'dir', path, url: path };
}

/** Options of {@link openBackend}. */
export interface BackendOptions {
  /** S3 endpoint (non-AWS servers); else `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`. */
  s3Endpoint?: string | undefined;
  env?: Readonly<Record<string, string | undefined>>;
}

/** The backend for a repository URL (the S3 SDK is loaded only for `s3://`). */
export async function openBackend(url: string, opts: BackendOptions = {}): Promise<Backend> {
  const loc = parseRepoUrl(url);
  if (loc.kind === 'dir') {
    const { DirBackend } = await import('./dir-backend.js');
    return new DirBackend(loc.path);
  }
  const { S3Backend } = await import('./s3-backend.js');
  return S3Backend.open(loc.bucket, loc.prefix, opts);
}

const asBuffer = (v: Uint8Array): Buffer => (Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength));

/** `backend.getRange` as a Buffer. */
export async function getRangeBuffer(backend: Backend, key: string, offset: number, length: number): Promise<Buffer | undefined> {
  const v = await backend.getRange(key, offset, length);
  return v === undefined ? undefined : asBuffer(v);
}

/** A backend stream as Buffers. */
export async function* buffers(src: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  for await (const c of src) yield asBuffer(c);
}

/** `backend.get` as a Buffer (the public interface speaks Uint8Array: no `@types/node` needed by users). */
export async function getBuffer(backend: Backend, key: string): Promise<Buffer | undefined> {
  const v = await backend.get(key);
  return v === undefined ? undefined : asBuffer(v);
}

/**
 * A directory repository inside `dir` (the data root a backup copies, or the target a restore
 * replaces) would be copied into every backup, and deleted by a restore from it (`--overwrite`
 * keeps no pre_restore copy): refuse it.
 */
export async function refuseRepoInside(repo: string, dir: string, code: 'USAGE' | 'TARGET_INVALID', what: string): Promise<void> {
  const loc = parseRepoUrl(repo);
  if (loc.kind !== 'dir') return;
  const { relation, realB } = await relatePaths(loc.path, dir);
  if (relation === 'same' || relation === 'inside') {
    const why = code === 'TARGET_INVALID' ? 'the restore would replace it, and every backup it holds would be gone' : what === 'the data root' ? 'every backup would copy it, and a restore would remove it' : 'its directories would pass for damaged backups, and it would share the disk of the backups it is meant to outlive';
    throw new BackupError(code, `The repository ${loc.path} lies inside ${what} ${realB}: ${why}. Put the repository outside it (another disk is the point of a repository).`, { path: loc.path });
  }
}
