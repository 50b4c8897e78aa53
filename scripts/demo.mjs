// Placeholder demo until the CLI lands: atomic-json round trip.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readJson, updateJson, writeJson } from '@dawn/atomic-json';

const dir = await mkdtemp(join(tmpdir(), 'dawn-demo-'));
const file = join(dir, 'counter.json');
await writeJson(file, { n: 0 });
await Promise.all(Array.from({ length: 100 }, () => updateJson(file, (c) => ({ n: c.n + 1 }))));
console.log(`${file}:`, await readJson(file));
