import { AtomicJsonError } from './errors.js';

const IDENT = /^[A-Za-z_$][\w$]*$/;

function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return IDENT.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'bigint') return `the BigInt ${value}n`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  if (typeof value === 'number') return String(value);
  if (value instanceof Map) return 'a Map';
  if (value instanceof Set) return 'a Set';
  return typeof value;
}

/**
 * Find the first value in `value` that JSON cannot represent faithfully and return its key path
 * and a description, or `undefined` when the whole value is JSON.
 *
 * Rejected: cycles, BigInt, functions, symbols, non-finite numbers, `undefined` as the root or
 * as an array item (JSON.stringify would silently turn those into `null`), Map and Set (which
 * would silently become `{}`). Object properties whose value is `undefined` are omitted, as
 * `JSON.stringify` does. `toJSON()` is honoured (so `Date` is fine).
 */
export function findNonJson(value: unknown): { keyPath: string; what: string } | undefined {
  // The walk builds no strings: on a failure, keys are collected while unwinding.
  const stack: object[] = [];
  const visit = (v: unknown, inArray: boolean, isRoot: boolean): Failure | undefined => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return undefined;
    if (typeof v === 'number') return Number.isFinite(v) ? undefined : { keys: [], what: describe(v) };
    if (typeof v !== 'object') {
      if (v === undefined && !inArray && !isRoot) return undefined; // omitted property
      return { keys: [], what: describe(v) };
    }
    const toJSON = (v as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') {
      return visit((toJSON as (k: string) => unknown).call(v, ''), inArray, isRoot);
    }
    if (v instanceof Map || v instanceof Set) return { keys: [], what: describe(v) };
    if (stack.includes(v)) return { keys: [], what: 'a circular reference' };
    stack.push(v);
    try {
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) {
          const bad = visit(v[i], true, false);
          if (bad) {
            bad.keys.push(i);
            return bad;
          }
        }
      } else {
        for (const key in v) {
          if (!Object.hasOwn(v, key)) continue;
          const bad = visit((v as Record<string, unknown>)[key], false, false);
          if (bad) {
            bad.keys.push(key);
            return bad;
          }
        }
      }
    } finally {
      stack.pop();
    }
    return undefined;
  };
  const bad = visit(value, false, true);
  if (!bad) return undefined;
  let keyPath = '$';
  for (let k = bad.keys.length - 1; k >= 0; k--) keyPath = join(keyPath, bad.keys[k]!);
  return { keyPath, what: bad.what };
}

interface Failure {
  /** Keys from the offending value up to the root (innermost first). */
  keys: (string | number)[];
  what: string;
}

/** Throw `NOT_SERIALIZABLE` naming the key path when `value` is not JSON. */
export function assertJson(value: unknown, filePath: string): void {
  const bad = findNonJson(value);
  if (bad) {
    throw new AtomicJsonError(
      'NOT_SERIALIZABLE',
      filePath,
      `Cannot write ${filePath}: the value at ${bad.keyPath} is ${bad.what}, which JSON cannot represent. ` +
        `Nothing was written; convert it to a JSON value (string, number, boolean, null, array, plain object) first.`,
      { keyPath: bad.keyPath },
    );
  }
}

/** Serialize after checking: the text that will be written (with a trailing newline). */
export function serialize(value: unknown, filePath: string, spaces: number): string {
  assertJson(value, filePath);
  return JSON.stringify(value, null, spaces) + '\n';
}
