import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ANOMALY_MODEL,
  ANOMALY_STATUS_META_KEY,
  AnomalyScorer,
  anomalyMetaKey,
  type AnomalyAssetStatus,
} from '../../../../agent/src/scoring/anomaly/anomaly-scorer.js';
import type { AnomalyConfig } from '../../../../agent/src/config/load-config.js';
import { ANOMALY_MODEL_VERSION } from '../../../../agent/src/scoring/anomaly/detector.js';
import { RecordStore } from '../../../../agent/src/store/record-store.js';
import type { Reading, RiskRecord } from '../../../../agent/src/core/types.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { SECOND, correlatedMachine } from './synthetic.js';

const stores: RecordStore[] = [];
const scorers: AnomalyScorer[] = [];
afterEach(async () => {
  for (const s of scorers.splice(0)) await s.stop();
  for (const s of stores.splice(0)) s.close();
});

const config = (c: Partial<AnomalyConfig> = {}): AnomalyConfig => ({
  enabled: true,
  assets: ['*'],
  exclude: ['machine_failure'],
  falseAlarmRate: 1e-3,
  warmupSamples: 300,
  halfLifeHours: 24,
  // A record per score: the tests below count them. The record interval has a test of its own.
  recordIntervalMs: 0,
  persistIntervalMs: 60_000,
  maxSignalsPerAsset: 64,
  ...c,
});

function openStore(dir: string): RecordStore {
  const s = new RecordStore({ dir });
  stores.push(s);
  return s;
}

function scorer(store: RecordStore | null, c: Partial<AnomalyConfig> = {}, now?: () => number) {
  const records: RiskRecord[] = [];
  const { log, lines } = captureLogger();
  const s = new AnomalyScorer(config(c), store, (r) => records.push(...r), log, now);
  scorers.push(s);
  return { s, records, lines };
}

function readings(asset: string, seed: number, p = 5) {
  const next = correlatedMachine(seed, p);
  let ts = 1_700_000_000_000;
  return (extra: Record<string, number> = {}): Reading => ({ ts: (ts += SECOND), source: 'test', asset, metrics: { ...next(), ...extra } });
}

