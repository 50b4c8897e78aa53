import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { useTempDir } from '@dawn/test-utils';
import { describe } from 'vitest';
import { repoScenarios } from './repo-scenarios.js';

const tempDir = useTempDir('dawn-backup-repo-dir-');
let base: string | undefined;

describe('directory repository', () => {
  repoScenarios(
    async () => {
      const d = await tempDir();
      base ??= await tempDir();
      return d;
    },
    {
      // alternate the two spellings: a path and a file:// URL
      url: (tag) => (tag.length % 2 === 0 ? join(base!, tag) : pathToFileURL(join(base!, tag)).href),
      env: () => ({}),
    },
  );
});
