/**
 * Content digests of JSON values, to tell whether a state file's content (or a state) is
 * the same as the one this instance loaded or saved, without keeping a copy of it.
 *
 * The digest is the SHA-256 of the value's compact JSON text, so it is of the value as JSON
 * sees it, not of the file's bytes: whitespace and number spelling do not count (`1.0` and
 * `1`, `-0` and `0`), key order does. `bigint` values (which `JSON.stringify` refuses) are
 * written as their digits, so `5n` and `5` are equal and integers beyond ±2^53 are exact
 * whatever the parser's representation. `toJSON()` and the omission of `undefined` properties
 * follow `JSON.stringify`, so a document digested before writing equals the same document
 * read back.
 */
import { stringifyJson } from '@dawn/atomic-json';
import { createHash } from 'node:crypto';

/**
 * Digest of a JSON value, or `undefined` when it has none (a cycle, `undefined`, or nested too
 * deeply to walk). `undefined` never equals anything.
 */
export function valueDigest(value: unknown): string | undefined {
  let text: string | undefined;
  try {
    text = JSON.stringify(value); // native and fast; throws on bigint, cycles and deep nesting
  } catch {
    try {
      text = stringifyJson(value, { spaces: 0 }); // bigint as its digits (atomic-json's lossless writer)
    } catch {
      return undefined; // a cycle, a non-JSON value, or too deep: no digest
    }
  }
  if (text === undefined) return undefined;
  return createHash('sha256').update(text).digest('base64');
}

/**
 * Digest of a whole state file document (its top-level fields in order), where `state`
 * counts by its own {@link valueDigest} (`stateDigest` when already known), so the state is
 * walked once for both digests.
 */
export function recordDigest(doc: unknown, stateDigest?: string): string | undefined {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return valueDigest(doc);
  const top: Record<string, unknown> = {};
  for (const key of Object.keys(doc)) {
    const v = (doc as Record<string, unknown>)[key];
    const d = key === 'state' ? (stateDigest ?? valueDigest(v)) : undefined;
    if (key === 'state' && d === undefined) return undefined;
    Object.defineProperty(top, key, { value: key === 'state' ? { digest: d } : v, enumerable: true, writable: true, configurable: true });
  }
  return valueDigest(top);
}
