import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GridInterval, GridTimeout, everyOnGrid, nextGridTick } from '../../../agent/src/core/grid.js';
import { ROOT } from '../../helpers/agent-process.js';

/**
 * Every periodic timer of the process runs on one grid, and what is due at the same instant runs in one wake-up:
 * at 5 s the sources' tick, housekeeping and the sync's retry tick wake the agent once (docs/benchmarks.md).
 */
describe('nextGridTick', () => {
  it('is the next multiple of the interval after now, counted from the origin', () => {
    expect(nextGridTick(1000, 1000, 0)).toBe(2000);
    expect(nextGridTick(1999, 1000, 0)).toBe(2000);
    expect(nextGridTick(2000, 1000, 0)).toBe(3000);
    expect(nextGridTick(12_345, 5000, 345)).toBe(15_345);
    // Before the origin (never happens with a monotonic origin, but must still move forward).
    expect(nextGridTick(-10, 1000, 0)).toBe(0);
  });

  it('is strictly after an instant of the grid itself, whatever the rounding of the origin', () => {
    // A timer re-armed from its own instant must get the next one: with the instant itself it ran twice, a
    // millisecond apart (a source sampled twice, a rate over one millisecond).
    let rng = 7;
    const random = () => ((rng = (rng * 48271) % 2147483647) / 2147483647) * 2000;
    for (let i = 0; i < 2000; i++) {
      const origin = random();
      const interval = [40, 120, 200, 1000, 5000][i % 5]!;
      const instant = nextGridTick(origin + random() * 50, interval, origin);
      const next = nextGridTick(instant, interval, origin);
      expect(next).toBeGreaterThan(instant);
      expect(next - instant).toBeCloseTo(interval, 6);
    }
  });
});

const cleanup: Array<{ clear(): void }> = [];
afterEach(() => {
  for (const t of cleanup.splice(0)) t.clear();
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Which event-loop turn this is: the same number for every call made before the loop reaches its check phase, so
 * two timers that ran in one wake-up (one Node timer, one timers phase) read the same turn.
 */
let turn = 0;
let turnEnding = false;
function currentTurn(): number {
  if (!turnEnding) {
    turnEnding = true;
    setImmediate(() => {
      turnEnding = false;
      turn++;
    });
  }
  return turn;
}

describe('GridInterval', () => {
  it('runs intervals that divide each other in the same turn, though they were started apart', async () => {
    const fast: number[] = [];
    const slow: number[] = [];
    cleanup.push(everyOnGrid(() => fast.push(currentTurn()), 40));
    await sleep(17);
    // Busy for a while in between, so the two are not armed in the same turn either.
    const until = performance.now() + 3;
    while (performance.now() < until);
    cleanup.push(everyOnGrid(() => slow.push(currentTurn()), 120));
    await sleep(700);
    expect(slow.length).toBeGreaterThanOrEqual(3);
    expect(fast.length).toBeGreaterThanOrEqual(3 * slow.length - 3);
    // Every run of the slow one shares its turn with a run of the fast one: one wake-up, not two.
    for (const t of slow) expect(fast).toContain(t);
  });

  it('first runs at the next grid instant, sooner than a whole interval after the start', async () => {
    const started = performance.now();
    const at: number[] = [];
    cleanup.push(everyOnGrid(() => at.push(performance.now()), 200));
    await sleep(450);
    expect(at.length).toBeGreaterThanOrEqual(2);
    // The grid's first instant after the start (at most one interval away), not start + interval: it ran for that
    // instant (a timer may run late on a loaded machine, never a millisecond early), and before the next one.
    const instant = nextGridTick(started, 200);
    expect(instant - started).toBeLessThanOrEqual(200);
    expect(at[0]!).toBeGreaterThanOrEqual(instant - 1);
    expect(at[0]!).toBeLessThan(instant + 200);
    // The second run is for the next instant: a late first run does not move the grid.
    expect(at[1]!).toBeGreaterThanOrEqual(instant + 200 - 1);
  });

  it('goes on after a run that throws, and stops when cleared from its own run', async () => {
    let runs = 0;
    const thrown: unknown[] = [];
    const onUncaught = (err: unknown) => thrown.push(err);
    process.prependListener('uncaughtException', onUncaught);
    try {
      let stopAfter = 3;
      const t: GridInterval = everyOnGrid(() => {
        runs++;
        if (runs === 1) throw new Error('first run fails');
        if (--stopAfter === 0) t.clear();
      }, 30);
      cleanup.push(t);
      await sleep(400);
    } finally {
      process.removeListener('uncaughtException', onUncaught);
    }
    expect(thrown.map((e) => (e as Error).message)).toEqual(['first run fails']);
    // The failed first run, then three more, the last of which cleared the interval.
    expect(runs).toBe(4);
  });

  it('refuses an interval that is not a positive number', () => {
    expect(() => everyOnGrid(() => undefined, 0)).toThrow(/positive/);
    expect(() => everyOnGrid(() => undefined, Number.NaN)).toThrow(/positive/);
  });
});

describe('GridTimeout', () => {
  it('does not run once cleared, even by a call due at the same instant', async () => {
    const ran: string[] = [];
    const due = nextGridTick(performance.now(), 50);
    let b: GridTimeout | null = null;
    const a = new GridTimeout(due, () => {
      ran.push('a');
      b?.clear();
    });
    b = new GridTimeout(due, () => ran.push('b'));
    cleanup.push(a, b);
    await sleep(120);
    expect(ran).toEqual(['a']);
  });

  it('unref: a timeout alone does not keep the process alive', async () => {
    const grid = path.join(ROOT, 'dist/agent/src/core/grid.js');
    const code = `const { GridTimeout, nextGridTick } = await import(${JSON.stringify(grid)});
      new GridTimeout(nextGridTick(performance.now(), 60_000), () => console.log('ran')).unref();`;
    const started = Date.now();
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('');
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});
