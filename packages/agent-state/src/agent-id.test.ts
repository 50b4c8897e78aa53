import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { AgentStateError, BaseAgent, isValidAgentId, listAgentIds, readAgentRecord } from './index.js';

const tempDir = useTempDir('as-id-');

const BAD: [string, unknown][] = [
  ['empty', ''],
  ['dot', '.'],
  ['dot-dot', '..'],
  ['slash', '/'],
  ['path with slash', 'a/b'],
  ['traversal', '../etc'],
  ['backslash', '\\'],
  ['windows path', 'a\\b'],
  ['NUL', 'a\0b'],
  ['129 characters', 'x'.repeat(129)],
  ['over 255 UTF-8 bytes (64 emoji)', '🤖'.repeat(64)],
  ['not a string', 42],
];

describe('agent ids are path segments', () => {
  it.each(BAD)('refuses %s with INVALID_AGENT_ID before touching the disk', async (_, id) => {
    const root = join(await tempDir(), 'root');
    let err: unknown;
    try {
      new BaseAgent(id as string, { dataRoot: root });
    } catch (e) {
      err = e;
    }
    expect(AgentStateError.is(err) && err.code).toBe('INVALID_AGENT_ID');
    expect((err as Error).message).toMatch(/Invalid agent id/);
    await expect(readAgentRecord(root, id as string)).rejects.toMatchObject({ code: 'INVALID_AGENT_ID' });
    expect(isValidAgentId(id)).toBe(false);
    expect(existsSync(root)).toBe(false);
  });

  it.each([
    ['128 characters', 'x'.repeat(128)],
    ['Cyrillic and emoji', 'агент-🤖'],
    ['CJK', '調整役'],
    ['dots inside', 'a..b.c'],
    ['leading dot', '.hidden'],
  ])('accepts %s, and the state round-trips in a directory of that name', async (_, id) => {
    const root = await tempDir();
    const agent = new BaseAgent(id, { dataRoot: root, initialState: { hello: id } });
    await agent.initialize();
    await agent.saveState();
    expect(await readdir(join(root, 'agents'))).toEqual([id]);
    const again = new BaseAgent(id, { dataRoot: root });
    await again.initialize();
    expect(again.state).toEqual({ hello: id });
    expect(JSON.parse(await readFile(again.statePath, 'utf8')).agent_id).toBe(id);
    expect(await listAgentIds(root)).toEqual([id]);
  });
});
