import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { childRel, decodeB64, entryRel, manifestPathFields, parentRel, relBytes, relFromBytes, relKey, storedRel, unstoredRel } from './relpath.js';

const bytes = fc.uint8Array({ minLength: 1, maxLength: 24 }).map((a) => Buffer.from(a.map((b) => (b === 0 ? 0x41 : b))));

describe('names are bytes', () => {
  it('a path has one canonical form: a string when UTF-8, else the bytes', () => {
    expect(relFromBytes(Buffer.from('données/ok'))).toBe('données/ok');
    expect(Buffer.isBuffer(relFromBytes(Buffer.from([0x61, 0xff])))).toBe(true);
    fc.assert(
      fc.property(bytes, (b) => {
        const rel = relFromBytes(b);
        expect(relBytes(rel).equals(b)).toBe(true);
        expect(entryRel(manifestPathFields(rel))).toEqual(rel);
        expect(relKey(relFromBytes(Buffer.from(b)))).toBe(relKey(rel));
      }),
    );
  });

  it('child and parent are inverse, across UTF-8 and non-UTF-8 segments', () => {
    const parent = relFromBytes(Buffer.from([0x64, 0xfe]));
    const child = childRel(parent, 'ok');
    expect(relBytes(child).equals(Buffer.from([0x64, 0xfe, 0x2f, 0x6f, 0x6b]))).toBe(true);
    expect(relKey(parentRel(child)!)).toBe(relKey(parent));
    expect(parentRel(childRel('a', Buffer.from('b')))).toBe('a');
    expect(parentRel('top')).toBeUndefined();
  });

  it('decodes strict base64 only', () => {
    expect(decodeB64('/w==')).toEqual(Buffer.from([0xff]));
    for (const bad of ['/w=', '/w', 'a b=', '////x===', 7, null]) expect(decodeB64(bad)).toBeUndefined();
  });

  it('stores the reserved top-level names one-to-one, and nothing else differently', () => {
    expect(storedRel('.backup_metadata.json', true)).toBe('.backup_metadata.json~');
    expect(storedRel('.backup_metadata.json~/x', true)).toBe('.backup_metadata.json~~/x');
    expect(storedRel('sub/.backup_metadata.json', true)).toBe('sub/.backup_metadata.json');
    expect(storedRel('.backup_metadata.json', false)).toBe('.backup_metadata.json');
    expect(storedRel('.backup_metadata.json.bak', true)).toBe('.backup_metadata.json.bak');
    const rel = fc.oneof(
      bytes.map(relFromBytes),
      fc.tuple(fc.nat(3), fc.option(bytes.map(relFromBytes), { nil: undefined })).map(([n, rest]) => {
        const top = `.backup_metadata.json${'~'.repeat(n)}`;
        return rest === undefined ? top : childRel(top, relBytes(rest));
      }),
    );
    fc.assert(
      fc.property(rel, rel, (a, b) => {
        const sa = storedRel(a, true);
        expect(relKey(sa)).not.toBe('.backup_metadata.json');
        expect(relKey(unstoredRel(sa, true))).toBe(relKey(a));
        if (relKey(a) !== relKey(b)) expect(relKey(sa)).not.toBe(relKey(storedRel(b, true)));
      }),
    );
  });
});
