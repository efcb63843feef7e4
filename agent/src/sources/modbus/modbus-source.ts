/**
 * Reads one Modbus device (TCP `host:port`, or RTU on a serial `path`) through the `modbus-serial` client and turns its
 * registers into Readings, per a device map that binds each value to an asset and a signal name. Behaviour in short
 * (details in firmware-bridge/README.md, "Reading Modbus devices"):
 * - signals are batched (read-plan.ts) and each batch polled at its own interval, one request at a time per device;
 * - timeouts and corrupt answers are retried, exceptions are not; a batch refused with exception 2 is split;
 * - a silent unit is probed with back-off while the other units keep their schedule; a lost connection is reopened
 *   with back-off and jitter; on TCP, `reconnectAfterTimeouts` unanswered batches in a row reopen it;
 * - the source never throws into the agent (IntervalSource marks it failing); unit silence, exceptions and connection
 *   losses are logged once per change of state; `counters` count everything.
 * Each poll emits one Reading per asset; a value that does not decode to a finite number is absent, never zero.
 */
import type { Logger } from '../../core/logger.js';
import { ForewarnError, describeError } from '../../core/errors.js';
import { type SchemaNode, schemaInteger } from '../../core/schema-node.js';
import type { Reading, ReadingSink } from '../../core/types.js';
import { IntervalSource, SourceUnavailableError } from '../interval-source.js';
import type { ModbusSignalConfig } from '../../../../firmware-bridge/src/modbus/register-map.js';
import { backoffDelay } from '../../core/backoff.js';
import { MODBUS_DATA_TYPES, decodeBit, decodeRegisters, registerCount, type Endianness } from '../../../../firmware-bridge/src/modbus/register-codec.js';
import {
  MAX_READ_BITS,
  MAX_READ_REGISTERS,
  REGISTER_TYPES,
  isBitTable,
  planReads,
  pollTick,
  splitBatch,
  type ReadBatch,
} from '../../../../firmware-bridge/src/modbus/read-plan.js';

export type { ModbusSignalConfig } from '../../../../firmware-bridge/src/modbus/register-map.js';

/** One device. Descriptions of every field: MODBUS_DEVICE_SCHEMA. */
export interface ModbusDeviceConfig {
  enabled: boolean;
  name: string; // the source is `modbus:<name>`
  transport: 'tcp' | 'rtu';
  host: string; // TCP
  port: number; // TCP
  path: string; // RTU serial device and line settings
  baudRate: number;
  parity: 'none' | 'even' | 'odd';
  dataBits: 7 | 8;
  stopBits: 1 | 2;
  unitId: number; // default unit of the signals
  intervalMs: number; // default poll interval of the signals
  timeoutMs: number; // one request, and one connection attempt
  retries: number; // extra attempts after a timeout or a corrupt answer
  reconnectMinMs: number;
  reconnectMaxMs: number;
  reconnectAfterTimeouts: number; // TCP: reopen after this many unanswered batches in a row; 0 never
  maxRegistersPerRead: number;
  maxBitsPerRead: number;
  maxGapRegisters: number;
  maxGapBits: number;
  byteOrder: Endianness;
  wordOrder: Endianness;
  signals: ModbusSignalConfig[];
}

export const DEFAULT_MODBUS_DEVICE_CONFIG: Readonly<Omit<ModbusDeviceConfig, 'signals'>> = Object.freeze({
  enabled: true,
  name: 'modbus',
  transport: 'tcp',
  host: '127.0.0.1',
  port: 502,
  path: '',
  baudRate: 19200,
  parity: 'even',
  dataBits: 8,
  stopBits: 1,
  unitId: 1,
  intervalMs: 1000,
  timeoutMs: 1000,
  retries: 1,
  reconnectMinMs: 500,
  reconnectMaxMs: 30_000,
  reconnectAfterTimeouts: 3,
  maxRegistersPerRead: MAX_READ_REGISTERS,
  maxBitsPerRead: MAX_READ_BITS,
  maxGapRegisters: 0,
  maxGapBits: 0,
  byteOrder: 'big',
  wordOrder: 'big',
});

