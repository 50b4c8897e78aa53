import type { Options } from 'tsup';

/**
 * The one tsup config every published package spreads: ESM only, declarations,
 * source maps, a target that matches `engines.node` (>=20.19).
 */
export const baseConfig = {
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  splitting: false,
  treeshake: true,
} satisfies Options;
