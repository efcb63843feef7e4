import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import mqtt, { type MqttClient } from 'mqtt';
import { describe, expect, it, vi } from 'vitest';
import { ForewarnError } from '../../../agent/src/core/errors.js';
import { ReferenceSubscriber, type ReferenceSubscriberOptions } from '../../../agent/src/central/ingest-worker.js';
import { runSubscribeCommand } from '../../../agent/src/central/subscribe-command.js';
import { CentralStore } from '../../../agent/src/central/central-store.js';
import type { SqliteClient } from '../../../agent/src/central/sql/sqlite-client.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { startMosquitto, type Broker } from '../../helpers/mosquitto.js';
import { seededRandom } from '../../helpers/seeded-random.js';
import { waitFor } from '../../helpers/wait.js';

const cleanup = cleanupAfterEach();

async function broker(): Promise<Broker> {
  const b = await startMosquitto();
  cleanup.push(() => b.stop());
  return b;
}

async function publisher(b: Broker): Promise<MqttClient> {
  const client = await mqtt.connectAsync(b.url, { protocolVersion: 5, clientId: `test-agent-${process.pid}-${Date.now()}` });
  cleanup.push(() => client.endAsync());
  return client;
}

const dbFile = () => path.join(mkdtempSync(path.join(tmpdir(), 'fw-sub-')), 'central.db');

/** Starts a subscriber and resolves once the broker has granted its subscriptions. */
async function subscriber(b: Broker, over: Partial<ReferenceSubscriberOptions> = {}, seed = 7) {
  const capture = captureLogger();
  const sub = new ReferenceSubscriber({
    url: b.url,
    clientId: 'central-1',
    store: over.store ?? dbFile(),
    log: capture.log,
    reconnectMinMs: 50,
    reconnectMaxMs: 200,
    random: seededRandom(seed),
    ...over,
  });
  cleanup.push(() => sub.stop());
  const subscribed = new Promise<{ refused: string[] }>((resolve) => sub.once('subscribed', resolve));
  await sub.start();
  expect((await subscribed).refused).toEqual([]);
  return { sub, ...capture };
}

const records = (stream: string, seqs: number[]) =>
  seqs.map((seq) =>
    stream === 'telemetry' ? { seq, ts: 1_700_000_000_000 + seq, asset: 'm1', metrics: { x: seq } } : { seq, ts: 1_700_000_000_000 + seq, asset: 'm1' },
  );

const body = (agentId: string, stream: string, seqs: number[], extra: Record<string, unknown> = {}) =>
  JSON.stringify({ schemaVersion: 1, agentId, stream, bootSeq: 1, records: records(stream, seqs), ...extra });

async function publish(client: MqttClient, agentId: string, stream: string, seqs: number[], gzip = false): Promise<void> {
  const json = body(agentId, stream, seqs);
  await client.publishAsync(`forewarn/v1/${agentId}/${stream}`, gzip ? gzipSync(json) : json, {
    qos: 1,
    properties: { contentType: gzip ? 'application/gzip' : 'application/json' },
  });
}

