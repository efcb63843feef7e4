import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { ForewarnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { BROKER_PASSWORD_ENV, INGEST_CONNECTION_OPTIONS, parseCentralOptions, startCentral } from './central-command.js';
import { exitStatus, formatStats, formatTotals, printReport, untilStopped } from './central-report.js';
import { DEFAULT_GROUP } from './ingest-worker.js';

export const SUBSCRIBE_USAGE = `forewarn subscribe — the reference central subscriber: agents' MQTT batches into SQLite

Usage:
  forewarn subscribe [--url URL] [--db FILE] [--group NAME] [--client-id ID] [--username NAME]
                     [--password-file FILE] [--ca FILE] [--cert FILE] [--key FILE] [--insecure]
                     [--no-ack | --ack-interval DURATION]
  forewarn subscribe --report [--db FILE] [--json]

  --url URL             the broker (default mqtt://127.0.0.1:1883; mqtts://… for TLS)
  --db FILE             the SQLite database (default ./forewarn-central.db)
  --group NAME          shared-subscription group: instances in one group split the batches (default ${DEFAULT_GROUP})
  --client-id ID        stable and unique per instance; the broker queues for it while it is away
                        (default forewarn-subscriber-<hostname>)
  --username NAME
  --password-file FILE  the broker password, in a file; or set FOREWARN_SUBSCRIBER_PASSWORD
  --ca, --cert, --key FILE
                        TLS: the CA that signed the broker's certificate; a client certificate and key
  --insecure            accept a broker certificate that does not verify (testing only)
  --no-ack              do not publish the end-to-end acknowledgement forewarn/v1/{agentId}/ack (agents then
                        keep their records until their retention runs out; see docs/subscriber.md)
  --ack-interval D      at most one acknowledgement per agent this often (default 5s; always one after the last commit)
  --report              print what an existing database holds, then exit; needs no broker
  --json                with --report: print JSON

Runs until SIGINT or SIGTERM, then stops cleanly. Exit codes: 0 ok, 1 failure, 2 usage. See docs/subscriber.md.`;

export const PASSWORD_ENV = 'FOREWARN_SUBSCRIBER_PASSWORD';

/** A stable default: a persistent session is found again only under the same client id. */
export function defaultClientId(host = hostname()): string {
  return `forewarn-subscriber-${host.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64) || 'host'}`;
}

/** Runs `forewarn subscribe`. `options.signal` stops it like SIGINT does (for tests and embedding). */
export function runSubscribeCommand(argv: string[], log: Logger, options: { signal?: AbortSignal } = {}): Promise<number> {
  return exitStatus('subscribe', SUBSCRIBE_USAGE, () => subscribe(argv, log, options.signal));
}

/** `forewarn central` with nothing but its ingest: the same worker and ledger, one SQLite file, no API, no alerting. */
async function subscribe(argv: string[], log: Logger, signal: AbortSignal | undefined): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      url: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
      db: { type: 'string', default: './forewarn-central.db' },
      ...INGEST_CONNECTION_OPTIONS,
      report: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${SUBSCRIBE_USAGE}\n`);
    return 0;
  }
  if (positionals.length) throw new ForewarnError('FW_ERR_USAGE', `unexpected argument: ${positionals[0]}`);
  if (values.json && !values.report) throw new ForewarnError('FW_ERR_USAGE', '--json goes with --report');
  if (values.report) {
    await printReport(values.db, values.json);
    return 0;
  }
  // Its flags, spelled as central's, so that one parser checks them.
  const flag = (name: string, value: string | undefined) => (value === undefined ? [] : [`--${name}`, value]);
  const options = parseCentralOptions(
    [
      ...flag('store', values.db),
      ...flag('broker', values.url),
      ...flag('group', values.group),
      ...flag('client-id', values['client-id'] ?? defaultClientId()),
      ...flag('username', values.username),
      ...flag('password-file', values['password-file']),
      ...flag('ca', values.ca),
      ...flag('cert', values.cert),
      ...flag('key', values.key),
      ...(values.insecure ? ['--insecure'] : []),
      ...(values['no-ack'] ? ['--no-ack'] : []),
      ...flag('ack-interval', values['ack-interval']),
      '--no-api',
    ],
    { [BROKER_PASSWORD_ENV]: process.env[PASSWORD_ENV] },
  );
  log.info({ url: values.url, db: values.db, group: options.group, ack: options.ack }, 'subscriber starting');
  const central = await startCentral(options, log, []);
  await untilStopped(signal);
  log.info('stopping the subscriber');
  await central.stop();
  process.stdout.write(`${formatStats(central.ingest.stats)}\n${await formatTotals(values.db, `forewarn subscribe --report --db ${values.db}`)}\n`);
  return 0;
}
