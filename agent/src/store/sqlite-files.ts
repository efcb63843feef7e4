import { chmodSync, existsSync } from 'node:fs';
import type Database from 'better-sqlite3';

/** What the agent's outbox and the reference subscriber's database share: private files and cached statements. */

/** A database and its WAL files hold telemetry and must not be world-readable. */
export function restrictDatabaseFiles(file: string): void {
  for (const suffix of ['', '-wal', '-shm']) {
    const f = file + suffix;
    if (existsSync(f)) chmodSync(f, 0o600);
  }
}

/** Prepares each SQL text once: hot loops run the same statements many times a second. */
export class StatementCache {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly db: () => Database.Database) {}

  get(text: string): Database.Statement {
    let st = this.statements.get(text);
    if (!st) this.statements.set(text, (st = this.db().prepare(text)));
    return st;
  }

  clear(): void {
    this.statements.clear();
  }
}
