import { describe, expect, it } from 'vitest';
import { parseCollectdPayload, phaseWithin } from './probe.js';
import { targetRows, type RunFigures, type SubjectFigures, type WindowFigures } from './targets.js';

/** The side-by-side benchmark's arithmetic, on made-up figures: rows are produced and judged; no speed is asserted. */

function subject(w: Partial<WindowFigures>, extra: Partial<SubjectFigures> = {}): SubjectFigures {
  const base: WindowFigures = {
    cpuMsPerS: 1,
    cpuSchedMsPerS: 1,
    seconds: 60,
    rssKiB: 10 * 1024,
    writeBytesPerMin: 0,
    dataDirGrowthBytesPerMin: 0,
    recordBytesPerMin: 1000,
    payloadBytesPerMin: 1100,
    readings: 60,
    values: 600,
    wireBytesPerReading: 100,
    wireBytesPerValue: 10,
    latencyP50Ms: 5,
    latencyP99Ms: 20,
  };
  // Three windows; the middle one differs, so a median is told apart from a mean or a single window.
  const windows = [
    { ...base, ...w },
    { ...base, ...w, rssKiB: (w.rssKiB ?? base.rssKiB) * 10 },
    { ...base, ...w },
  ];
  return { windows, hwmKiB: 12 * 1024, execToFirstMs: 500, duplicateRecords: 0, currentViewMessages: 0, ...extra };
}

const byMeasure = (rows: Array<Record<string, string | number>>, start: string) => rows.find((r) => String(r.measure).startsWith(start));

