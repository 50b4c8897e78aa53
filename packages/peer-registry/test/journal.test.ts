import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyFixture, spawnNode, useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { PeerRegistry } from '../src/index.js';
import { durableDoc } from './durable.js';

const here = dirname(fileURLToPath(import.meta.url));
const mutator = join(here, 'fixtures', 'mutator.mjs');
const tempDir = useTempDir('peer-registry-journal-');
const fileOf = (root: string) => join(root, 'mesh', 'peer_registry.json');
const hasPython = spawnSync('python3', ['-c', 'import json'], { stdio: 'ignore' }).status === 0;

/**
 * The Python implementation's loader: `json.load` of the registry file, one `Peer.from_dict` per
 * record (every field of its `to_dict()` present), later duplicates win. Prints what it loaded.
 */
const PYTHON_LOADER = `
import json, sys
FIELDS = ['node_id', 'address', 'peer_id', 'public_key', 'connected', 'last_seen', 'first_seen', 'agents',
          'tools_count', 'resources_count', 'prompts_count', 'health_score', 'connection_attempts',
          'successful_connections', 'failed_connections', 'metadata']
with open(sys.argv[1]) as f:
    data = json.load(f)
peers = {}
for rec in data.get('peers', []):
    missing = [k for k in FIELDS if k not in rec]
    if missing:
        raise SystemExit('record %s lacks %s' % (rec.get('node_id'), missing))
    peers[rec['node_id']] = rec
print(json.dumps({'version': data['version'], 'peers': {k: {'successful_connections': v['successful_connections'], 'metadata': v['metadata']} for k, v in peers.items()}}))
`;

function pythonLoad(file: string): { version: number; peers: Record<string, { successful_connections: number; metadata: Record<string, unknown> }> } {
  return JSON.parse(execFileSync('python3', ['-c', PYTHON_LOADER, file], { encoding: 'utf8' }));
}

