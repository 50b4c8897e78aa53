/**
 * @dawn/backup-cli (`dawn-backup`) side by side with `cp -a`, `tar -c | tar -x`, `restic`
 * (local repository) and `sha256sum -c`, in one run.
 *
 * Trees, generated once per run under os.tmpdir() and removed at the end (also on error):
 *   A) 10,000 files of 1 KiB in 100 directories;  B) 50 files of 10 MiB.
 * Contents are random bytes, distinct per file (restic gets no dedup or compression edge).
 *
 * Per tree, three phases: backup (ours CLI, ours CLI --no-fsync, ours API, cp -a, cp -a + sync -f,
 * tar pipe, restic backup into a fresh repository), verify (ours, sha256sum -c of a manifest,
 * restic check --read-data) and restore (ours into a fresh target with --overwrite; ours over a
 * populated target without --overwrite, which first saves it as pre_restore_*; restic restore).
 * `cp -a` and the tar pipe are the peers of both backup and restore (one measurement).
 *
 * Each measurement runs `reps` times (default 3) in rounds that rotate the order of the tools, so a
 * burst of load from elsewhere spreads over all of them; the median is reported. Bounded (about
 * three minutes): a measurement whose runs already took 6 s, or any once its tree used its 50 s
 * share, is not repeated. Setup and cleanup are untimed; before every timed run the file system is
 * synced (`sync -f`, untimed) so nobody pays for the previous step's writeback. The page cache
 * cannot be dropped here: all figures are with WARM caches. The CPU column (user + sys of the
 * command and its children, from GNU time) is less sensitive to other load than wall time.
 *
 * Our CLI is timed through the real binary (`node packages/backup-cli/bin/dawn-backup.js`), as
 * users run it, so node start-up is included; `createBackup` in-process is an extra row.
 *
 * Run alone: `node bench/src/backup-cli.mjs [--quick]` (quick: tiny trees, 1 run — harness smoke
 * test, figures meaningless); `BENCH_REPS=N` runs per measurement, `BENCH_TREES=A` one tree only.
 * With the others: `pnpm bench backup-cli` (bench/src/run.mjs). Needs the package built.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { lstat, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { fmtNum, formatTable, makeTempDir, median, now, ratio, removeTempDir } from './lib.mjs';

const SELF = fileURLToPath(import.meta.url);
const repoRoot = path.resolve(path.dirname(SELF), '../..');
// DAWN_BENCH_BACKUP_CLI_DIR: another build of the package to time (default: the workspace's).
const pkgDir = path.resolve(process.env.DAWN_BENCH_BACKUP_CLI_DIR ?? path.join(repoRoot, 'packages/backup-cli'));
const BIN = path.join(pkgDir, 'bin/dawn-backup.js');
const DIST = path.join(pkgDir, 'dist/index.js');
const CLI_DIST = path.join(pkgDir, 'dist/cli.js');
const MB = 1e6;
const KiB = 1024;
const MiB = 1024 * KiB;

const OURS_CLI = 'dawn-backup (CLI)';
const OURS_KEEP = 'dawn-backup, keeps old target';
const OURS_API = 'createBackup() in-process';
const OURS_NOFSYNC = 'dawn-backup --no-fsync';
const CP = 'cp -a';
const CP_SYNC = 'cp -a; sync -f';
const TAR = 'tar -c → tar -x (pipe)';
const RESTIC_BACKUP = 'restic backup';

/** The two trees; `quick` shrinks them for a smoke test of the harness. */
function treeDefs(quick) {
  return quick
    ? [
        { id: 'A', label: '200 × 1 KiB in 10 dirs', dirs: 10, perDir: 20, size: KiB },
        { id: 'B', label: '4 × 1 MiB', dirs: 1, perDir: 4, size: MiB },
      ]
    : [
        { id: 'A', label: '10,000 × 1 KiB in 100 dirs', dirs: 100, perDir: 100, size: KiB },
        { id: 'B', label: '50 × 10 MiB', dirs: 1, perDir: 50, size: 10 * MiB },
      ];
}

// ─── helpers ─────────────────────────────────────────────────────────────────

const GNU_TIME = existsSync('/usr/bin/time') && spawnSync('/usr/bin/time', ['-f', '%U', 'true'], { encoding: 'utf8' }).status === 0 ? '/usr/bin/time' : null;
let timeSeq = 0;

/**
 * Run a command; resolves on exit 0 with the CPU time (user + sys, ms, of the command and its
 * children: GNU time's report; NaN when /usr/bin/time is missing), rejects with the exit code
 * and the stderr tail otherwise.
 */
async function exec(cmd, args, { cwd, env, cpu = false } = {}) {
  const timeFile = cpu && GNU_TIME ? path.join(os.tmpdir(), `dawn-bench-time-${process.pid}-${timeSeq++}`) : null;
  try {
    await execRaw(timeFile ? GNU_TIME : cmd, timeFile ? ['-f', '%U %S', '-o', timeFile, cmd, ...args] : args, { cwd, env }, cmd, args);
    if (!timeFile) return NaN;
    const last = (await readFile(timeFile, 'utf8')).trim().split('\n').pop() ?? '';
    const [u, s] = last.split(' ').map(Number);
    return (u + s) * 1000;
  } finally {
    if (timeFile) await rm(timeFile, { force: true });
  }
}