const int = schemaInteger;
const order = (description: string): SchemaNode => ({ type: 'string', description, enum: ['big', 'little'] });
const D = DEFAULT_MODBUS_DEVICE_CONFIG;

/** JSON-Schema-style description of one signal of a device map. */
export const MODBUS_SIGNAL_SCHEMA: SchemaNode = {
  type: 'object',
  description: 'One value read from the device, bound to an asset and a signal name',
  additionalProperties: false,
  required: ['asset', 'signal', 'registerType', 'address'],
  properties: {
    asset: { type: 'string', description: 'Asset the value belongs to.', minLength: 1 },
    signal: { type: 'string', description: 'Signal name in the reading (the name a model input asks for).', minLength: 1 },
    unitId: { type: 'integer', description: "Unit (slave) id; default the device's.", minimum: 0, maximum: 255 },
    registerType: { type: 'string', description: 'Modbus table.', enum: REGISTER_TYPES },
    address: { type: 'integer', description: '0-based protocol address (40001 in 1-based notation is 0).', minimum: 0, maximum: 65535 },
    dataType: { type: 'string', description: 'Registers only: how the register(s) encode the value; default uint16.', enum: MODBUS_DATA_TYPES },
    byteOrder: order("Byte order inside a register; default the device's."),
    wordOrder: order("Register order inside a multi-register value; default the device's."),
    scale: { type: 'number', description: 'value = raw × scale + offset.' },
    offset: { type: 'number', description: 'value = raw × scale + offset.' },
    unit: {
      type: 'string',
      description: 'Engineering unit of the scaled value (e.g. `K`, `rpm`, `N.m`); it must be the unit the model input bound to this signal expects.',
    },
    intervalMs: { type: 'integer', description: "Poll interval of this signal; default the device's.", minimum: 10 },
  },
};

