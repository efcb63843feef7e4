/**
 * The agent source for sensor nodes (docs/firmware-protocol.md): reads the node byte stream from a serial port
 * (through `serialport`), a TCP connection (the agent is the client) or UDP datagrams (the agent binds), and turns
 * it into Readings and HealthEvents:
 * - SenML packs → one Reading per (asset, time); metric = the record name after the base name, in dotted lowercase,
 *   value in the record's SenML unit (booleans 1/0, a sum as `<name>.sum`; text and data values are skipped);
 * - health records → `node.uptime_s`, `node.resets`, and a `node.reset` event when a node's reset count grows;
 * - completed sample blocks → edge features `<channel>.rms|peak|crest|kurtosis|skewness|band_<lo>_<hi>_hz` (band
 *   energy: mean square in the band, unit²); the raw samples are dropped unless `keepRawBlocks` > 0;
 * - acceleration blocks (m/s2 or g) → ISO 10816-3 severity (docs/vibration.md): `<channel>.velocity_rms` (mm/s, 10–1000
 *   Hz) and `<channel>.iso10816_zone` (A 1 … D 4), and per asset the worst axis `iso10816.velocity_rms_max` and
 *   `iso10816.zone` with the boundaries of its machine group and foundation `iso10816.boundary_ab|bc|cd` (mm/s), which
 *   the `vibration.iso10816.*` alert rules compare against.
 * The asset is the pack's base name (`urn:dev:mac:0024befffe804ff1:` → `mac-0024befffe804ff1`), else `asset`.
 * One FrameDecoder + BlockAssembler per serial port, TCP connection or UDP sender. A lost or missing port is a
 * `failing` state (logged once, reopened with back-off and jitter, logged once when back), never an exception;
 * damaged frames are counted and logged at most once a minute.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from '../../core/logger.js';
import { ForewarnError, describeError } from '../../core/errors.js';
import { type SchemaNode, schemaInteger } from '../../core/schema-node.js';
import type { Component, EventSink, Reading, ReadingSink } from '../../core/types.js';
import type { SourceStats } from '../interval-source.js';
import { backoffDelay } from '../../core/backoff.js';
import { FrameDecoder } from '../../../../firmware-bridge/src/node-protocol/frame-decoder.js';
import { BlockAssembler, type SampleBlock } from '../../../../firmware-bridge/src/node-protocol/block-assembler.js';
import type { HealthRecord, SenmlRecord } from '../../../../firmware-bridge/src/node-protocol/senml.js';
import { RawBlockRing, vibrationFeatures, type BandSpec, type RawBlock } from '../../../../firmware-bridge/src/node-protocol/vibration-features.js';
import {
  ZONE_NUMBER,
  accelerationToMs2,
  iso10816Boundaries,
  iso10816Zone,
  velocityRms,
  type Foundation,
  type MachineGroup,
  type ZoneBoundaries,
} from '../../../../firmware-bridge/src/node-protocol/vibration-severity.js';

/** An asset's ISO 10816-3 class: machine group (1: 300 kW–50 MW, 2: 15–300 kW) and foundation. */
export interface Iso10816Class {
  machineGroup: MachineGroup;
  foundation: Foundation;
}

export interface Iso10816Config extends Iso10816Class {
  enabled: boolean;
  lowHz: 2 | 10;
  /** Per asset name, its class where it differs from the link's. */
  assets: Record<string, Partial<Iso10816Class>>;
}

/** Descriptions of every field: nodeStreamConfigSchema. */
export interface NodeStreamConfig {
  enabled: boolean;
  transport: 'serial' | 'tcp' | 'udp';
  path: string; // serial device
  baudRate: number;
  host: string; // TCP: the node (or serial-to-Ethernet gateway) to connect to; UDP: the local address to bind
  port: number;
  asset: string; // default asset when a pack has no base name
  bands: Array<[number, number]>; // Hz, for band energies
  keepRawBlocks: number; // 0 = none; N = ring of the last N raw blocks for diagnosis
  iso10816: Iso10816Config;
  reconnectMinMs: number;
  reconnectMaxMs: number;
}

export const DEFAULT_NODE_STREAM_CONFIG: Readonly<NodeStreamConfig> = Object.freeze({
  enabled: false,
  transport: 'serial',
  path: '/dev/ttyUSB0',
  baudRate: 460_800,
  host: '127.0.0.1',
  port: 5005,
  asset: 'sensor-node',
  bands: [
    [10, 100],
    [100, 500],
    [500, 1000],
    [1000, 2000],
    [2000, 5000],
  ].map((b) => Object.freeze(b) as [number, number]),
  keepRawBlocks: 0,
  iso10816: Object.freeze({ enabled: true, lowHz: 10 as const, machineGroup: 2 as const, foundation: 'rigid' as const, assets: Object.freeze({}) }),
  reconnectMinMs: 500,
  reconnectMaxMs: 30_000,
});

