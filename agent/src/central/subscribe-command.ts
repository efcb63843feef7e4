import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { ForewarnError, describeError, isForewarnError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { DEFAULT_GROUP, ReferenceSubscriber, type SubscriberStats } from './ingest-worker.js';
import { CentralStore, type SeqRange, type SubscriberSummary } from './central-store.js';

export const SUBSCRIBE_USAGE = `forewarn subscribe — the reference central subscriber: agents' MQTT batches into SQLite

Usage:
  forewarn subscribe [--url URL] [--db FILE] [--group NAME] [--client-id ID] [--username NAME]
                     [--password-file FILE] [--ca FILE] [--cert FILE] [--key FILE] [--insecure] [--no-ack]
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
  --report              print what an existing database holds, then exit; needs no broker
  --json                with --report: print JSON

Runs until SIGINT or SIGTERM, then stops cleanly. Exit codes: 0 ok, 1 failure, 2 usage. See docs/subscriber.md.`;

export const PASSWORD_ENV = 'FOREWARN_SUBSCRIBER_PASSWORD';

/** A stable default: a persistent session is found again only under the same client id. */
export function defaultClientId(host = hostname()): string {
  return `forewarn-subscriber-${host.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64) || 'host'}`;
}

function formatGaps(gaps: SeqRange[]): string {
  const shown = gaps.slice(0, 3).map((g) => (g.from === g.to ? `${g.from}` : `${g.from}-${g.to}`));
  return shown.join(',') + (gaps.length > 3 ? ` +${gaps.length - 3} more` : '') || '-';
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The summary as a table for people. */
export function formatSummary(s: SubscriberSummary): string {
  if (!s.streams.length && !s.agents.length && !s.malformed.length) return 'nothing received yet';
  const out: string[] = [];
  if (s.streams.length) {
    out.push(
      table([
        ['agent', 'stream', 'received', 'duplicates', 'late', 'repaired', 'carried', 'conflicts', 'highest', 'missing', 'dropped', 'unavailable', 'open gaps'],
        ...s.streams.map((r) => [
          r.agentId,
          r.stream,
          ...[r.received, r.duplicates, r.outOfOrder, r.repaired, r.carried, r.conflicts, r.highestSeq, r.missing, r.dropped, r.unavailable].map(String),
          formatGaps(r.gaps),
        ]),
      ]),
    );
  }
  if (s.agents.length) {
    out.push(
      '',
      table([['agent', 'state', 'bootSeq', 'since'], ...s.agents.map((a) => [a.agentId, a.state, String(a.bootSeq), new Date(a.ts).toISOString()])]),
    );
  }
  if (s.malformed.length) {
    out.push('', table([['malformed on topic', 'count', 'last error'], ...s.malformed.map((m) => [m.topic, String(m.count), m.lastError])]));
  }
  return out.join('\n');
}

export function formatStats(st: SubscriberStats): string {
  return (
    `${st.messages} messages, ${st.records} new records, ${st.duplicates} duplicates, ${st.repaired} repaired, ${st.conflicts} conflicts, ` +
    `${st.malformed} malformed, ${st.writeFailures} write failures, ${st.acksPublished} acks sent` +
    (st.acksRefused ? `, ${st.acksRefused} acks refused by the broker` : '')
  );
}

/** One line over the whole store: what is missing is what an operator must look at. */
export async function formatTotals(url: string, reportHint: string): Promise<string> {
  const store = await CentralStore.open({ url, readonly: true });
  try {
    const streams = (await store.summary()).streams;
    const sum = (f: (s: (typeof streams)[number]) => number) => streams.reduce((n, s) => n + f(s), 0);
    return (
      `database: ${sum((s) => s.received)} records, ${sum((s) => s.missing)} missing in ${sum((s) => s.gaps.length)} open gaps, ` +
      `${sum((s) => s.dropped)} dropped by agents' policy, ${sum((s) => s.unavailable)} unavailable, ${sum((s) => s.conflicts)} conflicts ` +
      `(details: ${reportHint})`
    );
  } finally {
    await store.close();
  }
}

/** Runs `forewarn subscribe`. `options.signal` stops it like SIGINT does (for tests and embedding). */
export async function runSubscribeCommand(argv: string[], log: Logger, options: { signal?: AbortSignal } = {}): Promise<number> {
  try {
    return await subscribe(argv, log, options.signal);
  } catch (err) {
    const usage = isForewarnError(err, 'FW_ERR_USAGE') || String((err as { code?: unknown }).code ?? '').startsWith('ERR_PARSE_ARGS');
    const code = isForewarnError(err) ? ` [${err.code}]` : '';
    process.stderr.write(`forewarn subscribe: ${describeError(err)}${code}\n${usage ? `\n${SUBSCRIBE_USAGE}\n` : ''}`);
    return usage || isForewarnError(err, 'FW_ERR_SECRET_READ') ? 2 : 1;
  }
}

async function subscribe(argv: string[], log: Logger, signal: AbortSignal | undefined): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      url: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
      db: { type: 'string', default: './forewarn-central.db' },
      group: { type: 'string', default: DEFAULT_GROUP },
      'client-id': { type: 'string' },
      username: { type: 'string' },
      'password-file': { type: 'string' },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      insecure: { type: 'boolean', default: false },
      'no-ack': { type: 'boolean', default: false },
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
    const store = await CentralStore.open({ url: values.db, readonly: true });
    try {
      const summary = await store.summary();
      process.stdout.write(values.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatSummary(summary)}\n`);
    } finally {
      await store.close();
    }
    return 0;
  }

  const envPassword = process.env[PASSWORD_ENV];
  const subscriber = new ReferenceSubscriber({
    url: values.url,
    clientId: values['client-id'] ?? defaultClientId(),
    group: values.group,
    store: values.db,
    log,
    ...(values.username ? { username: values.username } : {}),
    ...(values['password-file'] ? { passwordFile: values['password-file'] } : envPassword ? { password: envPassword } : {}),
    ...(values.ca ? { caFile: values.ca } : {}),
    ...(values.cert ? { certFile: values.cert } : {}),
    ...(values.key ? { keyFile: values.key } : {}),
    rejectUnauthorized: !values.insecure,
    ack: !values['no-ack'],
  });
  log.info({ url: values.url, db: values.db, group: subscriber.group, filters: subscriber.filters, ack: !values['no-ack'] }, 'subscriber starting');
  await subscriber.start();
  await untilStopped(signal);
  log.info('stopping the subscriber');
  await subscriber.stop();
  process.stdout.write(`${formatStats(subscriber.stats)}\n${await formatTotals(values.db, `forewarn subscribe --report --db ${values.db}`)}\n`);
  return 0;
}

/** Resolves on SIGINT, SIGTERM or `signal`; the listeners are removed again. */
export function untilStopped(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    if (signal?.aborted) done();
    else signal?.addEventListener('abort', done, { once: true });
  });
}
