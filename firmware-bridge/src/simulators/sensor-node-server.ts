/**
 * Runs the sensor-node emulator (sensor-node.ts) over a real transport, for tests and demos:
 * - `serial`: writes the byte stream to a tty (one end of a pty pair made with socat, or a UART looped back to the
 *   agent's); when the device disappears (pty closed, adapter unplugged) the bytes are dropped, as a node's UART
 *   would drop them, and the device is reopened every `reopenMs` until it is back;
 * - `tcp`: listens; every connected client gets the stream from the moment it connects (a leading 0x00 first);
 * - `udp`: sends datagrams of `framesPerDatagram` whole frames (cut after each 0x00) to `host:port`.
 * The emulator produces one vibration block period at a time (0.41 s at 10 kHz, 4096 samples) with the measurement
 * and health frames due in it, paced to the wall clock divided by `speedup` (the node's clock runs `speedup` times
 * fast too). `restart()` emulates a node reset: sequence numbers, block ids and uptime start over, the reset count
 * grows. The last `keepBlocks` blocks sent are kept, so tests can compare what the agent computed.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import type { ResetCause } from '../node-protocol/senml.js';
import { SensorNodeSimulator, type SensorNodeNoise, type SensorNodeOptions } from './sensor-node.js';

export interface SensorNodeServerOptions {
  transport: 'serial' | 'tcp' | 'udp';
  /** serial: the tty to write to. */
  path?: string;
  baudRate?: number;
  /** tcp: address to listen on (default 127.0.0.1); udp: where to send (default 127.0.0.1). */
  host?: string;
  /** tcp: port to listen on (0, the default, picks a free one); udp: the port to send to (required). */
  port?: number;
  /** How much faster than real time the node runs (default 1). */
  speedup?: number;
  /** The emulator's options; `startTime` defaults to now. */
  node?: SensorNodeOptions;
  /** Shorthand for node.noise. */
  noise?: SensorNodeNoise;
  /** udp: whole frames per datagram (default 1). */
  framesPerDatagram?: number;
  /** serial: how often a missing device is tried again (default 200 ms). */
  reopenMs?: number;
  /** Blocks kept for comparison (default 32). */
  keepBlocks?: number;
}

export interface SentBlock {
  blockId: number;
  /** Epoch ms of sample 0, as the node stamped it. */
  startMs: number;
  samples: Int16Array;
  sampleRateHz: number;
  scale: number;
}

/** Queued bytes beyond which a slow reader's data is dropped (a node does not buffer for ever either). */
const MAX_QUEUED_BYTES = 1 << 20;

interface SerialPortLike {
  open(cb: (err: Error | null) => void): void;
  close(cb?: (err: Error | null) => void): void;
  write(data: Uint8Array): boolean;
  readonly isOpen: boolean;
  readonly writableLength: number;
  on(event: 'close' | 'error', listener: (err?: Error | null) => void): unknown;
}
type SerialPortClass = new (options: { path: string; baudRate: number; autoOpen: boolean; lock?: boolean }) => SerialPortLike;
const SERIALPORT_PACKAGE = 'serialport';

export class SensorNodeServer {
  readonly stats = { ticks: 0, bytes: 0, bytesDropped: 0, frames: 0, datagrams: 0, connections: 0, opens: 0, restarts: 0 };
  private readonly o: Required<
    Pick<SensorNodeServerOptions, 'speedup' | 'framesPerDatagram' | 'reopenMs' | 'keepBlocks' | 'host' | 'port' | 'baudRate' | 'path'>
  > &
    SensorNodeServerOptions;
  private nodeOptions: SensorNodeOptions;
  private simulator: SensorNodeSimulator;
  private readonly blocks: SentBlock[] = [];
  private timer: NodeJS.Timeout | null = null;
  private epochMs = 0;
  private produced = 0;
  private running = false;
  private stopped = true;
  private server: net.Server | null = null;
  private readonly clients = new Set<net.Socket>();
  private udp: dgram.Socket | null = null;
  private serial: SerialPortLike | null = null;
  private reopenTimer: NodeJS.Timeout | null = null;
  private boundPort = 0;

