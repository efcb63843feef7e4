import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { ForewarnError, describeError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { parseWithUnit } from '../core/schema-node.js';
import type { Component } from '../core/types.js';
import { buildCentralConfig, loadCentralConfig } from './central-config.js';
import { CentralStore } from './central-store.js';
import { DEFAULT_GROUP, ReferenceSubscriber } from './ingest-worker.js';
import { commitSignal, type CentralModule, type CentralModuleFactory, type CentralOptions } from './central-module.js';
import { CENTRAL_MODULES } from './central-modules.js';
import { redactUrl } from './sql/sql-client.js';
import { runUserCommand } from './console/user-command.js';
import { exitStatus, formatStats, formatTotals, printReport, untilStopped } from './central-report.js';
import { exportLabelsCommand } from './labels/export-labels.js';
import { gpuCostCommand } from './gpu-cost/gpu-cost-command.js';

export const CENTRAL_USAGE = `forewarn central — the central service: every agent's streams into SQLite or PostgreSQL, alerts to people, the fleet API

Usage:
  forewarn central [run] [--store URL] [--broker URL] [--group NAME] [--client-id ID]
                   [--username NAME] [--password-file FILE] [--ca FILE] [--cert FILE] [--key FILE] [--insecure]
                   [--no-ack | --ack-interval DURATION] [--api HOST:PORT | --no-api] [--tls-cert FILE --tls-key FILE]
                   [--session-idle DURATION] [--session-max DURATION]
                   [--alertmanager URL]... [--webhook URL]... [--webhook-format json|slack] [--console-url URL]
                   [--agent-offline DURATION] [--asset-silent DURATION] [--version-skew DURATION]
                   [--rollup-metric GLOB]... [--retain STREAM=DAYS]...
                   [--config FILE] [--metrics-token-file FILE]
  forewarn central report [--store URL] [--json]
  forewarn central user add|list|remove|passwd …   console users (forewarn central user --help)
  forewarn central export-labels --since WHEN --model NAME [--out FILE] [--window SIZE] [--until WHEN] [--store URL]
                        (the readings before each alert a technician closed, in the training recipe's format;
                        forewarn central export-labels --help)
  forewarn central gpu-cost --since WHEN [--until WHEN] [--by host|group|model|gpu] [--csv FILE] [--config FILE]
                        (the GPUs' daily idle, downtime and energy cost; forewarn central gpu-cost --help)

  --store URL           sqlite:PATH (default sqlite:./forewarn-central.db) or postgres://USER@HOST:PORT/DB; or set
                        FOREWARN_CENTRAL_STORE. Give a PostgreSQL password by PGPASSWORD or ~/.pgpass, not in the URL
                        (a command line is visible to every user of the machine)
  --broker URL          the MQTT broker (default mqtt://127.0.0.1:1883; mqtts://… for TLS)
  --group NAME          shared-subscription group: workers in one group split the batches (default ${DEFAULT_GROUP})
  --client-id ID        stable and unique per worker; the broker queues for it while it is away
                        (default forewarn-central-<hostname>: give each further worker on a host its own)
  --username NAME, --password-file FILE
                        the broker login; or set FOREWARN_CENTRAL_BROKER_PASSWORD
  --ca, --cert, --key FILE
                        TLS: the CA that signed the broker's certificate; a client certificate and key
  --insecure            accept a broker certificate that does not verify (testing only)
  --no-ack              do not publish the end-to-end acknowledgement (docs/delivery.md)
  --ack-interval D      at most one acknowledgement per agent this often (default 5s; always one after the last commit)
  --api HOST:PORT       serve the JSON API (/api/v1/…) and the console here (default 127.0.0.1:8470); --no-api: none.
                        Both need a login (docs/console.md, "Users and access")
  --tls-cert, --tls-key FILE
                        serve them over HTTPS with this PEM certificate (chain) and key (session cookies become Secure)
  --session-idle D      a console session ends after this long without a request (default 30m)
  --session-max D       … and this long after the login at the latest (default 12h)
  --alertmanager URL    post alerts to this Prometheus Alertmanager (repeat for an HA pair)
  --webhook URL         post each alert firing and resolving to this webhook (repeat for several)
  --webhook-format F    json (default) or slack (a Slack-compatible "text" message)
  --console-url URL     the console's base URL, for the links in alerts (default http(s)://<api>/); changes from
                        this origin are accepted too (a reverse proxy in front)
  --agent-offline D     raise agent.offline after an agent is offline or silent this long (default 10m)
  --asset-silent D      raise asset.silent after an asset sends nothing this long (default 30m)
  --version-skew D      raise agent.version_skew after an agent lags the fleet's newest version this long (default 24h)
  --rollup-metric GLOB  roll this telemetry metric up per hour for trends (repeat; * and ? match; default none)
  --retain STREAM=DAYS  keep that stream's records this many days (alerts, risk, events: 400; telemetry: 30)
  --config FILE         central's configuration file (YAML): SLOs and fleet groups (docs/slo.md); errors
                        read path: message and exit 2
  --metrics-token-file FILE
                        /metrics also answers a request with this bearer token (for Prometheus); otherwise it
                        needs a console session like every page
  --json                with report: print JSON

Durations: 30s, 10m, 1h30m, 2d. Runs until SIGINT or SIGTERM, then stops cleanly. Exit codes: 0 ok, 1 failure,
2 usage. See docs/central.md.`;

export const STORE_ENV = 'FOREWARN_CENTRAL_STORE';
export const BROKER_PASSWORD_ENV = 'FOREWARN_CENTRAL_BROKER_PASSWORD';
export const DEFAULT_STORE = 'sqlite:./forewarn-central.db';
export const DEFAULT_API = '127.0.0.1:8470';

export function defaultCentralClientId(host = hostname()): string {
  return `forewarn-central-${host.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64) || 'host'}`;
}

function duration(option: string, raw: string): number {
  let ms: unknown;
  try {
    ms = parseWithUnit(raw, 'ms');
  } catch (err) {
    throw new ForewarnError('FW_ERR_USAGE', `--${option}: ${describeError(err)}`);
  }
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) throw new ForewarnError('FW_ERR_USAGE', `--${option}: must be a positive duration`);
  return ms;
}

