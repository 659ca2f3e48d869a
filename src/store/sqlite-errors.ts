/** SQLite failures as StoreErrors with codes, naming the file and what to do. */
import { StoreError, StoreErrorCode } from './run-store.ts';

/** SQLite's result codes, as errors that say which file and what to do. */
export function storeError(err: unknown, location: string, doing: string): StoreError {
  const code = (err as { code?: string }).code ?? '';
  const detail = (err as Error).message ?? String(err);
  if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_') || code === 'SQLITE_LOCKED') {
    return new StoreError(StoreErrorCode.STORE_LOCKED, `${location} is locked by another process (is another coordinator using it?): ${detail}`, { cause: err });
  }
  if (code === 'SQLITE_READONLY' || code.startsWith('SQLITE_READONLY_')) {
    return new StoreError(StoreErrorCode.STORE_READ_ONLY, `${location} is read-only: ${detail}`, { cause: err });
  }
  if (code === 'SQLITE_FULL') {
    return new StoreError(StoreErrorCode.STORE_FULL, `${location}: the disk (or the configured size limit) is full; new work fails until space is freed, committed work is kept: ${detail}`, { cause: err });
  }
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT' || code.startsWith('SQLITE_CORRUPT_')) {
    return new StoreError(StoreErrorCode.STORE_OPEN_FAILED, `${location} is not a SQLite database or is corrupt: ${detail}`, { cause: err });
  }
  if (code === 'SQLITE_CANTOPEN' || code.startsWith('SQLITE_CANTOPEN_')) {
    return new StoreError(StoreErrorCode.STORE_OPEN_FAILED, `cannot open ${location}: ${detail}`, { cause: err });
  }
  if (code.startsWith('SQLITE_CONSTRAINT')) {
    return new StoreError(StoreErrorCode.STORE_CONFLICT, `${location}: ${doing} broke an invariant of the event log: ${detail}`, { cause: err });
  }
  return new StoreError(doing === 'open' ? StoreErrorCode.STORE_OPEN_FAILED : StoreErrorCode.STORE_WRITE_FAILED, `${location}: cannot ${doing}: ${detail}`, { cause: err });
}
