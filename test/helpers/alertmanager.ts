import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './mosquitto.js';
import { waitFor } from './wait.js';

/**
 * A real Prometheus Alertmanager (Debian `prometheus-alertmanager`, 0.25) for tests: its own configuration and
 * storage directory, on a free loopback port, clustering off (`--cluster.listen-address=`), one route to a
 * webhook receiver with short group timings. Installs the package when it is missing and we are root (.ci/run
 * does too); otherwise `alertmanagerSkipReason` says why the tests skip.
 */

const BINARY = '/usr/bin/prometheus-alertmanager';

export function alertmanagerSkipReason(): string | null {
  if (!existsSync(BINARY) && process.getuid?.() === 0) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    try {
      execFileSync('apt-get', ['install', '-y', '-qq', 'prometheus-alertmanager'], { stdio: 'pipe', env });
    } catch {
      try {
        execFileSync('apt-get', ['update', '-qq'], { stdio: 'pipe' });
        execFileSync('apt-get', ['install', '-y', '-qq', 'prometheus-alertmanager'], { stdio: 'pipe', env });
      } catch {
        // reported below
      }
    }
  }
  return existsSync(BINARY) ? null : `${BINARY} not found (apt-get install prometheus-alertmanager; .ci/run does)`;
}

export interface AlertmanagerOptions {
  /** Where the route's webhook receiver posts its notifications. */
  webhookUrl: string;
  groupBy?: string[];
  groupWait?: string;
  groupInterval?: string;
  repeatInterval?: string;
}

export interface Alertmanager {
  url: string;
  port: number;
  dir: string;
  /** The alerts it holds now (`GET /api/v2/alerts`). */
  alerts(): Promise<
    Array<{
      labels: Record<string, string>;
      status: { state: string };
      endsAt: string;
      startsAt: string;
      generatorURL?: string;
      annotations: Record<string, string>;
    }>
  >;
  /** Stops it (SIGTERM) and starts it again on the same port and storage: it forgets its alerts, keeps its notification log. */
  restart(): Promise<void>;
  /** Stops the process, keeping its port and directory for `up()`. */
  down(): Promise<void>;
  up(): Promise<void>;
  stop(): Promise<void>;
}

export async function startAlertmanager(options: AlertmanagerOptions): Promise<Alertmanager> {
  const reason = alertmanagerSkipReason();
  if (reason) throw new Error(reason);
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-am-'));
  const config = path.join(dir, 'alertmanager.yml');
  writeFileSync(
    config,
    [
      'route:',
      '  receiver: test',
      `  group_by: [${(options.groupBy ?? ['alertname']).map((l) => `'${l}'`).join(', ')}]`,
      `  group_wait: ${options.groupWait ?? '200ms'}`,
      `  group_interval: ${options.groupInterval ?? '500ms'}`,
      `  repeat_interval: ${options.repeatInterval ?? '1h'}`,
      'receivers:',
      '  - name: test',
      '    webhook_configs:',
      `      - url: '${options.webhookUrl}'`,
      '        send_resolved: true',
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let output = '';
  const start = async () => {
    child = spawn(
      BINARY,
      [
        `--config.file=${config}`,
        `--storage.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--cluster.listen-address=',
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<never>((_, reject) => child!.once('exit', (code) => reject(new Error(`alertmanager exited (${code}): ${output.slice(-2000)}`))));
    exited.catch(() => undefined);
    await Promise.race([exited, waitFor(async () => (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok, 'alertmanager ready', 20_000)]);
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await gone;
  };
  await start();
  return {
    url,
    port,
    dir,
    async alerts() {
      const res = await fetch(`${url}/api/v2/alerts`);
      return (await res.json()) as Awaited<ReturnType<Alertmanager['alerts']>>;
    },
    async restart() {
      await stop();
      await start();
    },
    down: stop,
    up: start,
    async stop() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
