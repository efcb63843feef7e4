import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { describe, expect, it, vi } from 'vitest';
import type { AckPayload } from '../../../agent/src/contract/topics.js';
import { ReferenceSubscriber, type ReferenceSubscriberOptions } from '../../../agent/src/central/ingest-worker.js';
import { runSubscribeCommand } from '../../../agent/src/central/subscribe-command.js';
import { CentralStore } from '../../../agent/src/central/central-store.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { channelFor, contractErrors } from '../../helpers/contract.js';
import { startMosquitto, type Broker, type MosquittoOptions } from '../../helpers/mosquitto.js';
import { seededRandom } from '../../helpers/seeded-random.js';
import { waitFor } from '../../helpers/wait.js';

/**
 * The reference subscriber's side of end-to-end acknowledgement (issue #11), the accounting it feeds, and the
 * agent status it keeps, against a real mosquitto.
 */

const cleanup = cleanupAfterEach();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function broker(options: MosquittoOptions = {}): Promise<Broker> {
  const b = await startMosquitto(options);
  cleanup.push(() => b.stop());
  return b;
}

let clients = 0;
async function client(b: Broker, options: IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(b.url, { protocolVersion: 5, clientId: `test-${process.pid}-${++clients}`, reconnectPeriod: 0, ...options });
  cleanup.push(() => c.end(true));
  return c;
}

const dbFile = () => path.join(mkdtempSync(path.join(tmpdir(), 'fw-sub-ack-')), 'central.db');

async function subscriber(b: Broker, over: Partial<ReferenceSubscriberOptions> = {}) {
  const capture = captureLogger();
  const sub = new ReferenceSubscriber({
    url: b.url,
    clientId: `central-${++clients}`,
    store: dbFile(),
    log: capture.log,
    reconnectMinMs: 50,
    reconnectMaxMs: 200,
    random: seededRandom(11),
    ...over,
  });
  cleanup.push(() => sub.stop());
  const subscribed = new Promise<{ refused: string[] }>((resolve) => sub.once('subscribed', resolve));
  await sub.start();
  expect((await subscribed).refused).toEqual([]);
  return { sub, ...capture };
}

const body = (agentId: string, stream: string, seqs: number[], asset = 'm1') =>
  JSON.stringify({ schemaVersion: 1, agentId, stream, bootSeq: 1, records: seqs.map((seq) => ({ seq, ts: 1_700_000_000_000 + seq, asset })) });

async function publish(agent: MqttClient, agentId: string, stream: string, seqs: number[], asset = 'm1'): Promise<void> {
  await agent.publishAsync(`forewarn/v1/${agentId}/${stream}`, body(agentId, stream, seqs, asset), { qos: 1 });
}

interface AckMessage {
  topic: string;
  payload: AckPayload;
  retain: boolean;
  contentType: string | undefined;
  at: number;
}

/** Collects every ack message a client receives on `filter`. */
async function watchAcks(b: Broker, filter = 'forewarn/v1/+/ack', options: IClientOptions = {}): Promise<AckMessage[]> {
  const seen: AckMessage[] = [];
  const c = await client(b, options);
  c.on('message', (topic, payload, packet) => {
    if (payload.length)
      seen.push({
        topic,
        payload: JSON.parse(String(payload)) as AckPayload,
        retain: packet.retain,
        contentType: packet.properties?.contentType,
        at: Date.now(),
      });
  });
  await c.subscribeAsync(filter, { qos: 1 });
  return seen;
}

/** The ack the broker retains for `agentId` now, as a client subscribing afresh gets it (undefined: none). */
async function retainedAck(b: Broker, agentId: string): Promise<AckMessage | undefined> {
  const seen = await watchAcks(b, `forewarn/v1/${agentId}/ack`);
  await waitFor(() => seen.length > 0, 'a retained ack', 1000).catch(() => undefined);
  return seen[0];
}

