import { execFileSync, spawn } from 'node:child_process';
import { cp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyFixture, makeTempDir, useTempDir } from '@dawn/test-utils';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import { createBackup, listBackups, pruneBackups } from '../src/index.js';
import { BIN, STACK, toFormat1 } from './helpers.js';

/**
 * B13: one bad backup never blocks the others. Whatever a backup's `.backup_metadata.json`
 * holds (wrong types anywhere, deep nesting, huge values, not an object, not JSON, not a
 * regular file), `list`, `show`, `verify` and `prune --dry-run` never end in an internal error
 * or a stack trace, never hang, still list the good backups, and exit as the README says.
 */

const tempDir = useTempDir('dawn-backup-fuzz-');

/** Run the CLI in this process with captured output. */
async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: { NO_COLOR: '1', PROJECT_DAWN_DATA_ROOT: '' },
  });
  return { code, stdout, stderr };
}

/** Run the real binary; a run that does not end within `ms` is killed and reported as hung. */
function runBin(args: string[], ms = 20_000): Promise<{ code: number | null; stdout: string; stderr: string; hung: boolean }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, NO_COLOR: '1', PROJECT_DAWN_DATA_ROOT: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let hung = false;
    p.stdout.on('data', (c) => (stdout += c));
    p.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => {
      hung = true;
      p.kill('SIGKILL');
    }, ms);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, hung });
    });
  });
}

const noInternalError = (r: { stdout: string; stderr: string }) => {
  expect(r.stderr).not.toMatch(STACK);
  expect(r.stderr).not.toMatch(/looks like a bug/);
  expect(r.stderr).not.toMatch(/"INTERNAL"/);
  expect(r.stdout).not.toMatch(/"INTERNAL"/);
};

const DEEP = 100_000;
const HUGE_STRING = 'x'.repeat(2 * 1024 * 1024);

/** Values that break naive code: deep nesting, huge numbers and strings, wrong types. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue() },
  {
    weight: 3,
    arbitrary: fc.constantFrom<unknown>(
      null,
      true,
      0,
      -1,
      1.5,
      1e308,
      -1e308,
      2 ** 53 + 2,
      '',
      'not a time',
      '\u0000',
      [],
      {},
      [1, 'a', null],
      { peer_count: 'many' },
      'DEEP_ARRAY',
      'DEEP_OBJECT',
      'HUGE_STRING',
      'INFINITY',
    ),
  },
);

const KNOWN_FIELDS = [
  'backup_name',
  'timestamp',
  'source_dir',
  'backup_dir',
  'format',
  'format_version',
  'tool',
  'tool_version',
  'hostname',
  'created_at',
  'excludes',
  'file_count',
  'dir_count',
  'symlink_count',
  'total_bytes',
  'root_mode',
  'durability',
  'summary',
  'manifest',
  'manifest_file',
  'name_escape',
] as const;

type Mutation =
  | { kind: 'set'; field: string; value: unknown }
  | { kind: 'delete'; field: string }
  | { kind: 'summary'; field: 'peer_count' | 'agent_ids' | 'notes'; value: unknown }
  | { kind: 'entry'; index: number; field: string; value: unknown }
  | { kind: 'unknown-field'; value: unknown };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), field: fc.constantFrom(...KNOWN_FIELDS), value: hostileValue }),
  fc.record({ kind: fc.constant('delete' as const), field: fc.constantFrom(...KNOWN_FIELDS) }),
  fc.record({ kind: fc.constant('summary' as const), field: fc.constantFrom('peer_count' as const, 'agent_ids' as const, 'notes' as const), value: hostileValue }),
  fc.record({ kind: fc.constant('entry' as const), index: fc.nat(3), field: fc.constantFrom('path', 'type', 'size', 'mode', 'sha256', 'target', 'mtime', 'extra'), value: hostileValue }),
  fc.record({ kind: fc.constant('unknown-field' as const), value: hostileValue }),
);

/** What the bad backup's metadata file holds: a mutated valid document, any JSON, or any text. */
const document = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('mutated' as const), mutations: fc.array(mutation, { minLength: 1, maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('json' as const), value: hostileValue }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('text' as const), text: fc.string({ unit: 'binary', maxLength: 200 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncated' as const), at: fc.nat() }) },
);

/**
 * The text of a JSON document. The markers `DEEP_ARRAY`, `DEEP_OBJECT`, `HUGE_STRING`,
 * `INFINITY` (kept as strings so fast-check prints and shrinks cases cheaply) become values
 * nested 100,000 deep, a 2 MiB string, and `1e400` (parsed as Infinity).
 */
function toText(value: unknown): string {
  const markers: [string, string][] = [];
  const mark = (v: unknown): unknown => {
    if (v === 'DEEP_ARRAY' || v === 'DEEP_OBJECT' || v === 'INFINITY') {
      const key = `"@@MARK${markers.length}@@"`;
      markers.push([key, v === 'DEEP_ARRAY' ? '['.repeat(DEEP) + ']'.repeat(DEEP) : v === 'DEEP_OBJECT' ? '{"a":'.repeat(DEEP) + '1' + '}'.repeat(DEEP) : '1e400']);
      return key.slice(1, -1);
    }
    if (v === 'HUGE_STRING') return HUGE_STRING;
    if (Array.isArray(v)) return v.map(mark);
    if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mark(x)]));
    return v;
  };
  let text = JSON.stringify(mark(value), null, 2) ?? 'null';
  for (const [key, raw] of markers) text = text.replace(key, raw);
  return text;
}

