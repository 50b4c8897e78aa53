/**
 * @dawn/peer-registry side by side with a baseline doing what the Python implementation did:
 * a Map of peers in memory, `getPeerByAddress` by linear scan, and after every mutation the
 * whole registry rewritten (JSON.stringify of every record, temp file, fsync, rename), no
 * coalescing, no lock. The baseline is implemented below with plain `fs`.
 *
 * Workloads:
 *  1. open a 100,000-peer registry (a ~70 MB file in the Python format);
 *  2. `getPeerByAddress` and `getPeer` lookups per second on it;
 *  3. 10,000 `addPeer` calls issued without awaiting, then `flush()` (fresh registry): total
 *     time until durable, and the number of file writes;
 *  4. 1,000 awaited `recordConnectionSuccess` calls on a 10,000-peer registry;
 *  5. the journal (issue 12): a bare fsynced 200-byte append (the physical limit, same run);
 *     awaited `recordConnectionSuccess` p50 at 10,000 and 100,000 peers (one journal append
 *     each); bytes written by 1,000 mutations/s for 10 s on 100,000 peers (journal payload vs
 *     compactions); open of 100,000 peers + a 50,000-record journal vs the compacted file.
 *
 * Goals (issue 3): open < 1.5 s; 10k unawaited adds durable < 2 s in at most a few dozen
 * writes; > 1 M lookups by address per second.
 *
 * Workload 3 runs twice: on a fresh registry, and onto the open 100,000-peer registry.
 *
 * Bounded: the baseline cannot finish workload 3 (10,000 whole-file rewrites of a growing
 * file) in reasonable time, and workload 4 costs one whole-file write per call on both sides;
 * those loops stop at a time budget (3-8 s) and report how far they got and the projected
 * total (marked `~`). Whole suite: about 40 s on an idle 2-core machine. Temp dirs are removed.
 *
 * Run alone: `node src/peer-registry.mjs [--quick]`; only workload 5's open with a journal:
 * `node src/peer-registry.mjs --journal-open [--quick]`.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { crc32 } from 'node:zlib';
import { PeerRegistry } from '@dawn/peer-registry';
import { fmtBytes, fmtMs, fmtNum, makeTempDir, median, now, percentile, printTable, ratio, removeTempDir } from './lib.mjs';

// ------------------------------------------------------------------ data

const T0 = 1795652496.875;

/** A record as the Python implementation wrote it (plus the lists we add), for peer `i`. */
function record(i) {
  const hex = i.toString(16).padStart(8, '0');
  return {
    node_id: hex.repeat(8),
    address: i % 3 === 0 ? `/ip4/10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/tcp/9000` : `ws://10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8000`,
    peer_id: null,
    public_key: i % 2 ? hex.repeat(8) : null,
    connected: i % 5 === 0,
    last_seen: T0 + (i % 600),
    first_seen: T0 - 1000 + (i % 997),
    agents: i % 4 === 0 ? ['first_agent', 'coordinator'] : [],
    tools_count: 0,
    resources_count: 0,
    prompts_count: 0,
    health_score: (i % 11) / 10,
    connection_attempts: 3,
    successful_connections: 2,
    failed_connections: 1,
    metadata: i % 2 ? { region: 'eu-west', version: '0.9.1' } : {},
    tools: [],
    resources: [],
    prompts: [],
  };
}

async function writeRegistryFile(root, n) {
  const file = join(root, 'mesh', 'peer_registry.json');
  await mkdir(join(root, 'mesh'), { recursive: true });
  const peers = new Array(n);
  for (let i = 0; i < n; i++) peers[i] = record(i);
  await writeFile(file, JSON.stringify({ version: 1, peers }, null, 2));
  return { file, ids: peers.map((p) => p.node_id), addresses: peers.map((p) => p.address) };
}

// ------------------------------------------------------------------ the baseline

/** What the Python PeerRegistry did, in JavaScript: whole-file rewrite (+ fsync) after every mutation. */
class PythonLikeRegistry {
  constructor(file) {
    this.file = file;
    this.peers = new Map();
    this.writes = 0;
  }

