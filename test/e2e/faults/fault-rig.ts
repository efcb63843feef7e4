import { cpSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'vitest';
import { RecordStore } from '../../../agent/src/store/record-store.js';
import { STREAMS, type StreamName } from '../../../agent/src/store/outbox.js';
import { ReferenceSubscriber } from '../../../agent/src/central/ingest-worker.js';
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

/** `FOREWARN_SOAK=1 npx vitest run test/e2e/faults`: the long campaign (20 broker restarts, 100 SIGKILLs). */
export const SOAK = process.env.FOREWARN_SOAK === '1';

export interface RigOptions {
  /** Agent `broker` options over the rig's. */
  broker?: Record<string, unknown>;
  /** The reference subscriber's reconnect delays: slower than the agent's when it must come back after it. */
  subscriberReconnect?: { minMs: number; maxMs: number };
  /** The agent's data directory (default: inside the rig's temp dir), e.g. on a small tmpfs. */
  dataDir?: string;
  /** Environment of every agent process (e.g. libfaketime's). */
  env?: NodeJS.ProcessEnv;
}

export interface Rig {
  agentId: string;
  broker: Broker;
  proxy: TcpProxy;
  subscriber: ReferenceSubscriber;
  /** The central store's SQLite file, read directly by the books. */
  centralFile: string;
  dir: string;
  configFile: string;
  /** Agent processes started so far, oldest first. */
  agents: AgentProcess[];
  /** The agent's storage directory. */
  dataDir: string;
  /**
   * Keeps the current database file (and its WAL) reachable through hard links before it is deleted or wiped,
   * so the books can still read every seq it held once the agent has moved on.
   */
  witness(): void;
  startAgent(): AgentProcess;
  /** SIGKILL, at once, and wait for the exit. */
  kill(agent: AgentProcess): Promise<void>;
  /** SIGTERM and wait for a clean exit. */
  stop(agent: AgentProcess): Promise<void>;
  close(): Promise<void>;
}

export async function startRig(agentId: string, storage: Record<string, unknown> = {}, options: RigOptions = {}): Promise<Rig> {
  // The subscriber may lag while an agent drains a backlog: mosquitto must queue for it without a cap.
  const broker = await startMosquitto({ extraConfig: ['max_queued_messages 0'] });
  const proxy = await startTcpProxy(broker.port);
  const centralFile = path.join(mkdtempSync(path.join(tmpdir(), 'fw-central-')), 'central.db');
  const subscriber = new ReferenceSubscriber({
    url: broker.url,
    clientId: `central-${agentId}`,
    store: centralFile,
    log: captureLogger().log,
    reconnectMinMs: options.subscriberReconnect?.minMs ?? 100,
    reconnectMaxMs: options.subscriberReconnect?.maxMs ?? 500,
    // The rig runs time fast (sources every 250 ms, the agent's ackTimeoutMs 3 s): acks at that pace too, where
    // the 5 s default would leave every record unconfirmed past the agent's timeout and sent again.
    ackIntervalMs: 500,
  });
  await subscriber.start();
  await waitFor(() => subscriber.stats.state === 'online', 'the subscriber online');
  const home = mkdtempSync(path.join(tmpdir(), 'fw-fault-'));
  const dataDir = options.dataDir ?? path.join(home, 'data');
  const witnesses = path.join(home, 'witnesses');
  const { dir, file } = writeAgentConfig(
    {
      agent: { id: agentId, view: 'off', logLevel: 'info' },
      storage: { dir: dataDir, synchronous: 'full', ...storage },
      broker: {
        url: proxy.url,
        keepaliveSeconds: KEEPALIVE_S,
        connectTimeoutMs: 2000,
        flushIntervalMs: 50,
        reconnectMinMs: 200,
        reconnectMaxMs: 1000,
        batchMaxRecords: 50,
        progressLogMs: 500,
        ackTimeoutMs: 3000,
        ...options.broker,
      },
      // About 200 records a second: a reading and a score per simulated process, plus host telemetry.
      sources: { host: { intervalMs: 250 }, simulator: { transport: 'direct', speedup: 6000 } },
    },
    home,
  );
  const agents: AgentProcess[] = [];
  const rig: Rig = {
    agentId,
    broker,
    proxy,
    subscriber,
    centralFile,
    dir,
    configFile: file,
    agents,
    dataDir,
    witness() {
      const db = path.join(dataDir, 'forewarn.db');
      if (!existsSync(db)) return;
      const to = path.join(witnesses, String(readdirSafe(witnesses).length));
      mkdirSync(to, { recursive: true });
      for (const suffix of ['', '-wal']) if (existsSync(db + suffix)) linkSync(db + suffix, path.join(to, `forewarn.db${suffix}`));
    },
    startAgent() {
      const a = spawnAgent(['run', '--config', file], dir, file, options.env);
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
  /** Records that filled a gap the subscriber had asked the agent to fill. */
  repaired: number;
  /** The current database file's range. */
  first: number;
  last: number;
}

function readdirSafe(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** Every database file the agent used in this rig: the witnessed earlier ones (copied, so reading them changes nothing) and the current one. */
function agentFiles(rig: Rig): string[] {
  const home = path.dirname(rig.configFile);
  const out: string[] = [];
  for (const w of readdirSafe(path.join(home, 'witnesses')).sort((a, b) => Number(a) - Number(b))) {
    const copy = mkdtempSync(path.join(tmpdir(), 'fw-witness-'));
    cpSync(path.join(home, 'witnesses', w), copy, { recursive: true });
    out.push(copy);
  }
  if (existsSync(path.join(rig.dataDir, 'forewarn.db'))) out.push(rig.dataDir);
  return out;
}

/**
 * One stream's books over every database file the agent used: the seqs each file assigned (firstSeq..lastSeq),
 * those still buffered in the current file (carried-over ones included), received at the centre, announced as
 * dropped by the agent (the notices the centre received) and kept as dropped there (announced and never received).
 */
function classify(rig: Rig, stream: StreamName) {
  const files = agentFiles(rig);
  const committed = new Set<number>();
  let droppedTotal = 0;
  let buffered = new Set<number>();
  let first = 0;
  let last = 0;
  files.forEach((dir, i) => {
    const agentDb = new RecordStore({ dir, readonly: true });
    try {
      const c = agentDb.counts().find((x) => x.stream === stream)!;
      for (let q = c.firstSeq; q <= c.lastSeq; q++) committed.add(q);
      // A file that replaced one deleted under the agent took over its counters: they are not added twice.
      const head = agentDb.heldRecords('events', c.firstSeq, c.firstSeq, 1)[0]?.json;
      const cause = head ? (JSON.parse(head) as { type?: string; cause?: string }).cause : undefined;
      droppedTotal = cause === 'removed' ? c.droppedTotal : droppedTotal + c.droppedTotal;
      if (i === files.length - 1) {
        buffered = new Set(agentDb.pending(stream, 1_000_000).map((r) => r.seq));
        first = c.firstSeq;
        last = c.lastSeq;
      }
    } finally {
      agentDb.close();
    }
  });
  const central = new Database(rig.centralFile, { readonly: true });
  const received = new Set(
    central.prepare('SELECT seq FROM records WHERE agent_id = ? AND stream = ? ORDER BY seq').pluck().all(rig.agentId, stream) as number[],
  );
  const dropped = new Set<number>();
  for (const r of central.prepare('SELECT from_seq, to_seq FROM dropped WHERE agent_id = ? AND stream = ?').all(rig.agentId, stream) as Array<{
    from_seq: number;
    to_seq: number;
  }>) {
    for (let q = r.from_seq; q <= r.to_seq; q++) dropped.add(q);
  }
  const announced = new Set<number>();
  for (const e of centralEvents(rig)) {
    if (e.type === 'records-dropped' && e.stream === stream)
      for (const [a, b] of (e.ranges as Array<[number, number]>) ?? []) for (let q = a; q <= b; q++) announced.add(q);
  }
  let conflicts = 0;
  try {
    conflicts = (central.prepare('SELECT COUNT(*) AS n FROM conflicts WHERE agent_id = ? AND stream = ?').get(rig.agentId, stream) as { n: number }).n;
  } catch {
    // a subscriber database without the table has none
  }
  central.close();
  return { first, last, committed, droppedTotal, buffered, received, dropped, announced, conflicts };
}

/**
 * Waits until the subscriber has caught up with everything the (stopped) agent sent, then checks the books of
 * every stream over every database file the agent used: each committed seq was received (once: a copy with other
 * content is a conflict, never a duplicate), or dropped by policy and announced, or is still buffered in the
 * agent's outbox; nothing was received that was never committed; the agent's drop counter matches what it announced.
 */
export async function account(rig: Rig): Promise<StreamAccount[]> {
  const settled = (stream: StreamName) => {
    const k = classify(rig, stream);
    return [...k.committed].every((q) => k.received.has(q) || k.dropped.has(q) || k.buffered.has(q));
  };
  // Not caught up in time: the checks below then say which seqs are missing.
  await waitFor(() => STREAMS.every(settled), 'the subscriber to catch up with every stream', 60_000).catch(() => undefined);
  const summary = await rig.subscriber.store.summary();
  return STREAMS.map((stream) => {
    const k = classify(rig, stream);
    const lost = [...k.committed].filter((q) => !k.received.has(q) && !k.dropped.has(q) && !k.buffered.has(q));
    if (lost.length) expect.fail(`${stream}: ${lost.length} seqs lost (neither received, dropped nor buffered), e.g. ${lost.slice(0, 5).join(', ')}`);
    for (const q of k.dropped) if (k.received.has(q)) expect.fail(`${stream} seq ${q} both received and kept as dropped`);
    for (const q of k.received) if (!k.committed.has(q)) expect.fail(`${stream} seq ${q} received but never committed`);
    for (const q of k.dropped) if (!k.announced.has(q)) expect.fail(`${stream} seq ${q} kept as dropped without an announcement`);
    expect(k.conflicts, `${stream}: seqs received twice with different content`).toBe(0);
    // The agent's own count of drops agrees with the ranges it announced.
    expect(k.announced.size, `${stream}: announced drops vs the agent's counter`).toBe(k.droppedTotal);
    const s = summary.streams.find((x) => x.agentId === rig.agentId && x.stream === stream);
    return {
      stream,
      committed: k.committed.size,
      received: [...k.received].filter((q) => k.committed.has(q)).length,
      dropped: k.dropped.size,
      stillBuffered: [...k.buffered].filter((q) => !k.received.has(q)).length,
      duplicates: s?.duplicates ?? 0,
      outOfOrder: s?.outOfOrder ?? 0,
      repaired: (s as { repaired?: number } | undefined)?.repaired ?? 0,
      first: k.first,
      last: k.last,
    };
  });
}

/** The `events` records the subscriber stored for this agent, parsed, in seq order. */
export function centralEvents(rig: Rig): Array<Record<string, unknown>> {
  const db = new Database(rig.centralFile, { readonly: true });
  try {
    return (db.prepare("SELECT payload FROM records WHERE agent_id = ? AND stream = 'events' ORDER BY seq").pluck().all(rig.agentId) as string[]).map(
      (p) => JSON.parse(p) as Record<string, unknown>,
    );
  } finally {
    db.close();
  }
}

/** Records in the agent's outbox not yet acknowledged, read beside the running agent. */
export function agentPending(rig: Rig): number {
  const db = new RecordStore({ dir: rig.dataDir, readonly: true });
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
  await waitFor(() => agentPending(rig) < 300, 'the agent to drain its backlog', 60_000).catch(async (err: unknown) => {
    // Say where it is stuck: what the centre waits for, and what the agent still holds.
    const all = await rig.subscriber.store.summary();
    const summary = all.streams.filter((x) => x.agentId === rig.agentId);
    throw new Error(
      `${String(err)}; centre: ${JSON.stringify(summary.map((x) => ({ stream: x.stream, highest: x.highestSeq, gaps: x.gaps.slice(0, 3) })))}; agent pending: ${agentPending(rig)}; subscriber: ${JSON.stringify(rig.subscriber.stats)} ${JSON.stringify(all.malformed)}; agent log: ${agent
        .output()
        .split('\n')
        .filter((l) => /FW_ERR|again|unavailable|acknowledg|reachable|lost the/.test(l))
        .join('\n')
        .slice(-4000)}`,
    );
  });
  await rig.stop(agent);
  const books = await account(rig);
  for (const b of books) expect(b.outOfOrder, `${b.stream} out of order at the subscriber`).toBe(0);
  // Nothing the subscriber waits for in vain: every gap it saw was filled or explained, or is still buffered by
  // the agent (stopped before its next resend) and goes out on its next start.
  for (const s of (await rig.subscriber.store.summary()).streams.filter((x) => x.agentId === rig.agentId)) {
    const k = classify(rig, s.stream as StreamName);
    for (const g of s.gaps)
      for (let q = g.from; q <= g.to; q++) if (!k.buffered.has(q)) expect.fail(`${s.stream}: seq ${q} missing at the subscriber and not buffered by the agent`);
  }
  const main = books.find((b) => b.stream === 'telemetry')!;
  expect(main.committed).toBeGreaterThan(0);
  return books;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
