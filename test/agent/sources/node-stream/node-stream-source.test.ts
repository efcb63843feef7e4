import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../../../agent/src/config/load-config.js';
import type { HealthEvent, Reading } from '../../../../agent/src/core/types.js';
import {
  DEFAULT_NODE_STREAM_CONFIG,
  NodeStreamSource,
  assetFromBaseName,
  metricName,
  nodeStreamConfigSchema,
  splitSenmlName,
  type NodeStreamConfig,
} from '../../../../agent/src/sources/node-stream/node-stream-source.js';
import { vibrationFeatures } from '../../../../firmware-bridge/src/node-protocol/vibration-features.js';
import { iso10816Boundaries, iso10816Zone, velocityRms, ZONE_NUMBER } from '../../../../firmware-bridge/src/node-protocol/vibration-severity.js';
import { SensorNodeServer, datagrams, type SensorNodeServerOptions } from '../../../../firmware-bridge/src/simulators/sensor-node-server.js';
import { Prng } from '../../../../firmware-bridge/src/simulators/prng.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { waitFor } from '../../../helpers/wait.js';
import { cleanupAfterEach } from '../../../helpers/cleanup.js';
import { serialSkipReason } from '../../../helpers/serial-pty.js';

/**
 * The sensor-node source end to end: the emulator (sensor-node-server.ts) on TCP, UDP and a socat pty pair on one
 * side, NodeStreamSource on the other. The emulator runs 10× real time (a 4096-sample block every 41 ms).
 */
const ASSET = 'mac-0024befffe804ff1';
const FAST = { speedup: 10, node: { seed: 3, healthEveryS: 2 } } satisfies Partial<SensorNodeServerOptions>;
const BAND_KEYS = ['band_10_100_hz', 'band_100_500_hz', 'band_500_1000_hz', 'band_1000_2000_hz', 'band_2000_5000_hz'];
const ISO_KEYS = ['iso10816.velocity_rms_max', 'iso10816.zone', 'iso10816.boundary_ab', 'iso10816.boundary_bc', 'iso10816.boundary_cd'];
const FEATURE_KEYS = [...['rms', 'peak', 'crest', 'kurtosis', 'skewness', ...BAND_KEYS, 'velocity_rms', 'iso10816_zone'].map((k) => `vib.x.${k}`), ...ISO_KEYS];

const SERIAL_SKIP = await serialSkipReason();
const SERIALPORT_LOADS = await import('serialport').then(
  () => true,
  () => false,
);

const cleanup = cleanupAfterEach();

function source(cfg: Partial<NodeStreamConfig>) {
  const readings: Reading[] = [];
  const events: HealthEvent[] = [];
  const { log, lines } = captureLogger();
  const src = new NodeStreamSource(
    { enabled: true, reconnectMinMs: 50, reconnectMaxMs: 200, ...cfg },
    (r) => readings.push(r),
    (e) => events.push(e),
    log,
  );
  cleanup.push(() => src.stop());
  const said = (msg: string) => lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith(msg));
  return { src, readings, events, lines, said };
}

async function nodeServer(options: SensorNodeServerOptions): Promise<SensorNodeServer> {
  const server = new SensorNodeServer(options);
  await server.start();
  cleanup.push(() => server.stop());
  return server;
}

const has = (key: string) => (r: Reading) => key in r.metrics;
const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

