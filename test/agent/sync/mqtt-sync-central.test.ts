import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../../agent/src/config/load-config.js';
import { SCHEMA_VERSION, topics, type AckPayload } from '../../../agent/src/contract/topics.js';
import { RecordStore } from '../../../agent/src/store/record-store.js';
import { SeqEpoch } from '../../../agent/src/store/seq-epoch.js';
import type { StreamName } from '../../../agent/src/store/outbox.js';
import { MqttSync } from '../../../agent/src/sync/mqtt-sync.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { contractErrors } from '../../helpers/contract.js';
import { startMosquitto, type Broker } from '../../helpers/mosquitto.js';
import { waitFor } from '../../helpers/wait.js';

/**
 * MqttSync with central acknowledgement (docs/delivery.md) against a real mosquitto: a plain MQTT client plays the
 * centre, reading the agent's batches and publishing retained acknowledgements on forewarn/v1/{agentId}/ack.
 */

const cleanup = cleanupAfterEach();
const AGENT = 'central-test';
const ACK_TIMEOUT_MS = 1000;
/** The epoch's clock: every stream of the fresh database starts at B. */
const T = 1_700_000_000_000;
const B = T * 1000;

function setup(url: string, broker: Record<string, unknown> = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-central-sync-'));
  const config = buildConfig(
    stringify({
      agent: { id: AGENT },
      storage: { dir },
      broker: {
        url,
        ack: 'central',
        ackTimeoutMs: ACK_TIMEOUT_MS,
        reconnectMinMs: 100,
        reconnectMaxMs: 400,
        flushIntervalMs: 50,
        batchMaxRecords: 3,
        ...broker,
      },
    }),
    {},
  );
  const store = new RecordStore({ dir, epoch: new SeqEpoch(dir, () => T) });
  const { log, lines } = captureLogger();
  const sync = new MqttSync(config, store, { bootSeq: 1, agentVersion: '0.0.0-test', models: () => [], sources: () => [] }, log);
  const unavailable: Array<Record<string, unknown>> = [];
  sync.onUnavailable((payloads) => unavailable.push(...payloads));
  cleanup.push(() => store.close());
  cleanup.push(() => sync.stop());
  const counts = (stream: StreamName = 'telemetry') => store.counts().find((c) => c.stream === stream)!;
  return { store, sync, lines, unavailable, counts };
}

interface Batch {
  stream: string;
  historical: boolean;
  seqs: number[];
  at: number;
  payload: Record<string, unknown>;
}

/** The test's centre: sees every batch of the agent, and publishes (retained) acknowledgements. */
async function centre(broker: Broker) {
  const batches: Batch[] = [];
  const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `centre-${Math.random()}` });
  cleanup.push(() => client.endAsync());
  const streamTopic = new RegExp(`^forewarn/v1/${AGENT}/(alerts|risk|events|telemetry)$`);
  client.on('message', (topic, raw) => {
    const m = streamTopic.exec(topic);
    if (!m) return;
    const payload = JSON.parse(String(raw)) as Record<string, unknown>;
    batches.push({
      stream: m[1]!,
      historical: payload.historical === true,
      seqs: (payload.records as Array<{ seq: number }>).map((r) => r.seq),
      at: Date.now(),
      payload,
    });
  });
  await client.subscribeAsync(`forewarn/v1/${AGENT}/+`, { qos: 1 });
  const publishAck = async (body: string | Buffer) => {
    await client.publishAsync(topics.ack(AGENT), body, { qos: 1, retain: true });
  };
  return {
    batches,
    /** Every seq of `stream` received, in arrival order, duplicates included. */
    seen: (stream = 'telemetry') => batches.filter((b) => b.stream === stream).flatMap((b) => b.seqs),
    /** Publishes a contract-valid acknowledgement. */
    ack: async (streams: AckPayload['streams']) => {
      const body: AckPayload = { schemaVersion: SCHEMA_VERSION, agentId: AGENT, ts: Date.now(), streams };
      expect(contractErrors(topics.ack(AGENT), body)).toEqual([]);
      await publishAck(JSON.stringify(body));
    },
    /** Publishes anything, as a broken centre might. */
    raw: publishAck,
  };
}

