import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AtomicJsonError, JsonFile, parseJson, readJson, stringifyJson, updateJson, writeJson, writeJsonSync, type JsonValue } from './index.js';

const tempDir = useTempDir('aj-lossless-');

const hasPython = spawnSync('python3', ['-c', 'pass']).status === 0;

/** Snapshot of a directory: names, and the bytes and mtime of one file. */
async function snapshot(dir: string, file: string) {
  return { names: (await readdir(dir)).sort(), bytes: await readFile(file), mtime: (await stat(file)).mtimeMs };
}

describe('integers beyond ±2^53 keep their exact digits', () => {
  const big = [
    '9223372036854775808', // 2**63
    '-9223372036854775809',
    '9007199254740992', // 2**53: the first integer a number cannot tell from its neighbour
    '18446744073709551615',
    '123456789012345678901234567890123456789012345678901234567890',
  ];

  it('parses them as bigint and keeps safe integers and floats as numbers', () => {
    const v = parseJson(`{"a": [${big.join(', ')}], "safe": 9007199254740991, "f": 1.5e300, "g": 12345678901234567.5}`) as {
      a: bigint[];
      safe: number;
      f: number;
      g: number;
    };
    expect(v.a).toEqual(big.map((d) => BigInt(d)));
    expect(v.safe).toBe(9007199254740991);
    expect(v.f).toBe(1.5e300);
    expect(typeof v.g).toBe('number');
  });

  it('never touches digits inside strings, also after a separator', () => {
    const text = '{"k": "x: 12345678901234567890, [12345678901234567890", "n": 12345678901234567890}';
    const v = parseJson(text) as { k: string; n: bigint };
    expect(v.k).toBe('x: 12345678901234567890, [12345678901234567890');
    expect(v.n).toBe(12345678901234567890n);
    expect(parseJson('12345678901234567890')).toBe(12345678901234567890n);
    expect(parseJson('[-12345678901234567890]')).toEqual([-12345678901234567890n]);
  });

  it('a rewrite through updateJson writes untouched fields back digit for digit', async () => {
    const file = join(await tempDir(), 'doc.json');
    const text = `{\n  "ns": ${big[0]},\n  "list": [\n    ${big.slice(1).join(',\n    ')}\n  ],\n  "n": 1\n}\n`;
    await writeFile(file, text);
    await updateJson<{ n: number }>(file, (c) => ({ ...c!, n: 2 }));
    expect(await readFile(file, 'utf8')).toBe(text.replace('"n": 1', '"n": 2'));
  });

  it('writeJson accepts bigint and writes its digits', async () => {
    const file = join(await tempDir(), 'doc.json');
    await writeJson(file, { id: 2n ** 64n, neg: -(2n ** 70n), small: 5n });
    expect(await readFile(file, 'utf8')).toBe('{\n  "id": 18446744073709551616,\n  "neg": -1180591620717411303424,\n  "small": 5\n}\n');
    // A small bigint reads back as a number (its JSON is the same); big ones as bigint.
    expect(await readJson(file)).toEqual({ id: 2n ** 64n, neg: -(2n ** 70n), small: 5 });
  });

  it.skipIf(!hasPython)('Python reads our rewrite of its own file with the exact integers', async () => {
    const file = join(await tempDir(), 'py.json');
    const py = `import json,sys\njson.dump({"ns": 2**63, "ids": [-2**64, 2**53 + 1], "t": 1732530000.123456, "s": "é"}, open(sys.argv[1], "w"), indent=2)`;
    execFileSync('python3', ['-c', py, file]);
    const original = await readFile(file, 'utf8');
    await updateJson(file, (c) => c); // unchanged: not rewritten
    await updateJson<Record<string, JsonValue>>(file, (c) => ({ ...c!, extra: true }));
    const check = `import json,sys\nd=json.load(open(sys.argv[1]))\nassert d["ns"]==2**63 and d["ids"]==[-2**64, 2**53+1] and d["t"]==1732530000.123456 and d["extra"] is True, d\nprint("ok")`;
    expect(execFileSync('python3', ['-c', check, file], { encoding: 'utf8' }).trim()).toBe('ok');
    const text = await readFile(file, 'utf8');
    expect(original).toContain('9223372036854775808');
    expect(text).toContain('"ns": 9223372036854775808');
    expect(text).toContain('-18446744073709551616');
    expect(text).toContain('9007199254740993');
  });
});

