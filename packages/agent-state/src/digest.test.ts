import { describe, expect, it } from 'vitest';
import { recordDigest, valueDigest } from './digest.js';
import { settledMark } from './persist.js';

describe('valueDigest', () => {
  it('is equal for values JSON cannot tell apart, different for any other change', () => {
    const d = valueDigest({ a: 1, b: [true, null, 'x'], c: { d: 0.5 } });
    expect(valueDigest({ a: 1.0, b: [true, null, 'x'], c: { d: 0.5 } })).toBe(d);
    expect(valueDigest({ a: 1, b: [true, null, 'x'], c: { d: 0.5 }, e: undefined })).toBe(d); // omitted, as written
    expect(valueDigest(-0)).toBe(valueDigest(0));
    expect(valueDigest(5n)).toBe(valueDigest(5));
    expect(valueDigest(2n ** 63n)).not.toBe(valueDigest(2n ** 63n - 1n));
    expect(valueDigest({ when: new Date(0) })).toBe(valueDigest({ when: '1970-01-01T00:00:00.000Z' }));
    for (const other of [{ a: 2 }, { a: '1' }, { b: 1 }, [1], { a: 1, b: [true, null] }, { a: 1, b: [true, 'x', null], c: { d: 0.5 } }]) {
      expect(valueDigest(other)).not.toBe(d);
    }
    expect(valueDigest(['ab', 'c'])).not.toBe(valueDigest(['a', 'bc']));
    expect(valueDigest({ a: 1, b: 2 })).not.toBe(valueDigest({ b: 2, a: 1 })); // order is content
  });

  it('keeps "__proto__" keys as data', () => {
    const withProto = JSON.parse('{"__proto__": {"x": 1}}') as object;
    expect(valueDigest(withProto)).not.toBe(valueDigest({}));
    expect(valueDigest(withProto)).toBe(valueDigest(JSON.parse('{"__proto__": {"x": 1}}')));
    expect(valueDigest(withProto)).not.toBe(valueDigest(JSON.parse('{"__proto__": {"x": 2}}')));
  });

  it('follows JSON.stringify for what JSON cannot hold, with or without bigints', () => {
    expect(valueDigest({ f: NaN, g: [undefined, () => 1] })).toBe(valueDigest({ f: null, g: [null, null] }));
    // With a bigint the lossless writer's text is digested: equal to the number of the same value.
    expect(valueDigest({ g: [null], big: 1n })).toBe(valueDigest({ g: [null], big: 1 }));
    expect(valueDigest({ big: 2n ** 64n })).not.toBe(valueDigest({ big: 2 ** 64 + 1 }));
    expect(valueDigest({ s: 'é"\n', k: { 'a"b': true }, d: new Date(0), n: 1n })).toBe(
      valueDigest({ s: 'é"\n', k: { 'a"b': true }, d: '1970-01-01T00:00:00.000Z', n: 1 }),
    );
  });

  it('has none for cycles, undefined, or values too deep to walk', () => {
    const cyc: Record<string, unknown> = {};
    cyc.self = cyc;
    expect(valueDigest(cyc)).toBeUndefined();
    expect(valueDigest({ cyc, big: 1n })).toBeUndefined();
    expect(valueDigest(undefined)).toBeUndefined();
    let deep: unknown = 1;
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(valueDigest(deep)).toBeUndefined();
  });

  it('recordDigest of a document equals that of the same document read back', () => {
    const doc = { agent_id: 'a', name: 'A', state: { n: 1 }, revision: 3, updated_at: 1764101234.567 };
    expect(recordDigest(JSON.parse(JSON.stringify(doc)))).toBe(recordDigest(doc, valueDigest(doc.state)));
    expect(recordDigest({ ...doc, revision: 4 })).not.toBe(recordDigest(doc));
    expect(recordDigest({ ...doc, state: { n: 2 } })).not.toBe(recordDigest(doc));
  });
});

describe('settledMark', () => {
  const mark = (ns: bigint) => ({ dev: 1n, ino: 2n, size: 3n, mtimeNs: ns, ctimeNs: ns });
  it('trusts only marks older than one clock tick of the file system when taken', () => {
    const now = 1_764_000_000_123;
    const nowNs = BigInt(now) * 1_000_000n;
    expect(settledMark(mark(nowNs - 1_000_001n), now)).toBe(false); // 1 ms old
    expect(settledMark(mark(nowNs - 50_000_001n), now)).toBe(true); // 50 ms old, fine-grained times
    expect(settledMark(mark(1_764_000_000_000_000_000n), now)).toBe(false); // whole seconds: 2 s ticks possible
    expect(settledMark(mark(1_763_999_990_000_000_000n), now)).toBe(true);
    expect(settledMark(mark(nowNs + 5_000_000_000n), now)).toBe(false); // from the future
  });
});
