import type { Logger } from '../../core/logger.js';
import type { Reading, ReadingSink } from '../../core/types.js';
import { MillingMachineSimulator, millingSignals } from '../../../../firmware-bridge/src/simulators/milling-machine.js';
import { IntervalSource } from '../interval-source.js';

/** The `sources.simulator` section (schema: plugin.ts). */
export interface SimulatorConfig {
  enabled: boolean;
  asset: string;
  seed: number;
  processSeconds: number;
  speedup: number;
  transport: 'modbus' | 'direct';
  modbusPort: number;
}

/** Shortest tick; at higher speed-ups several processes are emitted per tick. */
const MIN_TICK_MS = 50;

/**
 * The built-in simulated milling machine. Each machining process becomes one reading of the asset, with the
 * simulator's ground truth (`machine_failure`, 0 or 1) alongside the signals a model may use.
 */
export class SimulatorSource extends IntervalSource {
  private readonly sim: MillingMachineSimulator;
  private readonly processMs: number;
  private readonly asset: string;
  private emitted = 0;
  private startedAt = 0;

  constructor(cfg: SimulatorConfig, sink: ReadingSink, log: Logger) {
    const processMs = (cfg.processSeconds * 1000) / cfg.speedup;
    super('simulator', Math.max(MIN_TICK_MS, Math.round(processMs)), sink, log);
    this.processMs = processMs;
    this.asset = cfg.asset;
    this.sim = new MillingMachineSimulator({ seed: cfg.seed, processSeconds: cfg.processSeconds });
  }

  protected override async prepare(): Promise<void> {
    this.startedAt = Date.now();
  }

  protected sample(now: number): Reading[] {
    // Catch up on the processes due by now, so the simulated clock keeps pace with the speed-up.
    const due = Math.max(1, Math.floor((now - this.startedAt) / this.processMs) + 1 - this.emitted);
    const out: Reading[] = [];
    for (let i = 0; i < Math.min(due, 1000); i++) {
      const s = this.sim.next();
      this.emitted++;
      out.push({
        ts: now,
        source: this.name,
        asset: this.asset,
        metrics: { ...millingSignals(s), cycle: s.cycle, machine_failure: s.failed ? 1 : 0 },
      });
    }
    return out;
  }
}