/** JSON-Schema-style description of one device, to merge into the agent's configuration schema. */
export const MODBUS_DEVICE_SCHEMA: SchemaNode = {
  type: 'object',
  description: 'A Modbus TCP or RTU device and its register map',
  additionalProperties: false,
  required: ['signals'],
  properties: {
    enabled: { type: 'boolean', description: 'Poll this device.', default: D.enabled },
    name: { type: 'string', description: 'Device name; readings come from source `modbus:<name>`.', default: D.name, pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' },
    transport: { type: 'string', description: '`tcp` (Modbus TCP) or `rtu` (serial line).', enum: ['tcp', 'rtu'], default: D.transport },
    host: { type: 'string', description: 'TCP: host name or address.', default: D.host },
    port: int('TCP: port.', D.port, 1, 65535),
    path: { type: 'string', description: 'RTU: serial device, e.g. `/dev/ttyUSB0`.', default: D.path },
    baudRate: int('RTU: baud rate.', D.baudRate, 50),
    parity: { type: 'string', description: 'RTU: parity (Modbus specifies even).', enum: ['none', 'even', 'odd'], default: D.parity },
    dataBits: { type: 'integer', description: 'RTU: data bits.', enum: [7, 8], default: D.dataBits },
    stopBits: { type: 'integer', description: 'RTU: stop bits.', enum: [1, 2], default: D.stopBits },
    unitId: int('Default unit (slave) id of the signals.', D.unitId, 0, 255),
    intervalMs: int('Default poll interval.', D.intervalMs, 10),
    timeoutMs: int('How long one request or connection attempt may take.', D.timeoutMs, 10),
    retries: int('Extra attempts after a timeout or a corrupt response.', D.retries, 0, 10),
    reconnectMinMs: int('First reconnect delay; doubles per failed attempt, with jitter. Also the first back-off of a silent unit.', D.reconnectMinMs, 10),
    reconnectMaxMs: int('Longest reconnect (and unit back-off) delay.', D.reconnectMaxMs, 10),
    reconnectAfterTimeouts: int('TCP: reopen the connection after this many unanswered batches in a row; 0 never.', D.reconnectAfterTimeouts, 0),
    maxRegistersPerRead: int('Most registers in one request.', D.maxRegistersPerRead, 1, MAX_READ_REGISTERS),
    maxBitsPerRead: int('Most coils or discrete inputs in one request.', D.maxBitsPerRead, 1, MAX_READ_BITS),
    maxGapRegisters: int('Largest hole of unused registers read to merge two requests into one.', D.maxGapRegisters, 0, MAX_READ_REGISTERS),
    maxGapBits: int('Largest hole of unused bits read to merge two requests into one.', D.maxGapBits, 0, MAX_READ_BITS),
    byteOrder: { ...order('Default byte order inside a register.'), default: D.byteOrder },
    wordOrder: { ...order('Default register order inside multi-register values (`little`: CDAB).'), default: D.wordOrder },
    signals: { type: 'array', description: 'The device map.', minItems: 1, items: MODBUS_SIGNAL_SCHEMA },
  },
};

/** The `sources.modbus` section. */
export const MODBUS_SOURCES_SCHEMA: SchemaNode = {
  type: 'object',
  description: 'Modbus TCP/RTU devices',
  additionalProperties: false,
  default: {},
  properties: { devices: { type: 'array', description: 'Devices to poll, one source each.', default: [], items: MODBUS_DEVICE_SCHEMA } },
};

// A type, not an interface: /metrics reads it as SourceCounters (an index signature).
export type ModbusCounters = {
  requests: number; // sent, retries included
  responses: number; // well-formed answers: data or exception
  timeouts: number;
  retries: number;
  exceptions: Record<number, number>; // exception answers by exception code
  crcErrors: number; // RTU frames with a bad CRC
  malformed: number; // answers of the wrong length, unit or function, or with too little data
  connects: number;
  connectFailures: number;
  disconnects: number;
  reconnects: number; // successful connections after the first
  skipped: number; // batches not polled because their unit was backing off
};

type Outcome =
  | { kind: 'ok'; data: ArrayLike<number | boolean> }
  | { kind: 'exception'; code: number }
  | { kind: 'timeout' | 'crc' | 'malformed' | 'disconnected' | 'error'; message: string };

interface BatchState {
  batch: ReadBatch;
  nextDue: number;
  lastException: number | null;
}
interface UnitState {
  failures: number;
  retryAt: number;
}

/** The part of modbus-serial's client this source uses. */
interface ModbusClient {
  isOpen: boolean;
  on(event: 'close' | 'error', listener: (...args: unknown[]) => void): unknown;
  connectTCP(host: string, options: { port: number }): Promise<void>;
  connectRTUBuffered(path: string, options: Record<string, unknown>): Promise<void>;
  setID(id: number): void;
  setTimeout(ms: number): void;
  readCoils(address: number, count: number): Promise<{ data: boolean[] }>;
  readDiscreteInputs(address: number, count: number): Promise<{ data: boolean[] }>;
  readHoldingRegisters(address: number, count: number): Promise<{ data: number[] }>;
  readInputRegisters(address: number, count: number): Promise<{ data: number[] }>;
  close(cb: (err?: unknown) => void): void;
  destroy(cb: (err?: unknown) => void): void;
}

/** Loaded on first connect, so the agent starts (and type-checks) without the package; a variable keeps tsc out. */
const MODBUS_PACKAGE = 'modbus-serial';
let clientClass: Promise<new () => ModbusClient> | null = null;
function loadClientClass(): Promise<new () => ModbusClient> {
  clientClass ??= import(MODBUS_PACKAGE).then((m: { default?: unknown }) => (m.default ?? m) as new () => ModbusClient);
  return clientClass;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  p.catch(() => {}); // a late rejection after the guard fired is not unhandled
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(Object.assign(new Error(`${what} timed out after ${ms} ms`), { errno: 'ETIMEDOUT' })), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e: unknown) => (clearTimeout(t), reject(e)),
    );
  });
}

