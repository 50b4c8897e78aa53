import { AtomicJsonError } from './errors.js';

/**
 * Locate the first JSON syntax error in `text` (a small strict scanner, run only after
 * `JSON.parse` failed, so we never depend on the engine's message wording).
 */
export function locateJsonError(text: string): { offset: number; reason: string } {
  let i = 0;
  const n = text.length;
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };
  class Stop {
    constructor(
      readonly offset: number,
      readonly reason: string,
    ) {}
  }
  const fail = (reason: string): never => {
    throw new Stop(i, i >= n ? 'unexpected end of file' : reason);
  };
  const unexpected = () => fail(`unexpected character ${JSON.stringify(text[i])}`);
  const lit = (word: string) => {
    for (let k = 0; k < word.length; k++, i++) if (text[i] !== word[k]) unexpected();
  };
  const str = () => {
    i++; // opening quote
    for (;;) {
      if (i >= n) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail('control character in string');
      if (c === 0x5c) {
        i++;
        const e = text[i];
        if (e === 'u') {
          i++;
          for (let k = 0; k < 4; k++, i++) if (!/[0-9a-fA-F]/.test(text[i] ?? '')) fail('bad \\u escape');
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else fail('bad escape');
      } else i++;
    }
  };
  const num = () => {
    if (text[i] === '-') i++;
    if (text[i] === '0') i++;
    else if (/[1-9]/.test(text[i] ?? '')) while (/[0-9]/.test(text[i] ?? '')) i++;
    else unexpected();
    if (text[i] === '.') {
      i++;
      if (!/[0-9]/.test(text[i] ?? '')) unexpected();
      while (/[0-9]/.test(text[i] ?? '')) i++;
    }
    if (text[i] === 'e' || text[i] === 'E') {
      i++;
      if (text[i] === '+' || text[i] === '-') i++;
      if (!/[0-9]/.test(text[i] ?? '')) unexpected();
      while (/[0-9]/.test(text[i] ?? '')) i++;
    }
  };
  const key = () => {
    ws();
    if (text[i] !== '"') fail(`expected a property name, found ${JSON.stringify(text[i])}`);
    str();
    ws();
    if (text[i] !== ':') fail(`expected ':', found ${JSON.stringify(text[i])}`);
    i++;
  };
  // Iterative (an explicit stack of open containers), so nesting of any depth is scanned.
  const value = (): void => {
    const open: string[] = [];
    for (;;) {
      ws();
      const c = text[i];
      let scalar = true;
      if (c === '{' || c === '[') {
        i++;
        ws();
        if (text[i] === (c === '{' ? '}' : ']')) i++;
        else {
          open.push(c);
          if (c === '{') key();
          scalar = false;
        }
      } else if (c === '"') str();
      else if (c === 't') lit('true');
      else if (c === 'f') lit('false');
      else if (c === 'n') lit('null');
      else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) num();
      else unexpected();
      if (!scalar) continue;
      // After a complete value: close containers or move to the next item.
      for (;;) {
        const top = open[open.length - 1];
        if (top === undefined) return;
        ws();
        const close = top === '{' ? '}' : ']';
        if (text[i] === ',') {
          i++;
          if (top === '{') key();
          break;
        }
        if (text[i] === close) {
          i++;
          open.pop();
          continue;
        }
        fail(`expected ',' or '${close}', found ${JSON.stringify(text[i])}`);
      }
    }
  };
  try {
    value();
    ws();
    if (i < n) unexpected();
  } catch (e) {
    if (e instanceof Stop) return { offset: e.offset, reason: e.reason };
    throw e;
  }
  return { offset: n, reason: 'invalid JSON' };
}

/** 1-based line and column of a character offset. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let k = 0; k < offset && k < text.length; k++) {
    if (text.charCodeAt(k) === 0x0a) {
      line++;
      lineStart = k + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

/**
 * A JSON value as `@dawn/atomic-json` reads and writes it: plain JSON, except that integers outside
 * ±(2^53 − 1) — which Python writes (`time.time_ns()`, 2**63 counters, ids) and a `number` would
 * round — are `bigint`, so every value read and written back keeps its exact digits. Keys such as
 * `__proto__` are ordinary own properties.
 *
 * @example
 * ```ts
 * const v: JsonValue = { counter: 9223372036854775808n, tags: ['a'], ok: true };
 * ```
 */
export type JsonValue = null | boolean | number | bigint | string | JsonValue[] | JsonObject;

/**
 * A JSON object ({@link JsonValue}).
 * @example
 * ```ts
 * const o: JsonObject = { __proto__: 'just data' } as JsonObject;
 * ```
 */
export interface JsonObject {
  [key: string]: JsonValue;
}

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const CANONICAL_INTEGER = /^-?(?:0|[1-9]\d*)$/;