describe('__proto__ and other special keys are plain data', () => {
  it('parse, update and write keep them as own properties, with no prototype pollution', async () => {
    const file = join(await tempDir(), 'meta.json');
    const text = '{\n  "__proto__": {\n    "polluted": 99999999999999999999\n  },\n  "constructor": {\n    "prototype": 1\n  },\n  "toString": "x"\n}\n';
    await writeFile(file, text);
    const v = (await readJson(file)) as Record<string, unknown>;
    expect(Object.hasOwn(v, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect((v as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    await updateJson<Record<string, unknown>>(file, (c) => ({ ...c!, n: 1 }));
    expect(await readFile(file, 'utf8')).toBe(text.replace(/\n}\n$/, ',\n  "n": 1\n}\n'));
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });

  it('a JsonFile default holding __proto__ and bigint is copied faithfully', async () => {
    const dflt = JSON.parse('{"__proto__": {"a": 1}}') as Record<string, unknown>;
    dflt.big = 2n ** 80n;
    const f = new JsonFile<Record<string, unknown>>(join(await tempDir(), 'x.json'), { default: dflt });
    const v = await f.read();
    expect(Object.hasOwn(v, '__proto__')).toBe(true);
    expect(v.big).toBe(2n ** 80n);
  });
});

/** Arbitrary JSON values with big integers and special keys. */
const jsonArb: fc.Arbitrary<JsonValue> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    // An integral double beyond 2^53 is written as its digits and read back as a bigint of the same
    // value (documented); -0 is written as 0, as JSON.stringify does.
    fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Object.is(d, -0) && (!Number.isInteger(d) || Number.isSafeInteger(d))),
    fc.bigInt({ min: -(2n ** 100n), max: 2n ** 100n }).filter((b) => b < -(2n ** 53n) || b > 2n ** 53n),
    fc.string(),
    fc.array(tie('value'), { maxLength: 4 }),
    fc
      .array(fc.tuple(fc.oneof(fc.string(), fc.constantFrom('__proto__', 'constructor', 'prototype')), tie('value')), { maxLength: 4 })
      .map((entries) => {
        const o: Record<string, JsonValue> = {};
        for (const [k, val] of entries) Object.defineProperty(o, k, { value: val, enumerable: true, writable: true, configurable: true });
        return o;
      }),
  ),
})).value as fc.Arbitrary<JsonValue>;

describe('property: every value round-trips exactly', () => {
  it('stringify → parse → stringify is the identity on the text, parse gives an equal value', () => {
    fc.assert(
      fc.property(jsonArb, (v) => {
        const text = stringifyJson(v);
        const back = parseJson(text);
        expect(back).toEqual(v);
        expect(stringifyJson(back)).toBe(text);
      }),
      { numRuns: 300 },
    );
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });
});