describe('ReferenceSubscriber against a real mosquitto', () => {
  it('stores JSON and gzip batches once, tracks gaps and drops, and records agent status', async () => {
    const b = await broker();
    const agent = await publisher(b);
    await agent.publishAsync(
      'forewarn/v1/press-7/status',
      JSON.stringify({ schemaVersion: 1, agentId: 'press-7', state: 'online', ts: 10, bootSeq: 4, agentVersion: '0.1.0' }),
      { qos: 1, retain: true },
    );
    const { sub } = await subscriber(b);

    await publish(agent, 'press-7', 'telemetry', [1, 2, 3]);
    await publish(agent, 'press-7', 'telemetry', [2, 3, 4], true); // resent after a lost PUBACK, compressed
    await publish(agent, 'press-7', 'telemetry', [10, 11]); // 5..9 never came
    const drop = { seq: 1, ts: 1_700_000_000_100, type: 'records-dropped', stream: 'telemetry', count: 3, ranges: [[5, 7]], reason: 'quota' };
    const event = { schemaVersion: 1, agentId: 'press-7', stream: 'events', bootSeq: 1, records: [drop] };
    // No contentType property: the gzip magic bytes are enough.
    await agent.publishAsync('forewarn/v1/press-7/events', gzipSync(JSON.stringify(event)), { qos: 1 });
    await publish(agent, 'press-7', 'alerts', [1]);
    // Not ours to store: the retained latest-risk topic.
    await agent.publishAsync('forewarn/v1/press-7/risk/current/m1/mf', JSON.stringify({ schemaVersion: 1 }), { qos: 1, retain: true });

    await waitFor(() => sub.stats.messages >= 6, 'six messages handled');
    const s = await sub.store.summary();
    const telemetry = s.streams.find((r) => r.stream === 'telemetry')!;
    expect(telemetry).toMatchObject({ received: 6, duplicates: 2, highestSeq: 11, missing: 2, dropped: 3, gaps: [{ from: 8, to: 9 }] });
    expect(await sub.store.receivedSeqs('press-7', 'telemetry')).toEqual([1, 2, 3, 4, 10, 11]);
    expect(await sub.store.receivedSeqs('press-7', 'alerts')).toEqual([1]);
    expect(s.agents).toEqual([{ agentId: 'press-7', state: 'online', bootSeq: 4, ts: 10 }]);
    expect(sub.stats).toMatchObject({ records: 8, duplicates: 2, malformed: 0, statuses: 1 });
  });

  it('sends each PUBACK only after the message is committed', async () => {
    const b = await broker();
    const agent = await publisher(b);
    const { sub } = await subscriber(b);
    const client = sub['client'] as MqttClient;
    const pending = new Map<number, number[]>();
    const early: string[] = [];
    let checked = 0;
    client.on('packetreceive', (p) => {
      if (p.cmd === 'publish' && p.topic.endsWith('/risk')) {
        const seqs = (JSON.parse(String(p.payload)) as { records: Array<{ seq: number }> }).records.map((r) => r.seq);
        pending.set(p.messageId!, seqs);
      }
    });
    client.on('packetsend', (p) => {
      if (p.cmd !== 'puback' || !pending.has(p.messageId!)) return;
      // Read synchronously, at the moment the PUBACK goes out (this store is a SQLite file).
      const db = (sub.store.sql as SqliteClient).db;
      const stored = new Set(db.prepare("SELECT seq FROM records WHERE agent_id = 'a1' AND stream = 'risk'").pluck().all() as number[]);
      const seqs = pending.get(p.messageId!)!;
      if (!seqs.every((q) => stored.has(q))) early.push(`PUBACK ${p.messageId} before seqs ${seqs.join(',')} were committed`);
      pending.delete(p.messageId!);
      checked++;
    });
    for (let i = 0; i < 20; i++) await publish(agent, 'a1', 'risk', [2 * i + 1, 2 * i + 2]);
    await waitFor(() => checked === 20, 'twenty PUBACKs');
    expect(early).toEqual([]);
  });

  it('withholds the PUBACK when the commit fails, so the broker redelivers the message', async () => {
    const b = await broker();
    const agent = await publisher(b);
    const { sub, lines } = await subscriber(b);
    const ingest = sub.store.ingestBatch.bind(sub.store);
    let failures = 1;
    sub.store.ingestBatch = async (batch, ts) => {
      if (failures-- > 0) throw new ForewarnError('FW_ERR_STORAGE_WRITE', 'disk full (simulated)');
      return ingest(batch, ts);
    };
    await publish(agent, 'a1', 'alerts', [1, 2]);
    await waitFor(async () => (await sub.store.receivedSeqs('a1', 'alerts')).length === 2, 'the redelivered batch stored');
    expect(sub.stats).toMatchObject({ writeFailures: 1, records: 2 });
    expect(sub.stats.reconnects).toBeGreaterThanOrEqual(1);
    expect(lines.some((l) => l.code === 'FW_ERR_STORAGE_WRITE')).toBe(true);
  });

  it('counts malformed payloads, acknowledges them and keeps going', async () => {
    const b = await broker();
    const agent = await publisher(b);
    const { sub, lines } = await subscriber(b);
    const bad = [
      'not json',
      JSON.stringify({ schemaVersion: 1, agentId: 'someone-else', stream: 'risk', bootSeq: 1, records: [] }),
      Buffer.from([0x1f, 0x8b, 0, 0]),
    ];
    for (const p of bad) await agent.publishAsync('forewarn/v1/a1/risk', p, { qos: 1 });
    await agent.publishAsync('forewarn/v1/a1/status', '{"state":', { qos: 1 });
    await publish(agent, 'a1', 'risk', [1]);
    await waitFor(async () => (await sub.store.receivedSeqs('a1', 'risk')).length === 1, 'the valid batch after the malformed ones');
    expect(sub.stats.malformed).toBe(4);
    expect((await sub.store.summary()).malformed.map((m) => [m.topic, m.count])).toEqual([
      ['forewarn/v1/a1/risk', 3],
      ['forewarn/v1/a1/status', 1],
    ]);
    // One warning per topic; the rest only counted.
    expect(lines.filter((l) => l.level === 40 && l.code === 'FW_ERR_SUBSCRIBER_PAYLOAD').map((l) => l.topic)).toEqual([
      'forewarn/v1/a1/risk',
      'forewarn/v1/a1/status',
    ]);
  });

  it('splits the load between two members of a share group writing one database, storing each record once', async () => {
    const b = await broker();
    const agent = await publisher(b);
    const file = dbFile();
    const one = await subscriber(b, { clientId: 'central-a', store: file }, 1);
    const two = await subscriber(b, { clientId: 'central-b', store: file }, 2);
    const random = seededRandom(99);
    const sent = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const agentId = `agent-${Math.floor(random() * 3)}`;
      const stream = ['alerts', 'risk', 'telemetry'][Math.floor(random() * 3)]!;
      const next = (sent.get(`${agentId}/${stream}`) ?? 0) + 1;
      const size = 1 + Math.floor(random() * 4);
      const seqs = Array.from({ length: size }, (_, k) => next + k);
      sent.set(`${agentId}/${stream}`, next + size - 1);
      await publish(agent, agentId, stream, seqs, random() < 0.5);
    }
    const total = [...sent.values()].reduce((n, v) => n + v, 0);
    await waitFor(() => one.sub.stats.records + two.sub.stats.records === total, `${total} records between both members`);
    expect(one.sub.stats.messages).toBeGreaterThan(0);
    expect(two.sub.stats.messages).toBeGreaterThan(0);
    expect(one.sub.stats.messages + two.sub.stats.messages).toBe(60);
    const store = await CentralStore.open({ url: file, readonly: true });
    cleanup.push(() => store.close());
    for (const [key, highest] of sent) {
      const [agentId, stream] = key.split('/') as [string, string];
      expect(await store.receivedSeqs(agentId, stream), key).toEqual(Array.from({ length: highest }, (_, i) => i + 1));
    }
    expect((await store.summary()).streams.every((s) => s.duplicates === 0 && s.missing === 0)).toBe(true);
  });

  it('gets what was published while it was stopped, from its persistent session', async () => {
    const b = await broker();
    const agent = await publisher(b);
    const file = dbFile();
    const first = await subscriber(b, { clientId: 'central-persist', store: file });
    await publish(agent, 'a1', 'telemetry', [1, 2]);
    await waitFor(() => first.sub.stats.records === 2, 'first two records');
    await first.sub.stop();

    for (let i = 3; i <= 12; i += 2) await publish(agent, 'a1', 'telemetry', [i, i + 1], i % 4 === 1);

    const second = await subscriber(b, { clientId: 'central-persist', store: file });
    await waitFor(async () => (await second.sub.store.receivedSeqs('a1', 'telemetry')).length === 12, 'the records queued while away');
    expect(await second.sub.store.receivedSeqs('a1', 'telemetry')).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect((await second.sub.store.summary()).streams[0]).toMatchObject({ missing: 0, duplicates: 0 });
  });

  it('logs a refused CONNECT as FW_ERR_BROKER_REFUSED and keeps retrying', async () => {
    const b = await startMosquitto({ extraConfig: ['allow_anonymous false'] });
    cleanup.push(() => b.stop());
    const capture = captureLogger();
    const sub = new ReferenceSubscriber({
      url: b.url,
      clientId: 'central-anon',
      store: dbFile(),
      log: capture.log,
      reconnectMinMs: 50,
      reconnectMaxMs: 100,
      random: seededRandom(5),
    });
    cleanup.push(() => sub.stop());
    await sub.start();
    await waitFor(() => sub.stats.reconnects >= 2, 'retries after the refusal');
    expect(capture.lines.filter((l) => l.code === 'FW_ERR_BROKER_REFUSED')).toHaveLength(1);
    expect(sub.stats.lastError).toMatch(/Not authorized|Bad User Name or Password/i);
  });

  it('keeps retrying while the broker is down, then ingests once it is back', async () => {
    const b = await broker();
    await b.stop();
    const capture = captureLogger();
    const sub = new ReferenceSubscriber({
      url: b.url,
      clientId: 'central-wait',
      store: dbFile(),
      log: capture.log,
      reconnectMinMs: 50,
      reconnectMaxMs: 200,
      random: seededRandom(3),
    });
    cleanup.push(() => sub.stop());
    await sub.start();
    await waitFor(() => sub.stats.reconnects >= 2, 'a few reconnect attempts');
    expect(capture.lines.filter((l) => l.code === 'FW_ERR_BROKER_CONNECT')).toHaveLength(1); // once per outage
    const again = await startMosquitto({ port: b.port });
    cleanup.push(() => again.stop());
    await waitFor(() => sub.stats.state === 'online', 'connected after the broker came back');
    const agent = await publisher(again);
    await waitFor(async () => {
      // The first publishes may race the subscriptions of the fresh session; the agent would resend, so do we.
      await publish(agent, 'a1', 'alerts', [1]);
      return (await sub.store.receivedSeqs('a1', 'alerts')).length === 1;
    }, 'a batch ingested after the outage');
  });
});

