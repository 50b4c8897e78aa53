import type { JsonObject, JsonValue } from '@dawn/atomic-json';
import { invalid } from './errors.js';

/**
 * A JSON value: what a peer's `metadata`, `tools`, `resources` and `prompts` (and the unknown
 * fields of a record) may hold. Integers outside ±(2^53 − 1) are `bigint`s (lossless); keys
 * such as `__proto__` are ordinary own properties. The type of `@dawn/atomic-json`.
 */
export type { JsonObject, JsonValue };

/**
 * Deepest nesting of arrays/objects accepted in one peer field (`metadata`, `tools`, an unknown
 * field...): `{}` is depth 1. Deeper values cannot be written back safely (`JSON.stringify`
 * recurses, and Python's `json` stops near 1000 levels), so they are refused before anything is
 * written (`INVALID_FIELD`) and a file holding them does not open (`CORRUPT`).
 */
export const MAX_JSON_DEPTH = 1000;

const IDENT = /^[A-Za-z_$][\w$]*$/;

export function joinPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return IDENT.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Set `obj[key] = value` as an own data property, whatever the key: `obj['__proto__'] = v`
 * would call the prototype setter instead (changing the object's prototype, dropping the data).
 */
export function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  else obj[key] = value;
}

/** `obj[key]` if it is an own property, else `undefined` (never the prototype through `__proto__`). */
export function getOwn(obj: object, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(obj, key) ? (obj as Record<string, unknown>)[key] : undefined;
}

/** Smallest |integer| that `JSON.stringify` writes in exponent form (so it reads back as a float). */
const EXPONENT_FORM = 1e21;

/**
 * The value as it reads back from the file: an integral `number` beyond ±(2^53 − 1) becomes the
 * `bigint` of its exact value (written digit for digit, read back as that `bigint`); a `bigint` inside the safe range reads back as a `number`.
 */
function normalizeNumber(v: number | bigint): number | bigint {
  if (typeof v === 'bigint') return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
  // Its exact value as a bigint, written digit for digit. (Written as a number, JSON.stringify's shortest
  // digits, 2 ** 60 would read back as 1152921504606847000n, not 1152921504606846976n.)
  return Number.isInteger(v) && !Number.isSafeInteger(v) && Math.abs(v) < EXPONENT_FORM ? BigInt(v) : v;
}

interface CloneFrame {
  src: object;
  out: JsonValue[] | JsonObject;
  keys: string[] | undefined;
  i: number;
  path: string;
}

/**
 * Deep-copy `value`, checking that it is plain JSON (finite numbers, bigints, strings, booleans,
 * null, arrays, plain objects; no cycles; at most {@link MAX_JSON_DEPTH} levels). Iterative (no
 * stack overflow at any depth). Numbers are stored as they read back from the file (see
 * `normalizeNumber`), so a peer in memory equals the same peer reloaded. `__proto__` keys stay own
 * properties. Throws `INVALID_FIELD` naming the path of the first bad value.
 */
export function cloneJson(value: unknown, path: string): JsonValue {
  const frames: CloneFrame[] = [];
  const ancestors = new Set<object>();
  const bad = (p: string, why: string) => invalid('INVALID_FIELD', p, `${p} ${why}. Nothing was written.`);
  /** Copy a scalar, or open a frame for a container (returned empty, filled by the loop). */
  const visit = (v: unknown, p: string): JsonValue => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
    if (typeof v === 'number') {
      if (Number.isFinite(v)) return normalizeNumber(v);
      throw bad(p, `is ${v}, which JSON cannot represent; use a finite number`);
    }
    if (typeof v === 'bigint') return normalizeNumber(v);
    if (typeof v !== 'object') {
      throw bad(p, `is ${v === undefined ? 'undefined' : `a ${typeof v}`}, which JSON cannot represent; use a JSON value`);
    }
    if (ancestors.has(v)) throw bad(p, 'is a circular reference; use plain JSON data');
    if (frames.length >= MAX_JSON_DEPTH) throw bad(p, `is nested deeper than ${MAX_JSON_DEPTH} levels; flatten it`);
    let out: JsonValue[] | JsonObject;
    let keys: string[] | undefined;
    if (Array.isArray(v)) out = new Array<JsonValue>(v.length);
    else if (!isPlainObject(v)) {
      throw bad(p, `is a ${(v as { constructor?: { name?: string } }).constructor?.name ?? 'non-plain object'}, which JSON cannot represent faithfully; use a plain object`);
    } else {
      out = {};
      keys = Object.keys(v);
    }
    ancestors.add(v);
    frames.push({ src: v, out, keys, i: 0, path: p });
    return out;
  };
  const root = visit(value, path);
  while (frames.length > 0) {
    const f = frames[frames.length - 1]!;
    if (f.keys === undefined) {
      const src = f.src as unknown[];
      if (f.i >= src.length) {
        ancestors.delete(frames.pop()!.src);
        continue;
      }
      const i = f.i++;
      (f.out as JsonValue[])[i] = visit(src[i], joinPath(f.path, i));
    } else {
      if (f.i >= f.keys.length) {
        ancestors.delete(frames.pop()!.src);
        continue;
      }
      const key = f.keys[f.i++]!;
      const item = (f.src as Record<string, unknown>)[key];
      if (item === undefined) continue; // omitted, as JSON.stringify does
      setOwn(f.out as Record<string, unknown>, key, visit(item, joinPath(f.path, key)));
    }
  }
  return root;
}

