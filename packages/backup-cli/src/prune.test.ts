import fc from 'fast-check';
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

const NOW = at(2026, 1, 6);

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
  [{ keepMonthly: 1 }, ['b2']],
  [{ keepMonthly: 2 }, ['b2', 'b5']], // 2026-01, 2025-12 (the newest of December)
  [{ keepMonthly: 5 }, ['b2', 'b5']],
  // --keep-within counts from the newest backup (b2, 2026-01-05 18:00), not from NOW
  [{ keepWithin: '9h' }, ['b2', 'b1']],
  [{ keepWithin: '2d' }, ['b2', 'b1', 'b3']], // since 01-03 18:00
  [{ keepWithin: '1w' }, ['b2', 'b1', 'b3', 'b4']], // since 12-29 18:00
  [{ keepWithin: '1m' }, ['b2', 'b1', 'b3', 'b4', 'b5', 'b6', 'b7']],
  [{ keepWithin: '1d', keepMonthly: 2 }, ['b2', 'b1', 'b5']],
];

describe('planPrune (golden retention table)', () => {
  it.each(GOLDEN)('%j keeps %j', (policy, kept) => {
    const plan = planPrune(BACKUPS, policy, NOW);
    expect(plan.map((d) => d.name)).toEqual(['b2', 'b1', 'b3', 'b4', 'b5', 'b6', 'b7']);
    expect(plan.filter((d) => d.keep).map((d) => d.name)).toEqual(kept);
    for (const d of plan) expect(d.keep).toBe(d.reasons.length > 0);
  });

  it('lists every reason a backup is kept', () => {
    const plan = planPrune(BACKUPS, { keepLast: 1, keepDaily: 1, keepWeekly: 1 }, NOW);
    expect(plan[0]!.reasons).toEqual(['newest', 'last', 'daily', 'weekly']);
  });

  it('an empty backup dir plans nothing', () => {
    expect(planPrune([], { keepLast: 1 })).toEqual([]);
  });

  it('--keep-within counts from the newest backup of the source, however long ago it was', () => {
    const later = NOW + 365 * DAY; // backups stopped a year ago: nothing more is lost to time
    expect(planPrune(BACKUPS, { keepWithin: '2d' }, later).filter((d) => d.keep).map((d) => d.name)).toEqual(['b2', 'b1', 'b3']);
  });

  it.each([{}, { keepLast: -1 }, { keepDaily: 1.5 }, { keepWeekly: Number.NaN }, { keepMonthly: -2 }, { keepWithin: '7' }, { keepWithin: '7 days' }, { keepWithin: '' }, { keepWithin: '-1d' }] as RetentionPolicy[])('rejects the policy %j', (policy) => {
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

const DAY = 86_400;
const names = (ds: { name: string }[]) => ds.map((d) => d.name);
const kept = (plan: ReturnType<typeof planPrune>) => names(plan.filter((d) => d.keep));

describe('retention per source (B16)', () => {
  it('applies the policy to each source on its own: a shared backup dir never loses one node\'s backups', () => {
    const t = at(2026, 1, 1);
    const backups: PruneCandidate[] = [];
    for (let i = 0; i < 5; i++) {
      backups.push({ name: `a${i}`, createdAt: t + i * 3600, source: 'node-a:/srv/dawn' });
      backups.push({ name: `b${i}`, createdAt: t + i * 3600 + 60, source: 'node-b:/srv/dawn' });
    }
    const plan = planPrune(backups, { keepLast: 2 }, NOW);
    expect(kept(plan).sort()).toEqual(['a3', 'a4', 'b3', 'b4']);
    expect(plan.find((d) => d.name === 'a4')!.reasons).toEqual(['newest', 'last']);
  });

  it('pre_restore_* backups have their own policy and never push real backups out', () => {
    const backups: PruneCandidate[] = [
      { name: 'real_1', createdAt: NOW - 30 * DAY },
      { name: 'real_2', createdAt: NOW - 29 * DAY },
    ];
    // ten restores since: ten pre_restore_* backups, newer than every real backup
    for (let i = 0; i < 10; i++) backups.push({ name: `pre_restore_${i}`, createdAt: NOW - (20 - 2 * i) * DAY });
    const plan = planPrune(backups, { keepLast: 2 }, NOW);
    expect(plan.filter((d) => !d.preRestore && d.keep).map((d) => d.name)).toEqual(['real_2', 'real_1']);
    // default: the 5 newest pre_restore_* and every one of the last 7 days (ages 2, 4, 6 days)
    expect(plan.filter((d) => d.preRestore && d.keep).map((d) => d.name)).toEqual(['pre_restore_9', 'pre_restore_8', 'pre_restore_7', 'pre_restore_6', 'pre_restore_5']);
    expect(plan.find((d) => d.name === 'pre_restore_8')!.reasons).toEqual(['pre-restore', 'recent']);
    expect(plan.find((d) => d.name === 'pre_restore_5')!.reasons).toEqual(['pre-restore']);

    const tight = planPrune(backups, { keepLast: 1, keepPreRestore: 0, keepPreRestoreDays: 0 }, NOW);
    expect(kept(tight)).toEqual(['pre_restore_9', 'real_2']); // the newest of each group stays
    const recent = planPrune(backups, { keepLast: 1, keepPreRestore: 1, keepPreRestoreDays: 5 }, NOW);
    expect(kept(recent)).toEqual(['pre_restore_9', 'pre_restore_8', 'real_2']);
  });

  it('clock skew: a backup dated in the future and the one that appeared on disk last are both kept', () => {
    // A was made while the clock ran a day ahead; the clock was fixed; B was made after it.
    const skewed: PruneCandidate[] = [
      { name: 'older', createdAt: NOW - 2 * DAY, appearedAt: NOW - 2 * DAY },
      { name: 'A', createdAt: NOW + DAY, appearedAt: NOW - 3600 },
      { name: 'B', createdAt: NOW - 1800, appearedAt: NOW - 1800 },
    ];
    const plan = planPrune(skewed, { keepLast: 1 }, NOW);
    expect(kept(plan)).toEqual(['A', 'B']);
    expect(plan.find((d) => d.name === 'A')!.reasons).toEqual(['future']);
    expect(plan.find((d) => d.name === 'B')!.reasons).toEqual(['newest', 'latest-on-disk', 'last']);

    // The system clock itself ran ahead: A's directory ctime is in the future too.
    const local = planPrune(
      skewed.map((c) => (c.name === 'A' ? { ...c, appearedAt: NOW + DAY } : c)),
      { keepLast: 1, keepDaily: 1 },
      NOW,
    );
    expect(kept(local)).toEqual(['A', 'B']);
    expect(local.find((d) => d.name === 'B')!.reasons).toEqual(['newest', 'latest-on-disk', 'last', 'daily']);

    // The skew is over (A's recorded time has passed), but B still appeared on disk after A.
    const later = planPrune(
      [
        { name: 'A', createdAt: NOW - 600, appearedAt: NOW - 3600 },
        { name: 'B', createdAt: NOW - 1800, appearedAt: NOW - 1800 },
      ],
      { keepLast: 1 },
      NOW,
    );
    expect(kept(later)).toEqual(['A', 'B']);
  });

  it('property: whatever the clocks say, --keep-last 1 never removes the newest backup of any source', () => {
    const candidate = fc.record({
      name: fc.string({ minLength: 1, maxLength: 6 }),
      createdAt: fc.integer({ min: NOW - 400 * DAY, max: NOW + 30 * DAY }),
      appearedAt: fc.option(fc.integer({ min: NOW - 400 * DAY, max: NOW + DAY }), { nil: undefined }),
      source: fc.constantFrom('h1:/a', 'h1:/b', 'h2:/a', '?:/a'),
      preRestore: fc.boolean(),
    });
    const policy = fc.record(
      {
        keepLast: fc.nat(4),
        keepDaily: fc.nat(4),
        keepWeekly: fc.nat(4),
        keepPreRestore: fc.nat(4),
        keepPreRestoreDays: fc.nat(10),
      },
      { requiredKeys: ['keepLast'] },
    );
    fc.assert(
      fc.property(fc.uniqueArray(candidate, { selector: (c) => c.name, maxLength: 30 }), policy, (cands, pol) => {
        const plan = planPrune(cands as PruneCandidate[], pol, NOW);
        expect(names(plan).sort()).toEqual(names(cands).sort());
        const byName = new Map(plan.map((d) => [d.name, d]));
        for (const d of plan) expect(d.keep).toBe(d.reasons.length > 0);
        const groups = new Map<string, typeof cands>();
        for (const c of cands) {
          const k = `${c.preRestore}|${c.source}`;
          groups.set(k, [...(groups.get(k) ?? []), c]);
        }
        for (const g of groups.values()) {
          const newest = Math.max(...g.map((c) => c.createdAt));
          expect(g.some((c) => c.createdAt === newest && byName.get(c.name)!.keep)).toBe(true);
          const appeared = g.filter((c) => c.appearedAt !== undefined);
          if (appeared.length > 0) {
            const last = Math.max(...appeared.map((c) => c.appearedAt!));
            expect(appeared.some((c) => c.appearedAt === last && byName.get(c.name)!.keep)).toBe(true);
          }
          for (const c of g) if (c.createdAt > NOW || (c.appearedAt ?? 0) > NOW) expect(byName.get(c.name)!.keep).toBe(true);
          const keptRegular = g.filter((c) => byName.get(c.name)!.keep).length;
          if (!g[0]!.preRestore) expect(keptRegular).toBeGreaterThanOrEqual(Math.min(g.length, Math.max(1, pol.keepLast)));
        }
      }),
      { numRuns: 300 },
    );
  });
});
