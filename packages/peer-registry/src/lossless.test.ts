/**
 * Issue 9, class A for the registry: values round-trip exactly (integers beyond 2^53, `__proto__`
 * keys), deep or oversized JSON ends in coded errors, and only regular files are read.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseJson, stringifyJson } from '@dawn/atomic-json';
import { useTempDir } from '@dawn/test-utils';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PeerRegistryError } from './errors.js';
import { cloneJson, copyJson, jsonEqual, MAX_JSON_DEPTH } from './json.js';
import { increment, Peer } from './peer.js';
import { PeerRegistry } from './registry.js';

const tempDir = useTempDir('peer-registry-lossless-');
const fileOf = (root: string) => join(root, 'mesh', 'peer_registry.json');
const hasPython = spawnSync('python3', ['-c', 'import json'], { stdio: 'ignore' }).status === 0;
const TWO63 = 2n ** 63n;

async function rejection(p: Promise<unknown>): Promise<PeerRegistryError> {
  try {
    await p;
  } catch (err) {
    expect(PeerRegistryError.is(err), String(err)).toBe(true);
    return err as PeerRegistryError;
  }
  throw new Error('expected a rejection');
}

function python(script: string, ...args: string[]): string {
  return execFileSync('python3', ['-c', script, ...args], { encoding: 'utf8' });
}

/** An object with an own property for each entry, whatever the key (`__proto__` included). */
function objectOf(entries: [string, unknown][]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
  return o;
}

/** `v` with every integral number beyond ±(2^53 − 1) replaced by the bigint of its exact value. */
function exact(v: unknown): unknown {
  if (typeof v === 'number') return Number.isInteger(v) && !Number.isSafeInteger(v) && Math.abs(v) < 1e21 ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(exact);
  if (v !== null && typeof v === 'object') return objectOf(Object.keys(v).map((k) => [k, exact((v as Record<string, unknown>)[k])]));
  return v;
}

