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
 */
export function findNonJson(value: unknown, rootPath = '$'): NonJson | undefined {
  const stack: object[] = [];
  const visit = (v: unknown, path: string, omittable: boolean): NonJson | undefined => {
    if (v === null) return undefined;
    switch (typeof v) {
      case 'string':
      case 'boolean':
        return undefined;
      case 'number':
        return Number.isFinite(v) ? undefined : { keyPath: path, what: describe(v) };
      case 'object':
        break;
      default:
        return v === undefined && omittable ? undefined : { keyPath: path, what: describe(v) };
    }
    const obj = v as object;
    const toJSON = (obj as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return visit((toJSON as (k: string) => unknown).call(obj, ''), path, omittable);
    if (obj instanceof Map || obj instanceof Set) return { keyPath: path, what: describe(obj) };
    if (stack.includes(obj)) return { keyPath: path, what: 'a circular reference' };
    stack.push(obj);
    try {
      if (Array.isArray(obj)) {
        for (let i = 0; i < obj.length; i++) {
          const bad = visit(obj[i], join(path, i), false);
          if (bad) return bad;
        }
      } else {
        for (const key of Object.keys(obj)) {
          const bad = visit((obj as Record<string, unknown>)[key], join(path, key), true);
          if (bad) return bad;
        }
      }
    } finally {
      stack.pop();
    }
    return undefined;
  };
  return visit(value, rootPath, false);
}