/**
 * Deep copy of a value already known to be JSON (no checks). Iterative; `__proto__` keys stay
 * own properties.
 */
export function copyJson<T extends JsonValue>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  const copyOf = (v: object): object => (Array.isArray(v) ? new Array<unknown>(v.length) : {});
  const root = copyOf(value);
  const stack: [object, object][] = [[value, root]];
  while (stack.length > 0) {
    const [src, out] = stack.pop()!;
    if (Array.isArray(src)) {
      const o = out as unknown[];
      for (let i = 0; i < src.length; i++) {
        const v: unknown = src[i];
        if (v !== null && typeof v === 'object') {
          const c = copyOf(v);
          o[i] = c;
          stack.push([v, c]);
        } else o[i] = v;
      }
    } else {
      const o = out as Record<string, unknown>;
      for (const k of Object.keys(src)) {
        const v = (src as Record<string, unknown>)[k];
        if (v !== null && typeof v === 'object') {
          const c = copyOf(v);
          setOwn(o, k, c);
          stack.push([v, c]);
        } else setOwn(o, k, v);
      }
    }
  }
  return root as T;
}

/** Structural equality of two JSON values (key order ignored; `bigint`s by value). Iterative. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  const stack: unknown[] = [a, b];
  while (stack.length > 0) {
    const y = stack.pop();
    const x = stack.pop();
    if (x === y) continue;
    if (typeof x !== 'object' || typeof y !== 'object' || x === null || y === null) return false;
    if (Array.isArray(x)) {
      if (!Array.isArray(y) || x.length !== y.length) return false;
      for (let i = 0; i < x.length; i++) stack.push(x[i], y[i]);
      continue;
    }
    if (Array.isArray(y)) return false;
    const kx = Object.keys(x);
    if (kx.length !== Object.keys(y).length) return false;
    for (const k of kx) {
      if (!Object.prototype.hasOwnProperty.call(y, k)) return false;
      stack.push((x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k]);
    }
  }
  return true;
}

/**
 * The key path (from `path`) of the first array/object in `value` nested deeper than `max`
 * levels, or `undefined`. Iterative; cheap on flat data (one stack entry per non-empty container).
 */
export function tooDeep(value: unknown, path: string, max: number = MAX_JSON_DEPTH): string | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const values: object[] = [value];
  const depths: number[] = [1];
  let deepest = 0;
  while (values.length > 0) {
    const v = values.pop()!;
    const d = depths.pop()!;
    if (d > max) {
      deepest = d;
      break;
    }
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const item: unknown = v[i];
        if (item !== null && typeof item === 'object') {
          values.push(item);
          depths.push(d + 1);
        }
      }
    } else {
      for (const k in v) {
        const item = (v as Record<string, unknown>)[k];
        if (item !== null && typeof item === 'object') {
          values.push(item);
          depths.push(d + 1);
        }
      }
    }
  }
  if (deepest === 0) return undefined;
  // Rare: walk again, depth first with the keys, to name the first container too deep.
  const frames: { v: object; keys: (string | number)[]; i: number; path: string }[] = [];
  const open = (v: object, p: string): string | undefined => {
    if (frames.length >= max) return p;
    frames.push({ v, keys: Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v), i: 0, path: p });
    return undefined;
  };
  open(value, path);
  while (frames.length > 0) {
    const f = frames[frames.length - 1]!;
    if (f.i >= f.keys.length) {
      frames.pop();
      continue;
    }
    const k = f.keys[f.i++]!;
    const item = (f.v as Record<string | number, unknown>)[k];
    if (item !== null && typeof item === 'object') {
      const found = open(item, joinPath(f.path, k));
      if (found !== undefined) return found;
    }
  }
  return path;
}