function nested(depth: number, leaf: unknown = 1): unknown {
  let v: unknown = leaf;
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

async function writeRegistry(root: string, text: string): Promise<string> {
  await mkdir(join(root, 'mesh'), { recursive: true });
  await writeFile(fileOf(root), text);
  return fileOf(root);
}

const pythonRecord = (id: string, extra = '') =>
  `{"node_id": "${id}", "address": "ws://10.0.0.1:8000", "peer_id": null, "public_key": null, "connected": false, ` +
  `"last_seen": 1795652496.8748157, "first_seen": 1795652496.1, "agents": [], "tools_count": 0, "resources_count": 0, ` +
  `"prompts_count": 0, "health_score": 1.0, "connection_attempts": 0, "successful_connections": 0, "failed_connections": 0, ` +
  `"metadata": {}${extra}}`;

describe('integers beyond 2^53 (A1)', () => {
  it.skipIf(!hasPython)('a registry written by Python keeps every big integer exactly when another peer changes', async () => {
    const root = await tempDir();
    const file = fileOf(root);
    await mkdir(join(root, 'mesh'), { recursive: true });
    // The Python implementation's writer: json.dump(indent=2) of to_dict() records (no lists).
    python(
      `
import json, sys
def rec(node_id, **kw):
    r = {"node_id": node_id, "address": "ws://10.0.0.%d:8000" % len(node_id), "peer_id": None, "public_key": None,
         "connected": False, "last_seen": 1795652496.8748157, "first_seen": 1795652496.8748078, "agents": ["a"],
         "tools_count": 0, "resources_count": 0, "prompts_count": 0, "health_score": 0.8,
         "connection_attempts": 3, "successful_connections": 2, "failed_connections": 1, "metadata": {}}
    r.update(kw)
    return r
big = rec("big", connection_attempts=2**63, successful_connections=2**63 - 1, failed_connections=2**64 + 7,
          tools_count=2**63, metadata={"ns": 2**63, "ids": [2**64 + 1, -(2**70)], "deep": {"t": 1732530000123456789}},
          origin_ns=2**63 + 5)
doc = {"version": 1, "peers": [big, rec("other"), rec("third", metadata={"n": -(2**63)})], "generated_ns": 1732530000123456789}
with open(sys.argv[1], "w") as f:
    json.dump(doc, f, indent=2)
`,
      file,
    );
    const before = await readFile(file, 'utf8');

    const reg = await PeerRegistry.open({ dataRoot: root });
    const big = reg.getPeer('big')!;
    expect(big.connectionAttempts).toBe(TWO63);
    expect(big.successfulConnections).toBe(TWO63 - 1n);
    expect(big.failedConnections).toBe(2n ** 64n + 7n);
    expect(big.toolsCount).toBe(TWO63);
    expect(big.metadata).toEqual({ ns: TWO63, ids: [2n ** 64n + 1n, -(2n ** 70n)], deep: { t: 1732530000123456789n } });
    expect(big.extra).toEqual({ origin_ns: TWO63 + 5n });
    // Mutate ANOTHER peer only.
    await reg.recordConnectionSuccess('other');
    await reg.updatePeer('other', { metadata: { region: 'eu' } });
    await reg.close();

    const after = await readFile(file, 'utf8');
    expect(after).not.toBe(before);
    // Every line of the untouched record (and the top-level field) is still in the file, digit for digit.
    const section = (text: string, id: string) => {
      const start = text.indexOf(`"node_id": "${id}"`);
      return text.slice(start, text.indexOf('\n    }', start));
    };
    const lines = (s: string) => s.split('\n').map((l) => l.replace(/,$/, ''));
    const afterBig = lines(section(after, 'big'));
    for (const line of lines(section(before, 'big'))) expect(afterBig).toContain(line);
    for (const digits of ['9223372036854775808', '9223372036854775807', '18446744073709551623', '18446744073709551617', '-1180591620717411303424', '9223372036854775813', '1732530000123456789', '-9223372036854775808']) {
      expect(after).toContain(digits);
    }
    expect(after).toContain('"generated_ns": 1732530000123456789');
    // Python reads our rewrite with the exact values.
    const out = python(
      `
import json, sys
old = json.load(open(sys.argv[1]))
new = json.load(open(sys.argv[2]))
ob, nb = old["peers"][0], new["peers"][0]
assert all(nb[k] == v and type(nb[k]) == type(v) for k, v in ob.items()), (ob, nb)
assert new["peers"][2]["metadata"] == {"n": -(2**63)}
assert new["generated_ns"] == 1732530000123456789
assert new["peers"][1]["connection_attempts"] == 4 and new["peers"][1]["metadata"] == {"region": "eu"}
print("ok")
`,
      ...(await (async () => {
        const old = join(root, 'before.json');
        await writeFile(old, before);
        return [old, file];
      })()),
    );
    expect(out.trim()).toBe('ok');
  });

  it('big integers written by another process meanwhile are kept by our next write, without spurious events', async () => {
    const root = await tempDir();
    const reg = await PeerRegistry.open({ dataRoot: root });
    await reg.addPeer({ nodeId: 'mine', address: 'ws://10.0.0.1:8000' });
    const events: string[] = [];
    reg.on('peer:added', (p, i) => events.push(`added ${p.nodeId} ${i.origin}`));
    reg.on('peer:updated', (p, i) => events.push(`updated ${p.nodeId} ${i.origin}`));
    await reg.flush({ compact: true }); // the registry file holds everything (else it is in the journal)
    // Another writer (Python) replaces the file: our next write must re-read it, losslessly.
    const doc = parseJson(await readFile(fileOf(root))) as { peers: Record<string, unknown>[] };
    const theirs = parseJson(pythonRecord('theirs').replace('"metadata": {}', '"metadata": {"ns": 1732530000123456789, "c": [18446744073709551615]}')) as Record<string, unknown>;
    theirs.connection_attempts = TWO63;
    await writeFile(fileOf(root), stringifyJson({ ...doc, peers: [...doc.peers, theirs], epoch_ns: -TWO63 }));
    await reg.recordConnectionSuccess('mine');
    await reg.recordConnectionSuccess('mine');
    expect(events).toEqual(['updated mine local', 'added theirs file', 'updated mine local']);
    await reg.close();
    const text = await readFile(fileOf(root), 'utf8');
    for (const digits of ['"ns": 1732530000123456789', '18446744073709551615', '"connection_attempts": 9223372036854775808', '"epoch_ns": -9223372036854775808']) {
      expect(text).toContain(digits);
    }
    expect(reg.getPeer('theirs')!.metadata).toEqual({ ns: 1732530000123456789n, c: [18446744073709551615n] });
  });

  it('counts beyond 2^53 with bigint arithmetic, in memory and in the file', async () => {
    const root = await tempDir();
    await writeRegistry(
      root,
      `{"version": 1, "peers": [${pythonRecord('n', '').replace('"connection_attempts": 0', '"connection_attempts": 9223372036854775807').replace('"failed_connections": 0', `"failed_connections": ${Number.MAX_SAFE_INTEGER}`)}]}`,
    );
    const reg = await PeerRegistry.open({ dataRoot: root });
    await reg.recordConnectionSuccess('n');
    await reg.recordConnectionFailure('n');
    const p = reg.getPeer('n')!;
    expect(p.connectionAttempts).toBe(TWO63 + 1n);
    expect(p.failedConnections).toBe(9007199254740992n);
    expect(p.successfulConnections).toBe(1);
    expect(p.getConnectionSuccessRate()).toBeCloseTo(1 / 2 ** 63);
    await reg.close();
    const text = await readFile(fileOf(root), 'utf8');
    expect(text).toContain('"connection_attempts": 9223372036854775809');
    expect(text).toContain('"failed_connections": 9007199254740992');
    const again = await PeerRegistry.open({ dataRoot: root });
    expect(again.getPeer('n')!.equals(p)).toBe(true);
  });

  it('accepts bigint counters and values from the caller, stored as they read back', async () => {
    const root = await tempDir();
    const reg = await PeerRegistry.open({ dataRoot: root });
    await reg.addPeer({ nodeId: 'x', address: 'ws://10.0.0.1:8000', connectionAttempts: TWO63, successfulConnections: 5n, metadata: { ns: TWO63, small: 7n, float: 2 ** 60 } });
    const p = reg.getPeer('x')!;
    expect(p.connectionAttempts).toBe(TWO63);
    expect(p.successfulConnections).toBe(5); // a safe bigint is stored as the number it reads back as
    expect(p.metadata).toEqual({ ns: TWO63, small: 7, float: 2n ** 60n });
    await reg.close();
    expect(await readFile(fileOf(root), 'utf8')).toContain('"float": 1152921504606846976');
    const again = await PeerRegistry.open({ dataRoot: root });
    expect(again.getPeer('x')!.equals(p)).toBe(true);
    const e = await rejection(again.updatePeer('x', { connectionAttempts: -1n }));
    expect(e.code).toBe('INVALID_FIELD');
  });

  it('increment() stays exact across the safe range', () => {
    expect(increment(1)).toBe(2);
    expect(increment(Number.MAX_SAFE_INTEGER - 1)).toBe(Number.MAX_SAFE_INTEGER);
    expect(increment(Number.MAX_SAFE_INTEGER)).toBe(2n ** 53n);
    expect(increment(TWO63)).toBe(TWO63 + 1n);
  });

  it('a registry version beyond 2^53 is UNSUPPORTED_VERSION (below -2^53: CORRUPT), untouched', async () => {
    const root = await tempDir();
    const file = await writeRegistry(root, '{"version": 9223372036854775808, "peers": []}');
    const e = await rejection(PeerRegistry.open({ dataRoot: root }));
    expect(e.code).toBe('UNSUPPORTED_VERSION');
    expect(await readFile(file, 'utf8')).toBe('{"version": 9223372036854775808, "peers": []}');
    await writeFile(file, '{"version": -9223372036854775808, "peers": []}');
    const e2 = await rejection(PeerRegistry.open({ dataRoot: root }));
    expect(e2.code).toBe('CORRUPT');
    expect(e2.message).toContain('-9223372036854775808');
  });

  it('a big integer where a timestamp or health belongs is CORRUPT with its key path, never rounded', async () => {
    const root = await tempDir();
    const text = `{"version": 1, "peers": [${pythonRecord('p').replace('"last_seen": 1795652496.8748157', '"last_seen": 1795652496874815700000')}]}`;
    const file = await writeRegistry(root, text);
    const e = await rejection(PeerRegistry.open({ dataRoot: root }));
    expect(e.code).toBe('CORRUPT');
    expect(e.keyPath).toBe('$.peers[0].last_seen');
    expect(await readFile(file, 'utf8')).toBe(text);
  });
});

describe('__proto__, constructor and prototype keys are data (A2)', () => {
  it('survive open, mutation of another peer and rewrite, without pollution', async () => {
    const root = await tempDir();
    const file = await writeRegistry(
      root,
      `{"version": 1, "__proto__": {"polluted": "top"}, "peers": [` +
        pythonRecord('p', ', "__proto__": {"polluted": "extra"}').replace('"metadata": {}', '"metadata": {"__proto__": {"polluted": "meta"}, "constructor": {"prototype": {"polluted": "c"}}}') +
        `, ${pythonRecord('q')}]}`,
    );
    const reg = await PeerRegistry.open({ dataRoot: root });
    const p = reg.getPeer('p')!;
    expect(Object.getPrototypeOf(p)).toBe(Peer.prototype);
    expect(Object.getPrototypeOf(p.metadata)).toBe(Object.prototype);
    expect(Object.getOwnPropertyNames(p.metadata)).toEqual(['__proto__', 'constructor']);
    expect(Object.getOwnPropertyDescriptor(p.metadata, '__proto__')?.value).toEqual({ polluted: 'meta' });
    expect(Object.getOwnPropertyNames(p.extra)).toEqual(['__proto__']);
    expect(Object.getOwnPropertyNames(p.toDict())).toContain('__proto__');
    await reg.recordConnectionFailure('q');
    await reg.updatePeer('q', { metadata: objectOf([['__proto__', { polluted: 'patch' }], ['prototype', 1]]) });
    await reg.close();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();

    const doc = parseJson(await readFile(file)) as Record<string, any>;
    expect(Object.getOwnPropertyDescriptor(doc, '__proto__')?.value).toEqual({ polluted: 'top' });
    const [rp, rq] = doc.peers as Record<string, any>[];
    expect(Object.getOwnPropertyDescriptor(rp, '__proto__')?.value).toEqual({ polluted: 'extra' });
    expect(Object.getOwnPropertyDescriptor(rp!.metadata, '__proto__')?.value).toEqual({ polluted: 'meta' });
    expect(rp!.metadata.constructor).toEqual({ prototype: { polluted: 'c' } });
    expect(Object.getOwnPropertyDescriptor(rq!.metadata, '__proto__')?.value).toEqual({ polluted: 'patch' });
    expect(rq!.metadata.prototype).toBe(1);

    const again = await PeerRegistry.open({ dataRoot: root });
    expect(again.getPeer('p')!.equals(p)).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('Peer.fromDict / toDict / clone / equals keep them as own properties', () => {
    const rec = objectOf([
      ['node_id', 'n'],
      ['address', '/ip4/127.0.0.1/tcp/9000'],
      ['metadata', objectOf([['__proto__', objectOf([['__proto__', 1n]])]])],
      ['__proto__', [TWO63]],
    ]);
    const p = Peer.fromDict(rec);
    expect(Object.getPrototypeOf(p)).toBe(Peer.prototype);
    const d = p.toDict();
    expect(Object.getPrototypeOf(d)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(d, '__proto__')?.value).toEqual([TWO63]);
    const inner = Object.getOwnPropertyDescriptor(d.metadata, '__proto__')?.value as object;
    expect(Object.getOwnPropertyDescriptor(inner, '__proto__')?.value).toBe(1); // a safe bigint reads back as a number
    expect(p.clone().equals(p)).toBe(true);
    expect(Peer.fromDict(d).equals(p)).toBe(true);
    expect(stringifyJson(d)).toContain('"__proto__": [\n    9223372036854775808\n  ]');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('property: metadata and extra values with special keys and big integers round-trip add → close → reopen', async () => {
    const key = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'a', '');
    const bigint = fc.oneof(fc.bigInt({ min: 2n ** 53n, max: 2n ** 80n }), fc.bigInt({ min: -(2n ** 80n), max: -(2n ** 53n) }));
    const { value } = fc.letrec<{ value: unknown }>((tie) => ({
      value: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null), bigint),
        fc.array(tie('value'), { maxLength: 3 }),
        fc.array(fc.tuple(key, tie('value')), { maxLength: 4 }).map((entries) => objectOf(entries)),
      ),
    }));
    const metadata = fc.array(fc.tuple(key, value), { maxLength: 5 }).map((entries) => objectOf(entries));
    let run = 0;
    await fc.assert(
      fc.asyncProperty(metadata, fc.array(value, { maxLength: 3 }), bigint, async (meta, tools, count) => {
        const root = join(await tempDir(), `r${run++}`);
        const reg = await PeerRegistry.open({ dataRoot: root });
        await reg.addPeer({ nodeId: 'n', address: 'ws://10.0.0.1:8000', metadata: meta, tools, connectionAttempts: count < 0n ? -count : count });
        const mine = reg.getPeer('n')!;
        await reg.close();
        const again = await PeerRegistry.open({ dataRoot: root });
        const theirs = again.getPeer('n')!;
        expect(Object.getPrototypeOf(theirs)).toBe(Peer.prototype);
        expect(Object.getPrototypeOf(theirs.metadata)).toBe(Object.prototype);
        expect(theirs.equals(mine)).toBe(true);
        expect(stringifyJson(theirs.metadata)).toBe(stringifyJson(mine.metadata));
        expect(stringifyJson(theirs.tools)).toBe(stringifyJson(mine.tools));
        // What the caller passed, exactly: an integral number beyond 2^53 as the bigint of its exact value.
        expect(stringifyJson(theirs.metadata)).toBe(stringifyJson(exact(meta)));
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'a')).toBe(false);
      }),
      { numRuns: 60 },
    );
  });
});

