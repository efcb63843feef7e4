import type { Logger } from '../../core/logger.js';
import type { Reading, ReadingSink } from '../../core/types.js';
import { hostInventory } from './host-inventory.js';
import { HostSampler } from './host-sampler.js';
import { IntervalSource } from '../interval-source.js';

/** The `sources.host` section (schema: plugin.ts). */
export interface HostSourceConfig {
  enabled: boolean;
  intervalMs: number;
  /** Empty in the file: the agent id, filled in when the configuration loads. */
  asset: string;
}

/**
 * Host telemetry. The per-sample path reads /proc and /sys only and spawns no process;
 * systeminformation runs once at start for the inventory (see test/bench/host-sampler.bench.ts).
 */
export class HostSource extends IntervalSource {
  private readonly sampler = new HostSampler();
  private readonly asset: string;
  private reportedErrors = new Set<string>();

  constructor(cfg: HostSourceConfig, sink: ReadingSink, log: Logger) {
    super('host', cfg.intervalMs, sink, log);
    this.asset = cfg.asset;
  }

  /** The inventory is logged when it is ready; the first sample does not wait for its process. */
  protected override async prepare(): Promise<void> {
    hostInventory().then(
      (inventory) => this.log.info({ source: this.name, inventory }, 'host inventory'),
      (err: unknown) => this.log.warn({ source: this.name, err: String(err) }, 'host inventory unavailable'),
    );
  }

  override async stop(): Promise<void> {
    await super.stop();
    // The sensor files it holds open (after a sample in progress, so that none is closed under a read).
    this.sampler.close();
  }

  protected async sample(now: number): Promise<Reading[]> {
    const { metrics, errors } = await this.sampler.sample(now);
    for (const e of errors) {
      // A partial failure (one unreadable file) is reported once, not every interval.
      if (this.reportedErrors.has(e)) continue;
      this.reportedErrors.add(e);
      this.stats.errors++;
      this.log.warn({ source: this.name, err: e }, 'part of the host sample unavailable');
    }
    if (!Object.keys(metrics).length) throw new Error(errors[0] ?? 'no host metrics could be read');
    return [{ ts: now, source: this.name, asset: this.asset, metrics }];
  }
}
