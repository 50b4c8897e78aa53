/** A real full file system (a tiny tmpfs; root only, as in CI): a mutation fails with IO, the file is intact. */
import { readdir, readFile, rm } from 'node:fs/promises';
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
      await registry.flush({ compact: true }); // one plain file (the journal folded in)
      const file = join(dir, 'mesh', 'peer_registry.json');
      const before = await readFile(file, 'utf8');
      await fillUp(join(dir, 'mesh'));
      const err = await registry
        .addPeer({ nodeId: 'big', address: 'ws://10.0.0.99:8000', metadata: { blob: 'x'.repeat(300_000) } })
        .then(() => undefined, (e: unknown) => e);
      expect(PeerRegistryError.is(err) && err.code, String(err)).toBe('IO');
      expect(await readFile(file, 'utf8')).toBe(before);
      // No temp file; at most a journal whose torn tail (the failed append) is dropped on open.
      const left = (await readdir(join(dir, 'mesh'))).filter((n) => !n.startsWith('.filler-')).sort();
      expect(left.filter((n) => n !== 'peer_registry.json.journal')).toEqual(['peer_registry.json']);
      await registry.close().catch(() => {});
      for (const n of await readdir(join(dir, 'mesh'))) if (n.startsWith('.filler-')) await rm(join(dir, 'mesh', n));
      const again = await PeerRegistry.open({ dataRoot: dir });
      expect(again.getPeerCount()).toBe(5);
      expect(again.hasPeer('big')).toBe(false);
      await again.close().catch(() => {});
    });
  });
});
