/**
 * A Modbus TCP server (slave) exposing the simulated milling machine's registers, so the agent's Modbus source can be
 * tested, and demonstrated, against real Modbus traffic. The register map is documented in firmware-bridge/README.md
 * ("Modbus TCP simulator"); MILLING_MACHINE_DEVICE_MAP is the device map that reads it as the agent's `sim-mill-1`.
 *
 * Written on node:net rather than modbus-serial's ServerTCP: the protocol side is small (MBAP header, function codes
 * 1, 2, 3, 4, 6 and 16), and the tests need faults a library server does not offer (answering late, not answering
 * some unit ids, answering exceptions, dropping connections), and a request handler (`handle`) that the RTU tests can
 * put behind their own serial framing. It also keeps the simulator free of the dependency.
 *
 * Each configured unit id is its own machine (the i-th unit uses seed + i). The machine completes one process every
 * `processMs` (default `processSeconds * 1000 / speedup`) ms of wall-clock time (computed lazily on each request; no timers), or, with
 * `autoAdvance: false`, only when `advance()` is called. Registers always show the latest completed process.
 */
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { encodeValue, type Endianness, type ModbusDataType } from '../modbus/register-codec.js';
import type { RegisterType } from '../modbus/read-plan.js';
import type { ModbusSignalConfig } from '../modbus/register-map.js';
import { MillingMachineSimulator, millingSignals, type MillingMachineOptions, type MillingSample } from './milling-machine.js';

/** Input registers (function code 4); holding registers 0–13 (function code 3) mirror them read-only. */
export const MILLING_INPUT_REGISTERS = {
  process_counter: { address: 0, dataType: 'uint32' },
  product_type: { address: 2, dataType: 'uint16' },
  rotational_speed: { address: 3, dataType: 'uint16' },
  tool_wear: { address: 4, dataType: 'uint16' },
  failure_flags: { address: 5, dataType: 'uint16' },
  air_temperature: { address: 6, dataType: 'float32' },
  process_temperature: { address: 8, dataType: 'float32' },
  torque: { address: 10, dataType: 'float32' },
  sim_seconds: { address: 12, dataType: 'uint32' },
} as const satisfies Record<string, { address: number; dataType: ModbusDataType }>;
export const MILLING_INPUT_REGISTER_COUNT = 14;
/** Discrete inputs (function code 2) and coils (function code 1, read-only mirror): bit i of `failure_flags`. */
export const MILLING_FLAG_BITS = ['machine_failure', 'twf', 'hdf', 'pwf', 'osf', 'rnf', 'tool_replaced'] as const;
/** Holding registers 100–115: a writable scratch area (function codes 6 and 16), read back as written. */
export const MILLING_SCRATCH_START = 100;
export const MILLING_SCRATCH_COUNT = 16;

export interface MillingDeviceMapOptions {
  asset?: string;
  unitId?: number;
  byteOrder?: Endianness;
  wordOrder?: Endianness;
  intervalMs?: number;
}

/**
 * The device map reading the simulator as the agent's asset with the signal names millingSignals() uses, plus the
 * process counter (`cycle`) and the ground truth (`machine_failure`) that SimulatorSource also emits.
 */
export function millingDeviceMap(options: MillingDeviceMapOptions = {}): ModbusSignalConfig[] {
  const { asset = 'sim-mill-1', unitId, byteOrder, wordOrder, intervalMs } = options;
  const common = { asset, ...(unitId === undefined ? {} : { unitId }), ...(intervalMs === undefined ? {} : { intervalMs }) };
  const layout = { ...(byteOrder ? { byteOrder } : {}), ...(wordOrder ? { wordOrder } : {}) };
  const reg = (signal: string, key: keyof typeof MILLING_INPUT_REGISTERS, unit?: string): ModbusSignalConfig => ({
    ...common,
    signal,
    ...(unit ? { unit } : {}),
    registerType: 'input',
    address: MILLING_INPUT_REGISTERS[key].address,
    dataType: MILLING_INPUT_REGISTERS[key].dataType,
    ...layout,
  });
  return [
    reg('product_type', 'product_type', 'category'),
    reg('air_temperature', 'air_temperature', 'K'),
    reg('process_temperature', 'process_temperature', 'K'),
    reg('rotational_speed', 'rotational_speed', 'rpm'),
    reg('torque', 'torque', 'N.m'),
    reg('tool_wear', 'tool_wear', 'min'),
    reg('cycle', 'process_counter'),
    { ...common, signal: 'machine_failure', registerType: 'discrete', address: 0 },
  ];
}

