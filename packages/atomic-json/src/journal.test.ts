import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { installLayer, errno } from '../test/fault-layer.js';
import { crc32Range } from './crc32.js';
import { AtomicJsonError } from './errors.js';
import { fileMark } from './file-mark.js';
import { realFs } from './fs-layer.js';
import { JournaledJson, journalPathOf, type JournalEvent, type RemoteChange } from './journal.js';
import { lockPathOf } from './lock.js';
import { withLock } from './operations.js';

const tmp = useTempDir('aj-journal-');

interface Counter {
  count: number;
  last: number;
  names?: string[];
}
type Op = number | string;

/** Ops: a number counts (count + 1, last = n); a string is a name added to the list. */
const apply = (doc: Counter | undefined, ops: readonly Op[]): Counter => {
  const d = doc ?? { count: 0, last: 0 };
  for (const op of ops) {
    if (typeof op === 'number') {
      d.count++;
      d.last = op;
    } else (d.names ??= []).push(op);
  }
  return d;
};

/** One journal record (the documented framing) around `payload`, a JSON text. */
function record(payload: string): Buffer {
  const body = Buffer.from(payload, 'utf8');
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32LE(body.length, 0);
  head.writeUInt32LE(crc32(body) >>> 0, 4);
  return Buffer.concat([head, body]);
}

/** The journal's records' payloads, as JSON texts. */
async function payloads(file: string): Promise<string[]> {
  const buf = await readFile(journalPathOf(file));
  const out: string[] = [];
  for (let off = 0; off < buf.length; off += 8 + buf.readUInt32LE(off)) out.push(buf.toString('utf8', off + 8, off + 8 + buf.readUInt32LE(off)));
  return out;
}

function open(file: string, extra: { events?: JournalEvent[]; remote?: RemoteChange<Counter, Op>[]; minBytes?: number } = {}) {
  return JournaledJson.open<Counter, Op>(file, {
    apply,
    compactMinBytes: extra.minBytes ?? 1 << 30,
    onEvent: (e) => extra.events?.push(e),
    onRemote: (c) => extra.remote?.push(c),
  });
}

