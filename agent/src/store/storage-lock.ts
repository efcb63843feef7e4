import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createStorageDir } from './storage-limits.js';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ForewarnError, describeError } from '../core/errors.js';

/**
 * One agent per storage directory. Two writing the same outbox would each send and mark rows, and a
 * corrupt-file recovery by one would pull the file from under the other. The lock is an exclusive SQLite lock
 * on a file of its own, held for the life of the process: the kernel releases it when the process dies,
 * SIGKILL included, so a crash never leaves a stale lock behind.
 */
export class StorageLock {
  private db: Database.Database | null = null;
  private readonly pidFile: string;
  private readonly lockFile: string;

  constructor(dir: string) {
    this.lockFile = path.join(dir, 'agent.lock');
    this.pidFile = path.join(dir, 'agent.pid');
  }

  acquire(): void {
    const dir = path.dirname(this.lockFile);
    // Not mkdirSync({ recursive }): under /proc it loops forever in native code (storage-limits.ts).
    if (!existsSync(dir)) createStorageDir(dir);
    const db = new Database(this.lockFile, { timeout: 0 });
    try {
      // No journal on disk: taking the lock must not need a free block (a full disk would read as "in use").
      db.pragma('journal_mode = MEMORY');
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('BEGIN EXCLUSIVE');
    } catch (err) {
      db.close();
      const code = String((err as { code?: unknown }).code ?? '');
      if (!/^SQLITE_(BUSY|LOCKED)/.test(code)) {
        throw new ForewarnError('FW_ERR_STORAGE_OPEN', `${this.lockFile}: cannot take the storage lock: ${describeError(err)}`, { cause: err });
      }
      let holder = '';
      try {
        holder = readFileSync(this.pidFile, 'utf8').trim();
      } catch {
        // no pid written (yet)
      }
      throw new ForewarnError(
        'FW_ERR_STORAGE_IN_USE',
        `${dir} is in use by another Forewarn agent${holder ? ` (pid ${holder})` : ''}; stop it or give this one its own storage.dir`,
        { cause: err },
      );
    }
    this.db = db;
    try {
      writeFileSync(this.pidFile, `${process.pid}\n`, { mode: 0o600 });
    } catch {
      // only for the message a second agent shows (a full disk): the lock itself is held
    }
  }

  release(): void {
    if (!this.db) return;
    rmSync(this.pidFile, { force: true });
    this.db.close();
    this.db = null;
  }
}
