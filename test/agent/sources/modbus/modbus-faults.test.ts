import net from 'node:net';
import { describe, expect, it } from 'vitest';
import type { Reading } from '../../../../agent/src/core/types.js';
import { ModbusSource, type ModbusDeviceConfig, type ModbusSignalConfig } from '../../../../agent/src/sources/modbus/modbus-source.js';
import { MillingModbusServer, millingDeviceMap, type MillingModbusServerOptions } from '../../../../firmware-bridge/src/simulators/milling-modbus-server.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { waitFor } from '../../../helpers/wait.js';
import { cleanupAfterEach } from '../../../helpers/cleanup.js';

const cleanup = cleanupAfterEach();

async function serve(options: MillingModbusServerOptions = {}): Promise<MillingModbusServer> {
  const server = new MillingModbusServer({ autoAdvance: false, ...options });
  await server.start();
  cleanup.push(() => server.stop());
  return server;
}

async function source(cfg: Partial<ModbusDeviceConfig> & { signals: ModbusSignalConfig[] }) {
  const readings: Reading[] = [];
  const { log, lines } = captureLogger();
  const src = new ModbusSource(
    { name: 'dev', intervalMs: 50, timeoutMs: 100, retries: 1, reconnectMinMs: 50, reconnectMaxMs: 400, ...cfg },
    (r) => readings.push(r),
    log,
  );
  await src.start();
  cleanup.push(() => src.stop());
  return { src, readings, lines, logged: (text: string) => lines.filter((l) => String(l.msg).includes(text)).length };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const threeMills = (): ModbusSignalConfig[] => [1, 2, 3].flatMap((u) => millingDeviceMap({ asset: `mill-${u}`, unitId: u }));
const truth = (server: MillingModbusServer, unit: number) => {
  const s = server.current(unit);
  return { ...server.signals(unit), cycle: s.cycle, machine_failure: s.failed ? 1 : 0 };
};

describe('ModbusSource when the device misbehaves', () => {
  it('a slow device: timeouts and retries are counted, late answers ignored, readings resume when it speeds up', async () => {
    const server = await serve({ faults: { delayMs: 250 } });
    const { src, readings, logged } = await source({ port: server.port, retries: 2, reconnectAfterTimeouts: 0, signals: millingDeviceMap() });
    await waitFor(() => src.counters.timeouts >= 6, 'timeouts');
    expect(readings).toHaveLength(0);
    // The first failed batch is tried 1 + retries times; after that the unit is known to be silent and gets one
    // probe per back-off. The late answers match no open request.
    expect(src.counters.retries).toBe(2);
    expect(src.counters.responses).toBe(0);
    expect(src.stats.state).toBe('failing');
    expect(logged('not answering')).toBe(1);
    server.faults.delayMs = 0;
    const r = await waitFor(() => readings[0], 'a reading after the device sped up', 5000);
    expect(r.metrics).toEqual(truth(server, 1));
    await waitFor(() => src.stats.state === 'running', 'running');
    expect(logged('answering again')).toBe(1);
    expect(logged('not answering')).toBe(1);
    expect(src.counters.disconnects).toBe(0);
  });

  it('a gateway answering only some unit ids: the other units keep their schedule, the silent one backs off', async () => {
    const server = await serve({ unitIds: [1, 2, 3], faults: { silentUnitIds: [2] } });
    const { src, readings, logged } = await source({ port: server.port, reconnectMinMs: 200, reconnectMaxMs: 1000, signals: threeMills() });
    await sleep(1000);
    const mark = readings.length;
    await sleep(1000);
    const count = (asset: string) => readings.slice(mark).filter((r) => r.asset === asset).length;
    // 20 polls a second at 50 ms. Unit 2 costs a 100 ms timeout per probe, and its probes back off (at most ~2 a
    // second by now), so the other units keep most of their schedule.
    expect(count('mill-1')).toBeGreaterThanOrEqual(10);
    expect(count('mill-3')).toBeGreaterThanOrEqual(10);
    expect(readings.filter((r) => r.asset === 'mill-2')).toHaveLength(0);
    for (const r of readings) expect(r.metrics).toEqual(truth(server, Number(r.asset.slice(-1))));
    expect(src.counters.timeouts).toBeGreaterThan(0);
    expect(src.counters.skipped).toBeGreaterThan(0);
    expect(src.status().units[2]!.failures).toBeGreaterThan(0);
    expect(src.status().units[1]!.failures).toBe(0);
    expect(src.counters.disconnects).toBe(0); // other units answer, so the connection is healthy
    expect(src.stats.state).toBe('running');
    expect(logged('not answering')).toBe(1);
    server.faults.silentUnitIds = [];
    await waitFor(() => readings.some((r) => r.asset === 'mill-2'), 'unit 2 back', 5000);
    expect(logged('answering again')).toBe(1);
  });

  it('a unit answering slower than the timeout does not corrupt the others with its late answers', async () => {
    const server = await serve({ unitIds: [1, 2], faults: { delayMs: 150, delayUnitIds: [2] } });
    const { src, readings } = await source({
      port: server.port,
      reconnectMinMs: 200,
      reconnectMaxMs: 1000,
      signals: threeMills().filter((s) => s.unitId !== 3),
    });
    await sleep(1000);
    // 20 polls in the second; unit 2's first failure costs 2 × 100 ms, each later probe 100 ms (backed off).
    expect(readings.filter((r) => r.asset === 'mill-1').length).toBeGreaterThanOrEqual(7);
    for (const r of readings) expect(r.metrics).toEqual(truth(server, Number(r.asset.slice(-1))));
    expect(src.counters.timeouts).toBeGreaterThan(0);
    expect(src.counters.malformed).toBe(0);
  });

  it('exceptions are counted by code and logged once, not retried', async () => {
    const server = await serve({ faults: { exception: { code: 6, functionCodes: [4] } } });
    const { src, readings, logged } = await source({ port: server.port, signals: millingDeviceMap() });
    await waitFor(() => (src.counters.exceptions[6] ?? 0) >= 10, 'busy exceptions');
    expect(src.counters.retries).toBe(0);
    expect(src.counters.requests - src.counters.responses).toBeLessThanOrEqual(1); // one may be in flight
    // The discrete input still reads.
    expect(readings.length).toBeGreaterThan(0);
    expect(readings.every((r) => Object.keys(r.metrics).join() === 'machine_failure')).toBe(true);
    // Once per batch of input registers (0-4 and 6-11: the flags word at 5 is not mapped), not per poll.
    const batches = src.plan.filter((b) => b.functionCode === 4).length;
    expect(batches).toBe(2);
    expect(logged('answers an exception')).toBe(batches);
    server.faults.exception = { code: 4, functionCodes: [4] };
    await waitFor(() => (src.counters.exceptions[4] ?? 0) >= 2, 'another code');
    await sleep(200);
    expect(logged('answers an exception')).toBe(2 * batches); // logged again only because the code changed
    server.faults.exception = null;
    await waitFor(() => readings.some((r) => 'torque' in r.metrics), 'registers readable again');
    await waitFor(() => logged('readable again') === batches, 'recovery logged per batch');
  });

  it('a device answering only exceptions is failing, logged once, without flapping on polls that read nothing', async () => {
    const server = await serve({ faults: { exception: { code: 4 } } });
    // Intervals 100 and 150 ms tick every 50 ms, and some ticks have nothing due.
    const signals = millingDeviceMap().map((s) => ({ ...s, intervalMs: s.registerType === 'discrete' ? 150 : 100 }));
    const { src, lines, logged } = await source({ port: server.port, signals });
    await sleep(800);
    expect(src.stats.state).toBe('failing');
    expect(lines.filter((l) => String(l.msg).startsWith('source failing'))).toHaveLength(1);
    expect(logged('source recovered')).toBe(0);
    server.faults.exception = null;
    await waitFor(() => src.stats.state === 'running', 'running');
    expect(logged('source recovered')).toBe(1);
  });

  it('the server going away and coming back: reconnects with growing back-off, no crash, readings resume', async () => {
    const server = await serve();
    const { src, readings, lines, logged } = await source({ port: server.port, signals: millingDeviceMap() });
    await waitFor(() => readings.length >= 3, 'readings');
    await server.stop();
    // Record the delay the source chose before each reconnect attempt.
    const delays: number[] = [];
    let seen = src.counters.connectFailures;
    const t0 = Date.now();
    while (Date.now() - t0 < 1500) {
      await sleep(5);
      if (src.counters.connectFailures !== seen) {
        seen = src.counters.connectFailures;
        delays.push(src.status().nextConnectAt - Date.now());
      }
    }
    expect(delays.length).toBeGreaterThanOrEqual(4);
    expect(delays.length).toBeLessThan(20); // backed off, not hammering
    expect(Math.max(...delays.slice(-2))).toBeGreaterThan(Math.max(...delays.slice(0, 1)));
    expect(Math.max(...delays)).toBeLessThanOrEqual(400);
    expect(src.stats.state).toBe('failing');
    const before = readings.length;
    await server.start(); // same port
    await waitFor(() => readings.length > before + 2, 'readings resume', 5000);
    expect(src.counters.reconnects).toBe(1);
    expect(src.counters.disconnects).toBe(1);
    expect(logged('connection lost')).toBe(1);
    expect(lines.filter((l) => l.code === 'FW_ERR_SOURCE_FAILED' && String(l.msg).startsWith('source failing'))).toHaveLength(1);
    expect(logged('source recovered')).toBe(1);
    expect(src.status().connected).toBe(true);
  });

  it('a device that drops the connection every few requests, or is down from the start, never stops the source', async () => {
    const server = await serve({ faults: { closeAfterRequests: 3 } });
    const { src, readings } = await source({ port: server.port, signals: millingDeviceMap() });
    await waitFor(() => src.counters.reconnects >= 3, 'several reconnects', 8000);
    expect(readings.length).toBeGreaterThan(0);
    expect(src.counters.disconnects).toBeGreaterThanOrEqual(3);

    // Nothing listening on this port at all.
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const down = await source({ port, name: 'down', signals: millingDeviceMap() });
    await waitFor(() => down.src.counters.connectFailures >= 3, 'connect failures');
    expect(down.src.stats.state).toBe('failing');
    expect(down.src.stats.lastError).toMatch(/cannot connect to 127\.0\.0\.1:\d+/);
    // stop() must not wait out the reconnect back-off (a hang would time the test out).
    await down.src.stop();
    expect(down.src.stats.state).toBe('stopped');
  });

  it('reopens a TCP connection that answers nothing at all (a desynchronised stream)', async () => {
    // A server that accepts and then never answers: the source gives up on the stream after 3 unanswered batches.
    const sockets: net.Socket[] = [];
    const mute = net.createServer((s) => sockets.push(s.on('error', () => {})));
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', () => r()));
    cleanup.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => mute.close(r));
    });
    const port = (mute.address() as net.AddressInfo).port;
    const { src, logged } = await source({ port, timeoutMs: 50, retries: 0, reconnectAfterTimeouts: 3, signals: millingDeviceMap() });
    await waitFor(() => src.counters.disconnects >= 2, 'reopened', 8000);
    expect(sockets.length).toBeGreaterThanOrEqual(2);
    expect(logged('reopening the connection')).toBeGreaterThanOrEqual(1);
  });
});