describe('ReferenceSubscriber end-to-end acknowledgement, against a real mosquitto', () => {
  it('publishes a retained ack computed from the database after the commit; what it lists as missing and then arrives counts as repaired', async () => {
    const b = await broker();
    const agent = await client(b);
    const seen = await watchAcks(b);
    const { sub } = await subscriber(b, { ackIntervalMs: 50 });
    await publish(agent, 'a1', 'telemetry', [1, 2]);
    await publish(agent, 'a1', 'telemetry', [5, 6]); // 3 and 4 went to nobody
    await publish(agent, 'a1', 'alerts', [1]);

    const gap = await waitFor(() => seen.find((m) => m.payload.streams.telemetry?.highest === 6 && m.payload.streams.alerts), 'an ack naming the gap');
    expect(gap.topic).toBe('forewarn/v1/a1/ack');
    expect(gap.payload).toMatchObject({
      schemaVersion: 1,
      agentId: 'a1',
      streams: { telemetry: { through: 2, highest: 6, missing: [[3, 4]] }, alerts: { through: 1, highest: 1 } },
    });
    expect(gap.contentType).toBe('application/json');
    expect(contractErrors(gap.topic, gap.payload)).toEqual([]);
    expect(channelFor(gap.topic)).toMatchObject({ name: 'ack', qos: 1, retain: true });
    // Never ahead of the database: what an ack says was committed before it was sent.
    const committed = Math.max(...(await sub.store.receivedSeqs('a1', 'telemetry')));
    for (const m of seen) expect(m.payload.streams.telemetry!.highest).toBeLessThanOrEqual(committed);
    // Retained: an agent that subscribes later reads it at once.
    const retained = await retainedAck(b, 'a1');
    expect(retained).toMatchObject({ retain: true, payload: { streams: { telemetry: { through: 2, highest: 6, missing: [[3, 4]] } } } });
    expect((await sub.store.summary()).streams.find((s) => s.stream === 'telemetry')).toMatchObject({ missing: 2, requested: 2 });

    // The agent resends what the ack listed.
    await publish(agent, 'a1', 'telemetry', [3, 4]);
    await waitFor(() => seen.some((m) => m.payload.streams.telemetry?.through === 6), 'an ack past the filled gap');
    expect(seen.at(-1)!.payload.streams.telemetry).toEqual({ through: 6, highest: 6 });
    expect(sub.stats).toMatchObject({ repaired: 2, outOfOrder: 0 });
    expect((await sub.store.summary()).streams.find((s) => s.stream === 'telemetry')).toMatchObject({ repaired: 2, outOfOrder: 0, missing: 0, gaps: [] });
    expect((await retainedAck(b, 'a1'))!.payload.streams.telemetry).toEqual({ through: 6, highest: 6 });
    expect(sub.stats.acksPublished).toBe(seen.length);
  });

  it('sends at most one ack per agent per ackIntervalMs, and always one after the last commit', async () => {
    const b = await broker();
    const agent = await client(b);
    const seen = await watchAcks(b);
    const interval = 400;
    const { sub } = await subscriber(b, { ackIntervalMs: interval });
    const started = Date.now();
    for (let i = 0; i < 12; i++) {
      await publish(agent, 'a1', 'risk', [2 * i + 1, 2 * i + 2]);
      await publish(agent, 'a2', 'risk', [i + 1]);
      await sleep(60);
    }
    await waitFor(() => seen.some((m) => m.payload.agentId === 'a1' && m.payload.streams.risk?.highest === 24), 'the trailing ack of a1');
    await waitFor(() => seen.some((m) => m.payload.agentId === 'a2' && m.payload.streams.risk?.highest === 12), 'the trailing ack of a2');
    const elapsed = Date.now() - started;
    for (const agentId of ['a1', 'a2']) {
      const mine = seen.filter((m) => m.payload.agentId === agentId);
      // 24 batches, about 900 ms: a handful of acks, not one per batch.
      expect(mine.length, agentId).toBeLessThanOrEqual(Math.ceil(elapsed / interval) + 1);
      expect(mine.length, agentId).toBeGreaterThanOrEqual(2);
      // Timers may round a millisecond either way.
      for (let i = 1; i < mine.length; i++) expect(mine[i]!.payload.ts - mine[i - 1]!.payload.ts, agentId).toBeGreaterThanOrEqual(interval - 5);
    }
    // Nothing more follows once the last commit is acknowledged.
    const count = seen.length;
    await sleep(interval * 2);
    expect(seen.length).toBe(count);
    expect(sub.stats.acksPublished).toBe(count);
  });

  it('publishes an ack lost with its connection again after the reconnect', async () => {
    const b = await broker();
    const agent = await client(b);
    const seen = await watchAcks(b);
    const { sub } = await subscriber(b, { ackIntervalMs: 50 });
    await publish(agent, 'a1', 'risk', [1]);
    await waitFor(() => seen.some((m) => m.payload.streams.risk?.highest === 1), 'the first ack');

    // The next ack goes into a connection that dies before the broker gets it.
    const c = sub['client'] as MqttClient;
    const swallowed: string[] = [];
    const real = c.publish.bind(c);
    c.publish = ((topic: string, ...rest: unknown[]) => {
      if (topic.endsWith('/ack')) {
        swallowed.push(topic);
        return c;
      }
      return (real as (...a: unknown[]) => MqttClient)(topic, ...rest);
    }) as typeof c.publish;
    await publish(agent, 'a1', 'risk', [2]);
    await waitFor(() => swallowed.length === 1, 'the ack handed to the doomed connection');
    await sleep(150); // the PUBACK of the batch itself has gone out: the broker will not redeliver it
    c.stream.destroy();

    await waitFor(() => seen.some((m) => m.payload.streams.risk?.highest === 2), 'the ack published again on the next connection');
    expect(sub.stats.reconnects).toBeGreaterThanOrEqual(1);
    // It was not a redelivered batch that caused it.
    expect(sub.stats).toMatchObject({ duplicates: 0, records: 2 });
    expect((await retainedAck(b, 'a1'))!.payload.streams.risk).toEqual({ through: 2, highest: 2 });
  });

  it('flushes a pending ack on stop instead of waiting out the interval', async () => {
    const b = await broker();
    const agent = await client(b);
    const seen = await watchAcks(b);
    const { sub } = await subscriber(b, { ackIntervalMs: 10_000 });
    await publish(agent, 'a1', 'events', [1]);
    await waitFor(() => seen.some((m) => m.payload.streams.events?.highest === 1), 'the first ack (not throttled)');
    await publish(agent, 'a1', 'events', [2]);
    await waitFor(async () => (await sub.store.receivedSeqs('a1', 'events')).length === 2, 'the second batch committed');
    const t = Date.now();
    await sub.stop();
    expect(Date.now() - t).toBeLessThan(2500);
    await waitFor(() => seen.some((m) => m.payload.streams.events?.highest === 2), 'the ack flushed by stop', 2000);
  });

  it('logs a refused ack once with the ACL line it needs, forgets what it asked, and acknowledges once the ACL allows it', async () => {
    const agents = ['pattern write forewarn/v1/%u/#', 'pattern read forewarn/v1/%u/ack'];
    const b = await broker({ passwords: { central: 'central-pw', a1: 'a1-pw' }, acl: [...agents, 'user central', 'topic read forewarn/v1/#'] });
    const agent = await client(b, { username: 'a1', password: 'a1-pw', clientId: 'a1' });
    // The agent reads its own ack under the documented pattern.
    const agentSees = await watchAcks(b, 'forewarn/v1/a1/ack', { username: 'a1', password: 'a1-pw', clientId: 'a1-ack-reader' });
    const { sub, lines } = await subscriber(b, { username: 'central', password: 'central-pw', ackIntervalMs: 0 });
    for (const [i, seqs] of [[1, 2], [5], [8]].entries()) {
      await publish(agent, 'a1', 'telemetry', seqs);
      await waitFor(() => sub.stats.acksRefused === i + 1, `refusal ${i + 1}`);
    }
    const refusals = lines.filter((l) => l.code === 'FW_ERR_SUBSCRIBER_ACK');
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({ level: 50, reasonCode: '0x87', acl: 'topic write forewarn/v1/+/ack', topic: 'forewarn/v1/a1/ack' });
    expect(String(refusals[0]!.msg)).toContain('topic write forewarn/v1/+/ack');
    // No ack reached the agent, so nothing was requested: what fills the gaps is late, not repaired.
    expect((await sub.store.summary()).streams[0]).toMatchObject({ missing: 4, requested: 0 });
    expect(agentSees).toEqual([]);

    await b.setAcl([...agents, 'user central', 'topic read forewarn/v1/#', 'topic write forewarn/v1/+/ack']);
    await publish(agent, 'a1', 'telemetry', [9]);
    await waitFor(() => agentSees.some((m) => m.payload.streams.telemetry?.highest === 9), 'the agent reading its ack');
    expect(agentSees.at(-1)!.payload.streams.telemetry).toEqual({
      through: 2,
      highest: 9,
      missing: [
        [3, 4],
        [6, 7],
      ],
    });
    expect((await sub.store.summary()).streams[0]).toMatchObject({ requested: 4 });
    expect(lines.filter((l) => l.code === 'FW_ERR_SUBSCRIBER_ACK')).toHaveLength(1);
  });

  it('publishes no ack with ack: false', async () => {
    const b = await broker();
    const agent = await client(b);
    const seen = await watchAcks(b);
    const { sub } = await subscriber(b, { ack: false, ackIntervalMs: 0 });
    await publish(agent, 'a1', 'risk', [1, 3]);
    await waitFor(() => sub.stats.records === 2, 'the batch committed');
    await sleep(300);
    expect(seen).toEqual([]);
    expect(sub.stats.acksPublished).toBe(0);
    // No ack was sent, so the gap was not requested.
    expect((await sub.store.summary()).streams[0]).toMatchObject({ missing: 1, requested: 0 });
  });

  it('the command acknowledges by default and not with --no-ack', async () => {
    const b = await broker();
    const agent = await client(b);
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    cleanup.push(() => vi.restoreAllMocks());
    for (const [agentId, flags] of [
      ['acked', []],
      ['unacked', ['--no-ack']],
    ] as const) {
      const file = dbFile();
      const stop = new AbortController();
      const running = runSubscribeCommand(['--url', b.url, '--db', file, '--client-id', `central-cmd-${agentId}`, ...flags], captureLogger().log, {
        signal: stop.signal,
      });
      await waitFor(async () => {
        await publish(agent, agentId, 'risk', [1]); // redone until the subscription exists
        const store = await CentralStore.open({ url: file, readonly: true });
        try {
          return (await store.receivedSeqs(agentId, 'risk')).length === 1;
        } finally {
          await store.close();
        }
      }, `the command storing a batch of ${agentId}`);
      stop.abort();
      expect(await running).toBe(0);
    }
    expect((await retainedAck(b, 'acked'))?.payload.streams.risk).toEqual({ through: 1, highest: 1 });
    expect(await retainedAck(b, 'unacked')).toBeUndefined();
  });
});