  static open(file) {
    const reg = new PythonLikeRegistry(file);
    let data;
    try {
      data = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      if (err.code === 'ENOENT') return reg;
      throw err;
    }
    for (const rec of data.peers ?? []) reg.peers.set(rec.node_id, fromDict(rec));
    return reg;
  }

  getPeer(id) {
    return this.peers.get(id);
  }

  getPeerByAddress(address) {
    for (const p of this.peers.values()) if (p.address === address) return p;
    return undefined;
  }

  addPeer(peer) {
    this.peers.set(peer.nodeId, peer);
    this.save();
    return true;
  }

  recordConnectionSuccess(id) {
    const p = this.peers.get(id);
    if (!p) return false;
    p.connectionAttempts += 1;
    p.successfulConnections += 1;
    p.healthScore = Math.min(1, p.healthScore + 0.1);
    p.lastSeen = Date.now() / 1000;
    this.save();
    return true;
  }

  save() {
    const text = JSON.stringify({ version: 1, peers: [...this.peers.values()].map(toDict) }, null, 2);
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    this.writes++;
  }
}

function fromDict(r) {
  return {
    nodeId: r.node_id,
    address: r.address,
    peerId: r.peer_id ?? null,
    publicKey: r.public_key ?? null,
    connected: r.connected ?? false,
    lastSeen: r.last_seen,
    firstSeen: r.first_seen,
    agents: r.agents ?? [],
    tools: r.tools ?? [],
    resources: r.resources ?? [],
    prompts: r.prompts ?? [],
    metadata: r.metadata ?? {},
    healthScore: r.health_score ?? 1,
    connectionAttempts: r.connection_attempts ?? 0,
    successfulConnections: r.successful_connections ?? 0,
    failedConnections: r.failed_connections ?? 0,
  };
}

function toDict(p) {
  return {
    node_id: p.nodeId,
    address: p.address,
    peer_id: p.peerId,
    public_key: p.publicKey,
    connected: p.connected,
    last_seen: p.lastSeen,
    first_seen: p.firstSeen,
    agents: p.agents,
    tools_count: p.tools.length,
    resources_count: p.resources.length,
    prompts_count: p.prompts.length,
    health_score: p.healthScore,
    connection_attempts: p.connectionAttempts,
    successful_connections: p.successfulConnections,
    failed_connections: p.failedConnections,
    metadata: p.metadata,
  };
}

// ------------------------------------------------------------------ helpers

