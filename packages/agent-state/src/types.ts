/**
 * A JSON primitive. Integers beyond ±(2^53 − 1) — which Python writes — are `bigint`, read and
 * written back digit for digit (see `@dawn/atomic-json`).
 */
export type JsonPrimitive = string | number | bigint | boolean | null;

/** Any JSON value. */
export type JsonValue = JsonPrimitive | JsonValue[] | JsonObject;

/**
 * A JSON object. Properties whose value is `undefined` are allowed and omitted when written
 * (as `JSON.stringify` does), so optional properties type-check.
 */
export interface JsonObject {
  [key: string]: JsonValue | undefined;
}