describe('deep and oversized JSON end in coded errors (A4)', () => {
  const deepText = (depth: number) => `${'{"a": '.repeat(depth)}1${'}'.repeat(depth)}`;

  it('a record nested 100,000 deep is CORRUPT with its key path, untouched; quarantine moves it aside', async () => {
    const root = await tempDir();
    const text = `{"version": 1, "peers": [${pythonRecord('ok')}, ${pythonRecord('deep').replace('"metadata": {}', `"metadata": ${deepText(100_000)}`)}]}`;
    const file = await writeRegistry(root, text);
    const e = await rejection(PeerRegistry.open({ dataRoot: root }));
    expect(e.code).toBe('CORRUPT');
    expect(e.path).toBe(file);
    expect(e.keyPath).toMatch(/^\$\.peers\[1\]\.metadata(\.a)+$/);
    expect(e.message.length).toBeLessThan(2000);
    expect(await readFile(file, 'utf8')).toBe(text);

    const reg = await PeerRegistry.open({ dataRoot: root, onCorrupt: 'quarantine' });
    expect(reg.getPeerCount()).toBe(0);
    expect(reg.quarantinedTo).toBeDefined();
    expect(await readFile(reg.quarantinedTo!, 'utf8')).toBe(text);
  });

  it.each([
    ['in an unknown record field', (d: string) => `{"version": 1, "peers": [${pythonRecord('p', `, "x": ${d}`)}]}`, /^\$\.peers\[0\]\.x/],
    ['in tools', (d: string) => `{"version": 1, "peers": [${pythonRecord('p', `, "tools": [${d}]`)}]}`, /^\$\.peers\[0\]\.tools\[0\]/],
    ['in a top-level field', (d: string) => `{"version": 1, "peers": [], "x": ${d}}`, /^\$\.x/],
    ['at the limit + 1', (_d: string) => `{"version": 1, "peers": [${pythonRecord('p').replace('"metadata": {}', `"metadata": ${deepText(MAX_JSON_DEPTH + 1)}`)}]}`, /^\$\.peers\[0\]\.metadata/],
  ])('deep nesting %s is CORRUPT', async (_what, make, keyPath) => {
    const root = await tempDir();
    const text = make(deepText(50_000));
    const file = await writeRegistry(root, text);
    const e = await rejection(PeerRegistry.open({ dataRoot: root }));
    expect(e.code).toBe('CORRUPT');
    expect(e.keyPath).toMatch(keyPath);
    expect(await readFile(file, 'utf8')).toBe(text);
  });

  it('nesting up to the limit opens and writes back', async () => {
    const root = await tempDir();
    const meta = deepText(MAX_JSON_DEPTH);
    await writeRegistry(root, `{"version": 1, "peers": [${pythonRecord('p').replace('"metadata": {}', `"metadata": ${meta}`)}, ${pythonRecord('q')}]}`);
    const reg = await PeerRegistry.open({ dataRoot: root });
    await reg.recordConnectionSuccess('q');
    await reg.close();
    const again = await PeerRegistry.open({ dataRoot: root });
    expect(again.getPeer('p')!.metadata).toEqual(parseJson(meta));
  });

  it('JSON that does not parse, even 100,000 deep, is CORRUPT with line and column', async () => {
    const root = await tempDir();
    const text = `{"version": 1, "peers": [${'['.repeat(100_000)}`;
    const file = await writeRegistry(root, text);
    const e = await rejection(PeerRegistry.open({ dataRoot: root }));
    expect(e.code).toBe('CORRUPT');
    expect(e.line).toBe(1);
    expect(await readFile(file, 'utf8')).toBe(text);
    const reg = await PeerRegistry.open({ dataRoot: root, onCorrupt: 'quarantine' });
    expect(reg.quarantinedTo).toBeDefined();
  });

  it('bytes that are not UTF-8 are CORRUPT, untouched', async () => {
    const root = await tempDir();
    const bytes = Buffer.concat([Buffer.from('{"version": 1, "peers": [], "x": "'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    await mkdir(join(root, 'mesh'), { recursive: true });
    await writeFile(fileOf(root), bytes);
    const e = await rejection(PeerRegistry.open({ dataRoot: root }));
    expect(e.code).toBe('CORRUPT');
    expect(await readFile(fileOf(root))).toEqual(bytes);
  });

  it('values too deep (or cyclic) for the registry are refused before anything is written', async () => {
    const root = await tempDir();
    const reg = await PeerRegistry.open({ dataRoot: root });
    await reg.addPeer({ nodeId: 'a', address: 'ws://10.0.0.1:8000' });
    await reg.flush({ compact: true });
    const before = await readFile(fileOf(root), 'utf8');
    for (const metadata of [nested(100_000), nested(MAX_JSON_DEPTH + 1)]) {
      const e = await rejection(reg.updatePeer('a', { metadata: metadata as Record<string, unknown> }));
      expect(e.code).toBe('INVALID_FIELD');
      expect(e.field).toMatch(/^metadata(\.a)+$/);
      const e2 = await rejection(reg.addPeer({ nodeId: 'b', address: 'ws://10.0.0.2:8000', tools: [metadata] }));
      expect(e2.code).toBe('INVALID_FIELD');
    }
    const cyclic: Record<string, unknown> = {};
    cyclic.self = { again: cyclic };
    expect((await rejection(reg.addPeer({ nodeId: 'c', address: 'ws://10.0.0.3:8000', metadata: cyclic }))).code).toBe('INVALID_FIELD');
    expect(() => new Peer({ nodeId: 'd', address: 'ws://10.0.0.4:8000', metadata: nested(100_000) as Record<string, unknown> })).toThrow(PeerRegistryError);
    expect(() => Peer.fromDict({ node_id: 'd', address: 'x', metadata: nested(100_000) })).toThrow(PeerRegistryError);
    await reg.close();
    expect(await readFile(fileOf(root), 'utf8')).toBe(before);
    expect(reg.getPeerCount()).toBe(1);
  });

  it('a write that cannot be serialized (another writer left a huge nesting) is NOT_SERIALIZABLE, file untouched', async () => {
    const root = await tempDir();
    const reg = await PeerRegistry.open({ dataRoot: root });
    await reg.addPeer({ nodeId: 'a', address: 'ws://10.0.0.1:8000' });
    await reg.flush({ compact: true });
    // Another program rewrites the file with a record nested far deeper than JSON.stringify can go.
    const text = `{"version": 1, "peers": [${pythonRecord('a')}, ${pythonRecord('z', `, "x": ${deepText(100_000)}`)}]}`;
    await writeFile(fileOf(root), text);
    // The change itself is only appended to the journal: durable, nothing lost.
    expect(await reg.addPeer({ nodeId: 'b', address: 'ws://10.0.0.2:8000' })).toBe(true);
    // Folding it into the registry file cannot be written: the file and the journal stay as they are.
    const e = await rejection(reg.close());
    expect(e.code).toBe('NOT_SERIALIZABLE');
    expect(e.path).toBe(fileOf(root));
    expect(await readFile(fileOf(root), 'utf8')).toBe(text);
    expect((await readdir(join(root, 'mesh'))).sort()).toEqual(['peer_registry.json', 'peer_registry.json.journal']);
  });

  it('the JSON helpers walk any depth without overflowing the stack', () => {
    const deep = nested(200_000);
    expect(jsonEqual(deep, nested(200_000))).toBe(true);
    expect(jsonEqual(deep, nested(200_000, 2))).toBe(false);
    expect(jsonEqual(copyJson(deep as never), deep)).toBe(true);
    expect(() => cloneJson(deep, 'v')).toThrow(PeerRegistryError);
  });
});

describe('only regular files are read (A5)', () => {
  const cases: [string, (file: string, dir: string) => Promise<void>][] = [
    ['a FIFO', async (file) => void execFileSync('mkfifo', [file])],
    [
      'a symlink to a FIFO',
      async (file, dir) => {
        execFileSync('mkfifo', [join(dir, 'fifo')]);
        await symlink(join(dir, 'fifo'), file);
      },
    ],
    ['a symlink to /dev/zero', async (file) => symlink('/dev/zero', file)],
    ['a directory', async (file) => mkdir(file)],
  ];
  it.each(cases)('open() on %s is IO at once, and nothing is touched', async (_what, make) => {
    if (process.platform === 'win32') return;
    const root = await tempDir();
    await mkdir(join(root, 'mesh'), { recursive: true });
    await make(fileOf(root), root);
    for (const onCorrupt of ['throw', 'quarantine'] as const) {
      const e = await rejection(PeerRegistry.open({ dataRoot: root, onCorrupt }));
      expect(e.code).toBe('IO');
      expect(e.path).toBe(fileOf(root));
    }
    expect(existsSync(fileOf(root))).toBe(true);
    expect((await readdir(join(root, 'mesh'))).sort()).toEqual(['peer_registry.json']);
  });
});
