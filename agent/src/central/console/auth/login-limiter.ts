/**
 * The login rate limit, in memory (per worker): at most `maxFailures` failed logins per `windowMs` from one
 * address and for one user name. Past it, logins are refused (429) until the oldest failure in the window ages
 * out, even with the right password, so guessing cannot go faster than the limit. A successful login clears the
 * user name's failures (not the address's: one good account must not launder guesses at others).
 */

export const DEFAULT_MAX_FAILURES = 5;
export const DEFAULT_WINDOW_MS = 15 * 60_000;
/** Keys kept at most: a flood of made-up user names must not grow memory without bound. */
const MAX_KEYS = 10_000;

export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly options: { maxFailures?: number; windowMs?: number; now?: () => number } = {}) {}

  private get max(): number {
    return this.options.maxFailures ?? DEFAULT_MAX_FAILURES;
  }

  private get window(): number {
    return this.options.windowMs ?? DEFAULT_WINDOW_MS;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  private recent(key: string, now: number): number[] {
    const list = this.failures.get(key);
    if (!list) return [];
    const kept = list.filter((ts) => ts > now - this.window);
    if (kept.length) this.failures.set(key, kept);
    else this.failures.delete(key);
    return kept;
  }

  /** Seconds until a login from `address` for `username` may be tried again; 0 when it may now. */
  retryAfter(address: string, username: string): number {
    const now = this.now();
    let until = 0;
    for (const key of [`a:${address}`, `u:${username}`]) {
      const list = this.recent(key, now);
      if (list.length >= this.max) until = Math.max(until, list[list.length - this.max]! + this.window);
    }
    return until ? Math.max(1, Math.ceil((until - now) / 1000)) : 0;
  }

  fail(address: string, username: string): void {
    const now = this.now();
    if (this.failures.size >= MAX_KEYS) this.prune(now);
    for (const key of [`a:${address}`, `u:${username}`]) {
      const list = this.recent(key, now);
      list.push(now);
      // Only the newest `max` failures decide anything.
      this.failures.set(key, list.slice(-this.max));
    }
  }

  succeed(username: string): void {
    this.failures.delete(`u:${username}`);
  }

  private prune(now: number): void {
    for (const key of [...this.failures.keys()]) this.recent(key, now);
    // Still full of live keys: forget the oldest (Map keeps insertion order).
    for (const key of this.failures.keys()) {
      if (this.failures.size < MAX_KEYS) break;
      this.failures.delete(key);
    }
  }
}
