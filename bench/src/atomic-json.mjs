/**
 * @dawn/atomic-json side by side with write-file-atomic, atomically, steno and plain
 * fs.promises.writeFile, in one run.
 *
 * Workloads:
 *  1. 300 sequential, awaited writes of a ~10 KB JSON document;
 *  2. 60 sequential writes of a ~1 MB document;
 *  3. 1,000 concurrent writes to one file (all issued without awaiting, then awaited together);
 *  4. 4 processes × N read-modify-write increments of one counter (ours: updateJson; baselines:
 *     write-file-atomic under proper-lockfile, and write-file-atomic with no lock);
 *  5. an uncontended withLock acquire + release.
 *
 * Sequential workloads interleave the libraries in rounds (rotating which goes first), so a
 * burst of load from elsewhere on the machine spreads over all of them instead of one.
 * Every library writes the same bytes: peers get `JSON.stringify(value, null, 2) + '\n'`
 * computed inside the timed call (as a user would), ours gets the value.
 *
 * Run alone: `node src/atomic-json.mjs [--quick]`. The same file is the child process of
 * workload 4 (`--worker`).
 */
import { mkdir, readdir, readFile, writeFile as fsWriteFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { updateJson, withLock, writeJson } from '@dawn/atomic-json';
import { writeFile as atomicallyWriteFile } from 'atomically';
import { Writer as StenoWriter } from 'steno';
import writeFileAtomic from 'write-file-atomic';
import {
  childReady,
  childReport,
  fmtBytes,
  fmtMs,
  fmtNum,
  makeTempDir,
  median,
  now,
  percentile,
  printTable,
  ratio,
  removeTempDir,
  runChildren,
  summarize,
  timeit,
} from './lib.mjs';

const SELF = fileURLToPath(import.meta.url);
// proper-lockfile is what @dawn/atomic-json locks with; the lock baseline uses the very same copy.
const lockfile = createRequire(import.meta.resolve('@dawn/atomic-json'))('proper-lockfile');

/** Installed version of a package (read from its package.json, which `exports` may hide). */
async function versionOf(name) {
  let dir = dirname(fileURLToPath(import.meta.resolve(name)));
  for (let i = 0; i < 5; i++, dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
      if (pkg.name === name) return pkg.version;
    } catch {
      // keep walking up
    }
  }
  return '?';
}

// ─── documents ────────────────────────────────────────────────────────────────

/** A realistic document (a peer table) whose 2-space JSON is `bytes` long or just under. */
function makeDocument(bytes) {
  const doc = { version: 3, seq: 0, updatedAt: '2026-01-01T00:00:00.000Z', peers: [] };
  const peer = (i) => ({
    id: `peer-${i.toString(16).padStart(8, '0')}`,
    host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    port: 7000 + (i % 1000),
    lastSeen: 1767225600000 + i * 1000,
    tags: ['mesh', i % 2 ? 'relay' : 'leaf'],
    score: Math.round(((i * 7919) % 1000) / 10) / 10,
  });
  const size = () => textOf(doc).length;
  // Grow by estimate, measuring the real size each step, then trim to fit.
  for (let len = size(); len < bytes; len = size()) {
    const each = doc.peers.length ? (len - 100) / doc.peers.length : 250;
    const add = Math.max(1, Math.ceil((bytes - len) / each));
    for (let k = 0; k < add; k++) doc.peers.push(peer(doc.peers.length));
  }
  while (doc.peers.length > 0 && size() > bytes) doc.peers.pop();
  return doc;
}

const textOf = (value) => `${JSON.stringify(value, null, 2)}\n`;

// ─── the libraries ───────────────────────────────────────────────────────────

/**
 * Each library: its durability (read from its source in node_modules, see README) and
 * `open(file)` returning `write(value)`: one write of `value` to `file` as that library's user would.
 */