function metadataText(base: Record<string, any>, doc: any): string {
  if (doc.kind === 'json') return toText(doc.value);
  if (doc.kind === 'text') return doc.text;
  const full = JSON.stringify(base, null, 2);
  if (doc.kind === 'truncated') return full.slice(0, doc.at % full.length);
  const meta = structuredClone(base);
  for (const m of doc.mutations as Mutation[]) {
    if (m.kind === 'set') meta[m.field] = m.value;
    else if (m.kind === 'delete') delete meta[m.field];
    else if (m.kind === 'summary') {
      if (typeof meta.summary === 'object' && meta.summary !== null && !Array.isArray(meta.summary)) meta.summary[m.field] = m.value;
    } else if (m.kind === 'entry') {
      if (Array.isArray(meta.manifest) && meta.manifest.length > 0) {
        const e = meta.manifest[m.index % meta.manifest.length];
        if (typeof e === 'object' && e !== null && !Array.isArray(e)) e[m.field] = m.value;
      }
    } else meta.unknown_field = m.value;
  }
  return toText(meta);
}

describe('malformed metadata of one backup (fuzzed): list, show, verify, prune --dry-run', () => {
  let backups: string;
  let bad: string;
  let base: Record<string, any>;
  let root: string;

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });
  beforeAll(async () => {
    root = await makeTempDir('dawn-backup-fuzz-');
    const src = join(root, 'src');
    await mkdir(join(src, 'agents/a1'), { recursive: true });
    await writeFile(join(src, 'agents/a1/state.json'), '{"agent_id":"a1","name":"a1","state":{}}');
    await mkdir(join(src, 'mesh'));
    await writeFile(join(src, 'mesh/peer_registry.json'), '{"version":1,"peers":[]}');
    backups = join(root, 'backups');
    await createBackup({ source: src, backupDir: backups, name: 'good_old', now: new Date(Date.now() - 3_600_000), fsync: false });
    await createBackup({ source: src, backupDir: backups, name: 'good_new', fsync: false });
    // a Python backup (no manifest, no summary: read from its files when listed)
    await copyFixture('backups/dawn_backup_20261125_101500', join(backups, 'good_python'));
    bad = join(backups, 'bad');
    await cp(join(backups, 'good_new'), bad, { recursive: true });
    // The bad one as the previous release wrote it (manifest inline, so the fuzz reaches every entry);
    // a separate manifest file (format 2) is fuzzed by its reference: `manifest_file`.
    toFormat1(bad);
    base = JSON.parse(await readFile(join(bad, '.backup_metadata.json'), 'utf8'));
    base.backup_name = 'bad';
    base.backup_dir = bad;
    base.source_dir = join(root, 'other-source'); // its own source: prune never weighs it against the good ones
  });

  it('never an internal error, never a hang; the good backups are always listed', async () => {
    const good = ['good_new', 'good_old', 'good_python'];
    await fc.assert(
      fc.asyncProperty(document, async (doc) => {
        await writeFile(join(bad, '.backup_metadata.json'), metadataText(base, doc));

        const listed = await listBackups({ backupDir: backups });
        expect(listed.backups.map((b) => b.name).filter((n) => n !== 'bad')).toEqual(good);
        const badIsValid = listed.backups.some((b) => b.name === 'bad');
        expect(listed.damaged.map((d) => d.name)).toEqual(badIsValid ? [] : ['bad']);
        for (const d of listed.damaged) expect(d.code).toBe('BACKUP_INVALID');

        const lj = await run(['list', '--json', '--backup-dir', backups]);
        noInternalError(lj);
        expect(lj.code).toBe(0);
        const doc1 = JSON.parse(lj.stdout);
        expect(doc1.backups.map((b: any) => b.name).filter((n: string) => n !== 'bad')).toEqual(good);
        expect(doc1.damaged.map((d: any) => d.name)).toEqual(badIsValid ? [] : ['bad']);

        const lh = await run(['list', '--backup-dir', backups]);
        noInternalError(lh);
        expect(lh.code).toBe(0);
        for (const n of good) expect(lh.stdout).toContain(n);
        if (!badIsValid) expect(lh.stdout).toMatch(/DAMAGED[\s\S]*bad: /);

        const lv = await run(['list', '--verify', '--json', '--backup-dir', backups]);
        noInternalError(lv);
        expect([0, 3]).toContain(lv.code);
        if (!badIsValid) expect(lv.code).toBe(3); // README: list --verify exits 3 when a backup's metadata is damaged
        const verified = JSON.parse(lv.stdout).backups.filter((b: any) => b.name !== 'bad');
        expect(verified.map((b: any) => b.verification.status)).toEqual(['ok', 'ok', 'unverifiable']);

        for (const args of [['show', 'bad', '--files'], ['show', 'bad', '--files', '--json'], ['verify', 'bad'], ['verify', 'bad', '--json']]) {
          const r = await run([...args, '--backup-dir', backups]);
          noInternalError(r);
          // 0: usable (and intact, for verify); 3: damaged or unusable metadata (README: exit codes)
          expect([0, 3]).toContain(r.code);
          if (!badIsValid) {
            expect(r.code).toBe(3);
            // unusable metadata: BACKUP_INVALID; an unsafe manifest: verify reports it as damaged
            if (args.includes('--json') && r.stderr !== '') expect(JSON.parse(r.stderr).error.code).toBe('BACKUP_INVALID');
            else if (args.includes('--json')) expect(JSON.parse(r.stdout).status).toBe('damaged');
          }
          if (args.includes('--json') && r.code === 0) JSON.parse(r.stdout);
        }

        const pr = await run(['prune', '--keep-last', '1', '--dry-run', '--json', '--backup-dir', backups]);
        noInternalError(pr);
        expect(pr.code).toBe(0);
        const plan = JSON.parse(pr.stdout);
        const removed = plan.removed.map((d: any) => d.name);
        if (!badIsValid) {
          expect(plan.damaged.map((d: any) => d.name)).toEqual(['bad']);
          expect(removed).not.toContain('bad');
        }
        expect(removed).not.toContain('good_new');
        expect(removed).not.toContain('good_python');
      }),
      { numRuns: 150 },
    );
  });

  it('explicit cases: deep nesting, huge values, wrong root types, each field of the wrong type', async () => {
    const cases: string[] = [
      toText('DEEP_ARRAY'),
      toText({ ...base, unknown: 'DEEP_OBJECT' }),
      toText({ ...base, summary: 'DEEP_OBJECT' }),
      toText({ ...base, manifest: [{ ...base.manifest[0], extra: 'DEEP_ARRAY' }, ...base.manifest.slice(1)] }),
      toText({ ...base, created_at: 'INFINITY' }),
      toText({ ...base, hostname: 'HUGE_STRING' }),
      toText({ ...base, manifest: base.manifest.map((e: any) => ({ ...e, mode: 0 })) }), // numeric modes are accepted
      toText({ ...base, manifest: [{ ...base.manifest[0], path: 'DEEP_ARRAY' }, ...base.manifest.slice(1)] }),
      toText({ ...base, manifest: [{ ...base.manifest[0], type: 'DEEP_OBJECT' }, ...base.manifest.slice(1)] }),
      '[]',
      '"a string"',
      '42',
      'null',
      '',
      '\u0000\u0001\u0002',
      ...KNOWN_FIELDS.map((f) => JSON.stringify({ ...base, [f]: { wrong: [f] } })),
    ];
    for (const text of cases) {
      await writeFile(join(bad, '.backup_metadata.json'), text);
      const r = await run(['list', '--json', '--backup-dir', backups]);
      noInternalError(r);
      const l = JSON.parse(r.stdout);
      expect(l.backups.map((b: any) => b.name).filter((n: string) => n !== 'bad')).toEqual(['good_new', 'good_old', 'good_python']);
      const s = await run(['show', 'bad', '--files', '--json', '--backup-dir', backups]);
      noInternalError(s);
      if (l.damaged.length > 0) expect(s.code).toBe(3);
      else expect(s.code, `${text.slice(0, 300)} ${s.stderr}`).toBe(0);
    }
  });
});

