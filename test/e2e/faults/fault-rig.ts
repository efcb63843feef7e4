import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'vitest';
import { RecordStore } from '../../../agent/src/store/record-store.js';
import { STREAMS, type StreamName } from '../../../agent/src/store/outbox.js';
import { ReferenceSubscriber } from '../../../agent/src/subscriber/reference-subscriber.js';
import { spawnAgent, writeAgentConfig, type AgentProcess } from '../../helpers/agent-process.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { startMosquitto, type Broker } from '../../helpers/mosquitto.js';
import { startTcpProxy, type TcpProxy } from '../../helpers/tcp-proxy.js';
import { waitFor } from '../../helpers/wait.js';

/**
 * The fault suite's rig: a real mosquitto, our TCP proxy between it and the real agent process, and the
 * reference subscriber (directly on the broker) counting what arrived. `account()` checks the promise of the
 * delivery design for every stream: each seq the agent committed was received once after deduplication, or
 * was dropped by policy and announced, or is still in the agent's outbox — nothing else — and the subscriber
 * saw each stream in order.
 */

export const KEEPALIVE_S = 5;

export interface Rig {
  agentId: string;
  broker: Broker;
  proxy: TcpProxy;
  subscriber: ReferenceSubscriber;
  dir: string;
  configFile: string;
  /** Agent processes started so far, oldest first. */
  agents: AgentProcess[];
  startAgent(): AgentProcess;
  /** SIGKILL, at once, and wait for the exit. */
  kill(agent: AgentProcess): Promise<void>;
  /** SIGTERM and wait for a clean exit. */
  stop(agent: AgentProcess): Promise<void>;
  close(): Promise<void>;
}

export async function startRig(agentId: string, storage: Record<string, unknown> = {}): Promise<Rig> {
  // The subscriber may lag while an agent drains a backlog: mosquitto must queue for it without a cap.
  const broker = await startMosquitto({ extraConfig: ['max_queued_messages 0'] });
  const proxy = await startTcpProxy(broker.port);
  const subDir = mkdtempSync(path.join(tmpdir(), 'fw-central-'));
  const subscriber = new ReferenceSubscriber({
    url: broker.url,
    clientId: `central-${agentId}`,
    dbFile: path.join(subDir, 'central.db'),
    log: captureLogger().log,
    reconnectMinMs: 100,
    reconnectMaxMs: 500,
  });
  await subscriber.start();
  await waitFor(() => subscriber.stats.state === 'online', 'the subscriber online');
  const home = mkdtempSync(path.join(tmpdir(), 'fw-fault-'));
  const { dir, file } = writeAgentConfig({
    agent: { id: agentId, view: 'off', logLevel: 'info' },
    storage: { dir: path.join(home, 'data'), synchronous: 'full', ...storage },
    broker: {
      url: proxy.url,
      keepaliveSeconds: KEEPALIVE_S,
      connectTimeoutMs: 2000,
      flushIntervalMs: 50,
      reconnectMinMs: 200,
      reconnectMaxMs: 1000,
      batchMaxRecords: 50,
      progressLogMs: 500,
    },
    // About 200 records a second: a reading and a score per simulated process, plus host telemetry.
    sources: { host: { intervalMs: 250 }, simulator: { transport: 'direct', speedup: 6000 } },
  }, home);
  const agents: AgentProcess[] = [];
  const rig: Rig = {
    agentId,
    broker,
    proxy,
    subscriber,
    dir,
    configFile: file,
    agents,
    startAgent() {
      const a = spawnAgent(['run', '--config', file], dir, file);
      agents.push(a);
      return a;
    },
    async kill(a) {
      if (a.proc.exitCode === null && a.proc.signalCode === null) a.proc.kill('SIGKILL');
      await a.exited;
    },
    async stop(a) {
      a.proc.kill('SIGTERM');
      const { code } = await a.exited;
      expect(code, a.output().slice(-3000)).toBe(0);
    },
    async close() {
      for (const a of agents) await rig.kill(a);
      await subscriber.stop();
      await proxy.stop();
      await broker.stop();
    },
  };
  return rig;
}

export interface StreamAccount {
  stream: StreamName;
  committed: number;
  received: number;
  dropped: number;
  stillBuffered: number;
  duplicates: number;
  outOfOrder: number;
}