async function libraries() {
  const [wfaV, atomV, stenoV] = await Promise.all([
    versionOf('write-file-atomic'),
    versionOf('atomically'),
    versionOf('steno'),
  ]);
  return [
    {
      id: 'ours',
      name: '@dawn/atomic-json',
      ours: true,
      fileFsync: 'yes',
      dirFsync: 'yes',
      atomic: 'yes',
      xlock: 'yes',
      open: (file) => (value) => writeJson(file, value),
    },
    {
      id: 'ours-nofsync',
      name: '@dawn/atomic-json {fsync:false}',
      ours: true,
      context: true,
      fileFsync: 'no',
      dirFsync: 'no',
      atomic: 'yes',
      xlock: 'yes',
      open: (file) => (value) => writeJson(file, value, { fsync: false }),
    },
    {
      id: 'ours-nolock',
      name: '@dawn/atomic-json {lock:false}',
      ours: true,
      context: true,
      fileFsync: 'yes',
      dirFsync: 'yes',
      atomic: 'yes',
      xlock: 'no',
      open: (file) => (value) => writeJson(file, value, { lock: false }),
    },
    {
      id: 'write-file-atomic',
      name: `write-file-atomic ${wfaV}`,
      fileFsync: 'yes',
      dirFsync: 'no',
      atomic: 'yes',
      xlock: 'no',
      open: (file) => (value) => writeFileAtomic(file, textOf(value)),
    },
    {
      id: 'atomically',
      name: `atomically ${atomV}`,
      fileFsync: 'yes',
      dirFsync: 'no',
      atomic: 'yes',
      xlock: 'no',
      open: (file) => (value) => atomicallyWriteFile(file, textOf(value)),
    },
    {
      id: 'steno',
      name: `steno ${stenoV}`,
      fileFsync: 'no',
      dirFsync: 'no',
      atomic: 'in-process', // fixed temp name `.<file>.tmp`: two processes/Writers collide
      xlock: 'no',
      open: (file) => {
        const w = new StenoWriter(file);
        return (value) => w.write(textOf(value));
      },
    },
    {
      id: 'fs',
      name: 'fs.promises.writeFile',
      fileFsync: 'no',
      dirFsync: 'no',
      atomic: 'no',
      xlock: 'no',
      open: (file) => (value) => fsWriteFile(file, textOf(value)),
    },
  ];
}

// ─── workloads 1 & 2: sequential writes ──────────────────────────────────────

/**
 * `total` awaited writes per library, in `rounds` rounds; each round runs every library's
 * share back to back, the order rotating each round. Returns per-library summaries.
 */
async function sequential(root, libs, { doc, total, rounds, warmup, tag }) {
  const per = Math.ceil(total / rounds);
  const state = [];
  for (const lib of libs) {
    const dir = join(root, `${tag}-${lib.id}`);
    await makeDirIn(dir);
    const write = lib.open(join(dir, 'doc.json'));
    for (let i = 0; i < warmup; i++) await write({ ...doc, seq: -1 - i }); // creates the file
    state.push({ lib, write, samples: [], elapsed: 0, seq: 0 });
  }
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < state.length; k++) {
      const s = state[(k + r) % state.length];
      const res = await timeit((i) => s.write({ ...doc, seq: s.seq + i }), { iterations: per });
      s.seq += per;
      s.samples.push(...res.samples);
      s.elapsed += res.elapsedMs;
    }
  }
  return state.map((s) => ({ lib: s.lib, ...summarize(s.samples, s.elapsed) }));
}

const makeDirIn = (dir) => mkdir(dir, { recursive: true });

// ─── workload 3: 1,000 concurrent writes to one file ─────────────────────────

/** Issue `count` writes without awaiting, then await them all. One repetition. */
async function burstOnce(dir, lib, doc, count) {
  await makeDirIn(dir);
  const file = join(dir, 'doc.json');
  await fsWriteFile(file, textOf({ ...doc, seq: -1 }));
  const write = lib.open(file);
  const values = Array.from({ length: count }, (_, i) => ({ ...doc, seq: i }));
  const latencies = new Array(count);
  let failures = 0;
  let firstError;
  const t0 = now();
  const promises = values.map((v, i) =>
    write(v).then(
      () => {
        latencies[i] = now() - t0;
      },
      (err) => {
        latencies[i] = now() - t0;
        failures++;
        firstError ??= err;
      },
    ),
  );
  const issued = now() - t0; // the caller's synchronous part: serializing and queueing
  await Promise.all(promises);
  const elapsed = now() - t0;
  // What is on disk after every promise settled?
  let final;
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8'));
    final = parsed.seq === count - 1 ? 'last value' : `stale (seq ${parsed.seq})`;
  } catch (err) {
    final = err.code === 'ENOENT' ? 'MISSING' : 'CORRUPT';
  }
  const leftovers = (await readdir(dir)).filter((n) => n !== 'doc.json').length;
  return { elapsed, issued, latencies, failures, firstError, final, leftovers };
}

