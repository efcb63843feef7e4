import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeRegisters } from '../../../firmware-bridge/src/modbus/register-codec.js';
import { MillingMachineSimulator, millingSignals } from '../../../firmware-bridge/src/simulators/milling-machine.js';
import {
  MILLING_FLAG_BITS,
  MILLING_INPUT_REGISTERS,
  MILLING_MACHINE_DEVICE_MAP,
  MillingModbusServer,
  type MillingModbusServerOptions,
} from '../../../firmware-bridge/src/simulators/milling-modbus-server.js';
import { Prng } from '../../../firmware-bridge/src/simulators/prng.js';
import { waitFor } from '../../helpers/wait.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function serve(options: MillingModbusServerOptions = {}): Promise<MillingModbusServer> {
  const server = new MillingModbusServer({ autoAdvance: false, ...options });
  await server.start();
  cleanup.push(() => server.stop());
  return server;
}

/** A bare Modbus TCP client: sends frames, collects answers by transaction id. */
async function client(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => {});
  cleanup.push(() => void socket.destroy());
  const answers = new Map<number, Buffer>();
  let buf = Buffer.alloc(0);
  let closed = false;
  socket.on('close', () => (closed = true));
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 7 && buf.length >= 6 + buf.readUInt16BE(4)) {
      const len = buf.readUInt16BE(4);
      answers.set(buf.readUInt16BE(0), Buffer.from(buf.subarray(6, 6 + len)));
      buf = buf.subarray(6 + len);
    }
  });
  let nextTid = 1;
  const frame = (tid: number, unit: number, pdu: number[] | Buffer): Buffer => {
    const p = Buffer.from(pdu);
    const f = Buffer.alloc(7 + p.length);
    f.writeUInt16BE(tid, 0);
    f.writeUInt16BE(p.length + 1, 4);
    f[6] = unit;
    p.copy(f, 7);
    return f;
  };
  /** Unit id + PDU of the answer, or null when none came within `waitMs`. */
  const request = async (unit: number, pdu: number[] | Buffer, waitMs = 300): Promise<Buffer | null> => {
    const tid = nextTid++;
    socket.write(frame(tid, unit, pdu));
    const deadline = Date.now() + waitMs;
    while (!answers.has(tid) && Date.now() < deadline && !closed) await new Promise((r) => setTimeout(r, 2));
    return answers.get(tid) ?? null;
  };
  return { socket, request, frame, answers, isClosed: () => closed };
}

const read = (fc: number, address: number, qty: number): number[] => [fc, address >> 8, address & 0xff, qty >> 8, qty & 0xff];
const words = (answer: Buffer): number[] => Array.from({ length: answer[2]! / 2 }, (_, i) => answer.readUInt16BE(3 + 2 * i));

