import type { CAC } from 'cac';
import type { Ctx, Flags } from '../cli.js';
import { keepOptions, single } from '../argv.js';
import { BackupError } from '../errors.js';
import { formatBytes, formatTime, table, type CliIO } from '../output.js';
import { hasRetentionRule } from '../prune.js';
import { resolveBackupDir, resolveDataRoot } from '../paths.js';
import { parseRepoUrl, refuseRepoInside, REPO_ENV } from './backend.js';
import { terminalPassword } from './prompt.js';
import { parseDataSubset } from './subset.js';
import { initRepo, listRepo, pruneRepo, pullBackup, pushBackups, verifyRepoBackup, type PushResult } from './repository.js';

/** What the repository commands need of the CLI's context (a part of cli.ts's `Ctx`). */
export type RepoCtx = Pick<Ctx, 'io' | 'raw' | 'json' | 'quiet' | 'out' | 'err' | 'started'> & {
  flags: Pick<Flags, 'overwrite' | 'force' | 'fsync' | 'readData' | 'encrypt' | 'dryRun' | 'verify' | 'repair'>;
};

const println = (ctx: RepoCtx, text: string) => ctx.io.stdout.write(`${text}\n`);
const printJson = (ctx: RepoCtx, value: unknown) => ctx.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);

/** `--repo` as given (list, verify, restore: only then do they work on a repository). */
export const explicitRepo = (ctx: RepoCtx): string | undefined => single(ctx.raw, 'repo', '--repo');

type RepoTarget = { repo: string; s3Endpoint?: string; passwordFile?: string; env: CliIO['env']; askPassword?: (req: { url: string; confirm: boolean }) => Promise<string>; onWarning: (m: string) => void };

/** `--repo`, else `$DAWN_BACKUP_REPO`; a usage error when neither is set. */
export function repoTarget(ctx: RepoCtx): RepoTarget {
  const repo = explicitRepo(ctx) ?? (ctx.io.env[REPO_ENV] || undefined);
  if (repo === undefined) throw new BackupError('USAGE', `No repository: give --repo s3://bucket/prefix (or a directory), or set ${REPO_ENV}.`);
  const s3Endpoint = single(ctx.raw, 's3Endpoint', '--s3-endpoint');
  const passwordFile = single(ctx.raw, 'passwordFile', '--password-file');
  // On a terminal, a missing password is asked for (stderr: stdout stays the command's output).
  const ask = ctx.io.stdin ? terminalPassword({ input: ctx.io.stdin, output: ctx.io.stderr }) : undefined;
  const onWarning = (m: string) => void ctx.io.stderr.write(`${ctx.err.yellow('warning:')} ${m}\n`);
  return { repo, ...(s3Endpoint !== undefined ? { s3Endpoint } : {}), ...(passwordFile !== undefined ? { passwordFile } : {}), env: ctx.io.env, ...(ask ? { askPassword: ask } : {}), onWarning };
}

export async function cmdInit(ctx: RepoCtx): Promise<number> {
  const r = repoTarget(ctx);
  await refuseRepoInside(r.repo, resolveDataRoot(undefined, ctx.io.env), 'USAGE', 'the data root');
  await refuseRepoInside(r.repo, resolveBackupDir(undefined, ctx.io.env as NodeJS.ProcessEnv), 'USAGE', 'the backup dir');
  ctx.started = true;
  const res = await initRepo({ ...r, encrypt: ctx.flags.encrypt });
  if (ctx.json) printJson(ctx, res);
  else if (!ctx.quiet) {
    println(ctx, res.created ? `${ctx.out.green('Created')} ${res.encrypted ? 'encrypted ' : ''}repository ${res.repo}` : `Repository ${res.repo} already exists; nothing changed.`);
    if (res.created && res.encrypted) println(ctx, ctx.out.yellow('Keep the password safe: without it nothing in this repository can be read.'));
  }
  return 0;
}

/** One line per pushed backup (push, backup --push). */
export function printPushed(ctx: RepoCtx, repo: string, res: readonly PushResult[]): void {
  if (ctx.quiet) return;
  for (const p of res) {
    if (p.snapshot === 'exists' && p.repaired) println(ctx, `Backup ${ctx.out.bold(p.name)} is already in ${repo}; ${ctx.out.green('repaired')} ${p.repaired} damaged content(s): uploaded again into a new pack.`);
    else if (p.snapshot === 'exists') println(ctx, `Backup ${ctx.out.bold(p.name)} is already in ${repo}; nothing uploaded${p.repaired === 0 ? ' (every stored content read and checked: intact)' : ''}.`);
    else
      println(
        ctx,
        `${ctx.out.green('Pushed')} ${ctx.out.bold(p.name)} to ${repo}: ${p.files} files, ${p.objects} distinct contents, ${p.uploaded} uploaded (${formatBytes(p.uploadedBytes)}, ${formatBytes(p.storedBytes)} stored), ${p.objects - p.uploaded} already there.`,
      );
  }
}