/**
 * `reps` repetitions per library, interleaved; `slowReps` for the libraries that write every
 * call durably one after the other (write-file-atomic, atomically: seconds per run, and a
 * repetition would not change the conclusion).
 */
async function burst(root, libs, { doc, count, reps, slowReps }) {
  const SLOW = new Set(['write-file-atomic', 'atomically']);
  const runs = new Map(libs.map((l) => [l, []]));
  for (let r = 0; r < reps; r++) {
    for (let k = 0; k < libs.length; k++) {
      const lib = libs[(k + r) % libs.length];
      if (SLOW.has(lib.id) && r >= slowReps) continue;
      runs.get(lib).push(await burstOnce(join(root, `burst-${lib.id}-${r}`), lib, doc, count));
    }
  }
  return libs.map((lib) => {
    const rs = runs.get(lib);
    const elapsed = median(rs.map((x) => x.elapsed));
    const lat = rs.flatMap((x) => x.latencies);
    const failures = rs.reduce((a, x) => a + x.failures, 0);
    const finals = [...new Set(rs.map((x) => x.final))].join(', ');
    const leftovers = Math.max(...rs.map((x) => x.leftovers));
    const err = rs.find((x) => x.firstError)?.firstError;
    return {
      lib,
      elapsedMs: elapsed,
      issueMs: median(rs.map((x) => x.issued)),
      opsPerSec: (count * 1000) / elapsed,
      p50: median(lat),
      p99: percentile(lat, 99),
      failures,
      final: finals,
      leftovers,
      error: err ? `${err.code ?? err.name}: ${err.message}`.slice(0, 120) : undefined,
    };
  });
}

// ─── workload 4: 4 processes contending (child side) ─────────────────────────

const LOCK_BASELINE_RETRIES = { retries: 10_000, factor: 2, minTimeout: 2, maxTimeout: 100, randomize: true };

/** Child process: `n` awaited increments of `count` in `file`, one of three ways. */
async function worker(mode, file, n) {
  const increment = async () => {
    if (mode === 'ours') {
      await updateJson(file, (d) => ({ ...d, count: d.count + 1 }));
    } else if (mode === 'wfa+lockfile') {
      const release = await lockfile.lock(file, { realpath: false, retries: LOCK_BASELINE_RETRIES });
      try {
        const d = JSON.parse(await readFile(file, 'utf8'));
        await writeFileAtomic(file, textOf({ ...d, count: d.count + 1 }));
      } finally {
        await release();
      }
    } else if (mode === 'wfa-nolock') {
      const d = JSON.parse(await readFile(file, 'utf8'));
      await writeFileAtomic(file, textOf({ ...d, count: d.count + 1 }));
    } else throw new Error(`unknown worker mode ${mode}`);
  };
  await childReady();
  const res = await timeit(increment, { iterations: n });
  childReport({ samples: res.samples, elapsedMs: res.elapsedMs });
}

async function contention(root, { perProcess, processes, reps }) {
  const modes = [
    { mode: 'ours', name: '@dawn/atomic-json updateJson', locked: 'yes (built in)' },
    { mode: 'wfa+lockfile', name: 'write-file-atomic + proper-lockfile', locked: 'yes (proper-lockfile)' },
    { mode: 'wfa-nolock', name: 'write-file-atomic, no lock', locked: 'no' },
  ];
  const acc = new Map(modes.map((m) => [m, { samples: [], elapsed: 0, final: 0, expected: 0 }]));
  // Backoff makes one run vary a lot: repeat, interleaving the modes, and add the runs up.
  for (let r = 0; r < reps; r++) {
    for (const m of modes) {
      const dir = join(root, `contend-${m.mode}-${r}`);
      await makeDirIn(dir);
      const file = join(dir, 'counter.json');
      await fsWriteFile(file, textOf({ count: 0, note: 'incremented by every worker' }));
      const run = await runChildren(SELF, {
        count: processes,
        args: () => ['--worker', m.mode, file, String(perProcess)],
        timeoutMs: 120_000,
      });
      const a = acc.get(m);
      a.samples.push(...run.children.flatMap((c) => c.messages.flatMap((msg) => msg.samples ?? [])));
      a.elapsed += run.elapsedMs;
      a.final += JSON.parse(await readFile(file, 'utf8')).count;
      a.expected += processes * perProcess;
    }
  }
  return modes.map((m) => {
    const a = acc.get(m);
    return { ...m, ...summarize(a.samples, a.elapsed), final: a.final, expected: a.expected, lost: a.expected - a.final };
  });
}

