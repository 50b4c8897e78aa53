import { defineConfig } from 'tsup';
import { baseConfig } from '../../tsup.config.base.ts';

// Two entries: the library (`index`) and the CLI (`cli`, imported by bin/dawn-backup.js).
export default defineConfig({ ...baseConfig, entry: ['src/index.ts', 'src/cli.ts'] });