/** Feature readings agree with vibration-features on the block the emulator sent. */
function checkFeatures(server: SensorNodeServer, readings: Reading[], count: number, asset = ASSET): void {
  const features = readings.filter(has('vib.x.rms'));
  expect(features.length).toBeGreaterThanOrEqual(count);
  for (const f of features.slice(-count)) {
    expect(f.asset).toBe(asset);
    expect(Object.keys(f.metrics).sort()).toEqual([...FEATURE_KEYS].sort());
    const block = server.blockAt(f.ts);
    expect(block, `block stamped ${f.ts}`).toBeDefined();
    const bands = [
      [10, 100],
      [100, 500],
      [500, 1000],
      [1000, 2000],
      [2000, 5000],
    ].map(([lowHz, highHz]) => ({ lowHz: lowHz!, highHz: highHz! }));
    const ref = vibrationFeatures(block!.samples, { sampleRateHz: block!.sampleRateHz, scale: block!.scale, bands });
    expect(rel(f.metrics['vib.x.rms']!, ref.rms)).toBeLessThan(0.01);
    expect(rel(f.metrics['vib.x.peak']!, ref.peak)).toBeLessThan(0.01);
    expect(rel(f.metrics['vib.x.kurtosis']!, ref.kurtosis)).toBeLessThan(0.01);
    ref.bands.forEach((b, i) => expect(rel(f.metrics[`vib.x.${BAND_KEYS[i]}`]!, b.energy)).toBeLessThan(0.01));
    // ISO 10816-3: the velocity of the very block sent, zoned by the default class (group 2, rigid: 1.4 / 2.8 / 4.5).
    const v = velocityRms(block!.samples, { sampleRateHz: block!.sampleRateHz, scale: block!.scale });
    expect(v.ok && rel(f.metrics['vib.x.velocity_rms']!, v.velocityRmsMmS)).toBeLessThan(1e-9);
    expect(f.metrics).toMatchObject({ 'iso10816.boundary_ab': 1.4, 'iso10816.boundary_bc': 2.8, 'iso10816.boundary_cd': 4.5 });
    expect(f.metrics['vib.x.iso10816_zone']).toBe(ZONE_NUMBER[iso10816Zone(f.metrics['vib.x.velocity_rms']!, iso10816Boundaries(2, 'rigid'))]);
    // One axis: the worst axis is this one.
    expect(f.metrics['iso10816.velocity_rms_max']).toBe(f.metrics['vib.x.velocity_rms']);
    expect(f.metrics['iso10816.zone']).toBe(f.metrics['vib.x.iso10816_zone']);
    // Plausible for the emulated bearing: shaft components + noise + impacts, a fraction of a g.
    expect(f.metrics['vib.x.rms']).toBeGreaterThan(0.2);
    expect(f.metrics['vib.x.rms']).toBeLessThan(5);
    expect(f.metrics['vib.x.crest']).toBeGreaterThan(1.4);
    expect(f.metrics['vib.x.kurtosis']).toBeGreaterThan(1.5);
  }
}

function checkMeasurements(readings: Reading[], asset = ASSET): void {
  const health = readings.find(has('node.uptime_s'))!;
  expect(health.asset).toBe(asset);
  expect(health.metrics).toEqual({ 'node.uptime_s': expect.any(Number), 'node.resets': 0 });
  const m = readings.find(has('temp'))!;
  expect(m.asset).toBe(asset);
  expect(Object.keys(m.metrics).sort()).toEqual(['current', 'temp']);
  expect(m.metrics.temp).toBeGreaterThan(35);
  expect(m.metrics.temp).toBeLessThan(70);
  expect(m.metrics.current).toBeGreaterThan(11);
  expect(m.metrics.current).toBeLessThan(14);
  expect(Math.abs(m.ts - Date.now())).toBeLessThan(600_000);
}

const arrived =
  (readings: Reading[], n = 3) =>
  () =>
    readings.filter(has('vib.x.rms')).length >= n && readings.some(has('node.uptime_s')) && readings.some(has('temp'));

