import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { AtomicJsonError, parseJson, readJson, updateJson, writeJson } from './index.js';
import { mayHoldLongInteger } from './parse.js';

const tempDir = useTempDir('aj-parse-');

/** Corrupt files and where the error must point (1-based line and column). */
const corrupt: [name: string, text: string, line: number, column: number][] = [
  ['an empty file', '', 1, 1],
  ['a file of whitespace', '  \n\n', 1, 1],
  ['a trailing comma', '{"a": 1,}', 1, 9],
  ['a missing comma on line 3', '{\n  "a": 1\n  "b": 2\n}\n', 3, 3],
  ['a truncated file (torn write of another tool)', '{\n  "peers": [1, 2', 2, 17],
  ['single quotes', "{'a': 1}", 1, 2],
  ['trailing garbage', '[1, 2]]\n', 1, 7],
  ['a control character in a string', '{\n"a": "x\u0001"}', 2, 8],
];

describe('PARSE: a corrupt file is reported with path, line and column, and never overwritten', () => {
  for (const [name, text, line, column] of corrupt) {
    it(`${name} -> line ${line}, column ${column}`, async () => {
      const dir = await tempDir();
      const file = join(dir, 'peer_registry.json');
      await writeFile(file, text);

      const err = await readJson(file).catch((e: unknown) => e);
      expect(AtomicJsonError.is(err)).toBe(true);
      const e = err as AtomicJsonError;
      expect(e.code).toBe('PARSE');
      expect(e.path).toBe(file);
      expect(e.line).toBe(line);
      expect(e.column).toBe(column);
      expect(e.message).toContain(file);
      if (text.trim() !== '') expect(e.message).toContain(`line ${line}, column ${column}`);
      expect(e.message).toMatch(/left untouched/);

      // A default is for a missing file, never for a corrupt one.
      await expect(readJson(file, { default: { peers: [] } })).rejects.toMatchObject({ code: 'PARSE' });

      // updateJson over a corrupt file fails too, before calling fn, and leaves the bytes alone.
      let called = false;
      const uerr = await updateJson(
        file,
        () => {
          called = true;
          return { peers: [] };
        },
        { default: { peers: [] } },
      ).catch((x: unknown) => x);
      expect((uerr as AtomicJsonError).code).toBe('PARSE');
      expect((uerr as AtomicJsonError).line).toBe(line);
      expect(called).toBe(false);
      expect(await readFile(file, 'utf8')).toBe(text);
      expect(await readdir(dir)).toEqual(['peer_registry.json']);
    });
  }

  it('a batch of updates over a corrupt file all fail and write nothing', async () => {
    const dir = await tempDir();
    const file = join(dir, 'c.json');
    await writeFile(file, '{"n": ');
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () => updateJson<{ n: number }>(file, (c) => ({ n: (c?.n ?? 0) + 1 }))),
    );
    expect(results.every((r) => r.status === 'rejected' && (r.reason as AtomicJsonError).code === 'PARSE')).toBe(true);
    expect(await readFile(file, 'utf8')).toBe('{"n": ');
  });

  it('writeJson replaces a corrupt file (the caller supplies the whole document)', async () => {
    const dir = await tempDir();
    const file = join(dir, 'c.json');
    await writeFile(file, '{"n": ');
    await writeJson(file, { n: 1 });
    expect(await readJson(file)).toEqual({ n: 1 });
  });

  it('a UTF-8 byte order mark is accepted', async () => {
    const dir = await tempDir();
    const file = join(dir, 'bom.json');
    await writeFile(file, '\ufeff{"a": "ü"}');
    expect(await readJson(file)).toEqual({ a: 'ü' });
  });
});

describe('NOT_FOUND and default', () => {
  it('a missing file without a default is NOT_FOUND naming the path', async () => {
    const dir = await tempDir();
    const file = join(dir, 'nope.json');
    const err = await readJson(file).catch((e: unknown) => e);
    expect(AtomicJsonError.is(err)).toBe(true);
    expect((err as AtomicJsonError).code).toBe('NOT_FOUND');
    expect((err as AtomicJsonError).path).toBe(file);
    expect((err as Error).message).toContain(file);
    expect(await readdir(dir)).toEqual([]);
  });

  it('a missing file with a default gives a fresh copy of it and writes nothing', async () => {
    const dir = await tempDir();
    const file = join(dir, 'nope.json');
    const def = { peers: [] as string[] };
    const a = await readJson<typeof def>(file, { default: def });
    a.peers.push('mutated');
    const b = await readJson<typeof def>(file, { default: def });
    expect(b).toEqual({ peers: [] });
    expect(def.peers).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
  });

  it('updateJson gives fn the default (or undefined) for a missing file', async () => {
    const dir = await tempDir();
    const seen: unknown[] = [];
    await updateJson(join(dir, 'a.json'), (c) => (seen.push(c), { n: 1 }));
    await updateJson(join(dir, 'b.json'), (c) => (seen.push(c), { n: 2 }), { default: { n: 0 } });
    expect(seen).toEqual([undefined, { n: 0 }]);
    expect(await readJson(join(dir, 'b.json'))).toEqual({ n: 2 });
  });

  it('a path whose directory does not exist yet is created on write', async () => {
    const dir = await tempDir();
    const file = join(dir, 'agents', 'a1', 'state.json');
    await writeJson(file, { ok: 1 });
    expect(await readJson(file)).toEqual({ ok: 1 });
  });

  it('reading a directory is IO, not NOT_FOUND', async () => {
    const dir = await tempDir();
    await expect(readJson(dir)).rejects.toMatchObject({ code: 'IO', path: dir });
  });
});

describe('the pre-scan for long integers', () => {
  /** The pre-scan it replaced: a regular expression over the whole text. */
  const byRegex = (t: string) => /[:[,][ \t\r\n]*-?\d{16}/.test(t) || /^[ \t\r\n]*-?\d{16}/.test(t);

  it('finds a long integer at every alignment, and agrees with a regular expression on random texts', () => {
    for (let pad = 0; pad < 40; pad++) {
      for (const text of [`${' '.repeat(pad)}[12345678901234567890]`, `{"${'k'.repeat(pad)}":-9223372036854775809}`, `${'\n'.repeat(pad)}18446744073709551615`]) {
        expect(mayHoldLongInteger(text), text).toBe(true);
        const v = parseJson(text);
        expect(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x))).toMatch(/\d{20}n|\d{19}n/);
      }
    }
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    const alphabet = '0123456789012345678901234567890123456789:[,-" \nab';
    for (let t = 0; t < 3000; t++) {
      let text = '';
      const len = rnd(120);
      for (let i = 0; i < len; i++) text += alphabet[rnd(alphabet.length)];
      expect(mayHoldLongInteger(text), JSON.stringify(text)).toBe(byRegex(text));
    }
  });
});