function classify(err: unknown): Outcome {
  const e = (err ?? {}) as { modbusCode?: unknown; errno?: unknown; message?: unknown };
  const message = describeError(err);
  if (typeof e.modbusCode === 'number') return { kind: 'exception', code: e.modbusCode };
  if (e.errno === 'ETIMEDOUT' || /timed out/i.test(message)) return { kind: 'timeout', message };
  if (/CRC error/.test(message)) return { kind: 'crc', message };
  if (/Port Not Open/i.test(message)) return { kind: 'disconnected', message };
  if (/length error|Unexpected data|out of range|outside buffer bounds/i.test(message) || err instanceof RangeError) return { kind: 'malformed', message };
  return { kind: 'error', message };
}

function invalid(name: string, problem: string): ForewarnError {
  return new ForewarnError('FW_ERR_CONFIG_INVALID', `Modbus device ${name}: ${problem}`);
}

/** Fills in the defaults and checks a device map; throws FW_ERR_CONFIG_INVALID naming the problem. */
export function resolveDevice(cfg: Partial<ModbusDeviceConfig> & Pick<ModbusDeviceConfig, 'signals'>): {
  cfg: ModbusDeviceConfig;
  signals: ModbusSignalConfig[];
  plan: ReadBatch[];
  tickMs: number;
} {
  const given = Object.fromEntries(Object.entries(cfg).filter(([, v]) => v !== undefined));
  const full = { ...DEFAULT_MODBUS_DEVICE_CONFIG, ...given } as ModbusDeviceConfig;
  const name = full.name;
  if (!Array.isArray(full.signals) || full.signals.length === 0) throw invalid(name, 'the device map has no signals');
  if (full.transport === 'tcp' && !full.host) throw invalid(name, 'transport tcp needs a host');
  if (full.transport === 'rtu' && !full.path) throw invalid(name, 'transport rtu needs a serial path');
  if (full.transport !== 'tcp' && full.transport !== 'rtu') throw invalid(name, `unknown transport ${String(full.transport)}`);
  for (const k of ['intervalMs', 'timeoutMs', 'reconnectMinMs', 'reconnectMaxMs'] as const) {
    if (!Number.isInteger(full[k]) || full[k] < 10) throw invalid(name, `${k} must be an integer of at least 10, got ${full[k]}`);
  }
  if (!Number.isInteger(full.retries) || full.retries < 0) throw invalid(name, `retries must be a non-negative integer`);
  if (full.reconnectMaxMs < full.reconnectMinMs) throw invalid(name, 'reconnectMaxMs is below reconnectMinMs');
  const seen = new Set<string>();
  const signals = full.signals.map((s, i) => {
    const where = `signal ${i} (${s.asset}/${s.signal})`;
    if (!s.asset || !s.signal) throw invalid(name, `${where}: asset and signal are required`);
    if (seen.has(`${s.asset}\0${s.signal}`)) throw invalid(name, `${where}: bound twice`);
    seen.add(`${s.asset}\0${s.signal}`);
    if (isBitTable(s.registerType) && s.dataType !== undefined) throw invalid(name, `${where}: a ${s.registerType} is a bit; dataType applies to registers`);
    if (s.dataType !== undefined && !MODBUS_DATA_TYPES.includes(s.dataType)) throw invalid(name, `${where}: unknown dataType ${s.dataType}`);
    if (s.scale === 0 || (s.scale !== undefined && !Number.isFinite(s.scale)) || (s.offset !== undefined && !Number.isFinite(s.offset))) {
      throw invalid(name, `${where}: scale must be non-zero and finite, offset finite`);
    }
    const intervalMs = s.intervalMs ?? full.intervalMs;
    if (!Number.isInteger(intervalMs) || intervalMs < 10) throw invalid(name, `${where}: intervalMs must be an integer of at least 10`);
    return { ...s, unitId: s.unitId ?? full.unitId, intervalMs };
  });
  let plan: ReadBatch[];
  try {
    plan = planReads(
      signals.map((s) => ({
        unitId: s.unitId,
        registerType: s.registerType,
        address: s.address,
        count: isBitTable(s.registerType) ? 1 : registerCount(s.dataType ?? 'uint16'),
        intervalMs: s.intervalMs,
      })),
      { maxRegisters: full.maxRegistersPerRead, maxBits: full.maxBitsPerRead, maxGapRegisters: full.maxGapRegisters, maxGapBits: full.maxGapBits },
    );
  } catch (err) {
    throw invalid(name, describeError(err));
  }
  return { cfg: full, signals, plan, tickMs: pollTick(signals.map((s) => s.intervalMs)) };
}

