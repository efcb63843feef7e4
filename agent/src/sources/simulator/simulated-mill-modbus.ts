import type { Logger } from '../../core/logger.js';
import type { SimulatorConfig } from './simulator-source.js';
import type { Component, Reading, ReadingSink } from '../../core/types.js';
import { ModbusSource } from '../modbus/modbus-source.js';
import { MillingModbusServer, millingDeviceMap } from '../../../../firmware-bridge/src/simulators/milling-modbus-server.js';
import type { SourceStats } from '../interval-source.js';

/** Polls twice per machining process, so none is missed; repeats of the same process are dropped. */
const POLLS_PER_PROCESS = 2;
const MIN_POLL_MS = 50;

/**
 * The built-in simulated milling machine, read the way a real one is: the simulator serves its registers over
 * Modbus TCP on loopback, and the agent's Modbus source polls them with the same device-map code path users
 * configure for their PLCs. Each process reaches the pipeline once (deduplicated on the process counter).
 */
export class SimulatedMillModbus implements Component {
  readonly name = 'simulator';
  private readonly server: MillingModbusServer;
  private source: ModbusSource | null = null;
  private lastCycle: number | undefined;
  private readonly idleStats: SourceStats = { name: 'simulator', state: 'idle', samples: 0, errors: 0, lastError: null, lastSampleTs: null };

  constructor(
    private readonly cfg: SimulatorConfig,
    private readonly sink: ReadingSink,
    private readonly log: Logger,
  ) {
    this.server = new MillingModbusServer({ seed: cfg.seed, processSeconds: cfg.processSeconds, speedup: cfg.speedup, port: cfg.modbusPort });
  }

  /** The Modbus source's counters, under this source's name. */
  get stats(): SourceStats {
    return this.source ? { ...this.source.stats, name: this.name } : this.idleStats;
  }

  async start(): Promise<void> {
    const port = await this.server.start();
    const processMs = (this.cfg.processSeconds * 1000) / this.cfg.speedup;
    const intervalMs = Math.max(MIN_POLL_MS, Math.round(processMs / POLLS_PER_PROCESS));
    this.source = new ModbusSource(
      { name: 'sim-mill', host: '127.0.0.1', port, intervalMs, timeoutMs: Math.max(500, intervalMs), signals: millingDeviceMap({ asset: this.cfg.asset }) },
      (r) => this.forward(r),
      this.log,
    );
    this.log.info(
      { source: this.name, asset: this.cfg.asset, modbus: `127.0.0.1:${port}`, pollMs: intervalMs },
      'simulated milling machine serving Modbus TCP',
    );
    await this.source.start();
  }

  private forward(r: Reading): void {
    const cycle = r.metrics.cycle;
    if (cycle !== undefined && cycle === this.lastCycle) return;
    if (cycle !== undefined) this.lastCycle = cycle;
    this.sink({ ...r, source: this.name });
  }

  async stop(): Promise<void> {
    await this.source?.stop();
    await this.server.stop();
  }
}