describe('runSubscribeCommand', () => {
  function captureOutput() {
    const out: string[] = [];
    const err: string[] = [];
    const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
    const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s)), true));
    cleanup.push(() => (o.mockRestore(), e.mockRestore()));
    return { out: () => out.join(''), err: () => err.join('') };
  }

  it('exits 2 with the usage on a malformed command line', async () => {
    const io = captureOutput();
    expect(await runSubscribeCommand(['--nope'], captureLogger().log)).toBe(2);
    expect(await runSubscribeCommand(['--json'], captureLogger().log)).toBe(2);
    expect(await runSubscribeCommand(['--url', 'http://x', '--db', dbFile()], captureLogger().log)).toBe(2);
    expect(await runSubscribeCommand(['--group', 'a/b', '--db', dbFile()], captureLogger().log)).toBe(2);
    expect(io.err()).toContain('--json goes with --report');
    expect(io.err()).toContain('forewarn subscribe [--url URL]');
  });

  it('exits 1 when a report names a database that does not exist', async () => {
    const io = captureOutput();
    expect(await runSubscribeCommand(['--report', '--db', path.join(tmpdir(), 'fw-none', 'x.db')], captureLogger().log)).toBe(1);
    expect(io.err()).toContain('[FW_ERR_STORAGE_OPEN]');
  });

  it('runs until told to stop, then reports the database', async () => {
    const b = await broker();
    const agent = await publisher(b);
    const file = dbFile();
    const { log } = captureLogger();
    const stop = new AbortController();
    const io = captureOutput();
    const running = runSubscribeCommand(['--url', b.url, '--db', file, '--client-id', 'central-cmd'], log, { signal: stop.signal });
    await waitFor(async () => {
      await publish(agent, 'a1', 'risk', [1, 3]); // redone until the subscription exists; duplicates are fine
      const store = await CentralStore.open({ url: file, readonly: true });
      try {
        return (await store.receivedSeqs('a1', 'risk')).length === 2;
      } finally {
        store.close();
      }
    }, 'the command storing a batch');
    stop.abort();
    expect(await running).toBe(0);
    expect(io.out()).toMatch(/database: 2 records, 1 missing in 1 open gaps/);
    expect(await runSubscribeCommand(['--report', '--db', file, '--json'], log)).toBe(0);
    const report = JSON.parse(io.out().slice(io.out().indexOf('{'))) as { streams: Array<{ gaps: unknown }> };
    expect(report.streams[0]!.gaps).toEqual([{ from: 2, to: 2 }]);
    expect(await runSubscribeCommand(['--report', '--db', file], log)).toBe(0);
    // received, duplicates, late, repaired, carried, conflicts, highest, missing, dropped, unavailable, open gaps
    expect(io.out()).toMatch(
      /agent\s+stream\s+received\s+duplicates\s+late\s+repaired\s+carried\s+conflicts\s+highest\s+missing\s+dropped\s+unavailable\s+open gaps/,
    );
    expect(io.out()).toMatch(/a1\s+risk\s+2\s+\d+\s+0\s+0\s+0\s+0\s+3\s+1\s+0\s+0\s+2/);
  });
});