export class ModbusSource extends IntervalSource {
  readonly counters: ModbusCounters = {
    requests: 0,
    responses: 0,
    timeouts: 0,
    retries: 0,
    exceptions: {},
    crcErrors: 0,
    malformed: 0,
    connects: 0,
    connectFailures: 0,
    disconnects: 0,
    reconnects: 0,
    skipped: 0,
  };
  readonly cfg: ModbusDeviceConfig;
  private readonly signals: ModbusSignalConfig[];
  private batches: BatchState[];
  private readonly units = new Map<number, UnitState>();
  private client: ModbusClient | null = null;
  private connectAttempts = 0;
  private nextConnectAt = 0;
  private lastConnectError: string | null = null;
  private unanswered = 0;
  private lastFailure: string | null = null;
  /** The current connection has answered; a loss is then logged (once) and the back-off starts over. */
  private linkUp = false;
  private lossLogged = false;
  private stopping = false;
  /** Rejects when the current connection is dropped, so a request in flight on it ends at once. */
  private lost: { promise: Promise<never>; reject: (err: Error) => void } | null = null;

  constructor(cfg: Partial<ModbusDeviceConfig> & Pick<ModbusDeviceConfig, 'signals'>, sink: ReadingSink, log: Logger) {
    const resolved = resolveDevice(cfg);
    super(`modbus:${resolved.cfg.name}`, resolved.tickMs, sink, log);
    this.cfg = resolved.cfg;
    this.signals = resolved.signals;
    this.batches = resolved.plan.map((batch) => ({ batch, nextDue: 0, lastException: null }));
  }

  /** The batched reads, as planned (and split after exception 2). */
  get plan(): readonly ReadBatch[] {
    return this.batches.map((b) => b.batch);
  }

  /** Where the connection and each unit stand, for status views and tests. */
  status(): { connected: boolean; connectAttempts: number; nextConnectAt: number; units: Record<number, UnitState> } {
    const units = Object.fromEntries([...this.units].map(([id, u]) => [id, { ...u }]));
    return { connected: this.client?.isOpen === true, connectAttempts: this.connectAttempts, nextConnectAt: this.nextConnectAt, units };
  }

  /** Once at start: the device map as resolved, so an operator can check addresses, types and units in the log. */
  protected override async prepare(): Promise<void> {
    this.log.info(
      {
        source: this.name,
        device: this.endpoint,
        signals: this.signals.map(
          (g) => `${g.asset}.${g.signal} ← unit ${g.unitId} ${g.registerType}[${g.address}] ${g.dataType ?? 'bit'}${g.unit ? ` [${g.unit}]` : ''}`,
        ),
      },
      'Modbus device map',
    );
  }

  override async stop(): Promise<void> {
    this.stopping = true;
    await super.stop();
    this.drop(false);
  }

