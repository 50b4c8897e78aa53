/**
 * @dawn/agent-state side by side with raw @dawn/atomic-json on the same documents.
 *
 * Workloads:
 *  1. `saveState()` of an agent with a ~1 MB state, 100 times, vs `writeJson()` of the very
 *     document saveState writes (agent_id, name, state, revision, updated_at, state_version).
 *     The goal: our overhead over the raw write (the conflict check under the lock, the JSON
 *     check of the state, revision bookkeeping) stays under 10%. A third, context row shows
 *     what a naive conflict check costs: `updateJson()` re-reading and re-parsing the file
 *     on every save.
 *  2. Initializing 1,000 agents from one data root (`new BaseAgent(id).initialize()`), vs
 *     `readJson()` of the same 1,000 state files; sequentially and all at once.
 *
 * Saves alternate ours and raw one by one (A B B A ...), sequential loads chunk by chunk,
 * so a burst of load from elsewhere on the machine spreads over both. Every write is fsynced (the
 * defaults). Temp directories live under os.tmpdir() and are removed at the end, also on error.
 *
 * Run alone: `node src/agent-state.mjs [--quick]`.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readJson, updateJson, writeJson } from '@dawn/atomic-json';
import { BaseAgent, listAgentIds } from '@dawn/agent-state';
import { fmtBytes, fmtMs, fmtNum, makeTempDir, median, now, printTable, ratio, removeTempDir, summarize } from './lib.mjs';

/** A state of about `bytes` bytes once written inside a state file (2-space JSON), shaped like an agent's memory. */
function makeState(bytes) {
  const item = (i) => ({
    id: `m-${i}`,
    text: `observation ${i}: the peer answered within the deadline and the task moved on`,
    score: (i % 97) / 97,
    tags: ['mesh', i % 2 ? 'odd' : 'even', `t${i % 13}`],
    done: i % 3 === 0,
  });
  const build = (n) => ({ round: 1, memory: Array.from({ length: n }, (_, i) => item(i)) });
  const probe = 1000;
  const perItem = JSON.stringify({ state: build(probe) }, null, 2).length / probe;
  return build(Math.max(1, Math.round(bytes / perItem)));
}

/** The document saveState writes for `agent`, built the same way (for the raw baseline). */
function documentOf(agent, revision) {
  return {
    agent_id: agent.agentId,
    name: agent.name,
    state: agent.state,
    revision,
    updated_at: Date.now() / 1000,
    state_version: 1,
  };
}

/** Workload 1. */
async function saves(root, { total, warmup, bytes }) {
  const state = makeState(bytes);
  const agent = new BaseAgent('bench-ours', { dataRoot: root, initialState: state });
  await agent.initialize();
  const rawPath = join(root, 'agents', 'bench-raw', 'state.json');
  const naivePath = join(root, 'agents', 'bench-naive', 'state.json');
  let rawRev = 0;
  let naiveRev = 0;
  const contenders = [
    { id: 'ours', name: 'agent.saveState()', op: () => agent.saveState() },
    { id: 'raw', name: 'writeJson() of the same document', op: () => writeJson(rawPath, documentOf(agent, ++rawRev)) },
    {
      id: 'naive',
      name: 'updateJson() re-reading to check (context)',
      op: () =>
        updateJson(naivePath, (cur) => {
          const onDisk = cur?.revision ?? 0;
          if (onDisk !== naiveRev) throw new Error(`conflict: ${onDisk} != ${naiveRev}`);
          naiveRev = onDisk + 1;
          return documentOf(agent, naiveRev);
        }),
    },
  ];
  for (const c of contenders) for (let i = 0; i < warmup; i++) await c.op();
  const samples = Object.fromEntries(contenders.map((c) => [c.id, []]));
  // Ours and raw alternate save by save (A B B A ...), so load from elsewhere on the machine and
  // the garbage collector hit both alike. The context row runs afterwards: its re-parsing of
  // 1 MB per save makes garbage that would otherwise be collected during the next contender's turn.
  const [ours, raw, naive] = contenders;
  for (let i = 0; i < total; i++) {
    agent.state.round = i; // a real change each time, as an agent would make
    for (const c of i % 2 === 0 ? [ours, raw] : [raw, ours]) {
      const t0 = now();
      await c.op();
      samples[c.id].push(now() - t0);
    }
  }
  for (let i = 0; i < total; i++) {
    agent.state.round = total + i;
    const t0 = now();
    await naive.op();
    samples[naive.id].push(now() - t0);
  }
  const sizeOnDisk = JSON.stringify(documentOf(agent, 1), null, 2).length + 1;
  return { contenders, samples, sizeOnDisk, finalRevision: agent.revision };
}

