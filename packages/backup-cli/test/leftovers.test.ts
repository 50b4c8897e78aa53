import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { createBackup } from '../src/index.js';
import { cleanBackupDirLeftovers, deletingDirName, FOREIGN_LEFTOVER_MS, hostTag, partialDirName } from '../src/leftovers.js';

const tempDir = useTempDir('dawn-backup-leftovers-');
const DEAD_PID = 99_999_999; // above any pid_max: kill(pid, 0) says ESRCH
const OTHER_HOST = hostTag() === '00000000' ? '11111111' : '00000000';

describe('temporary directories of a backup dir shared by several hosts', () => {
  it('names carry this host; another host\'s running backup is never removed for a pid dead here, only once a day old (with a warning)', async () => {
    const root = await tempDir();
    const backups = join(root, 'backups');
    await mkdir(backups);
    expect(partialDirName('x')).toMatch(new RegExp(`^\\.x\\.partial-h${hostTag()}-${process.pid}-[0-9a-f]{8}$`));
    expect(deletingDirName('x')).toMatch(new RegExp(`^\\.x\\.deleting-h${hostTag()}-${process.pid}-[0-9a-f]{8}$`));

    const foreign = `.a.partial-h${OTHER_HOST}-${DEAD_PID}-deadbeef`; // its pid is "dead" here only because it lives elsewhere
    const foreignTrash = `.b.deleting-h${OTHER_HOST}-${process.pid}-cafebabe`;
    const mineDead = `.c.partial-h${hostTag()}-${DEAD_PID}-0123abcd`;
    const mineLive = `.d.partial-h${hostTag()}-${process.pid}-0123abcd`;
    const oldFormatDead = `.e.partial-${DEAD_PID}-0badf00d`; // written by an older version: judged by its pid as before
    const oldFormatLive = `.f.partial-${process.pid}-0badf00d`;
    for (const n of [foreign, foreignTrash, mineDead, mineLive, oldFormatDead, oldFormatLive]) {
      await mkdir(join(backups, n));
      await writeFile(join(backups, n, 'half'), 'x');
    }

    const warnings: string[] = [];
    expect((await cleanBackupDirLeftovers(backups, { warn: (m) => warnings.push(m) })).sort()).toEqual([mineDead, oldFormatDead].sort());
    expect(warnings).toEqual([]);
    expect((await readdir(backups)).sort()).toEqual([foreign, foreignTrash, mineLive, oldFormatLive].sort());

    // A backup run leaves the other host's fresh leftovers alone too.
    await mkdir(join(root, 'src'));
    await writeFile(join(root, 'src/a.json'), '{}\n');
    const b = await createBackup({ source: join(root, 'src'), backupDir: backups, name: 'mine', fsync: false });
    expect(b.cleanedLeftovers).toEqual([]);
    expect(await readdir(backups)).toContain(foreign);

    // Unchanged for more than a day: abandoned, removed, and said so.
    const later = Date.now() + FOREIGN_LEFTOVER_MS + 60_000;
    expect((await cleanBackupDirLeftovers(backups, { warn: (m) => warnings.push(m), now: later })).sort()).toEqual([foreign, foreignTrash].sort());
    expect(warnings).toHaveLength(2);
    expect(warnings.join('\n')).toMatch(new RegExp(`on another host \\(h${OTHER_HOST}\\), unchanged for \\d+ h`));
    expect((await readdir(backups)).sort()).toEqual([mineLive, oldFormatLive, 'mine'].sort());
  });
});