/** A pseudo-random visiting order, so lookups do not walk the table in insertion order. */
function shuffled(list) {
  const out = list.slice();
  let s = 12345;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Lookups per second of `fn(key)` over `keys`, for about `budgetMs` (at least `minOps`). */
function lookupRate(fn, keys, budgetMs, minOps = 1000) {
  let found = 0;
  let ops = 0;
  const start = now();
  let elapsed = 0;
  do {
    for (let k = 0; k < minOps; k++) if (fn(keys[(ops + k) % keys.length]) !== undefined) found++;
    ops += minOps;
    elapsed = now() - start;
  } while (elapsed < budgetMs);
  if (found !== ops) throw new Error(`lookup missed ${ops - found} of ${ops} keys`);
  return (ops * 1000) / elapsed;
}

/**
 * Run `fn(i)` for i = 0..n-1 sequentially (awaited) until done or `budgetMs` is spent.
 * Returns { done, elapsedMs, projectedMs, perOpMs, samples }: when cut short, projectedMs adds
 * the remaining calls at the median cost of the last tenth (costs grow with the file).
 */
async function bounded(n, budgetMs, fn) {
  const samples = [];
  const start = now();
  let done = 0;
  while (done < n && now() - start < budgetMs) {
    const t = now();
    await fn(done);
    samples.push(now() - t);
    done++;
  }
  const elapsedMs = now() - start;
  const tail = median(samples.slice(-Math.max(1, Math.ceil(samples.length / 10))));
  return {
    done,
    elapsedMs,
    projectedMs: done === n ? elapsedMs : elapsedMs + (n - done) * tail,
    perOpMs: median(samples),
    samples,
  };
}

const cut = (r, n) => (r.done < n ? `~${fmtMs(r.projectedMs)}` : fmtMs(r.elapsedMs));
const doneOf = (r, n) => (r.done < n ? `${fmtNum(r.done)} of ${fmtNum(n)}` : fmtNum(n));

// ------------------------------------------------------------------ the suite

/** Run the suite; prints its tables and returns its rows. */
export async function run({ quick = false } = {}) {
  const N_BIG = quick ? 10_000 : 100_000;
  const N_ADDS = quick ? 1_000 : 10_000;
  const N_MID = quick ? 1_000 : 10_000;
  const N_AWAITED = quick ? 50 : 1_000;
  const OPEN_RUNS = quick ? 1 : 3;
  const dir = await makeTempDir('dawn-bench-peers-');
  const rows = [];
  try {
    // 1. open -----------------------------------------------------------------------------
    const big = join(dir, 'big');
    const { file: bigFile, ids, addresses } = await writeRegistryFile(big, N_BIG);
    const size = (await stat(bigFile)).size;
    const oursOpen = [];
    const baseOpen = [];
    const oursCpu = [];
    const baseCpu = [];
    const cpuMs = (u) => (u.user + u.system) / 1000;
    let ours;
    let base;
    for (let r = 0; r < OPEN_RUNS; r++) {
      // alternate which goes first, so a burst of load elsewhere spreads over both
      const runOurs = async () => {
        ours = undefined;
        const c = process.cpuUsage();
        const t = now();
        ours = await PeerRegistry.open({ dataRoot: big });
        oursOpen.push(now() - t);
        oursCpu.push(cpuMs(process.cpuUsage(c)));
      };
      const runBase = () => {
        base = undefined;
        const c = process.cpuUsage();
        const t = now();
        base = PythonLikeRegistry.open(bigFile);
        baseOpen.push(now() - t);
        baseCpu.push(cpuMs(process.cpuUsage(c)));
      };
      if (r % 2 === 0) {
        await runOurs();
        runBase();
      } else {
        runBase();
        await runOurs();
      }
    }
    if (ours.getPeerCount() !== N_BIG || base.peers.size !== N_BIG) throw new Error('open: wrong peer count');
    const openRow = {
      workload: `open ${fmtNum(N_BIG)} peers (${fmtBytes(size)})`,
      oursMs: median(oursOpen),
      baseMs: median(baseOpen),
      oursCpuMs: median(oursCpu),
      baseCpuMs: median(baseCpu),
      note: `CPU time (all threads, incl. parallel GC): ours ${fmtMs(median(oursCpu))} ms, baseline ${fmtMs(median(baseCpu))} ms; wall times of the ${OPEN_RUNS} runs: ours ${oursOpen.map(fmtMs).join(', ')}, baseline ${baseOpen.map(fmtMs).join(', ')}`,
    };
    rows.push(openRow);

    // 2. lookups --------------------------------------------------------------------------
    const addrKeys = shuffled(addresses);
    const idKeys = shuffled(ids);
    const budget = quick ? 100 : 300;
    const rounds = quick ? 1 : 3;
    const byAddr = { ours: 0, base: 0 };
    const byId = { ours: 0, base: 0 };
    const o = ours;
    const b = base;
    for (let r = 0; r < rounds; r++) {
      // interleaved rounds, best of each: JIT warm-up and bursts of load elsewhere hit both sides
      byAddr.ours = Math.max(byAddr.ours, lookupRate((a) => o.getPeerByAddress(a), addrKeys, budget, 10_000));
      byAddr.base = Math.max(byAddr.base, lookupRate((a) => b.getPeerByAddress(a), addrKeys, budget, 20));
      byId.base = Math.max(byId.base, lookupRate((id) => b.getPeer(id), idKeys, budget, 10_000));
      byId.ours = Math.max(byId.ours, lookupRate((id) => o.getPeer(id), idKeys, budget, 10_000));
    }
    rows.push({ workload: `getPeerByAddress (${fmtNum(N_BIG)} peers)`, oursRate: byAddr.ours, baseRate: byAddr.base });
    rows.push({ workload: `getPeer (${fmtNum(N_BIG)} peers)`, oursRate: byId.ours, baseRate: byId.base });

    // 3. unawaited adds -------------------------------------------------------------------
    const addInit = (i) => ({ nodeId: `add-${i}`, address: `ws://10.200.${(i >> 8) & 255}.${i & 255}:8000`, agents: ['a'], metadata: { i } });
    // 3a. onto the big registry: one write of the whole (now bigger) file
    const tBig = now();
    for (let i = 0; i < N_ADDS; i++) void ours.addPeer(addInit(i));
    await ours.flush();
    const oursBigMs = now() - tBig;
    const oursBigWrites = ours.flushCount;
    const baseBigRun = await bounded(N_ADDS, quick ? 1000 : 3000, async (i) => {
      base.addPeer(fromDict({ ...record(200_000 + i), node_id: `add-${i}` }));
    });
    ours = undefined;
    base = undefined;
    const addsRoot = join(dir, 'adds-ours');
    const regAdds = await PeerRegistry.open({ dataRoot: addsRoot });
    const tAdds = now();
    for (let i = 0; i < N_ADDS; i++) void regAdds.addPeer(addInit(i));
    const issuedMs = now() - tAdds;
    await regAdds.flush();
    const oursAddsMs = now() - tAdds;
    const oursWrites = regAdds.flushCount;
    await regAdds.close();
    const check = await PeerRegistry.open({ dataRoot: addsRoot });
    if (check.getPeerCount() !== N_ADDS) throw new Error(`adds: ${check.getPeerCount()} peers on disk, expected ${N_ADDS}`);
    const baseAddsFile = join(dir, 'adds-base.json');
    const baseAdds = PythonLikeRegistry.open(baseAddsFile);
    const baseAddsRun = await bounded(N_ADDS, quick ? 1000 : 5000, async (i) => {
      const r = record(100_000 + i);
      baseAdds.addPeer(fromDict({ ...r, node_id: `add-${i}` }));
    });
    rows.push({
      workload: `${fmtNum(N_ADDS)} unawaited addPeer + flush()`,
      oursMs: oursAddsMs,
      baseMs: baseAddsRun.projectedMs,
      baseCut: baseAddsRun.done < N_ADDS,
      oursWrites,
      baseWrites: N_ADDS,
      note: `ours: ${fmtMs(issuedMs)} ms to issue, ${oursWrites} write(s); baseline: ${doneOf(baseAddsRun, N_ADDS)} adds done in ${fmtMs(baseAddsRun.elapsedMs)} ms`,
    });
    rows.push({
      workload: `${fmtNum(N_ADDS)} unawaited addPeer + flush() onto ${fmtNum(N_BIG)}`,
      oursMs: oursBigMs,
      baseMs: baseBigRun.projectedMs,
      baseCut: baseBigRun.done < N_ADDS,
      oursWrites: oursBigWrites,
      baseWrites: N_ADDS,
      note: `baseline: ${doneOf(baseBigRun, N_ADDS)} adds done in ${fmtMs(baseBigRun.elapsedMs)} ms`,
    });

    // 4. awaited recordConnectionSuccess on a 10k registry ---------------------------------
    const mid = join(dir, 'mid');
    const { file: midFile, ids: midIds } = await writeRegistryFile(mid, N_MID);
    const regMid = await PeerRegistry.open({ dataRoot: mid });
    const budgetAwaited = quick ? 1500 : 8000;
    const oursAwaited = await bounded(N_AWAITED, budgetAwaited, (i) => regMid.recordConnectionSuccess(midIds[i % N_MID]));
    await regMid.close();
    const baseMid = PythonLikeRegistry.open(midFile);
    const baseAwaited = await bounded(N_AWAITED, budgetAwaited, async (i) => {
      baseMid.recordConnectionSuccess(midIds[i % N_MID]);
    });
    rows.push({
      workload: `${fmtNum(N_AWAITED)} awaited recordConnectionSuccess (${fmtNum(N_MID)} peers)`,
      oursMs: oursAwaited.projectedMs,
      baseMs: baseAwaited.projectedMs,
      oursCut: oursAwaited.done < N_AWAITED,
      baseCut: baseAwaited.done < N_AWAITED,
      oursWrites: oursAwaited.done,
      baseWrites: baseAwaited.done,
      note: `ours: ${doneOf(oursAwaited, N_AWAITED)} in ${fmtMs(oursAwaited.elapsedMs)} ms (p50 ${fmtMs(oursAwaited.perOpMs)} ms/call); baseline: ${doneOf(baseAwaited, N_AWAITED)} in ${fmtMs(baseAwaited.elapsedMs)} ms (p50 ${fmtMs(baseAwaited.perOpMs)} ms/call)`,
    });

    // table -------------------------------------------------------------------------------
    const table = rows.map((r) => ({
      workload: r.workload,
      ours: r.oursRate !== undefined ? `${fmtNum(r.oursRate)} /s` : `${r.oursCut ? '~' : ''}${fmtMs(r.oursMs)} ms`,
      baseline: r.baseRate !== undefined ? `${fmtNum(r.baseRate)} /s` : `${r.baseCut ? '~' : ''}${fmtMs(r.baseMs)} ms`,
      writes: r.oursWrites !== undefined ? `${fmtNum(r.oursWrites)} vs ${fmtNum(r.baseWrites)}` : '',
      ratio: r.oursRate !== undefined ? ratio(r.oursRate, r.baseRate) : ratio(1 / r.oursMs, 1 / r.baseMs),
    }));
    printTable(
      `@dawn/peer-registry vs the Python behaviour (whole-file rewrite + fsync per mutation)${quick ? ' — QUICK, figures not meaningful' : ''}`,
      table,
      [
        'workload',
        { key: 'ours', align: 'right' },
        { key: 'baseline', align: 'right' },
        { key: 'writes', title: 'file writes', align: 'right' },
        { key: 'ratio', title: 'ours ÷ baseline (speed)', align: 'right' },
      ],
      [
        ...rows.filter((r) => r.note).map((r) => `${r.workload}: ${r.note}`),
        '~ = stopped at the time budget; the rest projected at the median cost of the last tenth of the calls.',
        `goal open < 1,500 ms: ${openRow.oursMs < 1500 ? 'met' : 'MISSED'} (${fmtMs(openRow.oursMs)} ms, median of ${OPEN_RUNS})`,
        `goal 10k unawaited adds durable < 2,000 ms in a few dozen writes: ${rows[3].oursMs < 2000 && rows[3].oursWrites <= 36 ? 'met' : 'MISSED'} on a fresh registry (${fmtMs(rows[3].oursMs)} ms, ${rows[3].oursWrites} write(s)); ` +
          `${rows[4].oursMs < 2000 ? 'met' : 'missed'} onto ${fmtNum(N_BIG)} peers (${fmtMs(rows[4].oursMs)} ms, ${rows[4].oursWrites} write(s) of the whole file)`,
        `goal > 1 M lookups by address /s: ${byAddr.ours > 1e6 ? 'met' : 'MISSED'}`,
        `machine: ${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(1)).join(' / ')} (wall times grow with load from other processes)`,
      ],
    );
    const journalRows = await journalSuite(dir, { quick, N_BIG, N_MID });
    return [...rows, ...journalRows];
  } finally {
    await removeTempDir(dir);
  }
}

// ------------------------------------------------------------------ the journal (issue 12)

/** `write_bytes` and `wchar` of this process from /proc (Linux), else undefined. */
function procIo() {
  try {
    const text = readFileSync('/proc/self/io', 'utf8');
    const get = (k) => Number(new RegExp(`^${k}: (\\d+)$`, 'm').exec(text)?.[1]);
    return { wchar: get('wchar'), writeBytes: get('write_bytes') };
  } catch {
    return undefined;
  }
}

/** One journal record (the documented format of @dawn/atomic-json). */
function journalRecord(value) {
  const payload = Buffer.from(JSON.stringify(value), 'utf8');
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32LE(payload.length, 0);
  head.writeUInt32LE(crc32(payload) >>> 0, 4);
  return Buffer.concat([head, payload]);
}

/** The records of `ops`, one op each, as a journal after its header holds them. */
function buildJournalBody(ops) {
  return Buffer.concat(ops.map((op) => journalRecord({ ops: [op] })));
}

/**
 * A journal's header for the snapshot `snapshotBytes`, as the library writes it: the snapshot's
 * hash and, with `file`, the file mark of the snapshot file now on disk (a journal written by an
 * older release, or started without a usable mark, has no mark: the open then hashes the snapshot).
 */
async function journalHeader(snapshotBytes, file) {
  const header = { journal: 1, base: createHash('sha256').update(snapshotBytes).digest('hex') };
  if (file !== undefined) {
    const st = await stat(file, { bigint: true });
    header.mark = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  }
  return journalRecord(header);
}

/** p50 of awaited calls of `fn(i)` (after `warmup` calls). */
async function awaitedP50(n, warmup, fn) {
  for (let i = 0; i < warmup; i++) await fn(i);
  const samples = [];
  for (let i = 0; i < n; i++) {
    const t = now();
    await fn(warmup + i);
    samples.push(now() - t);
  }
  return { p50: median(samples), p99: percentile(samples, 99) };
}

/** A full garbage collection now (`gc()` without starting Node with `--expose-gc`). */
function fullGc() {
  setFlagsFromString('--expose-gc');
  runInNewContext('gc')();
}

/**
 * Open 100k peers + a 50,000-record journal vs the compacted file, interleaved. The journal's
 * header is the library's (with the snapshot's file mark); a context row has the header without
 * the mark (a journal of an older release: the snapshot is hashed).
 *
 * Each timed open starts after a full garbage collection. In this process the earlier workloads
 * keep several 100,000-peer documents alive, so a major collection costs 300-500 ms here; without
 * the collection first, whichever open happens to cross the heap's limit pays it for the garbage
 * of the opens and compactions before it, and the ratio measured the order of the opens more
 * than their work.
 */
async function openWithJournal(dir, { quick, N_BIG }) {
  const N_REC = quick ? 5_000 : 50_000;
  const openRoot = join(dir, 'open-journal');
  const { file: openFile, ids: openIds } = await writeRegistryFile(openRoot, N_BIG);
  const snapBytes = readFileSync(openFile);
  const ops = [];
  for (let i = 0; i < N_REC; i++) ops.push({ kind: 'success', id: openIds[(i * 7919) % N_BIG], at: T0 + i / 1000 });
  const body = buildJournalBody(ops);
  const runs = quick ? 1 : 3;
  const withJ = [];
  const withUnmarked = [];
  const without = [];
  const cpu = { withJ: [], withUnmarked: [], without: [] };
  /** Time one open (after a full collection); `journal`: the journal to put beside the snapshot first. */
  const timedOpen = async (journal, into, cpuInto) => {
    if (journal !== undefined) {
      await writeFile(openFile, snapBytes);
      await writeFile(`${openFile}.journal`, Buffer.concat([await journalHeader(snapBytes, journal === 'marked' ? openFile : undefined), body]));
    }
    fullGc();
    const c = process.cpuUsage();
    const t = now();
    const reg = await PeerRegistry.open({ dataRoot: openRoot, ...(journal !== undefined ? { compactMinBytes: Number.MAX_SAFE_INTEGER } : {}) });
    into.push(now() - t);
    const u = process.cpuUsage(c);
    cpuInto.push((u.user + u.system) / 1000);
    if (reg.getPeerCount() !== N_BIG) throw new Error('open-journal: wrong count');
    await reg.close(); // folds the journal (not timed): the next open without one reads the compacted file
  };
  // One untimed open first: the JIT has seen a large open before, as in the whole suite.
  await timedOpen('marked', [], []);
  for (let r = 0; r < runs; r++) {
    await timedOpen('marked', withJ, cpu.withJ);
    await timedOpen(undefined, without, cpu.without);
    await timedOpen('unmarked', withUnmarked, cpu.withUnmarked);
  }
  const journalBytes = body.length + (await journalHeader(snapBytes, openFile)).length;
  return [
    {
      workload: `open ${fmtNum(N_BIG)} peers + a ${fmtNum(N_REC)}-record journal (${fmtBytes(journalBytes)})`,
      openWith: median(withJ),
      openWithout: median(without),
      cpuWith: median(cpu.withJ),
      cpuWithout: median(cpu.without),
      note:
        `open with journal: ${withJ.map(fmtMs).join(', ')} ms; the compacted file: ${without.map(fmtMs).join(', ')} ms (each after a full GC; open() folds the journal into the file in the background afterwards). ` +
        `CPU time (all threads, medians): ${fmtMs(median(cpu.withJ))} ms vs ${fmtMs(median(cpu.without))} ms = ${(median(cpu.withJ) / median(cpu.without)).toFixed(2)}×`,
    },
    {
      workload: `(context) the same, header without the snapshot's mark (older journals: the snapshot is hashed)`,
      openWith: median(withUnmarked),
      openWithout: median(without),
      cpuWith: median(cpu.withUnmarked),
      cpuWithout: median(cpu.without),
      note: `${withUnmarked.map(fmtMs).join(', ')} ms; CPU time ${fmtMs(median(cpu.withUnmarked))} ms = ${(median(cpu.withUnmarked) / median(cpu.without)).toFixed(2)}×`,
    },
  ];
}

const openRowsTable = (rows) =>
  rows.map((r, i) => ({
    workload: r.workload,
    result: `${fmtMs(r.openWith)} ms vs ${fmtMs(r.openWithout)} ms = ${(r.openWith / r.openWithout).toFixed(2)}×`,
    goal: i === 0 ? '< 1.5× opening the compacted file' : '',
    met: i === 0 ? (r.openWith / r.openWithout < 1.5 ? 'met' : 'MISSED') : '',
  }));

async function journalSuite(dir, { quick, N_BIG, N_MID }) {
  const N_CALLS = quick ? 50 : 300;
  const rows = [];
  // a. the physical limit: a bare fsynced 200-byte append, same directory, same run
  const bareFile = join(dir, 'bare.log');
  const bareFd = openSync(bareFile, 'a');
  const chunk = Buffer.alloc(200, 120);
  const bare = await awaitedP50(N_CALLS, 5, async () => {
    writeSync(bareFd, chunk);
    fsyncSync(bareFd);
  });
  closeSync(bareFd);

  // b. awaited recordConnectionSuccess at 10k and 100k peers (one journal append + fsync each)
  const awaitedAt = async (n) => {
    const root = join(dir, `journal-${n}`);
    const { ids } = await writeRegistryFile(root, n);
    const reg = await PeerRegistry.open({ dataRoot: root });
    const r = await awaitedP50(N_CALLS, 5, (i) => reg.recordConnectionSuccess(ids[(i * 7919) % n]));
    await reg.close();
    return r;
  };
  const at10k = await awaitedAt(N_MID);
  const at100k = await awaitedAt(N_BIG);
  rows.push({ workload: 'bare fsynced 200-byte append (the physical limit)', p50: bare.p50, p99: bare.p99 });
  rows.push({ workload: `awaited recordConnectionSuccess, ${fmtNum(N_MID)} peers`, p50: at10k.p50, p99: at10k.p99, vsBare: at10k.p50 / bare.p50 });
  rows.push({ workload: `awaited recordConnectionSuccess, ${fmtNum(N_BIG)} peers`, p50: at100k.p50, p99: at100k.p99, vsBare: at100k.p50 / bare.p50 });

  // c. a trickle of 1,000 mutations/s for 10 s on 100k peers: bytes written, compactions included
  const trickleRoot = join(dir, 'trickle');
  const { file: trickleFile, ids: trickleIds } = await writeRegistryFile(trickleRoot, N_BIG);
  const snapSize = (await stat(trickleFile)).size;
  const reg = await PeerRegistry.open({ dataRoot: trickleRoot });
  const seconds = quick ? 1 : 10;
  const io0 = procIo();
  const t0 = now();
  let issued = 0;
  while (now() - t0 < seconds * 1000) {
    const due = Math.floor(now() - t0) - issued; // 1 per ms
    for (let k = 0; k < due; k++) void reg.recordConnectionSuccess(trickleIds[(issued++ * 7919) % N_BIG]);
    await new Promise((r) => setTimeout(r, 10));
  }
  await reg.flush();
  const io1 = procIo();
  const flushes = reg.flushCount;
  const written = reg.bytesWritten;
  const compactionsDuring = reg.compactionCount;
  await reg.close(); // the final fold (a registry closed is one plain file)
  const closing = reg.bytesWritten.snapshot - written.snapshot;
  rows.push({
    workload: `${fmtNum(issued)} mutations in ${seconds} s (1,000/s) on ${fmtNum(N_BIG)} peers: bytes written`,
    bytes: written.journal + written.snapshot,
    payload: written.journal,
    note:
      `${flushes} appends, journal ${fmtBytes(written.journal)}, ${compactionsDuring} compaction(s) during the run (${fmtBytes(written.snapshot)}); ` +
      `close() then folds once more (${fmtBytes(closing)}). Steady state with compactRatio 0.5: each fold of a journal J = 0.5 × file writes 2 J, so ≤ 3× the payload. ` +
      `Whole-file rewrite per batch (the previous release) would have written ${fmtBytes(flushes * snapSize)} (${flushes} × ${fmtBytes(snapSize)}).` +
      (io0 && io1 ? ` /proc/self/io during the run: wchar +${fmtBytes(io1.wchar - io0.wchar)}, write_bytes +${fmtBytes(io1.writeBytes - io0.writeBytes)}.` : ''),
  });

  // d. open 100k peers + a 50,000-record journal vs the compacted file
  rows.push(...(await openWithJournal(dir, { quick, N_BIG })));

  const table = [
    { workload: rows[0].workload, result: `p50 ${fmtMs(rows[0].p50)} ms (p99 ${fmtMs(rows[0].p99)})`, goal: '', met: '' },
    ...[rows[1], rows[2]].map((r) => ({
      workload: r.workload,
      result: `p50 ${fmtMs(r.p50)} ms (p99 ${fmtMs(r.p99)}) = ${r.vsBare.toFixed(2)}× the bare append`,
      goal: '≤ 3× the bare append',
      met: r.vsBare <= 3 ? 'met' : 'MISSED',
    })),
    {
      workload: rows[3].workload,
      result: `${fmtBytes(rows[3].bytes)} = ${(rows[3].bytes / rows[3].payload).toFixed(2)}× the journal payload`,
      goal: '≤ 10× the payload',
      met: rows[3].bytes / rows[3].payload <= 10 ? 'met' : 'MISSED',
    },
    ...openRowsTable(rows.slice(4, 6)),
  ];
  printTable(
    `@dawn/peer-registry journal: durable mutations in O(change)${quick ? ' — QUICK, figures not meaningful' : ''}`,
    table,
    ['workload', { key: 'result', align: 'right' }, 'goal', 'met'],
    [...rows.filter((r) => r.note).map((r) => `${r.workload}: ${r.note}`), `machine: ${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(1)).join(' / ')}`],
  );
  return rows;
}

/** Only the open with a journal (`--journal-open`): about 25 s instead of the whole suite. */
export async function runJournalOpen({ quick = false } = {}) {
  const dir = await makeTempDir('dawn-bench-peers-open-');
  try {
    const rows = await openWithJournal(dir, { quick, N_BIG: quick ? 10_000 : 100_000 });
    printTable(
      `@dawn/peer-registry: open with a journal${quick ? ' — QUICK, figures not meaningful' : ''}`,
      openRowsTable(rows),
      ['workload', { key: 'result', align: 'right' }, 'goal', 'met'],
      [...rows.map((r) => `${r.workload}: ${r.note}`), `machine: ${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(1)).join(' / ')}`],
    );
    return rows;
  } finally {
    await removeTempDir(dir);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--journal-open')) await runJournalOpen({ quick: process.argv.includes('--quick') });
  else await run({ quick: process.argv.includes('--quick') });
}
