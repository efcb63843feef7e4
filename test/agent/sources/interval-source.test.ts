import { afterEach, describe, expect, it } from 'vitest';
import type { Reading } from '../../../agent/src/core/types.js';
import { IntervalSource } from '../../../agent/src/sources/interval-source.js';
import { captureLogger } from '../../helpers/capture-logger.js';

/**
 * Polled sources tick on one grid per interval (Telegraf's round_interval): sources with the same interval sample
 * together, so the store commits their readings in one transaction instead of one each.
 */
class Counting extends IntervalSource {
  readonly at: number[] = [];
  protected sample(now: number): Reading[] {
    this.at.push(performance.now());
    return [{ ts: now, source: this.name, asset: 'a', metrics: { x: 1 } }];
  }
}

const sources: Counting[] = [];
afterEach(async () => {
  for (const s of sources.splice(0)) await s.stop();
});

describe('IntervalSource on the grid', () => {
  it('samples at once, then two sources started apart tick together on the same grid', async () => {
    const { log } = captureLogger();
    const a = new Counting('a', 200, () => undefined, log);
    sources.push(a);
    await a.start();
    await new Promise((r) => setTimeout(r, 70));
    const b = new Counting('b', 200, () => undefined, log);
    sources.push(b);
    await b.start();
    await new Promise((r) => setTimeout(r, 1000));
    await a.stop();
    await b.stop();
    // Each sampled once at start (b 70 ms after a), then on the grid: b's ticks fall on a's, not 70 ms after them.
    expect(a.at.length).toBeGreaterThanOrEqual(4);
    // The first grid tick is at least half an interval after the sample at start (a timer never fires early).
    expect(a.at[1]! - a.at[0]!).toBeGreaterThanOrEqual(99);
    expect(b.at[1]! - b.at[0]!).toBeGreaterThanOrEqual(99);
    expect(b.at.length).toBeGreaterThanOrEqual(3);
    const phase = (t: number) => {
      const d = (((t - a.at[1]!) % 200) + 200) % 200;
      return Math.min(d, 200 - d);
    };
    const phases = b.at
      .slice(1)
      .map(phase)
      .sort((x, y) => x - y);
    expect(phases[Math.floor(phases.length / 2)]).toBeLessThan(35);
  });
});