  constructor(options: SensorNodeServerOptions) {
    this.o = {
      speedup: 1,
      framesPerDatagram: 1,
      reopenMs: 200,
      keepBlocks: 32,
      host: '127.0.0.1',
      port: 0,
      baudRate: 460_800,
      path: '',
      ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
      transport: options.transport,
    };
    if (!(this.o.speedup > 0)) throw new RangeError(`speedup must be positive, got ${this.o.speedup}`);
    if (this.o.transport === 'serial' && !this.o.path) throw new RangeError('transport serial needs a path');
    if (this.o.transport === 'udp' && !(this.o.port > 0)) throw new RangeError('transport udp needs the port to send to');
    this.nodeOptions = { startTime: Date.now() / 1000, ...options.node, ...(options.noise ? { noise: options.noise } : {}) };
    this.simulator = new SensorNodeSimulator(this.nodeOptions);
  }

  /** The emulator now running. */
  get node(): SensorNodeSimulator {
    return this.simulator;
  }

  get resetCount(): number {
    return this.nodeOptions.resetCount ?? 0;
  }

  /** tcp: the port listened on. */
  get port(): number {
    return this.boundPort || this.o.port;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** The blocks sent most recently, oldest first. */
  get recentBlocks(): readonly SentBlock[] {
    return this.blocks;
  }

  /** The block whose sample 0 is stamped `tsMs` (±1 ms), if still kept. */
  blockAt(tsMs: number): SentBlock | undefined {
    return this.blocks.find((b) => Math.abs(b.startMs - tsMs) <= 1);
  }

  /** Opens the transport and starts the node; resolves to the tcp port (or the udp target port). */
  async start(): Promise<number> {
    if (this.running) return this.port;
    this.stopped = false;
    if (this.o.transport === 'tcp') await this.listen();
    else if (this.o.transport === 'udp') {
      this.udp = dgram.createSocket(net.isIPv6(this.o.host) ? 'udp6' : 'udp4');
      this.udp.on('error', () => {});
    } else await this.openSerial();
    this.running = true;
    this.epochMs = Date.now();
    this.produced = 0;
    this.timer = setInterval(() => this.pump(), Math.max(5, Math.min(50, this.periodMs / 2)));
    return this.port;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.reopenTimer) clearTimeout(this.reopenTimer);
    this.timer = this.reopenTimer = null;
    for (const c of this.clients) c.destroy();
    this.clients.clear();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((r) => server.close(() => r()));
    const udp = this.udp;
    this.udp = null;
    if (udp) await new Promise<void>((r) => udp.close(() => r()));
    const serial = this.serial;
    this.serial = null;
    if (serial?.isOpen) await new Promise<void>((r) => serial.close(() => r()));
  }

  /** Drops every TCP client (the server keeps listening). */
  dropClients(): void {
    for (const c of this.clients) c.destroy();
    this.clients.clear();
  }

  /**
   * A node reset: a fresh emulator with the reset count raised (or set) and the given cause; uptime starts at 0.
   * `node` changes the emulator's options from then on (e.g. a new bearing: a defect that no longer grows).
   */
  restart(options: { resetCount?: number; lastResetCause?: ResetCause; node?: Partial<SensorNodeOptions> } = {}): void {
    this.nodeOptions = {
      ...this.nodeOptions,
      ...options.node,
      startTime: Date.now() / 1000,
      resetCount: options.resetCount ?? this.resetCount + 1,
      lastResetCause: options.lastResetCause ?? 'software',
    };
    this.simulator = new SensorNodeSimulator(this.nodeOptions);
    this.epochMs = Date.now();
    this.produced = 0;
    this.stats.restarts++;
    this.send(Uint8Array.of(0)); // a node sends 0x00 after reset
  }

  private get periodMs(): number {
    return (this.simulator.blockSeconds * 1000) / this.o.speedup;
  }

  /** Sends the block periods due by now; far behind (a stalled event loop), it skips ahead rather than bursting. */
  private pump(): void {
    if (!this.running) return;
    const due = Math.floor((Date.now() - this.epochMs) / this.periodMs) + 1;
    if (due - this.produced > 50) this.produced = due - 1;
    while (this.produced < due) {
      this.produced++;
      const startTime = this.nodeOptions.startTime ?? 0;
      const tick = this.simulator.next();
      this.stats.ticks++;
      this.stats.frames += tick.framesSent - tick.chunksDropped;
      this.blocks.push({
        blockId: tick.blockId,
        startMs: Math.round((startTime + tick.timeS) * 1000),
        samples: tick.samples,
        sampleRateHz: this.nodeOptions.sampleRateHz ?? 10_000,
        scale: this.nodeOptions.scale ?? 0.002,
      });
      if (this.blocks.length > this.o.keepBlocks) this.blocks.shift();
      this.send(tick.bytes);
    }
  }