/** Workload 2: 1,000 agents' files, then initialize them / read them. */
async function loads(root, { agents, reps }) {
  const ids = Array.from({ length: agents }, (_, i) => `agent-${String(i).padStart(4, '0')}`);
  await mkdir(join(root, 'agents'), { recursive: true });
  // Setup (untimed): small Python-like records with our fields, written without fsync.
  for (let i = 0; i < ids.length; i += 50) {
    await Promise.all(
      ids.slice(i, i + 50).map((id, k) =>
        writeJson(
          join(root, 'agents', id, 'state.json'),
          {
            agent_id: id,
            name: `Agent ${i + k}`,
            state: { greeting_count: i + k, last_topic: 'persistence', memory: ['hello', 'world', `#${i + k}`] },
            revision: 3,
            updated_at: Date.now() / 1000,
            state_version: 1,
          },
          { fsync: false },
        ),
      ),
    );
  }
  const paths = ids.map((id) => join(root, 'agents', id, 'state.json'));
  const listed = await listAgentIds(root);
  if (listed.length !== agents) throw new Error(`listAgentIds found ${listed.length} agents, expected ${agents}`);

  // Sequential: ours and raw alternate chunk by chunk (A B B A ...), so load from elsewhere on the
  // machine hits both alike; each rep covers every agent once per side.
  const CHUNK = 50;
  const seq = { 'ours-seq': [], 'raw-seq': [] };
  const oursChunk = async (from) => {
    for (const id of ids.slice(from, from + CHUNK)) await new BaseAgent(id, { dataRoot: root }).initialize();
  };
  const rawChunk = async (from) => {
    for (const p of paths.slice(from, from + CHUNK)) await readJson(p);
  };
  await oursChunk(0); // warm-up
  await rawChunk(0);
  for (let r = 0; r < reps; r++) {
    const t = { 'ours-seq': 0, 'raw-seq': 0 };
    for (let from = 0, k = 0; from < ids.length; from += CHUNK, k++) {
      for (const [key, fn] of k % 2 === 0 ? [['ours-seq', oursChunk], ['raw-seq', rawChunk]] : [['raw-seq', rawChunk], ['ours-seq', oursChunk]]) {
        const t0 = now();
        await fn(from);
        t[key] += now() - t0;
      }
    }
    seq['ours-seq'].push(t['ours-seq']);
    seq['raw-seq'].push(t['raw-seq']);
  }

  const runs = {
    'ours-par': async () => {
      await Promise.all(ids.map((id) => new BaseAgent(id, { dataRoot: root }).initialize()));
    },
    'raw-par': async () => {
      await Promise.all(paths.map((p) => readJson(p)));
    },
    'list': async () => {
      await listAgentIds(root);
    },
  };
  const keys = Object.keys(runs);
  for (const k of keys) await runs[k](); // warm-up
  const times = Object.fromEntries(keys.map((k) => [k, []]));
  for (let r = 0; r < reps; r++) {
    const order = keys.map((_, i) => keys[(i + r) % keys.length]);
    for (const k of order) {
      const t0 = now();
      await runs[k]();
      times[k].push(now() - t0);
    }
  }
  Object.assign(times, seq);
  return Object.fromEntries(Object.keys(times).map((k) => [k, median(times[k])]));
}

/**
 * Run the agent-state benchmark; prints its tables and returns the rows.
 * @param {{ quick?: boolean }} [opts] quick: a smoke run, figures not meaningful.
 */
