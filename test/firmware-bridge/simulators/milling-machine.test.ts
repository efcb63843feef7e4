import { describe, expect, it } from 'vitest';
import {
  MillingMachineSimulator,
  PRODUCT_TYPES,
  millingSignals,
  type MillingMachineOptions,
  type MillingSample,
  type ProductType,
} from '../../../firmware-bridge/src/simulators/milling-machine.js';
import { Prng } from '../../../firmware-bridge/src/simulators/prng.js';

/**
 * Statistics of the real data, computed once (numpy) from ai4i2020_train.csv, 8,000 rows of AI4I 2020, and
 * hard-coded here. The test never reads the data.
 * sd = sample standard deviation; "lag-1 step" = sd of the change between rows whose UDI differs by 1;
 * "lag-100 step" = the same for UDI 100 apart.
 */
const AI4I = {
  typeShare: { L: 0.603, M: 0.2966, H: 0.1004 },
  air: { mean: 300.017, sd: 2.001, lag1Step: 0.0685, lag100Step: 0.5255 },
  process: { mean: 310.013, sd: 1.484 },
  /** process − air temperature */
  diff: { mean: 9.996, sd: 1.002, lag1Step: 0.0715, lag100Step: 0.3894 },
  corrAirDiff: -0.699,
  rpm: { mean: 1538.59, sd: 180.33 },
  torque: { mean: 39.998, sd: 9.959 },
  corrRpmTorque: -0.8749,
  power: { mean: 6279.9, sd: 1066.2 },
  wear: { mean: 107.56, sd: 63.83 },
  /** `Machine failure` column: 271 of 8,000. */
  failureRate: 0.033875,
  /** Rows flagged per mode (TWF 37, HDF 90, PWF 74, OSF 83 of 8,000). */
  modeRate: { twf: 0.004625, hdf: 0.01125, pwf: 0.00925, osf: 0.010375 },
} as const;

// The published rules, written out again here rather than imported, so a wrong constant in the simulator fails.
const WEAR_ADDED: Record<ProductType, number> = { L: 2, M: 3, H: 5 };
const OSF_LIMIT: Record<ProductType, number> = { L: 11_000, M: 12_000, H: 13_000 };
const tenths = (x: number): number => Math.round(x * 10);
/** HDF: process − air < 8.6 K (compared exactly, in tenths of a kelvin) and speed < 1380 rpm. */
const hdfRule = (s: MillingSample): boolean => tenths(s.processTemperatureK) - tenths(s.airTemperatureK) < 86 && s.rotationalSpeedRpm < 1380;
const powerW = (s: MillingSample): number => s.torqueNm * s.rotationalSpeedRpm * ((2 * Math.PI) / 60);
const pwfRule = (s: MillingSample): boolean => powerW(s) < 3500 || powerW(s) > 9000;
const osfRule = (s: MillingSample): boolean => s.toolWearMin * s.torqueNm > OSF_LIMIT[s.productType];

function run(n: number, options: MillingMachineOptions = {}): MillingSample[] {
  const sim = new MillingMachineSimulator(options);
  const out: MillingSample[] = [];
  for (let i = 0; i < n; i++) out.push(sim.next());
  return out;
}

function mean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}
function sd(xs: readonly number[]): number {
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) ** 2;
  return Math.sqrt(s / (xs.length - 1));
}
function corr(xs: readonly number[], ys: readonly number[]): number {
  const mx = mean(xs);
  const my = mean(ys);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < xs.length; i++) {
    const dx = xs[i]! - mx;
    const dy = ys[i]! - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxy / Math.sqrt(sxx * syy);
}
/** Root-mean-square change between values `lag` apart. */
function lagStep(xs: readonly number[], lag: number): number {
  let s = 0;
  for (let i = lag; i < xs.length; i++) s += (xs[i]! - xs[i - lag]!) ** 2;
  return Math.sqrt(s / (xs.length - lag));
}
const rate = (xs: readonly MillingSample[], pred: (s: MillingSample) => boolean): number => xs.filter(pred).length / xs.length;
const diffK = (s: MillingSample): number => (tenths(s.processTemperatureK) - tenths(s.airTemperatureK)) / 10;

