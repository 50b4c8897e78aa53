import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { copyFixture, fixturesDir, useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { resolveDataRoot, resolveRegistryPath } from './data-root.js';
import { PeerRegistryError } from './errors.js';
import { Peer, type PeerInit } from './peer.js';
import { PeerRegistry, type PeerEventName } from './registry.js';
import { durableDoc } from '../test/durable.js';

const tempDir = useTempDir('peer-registry-');
const fileOf = (root: string) => join(root, 'mesh', 'peer_registry.json');
/** Snapshot + journal replayed: the durable state (see test/durable.ts). */
const readDoc = async (root: string) => durableDoc(fileOf(root));
const now = () => Date.now() / 1000;

async function rejection(p: Promise<unknown>): Promise<PeerRegistryError> {
  try {
    await p;
  } catch (err) {
    expect(PeerRegistryError.is(err), String(err)).toBe(true);
    return err as PeerRegistryError;
  }
  throw new Error('expected a rejection');
}

function recordEvents(reg: PeerRegistry): string[] {
  const seen: string[] = [];
  for (const e of ['peer:added', 'peer:updated', 'peer:removed'] as PeerEventName[]) {
    reg.on(e, (p, info) => seen.push(`${e} ${p.nodeId} ${info.origin}`));
  }
  return seen;
}

describe('the Python file format', () => {
  it('loads the Python fixture with every field, and writes it back field by field', async () => {
    const root = await copyFixture('data', join(await tempDir(), 'data'));
    const original = await readDoc(root);
    const reg = await PeerRegistry.open({ dataRoot: root });
    expect(reg.getPeerCount()).toBe(3);
    for (const rec of original.peers) {
      const p = reg.getPeer(rec.node_id)!;
      expect(p.toDict()).toMatchObject(rec);
      expect(reg.getPeerByAddress(rec.address)).toBe(p);
    }
    const first = reg.getPeer(original.peers[0].node_id)!;
    expect(first).toMatchObject({
      address: 'ws://127.0.0.1:8001',
      peerId: null,
      publicKey: '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
      connected: false,
      lastSeen: 1795652496.8748157,
      firstSeen: 1795652496.8748078,
      agents: ['first_agent', 'coordinator'],
      healthScore: 0.8,
      connectionAttempts: 3,
      successfulConnections: 2,
      failedConnections: 1,
      metadata: { region: 'eu-west', version: '0.9.1' },
    });
    expect(reg.getPeer(original.peers[2].node_id)!.peerId).toBe('12D3KooWGRUZzT3nAzfnV4Uq8Lh6dFkkYbDLXJzXG3fFyF2ctcz3');

    await reg.addPeer({ nodeId: 'js-node', address: '/ip6/::1/tcp/4001/ws', tools: [{ name: 'search' }] });
    await reg.close();
    const written = await readDoc(root);
    expect(Object.keys(written)).toEqual(['version', 'peers']);
    expect(written.version).toBe(1);
    expect(written.peers).toHaveLength(4);
    for (const [i, rec] of original.peers.entries()) {
      const out = written.peers[i];
      expect(Object.keys(out).slice(0, Object.keys(rec).length)).toEqual(Object.keys(rec));
      for (const key of Object.keys(rec)) expect(out[key], `${rec.node_id}.${key}`).toEqual(rec[key]);
      expect(out.tools).toEqual([]);
    }
    expect(written.peers[3]).toMatchObject({ node_id: 'js-node', tools_count: 1, tools: [{ name: 'search' }] });
    // 2-space indentation, as json.dumps(indent=2)
    expect(await readFile(fileOf(root), 'utf8')).toMatch(/^\{\n {2}"version": 1,\n {2}"peers": \[\n {4}\{\n {6}"node_id"/);
  });

  it('keeps unknown fields of records and of the document', async () => {
    const root = await tempDir();
    const doc = JSON.parse(await readFile(join(fixturesDir, 'data/mesh/peer_registry.json'), 'utf8'));
    doc.written_by = { program: 'dawn-py', version: '0.9.1' };
    doc.peers[0].reputation = { score: 7, votes: [1, 2] };
    await mkdir(join(root, 'mesh'));
    await writeFile(fileOf(root), JSON.stringify(doc, null, 2));
    const reg = await PeerRegistry.open({ dataRoot: root });
    expect(reg.getPeer(doc.peers[0].node_id)!.extra).toEqual({ reputation: { score: 7, votes: [1, 2] } });
    await reg.recordConnectionSuccess(doc.peers[0].node_id);
    await reg.addPeer(Peer.fromDict({ ...doc.peers[0], reputation: undefined }));
    const out = await readDoc(root);
    expect(out.written_by).toEqual({ program: 'dawn-py', version: '0.9.1' });
    expect(out.peers[0].reputation).toEqual({ score: 7, votes: [1, 2] });
    await reg.clear();
    expect(await readDoc(root)).toEqual({ version: 1, peers: [], written_by: { program: 'dawn-py', version: '0.9.1' } });
  });

  it('refuses a file of a newer format version, and leaves it alone', async () => {
    const root = await tempDir();
    await mkdir(join(root, 'mesh'));
    const text = JSON.stringify({ version: 2, peers: [] });
    await writeFile(fileOf(root), text);
    const err = await rejection(PeerRegistry.open({ dataRoot: root, onCorrupt: 'quarantine' }));
    expect(err.code).toBe('UNSUPPORTED_VERSION');
    expect(await readFile(fileOf(root), 'utf8')).toBe(text);
  });
});

describe('validation', () => {
  const good: PeerInit = { nodeId: 'n1', address: 'ws://127.0.0.1:8000' };
  const table: [string, Record<string, unknown>, string, string][] = [
    ['empty nodeId', { nodeId: '' }, 'INVALID_NODE_ID', 'nodeId'],
    ['257-char nodeId', { nodeId: 'x'.repeat(257) }, 'INVALID_NODE_ID', 'nodeId'],
    ['missing nodeId', { nodeId: undefined }, 'INVALID_NODE_ID', 'nodeId'],
    ['http address', { address: 'http://127.0.0.1:8000' }, 'INVALID_ADDRESS', 'address'],
    ['host:port address', { address: '127.0.0.1:8000' }, 'INVALID_ADDRESS', 'address'],
    ['bad multiaddr', { address: '/ip4/300.1.1.1/tcp/9000' }, 'INVALID_ADDRESS', 'address'],
    ['health 1.5', { healthScore: 1.5 }, 'INVALID_HEALTH_SCORE', 'healthScore'],
    ['health NaN', { healthScore: Number.NaN }, 'INVALID_HEALTH_SCORE', 'healthScore'],
    ['lastSeen Infinity', { lastSeen: Number.POSITIVE_INFINITY }, 'INVALID_TIMESTAMP', 'lastSeen'],
    ['firstSeen string', { firstSeen: '2026-01-01' }, 'INVALID_TIMESTAMP', 'firstSeen'],
    ['metadata with a function', { metadata: { f: () => 1 } }, 'INVALID_FIELD', 'metadata.f'],
    ['agents not strings', { agents: [1] }, 'INVALID_FIELD', 'agents[0]'],
    ['publicKey not hex', { publicKey: 'xyz' }, 'INVALID_FIELD', 'publicKey'],
  ];

  it.each(table)('addPeer rejects %s with its code, and the file is unchanged', async (_name, patch, code, field) => {
    const root = await copyFixture('data', join(await tempDir(), 'data'));
    const before = await readFile(fileOf(root));
    const reg = await PeerRegistry.open({ dataRoot: root });
    const events = recordEvents(reg);
    const err = await rejection(reg.addPeer({ ...good, ...patch } as PeerInit));
    expect(err.code).toBe(code);
    expect(err.field).toBe(field);
    expect(err.message).toContain(field.replace(/[.[].*$/, ''));
    await reg.flush();
    expect(await readFile(fileOf(root))).toEqual(before);
    expect(reg.getPeerCount()).toBe(3);
    expect(events).toEqual([]);
  });

  it('updatePeer validates the patch before changing anything', async () => {
    const root = await tempDir();
    const reg = await PeerRegistry.open({ dataRoot: root });
    await reg.addPeer(good);
    const before = await readFile(`${fileOf(root)}.journal`); // the add is in the journal; nothing may follow it
    expect((await rejection(reg.updatePeer('n1', { healthScore: -1 }))).code).toBe('INVALID_HEALTH_SCORE');
    expect((await rejection(reg.updatePeer('n1', { connected: true, address: 'nope' }))).code).toBe('INVALID_ADDRESS');
    expect(reg.getPeer('n1')!.connected).toBe(false);
    expect((await rejection(reg.updatePeer('n1', { nodeId: 'n2' } as never))).code).toBe('INVALID_FIELD');
    expect((await rejection(reg.updatePeer('ghost', { connected: true }))).code).toBe('NOT_FOUND');
    await reg.flush();
    expect(await readFile(`${fileOf(root)}.journal`)).toEqual(before);
  });

  it('a peerValidator saying no makes addPeer return false and write nothing', async () => {
    const root = await tempDir();
    const asked: string[] = [];
    const reg = await PeerRegistry.open({
      dataRoot: root,
      peerValidator: { canConnect: (id) => (asked.push(id), id !== 'banned') },
    });
    expect(await reg.addPeer({ nodeId: 'banned', address: 'ws://10.0.0.1:1' })).toBe(false);
    expect(reg.hasPeer('banned')).toBe(false);
    expect(existsSync(join(root, 'mesh'))).toBe(false);
    expect(await reg.addPeer({ nodeId: 'banned', address: 'ws://10.0.0.1:1' }, { skipValidation: true })).toBe(true);
    expect(await reg.addPeer({ nodeId: 'friend', address: 'ws://10.0.0.2:1' })).toBe(true);
    expect(asked).toEqual(['banned', 'friend']);
    const asyncReg = await PeerRegistry.open({ persist: false, peerValidator: { canConnect: async () => false } });
    expect(await asyncReg.addPeer(good)).toBe(false);
    expect(asyncReg.getPeerCount()).toBe(0);
  });

  it('rejects bad options', async () => {
    expect((await rejection(PeerRegistry.open({ persist: false, maxPeers: 0 }))).code).toBe('INVALID_OPTION');
    expect((await rejection(PeerRegistry.open({ persist: false, peerTimeout: -5 }))).field).toBe('peerTimeout');
  });
});

describe('events', () => {
  it('fire once per real change, never for a no-op', async () => {
    const reg = await PeerRegistry.open({ dataRoot: await tempDir() });
    const events = recordEvents(reg);
    await reg.addPeer({ nodeId: 'a', address: 'ws://10.0.0.1:1', lastSeen: 100, firstSeen: 100 });
    await reg.addPeer({ nodeId: 'a', address: 'ws://10.0.0.1:1', lastSeen: 100, firstSeen: 100 }); // same: no event
    await reg.updatePeer('a', { connected: false }); // already false: no event
    await reg.updatePeer('a', { metadata: {} }); // already {}: no event
    await reg.updatePeer('a', { connected: true });
    await reg.recordConnectionFailure('a');
    await reg.removePeer('a');
    await reg.removePeer('a'); // already gone: no event
    expect(events).toEqual(['peer:added a local', 'peer:updated a local', 'peer:updated a local', 'peer:removed a local']);
  });

  it('report what another instance changed in the file, with origin "file"', async () => {
    const root = await tempDir();
    const a = await PeerRegistry.open({ dataRoot: root });
    const b = await PeerRegistry.open({ dataRoot: root });
    const seenByB = recordEvents(b);
    await a.addPeer({ nodeId: 'from-a', address: 'ws://10.0.0.1:1' });
    expect(b.hasPeer('from-a')).toBe(false); // not until b writes or reloads
    await b.addPeer({ nodeId: 'from-b', address: 'ws://10.0.0.2:1' });
    expect(b.hasPeer('from-a')).toBe(true);
    await a.removePeer('from-a');
    await b.reload();
    expect(b.hasPeer('from-a')).toBe(false);
    expect(seenByB).toEqual(['peer:added from-b local', 'peer:added from-a file', 'peer:removed from-a file']);
    expect((await readDoc(root)).peers.map((p: { node_id: string }) => p.node_id)).toEqual(['from-b']);
  });

  it("a listener's own mutations are written after the change it reacts to", async () => {
    const root = await tempDir();
    const reg = await PeerRegistry.open({ dataRoot: root });
    reg.on('peer:added', (p) => {
      if (p.nodeId.startsWith('temp-')) void reg.removePeer(p.nodeId);
      else void reg.updatePeer(p.nodeId, { metadata: { greeted: true } });
    });
    await reg.addPeer({ nodeId: 'temp-1', address: 'ws://h:1' });
    await reg.addPeer({ nodeId: 'keep', address: 'ws://h:2' });
    await reg.flush();
    expect(reg.listPeers().map((p) => p.toDict())).toEqual((await readDoc(root)).peers);
    expect(reg.hasPeer('temp-1')).toBe(false);
    expect(reg.getPeer('keep')!.metadata).toEqual({ greeted: true });
  });

  it('a throwing listener does not break the registry', async () => {
    const reg = await PeerRegistry.open({ persist: false });
    const errors: unknown[] = [];
    const onUncaught = (e: unknown) => errors.push(e);
    process.prependListener('uncaughtException', onUncaught);
    try {
      reg.on('peer:added', () => {
        throw new Error('listener bug');
      });
      const calls: string[] = [];
      reg.once('peer:added', (p) => calls.push(p.nodeId));
      expect(await reg.addPeer({ nodeId: 'a', address: 'ws://h:1' })).toBe(true);
      await reg.addPeer({ nodeId: 'b', address: 'ws://h:2' });
      await new Promise((r) => setTimeout(r, 10));
      expect(calls).toEqual(['a']);
      expect(reg.getPeerCount()).toBe(2);
      expect(errors.length).toBe(2);
    } finally {
      process.removeListener('uncaughtException', onUncaught);
    }
  });
});

describe('corrupt files', () => {
  async function corruptRoot(text: string): Promise<string> {
    const root = await tempDir();
    await mkdir(join(root, 'mesh'));
    await writeFile(fileOf(root), text);
    return root;
  }

  it('open() rejects with CORRUPT (line, column) and leaves the bytes untouched', async () => {
    const text = '{\n  "version": 1,\n  "peers": [\n    {"node_id": "a", "address": "ws://h:1"},,\n';
    const root = await corruptRoot(text);
    const err = await rejection(PeerRegistry.open({ dataRoot: root }));
    expect(err.code).toBe('CORRUPT');
    expect(err.line).toBe(4);
    expect(err.column).toBeGreaterThan(1);
    expect(err.path).toBe(fileOf(root));
    expect(err.message).toContain(fileOf(root));
    expect(err.message).toMatch(/line 4/);
    expect(await readFile(fileOf(root), 'utf8')).toBe(text);
    expect(await readdir(join(root, 'mesh'))).toEqual(['peer_registry.json']);
  });

  it('a file that is JSON but not a registry is CORRUPT too, with the key path', async () => {
    const root = await corruptRoot(JSON.stringify({ version: 1, peers: [{ node_id: 'a', address: 'ws://h:1' }, { address: 'ws://h:2' }] }));
    const err = await rejection(PeerRegistry.open({ dataRoot: root }));
    expect(err.code).toBe('CORRUPT');
    expect(err.keyPath).toBe('$.peers[1].node_id');
  });

  it("onCorrupt: 'quarantine' moves the file aside and starts empty", async () => {
    const text = '{"version": 1, "peers": [';
    const root = await corruptRoot(text);
    const reg = await PeerRegistry.open({ dataRoot: root, onCorrupt: 'quarantine' });
    expect(reg.getPeerCount()).toBe(0);
    const names = await readdir(join(root, 'mesh'));
    const moved = names.find((n) => /^peer_registry\.json\.corrupt-\d+$/.test(n));
    expect(moved).toBeDefined();
    expect(reg.quarantinedTo).toBe(join(root, 'mesh', moved!));
    expect(await readFile(join(root, 'mesh', moved!), 'utf8')).toBe(text);
    expect(names).not.toContain('peer_registry.json');
    await reg.addPeer({ nodeId: 'a', address: 'ws://h:1' });
    expect((await readDoc(root)).peers).toHaveLength(1);
  });

  it('a file corrupted after open is never overwritten: the write fails with CORRUPT', async () => {
    const root = await tempDir();
    const reg = await PeerRegistry.open({ dataRoot: root });
    await reg.addPeer({ nodeId: 'a', address: 'ws://h:1' });
    await writeFile(fileOf(root), 'garbage');
    expect((await rejection(reg.addPeer({ nodeId: 'b', address: 'ws://h:2' }))).code).toBe('CORRUPT');
    expect(await readFile(fileOf(root), 'utf8')).toBe('garbage');
    void reg.addPeer({ nodeId: 'c', address: 'ws://h:3' }); // unawaited: reported by flush()
    expect((await rejection(reg.flush())).code).toBe('CORRUPT');
    await reg.flush(); // reported once
    // A failed write re-reads the files under the lock after rejecting; let that finish before
    // the temp dir is removed (it raced the removal: ENOTEMPTY, about one run in three).
    await reg.close().catch(() => {});
  });
});

describe('behaviour', () => {
  it('persist: false touches no disk at all', async () => {
    const root = join(await tempDir(), 'not-created');
    const reg = await PeerRegistry.open({ dataRoot: root, persist: false });
    await reg.addPeer({ nodeId: 'a', address: 'ws://h:1' });
    await reg.recordConnectionSuccess('a');
    await reg.cleanupDeadPeers();
    await reg.clear();
    await reg.close();
    expect(reg.path).toBeUndefined();
    expect(existsSync(root)).toBe(false);
  });

  it('getPeerByAddress follows adds, address changes and removals', async () => {
    const reg = await PeerRegistry.open({ persist: false });
    await reg.addPeer({ nodeId: 'a', address: 'ws://h:1' });
    await reg.addPeer({ nodeId: 'b', address: 'ws://h:1' });
    expect(reg.getPeerByAddress('ws://h:1')!.nodeId).toBe('a');
    await reg.updatePeer('a', { address: '/ip4/10.0.0.1/tcp/9000' });
    expect(reg.getPeerByAddress('ws://h:1')!.nodeId).toBe('b');
    expect(reg.getPeerByAddress('/ip4/10.0.0.1/tcp/9000')!.nodeId).toBe('a');
    await reg.removePeer('b');
    expect(reg.getPeerByAddress('ws://h:1')).toBeUndefined();
    await reg.addPeer(new Peer({ nodeId: 'a', address: 'ws://h:2' }));
    expect(reg.getPeerByAddress('/ip4/10.0.0.1/tcp/9000')).toBeUndefined();
    expect(reg.getPeerByAddress('ws://h:2')!.nodeId).toBe('a');
    await reg.clear();
    expect(reg.getPeerByAddress('ws://h:2')).toBeUndefined();
  });

  it('upsert: a Peer replaces every field, a plain object only the fields it names', async () => {
    const reg = await PeerRegistry.open({ persist: false });
    await reg.addPeer({ nodeId: 'a', address: 'ws://h:1', healthScore: 0.5, agents: ['x'] });
    await reg.addPeer({ nodeId: 'a', address: 'ws://h:2' });
    expect(reg.getPeer('a')).toMatchObject({ address: 'ws://h:2', healthScore: 0.5, agents: ['x'] });
    await reg.addPeer(new Peer({ nodeId: 'a', address: 'ws://h:3' }));
    expect(reg.getPeer('a')).toMatchObject({ address: 'ws://h:3', healthScore: 1, agents: [] });
  });

  it('maxPeers evicts the least healthy, then the least recently seen peer', async () => {
    const root = await tempDir();
    const reg = await PeerRegistry.open({ dataRoot: root, maxPeers: 3 });
    const events = recordEvents(reg);
    const t = now();
    await reg.addPeer({ nodeId: 'healthy-old', address: 'ws://h:1', healthScore: 0.9, lastSeen: t - 100 });
    await reg.addPeer({ nodeId: 'sick-recent', address: 'ws://h:2', healthScore: 0.2, lastSeen: t });
    await reg.addPeer({ nodeId: 'sick-old', address: 'ws://h:3', healthScore: 0.2, lastSeen: t - 50 });
    await reg.addPeer({ nodeId: 'new-1', address: 'ws://h:4' });
    expect(reg.hasPeer('sick-old')).toBe(false);
    await reg.addPeer({ nodeId: 'new-2', address: 'ws://h:5' });
    expect(reg.hasPeer('sick-recent')).toBe(false);
    await reg.recordConnectionFailure('new-1'); // now 0.8: the least healthy
    await reg.addPeer({ nodeId: 'new-3', address: 'ws://h:6' });
    expect(reg.listPeers().map((p) => p.nodeId).sort()).toEqual(['healthy-old', 'new-2', 'new-3']);
    expect(events.filter((e) => e.startsWith('peer:removed'))).toEqual([
      'peer:removed sick-old local',
      'peer:removed sick-recent local',
      'peer:removed new-1 local',
    ]);
    expect((await readDoc(root)).peers.map((p: { node_id: string }) => p.node_id).sort()).toEqual(['healthy-old', 'new-2', 'new-3']);
    await reg.addPeer({ nodeId: 'healthy-old', address: 'ws://h:7' }); // an update never evicts
    expect(reg.getPeerCount()).toBe(3);
  });

  it('maxPeers holds for the whole file, whoever added the peers', async () => {
    const root = await tempDir();
    const capped = await PeerRegistry.open({ dataRoot: root, maxPeers: 2 });
    const other = await PeerRegistry.open({ dataRoot: root });
    const t = now();
    await other.addPeer({ nodeId: 'x', address: 'ws://h:1', healthScore: 0.1, lastSeen: t });
    await other.addPeer({ nodeId: 'y', address: 'ws://h:2', healthScore: 0.9, lastSeen: t });
    await other.addPeer({ nodeId: 'z', address: 'ws://h:3', healthScore: 0.5, lastSeen: t });
    await capped.addPeer({ nodeId: 'mine', address: 'ws://h:4' });
    expect(capped.listPeers().map((p) => p.nodeId).sort()).toEqual(['mine', 'y']);
    await capped.flush(); // the evictions of the others' peers are written after the add
    expect((await readDoc(root)).peers.map((p: { node_id: string }) => p.node_id).sort()).toEqual(['mine', 'y']);
  });

  it('cleanupDeadPeers removes every dead peer in one write', async () => {
    const root = await tempDir();
    const reg = await PeerRegistry.open({ dataRoot: root, peerTimeout: 60 });
    const t = now();
    for (let i = 0; i < 10; i++) void reg.addPeer({ nodeId: `dead-${i}`, address: `ws://d:${i + 1}`, lastSeen: t - 61 - i });
    for (let i = 0; i < 5; i++) void reg.addPeer({ nodeId: `alive-${i}`, address: `ws://a:${i + 1}`, lastSeen: t });
    await reg.flush();
    expect(reg.getPeerStats()).toMatchObject({ totalPeers: 15, alivePeers: 5, deadPeers: 10 });
    const before = reg.flushCount;
    const removed = await reg.cleanupDeadPeers();
    expect(reg.flushCount - before).toBe(1);
    expect(removed.map((p) => p.nodeId).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `dead-${i}`).sort());
    expect((await readDoc(root)).peers).toHaveLength(5);
    expect(await reg.cleanupDeadPeers()).toEqual([]);
  });

  it('unawaited mutations coalesce into few writes; each promise resolves once durable', async () => {
    const root = await tempDir();
    const reg = await PeerRegistry.open({ dataRoot: root });
    const promises = Array.from({ length: 300 }, (_, i) => reg.addPeer({ nodeId: `n${i}`, address: `ws://10.0.${i >> 8}.${i & 255}:8000` }));
    expect(reg.getPeerCount()).toBe(300); // visible at once
    const first = await promises[0];
    expect(first).toBe(true);
    expect((await readDoc(root)).peers).toHaveLength(300);
    await Promise.all(promises);
    expect(reg.flushCount).toBe(1);
  });

  it('counts are applied onto the file, so two writers add up', async () => {
    const root = await tempDir();
    const a = await PeerRegistry.open({ dataRoot: root });
    await a.addPeer({ nodeId: 'p', address: 'ws://h:1', healthScore: 0.5 });
    const b = await PeerRegistry.open({ dataRoot: root });
    await Promise.all([a.recordConnectionSuccess('p'), b.recordConnectionSuccess('p'), b.recordConnectionFailure('p')]);
    await a.reload();
    await b.reload();
    for (const r of [a, b]) {
      expect(r.getPeer('p')).toMatchObject({ connectionAttempts: 3, successfulConnections: 2, failedConnections: 1 });
    }
    expect((await readDoc(root)).peers[0].connection_attempts).toBe(3);
  });

  it('getPeerStats and the counts', async () => {
    const reg = await PeerRegistry.open({ persist: false, peerTimeout: 60 });
    expect(reg.getPeerStats()).toEqual({ totalPeers: 0, alivePeers: 0, connectedPeers: 0, deadPeers: 0, averageHealthScore: 0 });
    await reg.addPeer({ nodeId: 'a', address: 'ws://h:1', connected: true, healthScore: 0.5 });
    await reg.addPeer({ nodeId: 'b', address: 'ws://h:2', lastSeen: now() - 120, healthScore: 1 });
    expect(reg.getPeerStats()).toEqual({ totalPeers: 2, alivePeers: 1, connectedPeers: 1, deadPeers: 1, averageHealthScore: 0.75 });
    expect(reg.getAlivePeerCount()).toBe(1);
    expect(reg.getConnectedPeerCount()).toBe(1);
    expect(reg.listAlivePeers().map((p) => p.nodeId)).toEqual(['a']);
    expect(reg.listConnectedPeers().map((p) => p.nodeId)).toEqual(['a']);
    expect(reg.listPeers({ aliveOnly: true })).toHaveLength(1);
    expect(await reg.updatePeerActivity('b')).toBe(true);
    expect(await reg.updatePeerActivity('nobody')).toBe(false);
    expect(reg.getAlivePeerCount()).toBe(2);
  });

  it('close() flushes, then mutations reject with CLOSED', async () => {
    const root = await tempDir();
    const reg = await PeerRegistry.open({ dataRoot: root });
    void reg.addPeer({ nodeId: 'a', address: 'ws://h:1' });
    await reg.close();
    expect((await readDoc(root)).peers).toHaveLength(1);
    expect((await rejection(reg.addPeer({ nodeId: 'b', address: 'ws://h:2' }))).code).toBe('CLOSED');
    expect(reg.getPeer('a')).toBeDefined();
  });
});

describe('data root', () => {
  it('dataRoot, then PROJECT_DAWN_DATA_ROOT (~ expanded), then ~/.project-dawn', () => {
    expect(resolveDataRoot({ dataRoot: '/srv/dawn', env: { PROJECT_DAWN_DATA_ROOT: '/x' } })).toBe('/srv/dawn');
    expect(resolveDataRoot({ env: { PROJECT_DAWN_DATA_ROOT: '~/dawn-data' } })).toBe(join(homedir(), 'dawn-data'));
    expect(resolveDataRoot({ env: { PROJECT_DAWN_DATA_ROOT: '' } })).toBe(join(homedir(), '.project-dawn'));
    expect(resolveDataRoot({ env: {} })).toBe(join(homedir(), '.project-dawn'));
    expect(resolveRegistryPath({ dataRoot: '/srv/dawn' })).toBe('/srv/dawn/mesh/peer_registry.json');
    expect(resolveRegistryPath({ dataDir: '/srv/mesh', dataRoot: '/ignored' })).toBe('/srv/mesh/peer_registry.json');
  });

  it('open() uses the environment when no option is given', async () => {
    const root = await tempDir();
    const saved = process.env.PROJECT_DAWN_DATA_ROOT;
    process.env.PROJECT_DAWN_DATA_ROOT = root;
    try {
      const reg = await PeerRegistry.open();
      expect(reg.path).toBe(fileOf(root));
    } finally {
      if (saved === undefined) delete process.env.PROJECT_DAWN_DATA_ROOT;
      else process.env.PROJECT_DAWN_DATA_ROOT = saved;
    }
  });
});