export const MILLING_MACHINE_DEVICE_MAP: readonly ModbusSignalConfig[] = Object.freeze(millingDeviceMap());

/** Faults to inject; change `server.faults` at any time. */
export interface ModbusFaults {
  /** Answer this many ms late. */
  delayMs?: number;
  /** Only these units answer late (default all). */
  delayUnitIds?: number[];
  /** Never answer these units (as a gateway whose device is gone). */
  silentUnitIds?: number[];
  /** Answer this exception code instead of data, for the given units and function codes (default all). */
  exception?: { code: number; unitIds?: number[]; functionCodes?: number[] } | null;
  /** Drop each connection when it sends its n-th request (that request is not answered). */
  closeAfterRequests?: number;
}

export interface MillingModbusServerOptions {
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  host?: string;
  /** Unit id served (default 1); `unitIds` serves several, one machine each. */
  unitId?: number;
  unitIds?: number[];
  seed?: number;
  processSeconds?: number;
  /** 60 (default) with the default processSeconds is one process a second. */
  speedup?: number;
  /** Wall-clock ms per process; overrides `processSeconds * 1000 / speedup`. */
  processMs?: number;
  /** false: processes advance only through advance(). */
  autoAdvance?: boolean;
  /** Layout of the 16- and 32-bit registers (default big/big: ABCD). */
  byteOrder?: Endianness;
  wordOrder?: Endianness;
  simulator?: Omit<MillingMachineOptions, 'seed' | 'processSeconds'>;
  faults?: ModbusFaults;
}

interface Unit {
  sim: MillingMachineSimulator;
  sample: MillingSample;
  produced: number;
  scratch: number[];
}

const EXC_ILLEGAL_FUNCTION = 1;
const EXC_ILLEGAL_ADDRESS = 2;
const EXC_ILLEGAL_VALUE = 3;

function flagsOf(s: MillingSample): boolean[] {
  const m = s.modes;
  return [s.failed, m.twf, m.hdf, m.pwf, m.osf, m.rnf, s.toolReplaced];
}

export class MillingModbusServer {
  faults: ModbusFaults;
  readonly stats = { connections: 0, requests: 0, answers: 0, exceptions: 0 };
  private readonly units = new Map<number, Unit>();
  private readonly processMs: number;
  private readonly autoAdvance: boolean;
  private readonly layout: { byteOrder: Endianness; wordOrder: Endianness };
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private startedAt: number | null = null;
  private boundPort: number;

  constructor(private readonly options: MillingModbusServerOptions = {}) {
    const unitIds = options.unitIds ?? [options.unitId ?? 1];
    if (!unitIds.length || unitIds.some((u) => !Number.isInteger(u) || u < 1 || u > 255)) throw new RangeError('unitIds must be integers 1..255');
    const processSeconds = options.processSeconds ?? 60;
    const speedup = options.speedup ?? 60;
    if (!(speedup > 0)) throw new RangeError(`speedup must be positive, got ${speedup}`);
    this.processMs = options.processMs ?? (processSeconds * 1000) / speedup;
    if (!(this.processMs > 0)) throw new RangeError(`processMs must be positive, got ${this.processMs}`);
    this.autoAdvance = options.autoAdvance ?? true;
    this.layout = { byteOrder: options.byteOrder ?? 'big', wordOrder: options.wordOrder ?? 'big' };
    this.faults = { ...options.faults };
    this.boundPort = options.port ?? 0;
    unitIds.forEach((id, i) => {
      const sim = new MillingMachineSimulator({ ...options.simulator, seed: (options.seed ?? 1) + i, processSeconds });
      this.units.set(id, { sim, sample: sim.next(), produced: 1, scratch: new Array<number>(MILLING_SCRATCH_COUNT).fill(0) });
    });
  }

  /** Listens (again, on the same port after stop()); resolves to the port. */
  async start(): Promise<number> {
    if (this.server) return this.boundPort;
    this.startedAt ??= Date.now();
    const server = net.createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.boundPort, this.options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.boundPort = (server.address() as net.AddressInfo).port;
    return this.boundPort;
  }

  get port(): number {
    return this.boundPort;
  }