/**
 * Could `text` hold an integer of 16 digits or more (a candidate for an unsafe integer)? That is:
 * a run of 16+ digits right after `:`, `[`, `,` or the start of the text, maybe after white space
 * and a `-`. Any such run covers a position `i` with `i % 16 === 15`, so only those positions are
 * looked at (a digit there is widened to its whole run): about 1/16 of the characters, several
 * times faster than a regular expression over a large file. Digits inside strings rarely follow
 * those characters, and a false positive only costs the exact path.
 */
export function mayHoldLongInteger(text: string): boolean {
  const n = text.length;
  for (let i = 15; i < n; i += 16) {
    if (!isDigit(text.charCodeAt(i))) continue;
    let start = i;
    while (start > 0 && isDigit(text.charCodeAt(start - 1))) start--;
    let end = i + 1;
    while (end < n && isDigit(text.charCodeAt(end))) end++;
    if (end - start >= 16) {
      let k = start - 1;
      if (k >= 0 && text.charCodeAt(k) === 0x2d) k--;
      while (k >= 0 && isSpace(text.charCodeAt(k))) k--;
      if (k < 0) return true;
      const c = text.charCodeAt(k);
      if (c === 0x3a || c === 0x5b || c === 0x2c) return true;
    }
    // Go on from the first position of the form 16k + 15 at or after the run's end.
    i = end + ((31 - (end % 16)) % 16) - 16;
  }
  return false;
}

/**
 * Rewrite every integer token outside ±(2^53 − 1) into the string `quoted + digits + '"'`, with a
 * scanner that knows string boundaries (digits inside strings are never touched; strings are
 * skipped with `indexOf`, so a 100 MB string costs no stack). A token is rewritten only where the
 * grammar has a value — after `[`, `:`, `,` or the start, before `,`, `]`, `}` or the end — so the
 * rewrite never turns invalid text into valid text; an unterminated string stops the rewrite
 * (JSON.parse then reports the error).
 */
function tagUnsafeIntegers(text: string, quoted: string): string {
  const parts: string[] = [];
  const n = text.length;
  let copied = 0;
  let prev = -1; // the previous significant character outside strings; -1: the start
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let from = i + 1;
      for (;;) {
        const q = text.indexOf('"', from);
        if (q < 0) return text;
        let k = q - 1;
        while (k > i && text.charCodeAt(k) === 0x5c) k--;
        if ((q - 1 - k) % 2 === 0) {
          i = q + 1;
          break;
        }
        from = q + 1;
      }
      prev = 0x22;
      continue;
    }
    if (c === 0x2d || isDigit(c)) {
      const start = i;
      if (c === 0x2d) i++;
      while (i < n && isDigit(text.charCodeAt(i))) i++;
      let integral = true;
      if (i < n && text.charCodeAt(i) === 0x2e) {
        integral = false;
        i++;
        while (i < n && isDigit(text.charCodeAt(i))) i++;
      }
      if (i < n && (text.charCodeAt(i) | 0x20) === 0x65) {
        integral = false;
        i++;
        if (i < n && (text.charCodeAt(i) === 0x2b || text.charCodeAt(i) === 0x2d)) i++;
        while (i < n && isDigit(text.charCodeAt(i))) i++;
      }
      if (integral && i - start >= 16 && (prev === -1 || prev === 0x3a || prev === 0x5b || prev === 0x2c)) {
        let k = i;
        while (k < n && isSpace(text.charCodeAt(k))) k++;
        const next = k < n ? text.charCodeAt(k) : -1;
        const token = text.slice(start, i);
        if ((next === -1 || next === 0x2c || next === 0x5d || next === 0x7d) && CANONICAL_INTEGER.test(token) && !Number.isSafeInteger(Number(token))) {
          parts.push(text.slice(copied, start), quoted, token, '"');
          copied = i;
        }
      }
      prev = 0x30;
      continue;
    }
    if (!isSpace(c)) prev = c;
    i++;
  }
  if (parts.length === 0) return text;
  parts.push(text.slice(copied));
  return parts.join('');
}

const fatalDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** The largest string V8 makes (`buffer.constants.MAX_STRING_LENGTH`). */
export const MAX_TEXT_LENGTH = 0x1fffffe8;

function parseError(filePath: string, message: string, cause?: unknown, line = 1, column = 1): AtomicJsonError {
  return new AtomicJsonError('PARSE', filePath, message, { cause, line, column });
}

