import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCentralOptions, runCentralCommand } from '../../../agent/src/central/central-command.js';
import { isForewarnError } from '../../../agent/src/core/errors.js';
import { openSqlClient } from '../../../agent/src/central/sql/open-sql-client.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { consoleSession } from '../../helpers/console-session.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { startMosquitto } from '../../helpers/mosquitto.js';
import { waitFor } from '../../helpers/wait.js';

const cleanup = cleanupAfterEach();

describe('forewarn central options', () => {
  it('has embedded defaults: nothing to configure first', () => {
    expect(parseCentralOptions([], {})).toMatchObject({
      store: 'sqlite:./forewarn-central.db',
      broker: 'mqtt://127.0.0.1:1883',
      api: { host: '127.0.0.1', port: 8470 },
      ack: true,
      alertmanagers: [],
      agentOfflineMs: 600_000,
      rollupMetrics: [],
      retainDays: {},
      sessionIdleMs: 1_800_000,
      sessionMaxMs: 43_200_000,
      consoleUrl: 'http://127.0.0.1:8470',
    });
    expect(parseCentralOptions(['--tls-cert', 'c.pem', '--tls-key', 'k.pem', '--session-max', '8h'], {})).toMatchObject({
      tls: { certFile: 'c.pem', keyFile: 'k.pem' },
      consoleUrl: 'https://127.0.0.1:8470',
      sessionMaxMs: 28_800_000,
    });
  });

  it('reads durations, repeated options, the store from the environment, and refuses what it cannot use with the option named', () => {
    const o = parseCentralOptions(
      [
        '--agent-offline',
        '90s',
        '--alertmanager',
        'http://am-1:9093/',
        '--alertmanager',
        'http://am-2:9093',
        '--retain',
        'telemetry=7',
        '--no-api',
        '--ack-interval',
        '2s',
      ],
      { FOREWARN_CENTRAL_STORE: 'postgres://fw@db/fleet' },
    );
    expect(o).toMatchObject({
      ackIntervalMs: 2000,
      agentOfflineMs: 90_000,
      alertmanagers: ['http://am-1:9093', 'http://am-2:9093'],
      retainDays: { telemetry: 7 },
      api: null,
      store: 'postgres://fw@db/fleet',
    });
    const refused = (argv: string[]) => {
      try {
        parseCentralOptions(argv, {});
      } catch (err) {
        expect(isForewarnError(err, 'FW_ERR_USAGE')).toBe(true);
        return (err as Error).message;
      }
      throw new Error(`accepted ${argv.join(' ')}`);
    };
    expect(refused(['--agent-offline', 'soon'])).toMatch(/^--agent-offline: /);
    expect(refused(['--ack-interval', '0'])).toMatch(/^--ack-interval: must be a positive duration/);
    expect(refused(['--api', 'localhost'])).toMatch(/^--api: "localhost" is not HOST:PORT/);
    expect(refused(['--webhook', 'ftp://x'])).toMatch(/^--webhook: .* is not an http\(s\) URL/);
    expect(refused(['--retain', 'logs=3'])).toMatch(/^--retain: "logs=3" is not STREAM=DAYS/);
    expect(refused(['--webhook-format', 'xml'])).toMatch(/--webhook-format/);
    expect(refused(['--tls-cert', 'c.pem'])).toMatch(/^--tls-cert and --tls-key: give both/);
    expect(refused(['--session-idle', '0s'])).toMatch(/^--session-idle: must be a positive duration/);
  });
});

describe('forewarn central run', () => {
  it('ingests, serves the API, and stops cleanly on its signal, printing what it holds', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const store = path.join(mkdtempSync(path.join(tmpdir(), 'fw-central-cmd-')), 'central.db');
    const stop = new AbortController();
    const { log, lines } = captureLogger();
    const running = runCentralCommand(['--store', `sqlite:${store}`, '--broker', broker.url, '--client-id', 'central-cmd', '--api', '127.0.0.1:0'], log, {
      signal: stop.signal,
    });
    await waitFor(() => lines.some((l) => l.msg === 'subscriber connected'), 'central connected');
    const listening = await waitFor(() => lines.find((l) => typeof l.port === 'number' && /api|listen/i.test(String(l.msg))), 'the API listening');
    const base = `http://127.0.0.1:${listening.port as number}`;
    expect((await fetch(`${base}/api/v1/fleet`)).status).toBe(401);
    expect(lines.some((l) => /^no console users yet/.test(String(l.msg)))).toBe(true);
    const sql = await openSqlClient(`sqlite:${store}`);
    try {
      const client = await consoleSession(base, sql, { role: 'viewer' });
      expect((await client.fetch('/api/v1/fleet')).status).toBe(200);
      // A module's route is mounted (the asset health of the fleet module): its own 404, not "no such endpoint".
      expect((await client.get('/api/v1/assets/a1/nothing/health')).body.error.message).toBe('asset nothing of agent a1: central has no record of it');
    } finally {
      await sql.close();
    }
    stop.abort();
    expect(await running).toBe(0);
    expect(await runCentralCommand(['report', '--store', store, '--json'], log)).toBe(0);
  });
});
