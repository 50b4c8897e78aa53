export { AtomicJsonError, type AtomicJsonErrorCode, type AtomicJsonErrorDetails } from './errors.js';
export { readJson, writeJson, updateJson, withLock, type ReadOptions, type UpdateOptions } from './operations.js';
export type { WriteOptions } from './queue.js';
export type { LockOptions } from './lock.js';
export { JsonFile, type JsonFileOptions, type StandardSchemaV1, type StandardSchemaResult } from './json-file.js';
export { TEMP_SUFFIX, isTempFileName } from './write.js';
export { lockPathOf } from './lock.js';
export { fileMark, sameFileMark, type FileMark } from './file-mark.js';
export { parseJson, type JsonValue, type JsonObject } from './parse.js';
export { stringifyJson, findNonJson } from './serialize.js';
export { readJsonSync, writeJsonSync, updateJsonSync } from './sync.js';
export { resolveDataRoot, expandHome, DATA_ROOT_ENV } from './data-root.js';
export {
  JournaledJson,
  journalPathOf,
  JOURNAL_SUFFIX,
  LEASE_MS,
  LEASE_GAP_MS,
  type JournalOptions,
  type JournalEvent,
  type RemoteChange,
} from './journal.js';