  private send(bytes: Uint8Array): void {
    if (this.o.transport === 'tcp') {
      for (const c of this.clients) this.write(c, bytes);
    } else if (this.o.transport === 'udp') {
      for (const d of datagrams(bytes, this.o.framesPerDatagram)) {
        this.stats.datagrams++;
        this.stats.bytes += d.length;
        this.udp?.send(d, this.o.port, this.o.host);
      }
    } else if (this.serial?.isOpen) this.write(this.serial, bytes);
    else this.stats.bytesDropped += bytes.length;
  }

  private write(out: net.Socket | SerialPortLike, bytes: Uint8Array): void {
    if (out.writableLength > MAX_QUEUED_BYTES) {
      this.stats.bytesDropped += bytes.length;
      return;
    }
    this.stats.bytes += bytes.length;
    out.write(bytes);
  }

  private async listen(): Promise<void> {
    const server = net.createServer((socket) => {
      this.stats.connections++;
      this.clients.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => this.clients.delete(socket));
      socket.on('data', () => {}); // nothing to read: version 1 has no downlink
      socket.write(Uint8Array.of(0));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.boundPort || this.o.port, this.o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.boundPort = (server.address() as net.AddressInfo).port;
  }

  /** Opens the tty; while it is missing, tries again every reopenMs. Rejects only when serialport does not load. */
  private async openSerial(): Promise<void> {
    this.reopenTimer = null;
    if (this.stopped) return;
    const SerialPort = await loadSerialPort();
    const retry = () => {
      if (!this.stopped && this.reopenTimer === null) this.reopenTimer = setTimeout(() => void this.openSerial().catch(() => {}), this.o.reopenMs);
    };
    const port = new SerialPort({ path: this.o.path, baudRate: this.o.baudRate, autoOpen: false, lock: false });
    port.on('error', () => {});
    try {
      await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    } catch {
      return retry();
    }
    if (this.stopped) return void port.close();
    port.on('close', () => {
      if (this.serial === port) this.serial = null;
      retry();
    });
    this.serial = port;
    this.stats.opens++;
    port.write(Uint8Array.of(0));
  }
}

async function loadSerialPort(): Promise<SerialPortClass> {
  const m = (await import(SERIALPORT_PACKAGE)) as { SerialPort?: SerialPortClass };
  if (!m.SerialPort) throw new Error('the serialport package exports no SerialPort');
  return m.SerialPort;
}

/** Cuts a byte stream after each 0x00 and packs `perDatagram` frames (with the bytes before them) per datagram. */
export function datagrams(bytes: Uint8Array, perDatagram: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  let frames = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 0) continue;
    if (++frames >= perDatagram) {
      out.push(bytes.subarray(start, i + 1));
      start = i + 1;
      frames = 0;
    }
  }
  if (start < bytes.length) out.push(bytes.subarray(start));
  return out;
}

// `node sensor-node-server.js --transport tcp|udp|serial [--port 5005] [--host 127.0.0.1] [--path /dev/pts/3]
//  [--speedup 1] [--seed 1] [--garbage 0.01] [--bitflips 0.01] [--drop 0.01] [--truncate 0.01]`: run until killed.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (name: string): string | undefined => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const num = (name: string): number | undefined => (arg(name) === undefined ? undefined : Number(arg(name)));
  const transport = (arg('transport') ?? 'tcp') as SensorNodeServerOptions['transport'];
  const server = new SensorNodeServer({
    transport,
    path: arg('path'),
    host: arg('host'),
    port: num('port') ?? 5005,
    speedup: num('speedup'),
    node: { seed: num('seed') ?? 1 },
    noise: { garbageProbability: num('garbage'), bitFlipProbability: num('bitflips'), dropChunkProbability: num('drop'), truncateProbability: num('truncate') },
  });
  void server.start().then((port) => console.log(`sensor node over ${transport}${transport === 'serial' ? ` on ${arg('path')}` : ` port ${port}`}`));
  process.on('SIGINT', () => void server.stop().then(() => process.exit(0)));
  process.on('SIGTERM', () => void server.stop().then(() => process.exit(0)));
}
