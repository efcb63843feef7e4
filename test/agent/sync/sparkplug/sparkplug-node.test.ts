import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../../../agent/src/config/load-config.js';
import { RecordStore } from '../../../../agent/src/store/record-store.js';
import type { NewRecord } from '../../../../agent/src/store/outbox.js';
import { SparkplugNode } from '../../../../agent/src/sync/sparkplug/sparkplug-node.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { startMosquitto } from '../../../helpers/mosquitto.js';
import { startTcpProxy } from '../../../helpers/tcp-proxy.js';
import { num, SparkplugHost } from '../../../helpers/sparkplug-host.js';
import { waitFor } from '../../../helpers/wait.js';
import { cleanupAfterEach } from '../../../helpers/cleanup.js';

/**
 * The edge node against a real mosquitto, its outbox a real SQLite file, every message decoded by Eclipse Tahu's
 * codec in a reference host application (test/helpers/sparkplug-host.ts). The checklist names each normative
 * statement of Sparkplug 3.0 that applies to an edge node, by its TCK identifier, and asserts it on what was sent.
 */

const cleanup = cleanupAfterEach();

function telemetry(asset: string, ts: number, metrics: Record<string, number>): NewRecord {
  return { stream: 'telemetry', ts, asset, payload: { ts, source: 'test', asset, metrics } };
}

async function setup(options: { primaryHostId?: string; viaProxy?: boolean; dir?: string; keepaliveSeconds?: number } = {}) {
  const broker = await startMosquitto();
  cleanup.push(() => broker.stop());
  const proxy = options.viaProxy ? await startTcpProxy(broker.port) : null;
  if (proxy) cleanup.push(() => proxy.stop());
  const dir = options.dir ?? mkdtempSync(path.join(tmpdir(), 'fw-spb-'));
  const config = buildConfig(
    stringify({
      agent: { id: 'node-1' },
      storage: { dir },
      broker: { url: proxy?.url ?? broker.url, reconnectMinMs: 100, reconnectMaxMs: 300, keepaliveSeconds: options.keepaliveSeconds ?? 30 },
      sparkplug: { enabled: true, groupId: 'plant', primaryHostId: options.primaryHostId ?? '', units: { spindle_speed: 'rpm' } },
    }),
    {},
  );
  const store = new RecordStore({ dir });
  cleanup.push(() => store.close());
  const { log, lines } = captureLogger();
  const host = new SparkplugHost(broker.url, 'plant', 'node-1', options.primaryHostId || null);
  cleanup.push(() => host.close());
  const node = new SparkplugNode(config, store, log, '9.9.9-test');
  cleanup.push(() => node.stop());
  return { broker, proxy, store, node, host, lines, dir, config };
}

