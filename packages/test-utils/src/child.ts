import { spawn, type ChildProcess } from 'node:child_process';

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Every stdout line that parsed as JSON, in order. */
  messages: unknown[];
}

export interface Child {
  readonly proc: ChildProcess;
  /** JSON lines received on stdout so far. */
  readonly messages: unknown[];
  /** Resolves with the first message (already received or future) matching `pred`. */
  waitFor<T = any>(pred: (msg: any) => boolean, timeoutMs?: number): Promise<T>;
  kill(signal?: NodeJS.Signals): void;
  readonly exited: Promise<ChildExit>;
  stdout(): string;
  stderr(): string;
}

export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Extra flags for node itself. */
  nodeArgs?: string[];
}

/**
 * Run `node <script> ...args` as a real child process. The script talks back by printing
 * one JSON document per line on stdout; other lines are kept as text.
 */
export function spawnNode(script: string, args: string[] = [], opts: SpawnOptions = {}): Child {
  const proc = spawn(process.execPath, [...(opts.nodeArgs ?? []), script, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const messages: unknown[] = [];
  const waiters: { pred: (m: any) => boolean; resolve: (m: any) => void }[] = [];
  let out = '';
  let err = '';
  let partial = '';
  proc.stdout!.setEncoding('utf8');
  proc.stderr!.setEncoding('utf8');
  proc.stdout!.on('data', (chunk: string) => {
    out += chunk;
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        continue;
      }
      messages.push(msg);
      for (let i = waiters.length - 1; i >= 0; i--) {
        const w = waiters[i]!;
        if (w.pred(msg)) {
          waiters.splice(i, 1);
          w.resolve(msg);
        }
      }
    }
  });
  proc.stderr!.on('data', (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<ChildExit>((resolve) => {
    proc.on('close', (code, signal) => resolve({ code, signal, stdout: out, stderr: err, messages }));
  });
  return {
    proc,
    messages,
    waitFor(pred, timeoutMs = 30_000) {
      const found = messages.find(pred);
      if (found !== undefined) return Promise.resolve(found as any);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`Timed out after ${timeoutMs} ms waiting for a message from ${script}; stderr: ${err}`));
        }, timeoutMs);
        const done = (m: any) => {
          clearTimeout(timer);
          resolve(m);
        };
        waiters.push({ pred, resolve: done });
        void exited.then((x) =>
          setImmediate(() => {
            const i = waiters.findIndex((w) => w.resolve === done);
            if (i >= 0) {
              waiters.splice(i, 1);
              clearTimeout(timer);
              reject(new Error(`${script} exited (${x.code ?? x.signal}) before the awaited message; stderr: ${x.stderr}`));
            }
          }),
        );
      });
    },
    kill(signal = 'SIGKILL') {
      proc.kill(signal);
    },
    exited,
    stdout: () => out,
    stderr: () => err,
  };
}

/** Run a node script to completion. */
export async function runNode(script: string, args: string[] = [], opts: SpawnOptions & { input?: string } = {}): Promise<ChildExit> {
  const child = spawnNode(script, args, opts);
  child.proc.stdin!.end(opts.input ?? '');
  return child.exited;
}
