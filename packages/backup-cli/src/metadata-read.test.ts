import { mkdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { MAX_METADATA_BYTES, metadataProblems, readMetadata } from './metadata.js';

const tempDir = useTempDir('dawn-backup-meta-');

const PYTHON = { backup_name: 'b', timestamp: '2026-11-26T00:21:37.234654', source_dir: '/home/dawn/.project-dawn', backup_dir: '/home/dawn/backups/b' };
const OURS = {
  ...PYTHON,
  format: 'dawn-backup',
  format_version: 1,
  tool: '@dawn/backup-cli',
  tool_version: '0.1.0',
  hostname: 'node-7',
  created_at: 1795688100.874,
  excludes: ['*.log'],
  file_count: 1,
  dir_count: 0,
  symlink_count: 0,
  total_bytes: 3,
  root_mode: '0755',
  durability: 'syncfs',
  summary: { peer_count: null, agent_ids: ['a1'], notes: ['x'] },
  manifest: [],
  unknown: { anything: [1, { deep: true }] },
};

describe('metadataProblems: every field this package reads, checked one by one', () => {
  it('accepts a Python backup and ours', () => {
    expect(metadataProblems(PYTHON)).toEqual([]);
    expect(metadataProblems(OURS)).toEqual([]);
  });

  it.each([
    [[], /not a JSON object/],
    [null, /not a JSON object/],
    ['text', /not a JSON object/],
    [{ ...PYTHON, source_dir: 7 }, /^source_dir: expected a string, got 7$/],
    [{ ...PYTHON, source_dir: '' }, /^source_dir: not a usable path$/],
    [{ ...PYTHON, backup_dir: undefined }, /^backup_dir: missing$/],
    [{ ...PYTHON, timestamp: 'yesterday' }, /^timestamp: .* not an ISO time, and there is no created_at$/],
    [{ ...OURS, created_at: '1795688100' }, /^created_at: expected Unix seconds/],
    [{ ...OURS, created_at: 1e300 }, /^created_at: expected Unix seconds/],
    [{ ...OURS, file_count: -1 }, /^file_count: expected a whole number ≥ 0, got -1$/],
    [{ ...OURS, total_bytes: 2 ** 60 }, /^total_bytes: expected a whole number/],
    [{ ...OURS, format_version: 3 }, /^format_version: 3 is newer than this tool reads \(2\)/],
    [{ ...OURS, root_mode: '999' }, /^root_mode: not an octal mode/],
    [{ ...OURS, hostname: 'h'.repeat(5000) }, /^hostname: longer than 1024 characters$/],
    [{ ...OURS, excludes: ['a', 1] }, /^excludes\[1\]: expected a string, got 1$/],
    [{ ...OURS, summary: [] }, /^summary: expected an object, got a list$/],
    [{ ...OURS, summary: { peer_count: 'many' } }, /^summary\.peer_count:/],
    [{ ...OURS, summary: { agent_ids: 'a1' } }, /^summary\.agent_ids: expected a list of strings/],
    [{ ...OURS, manifest: {} }, /^manifest: expected a list, got an object$/],
    [{ ...OURS, manifest: undefined }, /^manifest: missing, though format is "dawn-backup"/],
  ] as [unknown, RegExp][])('%j → %s', (doc, problem) => {
    const problems = metadataProblems(doc);
    expect(problems.some((p) => problem.test(p)), problems.join('\n')).toBe(true);
  });

  it('names every problem, not only the first', () => {
    expect(metadataProblems({ ...OURS, hostname: 1, file_count: 'x', summary: 5 })).toHaveLength(3);
  });
});

describe('readMetadata', () => {
  it('refuses a file larger than the limit without reading it (a sparse file of 600 MiB)', async () => {
    const dir = await tempDir();
    const file = join(dir, '.backup_metadata.json');
    await writeFile(file, '');
    await truncate(file, MAX_METADATA_BYTES + 1);
    await expect(readMetadata(dir, 'big')).rejects.toMatchObject({ code: 'BACKUP_INVALID', message: expect.stringMatching(/larger than/) });
  });

  it('says what is wrong with every field, and leaves the backup alone', async () => {
    const dir = await tempDir();
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, '.backup_metadata.json'), JSON.stringify({ ...OURS, hostname: 1, summary: 5 }));
    await expect(readMetadata(dir, 'b')).rejects.toMatchObject({
      code: 'BACKUP_INVALID',
      message: expect.stringMatching(/hostname: expected a string, got 1; summary: expected an object, got 5\. The backup was left untouched/),
    });
  });
});
