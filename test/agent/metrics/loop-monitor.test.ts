import { afterEach, describe, expect, it, vi } from 'vitest';
import { LoopMonitor } from '../../../agent/src/metrics/metrics-server.js';

/**
 * The event-loop delay histogram wakes the process a hundred times a second: it runs only while someone reads
 * /metrics or /healthz, and stops when nobody has asked for five minutes.
 */
const monitors: LoopMonitor[] = [];
afterEach(() => {
  monitors.splice(0).forEach((m) => m.stop());
  vi.useRealTimers();
});

describe('LoopMonitor', () => {
  it('does not run until the first reader asks, and answers that reader with an empty window', () => {
    const m = new LoopMonitor();
    monitors.push(m);
    expect(m.running).toBe(false);
    expect(m.current()).toEqual({ p50: 0, p99: 0, max: 0, windowSeconds: expect.any(Number) });
    expect(m.running).toBe(true);
  });

  it('keeps running while read, and stops once nobody has read it for five minutes', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    const m = new LoopMonitor();
    monitors.push(m);
    m.current();
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(60_000); // a scraper every minute
      m.current();
    }
    expect(m.running).toBe(true);
    vi.advanceTimersByTime(5 * 60_000 + 30_000);
    expect(m.running).toBe(false);
    // The next reader starts it again.
    m.current();
    expect(m.running).toBe(true);
  });
});
