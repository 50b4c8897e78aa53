import { describe, expect, it } from 'vitest';
import { PeerRegistryError } from './errors.js';
import { checkAddress, checkHealthScore, checkNodeId, checkTimestamp, normalizePublicKey } from './validate.js';

function codeOf(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    expect(PeerRegistryError.is(err)).toBe(true);
    return (err as PeerRegistryError).code;
  }
}

describe('checkAddress', () => {
  it.each([
    'ws://127.0.0.1:8001',
    'wss://node.example.org',
    'ws://[::1]:8000/mesh',
    'WS://10.0.0.12:8000',
    '/ip4/127.0.0.1/tcp/9000',
    '/ip6/::1/tcp/4001/ws',
    '/ip4/1.2.3.4/udp/4001/quic-v1',
    '/dns4/boot.example.org/tcp/443/wss',
    '/dns/example.com/tcp/443/tls/ws',
    '/dnsaddr/bootstrap.libp2p.io',
    '/ip4/127.0.0.1/tcp/9000/p2p/12D3KooWGRUZzT3nAzfnV4Uq8Lh6dFkkYbDLXJzXG3fFyF2ctcz3',
    '/p2p/12D3KooWGRUZzT3nAzfnV4Uq8Lh6dFkkYbDLXJzXG3fFyF2ctcz3',
    '/unix/tmp/dawn.sock',
  ])('accepts %s', (addr) => {
    expect(codeOf(() => checkAddress(addr))).toBeUndefined();
  });

  it.each([
    [''],
    ['127.0.0.1:8000'],
    ['http://127.0.0.1:8000'],
    ['ws://'],
    ['ws://exa mple.org'],
    ['/'],
    ['/ip4/999.0.0.1/tcp/9000'],
    ['/ip4/127.0.0.1/tcp/70000'],
    ['/ip4/127.0.0.1/tcp'],
    ['/ip6/not-an-ip/tcp/1'],
    ['/tcp/9000'],
    ['/ip4/127.0.0.1/foo/1'],
    ['/ip4/127.0.0.1//tcp/1'],
    ['/dns4/bad_host!/tcp/1'],
    [`ws://${'a'.repeat(3000)}.org`],
  ])('rejects %j with INVALID_ADDRESS', (addr) => {
    expect(codeOf(() => checkAddress(addr))).toBe('INVALID_ADDRESS');
  });

  it('rejects non-strings and names the field', () => {
    try {
      checkAddress(42);
      expect.unreachable();
    } catch (err) {
      expect((err as PeerRegistryError).field).toBe('address');
      expect((err as Error).message).toMatch(/address/);
    }
  });
});

describe('the other checks', () => {
  it('nodeId: non-empty, at most 256 characters', () => {
    expect(codeOf(() => checkNodeId('a'))).toBeUndefined();
    expect(codeOf(() => checkNodeId('a'.repeat(256)))).toBeUndefined();
    expect(codeOf(() => checkNodeId(''))).toBe('INVALID_NODE_ID');
    expect(codeOf(() => checkNodeId('a'.repeat(257)))).toBe('INVALID_NODE_ID');
    expect(codeOf(() => checkNodeId(7))).toBe('INVALID_NODE_ID');
  });

  it('healthScore: finite in [0, 1]', () => {
    for (const ok of [0, 0.5, 1]) expect(codeOf(() => checkHealthScore(ok))).toBeUndefined();
    for (const bad of [-0.1, 1.01, Number.NaN, Number.POSITIVE_INFINITY, '1']) expect(codeOf(() => checkHealthScore(bad))).toBe('INVALID_HEALTH_SCORE');
  });

  it('timestamps: finite numbers', () => {
    expect(codeOf(() => checkTimestamp(1795652496.8748157, 'lastSeen'))).toBeUndefined();
    for (const bad of [Number.NaN, Number.NEGATIVE_INFINITY, '1795652496', null]) expect(codeOf(() => checkTimestamp(bad, 'lastSeen'))).toBe('INVALID_TIMESTAMP');
  });

  it('publicKey: hex (lower-cased), bytes or null', () => {
    expect(normalizePublicKey('00FF')).toBe('00ff');
    expect(normalizePublicKey(new Uint8Array([0, 1, 255]))).toBe('0001ff');
    expect(normalizePublicKey('')).toBeNull();
    expect(normalizePublicKey(null)).toBeNull();
    expect(codeOf(() => normalizePublicKey('abc'))).toBe('INVALID_FIELD');
    expect(codeOf(() => normalizePublicKey('zz'))).toBe('INVALID_FIELD');
  });
});
