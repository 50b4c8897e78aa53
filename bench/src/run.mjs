#!/usr/bin/env node
/**
 * Entry of `pnpm bench`: runs every benchmark suite of `bench/src/` and prints their tables.
 *
 *   node src/run.mjs [suite ...] [--json FILE] [--quick] [--list] [--timeout SECONDS]
 *
 * A suite is any `bench/src/*.mjs` other than run.mjs and lib.mjs (and names starting with
 * `.` or `_`, kept for helpers) that exports
 * `async function run(opts)`; it prints its own tables and returns its rows (any JSON value).
 * Suites run in a fixed order (atomic-json, peer-registry, agent-state, backup-cli, then the
 * others alphabetically), each in its own Node.js process so that one suite's state, leaked
 * handles or crash cannot affect the next. A suite that throws (or crashes, or times out) is
 * reported and the others still run; the runner then exits with 1.
 *
 * `opts` given to each suite: `{ quick: boolean }` (`--quick`: a smoke run with far fewer
 * iterations; figures are then not meaningful).
 */
import { spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { fmtMs, makeTempDir, now, removeTempDir } from './lib.mjs';

const SRC = dirname(fileURLToPath(import.meta.url));
const ORDER = ['atomic-json', 'peer-registry', 'agent-state', 'backup-cli'];
const NOT_SUITES = new Set(['run.mjs', 'lib.mjs']);
const DEFAULT_TIMEOUT_S = 300;

function usage() {
  return [
    'Usage: pnpm bench [suite ...] [--json FILE] [--quick] [--list] [--timeout SECONDS]',
    '',
    '  suite          run only these suites (file names in bench/src without .mjs)',
    '  --json FILE    also write every suite\'s results as JSON to FILE',
    '  --quick        smoke run with few iterations (figures not meaningful)',
    '  --list         print the suites found and exit',
    `  --timeout S    kill a suite still running after S seconds (default ${DEFAULT_TIMEOUT_S})`,
  ].join('\n');
}

function parseArgs(argv) {
  const out = { names: [], json: undefined, quick: false, list: false, timeoutS: DEFAULT_TIMEOUT_S };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') continue; // pnpm may pass it through
    if (a === '--json') {
      out.json = argv[++i];
      if (!out.json) throw new Error('--json needs a file name');
    } else if (a.startsWith('--json=')) out.json = a.slice(7);
    else if (a === '--quick') out.quick = true;
    else if (a === '--list') out.list = true;
    else if (a === '--timeout') out.timeoutS = Number(argv[++i]);
    else if (a === '-h' || a === '--help') out.help = true;
    else if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
    else out.names.push(a.replace(/\.mjs$/, ''));
  }
  if (!(out.timeoutS > 0)) throw new Error('--timeout needs a positive number of seconds');
  return out;
}

