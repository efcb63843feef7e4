import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import mqtt from 'mqtt';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../../agent/src/config/load-config.js';
import { RecordStore } from '../../../agent/src/store/record-store.js';
import { MqttSync } from '../../../agent/src/sync/mqtt-sync.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { contractErrors } from '../../helpers/contract.js';
import { startMosquitto, type Broker } from '../../helpers/mosquitto.js';
import { waitFor } from '../../helpers/wait.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';

/** Delivery details of MqttSync against a real mosquitto: batching, encoding, backlog, flow control, refusals. */

const cleanup = cleanupAfterEach();

function setup(url: string, broker: Record<string, unknown> = {}, id = 'delivery-test') {
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-sync-'));
  const config = buildConfig(
    stringify({ agent: { id }, storage: { dir }, broker: { url, ack: 'broker', reconnectMinMs: 100, reconnectMaxMs: 400, flushIntervalMs: 50, ...broker } }),
    {},
  );
  const store = new RecordStore({ dir });
  const { log, lines } = captureLogger();
  const sync = new MqttSync(config, store, { bootSeq: 1, agentVersion: '0.0.0-test', models: () => [], sources: () => [] }, log);
  cleanup.push(() => store.close());
  cleanup.push(() => sync.stop());
  return { store, sync, lines };
}

interface Received {
  topic: string;
  raw: Buffer;
  contentType: string | undefined;
  payload: Record<string, unknown>;
}

async function subscriber(broker: Broker, filter = 'forewarn/v1/#'): Promise<Received[]> {
  const messages: Received[] = [];
  const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `sub-${Math.random()}` });
  client.on('message', (topic, raw, packet) => {
    const json = raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw;
    messages.push({ topic, raw, contentType: packet.properties?.contentType, payload: JSON.parse(String(json)) as Record<string, unknown> });
  });
  await client.subscribeAsync(filter, { qos: 1 });
  cleanup.push(() => client.endAsync());
  return messages;
}

const reading = (n: number, pad = 0) => ({
  stream: 'telemetry' as const,
  ts: 1_700_000_000_000 + n,
  asset: 'm1',
  // `pad` adds about that many bytes of extra metrics.
  payload: {
    ts: 1_700_000_000_000 + n,
    source: 'test',
    asset: 'm1',
    metrics: { x: n, ...Object.fromEntries(Array.from({ length: Math.ceil(pad / 12) }, (_, i) => [`p${i}`, i])) },
  },
});
const alert = (n: number) => ({
  stream: 'alerts' as const,
  ts: 1_700_000_000_000 + n,
  asset: 'm1',
  payload: { ts: 1_700_000_000_000 + n, asset: 'm1', rule: 'test.rule', state: 'raised', severity: 'warning', message: 'test', subject: '' },
});
const seqs = (ms: Received[], stream: string) =>
  ms.filter((m) => m.topic.endsWith(`/${stream}`)).flatMap((m) => (m.payload.records as Array<{ seq: number }>).map((r) => r.seq));

