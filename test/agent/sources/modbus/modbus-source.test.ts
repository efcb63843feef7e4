import path from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import type { Reading, RiskRecord } from '../../../../agent/src/core/types.js';
import { RiskScorer } from '../../../../agent/src/scoring/risk-scorer.js';
import { isForewarnError } from '../../../../agent/src/core/errors.js';
import {
  DEFAULT_MODBUS_DEVICE_CONFIG,
  MODBUS_DEVICE_SCHEMA,
  MODBUS_SOURCES_SCHEMA,
  ModbusSource,
  resolveDevice,
  type ModbusDeviceConfig,
  type ModbusSignalConfig,
} from '../../../../agent/src/sources/modbus/modbus-source.js';
import {
  MILLING_MACHINE_DEVICE_MAP,
  MillingModbusServer,
  millingDeviceMap,
  type MillingModbusServerOptions,
} from '../../../../firmware-bridge/src/simulators/milling-modbus-server.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { waitFor } from '../../../helpers/wait.js';
import { cleanupAfterEach } from '../../../helpers/cleanup.js';

const MODELS = path.resolve(import.meta.dirname, '../../../../models');
const cleanup = cleanupAfterEach();

async function serve(options: MillingModbusServerOptions = {}): Promise<MillingModbusServer> {
  const server = new MillingModbusServer(options);
  await server.start();
  cleanup.push(() => server.stop());
  return server;
}

async function source(cfg: Partial<ModbusDeviceConfig> & { signals: ModbusSignalConfig[] }) {
  const readings: Reading[] = [];
  const { log, lines } = captureLogger();
  const src = new ModbusSource({ name: 'mill', intervalMs: 50, timeoutMs: 300, reconnectMinMs: 50, reconnectMaxMs: 400, ...cfg }, (r) => readings.push(r), log);
  await src.start();
  cleanup.push(() => src.stop());
  return { src, readings, lines };
}

const expected = (server: MillingModbusServer, unitId?: number): Record<string, number> => {
  const s = server.current(unitId);
  return { ...server.signals(unitId), cycle: s.cycle, machine_failure: s.failed ? 1 : 0 };
};

