import { describe, expect, it } from 'vitest';
import { dayKey, planPrune, weekKey, type PruneCandidate, type RetentionPolicy } from './prune.js';

const at = (y: number, mo: number, d: number, h = 12) => new Date(y, mo - 1, d, h).getTime() / 1000;

// Local times. ISO weeks: 2026-01-05 is Monday of 2026-W02; 2025-12-29..2026-01-04 is 2026-W01.
const BACKUPS: PruneCandidate[] = [
  { name: 'b7', createdAt: at(2025, 12, 20) }, // Sat, 2025-W51
  { name: 'b6', createdAt: at(2025, 12, 28, 8) }, // Sun, 2025-W52
  { name: 'b5', createdAt: at(2025, 12, 29, 8) }, // Mon, 2026-W01
  { name: 'b4', createdAt: at(2026, 1, 3) }, // Sat, 2026-W01
  { name: 'b3', createdAt: at(2026, 1, 4) }, // Sun, 2026-W01
  { name: 'b1', createdAt: at(2026, 1, 5, 9) }, // Mon, 2026-W02
  { name: 'b2', createdAt: at(2026, 1, 5, 18) }, // Mon, 2026-W02 (newest)
];

// policy -> names kept (newest first)
const GOLDEN: [RetentionPolicy, string[]][] = [
  [{ keepLast: 1 }, ['b2']],
  [{ keepLast: 3 }, ['b2', 'b1', 'b3']],
  [{ keepLast: 0 }, ['b2']], // the newest is never removed
  [{ keepLast: 100 }, ['b2', 'b1', 'b3', 'b4', 'b5', 'b6', 'b7']],
  [{ keepDaily: 3 }, ['b2', 'b3', 'b4']],
  [{ keepDaily: 10 }, ['b2', 'b3', 'b4', 'b5', 'b6', 'b7']],
  [{ keepWeekly: 2 }, ['b2', 'b3']],
  [{ keepWeekly: 3 }, ['b2', 'b3', 'b6']],
  [{ keepLast: 1, keepDaily: 2, keepWeekly: 4 }, ['b2', 'b3', 'b6', 'b7']],
  [{ keepLast: 2, keepWeekly: 1 }, ['b2', 'b1']],
];

describe('planPrune (golden retention table)', () => {
  it.each(GOLDEN)('%j keeps %j', (policy, kept) => {
    const plan = planPrune(BACKUPS, policy);
    expect(plan.map((d) => d.name)).toEqual(['b2', 'b1', 'b3', 'b4', 'b5', 'b6', 'b7']);
    expect(plan.filter((d) => d.keep).map((d) => d.name)).toEqual(kept);
    for (const d of plan) expect(d.keep).toBe(d.reasons.length > 0);
  });

  it('lists every reason a backup is kept', () => {
    const plan = planPrune(BACKUPS, { keepLast: 1, keepDaily: 1, keepWeekly: 1 });
    expect(plan[0]!.reasons).toEqual(['newest', 'last', 'daily', 'weekly']);
  });

  it('an empty backup dir plans nothing', () => {
    expect(planPrune([], { keepLast: 1 })).toEqual([]);
  });

  it.each([{}, { keepLast: -1 }, { keepDaily: 1.5 }, { keepWeekly: Number.NaN }] as RetentionPolicy[])('rejects the policy %j', (policy) => {
    expect(() => planPrune(BACKUPS, policy)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });
});

describe('day and ISO week keys (local time)', () => {
  it.each([
    [at(2026, 1, 5), '2026-W02'],
    [at(2025, 12, 29), '2026-W01'],
    [at(2025, 12, 28), '2025-W52'],
    [at(2021, 1, 3), '2020-W53'],
    [at(2024, 12, 30), '2025-W01'],
    [at(2026, 12, 31), '2026-W53'],
  ])('%d is in %s', (t, key) => {
    expect(weekKey(t)).toBe(key);
  });
  it('days are local calendar days', () => {
    expect(dayKey(at(2026, 1, 5, 0))).toBe('2026-01-05');
    expect(dayKey(at(2026, 1, 5, 23))).toBe('2026-01-05');
  });
});
