import { invalid } from './errors.js';

/** A JSON value: what a peer's `metadata`, `tools`, `resources` and `prompts` may hold. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };

const IDENT = /^[A-Za-z_$][\w$]*$/;

function joinPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return IDENT.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Deep-copy `value`, checking that it is plain JSON (finite numbers, strings, booleans, null,
 * arrays, plain objects; no cycles). Throws `INVALID_FIELD` naming the path of the first bad value.
 */
export function cloneJson(value: unknown, path: string): JsonValue {
  const stack: object[] = [];
  const visit = (v: unknown, p: string): JsonValue => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
    if (typeof v === 'number') {
      if (Number.isFinite(v)) return v;
      throw invalid('INVALID_FIELD', p, `${p} is ${v}, which JSON cannot represent. Use a finite number.`);
    }
    if (typeof v !== 'object') {
      throw invalid('INVALID_FIELD', p, `${p} is ${v === undefined ? 'undefined' : `a ${typeof v}`}, which JSON cannot represent. Use a JSON value.`);
    }
    if (stack.includes(v)) throw invalid('INVALID_FIELD', p, `${p} is a circular reference. Use plain JSON data.`);
    stack.push(v);
    try {
      if (Array.isArray(v)) {
        const out: JsonValue[] = new Array<JsonValue>(v.length);
        for (let i = 0; i < v.length; i++) out[i] = visit(v[i], joinPath(p, i));
        return out;
      }
      if (!isPlainObject(v)) {
        throw invalid('INVALID_FIELD', p, `${p} is a ${v.constructor?.name ?? 'non-plain object'}, which JSON cannot represent faithfully. Use a plain object.`);
      }
      const out: JsonObject = {};
      for (const key of Object.keys(v)) {
        const item = (v as Record<string, unknown>)[key];
        if (item === undefined) continue; // omitted, as JSON.stringify does
        out[key] = visit(item, joinPath(p, key));
      }
      return out;
    } finally {
      stack.pop();
    }
  };
  return visit(value, path);
}

/** Structural equality of two JSON values (key order ignored). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}