export async function cmdPush(ctx: RepoCtx, names: string[]): Promise<number> {
  const r = repoTarget(ctx);
  const backupDir = single(ctx.raw, 'backupDir', '--backup-dir');
  ctx.started = true;
  const res = await pushBackups({ ...r, names, backupDir, repair: ctx.flags.repair });
  if (ctx.json) printJson(ctx, { repo: r.repo, pushed: res });
  else printPushed(ctx, r.repo, res);
  return 0;
}

/** Where `backup --push` pushes: `--repo` / `$DAWN_BACKUP_REPO`, its syntax checked (`USAGE`). */
export function pushTarget(ctx: RepoCtx): RepoTarget {
  const r = repoTarget(ctx);
  return { ...r, repo: parseRepoUrl(r.repo).url };
}

/**
 * The push step of `backup --push`: the outcome, or the error as data (the backup is made; the
 * caller reports a failed push without losing the backup's own result).
 */
export async function pushAfterBackup(
  target: RepoTarget,
  name: string,
  backupDir: string,
): Promise<{ repo: string; pushed: PushResult[] } | { repo: string; error: { code: string; message: string } }> {
  try {
    return { repo: target.repo, pushed: await pushBackups({ ...target, names: [name], backupDir }) };
  } catch (err) {
    return { repo: target.repo, error: { code: BackupError.is(err) ? err.code : 'IO', message: err instanceof Error ? err.message : String(err) } };
  }
}

export async function cmdRepoList(ctx: RepoCtx): Promise<number> {
  const r = repoTarget(ctx);
  // (once ignored: the listing looked like a check that never ran)
  if (ctx.flags.verify) throw new BackupError('USAGE', `list --repo does not check contents: run \`dawn-backup verify NAME --repo ${r.repo} --read-data\` for each backup.`);
  ctx.started = true;
  const res = await listRepo(r);
  if (ctx.json) {
    printJson(ctx, res);
    return res.damaged.length > 0 ? 3 : 0;
  }
  if (res.backups.length === 0) println(ctx, `No backups in ${res.repo}.`);
  else {
    println(ctx, `Backups in ${res.repo}, newest first:`);
    const rows = res.backups.map((b) => [b.name, formatTime(b.createdAt), String(b.fileCount), formatBytes(b.totalBytes), b.hostname ?? '?', b.sourceDir ?? '?']);
    println(ctx, table([['NAME', 'CREATED', 'FILES', 'SIZE', 'HOST', 'SOURCE'], ...rows], ctx.out));
  }
  if (res.damaged.length > 0) {
    println(ctx, `\n${ctx.out.red('DAMAGED')} snapshot documents (not usable):`);
    for (const d of res.damaged) println(ctx, `  ${d.name}: ${d.reason}`);
    return 3;
  }
  return 0;
}

export async function cmdRepoVerify(ctx: RepoCtx, name: string): Promise<number> {
  const r = repoTarget(ctx);
  const subsetSpec = single(ctx.raw, 'readDataSubset', '--read-data-subset');
  if (subsetSpec !== undefined && ctx.flags.readData) throw new BackupError('USAGE', '--read-data reads every object; --read-data-subset only some: give one of them.');
  const readDataSubset = subsetSpec !== undefined ? parseDataSubset(subsetSpec) : undefined;
  ctx.started = true;
  const res = await verifyRepoBackup({ ...r, name, readData: ctx.flags.readData, ...(readDataSubset ? { readDataSubset } : {}) });
  if (ctx.json) {
    printJson(ctx, res);
    return res.ok ? 0 : 3;
  }
  if (res.ok) {
    if (!ctx.quiet) {
      println(
        ctx,
        ctx.flags.readData
          ? `${ctx.out.green('OK')} backup ${res.name} in ${res.repo}: ${res.objects} objects (${formatBytes(res.bytes)}) downloaded, each matches its sha256.`
          : res.subset !== undefined
            ? `${ctx.out.green('OK')} backup ${res.name} in ${res.repo}: all ${res.objects} objects are present; ${res.storedRead} of the ${res.stored} stored objects holding them (subset ${res.subset}: ${res.checked} contents, ${formatBytes(res.bytes)}) downloaded, each content matches its sha256.`
            : `${ctx.out.green('OK')} backup ${res.name} in ${res.repo}: all ${res.objects} objects are present (add --read-data to download and check their content).`,
      );
    }
    return 0;
  }
  const lines = res.problems.slice(0, 20).map((p) => `  ${p.kind.padEnd(10)} ${p.path}: ${p.detail}`);
  if (res.problems.length > 20) lines.push(`  ... and ${res.problems.length - 20} more (use --json for the full list)`);
  ctx.io.stderr.write(`${ctx.err.red('DAMAGED')} backup ${res.name} in ${res.repo}: ${res.problems.length} problem(s):\n${lines.join('\n')}\n`);
  ctx.io.stderr.write(`Where the local backup ${res.name} (or another holding these contents) still exists: \`dawn-backup push ${res.name} --repo ${res.repo} --repair\` uploads damaged and missing contents again.\n`);
  return 3;
}

