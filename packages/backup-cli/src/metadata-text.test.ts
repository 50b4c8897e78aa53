import { describe, expect, it } from 'vitest';
import { metadataText } from './write-metadata.js';
import type { BackupMetadata } from './metadata.js';

describe('metadataText: the metadata file as written', () => {
  const base = { backup_name: 'x', timestamp: 't', source_dir: '/a', backup_dir: '/b', format: 'dawn-backup' } as BackupMetadata;
  it.each([
    [[{ path: 'a', type: 'dir', mode: '0755' }, { path: 'a/b', type: 'file', size: 1, mode: '0644', sha256: '00', mtime: 1.5 }]],
    [[]],
  ])('is JSON equal to the object, manifest last, head ending at the marker line (%j)', (manifest) => {
    const meta = { ...base, manifest } as BackupMetadata;
    const text = metadataText(meta);
    expect(JSON.parse(text)).toEqual(meta);
    expect(text).toMatch(/\n {2}"manifest": \[/);
    expect(text.endsWith(']\n}\n')).toBe(true);
    expect(text.startsWith('{\n  "backup_name": "x",\n')).toBe(true);
  });
});
