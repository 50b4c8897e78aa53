import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseDataSubset, selectSubset } from './subset.js';

const ids = Array.from({ length: 1000 }, (_, i) => createHash('sha256').update(String(i)).digest('hex'));

describe('--read-data-subset', () => {
  it('parses N% and n/m, and refuses anything else with INVALID_OPTION', () => {
    expect(parseDataSubset('10%')).toEqual({ kind: 'percent', percent: 10 });
    expect(parseDataSubset('2.5%')).toEqual({ kind: 'percent', percent: 2.5 });
    expect(parseDataSubset('3/7')).toEqual({ kind: 'slice', n: 3, m: 7 });
    for (const bad of ['0%', '101%', '%', '10', '0/3', '4/3', '1/257', '1/0', '-1/3', 'a/b', '10 %x']) {
      expect(() => parseDataSubset(bad), bad).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    }
  });

  it('n/m: the slices 1..m of the same ids partition them (each read exactly once), the same each run', () => {
    for (const m of [1, 2, 7, 256]) {
      const seen: string[] = [];
      for (let n = 1; n <= m; n++) seen.push(...selectSubset(ids, { kind: 'slice', n, m }));
      expect(seen.sort()).toEqual([...ids].sort());
    }
    expect(selectSubset(ids, { kind: 'slice', n: 2, m: 5 })).toEqual(selectSubset([...ids].reverse(), { kind: 'slice', n: 2, m: 5 }).reverse());
  });

  it('N%: round(N%) distinct ids picked at random, at least one', () => {
    const a = selectSubset(ids, { kind: 'percent', percent: 10 });
    expect(a).toHaveLength(100);
    expect(new Set(a).size).toBe(100);
    for (const id of a) expect(ids).toContain(id);
    expect(selectSubset(ids, { kind: 'percent', percent: 10 })).not.toEqual(a); // random (1 in C(1000,100) to fail)
    expect(selectSubset(ids.slice(0, 3), { kind: 'percent', percent: 1 })).toHaveLength(1);
    expect(selectSubset([], { kind: 'percent', percent: 50 })).toEqual([]);
    expect(selectSubset(ids, { kind: 'percent', percent: 100 }).sort()).toEqual([...ids].sort());
  });
});
