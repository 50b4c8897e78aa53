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
import { createHash } from 'node:crypto';

class Fail extends Error {}

/** `JSON.stringify(value)`, but with `bigint` written as its digits. */
function stringifyWithBigInt(root: unknown): string {
  const parts: string[] = [];
  const onStack = new Set<object>();
  const resolve = (v: unknown, key: string): unknown => {
    if ((typeof v === 'object' && v !== null) || typeof v === 'bigint') {
      const toJSON = (v as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === 'function') return (toJSON as (k: string) => unknown).call(v, key);
    }
    return v;
  };
  const omitted = (v: unknown): boolean => v === undefined || typeof v === 'function' || typeof v === 'symbol';
  const visit = (v: unknown): void => {
    switch (typeof v) {
      case 'bigint':
        parts.push(v.toString());
        return;
      case 'number':
        parts.push(Number.isFinite(v) ? JSON.stringify(v) : 'null');
        return;
      case 'string':
      case 'boolean':
        parts.push(JSON.stringify(v));
        return;
      case 'object':
        break;
      default:
        parts.push('null'); // undefined, function or symbol where a value is required (array item)
        return;
    }
    if (v === null) {
      parts.push('null');
      return;
    }
    if (v instanceof Number || v instanceof String || v instanceof Boolean) {
      parts.push(JSON.stringify(v));
      return;
    }
    if (onStack.has(v)) throw new Fail();
    onStack.add(v);
    if (Array.isArray(v)) {
      parts.push('[');
      for (let i = 0; i < v.length; i++) {
        if (i > 0) parts.push(',');
        visit(resolve(v[i], String(i)));
      }
      parts.push(']');
    } else {
      parts.push('{');
      let first = true;
      for (const key of Object.keys(v)) {
        const item = resolve((v as Record<string, unknown>)[key], key);
        if (omitted(item)) continue;
        parts.push(first ? '' : ',', JSON.stringify(key), ':');
        first = false;
        visit(item);
      }
      parts.push('}');
    }
    onStack.delete(v);
  };
  const top = resolve(root, '');
  if (omitted(top)) throw new Fail();
  visit(top);
  return parts.join('');
}

/**
 * Digest of a JSON value, or `undefined` when it has none (a cycle, `undefined`, or nested too
 * deeply to walk). `undefined` never equals anything.
 */
export function valueDigest(value: unknown): string | undefined {
  let text: string | undefined;
  try {
    try {
      text = JSON.stringify(value); // native and fast; throws on bigint and cycles
    } catch {
      text = stringifyWithBigInt(value);
    }
  } catch (err) {
    if (err instanceof Fail || err instanceof RangeError || err instanceof TypeError) return undefined;
    throw err;
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
