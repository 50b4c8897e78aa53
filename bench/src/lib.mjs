/**
 * Shared helpers of the benchmark suites: timing, percentiles, aligned tables, ratios,
 * temp directories and child processes. Plain ESM, no dependencies.
 *
 * Conventions every suite follows:
 * - times are in milliseconds (floating point, from `process.hrtime`);
 * - a ratio is always "ours ÷ peer" of a throughput (higher is better for us), printed
 *   like `1.23×` by {@link ratio};
 * - every temp directory is made under `os.tmpdir()` by {@link makeTempDir} and removed by
 *   {@link removeTempDir} (or {@link withTempDir}), also when the suite throws.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** Current time in milliseconds, sub-millisecond precision, monotonic. */
export function now() {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** A promise resolving after `ms` milliseconds. */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The `p`-th percentile (0..100) of `samples` by nearest rank; `NaN` for no samples.
 * @example percentile([1, 2, 3, 4], 50) // 2
 */
export function percentile(samples, p) {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Median (p50) of `samples`. */
export const median = (samples) => percentile(samples, 50);

/**
 * Summary of latency samples (ms): count, total, mean, p50, p99, min, max.
 * `opsPerSec` is count ÷ `elapsedMs` (the wall time of the whole run, which may differ
 * from the sum of samples when operations overlap); `elapsedMs` defaults to the sum.
 */
export function summarize(samples, elapsedMs) {
  const total = samples.reduce((a, b) => a + b, 0);
  const elapsed = elapsedMs ?? total;
  return {
    count: samples.length,
    elapsedMs: elapsed,
    mean: samples.length ? total / samples.length : NaN,
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    min: samples.length ? Math.min(...samples) : NaN,
    max: samples.length ? Math.max(...samples) : NaN,
    opsPerSec: elapsed > 0 ? (samples.length * 1000) / elapsed : NaN,
  };
}

/**
 * Time `iterations` sequential, awaited calls of `fn(i)` after `warmup` untimed calls.
 * Returns {@link summarize}'s summary plus the raw `samples` (ms).
 * @example
 * const s = await timeit((i) => writeJson(file, { i }), { iterations: 300, warmup: 10 });
 * console.log(s.opsPerSec, s.p50, s.p99);
 */
export async function timeit(fn, { iterations, warmup = 0 } = {}) {
  for (let i = 0; i < warmup; i++) await fn(-1 - i);
  const samples = new Array(iterations);
  const start = now();
  for (let i = 0; i < iterations; i++) {
    const t0 = now();
    await fn(i);
    samples[i] = now() - t0;
  }
  const elapsed = now() - start;
  return { ...summarize(samples, elapsed), samples };
}

/**
 * `a ÷ b` formatted like `1.23×` (3 significant digits); `—` when either side is missing.
 * By convention `a` is our throughput and `b` the peer's.
 */
export function ratio(a, b) {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '—';
  const r = a / b;
  return `${r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

/** A number with thousands separators and `digits` decimals; `—` for NaN/undefined. */
export function fmtNum(n, digits = 0) {
  if (n === undefined || n === null || !Number.isFinite(n)) return '—';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Milliseconds with a precision that suits the magnitude (`0.123`, `1.23`, `12.3`, `1,234`). */
export function fmtMs(ms) {
  if (ms === undefined || ms === null || !Number.isFinite(ms)) return '—';
  if (ms < 1) return ms.toFixed(3);
  if (ms < 10) return ms.toFixed(2);
  if (ms < 100) return ms.toFixed(1);
  return fmtNum(ms, 0);
}

/** A byte count as `10.0 KB` / `1.00 MB`. */
export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(2)} MB`;
}

/**
 * Format `rows` (objects) as an aligned text table.
 *
 * `columns` lists what to show: a key string, or `{ key, title?, align?: 'left'|'right',
 * format?: (value, row) => string }`. Numbers are right-aligned by default, text left.
 * Rows may be `'-'` to draw a separator line.
 * @example
 * console.log(formatTable([{ lib: 'ours', rate: 812.3 }], ['lib', { key: 'rate', title: 'writes/s', format: (v) => fmtNum(v) }]));
 */
export function formatTable(rows, columns) {
  const cols = columns.map((c) => (typeof c === 'string' ? { key: c } : c));
  const cell = (row, c) => {
    const v = row[c.key];
    if (c.format) return String(c.format(v, row));
    if (v === undefined || v === null) return '';
    if (typeof v === 'number') return fmtNum(v, Number.isInteger(v) ? 0 : 2);
    return String(v);
  };
  const body = rows.map((row) => (row === '-' ? '-' : cols.map((c) => cell(row, c))));
  const titles = cols.map((c) => c.title ?? c.key);
  const widths = titles.map((t, i) =>
    Math.max(t.length, ...body.filter((r) => r !== '-').map((r) => r[i].length)),
  );
  const isRight = (c, i) =>
    c.align ? c.align === 'right' : rows.some((r) => r !== '-' && typeof r[c.key] === 'number') && i > 0;
  const aligns = cols.map((c, i) => isRight(c, i));
  const line = (cells) =>
    cells.map((s, i) => (aligns[i] ? s.padStart(widths[i]) : s.padEnd(widths[i]))).join('  ').trimEnd();
  const rule = widths.map((w) => '─'.repeat(w)).join('  ');
  return [line(titles), rule, ...body.map((r) => (r === '-' ? rule : line(r)))].join('\n');
}

/** Print a titled table (see {@link formatTable}) followed by optional note lines. */
export function printTable(title, rows, columns, notes = []) {
  console.log(`\n${title}\n${formatTable(rows, columns)}`);
  for (const n of notes) console.log(`  ${n}`);
}

/** Create a fresh directory under `os.tmpdir()`; remove it with {@link removeTempDir}. */
export async function makeTempDir(prefix = 'dawn-bench-') {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Remove a directory made by {@link makeTempDir} (recursively; no error if it is gone). */
export async function removeTempDir(dir) {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Run `fn(dir)` with a fresh temp directory that is removed afterwards, whatever happens. */
export async function withTempDir(fn, prefix) {
  const dir = await makeTempDir(prefix);
  try {
    return await fn(dir);
  } finally {
    await removeTempDir(dir);
  }
}

/**
 * Run `count` Node.js child processes of `script` that start their measured work together.
 *
 * Protocol (use {@link childReady} / {@link childReport} in the child): each child prints JSON
 * lines on stdout; when all have printed `{"ready":true}`, the parent writes `go` to every
 * child's stdin and starts the clock. Returns `{ elapsedMs, children: [{ code, signal,
 * messages, stderr }] }` where `elapsedMs` runs from `go` to the last exit and `messages`
 * are the JSON lines each child printed (the ready line excluded).
 *
 * @param args `(index) => string[]`: the arguments of child `index`.
 * @throws when a child exits non-zero, or when they have not all finished within `timeoutMs`.
 */
export async function runChildren(script, { count, args = () => [], timeoutMs = 60_000, env } = {}) {
  const children = [];
  let readyCount = 0;
  let onAllReady;
  const allReady = new Promise((r) => (onAllReady = r));
  let goAt = 0;
  for (let i = 0; i < count; i++) {
    const proc = spawn(process.execPath, [script, ...args(i)], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    const child = { proc, messages: [], stderr: '', code: null, signal: null, endedAt: 0 };
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => (child.stderr += d));
    createInterface({ input: proc.stdout }).on('line', (line) => {
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        return; // not a protocol line
      }
      if (msg && msg.ready === true) {
        if (++readyCount === count) onAllReady();
      } else child.messages.push(msg);
    });
    child.exited = new Promise((resolve) =>
      proc.on('close', (code, signal) => {
        child.code = code;
        child.signal = signal;
        child.endedAt = now();
        if (readyCount < count) onAllReady(); // a child died before ready: stop waiting
        resolve();
      }),
    );
    children.push(child);
  }
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      for (const c of children) c.proc.kill('SIGKILL');
      reject(new Error(`runChildren(${script}): not finished within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    await Promise.race([allReady, timeout]);
    goAt = now();
    for (const c of children) c.proc.stdin.end('go\n');
    await Promise.race([Promise.all(children.map((c) => c.exited)), timeout]);
  } finally {
    clearTimeout(timer);
  }
  const failed = children.find((c) => c.code !== 0);
  if (failed) {
    throw new Error(
      `runChildren(${script}): a child exited with ${failed.code ?? failed.signal}\n${failed.stderr.slice(-2000)}`,
    );
  }
  return {
    elapsedMs: Math.max(...children.map((c) => c.endedAt)) - goAt,
    children: children.map(({ code, signal, messages, stderr }) => ({ code, signal, messages, stderr })),
  };
}

/** In a child of {@link runChildren}: announce readiness and wait for the parent's `go`. */
export async function childReady() {
  process.stdout.write('{"ready":true}\n');
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (line.trim() === 'go') break;
  }
  rl.close();
}

/** In a child of {@link runChildren}: send one JSON message to the parent. */
export function childReport(msg) {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}