/** Asserts `ok` for every sample, reporting the first few that fail (one expect per sample would be slow). */
function expectAll(xs: readonly MillingSample[], label: string, ok: (s: MillingSample) => boolean): void {
  const bad = xs.filter((s) => !ok(s));
  expect(bad.slice(0, 3), `${label}: ${bad.length} of ${xs.length} samples violate it`).toEqual([]);
}

/** Tolerance band: |actual − target| <= tol, with a readable failure message. */
function expectNear(label: string, actual: number, target: number, tol: number): void {
  expect(Math.abs(actual - target), `${label}: ${actual} vs AI4I ${target} ± ${tol}`).toBeLessThanOrEqual(tol);
}

const N = 20_000;
const base = run(N, { seed: 1 });
/**
 * The temperatures are slow random walks (calibrated correlation time ≈ 2,500 processes for the air, ≈ 860 for the
 * process–air difference), so 20,000 processes hold only a handful of independent temperature "episodes": across
 * seeds, the 20,000-process mean air temperature has sd ≈ 0.8 K and the heat-dissipation failure rate ranges from
 * 0 to 2.4 %. Temperature statistics are therefore checked (a) over 20,000 processes with the walks sped up 50×
 * (`temperatureTimeScale: 0.02`, which leaves their stationary distribution unchanged), and (b) over 1,000,000
 * processes at the default, calibrated time scale.
 */
const fastThermal = run(N, { seed: 1, temperatureTimeScale: 0.02 });

describe('MillingMachineSimulator: determinism', () => {
  it('replays the same sequence for the same seed and options', () => {
    const a = run(3000, { seed: 42 });
    const b = run(3000, { seed: 42 });
    expect(b).toEqual(a);
    expect(run(500)).toEqual(run(500, { seed: 1 })); // default seed is 1
  });

  it('gives different sequences for different seeds', () => {
    const a = run(200, { seed: 1 });
    const b = run(200, { seed: 2 });
    const same = a.filter((s, i) => s.torqueNm === b[i]!.torqueNm && s.rotationalSpeedRpm === b[i]!.rotationalSpeedRpm);
    expect(same.length).toBeLessThan(5);
    expect(a.map((s) => s.airTemperatureK)).not.toEqual(b.map((s) => s.airTemperatureK));
    expect(a.map((s) => s.productType)).not.toEqual(b.map((s) => s.productType));
  });

  it('keeps the other parts of the model unchanged when one option changes', () => {
    const a = run(2000, { seed: 9 });
    const b = run(2000, { seed: 9, wearMultiplier: 10 });
    expect(b.map((s) => [s.productType, s.torqueNm, s.rotationalSpeedRpm, s.airTemperatureK, s.processTemperatureK])).toEqual(
      a.map((s) => [s.productType, s.torqueNm, s.rotationalSpeedRpm, s.airTemperatureK, s.processTemperatureK]),
    );
    expect(b.map((s) => s.toolWearMin)).not.toEqual(a.map((s) => s.toolWearMin));
  });

  it('numbers cycles from 0 and advances simulated time by about processSeconds per process', () => {
    const xs = run(N, { seed: 3, processSeconds: 30 });
    expect(xs.every((s, i) => s.cycle === i)).toBe(true);
    expect(xs.every((s, i) => s.simSeconds > (i === 0 ? 0 : xs[i - 1]!.simSeconds))).toBe(true);
    expectNear('mean process duration [s]', xs[N - 1]!.simSeconds / N, 30, 0.6);
    // Duration is proportional to the wear a process adds (cutting time): H takes 5/2 of an L process.
    const durations = xs.map((s, i) => s.simSeconds - (i === 0 ? 0 : xs[i - 1]!.simSeconds));
    const durL = durations.find((_, i) => xs[i]!.productType === 'L')!;
    const durH = durations.find((_, i) => xs[i]!.productType === 'H')!;
    expect(durH / durL).toBeCloseTo(2.5, 9);
  });
});