const D = DEFAULT_NODE_STREAM_CONFIG;
const int = schemaInteger;

/** The machine group and foundation options, with defaults for the link and without for an asset's override. */
function iso10816ClassSchema(defaults?: Iso10816Class): Record<string, SchemaNode> {
  return {
    machineGroup: {
      type: 'integer',
      enum: [1, 2],
      ...(defaults ? { default: defaults.machineGroup } : {}),
      description: 'ISO 10816-3 machine group: 1 for large machines (300 kW–50 MW, shaft height ≥ 315 mm), 2 for medium ones (15–300 kW).',
    },
    foundation: {
      type: 'string',
      enum: ['rigid', 'flexible'],
      ...(defaults ? { default: defaults.foundation } : {}),
      description:
        "`rigid` where the machine and its support's lowest natural frequency lies above its main excitation (usually 25 % above the running speed), else `flexible`.",
    },
  };
}

/** The `sources.nodeStream` section, to merge into the agent's configuration schema. */
export const nodeStreamConfigSchema: SchemaNode = {
  type: 'object',
  additionalProperties: false,
  default: {},
  description: 'Sensor nodes streaming the Forewarn node protocol (COBS + CRC-32 + CBOR/SenML) over a serial port, TCP or UDP',
  properties: {
    enabled: { type: 'boolean', description: 'Read sensor nodes.', default: D.enabled },
    transport: {
      type: 'string',
      enum: ['serial', 'tcp', 'udp'],
      default: D.transport,
      description: '`serial` (a UART or USB-serial device), `tcp` (connect to the node or a serial-to-Ethernet gateway) or `udp` (bind and receive datagrams).',
    },
    path: { type: 'string', description: 'Serial: the device, e.g. `/dev/ttyUSB0` or a `/dev/serial/by-id/…` link (survives replugging).', default: D.path },
    baudRate: int('Serial: baud rate. One 10 kHz channel needs at least 230400 (8N1).', D.baudRate, 50),
    host: {
      type: 'string',
      default: D.host,
      description:
        'TCP: host to connect to. UDP: local address to bind (`0.0.0.0` for every interface; the protocol has no authentication, so bind only where nodes are).',
    },
    port: int('TCP: port to connect to. UDP: port to bind.', D.port, 1, 65535),
    asset: {
      type: 'string',
      default: D.asset,
      pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$',
      description:
        'Asset of readings whose SenML names carry no base name; otherwise the asset is the base name (`urn:dev:mac:0024befffe804ff1:` → `mac-0024befffe804ff1`).',
    },
    bands: {
      type: 'array',
      description:
        'Frequency bands `[low, high]` in Hz whose energy (mean square in the band) is computed for every vibration block, as `<channel>.band_<low>_<high>_hz`. Bands at or above the Nyquist frequency are left out.',
      default: D.bands.map((b) => [...b]),
      items: { type: 'array', description: '`[low, high]` in Hz, low < high.', minItems: 2, items: { type: 'number', description: 'Hz.', minimum: 0 } },
    },
    keepRawBlocks: int('Raw vibration blocks kept in memory (the last N) for a diagnostics bundle; 0 keeps none, only features.', D.keepRawBlocks, 0, 1024),
    iso10816: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description:
        'ISO 10816-3 vibration severity of acceleration blocks (unit `m/s2` or `g`): broadband velocity RMS per channel, its zone A–D by the boundaries of the machine group and foundation, and the `vibration.iso10816.*` alerts (docs/vibration.md)',
      properties: {
        enabled: { type: 'boolean', description: 'Compute the velocity and zones of acceleration blocks.', default: D.iso10816.enabled },
        lowHz: {
          type: 'integer',
          enum: [2, 10],
          default: D.iso10816.lowHz,
          description:
            'Lower edge of the velocity band in Hz (the upper edge is 1000 Hz): 10 for machines above 600 r/min, 2 for 120–600 r/min. A block must last 4 periods of it (0.4 s at 10 Hz, 2 s at 2 Hz).',
        },
        ...iso10816ClassSchema(D.iso10816),
        assets: {
          type: 'object',
          default: {},
          description:
            "Per asset name (the node's base name as an asset, e.g. `mac-0024befffe804ff1`), its machine group and foundation where they differ from this link's.",
          additionalProperties: {
            type: 'object',
            additionalProperties: false,
            description: "One asset's ISO 10816-3 class.",
            properties: iso10816ClassSchema(),
          },
        },
      },
    },
    reconnectMinMs: int('First delay before reopening a lost or missing port; doubles per failed attempt, with jitter.', D.reconnectMinMs, 10),
    reconnectMaxMs: int('Longest delay between attempts to reopen the port.', D.reconnectMaxMs, 10),
  },
};

