import { describe, expect, it } from 'vitest';
import { checkManifest, unsafePathReason } from './metadata.js';

const sha = 'a'.repeat(64);
const file = (path: string) => ({ path, type: 'file', size: 1, mode: '0644', sha256: sha });
const dir = (path: string) => ({ path, type: 'dir', mode: '0755' });

describe('manifest safety', () => {
  it.each(['../x', '/etc/passwd', 'a/../../x', 'a//b', './a', 'a/', '', 'a\u0000b', '.backup_metadata.json'])('rejects the path %j', (p) => {
    expect(unsafePathReason(p)).toBeDefined();
  });
  it.each(['a', 'a/b', '..a', 'a..', 'données/日本語.json', '.hidden', 'sub/.backup_metadata.json'])('accepts the path %j', (p) => {
    expect(unsafePathReason(p)).toBeUndefined();
  });
  it.runIf(process.platform !== 'win32')('accepts names with \\ and : on POSIX (a backup that succeeded must restore)', () => {
    for (const p of ['\\x', '\\_', 'C:/x', 'C:notes', 'a\\b', 'dir/C:']) expect(unsafePathReason(p)).toBeUndefined();
  });
  it.runIf(process.platform === 'win32')('rejects \\ and : on Windows', () => {
    for (const p of ['\\x', 'C:/x']) expect(unsafePathReason(p)).toBeDefined();
  });

  it('checks the exact bytes of path_b64: malformed, unsafe, duplicate and parent problems', () => {
    const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64');
    const f = (path: string, path_b64?: string) => ({ ...file(path), ...(path_b64 !== undefined ? { path_b64 } : {}) });
    expect(checkManifest([dir('d'), f('d/\ufffd', b64('d/\xff')), f('\ufffd', b64('\xff')), f('\ufffd', b64('\xfe'))])).toEqual([]);
    const problems = checkManifest([
      f('x', 'not base64!'),
      f('y', ''),
      f('\ufffd', b64('../\xff')),
      f('\ufffd/z', b64('\xfd/z')),
      f('\ufffd', b64('\xfc')),
      f('\ufffd', b64('\xfc')),
      f('plain', b64('plain')), // the same bytes given twice, once as base64
      f('plain'),
    ]);
    const details = problems.map((p) => p.detail).join('; ');
    expect(details).toMatch(/malformed path_b64/);
    expect(details).toMatch(/\.\." segment/);
    expect(details).toMatch(/not in the manifest/);
    expect(problems.filter((p) => /twice/.test(p.detail))).toHaveLength(2);
  });

  it('reserves the top-level metadata name only where the backup stores it (name_escape)', () => {
    expect(unsafePathReason('.backup_metadata.json')).toBeDefined();
    expect(unsafePathReason('.backup_metadata.json', { nameEscape: true })).toBeUndefined();
    expect(unsafePathReason('.backup_metadata.json~', { nameEscape: true })).toBeUndefined();
  });

  it('accepts a sound manifest', () => {
    expect(checkManifest([dir('a'), file('a/b'), { path: 'l', type: 'symlink', target: '../../etc' }])).toEqual([]);
  });

  it('rejects entries below a symlink, without their directory, duplicates and malformed entries', () => {
    const problems = checkManifest([
      { path: 'd', type: 'symlink', target: '/tmp' },
      file('d/f'),
      file('nodir/f'),
      file('x'),
      file('x'),
      { path: 'y', type: 'file', size: -1, mode: '0644', sha256: sha },
      { path: 'z', type: 'file', size: 1, mode: '0644', sha256: 'nope' },
      { path: 'w', type: 'fifo' },
      { path: 'm', type: 'dir', mode: '9999' },
      null,
    ]);
    const byPath = (p: string) => problems.filter((x) => x.path === p).map((x) => x.detail).join('; ');
    expect(byPath('d/f')).toMatch(/below the symlink d/);
    expect(byPath('nodir/f')).toMatch(/not in the manifest/);
    expect(byPath('x')).toMatch(/twice/);
    expect(byPath('y')).toMatch(/size/);
    expect(byPath('z')).toMatch(/sha256/);
    expect(byPath('w')).toMatch(/unknown entry type/);
    expect(byPath('m')).toMatch(/mode/);
    expect(problems.every((p) => p.kind === 'unsafe')).toBe(true);
  });

  it('accepts file entries without checksums only when asked (Python backups)', () => {
    const m = [{ path: 'f', type: 'file', size: 1, mode: '0644', sha256: '' }];
    expect(checkManifest(m)).toHaveLength(1);
    expect(checkManifest(m, { checksums: false })).toEqual([]);
  });
});
