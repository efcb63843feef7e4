import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './mosquitto.js';

/**
 * A throw-away PostgreSQL 15 cluster for one test file: `initdb` + `pg_ctl` in a temporary directory on a free
 * loopback port, run as the `postgres` system user when we are root (PostgreSQL refuses to run as root). Trust
 * authentication on loopback only; the socket lives in the cluster's own directory. `.ci/run` installs the
 * `postgresql` package; without it `startPostgres` returns the reason to skip.
 */

const BIN_DIRS = ['/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/17/bin'];

export interface PostgresCluster {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  dir: string;
  /** A fresh database in this cluster; returns its URL. */
  createDatabase(name: string): string;
  /** pg_ctl stop -m fast|immediate (immediate is a crash: no checkpoint, recovery at the next start). */
  stop(mode?: 'fast' | 'immediate'): void;
  start(): void;
  /** Stops the server and removes its directory. */
  destroy(): void;
}

function binDir(): string | null {
  return BIN_DIRS.find((d) => existsSync(path.join(d, 'pg_ctl'))) ?? null;
}

export function postgresSkipReason(): string | null {
  if (!binDir()) return 'PostgreSQL server binaries not found (apt-get install postgresql; .ci/run does)';
  if (process.getuid?.() === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) return 'no postgres system user to run the server as';
  return null;
}

export async function startPostgres(): Promise<PostgresCluster> {
  const reason = postgresSkipReason();
  if (reason) throw new Error(reason);
  const bin = binDir()!;
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-pg-'));
  const data = path.join(dir, 'data');
  const log = path.join(dir, 'server.log');
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
    chmodSync(dir, 0o700);
  }
  const as = (cmd: string, args: string[]) => {
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args]] : [path.join(bin, cmd), args];
    const r = spawnSync(file, argv, { encoding: 'utf8', cwd: dir });
    if (r.status !== 0) throw new Error(`${cmd} failed: ${(r.stderr || r.stdout || r.error?.message || '').trim()}`);
  };
  as('initdb', ['-A', 'trust', '-U', 'postgres', '-D', data, '--no-sync', '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=100`;
  const start = () => as('pg_ctl', ['-D', data, '-l', log, '-o', opts, '-w', '-t', '60', 'start']);
  start();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let running = true;
  return {
    url,
    port,
    dir,
    createDatabase(name: string) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
      execFileSync(path.join(bin, 'psql'), ['-X', '-q', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-c', `CREATE DATABASE ${name}`], {
        stdio: 'pipe',
      });
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    stop(mode = 'fast') {
      if (!running) return;
      as('pg_ctl', ['-D', data, '-m', mode, '-w', 'stop']);
      running = false;
    },
    start() {
      if (running) return;
      start();
      running = true;
    },
    destroy() {
      try {
        if (running) as('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // already gone
      }
      running = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
