import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fixturesDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { PeerRegistryError } from './errors.js';
import { Peer, recordMatches } from './peer.js';

const T = 1795652496.5;

describe('Peer', () => {
  it('fills the Python defaults', () => {
    const before = Date.now() / 1000;
    const p = new Peer({ nodeId: 'n1', address: 'ws://127.0.0.1:8000' });
    expect(p).toMatchObject({
      peerId: null,
      publicKey: null,
      connected: false,
      agents: [],
      tools: [],
      resources: [],
      prompts: [],
      metadata: {},
      healthScore: 1,
      connectionAttempts: 0,
      successfulConnections: 0,
      failedConnections: 0,
    });
    expect(p.lastSeen).toBeGreaterThanOrEqual(before);
    expect(p.firstSeen).toBe(p.lastSeen);
  });

  it('counts successes and failures as the Python implementation did', () => {
    const p = new Peer({ nodeId: 'n1', address: 'ws://127.0.0.1:8000', healthScore: 0.8, lastSeen: T });
    expect(p.getConnectionSuccessRate()).toBe(1);
    p.recordConnectionSuccess(T + 5);
    expect(p.healthScore).toBe(0.8 + 0.1); // 0.9000000000000001, as in Python
    expect(p.lastSeen).toBe(T + 5);
    p.recordConnectionSuccess(T + 6);
    p.recordConnectionSuccess(T + 7);
    expect(p.healthScore).toBe(1);
    for (let i = 0; i < 6; i++) p.recordConnectionFailure();
    expect(p.healthScore).toBe(0);
    expect(p.lastSeen).toBe(T + 7); // a failure is not activity
    expect(p).toMatchObject({ connectionAttempts: 9, successfulConnections: 3, failedConnections: 6 });
    expect(p.getConnectionSuccessRate()).toBeCloseTo(3 / 9);
  });

  it('is alive for peerTimeout seconds after lastSeen; has an age', () => {
    const p = new Peer({ nodeId: 'n1', address: 'ws://h:1', lastSeen: T, firstSeen: T - 100 });
    expect(p.isAlive(300, T + 299)).toBe(true);
    expect(p.isAlive(300, T + 300)).toBe(false);
    expect(p.isAlive(undefined, T + 10)).toBe(true);
    expect(p.getAge(T)).toBe(100);
    p.updateActivity(T + 1000);
    expect(p.isAlive(300, T + 1001)).toBe(true);
  });

  it('rejects bad fields with a code naming the field', () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{ nodeId: '' }, 'INVALID_NODE_ID', 'nodeId'],
      [{ address: 'tcp://x' }, 'INVALID_ADDRESS', 'address'],
      [{ healthScore: 2 }, 'INVALID_HEALTH_SCORE', 'healthScore'],
      [{ lastSeen: Number.NaN }, 'INVALID_TIMESTAMP', 'lastSeen'],
      [{ firstSeen: Number.POSITIVE_INFINITY }, 'INVALID_TIMESTAMP', 'firstSeen'],
      [{ agents: ['a', 3] }, 'INVALID_FIELD', 'agents[1]'],
      [{ metadata: { when: new Date(0) } }, 'INVALID_FIELD', 'metadata.when'],
      [{ metadata: { n: Number.NaN } }, 'INVALID_FIELD', 'metadata.n'],
      [{ connectionAttempts: -1 }, 'INVALID_FIELD', 'connectionAttempts'],
      [{ nodeID: 'typo' }, 'INVALID_FIELD', 'nodeID'],
    ];
    for (const [patch, code, field] of cases) {
      let caught: unknown;
      try {
        new Peer({ nodeId: 'n1', address: 'ws://127.0.0.1:1', ...patch } as never);
      } catch (err) {
        caught = err;
      }
      expect(PeerRegistryError.is(caught), JSON.stringify(patch)).toBe(true);
      expect((caught as PeerRegistryError).code).toBe(code);
      expect((caught as PeerRegistryError).field).toBe(field);
      expect((caught as Error).message).toContain(field.replace(/\[.*$/, ''));
    }
  });

  it('copies what it is given', () => {
    const metadata = { region: 'eu' };
    const agents = ['a'];
    const p = new Peer({ nodeId: 'n1', address: 'ws://h:1', metadata, agents });
    metadata.region = 'us';
    agents.push('b');
    expect(p.metadata).toEqual({ region: 'eu' });
    expect(p.agents).toEqual(['a']);
  });

  it('round-trips every record of the Python fixture, in the Python field order, plus the lists', async () => {
    const doc = JSON.parse(await readFile(join(fixturesDir, 'data/mesh/peer_registry.json'), 'utf8'));
    for (const rec of doc.peers) {
      const p = Peer.fromDict(rec);
      const out = p.toDict();
      expect(Object.keys(out)).toEqual([...Object.keys(rec), 'tools', 'resources', 'prompts']);
      for (const key of Object.keys(rec)) expect(out[key], key).toEqual(rec[key]);
      expect(Peer.fromDict(out).equals(p)).toBe(true);
    }
    const first = Peer.fromDict(doc.peers[0]);
    expect(first.publicKey).toBe('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
    expect(first.agents).toEqual(['first_agent', 'coordinator']);
    expect(first.metadata).toEqual({ region: 'eu-west', version: '0.9.1' });
    expect(first.lastSeen).toBe(1795652496.8748157);
  });

  it('keeps unknown fields and counts whose list Python never wrote', () => {
    const p = Peer.fromDict({ node_id: 'n1', address: 'ws://h:1', tools_count: 3, future_field: { x: [1] } });
    expect(p.extra).toEqual({ future_field: { x: [1] } });
    expect(p.toolsCount).toBe(3);
    const out = p.toDict();
    expect(out.tools_count).toBe(3);
    expect('tools' in out).toBe(false); // unknown, so not claimed to be empty
    expect(out.resources).toEqual([]);
    expect(out.future_field).toEqual({ x: [1] });
  });

  it('fromDict rejects a wrong type, naming the record key', () => {
    try {
      Peer.fromDict({ node_id: 'n1', address: 'ws://h:1', health_score: 'high' });
      expect.unreachable();
    } catch (err) {
      expect((err as PeerRegistryError).code).toBe('INVALID_FIELD');
      expect((err as PeerRegistryError).field).toBe('health_score');
    }
  });

  it('clone and equals', () => {
    const p = new Peer({ nodeId: 'n1', address: 'ws://h:1', tools: [{ name: 't' }], metadata: { a: { b: 1 } } });
    const c = p.clone();
    expect(c).not.toBe(p);
    expect(c.equals(p)).toBe(true);
    c.metadata = { a: { b: 2 } };
    expect(c.equals(p)).toBe(false);
  });

  it('recordMatches agrees with fromDict + equals', () => {
    const base = new Peer({ nodeId: 'n1', address: 'ws://h:1', metadata: { a: [1, { b: 2 }] }, tools: [{ name: 't' }], lastSeen: T, firstSeen: T });
    const rec = base.toDict();
    expect(recordMatches(base, rec)).toBe(true);
    const variants: Record<string, unknown>[] = [
      { address: 'ws://h:2' },
      { health_score: 0.5 },
      { metadata: { a: [1, { b: 3 }] } },
      { tools: [] },
      { agents: ['x'] },
      { public_key: 'ab' },
      { last_seen: T + 1 },
      { connection_attempts: 1 },
      { brand_new: 1 },
    ];
    for (const v of variants) {
      const changed = { ...rec, ...v };
      expect(recordMatches(base, changed), JSON.stringify(v)).toBe(false);
      expect(Peer.fromDict(changed).equals(base)).toBe(false);
    }
    const legacy = Peer.fromDict({ node_id: 'n2', address: 'ws://h:1', tools_count: 2, last_seen: T, first_seen: T });
    expect(recordMatches(legacy, { node_id: 'n2', address: 'ws://h:1', tools_count: 2, last_seen: T, first_seen: T })).toBe(true);
    expect(recordMatches(legacy, { node_id: 'n2', address: 'ws://h:1', tools_count: 3, last_seen: T, first_seen: T })).toBe(false);
    expect(recordMatches(legacy, legacy.toDict())).toBe(true);
  });
});