describe('names and configuration', () => {
  it('turns SenML base names into assets and record names into dotted lowercase metrics', () => {
    expect(assetFromBaseName('urn:dev:mac:0024befffe804ff1:', 'x')).toBe(ASSET);
    expect(assetFromBaseName('pump/7/', 'x')).toBe('pump-7');
    expect(assetFromBaseName('', 'fallback')).toBe('fallback');
    expect(metricName('vib.x')).toBe('vib.x');
    expect(metricName('Motor-On')).toBe('motor_on');
    expect(metricName('bearing/DE:temp')).toBe('bearing.de.temp');
    expect(splitSenmlName('urn:dev:mac:0024befffe804ff1:temp', ['urn:dev:mac:0024befffe804ff1:'], 'd')).toEqual({ asset: ASSET, metric: 'temp' });
    expect(splitSenmlName('urn:dev:mac:0024befffe804ff1:vib.x', [], 'd')).toEqual({ asset: ASSET, metric: 'vib.x' });
    expect(splitSenmlName('node7/vib.y', ['node7/'], 'd')).toEqual({ asset: 'node7', metric: 'vib.y' });
    expect(splitSenmlName('temp', [], 'dflt')).toEqual({ asset: 'dflt', metric: 'temp' });
  });

  it('has a schema with a description and the default for every option', () => {
    const props = nodeStreamConfigSchema.properties!;
    expect(Object.keys(props).sort()).toEqual(Object.keys(DEFAULT_NODE_STREAM_CONFIG).sort());
    for (const [key, node] of Object.entries(props)) {
      expect(node.description.length, key).toBeGreaterThan(5);
      const dflt = DEFAULT_NODE_STREAM_CONFIG[key as keyof NodeStreamConfig];
      // A section's defaults are its options' (the section itself defaults to {}).
      if (node.type === 'object')
        for (const [sub, subNode] of Object.entries(node.properties!)) {
          expect(subNode.description.length, `${key}.${sub}`).toBeGreaterThan(5);
          expect(subNode.default, `${key}.${sub}`).toEqual((dflt as unknown as Record<string, unknown>)[sub]);
        }
      else expect(node.default, key).toEqual(dflt);
    }
    expect(() => source({ bands: [[500, 100]] })).toThrow(/band 0/);
    expect(() => source({ transport: 'serial', path: '' })).toThrow(/needs a path/);
    const iso = DEFAULT_NODE_STREAM_CONFIG.iso10816;
    expect(() => source({ iso10816: { ...iso, machineGroup: 3 as 1 } })).toThrow(/iso10816\.machineGroup: must be 1 or 2, got 3/);
    expect(() => source({ iso10816: { ...iso, assets: { pump: { foundation: 'soft' as 'rigid' } } } })).toThrow(
      /iso10816\.assets\.pump\.foundation: must be rigid or flexible/,
    );
    expect(() => source({ iso10816: { ...iso, assets: { '-x': {} } } })).toThrow(/iso10816\.assets\.-x: not an asset name/);
  });

  it('reads the iso10816 options from the configuration file with defaults, and refuses bad ones as `path: message`', () => {
    const yaml = (iso: string) => `sources:\n  nodeStreams:\n    - transport: tcp\n      iso10816: ${iso}\n`;
    const c = buildConfig(yaml('{ assets: { pump-7: { machineGroup: 1 } } }'), {});
    expect(c.sources.nodeStreams[0]!.iso10816).toEqual({
      enabled: true,
      lowHz: 10,
      machineGroup: 2,
      foundation: 'rigid',
      assets: { 'pump-7': { machineGroup: 1 } },
    });
    let details: string[] = [];
    try {
      buildConfig(yaml('{ machineGroup: 3, foundation: soft, lowHz: 5, assets: { fan: { group: 2 } } }'), {});
    } catch (err) {
      details = [...(err as { details: string[] }).details];
    }
    expect(details.sort()).toEqual(
      [
        'sources.nodeStreams.0.iso10816.machineGroup: must be one of 1, 2',
        'sources.nodeStreams.0.iso10816.foundation: must be one of "rigid", "flexible"',
        'sources.nodeStreams.0.iso10816.lowHz: must be one of 2, 10',
        'sources.nodeStreams.0.iso10816.assets.fan.group: unknown option',
      ].sort(),
    );
  });

  it('cuts a stream into datagrams of whole frames', () => {
    const bytes = Uint8Array.of(1, 2, 0, 3, 0, 4, 5, 0, 6);
    expect(datagrams(bytes, 1).map((d) => [...d])).toEqual([[1, 2, 0], [3, 0], [4, 5, 0], [6]]);
    expect(datagrams(bytes, 2).map((d) => [...d])).toEqual([
      [1, 2, 0, 3, 0],
      [4, 5, 0, 6],
    ]);
  });
});

