import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../../agent/src/config/load-config.js';
import { RecordStore } from '../../../agent/src/store/record-store.js';
import { MqttSync } from '../../../agent/src/sync/mqtt-sync.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { contractErrors } from '../../helpers/contract.js';
import { freePort, startMosquitto, type Broker } from '../../helpers/mosquitto.js';
import { waitFor } from '../../helpers/wait.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';

const cleanup = cleanupAfterEach();

function setup(url: string, broker: Record<string, unknown> = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-sync-'));
  const config = buildConfig(
    stringify({
      agent: { id: 'sync-test' },
      storage: { dir },
      broker: { url, ack: 'broker', reconnectMinMs: 100, reconnectMaxMs: 400, flushIntervalMs: 50, batchMaxRecords: 3, ...broker },
    }),
    {},
  );
  const store = new RecordStore({ dir });
  const { log, lines } = captureLogger();
  const sync = new MqttSync(
    config,
    store,
    { bootSeq: 1, agentVersion: '0.0.0-test', models: () => [], sources: () => [{ name: 'test', state: 'running', samples: 3, errors: 0 }] },
    log,
  );
  cleanup.push(() => store.close());
  cleanup.push(() => sync.stop());
  return { store, sync, lines };
}

async function subscriber(broker: Broker, filter = 'forewarn/v1/#') {
  const messages: Array<{ topic: string; payload: Record<string, unknown>; retain: boolean }> = [];
  const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `sub-${Math.random()}` });
  client.on('message', (topic, payload, packet) =>
    messages.push({ topic, payload: JSON.parse(String(payload)) as Record<string, unknown>, retain: packet.retain }),
  );
  await client.subscribeAsync(filter, { qos: 1 });
  cleanup.push(() => client.endAsync());
  return messages;
}

const reading = (n: number) => ({
  stream: 'telemetry' as const,
  ts: 1_700_000_000_000 + n,
  asset: 'm1',
  payload: { ts: 1_700_000_000_000 + n, source: 'test', asset: 'm1', metrics: { x: n } },
});
const risk = (n: number) => ({
  stream: 'risk' as const,
  ts: 1_700_000_000_000 + n,
  asset: 'm1',
  payload: {
    ts: 1_700_000_000_000 + n,
    asset: 'm1',
    model: 'mf',
    modelVersion: '1.0.0',
    kind: 'probability',
    score: 0.5,
    threshold: 0.4,
    atRisk: true,
    readingTs: 1,
    drivers: [],
  },
});

describe('MqttSync against a real mosquitto', () => {
  it('publishes the outbox as contract-valid batches and marks rows sent only after the broker acknowledged them', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const messages = await subscriber(broker);
    const { store, sync } = setup(broker.url, { retainCurrentRisk: true });
    store.append([reading(1), reading(2), reading(3), reading(4), risk(5)]);
    await sync.start();
    await waitFor(() => store.counts().every((c) => c.pending === 0), 'the outbox to drain');
    await waitFor(() => messages.some((m) => m.topic.includes('/risk/current/')), 'retained current risk');

    for (const m of messages) expect(contractErrors(m.topic, m.payload), m.topic).toEqual([]);
    const status = messages.find((m) => m.topic === 'forewarn/v1/sync-test/status')!;
    expect(status.payload).toMatchObject({ state: 'online', bootSeq: 1, sources: [{ name: 'test', state: 'running' }] });
    const telemetry = messages.filter((m) => m.topic === 'forewarn/v1/sync-test/telemetry');
    // batchMaxRecords is 3: four readings make two batches, sequence numbers contiguous.
    expect(telemetry.map((m) => (m.payload.records as Array<{ seq: number }>).map((r) => r.seq))).toEqual([[1, 2, 3], [4]]);
    // Risk drains before telemetry.
    expect(messages.findIndex((m) => m.topic.endsWith('/risk'))).toBeLessThan(messages.findIndex((m) => m.topic.endsWith('/telemetry')));
    expect(sync.stats.sent).toBe(5);
  });

  it('publishes each risk record once by default: no retained current view unless configured', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const messages = await subscriber(broker);
    const { store, sync } = setup(broker.url);
    store.append([risk(1), reading(2)]);
    await sync.start();
    await waitFor(() => store.counts().every((c) => c.pending === 0), 'the outbox to drain');
    await waitFor(() => messages.some((m) => m.topic.endsWith('/telemetry')), 'the telemetry batch');
    expect(messages.filter((m) => m.topic.endsWith('/risk'))).toHaveLength(1);
    expect(messages.filter((m) => m.topic.includes('/risk/current/'))).toEqual([]);
  });

  it('buffers while the broker is down, says so once, and backfills when it comes up', async () => {
    const port = await freePort();
    const { store, sync, lines } = setup(`mqtt://127.0.0.1:${port}`);
    store.append([reading(1), reading(2), risk(3)]);
    await sync.start();
    await waitFor(() => sync.stats.reconnects >= 3, 'a few reconnect attempts');
    expect(lines.filter((l) => String(l.msg).includes('broker unreachable'))).toHaveLength(1);
    expect(sync.stats.state).not.toBe('online');

    const broker = await startMosquitto({ port });
    cleanup.push(() => broker.stop());
    await waitFor(() => store.counts().every((c) => c.pending === 0), 'the backlog to drain');
    expect(lines.some((l) => String(l.msg).includes('broker reachable again'))).toBe(true);
  });

  it('never has more publishes in flight than the broker allows (Receive Maximum)', async () => {
    const broker = await startMosquitto({ extraConfig: ['max_inflight_messages 2'] });
    cleanup.push(() => broker.stop());
    const { store, sync } = setup(broker.url, { maxInflight: 50, batchMaxRecords: 1 });
    store.append(Array.from({ length: 40 }, (_, i) => reading(i)));
    let most = 0;
    const probe = setInterval(() => (most = Math.max(most, sync.stats.inflight)), 1);
    await sync.start();
    await waitFor(() => store.counts().every((c) => c.pending === 0), 'the outbox to drain');
    clearInterval(probe);
    expect(sync.stats.window).toBe(2);
    expect(most).toBeLessThanOrEqual(2);
  });

  it('keeps rows the broker refuses (PUBACK reason ≥ 0x80) and counts the refusal', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-acl-'));
    const acl = path.join(dir, 'acl');
    // Status may be written, the telemetry stream may not.
    writeFileSync(acl, 'topic write forewarn/v1/sync-test/status\ntopic read #\n');
    const broker = await startMosquitto({ extraConfig: [`acl_file ${acl}`] });
    cleanup.push(() => broker.stop());
    const { store, sync } = setup(broker.url);
    store.append([reading(1)]);
    await sync.start();
    await waitFor(() => sync.stats.rejected >= 1, 'a rejected publish');
    expect(store.counts().find((c) => c.stream === 'telemetry')!.pending).toBe(1);
    expect(sync.stats.sent).toBe(0);
  });

  it('says goodbye with a retained offline status on stop', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const { sync } = setup(broker.url);
    await sync.start();
    await waitFor(() => sync.stats.state === 'online', 'online');
    await sync.stop();
    const retained = await subscriber(broker, 'forewarn/v1/sync-test/status');
    await waitFor(() => retained.length > 0, 'the retained status');
    expect(retained[0]).toMatchObject({ retain: true, payload: { state: 'offline', reason: 'shutdown' } });
    expect(contractErrors(retained[0]!.topic, retained[0]!.payload)).toEqual([]);
  });
});
