import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { AtomicJsonError, readJson, updateJson, writeJson } from './index.js';
import { findNonJson } from './serialize.js';

const tempDir = useTempDir('aj-serialize-');

const cycle = () => {
  const root: Record<string, unknown> = { peers: [{ id: 'a' }] };
  (root.peers as Record<string, unknown>[])[0]!.owner = root;
  return root;
};

/** Values JSON cannot represent, and the key path the error must name. */
const table: [name: string, value: () => unknown, keyPath: string][] = [
  ['a cycle', cycle, '$.peers[0].owner'],
  ['a nested symbol', () => ({ stats: { bytes: Symbol('b') } }), '$.stats.bytes'],
  ['a function', () => ({ onSave() {} }), '$.onSave'],
  ['a symbol', () => ({ tag: Symbol('x') }), '$.tag'],
  ['undefined as the root', () => undefined, '$'],
  ['NaN', () => ({ scores: [1, NaN] }), '$.scores[1]'],
  ['Infinity (under a key that is not an identifier)', () => ({ 'health score': Infinity }), '$["health score"]'],
  ['-Infinity', () => [-Infinity], '$[0]'],
  ['a Map', () => ({ index: new Map([['a', 1]]) }), '$.index'],
  ['a Set', () => ({ tags: new Set(['a']) }), '$.tags'],
  ['undefined in an array', () => ({ list: [1, undefined, 3] }), '$.list[1]'],
  ['a function at the root', () => () => 1, '$'],
];

describe('NOT_SERIALIZABLE: a value that is not JSON is refused before anything is touched', () => {
  for (const [name, make, keyPath] of table) {
    it(`${name} -> ${keyPath}`, async () => {
      const dir = await tempDir();
      const file = join(dir, 'state.json');
      await writeJson(file, { previous: true });
      const before = { names: await readdir(dir), bytes: await readFile(file), mtime: (await stat(file)).mtimeMs };

      const err = await writeJson(file, make()).catch((e: unknown) => e);
      expect(AtomicJsonError.is(err)).toBe(true);
      const e = err as AtomicJsonError;
      expect(e.code).toBe('NOT_SERIALIZABLE');
      expect(e.keyPath).toBe(keyPath);
      expect(e.path).toBe(file);
      expect(e.message).toContain(file);
      expect(e.message).toContain(keyPath);
      expect(e.message).toContain('Nothing was written');

      // Same through updateJson: the function's result is refused, the file stays.
      const err2 = await updateJson(file, () => make()).catch((x: unknown) => x);
      expect((err2 as AtomicJsonError).code).toBe('NOT_SERIALIZABLE');
      expect((err2 as AtomicJsonError).keyPath).toBe(keyPath);

      // Nothing touched: same entries (no temp file, no lock dir), same bytes, same mtime.
      expect(await readdir(dir)).toEqual(before.names);
      expect(await readFile(file)).toEqual(before.bytes);
      expect((await stat(file)).mtimeMs).toBe(before.mtime);
    });
  }

  it('rejects a non-JSON `default` before touching anything', async () => {
    const dir = await tempDir();
    const file = join(dir, 'missing.json');
    const err = await readJson(file, { default: { n: Symbol('x') } }).catch((e: unknown) => e);
    expect((err as AtomicJsonError).code).toBe('NOT_SERIALIZABLE');
    expect((err as AtomicJsonError).keyPath).toBe('$.n');
    expect(await readdir(dir)).toEqual([]);
  });

  it('throws synchronously-checked errors as rejections, never from a timer', async () => {
    const p = writeJson('/nonexistent-dir/x.json', { f: () => 1 });
    await expect(p).rejects.toMatchObject({ code: 'NOT_SERIALIZABLE', keyPath: '$.f' });
  });
});

describe('what JSON.stringify accepts faithfully is written', () => {
  it('omits undefined object properties, honours toJSON (Date), writes 2-space JSON with a newline', async () => {
    const dir = await tempDir();
    const file = join(dir, 'ok.json');
    const at = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
    await writeJson(file, { a: 1, gone: undefined, at, nested: { list: [true, null, 'ü'] } });
    expect(await readFile(file, 'utf8')).toBe(
      '{\n  "a": 1,\n  "at": "2024-01-02T03:04:05.000Z",\n  "nested": {\n    "list": [\n      true,\n      null,\n      "ü"\n    ]\n  }\n}\n',
    );
  });

  it('shared (non-cyclic) references are fine', () => {
    const shared = { x: 1 };
    expect(findNonJson({ a: shared, b: [shared, shared] })).toBeUndefined();
  });

  it('honours the spaces option', async () => {
    const dir = await tempDir();
    const file = join(dir, 'ok.json');
    await writeJson(file, { a: [1] }, { spaces: 0 });
    expect(await readFile(file, 'utf8')).toBe('{"a":[1]}\n');
  });
});
