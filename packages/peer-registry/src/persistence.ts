/**
 * Persistence helpers of the registry: the batches of ops waiting for the journal, reading and
 * checking the registry file, and mapping `@dawn/atomic-json`'s errors to ours.
 */
import { AtomicJsonError, readJson } from '@dawn/atomic-json';
import { PeerRegistryError } from './errors.js';
import { checkDepth, checkDoc, loadPeers, type Op, type RegistryDoc } from './file-format.js';
import type { Peer } from './peer.js';

export interface Batch {
  ops: Op[];
  /** Node ids the ops touch. */
  touched: Set<string>;
  cleared: boolean;
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {}); // reported through the mutations' promises and flush()
  return { ops: [], touched: new Set(), cleared: false, promise, resolve, reject };
}

/** Map an error of `@dawn/atomic-json` to ours. */
export function fileError(err: unknown, path: string, action: string): unknown {
  if (PeerRegistryError.is(err) || !AtomicJsonError.is(err)) return err;
  switch (err.code) {
    case 'PARSE':
      return new PeerRegistryError(
        'CORRUPT',
        `Cannot ${action} the peer registry: ${err.message} ` +
          `Or restore it from a backup, or open the registry with { onCorrupt: 'quarantine' } to move it aside and start empty.`,
        { path, cause: err, ...(err.line !== undefined ? { line: err.line } : {}), ...(err.column !== undefined ? { column: err.column } : {}) },
      );
    case 'NOT_SERIALIZABLE':
      return new PeerRegistryError(
        'NOT_SERIALIZABLE',
        `Cannot ${action} the peer registry ${path}: the registry cannot be written as one JSON text (${err.message}). ` +
          `The file was left untouched; remove or shrink the peers or fields that made it too large or too deeply nested.`,
        { path, cause: err, ...(err.keyPath !== undefined ? { keyPath: err.keyPath } : {}) },
      );
    case 'CORRUPT':
      return new PeerRegistryError(
        'CORRUPT',
        `Cannot ${action} the peer registry: ${err.message} ` +
          `Or open the registry with { onCorrupt: 'quarantine' } to move the journal aside and start from ${path} alone.`,
        { path: err.path, cause: err },
      );
    case 'LOCKED':
    case 'LOCK_COMPROMISED':
      return new PeerRegistryError('LOCKED', `Cannot ${action} the peer registry ${path}: ${err.message}`, { path, cause: err });
    default:
      return new PeerRegistryError('IO', `Cannot ${action} the peer registry ${path}: ${err.message}`, { path, cause: err });
  }
}

/**
 * Read and check the registry file; `undefined` when it does not exist.
 *
 * Through `readJson` of `@dawn/atomic-json`: lossless (integers beyond 2^53 − 1 are `bigint`s,
 * `__proto__` keys are data), only a regular file is read (a FIFO, device or directory, also
 * behind a symlink, is `IO` at once, never a hang), any nesting depth parses, and text that is
 * not JSON or not UTF-8 is `CORRUPT` with line and column. A document nested deeper than can be
 * written back is `CORRUPT` too. Reads take no lock: writers replace the file by rename, so a
 * read never sees a torn file.
 */
export async function readDoc(path: string): Promise<RegistryDoc | undefined> {
  let value: unknown;
  try {
    value = await readJson(path);
  } catch (err) {
    if (AtomicJsonError.is(err) && err.code === 'NOT_FOUND') return undefined;
    throw fileError(err, path, 'load');
  }
  const doc = checkDoc(value, path);
  checkDepth(doc, path);
  return doc;
}

export async function readAndCheck(path: string): Promise<Peer[]> {
  const doc = await readDoc(path);
  return doc ? loadPeers(doc, path) : [];
}

