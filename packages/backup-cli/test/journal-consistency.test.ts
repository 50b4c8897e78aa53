/**
 * The journaled peer registry (snapshot + `.journal`) is backed up as one: every backup made
 * while a node appends and compacts holds a journal that extends the very snapshot beside it,
 * and opens as a registry without any "foreign snapshot" repair. A partial restore of the
 * registry takes its journal along.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PeerRegistry } from '@dawn/peer-registry';
import { spawnNode, useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { createBackup, restoreBackup } from '../src/index.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const tempDir = useTempDir('dawn-backup-journal-');

/** The snapshot hash the journal's header says it extends. */
function journalBase(journal: Buffer): string | null {
  const len = journal.readUInt32LE(0);
  return (JSON.parse(journal.subarray(8, 8 + len).toString('utf8')) as { base: string | null }).base;
}

describe('backups of a journaled registry while a node writes it', () => {
  it('each backup holds a snapshot and the journal that extends it (12 backups during appends and compactions)', async () => {
    const root = await tempDir();
    const data = join(root, 'data');
    const writer = spawnNode(join(FIXTURES, 'journal-writer.mjs'), [data]);
    try {
      await writer.waitFor((m) => m.ready === true);
      let withJournal = 0;
      for (let b = 0; b < 12; b++) {
        const r = await createBackup({ source: data, backupDir: join(root, 'bk'), name: `b${b}`, fsync: false, full: b % 2 === 0 });
        const mesh = join(r.path, 'mesh');
        const snapshot = existsSync(join(mesh, 'peer_registry.json')) ? readFileSync(join(mesh, 'peer_registry.json')) : undefined;
        if (existsSync(join(mesh, 'peer_registry.json.journal'))) {
          withJournal++;
          const base = snapshot === undefined ? null : createHash('sha256').update(snapshot).digest('hex');
          expect(journalBase(readFileSync(join(mesh, 'peer_registry.json.journal'))), `backup b${b}`).toBe(base);
        } else expect(snapshot).toBeDefined();
        const events: string[] = [];
        const scratch = join(root, `open-b${b}`);
        cpSync(mesh, scratch, { recursive: true }); // opening may compact: never in the backup itself
        const copy = await PeerRegistry.open({ dataDir: scratch, onJournalEvent: (e) => events.push(e.type) });
        expect(copy.getPeerCount()).toBe(50);
        expect(events.filter((t) => t === 'foreign-snapshot' || t === 'tail-dropped')).toEqual([]);
        await copy.close();
      }
      console.log(`journal consistency: ${withJournal} of 12 backups held a journal`);
    } finally {
      writer.proc.kill('SIGKILL');
      await writer.exited;
    }
  });

  it('a journal a node starts after the walk listed the directory is in the backup, with the snapshot it extends', async () => {
    const root = await tempDir();
    const data = join(root, 'data');
    const reg = await PeerRegistry.open({ dataRoot: data });
    for (let i = 0; i < 5; i++) await reg.addPeer({ nodeId: `p${i}`, address: `ws://10.0.0.${i}:8000` });
    await reg.close(); // compacted: the walk finds no journal
    let acked: string | undefined;
    const r = await createBackup({
      source: data,
      backupDir: join(root, 'bk'),
      name: 'late',
      fsync: false,
      onProgress: (p) => {
        // The walk is done, nothing is copied yet: a real node process starts the journal now.
        if (p.phase !== 'copy' || p.files !== 0 || acked !== undefined) return;
        expect(existsSync(join(data, 'mesh', 'peer_registry.json.journal'))).toBe(false);
        const out = execFileSync(process.execPath, [join(FIXTURES, 'start-journal.mjs'), data, 'late-peer'], { cwd: join(FIXTURES, '..', '..'), encoding: 'utf8' });
        acked = (JSON.parse(out.trim().split('\n').at(-1)!) as { acked: string }).acked;
      },
    });
    expect(acked).toBe('late-peer'); // acknowledged (durable) before the backup copied the registry
    const mesh = join(r.path, 'mesh');
    const journal = readFileSync(join(mesh, 'peer_registry.json.journal'));
    expect(journalBase(journal)).toBe(createHash('sha256').update(readFileSync(join(mesh, 'peer_registry.json'))).digest('hex'));
    const restored = join(root, 'restored');
    await restoreBackup({ name: 'late', backupDir: join(root, 'bk'), target: restored, fsync: false });
    const events: string[] = [];
    const copy = await PeerRegistry.open({ dataRoot: restored, onJournalEvent: (e) => events.push(e.type) });
    expect(copy.hasPeer('late-peer')).toBe(true);
    expect(copy.getPeerCount()).toBe(6);
    expect(events.filter((t) => t === 'foreign-snapshot' || t === 'tail-dropped')).toEqual([]);
    await copy.close();
  });

  it('restore --include of the registry takes its journal along (a stale journal is never replayed onto it)', async () => {
    const root = await tempDir();
    const data = join(root, 'data');
    const reg = await PeerRegistry.open({ dataRoot: data, compactMinBytes: 1 << 30 });
    for (let i = 0; i < 5; i++) await reg.addPeer({ nodeId: `p${i}`, address: `ws://10.0.0.${i}:8000` });
    await reg.close(); // compacted: no journal in the backup
    await createBackup({ source: data, backupDir: join(root, 'bk'), name: 'clean', fsync: false });
    const live = await PeerRegistry.open({ dataRoot: data, compactMinBytes: 1 << 30 });
    await live.addPeer({ nodeId: 'later', address: 'ws://10.0.0.99:8000' }); // now in the live journal
    // (the node is stopped without compacting: its journal stays)
    expect(existsSync(join(data, 'mesh', 'peer_registry.json.journal'))).toBe(true);
    await restoreBackup({ name: 'clean', backupDir: join(root, 'bk'), target: data, include: ['mesh/peer_registry.json'], fsync: false, force: true });
    expect(existsSync(join(data, 'mesh', 'peer_registry.json.journal'))).toBe(false);
    const after = await PeerRegistry.open({ dataRoot: data });
    expect(after.hasPeer('later')).toBe(false);
    expect(after.getPeerCount()).toBe(5);
    await after.close();
    await writeFile(join(root, 'done'), '');
  });
});