export interface NodeStreamStats extends SourceStats {
  transport: NodeStreamConfig['transport'];
  endpoint: string;
  connected: boolean;
  // The FrameDecoder's outcomes (docs/firmware-protocol.md §7), summed over the link's decoders; they add up to `frames`.
  bytes: number;
  frames: number;
  framesOk: number;
  badCobs: number;
  oversize: number;
  runt: number;
  badCrc: number;
  unknownVersion: number;
  badCbor: number;
  unknownType: number;
  badMessage: number;
  truncated: number;
  lostFrames: number; // estimated from sequence-number gaps (a node restart counts too)
  chunks: number;
  blocksCompleted: number;
  blocksDropped: number; // timed out, evicted or inconsistent (a lost chunk loses its block)
  connects: number;
  reconnects: number; // successful opens after the first
  disconnects: number;
  nodeResets: number; // node.reset events sent
  velocityBlocks: number; // acceleration blocks whose ISO 10816-3 velocity was computed
  velocityRefused: number; // acceleration blocks that cannot give it (FW_ERR_VIBRATION_BLOCK)
  peers: number; // decoders alive: 1 for serial and TCP, one per recent sender on UDP
}

/** One decoder and assembler per link or UDP sender; `baseNames` (seen in its packs) split its block names. */
interface Peer {
  decoder: FrameDecoder;
  assembler: BlockAssembler;
  baseNames: string[];
}

const DAMAGE_KEYS = [
  'badCobs',
  'oversize',
  'runt',
  'badCrc',
  'unknownVersion',
  'badCbor',
  'unknownType',
  'badMessage',
  'truncated',
  'lostFrames',
  'blocksDropped',
] as const;
const DAMAGE_LOG_EVERY_MS = 60_000;
const MAINTENANCE_EVERY_MS = 5_000;
const TCP_CONNECT_TIMEOUT_MS = 10_000;
const MAX_UDP_PEERS = 64;
const MAX_NODES = 1024;
/** An axis's last velocity counts toward its asset's worst axis for this long (node time): axes arrive block by block. */
const WORST_AXIS_WINDOW_MS = 60_000;
const MAX_AXES = 16;

/** The part of `serialport`'s SerialPort this source uses. */
interface SerialPortLike {
  open(cb: (err: Error | null) => void): void;
  close(cb?: (err: Error | null) => void): void;
  readonly isOpen: boolean;
  on(event: 'data', listener: (data: Buffer) => void): unknown;
  on(event: 'close' | 'error', listener: (err?: Error | null) => void): unknown;
}
type SerialPortClass = new (options: { path: string; baudRate: number; autoOpen: boolean }) => SerialPortLike;

/** Loaded on the first serial open, so the agent starts without the native binding; a variable keeps tsc out. */
const SERIALPORT_PACKAGE = 'serialport';
let serialPortClass: Promise<SerialPortClass> | null = null;
export function loadSerialPort(): Promise<SerialPortClass> {
  type Module = { SerialPort?: SerialPortClass; default?: { SerialPort?: SerialPortClass } };
  serialPortClass ??= import(SERIALPORT_PACKAGE).then(
    (m: Module) => m.SerialPort ?? m.default?.SerialPort ?? Promise.reject(new Error('serialport exports no SerialPort')),
  );
  serialPortClass.catch(() => (serialPortClass = null));
  return serialPortClass;
}

/** `urn:dev:mac:0024befffe804ff1:` → `mac-0024befffe804ff1`: an asset name of `[A-Za-z0-9][A-Za-z0-9_.-]*`. */
export function assetFromBaseName(baseName: string, fallback: string): string {
  return (
    baseName
      .replace(/^urn:dev:/i, '')
      .replace(/[^A-Za-z0-9_.-]+/g, '-')
      .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '') || fallback
  );
}

/** A SenML name part as a metric name in the agent's dotted lowercase style: `vib/X-axis` → `vib.x_axis`. */
export function metricName(name: string): string {
  const m = name
    .toLowerCase()
    .replace(/[:/]+/g, '.')
    .replace(/[^a-z0-9_.]+/g, '_');
  return (
    m
      .replace(/\.{2,}/g, '.')
      .replace(/_{2,}/g, '_')
      .replace(/^[._]+|[._]+$/g, '') || 'value'
  );
}