describe('MqttSync delivery', () => {
  it('flags the backlog from before the connection as historical, and live records as not', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const messages = await subscriber(broker, 'forewarn/v1/+/telemetry');
    const { store, sync } = setup(broker.url, { batchMaxRecords: 2 });
    // Committed before the connection comes up: the backlog.
    store.append([reading(1), reading(2), reading(3)]);
    await sync.start();
    await waitFor(() => sync.stats.state === 'online' && store.pendingTotal() === 0, 'the backlog to drain');
    store.append([reading(4)]);
    await waitFor(() => seqs(messages, 'telemetry').includes(4), 'the live record');
    const flags = messages.map((m) => [(m.payload.records as Array<{ seq: number }>).map((r) => r.seq), m.payload.historical ?? false]);
    expect(flags.filter(([s]) => (s as number[])[0]! <= 3)).toEqual([
      [[1, 2], true],
      [[3], true],
    ]);
    expect(flags.at(-1)).toEqual([[4], false]);
    for (const m of messages) expect(contractErrors(m.topic, m.payload)).toEqual([]);
  });

  it('bounds each message in bytes and, with gzip, says so in the content type and the magic bytes', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const messages = await subscriber(broker, 'forewarn/v1/+/telemetry');
    const { store, sync } = setup(broker.url, { maxMessageBytes: 4096, compression: 'gzip', compressMinBytes: 1500, batchMaxRecords: 1000 });
    store.append(Array.from({ length: 200 }, (_, i) => reading(i + 1, i % 7 === 0 ? 900 : 0)));
    await sync.start();
    await waitFor(() => store.pendingTotal() === 0, 'the outbox to drain');
    await waitFor(() => seqs(messages, 'telemetry').length === 200, 'every record');
    expect(seqs(messages, 'telemetry')).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(messages.length).toBeGreaterThan(5);
    for (const m of messages) {
      const json = m.raw[0] === 0x1f ? gunzipSync(m.raw) : m.raw;
      expect(json.length).toBeLessThanOrEqual(4096);
      if (json.length >= 1500) expect([m.contentType, m.raw[0], m.raw[1]]).toEqual(['application/gzip', 0x1f, 0x8b]);
      else expect([m.contentType, m.raw[0]]).toEqual(['application/json', '{'.charCodeAt(0)]);
      expect(contractErrors(m.topic, m.payload)).toEqual([]);
    }
    expect(messages.some((m) => m.contentType === 'application/gzip')).toBe(true);
    expect(sync.stats.bytesSent).toBe(messages.reduce((n, m) => n + m.raw.length, 0));
  });

  it('lets a new alert overtake a telemetry backlog that is still draining', async () => {
    const broker = await startMosquitto({ extraConfig: ['max_inflight_messages 1'] });
    cleanup.push(() => broker.stop());
    const messages = await subscriber(broker);
    const { store, sync } = setup(broker.url, { batchMaxRecords: 10 });
    const n = 20_000;
    store.append(Array.from({ length: n }, (_, i) => reading(i + 1)));
    await sync.start();
    // The agent has started on the backlog (judged at the agent, not at the listener, which may lag behind).
    await waitFor(() => store.pendingTotal() < n - 200, 'the backlog to start draining', 15_000, 5);
    store.append([alert(1)]);
    sync.notify();
    await waitFor(() => store.pendingTotal() === 0, 'the outbox to drain', 60_000);
    await waitFor(() => seqs(messages, 'telemetry').length === n, 'every record', 60_000);
    const alertAt = messages.findIndex((m) => m.topic.endsWith('/alerts'));
    const lastTelemetry = messages.findLastIndex((m) => m.topic.endsWith('/telemetry'));
    expect(alertAt).toBeGreaterThan(0);
    expect(alertAt).toBeLessThan(lastTelemetry);
    expect(seqs(messages, 'telemetry')).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  });

  it('sends smaller messages when the broker announces a Maximum Packet Size', async () => {
    const broker = await startMosquitto({ extraConfig: ['max_packet_size 3000'] });
    cleanup.push(() => broker.stop());
    const messages = await subscriber(broker, 'forewarn/v1/+/telemetry');
    const { store, sync } = setup(broker.url, { batchMaxRecords: 1000 });
    store.append(Array.from({ length: 100 }, (_, i) => reading(i + 1, 50)));
    await sync.start();
    await waitFor(() => store.pendingTotal() === 0, 'the outbox to drain');
    await waitFor(() => seqs(messages, 'telemetry').length === 100, 'every record');
    for (const m of messages) expect(m.raw.length).toBeLessThan(3000);
    expect(sync.stats.rejected).toBe(0);
  });

  it('says clearly when the broker refuses the connection, once, and keeps buffering', async () => {
    const broker = await startMosquitto({ extraConfig: ['allow_anonymous false'] });
    cleanup.push(() => broker.stop());
    const { store, sync, lines } = setup(broker.url);
    store.append([reading(1)]);
    await sync.start();
    await waitFor(() => sync.stats.reconnects >= 3, 'several attempts');
    const refused = lines.filter((l) => l.code === 'FW_ERR_BROKER_REFUSED');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ reasonCode: expect.stringMatching(/^0x8[67]$/) });
    expect(String(refused[0]!.msg)).toMatch(/Not authorized|Bad User Name or Password/);
    expect(lines.filter((l) => String(l.msg).includes('broker unreachable'))).toHaveLength(0);
    expect(store.pendingTotal()).toBe(1);
  });

  it('reports a duplicate client id and backs off instead of fighting over it', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const a = setup(broker.url, { clientId: 'same-id', reconnectMinMs: 200, reconnectMaxMs: 2000 }, 'agent-a');
    const b = setup(broker.url, { clientId: 'same-id', reconnectMinMs: 200, reconnectMaxMs: 2000 }, 'agent-b');
    await a.sync.start();
    await waitFor(() => a.sync.stats.state === 'online', 'the first agent online');
    await b.sync.start();
    await waitFor(
      () => a.lines.some((l) => l.code === 'FW_ERR_BROKER_CLIENT_ID_TAKEN') || b.lines.some((l) => l.code === 'FW_ERR_BROKER_CLIENT_ID_TAKEN'),
      'the take-over reported',
    );
    const taken = [...a.lines, ...b.lines].filter((l) => l.code === 'FW_ERR_BROKER_CLIENT_ID_TAKEN');
    expect(String(taken[0]!.msg)).toMatch(/another client connected with this client id/);
    expect(taken[0]).toMatchObject({ clientId: 'same-id' });
    expect([a.sync.stats.lastError, b.sync.stats.lastError].join(' ')).toMatch(/client id same-id taken over by another client/);
  });
});