  private get endpoint(): string {
    return this.cfg.transport === 'tcp' ? `${this.cfg.host}:${this.cfg.port}` : this.cfg.path;
  }

  protected async sample(now: number): Promise<Reading[]> {
    await this.ensureConnected(now);
    const tolerance = this.intervalMs / 2;
    const metrics = new Map<string, Record<string, number>>();
    let ok = 0;
    let failed: string | null = null;
    for (const state of [...this.batches]) {
      if (state.nextDue > now + tolerance) continue;
      const { batch } = state;
      state.nextDue = state.nextDue + batch.intervalMs > now ? state.nextDue + batch.intervalMs : now + batch.intervalMs;
      const unit = this.unit(batch.unitId);
      if (unit.retryAt > Date.now()) {
        this.counters.skipped++;
        continue;
      }
      if (!this.client) {
        failed ??= 'connection lost';
        break;
      }
      const outcome = await this.read(batch, unit.failures > 0 ? 0 : this.cfg.retries);
      if (this.stopping) return [];
      if (outcome.kind === 'ok') {
        ok++;
        this.answered(batch.unitId, unit);
        if (state.lastException !== null) this.log.info({ source: this.name, unit: batch.unitId, address: batch.address }, 'Modbus registers readable again');
        state.lastException = null;
        this.decode(batch, outcome.data, metrics);
      } else if (outcome.kind === 'exception') {
        this.answered(batch.unitId, unit);
        failed = `unit ${batch.unitId} answered exception ${outcome.code}`;
        this.onException(state, outcome.code);
      } else if (outcome.kind === 'disconnected') {
        this.drop(true, outcome.message);
        failed = outcome.message;
        break;
      } else {
        failed = `unit ${batch.unitId}: ${outcome.message}`;
        this.unanswerable(batch.unitId, unit, outcome.message);
        if (this.cfg.transport === 'tcp' && this.cfg.reconnectAfterTimeouts > 0 && ++this.unanswered >= this.cfg.reconnectAfterTimeouts) {
          this.log.warn({ source: this.name, device: this.endpoint, unanswered: this.unanswered }, 'Modbus device not answering; reopening the connection');
          this.drop(true, 'not answering');
          break;
        }
      }
    }
    // A poll that read nothing at all (nothing due, or every unit backing off) keeps the last poll's verdict, so the
    // scheduler's failing/recovered log does not flap.
    if (ok > 0 || failed !== null) this.lastFailure = ok > 0 ? null : failed;
    if (ok === 0 && this.lastFailure !== null) throw new Error(this.lastFailure);
    return [...metrics].map(([asset, m]) => ({ ts: now, source: this.name, asset, metrics: m }));
  }

  private unit(id: number): UnitState {
    let u = this.units.get(id);
    if (!u) this.units.set(id, (u = { failures: 0, retryAt: 0 }));
    return u;
  }

  private answered(id: number, u: UnitState): void {
    this.unanswered = 0;
    if (!this.linkUp) {
      this.linkUp = true;
      this.connectAttempts = 0;
      if (this.lossLogged) this.log.info({ source: this.name, device: this.endpoint }, 'Modbus device answering again after the connection loss');
      this.lossLogged = false;
    }
    if (u.failures > 0) this.log.info({ source: this.name, device: this.endpoint, unit: id, failures: u.failures }, 'Modbus unit answering again');
    u.failures = 0;
    u.retryAt = 0;
  }

  private unanswerable(id: number, u: UnitState, message: string): void {
    if (u.failures === 0) {
      this.log.warn(
        { source: this.name, device: this.endpoint, unit: id, err: message, code: 'FW_ERR_SOURCE_FAILED' },
        'Modbus unit not answering; polling it less often until it does',
      );
    }
    u.retryAt = Date.now() + backoffDelay(u.failures, this.cfg.reconnectMinMs, this.cfg.reconnectMaxMs);
    u.failures++;
  }

