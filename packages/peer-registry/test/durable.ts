/**
 * The registry's durable state as the next open() sees it: `peer_registry.json` with its journal
 * (`peer_registry.json.journal`) replayed, as plain JSON. Mid-run, the registry file alone no
 * longer holds the latest changes (they are appended to the journal until a compaction).
 */
import { JournaledJson, stringifyJson } from '@dawn/atomic-json';
import { applyOps, type Op, type RegistryDoc } from '../src/file-format.js';

export async function durableDoc(file: string): Promise<any> {
  const j = await JournaledJson.open<RegistryDoc, Op>(file, { apply: (d, ops) => applyOps(d, ops, file, undefined).doc });
  const doc = j.current();
  if (doc === undefined) throw Object.assign(new Error(`ENOENT: no registry at ${file}`), { code: 'ENOENT' });
  return JSON.parse(stringifyJson(doc));
}
