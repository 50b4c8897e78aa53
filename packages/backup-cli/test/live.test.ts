import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyFixture, spawnNode, useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { cli, FIXTURES, json } from './helpers.js';

const tempDir = useTempDir('dawn-backup-live-');

async function jsonFiles(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await jsonFiles(dir, r)));
    else if (e.name.endsWith('.json')) out.push(r);
  }
  return out;
}

describe('backing up a data root while a node writes it', () => {
  it('every JSON file in every backup parses, no temp file is copied, and the backups verify', async () => {
    const root = await tempDir();
    const data = await copyFixture('data', join(root, 'data'));
    const backups = join(root, 'backups');
    const writer = spawnNode(join(FIXTURES, 'registry-writer.mjs'), [data]);
    try {
      await writer.waitFor((m) => m.ready === true);
      const names: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await cli(['backup', '--source', data, '--backup-dir', backups, '--name', `live${i}`, '--json']);
        expect(r.code, r.stderr).toBe(0);
        expect(json(r).summary.peerCount).toBeGreaterThanOrEqual(500); // read through @dawn/peer-registry
        names.push(`live${i}`);
      }
      const progressed = writer.messages.filter((m: any) => typeof m.writes === 'number').length;
      expect(progressed).toBeGreaterThan(0); // the writer really was writing meanwhile
      for (const name of names) {
        const dir = join(backups, name);
        const files = await jsonFiles(dir);
        expect(files).toEqual(expect.arrayContaining(['mesh/peer_registry.json', 'agents/writer_a/state.json', 'agents/writer_b/state.json']));
        for (const f of files) {
          const text = await readFile(join(dir, f), 'utf8');
          expect(() => JSON.parse(text), `${name}/${f}`).not.toThrow();
        }
        const all = await readdir(join(dir, 'mesh'));
        expect(all.filter((n) => n.endsWith('.ajtmp') || n.endsWith('.lock'))).toEqual([]);
        const v = await cli(['verify', name, '--backup-dir', backups]);
        expect(v.code, v.stderr).toBe(0);
      }
    } finally {
      writer.kill('SIGKILL');
      await writer.exited;
    }
  }, 120_000);
});
