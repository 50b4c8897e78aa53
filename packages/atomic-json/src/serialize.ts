import { AtomicJsonError } from './errors.js';
import { randomTag } from './parse.js';

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
 * An integral `number` beyond ±(2^53 − 1) written in plain digits by `JSON.stringify` (below
 * 1e21): its shortest digits (`2**60` → `1152921504606847000`) are not its value, so such a
 * number is written as `BigInt(n)`'s exact digits instead (and reads back as that `bigint`).
 */
const isUnsafeIntegral = (v: number): boolean => Number.isInteger(v) && !Number.isSafeInteger(v) && Math.abs(v) < 1e21;

/** What a walk of a value found: the first value JSON cannot represent, and whether a `bigint` occurs. */
export interface JsonCheck {
  bad?: { keyPath: string; what: string };
  hasBigInt: boolean;
}

/**
 * Walk `value` (iteratively: any depth) and find the first value JSON cannot represent
 * faithfully, with its key path.
 *
 * Rejected: cycles, functions, symbols, non-finite numbers, `undefined` as the root or as an
 * array item (JSON.stringify would silently turn those into `null`), Map and Set (which would
 * silently become `{}`). Object properties whose value is `undefined` are omitted, as
 * `JSON.stringify` does. `toJSON()` is honoured (so `Date` is fine). A `bigint` is an integer
 * written digit for digit (the lossless form of integers outside ±(2^53 − 1)).
 */
export function checkJson(value: unknown): JsonCheck {
  // The recursive walk is faster on ordinary data; past a depth where the stack could run out,
  // the iterative one takes over (same answers).
  try {
    return checkJsonRecursive(value);
  } catch (err) {
    if (err !== TOO_DEEP) throw err;
    return checkJsonIterative(value);
  }
}

const TOO_DEEP = Symbol('too deep');
const RECURSION_LIMIT = 1000;

function checkJsonRecursive(value: unknown): JsonCheck {
  let hasBigInt = false;
  const stack: object[] = [];
  type Failure = { keys: (string | number)[]; what: string };
  const visit = (raw: unknown, inArray: boolean, isRoot: boolean, key: string): Failure | undefined => {
    let v = raw;
    if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') {
      v = (v as { toJSON: (k: string) => unknown }).toJSON(key);
    }
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return undefined;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return { keys: [], what: describe(v) };
      if (isUnsafeIntegral(v)) hasBigInt = true;
      return undefined;
    }
    if (typeof v === 'bigint') {
      hasBigInt = true;
      return undefined;
    }
    if (typeof v !== 'object') {
      if (v === undefined && !inArray && !isRoot) return undefined; // omitted property
      return { keys: [], what: describe(v) };
    }
    if (v instanceof Map || v instanceof Set) return { keys: [], what: describe(v) };
    if (stack.includes(v)) return { keys: [], what: 'a circular reference' };
    if (stack.length >= RECURSION_LIMIT) throw TOO_DEEP;
    stack.push(v);
    try {
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) {
          const bad = visit(v[i], true, false, String(i));
          if (bad) {
            bad.keys.push(i);
            return bad;
          }
        }
      } else {
        for (const k of Object.keys(v)) {
          const bad = visit((v as Record<string, unknown>)[k], false, false, k);
          if (bad) {
            bad.keys.push(k);
            return bad;
          }
        }
      }
    } finally {
      stack.pop();
    }
    return undefined;
  };
  const bad = visit(value, false, true, '');
  if (!bad) return { hasBigInt };
  let keyPath = '$';
  for (let k = bad.keys.length - 1; k >= 0; k--) keyPath = join(keyPath, bad.keys[k]!);
  return { bad: { keyPath, what: bad.what }, hasBigInt };
}

function checkJsonIterative(value: unknown): JsonCheck {
  let hasBigInt = false;
  // A frame per open container: its key path segments are rebuilt from `keys` on failure only.
  const keys: (string | number)[] = [];
  const ancestors: object[] = [];
  const ancestorSet = new Set<object>();
  type Frame = { obj: object; items: (string | number)[]; next: number; isArray: boolean };
  const frames: Frame[] = [];
  const fail = (what: string): JsonCheck => {
    let keyPath = '$';
    for (const k of keys) keyPath = join(keyPath, k);
    return { bad: { keyPath, what }, hasBigInt };
  };
  /** Check one value; returns a failure, or pushes a frame for a container. */
  const visit = (raw: unknown, inArray: boolean, isRoot: boolean): string | undefined => {
    let v = raw;
    if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') {
      v = ((v as { toJSON: (k: string) => unknown }).toJSON)(String(keys[keys.length - 1] ?? ''));
    }
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return undefined;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return describe(v);
      if (isUnsafeIntegral(v)) hasBigInt = true; // written as its exact digits, like a bigint
      return undefined;
    }
    if (typeof v === 'bigint') {
      hasBigInt = true;
      return undefined;
    }
    if (typeof v !== 'object') {
      if (v === undefined && !inArray && !isRoot) return undefined; // omitted property
      return describe(v);
    }
    if (v instanceof Map || v instanceof Set) return describe(v);
    if (ancestorSet.has(v)) return 'a circular reference';
    const isArray = Array.isArray(v);
    const items: (string | number)[] = isArray ? [] : Object.keys(v);
    frames.push({ obj: v, items, next: 0, isArray });
    ancestors.push(v);
    ancestorSet.add(v);
    return undefined;
  };
  const rootBad = visit(value, false, true);
  if (rootBad) return fail(rootBad);
  while (frames.length > 0) {
    const f = frames[frames.length - 1]!;
    const len = f.isArray ? (f.obj as unknown[]).length : f.items.length;
    if (f.next >= len) {
      frames.pop();
      ancestorSet.delete(ancestors.pop()!);
      keys.pop();
      continue;
    }
    const key = f.isArray ? f.next : f.items[f.next]!;
    f.next++;
    const item = (f.obj as Record<string | number, unknown>)[key];
    keys.push(key);
    const depth = frames.length;
    const bad = visit(item, f.isArray, false);
    if (bad) return fail(bad);
    if (frames.length === depth) keys.pop(); // a scalar: its key is done
  }
  return { hasBigInt };
}

