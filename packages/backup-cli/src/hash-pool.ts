import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';

/**
 * Large files are copied and hashed in worker threads: sha256 of a 10 MiB file costs more CPU
 * than copying it, and on the main thread it serialises with everything else. A worker gets
 * the source's already-open file descriptor (fds are process-wide), so it reads exactly the
 * file the main thread opened (with O_NOFOLLOW) and checked.
 */

/** A job for a worker: copy (or only hash) from an open fd. */
export interface PoolJob {
  sfd: number;
  /** Create the copy here (O_EXCL | O_NOFOLLOW); omit to only hash. A `Buffer` arrives in the worker as a Uint8Array. */
  dst?: string | Buffer;
  mode: number;
  /** Unix seconds; set on the copy. */
  atime: number;
  mtime: number;
  fsync: boolean;
  /** Bytes the fstat saw: a short read at or past it ends the file. */
  size: number;
  /** The process umask (fchmod only when it would strip bits). */
  umask: number;
}

export interface PoolResult {
  size: number;
  sha256: string;
}

/**
 * The worker's whole program. Self-contained (stringified into an eval'd worker, so it works
 * the same from `src/` and from the bundled `dist/`): it must not reference anything outside.
 */
function workerMain(): void {
  const fs = process.getBuiltinModule('node:fs');
  const { createHash } = process.getBuiltinModule('node:crypto');
  const { parentPort } = process.getBuiltinModule('node:worker_threads');
  const buf = Buffer.allocUnsafe(256 * 1024);
  const C = fs.constants;
  parentPort!.on('message', (msg: { id: number; job: PoolJob }) => {
    const { id, job } = msg;
    let dfd: number | undefined;
    try {
      if (job.dst !== undefined) dfd = fs.openSync(typeof job.dst === 'string' ? job.dst : Buffer.from(job.dst), C.O_WRONLY | C.O_CREAT | C.O_EXCL | (C.O_NOFOLLOW ?? 0), job.mode);
      const hash = createHash('sha256');
      let total = 0;
      for (;;) {
        const n = fs.readSync(job.sfd, buf, 0, buf.length, null);
        if (n === 0) break;
        hash.update(buf.subarray(0, n));
        if (dfd !== undefined) {
          let off = 0;
          while (off < n) {
            const w = fs.writeSync(dfd, buf, off, n - off);
            if (w <= 0) throw Object.assign(new Error(`write to ${String(job.dst)} made no progress`), { code: 'EIO' });
            off += w;
          }
        }
        total += n;
        if (n < buf.length && total >= job.size) break;
      }
      if (dfd !== undefined) {
        if ((job.mode & ~job.umask) !== job.mode || job.mode > 0o777) fs.fchmodSync(dfd, job.mode);
        fs.futimesSync(dfd, job.atime, job.mtime);
        if (job.fsync) fs.fsyncSync(dfd);
        const closing = dfd;
        dfd = undefined;
        fs.closeSync(closing);
      }
      parentPort!.postMessage({ id, ok: { size: total, sha256: hash.digest('hex') } });
    } catch (err) {
      if (dfd !== undefined) {
        try {
          fs.closeSync(dfd);
        } catch {
          // already failing
        }
      }
      const e = err as NodeJS.ErrnoException;
      parentPort!.postMessage({ id, err: { message: e.message, code: e.code } });
    }
  });
}

const WORKER_SOURCE = `(${workerMain.toString()})();`;

interface Lane {
  worker: Worker;
  busy: boolean;
}

/** A small pool of copy/hash worker threads, started on first use. Call {@link close} when done. */
export class HashPool {
  private readonly lanes: Lane[] = [];
  private readonly queue: { job: PoolJob; resolve: (r: PoolResult) => void; reject: (e: Error) => void }[] = [];
  private readonly pending = new Map<number, { lane: Lane; resolve: (r: PoolResult) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private closed = false;

  constructor(private readonly size = Math.max(1, Math.min(4, availableParallelism()))) {}

  run(job: PoolJob): Promise<PoolResult> {
    if (this.closed) return Promise.reject(new Error('HashPool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.pump();
    });
  }

  private spawn(): Lane {
    // Loaded on first use: most runs (small files only) never start a worker.
    const { Worker: WorkerThread } = process.getBuiltinModule('node:worker_threads');
    const worker = new WorkerThread(WORKER_SOURCE, { eval: true });
    const lane: Lane = { worker, busy: false };
    worker.on('message', (msg: { id: number; ok?: PoolResult; err?: { message: string; code?: string } }) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      lane.busy = false;
      if (msg.ok) p.resolve(msg.ok);
      else p.reject(Object.assign(new Error(msg.err?.message ?? 'copy failed'), { code: msg.err?.code }));
      this.pump();
    });
    worker.on('error', (err) => {
      for (const [id, p] of this.pending) {
        if (p.lane !== lane) continue;
        this.pending.delete(id);
        p.reject(err);
      }
      const i = this.lanes.indexOf(lane);
      if (i >= 0) this.lanes.splice(i, 1);
      this.pump();
    });
    this.lanes.push(lane);
    return lane;
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let lane = this.lanes.find((l) => !l.busy);
      if (!lane && this.lanes.length < this.size) lane = this.spawn();
      if (!lane) return;
      const { job, resolve, reject } = this.queue.shift()!;
      const id = this.nextId++;
      lane.busy = true;
      this.pending.set(id, { lane, resolve, reject });
      lane.worker.postMessage({ id, job });
    }
  }

  /** Stop the workers (after the jobs in flight). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.lanes.splice(0).map((l) => l.worker.terminate()));
  }
}
