import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: 'backup-cli',
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The repository commands' index cache: never the developer's ~/.cache (tests set their own where they look at it).
    env: { DAWN_BACKUP_CACHE_DIR: join(tmpdir(), 'dawn-backup-test-cache') },
  },
});