describe('Sparkplug edge node', () => {
  it('walks the edge-node statements of Sparkplug 3.0: births, data, aliases, report by exception, rebirth, death', async () => {
    const { store, node, host } = await setup();
    await host.connect();
    const t0 = Date.now();
    await node.start();
    // A position seen for the first time starts at the end of the outbox: only what comes after is published.
    store.append([telemetry('mill-1', t0, { air_temp_k: 300.1, spindle_speed: 1500 })]);
    await waitFor(() => node.stats.state === 'online', 'the node online');
    node.notify();
    await waitFor(() => host.of('DBIRTH').length >= 1, 'the DBIRTH of mill-1');
    // Live data: one value changes, one does not.
    store.append([telemetry('mill-1', t0 + 1, { air_temp_k: 300.1, spindle_speed: 1510 })]);
    store.append([
      {
        stream: 'risk',
        ts: t0 + 2,
        asset: 'mill-1',
        payload: { ts: t0 + 2, asset: 'mill-1', model: 'machine-failure', kind: 'probability', score: 0.7, atRisk: true },
      },
    ]);
    store.append([{ stream: 'alerts', ts: t0 + 3, asset: 'mill-1', payload: { ts: t0 + 3, rule: 'model-at-risk', asset: 'mill-1', state: 'raised' } }]);
    node.notify();
    await waitFor(() => host.node.devices.get('mill-1')?.values.get('alerts/model-at-risk') === true, 'the alert state as a metric');
    await host.requestRebirth();
    await waitFor(() => host.node.births >= 2, 'a second NBIRTH after the rebirth request');
    await waitFor(() => host.of('DBIRTH').length >= 3, 'the DBIRTH after the rebirth');
    await node.stop();
    await waitFor(() => host.of('NDEATH').length >= 1, 'the NDEATH at stop');

    const m = host.messages;
    const births = host.of('NBIRTH');
    const nb = births[0]!.payload;
    const dbirths = host.of('DBIRTH');
    const ddata = host.of('DDATA');
    const bdSeqOf = (p: (typeof m)[number]['payload']) => num(p.metrics!.find((x) => x.name === 'bdSeq')!.value);
    const checklist: Record<string, () => void> = {
      // Topics (chapter 4)
      'tck-id-topic-structure-namespace-a': () => expect(m.every((x) => x.topic.startsWith('spBv1.0/plant/'))).toBe(true),
      'tck-id-topics-nbirth-topic': () => expect(births[0]!.topic).toBe('spBv1.0/plant/NBIRTH/node-1'),
      'tck-id-topics-dbirth-topic': () => expect(dbirths[0]!.topic).toBe('spBv1.0/plant/DBIRTH/node-1/mill-1'),
      'tck-id-topics-ddata-topic': () => expect(ddata.every((x) => x.topic === 'spBv1.0/plant/DDATA/node-1/mill-1')).toBe(true),
      'tck-id-topics-ndeath-topic': () => expect(host.of('NDEATH')[0]!.topic).toBe('spBv1.0/plant/NDEATH/node-1'),
      'tck-id-topic-structure-namespace-device-id-non-associated-message-types': () =>
        expect(m.filter((x) => x.type.startsWith('N')).every((x) => x.device === null)).toBe(true),
      'tck-id-topic-structure-namespace-device-id-associated-message-types': () =>
        expect(m.filter((x) => x.type.startsWith('D')).every((x) => x.device === 'mill-1')).toBe(true),
      'tck-id-topics-nbirth-mqtt': () => expect(births.every((x) => x.qos === 0 && !x.retain)).toBe(true),
      'tck-id-topics-dbirth-mqtt': () => expect(dbirths.every((x) => x.qos === 0 && !x.retain)).toBe(true),
      'tck-id-topics-ddata-mqtt': () => expect(ddata.every((x) => x.qos === 0 && !x.retain)).toBe(true),
      'tck-id-topics-ddeath-mqtt': () => expect(host.of('DDEATH').every((x) => x.qos === 0 && !x.retain)).toBe(true),
      'tck-id-topics-nbirth-seq-num': () => expect(births.map((x) => x.seq)).toEqual(births.map(() => 0)),
      'tck-id-topics-nbirth-timestamp': () => expect(num(nb.timestamp)).toBeGreaterThanOrEqual(t0),
      'tck-id-topics-nbirth-bdseq-included': () => expect(nb.metrics!.find((x) => x.name === 'bdSeq')?.type).toBe('Int64'),
      'tck-id-topics-nbirth-rebirth-metric': () =>
        expect(nb.metrics!.find((x) => x.name === 'Node Control/Rebirth')).toMatchObject({ type: 'Boolean', value: false }),
      'tck-id-operational-behavior-data-commands-rebirth-name-aliases': () =>
        expect(nb.metrics!.find((x) => x.name === 'Node Control/Rebirth')?.alias ?? null).toBeNull(),
      'tck-id-topics-ndeath-payload': () => expect(host.of('NDEATH')[0]!.payload.metrics!.map((x) => x.name)).toEqual(['bdSeq']),
      'tck-id-topics-ndeath-seq': () => expect(host.of('NDEATH')[0]!.seq).toBeNull(),
      'tck-id-topics-dbirth-seq / tck-id-topics-ddata-seq-num / tck-id-payloads-sequence-num-incrementing': () => {
        // Between births every node message is one more than the last, mod 256 (the host checks it on each message).
        expect(host.violations.filter((v) => v.includes('seq'))).toEqual([]);
        expect(m.filter((x) => x.type !== 'NDEATH' && x.type !== 'NCMD').every((x) => x.seq !== null)).toBe(true);
      },
      'tck-id-topics-dbirth-metrics': () =>
        expect(dbirths[0]!.payload.metrics!.every((x) => x.name && x.type && x.value !== undefined && x.timestamp !== undefined)).toBe(true),
      'tck-id-topics-dbirth-metric-reqs (a new metric births the device again first)': () => {
        const riskBirth = dbirths.findIndex((x) => x.payload.metrics!.some((y) => y.name === 'risk/machine-failure/score'));
        expect(riskBirth).toBeGreaterThan(0);
        // …and every DDATA names only aliases its device's latest birth declared (the host checks each one).
        expect(host.violations.filter((v) => v.includes('alias'))).toEqual([]);
      },
      'tck-id-message-flow-device-birth-publish-nbirth-wait': () =>
        expect(m.findIndex((x) => x.type === 'NBIRTH')).toBeLessThan(m.findIndex((x) => x.type === 'DBIRTH')),
      'tck-id-payloads-alias-birth-requirement': () =>
        expect(dbirths.every((x) => x.payload.metrics!.every((y) => y.name && y.alias !== undefined))).toBe(true),
      'tck-id-payloads-alias-data-cmd-requirement': () =>
        expect(ddata.every((x) => x.payload.metrics!.every((y) => !y.name && y.alias !== undefined))).toBe(true),
      'tck-id-payloads-alias-uniqueness': () => {
        const aliases = dbirths.at(-1)!.payload.metrics!.map((x) => num(x.alias));
        expect(new Set(aliases).size).toBe(aliases.length);
      },
      'tck-id-payloads-name-birth-data-requirement': () =>
        expect([...dbirths, ...ddata].every((x) => x.payload.metrics!.every((y) => y.timestamp !== undefined && y.timestamp !== null))).toBe(true),
      'tck-id-payloads-metric-datatype-req': () => expect(dbirths.every((x) => x.payload.metrics!.every((y) => typeof y.type === 'string'))).toBe(true),
      'tck-id-operational-behavior-data-publish-dbirth-change (report by exception)': () => {
        // The second reading changed spindle_speed only: its DDATA carries that one metric.
        const first = ddata[0]!.payload.metrics!;
        expect(first).toHaveLength(1);
        expect(first[0]!.value).toBe(1510);
      },
      'engineering units as the engUnit property': () => {
        const d = dbirths[0]!.payload.metrics!;
        expect(d.find((x) => x.name === 'spindle_speed')?.properties?.engUnit?.value).toBe('rpm');
        expect(d.find((x) => x.name === 'air_temp_k')?.properties?.engUnit?.value).toBe('K');
      },
      'tck-id-operational-behavior-data-commands-rebirth-action-2 / -3': () => {
        expect(births).toHaveLength(2);
        expect(bdSeqOf(births[1]!.payload)).toBe(bdSeqOf(nb));
        expect(dbirths.some((x) => x.at >= births[1]!.at)).toBe(true);
      },
      'tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath': () => expect(bdSeqOf(host.of('NDEATH')[0]!.payload)).toBe(bdSeqOf(nb)),
      'tck-id-payloads-timestamp-in-UTC': () => expect(m.every((x) => Math.abs(num(x.payload.timestamp) - Date.now()) < 3_600_000)).toBe(true),
    };
    const failed: string[] = [];
    for (const [id, check] of Object.entries(checklist)) {
      try {
        check();
      } catch (err) {
        failed.push(`${id}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    expect(failed).toEqual([]);
    expect(host.violations).toEqual([]);
    // Risk and alert states arrive as metrics of the asset's device.
    const dev = host.node.devices.get('mill-1')!;
    expect(dev.values.get('risk/machine-failure/score')).toBe(0.7);
    expect(dev.values.get('risk/machine-failure/atRisk')).toBe(true);
    expect(host.node.online).toBe(false);
  });

  it('registers the NDEATH as its Will with the bdSeq of the next NBIRTH; the next CONNECT carries bdSeq + 1', async () => {
    const { node, host, proxy } = await setup({ viaProxy: true });
    await host.connect();
    await node.start();
    await waitFor(() => host.node.births === 1, 'the first NBIRTH');
    const bd0 = host.node.bdSeq!;
    // The link dies without a DISCONNECT: the broker publishes the Will.
    proxy!.cut();
    await waitFor(() => host.of('NDEATH').length === 1, 'the NDEATH the broker sent as the Will');
    const will = host.of('NDEATH')[0]!;
    // [tck-id-payloads-ndeath-will-message-qos] QoS 1, [tck-id-payloads-ndeath-will-message-retain] not retained.
    expect(will.qos).toBe(1);
    expect(will.retain).toBe(false);
    // [tck-id-topics-nbirth-bdseq-matching]: the Will's bdSeq is the NBIRTH's.
    expect(num(will.payload.metrics![0]!.value)).toBe(bd0);
    expect(host.node.online).toBe(false);
    proxy!.restore();
    await waitFor(() => host.node.births === 2, 'the NBIRTH of the next session');
    // [tck-id-topics-nbirth-bdseq-increment]: one more per CONNECT (the cut session's retries may take a few).
    expect(host.node.bdSeq).toBeGreaterThan(bd0);
    expect(host.violations).toEqual([]);
  });

  it('waits for the primary host STATE online before births, ignores a stale STATE, births again when the host returns', async () => {
    const { store, node, host, lines } = await setup({ primaryHostId: 'scada' });
    await node.start();
    store.append([telemetry('pump-7', Date.now(), { flow: 3 })]);
    await waitFor(() => node.stats.state === 'waiting-for-host', 'the node waiting for the host');
    // [tck-id-message-flow-edge-node-birth-publish-phid-wait]: no birth while no host said online.
    await new Promise((r) => setTimeout(r, 300));
    expect(host.messages).toHaveLength(0);
    await host.connect(); // publishes STATE online (retained)
    await waitFor(() => host.node.births === 1, 'the NBIRTH once the host is online');
    await waitFor(() => host.node.devices.get('pump-7')?.online, 'the DBIRTH of pump-7');
    // [tck-id-message-flow-edge-node-birth-publish-phid-wait-timestamp]: an older offline STATE changes nothing.
    await host.setOnline(false, 1000);
    await new Promise((r) => setTimeout(r, 300));
    expect(host.node.online).toBe(true);
    // [tck-id-message-flow-edge-node-birth-publish-phid-offline]: offline → NDEATH, reconnect, wait, birth again.
    await host.setOnline(false);
    await waitFor(() => !host.node.online, 'the NDEATH after the host went offline');
    await new Promise((r) => setTimeout(r, 300));
    expect(host.node.births).toBe(1);
    await host.setOnline(true);
    await waitFor(() => host.node.births === 2, 'a new NBIRTH once the host is back');
    // A malformed STATE is refused with its code and counted, nothing else happens.
    await host
      .setOnline(true, Date.now())
      .then(() =>
        (host as unknown as { client: { publishAsync: (t: string, p: string, o: object) => Promise<unknown> } }).client.publishAsync(
          'spBv1.0/STATE/scada',
          'online',
          { qos: 1 },
        ),
      );
    await waitFor(() => node.stats.rejected === 1, 'the malformed STATE counted');
    expect(lines.some((l) => l.code === 'FW_ERR_SPARKPLUG_MESSAGE')).toBe(true);
    expect(host.violations).toEqual([]);
  });

  it('sends what was committed while it was away as is_historical, and the outbox holds those rows until then', async () => {
    const { store, node, host, proxy } = await setup({ viaProxy: true });
    await host.connect();
    const t0 = Date.now();
    await node.start();
    await waitFor(() => node.stats.state === 'online', 'the node online');
    const [seq1] = store.append([telemetry('mill-1', t0, { v: 1 })]);
    node.notify();
    await waitFor(() => host.node.devices.get('mill-1')?.values.get('v') === 1, 'the first value');
    await waitFor(() => store.getMeta('output.sparkplug.telemetry') === String(seq1), 'the position saved past the first reading');
    proxy!.cut();
    await waitFor(() => !host.node.online, 'the node offline (its Will)');
    store.append([telemetry('mill-1', t0 + 1, { v: 2 }), telemetry('mill-1', t0 + 2, { v: 3 })]);
    // The Forewarn sync has everything acknowledged; the purge may take only what Sparkplug has too.
    const rows = store.recordsAfter('telemetry', 0, 10);
    store.markSent(
      'telemetry',
      rows.map((r) => r.id),
    );
    expect(store.purgeSent(Number.MAX_SAFE_INTEGER)).toBe(1);
    expect(store.recordsAfter('telemetry', 0, 10).map((r) => (JSON.parse(r.json) as { metrics: { v: number } }).metrics.v)).toEqual([2, 3]);
    proxy!.restore();
    await waitFor(() => host.node.devices.get('mill-1')?.historical === 2, 'both buffered readings as history');
    const hist = host.of('DDATA').filter((m) => m.payload.metrics!.some((x) => x.isHistorical));
    expect(hist.map((m) => m.payload.metrics![0]!.value)).toEqual([2, 3]);
    expect(hist.map((m) => num(m.payload.metrics![0]!.timestamp))).toEqual([t0 + 1, t0 + 2]);
    // Once they are out (and fenced), the purge may take them.
    await waitFor(() => store.getMeta('output.sparkplug.telemetry') === String(seq1! + 2), 'the position saved past the backlog');
    expect(store.purgeSent(Number.MAX_SAFE_INTEGER)).toBe(2);
    expect(host.violations).toEqual([]);
  });

  it('wraps seq from 255 to 0 across all node messages ([tck-id-payloads-sequence-num-incrementing])', async () => {
    const { store, node, host } = await setup();
    await host.connect();
    await node.start();
    await waitFor(() => node.stats.state === 'online', 'the node online');
    const t0 = Date.now();
    // 300 changing readings: NBIRTH (0), a DBIRTH, then DDATA up to seq 255 and on from 0.
    for (let i = 0; i < 300; i++) store.append([telemetry('mill-1', t0 + i, { v: i })]);
    node.notify();
    await waitFor(() => host.node.devices.get('mill-1')?.values.get('v') === 299, 'the last reading');
    const seqs = host.messages.map((m) => m.seq);
    expect(seqs.slice(0, 3)).toEqual([0, 1, 2]);
    expect(seqs.indexOf(255)).toBe(255);
    expect(seqs[256]).toBe(0);
    expect(seqs).toHaveLength(301);
    expect(host.violations).toEqual([]);
  });

  it('does not stall when a link dies half-open under a drain: what it published there goes again next session', async () => {
    const { store, node, host, proxy } = await setup({ viaProxy: true, keepaliveSeconds: 5 });
    await host.connect();
    await node.start();
    await waitFor(() => node.stats.state === 'online', 'the node online');
    const t0 = Date.now();
    store.append([telemetry('mill-1', t0, { v: 1 })]);
    node.notify();
    await waitFor(() => host.node.devices.get('mill-1')?.values.get('v') === 1, 'the first value');
    // The peer vanishes: the next DDATA and its fence go nowhere, and no UNSUBACK ever comes on this link.
    proxy!.halfOpen();
    store.append([telemetry('mill-1', t0 + 1, { v: 2 })]);
    node.notify();
    await waitFor(() => node.stats.state === 'offline', 'the keepalive noticing the dead link', 20_000);
    proxy!.restore();
    await waitFor(() => host.node.births >= 2, 'the next session', 20_000);
    await waitFor(() => host.node.devices.get('mill-1')?.historical === 1, 'the reading lost on the dead link, again as history', 20_000);
    store.append([telemetry('mill-1', t0 + 2, { v: 3 })]);
    node.notify();
    await waitFor(() => host.node.devices.get('mill-1')?.values.get('v') === 3, 'live data flowing again');
    expect(host.violations).toEqual([]);
  }, 60_000);
});