describe('ModbusSource against the simulated milling machine', () => {
  it('decodes exactly the simulator values, process after process, failure flags included', async () => {
    // Frequent random failures so the flag is seen both set and clear.
    const server = await serve({ autoAdvance: false, seed: 7, simulator: { randomFailureProbability: 0.3 } });
    // Register 5 (the flags word) is not in the map: bridging that one-register hole makes it one request.
    const { src, readings } = await source({ port: server.port, maxGapRegisters: 1, signals: millingDeviceMap() });
    const seenFailure = new Set<number>();
    for (let cycle = 0; cycle < 40; cycle++) {
      if (cycle > 0) server.advance();
      const r = await waitFor(() => readings.find((x) => x.metrics.cycle === cycle), `reading of process ${cycle}`, 5000, 5);
      expect(r).toMatchObject({ source: 'modbus:mill', asset: 'sim-mill-1' });
      expect(r.metrics).toEqual(expected(server));
      seenFailure.add(r.metrics.machine_failure!);
    }
    expect([...seenFailure].sort()).toEqual([0, 1]);
    // One FC 4 read of input registers 0-11 and one FC 2 read of the flag per poll.
    expect(src.plan.map((b) => [b.functionCode, b.address, b.count])).toEqual([
      [4, 0, 12],
      [2, 0, 1],
    ]);
    expect(src.counters).toMatchObject({ timeouts: 0, malformed: 0, crcErrors: 0, exceptions: {}, connects: 1, reconnects: 0 });
    expect(src.counters.responses).toBe(src.counters.requests);
    expect(src.stats.state).toBe('running');
  });

  it('reads a word-swapped (CDAB) and a fully little-endian (DCBA) device through the map layout', async () => {
    for (const layout of [
      { byteOrder: 'big', wordOrder: 'little' },
      { byteOrder: 'little', wordOrder: 'little' },
    ] as const) {
      const server = await serve({ autoAdvance: false, seed: 3, ...layout });
      server.advance(5);
      const { readings } = await source({ port: server.port, signals: millingDeviceMap(layout) });
      const r = await waitFor(() => readings[0], 'a reading');
      expect(r.metrics).toEqual(expected(server));
      // The same device read with the wrong layout gives different numbers: the order matters.
      const wrong = await source({ port: server.port, name: 'wrong', signals: millingDeviceMap() });
      const w = await waitFor(() => wrong.readings[0], 'a reading');
      expect(w.metrics.torque).not.toBe(r.metrics.torque);
    }
  });

  it('binds registers to assets and signal names by configuration alone', async () => {
    const server = await serve({ autoAdvance: false, unitIds: [1, 2], seed: 11 });
    const map: ModbusSignalConfig[] = [
      ...millingDeviceMap({ asset: 'mill-a', unitId: 1 }),
      ...millingDeviceMap({ asset: 'mill-b', unitId: 2 }),
      // The same register under another name, scaled: torque in kN·m.
      { asset: 'mill-a', signal: 'torque_knm', registerType: 'input', address: 10, dataType: 'float32', scale: 0.001 },
      { asset: 'mill-a', signal: 'air_celsius', registerType: 'input', address: 6, dataType: 'float32', offset: -273.15 },
    ];
    const { readings } = await source({ port: server.port, signals: map });
    const a = await waitFor(() => readings.find((r) => r.asset === 'mill-a'), 'mill-a');
    const b = await waitFor(() => readings.find((r) => r.asset === 'mill-b'), 'mill-b');
    expect(b.metrics).toEqual(expected(server, 2));
    const { torque_knm, air_celsius, ...rest } = a.metrics;
    expect(rest).toEqual(expected(server, 1));
    expect(torque_knm).toBeCloseTo(server.current(1).torqueNm / 1000, 12);
    expect(air_celsius).toBeCloseTo(server.current(1).airTemperatureK - 273.15, 9);
    expect(a.metrics.torque).not.toBe(b.metrics.torque); // two machines
  });

  it('polls each signal at its own interval', async () => {
    const server = await serve({ autoAdvance: false });
    const map = MILLING_MACHINE_DEVICE_MAP.map((s) => ({ ...s, intervalMs: s.signal === 'torque' ? 50 : 250 }));
    const { src, readings } = await source({ port: server.port, signals: map });
    await new Promise((r) => setTimeout(r, 1300));
    await src.stop();
    const fast = readings.filter((r) => 'torque' in r.metrics).length;
    const slow = readings.filter((r) => 'tool_wear' in r.metrics).length;
    expect(slow).toBeGreaterThanOrEqual(4);
    expect(slow).toBeLessThanOrEqual(7);
    expect(fast / slow).toBeGreaterThan(3);
    // Readings without the slow signals carry only the fast one.
    expect(readings.some((r) => Object.keys(r.metrics).join() === 'torque')).toBe(true);
    // Torque sits inside the slow batch's span but has its own interval, so it is its own request.
    expect(src.plan.filter((b) => b.intervalMs === 50).map((b) => [b.address, b.count])).toEqual([[10, 2]]);
  });

  it('splits a batch the device refuses with exception 2, and the other signals keep reporting', async () => {
    const server = await serve({ autoAdvance: false });
    // Registers 12-13 exist, 14-99 do not, 100 does (holding scratch): a bridged gap the device refuses.
    const map: ModbusSignalConfig[] = [
      { asset: 'm', signal: 'torque', registerType: 'holding', address: 10, dataType: 'float32' },
      { asset: 'm', signal: 'scratch', registerType: 'holding', address: 100 },
      { asset: 'm', signal: 'missing', registerType: 'holding', address: 50 },
    ];
    const { src, readings, lines } = await source({ port: server.port, maxGapRegisters: 100, signals: map });
    const r = await waitFor(() => readings.find((x) => 'torque' in x.metrics && 'scratch' in x.metrics), 'torque and scratch');
    expect(r.metrics).toEqual({ torque: server.current().torqueNm, scratch: 0 });
    await waitFor(() => src.counters.exceptions[2]! >= 5, 'exceptions repeat per poll');
    expect(src.plan).toHaveLength(3);
    // Logged once each, not per poll.
    expect(lines.filter((l) => String(l.msg).includes('refused a batched read'))).toHaveLength(1);
    expect(lines.filter((l) => String(l.msg).includes('answers an exception'))).toHaveLength(1);
    expect(readings.every((x) => !('missing' in x.metrics))).toBe(true);
    expect(src.stats.state).toBe('running');
  });

  it('feeds the machine-failure model: real Modbus traffic scored end to end', async () => {
    const server = await serve({ autoAdvance: false, seed: 5 });
    const risks: RiskRecord[] = [];
    const scorer = new RiskScorer(
      { modelsDir: MODELS, threads: 1, bindings: [{ model: 'machine-failure', assets: ['sim-mill-1'] }] },
      (r) => risks.push(...r),
      captureLogger().log,
    );
    await scorer.start();
    cleanup.push(() => scorer.stop());
    const readings: Reading[] = [];
    const src = new ModbusSource(
      { name: 'mill', port: server.port, intervalMs: 50, signals: [...MILLING_MACHINE_DEVICE_MAP] },
      (r) => {
        readings.push(r);
        scorer.accept(r);
      },
      captureLogger().log,
    );
    await src.start();
    cleanup.push(() => src.stop());
    await waitFor(() => risks.length >= 3, 'risk records');
    expect(risks[0]).toMatchObject({ asset: 'sim-mill-1', model: 'machine-failure', kind: 'probability' });
    expect(risks[0]!.score).toBeGreaterThanOrEqual(0);
    expect(risks[0]!.score).toBeLessThanOrEqual(1);
    expect(scorer.stats.skippedMissing + scorer.stats.skippedInvalid).toBe(0);
  });
});

