import { describeError, exitCodeOf, isForewarnError } from '../core/errors.js';
import { CentralStore, type SeqRange, type SubscriberSummary } from './central-store.js';
import type { SubscriberStats } from './ingest-worker.js';

/**
 * What `forewarn central` and `forewarn subscribe` share on the command line: the report of what a store holds,
 * the line printed at stop, the wait for a stop signal, and how an error becomes an exit status.
 */

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

/** Prints what the store at `url` holds (`report`): a table for people, or JSON. Needs no broker. */
export async function printReport(url: string, json: boolean): Promise<void> {
  const store = await CentralStore.open({ url, readonly: true });
  try {
    const summary = await store.summary();
    process.stdout.write(json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatSummary(summary)}\n`);
  } finally {
    await store.close();
  }
}

/**
 * Runs a command body and turns what it throws into an exit status: 2 with the usage for a usage error, else the
 * code's exit status (core/errors.ts EXIT_CODES: 2 for an unreadable secret or a refused user change, mostly 1).
 */
export async function exitStatus(command: string, usage: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    const usageError = isForewarnError(err, 'FW_ERR_USAGE') || String((err as { code?: unknown }).code ?? '').startsWith('ERR_PARSE_ARGS');
    const code = isForewarnError(err) ? ` [${err.code}]` : '';
    process.stderr.write(`forewarn ${command}: ${describeError(err)}${code}\n${usageError ? `\n${usage}\n` : ''}`);
    return usageError ? 2 : exitCodeOf(err);
  }
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
