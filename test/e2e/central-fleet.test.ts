import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CentralStore } from '../../agent/src/central/central-store.js';
import { RecordStore } from '../../agent/src/store/record-store.js';
import { killAgent, spawnAgent, startAgent, type AgentProcess } from '../helpers/agent-process.js';
import { cleanupAfterEach } from '../helpers/cleanup.js';
import { alertmanagerSkipReason, startAlertmanager } from '../helpers/alertmanager.js';
import { startHttpReceiver } from '../helpers/http-receiver.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { postgresSkipReason, startPostgres } from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';

/**
 * `forewarn central` for a fleet, all real: two agents (their own processes, simulator on), mosquitto,
 * PostgreSQL 15, two central workers sharing the batches through a shared subscription, and Prometheus
 * Alertmanager with a webhook receiver. One agent fails (SIGKILL: its Will says offline) and comes back: the
 * agent-offline alert reaches the receiver through Alertmanager once and resolves once. One worker is killed with
 * SIGKILL mid-run and restarted, and PostgreSQL is crashed (pg_ctl -m immediate) and restarted; afterwards every
 * seq each agent committed is in PostgreSQL, or still in that agent's outbox.
 */

const cleanup = cleanupAfterEach();
const pgSkip = postgresSkipReason() ?? alertmanagerSkipReason();
const STREAMS = ['alerts', 'risk', 'events', 'telemetry'] as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function worker(id: string, store: string, broker: string, alertmanager: string): AgentProcess {
  const dir = mkdtempSync(path.join(tmpdir(), `fw-central-${id}-`));
  const args = ['central', '--store', store, '--broker', broker, '--client-id', id, '--no-api', '--alertmanager', alertmanager, '--agent-offline', '4s'];
  const w = spawnAgent(args, dir, '', { FOREWARN_LOG_LEVEL: 'info' });
  cleanup.push(() => killAgent(w));
  return w;
}