  /** Stops listening and drops every connection. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    this.closeConnections();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Drops every open connection (the server keeps listening). */
  closeConnections(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  /** The latest completed process of a unit (default the first). */
  current(unitId = this.units.keys().next().value!): MillingSample {
    return this.unit(unitId).sample;
  }

  /** Completes `n` more processes on every unit; returns the first unit's latest. */
  advance(n = 1): MillingSample {
    for (const u of this.units.values()) {
      for (let i = 0; i < n; i++) u.sample = u.sim.next();
      u.produced += n;
    }
    return this.current();
  }

  /** The signals of a unit's latest process, as millingSignals() names them. */
  signals(unitId?: number): Record<string, number> {
    return millingSignals(this.current(unitId));
  }

  /** Input registers 0–13 of a unit, as sent on the wire. */
  inputRegisters(unitId?: number): number[] {
    const s = this.current(unitId);
    const r = new Array<number>(MILLING_INPUT_REGISTER_COUNT).fill(0);
    const put = (key: keyof typeof MILLING_INPUT_REGISTERS, value: number): void => {
      const { address, dataType } = MILLING_INPUT_REGISTERS[key];
      encodeValue(value, { dataType, ...this.layout }).forEach((w, k) => (r[address + k] = w));
    };
    put('process_counter', s.cycle % 2 ** 32);
    put('product_type', s.productTypeCode);
    put('rotational_speed', Math.min(0xffff, s.rotationalSpeedRpm));
    put('tool_wear', Math.min(0xffff, s.toolWearMin));
    put(
      'failure_flags',
      flagsOf(s).reduce((acc, f, i) => acc | (f ? 1 << i : 0), 0),
    );
    put('air_temperature', s.airTemperatureK);
    put('process_temperature', s.processTemperatureK);
    put('torque', s.torqueNm);
    put('sim_seconds', Math.round(s.simSeconds) % 2 ** 32);
    return r;
  }

  /**
   * Answers one request PDU (function code + data) for a unit: the response PDU, an exception PDU, or null when
   * the unit does not answer (not served, or silenced by a fault). Framing (TCP or RTU) is the caller's.
   */
  handle(unitId: number, pdu: Buffer): Buffer | null {
    const unit = this.units.get(unitId);
    if (!unit || this.faults.silentUnitIds?.includes(unitId) || pdu.length < 1) return null;
    this.catchUp();
    const fc = pdu[0]!;
    const exc = (code: number): Buffer => {
      this.stats.exceptions++;
      return Buffer.from([fc | 0x80, code]);
    };
    const forced = this.faults.exception;
    if (forced && (!forced.unitIds || forced.unitIds.includes(unitId)) && (!forced.functionCodes || forced.functionCodes.includes(fc))) return exc(forced.code);
    if (![1, 2, 3, 4, 6, 16].includes(fc)) return exc(EXC_ILLEGAL_FUNCTION);
    if (pdu.length < 5) return exc(EXC_ILLEGAL_VALUE);
    const address = pdu.readUInt16BE(1);
    const qty = pdu.readUInt16BE(3);
    if (fc === 1 || fc === 2) {
      if (qty < 1 || qty > 2000) return exc(EXC_ILLEGAL_VALUE);
      if (address + qty > MILLING_FLAG_BITS.length) return exc(EXC_ILLEGAL_ADDRESS);
      const flags = flagsOf(unit.sample);
      const out = Buffer.alloc(2 + Math.ceil(qty / 8));
      out[0] = fc;
      out[1] = out.length - 2;
      for (let i = 0; i < qty; i++) if (flags[address + i]) out[2 + (i >> 3)]! |= 1 << (i & 7);
      return out;
    }
    if (fc === 3 || fc === 4) {
      if (qty < 1 || qty > 125) return exc(EXC_ILLEGAL_VALUE);
      const words = this.readWords(unitId, fc === 3 ? 'holding' : 'input', address, qty);
      if (!words) return exc(EXC_ILLEGAL_ADDRESS);
      const out = Buffer.alloc(2 + 2 * qty);
      out[0] = fc;
      out[1] = 2 * qty;
      words.forEach((w, i) => out.writeUInt16BE(w, 2 + 2 * i));
      return out;
    }
    // Writes: the scratch area only.
    const values: number[] = [];
    if (fc === 6) {
      if (pdu.length !== 5) return exc(EXC_ILLEGAL_VALUE);
      values.push(qty);
    } else {
      const byteCount = pdu[5];
      if (qty < 1 || qty > 123 || byteCount !== 2 * qty || pdu.length !== 6 + byteCount) return exc(EXC_ILLEGAL_VALUE);
      for (let i = 0; i < qty; i++) values.push(pdu.readUInt16BE(6 + 2 * i));
    }
    const start = address - MILLING_SCRATCH_START;
    if (start < 0 || start + values.length > MILLING_SCRATCH_COUNT) return exc(EXC_ILLEGAL_ADDRESS);
    values.forEach((v, i) => (unit.scratch[start + i] = v));
    return Buffer.from(pdu.subarray(0, 5)); // FC 6 echoes address and value, FC 16 address and quantity
  }

  private readWords(unitId: number, table: RegisterType, address: number, qty: number): number[] | null {
    if (address + qty <= MILLING_INPUT_REGISTER_COUNT) return this.inputRegisters(unitId).slice(address, address + qty);
    const start = address - MILLING_SCRATCH_START;
    if (table === 'holding' && start >= 0 && start + qty <= MILLING_SCRATCH_COUNT) return this.unit(unitId).scratch.slice(start, start + qty);
    return null;
  }

  private unit(id: number): Unit {
    const u = this.units.get(id);
    if (!u) throw new RangeError(`unit ${id} is not served`);
    return u;
  }

  /** Completes the processes due by now (at most 10,000 per call). */
  private catchUp(): void {
    if (!this.autoAdvance || this.startedAt === null) return;
    const due = 1 + Math.floor((Date.now() - this.startedAt) / this.processMs);
    for (const u of this.units.values()) {
      const n = Math.min(10_000, due - u.produced);
      for (let i = 0; i < n; i++) u.sample = u.sim.next();
      if (n > 0) u.produced += n;
    }
  }

  private accept(socket: net.Socket): void {
    this.stats.connections++;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.on('close', () => this.sockets.delete(socket));
    let buf: Buffer = Buffer.alloc(0);
    let requests = 0;
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length >= 7) {
        const tid = buf.readUInt16BE(0);
        const protocol = buf.readUInt16BE(2);
        const len = buf.readUInt16BE(4);
        // Not Modbus, or a length no PDU has: the stream cannot be resynchronised, so drop it.
        if (protocol !== 0 || len < 2 || len > 254) return void socket.destroy();
        if (buf.length < 6 + len) return;
        const unitId = buf[6]!;
        const pdu = Buffer.from(buf.subarray(7, 6 + len));
        buf = buf.subarray(6 + len);
        this.stats.requests++;
        if (this.faults.closeAfterRequests && ++requests >= this.faults.closeAfterRequests) return void socket.destroy();
        const answer = this.handle(unitId, pdu);
        if (answer) this.send(socket, tid, unitId, answer);
      }
    });
  }

  private send(socket: net.Socket, tid: number, unitId: number, pdu: Buffer): void {
    const frame = Buffer.alloc(7 + pdu.length);
    frame.writeUInt16BE(tid, 0);
    frame.writeUInt16BE(0, 2);
    frame.writeUInt16BE(1 + pdu.length, 4);
    frame[6] = unitId;
    pdu.copy(frame, 7);
    const delay = this.faults.delayMs ?? 0;
    const write = (): void => {
      if (socket.destroyed) return;
      this.stats.answers++;
      socket.write(frame);
    };
    if (delay > 0 && (!this.faults.delayUnitIds || this.faults.delayUnitIds.includes(unitId))) setTimeout(write, delay);
    else write();
  }
}

// `node milling-modbus-server.js [--port 5020] [--units 1,2] [--seed 1] [--speedup 60]`: serve until killed.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (name: string): string | undefined => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const server = new MillingModbusServer({
    port: Number(arg('port') ?? 5020),
    host: arg('host') ?? '0.0.0.0',
    unitIds: (arg('units') ?? '1').split(',').map(Number),
    seed: Number(arg('seed') ?? 1),
    speedup: Number(arg('speedup') ?? 60),
  });
  void server.start().then((port) => console.log(`milling machine Modbus TCP server on port ${port}`));
  process.on('SIGINT', () => void server.stop().then(() => process.exit(0)));
  process.on('SIGTERM', () => void server.stop().then(() => process.exit(0)));
}
