import { describe, expect, it } from 'vitest';
import {
  MAX_READ_BITS,
  MAX_READ_REGISTERS,
  REGISTER_TYPES,
  isBitTable,
  planReads,
  pollTick,
  splitBatch,
  type PlanSignal,
  type ReadBatch,
  type ReadPlanOptions,
  type RegisterType,
} from '../../../firmware-bridge/src/modbus/read-plan.js';
import { Prng } from '../../../firmware-bridge/src/simulators/prng.js';

const sig = (address: number, count = 1, extra: Partial<PlanSignal> = {}): PlanSignal => ({
  unitId: 1,
  registerType: 'holding',
  address,
  count,
  intervalMs: 1000,
  ...extra,
});
const spans = (batches: ReadBatch[]) => batches.map((b) => [b.address, b.count]);

describe('planReads', () => {
  it("merges adjacent signals into one request, and keeps each signal's offset", () => {
    const plan = planReads([sig(3, 2), sig(0, 2), sig(2, 1)]);
    expect(spans(plan)).toEqual([[0, 5]]);
    expect(plan[0]).toMatchObject({ functionCode: 3, unitId: 1, registerType: 'holding', intervalMs: 1000 });
    expect(plan[0]!.members).toEqual([
      { signal: 1, offset: 0, count: 2 },
      { signal: 2, offset: 2, count: 1 },
      { signal: 0, offset: 3, count: 2 },
    ]);
  });

  it('bridges holes up to maxGap, and no larger', () => {
    const signals = [sig(0), sig(5), sig(20, 2)];
    expect(spans(planReads(signals))).toEqual([
      [0, 1],
      [5, 1],
      [20, 2],
    ]);
    expect(spans(planReads(signals, { maxGapRegisters: 4 }))).toEqual([
      [0, 6],
      [20, 2],
    ]);
    expect(spans(planReads(signals, { maxGapRegisters: 14 }))).toEqual([[0, 22]]);
    // Bits have their own gap setting.
    const coils = [sig(0, 1, { registerType: 'coil' }), sig(40, 1, { registerType: 'coil' })];
    expect(spans(planReads(coils, { maxGapRegisters: 100 }))).toEqual([
      [0, 1],
      [40, 1],
    ]);
    expect(spans(planReads(coils, { maxGapBits: 39 }))).toEqual([[0, 41]]);
  });

  it('never exceeds 125 registers or 2000 bits per request; a value never straddles two requests', () => {
    const regs = Array.from({ length: 200 }, (_, i) => sig(i));
    expect(spans(planReads(regs))).toEqual([
      [0, 125],
      [125, 75],
    ]);
    // A 32-bit value at 124-125 does not fit in 0-124.
    expect(spans(planReads([...Array.from({ length: 124 }, (_, i) => sig(i)), sig(124, 2)]))).toEqual([
      [0, 124],
      [124, 2],
    ]);
    const bits = Array.from({ length: 2500 }, (_, i) => sig(i, 1, { registerType: 'discrete' }));
    const plan = planReads(bits);
    expect(spans(plan)).toEqual([
      [0, MAX_READ_BITS],
      [2000, 500],
    ]);
    expect(plan[0]!.functionCode).toBe(2);
    expect(spans(planReads(regs, { maxRegisters: 50 }))).toEqual([
      [0, 50],
      [50, 50],
      [100, 50],
      [150, 50],
    ]);
  });

  it('groups per unit, per table and per interval, in a stable order', () => {
    const plan = planReads([
      sig(0, 1, { unitId: 2 }),
      sig(1, 1, { unitId: 1, registerType: 'input' }),
      sig(1, 1, { unitId: 1 }),
      sig(0, 1, { unitId: 1 }),
      sig(2, 1, { unitId: 1, intervalMs: 100 }),
      sig(0, 1, { unitId: 1, registerType: 'coil' }),
    ]);
    expect(plan.map((b) => [b.unitId, b.registerType, b.intervalMs, b.address, b.count])).toEqual([
      [1, 'holding', 100, 2, 1],
      [1, 'holding', 1000, 0, 2],
      [1, 'input', 1000, 1, 1],
      [1, 'coil', 1000, 0, 1],
      [2, 'holding', 1000, 0, 1],
    ]);
    expect(plan.map((b) => b.functionCode)).toEqual([3, 3, 4, 1, 3]);
  });

  it('lets overlapping signals share registers (a word and a value inside it)', () => {
    const plan = planReads([sig(10, 2), sig(10, 1), sig(11, 1)]);
    expect(spans(plan)).toEqual([[10, 2]]);
    expect(plan[0]!.members.map((m) => [m.signal, m.offset, m.count])).toEqual([
      [0, 0, 2],
      [1, 0, 1],
      [2, 1, 1],
    ]);
  });

  it('reaches the top of the address space', () => {
    expect(spans(planReads([sig(65534, 2), sig(65533)]))).toEqual([[65533, 3]]);
  });

  it('rejects what the protocol cannot read', () => {
    expect(() => planReads([sig(65535, 2)])).toThrow(/past 65535/);
    expect(() => planReads([sig(-1)])).toThrow(/address/);
    expect(() => planReads([sig(0, 3, { registerType: 'coil' })])).toThrow(/one bit/);
    expect(() => planReads([sig(0, 5)])).toThrow(/count/);
    expect(() => planReads([sig(0, 1, { unitId: 256 })])).toThrow(/unit id/);
    expect(() => planReads([sig(0, 1, { registerType: 'eeprom' as RegisterType })])).toThrow(/register type/);
    expect(() => planReads([sig(0, 1, { intervalMs: 0 })])).toThrow(/intervalMs/);
    expect(() => planReads([], { maxRegisters: 126 })).toThrow(/maxRegisters/);
    expect(() => planReads([], { maxBits: 0 })).toThrow(/maxBits/);
    expect(() => planReads([], { maxGapRegisters: -1 })).toThrow(/maxGapRegisters/);
    expect(planReads([])).toEqual([]);
  });

  it('holds its invariants on 500 random maps', () => {
    const rng = new Prng(7);
    for (let round = 0; round < 500; round++) {
      const n = rng.int(1, 120);
      const signals: PlanSignal[] = Array.from({ length: n }, () => {
        const registerType = REGISTER_TYPES[rng.int(0, 3)]!;
        const count = isBitTable(registerType) ? 1 : [1, 2, 4][rng.int(0, 2)]!;
        return { unitId: rng.int(1, 3), registerType, address: rng.int(0, 600), count, intervalMs: [100, 1000][rng.int(0, 1)]! };
      });
      const options: ReadPlanOptions = {
        maxRegisters: rng.int(4, 125),
        maxBits: rng.int(1, 2000),
        maxGapRegisters: rng.int(0, 10),
        maxGapBits: rng.int(0, 50),
      };
      const plan = planReads(signals, options);
      const covered = new Map<number, number>();
      for (const b of plan) {
        const bits = isBitTable(b.registerType);
        expect(b.count).toBeLessThanOrEqual(bits ? options.maxBits! : options.maxRegisters!);
        let end = b.address;
        const sorted = [...b.members].sort((x, y) => x.offset - y.offset);
        expect(sorted[0]!.offset).toBe(0);
        for (const m of sorted) {
          const s = signals[m.signal]!;
          covered.set(m.signal, (covered.get(m.signal) ?? 0) + 1);
          expect([s.unitId, s.registerType, s.intervalMs, s.address, s.count]).toEqual([b.unitId, b.registerType, b.intervalMs, b.address + m.offset, m.count]);
          // No hole inside a request is larger than the gap allowed.
          expect(s.address - end).toBeLessThanOrEqual(bits ? options.maxGapBits! : options.maxGapRegisters!);
          end = Math.max(end, s.address + s.count);
        }
        expect(end).toBe(b.address + b.count);
      }
      expect(covered.size).toBe(n);
      expect([...covered.values()].every((c) => c === 1)).toBe(true);
      expect(planReads(signals, options)).toEqual(plan); // deterministic
    }
  });
});

