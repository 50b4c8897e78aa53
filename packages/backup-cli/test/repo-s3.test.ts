import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { rm } from 'node:fs/promises';
import { makeTempDir, repoRoot, useTempDir } from '@dawn/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, snapshot } from './helpers.js';
import { repoScenarios } from './repo-scenarios.js';

const run = promisify(execFile);
const SCRIPT = resolve(repoRoot, 'scripts/s3-server.sh');
const NEEDED = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'uuidgen', 'curl'];
const missing = NEEDED.filter((b) => !(process.env.PATH ?? '').split(':').some((d) => existsSync(join(d, b))));
const mustRun = process.env.CI === 'true';
const skip = missing.length > 0 && !mustRun;
if (skip) {
  console.warn(
    `[repo-s3] skipped: no Ceph (${missing.join(', ')} missing); to run the S3 tests: apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw uuid-runtime curl (Debian, root), or CI=true to make this a failure`,
  );
}

const tempDir = useTempDir('dawn-backup-repo-s3-');
const server = { dir: '', env: {} as NodeJS.ProcessEnv, endpoint: '' };

describe.skipIf(skip)('S3 repository (a real Ceph RGW on 127.0.0.1, started by this suite)', () => {
  beforeAll(async () => {
    // Not a useTempDir dir: those are removed after each test, and the daemons' pid files live here.
    server.dir = await makeTempDir('dawn-backup-s3-server-');
    // Own ports, own directory: never the server of another suite or of a developer.
    let lastErr: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const base = 20000 + Math.floor(Math.random() * 20000);
      const env = { ...process.env, CEPH_S3_DIR: join(server.dir, 'ceph'), CEPH_MON_PORT: String(base), CEPH_RGW_PORT: String(base + 2) };
      try {
        const { stdout } = await run('bash', [SCRIPT, 'start'], { env, timeout: 120_000 });
        const vars = Object.fromEntries(stdout.trim().split('\n').map((l) => l.split('=') as [string, string]));
        server.endpoint = vars.S3_ENDPOINT!;
        server.env = {
          CEPH_S3_DIR: env.CEPH_S3_DIR,
          AWS_ACCESS_KEY_ID: vars.S3_ACCESS_KEY,
          AWS_SECRET_ACCESS_KEY: vars.S3_SECRET_KEY,
          AWS_REGION: vars.S3_REGION,
          AWS_ENDPOINT_URL_S3: vars.S3_ENDPOINT,
        };
        return;
      } catch (err) {
        lastErr = err;
        await run('bash', [SCRIPT, 'stop'], { env }).catch(() => undefined);
      }
    }
    throw lastErr;
  }, 400_000);

  afterAll(async () => {
    if (!server.dir) return;
    await run('bash', [SCRIPT, 'stop'], { env: { ...process.env, CEPH_S3_DIR: join(server.dir, 'ceph') }, timeout: 60_000 });
    await rm(server.dir, { recursive: true, force: true });
  }, 90_000);

  let n = 0;
  repoScenarios(tempDir, {
    url: (tag) => `s3://dawn-test/${tag}-${process.pid}-${n++}`,
    env: () => server.env,
  });

  it('an unreachable endpoint: a clear IO error, exit 1, nothing local changed', async () => {
    const root = await tempDir();
    const data = join(root, 'data');
    const env = { ...server.env, AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9', PROJECT_DAWN_DATA_ROOT: data, DAWN_BACKUP_DIR: join(root, 'backups') };
    const { makeRichTree } = await import('./helpers.js');
    await makeRichTree(data);
    expect((await cli(['backup', '--name', 'b1', '--quiet'], env)).code).toBe(0);
    const before = await snapshot(root);
    for (const args of [
      ['init', '--repo', 's3://dawn-test/unreachable'],
      ['push', '--repo', 's3://dawn-test/unreachable'],
      ['list', '--repo', 's3://dawn-test/unreachable'],
      ['restore', 'latest', '--repo', 's3://dawn-test/unreachable', '--target', data],
    ]) {
      const r = await cli([...args, '--json'], env);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(1);
      const e = JSON.parse(r.stderr).error;
      expect(e.code).toBe('IO');
      expect(e.message).toContain('cannot be reached');
      expect(e.message).toContain('127.0.0.1:9');
    }
    // --s3-endpoint wins over the environment
    const wrong = await cli(['list', '--repo', 's3://dawn-test/unreachable', '--s3-endpoint', 'http://127.0.0.1:9', '--json'], { ...env, AWS_ENDPOINT_URL_S3: server.env.AWS_ENDPOINT_URL_S3 });
    expect(wrong.code).toBe(1);
    expect(await snapshot(root)).toEqual(before);
  });
});