describe('NodeStreamSource over TCP', () => {
  it('delivers health, temperature/current and vibration features of the right asset; keeps raw blocks on request', async () => {
    const server = await nodeServer({ transport: 'tcp', ...FAST });
    const { src, readings, events, said } = source({ transport: 'tcp', host: '127.0.0.1', port: server.port, keepRawBlocks: 3 });
    await src.start();
    // start() does not wait for the link: nothing has been read yet when it returns.
    expect(readings).toEqual([]);
    await waitFor(arrived(readings), 'health, measurement and feature readings', 10_000);
    checkMeasurements(readings);
    checkFeatures(server, readings, 3);
    expect(events).toEqual([]);
    const s = src.stats;
    expect(s).toMatchObject({
      state: 'running',
      connected: true,
      connects: 1,
      reconnects: 0,
      badCrc: 0,
      badCobs: 0,
      badCbor: 0,
      truncated: 0,
      lostFrames: 0,
      blocksDropped: 0,
    });
    expect(s.framesOk).toBe(s.frames);
    expect(s.blocksCompleted).toBeGreaterThanOrEqual(3);
    expect(s.samples).toBe(readings.length);
    expect(said('sensor-node link open')).toHaveLength(1);
    // Raw samples only because keepRawBlocks > 0, and only the last 3.
    const raw = src.rawBlocks();
    expect(raw.length).toBe(3);
    const last = raw[2]!;
    expect(last.name).toBe('urn:dev:mac:0024befffe804ff1:vib.x');
    expect(last.samples).toEqual(server.blockAt(Math.round(last.startTime * 1000))!.samples);
    // stop() closes the connection and nothing more arrives.
    await src.stop();
    await waitFor(() => server.clientCount === 0, 'the server to see the client go', 5000);
    const n = readings.length;
    await new Promise((r) => setTimeout(r, 150));
    expect(readings.length).toBe(n);
    expect(src.stats.state).toBe('stopped');
  });

  it('keeps reading through garbage, bit flips, truncated frames and dropped chunks; counts them, logs once', async () => {
    // Per frame: 5 % garbage before it (lost with it: no leading delimiter), 3 % a flipped bit, 1 % cut short, 1 % of
    // chunks lost. About 1 block in 3 (11 chunks) survives whole.
    const noise = { garbageProbability: 0.05, garbageMaxBytes: 24, bitFlipProbability: 0.03, truncateProbability: 0.01, dropChunkProbability: 0.01 };
    const server = await nodeServer({ transport: 'tcp', ...FAST, noise, keepBlocks: 1000 });
    const { src, readings, said } = source({ transport: 'tcp', host: '127.0.0.1', port: server.port });
    await src.start();
    await waitFor(() => arrived(readings, 6)() && src.stats.blocksDropped >= 2 && src.stats.badCrc >= 3, 'readings among damaged frames', 20_000);
    const s = src.stats;
    expect(s.state).toBe('running');
    expect(s.badCrc + s.badCobs + s.runt).toBeGreaterThan(0);
    expect(s.lostFrames).toBeGreaterThan(0);
    const outcomes = s.framesOk + s.badCobs + s.oversize + s.runt + s.badCrc + s.unknownVersion + s.badCbor + s.unknownType + s.badMessage + s.truncated;
    expect(outcomes).toBe(s.frames);
    checkFeatures(server, readings, 4);
    for (const r of readings) for (const v of Object.values(r.metrics)) expect(Number.isFinite(v)).toBe(true);
    // Damage is logged with the counts, at most once a minute.
    const logged = said('damaged or lost sensor-node frames');
    expect(logged).toHaveLength(1);
    expect(logged[0]!.totals).toMatchObject({ badCrc: expect.any(Number), blocksDropped: expect.any(Number) });
    expect(src.rawBlocks()).toEqual([]);
  });

  it('a node reset gives one node.reset event with its cause', async () => {
    const server = await nodeServer({ transport: 'tcp', speedup: 10, node: { seed: 4, healthEveryS: 1 } });
    const { src, readings, events } = source({ transport: 'tcp', host: '127.0.0.1', port: server.port });
    await src.start();
    const healthWith = (resets: number) => readings.filter((r) => r.metrics['node.resets'] === resets);
    await waitFor(() => healthWith(0).length >= 2, 'health records before the reset', 10_000);
    expect(events).toEqual([]);
    server.restart({ lastResetCause: 'watchdog' });
    await waitFor(() => healthWith(1).length >= 3, 'health records after the reset', 10_000);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: 'node.reset',
      source: 'node-stream',
      asset: ASSET,
      code: 3,
      attributes: { cause: 'watchdog', causeCode: 3, resets: 1, previousResets: 0, firmware: '1.4.2' },
    });
    expect(events[0]!.message).toMatch(/watchdog/);
    expect(src.stats.nodeResets).toBe(1);
    expect(healthWith(1)[0]!.metrics['node.uptime_s']).toBeLessThan(2);
  });

  it('the node going away is a failing state logged once; it coming back is a reconnect logged once', async () => {
    const server = await nodeServer({ transport: 'tcp', ...FAST });
    const { src, readings, said } = source({ transport: 'tcp', host: '127.0.0.1', port: server.port });
    await src.start();
    await waitFor(arrived(readings, 1), 'readings', 10_000);
    await server.stop();
    await waitFor(() => src.stats.state === 'failing' && src.stats.errors >= 4, 'failed reconnects', 10_000);
    expect(said('sensor-node link lost')).toHaveLength(1);
    expect(said('sensor-node link cannot be opened')).toHaveLength(0);
    expect(src.stats.connected).toBe(false);
    const mark = readings.length;
    await server.start();
    await waitFor(() => src.stats.state === 'running' && readings.slice(mark).some(has('vib.x.rms')), 'readings after the node came back', 10_000);
    expect(src.stats.reconnects).toBe(1);
    expect(said('sensor-node link back')).toHaveLength(1);
  });
});

