/**
 * Groups the signals of a device map into as few Modbus read requests as the protocol allows.
 *
 * Signals are grouped per (unit id, register type, poll interval): one request reads one table of one unit, and a
 * batch is polled at one interval. Within a group, signals are sorted by address and merged into a batch while the
 * batch stays within the protocol's maximum span (125 registers for function codes 3/4, 2000 bits for 1/2) and the
 * hole between the batch so far and the next signal is at most `maxGap` registers (bits). Bridging a small hole
 * reads a few unused registers but saves a round trip; a device that refuses to read its unmapped registers
 * answers exception 2 (illegal data address), and the source then splits that batch (see agent/src/sources/modbus/modbus-source.ts).
 *
 * Overlapping signals (two readings of the same registers, e.g. a status word and one of its bits) share a batch.
 */

export type RegisterType = 'holding' | 'input' | 'coil' | 'discrete';
export const REGISTER_TYPES: readonly RegisterType[] = ['holding', 'input', 'coil', 'discrete'];

/** Read function code of each table. */
export const READ_FUNCTION_CODE: Readonly<Record<RegisterType, 1 | 2 | 3 | 4>> = { coil: 1, discrete: 2, holding: 3, input: 4 };

/** Protocol limits of one read request (Modbus Application Protocol v1.1b3, 6.1–6.4). */
export const MAX_READ_REGISTERS = 125;
export const MAX_READ_BITS = 2000;

export function isBitTable(type: RegisterType): boolean {
  return type === 'coil' || type === 'discrete';
}

/** What the planner needs to know about one signal. */
export interface PlanSignal {
  unitId: number;
  registerType: RegisterType;
  /** 0-based protocol address of the first register (bit). */
  address: number;
  /** Registers (bits) the signal occupies: 1, 2 or 4 for registers, 1 for bits. */
  count: number;
  intervalMs: number;
}

export interface ReadPlanOptions {
  /** Most registers one request may read (default and protocol maximum 125). */
  maxRegisters?: number;
  /** Most bits one request may read (default and protocol maximum 2000). */
  maxBits?: number;
  /** Largest hole of unused registers bridged inside one request (default 0: only adjacent signals merge). */
  maxGapRegisters?: number;
  /** Largest hole of unused bits bridged inside one request (default 0). */
  maxGapBits?: number;
}

export interface BatchMember {
  /** Index of the signal in the list given to planReads. */
  signal: number;
  /** Position of the signal's first register (bit) inside the batch. */
  offset: number;
  count: number;
}

export interface ReadBatch {
  unitId: number;
  registerType: RegisterType;
  functionCode: 1 | 2 | 3 | 4;
  address: number;
  /** Registers (bits) the request reads. */
  count: number;
  intervalMs: number;
  members: BatchMember[];
}

function limit(name: string, v: number | undefined, dflt: number, max: number, min = 1): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${v}`);
  return v;
}

/** Throws RangeError for a signal the protocol cannot read. */
export function checkPlanSignal(s: PlanSignal, where = 'signal'): void {
  if (!Number.isInteger(s.unitId) || s.unitId < 0 || s.unitId > 255) throw new RangeError(`${where}: unit id must be 0..255, got ${s.unitId}`);
  if (!REGISTER_TYPES.includes(s.registerType)) throw new RangeError(`${where}: unknown register type ${String(s.registerType)}`);
  if (!Number.isInteger(s.address) || s.address < 0 || s.address > 0xffff) throw new RangeError(`${where}: address must be 0..65535, got ${s.address}`);
  if (!Number.isInteger(s.count) || s.count < 1 || s.count > 4) throw new RangeError(`${where}: count must be 1..4, got ${s.count}`);
  if (isBitTable(s.registerType) && s.count !== 1) throw new RangeError(`${where}: a ${s.registerType} is one bit`);
  if (s.address + s.count > 0x10000) throw new RangeError(`${where}: registers ${s.address}..${s.address + s.count - 1} run past 65535`);
  if (!(Number.isFinite(s.intervalMs) && s.intervalMs > 0)) throw new RangeError(`${where}: intervalMs must be positive, got ${s.intervalMs}`);
}

/**
 * The batched reads for a device map. Deterministic: batches come ordered by unit, table, interval, address, and
 * every signal is in exactly one batch.
 */
export function planReads(signals: readonly PlanSignal[], options: ReadPlanOptions = {}): ReadBatch[] {
  const maxRegisters = limit('maxRegisters', options.maxRegisters, MAX_READ_REGISTERS, MAX_READ_REGISTERS);
  const maxBits = limit('maxBits', options.maxBits, MAX_READ_BITS, MAX_READ_BITS);
  const gapRegisters = limit('maxGapRegisters', options.maxGapRegisters, 0, MAX_READ_REGISTERS, 0);
  const gapBits = limit('maxGapBits', options.maxGapBits, 0, MAX_READ_BITS, 0);
  signals.forEach((s, i) => checkPlanSignal(s, `signal ${i}`));

  const groups = new Map<string, number[]>();
  signals.forEach((s, i) => {
    const key = `${s.unitId}/${s.registerType}/${s.intervalMs}`;
    const g = groups.get(key);
    if (g) g.push(i);
    else groups.set(key, [i]);
  });

  const batches: ReadBatch[] = [];
  for (const indices of groups.values()) {
    const first = signals[indices[0]!]!;
    const bits = isBitTable(first.registerType);
    const maxSpan = bits ? maxBits : maxRegisters;
    const maxGap = bits ? gapBits : gapRegisters;
    const sorted = [...indices].sort((a, b) => signals[a]!.address - signals[b]!.address || signals[b]!.count - signals[a]!.count || a - b);
    let current: ReadBatch | null = null;
    let end = 0; // one past the last register of the current batch
    for (const i of sorted) {
      const s = signals[i]!;
      const sEnd = s.address + s.count;
      if (current && s.address - end <= maxGap && Math.max(end, sEnd) - current.address <= maxSpan) {
        end = Math.max(end, sEnd);
        current.count = end - current.address;
        current.members.push({ signal: i, offset: s.address - current.address, count: s.count });
        continue;
      }
      current = {
        unitId: s.unitId,
        registerType: s.registerType,
        functionCode: READ_FUNCTION_CODE[s.registerType],
        address: s.address,
        count: s.count,
        intervalMs: s.intervalMs,
        members: [{ signal: i, offset: 0, count: s.count }],
      };
      end = sEnd;
      batches.push(current);
    }
  }
  const tableOrder = (t: RegisterType): number => REGISTER_TYPES.indexOf(t);
  return batches.sort(
    (a, b) => a.unitId - b.unitId || tableOrder(a.registerType) - tableOrder(b.registerType) || a.intervalMs - b.intervalMs || a.address - b.address,
  );
}

/** One batch per member: what a batch falls back to when the device refuses to read the holes between signals. */
export function splitBatch(batch: ReadBatch): ReadBatch[] {
  return batch.members.map((m) => ({
    ...batch,
    address: batch.address + m.offset,
    count: m.count,
    members: [{ signal: m.signal, offset: 0, count: m.count }],
  }));
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * The scheduler tick that serves every poll interval (whole ms): their greatest common divisor, or, when that is
 * under 50 ms, the smaller of 50 ms and the shortest interval (intervals are then kept to within one tick).
 */
export function pollTick(intervals: readonly number[]): number {
  if (!intervals.length) throw new RangeError('no intervals');
  const whole = intervals.map((i) => Math.max(1, Math.round(i)));
  const g = whole.reduce((a, b) => gcd(a, b));
  return g >= 50 ? g : Math.min(50, Math.min(...whole));
}