/** Splits a full SenML name into asset and metric, by the base names known (longest first), else at the last `:`. */
export function splitSenmlName(full: string, baseNames: readonly string[], fallbackAsset: string): { asset: string; metric: string } {
  for (const bn of baseNames) {
    if (bn && full.length > bn.length && full.startsWith(bn)) return { asset: assetFromBaseName(bn, fallbackAsset), metric: metricName(full.slice(bn.length)) };
  }
  const i = full.lastIndexOf(':');
  if (i > 0 && i < full.length - 1) return { asset: assetFromBaseName(full.slice(0, i + 1), fallbackAsset), metric: metricName(full.slice(i + 1)) };
  return { asset: fallbackAsset, metric: metricName(full) };
}

const bandLabel = (x: number) => String(x).replace('.', 'p');
const ASSET_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function invalid(problem: string): ForewarnError {
  return new ForewarnError('FW_ERR_CONFIG_INVALID', `sensor-node stream: ${problem}`);
}

/** Adds counters up (every counter of the decoder and the assembler only grows). */
function addUp<K extends string>(into: Record<K, number>, from: Readonly<Record<K, number>>): void {
  for (const k of Object.keys(from) as K[]) into[k] += from[k];
}

export class NodeStreamSource implements Component {
  readonly name = 'node-stream';
  readonly stats: NodeStreamStats;
  readonly config: NodeStreamConfig;
  private readonly bands: BandSpec[];
  private readonly ring: RawBlockRing | null;
  /** The serial or TCP link's decoder (kept across reconnects, so its counters keep counting). */
  private readonly streamPeer: Peer;
  private readonly udpPeers = new Map<string, Peer>();
  /** Counters of UDP senders forgotten (a fresh decoder and assembler have every counter at 0). */
  private readonly retired = { frames: { ...new FrameDecoder().counters }, blocks: { ...new BlockAssembler().stats } };
  private readonly resetCounts = new Map<string, number>();
  /** Per asset, each acceleration channel's last velocity (mm/s) and its block time, for the worst axis. */
  private readonly axes = new Map<string, Map<string, { v: number; ts: number }>>();
  private readonly boundaries = new Map<string, ZoneBoundaries>();
  private readonly refusedLogged = new Set<string>();
  private conn: SerialPortLike | net.Socket | dgram.Socket | null = null;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private maintenance: NodeJS.Timeout | null = null;
  private stopped = true;
  private downSince: number | null = null;
  private gotFrameSinceOpen = false;
  private damageLoggedAt = 0;
  private damageSnapshot: Record<string, number> = {};
  private handlerErrorLogged = false;
  private boundPort = 0;