// ─── workload 5: uncontended lock + unlock ───────────────────────────────────

async function lockLatency(root, { iterations, warmup }) {
  const dir = join(root, 'lock');
  await makeDirIn(dir);
  const file = join(dir, 'doc.json');
  await fsWriteFile(file, textOf({ count: 0 }));
  const ours = await timeit(() => withLock(file, () => {}), { iterations, warmup });
  const raw = await timeit(
    async () => {
      const release = await lockfile.lock(file, { realpath: false });
      await release();
    },
    { iterations, warmup },
  );
  return [
    { name: '@dawn/atomic-json withLock(file, () => {})', ...ours },
    { name: 'proper-lockfile lock() + release() (what we wrap)', ...raw },
  ];
}

// ─── the suite ───────────────────────────────────────────────────────────────

const durabilityCols = [
  { key: 'fileFsync', title: 'file fsync' },
  { key: 'dirFsync', title: 'dir fsync' },
];

function seqRows(workload, results) {
  const ours = results.find((r) => r.lib.id === 'ours');
  return results.map((r) => ({
    workload,
    library: r.lib.name,
    writesPerSec: r.opsPerSec,
    p50: r.p50,
    p99: r.p99,
    vsPeer: r.lib.ours ? (r.lib.context ? '(context)' : '—') : ratio(ours.opsPerSec, r.opsPerSec),
    fileFsync: r.lib.fileFsync,
    dirFsync: r.lib.dirFsync,
    atomic: r.lib.atomic,
  }));
}

const seqColumns = [
  { key: 'library' },
  { key: 'writesPerSec', title: 'writes/s', format: (v) => fmtNum(v) },
  { key: 'p50', title: 'p50 ms', format: fmtMs },
  { key: 'p99', title: 'p99 ms', format: fmtMs },
  { key: 'vsPeer', title: 'ours ÷ peer', align: 'right' },
  ...durabilityCols,
  { key: 'atomic', title: 'atomic rename' },
];

/**
 * Run the suite; prints its tables and returns `{ env, rows, goals }`.
 * @param {{ quick?: boolean }} opts `quick`: a few iterations only (smoke test).
 */
