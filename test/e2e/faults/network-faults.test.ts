import { describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/agent-process.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { waitFor } from '../../helpers/wait.js';
import { KEEPALIVE_S, settleAndAccount, sleep, startRig } from './fault-rig.js';

/**
 * Fault suite, network side: the real agent process streams through our TCP proxy to a real mosquitto while
 * the broker restarts and the link is cut hard or left half-open for longer than the keepalive. Afterwards
 * every committed record is accounted for at the reference subscriber, in order.
 */

const cleanup = cleanupAfterEach();

describe('delivery under network faults', () => {
  it('survives the broker restarted again and again during a stream', async () => {
    const rig = await startRig('fault-restart');
    cleanup.push(() => rig.close());
    const agent = rig.startAgent();
    await waitFor(() => rig.subscriber.stats.records > 200, 'records flowing');
    for (const downMs of [300, 1500, 700]) {
      await rig.broker.restart();
      // restart() waits for the port; hold the broker's absence a little longer on some rounds
      await sleep(downMs);
      const before = rig.subscriber.stats.records;
      await waitFor(() => rig.subscriber.stats.records > before + 100, 'records flowing again after the restart', 30_000);
    }
    const books = await settleAndAccount(rig, agent);
    const telemetry = books.find((b) => b.stream === 'telemetry')!;
    expect(telemetry.received).toBeGreaterThan(300);
    expect(books.reduce((n, b) => n + b.dropped, 0)).toBe(0);
    expect(agent.logs().filter((l) => String(l.msg).includes('lost the broker connection')).length).toBeGreaterThanOrEqual(3);
  }, 120_000);

  it('survives a hard network cut longer than the keepalive, drains the backlog and shows its progress', async () => {
    const rig = await startRig('fault-cut');
    cleanup.push(() => rig.close());
    const agent = rig.startAgent();
    await waitFor(() => rig.subscriber.stats.records > 200, 'records flowing');
    rig.proxy.cut();
    await sleep(KEEPALIVE_S * 1000 * 1.6);
    // A backlog of well over a thousand records is waiting: status says so, and that it is not moving.
    const status = JSON.parse((await runCli(['status', '--config', rig.configFile, '--json'])).stdout) as {
      drain: { left: number; etaSeconds: number | null } | null;
      streams: Array<{ stream: string; pending: number }>;
    };
    expect(status.drain?.left).toBeGreaterThanOrEqual(1000);
    expect(status.drain?.etaSeconds).toBeNull();
    rig.proxy.restore();
    await waitFor(() => agent.logs().some((l) => l.msg === 'backlog drained'), 'the backlog drained', 60_000);
    // The logs said so too: the backlog waiting while offline, then drained.
    const waiting = agent.logs().filter((l) => l.msg === 'backlog waiting for the broker');
    expect(waiting.some((l) => Number(l.left) >= 1000 && l.etaSeconds === null)).toBe(true);
    expect(Number(agent.logs().find((l) => l.msg === 'backlog drained')!.records)).toBeGreaterThanOrEqual(1000);
    const books = await settleAndAccount(rig, agent);
    expect(books.find((b) => b.stream === 'telemetry')!.received).toBeGreaterThan(500);
    // Replayed records reached the subscriber flagged as historical.
    expect(historicalCount(rig.subscriber.store.file, 'fault-cut')).toBeGreaterThan(0);
  }, 120_000);

  it('survives a half-open link longer than the keepalive', async () => {
    const rig = await startRig('fault-halfopen');
    cleanup.push(() => rig.close());
    const agent = rig.startAgent();
    await waitFor(() => rig.subscriber.stats.records > 200, 'records flowing');
    rig.proxy.halfOpen();
    // The agent only notices through its keepalive: no error, no FIN, just silence.
    await waitFor(() => agent.logs().some((l) => String(l.msg).includes('lost the broker connection')), 'the agent to notice the dead link', KEEPALIVE_S * 4000);
    await sleep(KEEPALIVE_S * 1000);
    expect(rig.proxy.bytesDropped().up).toBeGreaterThan(0);
    const books = await settleAndAccount(rig, agent);
    expect(books.find((b) => b.stream === 'telemetry')!.received).toBeGreaterThan(500);
  }, 120_000);
});

import Database from 'better-sqlite3';
function historicalCount(file: string, agentId: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM records WHERE agent_id = ? AND historical = 1').get(agentId) as { n: number }).n;
  } finally {
    db.close();
  }
}
