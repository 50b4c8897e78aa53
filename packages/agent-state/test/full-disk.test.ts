/** A real full file system (a tiny tmpfs; root only, as in CI): a save fails with IO, the state file is intact. */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { canMountTmpfs, fillUp, tmpfsSkipReason, withTinyFs } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { AgentStateError, BaseAgent } from '../src/index.js';

if (!canMountTmpfs) console.log(`skipped: ${tmpfsSkipReason}`);

describe.skipIf(!canMountTmpfs)('agent state on a real full disk', () => {
  it('saveState and stop fail with IO; the previous file is intact; a later save works once there is room', async () => {
    await withTinyFs('256k', async (dir) => {
      const agent = new BaseAgent<{ blob: string }>('a1', { dataRoot: dir, initialState: { blob: 'small' } });
      await agent.initialize();
      await agent.saveState();
      const file = join(dir, 'agents', 'a1', 'state.json');
      const before = await readFile(file, 'utf8');
      await fillUp(join(dir, 'agents', 'a1'));
      agent.state = { blob: 'x'.repeat(300_000) };
      for (const op of [() => agent.saveState(), () => agent.stop()]) {
        const err = await op().then(() => undefined, (e: unknown) => e);
        expect(AgentStateError.is(err) && err.code, String(err)).toBe('IO');
        expect(await readFile(file, 'utf8')).toBe(before);
        expect((await readdir(join(dir, 'agents', 'a1'))).filter((n) => !n.startsWith('.filler-'))).toEqual(['state.json']);
      }
      for (const n of await readdir(join(dir, 'agents', 'a1'))) if (n.startsWith('.filler-')) await rm(join(dir, 'agents', 'a1', n));
      agent.state = { blob: 'fits' };
      await agent.saveState();
      expect(JSON.parse(await readFile(file, 'utf8')).state).toEqual({ blob: 'fits' });
    });
  });
});
