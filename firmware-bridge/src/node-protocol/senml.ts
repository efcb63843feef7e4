/**
 * SenML (RFC 8428) in its CBOR representation (§6: integer labels), as the node protocol carries it:
 * encoding a pack, resolving one (base fields, relative times) into plain records, and the node's health
 * record, which is a SenML pack with four well-known names.
 */
import { type CborValue, DecimalFraction } from './cbor.js';

/** RFC 8428 §6, Table 4. */
export const SENML_LABEL = {
  bver: -1,
  bn: -2,
  bt: -3,
  bu: -4,
  bv: -5,
  bs: -6,
  n: 0,
  u: 1,
  v: 2,
  vs: 3,
  vb: 4,
  s: 5,
  t: 6,
  ut: 7,
  vd: 8,
} as const;
type Label = keyof typeof SENML_LABEL;

/**
 * Deterministic key order (RFC 8949 §4.2.1: bytewise order of the encoded keys, so 0…23 before −1…−24).
 * The C encoder writes the same order, which makes the two encoders' output comparable byte for byte.
 */
const KEY_ORDER: readonly Label[] = ['n', 'u', 'v', 'vs', 'vb', 's', 't', 'ut', 'vd', 'bver', 'bn', 'bt', 'bu', 'bv', 'bs'];

/** SenML times below 2^28 s are relative to the time of reading the pack (RFC 8428 §4.5.3). */
export const SENML_RELATIVE_TIME_LIMIT = 2 ** 28;

/** The SenML version this code implements (RFC 8428). Packs with a higher `bver` are rejected. */
export const SENML_VERSION = 10;

export type SenmlNumber = number | DecimalFraction;

/** A record as written, before resolution. Numbers may be decimal fractions (what a float-less MCU sends). */
export interface SenmlInputRecord {
  bver?: number;
  bn?: string;
  bt?: SenmlNumber;
  bu?: string;
  bv?: SenmlNumber;
  bs?: SenmlNumber;
  n?: string;
  u?: string;
  v?: SenmlNumber;
  vs?: string;
  vb?: boolean;
  vd?: Uint8Array;
  s?: SenmlNumber;
  t?: SenmlNumber;
  ut?: SenmlNumber;
}

/** A resolved record: full name, absolute time in seconds since the Unix epoch, one value. */
export interface SenmlRecord {
  name: string;
  unit?: string;
  value?: number;
  stringValue?: string;
  boolValue?: boolean;
  dataValue?: Uint8Array;
  sum?: number;
  time: number;
  updateTime?: number;
}

/** A pack as CBOR: an array of maps with integer labels, keys in deterministic order. */
export function encodeSenmlPack(records: readonly SenmlInputRecord[]): CborValue {
  return records.map((r) => {
    const m = new Map<number, CborValue>();
    for (const key of KEY_ORDER) {
      const v = r[key];
      if (v !== undefined) m.set(SENML_LABEL[key], v);
    }
    return m;
  });
}

/** RFC 8428 §4.5.1: a name starts with a letter or digit; then letters, digits and - : . / _ */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9\-:./_]*$/;

export function isValidSenmlName(name: string): boolean {
  return name.length > 0 && name.length <= 256 && NAME_RE.test(name);
}

export type SenmlResult = { ok: true; records: SenmlRecord[]; baseName: string } | { ok: false; error: string };

const LABEL_BY_NUMBER = new Map<number, Label>(Object.entries(SENML_LABEL).map(([k, v]) => [v, k as Label]));

function num(x: CborValue): number | undefined {
  if (typeof x === 'number') return Number.isFinite(x) ? x : undefined;
  if (typeof x === 'bigint') return Number(x);
  return undefined;
}

/**
 * Resolves a decoded pack (RFC 8428 §4.6): names get the base name in effect prepended, times the base time
 * added (and relative times, below 2^28 s, are taken from `now`, seconds since the epoch), values the base
 * value, sums the base sum; the unit falls back to the base unit. Strict: every record must be a map with
 * correctly typed fields, a valid name and exactly one value (or a sum). Unknown integer labels and unknown
 * text labels are ignored; a text label ending in "_" (must-understand, §4.4) rejects the pack.
 * `baseName` is the base name of the first record ('' without one).
 */