describe('NodeStreamSource: ISO 10816-3 severity from the emulated bearing', () => {
  it("crosses zones A, B, C and D in order as the defect grows, each block zoned by its own velocity and its asset's class", async () => {
    // Group 1 on a rigid foundation (2.3 / 4.5 / 7.1 mm/s); the defect's force (10 m/s² at severity 1) takes the
    // bearing from about 1.9 mm/s (shaft 1× and 2×, noise) to about 11 mm/s over 40 simulated seconds.
    const server = await nodeServer({ transport: 'tcp', speedup: 20, keepBlocks: 2000, node: { seed: 4, lifetimeS: 40, defectAccelMs2: 10 } });
    const { src, readings } = source({
      transport: 'tcp',
      host: '127.0.0.1',
      port: server.port,
      iso10816: { ...DEFAULT_NODE_STREAM_CONFIG.iso10816, assets: { [ASSET]: { machineGroup: 1 } } },
    });
    await src.start();
    const blocks = () => readings.filter(has('vib.x.velocity_rms'));
    await waitFor(() => blocks().filter((r) => r.metrics['iso10816.zone'] === 4).length >= 5, 'five blocks in zone D', 30_000);
    const b = iso10816Boundaries(1, 'rigid');
    const zones: number[] = [];
    for (const r of blocks()) {
      const v = r.metrics['vib.x.velocity_rms']!;
      expect(r.metrics).toMatchObject({ 'iso10816.boundary_ab': b.ab, 'iso10816.boundary_bc': b.bc, 'iso10816.boundary_cd': b.cd });
      expect(r.metrics['vib.x.iso10816_zone']).toBe(ZONE_NUMBER[iso10816Zone(v, b)]);
      const sent = server.blockAt(r.ts);
      expect(sent, `block stamped ${r.ts}`).toBeDefined();
      const ref = velocityRms(sent!.samples, { sampleRateHz: sent!.sampleRateHz, scale: sent!.scale });
      expect(ref.ok && rel(v, ref.velocityRmsMmS)).toBeLessThan(1e-9);
      if (zones.at(-1) !== r.metrics['vib.x.iso10816_zone']) zones.push(r.metrics['vib.x.iso10816_zone']!);
    }
    // Every zone seen, in order (a block near a boundary may step back once: the velocity of one block is noisy).
    expect(zones[0]).toBe(1);
    expect(zones.at(-1)).toBe(4);
    expect(new Set(zones)).toEqual(new Set([1, 2, 3, 4]));
    expect(zones.filter((z, i) => i > 0 && z < zones[i - 1]!).length).toBeLessThanOrEqual(3);
    expect(blocks().at(-1)!.metrics['vib.x.velocity_rms']).toBeGreaterThan(b.cd);
    expect(src.stats.velocityBlocks).toBe(blocks().length);
    expect(src.stats.velocityRefused).toBe(0);
  }, 60_000);

  it('a block too short for the 10 Hz edge gives no velocity: counted, logged once with its code, its other features kept', async () => {
    // 2048 samples at 10 kHz: 0.2 s, half of what 4 periods of 10 Hz need.
    const server = await nodeServer({ transport: 'tcp', speedup: 10, node: { seed: 5, blockSamples: 2048 } });
    const { src, readings, lines } = source({ transport: 'tcp', host: '127.0.0.1', port: server.port });
    await src.start();
    await waitFor(() => readings.filter(has('vib.x.rms')).length >= 3, 'three feature readings', 10_000);
    expect(readings.filter(has('vib.x.velocity_rms'))).toEqual([]);
    expect(readings.filter(has('iso10816.zone'))).toEqual([]);
    expect(src.stats.velocityRefused).toBeGreaterThanOrEqual(3);
    expect(src.stats.velocityBlocks).toBe(0);
    const said = lines.filter((l) => l.code === 'FW_ERR_VIBRATION_BLOCK');
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ asset: ASSET, channel: 'vib.x', reason: expect.stringMatching(/shorter than the 0.4 s that a 10 Hz lower edge needs/) });
    expect(src.stats.state).toBe('running');
  });

  it("takes an asset's worst axis over its channels: two axes of one machine, each from its own sender, over UDP", async () => {
    const { src, readings } = source({ transport: 'udp', host: '127.0.0.1', port: 0 });
    await src.start();
    await waitFor(() => src.stats.state === 'running', 'the UDP socket to be bound', 5000);
    // One machine (one base name), a calm horizontal axis and a vertical one with a full-grown defect (about 11 mm/s).
    const node = { healthEveryS: 2, lifetimeS: 1, initialSeverity: 1 };
    await nodeServer({ transport: 'udp', port: src.port, speedup: 10, node: { ...node, seed: 6, channel: 'vib.h', defectAccelMs2: 0.01 } });
    await nodeServer({ transport: 'udp', port: src.port, speedup: 10, node: { ...node, seed: 7, channel: 'vib.v', defectAccelMs2: 10 } });
    const axis = (ch: string) => readings.filter(has(`${ch}.velocity_rms`));
    await waitFor(() => axis('vib.h').length >= 4 && axis('vib.v').length >= 4, 'blocks of both axes', 10_000);
    const h = axis('vib.h').at(-1)!;
    const v = axis('vib.v').at(-1)!;
    expect(h.asset).toBe(ASSET);
    expect(v.asset).toBe(ASSET);
    expect(h.metrics['vib.h.velocity_rms']).toBeLessThan(2.8); // zone B of group 2 rigid
    expect(v.metrics['vib.v.velocity_rms']).toBeGreaterThan(4.5); // zone D
    expect([h.metrics['vib.h.iso10816_zone'], v.metrics['vib.v.iso10816_zone']]).toEqual([2, 4]);
    // Each reading carries its own axis and the asset's worst: the vertical one, from the other sender's last block.
    await waitFor(() => readings.some((r) => r.ts > v.ts && has('vib.h.velocity_rms')(r)), 'a horizontal block after a vertical one', 10_000);
    const hAfter = readings.find((r) => r.ts > v.ts && has('vib.h.velocity_rms')(r))!;
    expect(hAfter.metrics['iso10816.velocity_rms_max']).toBeGreaterThan(4.5);
    expect(hAfter.metrics['iso10816.velocity_rms_max']).toBeGreaterThan(hAfter.metrics['vib.h.velocity_rms']!);
    expect(hAfter.metrics['iso10816.zone']).toBe(4);
  });

  it('computes no velocity when iso10816 is off', async () => {
    const server = await nodeServer({ transport: 'tcp', ...FAST });
    const { src, readings } = source({
      transport: 'tcp',
      host: '127.0.0.1',
      port: server.port,
      iso10816: { ...DEFAULT_NODE_STREAM_CONFIG.iso10816, enabled: false },
    });
    await src.start();
    await waitFor(() => readings.filter(has('vib.x.rms')).length >= 2, 'two feature readings', 10_000);
    expect(readings.filter((r) => Object.keys(r.metrics).some((k) => /velocity|iso10816/.test(k)))).toEqual([]);
  });
});

