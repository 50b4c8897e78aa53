export { makeTempDir, useTempDir, copyDir, fixturesDir, copyFixture, repoRoot } from './tmp.ts';
export { spawnNode, runNode, type Child, type ChildExit } from './child.ts';