  private onException(state: BatchState, code: number): void {
    const { batch } = state;
    if (code === 2 && batch.members.length > 1) {
      const parts = splitBatch(batch).map((b) => ({ batch: b, nextDue: state.nextDue, lastException: null }));
      this.batches.splice(this.batches.indexOf(state), 1, ...parts);
      this.log.info(
        { source: this.name, unit: batch.unitId, address: batch.address, count: batch.count },
        'Modbus device refused a batched read (exception 2); reading its signals one by one',
      );
      return;
    }
    if (state.lastException !== code) {
      const signals = batch.members.map((m) => this.signals[m.signal]!.signal);
      this.log.warn(
        {
          source: this.name,
          device: this.endpoint,
          unit: batch.unitId,
          table: batch.registerType,
          address: batch.address,
          exception: code,
          signals,
          code: 'FW_ERR_SOURCE_FAILED',
        },
        'Modbus device answers an exception for these registers',
      );
    }
    state.lastException = code;
  }

  private decode(batch: ReadBatch, data: ArrayLike<number | boolean>, out: Map<string, Record<string, number>>): void {
    for (const m of batch.members) {
      const s = this.signals[m.signal]!;
      const { dataType = 'uint16', byteOrder = this.cfg.byteOrder, wordOrder = this.cfg.wordOrder, scale, offset } = s;
      const value = isBitTable(batch.registerType)
        ? decodeBit(data[m.offset] as boolean, scale, offset)
        : decodeRegisters(
            Array.from({ length: m.count }, (_, k) => Number(data[m.offset + k])),
            { dataType, byteOrder, wordOrder, scale, offset },
          );
      if (value === undefined) continue;
      const metrics = out.get(s.asset) ?? {};
      metrics[s.signal] = value;
      out.set(s.asset, metrics);
    }
  }

  /** One batch, with retries (none for a unit already known to be silent: one probe each back-off). Never throws. */
  private async read(batch: ReadBatch, retries: number): Promise<Outcome> {
    let last: Outcome = { kind: 'timeout', message: 'no attempt' };
    for (let attempt = 0; attempt <= retries; attempt++) {
      const client = this.client;
      if (!client || !client.isOpen) return { kind: 'disconnected', message: 'connection closed' };
      if (attempt > 0) this.counters.retries++;
      this.counters.requests++;
      try {
        client.setID(batch.unitId);
        const { address, count } = batch;
        const request: Promise<{ data: unknown }> =
          batch.functionCode === 1
            ? client.readCoils(address, count)
            : batch.functionCode === 2
              ? client.readDiscreteInputs(address, count)
              : batch.functionCode === 3
                ? client.readHoldingRegisters(address, count)
                : client.readInputRegisters(address, count);
        // modbus-serial times the request out itself; the guard covers a request it never settles (closed port).
        const res = await withTimeout(this.lost ? Promise.race([request, this.lost.promise]) : request, this.cfg.timeoutMs + 250, 'Modbus request');
        const data = (res as { data?: unknown } | undefined)?.data;
        if (
          !Array.isArray(data) ||
          data.length < count ||
          (!isBitTable(batch.registerType) && data.slice(0, count).some((w) => !Number.isInteger(w) || w < 0 || w > 0xffff))
        ) {
          this.counters.malformed++;
          last = { kind: 'malformed', message: `answer holds ${Array.isArray(data) ? data.length : 'no'} values for ${count} requested` };
          continue;
        }
        this.counters.responses++;
        return { kind: 'ok', data: data as ArrayLike<number | boolean> };
      } catch (err) {
        last = classify(err);
        const c = this.counters;
        if (last.kind === 'exception') {
          c.responses++;
          c.exceptions[last.code] = (c.exceptions[last.code] ?? 0) + 1;
          return last;
        }
        if (last.kind === 'timeout') c.timeouts++;
        else if (last.kind === 'crc') c.crcErrors++;
        else if (last.kind === 'malformed') c.malformed++;
        else return this.client?.isOpen ? last : { kind: 'disconnected', message: describeError(err) };
      }
    }
    return last;
  }