function hostPort(option: string, raw: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(raw);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ForewarnError('FW_ERR_USAGE', `--${option}: "${raw}" is not HOST:PORT (e.g. 127.0.0.1:8470)`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

function retention(raw: string): [string, number] {
  const m = /^(alerts|risk|events|telemetry)=(\d+)$/.exec(raw);
  if (!m || Number(m[2]) < 1) throw new ForewarnError('FW_ERR_USAGE', `--retain: "${raw}" is not STREAM=DAYS (alerts, risk, events or telemetry; days >= 1)`);
  return [m[1]!, Number(m[2])];
}

function httpUrl(option: string, raw: string): string {
  if (!URL.canParse(raw) || !/^https?:$/.test(new URL(raw).protocol)) throw new ForewarnError('FW_ERR_USAGE', `--${option}: "${raw}" is not an http(s) URL`);
  return raw.replace(/\/+$/, '');
}

/** The ingest's broker connection flags, the same for `forewarn central` and `forewarn subscribe`. */
export const INGEST_CONNECTION_OPTIONS = {
  group: { type: 'string', default: DEFAULT_GROUP },
  'client-id': { type: 'string' },
  username: { type: 'string' },
  'password-file': { type: 'string' },
  ca: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  insecure: { type: 'boolean', default: false },
  'no-ack': { type: 'boolean', default: false },
  'ack-interval': { type: 'string' },
} as const;

/** Parses `forewarn central run`'s options (the command word already removed). */
export function parseCentralOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): CentralOptions {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      store: { type: 'string' },
      broker: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
      ...INGEST_CONNECTION_OPTIONS,
      api: { type: 'string', default: DEFAULT_API },
      'no-api': { type: 'boolean', default: false },
      alertmanager: { type: 'string', multiple: true, default: [] },
      webhook: { type: 'string', multiple: true, default: [] },
      'webhook-format': { type: 'string', default: 'json' },
      'console-url': { type: 'string' },
      'agent-offline': { type: 'string', default: '10m' },
      'asset-silent': { type: 'string', default: '30m' },
      'version-skew': { type: 'string', default: '24h' },
      'rollup-metric': { type: 'string', multiple: true, default: [] },
      retain: { type: 'string', multiple: true, default: [] },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'session-idle': { type: 'string', default: '30m' },
      'session-max': { type: 'string', default: '12h' },
      config: { type: 'string' },
      'metrics-token-file': { type: 'string' },
    },
  });
  if (positionals.length) throw new ForewarnError('FW_ERR_USAGE', `unexpected argument: ${positionals[0]}`);
  const format = values['webhook-format'];
  if (format !== 'json' && format !== 'slack') throw new ForewarnError('FW_ERR_USAGE', `--webhook-format: "${format}" must be json or slack`);
  const api = values['no-api'] ? null : hostPort('api', values.api);
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined))
    throw new ForewarnError('FW_ERR_USAGE', `--tls-cert and --tls-key: give both (the certificate and its key) or neither`);
  const tls = values['tls-cert'] && values['tls-key'] ? { certFile: values['tls-cert'], keyFile: values['tls-key'] } : undefined;
  const envPassword = env[BROKER_PASSWORD_ENV];
  return {
    store: values.store ?? env[STORE_ENV] ?? DEFAULT_STORE,
    broker: values.broker,
    group: values.group,
    clientId: values['client-id'] ?? defaultCentralClientId(),
    ...(values.username ? { username: values.username } : {}),
    ...(values['password-file'] ? { passwordFile: values['password-file'] } : envPassword ? { password: envPassword } : {}),
    ...(values.ca ? { caFile: values.ca } : {}),
    ...(values.cert ? { certFile: values.cert } : {}),
    ...(values.key ? { keyFile: values.key } : {}),
    rejectUnauthorized: !values.insecure,
    ack: !values['no-ack'],
    ...(values['ack-interval'] !== undefined ? { ackIntervalMs: duration('ack-interval', values['ack-interval']) } : {}),
    api,
    alertmanagers: values.alertmanager.map((u) => httpUrl('alertmanager', u)),
    webhooks: values.webhook.map((u) => ({ url: httpUrl('webhook', u), format })),
    consoleUrl: values['console-url']
      ? httpUrl('console-url', values['console-url'])
      : `${tls ? 'https' : 'http'}://${api ? `${api.host.includes(':') ? `[${api.host}]` : api.host}:${api.port}` : DEFAULT_API}`,
    agentOfflineMs: duration('agent-offline', values['agent-offline']),
    assetSilentMs: duration('asset-silent', values['asset-silent']),
    versionSkewMs: duration('version-skew', values['version-skew']),
    rollupMetrics: values['rollup-metric'],
    retainDays: Object.fromEntries(values.retain.map(retention)),
    ...(tls ? { tls } : {}),
    sessionIdleMs: duration('session-idle', values['session-idle']),
    sessionMaxMs: duration('session-max', values['session-max']),
    config: values.config ? loadCentralConfig(values.config) : buildCentralConfig(null),
    ...(values['metrics-token-file'] ? { metricsTokenFile: values['metrics-token-file'] } : {}),
  };
}