describe('NodeStreamSource over UDP', () => {
  it('takes datagrams of several frames from two nodes, one decoder each', async () => {
    const { src, readings } = source({ transport: 'udp', host: '127.0.0.1', port: 0 });
    await src.start();
    await waitFor(() => src.stats.state === 'running', 'the UDP socket to be bound', 5000);
    const a = await nodeServer({ transport: 'udp', port: src.port, framesPerDatagram: 3, ...FAST });
    const other = 'urn:dev:mac:00000000000000aa:';
    const b = await nodeServer({ transport: 'udp', port: src.port, speedup: 10, node: { seed: 9, healthEveryS: 2, baseName: other } });
    const ofAsset = (asset: string) => readings.filter((r) => r.asset === asset);
    await waitFor(() => arrived(ofAsset(ASSET))() && arrived(ofAsset('mac-00000000000000aa'))(), 'readings from both nodes', 10_000);
    checkMeasurements(ofAsset(ASSET));
    checkMeasurements(ofAsset('mac-00000000000000aa'), 'mac-00000000000000aa');
    checkFeatures(a, ofAsset(ASSET), 3);
    checkFeatures(b, ofAsset('mac-00000000000000aa'), 3, 'mac-00000000000000aa');
    expect(a.stats.datagrams).toBeLessThan(a.stats.frames);
    expect(src.stats).toMatchObject({ peers: 2, badCrc: 0, truncated: 0, lostFrames: 0, blocksDropped: 0 });
  });

  it('random datagrams and a noisy node are counted, never thrown; readings keep coming', async () => {
    const { src, readings, said } = source({ transport: 'udp', host: '127.0.0.1', port: 0 });
    await src.start();
    await waitFor(() => src.stats.state === 'running', 'the UDP socket to be bound', 5000);
    const noise = { garbageProbability: 0.05, bitFlipProbability: 0.03, truncateProbability: 0.02 };
    const server = await nodeServer({ transport: 'udp', port: src.port, ...FAST, noise, keepBlocks: 1000 });
    const junk = dgram.createSocket('udp4');
    cleanup.push(() => new Promise<void>((r) => junk.close(() => r())));
    const rng = new Prng(11);
    for (let i = 0; i < 300; i++) {
      const d = Buffer.from(Array.from({ length: rng.int(1, 1500) }, () => (rng.bernoulli(0.02) ? 0 : rng.int(0, 255))));
      junk.send(d, src.port, '127.0.0.1');
    }
    await waitFor(() => arrived(readings, 6)() && src.stats.peers === 2 && src.stats.truncated > 0 && src.stats.badCrc > 0, 'readings among junk', 15_000);
    checkFeatures(
      server,
      readings.filter((r) => r.asset === ASSET),
      4,
    );
    expect(src.stats.state).toBe('running');
    expect(src.stats.badCobs + src.stats.runt + src.stats.badCrc + src.stats.oversize).toBeGreaterThan(10);
    expect(said('damaged or lost sensor-node frames')).toHaveLength(1);
  });
});