/**
 * Find the first value in `value` that JSON cannot represent faithfully and return its key path
 * and a description, or `undefined` when the whole value is JSON: what `writeJson` refuses with
 * `NOT_SERIALIZABLE`, for packages that check a value before they start writing. Iterative, so a
 * value of any depth is checked.
 *
 * @example
 * ```ts
 * findNonJson({ a: [1, () => 2] }); // { keyPath: '$.a[1]', what: 'a function' }
 * findNonJson({ n: 2n ** 64n });   // undefined: a bigint is written as its digits
 * ```
 */
export function findNonJson(value: unknown): { keyPath: string; what: string } | undefined {
  return checkJson(value).bad;
}

function notSerializable(filePath: string, keyPath: string, what: string, cause?: unknown): AtomicJsonError {
  return new AtomicJsonError(
    'NOT_SERIALIZABLE',
    filePath,
    `Cannot write ${filePath}: the value at ${keyPath} is ${what}, which JSON cannot represent. ` +
      `Nothing was written; convert it to a JSON value (string, number, bigint, boolean, null, array, plain object) first.`,
    { keyPath, cause },
  );
}

/** Throw `NOT_SERIALIZABLE` naming the key path when `value` is not JSON; tells whether it holds a `bigint`. */
export function assertJson(value: unknown, filePath: string): JsonCheck {
  const check = checkJson(value);
  if (check.bad) throw notSerializable(filePath, check.bad.keyPath, check.bad.what);
  return check;
}

/**
 * Serialize a JSON value losslessly, with a trailing newline: `bigint`s are written as their exact
 * digits, `__proto__` own properties are kept. Checked first (see {@link checkJson}).
 *
 * @throws {AtomicJsonError} `NOT_SERIALIZABLE` naming the key path of a value JSON cannot
 *   represent, or when the value is nested too deeply or its text would be longer than a
 *   JavaScript string can hold.
 */
export function serialize(value: unknown, filePath: string, spaces: number): string {
  const { hasBigInt } = assertJson(value, filePath);
  try {
    if (!hasBigInt) return JSON.stringify(value, null, spaces) + '\n';
    // Tag each bigint as a string, then turn the tagged strings back into bare digits.
    const tag = `\u0000dawn-bigint:${randomTag()}:`;
    // The holder's raw value, not `v`: a `BigInt.prototype.toJSON` polyfill would have made `v` a string.
    const text = JSON.stringify(
      value,
      function (this: Record<string, unknown>, k: string, v: unknown) {
        const raw = this[k];
        if (typeof raw === 'bigint') return tag + raw.toString();
        if (typeof v === 'bigint') return tag + v.toString(); // a toJSON() that returned a bigint
        if (typeof raw === 'number' && isUnsafeIntegral(raw)) return tag + BigInt(raw).toString();
        return v;
      },
      spaces,
    );
    const quoted = JSON.stringify(tag).slice(1, -1).replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
    return text.replace(new RegExp(`"${quoted}(-?\\d+)"`, 'g'), '$1') + '\n';
  } catch (cause) {
    if (!(cause instanceof RangeError)) throw cause;
    // JSON.stringify recurses (too deep) or its result exceeds the longest string: not our data's fault,
    // but it cannot be written as one JSON text.
    throw notSerializable(filePath, '$', 'nested too deeply, or too large, for one JSON text', cause);
  }
}

/**
 * `JSON.stringify` made lossless: `bigint`s are written as their exact digits, `__proto__` own
 * properties are kept, and a value JSON cannot represent (cycle, function, symbol, NaN, Map...)
 * or that is nested too deeply is refused with its key path instead of being dropped or mangled.
 * The counterpart of {@link parseJson}.
 *
 * @param options.spaces indentation. @default 2
 * @param options.filePath named in errors. @default '(value)'
 * @throws {AtomicJsonError} `NOT_SERIALIZABLE` with `keyPath`.
 * @example
 * ```ts
 * stringifyJson({ ns: 1732530000123456789n }, { spaces: 0 }); // '{"ns":1732530000123456789}'
 * ```
 */
export function stringifyJson(value: unknown, options: { spaces?: number; filePath?: string } = {}): string {
  return serialize(value, options.filePath ?? '(value)', options.spaces ?? 2).slice(0, -1);
}
