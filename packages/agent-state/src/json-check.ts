/**
 * The JSON check run on a state before anything touches the disk. It applies the same rules
 * as `@dawn/atomic-json`'s serializer (which checks again when writing), so a state that
 * passes here is written, and one that fails is refused with its key path.
 */

const IDENT = /^[A-Za-z_$][\w$]*$/;

function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return IDENT.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function describe(value: unknown): string {
  switch (typeof value) {
    case 'undefined':
      return 'undefined';
    case 'bigint':
      return `the BigInt ${value}n`;
    case 'function':
      return 'a function';
    case 'symbol':
      return 'a symbol';
    case 'number':
      return String(value);
    default:
      if (value instanceof Map) return 'a Map';
      if (value instanceof Set) return 'a Set';
      return typeof value;
  }
}

/** Where and what the first non-JSON value is. */
export interface NonJson {
  /** e.g. `$.state.tasks[2].due` */
  keyPath: string;
  /** e.g. `a function`, `the BigInt 10n`, `a circular reference` */
  what: string;
}

/**
 * The first value inside `value` that JSON cannot represent faithfully, or `undefined`.
 * Rejected: cycles, BigInt, functions, symbols, non-finite numbers, `undefined` as the root
 * or an array item, Map, Set. Object properties holding `undefined` are omitted (as
 * `JSON.stringify` does); `toJSON()` is honoured (so `Date` is fine).
 *
 * The walk keeps the keys on a stack and builds the key path only when it finds a bad value:
 * checking a 1 MB state then costs a fraction of serializing it.
 */
export function findNonJson(value: unknown, rootPath = '$'): NonJson | undefined {
  const seen: object[] = [];
  const keys: (string | number)[] = [];
  const fail = (what: string): NonJson => ({ keyPath: keys.reduce<string>((p, k) => join(p, k), rootPath), what });
  const visit = (v: unknown, omittable: boolean): NonJson | undefined => {
    if (v === null) return undefined;
    switch (typeof v) {
      case 'string':
      case 'boolean':
        return undefined;
      case 'number':
        return Number.isFinite(v) ? undefined : fail(describe(v));
      case 'object':
        break;
      default:
        return v === undefined && omittable ? undefined : fail(describe(v));
    }
    const obj = v as object;
    const toJSON = (obj as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return visit((toJSON as (k: string) => unknown).call(obj, ''), omittable);
    if (obj instanceof Map || obj instanceof Set) return fail(describe(obj));
    if (seen.includes(obj)) return fail('a circular reference');
    seen.push(obj);
    if (Array.isArray(obj)) {
      for (let i = 0; i < obj.length; i++) {
        keys.push(i);
        const bad = visit(obj[i], false);
        if (bad) return bad;
        keys.pop();
      }
    } else {
      for (const key of Object.keys(obj)) {
        keys.push(key);
        const bad = visit((obj as Record<string, unknown>)[key], true);
        if (bad) return bad;
        keys.pop();
      }
    }
    seen.pop();
    return undefined;
  };
  return visit(value, false);
}
