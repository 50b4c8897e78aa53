/** Progress of a long operation, reported through the `onProgress` option. */
export interface ProgressEvent {
  /**
   * `scan` walks the tree; `copy` copies files into a backup; `verify` re-hashes a backup;
   * `restore` builds the restored tree; `sync` makes the written tree durable (fsync/syncfs).
   */
  phase: 'scan' | 'copy' | 'verify' | 'restore' | 'sync';
  /** Files done so far in this phase. */
  files: number;
  /** Files this phase will handle. */
  totalFiles: number;
  /** Bytes done so far in this phase. */
  bytes: number;
}

/** Receives {@link ProgressEvent}s; called often (once per file): keep it cheap. */
export type ProgressListener = (event: ProgressEvent) => void;
