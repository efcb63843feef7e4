import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Reading } from '../../../../agent/src/core/types.js';
import { ModbusSource, type ModbusDeviceConfig } from '../../../../agent/src/sources/modbus/modbus-source.js';
import { MillingModbusServer, millingDeviceMap } from '../../../../firmware-bridge/src/simulators/milling-modbus-server.js';
import { Prng } from '../../../../firmware-bridge/src/simulators/prng.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { waitFor } from '../../../helpers/wait.js';
import { cleanupAfterEach } from '../../../helpers/cleanup.js';
import { serialSkipReason } from '../../../helpers/serial-pty.js';

/**
 * Modbus RTU over a pseudo-terminal. socat makes the pty and bridges it to a TCP socket; on the other end sits an RTU
 * slave of the test's own (RTU framing + CRC around MillingModbusServer.handle). The source opens the pty through
 * modbus-serial's buffered RTU port (serialport), exactly as it would open /dev/ttyUSB0.
 */
const SKIP = await serialSkipReason();

function crc16(buf: Buffer): number {
  let crc = 0xffff;
  for (const b of buf) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

/** The RTU slave: requests are unit + PDU + CRC; a frame with a bad CRC is ignored, as on a real bus. */
class RtuSlave {
  corruptEvery = 0;
  garbage: Prng | null = null;
  /** Answer late (ms) depending on the request PDU. */
  delay: ((pdu: Buffer) => number) | null = null;
  answered = 0;
  private server: net.Server;
  private socket: net.Socket | null = null;

  constructor(readonly device: MillingModbusServer) {
    this.server = net.createServer((s) => this.accept(s));
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    return (this.server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    this.socket?.destroy();
    await new Promise((r) => this.server.close(r));
  }

  private accept(socket: net.Socket): void {
    this.socket = socket;
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 8) {
        const fc = buf[1]!;
        const len = fc === 15 || fc === 16 ? 9 + buf[6]! : 8;
        if (buf.length < len) return;
        const frame = buf.subarray(0, len);
        buf = buf.subarray(len);
        if (crc16(frame.subarray(0, -2)) !== frame.readUInt16LE(len - 2)) {
          buf = Buffer.alloc(0); // lost sync: wait for the bus to go quiet
          return;
        }
        const request = Buffer.from(frame.subarray(1, -2));
        const pdu = this.device.handle(frame[0]!, request);
        const late = this.delay?.(request) ?? 0;
        if (pdu && late > 0) setTimeout(() => this.reply(socket, frame[0]!, pdu), late);
        else if (pdu) this.reply(socket, frame[0]!, pdu);
      }
    });
  }

  private reply(socket: net.Socket, unit: number, pdu: Buffer): void {
    const out = Buffer.alloc(pdu.length + 3);
    out[0] = unit;
    pdu.copy(out, 1);
    out.writeUInt16LE(crc16(out.subarray(0, -2)), out.length - 2);
    this.answered++;
    if (this.corruptEvery && this.answered % this.corruptEvery === 0) out[out.length - 1]! ^= 0x5a;
    const g = this.garbage;
    if (g) {
      // Line noise: random bytes before, instead of, or after the answer, and random bit flips.
      const noise = () => Buffer.from(Array.from({ length: g.int(0, 12) }, () => g.int(0, 255)));
      const mode = g.int(0, 4);
      if (mode === 0) return void socket.write(noise());
      if (mode === 1) out[g.int(0, out.length - 1)]! ^= 1 << g.int(0, 7);
      socket.write(mode === 2 ? Buffer.concat([noise(), out]) : mode === 3 ? Buffer.concat([out, noise()]) : out);
      return;
    }
    socket.write(out);
  }
}

const cleanup = cleanupAfterEach();

async function rtuBench(unitIds = [1]) {
  const device = new MillingModbusServer({ autoAdvance: false, unitIds, seed: 9 });
  const slave = new RtuSlave(device);
  const port = await slave.listen();
  cleanup.push(() => slave.close());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'forewarn-rtu-'));
  const tty = path.join(dir, 'ttyMB0');
  const socat: ChildProcess = spawn('socat', [`pty,raw,echo=0,link=${tty}`, `tcp:127.0.0.1:${port}`], { stdio: 'ignore' });
  cleanup.push(() => {
    socat.kill();
    rmSync(dir, { recursive: true, force: true });
  });
  await waitFor(() => existsSync(tty), 'the pty link');
  return { device, slave, tty };
}

async function rtuSource(cfg: Partial<ModbusDeviceConfig> & Pick<ModbusDeviceConfig, 'signals' | 'path'>) {
  const readings: Reading[] = [];
  const { log, lines } = captureLogger();
  const src = new ModbusSource(
    { name: 'rtu', transport: 'rtu', baudRate: 115200, parity: 'none', intervalMs: 50, timeoutMs: 100, reconnectMinMs: 50, reconnectMaxMs: 200, ...cfg },
    (r) => readings.push(r),
    log,
  );
  await src.start();
  cleanup.push(() => src.stop());
  return { src, readings, lines };
}