/**
 * Parse JSON text (or UTF-8 bytes) losslessly: integers outside ±(2^53 − 1) become `bigint`,
 * `__proto__` keys stay own data properties, nesting of any depth is fine. Text without long
 * integers takes `JSON.parse` alone (no cost over it); otherwise big-integer tokens are rewritten
 * to tagged strings, parsed, and turned into `bigint`s in one pass.
 *
 * @param filePath named in errors. @default '(text)'
 * @throws {AtomicJsonError} `PARSE` with `line` and `column` when the text is not JSON, is not
 *   valid UTF-8, or is longer than a JavaScript string can hold.
 * @example
 * ```ts
 * parseJson('{"n": 9223372036854775808}'); // { n: 9223372036854775808n }
 * ```
 */
export function parseJson(input: string | Uint8Array, filePath = '(text)'): JsonValue {
  let text = typeof input === 'string' ? input : decodeText(input, filePath);
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const exact = mayHoldLongInteger(text);
  let tag: string | undefined;
  let source = text;
  if (exact) {
    tag = `\u0000dawn-bigint:${randomTag()}:`;
    const quoted = JSON.stringify(tag).slice(0, -1); // `"\u0000dawn-bigint:…:` as JSON text
    source = tagUnsafeIntegers(text, quoted);
  }
  let value: unknown;
  try {
    value = JSON.parse(source);
  } catch (cause) {
    throw describeParseFailure(text, filePath, cause);
  }
  return tag === undefined ? (value as JsonValue) : reviveBigInts(value, tag);
}

/**
 * Decode UTF-8 bytes strictly.
 * @throws {AtomicJsonError} `PARSE` when they are not valid UTF-8 or too long for a string.
 */
export function decodeText(input: Uint8Array, filePath: string): string {
  if (input.length > MAX_TEXT_LENGTH * 3) throw tooLarge(filePath, input.length);
  try {
    return fatalDecoder.decode(input);
  } catch (cause) {
    if (!(cause instanceof TypeError)) throw tooLarge(filePath, input.length, cause);
    const { offset } = firstInvalidUtf8(input);
    throw parseError(
      filePath,
      `Cannot parse ${filePath}: byte ${offset} is not valid UTF-8. The file was left untouched; fix or move it and retry.`,
      cause,
    );
  }
}

function tooLarge(filePath: string, bytes: number, cause?: unknown): AtomicJsonError {
  return parseError(
    filePath,
    `Cannot parse ${filePath}: its ${bytes} bytes are more text than a JavaScript string can hold (${MAX_TEXT_LENGTH} characters). ` +
      `It was left untouched; split the data or move the file aside.`,
    cause,
  );
}

/** 24 random hex digits (unpredictable: data cannot forge a tag). */
export function randomTag(): string {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

/** Replace tagged strings by `bigint`s, iteratively (any depth), keeping `__proto__` keys as data. */
function reviveBigInts(root: unknown, tag: string): JsonValue {
  const revive = (v: unknown): unknown =>
    typeof v === 'string' && v.startsWith(tag) ? BigInt(v.slice(tag.length)) : v;
  const top = revive(root);
  const stack: unknown[] = [top];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object') continue;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const item: unknown = v[i];
        if (typeof item === 'string') v[i] = revive(item);
        else if (item !== null && typeof item === 'object') stack.push(item);
      }
    } else {
      const o = v as Record<string, unknown>;
      for (const key of Object.keys(o)) {
        const item = o[key];
        if (typeof item === 'string') {
          const r = revive(item);
          if (r !== item) Object.defineProperty(o, key, { value: r, writable: true, enumerable: true, configurable: true });
        } else if (item !== null && typeof item === 'object') stack.push(item);
      }
    }
  }
  return top as JsonValue;
}

function firstInvalidUtf8(bytes: Uint8Array): { offset: number } {
  // Binary search the longest valid prefix (a prefix may end mid-character: stream mode, no flush).
  let lo = 0;
  let hi = bytes.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, mid), { stream: true });
      lo = mid;
    } catch {
      hi = mid - 1;
    }
  }
  return { offset: lo };
}

function describeParseFailure(text: string, filePath: string, cause: unknown): AtomicJsonError {
  if (text.trim() === '') {
    return parseError(
      filePath,
      `Cannot parse ${filePath}: the file is empty. It was left untouched; restore it from a backup or remove it and retry.`,
      cause,
    );
  }
  let located: { offset: number; reason: string };
  try {
    located = locateJsonError(text);
  } catch {
    // The scanner recurses; text nested too deeply for it still failed JSON.parse.
    located = { offset: 0, reason: 'invalid JSON' };
  }
  const { line, column } = lineColumn(text, located.offset);
  return parseError(
    filePath,
    `Cannot parse ${filePath} at line ${line}, column ${column}: ${located.reason}. The file was left untouched; fix or move it and retry.`,
    cause,
    line,
    column,
  );
}

/** Parse a file's text, or throw `PARSE` with the path, line and column. */
export function parseJsonText(text: string | Uint8Array, filePath: string): JsonValue {
  return parseJson(text, filePath);
}
