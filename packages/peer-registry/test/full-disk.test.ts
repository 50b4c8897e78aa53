/** A real full file system (a tiny tmpfs; root only, as in CI): a mutation fails with IO, the file is intact. */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { canMountTmpfs, fillUp, tmpfsSkipReason, withTinyFs } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { PeerRegistry, PeerRegistryError } from '../src/index.js';

if (!canMountTmpfs) console.log(`skipped: ${tmpfsSkipReason}`);

describe.skipIf(!canMountTmpfs)('peer registry on a real full disk', () => {
  it('addPeer fails with IO; the registry file is intact and reopens; no temp file remains', async () => {
    await withTinyFs('256k', async (dir) => {
      const registry = await PeerRegistry.open({ dataRoot: dir });
      for (let i = 0; i < 5; i++) await registry.addPeer({ nodeId: `n${i}`, address: `ws://10.0.0.${i}:8000` });
      const file = join(dir, 'mesh', 'peer_registry.json');
      const before = await readFile(file, 'utf8');
      await fillUp(join(dir, 'mesh'));
      const err = await registry
        .addPeer({ nodeId: 'big', address: 'ws://10.0.0.99:8000', metadata: { blob: 'x'.repeat(300_000) } })
        .then(() => undefined, (e: unknown) => e);
      expect(PeerRegistryError.is(err) && err.code, String(err)).toBe('IO');
      expect(await readFile(file, 'utf8')).toBe(before);
      expect((await readdir(join(dir, 'mesh'))).filter((n) => !n.startsWith('.filler-')).sort()).toEqual(['peer_registry.json']);
      await registry.close().catch(() => {});
      const again = await PeerRegistry.open({ dataRoot: dir });
      expect(again.getPeerCount()).toBe(5);
      await again.close().catch(() => {});
    });
  });
});
