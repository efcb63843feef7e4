import type { Logger } from '../core/logger.js';
import { describeError } from '../core/errors.js';
import { GridTimeout, nextGridTick } from '../core/grid.js';
import type { Component, Reading, ReadingSink } from '../core/types.js';

/**
 * Thrown by a source whose tool or device is absent, or that lacks the permission to read it: the source is
 * marked `unavailable`, logged once, and retried rarely instead of every interval.
 */
export class SourceUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SourceUnavailableError';
  }
}

/**
 * A source whose hardware or tool this host lacks (a VM has no GPU, no BMC, no EDAC) is not a warning: most
 * sources are on by default and probe. One info line per source at start; the details at debug level and in
 * `forewarn doctor`, which also says how to fix it.
 */
export function logUnavailable(log: Logger, source: string, err: string): void {
  log.info(
    { source, code: 'FW_ERR_SOURCE_UNAVAILABLE' },
    `${source}: not available on this host (\`forewarn doctor\` says why); will check again now and then`,
  );
  log.debug({ source, err }, `${source}: why it is unavailable`);
}

/** While unavailable, a source retries once per this many intervals. */
const UNAVAILABLE_RETRY_EVERY = 12;

/** Protocol counters a source may keep (requests, timeouts, values by status…), exported per source in /metrics. */
export type SourceCounters = Readonly<Record<string, number | Readonly<Record<string, number>>>>;

export interface SourceStats {
  name: string;
  state: 'idle' | 'running' | 'failing' | 'unavailable' | 'stopped';
  samples: number;
  errors: number;
  lastError: string | null;
  lastSampleTs: number | null;
}

/**
 * The shared scheduler for polled sources: samples every `intervalMs`, never overlaps a slow sample with the
 * next one, counts failures, and logs a failing source once when it starts failing and once when it recovers,
 * instead of on every tick.
 */
export abstract class IntervalSource implements Component {
  readonly stats: SourceStats;
  private timer: GridTimeout | null = null;
  /** The grid instant the next tick is for (a late timer does not shift the grid). */
  private due = 0;
  private busy = false;
  private skipped = 0;

  constructor(
    readonly name: string,
    protected readonly intervalMs: number,
    private readonly sink: ReadingSink,
    protected readonly log: Logger,
  ) {
    this.stats = { name, state: 'idle', samples: 0, errors: 0, lastError: null, lastSampleTs: null };
  }

  /** Takes one sample. Throwing counts as a failed sample. */
  protected abstract sample(now: number): Promise<Reading[]> | Reading[];

  /** One-off set-up; the default does nothing. Runs in the background so `start()` returns fast. */
  protected async prepare(): Promise<void> {}

  async start(): Promise<void> {
    this.stats.state = 'running';
    void this.prepare()
      .catch((err) => this.fail(err))
      .finally(() => {
        if (this.stats.state === 'stopped') return;
        // The first sample at once (telemetry within a second of start), then on the grid, the first grid tick at
        // least half an interval later: rates computed from two samples a millisecond apart would mean nothing.
        void this.tick();
        this.schedule(performance.now() + this.intervalMs / 2);
      });
  }

  /** A sample in flight: its readings are still to come (the store waits for them to commit them together). */
  get sampling(): boolean {
    return this.busy;
  }

  private schedule(earliest = performance.now()): void {
    if (this.stats.state === 'stopped') return;
    // On the process's grid (core/grid.ts): with every other timer due at the same instant, in one wake-up.
    this.due = nextGridTick(Math.max(earliest, this.due), this.intervalMs);
    this.timer = new GridTimeout(this.due, () => {
      this.schedule();
      void this.tick();
    });
  }

  private fail(err: unknown): void {
    this.stats.errors++;
    this.stats.lastError = describeError(err);
    if (err instanceof SourceUnavailableError) {
      if (this.stats.state !== 'unavailable') logUnavailable(this.log, this.name, this.stats.lastError);
      this.stats.state = 'unavailable';
      return;
    }
    if (this.stats.state !== 'failing') {
      this.log.warn({ source: this.name, err: this.stats.lastError, code: 'FW_ERR_SOURCE_FAILED' }, 'source failing; will keep trying');
    }
    this.stats.state = 'failing';
  }

  private async tick(): Promise<void> {
    if (this.busy || this.stats.state === 'stopped') return;
    if (this.stats.state === 'unavailable' && ++this.skipped % UNAVAILABLE_RETRY_EVERY !== 0) return;
    this.busy = true;
    try {
      const now = Date.now();
      const readings = await this.sample(now);
      // stop() may have run while the sample was awaited.
      if ((this.stats.state as SourceStats['state']) === 'stopped') return;
      if (this.stats.state === 'failing' || this.stats.state === 'unavailable') this.log.info({ source: this.name }, 'source recovered');
      this.stats.state = 'running';
      this.stats.samples++;
      this.stats.lastSampleTs = now;
      for (const r of readings) this.sink(r);
    } catch (err) {
      this.fail(err);
    } finally {
      this.busy = false;
    }
  }

  async stop(): Promise<void> {
    this.stats.state = 'stopped';
    this.timer?.clear();
    this.timer = null;
  }
}
