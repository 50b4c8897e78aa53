/** A JSON primitive. */
export type JsonPrimitive = string | number | boolean | null;

/** Any JSON value. */
export type JsonValue = JsonPrimitive | JsonValue[] | JsonObject;

/**
 * A JSON object. Properties whose value is `undefined` are allowed and omitted when written
 * (as `JSON.stringify` does), so optional properties type-check.
 */
export interface JsonObject {
  [key: string]: JsonValue | undefined;
}