/** The suites in bench/src, in run order. */
export async function discoverSuites(dir = SRC) {
  const names = (await readdir(dir))
    .filter((f) => f.endsWith('.mjs') && !f.startsWith('.') && !f.startsWith('_') && !NOT_SUITES.has(f))
    .map((f) => basename(f, '.mjs'));
  const rank = (n) => (ORDER.includes(n) ? ORDER.indexOf(n) : ORDER.length);
  return names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** Child mode: import one suite, run it, write `{ result }` or `{ error }` to `outFile`. */
async function runSuiteHere(name, outFile, quick) {
  let payload;
  try {
    const mod = await import(pathToFileURL(join(SRC, `${name}.mjs`)).href);
    if (typeof mod.run !== 'function') throw new Error(`bench/src/${name}.mjs does not export a run(opts) function`);
    const result = await mod.run({ quick });
    payload = { result: result ?? null };
  } catch (err) {
    payload = { error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
  }
  let text;
  try {
    text = JSON.stringify(payload);
  } catch (err) {
    text = JSON.stringify({ error: `the suite's result is not JSON-serializable: ${err.message}` });
  }
  await writeFile(outFile, text);
  // Leaked timers or handles of a suite must not keep the run waiting.
  process.exit(payload.error ? 1 : 0);
}

/** Run one suite in its own process; resolves with `{ ok, result?, error? }`. */
function runSuiteChild(name, outFile, { quick, timeoutS }) {
  return new Promise((resolvePromise) => {
    const args = [fileURLToPath(import.meta.url), '--suite-child', name, '--out', outFile];
    if (quick) args.push('--quick');
    const child = spawn(process.execPath, args, { stdio: 'inherit' });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutS * 1000);
    const forward = (sig) => child.kill(sig);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('close', async (code, signal) => {
      clearTimeout(timer);
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      let payload;
      try {
        payload = JSON.parse(await readFile(outFile, 'utf8'));
      } catch {
        payload = undefined;
      }
      if (timedOut) resolvePromise({ ok: false, error: `timed out after ${timeoutS} s (killed)` });
      else if (payload?.error) resolvePromise({ ok: false, error: payload.error });
      else if (!payload) resolvePromise({ ok: false, error: `the suite process exited with ${code ?? signal} without a result` });
      else resolvePromise({ ok: true, result: payload.result });
    });
  });
}

async function main(argv) {
  // Output piped into `head` and closed: keep running (and cleaning up) instead of dying on EPIPE.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err) => {
      if (err.code !== 'EPIPE') throw err;
    });
  }
  const childAt = argv.indexOf('--suite-child');
  if (childAt >= 0) {
    return runSuiteHere(argv[childAt + 1], argv[argv.indexOf('--out') + 1], argv.includes('--quick'));
  }

  let args;
  try {
    args = parseArgs(argv);
  } catch (err) {
    console.error(`bench: ${err.message}\n\n${usage()}`);
    return 2;
  }
  if (args.help) {
    console.log(usage());
    return 0;
  }
  const all = await discoverSuites();
  if (args.list) {
    console.log(all.join('\n'));
    return 0;
  }
  const unknown = args.names.filter((n) => !all.includes(n));
  if (unknown.length > 0) {
    console.error(`bench: no suite named ${unknown.join(', ')}. Suites: ${all.join(', ') || '(none)'}`);
    return 2;
  }
  const selected = args.names.length > 0 ? all.filter((n) => args.names.includes(n)) : all;
  if (selected.length === 0) {
    console.error('bench: no suites found in bench/src');
    return 1;
  }

  const cpu = cpus();
  const env = {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: `${cpu.length} × ${cpu[0]?.model ?? '?'}`,
    memoryGB: Math.round(totalmem() / 2 ** 30),
    loadavg: loadavg().map((l) => Number(l.toFixed(2))),
    startedAt: new Date().toISOString(),
    quick: args.quick,
  };
  console.log(`Dawn benchmarks — ${selected.join(', ')}`);
  console.log(`${env.node} on ${env.platform}, ${env.cpus}, load ${env.loadavg.join(' ')}${args.quick ? ' (QUICK: figures not meaningful)' : ''}`);

  const tmp = await makeTempDir('dawn-bench-run-');
  const results = [];
  try {
    for (const name of selected) {
      console.log(`\n━━━ ${name} ${'━'.repeat(Math.max(3, 70 - name.length))}`);
      const t0 = now();
      const r = await runSuiteChild(name, join(tmp, `${name}.json`), args);
      const durationMs = now() - t0;
      if (r.ok) console.log(`\n✓ ${name} done in ${fmtMs(durationMs / 1000)} s`);
      else console.error(`\n✗ ${name} FAILED after ${fmtMs(durationMs / 1000)} s:\n${r.error}`);
      results.push({ name, ok: r.ok, durationMs: Math.round(durationMs), ...(r.ok ? { result: r.result } : { error: r.error }) });
    }
  } finally {
    await removeTempDir(tmp);
  }

  const failed = results.filter((r) => !r.ok);
  console.log(`\n${results.length - failed.length}/${results.length} suites completed${failed.length ? `; FAILED: ${failed.map((r) => r.name).join(', ')}` : ''}.`);
  if (args.json) {
    // pnpm runs this script in bench/; resolve a relative path against where the user typed the command.
    const file = resolve(process.env.INIT_CWD ?? process.cwd(), args.json);
    await writeFile(file, `${JSON.stringify({ env, suites: results }, null, 2)}\n`);
    console.log(`Results written to ${file}`);
  }
  return failed.length > 0 ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
