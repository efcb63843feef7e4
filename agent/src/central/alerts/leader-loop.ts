import { describeError, type ErrorCode } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { LeaderLease } from '../leader-lease.js';

/**
 * Runs `work` every `intervalMs` on the worker that holds the lease, one run at a time. A failing run is logged
 * once per streak of failures (not every interval) and retried at the next interval; stop() waits for the run in
 * flight, so nothing is cut off half way, then releases the lease.
 */
export class LeaderLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<boolean> | undefined;
  private stopped = true;
  private failing = false;

  constructor(
    private readonly what: string,
    private readonly intervalMs: number,
    private readonly lease: LeaderLease,
    private readonly log: Logger,
    private readonly work: () => Promise<void>,
    private readonly errorCode: ErrorCode,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    // Hand the lease over now rather than at its expiry (another component on it takes it again while it runs).
    await this.lease.release().catch((err: unknown) => this.log.debug({ what: this.what, err: describeError(err) }, 'lease not released'));
  }

  /** One run now (the timer's, or a test's): false when another worker leads. Runs never overlap. */
  async runOnce(): Promise<boolean> {
    while (this.running) await this.running;
    this.running = this.leadAndWork();
    try {
      return await this.running;
    } finally {
      this.running = undefined;
    }
  }

  private async leadAndWork(): Promise<boolean> {
    try {
      if (!(await this.lease.acquire())) return false;
      await this.work();
      if (this.failing) this.log.info({ what: this.what }, 'working again');
      this.failing = false;
      return true;
    } catch (err) {
      if (!this.failing) this.log.warn({ code: this.errorCode, what: this.what, err: describeError(err) }, 'run failed; retrying every interval');
      this.failing = true;
      return false;
    }
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.runOnce().finally(() => this.schedule(this.intervalMs));
    }, delayMs);
    this.timer.unref();
  }
}