describe('a metadata file or registry that is not a regular file: nothing hangs, nothing is followed', () => {
  const isRoot = process.getuid?.() === 0;

  async function setup() {
    const root = await tempDir();
    const src = join(root, 'src');
    await mkdir(join(src, 'mesh'), { recursive: true });
    await writeFile(join(src, 'mesh/peer_registry.json'), '{"version":1,"peers":[]}');
    const backups = join(root, 'backups');
    await createBackup({ source: src, backupDir: backups, name: 'good', fsync: false });
    await cp(join(backups, 'good'), join(backups, 'bad'), { recursive: true });
    return { root, backups, meta: join(backups, 'bad', '.backup_metadata.json') };
  }

  const KINDS: [string, (meta: string, root: string) => Promise<void>][] = [
    ['a FIFO', async (meta) => void execFileSync('mkfifo', [meta])],
    ['a symlink to a FIFO', async (meta, root) => {
      execFileSync('mkfifo', [join(root, 'fifo')]);
      await symlink(join(root, 'fifo'), meta);
    }],
    ['a symlink to /dev/zero', async (meta) => symlink('/dev/zero', meta)],
    ['a symlink to a valid metadata file elsewhere', async (meta, root) => {
      await cp(meta.replace('/bad/', '/good/'), join(root, 'elsewhere.json'));
      await symlink(join(root, 'elsewhere.json'), meta);
    }],
    ['a directory', async (meta) => mkdir(meta)],
    ['missing', async () => {}],
    ...(isRoot ? ([['a character device', async (meta: string) => void execFileSync('mknod', [meta, 'c', '1', '5'])]] as [string, (m: string) => Promise<void>][]) : []),
  ];

  it.each(KINDS)('metadata file is %s: list, show, verify, prune --dry-run end at once (real processes)', async (_, make) => {
    const { root, backups, meta } = await setup();
    await rm(meta);
    await make(meta, root);
    const l = await runBin(['list', '--json', '--backup-dir', backups]);
    expect(l.hung).toBe(false);
    noInternalError(l);
    expect(l.code).toBe(0);
    const doc = JSON.parse(l.stdout);
    expect(doc.backups.map((b: any) => b.name)).toEqual(['good']);
    expect(doc.damaged).toEqual([expect.objectContaining({ name: 'bad', code: 'BACKUP_INVALID' })]);
    for (const args of [['show', 'bad'], ['verify', 'bad'], ['restore', 'bad', '--target', join(root, 'target')]]) {
      const r = await runBin([...args, '--backup-dir', backups]);
      expect(r.hung).toBe(false);
      noInternalError(r);
      expect(r.code).toBe(3);
    }
    const p = await runBin(['prune', '--keep-last', '1', '--dry-run', '--json', '--backup-dir', backups]);
    expect(p.hung).toBe(false);
    expect(p.code).toBe(0);
    expect(JSON.parse(p.stdout).damaged.map((d: any) => d.name)).toEqual(['bad']);
  });

  it.each([
    ['a FIFO', async (reg: string) => void execFileSync('mkfifo', [reg])],
    ['a symlink to a FIFO', async (reg: string, root: string) => {
      execFileSync('mkfifo', [join(root, 'fifo')]);
      await symlink(join(root, 'fifo'), reg);
    }],
    ['a symlink to /dev/zero', async (reg: string) => symlink('/dev/zero', reg)],
  ] as [string, (reg: string, root: string) => Promise<void>][])(
    'a Python backup whose registry is %s: list and show end at once, peers unknown with a note',
    async (_, make) => {
      const root = await tempDir();
      const backups = join(root, 'backups');
      const py = join(backups, 'py');
      await copyFixture('backups/dawn_backup_20261125_101500', py);
      await mkdir(join(py, 'mesh'), { recursive: true });
      await rm(join(py, 'mesh/peer_registry.json'), { force: true });
      await make(join(py, 'mesh/peer_registry.json'), root);
      const l = await runBin(['list', '--json', '--backup-dir', backups]);
      expect(l.hung).toBe(false);
      noInternalError(l);
      expect(l.code).toBe(0);
      const b = JSON.parse(l.stdout).backups[0];
      expect(b.name).toBe('py');
      expect(b.summary.peerCount).toBeNull();
      expect(b.summary.notes.join(' ')).toMatch(/not a regular file|symlink/);
      const s = await runBin(['show', 'py', '--backup-dir', backups]);
      expect(s.hung).toBe(false);
      expect(s.code).toBe(0);
      const p = await runBin(['prune', '--keep-last', '1', '--dry-run', '--backup-dir', backups]);
      expect(p.hung).toBe(false);
      expect(p.code).toBe(0);
    },
  );
});