describe('splitBatch', () => {
  it("gives one request per signal, at the signal's own address", () => {
    const [batch] = planReads([sig(0, 2), sig(10, 1), sig(11, 4)], { maxGapRegisters: 10 });
    expect(spans([batch!])).toEqual([[0, 15]]);
    const parts = splitBatch(batch!);
    expect(spans(parts)).toEqual([
      [0, 2],
      [10, 1],
      [11, 4],
    ]);
    expect(parts.map((p) => p.members)).toEqual([
      [{ signal: 0, offset: 0, count: 2 }],
      [{ signal: 1, offset: 0, count: 1 }],
      [{ signal: 2, offset: 0, count: 4 }],
    ]);
    expect(parts.every((p) => p.functionCode === 3 && p.intervalMs === 1000)).toBe(true);
    expect(MAX_READ_REGISTERS).toBe(125);
  });
});

describe('pollTick', () => {
  it('is the common divisor of the intervals, never below 50 ms unless an interval is', () => {
    expect(pollTick([1000])).toBe(1000);
    expect(pollTick([1000, 5000])).toBe(1000);
    expect(pollTick([200, 300])).toBe(100);
    expect(pollTick([1000, 1001])).toBe(50);
    expect(pollTick([20, 30])).toBe(20);
    expect(pollTick([10])).toBe(10);
    expect(() => pollTick([])).toThrow(RangeError);
  });
});
