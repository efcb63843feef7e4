/**
 * Parsers for ipmitool's text output (1.8.18/1.8.19). Pure functions; they never throw, whatever the input, and count
 * the lines they cannot read instead.
 *
 * `ipmitool sdr elist full` (and `elist all`), five columns:
 *     CPU1 Temp        | 01h | ok  |  3.1 | 33 degrees C
 *     P1-DIMMA1 Temp   | B0h | ns  | 32.64 | No Reading
 *     CMOS Battery     | 10h | ok  |  7.1 |
 * `ipmitool sdr` / `sdr list full`, three columns:
 *     CPU1 Temp        | 29 degrees C      | ok
 *     FAN3             | no reading        | ns
 * `ipmitool sel elist`, six columns (seven for threshold events, which add the reading):
 *        1 | 11/15/2019 | 18:50:40 | Power Unit Pwr Unit Status | Power off/down | Asserted
 *       3a | 12/14/22 | 23:09:44 CET | Memory #0x88 | Correctable ECC (CPU0_G1) | Asserted
 *   The record id is hexadecimal.
 *
 * ## Metric names
 *
 *   bmc.<sensor>.<unit>   the reading: `degrees C` → `celsius`, `RPM` → `rpm`, `Volts` → `volts`, `Amps` → `amps`,
 *                         `Watts` → `watts`, `percent` → `pct`, others sanitised (`CFM` → `cfm`). Discrete sensors
 *                         (`0x00`, `Presence detected`) and `ns`/`na` sensors have none.
 *   bmc.<sensor>.ok       1 when the status is `ok`, 0 when it is a threshold state (`nc`, `cr`, `nr`, `lnc`, `unc`,
 *                         `lcr`, `ucr`, `lnr`, `unr`); absent for `ns`/`na` (no reading is not a failure).
 *   <sensor>: the name sanitised (`CPU1 Temp` → `cpu1_temp`). Names the BMC repeats (Dell's several `Temp`) get the
 *   entity id added (`temp_3_1`), then the sensor number, then `_2`, `_3` in listing order.
 */
import { metricLabel } from '../host/proc-parsers.js';

export type SensorStatus = 'ok' | 'ns' | 'na' | 'nc' | 'cr' | 'nr' | 'lnc' | 'unc' | 'lcr' | 'ucr' | 'lnr' | 'unr';
const STATUSES: ReadonlySet<string> = new Set(['ok', 'ns', 'na', 'nc', 'cr', 'nr', 'lnc', 'unc', 'lcr', 'ucr', 'lnr', 'unr']);

export interface SdrRow {
  name: string;
  /** The sensor number as printed (`01h`), elist only. */
  sensorNumber: string | null;
  status: SensorStatus;
  /** Entity id and instance (`3.1`), elist only. */
  entity: string | null;
  /** The reading column as printed. */
  reading: string;
  value: number | null;
  /** The metric unit (`celsius`, `rpm`, …); null for discrete readings. */
  unit: string | null;
}

const UNITS: Record<string, string> = {
  'degrees c': 'celsius',
  'degrees f': 'fahrenheit',
  rpm: 'rpm',
  volts: 'volts',
  amps: 'amps',
  watts: 'watts',
  percent: 'pct',
};

/** `33 degrees C` → 33 celsius; `0x00`, `No Reading`, `Presence detected`, `` → no value. */
export function parseReading(reading: string): { value: number | null; unit: string | null } {
  const m = /^(-?\d+(?:\.\d+)?)\s+([A-Za-z][A-Za-z %/]*)$/.exec(reading.trim());
  if (!m?.[1] || !m[2]) return { value: null, unit: null };
  const value = Number(m[1]);
  if (!Number.isFinite(value)) return { value: null, unit: null };
  const rawUnit = m[2].trim().toLowerCase();
  return { value, unit: UNITS[rawUnit] ?? metricLabel(rawUnit) };
}

function splitColumns(line: string): string[] {
  return line.split('|').map((c) => c.trim());
}

/** Parses `sdr elist` (five columns) and `sdr` / `sdr list` (three columns) lines; both may appear. */
export function parseSdr(text: string): { rows: SdrRow[]; malformed: number } {
  const rows: SdrRow[] = [];
  let malformed = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const cols = splitColumns(line);
    let name: string | undefined;
    let status: string | undefined;
    let reading: string | undefined;
    let sensorNumber: string | null = null;
    let entity: string | null = null;
    if (cols.length === 5) {
      [name, sensorNumber, status, entity, reading] = cols as [string, string, string, string, string];
      if (!/^[0-9A-Fa-f]{1,2}h$/.test(sensorNumber) || !/^\d+\.\d+$/.test(entity)) {
        malformed++;
        continue;
      }
    } else if (cols.length === 3) {
      [name, reading, status] = cols as [string, string, string];
    } else {
      malformed++;
      continue;
    }
    const st = (status ?? '').toLowerCase();
    if (!name || !STATUSES.has(st) || /[\x00-\x08\x0e-\x1f\x7f]/.test(line)) {
      malformed++;
      continue;
    }
    const { value, unit } = parseReading(reading ?? '');
    rows.push({ name, sensorNumber, status: st as SensorStatus, entity, reading: reading ?? '', value, unit });
  }
  return { rows, malformed };
}

