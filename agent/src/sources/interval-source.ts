import type { Logger } from '../core/logger.js';
import { describeError } from '../core/errors.js';
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

/**
 * Every polled source of one agent ticks on the same grid: multiples of its interval counted from this instant
 * (Telegraf's `round_interval`, with the process start as origin so that a fleet's agents do not all tick at
 * once). Sources with the same interval sample together, and what they read is committed in one transaction.
 */
// On the monotonic clock: a wall clock stepped back (NTP, a dead RTC) must not stall the sources.
const GRID_ORIGIN = performance.now();

/** The next instant on the grid of `intervalMs` strictly after `now`. */
export function nextGridTick(now: number, intervalMs: number, origin = GRID_ORIGIN): number {
  return origin + (Math.floor((now - origin) / intervalMs) + 1) * intervalMs;
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
  private timer: NodeJS.Timeout | null = null;
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
        const now = performance.now();
        this.schedule(now, now + this.intervalMs / 2);
      });
  }

  private schedule(now: number, earliest = now): void {
    if (this.stats.state === 'stopped') return;
    this.due = nextGridTick(Math.max(earliest, this.due), this.intervalMs);
    this.timer = setTimeout(() => {
      this.schedule(performance.now());
      void this.tick();
    }, this.due - now);
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
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