describe('deep nesting and huge values end in coded errors, the file untouched', () => {
  const DEPTH = 100_000;
  it('reads a valid file nested 100,000 deep; writing it back is NOT_SERIALIZABLE and changes nothing', async () => {
    const dir = await tempDir();
    const file = join(dir, 'deep.json');
    await writeFile(file, '['.repeat(DEPTH) + ']'.repeat(DEPTH));
    const before = await snapshot(dir, file);
    const v = await readJson(file);
    expect(Array.isArray(v)).toBe(true);
    const e1 = await writeJson(file, v).catch((e: unknown) => e);
    expect(AtomicJsonError.is(e1) && e1.code).toBe('NOT_SERIALIZABLE');
    expect((e1 as AtomicJsonError).message).toContain(file);
    const e2 = await updateJson(file, (c) => c).catch((e: unknown) => e);
    expect(AtomicJsonError.is(e2) && e2.code).toBe('NOT_SERIALIZABLE');
    expect(await snapshot(dir, file)).toEqual(before);
  });

  it('a deep value that is not JSON names its key path (the check is iterative)', async () => {
    const file = join(await tempDir(), 'x.json');
    let v: unknown = { bad: () => 1 };
    for (let i = 0; i < DEPTH; i++) v = [v];
    const err = await writeJson(file, v).catch((e: unknown) => e);
    expect(AtomicJsonError.is(err) && err.code).toBe('NOT_SERIALIZABLE');
    expect((err as AtomicJsonError).keyPath).toBe('$' + '[0]'.repeat(DEPTH) + '.bad');
  });

  it('a corrupt file nested 100,000 deep is PARSE with line and column, and quarantine works', async () => {
    const dir = await tempDir();
    const file = join(dir, 'deep.json');
    await writeFile(file, '{"a":' + '['.repeat(DEPTH) + '}');
    const before = await snapshot(dir, file);
    const err = await readJson(file).catch((e: unknown) => e);
    expect(AtomicJsonError.is(err) && err.code).toBe('PARSE');
    expect((err as AtomicJsonError).column).toBe(6 + DEPTH);
    expect(await snapshot(dir, file)).toEqual(before);
    const jf = new JsonFile(file, { default: { fresh: true }, onCorrupt: 'quarantine' });
    expect(await jf.read()).toEqual({ fresh: true });
    const names = await readdir(dir);
    expect(names.some((n) => n.startsWith('deep.json.corrupt-'))).toBe(true);
  });

  it('a value whose JSON is longer than a string can hold is NOT_SERIALIZABLE', async () => {
    const dir = await tempDir();
    const file = join(dir, 'huge.json');
    await writeJson(file, { previous: true });
    const before = await snapshot(dir, file);
    const s = 'x'.repeat(300_000_000);
    const err = await writeJson(file, [s, s]).catch((e: unknown) => e);
    expect(AtomicJsonError.is(err) && err.code).toBe('NOT_SERIALIZABLE');
    expect(await snapshot(dir, file)).toEqual(before);
  });

  it('bytes that are not UTF-8 are PARSE, naming the byte', async () => {
    const file = join(await tempDir(), 'bad.json');
    await writeFile(file, Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]));
    const err = await readJson(file).catch((e: unknown) => e);
    expect(AtomicJsonError.is(err) && err.code).toBe('PARSE');
    expect((err as AtomicJsonError).message).toContain('byte 6');
  });
});

describe('only regular files are read, nothing blocks', () => {
  const cases: [name: string, make: (dir: string, file: string) => Promise<void>][] = [
    ['a FIFO', async (_d, f) => void execFileSync('mkfifo', [f])],
    ['a symlink to a FIFO', async (d, f) => {
      execFileSync('mkfifo', [join(d, 'fifo')]);
      await symlink(join(d, 'fifo'), f);
    }],
    ['a symlink to /dev/zero', async (_d, f) => symlink('/dev/zero', f)],
    ['/dev/null itself via symlink', async (_d, f) => symlink('/dev/null', f)],
    ['a directory', async (_d, f) => mkdir(f)],
    ['a symlink to a directory', async (d, f) => symlink(d, f)],
  ];
  for (const [name, make] of cases) {
    it(`${name}: readJson, updateJson and JsonFile refuse it with IO`, async () => {
      const dir = await tempDir();
      const file = join(dir, 'state.json');
      await make(dir, file);
      for (const op of [() => readJson(file), () => updateJson(file, () => ({ a: 1 })), () => new JsonFile(file, { default: {}, onCorrupt: 'quarantine' }).read()]) {
        const err = await op().catch((e: unknown) => e);
        expect(AtomicJsonError.is(err) && err.code, String(err)).toBe('IO');
        expect((err as AtomicJsonError).message).toContain('not a regular file');
      }
    });
  }

  it.each(cases)('%s: writeJson and writeJsonSync refuse to replace it (IO), and it is still there', async (_name, make) => {
    const dir = await tempDir();
    const file = join(dir, 'state.json');
    await make(dir, file);
    const { lstat, stat } = await import('node:fs/promises');
    const before = await lstat(file);
    const target = await stat(file).catch(() => undefined);
    for (const op of [() => writeJson(file, { a: 1 }), async () => writeJsonSync(file, { a: 1 })]) {
      const err = await op().then(() => undefined, (e: unknown) => e);
      expect(AtomicJsonError.is(err) && err.code, String(err)).toBe('IO');
      expect((err as AtomicJsonError).message).toContain('not a regular file');
    }
    const after = await lstat(file);
    expect([after.ino, after.mode]).toEqual([before.ino, before.mode]);
    if (target) expect((await stat(file)).ino).toBe(target.ino); // /dev/null, the FIFO... untouched
    expect((await readdir(dir)).filter((n) => n.endsWith('.ajtmp'))).toEqual([]);
  });

  it('a symlink to a regular file is read through', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'real.json'), '{"a": 1}');
    await symlink(join(dir, 'real.json'), join(dir, 'link.json'));
    expect(await readJson(join(dir, 'link.json'))).toEqual({ a: 1 });
  });
});