/** Metric labels for a listing's sensors, stable for the same listing (see the header for how repeats are told apart). */
export function sensorLabels(rows: readonly SdrRow[]): string[] {
  const count = (keys: string[]) => keys.reduce((m, k) => m.set(k, (m.get(k) ?? 0) + 1), new Map<string, number>());
  let keys = rows.map((r) => metricLabel(r.name));
  let counts = count(keys);
  keys = keys.map((k, i) => ((counts.get(k) ?? 0) > 1 && rows[i]?.entity ? metricLabel(`${k}_${rows[i]!.entity}`) : k));
  counts = count(keys);
  keys = keys.map((k, i) => ((counts.get(k) ?? 0) > 1 && rows[i]?.sensorNumber ? metricLabel(`${k}_${rows[i]!.sensorNumber}`) : k));
  const used = new Map<string, number>();
  return keys.map((k) => {
    const n = (used.get(k) ?? 0) + 1;
    used.set(k, n);
    return n === 1 ? k : `${k}_${n}`;
  });
}

const THRESHOLD_STATES: ReadonlySet<string> = new Set(['nc', 'cr', 'nr', 'lnc', 'unc', 'lcr', 'ucr', 'lnr', 'unr']);

/** The metrics for a parsed listing. */
export function sdrMetrics(rows: readonly SdrRow[]): Record<string, number> {
  const labels = sensorLabels(rows);
  const metrics: Record<string, number> = {};
  rows.forEach((r, i) => {
    const key = `bmc.${labels[i]}`;
    if (r.status === 'ns' || r.status === 'na') return;
    metrics[`${key}.ok`] = THRESHOLD_STATES.has(r.status) ? 0 : 1;
    if (r.value !== null && r.unit) metrics[`${key}.${r.unit}`] = r.value;
  });
  return metrics;
}

export interface SelEntry {
  /** The record id, parsed from hex. */
  id: number;
  idText: string;
  date: string;
  time: string;
  sensor: string;
  event: string;
  /** `Asserted`, `Deasserted`, or '' when the record has none (OEM records). */
  direction: string;
  /** The seventh column of threshold events (`Reading 95 > Threshold 90 degrees C`). */
  detail: string | null;
}

/** `ipmitool sel elist` (or `sel list`). "SEL has no entries" is an empty log, not a malformed one. */
export function parseSelElist(text: string): { entries: SelEntry[]; malformed: number } {
  const entries: SelEntry[] = [];
  let malformed = 0;
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '' || /^SEL has no entries/i.test(t)) continue;
    const cols = splitColumns(line);
    const [idText, date, time, sensor, event, direction, ...rest] = cols;
    if (cols.length < 5 || !idText || !/^[0-9a-fA-F]{1,8}$/.test(idText) || !sensor || /[\x00-\x08\x0e-\x1f\x7f]/.test(line)) {
      malformed++;
      continue;
    }
    const dir = direction ?? '';
    entries.push({
      id: parseInt(idText, 16),
      idText,
      date: date ?? '',
      time: time ?? '',
      sensor,
      event: event ?? '',
      direction: /^(De)?asserted$/i.test(dir) ? dir : '',
      detail: rest.length ? rest.join(' | ') : /^(De)?asserted$/i.test(dir) || dir === '' ? null : dir,
    });
  }
  return { entries, malformed };
}

/** What identifies one SEL record across reads (the id alone repeats after the log is cleared). */
export function selFingerprint(e: SelEntry): string {
  return [e.idText, e.date, e.time, e.sensor, e.event, e.direction].join('|');
}

/**
 * The entries that are new since the record `last` (the last one seen). When `last` is no longer in the log, or a
 * different record now has its id, the log was cleared (or wrapped): every entry is new.
 */
export function newSelEntries(entries: readonly SelEntry[], last: { id: number; fingerprint: string } | null): SelEntry[] {
  if (!last) return [...entries];
  const at = entries.findIndex((e) => e.id === last.id);
  if (at < 0 || selFingerprint(entries[at]!) !== last.fingerprint) return [...entries];
  return entries.slice(at + 1);
}