export function resolveSenml(pack: CborValue, now: number): SenmlResult {
  if (!Array.isArray(pack)) return { ok: false, error: 'SenML pack is not an array' };
  if (pack.length === 0) return { ok: false, error: 'SenML pack is empty' };
  let bn = '';
  let bt = 0;
  let bu: string | undefined;
  let bv = 0;
  let bs = 0;
  let baseName = '';
  const records: SenmlRecord[] = [];
  for (let i = 0; i < pack.length; i++) {
    const rec = pack[i];
    if (!(rec instanceof Map)) return { ok: false, error: `record ${i} is not a map` };
    const f: Partial<Record<Label, CborValue>> = {};
    for (const [k, v] of rec) {
      if (typeof k === 'string') {
        if (k.endsWith('_')) return { ok: false, error: `record ${i} has the must-understand label ${JSON.stringify(k)}` };
        continue;
      }
      const label = LABEL_BY_NUMBER.get(k);
      if (label !== undefined) f[label] = v;
    }
    const bad = (what: string): SenmlResult => ({ ok: false, error: `record ${i}: ${what}` });
    if (f.bver !== undefined) {
      if (typeof f.bver !== 'number' || !Number.isInteger(f.bver)) return bad('bver is not an integer');
      if (f.bver > SENML_VERSION) return bad(`bver ${f.bver} is newer than ${SENML_VERSION}`);
    }
    if (f.bn !== undefined) {
      if (typeof f.bn !== 'string') return bad('bn is not a text string');
      bn = f.bn;
      if (i === 0) baseName = bn;
    }
    for (const key of ['bt', 'bv', 'bs'] as const) {
      if (f[key] === undefined) continue;
      const x = num(f[key]);
      if (x === undefined) return bad(`${key} is not a number`);
      if (key === 'bt') bt = x;
      else if (key === 'bv') bv = x;
      else bs = x;
    }
    if (f.bu !== undefined) {
      if (typeof f.bu !== 'string') return bad('bu is not a text string');
      bu = f.bu;
    }
    if (f.n !== undefined && typeof f.n !== 'string') return bad('n is not a text string');
    const name = bn + (f.n ?? '');
    if (!isValidSenmlName(name)) return bad(`invalid name ${JSON.stringify(name)}`);
    if (f.u !== undefined && typeof f.u !== 'string') return bad('u is not a text string');
    const t = f.t === undefined ? 0 : num(f.t);
    if (t === undefined) return bad('t is not a number');
    let time = bt + t;
    if (time < SENML_RELATIVE_TIME_LIMIT) time = now + time;
    const out: SenmlRecord = { name, time };
    const unit = f.u ?? bu;
    if (unit !== undefined) out.unit = unit;
    let values = 0;
    if (f.v !== undefined) {
      const v = num(f.v);
      if (v === undefined) return bad('v is not a number');
      out.value = v + bv;
      values++;
    }
    if (f.vs !== undefined) {
      if (typeof f.vs !== 'string') return bad('vs is not a text string');
      out.stringValue = f.vs;
      values++;
    }
    if (f.vb !== undefined) {
      if (typeof f.vb !== 'boolean') return bad('vb is not a boolean');
      out.boolValue = f.vb;
      values++;
    }
    if (f.vd !== undefined) {
      if (!(f.vd instanceof Uint8Array)) return bad('vd is not a byte string');
      out.dataValue = f.vd;
      values++;
    }
    if (f.s !== undefined) {
      const s = num(f.s);
      if (s === undefined) return bad('s is not a number');
      out.sum = s + bs;
    }
    if (values > 1) return bad('more than one value field');
    if (values === 0 && out.sum === undefined) return bad('no value and no sum');
    if (f.ut !== undefined) {
      const ut = num(f.ut);
      if (ut === undefined || ut < 0) return bad('ut is not a non-negative number');
      out.updateTime = ut;
    }
    records.push(out);
  }
  return { ok: true, records, baseName };
}

// ---------------------------------------------------------------------------------------------------------
// Health record

/** Last reset cause, by wire code. Codes beyond the table read as 'unknown' (the raw code is kept). */
export const RESET_CAUSES = ['unknown', 'power-on', 'brown-out', 'watchdog', 'software', 'external-pin'] as const;
export type ResetCause = (typeof RESET_CAUSES)[number];

/** SenML names (after the node's base name) of the health record's fields. */
export const HEALTH_NAMES = { firmwareVersion: 'fw', uptime: 'uptime', resetCount: 'resets', resetCause: 'reset_cause' } as const;

export interface HealthRecord {
  firmwareVersion: string;
  uptimeS: number;
  resetCount: number;
  lastResetCause: ResetCause;
  /** The wire code of the reset cause, which may be newer than this table. */
  resetCauseCode: number;
}

export interface HealthInput {
  firmwareVersion: string;
  uptimeS: number;
  resetCount: number;
  lastResetCause: ResetCause | number;
}

/** The health pack the C encoder writes (fw_write_health): base name and optional base time on the first record. */
export function healthToSenml(h: HealthInput, baseName: string, baseTime?: SenmlNumber): SenmlInputRecord[] {
  const code = typeof h.lastResetCause === 'number' ? h.lastResetCause : RESET_CAUSES.indexOf(h.lastResetCause);
  const first: SenmlInputRecord = { n: HEALTH_NAMES.firmwareVersion, vs: h.firmwareVersion, bn: baseName };
  if (baseTime !== undefined) first.bt = baseTime;
  return [first, { n: HEALTH_NAMES.uptime, u: 's', v: h.uptimeS }, { n: HEALTH_NAMES.resetCount, v: h.resetCount }, { n: HEALTH_NAMES.resetCause, v: code }];
}

/** The health record of a resolved health pack; extra records are ignored, missing or mistyped fields fail. */
export function senmlToHealth(records: readonly SenmlRecord[], baseName: string): { ok: true; health: HealthRecord } | { ok: false; error: string } {
  const find = (n: string) => records.find((r) => r.name === baseName + n);
  const fw = find(HEALTH_NAMES.firmwareVersion)?.stringValue;
  const uptime = find(HEALTH_NAMES.uptime)?.value;
  const resets = find(HEALTH_NAMES.resetCount)?.value;
  const cause = find(HEALTH_NAMES.resetCause)?.value;
  if (fw === undefined) return { ok: false, error: 'health record without a firmware version (fw, vs)' };
  const isCount = (x: number | undefined): x is number => x !== undefined && Number.isInteger(x) && x >= 0;
  if (!isCount(uptime)) return { ok: false, error: 'health record without a whole uptime in seconds' };
  if (!isCount(resets)) return { ok: false, error: 'health record without a whole reset count' };
  if (!isCount(cause)) return { ok: false, error: 'health record without a reset cause code' };
  return {
    ok: true,
    health: { firmwareVersion: fw, uptimeS: uptime, resetCount: resets, lastResetCause: RESET_CAUSES[cause] ?? 'unknown', resetCauseCode: cause },
  };
}