describe('the exact path is as safe as JSON.parse (review findings)', () => {
  it('a 30 MB string next to a big integer parses (no regex backtracking, no RangeError)', () => {
    const big = 'x'.repeat(30_000_000);
    const esc = '\\"'.repeat(5_000_000);
    const v = parseJson(`{"n": 12345678901234567890, "s": "${big}", "e": "${esc}"}`) as { n: bigint; s: string; e: string };
    expect(v.n).toBe(12345678901234567890n);
    expect(v.s.length).toBe(30_000_000);
    expect(v.e.length).toBe(5_000_000);
  });

  it('never turns invalid text into valid text: an escape before digits, a leading zero, an unterminated string', () => {
    for (const text of [
      '[12345678901234567890,"a\\12345678901234567890]',
      '[012345678901234567890]',
      '{"a": 12345678901234567890x}',
      '["12345678901234567890]',
      '[12345678901234567890 12345678901234567890]',
    ]) {
      expect(() => JSON.parse(text), text).toThrow();
      const err = (() => {
        try {
          parseJson(text);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(AtomicJsonError.is(err) && err.code, text).toBe('PARSE');
    }
  });

  it('property: parseJson accepts exactly what JSON.parse accepts, with the same value but for exact integers', () => {
    const piece = fc.constantFrom('[', ']', '{', '}', ',', ':', '"', '\\', ' ', '\n', '-', '0', '1', '12345678901234567890', '9007199254740993', '.5', 'e3', 'true', 'null', '"k"', '"\\\\"', '"\\""');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 14 }).map((p) => p.join('')), (text) => {
        // A literal beyond the double range reads as ±Infinity, as in JSON.parse and Python (documented).
        fc.pre(!/[eE][+-]?\d{3,}/.test(text));
        let expected: unknown;
        let ok = true;
        try {
          expected = JSON.parse(text);
        } catch {
          ok = false;
        }
        if (!ok) {
          expect(() => parseJson(text)).toThrow(AtomicJsonError);
          return;
        }
        // Through our writer, the same JSON value as JSON.stringify gives (-0 is written as 0 by both).
        expect(JSON.parse(stringifyJson(parseJson(text)))).toEqual(JSON.parse(JSON.stringify(expected)));
      }),
      { numRuns: 3000 },
    );
  });

  it('writes exact digits for a bigint even with a BigInt.prototype.toJSON polyfill, and for integral numbers beyond 2^53', () => {
    const proto = BigInt.prototype as unknown as { toJSON?: () => string };
    proto.toJSON = function (this: bigint) {
      return this.toString();
    };
    try {
      expect(stringifyJson({ id: 9223372036854775808n }, { spaces: 0 })).toBe('{"id":9223372036854775808}');
    } finally {
      delete proto.toJSON;
    }
    expect(stringifyJson([2 ** 60, -(2 ** 60), 2 ** 53, 1e21], { spaces: 0 })).toBe('[1152921504606846976,-1152921504606846976,9007199254740992,1e+21]');
    expect(parseJson(stringifyJson({ n: 2 ** 60 }))).toEqual({ n: 2n ** 60n });
  });
});