  private async ensureConnected(now: number): Promise<void> {
    if (this.client?.isOpen) return;
    if (this.client) this.drop(true, 'connection closed');
    if (now < this.nextConnectAt) throw new Error(this.lastConnectError ?? `reconnecting to ${this.endpoint}`);
    let client: ModbusClient | null = null;
    try {
      const Client = await loadClientClass().catch((err: unknown) => {
        clientClass = null;
        throw new SourceUnavailableError(`the modbus-serial package is not installed: ${describeError(err)}`);
      });
      const c = (client = new Client());
      c.on('error', (err) => this.client === c && this.drop(true, describeError(err)));
      c.on('close', () => this.client === c && this.drop(true, 'connection closed by the device'));
      const opening =
        this.cfg.transport === 'tcp'
          ? c.connectTCP(this.cfg.host, { port: this.cfg.port })
          : c.connectRTUBuffered(this.cfg.path, {
              baudRate: this.cfg.baudRate,
              parity: this.cfg.parity,
              dataBits: this.cfg.dataBits,
              stopBits: this.cfg.stopBits,
            });
      await withTimeout(opening, this.cfg.timeoutMs, `connecting to ${this.endpoint}`);
      if (this.stopping) throw new Error('stopped');
      c.setTimeout(this.cfg.timeoutMs);
    } catch (err) {
      if (client) this.closeClient(client);
      this.counters.connectFailures++;
      this.nextConnectAt = Date.now() + backoffDelay(this.connectAttempts++, this.cfg.reconnectMinMs, this.cfg.reconnectMaxMs);
      if (err instanceof SourceUnavailableError) throw err;
      this.lastConnectError = `cannot connect to ${this.endpoint}: ${describeError(err)}`;
      throw new Error(this.lastConnectError);
    }
    this.client = client;
    let reject: (err: Error) => void = () => {};
    const promise = new Promise<never>((_, rej) => (reject = rej));
    promise.catch(() => {});
    this.lost = { promise, reject };
    if (this.counters.connects > 0) this.counters.reconnects++;
    this.counters.connects++;
    this.lastConnectError = null;
    this.unanswered = 0;
  }

  /** Forgets the connection; with `lost`, counts and logs it once and schedules the reconnect. */
  private drop(lost: boolean, why = ''): void {
    const client = this.client;
    if (!client) return;
    this.client = null;
    this.lost?.reject(new Error('Port Not Open: the connection was closed'));
    this.lost = null;
    this.closeClient(client);
    const wasUp = this.linkUp;
    this.linkUp = false;
    if (!lost || this.stopping) return;
    this.counters.disconnects++;
    this.unanswered = 0;
    // A connection that never answered (a device that accepts and hangs up) does not reset the back-off.
    this.nextConnectAt = Date.now() + backoffDelay(this.connectAttempts++, this.cfg.reconnectMinMs, this.cfg.reconnectMaxMs);
    if (wasUp && !this.lossLogged) {
      this.lossLogged = true;
      this.log.warn({ source: this.name, device: this.endpoint, err: why, code: 'FW_ERR_SOURCE_FAILED' }, 'Modbus connection lost; reconnecting with back-off');
    }
  }

  private closeClient(client: ModbusClient): void {
    // modbus-serial's close() removes its error listener from the port before closing it: a write that fails
    // after that (EIO from a serial adapter pulled out, or a pty whose other end went) would be an uncaught
    // exception and stop the agent. The port keeps a listener that ignores it; the loss is already counted.
    (client as { _port?: { on?: (event: string, listener: () => void) => unknown } })._port?.on?.('error', () => undefined);
    try {
      if (this.cfg.transport === 'tcp') client.destroy(() => {});
      else client.close(() => {});
    } catch {
      // already closed
    }
  }
}