describe('MillingMachineSimulator: emitted values', () => {
  it('rounds like the data set and keeps codes consistent', () => {
    const all = [...base, ...fastThermal];
    const onTenth = (x: number): boolean => Math.abs(x * 10 - tenths(x)) < 1e-6;
    expectAll(all, 'air temperature in 0.1 K', (s) => onTenth(s.airTemperatureK));
    expectAll(all, 'process temperature in 0.1 K', (s) => onTenth(s.processTemperatureK));
    expectAll(all, 'torque in 0.1 N·m', (s) => onTenth(s.torqueNm));
    expectAll(all, 'whole rpm', (s) => Number.isInteger(s.rotationalSpeedRpm));
    expectAll(all, 'whole minutes of wear', (s) => Number.isInteger(s.toolWearMin));
    expectAll(all, 'type code', (s) => PRODUCT_TYPES[s.productTypeCode] === s.productType);
  });

  it('never emits a non-positive torque and keeps the process–air difference plausible', () => {
    const all = [...base, ...fastThermal];
    expectAll(all, 'torque > 0', (s) => s.torqueNm > 0);
    expectAll(all, 'rpm > 0', (s) => s.rotationalSpeedRpm > 0);
    // AI4I: 7.6 … 12.1 K; N(10, 1) would need a 5σ excursion to leave 5 … 15 K.
    expectAll(all, 'process − air in [5, 15] K', (s) => diffK(s) >= 5 && diffK(s) <= 15);
    expectAll(all, 'air in (290, 310) K', (s) => s.airTemperatureK > 290 && s.airTemperatureK < 310);
  });

  it('maps a sample onto the telemetry signal names', () => {
    const s = base[7]!;
    expect(millingSignals(s)).toEqual({
      product_type: s.productTypeCode,
      air_temperature: s.airTemperatureK,
      process_temperature: s.processTemperatureK,
      rotational_speed: s.rotationalSpeedRpm,
      torque: s.torqueNm,
      tool_wear: s.toolWearMin,
    });
  });
});