describe('MillingModbusServer', () => {
  it("serves the documented register map, decoding to the simulator's values", async () => {
    const server = await serve({ seed: 42 });
    const sim = new MillingMachineSimulator({ seed: 42 });
    const c = await client(server.port);
    for (let cycle = 0; cycle < 30; cycle++) {
      const s = sim.next();
      if (cycle > 0) server.advance();
      const a = (await c.request(1, read(4, 0, 14)))!;
      expect([...a.subarray(0, 3)]).toEqual([1, 4, 28]);
      const w = words(a);
      const at = (k: keyof typeof MILLING_INPUT_REGISTERS) => {
        const { address, dataType } = MILLING_INPUT_REGISTERS[k];
        return decodeRegisters(w.slice(address, address + (dataType === 'uint16' ? 1 : 2)), { dataType });
      };
      expect({
        product_type: at('product_type'),
        air_temperature: at('air_temperature'),
        process_temperature: at('process_temperature'),
        rotational_speed: at('rotational_speed'),
        torque: at('torque'),
        tool_wear: at('tool_wear'),
      }).toEqual(millingSignals(s));
      expect(at('process_counter')).toBe(cycle);
      expect(at('sim_seconds')).toBe(Math.round(s.simSeconds));
      const flags = [s.failed, s.modes.twf, s.modes.hdf, s.modes.pwf, s.modes.osf, s.modes.rnf, s.toolReplaced];
      expect(at('failure_flags')).toBe(flags.reduce((acc, f, i) => acc + (f ? 2 ** i : 0), 0));
      // Discrete inputs and coils: the same flags, packed LSB first.
      for (const fc of [1, 2]) {
        const bits = (await c.request(1, read(fc, 0, MILLING_FLAG_BITS.length)))!;
        expect([...bits.subarray(0, 3)]).toEqual([1, fc, 1]);
        expect(Array.from({ length: 7 }, (_, i) => ((bits[3]! >> i) & 1) === 1)).toEqual(flags);
      }
      // Holding registers 0-13 mirror the input registers.
      expect(words((await c.request(1, read(3, 0, 14)))!)).toEqual(w);
    }
  });

  it('writes and reads back the scratch holding registers (function codes 6 and 16)', async () => {
    const server = await serve();
    const c = await client(server.port);
    expect([...(await c.request(1, [6, 0, 101, 0x12, 0x34]))!]).toEqual([1, 6, 0, 101, 0x12, 0x34]);
    expect([...(await c.request(1, [16, 0, 110, 0, 2, 4, 0xab, 0xcd, 0, 7]))!]).toEqual([1, 16, 0, 110, 0, 2]);
    const w = words((await c.request(1, read(3, 100, 16)))!);
    expect(w[1]).toBe(0x1234);
    expect(w.slice(10, 12)).toEqual([0xabcd, 7]);
  });

  it("answers the protocol's exceptions", async () => {
    const server = await serve();
    const c = await client(server.port);
    const exc = async (pdu: number[]) => [...(await c.request(1, pdu))!];
    expect(await exc([5, 0, 0, 0xff, 0])).toEqual([1, 0x85, 1]); // write coil: not supported
    expect(await exc([43, 14, 1, 0])).toEqual([1, 0xab, 1]);
    expect(await exc(read(4, 0, 0))).toEqual([1, 0x84, 3]);
    expect(await exc(read(3, 0, 126))).toEqual([1, 0x83, 3]);
    expect(await exc(read(1, 0, 2001))).toEqual([1, 0x81, 3]);
    expect(await exc(read(4, 10, 5))).toEqual([1, 0x84, 2]); // runs past register 13
    expect(await exc(read(4, 100, 1))).toEqual([1, 0x84, 2]); // the scratch area is holding only
    expect(await exc(read(2, 5, 3))).toEqual([1, 0x82, 2]);
    expect(await exc([6, 0, 3, 0, 1])).toEqual([1, 0x86, 2]); // measurements are read-only
    expect(await exc([16, 0, 100, 0, 2, 3, 0, 0, 0])).toEqual([1, 0x90, 3]); // byte count disagrees
    expect(await exc([3, 0])).toEqual([1, 0x83, 3]); // truncated PDU
    expect(server.stats.exceptions).toBe(11);
  });

  it('answers pipelined and fragmented requests, and only its own unit ids', async () => {
    const server = await serve({ unitIds: [1, 7] });
    const c = await client(server.port);
    // Three requests in one write, then one byte by byte.
    c.socket.write(Buffer.concat([c.frame(100, 1, read(4, 0, 2)), c.frame(101, 7, read(4, 2, 1)), c.frame(102, 9, read(4, 0, 1))]));
    const f = c.frame(103, 7, read(2, 0, 7));
    for (const byte of f) c.socket.write(Buffer.from([byte]));
    await waitFor(() => c.answers.has(100) && c.answers.has(101) && c.answers.has(103), 'answers');
    await new Promise((r) => setTimeout(r, 50));
    expect(c.answers.has(102)).toBe(false); // unit 9 is not served: no answer, as a gateway without that device
    expect(words(c.answers.get(101)!)).toEqual([server.current(7).productTypeCode]);
    // Units are separate machines.
    expect(server.current(1).torqueNm).not.toBe(server.current(7).torqueNm);
  });

  it('drops a connection whose framing is not Modbus, and survives 2,000 garbage requests', async () => {
    const server = await serve();
    const bad = await client(server.port);
    bad.socket.write(Buffer.from([0, 1, 0, 5, 0, 6, 1, 3, 0, 0, 0, 1])); // protocol id 5
    await waitFor(() => bad.isClosed(), 'closed');
    const rng = new Prng(3);
    for (let i = 0; i < 2000; i++) {
      const g = await client(server.port);
      const len = rng.int(2, 254);
      const pdu = Array.from({ length: len - 1 }, () => rng.int(0, 255));
      if (rng.bernoulli(0.5)) pdu[0] = [1, 2, 3, 4, 6, 16][rng.int(0, 5)]!;
      g.socket.write(g.frame(rng.int(0, 0xffff), rng.bernoulli(0.7) ? 1 : rng.int(0, 255), pdu));
      if (rng.bernoulli(0.2)) g.socket.write(Buffer.from(Array.from({ length: rng.int(1, 40) }, () => rng.int(0, 255))));
      g.socket.destroy();
      cleanup.pop();
    }
    const c = await client(server.port);
    expect(words((await c.request(1, read(4, 2, 1)))!)).toEqual([server.current().productTypeCode]);
  });

  it('injects faults: silence, exceptions, slow answers, dropped connections', async () => {
    const server = await serve({ unitIds: [1, 2] });
    const c = await client(server.port);
    server.faults = { silentUnitIds: [2] };
    expect(await c.request(2, read(4, 0, 1), 100)).toBeNull();
    expect(await c.request(1, read(4, 0, 1))).not.toBeNull();
    server.faults = { exception: { code: 11, unitIds: [1], functionCodes: [4] } };
    expect([...(await c.request(1, read(4, 0, 1)))!]).toEqual([1, 0x84, 11]);
    expect([...(await c.request(1, read(2, 0, 1)))!.subarray(0, 2)]).toEqual([1, 2]);
    server.faults = { delayMs: 150, delayUnitIds: [2] };
    const t = Date.now();
    expect(await c.request(2, read(4, 0, 1), 400)).not.toBeNull();
    expect(Date.now() - t).toBeGreaterThanOrEqual(140);
    server.faults = { closeAfterRequests: 2 };
    const d = await client(server.port);
    expect(await d.request(1, read(4, 0, 1))).not.toBeNull();
    expect(await d.request(1, read(4, 0, 1))).toBeNull();
    expect(d.isClosed()).toBe(true);
  });

  it('advances one process per processSeconds / speedup, and restarts on the same port', async () => {
    expect(() => new MillingModbusServer({ processMs: 0 })).toThrow(RangeError);
    const server = await serve({ autoAdvance: true, processSeconds: 1, speedup: 100 }); // 10 ms a process
    const c = await client(server.port);
    await new Promise((r) => setTimeout(r, 300));
    const counter = words((await c.request(1, read(4, 0, 2)))!);
    const cycle = counter[0]! * 65536 + counter[1]!;
    expect(cycle).toBeGreaterThanOrEqual(25);
    expect(cycle).toBeLessThanOrEqual(40);
    const port = server.port;
    await server.stop();
    expect(await server.start()).toBe(port);
    const again = await client(port);
    expect(await again.request(1, read(4, 0, 2))).not.toBeNull();
    const slow = await serve({ autoAdvance: true, processMs: 100_000, unitId: 5 });
    const s = await client(slow.port);
    expect(words((await s.request(5, read(4, 0, 2)))!)).toEqual([0, 0]); // still the first process
  });

  it('is deterministic: the same seed serves the same registers', () => {
    const a = new MillingModbusServer({ seed: 3, autoAdvance: false });
    const b = new MillingModbusServer({ seed: 3, autoAdvance: false });
    a.advance(50);
    b.advance(50);
    expect(a.inputRegisters()).toEqual(b.inputRegisters());
    expect(a.handle(1, Buffer.from(read(2, 0, 7)))).toEqual(b.handle(1, Buffer.from(read(2, 0, 7))));
    expect(a.handle(2, Buffer.from(read(4, 0, 1)))).toBeNull();
  });

  it('exports the device map the agent scores: sim-mill-1 with millingSignals() names', () => {
    const names = MILLING_MACHINE_DEVICE_MAP.map((s) => s.signal);
    expect(names).toEqual([...Object.keys(millingSignals(new MillingMachineSimulator().next())), 'cycle', 'machine_failure']);
    expect(new Set(MILLING_MACHINE_DEVICE_MAP.map((s) => s.asset))).toEqual(new Set(['sim-mill-1']));
    expect(Object.isFrozen(MILLING_MACHINE_DEVICE_MAP)).toBe(true);
  });
});