describe('JournaledJson', () => {
  it('appends records, replays them on open, and close() leaves a single plain snapshot', async () => {
    const file = join(await tmp(), 'doc.json');
    const a = await open(file);
    expect(a.current()).toBeUndefined();
    for (let i = 1; i <= 5; i++) await a.append([i]);
    expect(existsSync(file)).toBe(false); // nothing folded yet: only the journal
    expect(a.appends).toBe(5);
    const b = await open(file);
    expect(b.current()).toEqual({ count: 5, last: 5 });
    await b.close();
    expect(existsSync(journalPathOf(file))).toBe(false);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ count: 5, last: 5 });
    // The closed a is out of date but not broken: its next append notices the compaction.
    await a.append([6]);
    expect(a.current()).toEqual({ count: 6, last: 6 });
  });

  it('concurrent appends share one record and one fsync (group commit)', async () => {
    const file = join(await tmp(), 'doc.json');
    const j = await open(file);
    await Promise.all(Array.from({ length: 50 }, (_, i) => j.append([i + 1])));
    expect(j.appends).toBeLessThanOrEqual(2);
    expect(j.current()!.count).toBe(50);
    expect((await open(file)).current()!.count).toBe(50);
  });

  it('the lock is released after the acknowledgement, once no append is ready (the lease)', async () => {
    const file = join(await tmp(), 'doc.json');
    const j = await open(file);
    for (let i = 1; i <= 20; i++) await j.append([i]);
    // Acknowledged (durable), and the lease still holds the lock until the next macrotask.
    expect(existsSync(lockPathOf(file))).toBe(true);
    for (let i = 0; i < 500 && existsSync(lockPathOf(file)); i++) await new Promise((r) => setTimeout(r, 2));
    expect(existsSync(lockPathOf(file))).toBe(false);
    expect((await open(file)).current()).toEqual({ count: 20, last: 20 });
  });

  it('a lease ends as soon as another operation of this process waits for the file', async () => {
    const file = join(await tmp(), 'doc.json');
    const j = await open(file);
    let acked = 0;
    let ranAt: number | undefined;
    const loop = (async () => {
      for (let i = 1; i <= 300; i++) {
        await j.append([i]);
        acked = i;
        if (i === 5) void withLock(file, () => void (ranAt = acked));
      }
    })();
    await loop;
    expect(ranAt).toBeDefined();
    expect(ranAt!).toBeLessThan(300); // it ran in the middle of the burst, not after it
    expect(j.current()).toEqual({ count: 300, last: 300 });
  });

  it('compacts past the threshold: snapshot replaced, journal removed, nothing counted twice', async () => {
    const file = join(await tmp(), 'doc.json');
    const j = await open(file, { minBytes: 200 });
    for (let i = 1; i <= 40; i++) await j.append([i]);
    expect(j.compactions).toBeGreaterThan(0);
    expect((await open(file)).current()).toEqual({ count: 40, last: 40 });
  });

  it('drops a torn tail (never acknowledged) with an event, and appends after it cleanly', async () => {
    const file = join(await tmp(), 'doc.json');
    const j = await open(file);
    for (let i = 1; i <= 3; i++) await j.append([i]);
    const size = (await stat(journalPathOf(file))).size;
    await truncate(journalPathOf(file), size - 3);
    const events: JournalEvent[] = [];
    const k = await open(file, { events });
    expect(k.current()).toEqual({ count: 2, last: 2 });
    expect(events.map((e) => e.type)).toEqual(['tail-dropped']);
    await k.append([3]);
    expect((await open(file)).current()).toEqual({ count: 3, last: 3 });
  });

  it('a tail of zeros after a failed record is a torn tail too', async () => {
    const file = join(await tmp(), 'doc.json');
    const j = await open(file);
    for (let i = 1; i <= 2; i++) await j.append([i]);
    await appendFile(journalPathOf(file), Buffer.from([5, 0, 0, 0, 1, 2, 3, 4, 0x31, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    const events: JournalEvent[] = [];
    expect((await open(file, { events })).current()).toEqual({ count: 2, last: 2 });
    expect(events[0]?.type).toBe('tail-dropped');
  });

  it('damage before the last record is CORRUPT and nothing is written', async () => {
    const file = join(await tmp(), 'doc.json');
    const j = await open(file);
    for (let i = 1; i <= 3; i++) await j.append([i]);
    const jp = journalPathOf(file);
    const bytes = await readFile(jp);
    bytes[bytes.length - 20] = bytes[bytes.length - 20]! ^ 0xff; // inside the second-to-last record
    await writeFile(jp, bytes);
    const err = await open(file).catch((e: unknown) => e);
    expect(AtomicJsonError.is(err) && err.code).toBe('CORRUPT');
    expect((err as AtomicJsonError).path).toBe(jp);
    expect(await readFile(jp)).toEqual(bytes);
    expect(existsSync(file)).toBe(false);
  });

  it('another instance (process) notices appended records before its next append', async () => {
    const file = join(await tmp(), 'doc.json');
    const remote: RemoteChange<Counter, Op>[] = [];
    const a = await open(file);
    const b = await open(file, { remote });
    await a.append(['a1']);
    await b.append(['b1']);
    expect(remote).toEqual([{ kind: 'ops', ops: ['a1'] }]);
    await a.append(['a2']);
    await b.sync();
    expect(b.current()).toEqual({ count: 0, last: 0, names: ['a1', 'b1', 'a2'] });
    await a.compact();
    await b.append(['b2']); // a compacted: b reloads, then appends on the new snapshot
    expect(remote.at(-1)?.kind).toBe('reset');
    expect((await open(file)).current()!.names).toEqual(['a1', 'b1', 'a2', 'b2']);
  });

  it('a foreign rewrite of the snapshot (no lock, no journal knowledge) loses neither side', async () => {
    const file = join(await tmp(), 'doc.json');
    await writeFile(file, JSON.stringify({ count: 0, last: 0, names: ['start'] }));
    const events: JournalEvent[] = [];
    const j = await open(file, { events });
    await j.append(['ours1']);
    await j.append([1]);
    // The foreign writer read the snapshot (without our journal) and wrote its change in place.
    await writeFile(file, JSON.stringify({ count: 0, last: 0, names: ['start', 'theirs'] }, null, 2));
    await j.append(['ours2']);
    expect(events.map((e) => e.type)).toContain('foreign-snapshot');
    const again = await open(file);
    expect(again.current()).toEqual({ count: 1, last: 1, names: ['start', 'theirs', 'ours1', 'ours2'] });
  });

  it('a journal started after a plain open names the snapshot on disk then (its hash is computed on first need)', async () => {
    const file = join(await tmp(), 'doc.json');
    await writeFile(file, JSON.stringify({ count: 5, last: 5 }));
    const j = await open(file); // no journal: the snapshot is parsed, not hashed
    await writeFile(file, JSON.stringify({ count: 7, last: 7 }, null, 1)); // rewritten before our first append
    await j.append([8]);
    expect(j.current()).toEqual({ count: 8, last: 8 });
    const events: JournalEvent[] = [];
    const again = await open(file, { events });
    expect(again.current()).toEqual({ count: 8, last: 8 });
    expect(events).toEqual([]); // the journal's header names this snapshot: not a foreign rewrite
    const k = await open(file);
    await k.append([9]); // a journal another instance started on the snapshot k read without hashing
    expect((await open(file)).current()).toEqual({ count: 9, last: 9 });
    await (await open(file)).close(); // one plain snapshot again
    const p = await open(file); // plain opens: not hashed
    const q = await open(file);
    await q.append([10]); // q starts a journal
    const evP: JournalEvent[] = [];
    await p.append([11]); // p finds it (from offset 0): it hashes its snapshot to accept it
    expect(p.current()).toEqual({ count: 11, last: 11 });
    const last = await open(file, { events: evP });
    expect(last.current()).toEqual({ count: 11, last: 11 });
    expect(evP).toEqual([]);
  });

  it('a journal found at open on a foreign snapshot is applied onto it', async () => {
    const file = join(await tmp(), 'doc.json');
    await writeFile(file, JSON.stringify({ count: 0, last: 0 }));
    const j = await open(file);
    await j.append([1]);
    await writeFile(file, JSON.stringify({ count: 10, last: 10 }));
    const events: JournalEvent[] = [];
    expect((await open(file, { events })).current()).toEqual({ count: 11, last: 1 });
    expect(events.map((e) => e.type)).toContain('foreign-snapshot');
    expect(existsSync(journalPathOf(file))).toBe(false); // rebased at once
  });

  it('a compaction killed between replacing the snapshot and removing the journal is finished at open, not replayed twice', async () => {
    const file = join(await tmp(), 'doc.json');
    const j = await open(file);
    for (let i = 1; i <= 3; i++) await j.append([i]);
    installLayer(() => ({
      unlink: async (p) => {
        if (p.endsWith('.journal')) throw errno('EIO', 'unlink');
        return realFs.unlink(p);
      },
    }));
    await expect(j.compact()).rejects.toMatchObject({ code: 'IO' });
    installLayer(); // the "kill": snapshot replaced, journal (with its marker) still there
    expect(existsSync(journalPathOf(file))).toBe(true);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ count: 3, last: 3 });
    const events: JournalEvent[] = [];
    const k = await open(file, { events });
    expect(k.current()).toEqual({ count: 3, last: 3 });
    expect(events.map((e) => e.type)).toContain('compaction-resumed');
    expect(existsSync(journalPathOf(file))).toBe(false);
  });

  it('withConsistentFiles gives a snapshot + journal pair of one instant', async () => {
    const file = join(await tmp(), 'doc.json');
    const j = await open(file);
    await j.append([1]);
    const copy = await j.withConsistentFiles(async ({ snapshot, journal }) => ({
      snap: existsSync(snapshot) ? await readFile(snapshot) : undefined,
      jrnl: await readFile(journal),
    }));
    expect(copy.snap).toBeUndefined();
    expect(copy.jrnl.length).toBeGreaterThan(8);
  });
  it('replays records written in other forms as JSON reads them, in order, with markers and big integers', async () => {
    const file = join(await tmp(), 'doc.json');
    const j = await open(file);
    await j.append([1]);
    const [header] = await payloads(file);
    // Hand-written records after ours: other spacing, extra fields, a duplicate key (the last
    // wins, as in JSON.parse), an empty batch, a marker naming no snapshot, a big integer.
    const extra = [
      '{ "ops" : [ "a" , 2 ] }',
      '{"ops":["b"],"note":[3]}',
      '{"ops":["lost"],"ops":["c"]}',
      '{"ops":[]}',
      '{"compact":"0000"}',
      '{"ops":[9007199254740993]}',
      '{"ops":["d",["nested]}"],{"x":"]},{"}]}',
    ];
    await appendFile(journalPathOf(file), Buffer.concat(extra.map(record)));
    const k = await JournaledJson.open<Counter, unknown>(file, {
      apply: (doc, ops) => ({ count: (doc?.count ?? 0) + ops.length, last: 0, names: ops.map((o) => (typeof o === 'bigint' ? `big:${o}` : JSON.stringify(o))) }),
    });
    expect(k.journalRecords).toBe(1 + 6);
    expect(k.parts().ops).toEqual([1, 'a', 2, 'b', 'c', 9007199254740993n, 'd', ['nested]}'], { x: ']},{' }]);
    expect(header).toMatch(/^\{"journal":1,"base":null\}$/);
  });

  it('the fast replay gives the same document as reading each record alone', async () => {
    // Records that look like {"ops":[...]} but are not one array of ops each: the one-parse
    // replay must notice and fall back, never merge or split records.
    const file = join(await tmp(), 'doc.json');
    const j = await open(file);
    await j.append([1]);
    const tricky = ['{"ops":["x"],"y":["z"]}', '{"ops":[1],"ops":[2]}', '{"ops":["],[" ]}'];
    await appendFile(journalPathOf(file), Buffer.concat(tricky.map(record)));
    const k = await JournaledJson.open<Counter, unknown>(file, { apply: (d) => d ?? { count: 0, last: 0 } });
    expect(k.parts().ops).toEqual([1, 'x', 2, '],[']);
  });

  it('a checksummed record that is not JSON is CORRUPT before the end and a dropped tail at the end', async () => {
    const file = join(await tmp(), 'doc.json');
    const j = await open(file);
    await j.append([1]);
    const jp = journalPathOf(file);
    const good = await readFile(jp);
    await writeFile(jp, Buffer.concat([good, record('{"ops":[2'), record('{"ops":[3]}')]));
    const err = await open(file).catch((e: unknown) => e);
    expect(AtomicJsonError.is(err) && err.code).toBe('CORRUPT');
    await writeFile(jp, Buffer.concat([good, record('{"ops":[3]}'), record('{"ops":[2')]));
    const events: JournalEvent[] = [];
    expect((await open(file, { events })).current()).toEqual({ count: 2, last: 3 });
    expect(events.map((e) => e.type)).toEqual(['tail-dropped']);
  });

  it('one batch of 200,000 ops is appended and replayed (no argument spread of the batch)', async () => {
    const file = join(await tmp(), 'doc.json');
    const j = await open(file);
    const ops = Array.from({ length: 200_000 }, (_, i) => i + 1);
    await j.append(ops);
    expect(j.current()).toEqual({ count: 200_000, last: 200_000 });
    expect((await open(file)).current()).toEqual({ count: 200_000, last: 200_000 });
  });

  it("a journal's header records the snapshot's file mark; a snapshot with that mark is taken as the one named, any other is checked by its hash", async () => {
    const file = join(await tmp(), 'doc.json');
    await writeFile(file, JSON.stringify({ count: 1, last: 1 }));
    const j = await open(file);
    await j.append([2]);
    const [header, ...rest] = await payloads(file);
    const parsed = JSON.parse(header!) as { journal: number; base: string; mark: string };
    const m = (await fileMark(file))!;
    expect(parsed.mark).toBe(`${m.dev}:${m.ino}:${m.size}:${m.mtimeNs}:${m.ctimeNs}`);
    // The mark stands for the hash: a header with this file's mark is not checked against its bytes...
    const forged = Buffer.concat([record(JSON.stringify({ ...parsed, base: 'f'.repeat(64) })), ...rest.map(record)]);
    await writeFile(journalPathOf(file), forged);
    const events: JournalEvent[] = [];
    expect((await open(file, { events })).current()).toEqual({ count: 2, last: 2 });
    expect(events).toEqual([]);
    // ...while any other mark (here: the snapshot rewritten in place, same bytes) sends the open back to the hash.
    await writeFile(file, JSON.stringify({ count: 1, last: 1 }));
    const again: JournalEvent[] = [];
    expect((await open(file, { events: again })).current()).toEqual({ count: 2, last: 2 });
    expect(again.map((e) => e.type)).toContain('foreign-snapshot');
  });
});

describe('crc32Range', () => {
  it('equals zlib.crc32 of the same bytes, for any range', () => {
    const buf = randomBytes(5000);
    for (const [from, to] of [[0, 0], [0, 1], [3, 11], [1, 4999], [0, 5000], [17, 17 + 64], [100, 4097]] as const) {
      expect(crc32Range(buf, from, to)).toBe(crc32(buf.subarray(from, to)) >>> 0);
    }
    for (let i = 0; i < 200; i++) {
      const from = Math.floor(Math.random() * 5000);
      const to = from + Math.floor(Math.random() * (5000 - from));
      expect(crc32Range(buf, from, to)).toBe(crc32(buf.subarray(from, to)) >>> 0);
    }
  });
});