describe('MillingMachineSimulator: failure rules hold exactly on the emitted values', () => {
  // The default stream plus streams that exercise HDF heavily (fast walks; degraded heat dissipation) and OSF
  // (worn tools allowed to run to the published 240 min).
  const samples = [
    ...base,
    ...fastThermal,
    ...run(N, { seed: 5, heatDissipationLossKPerHour: 0.05, temperatureTimeScale: 0.2 }),
    ...run(N, { seed: 6, toolLifeMin: [200, 240] }),
  ];

  it('flags HDF, PWF and OSF if and only if their conditions hold', () => {
    expectAll(samples, 'HDF flag == HDF rule', (s) => s.modes.hdf === hdfRule(s));
    expectAll(samples, 'PWF flag == PWF rule', (s) => s.modes.pwf === pwfRule(s));
    expectAll(samples, 'OSF flag == OSF rule', (s) => s.modes.osf === osfRule(s));
    expectAll(samples, 'failed == any mode', (s) => s.failed === (s.modes.twf || s.modes.hdf || s.modes.pwf || s.modes.osf || s.modes.rnf));
    expectAll(samples, 'TWF implies a tool change', (s) => !s.modes.twf || s.toolReplaced);
    // Both outcomes of every rule occur, so the check above is not vacuous.
    for (const rule of [hdfRule, pwfRule, osfRule]) {
      expect(samples.filter(rule).length).toBeGreaterThan(100);
    }
    expect(samples.filter((s) => powerW(s) < 3500).length).toBeGreaterThan(20);
    expect(samples.filter((s) => powerW(s) > 9000).length).toBeGreaterThan(20);
    expect(samples.filter((s) => s.modes.rnf).length).toBeGreaterThan(20);
  });

  it('treats a difference of exactly 8.6 K as no HDF (the rule is strict)', () => {
    const boundary = samples.filter((s) => tenths(s.processTemperatureK) - tenths(s.airTemperatureK) === 86 && s.rotationalSpeedRpm < 1380);
    expect(boundary.length).toBeGreaterThan(10);
    expectAll(boundary, 'no HDF at exactly 8.6 K', (s) => !s.modes.hdf);
    const justBelow = samples.filter((s) => tenths(s.processTemperatureK) - tenths(s.airTemperatureK) === 85 && s.rotationalSpeedRpm < 1380);
    expect(justBelow.length).toBeGreaterThan(10);
    expectAll(justBelow, 'HDF at 8.5 K', (s) => s.modes.hdf);
  });

  it('lets the machine carry on with the same tool after a non-tool failure', () => {
    let checked = 0;
    for (let i = 0; i + 1 < base.length; i++) {
      const s = base[i]!;
      if (s.failed && !s.toolReplaced) {
        expect(base[i + 1]!.toolWearMin).toBe(s.toolWearMin + WEAR_ADDED[s.productType]);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(200);
  });
});

describe('MillingMachineSimulator: tool wear', () => {
  function checkWear(xs: readonly MillingSample[], added: Record<ProductType, number>, life: [number, number]): number {
    expect(xs[0]!.toolWearMin).toBe(0);
    let replacements = 0;
    for (let i = 0; i + 1 < xs.length; i++) {
      const s = xs[i]!;
      const next = xs[i + 1]!;
      if (s.toolReplaced) {
        replacements++;
        expect(s.toolWearMin, `replaced at ${s.toolWearMin} min (cycle ${s.cycle})`).toBeGreaterThanOrEqual(life[0]);
        expect(s.toolWearMin, `replaced at ${s.toolWearMin} min (cycle ${s.cycle})`).toBeLessThanOrEqual(life[1]);
        expect(next.toolWearMin).toBe(0);
      } else {
        expect(next.toolWearMin).toBe(s.toolWearMin + added[s.productType]);
      }
    }
    return replacements;
  }

  it('adds 2/3/5 min per L/M/H process and replaces the tool between 200 and 240 min', () => {
    const replacements = checkWear(base, WEAR_ADDED, [200, 240]);
    // ≈ 216 min / 2.6 min per process ≈ 84 processes per tool.
    expect(replacements).toBeGreaterThan(N / 100);
    expect(replacements).toBeLessThan(N / 70);
    const published = run(N, { seed: 2, toolLifeMin: [200, 240] });
    checkWear(published, WEAR_ADDED, [200, 240]);
    const ends = published.filter((s) => s.toolReplaced).map((s) => s.toolWearMin);
    expect(Math.min(...ends)).toBeLessThan(205);
    expect(Math.max(...ends)).toBeGreaterThan(235);
  });

  it('ends a tool in a failure (TWF) about 51 times in 120, otherwise replaces it on schedule', () => {
    const ends = run(200_000, { seed: 4 }).filter((s) => s.toolReplaced);
    const share = ends.filter((s) => s.modes.twf).length / ends.length;
    expectNear('TWF share of tool ends', share, 51 / 120, 0.05);
    // AI4I: the tool in use when the machine changes it has worn 216.0 min on average (sd 9.9).
    expectNear('mean wear at tool change', mean(ends.map((s) => s.toolWearMin)), 216.0, 3);
  });

  it('scales wear with wearMultiplier and starts from initialToolWearMin', () => {
    const fast = run(2000, { seed: 8, wearMultiplier: 10 });
    // One process adds more than the 30 min width of the default tool life here, so a tool may end up to one
    // process (< 50 min) past 230 min, never before 200 min.
    checkWear(fast, { L: 20, M: 30, H: 50 }, [200, 279]);
    expect(fast.filter((s) => s.toolReplaced).length).toBeGreaterThan(150);
    const worn = run(3, { seed: 8, initialToolWearMin: 180 });
    expect(worn[0]!.toolWearMin).toBe(180);
    expect(worn[1]!.toolWearMin).toBe(180 + WEAR_ADDED[worn[0]!.productType]);
  });
});

describe('MillingMachineSimulator: statistically like AI4I 2020', () => {
  it('matches the product mix, load, speed and wear over 20,000 processes', () => {
    for (const t of PRODUCT_TYPES) {
      expectNear(
        `share of ${t}`,
        rate(base, (s) => s.productType === t),
        AI4I.typeShare[t],
        0.015,
      );
    }
    const rpm = base.map((s) => s.rotationalSpeedRpm);
    const tq = base.map((s) => s.torqueNm);
    expectNear('torque mean', mean(tq), AI4I.torque.mean, 0.4);
    expectNear('torque sd', sd(tq), AI4I.torque.sd, 0.3);
    expectNear('rpm mean', mean(rpm), AI4I.rpm.mean, 8);
    expectNear('rpm sd', sd(rpm), AI4I.rpm.sd, 8);
    expectNear('corr(rpm, torque)', corr(rpm, tq), AI4I.corrRpmTorque, 0.01);
    const power = base.map(powerW);
    expectNear('power mean', mean(power), AI4I.power.mean, 60);
    expectNear('power sd', sd(power), AI4I.power.sd, 50);
    const wear = base.map((s) => s.toolWearMin);
    expectNear('wear mean', mean(wear), AI4I.wear.mean, 4);
    expectNear('wear sd', sd(wear), AI4I.wear.sd, 3);
  });

  it('matches the rates of the failure modes that do not depend on temperature', () => {
    // AI4I counts are small (37–83 per mode), so the bands are about ±40 %.
    expectNear(
      'TWF rate',
      rate(base, (s) => s.modes.twf),
      AI4I.modeRate.twf,
      0.002,
    );
    expectNear(
      'PWF rate',
      rate(base, (s) => s.modes.pwf),
      AI4I.modeRate.pwf,
      0.0035,
    );
    expectNear(
      'OSF rate',
      rate(base, (s) => s.modes.osf),
      AI4I.modeRate.osf,
      0.004,
    );
    expectNear(
      'RNF rate',
      rate(base, (s) => s.modes.rnf),
      0.001,
      0.0007,
    ); // published 0.1 %
  });

  it('matches the temperature distributions and the overall failure rate (walks sped up, 20,000 processes)', () => {
    const air = fastThermal.map((s) => s.airTemperatureK);
    const proc = fastThermal.map((s) => s.processTemperatureK);
    const diff = fastThermal.map(diffK);
    expectNear('air mean', mean(air), AI4I.air.mean, 0.5);
    expectNear('air sd', sd(air), AI4I.air.sd, 0.25);
    expectNear('process mean', mean(proc), AI4I.process.mean, 0.4);
    expectNear('process sd', sd(proc), AI4I.process.sd, 0.2);
    expectNear('difference mean', mean(diff), AI4I.diff.mean, 0.2);
    expectNear('difference sd', sd(diff), AI4I.diff.sd, 0.1);
    expectNear('corr(air, difference)', corr(air, diff), AI4I.corrAirDiff, 0.08);
    expectNear(
      'HDF rate',
      rate(fastThermal, (s) => s.modes.hdf),
      AI4I.modeRate.hdf,
      0.005,
    );
    expectNear(
      'failure rate',
      rate(fastThermal, (s) => s.failed),
      AI4I.failureRate,
      0.007,
    );
  });

  it('matches the temperature walk steps of the data at the default time scale (20,000 processes)', () => {
    const air = base.map((s) => s.airTemperatureK);
    const diff = base.map(diffK);
    expectNear('air lag-1 step', lagStep(air, 1), AI4I.air.lag1Step, 0.007);
    expectNear('difference lag-1 step', lagStep(diff, 1), AI4I.diff.lag1Step, 0.007);
    expectNear('air lag-100 step', lagStep(air, 100), AI4I.air.lag100Step, 0.12);
    expectNear('difference lag-100 step', lagStep(diff, 100), AI4I.diff.lag100Step, 0.09);
  });

  it('matches the temperature distributions and the failure rates over 1,000,000 processes at the default time scale', () => {
    const sim = new MillingMachineSimulator({ seed: 11 });
    const n = 1_000_000;
    // Running sums (x, x²) rather than arrays of a million samples.
    const acc = { air: [0, 0], proc: [0, 0], diff: [0, 0] };
    const add = (k: keyof typeof acc, x: number): void => {
      acc[k][0]! += x;
      acc[k][1]! += x * x;
    };
    let fails = 0;
    let hdf = 0;
    let minDiff = Infinity;
    let maxDiff = -Infinity;
    for (let i = 0; i < n; i++) {
      const s = sim.next();
      const d = diffK(s);
      add('air', s.airTemperatureK);
      add('proc', s.processTemperatureK);
      add('diff', d);
      if (s.failed) fails++;
      if (s.modes.hdf) hdf++;
      minDiff = Math.min(minDiff, d);
      maxDiff = Math.max(maxDiff, d);
    }
    const m = (k: keyof typeof acc): number => acc[k][0]! / n;
    const v = (k: keyof typeof acc): number => Math.sqrt(acc[k][1]! / n - m(k) ** 2);
    expectNear('air mean', m('air'), AI4I.air.mean, 0.35);
    expectNear('air sd', v('air'), AI4I.air.sd, 0.3);
    expectNear('process mean', m('proc'), AI4I.process.mean, 0.3);
    expectNear('process sd', v('proc'), AI4I.process.sd, 0.2);
    expectNear('difference mean', m('diff'), AI4I.diff.mean, 0.2);
    expectNear('difference sd', v('diff'), AI4I.diff.sd, 0.12);
    expectNear('HDF rate', hdf / n, AI4I.modeRate.hdf, 0.004);
    expectNear('failure rate', fails / n, AI4I.failureRate, 0.004);
    expect(minDiff).toBeGreaterThan(4);
    expect(maxDiff).toBeLessThan(16);
  });
});

describe('MillingMachineSimulator: options', () => {
  it('makes heat-dissipation failures more frequent as heat dissipation degrades', () => {
    // 0.5 K per simulated hour at 60 s per process: the full 8 K loss after ≈ 16 h ≈ 960 processes.
    const opts = { seed: 12, temperatureTimeScale: 0.05 };
    const healthy = run(6000, opts);
    const degraded = run(6000, { ...opts, heatDissipationLossKPerHour: 0.5 });
    expect(degraded[0]).toEqual(healthy[0]); // no loss yet at t = 0
    for (let i = 0; i < healthy.length; i++) {
      const h = healthy[i]!;
      const d = degraded[i]!;
      // Only the process temperature moves, and only downwards (it never drops below the air temperature).
      expect(d.airTemperatureK).toBe(h.airTemperatureK);
      expect(d.rotationalSpeedRpm).toBe(h.rotationalSpeedRpm);
      expect(d.processTemperatureK).toBeLessThanOrEqual(h.processTemperatureK);
      expect(d.processTemperatureK).toBeGreaterThanOrEqual(d.airTemperatureK);
      if (h.modes.hdf) expect(d.modes.hdf).toBe(true);
    }
    const late = (xs: MillingSample[]): MillingSample[] => xs.slice(3000);
    expectNear('late difference loss [K]', mean(late(healthy).map(diffK)) - mean(late(degraded).map(diffK)), 8, 0.1);
    expect(rate(late(healthy), (s) => s.modes.hdf)).toBeLessThan(0.03);
    // With the difference ≈ 2 K, nearly every process below 1380 rpm (≈ 13.5 % of them) is an HDF.
    expect(rate(late(degraded), (s) => s.modes.hdf)).toBeGreaterThan(0.1);
  });

  it('uses the product mix it is given', () => {
    const xs = run(N, { seed: 13, productMix: { L: 0.5, M: 0.3, H: 0.2 } });
    expectNear(
      'share of H',
      rate(xs, (s) => s.productType === 'H'),
      0.2,
      0.015,
    );
    expect(run(100, { productMix: { L: 0, M: 0, H: 1 } }).every((s) => s.productType === 'H')).toBe(true);
  });

  it('rejects nonsensical options', () => {
    expect(() => new MillingMachineSimulator({ processSeconds: 0 })).toThrow(RangeError);
    expect(() => new MillingMachineSimulator({ toolFailureShare: 1.5 })).toThrow(RangeError);
    expect(() => new MillingMachineSimulator({ toolLifeMin: [240, 200] })).toThrow(RangeError);
    expect(() => new MillingMachineSimulator({ productMix: { L: 0, M: 0, H: 0 } })).toThrow(RangeError);
    expect(() => new MillingMachineSimulator({ seed: Number.NaN })).toThrow(RangeError);
  });
});

describe('Prng', () => {
  it('is deterministic, uniform in [0, 1) and gives standard normals', () => {
    const a = new Prng(123);
    const b = new Prng(123);
    const u: number[] = [];
    const z: number[] = [];
    let mismatches = 0;
    for (let i = 0; i < 100_000; i++) {
      const x = a.next();
      if (x !== b.next()) mismatches++;
      u.push(x);
      z.push(a.normal());
      if (z[z.length - 1] !== b.normal()) mismatches++;
    }
    expect(mismatches).toBe(0);
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    expectNear('uniform mean', mean(u), 0.5, 0.005);
    expectNear('uniform sd', sd(u), Math.sqrt(1 / 12), 0.003);
    expectNear('normal mean', mean(z), 0, 0.015);
    expectNear('normal sd', sd(z), 1, 0.015);
    expectNear('corr of successive uniforms', corr(u.slice(1), u.slice(0, -1)), 0, 0.015);
    const ints = Array.from({ length: 10_000 }, () => a.int(200, 240));
    expect(Math.min(...ints)).toBe(200);
    expect(Math.max(...ints)).toBe(240);
    expect(Prng.derive(1, 'x').next()).not.toBe(Prng.derive(1, 'y').next());
  });
});
