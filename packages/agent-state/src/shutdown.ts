/**
 * Opt-in process shutdown hooks shared by every agent of the process: one listener per signal,
 * which saves all registered agents, then lets the process end the way the signal would have
 * ended it. Nothing is installed until an agent asks.
 */

/**
 * A signal name such as `'SIGINT'` or `'SIGTERM'` (Node's `NodeJS.Signals`, declared here so the
 * public types need no `@types/node`).
 */
export type SignalName = `SIG${string}`;

/** Options of `BaseAgent.installShutdownHooks()`. */
export interface ShutdownHookOptions {
  /**
   * Signals on which the agent is stopped (its state saved) before the process exits.
   * @default ['SIGINT', 'SIGTERM']
   */
  signals?: SignalName[];
  /**
   * Also save on `beforeExit` (the event loop ran dry, the process is about to end normally).
   * @default true
   */
  beforeExit?: boolean;
}

/** What the hooks need from an agent. */
export interface ShutdownParticipant {
  /** Save (stop) if there is something to save; rejects when saving failed. */
  shutdown(): Promise<void>;
  /** For error messages. */
  readonly label: string;
}

type Event = SignalName | 'beforeExit';

const members = new Map<ShutdownParticipant, Set<Event>>();
const listeners = new Map<Event, (...args: unknown[]) => void>();
const running = new Set<Event>();

function participantsOf(event: Event): ShutdownParticipant[] {
  return [...members].filter(([, events]) => events.has(event)).map(([p]) => p);
}

async function saveAll(event: Event): Promise<boolean> {
  const parts = participantsOf(event);
  const results = await Promise.allSettled(parts.map((p) => p.shutdown()));
  let ok = true;
  results.forEach((r, i) => {
    if (r.status === 'rejected') {
      ok = false;
      const msg = r.reason instanceof Error ? r.reason.message : String(r.reason);
      process.stderr.write(`@dawn/agent-state: could not save ${parts[i]!.label} on ${event}: ${msg}\n`);
    }
  });
  return ok;
}

function removeListener(event: Event): void {
  const l = listeners.get(event);
  if (l) process.removeListener(event, l);
  listeners.delete(event);
}

function onSignal(signal: SignalName): void {
  if (running.has(signal)) {
    // The same signal again while saving: the user insists; stop waiting.
    for (const ev of [...listeners.keys()]) removeListener(ev);
    process.kill(process.pid, signal);
    return;
  }
  running.add(signal);
  void saveAll(signal).then((ok) => {
    running.delete(signal);
    // The process is going away: drop every hook of ours, then end it as the signal would have.
    members.clear();
    for (const ev of [...listeners.keys()]) removeListener(ev);
    if (!ok) process.exit(1);
    // Raise the signal again, now without us. With no other listener, the default action ends
    // the process (its parent sees the signal). Another listener (e.g. signal-exit, which
    // proper-lockfile installs and which stands back while other listeners exist) gets it again
    // and decides.
    process.kill(process.pid, signal);
  });
}

function onBeforeExit(): void {
  if (running.has('beforeExit')) return;
  running.add('beforeExit');
  void saveAll('beforeExit').then((ok) => {
    running.delete('beforeExit');
    if (!ok) process.exitCode = 1;
  });
}

function sync(): void {
  const wanted = new Set<Event>();
  for (const events of members.values()) for (const e of events) wanted.add(e);
  for (const ev of [...listeners.keys()]) if (!wanted.has(ev) && !running.has(ev)) removeListener(ev);
  for (const ev of wanted) {
    if (listeners.has(ev)) continue;
    const l = ev === 'beforeExit' ? onBeforeExit : () => onSignal(ev);
    listeners.set(ev, l);
    process.on(ev, l);
  }
}

/** Register a participant; returns the function that unregisters it. */
export function registerShutdown(p: ShutdownParticipant, opts: ShutdownHookOptions = {}): () => void {
  const events = new Set<Event>(opts.signals ?? ['SIGINT', 'SIGTERM']);
  if (opts.beforeExit ?? true) events.add('beforeExit');
  members.set(p, events);
  sync();
  let done = false;
  return () => {
    if (done) return;
    done = true;
    if (members.get(p) === events) members.delete(p);
    sync();
  };
}