describe('ReferenceSubscriber accounting and status, against a real mosquitto', () => {
  it('logs records that reuse a stored seq with other content as conflicts, once per agent and stream, and keeps the first', async () => {
    const b = await broker();
    const agent = await client(b);
    const { sub, lines } = await subscriber(b);
    await publish(agent, 'a1', 'risk', [1, 2, 3]);
    await publish(agent, 'a1', 'risk', [2, 3]); // a plain resend: duplicates
    await publish(agent, 'a1', 'risk', [1], 'm2'); // the same seqs, other records
    await publish(agent, 'a1', 'risk', [2, 3], 'm2');
    await publish(agent, 'a1', 'alerts', [1]);
    await publish(agent, 'a1', 'alerts', [1], 'm9');
    await waitFor(() => sub.stats.messages === 6, 'six messages');
    expect(sub.stats).toMatchObject({ records: 4, duplicates: 2, conflicts: 4 });
    const logged = lines.filter((l) => l.code === 'FW_ERR_SEQ_CONFLICT');
    expect(logged.map((l) => [l.agentId, l.stream, l.level])).toEqual([
      ['a1', 'risk', 50],
      ['a1', 'alerts', 50],
    ]);
    expect(logged[0]).toMatchObject({ seqs: [1] });
    const risk = (await sub.store.summary()).streams.find((s) => s.stream === 'risk');
    expect(risk).toMatchObject({ received: 3, duplicates: 2, conflicts: 3 });
    expect((await sub.store.storedConflicts('a1', 'risk')).map((c) => [c.seq, (JSON.parse(c.payload) as { asset: string }).asset])).toEqual([
      [1, 'm2'],
      [2, 'm2'],
      [3, 'm2'],
    ]);
  });

  it("shows an agent whose connection died as offline: the broker's Will wins although it carries an older ts", async () => {
    const b = await broker();
    const { sub } = await subscriber(b);
    const status = { schemaVersion: 1, agentId: 'a9', bootSeq: 3, agentVersion: '0.1.0' };
    const connectedAt = 1_700_000_000_000;
    const will = { ...status, state: 'offline', reason: 'connection-lost', ts: connectedAt };
    const agent = await client(b, {
      clientId: 'a9',
      will: { topic: 'forewarn/v1/a9/status', payload: Buffer.from(JSON.stringify(will)), qos: 1, retain: true },
    });
    await agent.publishAsync('forewarn/v1/a9/status', JSON.stringify({ ...status, state: 'online', ts: connectedAt + 5000 }), { qos: 1, retain: true });
    await waitFor(async () => (await sub.store.summary()).agents.find((a) => a.agentId === 'a9')?.state === 'online', 'the agent online');
    // A crash: the socket goes without a DISCONNECT, so the broker publishes the Will.
    agent.stream.destroy();
    await waitFor(async () => (await sub.store.summary()).agents.find((a) => a.agentId === 'a9')?.state === 'offline', 'the Will recorded');
    expect((await sub.store.summary()).agents).toEqual([{ agentId: 'a9', state: 'offline', bootSeq: 3, ts: connectedAt }]);
  });
});