describe.skipIf(pgSkip !== null)(`forewarn central on PostgreSQL with two workers and Alertmanager${pgSkip ? ` (skipped: ${pgSkip})` : ''}`, () => {
  it('routes an agent failure once and its end once, and loses no committed seq through a worker killed mid-run and a PostgreSQL crash', async () => {
    const pg = await startPostgres();
    cleanup.push(() => pg.destroy());
    const store = pg.createDatabase('fleet');
    const broker = await startMosquitto({ extraConfig: ['max_queued_messages 0'] });
    cleanup.push(() => broker.stop());

    const receiver = await startHttpReceiver();
    cleanup.push(() => receiver.close());
    const am = await startAlertmanager({
      webhookUrl: `${receiver.url}/hook`,
      groupBy: ['alertname', 'agent'],
      groupWait: '1s',
      groupInterval: '2s',
      repeatInterval: '1h',
    });
    cleanup.push(() => am.stop());
    const workers = [worker('central-w1', store, broker.url, am.url), worker('central-w2', store, broker.url, am.url)];
    for (const w of workers) await waitFor(() => w.logs().some((l) => l.msg === 'subscriber connected'), 'a worker connected', 30_000);

    const agentIds = ['fleet-a1', 'fleet-a2'];
    const agents = agentIds.map((id) => {
      const a = startAgent({
        agent: { id, view: 'off' },
        broker: { url: broker.url, flushIntervalMs: 100, reconnectMinMs: 200, reconnectMaxMs: 1000, batchMaxRecords: 100 },
        sources: { host: { intervalMs: 500 }, simulator: { transport: 'direct', speedup: 3000 } },
      });
      cleanup.push(() => killAgent(a));
      return a;
    });

    const reader = await CentralStore.open({ url: store, readonly: true });
    cleanup.push(() => reader.close());
    const stored = async (agentId: string) => (await reader.sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM records WHERE agent_id = ?', [agentId]))!.n;
    for (const id of agentIds) await waitFor(async () => (await stored(id)) > 50, `records of ${id} in PostgreSQL`, 60_000);

    // An agent fails: its Will says offline; after --agent-offline central raises agent-offline, once, through
    // Alertmanager to the receiver; the agent comes back and the alert resolves, once.
    const notifications = (status: string) =>
      receiver.received.flatMap((r) =>
        ((r.body as { alerts?: Array<{ status: string; labels: Record<string, string> }> }).alerts ?? []).filter(
          (a) => a.labels.alertname === 'agent-offline' && a.labels.agent === 'fleet-a2' && a.status === status,
        ),
      );
    agents[1]!.proc.kill('SIGKILL');
    await agents[1]!.exited;
    await waitFor(() => notifications('firing').length > 0, 'agent-offline firing at the webhook receiver', 90_000);
    agents[1] = spawnAgent(['run', '--config', agents[1]!.configFile], agents[1]!.dir, agents[1]!.configFile);
    cleanup.push(() => killAgent(agents[1]!));
    await waitFor(() => notifications('resolved').length > 0, 'agent-offline resolved at the webhook receiver', 90_000);

    // A worker dies mid-batch; its unacknowledged messages go to the other, or come back to it.
    workers[0]!.proc.kill('SIGKILL');
    await workers[0]!.exited;
    await sleep(1500);
    workers[0] = worker('central-w1', store, broker.url, am.url);
    await waitFor(() => workers[0]!.logs().some((l) => l.msg === 'subscriber connected'), 'the worker back', 30_000);

    // The database crashes: ingest pauses without acknowledging, and resumes when it is back.
    const before = await stored('fleet-a1');
    pg.stop('immediate');
    await sleep(3000);
    pg.start();
    await waitFor(async () => (await stored('fleet-a1').catch(() => 0)) > before + 20, 'ingest resumed after the database came back', 90_000).catch(
      (err: unknown) => {
        throw new Error(`${String(err)}\nworkers:\n${workers.map((w) => w.output().slice(-3000)).join('\n---\n')}`);
      },
    );

    // A few more seconds of ingest with both workers up, so the restarted one gets its share of new batches too (on
    // a loaded machine the first batches after the database came back could all go to the other).
    await sleep(5000);
    for (const a of agents) {
      a.proc.kill('SIGTERM');
      expect((await a.exited).code, a.output().slice(-2000)).toBe(0);
    }
    // Every seq each agent committed: in PostgreSQL, or still in its outbox (to go out at its next start).
    const books = async () => {
      const out: Array<{ agentId: string; stream: string; committed: number; lost: number[] }> = [];
      for (const [i, agentId] of agentIds.entries()) {
        const outbox = new RecordStore({ dir: path.join(agents[i]!.dir, 'data'), readonly: true });
        try {
          for (const stream of STREAMS) {
            const c = outbox.counts().find((x) => x.stream === stream)!;
            const buffered = new Set(outbox.pending(stream, 1_000_000).map((r) => r.seq));
            const have = new Set(
              (await reader.sql.all<{ seq: number }>('SELECT seq FROM records WHERE agent_id = ? AND stream = ?', [agentId, stream])).map((r) => r.seq),
            );
            const lost: number[] = [];
            for (let q = c.firstSeq; q <= c.lastSeq; q++) if (!have.has(q) && !buffered.has(q)) lost.push(q);
            out.push({ agentId, stream, committed: c.lastSeq - c.firstSeq + 1, lost });
          }
        } finally {
          outbox.close();
        }
      }
      return out;
    };
    const settled = await waitFor(
      async () => {
        const b = await books();
        return b.every((x) => x.lost.length === 0) ? b : null;
      },
      'central to hold every committed seq',
      60_000,
    ).catch(async () => books());
    for (const b of settled) expect(b.lost, `${b.agentId}/${b.stream}: committed ${b.committed}, lost`).toEqual([]);
    expect(settled.find((b) => b.stream === 'telemetry')!.committed).toBeGreaterThan(50);

    // Routed once, resolved once: no repeat from the other worker, from resends, or from the restarts above.
    expect(notifications('firing')).toHaveLength(1);
    expect(notifications('resolved')).toHaveLength(1);

    const summary = await reader.summary();
    for (const s of summary.streams) expect(s.conflicts, `${s.agentId}/${s.stream}`).toBe(0);
    // Both workers took a share of the batches.
    for (const w of workers) {
      w.proc.kill('SIGTERM');
      expect((await w.exited).code, w.output().slice(-2000)).toBe(0);
    }
    // What each worker committed, from the summary it prints when it stops: the shared subscription split the work.
    const committed = workers.map((w) => Number(/(\d+) messages, /.exec(w.output())?.[1] ?? 0));
    expect(
      committed.every((n) => n > 0),
      `messages per worker: ${committed.join(', ')}`,
    ).toBe(true);
  }, 300_000);
});