export async function cmdPull(ctx: RepoCtx, name: string): Promise<number> {
  const r = repoTarget(ctx);
  const backupDir = single(ctx.raw, 'backupDir', '--backup-dir');
  ctx.started = true;
  const res = await pullBackup({ ...r, name, backupDir });
  if (ctx.json) printJson(ctx, res);
  else if (!ctx.quiet) {
    println(
      ctx,
      res.reused
        ? `Backup ${ctx.out.bold(res.name)} is already in ${res.backupDir} (intact); nothing downloaded.`
        : `${ctx.out.green('Pulled')} ${ctx.out.bold(res.name)} from ${res.repo} into ${res.path}: ${res.files} files (${formatBytes(res.bytes)}), every checksum verified.`,
    );
  }
  return 0;
}

export async function cmdRepoPrune(ctx: RepoCtx): Promise<number> {
  const r = repoTarget(ctx);
  // The same options as local prune (--keep-monthly and --keep-within were once dropped here,
  // silently deleting what they should have kept).
  const clean = keepOptions(ctx.raw);
  if (!hasRetentionRule(clean)) {
    throw new BackupError('USAGE', 'prune needs at least one of --keep-last N, --keep-daily N, --keep-weekly N, --keep-monthly N, --keep-within DURATION.');
  }
  ctx.started = true;
  const res = await pruneRepo({ ...r, policy: clean, dryRun: ctx.flags.dryRun });
  if (ctx.json) printJson(ctx, res);
  else if (!ctx.quiet) {
    for (const n of res.kept) println(ctx, `${ctx.out.green('keep')}    ${n}`);
    for (const n of res.removed) println(ctx, `${ctx.out.red(res.dryRun ? 'would remove' : 'removed')} ${n}`);
    println(
      ctx,
      res.gcSkipped
        ? `${res.removed.length} backup(s) ${res.dryRun ? 'would be ' : ''}removed, ${res.kept.length} kept; garbage collection skipped.`
        : res.dryRun
          ? `Dry run: nothing was removed (${res.removed.length} backup(s) and ${res.garbage} unreferenced object(s) would be).`
          : `${res.removed.length} backup(s) removed, ${res.kept.length} kept; ${res.garbageDeleted} unreferenced object(s) deleted.`,
    );
  }
  if (res.gcSkipped) {
    // Even with --quiet (--json: in the document): every cron run must say the repository is not collected.
    if (!ctx.json) ctx.io.stderr.write(`${ctx.err.red('DAMAGED')} ${res.repo}: garbage collection skipped: ${res.gcSkipped.reason}\n`);
    return 3;
  }
  return 0;
}

/** Register `init`, `push` and `pull` (list, verify and restore take `--repo` in cli.ts). */
export function registerRepoCommands(cli: CAC, bin: string, run: (fn: (...a: string[]) => Promise<number>) => (...args: unknown[]) => Promise<void>, ctx: RepoCtx): void {
  const repoOpt = '--repo <url>';
  const repoHelp = `Repository: s3://bucket/prefix, file:///path or a directory (default: $${REPO_ENV})`;
  const endpointHelp = 'S3 endpoint of a non-AWS server (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL); path-style addressing';
  cli
    .command('init', 'Create a repository (an S3 bucket/prefix or a directory) that push copies backups into')
    .option(repoOpt, repoHelp)
    .option('--s3-endpoint <url>', endpointHelp)
    .option('--encrypt', `Encrypt objects and snapshots (AES-256-GCM, key from the password by scrypt): password from $DAWN_BACKUP_PASSWORD or --password-file`)
    .option('--password-file <file>', 'Read the password of an encrypted repository from the first line of this file')
    .example(`  ${bin} init --repo s3://backups/node-a`)
    .example(`  DAWN_BACKUP_PASSWORD=... ${bin} init --repo /mnt/nas/dawn --encrypt`)
    .example(`  ${bin} init --repo /mnt/nas/dawn`)
    .action(run(() => cmdInit(ctx)));
  cli
    .command('push [...names]', 'Copy local backups into a repository (default: the newest backup of the data root); uploads only contents not yet there')
    .option(repoOpt, repoHelp)
    .option('--s3-endpoint <url>', endpointHelp)
    .option('--password-file <file>', 'The password of an encrypted repository (default: $DAWN_BACKUP_PASSWORD)')
    .example(`  ${bin} push --repo s3://backups/node-a`)
    .option('--repair', 'Also download and check every stored content the backups need; upload damaged ones again from the local backup (after `verify --read-data` exits 3)')
    .example(`  ${bin} push nightly before_upgrade --repo /mnt/nas/dawn`)
    .example(`  ${bin} push nightly --repo /mnt/nas/dawn --repair`)
    .action(run(() => cmdPush(ctx, ctx.raw.positionals.slice(1))));
  cli
    .command('pull <name>', 'Recreate a backup of a repository as a normal, verified local backup (`latest`: the newest of the data root)')
    .option(repoOpt, repoHelp)
    .option('--s3-endpoint <url>', endpointHelp)
    .option('--password-file <file>', 'The password of an encrypted repository (default: $DAWN_BACKUP_PASSWORD)')
    .example(`  ${bin} pull latest --repo s3://backups/node-a`)
    .action(run((name) => cmdPull(ctx, name!)));
}