const tele = (n: number) => ({ stream: 'telemetry' as const, ts: T + n, asset: 'm1', payload: { ts: T + n, source: 'test', asset: 'm1', metrics: { x: n } } });
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
const times = (list: number[], seq: number) => list.filter((q) => q === seq).length;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('MqttSync with central acknowledgement', () => {
  it('keeps rows the broker took until the centre confirms them, then releases exactly those', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const c = await centre(broker);
    const { store, sync, counts } = setup(broker.url);
    store.append(range(0, 5).map(tele));
    await sync.start();
    await waitFor(() => store.unconfirmedAbove('telemetry', 0, Number.MAX_SAFE_INTEGER)?.hi === B + 4, 'the broker to take all five rows');
    expect(c.seen()).toEqual(range(B, 5));
    expect(sync.stats.ack).toBe('central');
    expect(sync.stats.sent).toBeGreaterThanOrEqual(5);
    // The broker has them; the outbox still does too.
    expect(counts()).toMatchObject({ pending: 5, sentTotal: 0 });
    expect(sync.stats.confirmed).toBe(0);
    expect(sync.stats.centralAckTs).toBeNull();

    await c.ack({ telemetry: { through: B + 2, highest: B + 4 } });
    await waitFor(() => counts().pending === 2, 'the confirmed rows to be released');
    expect(counts().sentTotal).toBe(3);
    expect(store.pending('telemetry').map((r) => r.seq)).toEqual([B + 3, B + 4]);
    expect(sync.stats.confirmed).toBe(3);
    expect(sync.stats.centralAckTs).not.toBeNull();

    await c.ack({ telemetry: { through: B + 4, highest: B + 4 } });
    await waitFor(() => counts().pending === 0, 'the rest to be released');
    expect(counts().sentTotal).toBe(5);
    expect(sync.stats.confirmed).toBe(5);
    // The centre had them all: none was sent twice.
    expect(c.seen()).toEqual(range(B, 5));
  });

  it('does not send again on reconnect what the broker already took', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const c = await centre(broker);
    const { store, sync } = setup(broker.url);
    store.append(range(0, 4).map(tele));
    await sync.start();
    await waitFor(() => store.unconfirmedAbove('telemetry', 0, Number.MAX_SAFE_INTEGER)?.hi === B + 3, 'the broker to take the rows');
    const reconnects = sync.stats.reconnects;
    await broker.restart();
    await waitFor(() => sync.stats.reconnects > reconnects && sync.stats.state === 'online', 'the agent to reconnect');
    // The centre's own client reconnects and subscribes again by itself; a live record shows when it does.
    await waitFor(
      () => {
        store.append([tele(100)]);
        return c.seen().some((q) => q >= B + 4);
      },
      'a record committed after the reconnect to reach the centre',
      15_000,
      300,
    );
    for (const q of range(B, 4)) expect(times(c.seen(), q), `seq ${q}`).toBe(1);
  });

  it('sends again, from the rows it holds and flagged historical, the ranges the centre reports missing', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const c = await centre(broker);
    const { store, sync, unavailable, counts } = setup(broker.url);
    store.append(range(0, 6).map(tele));
    await sync.start();
    await waitFor(() => c.seen().length === 6 && store.unconfirmedTotal() >= 6, 'the first pass');
    const before = c.batches.length;

    await c.ack({ telemetry: { through: B, highest: B + 5, missing: [[B + 2, B + 3]] } });
    await waitFor(() => times(c.seen(), B + 3) === 2, 'the missing range to come again');
    const again = c.batches.slice(before).filter((b) => b.stream === 'telemetry');
    expect(again.map((b) => [b.seqs, b.historical])).toEqual([[[B + 2, B + 3], true]]);
    expect(contractErrors(`forewarn/v1/${AGENT}/telemetry`, again[0]!.payload)).toEqual([]);
    expect(sync.stats.resent).toBeGreaterThanOrEqual(2);
    // Everything asked for was held: nothing announced as unavailable.
    expect(unavailable).toEqual([]);
    // `through` released B only; the rest waits for the centre.
    await waitFor(() => counts().pending === 5, 'B to be released');
    expect(times(c.seen(), B + 1)).toBe(1);
    expect(times(c.seen(), B + 4)).toBe(1);
  });

  it('announces what it no longer holds as records-unavailable: before this database, purged; not what it dropped itself', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const c = await centre(broker);
    const { store, sync, unavailable } = setup(broker.url);
    store.append(range(0, 5).map(tele));
    // B and B+1 were acknowledged and purged; B+2 was dropped by the storage policy during this run (announced then).
    const ids = store.pending('telemetry').map((r) => r.seq);
    store.markSent('telemetry', ids.slice(0, 3), 1);
    expect(store.purgeSent(2)).toBe(3);
    sync.noteDropped('telemetry', [[B + 2, B + 2]]);
    await sync.start();
    await waitFor(() => c.seen().length === 2, 'the held rows to go out');

    await c.ack({
      telemetry: {
        through: 0,
        highest: B + 4,
        missing: [
          [10, 20],
          [B - 5, B + 3],
        ],
      },
    });
    await waitFor(() => unavailable.length >= 3 && times(c.seen(), B + 3) === 2, 'the answers to the missing ranges');
    const byReason = (reason: string) => unavailable.filter((u) => u.reason === reason).flatMap((u) => u.ranges as Array<[number, number]>);
    expect(byReason('before-this-database')).toEqual([
      [10, 20],
      [B - 5, B - 1],
    ]);
    expect(byReason('purged')).toEqual([[B, B + 1]]);
    expect(unavailable.every((u) => u.type === 'records-unavailable' && u.stream === 'telemetry' && typeof u.ts === 'number')).toBe(true);
    expect(unavailable).toHaveLength(3);
    expect(sync.stats.unavailable).toBe(11 + 5 + 2);
    // Each notice, as it will be published on the events stream, follows the contract.
    for (const u of unavailable) {
      const batch = { schemaVersion: SCHEMA_VERSION, agentId: AGENT, stream: 'events', bootSeq: 1, records: [{ seq: B + 9, ...u }] };
      expect(contractErrors(`forewarn/v1/${AGENT}/events`, batch)).toEqual([]);
    }
    // B+3 is held: sent again, not announced.
    expect(c.batches.filter((b) => b.stream === 'telemetry' && b.seqs.includes(B + 3)).map((b) => b.historical)).toEqual([true, true]);
  });

  it('ignores and counts acknowledgements that do not follow the contract, releasing nothing on them', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const c = await centre(broker);
    const { store, sync, lines, counts } = setup(broker.url);
    store.append(range(0, 3).map(tele));
    await sync.start();
    await waitFor(() => store.unconfirmedAbove('telemetry', 0, Number.MAX_SAFE_INTEGER)?.hi === B + 2, 'the broker to take the rows');

    // Each would release every row if it were acted on.
    const ok = { through: B + 2, highest: B + 2 };
    const envelope = (streams: unknown, extra: Record<string, unknown> = {}) =>
      JSON.stringify({ schemaVersion: 1, agentId: AGENT, ts: Date.now(), streams, ...extra });
    const bad = [
      'not json {',
      JSON.stringify([{ agentId: AGENT }]),
      envelope({ telemetry: ok }, { agentId: 'another-agent' }),
      envelope({ telemetry: ok }, { ts: 'yesterday' }),
      envelope([ok]),
      envelope({ telemetry: { through: -1, highest: B + 2 } }),
      envelope({ telemetry: { through: B + 2, highest: B + 1 } }),
      envelope({ telemetry: { through: B + 2.5, highest: B + 3 } }),
      envelope({ telemetry: { ...ok, missing: [[B, B + 1]] } }), // a "missing" range at or below through
      envelope({ telemetry: { ...ok, missing: [[B + 3]] } }),
      envelope({ telemetry: { ...ok, missing: 'all' } }),
      envelope({ telemetry: ok, risk: null }), // one bad stream spoils the message: never half of it
    ];
    for (const body of bad) await c.raw(body);
    await waitFor(() => sync.stats.malformedAcks === bad.length, 'every malformed acknowledgement to be counted');
    expect(counts()).toMatchObject({ pending: 3, sentTotal: 0 });
    expect(sync.stats.confirmed).toBe(0);
    expect(sync.stats.centralAckTs).toBeNull();
    expect(lines.filter((l) => l.code === 'FW_ERR_ACK_MALFORMED')).toHaveLength(1);

    // Clearing the retained message (an empty payload) is not a malformed ack; a valid one then works, a stream
    // from a newer contract is skipped.
    await c.raw(Buffer.alloc(0));
    await c.raw(envelope({ telemetry: ok, metrics: { anything: true } }));
    await waitFor(() => counts().pending === 0, 'the valid acknowledgement to release the rows');
    expect(sync.stats.malformedAcks).toBe(bad.length);
    expect(sync.stats.confirmed).toBe(3);
  });

  it('never resends the unconfirmed tail while no centre has answered; once one has, resends it after ackTimeoutMs', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const c = await centre(broker);
    const { store, sync, counts } = setup(broker.url);
    store.append(range(0, 3).map(tele));
    await sync.start();
    await waitFor(() => store.unconfirmedAbove('telemetry', 0, Number.MAX_SAFE_INTEGER)?.hi === B + 2, 'the broker to take the rows');
    // Several ack timeouts with no centre at all: nothing goes twice (a setup without a centre is never flooded).
    await pause(ACK_TIMEOUT_MS * 3.5);
    expect(c.seen()).toEqual(range(B, 3));
    expect(c.seen('events')).toEqual([B]);
    expect(sync.stats.resent).toBe(0);
    expect(counts().pending).toBe(3);

    // The centre confirms B and has nothing above it: B+1..B+2 were lost between the broker and the centre.
    const ackedAt = Date.now();
    await c.ack({ telemetry: { through: B, highest: B } });
    await waitFor(() => times(c.seen(), B + 2) === 2, 'the unconfirmed tail to be sent again');
    const tail = c.batches.filter((b) => b.stream === 'telemetry').slice(-1)[0]!;
    expect(tail.seqs).toEqual([B + 1, B + 2]);
    expect(tail.historical).toBe(true);
    // Not before the centre had ackTimeoutMs to move on.
    expect(tail.at - ackedAt).toBeGreaterThanOrEqual(ACK_TIMEOUT_MS);
    // Only the unconfirmed rows: B, confirmed, never again.
    expect(times(c.seen(), B)).toBe(1);
    expect(counts().pending).toBe(2);

    await c.ack({ telemetry: { through: B + 2, highest: B + 2 } });
    await waitFor(() => counts().pending === 0, 'the tail to be confirmed');
  });
});