describe('targetRows', () => {
  it('produces one judged row per target of the issue from both intervals', () => {
    const figures: RunFigures = new Map([
      [
        1,
        {
          'host-only': subject({ cpuMsPerS: 1.4, cpuSchedMsPerS: 1.4, rssKiB: 60 * 1024, writeBytesPerMin: 5000 }),
          defaults: subject({ cpuMsPerS: 5, cpuSchedMsPerS: 5, rssKiB: 100 * 1024 }, { currentViewMessages: 3 }),
          collectd: subject({ cpuMsPerS: 1, cpuSchedMsPerS: 1 }),
        },
      ],
      [
        5,
        {
          // Ticks cut 0.38 ms/s to 0.5 in a window here (7 ms a minute: less than one 10 ms tick): judged at ns.
          'host-only': subject({ cpuMsPerS: 0.5, cpuSchedMsPerS: 0.38 }),
          // 36 ms a window more in ticks than in schedstat: threads exited, so the ticks are judged.
          defaults: subject({ cpuMsPerS: 1, cpuSchedMsPerS: 0.4 }, { execToFirstMs: 1500 }),
          collectd: subject({ cpuMsPerS: 0.2, cpuSchedMsPerS: 0.2 }),
        },
      ],
    ]);
    const rows = targetRows(figures, { node_exporter: 'not installed' });
    expect(byMeasure(rows, 'CPU ms/s, host-only, 1 s')).toMatchObject({ forewarn: '1.4 (ticks 1.4)', ratio: '1.4× (ticks 1.4×)', result: 'PASS' });
    expect(byMeasure(rows, 'CPU ms/s, host-only, 5 s')).toMatchObject({ ratio: '1.9× (ticks 2.5×)', result: 'PASS', why: '' });
    expect(byMeasure(rows, 'CPU ms/s, defaults, 1 s')).toMatchObject({ result: 'reported' });
    expect(byMeasure(rows, 'CPU ms/s, defaults, 5 s')).toMatchObject({ ratio: '5× (ticks)', result: 'MISS', why: expect.stringContaining('threads exited') });
    expect(byMeasure(rows, 'RSS MiB, no model bound')).toMatchObject({ forewarn: '60; 12', result: 'PASS' });
    expect(byMeasure(rows, 'RSS MiB, defaults')).toMatchObject({ result: 'MISS' });
    expect(byMeasure(rows, 'storage writes per min, host-only, 1 s')).toMatchObject({ result: 'PASS' });
    expect(byMeasure(rows, 'reading → subscriber latency p50 / p99 ms, host-only, 1 s')).toMatchObject({ forewarn: '5 / 20', result: 'PASS' });
    expect(byMeasure(rows, 'exec → first telemetry on the broker, s, defaults, 5 s')).toMatchObject({ forewarn: '1.5', result: 'MISS' });
    expect(byMeasure(rows, 'bytes on the wire per reading (per value); records published twice (duplicate seqs + risk/current), defaults, 1 s')).toMatchObject({
      result: 'MISS',
    });
    expect(byMeasure(rows, 'bytes on the wire per reading (per value); records published twice (duplicate seqs + risk/current), host-only, 1 s')).toMatchObject(
      {
        forewarn: '100 (10); 0 + 0',
        result: 'PASS',
      },
    );
    expect(rows.every((r) => ['PASS', 'MISS', 'SKIP', 'reported'].includes(String(r.result)))).toBe(true);
  });

  it('reports the node floor beside collectd, and names it in a host-only miss that the runtime alone would make', () => {
    const figures: RunFigures = new Map([
      [
        5,
        {
          'host-only': subject({ cpuMsPerS: 4, cpuSchedMsPerS: 4 }),
          'node-floor': subject({ cpuMsPerS: 3, cpuSchedMsPerS: 3 }),
          collectd: subject({ cpuMsPerS: 1, cpuSchedMsPerS: 1 }),
        },
      ],
    ]);
    const rows = targetRows(figures, {});
    expect(byMeasure(rows, 'CPU ms/s, host-only, 5 s')).toMatchObject({ result: 'MISS', why: 'the node floor alone took 3× collectd in the same windows' });
    expect(rows.find((r) => /^CPU ms\/s, node floor .*, 5 s interval$/.test(String(r.measure)))).toMatchObject({
      forewarn: '3 (ticks 3)',
      ratio: '3× collectd; host-only 1.33× the floor',
      result: 'reported',
    });
    // A passing row names no floor; a phase without the floor says why it is absent.
    const passing = targetRows(new Map([[5, { ...figures.get(5)!, 'host-only': subject({ cpuMsPerS: 1.5, cpuSchedMsPerS: 1.5 }) }]]), {});
    expect(byMeasure(passing, 'CPU ms/s, host-only, 5 s')).toMatchObject({ result: 'PASS', why: '' });
    const none = targetRows(new Map([[5, { collectd: subject({}) }]]), { 'node-floor': 'scripts/node-floor.mjs is not in this checkout' });
    expect(none.filter((r) => String(r.measure).startsWith('CPU ms/s, node floor')).map((r) => [r.result, r.why])).toEqual([
      ['SKIP', 'the 1 s interval was not run'],
      ['SKIP', 'scripts/node-floor.mjs is not in this checkout'],
    ]);
  });

  it('skips with the reason when collectd did not run', () => {
    const rows = targetRows(new Map([[1, { 'host-only': subject({}) }]]), { collectd: 'collectd is not installed (apt-get install collectd-core)' });
    expect(byMeasure(rows, 'CPU ms/s, host-only, 1 s')).toMatchObject({ result: 'SKIP', why: 'collectd is not installed (apt-get install collectd-core)' });
    expect(byMeasure(rows, 'CPU ms/s, host-only, 5 s')).toMatchObject({ result: 'SKIP', why: 'the 5 s interval was not run' });
  });
});

describe('parseCollectdPayload', () => {
  it("reads the mqtt plugin's `time:value[:value…]` text", () => {
    const load = parseCollectdPayload('1796603519.518:1.71:1.41:1.38');
    expect(load?.values).toBe(3);
    expect(load?.tsMs).toBeCloseTo(1796603519518, 0);
    expect(parseCollectdPayload('1796603519.519:nan:nan')?.values).toBe(2);
    expect(parseCollectdPayload('garbage')).toBeUndefined();
  });
});

describe('phaseWithin', () => {
  it('finds where in the interval readings fall, across the boundary too', () => {
    // Every 5 s at 1.2 s into the interval, give or take 10 ms.
    const at = (k: number, offset: number) => 1_796_603_515_000 + k * 5000 + offset;
    const p = phaseWithin([at(0, 1190), at(1, 1210), at(2, 1200), at(3, 1200)], 5000)!;
    expect(p.phaseMs).toBeCloseTo(1200, 6);
    expect(p.spreadMs).toBeCloseTo(5, 6);
    // Either side of the boundary: the boundary, not the middle of the interval.
    const q = phaseWithin([at(0, 4990), at(1, 10), at(2, 4995), at(3, 5)], 5000)!;
    expect(Math.min(q.phaseMs, 5000 - q.phaseMs)).toBeLessThan(1e-6);
    expect(q.spreadMs).toBeCloseTo(7.5, 6);
    expect(phaseWithin([], 1000)).toBeUndefined();
  });
});