export async function run(opts = {}) {
  const cfg = {
    saves: opts.quick
      ? { total: 10, warmup: 1, bytes: 1_000_000 }
      : { total: 100, warmup: 3, bytes: 1_000_000 },
    loads: opts.quick ? { agents: 100, reps: 1 } : { agents: 1000, reps: 5 },
  };
  const root = await makeTempDir('dawn-bench-agent-state-');
  const rows = [];
  const t0 = now();
  try {
    console.log(`@dawn/agent-state vs raw @dawn/atomic-json — data root in ${root}`);

    // 1. saves
    const s = await saves(join(root, 'saves'), cfg.saves);
    const sum = Object.fromEntries(Object.entries(s.samples).map(([k, v]) => [k, summarize(v)]));
    const raw = sum.raw;
    const saveRows = s.contenders.map((c) => ({
      workload: `save ${cfg.saves.total} × ${fmtBytes(s.sizeOnDisk)}`,
      library: c.name,
      mean: sum[c.id].mean,
      p50: sum[c.id].p50,
      p99: sum[c.id].p99,
      savesPerSec: sum[c.id].opsPerSec,
      vsRaw: c.id === 'raw' ? '—' : ratio(sum[c.id].opsPerSec, raw.opsPerSec),
      overhead: c.id === 'raw' ? '—' : `${(((sum[c.id].mean - raw.mean) / raw.mean) * 100).toFixed(1)}%`,
      overheadP50: c.id === 'raw' ? '—' : `${(((sum[c.id].p50 - raw.p50) / raw.p50) * 100).toFixed(1)}%`,
    }));
    printTable(
      `1. ${cfg.saves.total} sequential saves of a ${fmtBytes(s.sizeOnDisk)} agent state (fsync on; ours and raw alternating save by save)`,
      saveRows,
      [
        { key: 'library' },
        { key: 'mean', title: 'mean ms', format: fmtMs },
        { key: 'p50', title: 'p50 ms', format: fmtMs },
        { key: 'p99', title: 'p99 ms', format: fmtMs },
        { key: 'savesPerSec', title: 'saves/s', format: (v) => fmtNum(v, 1) },
        { key: 'vsRaw', title: 'ours ÷ raw', align: 'right' },
        { key: 'overhead', title: 'overhead (mean)', align: 'right' },
        { key: 'overheadP50', title: 'overhead (p50)', align: 'right' },
      ],
      [
        'ours ÷ raw: throughput ratio (1.00× = as fast as the raw write). Goal: saveState overhead < 10%.',
        'saveState checks the revision under the lock without re-reading the file when it is provably the one it last',
        'wrote (same inode, size, mtime, ctime); the updateJson row shows the cost of re-reading and parsing instead.',
        `Final revision of the benchmarked agent: ${s.finalRevision}.`,
      ],
    );
    rows.push(...saveRows);

    // 2. loads
    const l = await loads(join(root, 'loads'), cfg.loads);
    const n = cfg.loads.agents;
    const loadRows = [
      { mode: 'sequential', library: 'new BaseAgent(id).initialize()', ms: l['ours-seq'], perSec: (n * 1000) / l['ours-seq'], vsRaw: ratio(l['raw-seq'], l['ours-seq']) },
      { mode: 'sequential', library: 'readJson() of the same files', ms: l['raw-seq'], perSec: (n * 1000) / l['raw-seq'], vsRaw: '—' },
      { mode: 'all at once', library: 'new BaseAgent(id).initialize()', ms: l['ours-par'], perSec: (n * 1000) / l['ours-par'], vsRaw: ratio(l['raw-par'], l['ours-par']) },
      { mode: 'all at once', library: 'readJson() of the same files', ms: l['raw-par'], perSec: (n * 1000) / l['raw-par'], vsRaw: '—' },
      { mode: 'directory scan', library: `listAgentIds() (${n} agents)`, ms: l.list, perSec: (n * 1000) / l.list, vsRaw: '' },
    ].map((r) => ({ workload: `initialize ${n} agents`, ...r }));
    printTable(
      `2. Initializing ${fmtNum(n)} agents from one data root (median of ${cfg.loads.reps} runs, warm page cache)`,
      loadRows,
      [
        { key: 'mode' },
        { key: 'library' },
        { key: 'ms', title: 'total ms', format: fmtMs },
        { key: 'perSec', title: 'agents/s', format: (v) => fmtNum(v) },
        { key: 'vsRaw', title: 'ours ÷ raw', align: 'right' },
      ],
      [
        'initialize() = id check + path + readJson + record checks + deserializeState. Sequential rows alternate',
        'ours and raw in chunks of 50 agents; "all at once" rows run in rounds rotating the order.',
      ],
    );
    rows.push(...loadRows);
    console.log(`\nagent-state benchmark finished in ${fmtMs((now() - t0) / 1000)} s`);
  } finally {
    await removeTempDir(root);
  }
  return rows;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  run({ quick: process.argv.includes('--quick') }).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