  constructor(
    config: Partial<NodeStreamConfig>,
    private readonly sink: ReadingSink,
    private readonly events: EventSink,
    private readonly log: Logger,
  ) {
    const given = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined));
    const c = (this.config = { ...DEFAULT_NODE_STREAM_CONFIG, ...given } as NodeStreamConfig);
    if (!['serial', 'tcp', 'udp'].includes(c.transport)) throw invalid(`unknown transport ${String(c.transport)}`);
    if (c.transport === 'serial' && !c.path) throw invalid('transport serial needs a path');
    if (c.transport !== 'serial' && (!c.host || !Number.isInteger(c.port) || c.port < 0 || c.port > 65535))
      throw invalid(`transport ${c.transport} needs a host and a port`);
    if (!(c.reconnectMinMs >= 1 && c.reconnectMaxMs >= c.reconnectMinMs)) throw invalid('reconnectMinMs must be ≥ 1 and ≤ reconnectMaxMs');
    if (!Number.isInteger(c.keepRawBlocks) || c.keepRawBlocks < 0) throw invalid('keepRawBlocks must be a non-negative integer');
    this.bands = c.bands.map((b, i) => {
      const [lo, hi] = b;
      if (!(Number.isFinite(lo) && Number.isFinite(hi) && lo >= 0 && hi > lo)) throw invalid(`band ${i} must be [low, high] with 0 ≤ low < high`);
      return { name: `band_${bandLabel(lo)}_${bandLabel(hi)}_hz`, lowHz: lo, highHz: hi };
    });
    const iso = (c.iso10816 = { ...D.iso10816, ...c.iso10816, assets: { ...c.iso10816?.assets } });
    if (iso.lowHz !== 2 && iso.lowHz !== 10) throw invalid(`iso10816.lowHz: must be 2 or 10, got ${String(iso.lowHz)}`);
    for (const [name, cls] of [['', iso], ...Object.entries(iso.assets)] as Array<[string, Partial<Iso10816Class>]>) {
      const at = name ? `iso10816.assets.${name}` : 'iso10816';
      if (name && !ASSET_NAME.test(name)) throw invalid(`${at}: not an asset name (${ASSET_NAME.source})`);
      if (cls.machineGroup !== undefined && cls.machineGroup !== 1 && cls.machineGroup !== 2)
        throw invalid(`${at}.machineGroup: must be 1 or 2, got ${String(cls.machineGroup)}`);
      if (cls.foundation !== undefined && cls.foundation !== 'rigid' && cls.foundation !== 'flexible')
        throw invalid(`${at}.foundation: must be rigid or flexible, got ${String(cls.foundation)}`);
    }
    this.ring = c.keepRawBlocks > 0 ? new RawBlockRing(c.keepRawBlocks) : null;
    this.ring?.enable();
    this.streamPeer = this.newPeer();
    this.stats = {
      name: this.name,
      state: 'idle',
      samples: 0,
      errors: 0,
      lastError: null,
      lastSampleTs: null,
      transport: c.transport,
      endpoint: this.endpoint,
      connected: false,
      bytes: 0,
      frames: 0,
      framesOk: 0,
      badCobs: 0,
      oversize: 0,
      runt: 0,
      badCrc: 0,
      unknownVersion: 0,
      badCbor: 0,
      unknownType: 0,
      badMessage: 0,
      truncated: 0,
      lostFrames: 0,
      chunks: 0,
      blocksCompleted: 0,
      blocksDropped: 0,
      connects: 0,
      reconnects: 0,
      disconnects: 0,
      nodeResets: 0,
      velocityBlocks: 0,
      velocityRefused: 0,
      peers: 0,
    };
  }

  get endpoint(): string {
    const c = this.config;
    return c.transport === 'serial' ? c.path : `${c.transport}://${c.host}:${this.boundPort || c.port}`;
  }

  /** UDP: the port bound (useful with port 0). */
  get port(): number {
    return this.boundPort || this.config.port;
  }

  /** The last `keepRawBlocks` raw blocks, oldest first, for a diagnostics bundle (empty when keepRawBlocks is 0). */
  rawBlocks(): RawBlock[] {
    return this.ring?.snapshot() ?? [];
  }

  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.stats.state = 'idle';
    this.maintenance = setInterval(() => this.maintain(), MAINTENANCE_EVERY_MS);
    this.maintenance.unref();
    void this.open();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    Object.assign(this.stats, { state: 'stopped', connected: false });
    clearTimeout(this.retryTimer ?? undefined);
    clearInterval(this.maintenance ?? undefined);
    const conn = this.conn;
    this.conn = this.retryTimer = this.maintenance = null;
    await this.closeConn(conn);
  }

  // Links ------------------------------------------------------------------------------------------------------

  private async open(): Promise<void> {
    this.retryTimer = null;
    if (this.stopped) return;
    const t = this.config.transport;
    try {
      const conn = t === 'serial' ? await this.openSerial() : t === 'tcp' ? await this.openTcp() : await this.openUdp();
      if (this.stopped) return void this.closeConn(conn);
      this.conn = conn;
      this.up();
    } catch (err) {
      this.down(err, false);
    }
  }

  private async openSerial(): Promise<SerialPortLike> {
    let SerialPort: SerialPortClass;
    try {
      SerialPort = await loadSerialPort();
    } catch (err) {
      throw Object.assign(new Error(`the serialport package does not load: ${describeError(err)}`), { unavailable: true });
    }
    const port = new SerialPort({ path: this.config.path, baudRate: this.config.baudRate, autoOpen: false });
    port.on('error', (err) => this.conn === port && this.down(err ?? new Error('serial port error'), true));
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    port.on('data', (data) => this.conn === port && this.feed(this.streamPeer, data, false));
    port.on('close', (err) => this.conn === port && this.down(err ?? new Error('serial port closed'), true));
    return port;
  }

  private openTcp(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: this.config.host, port: this.config.port });
      socket.setTimeout(TCP_CONNECT_TIMEOUT_MS, () => socket.destroy(new Error(`connect timed out after ${TCP_CONNECT_TIMEOUT_MS} ms`)));
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        socket.setTimeout(0);
        socket.setKeepAlive(true, 15_000);
        let why: unknown = new Error('connection closed by the node');
        socket.on('error', (err) => (why = err));
        socket.on('data', (data: Buffer) => this.conn === socket && this.feed(this.streamPeer, data, false));
        socket.on('close', () => this.conn === socket && this.down(why, true));
        resolve(socket);
      });
    });
  }

  private openUdp(): Promise<dgram.Socket> {
    return new Promise((resolve, reject) => {
      const socket = dgram.createSocket(net.isIPv6(this.config.host) ? 'udp6' : 'udp4');
      socket.once('error', (err) => (socket.close(), reject(err)));
      socket.bind(this.config.port, this.config.host, () => {
        socket.removeAllListeners('error');
        socket.on('error', (err) => this.conn === socket && this.down(err, true));
        socket.on('message', (msg, rinfo) => this.conn === socket && this.feed(this.udpPeer(`${rinfo.address}:${rinfo.port}`), msg, true));
        this.boundPort = socket.address().port;
        this.stats.endpoint = this.endpoint;
        resolve(socket);
      });
    });
  }

  /** Closes a link; resolves when it is closed (at most 1 s), never rejects. */
  private closeConn(conn: SerialPortLike | net.Socket | dgram.Socket | null): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 1000);
      const done = () => (clearTimeout(t), resolve());
      try {
        if (!conn || conn instanceof net.Socket) {
          conn?.destroy();
          done();
        } else if (conn instanceof dgram.Socket) conn.close(done);
        else if (conn.isOpen) conn.close(() => done());
        else done();
      } catch {
        done();
      }
    });
  }

  private up(): void {
    const s = this.stats;
    this.gotFrameSinceOpen = false;
    this.streamPeer.decoder.reset();
    if (s.connects > 0) s.reconnects++;
    s.connects++;
    s.connected = true;
    const wasDown = s.state === 'failing' || s.state === 'unavailable';
    s.state = 'running';
    this.refresh();
    if (wasDown)
      this.log.info(
        { source: this.name, endpoint: this.endpoint, reconnects: s.reconnects, downMs: Date.now() - (this.downSince ?? Date.now()) },
        'sensor-node link back',
      );
    else if (s.connects === 1) this.log.info({ source: this.name, endpoint: this.endpoint }, 'sensor-node link open');
    this.downSince = null;
  }

  /** A failed open, or the loss of an open link: one log line per outage, then back-off and jitter. */
  private down(err: unknown, wasOpen: boolean): void {
    if (this.stopped) return;
    const s = this.stats;
    const message = describeError(err);
    if (wasOpen) {
      const conn = this.conn;
      this.conn = null;
      void this.closeConn(conn);
      s.disconnects++;
      this.streamPeer.decoder.flush();
      this.refresh();
    }
    s.connected = false;
    s.errors++;
    s.lastError = message;
    const unavailable = (err as { unavailable?: boolean } | null)?.unavailable === true;
    const nextState = unavailable ? 'unavailable' : 'failing';
    if (s.state !== nextState) {
      this.downSince ??= Date.now();
      this.log.warn(
        { source: this.name, endpoint: this.endpoint, err: message, code: unavailable ? 'FW_ERR_SOURCE_UNAVAILABLE' : 'FW_ERR_SOURCE_FAILED' },
        wasOpen ? 'sensor-node link lost; reopening with back-off' : 'sensor-node link cannot be opened; retrying with back-off',
      );
    } else {
      this.log.debug({ source: this.name, endpoint: this.endpoint, err: message, attempt: this.attempt }, 'sensor-node link still down');
    }
    s.state = nextState;
    const delay = unavailable ? this.config.reconnectMaxMs : backoffDelay(this.attempt++, this.config.reconnectMinMs, this.config.reconnectMaxMs);
    clearTimeout(this.retryTimer ?? undefined);
    this.retryTimer = setTimeout(() => void this.open(), delay);
  }

  private newPeer(): Peer {
    return { decoder: new FrameDecoder(), assembler: new BlockAssembler(), baseNames: [] }; // the protocol's defaults: 5 s, 4 blocks
  }

  private udpPeer(key: string): Peer {
    let p = this.udpPeers.get(key);
    if (p)
      this.udpPeers.delete(key); // re-inserted below: the map is kept in least-recently-used order
    else {
      p = this.newPeer();
      if (this.udpPeers.size >= MAX_UDP_PEERS) {
        const [oldKey, old] = this.udpPeers.entries().next().value as [string, Peer];
        this.udpPeers.delete(oldKey);
        addUp(this.retired.frames, old.decoder.counters);
        addUp(this.retired.blocks, old.assembler.stats);
      }
    }
    this.udpPeers.set(key, p);
    return p;
  }

  // Bytes → messages → readings ----------------------------------------------------------------------------------

  private feed(peer: Peer, bytes: Uint8Array, datagram: boolean): void {
    const messages = peer.decoder.push(bytes); // counts what it rejects; never throws
    if (datagram) peer.decoder.flush();
    if (messages.length && !this.gotFrameSinceOpen) {
      this.gotFrameSinceOpen = true;
      this.attempt = 0; // the link works: the next outage starts its back-off over
    }
    const nowMs = Date.now();
    for (const m of messages) {
      try {
        if (m.type === 'chunk') {
          const block = peer.assembler.push(m.chunk, nowMs);
          if (block) this.onBlock(peer, block);
          continue;
        }
        this.learnBaseName(peer, m.baseName);
        if (m.type === 'senml') this.onSenml(m.baseName, m.records);
        else this.onHealth(m.baseName, m.health, m.records);
      } catch (err) {
        // Only a throwing sink gets here: count it, say it once, and go on with the next message.
        this.stats.errors++;
        this.stats.lastError = describeError(err);
        if (!this.handlerErrorLogged)
          this.log.warn({ source: this.name, err: this.stats.lastError, code: 'FW_ERR_SOURCE_FAILED' }, 'sensor-node message handling failed');
        this.handlerErrorLogged = true;
      }
    }
    this.refresh();
    this.logDamage(nowMs);
  }

  private learnBaseName(peer: Peer, bn: string): void {
    if (!bn || peer.baseNames.includes(bn)) return;
    peer.baseNames.push(bn);
    peer.baseNames.sort((a, b) => b.length - a.length);
    if (peer.baseNames.length > 8) peer.baseNames.pop();
  }

  private emit(reading: Reading): void {
    this.stats.samples++;
    this.stats.lastSampleTs = Date.now();
    this.sink(reading);
  }

  private onSenml(baseName: string, records: readonly SenmlRecord[]): void {
    const byKey = new Map<string, Reading>();
    const known = baseName ? [baseName] : [];
    for (const r of records) {
      const { asset, metric } = splitSenmlName(r.name, known, this.config.asset);
      const ts = Math.round(r.time * 1000);
      const key = `${asset}\0${ts}`;
      let reading = byKey.get(key);
      if (!reading) byKey.set(key, (reading = { ts, source: this.name, asset, metrics: {} }));
      const value = r.value ?? (r.boolValue === undefined ? undefined : r.boolValue ? 1 : 0);
      if (value !== undefined && Number.isFinite(value)) reading.metrics[metric] = value;
      if (r.sum !== undefined && Number.isFinite(r.sum)) reading.metrics[`${metric}.sum`] = r.sum;
    }
    for (const reading of byKey.values()) if (Object.keys(reading.metrics).length) this.emit(reading);
  }

  private onHealth(baseName: string, h: HealthRecord, records: readonly SenmlRecord[]): void {
    const asset = assetFromBaseName(baseName, this.config.asset);
    const ts = Math.round((records.find((r) => r.name === `${baseName}resets`)?.time ?? Date.now() / 1000) * 1000);
    this.emit({ ts, source: this.name, asset, metrics: { 'node.uptime_s': h.uptimeS, 'node.resets': h.resetCount } });
    const previous = this.resetCounts.get(asset);
    this.resetCounts.delete(asset);
    this.resetCounts.set(asset, h.resetCount);
    if (this.resetCounts.size > MAX_NODES) this.resetCounts.delete(this.resetCounts.keys().next().value as string);
    if (previous === undefined || h.resetCount <= previous) return; // first sight, or the counter was cleared
    this.stats.nodeResets++;
    const attributes = {
      cause: h.lastResetCause,
      causeCode: h.resetCauseCode,
      resets: h.resetCount,
      previousResets: previous,
      uptimeS: h.uptimeS,
      firmware: h.firmwareVersion,
    };
    const message = `sensor node ${asset} reset (${h.lastResetCause}); reset count ${previous} → ${h.resetCount}`;
    this.events({ ts, source: this.name, asset, type: 'node.reset', code: h.resetCauseCode, message, attributes });
  }

  private onBlock(peer: Peer, block: SampleBlock): void {
    const { asset, metric } = splitSenmlName(block.name, peer.baseNames, this.config.asset);
    const nyquist = block.sampleRateHz / 2;
    const f = vibrationFeatures(block.samples, { sampleRateHz: block.sampleRateHz, scale: block.scale, bands: this.bands.filter((b) => b.lowHz < nyquist) });
    const metrics: Record<string, number> = {};
    const values: Array<[string, number]> = [
      ['rms', f.rms],
      ['peak', f.peak],
      ['crest', f.crestFactor],
      ['kurtosis', f.kurtosis],
      ['skewness', f.skewness],
    ];
    for (const [k, v] of [...values, ...f.bands.map((b): [string, number] => [b.name!, b.energy])]) if (Number.isFinite(v)) metrics[`${metric}.${k}`] = v;
    const ts = Math.round(block.baseTime * 1000);
    this.severity(asset, metric, block, ts, metrics);
    if (Object.keys(metrics).length) this.emit({ ts, source: this.name, asset, metrics });
    this.ring?.offer({
      name: block.name,
      unit: block.unit,
      startTime: block.baseTime,
      sampleRateHz: block.sampleRateHz,
      scale: block.scale,
      samples: block.samples,
    });
  }

  /** ISO 10816-3 velocity and zones of an acceleration block into `metrics` (docs/vibration.md). */
  private severity(asset: string, channel: string, block: SampleBlock, ts: number, metrics: Record<string, number>): void {
    const iso = this.config.iso10816;
    if (!iso.enabled || accelerationToMs2(block.unit) === undefined) return; // a current or temperature waveform has no velocity
    const r = velocityRms(block.samples, { sampleRateHz: block.sampleRateHz, scale: block.scale, unit: block.unit, lowHz: iso.lowHz });
    if (!r.ok) {
      this.stats.velocityRefused++;
      const key = `${asset}\0${channel}`;
      if (!this.refusedLogged.has(key) && this.refusedLogged.size < MAX_NODES) {
        this.refusedLogged.add(key);
        this.log.warn(
          { source: this.name, asset, channel, code: 'FW_ERR_VIBRATION_BLOCK', reason: r.error },
          'no ISO 10816-3 velocity from this acceleration block (counted; its other features are kept; logged once per channel)',
        );
      }
      return;
    }
    this.stats.velocityBlocks++;
    const b = this.boundariesOf(asset);
    const v = r.velocityRmsMmS;
    metrics[`${channel}.velocity_rms`] = v;
    metrics[`${channel}.iso10816_zone`] = ZONE_NUMBER[iso10816Zone(v, b)];
    // The asset's worst axis over the axes heard from recently (each axis comes in its own block).
    let axes = this.axes.get(asset);
    if (!axes) {
      if (this.axes.size >= MAX_NODES) this.axes.delete(this.axes.keys().next().value as string);
      this.axes.set(asset, (axes = new Map()));
    }
    axes.delete(channel);
    axes.set(channel, { v, ts });
    if (axes.size > MAX_AXES) axes.delete(axes.keys().next().value as string);
    let worst = v;
    for (const [name, a] of axes) {
      if (ts - a.ts > WORST_AXIS_WINDOW_MS) axes.delete(name);
      else if (a.v > worst) worst = a.v;
    }
    metrics['iso10816.velocity_rms_max'] = worst;
    metrics['iso10816.zone'] = ZONE_NUMBER[iso10816Zone(worst, b)];
    metrics['iso10816.boundary_ab'] = b.ab;
    metrics['iso10816.boundary_bc'] = b.bc;
    metrics['iso10816.boundary_cd'] = b.cd;
  }

  private boundariesOf(asset: string): ZoneBoundaries {
    let b = this.boundaries.get(asset);
    if (!b) {
      const iso = this.config.iso10816;
      const own = iso.assets[asset] ?? {};
      b = iso10816Boundaries(own.machineGroup ?? iso.machineGroup, own.foundation ?? iso.foundation);
      if (this.boundaries.size < MAX_NODES) this.boundaries.set(asset, b);
    }
    return b;
  }

  private refresh(): void {
    const f = { ...this.retired.frames };
    const b = { ...this.retired.blocks };
    for (const p of [this.streamPeer, ...this.udpPeers.values()]) {
      addUp(f, p.decoder.counters);
      addUp(b, p.assembler.stats);
    }
    Object.assign(this.stats, {
      bytes: f.bytes,
      frames: f.frames,
      framesOk: f.ok,
      badCobs: f.badCobs,
      oversize: f.oversize,
      runt: f.runt,
      badCrc: f.badCrc,
      unknownVersion: f.unknownVersion,
      badCbor: f.badCbor,
      unknownType: f.unknownType,
      badMessage: f.badMessage,
      truncated: f.truncated,
      lostFrames: f.seqGaps,
      chunks: b.chunks,
      blocksCompleted: b.completed,
      blocksDropped: b.timedOut + b.evicted + b.invalid,
      peers: this.config.transport === 'udp' ? this.udpPeers.size : this.conn ? 1 : 0,
    } satisfies Partial<NodeStreamStats>);
  }

  private maintain(): void {
    const now = Date.now();
    this.streamPeer.assembler.expire(now);
    for (const p of this.udpPeers.values()) p.assembler.expire(now);
    this.refresh();
    this.logDamage(now);
  }

  /** Damaged frames, lost frames and dropped blocks: counted always, logged at most once a minute. */
  private logDamage(now: number): void {
    if (now - this.damageLoggedAt < DAMAGE_LOG_EVERY_MS) return;
    const totals: Record<string, number> = Object.fromEntries(DAMAGE_KEYS.map((k) => [k, this.stats[k]]));
    const delta = Object.fromEntries(DAMAGE_KEYS.map((k) => [k, totals[k]! - (this.damageSnapshot[k] ?? 0)]).filter(([, d]) => Number(d) > 0));
    if (!Object.keys(delta).length) return;
    this.damageSnapshot = totals;
    this.damageLoggedAt = now;
    this.log.warn(
      { source: this.name, endpoint: this.endpoint, new: delta, totals, framesOk: this.stats.framesOk },
      'damaged or lost sensor-node frames (counted; logged at most once a minute)',
    );
  }
}