describe('MqttSync with broker acknowledgement', () => {
  it('releases rows on the PUBACK, and still answers missing ranges from the rows it keeps for retention', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const c = await centre(broker);
    const { store, sync, unavailable, counts } = setup(broker.url, { ack: 'broker' });
    store.append(range(0, 5).map(tele));
    await sync.start();
    await waitFor(() => counts().pending === 0, 'the broker to acknowledge every row');
    expect(counts().sentTotal).toBe(5);
    expect(sync.stats.ack).toBe('broker');
    expect(sync.stats.confirmed).toBe(0);
    expect(c.seen()).toEqual(range(B, 5));
    // Acknowledged rows stay in the file for gap repair (storage.retentionHours).
    expect(store.heldRecords('telemetry', B, B + 4, 10).map((r) => r.seq)).toEqual(range(B, 5));

    await c.ack({ telemetry: { through: B, highest: B + 4, missing: [[B + 1, B + 2]] } });
    await waitFor(() => times(c.seen(), B + 2) === 2, 'the missing range to come again');
    const again = c.batches.filter((b) => b.stream === 'telemetry').slice(-1)[0]!;
    expect(again).toMatchObject({ seqs: [B + 1, B + 2], historical: true });
    expect(unavailable).toEqual([]);
    // Nothing to confirm in broker mode: the counters did not move.
    expect(counts()).toMatchObject({ pending: 0, sentTotal: 5 });
    expect(sync.stats.confirmed).toBe(0);

    // Once purged, what the centre asks for is announced instead.
    store.purgeSent(Number.MAX_SAFE_INTEGER);
    expect(store.heldRecords('telemetry', B, B + 4, 10)).toEqual([]);
    await c.ack({ telemetry: { through: B, highest: B + 4, missing: [[B + 3, B + 4]] } });
    await waitFor(() => unavailable.length > 0, 'the purged range to be announced');
    expect(unavailable).toEqual([{ ts: expect.any(Number), type: 'records-unavailable', stream: 'telemetry', ranges: [[B + 3, B + 4]], reason: 'purged' }]);
    expect(times(c.seen(), B + 3)).toBe(1);
  });
});