describe('the journal of the peer registry', () => {
  it('an awaited mutation is one journal append; close() leaves the single plain file', async () => {
    const root = await tempDir();
    const reg = await PeerRegistry.open({ dataRoot: root });
    await reg.addPeer({ nodeId: 'a', address: 'ws://10.0.0.1:8000' });
    await reg.flush({ compact: true });
    const before = reg.flushCount;
    await reg.recordConnectionSuccess('a');
    expect(reg.flushCount).toBe(before + 1);
    // (the lock may still be held for a moment after an append: see the lease in @dawn/atomic-json)
    expect((await readdir(join(root, 'mesh'))).filter((n) => !n.endsWith('.lock')).sort()).toEqual(['peer_registry.json', 'peer_registry.json.journal']);
    expect((await durableDoc(fileOf(root))).peers[0].successful_connections).toBe(1);
    await reg.close();
    expect((await readdir(join(root, 'mesh'))).sort()).toEqual(['peer_registry.json']);
  });

  it('a journal of counter ops applied to the peers at open gives exactly the folded registry file', async () => {
    const root = await tempDir();
    const reg = await PeerRegistry.open({ dataRoot: root, compactMinBytes: 1 << 30 });
    await reg.addPeer({ nodeId: 'top', address: 'ws://10.0.0.1:8000', healthScore: 1 });
    await reg.addPeer({ nodeId: 'low', address: 'ws://10.0.0.2:8000', healthScore: 0.1 });
    await reg.addPeer({ nodeId: 'mid', address: 'ws://10.0.0.3:8000', healthScore: 0.5, metadata: { big: 2n ** 64n } });
    await reg.flush({ compact: true });
    // Counter ops only (the fast path at open), with an unknown id among them.
    for (let i = 0; i < 30; i++) {
      const id = ['top', 'low', 'mid', 'gone'][i % 4]!;
      if (i % 3 === 0) await reg.recordConnectionSuccess(id);
      else if (i % 3 === 1) await reg.recordConnectionFailure(id);
      else await reg.updatePeerActivity(id);
    }
    const live = reg.listPeers().map((p) => p.toDict());
    // The node dies: no compaction, the journal stays.
    expect(existsSync(`${fileOf(root)}.journal`)).toBe(true);
    const opened = await PeerRegistry.open({ dataRoot: root, compactMinBytes: 1 << 30 });
    const view = opened.listPeers().map((p) => p.toDict());
    expect(view).toEqual(live);
    await opened.close(); // folds the journal into the file (applyOps on the records)
    const folded = await PeerRegistry.open({ dataRoot: root });
    expect(folded.listPeers().map((p) => p.toDict())).toEqual(view);
    await reg.close();
  });

  it('open() replays a journal left by a killed process, then folds it into the registry file', async () => {
    const root = await tempDir();
    const child = spawnNode(mutator, [root, 'k', 'forever'], { cwd: join(here, '..') });
    await child.waitFor((m) => (m as { acked?: number }).acked === 9, 30_000);
    child.kill('SIGKILL');
    const exit = await child.exited;
    const acked = Math.max(...exit.messages.map((m) => (m as { acked?: number }).acked ?? 0));
    const events: string[] = [];
    const reg = await PeerRegistry.open({ dataRoot: root, lock: { staleMs: 2000, timeoutMs: 30_000 }, onJournalEvent: (e) => events.push(e.type) });
    for (let n = 1; n <= acked; n += 2) expect(reg.hasPeer(`k-${n}`)).toBe(true);
    // Folded in the background shortly after open(), without waiting for close().
    for (let i = 0; i < 200 && existsSync(`${fileOf(root)}.journal`); i++) await new Promise((r) => setTimeout(r, 25));
    expect(existsSync(`${fileOf(root)}.journal`)).toBe(false);
    expect(reg.compactionCount).toBe(1);
    await reg.close();
    expect(existsSync(`${fileOf(root)}.journal`)).toBe(false);
  });

  it('SIGKILL at random moments of a writer doing awaited mutations (24 kills): every acknowledged mutation is present after reopen', async () => {
    const LANES = 4;
    const KILLS = 6;
    const lane = async (root: string): Promise<number> => {
      let lastAcked = 0;
      const ackedEvens = new Set<number>();
      let kills = 0;
      for (let k = 0; k < KILLS; k++) {
        const child = spawnNode(mutator, [root, 'w', 'forever'], { cwd: join(here, '..') });
        await child.waitFor((m) => (m as { ready?: boolean }).ready === true, 60_000);
        // Kill while it mutates: after its first acknowledged mutation (the lock a previous kill left
        // behind is only taken over after staleMs; a kill before that kills no mutation).
        await child.waitFor((m) => (m as { acked?: number }).acked !== undefined, 60_000);
        await new Promise((r) => setTimeout(r, 30 + Math.random() * 300));
        child.kill('SIGKILL');
        const exit = await child.exited;
        expect(exit.signal).toBe('SIGKILL');
        kills++;
        for (const m of exit.messages as { acked?: number }[]) {
          if (m.acked === undefined) continue;
          lastAcked = Math.max(lastAcked, m.acked);
          if (m.acked % 2 === 0) ackedEvens.add(m.acked);
        }
        // The files load (the journal's lock may be the killed writer's: taken over after staleMs).
        const reg = await PeerRegistry.open({ dataRoot: root, lock: { staleMs: 2000, timeoutMs: 30_000 } });
        for (let n = 1; n <= lastAcked; n += 2) expect(reg.hasPeer(`w-${n}`), `w-${n}`).toBe(true);
        if (ackedEvens.size > 0) expect(Number(reg.getPeer('shared')!.successfulConnections)).toBeGreaterThanOrEqual(ackedEvens.size);
        await reg.close();
      }
      return kills;
    };
    const roots = await Promise.all(Array.from({ length: LANES }, () => tempDir()));
    const kills = await Promise.all(roots.map(lane));
    expect(kills.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(20);
  }, 300_000);

  it('3 processes × 200 awaited mutations, with compactions in between, lose nothing', async () => {
    const root = await tempDir();
    const prefixes = ['alpha', 'bravo', 'charlie'];
    const children = prefixes.map((p) => spawnNode(mutator, [root, p, '200'], { cwd: join(here, '..') }));
    await Promise.all(children.map((c) => c.waitFor((m) => m.ready === true, 30_000)));
    for (const c of children) c.proc.stdin!.write('go\n');
    const exits = await Promise.all(children.map((c) => c.exited));
    for (const x of exits) expect(x.code, x.stderr).toBe(0);
    const done = exits.map((x) => x.messages.find((m) => (m as { done?: boolean }).done) as { compactions: number });
    expect(done.reduce((a, d) => a + d.compactions, 0)).toBeGreaterThan(3); // compactions did happen meanwhile
    expect(existsSync(`${fileOf(root)}.journal`)).toBe(false);
    const reg = await PeerRegistry.open({ dataRoot: root });
    for (const p of prefixes) for (let n = 1; n <= 200; n += 2) expect(reg.hasPeer(`${p}-${n}`), `${p}-${n}`).toBe(true);
    expect(reg.getPeerCount()).toBe(3 * 100 + 1);
    expect(reg.getPeer('shared')!.successfulConnections).toBe(3 * 100);
  }, 120_000);

  it.skipIf(!hasPython)('a Python-style rewrite of the registry file during a run loses neither side; Python loads the file after close()', async () => {
    const root = await tempDir();
    await copyFixture('data/mesh', join(root, 'mesh'));
    const events: string[] = [];
    const reg = await PeerRegistry.open({ dataRoot: root, onJournalEvent: (e) => events.push(e.type) });
    const [first, second] = reg.listPeers().map((p) => p.nodeId);
    const before = reg.getPeer(first!)!.successfulConnections as number;
    await reg.recordConnectionSuccess(first!); // in the journal only
    await reg.addPeer({ nodeId: 'ours', address: 'ws://10.0.0.9:8000' });
    // The Python implementation: json.load of the file (without our journal), its changes, json.dump in place, no lock.
    execFileSync('python3', [
      '-c',
      `
import json, sys
p = sys.argv[1]
with open(p) as f: d = json.load(f)
rec = dict(d['peers'][0]); rec['node_id'] = 'from-python'; d['peers'].append(rec)
for r in d['peers']:
    if r['node_id'] == sys.argv[2]: r['metadata'] = {'region': 'eu'}
with open(p, 'w') as f: json.dump(d, f, indent=2)
`,
      fileOf(root),
      second!,
    ]);
    const seen: string[] = [];
    reg.on('peer:added', (p, { origin }) => seen.push(`${p.nodeId} ${origin}`));
    await reg.recordConnectionSuccess(first!); // finds the rewrite, applies the journal onto it
    expect(events).toContain('foreign-snapshot');
    expect(seen).toContain('from-python file');
    expect(reg.getPeer(second!)!.metadata).toEqual({ region: 'eu' });
    await reg.close();
    expect((await readdir(join(root, 'mesh'))).sort()).toEqual(['peer_registry.json']);
    const loaded = pythonLoad(fileOf(root));
    expect(loaded.version).toBe(1);
    expect(Object.keys(loaded.peers)).toContain('from-python');
    expect(Object.keys(loaded.peers)).toContain('ours');
    expect(loaded.peers[first!]!.successful_connections).toBe(before + 2);
    expect(loaded.peers[second!]!.metadata).toEqual({ region: 'eu' });
  });

  it('a torn journal tail is dropped with an event; damage before it is CORRUPT, and quarantine keeps the registry file', async () => {
    const root = await tempDir();
    const reg = await PeerRegistry.open({ dataRoot: root });
    await reg.addPeer({ nodeId: 'a', address: 'ws://10.0.0.1:8000' });
    await reg.flush({ compact: true });
    for (let i = 0; i < 3; i++) await reg.recordConnectionSuccess('a');
    const { readFile, writeFile, truncate, stat } = await import('node:fs/promises');
    const jp = `${fileOf(root)}.journal`;
    await truncate(jp, (await stat(jp)).size - 2);
    const events: string[] = [];
    const again = await PeerRegistry.open({ dataRoot: root, onJournalEvent: (e) => events.push(e.type) });
    expect(events[0]).toBe('tail-dropped');
    expect(again.getPeer('a')!.successfulConnections).toBe(2);
    await again.flush({ compact: true }); // the registry file: 2 successes; the journal starts anew
    // `again` found a journal at open: it compacts in the background 100 ms later, which would fold
    // the damaged journal below if it fired late. A registry opened without a journal never does.
    await again.close();
    const third = await PeerRegistry.open({ dataRoot: root });
    await third.recordConnectionSuccess('a');
    await third.recordConnectionSuccess('a');
    // Damage in the middle of the journal: CORRUPT, nothing touched.
    await third.flush();
    const bytes = await readFile(jp);
    const mid = bytes.length >> 1; // inside the first record after the header: data follows it
    bytes[mid] = bytes[mid]! ^ 0xff;
    await writeFile(jp, bytes);
    const err = await PeerRegistry.open({ dataRoot: root }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CORRUPT' });
    expect(await readFile(jp)).toEqual(bytes);
    const q = await PeerRegistry.open({ dataRoot: root, onCorrupt: 'quarantine' });
    expect(q.quarantinedTo).toMatch(/peer_registry\.json\.journal\.corrupt-\d+$/);
    expect(q.getPeer('a')!.successfulConnections).toBe(2); // the registry file alone, as last compacted
  });

  it('withConsistentFiles: a backup copying the registry file and its journal gets one instant, and restores as it', async () => {
    const { copyFile, mkdir } = await import('node:fs/promises');
    const root = await tempDir();
    const a = await PeerRegistry.open({ dataRoot: root });
    await a.addPeer({ nodeId: 'p', address: 'ws://10.0.0.1:8000' });
    await a.flush({ compact: true });
    await a.recordConnectionSuccess('p'); // in the journal
    const b = await PeerRegistry.open({ dataRoot: root });
    const backup = await tempDir();
    await mkdir(join(backup, 'mesh'));
    let during: Promise<boolean> | undefined;
    // Another writer, started from outside fn (a call made inside fn would run under its lock), waits for the lock.
    const other = new Promise<void>((r) =>
      setTimeout(() => {
        during = b.recordConnectionSuccess('p');
        r();
      }, 10),
    );
    await a.withConsistentFiles(async ({ snapshot, journal }) => {
      await other;
      await new Promise((r) => setTimeout(r, 50));
      await copyFile(snapshot, join(backup, 'mesh', 'peer_registry.json'));
      if (existsSync(journal)) await copyFile(journal, join(backup, 'mesh', 'peer_registry.json.journal'));
    });
    await during;
    const restored = await PeerRegistry.open({ dataRoot: backup });
    expect(restored.getPeer('p')!.successfulConnections).toBe(1); // as of the instant: without b's change
    await restored.close();
    const live = await PeerRegistry.open({ dataRoot: root });
    expect(live.getPeer('p')!.successfulConnections).toBe(2);
    // b's background compaction of the journal it found at open must not run into the temp dir's removal.
    await Promise.all([a.close(), b.close(), live.close()]);
  });
});