export async function run(opts = {}) {
  const q = opts.quick ? 0.1 : 1;
  const cfg = {
    seqSmall: { total: Math.max(10, Math.round(300 * q)), rounds: opts.quick ? 2 : 10, warmup: 5, bytes: 10 * 1024 },
    seqLarge: { total: Math.max(4, Math.round(60 * q)), rounds: opts.quick ? 2 : 6, warmup: 2, bytes: 1024 * 1024 },
    burst: { count: opts.quick ? 100 : 1000, reps: opts.quick ? 1 : 5, slowReps: 1 },
    contention: { processes: 4, perProcess: opts.quick ? 10 : 60, reps: opts.quick ? 1 : 2 },
    lock: { iterations: Math.max(20, Math.round(500 * q)), warmup: 20 },
  };
  const libs = await libraries();
  const root = await makeTempDir('dawn-bench-atomic-json-');
  const rows = [];
  const goals = [];
  const t0 = now();
  try {
    console.log(`@dawn/atomic-json vs peers — temp files in ${tmpdir()}`);
    console.log('Ratios are ours ÷ peer throughput: above 1.00× we are faster, below we are slower.');

    // 1 & 2: sequential
    const small = makeDocument(cfg.seqSmall.bytes);
    const smallRes = await sequential(root, libs, { doc: small, tag: 'seq10k', ...cfg.seqSmall });
    const large = makeDocument(cfg.seqLarge.bytes);
    const largeRes = await sequential(root, libs, { doc: large, tag: 'seq1m', ...cfg.seqLarge });
    const smallRows = seqRows(`seq ${cfg.seqSmall.total} × ${fmtBytes(textOf(small).length)}`, smallRes);
    const largeRows = seqRows(`seq ${cfg.seqLarge.total} × ${fmtBytes(textOf(large).length)}`, largeRes);
    printTable(`1. ${cfg.seqSmall.total} sequential awaited writes of a ${fmtBytes(textOf(small).length)} document`, smallRows, seqColumns);
    printTable(`2. ${cfg.seqLarge.total} sequential awaited writes of a ${fmtBytes(textOf(large).length)} document`, largeRows, seqColumns);
    rows.push(...smallRows, ...largeRows);

    // 3: burst
    const burstRes = await burst(root, libs, { doc: small, ...cfg.burst });
    const oursBurst = burstRes.find((r) => r.lib.id === 'ours');
    const burstRows = burstRes.map((r) => ({
      workload: `burst ${cfg.burst.count} concurrent`,
      library: r.lib.name,
      totalMs: r.elapsedMs,
      issueMs: r.issueMs,
      writesPerSec: r.opsPerSec,
      p50: r.p50,
      p99: r.p99,
      vsPeer: r.lib.ours ? (r.lib.context ? '(context)' : '—') : ratio(oursBurst.opsPerSec, r.opsPerSec),
      failed: r.failures,
      final: r.final,
      leftovers: r.leftovers,
      fileFsync: r.lib.fileFsync,
      dirFsync: r.lib.dirFsync,
      error: r.error,
    }));
    printTable(
      `3. ${cfg.burst.count} concurrent writes to one file (issued without awaiting, then Promise.all; median of ${cfg.burst.reps} runs, 1 for write-file-atomic and atomically)`,
      burstRows,
      [
        { key: 'library' },
        { key: 'totalMs', title: 'total ms', format: fmtMs },
        { key: 'issueMs', title: 'issuing ms', format: fmtMs },
        { key: 'writesPerSec', title: 'writes/s', format: (v) => fmtNum(v) },
        { key: 'p50', title: 'p50 ms', format: fmtMs },
        { key: 'p99', title: 'p99 ms', format: fmtMs },
        { key: 'vsPeer', title: 'ours ÷ peer', align: 'right' },
        { key: 'failed', title: 'failed' },
        { key: 'final', title: 'file after' },
        { key: 'leftovers', title: 'stray files' },
        ...durabilityCols,
      ],
      [
        `"issuing ms": the caller's synchronous loop making the ${cfg.burst.count} calls (serializing, queueing), part of "total ms".`,
        'p50/p99: time from issuing the call to its promise settling. "file after": the file once all promises settled',
        '(expected: the last value). "stray files": files other than the target left in its directory (temp files, locks).',
        ...burstRows.filter((r) => r.error).map((r) => `${r.library} failed ${r.failed}×, e.g. ${r.error}`),
      ],
    );
    rows.push(...burstRows);

    // 4: contention
    const contRes = await contention(root, cfg.contention);
    const oursCont = contRes.find((r) => r.mode === 'ours');
    const contRows = contRes.map((r) => ({
      workload: `${cfg.contention.processes} processes × ${cfg.contention.perProcess} increments`,
      library: r.name,
      locked: r.locked,
      totalMs: r.elapsedMs,
      updatesPerSec: r.opsPerSec,
      p50: r.p50,
      p99: r.p99,
      vsPeer: r.mode === 'ours' ? '—' : ratio(oursCont.opsPerSec, r.opsPerSec),
      final: `${r.final}/${r.expected}${r.lost ? ` (LOST ${r.lost})` : ''}`,
    }));
    printTable(
      `4. ${cfg.contention.processes} processes × ${cfg.contention.perProcess} awaited read-modify-write increments of one counter (${cfg.contention.reps} run(s), added up)`,
      contRows,
      [
        { key: 'library' },
        { key: 'locked', title: 'cross-process lock' },
        { key: 'totalMs', title: 'total ms', format: fmtMs },
        { key: 'updatesPerSec', title: 'updates/s', format: (v) => fmtNum(v) },
        { key: 'p50', title: 'p50 ms', format: fmtMs },
        { key: 'p99', title: 'p99 ms', format: fmtMs },
        { key: 'vsPeer', title: 'ours ÷ peer', align: 'right' },
        { key: 'final', title: 'final count' },
      ],
      [
        `proper-lockfile baseline: lock(file, { realpath: false, retries: ${JSON.stringify(LOCK_BASELINE_RETRIES)} }), read, parse, write-file-atomic, release.`,
        'The no-lock row shows what every peer gives without a lock: updates lost (its speed is not comparable).',
      ],
    );
    rows.push(...contRows);

    // 5: lock latency
    const lockRes = await lockLatency(root, cfg.lock);
    const lockRows = lockRes.map((r) => ({
      workload: 'uncontended lock + unlock',
      library: r.name,
      perSec: r.opsPerSec,
      p50: r.p50,
      p99: r.p99,
    }));
    printTable(`5. uncontended lock + unlock, ${cfg.lock.iterations} times`, lockRows, [
      { key: 'library' },
      { key: 'perSec', title: 'per s', format: (v) => fmtNum(v) },
      { key: 'p50', title: 'p50 ms', format: fmtMs },
      { key: 'p99', title: 'p99 ms', format: fmtMs },
    ]);
    rows.push(...lockRows);

    // Goals
    const wfaSmall = smallRes.find((r) => r.lib.id === 'write-file-atomic');
    const wfaLarge = largeRes.find((r) => r.lib.id === 'write-file-atomic');
    const oursSmall = smallRes.find((r) => r.lib.id === 'ours');
    const oursLarge = largeRes.find((r) => r.lib.id === 'ours');
    const stenoBurst = burstRes.find((r) => r.lib.id === 'steno');
    const oursLock = lockRes[0];
    const goal = (name, value, target, pass) => goals.push({ goal: name, measured: value, target, result: pass ? 'PASS' : 'MISS' });
    goal(
      'seq 10 KB, fully durable, vs write-file-atomic',
      ratio(oursSmall.opsPerSec, wfaSmall.opsPerSec),
      '≥ 0.80×',
      oursSmall.opsPerSec >= 0.8 * wfaSmall.opsPerSec,
    );
    goal(
      'seq 1 MB, fully durable, vs write-file-atomic',
      ratio(oursLarge.opsPerSec, wfaLarge.opsPerSec),
      '≥ 0.80×',
      oursLarge.opsPerSec >= 0.8 * wfaLarge.opsPerSec,
    );
    goal(
      `burst of ${cfg.burst.count}: our time ÷ steno's (durable vs not)`,
      `${ratio(oursBurst.elapsedMs, stenoBurst.elapsedMs)} (${fmtMs(oursBurst.elapsedMs)} vs ${fmtMs(stenoBurst.elapsedMs)} ms)`,
      '≤ 3×',
      oursBurst.elapsedMs <= 3 * stenoBurst.elapsedMs && oursBurst.final === 'last value' && oursBurst.failures === 0,
    );
    goal('uncontended withLock median', `${fmtMs(oursLock.p50)} ms (p99 ${fmtMs(oursLock.p99)})`, '< 2 ms', oursLock.p50 < 2);
    goal(
      `${cfg.contention.processes}-process updateJson: no lost update`,
      `${oursCont.final}/${oursCont.expected}`,
      'all',
      oursCont.lost === 0,
    );
    printTable('Goals (issue #2, section 4)', goals, ['goal', 'measured', 'target', 'result'], [
      `suite time ${fmtMs((now() - t0) / 1000)} s; the machine may be shared: rerun before trusting a MISS by a small margin.`,
    ]);
  } finally {
    await removeTempDir(root);
  }
  return {
    config: cfg,
    rows,
    goals,
  };
}

// Standalone (`node src/atomic-json.mjs [--quick]`) and the worker child of workload 4.
if (process.argv[1] && resolve(process.argv[1]) === SELF) {
  const argv = process.argv.slice(2);
  if (argv[0] === '--worker') {
    worker(argv[1], argv[2], Number(argv[3])).then(
      () => process.exit(0),
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
  } else {
    run({ quick: argv.includes('--quick') }).then(
      () => process.exit(0),
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
  }
}
