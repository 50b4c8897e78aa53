/**
 * Content digests of JSON values, to tell whether a state file's content (or a state) is
 * the same as the one this instance loaded or saved, without keeping a copy of it.
 *
 * The digest is of the value as JSON sees it, not of the bytes: whitespace and number
 * spelling do not count (`1.0` and `1`, `5n` and `5` are equal; `-0` is `0`), key order does.
 * It follows the writer's rules (`toJSON()` honoured, `undefined` object properties
 * omitted), so a document digested before writing equals the same document read back.
 * `bigint` values count as the integers they are, whatever the parser's representation.
 */
import { createHash, type Hash } from 'node:crypto';

const FLUSH_AT = 1 << 16;

class Fail extends Error {}

function encode(value: unknown, hash: Hash): void {
  let buf = '';
  const put = (s: string): void => {
    buf += s;
    if (buf.length >= FLUSH_AT) {
      hash.update(buf);
      buf = '';
    }
  };
  const onStack = new Set<object>();
  /** As JSON.stringify: `toJSON(key)` once, then functions, symbols and undefined have no JSON. */
  const resolve = (v: unknown, key: string): unknown => {
    if (typeof v === 'object' && v !== null) {
      const toJSON = (v as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === 'function') return (toJSON as (k: string) => unknown).call(v, key);
    }
    return v;
  };
  const omitted = (v: unknown): boolean => v === undefined || typeof v === 'function' || typeof v === 'symbol';
  const visit = (v: unknown): void => {
    if (v === null) {
      put('z');
      return;
    }
    switch (typeof v) {
      case 'boolean':
        put(v ? 't' : 'f');
        return;
      case 'number':
        if (!Number.isFinite(v)) throw new Fail();
        put(`n${JSON.stringify(v)};`);
        return;
      case 'bigint':
        put(`n${v.toString()};`);
        return;
      case 'string':
        put(`s${v.length}:`);
        put(v);
        return;
      case 'object':
        break;
      default:
        throw new Fail(); // not JSON where a value is required (root, array item)
    }
    const obj = v as object;
    if (obj instanceof Map || obj instanceof Set || onStack.has(obj)) throw new Fail();
    onStack.add(obj);
    if (Array.isArray(obj)) {
      put(`a${obj.length}[`);
      for (let i = 0; i < obj.length; i++) visit(resolve(obj[i], String(i)));
      put(']');
    } else {
      put('{');
      for (const key of Object.keys(obj)) {
        const item = resolve((obj as Record<string, unknown>)[key], key);
        if (omitted(item)) continue;
        put(`k${key.length}:`);
        put(key);
        visit(item);
      }
      put('}');
    }
    onStack.delete(obj);
  };
  visit(resolve(value, ''));
  hash.update(buf);
}

/**
 * Digest of a JSON value, or `undefined` when it has none (not JSON: a cycle, a function,
 * `NaN`..., or nested too deeply to walk). `undefined` never equals anything.
 */
export function valueDigest(value: unknown): string | undefined {
  const hash = createHash('sha256');
  try {
    encode(value, hash);
  } catch (err) {
    if (err instanceof Fail || err instanceof RangeError) return undefined;
    throw err;
  }
  return hash.digest('base64');
}

/**
 * Digest of a whole state file document (its top-level fields in order), where `state`
 * counts by its own {@link valueDigest} (`stateDigest` when already known).
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