function execRaw(file, fileArgs, { cwd, env }, cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, fileArgs, {
      cwd,
      env: env ? { ...process.env, ...env } : process.env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      stderr += d;
      if (stderr.length > 8000) stderr = stderr.slice(-4000);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) return resolve();
      const shown = cmd === process.execPath ? `node ${path.basename(args[0] ?? '')} ${args[1] ?? ''}` : `${path.basename(cmd)} ${args.slice(0, 2).join(' ')}`;
      const tail = stderr.trim().split('\n').slice(-3).join(' | ');
      reject(new Error(`${shown} exited with ${code ?? signal}${tail ? `: ${tail}` : ''}`));
    });
  });
}

const sh = (script, opts) => exec('/bin/sh', ['-c', script], opts);
const shq = (s) => `'${String(s).replaceAll("'", `'\\''`)}'`;
const rmDir = (p) => rm(p, { recursive: true, force: true });

/** Flush dirty pages of the file system holding `dir` (untimed), so a timed run starts clean. */
async function settle(dir) {
  await exec('sync', ['-f', dir]).catch(() => exec('sync', []));
}

/**
 * Run `tasks` in up to `reps` rounds, rotating their order each round. A task is
 * `{ name, setup?(i), fn(ctx, i) -> cpuMs?, cleanup?(ctx, i) }`; only `fn` is timed (wall clock;
 * `fn` may return the CPU time it measured). Bounded: a task gets another run only while its runs
 * so far took less than `budget.perTaskMs` in total and it is before `budget.deadline`
 * (so a slow task is timed once). A task that fails is recorded with its error and left out of
 * later rounds; the bench itself never throws for it.
 * Returns a Map name -> { ms (median wall), cpuMs (median CPU), times, error? }.
 */
async function rounds(reps, tasks, settleDir, budget) {
  const res = new Map(tasks.map((t) => [t.name, { ms: NaN, cpuMs: NaN, times: [], cpu: [], spent: 0 }]));
  for (let i = 0; i < reps; i++) {
    for (let k = 0; k < tasks.length; k++) {
      const t = tasks[(k + i) % tasks.length];
      const r = res.get(t.name);
      if (r.error) continue;
      if (i > 0 && (r.spent >= budget.perTaskMs || now() >= budget.deadline)) continue;
      try {
        const ctx = t.setup ? await t.setup(i) : undefined;
        await settle(settleDir);
        const t0 = now();
        const cpu = await t.fn(ctx, i);
        const ms = now() - t0;
        r.times.push(ms);
        r.cpu.push(typeof cpu === 'number' ? cpu : NaN);
        r.spent += ms;
        if (t.cleanup) await t.cleanup(ctx, i);
      } catch (err) {
        r.error = err instanceof Error ? err.message : String(err);
      }
    }
  }
  for (const r of res.values()) {
    if (r.error) continue;
    r.ms = median(r.times);
    r.cpuMs = r.cpu.every(Number.isFinite) ? median(r.cpu) : NaN;
  }
  return res;
}

/** Files (count, bytes) under `dir`, skipping `skip` names at the top level. */
async function treeStats(dir, skip = new Set()) {
  let files = 0;
  let bytes = 0;
  const walk = async (d, top) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (top && skip.has(e.name)) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p, false);
      else if (e.isFile()) {
        files++;
        bytes += (await lstat(p)).size;
      }
    }
  };
  await walk(dir, true);
  return { files, bytes };
}

/** Generate a tree of random, distinct files and a `sha256sum -c` manifest of it. */
async function makeTree(dir, def, manifestPath) {
  await mkdir(dir, { recursive: true });
  const lines = [];
  const big = def.size > 64 * KiB ? Buffer.allocUnsafe(def.size) : null;
  for (let d = 0; d < def.dirs; d++) {
    const sub = def.dirs === 1 ? '.' : `d${String(d).padStart(3, '0')}`;
    await mkdir(path.join(dir, sub), { recursive: true });
    const writes = [];
    for (let f = 0; f < def.perDir; f++) {
      const rel = `${sub}/f${String(f).padStart(4, '0')}.dat`;
      const data = randomFillSync(big ?? Buffer.allocUnsafe(def.size));
      lines.push(`${createHash('sha256').update(data).digest('hex')}  ${rel}`);
      if (big) await writeFile(path.join(dir, rel), data); // the buffer is reused for the next file
      else writes.push(writeFile(path.join(dir, rel), data));
    }
    await Promise.all(writes);
  }
  await writeFile(manifestPath, `${lines.join('\n')}\n`);
  return { files: def.dirs * def.perDir, bytes: def.dirs * def.perDir * def.size };
}

function resticVersion() {
  const r = spawnSync('restic', ['version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split(' compiled')[0] : null;
}

/** Disk use of `dirs` in bytes, each inode counted once (`du -sk`, one invocation). */
function du(...dirs) {
  const r = spawnSync('du', ['-skc', ...dirs], { encoding: 'utf8' });
  if (r.status !== 0) return NaN;
  const total = r.stdout.trim().split('\n').pop() ?? '';
  return Number(total.split(/\s/)[0]) * 1024;
}

/** Run a command and return its stdout (the backup's --json). */
function capture(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * MiB });
  if (r.status !== 0) throw new Error(`${path.basename(cmd)} ${args.slice(0, 2).join(' ')} exited with ${r.status}: ${(r.stderr ?? '').trim().split('\n').slice(-2).join(' | ')}`);
  return r.stdout;
}

/** Rewrite `count` files of the tree (new random content, same size): a "1 % changed" day. */
async function touchFiles(src, def, count) {
  let n = 0;
  for (let d = 0; d < def.dirs && n < count; d++) {
    const sub = def.dirs === 1 ? '.' : `d${String(d).padStart(3, '0')}`;
    for (let f = 0; f < def.perDir && n < count; f += 10, n++) {
      await writeFile(path.join(src, sub, `f${String(f).padStart(4, '0')}.dat`), randomFillSync(Buffer.allocUnsafe(def.size)));
    }
  }
}

/**
 * Issue 11: incremental backups side by side with `rsync -a --link-dest` and `restic backup`,
 * and `list` of 100 backups of a 20,000-file root. Each step runs once (bounded); figures are
 * wall time with a warm page cache, disk use from `du` (hard links counted once).
 */
async function runIncremental({ root, quick, restic, resticCmd, api }) {
  const def = quick ? { dirs: 10, perDir: 20, size: KiB } : { dirs: 100, perDir: 100, size: KiB };
  const files = def.dirs * def.perDir;
  const treeBytes = files * def.size;
  const daily = quick ? 5 : Number(process.env.BENCH_DAILY) || 30;
  const dir = path.join(root, 'incremental');
  const src = path.join(dir, 'src');
  await makeTree(src, def, path.join(dir, 'SHA256SUMS'));
  console.log(`\nIncremental: ${fmtNum(files)} × ${fmtNum(def.size)} B (${(treeBytes / MB).toFixed(1)} MB); ${daily} daily backups; list of ${quick ? 10 : 100} backups of a ${quick ? '2,000' : '20,000'}-file root`);
  const rows = [];
  const row = (step, tool, ms, extra = {}) => rows.push({ step, tool, ms, ...extra });
  const timed = async (fn) => {
    await settle(dir);
    const t0 = now();
    const out = await fn();
    return { ms: now() - t0, out };
  };

  // ours (the CLI, as users run it)
  const ob = path.join(dir, 'ours');
  const oursBackup = (name) => JSON.parse(capture(process.execPath, [BIN, 'backup', '--source', src, '--backup-dir', ob, '--name', name, '--json']));
  // rsync -a --link-dest (Debian's rsync)
  const rb = path.join(dir, 'rsync');
  const hasRsync = spawnSync('rsync', ['--version']).status === 0;
  let prevRsync = null;
  const rsyncBackup = async (name) => {
    await mkdir(rb, { recursive: true });
    const args = ['-a', ...(prevRsync ? [`--link-dest=../${prevRsync}`] : []), `${src}/`, path.join(rb, name)];
    await exec('rsync', args);
    prevRsync = name;
  };
  // restic (one repository: deduplicated)
  const repo = path.join(dir, 'restic-repo');
  if (restic) await resticCmd(repo, 'init');
  const resticBackup = () => resticCmd(repo, 'backup', '--host', 'bench', src);

  const ours1 = await timed(() => oursBackup('day01'));
  const oursDisk1 = du(ob);
  const ours2 = await timed(() => oursBackup('day02'));
  const oursDisk2 = du(ob);
  row('1st backup', OURS_CLI, ours1.ms, { disk: oursDisk1, written: ours1.out.newBytes });
  row('2nd backup, unchanged', OURS_CLI, ours2.ms, { disk: oursDisk2, written: ours2.out.newBytes, vsFirst: ours2.ms / ours1.ms, growth: (oursDisk2 - oursDisk1) / oursDisk1 });
  let rs1, rs2, rsDisk1, rsDisk2;
  if (hasRsync) {
    rs1 = await timed(() => rsyncBackup('day01'));
    rsDisk1 = du(rb);
    rs2 = await timed(() => rsyncBackup('day02'));
    rsDisk2 = du(rb);
    row('1st backup', 'rsync -a --link-dest', rs1.ms, { disk: rsDisk1 });
    row('2nd backup, unchanged', 'rsync -a --link-dest', rs2.ms, { disk: rsDisk2, vsFirst: rs2.ms / rs1.ms, growth: (rsDisk2 - rsDisk1) / rsDisk1 });
  }
  let rr1, rr2, rrDisk1, rrDisk2;
  if (restic) {
    rr1 = await timed(resticBackup);
    rrDisk1 = du(repo);
    rr2 = await timed(resticBackup);
    rrDisk2 = du(repo);
    row('1st backup', RESTIC_BACKUP, rr1.ms, { disk: rrDisk1 });
    row('2nd backup, unchanged', RESTIC_BACKUP, rr2.ms, { disk: rrDisk2, vsFirst: rr2.ms / rr1.ms, growth: (rrDisk2 - rrDisk1) / rrDisk1 });
  }

  // 1 % of the files changed
  await touchFiles(src, def, Math.max(1, Math.round(files / 100)));
  const ours3 = await timed(() => oursBackup('day03'));
  const oursDisk3 = du(ob);
  row('after 1 % changed', OURS_CLI, ours3.ms, { disk: oursDisk3, written: ours3.out.newBytes, writtenShare: ours3.out.newBytes / treeBytes, growth: (oursDisk3 - oursDisk2) / oursDisk1 });
  if (hasRsync) {
    const r = await timed(() => rsyncBackup('day03'));
    const d = du(rb);
    row('after 1 % changed', 'rsync -a --link-dest', r.ms, { disk: d, growth: (d - rsDisk2) / rsDisk1 });
    rsDisk2 = d;
  }
  if (restic) {
    const r = await timed(resticBackup);
    const d = du(repo);
    row('after 1 % changed', RESTIC_BACKUP, r.ms, { disk: d, growth: (d - rrDisk2) / rrDisk1 });
  }

  // N daily backups of an unchanged tree: total disk ÷ one backup
  const t0 = now();
  for (let i = 4; i <= daily; i++) oursBackup(`day${String(i).padStart(2, '0')}`);
  const oursDaily = du(ob);
  row(`${daily} daily backups`, OURS_CLI, (now() - t0) / Math.max(1, daily - 3), { disk: oursDaily, vsOne: oursDaily / oursDisk1, perRun: true });
  if (hasRsync) {
    const t1 = now();
    for (let i = 4; i <= daily; i++) await rsyncBackup(`day${String(i).padStart(2, '0')}`);
    const d = du(rb);
    row(`${daily} daily backups`, 'rsync -a --link-dest', (now() - t1) / Math.max(1, daily - 3), { disk: d, vsOne: d / rsDisk1, perRun: true });
  }
  const verifyShared = await timed(() => exec(process.execPath, [BIN, 'verify', 'day02', '--backup-dir', ob, '--quiet']));
  row('verify one of them', OURS_CLI, verifyShared.ms);
  await rmDir(ob);
  await rmDir(rb);
  await rmDir(repo);
  await rmDir(src);

  // list of 100 backups of a 20,000-file root. list reads only the backup directories and their
  // metadata, so 1 real backup + 99 directories holding a hard link to its metadata list exactly
  // as 100 full backups would (without making 2 million files).
  const lsrc = path.join(dir, 'lsrc');
  const ldef = quick ? { dirs: 20, perDir: 100, size: 64 } : { dirs: 200, perDir: 100, size: 64 };
  await makeTree(lsrc, ldef, path.join(dir, 'LSUMS'));
  const lb = path.join(dir, 'list-backups');
  capture(process.execPath, [BIN, 'backup', '--source', lsrc, '--backup-dir', lb, '--name', 'b000', '--no-fsync', '--quiet']);
  const metaFile = path.join(lb, 'b000', '.backup_metadata.json');
  const count = quick ? 10 : 100;
  const { link } = await import('node:fs/promises');
  for (let i = 1; i < count; i++) {
    const d = path.join(lb, `b${String(i).padStart(3, '0')}`);
    await mkdir(d);
    await link(metaFile, path.join(d, '.backup_metadata.json'));
    // format 2: the manifest in its own file (list never reads it; shared as a backup would share it)
    if (existsSync(path.join(lb, 'b000', '.backup_manifest.json'))) await link(path.join(lb, 'b000', '.backup_manifest.json'), path.join(d, '.backup_manifest.json'));
  }
  const metaBytes = (await lstat(metaFile)).size;
  const lists = [];
  for (let i = 0; i < 3; i++) lists.push((await timed(() => exec(process.execPath, [BIN, 'list', '--backup-dir', lb, '--json']))).ms);
  row(`list, ${count} backups`, OURS_CLI, median(lists), { note: `each .backup_metadata.json ${fmtNum(metaBytes)} B, no manifest read or parsed; runs ${lists.map((t) => t.toFixed(0)).join(' / ')} ms` });
  if (api?.listBackups) {
    const a = await timed(() => api.listBackups({ backupDir: lb }));
    row(`list, ${count} backups`, OURS_API, a.ms, { note: 'in-process, no node start-up' });
  }
  // What list used to cost: parse every metadata file whole.
  const parse = await timed(async () => {
    for (let i = 0; i < count; i++) JSON.parse(await readFile(path.join(lb, `b${String(i).padStart(3, '0')}`, '.backup_metadata.json'), 'utf8'));
  });
  row(`list, ${count} backups`, 'parse every manifest (before)', parse.ms, { note: 'in-process; what list did before' });
  await rmDir(dir);

  const fmtPct = (v) => (Number.isFinite(v) ? `${(v * 100).toFixed(2)} %` : '');
  console.log('');
  console.log(
    formatTable(rows, [
      { key: 'step' },
      { key: 'tool' },
      { key: 'ms', title: 'time', align: 'right', format: (v, r) => `${fmtTime(v)}${r.perRun ? ' / run' : ''}` },
      { key: 'vsFirst', title: '÷ 1st', align: 'right', format: (v) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : '') },
      { key: 'disk', title: 'disk (du)', align: 'right', format: (v) => (Number.isFinite(v) ? `${(v / MB).toFixed(1)} MB` : '') },
      { key: 'growth', title: 'disk growth', align: 'right', format: fmtPct },
      { key: 'vsOne', title: '÷ one backup', align: 'right', format: (v) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : '') },
      { key: 'written', title: 'bytes written', align: 'right', format: (v) => (Number.isFinite(v) ? fmtNum(v) : '') },
      { key: 'writtenShare', title: '÷ tree', align: 'right', format: fmtPct },
      { key: 'note', format: (v) => v ?? '' },
    ]),
  );
  console.log('disk growth: du of the backups (repository) after the step minus before, ÷ the first backup\'s du. Each step runs once.');
  const find = (step, tool) => rows.find((r) => r.step === step && r.tool === tool);
  return {
    rows,
    goals: [
      ['incremental: 2nd backup of an unchanged tree ≤ 0.5× the 1st backup\'s time', find('2nd backup, unchanged', OURS_CLI)?.vsFirst, 0.5],
      ['incremental: disk growth of the 2nd backup ≤ 2 %', find('2nd backup, unchanged', OURS_CLI)?.growth, 0.02],
      ['incremental: bytes written after 1 % changed ≤ 2 % of the tree', find('after 1 % changed', OURS_CLI)?.writtenShare, 0.02],
      [`incremental: ${daily} daily backups ≤ 1.1× one backup on disk`, find(`${daily} daily backups`, OURS_CLI)?.vsOne, 1.1],
      [`list of ${count} backups < 300 ms (CLI, node start-up included)`, find(`list, ${count} backups`, OURS_CLI)?.ms, 300],
    ],
  };
}

const fmtTime = (ms) => (Number.isFinite(ms) ? (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`) : '—');

