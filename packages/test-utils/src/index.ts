export { makeTempDir, useTempDir, copyDir, fixturesDir, copyFixture, repoRoot } from './tmp.ts';
export { spawnNode, runNode, type Child, type ChildExit } from './child.ts';
export { canMountTmpfs, tmpfsSkipReason, withTinyFs, fillUp } from './full-disk.ts';