describe(`ModbusSource over RTU on a pty pair${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  it.skipIf(!!SKIP)("reads the milling machine over RTU, values equal to the simulator's", async () => {
    const { device, tty } = await rtuBench();
    // A generous response timeout: this test is about the values, and on a loaded machine a 100 ms one expires
    // (the late answer then reads as a CRC error); timeouts have their own test below.
    const { src, readings } = await rtuSource({ path: tty, signals: millingDeviceMap(), timeoutMs: 2000 });
    for (let cycle = 0; cycle < 5; cycle++) {
      if (cycle > 0) device.advance();
      const r = await waitFor(() => readings.find((x) => x.metrics.cycle === cycle), `process ${cycle}`, 5000);
      const s = device.current();
      expect(r.metrics).toEqual({ ...device.signals(), cycle: s.cycle, machine_failure: s.failed ? 1 : 0 });
    }
    expect(src.counters).toMatchObject({ crcErrors: 0, timeouts: 0, malformed: 0, connects: 1 });
  });

  it.skipIf(!!SKIP)('counts CRC errors and retries past them', async () => {
    const { slave, tty } = await rtuBench();
    slave.corruptEvery = 3;
    const { src, readings } = await rtuSource({ path: tty, retries: 2, signals: millingDeviceMap() });
    // Both at once: retries carry polls past the corrupt answers, so readings keep arriving beside the CRC errors.
    await waitFor(() => src.counters.crcErrors >= 5 && readings.length > 3, 'CRC errors and readings', 8000);
    expect(src.counters.retries).toBeGreaterThanOrEqual(src.counters.crcErrors);
    expect(readings.length).toBeGreaterThan(3);
    expect(src.stats.state).toBe('running');
  });

  it.skipIf(!!SKIP)('a silent unit on the bus times out while the other keeps reporting; exceptions are counted', async () => {
    const { device, tty } = await rtuBench([1, 2]);
    device.faults = { silentUnitIds: [2], exception: { code: 2, unitIds: [1], functionCodes: [2] } };
    const signals = [...millingDeviceMap({ asset: 'm1', unitId: 1 }), ...millingDeviceMap({ asset: 'm2', unitId: 2 })];
    const { src, readings } = await rtuSource({ path: tty, signals });
    await waitFor(() => readings.filter((r) => r.asset === 'm1').length >= 5, 'unit 1 readings', 8000);
    expect(readings.some((r) => r.asset === 'm2')).toBe(false);
    expect(readings.every((r) => !('machine_failure' in r.metrics))).toBe(true);
    expect(src.counters.timeouts).toBeGreaterThan(0);
    expect(src.counters.exceptions[2]).toBeGreaterThan(0);
  });

  it.skipIf(!!SKIP)('an answer that comes after its timeout, between requests, is not taken for the next one', async () => {
    const { device, slave, tty } = await rtuBench();
    // Same unit, function and length: only the address differs. Speed (register 3) always answers late. (RTU has no
    // transaction ids, so a late answer that lands while the *next* request is pending cannot be told apart; the
    // README says to set timeoutMs above the slowest slave's answer time.)
    slave.delay = (pdu) => (pdu.readUInt16BE(1) === 3 ? 150 : 0);
    const signals = [
      { asset: 'm', signal: 'rotational_speed', registerType: 'holding' as const, address: 3, intervalMs: 200 },
      { asset: 'm', signal: 'tool_wear', registerType: 'holding' as const, address: 4, intervalMs: 50 },
    ];
    const { src, readings } = await rtuSource({ path: tty, retries: 0, reconnectMinMs: 200, reconnectMaxMs: 400, signals });
    await waitFor(() => src.counters.timeouts >= 4, 'late answers timing out', 8000);
    await waitFor(() => readings.filter((r) => 'tool_wear' in r.metrics).length >= 5, 'tool wear readings', 8000);
    expect(device.signals().rotational_speed).not.toBe(device.signals().tool_wear);
    for (const r of readings) expect(r.metrics).toEqual({ tool_wear: device.signals().tool_wear });
  });

  it.skipIf(!!SKIP)('never throws on line noise (300+ seeded noisy answers)', async () => {
    const { slave, tty } = await rtuBench();
    slave.garbage = new Prng(5);
    const { src, readings } = await rtuSource({
      path: tty,
      intervalMs: 10,
      timeoutMs: 20,
      retries: 1,
      reconnectMinMs: 10,
      reconnectMaxMs: 40,
      signals: millingDeviceMap(),
    });
    await waitFor(() => slave.answered >= 300, '300 noisy answers', 20_000);
    const c = src.counters;
    expect(c.crcErrors + c.timeouts + c.malformed).toBeGreaterThan(0);
    for (const r of readings) for (const v of Object.values(r.metrics)) expect(Number.isFinite(v)).toBe(true);
    slave.garbage = null;
    const mark = readings.length;
    await waitFor(() => readings.length > mark + 2, 'clean readings again', 8000);
  });
});

describe('ModbusSource over RTU without a serial device', () => {
  it('a missing serial port is a connection failure with back-off, not a crash', async () => {
    const { src } = await rtuSource({ path: '/dev/forewarn-no-such-tty', signals: millingDeviceMap() });
    await waitFor(() => src.counters.connectFailures >= 2, 'connect failures');
    expect(src.stats.state).toBe('failing');
    expect(src.stats.lastError).toMatch(/cannot connect to \/dev\/forewarn-no-such-tty/);
  });
});
