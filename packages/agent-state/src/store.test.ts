import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyFixture, useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { listAgentIds, readAgentRecord } from './index.js';

const tempDir = useTempDir('as-store-');

describe('store API', () => {
  it('lists the agents of the Python data root and reads their records without an agent', async () => {
    const root = await copyFixture('data', join(await tempDir(), 'data'));
    expect(await listAgentIds(root)).toEqual(['coordinator', 'first_agent']);
    expect(await listAgentIds({ dataRoot: root })).toEqual(['coordinator', 'first_agent']);
    const rec = await readAgentRecord(root, 'coordinator');
    expect(rec).toEqual({
      agentId: 'coordinator',
      name: 'CoordinationAgent',
      state: { tasks: { t1: { status: 'done', score: 0.75 } }, round: 12 },
      revision: 0,
      updatedAt: undefined,
      stateVersion: 1,
      extra: {},
      path: join(root, 'agents', 'coordinator', 'state.json'),
    });
  });

  it('skips directories without state.json, stray files and lock directories; no agents dir means none', async () => {
    const root = await tempDir();
    expect(await listAgentIds(root)).toEqual([]);
    expect(await listAgentIds(join(root, 'missing'))).toEqual([]);
    await mkdir(join(root, 'agents', 'empty'), { recursive: true });
    await mkdir(join(root, 'agents', 'b', 'state.json.lock'), { recursive: true });
    await writeFile(join(root, 'agents', 'b', 'state.json'), '{"agent_id": "b", "state": {}}');
    await writeFile(join(root, 'agents', 'notes.txt'), 'x');
    await mkdir(join(root, 'agents', 'a'));
    await writeFile(join(root, 'agents', 'a', 'state.json'), '{}');
    expect(await listAgentIds(root)).toEqual(['a', 'b']);
    const a = await readAgentRecord(root, 'a');
    expect([a.name, a.state, a.revision]).toEqual(['a', {}, 0]);
  });

  it('reports a missing agent as NOT_FOUND and a corrupt one as PARSE with line and column', async () => {
    const root = await tempDir();
    await expect(readAgentRecord(root, 'ghost')).rejects.toMatchObject({ code: 'NOT_FOUND', agentId: 'ghost' });
    await mkdir(join(root, 'agents', 'bad'), { recursive: true });
    await writeFile(join(root, 'agents', 'bad', 'state.json'), '{\n  "agent_id": "bad",\n  "state": {,}\n}');
    await expect(readAgentRecord(root, 'bad')).rejects.toMatchObject({ code: 'PARSE', line: 3, column: 13 });
  });
});
