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
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail(`expected a property name, found ${JSON.stringify(text[i])}`);
        str();
        ws();
        if (text[i] !== ':') fail(`expected ':', found ${JSON.stringify(text[i])}`);
        i++;
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        fail(`expected ',' or '}', found ${JSON.stringify(text[i])}`);
      }
    } else if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        fail(`expected ',' or ']', found ${JSON.stringify(text[i])}`);
      }
    } else if (c === '"') str();
    else if (c === 't') lit('true');
    else if (c === 'f') lit('false');
    else if (c === 'n') lit('null');
    else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) num();
    else unexpected();
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

/** Parse a file's text, or throw `PARSE` with the path, line and column. */
export function parseJsonText(text: string, filePath: string): unknown {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return JSON.parse(text);
  } catch (cause) {
    if (text.trim() === '') {
      throw new AtomicJsonError(
        'PARSE',
        filePath,
        `Cannot parse ${filePath}: the file is empty. It was left untouched; restore it from a backup or remove it and retry.`,
        { cause, line: 1, column: 1 },
      );
    }
    const { offset, reason } = locateJsonError(text);
    const { line, column } = lineColumn(text, offset);
    throw new AtomicJsonError(
      'PARSE',
      filePath,
      `Cannot parse ${filePath} at line ${line}, column ${column}: ${reason}. ` +
        `The file was left untouched; fix or move it and retry.`,
      { cause, line, column },
    );
  }
}
