/**
 * Pure pieces of the OPC UA source, free of node-opcua so they load (and test) without it: what a status code
 * means for data quality, which values are numbers, and whether a node's EngineeringUnits match the configured unit.
 */

export type ValueQuality = 'good' | 'uncertain' | 'bad';

/**
 * The severity of a status code, its two top bits (OPC UA Part 4, 7.39): 00 Good, 01 Uncertain, 10 and 11 Bad.
 * Bad is a missing value and Uncertain a flagged one; a status is never turned into a number.
 */
export function statusQuality(code: number): ValueQuality {
  const severity = (code >>> 30) & 0b11;
  return severity === 0 ? 'good' : severity === 1 ? 'uncertain' : 'bad';
}

/**
 * A value as a reading holds it: numbers as they are, booleans as 1/0, 64-bit integers (node-opcua gives them as
 * [high, low] words) when they fit a double exactly; anything else (strings, arrays, structures, NaN) is not a
 * signal, and undefined.
 */
export function numericValue(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'bigint') return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(-Number.MAX_SAFE_INTEGER) ? Number(value) : undefined;
  if (Array.isArray(value) && value.length === 2 && value.every((w) => typeof w === 'number' && Number.isInteger(w))) {
    const [high, low] = value as [number, number];
    const n = high * 2 ** 32 + (low >>> 0);
    return Number.isSafeInteger(n) ? n : undefined;
  }
  return undefined;
}

/** Spellings of one unit, lower-cased: a configured `rpm` matches a server's UNECE `r/min` (code RPM). */
const UNIT_ALIASES: readonly (readonly string[])[] = [
  ['k', 'kel', 'kelvin'],
  ['degc', '°c', 'cel', 'celsius', 'c'],
  ['degf', '°f', 'fah'],
  ['rpm', 'r/min', '1/min', 'min-1', 'min⁻¹'],
  ['n.m', 'n·m', 'nm', 'n m', 'n*m', 'nu'],
  ['min', 'minute'],
  ['s', 'sec', 'second'],
  ['mm/s', 'mms', 'c26'],
  ['m/s²', 'm/s2', 'm/s^2', 'msk'],
  ['%', 'percent', 'p1'],
  ['bar', 'bar'],
  ['a', 'amp', 'ampere'],
  ['v', 'vlt', 'volt'],
  ['w', 'wtt', 'watt'],
  ['kw', 'kwt', 'kilowatt'],
  ['hz', 'htz', 'hertz'],
];

function canonical(unit: string): string {
  const u = unit.trim().toLowerCase();
  for (const group of UNIT_ALIASES) if (group.includes(u)) return group[0]!;
  return u;
}

/** The UNECE common code packed into EUInformation.unitId (Part 8, 5.6.3): three ASCII letters, one per byte. */
export function unitIdCode(unitId: number): string {
  if (!Number.isInteger(unitId) || unitId <= 0) return '';
  const chars = [(unitId >> 16) & 0xff, (unitId >> 8) & 0xff, unitId & 0xff].filter((c) => c !== 0);
  return chars.every((c) => c >= 0x20 && c < 0x7f) ? String.fromCharCode(...chars) : '';
}

/** The parts of an EUInformation that name a unit. */
export interface EngineeringUnits {
  displayName: string;
  unitId: number;
}

/** True when the configured unit is the node's (by display name or UNECE code, through the alias table). */
export function unitMatches(configured: string, eu: EngineeringUnits): boolean {
  const want = canonical(configured);
  const names = [eu.displayName, unitIdCode(eu.unitId)].filter((s) => s !== '');
  return names.some((n) => canonical(n) === want);
}

/** How the unit of a node reads in a log line: `r/min (RPM)`. */
export function describeUnits(eu: EngineeringUnits): string {
  const code = unitIdCode(eu.unitId);
  return code && code !== eu.displayName ? `${eu.displayName || '?'} (${code})` : eu.displayName || code || '?';
}