describe('AnomalyScorer', () => {
  it('emits anomaly risk records after the warm-up, for the watched assets only', async () => {
    const { s, records } = scorer(null, { assets: ['mill-*'] });
    await s.start();
    const mill = readings('mill-1', 1);
    const other = readings('host-a', 2);
    for (let k = 0; k < 400; k++) {
      s.accept(mill({ machine_failure: k % 7 === 0 ? 1 : 0 }));
      s.accept(other());
    }
    expect(records.length).toBeGreaterThan(50);
    expect(records.length).toBeLessThan(400 - 300);
    expect(new Set(records.map((r) => r.asset))).toEqual(new Set(['mill-1']));
    const r = records.at(-1)!;
    expect(r).toMatchObject({ model: ANOMALY_MODEL, modelVersion: ANOMALY_MODEL_VERSION, kind: 'anomaly', asset: 'mill-1', atRisk: expect.any(Boolean) });
    expect(r.threshold).toEqual(expect.any(Number));
    expect(r.readingTs).toBeLessThanOrEqual(r.ts);
    expect(r.drivers).toHaveLength(3);
    // The excluded signal is never modelled, so it is never a driver.
    expect(records.flatMap((x) => x.drivers.map((d) => d.feature))).not.toContain('machine_failure');
    expect(s.stats).toMatchObject({ assets: 1, scoring: 1, warming: 0, scored: records.length });
    expect(s.stats.maxBytesPerAsset).toBeGreaterThan(1000);
    expect(s.stats.maxBytesPerAsset).toBeLessThan(20_000);
  });

  it('says which assets are still warming, and flags an anomaly with its drivers', async () => {
    const { s, records } = scorer(null);
    await s.start();
    const a = readings('a', 3);
    for (let k = 0; k < 100; k++) s.accept(a());
    expect(s.stats).toMatchObject({ assets: 1, warming: 1, scoring: 0 });
    expect(s.assets()[0]).toMatchObject({ asset: 'a', state: 'warming', warmupSamples: 300 });
    for (let k = 0; k < 500; k++) s.accept(a());
    records.length = 0;
    s.accept(a({ s2: 1e4 }));
    expect(records[0]).toMatchObject({ atRisk: true });
    expect(records[0]!.drivers[0]).toMatchObject({ feature: 's2', value: 1e4 });
    expect(s.stats.anomalies).toBeGreaterThanOrEqual(1);
  });

  it('keeps the baseline across a restart: the new scorer scores at once, with the same threshold', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-anomaly-'));
    const store = openStore(dir);
    const first = scorer(store);
    await first.s.start();
    const next = readings('press-7', 4);
    for (let k = 0; k < 800; k++) first.s.accept(next());
    const before = first.records.at(-1)!;
    await first.s.stop();
    store.close();
    stores.length = 0;

    // A new process: a new store handle on the same file, a new scorer.
    const again = openStore(dir);
    expect(JSON.parse(again.getMeta(anomalyMetaKey('press-7'))!)).toMatchObject({ format: 'forewarn-anomaly', readings: 800 });
    // Samples count from when the signals joined: after 20 readings showed they vary.
    const status = JSON.parse(again.getMeta(ANOMALY_STATUS_META_KEY)!) as AnomalyAssetStatus[];
    expect(status).toEqual([expect.objectContaining({ asset: 'press-7', state: 'scoring', samples: 800 - 19 })]);
    const second = scorer(again);
    await second.s.start();
    second.s.accept(next());
    expect(second.records).toHaveLength(1); // no second warm-up
    expect(second.records[0]!.threshold).toBe(before.threshold);
    expect(second.s.stats).toMatchObject({ restored: 1, discarded: 0, scoring: 1 });
  });

  it('discards a corrupt or incompatible baseline with a warning and learns afresh', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-anomaly-'));
    const store = openStore(dir);
    store.setMeta(anomalyMetaKey('a'), '{"format":"forewarn-anomaly","version":1,"n":');
    store.setMeta(anomalyMetaKey('b'), JSON.stringify({ format: 'forewarn-anomaly', version: 99 }));
    const { s, records, lines } = scorer(store);
    await s.start();
    const a = readings('a', 5);
    const b = readings('b', 6);
    for (let k = 0; k < 50; k++) {
      s.accept(a());
      s.accept(b());
    }
    expect(records).toEqual([]);
    expect(s.stats).toMatchObject({ restored: 0, discarded: 2, warming: 2 });
    const warnings = lines.filter((l) => l.code === 'FW_ERR_ANOMALY_STATE');
    expect(warnings.map((l) => l.asset).sort()).toEqual(['a', 'b']);
    expect(warnings[0]!.level).toBe(40);
    // The bad state is replaced by the new baseline at the next save.
    s.persist();
    expect(JSON.parse(store.getMeta(anomalyMetaKey('a'))!)).toMatchObject({ format: 'forewarn-anomaly', version: 1 });
  });

  it('drops a forgotten signal from the score until it reports again', async () => {
    const { s, records } = scorer(null, { warmupSamples: 100 });
    await s.start();
    const a = readings('a', 7);
    for (let k = 0; k < 200; k++) s.accept(a());
    const { s4: _gone, ...rest } = a().metrics;
    s.forget('a', 's4');
    s.accept({ ts: 1_800_000_000_000, source: 'test', asset: 'a', metrics: rest });
    expect(records.at(-1)!.drivers.map((d) => d.feature)).not.toContain('s4');
    expect(s.assets()[0]!.scoredSignals).toBe(4);
  });

  describe('records (recordIntervalMs)', () => {
    /**
     * A scorer whose clock follows its readings (one a second, as on a host sampled at 1 s), and what it recorded
     * with the clock at the time. A flag is unlikely at this false-alarm rate; the tests that need none check it.
     */
    function paced(recordIntervalMs: number, seed = 8) {
      const next = readings('a', seed);
      let clock = 0;
      const out: Array<{ at: number; r: RiskRecord }> = [];
      const { log } = captureLogger();
      const s = new AnomalyScorer(
        config({ warmupSamples: 100, falseAlarmRate: 1e-6, recordIntervalMs }),
        null,
        (rs) => out.push(...rs.map((r) => ({ at: clock, r }))),
        log,
        () => clock,
      );
      scorers.push(s);
      const feed = (extra: Record<string, number> = {}) => {
        const r = next(extra);
        // One second on, or the reading's time when later (the readings' own clock does not see tick()).
        clock = Math.max(r.ts, clock + SECOND);
        s.accept(r);
        return r;
      };
      return { s, out, feed, tick: (ms: number) => (clock += ms) };
    }

    it('records the first score at once, then the highest of each interval when the interval ends', async () => {
      const kept = paced(60_000);
      const every = paced(0); // the same readings, every score recorded: the reference
      await kept.s.start();
      await every.s.start();
      for (let k = 0; k < 500; k++) {
        kept.feed();
        every.feed();
      }
      const scores = every.out.map((x) => x.r);
      expect(scores.length).toBeGreaterThan(300);
      expect(scores.filter((r) => r.atRisk)).toEqual([]);
      expect(kept.s.stats.scored).toBe(scores.length);
      const recs = kept.out;
      expect(kept.s.stats.recorded).toBe(recs.length);
      // The first score, when it was made.
      expect(recs[0]!.r).toEqual(scores[0]);
      expect(recs[0]!.at).toBe(scores[0]!.readingTs);
      // About one a minute after that.
      expect(recs.length).toBeGreaterThanOrEqual(Math.floor((scores.length - 1) / 61));
      expect(recs.length).toBeLessThanOrEqual(Math.ceil(scores.length / 60) + 1);
      for (let i = 1; i < recs.length; i++) {
        const { at, r } = recs[i]!;
        const from = recs[i - 1]!.at;
        // The interval ended with the first reading 60 s or more after the previous record.
        expect(at - from).toBeGreaterThanOrEqual(60_000);
        expect(at - from).toBeLessThan(61_000);
        const inInterval = scores.filter((x) => x.readingTs > from && x.readingTs <= at);
        expect(r.score).toBe(Math.max(...inInterval.map((x) => x.score)));
        expect(inInterval).toContainEqual(r);
      }
    });

    it('records a flagged reading, and the first after the flag, at once', async () => {
      const { s, out, feed } = paced(60_000, 9);
      await s.start();
      for (let k = 0; k < 200; k++) feed();
      const before = out.length;
      const flags = s.stats.anomalies;
      for (let k = 0; k < 5; k++) feed();
      expect(out).toHaveLength(before); // held, not recorded
      const flagged = feed({ s2: 1e4 });
      expect(out).toHaveLength(before + 1);
      expect(out.at(-1)!.r).toMatchObject({ atRisk: true, readingTs: flagged.ts });
      const normal = feed();
      expect(out.at(-1)!.r).toMatchObject({ atRisk: false, readingTs: normal.ts });
      const after = out.length;
      for (let k = 0; k < 5; k++) feed();
      expect(out).toHaveLength(after);
      expect(s.stats.anomalies).toBe(flags + 1);
    });

    it("records the held highest score of an asset that went quiet, on the interval's timer, and at stop", async () => {
      // The scorer's timers run on the process's grid (core/grid.ts): setTimeout against performance.now().
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
      try {
        const { s, out, feed, tick } = paced(60_000, 10);
        await s.start();
        for (let k = 0; k < 200; k++) feed();
        const recorded = out.length;
        expect(recorded).toBeGreaterThan(0);
        const last = feed();
        expect(out).toHaveLength(recorded); // held
        // The asset reports nothing more; the interval ends and the timer records its highest score.
        tick(60_000);
        vi.advanceTimersByTime(60_000);
        expect(out).toHaveLength(recorded + 1);
        expect(out.at(-1)!.r.readingTs).toBeLessThanOrEqual(last.ts);
        // A score held at stop is recorded by stop (the storage keeper's last write follows).
        feed();
        expect(out).toHaveLength(recorded + 1);
        await s.stop();
        expect(out).toHaveLength(recorded + 2);
      } finally {
        vi.useRealTimers();
      }
    });
  });
});
