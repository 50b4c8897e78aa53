import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnNode, useTempDir } from '@dawn/test-utils';
import { beforeAll, expect, it } from 'vitest';
import { isTempFileName, lockPathOf, withLock } from '../src/index.js';
import { assertDistIsFresh, fixture } from './dist.js';

const tempDir = useTempDir('aj-crash-');

beforeAll(assertDistIsFresh);

const STALE_MS = 2000;
const LANES = 5; // independent files, killed in parallel to keep the test short
const KILLS_PER_LANE = 4; // 20 kills in all

interface LaneReport {
  kills: number;
  lockLeftBehind: number;
  tempsLeftBehind: number;
  finalSeq: number;
}

/**
 * One file: start a writer, SIGKILL it at a random moment, check the file, let the next
 * writer take the (stale) lock and clean up, repeat.
 */
async function lane(dir: string): Promise<LaneReport> {
  const file = join(dir, 'sequence.json');
  const report: LaneReport = { kills: 0, lockLeftBehind: 0, tempsLeftBehind: 0, finalSeq: 0 };
  let lastAcked = 0;
  let child = spawnNode(fixture('sequence-writer.mjs'), [file, String(STALE_MS)]);
  for (let k = 0; k < KILLS_PER_LANE; k++) {
    const ready = await child.waitFor<{ from: number }>((m) => m.ready);
    expect(ready.from).toBeGreaterThanOrEqual(lastAcked);
    // A random moment: sometimes before the first write is done, mostly in the middle of writing.
    await new Promise((r) => setTimeout(r, Math.random() * 300));
    child.kill('SIGKILL');
    const exit = await child.exited; // every acknowledgement it printed has arrived
    expect(exit.signal).toBe('SIGKILL');
    report.kills++;
    for (const m of exit.messages as { acked?: number }[]) if (m.acked !== undefined) lastAcked = Math.max(lastAcked, m.acked);

    // The file parses and holds the last acknowledged value or a newer one.
    if (lastAcked > 0) {
      const doc = JSON.parse(await readFile(file, 'utf8')) as { seq: number };
      expect(doc.seq).toBeGreaterThanOrEqual(lastAcked);
    }
    if (existsSync(lockPathOf(file))) report.lockLeftBehind++;
    report.tempsLeftBehind += (await readdir(dir)).filter(isTempFileName).length;

    // The next writer starts (it will wait for the abandoned lock too) ...
    if (k < KILLS_PER_LANE - 1) child = spawnNode(fixture('sequence-writer.mjs'), [file, String(STALE_MS)]);
    // ... and so does this process: it gets the abandoned lock within staleMs (plus slack for a
    // busy machine) and, holding it, finds the killed writer's temp files removed. (Whoever holds
    // the lock, no live writer has a temp file: temp files exist only under the lock.)
    const left = await withLock(file, async () => (await readdir(dir)).filter(isTempFileName), {
      staleMs: STALE_MS,
      timeoutMs: STALE_MS + 5000,
    });
    expect(left).toEqual([]);
  }
  report.finalSeq = (JSON.parse(await readFile(file, 'utf8')) as { seq: number }).seq;
  expect(report.finalSeq).toBeGreaterThanOrEqual(lastAcked);
  return report;
}

it(`a writer SIGKILLed at random moments (${LANES * KILLS_PER_LANE} times) never leaves a torn or stale file`, async () => {
  const reports = await Promise.all(Array.from({ length: LANES }, async () => lane(await tempDir())));
  const total = reports.reduce(
    (a, r) => ({
      kills: a.kills + r.kills,
      lockLeftBehind: a.lockLeftBehind + r.lockLeftBehind,
      tempsLeftBehind: a.tempsLeftBehind + r.tempsLeftBehind,
    }),
    { kills: 0, lockLeftBehind: 0, tempsLeftBehind: 0 },
  );
  expect(total.kills).toBeGreaterThanOrEqual(20);
  // Progress was made across the kills.
  expect(reports.every((r) => r.finalSeq > 0)).toBe(true);
  console.log(
    `crash test: ${total.kills} kills; lock left behind ${total.lockLeftBehind}×, ` +
      `temp files left behind ${total.tempsLeftBehind}× (all recovered); final seqs ${reports.map((r) => r.finalSeq).join(', ')}`,
  );
});
