/**
 * A compaction SIGKILLed at each of its steps, then a foreign writer (no lock, no idea of the
 * journal, like Dawn's Python code) rewrites the snapshot in place or by rename, with or without
 * another process of ours reopening in between. Every acknowledged op must survive; where the
 * files prove the compacted snapshot was in place, nothing is applied twice.
 */
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnNode, useTempDir } from '@dawn/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { JournaledJson, journalPathOf, type JournalEvent } from '../src/index.js';
import { assertDistIsFresh, fixture } from './dist.js';
import { apply, type Doc, type Op } from './counter-doc.js';

const tempDir = useTempDir('aj-compaction-kill-');
beforeAll(assertDistIsFresh);

const STALE_MS = 800;
const lock = { staleMs: STALE_MS, timeoutMs: STALE_MS + 20_000 };

const open = (file: string, events: JournalEvent[] = []) => JournaledJson.open<Doc, Op>(file, { apply, lock, onEvent: (e) => events.push(e) });

type Point = 'before-rename' | 'after-rename' | 'before-unlink';

/** A child appends 1, 1, 1, "ours" onto {count: 0}, compacts, and is SIGKILLed at `point`. */
async function killedCompaction(point: Point): Promise<string> {
  const file = join(await tempDir(), 'doc.json');
  await writeFile(file, `${JSON.stringify({ count: 0, names: [] }, null, 2)}\n`);
  const child = spawnNode(fixture('compaction-stopper.mjs'), [file, point, String(STALE_MS)]);
  await child.waitFor((m) => m.at === point || m.error !== undefined, 60_000);
  child.kill('SIGKILL');
  const exit = await child.exited;
  expect(exit.signal, exit.stderr).toBe('SIGKILL');
  expect(exit.messages).toContainEqual({ acked: 4 });
  expect(existsSync(journalPathOf(file))).toBe(true);
  return file;
}

/** The foreign writer: reads the snapshot as it is, adds its field, writes it back. */
async function foreignRewrite(file: string, how: 'in place' | 'by rename'): Promise<Doc> {
  const seen = JSON.parse(await readFile(file, 'utf8')) as Doc;
  const text = JSON.stringify({ ...seen, theirs: 'kept' }, null, 4);
  if (how === 'in place') await writeFile(file, text); // Python's open(path, "w"): same inode
  else {
    await writeFile(`${file}.foreign-tmp`, text);
    await rename(`${file}.foreign-tmp`, file);
  }
  return seen;
}

/** Reopen, check the document, close: a plain snapshot holding the same, no journal. */
async function reopenExpect(file: string, expected: Doc): Promise<JournalEvent[]> {
  const events: JournalEvent[] = [];
  const j = await open(file, events);
  expect(j.current()).toEqual(expected);
  await j.close();
  expect(existsSync(journalPathOf(file))).toBe(false);
  expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(expected);
  return events;
}

const once: Doc = { count: 3, names: ['ours'], theirs: 'kept' };
const twice: Doc = { count: 6, names: ['ours', 'ours'], theirs: 'kept' };

describe('a compaction SIGKILLed at each step, then a foreign rewrite of the snapshot', () => {
  for (const how of ['in place', 'by rename'] as const) {
    it(`killed before the rename, rewritten ${how}: the foreign writer had the old snapshot, every record is applied once`, async () => {
      const file = await killedCompaction('before-rename');
      expect(await foreignRewrite(file, how)).toEqual({ count: 0, names: [] });
      const events = await reopenExpect(file, once);
      expect(events.map((e) => e.type)).toEqual(['foreign-snapshot', 'compacted']);
    }, 60_000);

    it(`killed after the journal's 'compacted' record, rewritten ${how}: the folded records are not applied again`, async () => {
      const file = await killedCompaction('before-unlink');
      expect(await foreignRewrite(file, how)).toEqual({ count: 3, names: ['ours'] });
      const events = await reopenExpect(file, once);
      expect(events.map((e) => e.type)).toEqual(['compaction-resumed', 'foreign-snapshot', 'compacted']);
    }, 60_000);
  }

  it('killed right after the rename (nothing recorded yet), rewritten in place: the marker names that very file, nothing applied twice', async () => {
    const file = await killedCompaction('after-rename');
    expect(await foreignRewrite(file, 'in place')).toEqual({ count: 3, names: ['ours'] });
    const events = await reopenExpect(file, once);
    expect(events.map((e) => e.type)).toEqual(['compaction-resumed', 'foreign-snapshot', 'compacted']);
  }, 60_000);

  it('killed right after the rename, rewritten by rename: cannot be told from a rewrite of the old snapshot, so nothing is lost (the documented limit: applied twice)', async () => {
    const file = await killedCompaction('after-rename');
    expect(await foreignRewrite(file, 'by rename')).toEqual({ count: 3, names: ['ours'] });
    const events = await reopenExpect(file, twice);
    expect(events.map((e) => e.type)).toEqual(['foreign-snapshot', 'compacted']);
  }, 60_000);

  for (const point of ['before-rename', 'after-rename', 'before-unlink'] as const) {
    it(`killed ${point}, then one of our processes reopens first, then a foreign rewrite: exactly once`, async () => {
      const file = await killedCompaction(point);
      const ours = await open(file);
      expect(ours.current()).toEqual({ count: 3, names: ['ours'] });
      await ours.append([10]); // after the killed compaction's marker (or in a new journal)
      await foreignRewrite(file, 'in place');
      await reopenExpect(file, { count: 13, names: ['ours'], theirs: 'kept' });
      await ours.close();
      expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ count: 13, names: ['ours'], theirs: 'kept' });
    }, 60_000);
  }
});