describe(`NodeStreamSource on a serial port${SERIAL_SKIP ? ` (skipped: ${SERIAL_SKIP})` : ''}`, () => {
  it.skipIf(!!SERIAL_SKIP)(
    'reads a pty pair; the port disappearing is failing (logged once), it coming back resumes readings',
    async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'forewarn-node-'));
      const [ttyA, ttyB] = [path.join(dir, 'a'), path.join(dir, 'b')];
      let socat: ChildProcess | null = null;
      const startSocat = async () => {
        socat = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${ttyA}`, `pty,raw,echo=0,link=${ttyB}`], { stdio: 'ignore' });
        await waitFor(() => existsSync(ttyA) && existsSync(ttyB), 'the pty links', 5000);
      };
      const killSocat = async () => {
        const p = socat;
        socat = null;
        if (!p || p.exitCode !== null) return;
        const exited = new Promise((r) => p.once('exit', r));
        p.kill('SIGTERM');
        await exited;
      };
      cleanup.push(async () => {
        await killSocat();
        rmSync(dir, { recursive: true, force: true });
      });
      await startSocat();
      const server = await nodeServer({ transport: 'serial', path: ttyA, reopenMs: 50, ...FAST });
      const { src, readings, said } = source({ transport: 'serial', path: ttyB, baudRate: 460_800 });
      await src.start();
      await waitFor(arrived(readings), 'readings over the pty', 10_000);
      checkMeasurements(readings);
      checkFeatures(server, readings, 3);
      expect(src.stats).toMatchObject({ state: 'running', connects: 1, badCrc: 0 });

      // Unplug: the pty pair goes away.
      await killSocat();
      await waitFor(() => src.stats.state === 'failing', 'the source to notice the port is gone', 20_000);
      await waitFor(() => src.stats.errors >= 4, 'failed attempts to reopen', 20_000);
      expect(src.stats.lastError).toMatch(/No such file|ENOENT/i);
      expect(said('sensor-node link lost')).toHaveLength(1);
      expect(said('sensor-node link cannot be opened')).toHaveLength(0);
      const okBefore = src.stats.framesOk;

      // Replug: same names.
      const mark = readings.length;
      await startSocat();
      await waitFor(
        () => src.stats.state === 'running' && readings.slice(mark).filter(has('vib.x.rms')).length >= 2,
        'readings after the port came back',
        10_000,
      );
      expect(src.stats.reconnects).toBe(1);
      expect(src.stats.framesOk).toBeGreaterThan(okBefore);
      expect(said('sensor-node link back')).toHaveLength(1);
      expect(server.stats.opens).toBeGreaterThanOrEqual(2);
    },
    60_000,
  );

  it('a device missing at start is a failing state with back-off, not an exception', async () => {
    const { src, said } = source({ transport: 'serial', path: '/dev/forewarn-no-such-tty' });
    await src.start();
    await waitFor(() => src.stats.errors >= 3, 'failed opens', 5000);
    if (!SERIALPORT_LOADS) {
      expect(src.stats.state).toBe('unavailable');
      return;
    }
    expect(src.stats.state).toBe('failing');
    expect(src.stats.lastError).toMatch(/forewarn-no-such-tty|No such file/);
    expect(said('sensor-node link cannot be opened')).toHaveLength(1);
  });
});
