import { dirname } from 'node:path';
import { isatty } from 'node:tty';
import { cac, type CAC, type Command } from 'cac';
import { keepOptions as keepOptionsOf, many, scanArgv, single, type RawArgs } from './argv.js';
import { createBackup } from './backup.js';
import { planBackup, type BackupPlan } from './backup-plan.js';
import { diffBackup, type DiffEntry } from './diff.js';
import { BackupError, exitCodeOf, type VerifyProblem } from './errors.js';
import { DEFAULT_EXCLUDES } from './exclude.js';
import type { BackupInfo } from './info.js';
import { listBackups, showBackup, type BackupDetails } from './list.js';
import { TOOL_VERSION } from './metadata.js';
import { colorEnabled, formatBytes, formatTime, guardStream, makeStyle, ProgressBar, table, terminalSafe, type CliIO, type GuardedStream, type OutStream, type Style } from './output.js';
import { hasRetentionRule, pruneBackups, type RetentionPolicy } from './prune.js';
import type { PlannedEntry, RestorePlan } from './partial.js';
import { cmdRepoList, cmdRepoPrune, cmdRepoVerify, explicitRepo, printPushed, pushAfterBackup, pushTarget, registerRepoCommands, repoTarget } from './repo/commands.js';
import { diffRepo, showRepoBackup } from './repo/view.js';
import { planRestore, restoreBackup, type RestoreResult } from './restore.js';
import { planRestoreFromRepo, restoreFromRepo } from './repo/restore-repo.js';
import { checkArgv, type Grammar, type OptionSpec } from './usage.js';
import { verifyBackup, type VerifyResult } from './verify.js';

export type { CliIO, OutStream } from './output.js';

const BIN = 'dawn-backup';

/** @internal The context every command gets (the repository commands take a part of it: `RepoCtx`). */
export interface Ctx {
  io: CliIO;
  /** The unfiltered stderr, for the progress bar's own control characters. */
  rawStderr: OutStream;
  raw: RawArgs;
  json: boolean;
  quiet: boolean;
  out: Style;
  err: Style;
  /** Set once argument checking is over: later errors are not usage errors. */
  started: boolean;
  flags: Flags;
}

/** Print cac's help of a command (or the global help) into a string instead of the console. */
function captureInfo(fn: () => void): string {
  const original = console.info;
  let text = '';
  console.info = (...args: unknown[]) => {
    text += `${args.map(String).join(' ')}\n`;
  };
  try {
    fn();
  } finally {
    console.info = original;
  }
  return text;
}

function helpOf(cli: CAC, command?: Command): string {
  return captureInfo(() => (command ? command.outputHelp() : cli.globalCommand.outputHelp()));
}

function bar(ctx: Ctx): ProgressBar {
  return new ProgressBar(ctx.rawStderr, ctx.rawStderr.isTTY === true && !ctx.json && !ctx.quiet);
}

function println(ctx: Ctx, text: string): void {
  ctx.io.stdout.write(`${text}\n`);
}

function warn(ctx: Ctx, text: string): void {
  if (ctx.json || ctx.quiet) return;
  ctx.io.stderr.write(`${ctx.err.yellow('warning:')} ${text}\n`);
}

