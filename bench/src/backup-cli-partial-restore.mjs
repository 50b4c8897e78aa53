/**
 * `dawn-backup restore NAME --include GLOB` of one agent vs a full restore (issue 11: < 5% of the
 * time), as its own suite so `pnpm bench` runs it beside the others. The measurement lives in
 * backup-cli.mjs (`runPartialRestore`); alone: `node bench/src/backup-cli.mjs --partial-restore`.
 */
import { runPartialRestore } from './backup-cli.mjs';

export const run = (opts = {}) => runPartialRestore(opts);