// ─── the suite ───────────────────────────────────────────────────────────────

/**
 * Run the suite; prints its table and returns `{ env, rows, goals, notes }`.
 * @param {{ quick?: boolean, reps?: number, trees?: string[], withKeepRestore?: boolean, perTaskMs?: number, budgetMs?: number }} [opts]
 *   `quick`: tiny trees and 1 run (smoke test); `reps`: runs per measurement (default 3, or
 *   `BENCH_REPS`); `withKeepRestore`: also time restore over a populated target without
 *   `--overwrite` (default true); `perTaskMs` (default 6000) and `budgetMs` (default 100000, split
 *   between the trees): past them a measurement is not repeated; `trees` (or `BENCH_TREES=A,B`):
 *   only these trees.
 */
export async function run(opts = {}) {
  const quick = opts.quick ?? false;
  const reps = opts.reps ?? (Number(process.env.BENCH_REPS) || (quick ? 1 : 3));
  const withKeepRestore = opts.withKeepRestore ?? true;
  const started = now();

  const restic = resticVersion();
  const oursBuilt = existsSync(DIST) && existsSync(CLI_DIST);
  const notes = [];
  let api = null;
  if (oursBuilt) {
    try {
      api = await import(pathToFileURL(DIST).href);
    } catch (err) {
      notes.push(`could not import ${path.relative(repoRoot, DIST)} (${err.message}): API row skipped`);
    }
  }
  const env = {
    node: process.version,
    cpus: os.cpus().length,
    loadavg: os.loadavg().map((l) => Number(l.toFixed(2))),
    restic: restic ?? 'not installed',
    reps,
    quick,
  };

  console.log(`@dawn/backup-cli vs cp -a, tar, restic, sha256sum — ${reps} run(s) per measurement, median, WARM page cache (it cannot be dropped here)`);
  console.log(`${env.cpus} CPUs, load ${env.loadavg.join(' ')} at start — the machine is shared, figures are noisy; ${restic ?? 'restic not installed'}`);

  const root = await makeTempDir('dawn-bench-backup-cli-');
  const onSignal = (sig) => {
    try {
      rmSync(root, { recursive: true, force: true });
    } finally {
      process.kill(process.pid, sig);
    }
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const rows = [];
  let incremental = null;
  const add = (tree, bytes, operation, tool, m, note) => {
    if (!m) return;
    rows.push({
      tree: tree.id,
      operation,
      tool,
      ours: tool === OURS_CLI || tool === OURS_API || tool === OURS_KEEP || tool === OURS_NOFSYNC,
      ms: m.ms,
      mbps: Number.isFinite(m.ms) ? bytes / MB / (m.ms / 1000) : NaN,
      cpuMs: m.cpuMs,
      times: m.times.map((t) => Math.round(t)),
      timeRatio: NaN, // ours time ÷ peer time (the goals are stated this way)
      ...(m.error ? { error: m.error } : {}),
      ...(note ? { note } : {}),
    });
    if (m.error) notes.push(`tree ${tree.id}, ${operation}, ${tool}: FAILED — ${m.error}`);
  };

  const resticEnv = { RESTIC_PASSWORD: 'dawn-bench', RESTIC_PROGRESS_FPS: '0' };
  const resticCmd = (repo, ...rest) => exec('restic', ['--repo', repo, '--cache-dir', path.join(root, 'restic-cache'), '--quiet', ...rest], { env: resticEnv, cpu: true });
  const node = (...args) => exec(process.execPath, [BIN, ...args, '--quiet'], { cpu: true });
  // Bounded: a measurement is repeated only while its runs took < perTaskMs in total, and no
  // measurement is repeated once its tree has used its share of budgetMs (each still runs once).
  const only = opts.trees ?? process.env.BENCH_TREES?.split(',');
  const trees = treeDefs(quick).filter((t) => !only || only.includes(t.id));
  const treeBudgetMs = (opts.budgetMs ?? 100_000) / trees.length;
  const budget = { perTaskMs: opts.perTaskMs ?? 6000, deadline: Infinity };

  try {
    for (const def of trees) {
      const dir = path.join(root, `tree-${def.id}`);
      const at = (name) => path.join(dir, name);
      const src = at('src');
      const manifest = at('SHA256SUMS');
      const backupDir = at('ours-backups');
      const repo = at('restic-repo');
      const kept = 'bench_kept';
      const t0 = now();
      const { files, bytes } = await makeTree(src, def, manifest);
      budget.deadline = now() + treeBudgetMs;
      console.log(`\nTree ${def.id}: ${def.label} — ${fmtNum(files)} files, ${(bytes / MB).toFixed(1)} MB of data (generated in ${fmtTime(now() - t0)})`);
      const sizeCheck = async (where, skip) => {
        const s = await treeStats(where, skip);
        return s.files === files && s.bytes === bytes ? undefined : `holds ${s.files} files / ${s.bytes} B, expected ${files} / ${bytes}`;
      };

      // Phase 1: backup (and the copy peers, which are also the restore peers)
      let backupNote;
      const backupTasks = [
        { name: CP, fn: () => exec('cp', ['-a', src, at('cp')], { cpu: true }), cleanup: () => rmDir(at('cp')) },
        // Durable baseline (we fsync by default): syncfs of the file system after the copy.
        { name: CP_SYNC, fn: () => sh(`cp -a ${shq(src)} ${shq(at('cps'))} && sync -f ${shq(at('cps'))}`, { cpu: true }), cleanup: () => rmDir(at('cps')) },
        {
          name: TAR,
          setup: () => mkdir(at('tar')),
          fn: () => sh(`tar -C ${shq(src)} -cf - . | tar -C ${shq(at('tar'))} -xpf -`, { cpu: true }),
          cleanup: () => rmDir(at('tar')),
        },
      ];
      if (oursBuilt) {
        // The first run's backup is kept for the verify and restore phases.
        backupTasks.push({
          name: OURS_CLI,
          fn: (_, i) => node('backup', '--source', src, '--backup-dir', backupDir, '--name', i === 0 ? kept : `bench_cli_${i}`),
          cleanup: async (_, i) => {
            if (i > 0) return rmDir(path.join(backupDir, `bench_cli_${i}`));
            backupNote = await sizeCheck(path.join(backupDir, kept), new Set(['.backup_metadata.json']));
          },
        });
        // Context: cp -a and tar do not fsync; this row shows what our fsync costs.
        backupTasks.push({
          name: OURS_NOFSYNC,
          fn: (_, i) => node('backup', '--source', src, '--backup-dir', backupDir, '--name', `bench_nofsync_${i}`, '--no-fsync'),
          cleanup: (_, i) => rmDir(path.join(backupDir, `bench_nofsync_${i}`)),
        });
        if (api?.createBackup) {
          backupTasks.push({
            name: OURS_API,
            fn: async (_, i) => {
              const c0 = process.cpuUsage();
              await api.createBackup({ source: src, backupDir, name: `bench_api_${i}` });
              const c = process.cpuUsage(c0);
              return (c.user + c.system) / 1000;
            },
            cleanup: (_, i) => rmDir(path.join(backupDir, `bench_api_${i}`)),
          });
        }
      }
      if (restic) {
        backupTasks.push({
          name: RESTIC_BACKUP,
          setup: async () => {
            await rmDir(repo);
            await resticCmd(repo, 'init');
          },
          fn: () => resticCmd(repo, 'backup', '--host', 'bench', src),
        });
      }
      const b = await rounds(reps, backupTasks, root, budget);
      const oursKept = oursBuilt && !b.get(OURS_CLI).error;
      const resticKept = restic && !b.get(RESTIC_BACKUP).error;

      // Phase 2: verify
      const verifyTasks = [{ name: 'sha256sum -c', fn: () => exec('sha256sum', ['-c', '--quiet', '--status', manifest], { cwd: src, cpu: true }) }];
      if (oursKept) verifyTasks.push({ name: OURS_CLI, fn: () => node('verify', kept, '--backup-dir', backupDir) });
      if (resticKept) verifyTasks.push({ name: 'restic check --read-data', fn: () => resticCmd(repo, 'check', '--read-data') });
      const v = await rounds(reps, verifyTasks, root, budget);

      // Phase 3: restore
      let restoreNote;
      const restoreTasks = [];
      if (oursKept) {
        restoreTasks.push({
          name: OURS_CLI,
          fn: () => node('restore', kept, '--backup-dir', backupDir, '--target', at('restored'), '--overwrite'),
          cleanup: async (_, i) => {
            if (i === 0) restoreNote = await sizeCheck(at('restored'));
            await rmDir(at('restored'));
          },
        });
        if (withKeepRestore) {
          restoreTasks.push({
            name: OURS_KEEP,
            setup: () => exec('cp', ['-a', src, at('restored-keep')]),
            fn: () => node('restore', kept, '--backup-dir', backupDir, '--target', at('restored-keep'), '--force'), // a copy of the source: another directory (SOURCE_MISMATCH without --force)
            cleanup: async () => {
              await rmDir(at('restored-keep'));
              for (const n of await readdir(backupDir)) if (n.startsWith('pre_restore_')) await rmDir(path.join(backupDir, n));
            },
          });
        }
      }
      if (resticKept) {
        restoreTasks.push({
          name: 'restic restore',
          fn: () => resticCmd(repo, 'restore', 'latest', '--target', at('restic-restored')),
          cleanup: () => rmDir(at('restic-restored')),
        });
      }
      const r = await rounds(reps, restoreTasks, root, budget);

      const tree = { id: def.id };
      add(tree, bytes, 'backup', OURS_CLI, b.get(OURS_CLI), backupNote && `backup ${backupNote}`);
      add(tree, bytes, 'backup', OURS_NOFSYNC, b.get(OURS_NOFSYNC), 'no fsync, like cp -a and tar');
      add(tree, bytes, 'backup', OURS_API, b.get(OURS_API), 'no node start-up; in the bench process');
      add(tree, bytes, 'backup', CP, b.get(CP), 'copy_file_range: in-kernel copy, no hashing');
      add(tree, bytes, 'backup', CP_SYNC, b.get(CP_SYNC), 'durable copy: + syncfs (flushes others\' writes too)');
      add(tree, bytes, 'backup', TAR, b.get(TAR));
      add(tree, bytes, 'backup', RESTIC_BACKUP, b.get(RESTIC_BACKUP), 'fresh repository each run (init untimed)');
      add(tree, bytes, 'verify', OURS_CLI, v.get(OURS_CLI));
      add(tree, bytes, 'verify', 'sha256sum -c', v.get('sha256sum -c'), 'manifest of every file');
      add(tree, bytes, 'verify', 'restic check --read-data', v.get('restic check --read-data'));
      add(tree, bytes, 'restore', OURS_CLI, r.get(OURS_CLI), restoreNote ? `restored tree ${restoreNote}` : 'fresh target, --overwrite: no pre_restore backup');
      add(tree, bytes, 'restore', OURS_KEEP, r.get(OURS_KEEP), 'populated target, no --overwrite: saves it as pre_restore_* first');
      add(tree, bytes, 'restore', CP, b.get(CP), 'same measurement as the backup row');
      add(tree, bytes, 'restore', TAR, b.get(TAR), 'same measurement as the backup row');
      add(tree, bytes, 'restore', 'restic restore', r.get('restic restore'));

      await rmDir(dir);
    }
    if (oursBuilt && !(opts.incremental === false || process.env.BENCH_INCREMENTAL === '0')) {
      try {
        incremental = await runIncremental({ root, quick, restic, resticCmd, api });
      } catch (err) {
        notes.push(`incremental section FAILED — ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await removeTempDir(root);
  }

  // ours ÷ peer, within (tree, operation), against our CLI row
  for (const row of rows) {
    if (row.ours) continue;
    const o = rows.find((x) => x.tree === row.tree && x.operation === row.operation && x.tool === OURS_CLI);
    if (o && Number.isFinite(o.ms) && Number.isFinite(row.ms)) row.timeRatio = o.ms / row.ms;
  }

  if (!oursBuilt) notes.push(`@dawn/backup-cli is not built (${path.relative(repoRoot, CLI_DIST)} missing): our rows are skipped — build it first (\`pnpm build\`)`);
  if (!restic) notes.push('restic is not installed (Debian package `restic`): restic rows are skipped');

  const columns = [
    { key: 'tree' },
    { key: 'operation' },
    { key: 'tool' },
    { key: 'ms', title: 'time', align: 'right', format: (v, row) => (row.error ? 'FAILED' : fmtTime(v)) },
    { key: 'mbps', title: 'MB/s', align: 'right', format: (v) => fmtNum(v, 1) },
    { key: 'cpuMs', title: 'CPU', align: 'right', format: (v) => fmtTime(v) },
    { key: 'timeRatio', title: 'ours ÷ peer', align: 'right', format: (v, row) => (row.ours ? '' : Number.isFinite(v) ? `${v.toFixed(2)}× time` : '—') },
    { key: 'times', title: 'runs (s)', format: (v) => v.map((t) => (t / 1000).toFixed(2)).join(' / ') },
    { key: 'note', format: (v) => v ?? '' },
  ];
  const table = [];
  for (const row of rows) {
    const prev = table[table.length - 1];
    if (prev && prev !== '-' && (prev.tree !== row.tree || prev.operation !== row.operation)) table.push('-');
    table.push(row);
  }
  console.log('');
  console.log(formatTable(table, columns));
  console.log('"ours ÷ peer" is our CLI\'s median time ÷ the peer\'s (below 1.00× we are faster) — the goals are stated in time.');
  console.log('MB/s: 10^6 bytes of file data per second. CPU: user + sys time of the command and its children (median;');
  console.log('less sensitive to other load than the wall time). "runs": every timed run (wall), in order; a slow');
  console.log(`measurement is not repeated (bounded suite: ≤ ${fmtTime(budget.perTaskMs)} of runs per measurement before a repeat).`);

  const goals = [];
  const backupRatio = (tree, tool) => rows.find((x) => x.tree === tree && x.operation === 'backup' && x.tool === tool)?.timeRatio;
  const goal = (name, value, limit, strict, shown) => {
    const ok = Number.isFinite(value) ? (strict ? value < limit : value <= limit) : null;
    goals.push({ goal: name, timeRatio: value ?? null, limit, status: ok === null ? 'SKIP' : ok ? 'PASS' : 'MISS', ...(shown && Number.isFinite(value) ? { shown: shown(value) } : {}) });
  };
  goal('tree A: backup time ≤ 2.5× cp -a', backupRatio('A', CP), 2.5, false);
  goal('tree B: backup time ≤ 1.5× cp -a', backupRatio('B', CP), 1.5, false);
  goal('tree A: backup faster than restic backup', backupRatio('A', RESTIC_BACKUP), 1, true);
  goal('tree B: backup faster than restic backup', backupRatio('B', RESTIC_BACKUP), 1, true);
  const verifyRatio = rows.find((x) => x.tree === 'A' && x.operation === 'verify' && x.tool === 'sha256sum -c')?.timeRatio;
  goal('tree A: verify time ≤ 1.5× sha256sum -c', verifyRatio, 1.5, false);
  for (const [name, value, limit] of incremental?.goals ?? []) goal(name, value, limit, name.includes('< 300'), (v) => (name.includes('< 300') ? fmtTime(v) : name.includes('%') ? `${(v * 100).toFixed(2)} %` : `${v.toFixed(2)}×`));
  console.log('\nGoals:');
  for (const g of goals) console.log(`  ${g.status}  ${g.goal}${g.shown ? ` — measured ${g.shown}` : Number.isFinite(g.timeRatio) ? ` — ours takes ${g.timeRatio.toFixed(2)}× the peer's time (throughput ${ratio(1, g.timeRatio)})` : ''}`);
  for (const n of notes) console.log(`  note: ${n}`);
  console.log(`\nbackup-cli suite done in ${fmtTime(now() - started)}; temp dirs removed.`);

  return { env, rows, incremental: incremental?.rows ?? null, goals, notes };
}

// --- restore --include vs a full restore (issue 11, section 3) -----------------------------------

/**
 * `restore NAME --include 'agents/a042/**'` (one agent: 100 of 10,000 files of 1 KiB) against a
 * full restore of the same backup, both through the CLI over the populated live target and
 * both saving a `pre_restore_*` backup first (removed, untimed, after each run). Goal: the
 * partial restore takes < 5% of the full one's time. Median of `reps` runs (default 3).
 * Run alone: `node bench/src/backup-cli.mjs --partial-restore [--quick]`.
 */
export async function runPartialRestore(opts = {}) {
  const quick = opts.quick ?? false;
  const reps = opts.reps ?? (Number(process.env.BENCH_REPS) || (quick ? 1 : 3));
  const agents = quick ? 10 : 100;
  const perAgent = quick ? 10 : 100;
  const root = await makeTempDir('dawn-bench-partial-restore-');
  const src = path.join(root, 'src');
  const backupDir = path.join(root, 'backups');
  const cli = (...args) => exec(process.execPath, [BIN, ...args, '--quiet'], { cpu: true });
  const times = { full: [], partial: [] };
  const one = `agents/a${String(Math.floor(agents * 0.42)).padStart(3, '0')}/**`;
  try {
    const buf = Buffer.alloc(KiB);
    for (let a = 0; a < agents; a++) {
      const dir = path.join(src, 'agents', `a${String(a).padStart(3, '0')}`);
      await mkdir(dir, { recursive: true });
      for (let i = 0; i < perAgent; i++) await writeFile(path.join(dir, `f${i}.json`), randomFillSync(buf));
    }
    await cli('backup', '--source', src, '--backup-dir', backupDir, '--name', 'b');
    const dropPreRestores = async () => {
      for (const n of await readdir(backupDir)) if (n.startsWith('pre_restore_')) await rmDir(path.join(backupDir, n));
    };
    const order = [];
    for (let r = 0; r < reps; r++) order.push(...(r % 2 === 0 ? ['full', 'partial'] : ['partial', 'full']));
    for (const kind of order) {
      const args = ['restore', 'b', '--backup-dir', backupDir, '--target', src, ...(kind === 'partial' ? ['--include', one] : [])];
      await settle(root);
      const t = now();
      await cli(...args);
      times[kind].push(now() - t);
      await dropPreRestores();
    }
  } finally {
    await removeTempDir(root);
  }
  const full = median(times.full);
  const partial = median(times.partial);
  const share = partial / full;
  console.log(`\nrestore --include of one agent (${perAgent} of ${agents * perAgent} files of 1 KiB) vs a full restore, CLI, over the live target, pre_restore_ backup included, median of ${reps}:`);
  console.log(`  full restore          ${fmtTime(full)}   runs ${times.full.map((x) => (x / 1000).toFixed(2)).join(' / ')} s`);
  console.log(`  restore --include     ${fmtTime(partial)}   runs ${times.partial.map((x) => (x / 1000).toFixed(2)).join(' / ')} s`);
  console.log(`  ${share < 0.05 ? 'PASS' : 'MISS'}  partial restore < 5% of a full restore's time — it takes ${(share * 100).toFixed(1)}%`);
  return { full, partial, share, times, goal: { limit: 0.05, status: share < 0.05 ? 'PASS' : 'MISS' } };
}

if (process.argv[1] && path.resolve(process.argv[1]) === SELF) {
  if (process.argv.includes('--partial-restore')) await runPartialRestore({ quick: process.argv.includes('--quick') });
  else await run({ quick: process.argv.includes('--quick') });
}