function printJson(ctx: Ctx, value: unknown): void {
  ctx.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function problemLines(problems: readonly VerifyProblem[], limit = 20): string[] {
  const lines = problems.slice(0, limit).map((p) => `  ${p.kind.padEnd(10)} ${p.path}: ${p.detail}`);
  if (problems.length > limit) lines.push(`  ... and ${problems.length - limit} more (use --json for the full list)`);
  return lines;
}

function agentsText(b: BackupInfo): string {
  const ids = b.summary?.agentIds;
  if (!ids) return '?';
  return ids.length === 0 ? '(none)' : ids.join(', ');
}

// --- commands ---------------------------------------------------------------------------------

/** The retention options of `prune` (and of `backup`, which prunes after a successful backup). */
const keepOptions = (ctx: Ctx): RetentionPolicy => keepOptionsOf(ctx.raw);

async function cmdBackup(ctx: Ctx): Promise<number> {
  const { raw } = ctx;
  const source = single(raw, 'source', '--source');
  const backupDir = single(raw, 'backupDir', '--backup-dir');
  const name = single(raw, 'name', '--name');
  const exclude = many(raw, 'exclude');
  const keep = keepOptions(ctx);
  const pruning = hasRetentionRule(keep);
  if (!pruning && (keep.keepPreRestore !== undefined || keep.keepPreRestoreDays !== undefined)) {
    throw new BackupError('USAGE', 'backup prunes only with at least one of --keep-last N, --keep-daily N, --keep-weekly N, --keep-monthly N, --keep-within DURATION.');
  }
  // --push: the repository is checked for syntax now (a typo is a usage error before any work);
  // reaching it is the push's business, after the backup is safe on disk.
  if (!ctx.flags.push && explicitRepo(ctx) !== undefined) throw new BackupError('USAGE', 'backup --repo URL needs --push (backup --push --repo URL backs up, then pushes the new backup).');
  const push = ctx.flags.push ? pushTarget(ctx) : undefined;
  ctx.started = true;
  const what = {
    ...(source !== undefined ? { source } : {}),
    ...(backupDir !== undefined ? { backupDir } : {}),
    ...(name !== undefined ? { name } : {}),
    exclude,
    defaultExcludes: ctx.flags.defaultExcludes,
    fsync: ctx.flags.fsync,
    full: ctx.flags.full,
    // With --push, the local prune waits until the new backup is off-site (see below).
    ...(pruning && !push ? { keep } : {}),
  };
  // A dry run (with --push too) changes nothing and pushes nothing: it shows what the backup would do.
  if (ctx.flags.dryRun) return printBackupPlan(ctx, await planBackup(what));
  const progress = bar(ctx);
  const result = await createBackup({ ...what, onProgress: progress.update }).finally(() => progress.done());
  const pushed = push ? await pushAfterBackup(push, result.name, dirname(result.path)) : undefined;
  if (pushed && 'error' in pushed) {
    ctx.io.stderr.write(
      `${ctx.err.red('error:')} backup ${result.name} was created (${result.path}), but pushing it to ${pushed.repo} failed (${pushed.error.code}): ${pushed.error.message}\n` +
        `The local backup is complete${pruning ? '; nothing was pruned' : ''}. Retry the push with: ${BIN} push ${result.name} --repo ${pushed.repo}\n`,
    );
  } else if (pushed && pruning) {
    // Only now that the new backup is off-site does the local retention run: a failed push
    // leaves every local backup in place for the retry.
    try {
      result.pruned = await pruneBackups({ ...keep, backupDir: dirname(result.path), ...(result.sourceDir !== null ? { source: result.sourceDir } : {}) });
    } catch (err) {
      result.pruneError = { code: BackupError.is(err) ? err.code : 'IO', message: err instanceof Error ? err.message : String(err) };
    }
  }
  // The backup is made; a failed push or prune afterwards is a failure of the command (exit 1).
  const exit = result.pruneError || (pushed && 'error' in pushed) ? 1 : 0;
  if (result.pruneError) ctx.io.stderr.write(`${ctx.err.red('error:')} backup ${result.name} was created, but pruning afterwards failed (${result.pruneError.code}): ${result.pruneError.message}\n`);
  if (ctx.json) {
    printJson(ctx, pushed ? { ...result, push: pushed } : result);
    return exit;
  }
  for (const w of result.warnings) warn(ctx, w);
  if (ctx.flags.verbose && !ctx.quiet) {
    for (const e of result.excluded) println(ctx, ctx.out.dim(`excluded: ${e}`));
    for (const k of result.skipped) println(ctx, ctx.out.dim(`skipped: ${k.rel}: ${k.reason}`));
  }
  if (ctx.quiet) return exit;
  const s = result.summary;
  println(ctx, `${ctx.out.green('Created backup')} ${ctx.out.bold(result.name)}`);
  // One line: what was written and what was linked.
  println(
    ctx,
    result.linkedFrom !== null
      ? `  ${result.newFiles} files (${formatBytes(result.newBytes)}) written, ${result.linkedFiles} unchanged files (${formatBytes(result.linkedBytes)}) linked to ${result.linkedFrom}`
      : `  ${result.newFiles} files (${formatBytes(result.newBytes)}) written, none linked (${ctx.flags.full ? '--full' : 'no earlier backup of this source to link to'})`,
  );
  println(
    ctx,
    table([
      ['  path:', result.path],
      ['  source:', result.sourceDir ?? '?'],
      ['  files:', `${result.fileCount} (${formatBytes(result.totalBytes)})`],
      ['  peers:', s?.peerCount === null || s === null ? '?' : String(s.peerCount)],
      ['  agents:', agentsText(result)],
      ['  took:', `${(result.durationMs / 1000).toFixed(1)} s`],
    ]),
  );
  for (const n of s?.notes ?? []) println(ctx, ctx.out.dim(`  note: ${n}`));
  if (pushed && !('error' in pushed)) printPushed(ctx, pushed.repo, pushed.pushed);
  if (result.pruned) {
    const removed = result.pruned.removed.map((d) => d.name);
    println(ctx, `Pruned ${removed.length} backup(s) of this source${removed.length > 0 ? `: ${removed.join(', ')}` : ''}; ${result.pruned.kept.length} kept.`);
  }
  return exit;
}

async function cmdList(ctx: Ctx): Promise<number> {
  if (explicitRepo(ctx) !== undefined) return cmdRepoList(ctx);
  const backupDir = single(ctx.raw, 'backupDir', '--backup-dir');
  ctx.started = true;
  const result = await listBackups(backupDir !== undefined ? { backupDir } : {});
  let status: Map<string, VerifyResult> | undefined;
  if (ctx.flags.verify) {
    status = new Map();
    const progress = bar(ctx);
    try {
      for (const b of result.backups) {
        // One backup that cannot be verified (it vanished, a file cannot be read...) is damaged; the others are still verified.
        const v = await verifyBackup({ name: b.name, backupDir: result.backupDir, onProgress: progress.update }).catch(
          (err: unknown): VerifyResult => ({
            name: b.name,
            path: b.path,
            status: 'damaged',
            ok: false,
            files: 0,
            bytes: 0,
            problems: [{ path: '.', kind: 'unreadable', detail: err instanceof Error ? err.message : String(err) }],
          }),
        );
        status.set(b.name, v);
      }
    } finally {
      progress.done();
    }
  }
  // With --verify, a backup whose metadata is unusable counts as damaged too.
  const damaged = status ? [...status.values()].some((v) => v.status === 'damaged') || result.damaged.length > 0 : false;
  if (ctx.json) {
    printJson(ctx, status ? { ...result, backups: result.backups.map((b) => ({ ...b, verification: status!.get(b.name) })) } : result);
    return damaged ? 3 : 0;
  }
  const damagedLines = () => {
    if (result.damaged.length === 0) return;
    println(ctx, '');
    println(ctx, `${ctx.out.red('DAMAGED')} (not usable; never removed by prune; fix or remove them by hand):`);
    for (const d of result.damaged) println(ctx, `  ${d.name}: ${d.reason}`);
  };
  if (result.backups.length === 0) {
    println(ctx, `No usable backups in ${result.backupDir}.`);
    damagedLines();
    return damaged ? 3 : 0;
  }
  const header = ['NAME', 'CREATED', 'FILES', 'SIZE', 'PEERS', 'AGENTS', 'CHECKSUMS', ...(status ? ['STATUS'] : []), 'SOURCE'];
  const rows = result.backups.map((b) => {
    const v = status?.get(b.name);
    return [
      b.name,
      formatTime(b.createdAt),
      b.fileCount === null ? '?' : String(b.fileCount),
      formatBytes(b.totalBytes),
      b.summary?.peerCount === null || b.summary === null ? '?' : String(b.summary.peerCount),
      b.summary?.agentIds ? String(b.summary.agentIds.length) : '?',
      b.checksums ? 'sha256' : 'none (python)',
      ...(v ? [v.status === 'ok' ? ctx.out.green('ok') : v.status === 'damaged' ? ctx.out.red('DAMAGED') : ctx.out.yellow('unverifiable')] : []),
      b.sourceDir ?? '?',
    ];
  });
  println(ctx, `Backups in ${result.backupDir}, newest first:`);
  println(ctx, table([header, ...rows], ctx.out));
  damagedLines();
  return damaged ? 3 : 0;
}

async function cmdShow(ctx: Ctx, name: string): Promise<number> {
  const backupDir = single(ctx.raw, 'backupDir', '--backup-dir');
  const fromRepo = explicitRepo(ctx) !== undefined;
  if (fromRepo && backupDir !== undefined) throw new BackupError('USAGE', 'show --repo reads the backup from the repository: --backup-dir does not go with it.');
  const target = fromRepo ? repoTarget(ctx) : undefined;
  ctx.started = true;
  const d: BackupDetails & { pushedAt?: number; pushedFrom?: string | null } = target
    ? await showRepoBackup({ ...target, name, manifest: ctx.flags.files })
    : await showBackup({ name, ...(backupDir !== undefined ? { backupDir } : {}), manifest: ctx.flags.files });
  if (ctx.json) {
    printJson(ctx, d);
    return 0;
  }
  const s = d.summary;
  println(ctx, ctx.out.bold(d.name));
  println(
    ctx,
    table([
      ['  path:', d.path],
      ['  created:', `${formatTime(d.createdAt)} (${d.timestamp})`],
      ['  source:', d.sourceDir ?? '?'],
      ['  made by:', d.origin === 'python' ? 'the Python implementation' : `@dawn/backup-cli ${d.toolVersion ?? '?'} on ${d.hostname ?? '?'}`],
      ...(d.pushedAt !== undefined ? [['  pushed:', `${formatTime(d.pushedAt)} from ${d.pushedFrom ?? '?'}`]] : []),
      ['  files:', `${d.fileCount ?? '?'} (${formatBytes(d.totalBytes)})${d.dirCount !== null ? `, ${d.dirCount} directories, ${d.symlinkCount ?? 0} symlinks` : ''}`],
      ['  checksums:', d.checksums ? 'sha256 for every file (run `verify` to check them)' : 'none: cannot be verified'],
      ['  durability:', d.durability ?? '?'],
      ['  excludes:', d.excludes ? d.excludes.join(' ') : '?'],
      ['  peers:', s === null || s.peerCount === null ? '?' : String(s.peerCount)],
      ['  agents:', agentsText(d)],
    ]),
  );
  for (const n of s?.notes ?? []) println(ctx, ctx.out.dim(`  note: ${n}`));
  if (d.manifest) {
    println(ctx, '');
    println(
      ctx,
      table(
        [
          ['TYPE', 'MODE', 'SIZE', 'SHA256', 'PATH'],
          ...d.manifest.map((m) =>
            m.type === 'file'
              ? ['file', m.mode, String(m.size), m.sha256.slice(0, 16), m.path]
              : m.type === 'dir'
                ? ['dir', m.mode, '', '', `${m.path}/`]
                : ['symlink', '', '', '', `${m.path} -> ${m.target}`],
          ),
        ],
        ctx.out,
      ),
    );
  }
  return 0;
}

async function cmdVerify(ctx: Ctx, name: string): Promise<number> {
  if (explicitRepo(ctx) !== undefined) return cmdRepoVerify(ctx, name);
  if (ctx.flags.readData || single(ctx.raw, 'readDataSubset', '--read-data-subset') !== undefined) {
    throw new BackupError('USAGE', '--read-data and --read-data-subset go with --repo URL (a local verify always reads every file).');
  }
  const backupDir = single(ctx.raw, 'backupDir', '--backup-dir');
  ctx.started = true;
  const progress = bar(ctx);
  const r = await verifyBackup({ name, ...(backupDir !== undefined ? { backupDir } : {}), onProgress: progress.update }).finally(() => progress.done());
  if (ctx.json) {
    printJson(ctx, r);
    return r.ok ? 0 : 3;
  }
  if (r.status === 'ok') {
    if (!ctx.quiet) println(ctx, `${ctx.out.green('OK')} backup ${r.name}: ${r.files} files (${formatBytes(r.bytes)}) match their sha256.`);
    return 0;
  }
  if (r.status === 'unverifiable') {
    ctx.io.stderr.write(
      `${ctx.err.yellow('cannot verify')} backup ${r.name}: it was made by the Python implementation and carries no checksums. It can still be restored (after a warning).\n`,
    );
    return 3;
  }
  ctx.io.stderr.write(`${ctx.err.red('DAMAGED')} backup ${r.name}: ${r.problems.length} problem(s):\n${problemLines(r.problems).join('\n')}\n`);
  return 3;
}

async function cmdRestore(ctx: Ctx, name: string): Promise<number> {
  if (name === 'list') return cmdList(ctx);
  // --repo: the restored tree is built straight from the repository's objects (no local copy kept).
  const repo = explicitRepo(ctx) !== undefined ? repoTarget(ctx) : undefined;
  const backupDir = single(ctx.raw, 'backupDir', '--backup-dir');
  const target = single(ctx.raw, 'target', '--target');
  const include = many(ctx.raw, 'include');
  ctx.started = true;
  const what = {
    name,
    ...(backupDir !== undefined ? { backupDir } : {}),
    ...(target !== undefined ? { target } : {}),
    ...(include.length > 0 ? { include } : {}),
    overwrite: ctx.flags.overwrite,
    force: ctx.flags.force,
  };
  if (ctx.flags.dryRun) return printPlan(ctx, repo ? await planRestoreFromRepo({ ...repo, ...what }) : await planRestore(what));
  const progress = bar(ctx);
  const how = {
    ...what,
    fsync: ctx.flags.fsync,
    onProgress: progress.update,
    onWarning: (m: string) => {
      progress.done();
      warn(ctx, m);
    },
  };
  const r: RestoreResult & { repo?: string } = await (repo ? restoreFromRepo({ ...repo, ...how }) : restoreBackup(how)).finally(() => progress.done());
  if (ctx.json) {
    printJson(ctx, r);
    return 0;
  }
  if (ctx.quiet) return 0;
  const scope = r.include ? ` (only ${r.include.join(' ')}; ${r.removed.length} path(s) the backup does not have removed, everything else untouched)` : '';
  const from = r.repo !== undefined ? ` from ${r.repo}` : '';
  println(ctx, `${ctx.out.green('Restored')} ${ctx.out.bold(r.name)}${from} into ${r.target}: ${r.files} files (${formatBytes(r.bytes)})${r.verified ? ', every checksum verified' : ', not verified (no checksums)'}${scope}.`);
  if (r.repo !== undefined) println(ctx, ctx.out.dim(`  no local copy of the backup was kept; to keep one: ${BIN} pull ${r.name} --repo ${r.repo}`));
  if (ctx.flags.verbose) for (const k of r.removed) println(ctx, ctx.out.dim(`removed (not in the backup): ${k}`));
  if (r.preRestoreBackup) {
    println(ctx, `The previous data was saved as backup ${ctx.out.bold(r.preRestoreBackup)}.`);
    println(ctx, ctx.out.dim(`  undo: ${BIN} restore ${r.preRestoreBackup} --target ${r.target}${backupDir !== undefined ? ` --backup-dir ${backupDir}` : ''}`));
  }
  if (ctx.flags.verbose) for (const k of r.kept ?? []) println(ctx, ctx.out.dim(`kept (excluded by the backup): ${k}`));
  return 0;
}

/** `backup --dry-run`: the plan, one line per file (printed even with --quiet: it is the listing). */
function printBackupPlan(ctx: Ctx, plan: BackupPlan): number {
  if (ctx.json) {
    printJson(ctx, plan);
    return 0;
  }
  const linked = plan.linkedFrom !== null ? `, ${plan.linkedFiles} unchanged file(s) (${formatBytes(plan.linkedBytes)}) linked to ${plan.linkedFrom}` : '';
  println(
    ctx,
    `Dry run: backup ${ctx.out.bold(plan.name)} of ${plan.sourceDir} would write ${plan.newFiles} file(s) (${formatBytes(plan.newBytes)})${linked}; ` +
      `${plan.excluded.length} excluded, ${plan.skipped.length} skipped. Nothing was changed.`,
  );
  const line = (verb: string, path: string, size: string) => `  ${verb} ${size.padStart(9)}  ${path}`;
  for (const f of plan.backup) println(ctx, line(ctx.out.green('backup'.padEnd(8)), f.path, formatBytes(f.size)));
  for (const f of plan.link) println(ctx, line('link'.padEnd(8), f.path, formatBytes(f.size)));
  for (const x of plan.excluded) println(ctx, `${line(ctx.out.dim('exclude'.padEnd(8)), x.path, '')}  ${ctx.out.dim(`(${x.pattern})`)}`);
  for (const k of plan.skipped) println(ctx, `${line(ctx.out.yellow('skip'.padEnd(8)), k.rel, '')}: ${k.reason}`);
  return 0;
}

/** `restore --dry-run`: the plan, one line per entry (printed even with --quiet: it is the listing). */
function printPlan(ctx: Ctx, plan: RestorePlan): number {
  for (const w of plan.warnings) warn(ctx, w);
  if (ctx.json) {
    printJson(ctx, plan);
    return 0;
  }
  const line = (verb: string, e: PlannedEntry) =>
    `  ${verb} ${(e.was ? `${e.was}->${e.type}` : e.type).padEnd(12)} ${(e.size !== undefined ? formatBytes(e.size) : '').padStart(9)}  ${e.path}`;
  const scope = plan.include ? ` (only ${plan.include.join(' ')})` : '';
  println(
    ctx,
    `Dry run: restoring ${ctx.out.bold(plan.name)} into ${plan.target}${scope} would replace ${plan.replace.length}, add ${plan.add.length}, remove ${plan.remove.length} and keep ${plan.keep.length} entr${plan.keep.length === 1 ? 'y' : 'ies'}` +
      `${plan.preRestore ? ', after saving them as a pre_restore_ backup' : ''}. Nothing was changed.`,
  );
  for (const e of plan.replace) println(ctx, line(ctx.out.yellow('replace'.padEnd(8)), e));
  for (const e of plan.add) println(ctx, line(ctx.out.green('add'.padEnd(8)), e));
  for (const e of plan.remove) println(ctx, line(ctx.out.red('remove'.padEnd(8)), e));
  for (const k of plan.keep) println(ctx, `  ${'keep'.padEnd(8)} ${''.padEnd(12)} ${''.padStart(9)}  ${k}`);
  return 0;
}

async function cmdPrune(ctx: Ctx): Promise<number> {
  if (explicitRepo(ctx) !== undefined) return cmdRepoPrune(ctx);
  const backupDir = single(ctx.raw, 'backupDir', '--backup-dir');
  const keep = keepOptions(ctx);
  if (!hasRetentionRule(keep)) {
    throw new BackupError('USAGE', 'prune needs at least one of --keep-last N, --keep-daily N, --keep-weekly N, --keep-monthly N, --keep-within DURATION.');
  }
  ctx.started = true;
  const r = await pruneBackups({
    ...(backupDir !== undefined ? { backupDir } : {}),
    ...keep,
    dryRun: ctx.flags.dryRun,
  });
  if (ctx.json) {
    printJson(ctx, r);
    return 0;
  }
  if (ctx.quiet) return 0;
  const rows = [
    ['', 'NAME', 'CREATED', 'REASON', 'SOURCE'],
    ...[...r.kept, ...r.removed]
      .sort((a, b) => b.createdAt - a.createdAt || (a.name < b.name ? 1 : -1))
      .map((d) => [
        d.keep ? ctx.out.green('keep') : ctx.out.red(r.dryRun ? 'would remove' : 'removed'),
        d.name,
        formatTime(d.createdAt),
        d.reasons.join(', '),
        `${d.source}${d.preRestore ? ' (pre_restore)' : ''}`,
      ]),
    ...r.damaged.map((d) => [ctx.out.yellow('skip'), d.name, '?', 'damaged: never removed (see `list`)', '?']),
  ];
  if (r.kept.length + r.removed.length + r.damaged.length === 0) println(ctx, `No backups in ${r.backupDir}.`);
  else println(ctx, table(rows, ctx.out));
  if (r.dryRun) println(ctx, ctx.out.dim(`Dry run: nothing was removed (${r.removed.length} backup(s) would be).`));
  else println(ctx, `${r.removed.length} backup(s) removed, ${r.kept.length} kept.`);
  return 0;
}

async function cmdDiff(ctx: Ctx, name: string, other: string | undefined): Promise<number> {
  const backupDir = single(ctx.raw, 'backupDir', '--backup-dir');
  const source = single(ctx.raw, 'source', '--source');
  if (other !== undefined && source !== undefined) throw new BackupError('USAGE', '--source compares a backup with a live directory; it does not go with a second backup name.');
  const fromRepo = explicitRepo(ctx) !== undefined;
  if (fromRepo && backupDir !== undefined) throw new BackupError('USAGE', 'diff --repo compares backups of the repository: --backup-dir does not go with it.');
  const target = fromRepo ? repoTarget(ctx) : undefined;
  ctx.started = true;
  const which = { name, ...(other !== undefined ? { other } : {}), ...(source !== undefined ? { source } : {}) };
  const d = target ? await diffRepo({ ...target, ...which }) : await diffBackup({ ...which, ...(backupDir !== undefined ? { backupDir } : {}) });
  name = d.from.name;
  if (ctx.json) {
    printJson(ctx, d);
    return 0;
  }
  for (const n of d.notes) warn(ctx, n);
  const to = d.to.kind === 'live' ? `the live ${d.to.path}` : `backup ${d.to.name}`;
  println(ctx, `From backup ${ctx.out.bold(name)} to ${to}${d.from.repo !== undefined ? ` (in ${d.from.repo})` : ''}:`);
  const size = (x?: { size?: number }) => (x?.size !== undefined ? formatBytes(x.size) : '');
  const line = (mark: string, e: DiffEntry, detail: string) => println(ctx, `  ${mark} ${e.path}${detail ? `  ${ctx.out.dim(detail)}` : ''}`);
  for (const e of d.added) line(ctx.out.green('+'), e, `${e.to?.type === 'dir' ? 'dir' : size(e.to)}`);
  for (const e of d.removed) line(ctx.out.red('-'), e, `${e.from?.type === 'dir' ? 'dir' : size(e.from)}`);
  for (const e of d.modified) line(ctx.out.yellow('M'), e, e.from?.type === 'file' ? `${size(e.from)} -> ${size(e.to)}` : 'link target');
  for (const e of d.mode) line('m', e, `${e.from?.mode} -> ${e.to?.mode}`);
  for (const e of d.type) line('T', e, `${e.from?.type} -> ${e.to?.type}`);
  const total = d.added.length + d.removed.length + d.modified.length + d.mode.length + d.type.length;
  println(ctx, total === 0 ? 'No differences in files.' : `${d.added.length} added, ${d.removed.length} removed, ${d.modified.length} modified, ${d.mode.length} mode changed, ${d.type.length} type changed.`);
  if (d.peers) println(ctx, `Peers: ${d.peers.added.length} added${d.peers.added.length ? ` (${d.peers.added.slice(0, 5).join(', ')}${d.peers.added.length > 5 ? ', ...' : ''})` : ''}, ${d.peers.removed.length} removed${d.peers.removed.length ? ` (${d.peers.removed.slice(0, 5).join(', ')}${d.peers.removed.length > 5 ? ', ...' : ''})` : ''}.`);
  if (d.agents) println(ctx, `Agents: ${d.agents.added.length ? `added ${d.agents.added.join(', ')}` : 'none added'}; ${d.agents.removed.length ? `removed ${d.agents.removed.join(', ')}` : 'none removed'}.`);
  return 0;
}

// --- wiring ------------------------------------------------------------------------------------

/** @internal */
export interface Flags {
  verbose: boolean;
  json: boolean;
  quiet: boolean;
  overwrite: boolean;
  force: boolean;
  dryRun: boolean;
  verify: boolean;
  files: boolean;
  fsync: boolean;
  defaultExcludes: boolean;
  full: boolean;
  readData: boolean;
  encrypt: boolean;
  repair: boolean;
  push: boolean;
}

function buildCli(ctx: Ctx, setExit: (code: number) => void): CAC {
  const cli = cac(BIN);
  cli.usage('<command> [options]');
  cli.option('--backup-dir <dir>', 'Where backups live (default: $DAWN_BACKUP_DIR, else <data root>/../backups; for backup: <source>/../backups)');
  cli.option('--json', 'Print one JSON document on stdout (errors as JSON on stderr)');
  cli.option('--quiet', 'Print only errors (list and show still print their listing)');
  cli.option('--verbose', 'Also say what was excluded, skipped or kept, and why');
  cli.help((sections) => {
    for (const sec of sections) {
      // cac shows "(default: true)" for --no-* flags: the default is the opposite of the flag.
      sec.body = sec.body.replace(/ \(default: true\)/g, '');
    }
    sections.push(
      {
        title: 'Environment',
        body: [
          '  PROJECT_DAWN_DATA_ROOT  the data root (default ~/.project-dawn): what backup backs up and restore restores into',
          '  DAWN_BACKUP_DIR         the backup dir of every command when --backup-dir is not given',
          '  DAWN_BACKUP_REPO        the repository of init, push, pull and backup --push when --repo is not given',
          '  DAWN_BACKUP_PASSWORD    the password of an encrypted repository (else --password-file, else asked on a terminal);',
          '                          set for an unencrypted repository, it is refused (REPO_INVALID)',
          '  DAWN_BACKUP_LOCK_STALE  seconds after which another host\'s repository lock counts as stale, by the store\'s clock (default 21600, at least 300)',
          '  DAWN_BACKUP_CACHE_DIR   the local cache of repository indexes (default $XDG_CACHE_HOME/dawn-backup, ~/.cache/dawn-backup)',
          '  DAWN_BACKUP_NO_CACHE    1: use no local cache',
          '  AWS_*                   S3 credentials, region and endpoint (the AWS SDK default chain)',
          '  NO_COLOR                no colors',
        ].join('\n'),
      },
      {
        title: 'Exit codes',
        body: '  0 ok   1 failure   2 usage error (unknown command or option, bad argument)   3 verification failed (a damaged backup)',
      },
    );
    return sections;
  });
  cli.version(TOOL_VERSION);

  const run = (fn: (...a: string[]) => Promise<number>) => async (...args: unknown[]) => {
    // Positionals from the raw argv: cac would have turned "007" into 7.
    const positionals = ctx.raw.positionals.slice(1);
    setExit(await fn(...positionals.slice(0, Math.max(0, args.length - 1))));
  };

  cli
    .command('backup', 'Copy the data root into <backup-dir>/<name>, all or nothing, with a sha256 manifest')
    .option('--source <dir>', 'Directory to back up (default: the data root: $PROJECT_DAWN_DATA_ROOT or ~/.project-dawn)')
    .option('--name <name>', 'Backup name (default: dawn_backup_YYYYMMDD_HHMMSS, local time)')
    .option('--exclude <glob>', 'Also exclude this glob; repeatable. No "/": a name at any depth; with "/": a path from the source')
    .option('--no-default-excludes', `Do not apply the default excludes (${DEFAULT_EXCLUDES.slice(0, 4).join(' ')}); lock dirs and temp files stay excluded`)
    .option('--no-fsync', 'Skip fsync (faster; a power loss soon after may damage the backup)')
    .option('--full', 'Copy every file (default: unchanged files are hard links to the newest backup of the same source)')
    .option('--dry-run', 'Show what would be backed up (written), linked (unchanged) and excluded (with the pattern); change nothing')
    .option('--keep-last <n>', 'After a successful backup, prune this source: keep the N newest backups')
    .option('--keep-daily <n>', 'After a successful backup, prune this source: keep the newest of each of the last N days')
    .option('--keep-weekly <n>', 'After a successful backup, prune this source: keep the newest of each of the last N ISO weeks')
    .option('--keep-monthly <n>', 'After a successful backup, prune this source: keep the newest of each of the last N months')
    .option('--keep-within <duration>', 'After a successful backup, prune this source: keep all made within DURATION (36h, 7d, 2w, 6m, 1y) before the newest')
    .option('--keep-pre-restore <n>', 'With a --keep-* rule: keep the N newest pre_restore_* backups of this source (default 5)')
    .option('--keep-pre-restore-days <n>', 'With a --keep-* rule: also keep every pre_restore_* backup of the last N days (default 7)')
    .option('--push', 'Then push the new backup into the repository (--repo, else $DAWN_BACKUP_REPO); with --keep-*, prune only after the push succeeded')
    .option('--repo <url>', 'With --push: the repository (s3://bucket/prefix or a directory)')
    .option('--s3-endpoint <url>', 'With --push: S3 endpoint of a non-AWS server (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL)')
    .option('--password-file <file>', 'With --push: the password of an encrypted repository (default: $DAWN_BACKUP_PASSWORD)')
    .example(`  ${BIN} backup`)
    .example(`  ${BIN} backup --push --repo s3://backups/node-a --keep-last 24   # cron: one step`)
    .example(`  ${BIN} backup --keep-last 24 --keep-daily 7 --keep-weekly 8 --keep-monthly 12`)
    .example(`  ${BIN} backup --source ~/.project-dawn --backup-dir /mnt/backups --name before_upgrade`)
    .example(`  ${BIN} backup --exclude 'cache/' --exclude 'agents/*/scratch'`)
    .example(`  ${BIN} backup --dry-run --exclude 'cache/'`)
    .action(run(() => cmdBackup(ctx)));

  cli
    .command('list', 'List backups, newest first, with time, files, size, peers, agents and whether they carry checksums')
    .option('--verify', 'Also re-hash every backup and show whether it is intact (slow)')
    .option('--repo <url>', 'List the backups of this repository instead (s3://bucket/prefix or a directory)')
    .option('--s3-endpoint <url>', 'S3 endpoint of a non-AWS server (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL)')
    .option('--password-file <file>', 'With --repo: the password of an encrypted repository (default: $DAWN_BACKUP_PASSWORD)')
    .example(`  ${BIN} list`)
    .example(`  ${BIN} list --backup-dir /mnt/backups --json`)
    .action(run(() => cmdList(ctx)));

  cli
    .command('show <name>', "Show a backup's metadata and summary (peers, agents, files, bytes, checksums)")
    .option('--files', 'Also list every file of the manifest')
    .option('--repo <url>', 'Show the backup of this repository instead (`latest`: the newest of the data root); nothing is downloaded but its snapshot')
    .option('--s3-endpoint <url>', 'S3 endpoint of a non-AWS server (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL)')
    .option('--password-file <file>', 'With --repo: the password of an encrypted repository (default: $DAWN_BACKUP_PASSWORD)')
    .example(`  ${BIN} show dawn_backup_20261125_101500`)
    .example(`  ${BIN} show nightly --files --json`)
    .example(`  ${BIN} show latest --repo s3://backups/node-a`)
    .action(run((name) => cmdShow(ctx, name!)));

  cli
    .command('verify <name>', "Re-hash every file of a backup against its manifest (exit 3 when damaged)")
    .option('--repo <url>', 'Verify the backup in this repository: every object present; with --read-data, downloaded and checked')
    .option('--s3-endpoint <url>', 'S3 endpoint of a non-AWS server (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL)')
    .option('--password-file <file>', 'With --repo: the password of an encrypted repository (default: $DAWN_BACKUP_PASSWORD)')
    .option('--read-data', 'With --repo: download every object and check its sha256')
    .option('--read-data-subset <n%|n/m>', 'With --repo: download and check only some stored objects: N% picked at random, or the slice n of m (1/7 .. 7/7 read everything once)')
    .example(`  ${BIN} verify dawn_backup_20261125_101500`)
    .example(`  ${BIN} verify latest --repo s3://backups/node-a --read-data-subset 10%`)
    .action(run((name) => cmdVerify(ctx, name!)));

  cli
    .command('restore <name>', 'Verify a backup, save the current target as pre_restore_..., then swap the restored tree in (`restore list` lists backups)')
    .option('--target <dir>', 'Directory to restore into (default: the data root)')
    .option('--overwrite', 'Replace the target without saving it as a pre_restore_ backup first')
    .option('--force', 'Restore even into a target holding data of another source, or fresh locks of a running node')
    .option('--no-fsync', 'Skip fsync of the restored tree (faster, less durable)')
    .option('--include <glob>', 'Restore only this glob (same rules as backup --exclude); repeatable. Everything else in the target is left as it is')
    .option('--dry-run', 'Show what would be replaced, added, removed and kept; change nothing')
    .option('--repo <url>', 'Restore the backup straight from this repository (`latest`: the newest of the data root); no local copy is kept (`pull` makes one)')
    .option('--s3-endpoint <url>', 'S3 endpoint of a non-AWS server (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL)')
    .option('--password-file <file>', 'With --repo: the password of an encrypted repository (default: $DAWN_BACKUP_PASSWORD)')
    .example(`  ${BIN} restore dawn_backup_20261125_101500`)
    .example(`  ${BIN} restore nightly --include 'agents/first_agent/**' --dry-run`)
    .example(`  ${BIN} restore nightly --include mesh/peer_registry.json`)
    .example(`  ${BIN} restore nightly --target /tmp/dawn-check --overwrite`)
    .example(`  ${BIN} restore list`)
    .action(run((name) => cmdRestore(ctx, name!)));

  cli
    .command('diff <name> [other]', 'What differs between a backup and another backup, or the live source: files added, removed, modified, mode; peers and agents')
    .option('--source <dir>', 'The live directory to compare with (default: the backup\'s recorded source, else the data root)')
    .option('--repo <url>', 'Compare backups of this repository (or one of them with the live source); only the peer registries are downloaded')
    .option('--s3-endpoint <url>', 'S3 endpoint of a non-AWS server (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL)')
    .option('--password-file <file>', 'With --repo: the password of an encrypted repository (default: $DAWN_BACKUP_PASSWORD)')
    .example(`  ${BIN} diff nightly                 # backup -> live data`)
    .example(`  ${BIN} diff nightly before_upgrade  # backup -> backup`)
    .example(`  ${BIN} diff nightly --json`)
    .example(`  ${BIN} diff nightly latest --repo s3://backups/node-a`)
    .action(run((name, other) => cmdDiff(ctx, name!, other)));

  cli
    .command('prune', 'Remove old backups by retention rules, per source (never the newest of a source, never a damaged one)')
    .option('--keep-last <n>', 'Keep the N newest backups of each source')
    .option('--keep-daily <n>', 'Keep the newest backup of each of the last N days that have backups (per source)')
    .option('--keep-weekly <n>', 'Keep the newest backup of each of the last N ISO weeks that have backups (per source)')
    .option('--keep-monthly <n>', 'Keep the newest backup of each of the last N months that have backups (per source)')
    .option('--keep-within <duration>', 'Keep every backup made within DURATION (36h, 7d, 2w, 6m, 1y, 1y6m) before the newest backup of its source')
    .option('--keep-pre-restore <n>', 'Keep the N newest pre_restore_* backups of each source (default 5)')
    .option('--keep-pre-restore-days <n>', 'Also keep every pre_restore_* backup of the last N days (default 7)')
    .option('--dry-run', 'Show what would be removed, remove nothing')
    .option('--repo <url>', 'Prune this repository instead, then delete the objects no remaining backup names')
    .option('--s3-endpoint <url>', 'S3 endpoint of a non-AWS server (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL)')
    .option('--password-file <file>', 'With --repo: the password of an encrypted repository (default: $DAWN_BACKUP_PASSWORD)')
    .example(`  ${BIN} prune --keep-last 7 --dry-run`)
    .example(`  ${BIN} prune --keep-last 3 --keep-daily 7 --keep-weekly 4`)
    .action(run(() => cmdPrune(ctx)));

  registerRepoCommands(cli, BIN, run, ctx);

  return cli;
}

function errorJson(err: unknown, exitCode: number, usage?: string): unknown {
  if (BackupError.is(err)) {
    return {
      error: {
        code: err.code,
        message: err.message,
        exitCode,
        ...(err.path !== undefined ? { path: err.path } : {}),
        ...(err.problems !== undefined ? { problems: err.problems } : {}),
        ...(usage !== undefined ? { usage } : {}),
      },
    };
  }
  return { error: { code: exitCode === 2 ? 'USAGE' : 'INTERNAL', message: err instanceof Error ? err.message : String(err), exitCode, ...(usage !== undefined ? { usage } : {}) } };
}

/**
 * Run `dawn-backup` with `argv` (the words after the program name) and return the exit code:
 * `0` ok, `1` failure, `2` usage error (usage printed, never a stack trace), `3` verification
 * failed. Never calls `process.exit`.
 *
 * @param argv e.g. `['backup', '--name', '007']`
 * @param io Where to write (default: the process's stdout, stderr and env).
 * @example
 * ```ts
 * process.exitCode = await main(process.argv.slice(2));
 * ```
 */
export async function main(
  argv: readonly string[] = process.argv.slice(2),
  io: CliIO = { stdout: guardStream(process.stdout), stderr: guardStream(process.stderr), env: process.env, ...(isatty(0) ? { stdin: process.stdin } : {}) },
): Promise<number> {
  const code = await run(argv, io);
  // A reader that went away (`| head`) ends the output quietly; any other failure to write the
  // output (a full disk behind a redirect) is a failure of the command.
  const guarded = (s: unknown): s is GuardedStream => typeof (s as GuardedStream).flush === 'function';
  if (guarded(io.stdout)) await io.stdout.flush();
  if (guarded(io.stdout) && io.stdout.failure && code === 0) {
    io.stderr.write(`error: cannot write the output: ${io.stdout.failure.message}\n`);
    return 1;
  }
  return code;
}

/** The options a cac command accepts, as the user types them. */
function specsOf(command: Command): OptionSpec[] {
  return command.options.flatMap((o) =>
    o.rawName
      .split(/[ ,]+/)
      .filter((w) => w.startsWith('--'))
      .map((flag) => ({ flag, takesValue: /[<[]/.test(o.rawName) })),
  );
}

function grammarOf(cli: CAC): Grammar {
  return {
    global: [...specsOf(cli.globalCommand), { flag: '--help', takesValue: false }, { flag: '--version', takesValue: false }],
    commands: new Map(cli.commands.map((c) => [c.name, { options: specsOf(c) }])),
  };
}

/** `--help --json`: the commands and options, for scripts and completions. */
function helpJson(cli: CAC): unknown {
  const opts = (c: Command) => c.options.map((o) => ({ flags: o.rawName, description: o.description }));
  return {
    name: BIN,
    version: TOOL_VERSION,
    usage: `${BIN} <command> [options]`,
    globalOptions: opts(cli.globalCommand),
    commands: cli.commands.map((c) => ({ name: c.name, usage: c.rawName, description: c.description, options: opts(c) })),
    environment: { PROJECT_DAWN_DATA_ROOT: 'the data root', DAWN_BACKUP_DIR: 'the backup dir of every command', NO_COLOR: 'no colors' },
    exitCodes: { 0: 'ok', 1: 'failure', 2: 'usage error', 3: 'verification failed' },
  };
}

/** A stream whose text has terminal control sequences escaped (names and metadata are data). */
function safeStream(stream: OutStream, keepColors: boolean): OutStream {
  return Object.assign(Object.create(stream) as OutStream, {
    write: (text: string) => stream.write(terminalSafe(text, keepColors)),
  });
}

async function run(argv: readonly string[], io: CliIO): Promise<number> {
  const beforeDashes = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  const has = (flag: string) => beforeDashes.includes(flag);
  const json = has('--json');
  const outColor = colorEnabled(io.stdout, io.env);
  const errColor = colorEnabled(io.stderr, io.env);
  const ctx: Ctx = {
    io: json ? io : { ...io, stdout: safeStream(io.stdout, outColor), stderr: safeStream(io.stderr, errColor) },
    rawStderr: io.stderr,
    raw: scanArgv(argv),
    json,
    quiet: has('--quiet'),
    out: makeStyle(outColor),
    err: makeStyle(errColor),
    started: false,
    flags: {
      verbose: has('--verbose'),
      json,
      quiet: has('--quiet'),
      overwrite: has('--overwrite'),
      force: has('--force'),
      dryRun: has('--dry-run'),
      verify: has('--verify'),
      files: has('--files'),
      fsync: !has('--no-fsync'),
      defaultExcludes: !has('--no-default-excludes'),
      full: has('--full'),
      readData: has('--read-data'),
      encrypt: has('--encrypt'),
      repair: has('--repair'),
      push: has('--push'),
    },
  };
  let exitCode = 0;
  const cli = buildCli(ctx, (code) => (exitCode = code));
  io = ctx.io;
  let commandForUsage: Command | undefined;
  try {
    const grammar = grammarOf(cli);
    const firstWord = argv.find((t) => !t.startsWith('-'));
    commandForUsage = cli.commands.find((c) => c.name === firstWord);
    const normalized = checkArgv(argv, grammar);
    ctx.raw = scanArgv(normalized);
    const printed = captureInfo(() => cli.parse(['node', BIN, ...normalized], { run: false }));
    if (cli.options.help || cli.options.version) {
      if (json) printJson(ctx, cli.options.help ? helpJson(cli) : { name: BIN, version: TOOL_VERSION });
      else io.stdout.write(printed);
      return 0;
    }
    if (!cli.matchedCommand) {
      if (cli.args.length > 0) throw new BackupError('USAGE', `Unknown command "${String(ctx.raw.positionals[0] ?? cli.args[0])}".`);
      throw new BackupError('USAGE', 'No command given.');
    }
    await cli.runMatchedCommand();
    return exitCode;
  } catch (err) {
    const code = ctx.started ? exitCodeOf(err) : 2;
    const usage = code === 2 ? helpOf(cli, cli.matchedCommand ?? commandForUsage).trimEnd() : undefined;
    if (ctx.json) {
      io.stderr.write(`${JSON.stringify(errorJson(err, code, usage))}\n`);
      return code;
    }
    const message = err instanceof Error ? err.message : String(err);
    io.stderr.write(`${ctx.err.red('error:')} ${message}\n`);
    if (BackupError.is(err) && err.problems && err.problems.length > 0) io.stderr.write(`${problemLines(err.problems).join('\n')}\n`);
    if (usage) io.stderr.write(`\n${usage}\n`);
    else if (code === 1 && !BackupError.is(err)) {
      // Not one of ours: a bug or an unexpected system error. Say so, without a stack trace.
      io.stderr.write(`This looks like a bug in ${BIN} ${TOOL_VERSION}; please report it with the command you ran.\n`);
    }
    return code;
  }
}
