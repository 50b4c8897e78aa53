/** The registry's events: who listens, and calling them safely. */
import type { Peer } from './peer.js';

/** Where an event's change came from. */
export interface PeerEventInfo {
  /** `'local'`: a call on this instance. `'file'`: found in the file (another process, or a write of ours that did not stick). */
  origin: 'local' | 'file';
}

/** A listener of the registry's events. */
export type PeerListener = (peer: Peer, info: PeerEventInfo) => void;

/** The registry's events. Each fires once per real change, never for a no-op. */
export type PeerEventName = 'peer:added' | 'peer:removed' | 'peer:updated';

/** The listeners of one registry. A throwing listener does not disturb the others or the registry. */
export class PeerEvents {
  readonly #listeners = new Map<PeerEventName, PeerListener[]>();

  on(event: PeerEventName, listener: PeerListener): void {
    const list = this.#listeners.get(event);
    if (list) list.push(listener);
    else this.#listeners.set(event, [listener]);
  }

  off(event: PeerEventName, listener: PeerListener): void {
    const list = this.#listeners.get(event);
    const i = list?.lastIndexOf(listener) ?? -1;
    if (list && i >= 0) list.splice(i, 1);
  }

  once(event: PeerEventName, listener: PeerListener): void {
    const wrapper: PeerListener = (peer, info) => {
      this.off(event, wrapper);
      listener(peer, info);
    };
    this.on(event, wrapper);
  }

  /** Call the listeners of `event` synchronously; a listener's error is re-thrown asynchronously. */
  emit(event: PeerEventName, peer: Peer, origin: PeerEventInfo['origin']): void {
    const list = this.#listeners.get(event);
    if (!list || list.length === 0) return;
    const info = { origin };
    for (const l of list.slice()) {
      try {
        l(peer, info);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