describe('Modbus device configuration', () => {
  const sig: ModbusSignalConfig = { asset: 'a', signal: 's', registerType: 'holding', address: 0 };
  const bad = (cfg: Partial<ModbusDeviceConfig>, pattern: RegExp): void => {
    let err: unknown;
    try {
      resolveDevice({ signals: [sig], ...cfg });
    } catch (e) {
      err = e;
    }
    expect(isForewarnError(err, 'FW_ERR_CONFIG_INVALID'), String(err)).toBe(true);
    expect(String((err as Error).message)).toMatch(pattern);
  };

  it('rejects maps the protocol cannot read, naming the signal', () => {
    bad({ signals: [] }, /no signals/);
    bad({ signals: [sig, sig] }, /bound twice/);
    bad({ signals: [{ ...sig, registerType: 'coil', dataType: 'float32' }] }, /is a bit/);
    bad({ signals: [{ ...sig, address: 65535, dataType: 'uint32' }] }, /run past 65535/);
    bad({ signals: [{ ...sig, address: -1 }] }, /address/);
    bad({ signals: [{ ...sig, scale: 0 }] }, /scale/);
    bad({ signals: [{ ...sig, intervalMs: 5 }] }, /intervalMs/);
    bad({ transport: 'rtu' }, /serial path/);
    bad({ reconnectMinMs: 1000, reconnectMaxMs: 100 }, /reconnectMaxMs/);
    bad({ maxRegistersPerRead: 200 }, /maxRegisters/);
  });

  it('fills in defaults, and the schema carries the same defaults', () => {
    const { cfg, signals, tickMs } = resolveDevice({ signals: [sig, { ...sig, signal: 't', intervalMs: 250, unitId: 3 }] });
    expect(cfg).toMatchObject(DEFAULT_MODBUS_DEVICE_CONFIG);
    expect(signals.map((s) => [s.unitId, s.intervalMs])).toEqual([
      [1, 1000],
      [3, 250],
    ]);
    expect(tickMs).toBe(250);
    for (const [k, v] of Object.entries(DEFAULT_MODBUS_DEVICE_CONFIG)) expect(MODBUS_DEVICE_SCHEMA.properties![k]?.default, k).toEqual(v);
    expect(MODBUS_SOURCES_SCHEMA.properties!.devices!.items).toBe(MODBUS_DEVICE_SCHEMA);
    for (const node of Object.values(MODBUS_DEVICE_SCHEMA.properties!)) expect(node.description.length).toBeGreaterThan(5);
  });

  it("the schema compiles with the agent's Ajv settings and fills in the same defaults as resolveDevice", () => {
    const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true });
    ajv.addKeyword({ keyword: 'secret', schemaType: 'boolean' });
    const { default: _d, ...section } = MODBUS_SOURCES_SCHEMA;
    const validate = ajv.compile({ type: 'object', additionalProperties: false, properties: { modbus: section } });
    const data = { modbus: { devices: [{ name: 'mill', host: '10.0.0.5', signals: [...MILLING_MACHINE_DEVICE_MAP] }] } };
    expect(validate(data), JSON.stringify(validate.errors)).toBe(true);
    const device = data.modbus.devices[0]! as unknown as ModbusDeviceConfig;
    expect(device).toEqual(resolveDevice(device).cfg);
    expect(device).toMatchObject({ ...DEFAULT_MODBUS_DEVICE_CONFIG, name: 'mill', host: '10.0.0.5' });
    expect(validate({ modbus: { devices: [{ signals: [{ asset: 'a', signal: 's', registerType: 'eeprom', address: 0 }] }] } })).toBe(false);
    expect(validate({ modbus: { devices: [{ signals: [] }] } })).toBe(false);
    expect(validate({ modbus: { devices: [{ port: 0, signals: [...MILLING_MACHINE_DEVICE_MAP] }] } })).toBe(false);
  });

  it('constructs without side effects: no connection before start()', async () => {
    const server = await serve();
    const src = new ModbusSource({ port: server.port, signals: [sig] }, () => {}, captureLogger().log);
    await new Promise((r) => setTimeout(r, 50));
    expect(server.stats.connections).toBe(0);
    expect(src.stats.state).toBe('idle');
  });
});