/** Seqs 1..n of one stream, each exactly one of received / dropped / still buffered, as sets. */
function classify(rig: Rig, stream: StreamName) {
  const agentDb = new RecordStore({ dir: path.join(rig.dir, 'data'), readonly: true });
  try {
    const c = agentDb.counts().find((x) => x.stream === stream)!;
    const buffered = new Set(agentDb.pending(stream, 1_000_000).map((r) => r.seq));
    const received = new Set(rig.subscriber.store.receivedSeqs(rig.agentId, stream));
    const central = new Database(rig.subscriber.store.file, { readonly: true });
    const dropped = new Set<number>();
    for (const r of central.prepare('SELECT from_seq, to_seq FROM dropped WHERE agent_id = ? AND stream = ?').all(rig.agentId, stream) as Array<{ from_seq: number; to_seq: number }>) {
      for (let q = r.from_seq; q <= r.to_seq; q++) dropped.add(q);
    }
    central.close();
    return { first: c.firstSeq, last: c.lastSeq, committed: c.lastSeq - c.firstSeq + 1, droppedTotal: c.droppedTotal, buffered, received, dropped };
  } finally {
    agentDb.close();
  }
}

/**
 * Waits until the subscriber has caught up with everything the (stopped) agent sent, then checks the
 * accounting of every stream. Call after the last agent process exited.
 */
export async function account(rig: Rig): Promise<StreamAccount[]> {
  const settled = (stream: StreamName) => {
    const k = classify(rig, stream);
    const mine = (set: Set<number>) => [...set].filter((q) => q >= k.first).length;
    return mine(k.received) + mine(k.dropped) + k.buffered.size >= k.committed;
  };
  await waitFor(() => STREAMS.every(settled), 'the subscriber to catch up with every stream', 60_000);
  const summary = rig.subscriber.store.summary();
  return STREAMS.map((stream) => {
    const k = classify(rig, stream);
    for (let q = k.first; q <= k.last; q++) {
      const where = [k.received.has(q) && 'received', k.dropped.has(q) && 'dropped', k.buffered.has(q) && 'buffered'].filter(Boolean);
      if (where.length !== 1) expect.fail(`${stream} seq ${q}: ${where.length ? where.join(' and ') : 'lost: neither received, dropped nor buffered'}`);
    }
    // Seqs below `first` belong to an earlier database file of the same agent (set aside after damage).
    const own = (set: Set<number>) => [...set].filter((q) => q >= k.first);
    for (const q of own(k.received)) if (q > k.last) expect.fail(`${stream} seq ${q} received but never committed`);
    // The agent's own count of drops agrees with the ranges it announced.
    expect(own(k.dropped).length, `${stream}: announced drops vs the agent's counter`).toBe(k.droppedTotal);
    const s = summary.streams.find((x) => x.agentId === rig.agentId && x.stream === stream);
    return {
      stream,
      committed: k.committed,
      received: own(k.received).length,
      dropped: own(k.dropped).length,
      stillBuffered: k.buffered.size,
      duplicates: s?.duplicates ?? 0,
      outOfOrder: s?.outOfOrder ?? 0,
    };
  });
}

/** Records in the agent's outbox not yet acknowledged, read beside the running agent. */
export function agentPending(rig: Rig): number {
  const db = new RecordStore({ dir: path.join(rig.dir, 'data'), readonly: true });
  try {
    return db.pendingTotal();
  } finally {
    db.close();
  }
}

/**
 * The usual end of a case: the network back, the backlog drained, the agent stopped gracefully, then the books
 * checked. What the agent still holds at the end is accounted as buffered: it goes out on its next start.
 */
export async function settleAndAccount(rig: Rig, agent: AgentProcess): Promise<StreamAccount[]> {
  rig.proxy.restore();
  const connected = (l: Record<string, unknown>) => l.msg === 'connected to the broker' || String(l.msg).startsWith('broker reachable again');
  await waitFor(() => agent.logs().some(connected), 'the agent to have connected', 60_000);
  await waitFor(() => agentPending(rig) < 300, 'the agent to drain its backlog', 60_000);
  await rig.stop(agent);
  const books = await account(rig);
  for (const b of books) expect(b.outOfOrder, `${b.stream} out of order at the subscriber`).toBe(0);
  // Nothing the subscriber still waits for: every gap it saw was filled or explained.
  for (const s of rig.subscriber.store.summary().streams.filter((x) => x.agentId === rig.agentId)) {
    expect(s.gaps, `${s.stream}: open gaps at the subscriber`).toEqual([]);
  }
  const main = books.find((b) => b.stream === 'telemetry')!;
  expect(main.committed).toBeGreaterThan(0);
  return books;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