/** A running central worker: its store, ingest and the other components, stopped in reverse order. */
export interface CentralService {
  store: CentralStore;
  ingest: ReferenceSubscriber;
  components: Component[];
  stop(): Promise<void>;
}

function newIngest(options: CentralOptions, store: CentralStore, log: Logger): ReferenceSubscriber {
  return new ReferenceSubscriber({
    url: options.broker,
    clientId: options.clientId,
    group: options.group,
    store,
    log,
    ...(options.username ? { username: options.username } : {}),
    ...(options.passwordFile ? { passwordFile: options.passwordFile } : options.password !== undefined ? { password: options.password } : {}),
    ...(options.caFile ? { caFile: options.caFile } : {}),
    ...(options.certFile ? { certFile: options.certFile } : {}),
    ...(options.keyFile ? { keyFile: options.keyFile } : {}),
    rejectUnauthorized: options.rejectUnauthorized,
    ack: options.ack,
    ...(options.ackIntervalMs !== undefined ? { ackIntervalMs: options.ackIntervalMs } : {}),
  });
}

/** Opens the store (migrating it), starts the modules' components, then ingest: nothing is taken before it can be kept. */
export async function startCentral(options: CentralOptions, log: Logger, modules: readonly CentralModuleFactory[]): Promise<CentralService> {
  const built = modules.map((f) => f(options, log)).filter((m): m is CentralModule => m !== null);
  const store = await CentralStore.open({ url: options.store, projections: built.flatMap((m) => m.projections ?? []) });
  let ingest: ReferenceSubscriber;
  let components: Component[];
  try {
    const routes = built.flatMap((m) => m.routes?.(store) ?? []);
    const commits = commitSignal();
    const metrics = built.flatMap((m) => m.metrics?.(store) ?? []);
    components = built.flatMap((m) => m.components?.(store, { routes, commits, metrics }) ?? []);
    // Its constructor checks the broker URL and reads the TLS and password files: a bad one must not leave the store open.
    ingest = newIngest(options, store, log);
    // Both events come right after their transaction committed.
    ingest.on('batch', (b) => {
      if (b.result.inserted > 0) commits.notify();
    });
    ingest.on('status', () => commits.notify());
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  const started: Component[] = [];
  try {
    for (const c of components) {
      await c.start();
      started.push(c);
    }
    await ingest.start();
  } catch (err) {
    for (const c of started.reverse()) await c.stop().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  }
  return {
    store,
    ingest,
    components,
    async stop() {
      // Intake first (what is unacknowledged is redelivered), then the components flush, then the store closes.
      await ingest.stop();
      for (const c of [...components].reverse()) {
        try {
          await c.stop();
        } catch (err) {
          log.warn({ component: c.name, err: describeError(err) }, 'a component failed to stop cleanly');
        }
      }
      await store.close();
    },
  };
}

/** Runs `forewarn central …`. `options.signal` stops it like SIGINT does (for tests and embedding). */
export function runCentralCommand(argv: string[], log: Logger, options: { signal?: AbortSignal } = {}): Promise<number> {
  if (argv[0] === 'user') return runUserCommand(argv.slice(1));
  if (argv[0] === 'export-labels') return exportLabelsCommand(argv.slice(1), DEFAULT_STORE);
  if (argv[0] === 'gpu-cost') return gpuCostCommand(argv.slice(1), DEFAULT_STORE);
  return exitStatus('central', CENTRAL_USAGE, () =>
    argv[0] === 'report' ? report(argv.slice(1)) : run(argv[0] === 'run' ? argv.slice(1) : argv, log, options.signal),
  );
}

async function report(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { store: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  if (positionals.length) throw new ForewarnError('FW_ERR_USAGE', `unexpected argument: ${positionals[0]}`);
  await printReport(values.store ?? process.env[STORE_ENV] ?? DEFAULT_STORE, values.json);
  return 0;
}

async function run(argv: string[], log: Logger, signal: AbortSignal | undefined): Promise<number> {
  const options = parseCentralOptions(argv);
  log.info(
    {
      store: redactUrl(options.store),
      broker: options.broker,
      group: options.group,
      clientId: options.clientId,
      api: options.api,
      alertmanagers: options.alertmanagers.map(redactUrl),
      webhooks: options.webhooks.length,
    },
    'central starting',
  );
  const central = await startCentral(options, log, CENTRAL_MODULES);
  await untilStopped(signal);
  log.info('stopping central');
  await central.stop();
  process.stdout.write(`${formatStats(central.ingest.stats)}\n${await formatTotals(options.store, 'forewarn central report')}\n`);
  return 0;
}
