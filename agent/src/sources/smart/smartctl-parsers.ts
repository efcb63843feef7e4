/**
 * Parsers for `smartctl --json` output (smartmontools 7.0+; fixtures are 7.3). Pure functions: text in, values and
 * problems out. They never throw, whatever the input (truncated JSON, an HTML error page, binary noise, fields of
 * the wrong type); a value that is missing, of the wrong type or not a finite number is left out, never zeroed.
 *
 * ## Metric names (one Reading per readable disk, asset `disk-<serial>`)
 *
 * Every kind of disk:
 *   smart.passed              1 when `smart_status.passed` is true, 0 when false (absent when smartctl has no verdict)
 *   disk.temperature_c        `temperature.current`, else ATA attribute 194/190, else the NVMe log's temperature
 *   disk.power_on_hours       `power_on_time.hours`, else ATA attribute 9 (interpreted, see below), else the NVMe log
 *   disk.smartctl_exit_status smartctl's exit status bit mask (see `decodeExitStatus`)
 * ATA / SATA:
 *   smart.<id>.raw            every attribute in `ata_smart_attributes.table`, matched by `id` (Backblaze's
 *                             `smart_<id>_raw`). smartctl packs more than the value into some raw fields, so the raw is
 *                             the number smartctl's own `raw.string` leads with when that string is `N (…)` (temperatures
 *                             with min/max, Seagate head-flying hours) or `Nh+…` (power-on hours with minutes/ms); for
 *                             190/194 without such a string, the low byte. Otherwise `raw.value` as is.
 *   smart.<id>.value          the normalized value, for the attributes that predict failure (5, 9, 187, 188, 194, 197,
 *                             198, 199)
 *   disk.ata_error_log_count  `ata_smart_error_log.summary.count` (errors the drive logged over its life)
 * NVMe (from `nvme_smart_health_information_log`):
 *   nvme.critical_warning  nvme.media_errors  nvme.percentage_used  nvme.available_spare
 *   nvme.available_spare_threshold  nvme.num_err_log_entries  nvme.unsafe_shutdowns  nvme.power_on_hours
 *   nvme.temperature_c  nvme.power_cycles
 * SCSI / SAS:
 *   scsi.grown_defect_list    `scsi_grown_defect_list`
 */

/**
 * The `json_format_version` major this parser reads: 1 since smartctl 7.0 (`--json`). smartctl raises the major only
 * for incompatible changes, so another major is reported as a problem (its fields may have moved).
 */
export const SMARTCTL_JSON_FORMAT_MAJOR = 1;

/** The attributes whose normalized value is also published (Backblaze's and the literature's failure predictors). */
export const PREDICTIVE_ATTRIBUTE_IDS: readonly number[] = [5, 9, 187, 188, 194, 197, 198, 199];

/** The NVMe health-log fields published, and their metric names. */
const NVME_FIELDS: ReadonlyArray<[string, string]> = [
  ['critical_warning', 'nvme.critical_warning'],
  ['media_errors', 'nvme.media_errors'],
  ['percentage_used', 'nvme.percentage_used'],
  ['available_spare', 'nvme.available_spare'],
  ['available_spare_threshold', 'nvme.available_spare_threshold'],
  ['num_err_log_entries', 'nvme.num_err_log_entries'],
  ['unsafe_shutdowns', 'nvme.unsafe_shutdowns'],
  ['power_on_hours', 'nvme.power_on_hours'],
  ['temperature', 'nvme.temperature_c'],
  ['power_cycles', 'nvme.power_cycles'],
];

/** smartctl's exit status, bit by bit (smartctl(8), "RETURN VALUES"). */
export interface ExitStatus {
  raw: number;
  /** Bit 0: the command line did not parse (or an internal error). */
  commandLine: boolean;
  /** Bit 1: the device could not be opened, returned no IDENTIFY data, or is in a low-power mode (`--nocheck`). */
  openFailed: boolean;
  /** Bit 2: some SMART or other ATA command failed, or a checksum error in a SMART data structure. */
  commandFailed: boolean;
  /** Bit 3: SMART status check returned "DISK FAILING". */
  diskFailing: boolean;
  /** Bit 4: prefail attributes at or below their threshold. */
  prefailBelowThreshold: boolean;
  /** Bit 5: SMART status OK, but usage/prefail attributes were at or below threshold in the past. */
  pastThreshold: boolean;
  /** Bit 6: the device error log has records. */
  errorLog: boolean;
  /** Bit 7: the self-test log has errors. */
  selfTestLog: boolean;
  /** Bits 0–1: nothing was read from the disk. Bits 2–7 describe a disk that was read. */
  unreadable: boolean;
}

export function decodeExitStatus(value: number): ExitStatus {
  const raw = Number.isInteger(value) && value >= 0 ? value & 0xff : 0;
  const bit = (n: number) => (raw & (1 << n)) !== 0;
  return {
    raw,
    commandLine: bit(0),
    openFailed: bit(1),
    commandFailed: bit(2),
    diskFailing: bit(3),
    prefailBelowThreshold: bit(4),
    pastThreshold: bit(5),
    errorLog: bit(6),
    selfTestLog: bit(7),
    unreadable: bit(0) || bit(1),
  };
}

export interface SmartctlMessage {
  severity: string;
  text: string;
}

/** One device from `smartctl --scan-open --json` (or `--scan`). */
export interface ScanDevice {
  /** `/dev/sda`, `/dev/nvme0`, `/dev/bus/0` */
  name: string;
  /** The `--device=` type: `sat`, `nvme`, `scsi`, `megaraid,0`, … (`auto` when smartctl named none). */
  type: string;
  protocol: string | null;
  /** Set by `--scan-open` when the device could not be opened (an unknown USB bridge, permissions). */
  openError: string | null;
}

export type DiskState = 'ok' | 'standby' | 'unreadable';
export type DiskKind = 'ata' | 'nvme' | 'scsi' | 'unknown';

export interface DiskReport {
  state: DiskState;
  kind: DiskKind;
  /** Why the disk was skipped or could not be read; null when `state` is `ok`. */
  reason: string | null;
  /** The open failed with EACCES/EPERM: the agent lacks root or CAP_SYS_RAWIO (or read access to the node). */
  permissionDenied: boolean;
  exit: ExitStatus;
  device: { name: string | null; type: string | null; protocol: string | null };
  serial: string | null;
  model: string | null;
  family: string | null;
  firmware: string | null;
  capacityBytes: number | null;
  /** WWN as 16 hex digits, where the disk reports one. */
  wwn: string | null;
  messages: SmartctlMessage[];
  metrics: Record<string, number>;
  /** Values skipped as malformed, one line each. */
  problems: string[];
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function obj(v: unknown): Json {
  return isObject(v) ? v : {};
}
/** A finite number, or null (strings, NaN, ±Infinity from `1e400`, … are not numbers here). */
function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}
/** A finite, non-negative number: counters, hours, temperatures in Celsius above absolute zero are checked separately. */
function count(v: unknown): number | null {
  const n = num(v);
  return n !== null && n >= 0 ? n : null;
}
function str(v: unknown): string | null {
  if (typeof v !== 'string') return null;
  const s = v.trim();
  return s === '' ? null : s;
}

/** Parses JSON text into an object, or says why it cannot. */
export function parseJsonObject(text: string): { value: Json | null; problem: string | null } {
  const trimmed = text.trim();
  if (trimmed === '') return { value: null, problem: 'empty output' };
  if (!trimmed.startsWith('{')) {
    const head = trimmed.slice(0, 40).replace(/[^\x20-\x7e]/g, '?');
    return { value: null, problem: `output is not JSON (starts with "${head}")` };
  }
  try {
    const v: unknown = JSON.parse(trimmed);
    return isObject(v) ? { value: v, problem: null } : { value: null, problem: 'JSON output is not an object' };
  } catch (err) {
    return { value: null, problem: `malformed JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
}

function messagesOf(root: Json): SmartctlMessage[] {
  const list = obj(root.smartctl).messages;
  if (!Array.isArray(list)) return [];
  const out: SmartctlMessage[] = [];
  for (const m of list) {
    const text = str(obj(m).string);
    if (text) out.push({ severity: str(obj(m).severity) ?? 'information', text });
  }
  return out;
}

/** `smartctl --scan-open --json` / `--scan --json`. No `devices` key means no devices (that is how 7.3 says it). */
export function parseScan(text: string): { devices: ScanDevice[]; exit: ExitStatus | null; problems: string[] } {
  const { value, problem } = parseJsonObject(text);
  if (!value) return { devices: [], exit: null, problems: [problem ?? 'unreadable scan output'] };
  const problems: string[] = [];
  const exitRaw = num(obj(value.smartctl).exit_status);
  const list = value.devices;
  const devices: ScanDevice[] = [];
  if (list !== undefined && !Array.isArray(list)) problems.push('scan: "devices" is not an array');
  for (const [i, d] of (Array.isArray(list) ? list : []).entries()) {
    const name = str(obj(d).name);
    if (!name || !name.startsWith('/')) {
      problems.push(`scan: device ${i} has no usable name`);
      continue;
    }
    devices.push({
      name,
      type: str(obj(d).type) ?? 'auto',
      protocol: str(obj(d).protocol),
      openError: str(obj(d).open_error),
    });
  }
  return { devices, exit: exitRaw === null ? null : decodeExitStatus(exitRaw), problems };
}

/** The value a raw attribute stands for: see the header comment. */
export function interpretRaw(id: number, raw: unknown): number | null {
  const r = obj(raw);
  const value = count(r.value);
  const s = typeof r.string === 'string' ? r.string.trim() : '';
  const lead = /^(\d+)(?:h\+|\s*\()/.exec(s);
  if (lead?.[1] !== undefined) return Number(lead[1]);
  if (value === null) return null;
  // 190/194: the low byte is the current temperature, higher bytes min/max on many vendors.
  if (id === 190 || id === 194) return value % 256;
  return value;
}

const LOW_POWER = /\b(STANDBY|SLEEP|IDLE)\b.*\bmode\b/i;
const PERMISSION = /permission denied|operation not permitted/i;

function deviceOf(root: Json): DiskReport['device'] {
  const d = obj(root.device);
  return { name: str(d.name), type: str(d.type), protocol: str(d.protocol) };
}

function kindOf(root: Json, device: DiskReport['device']): DiskKind {
  const p = (device.protocol ?? '').toLowerCase();
  if (p === 'nvme' || isObject(root.nvme_smart_health_information_log)) return 'nvme';
  if (p === 'ata' || isObject(root.ata_smart_attributes)) return 'ata';
  if (p === 'scsi') return 'scsi';
  return 'unknown';
}

function wwnOf(root: Json): string | null {
  const w = obj(root.wwn);
  const naa = count(w.naa);
  const oui = count(w.oui);
  const id = count(w.id);
  if (naa === null || oui === null || id === null || !Number.isInteger(naa + oui + id)) return null;
  try {
    const v = (BigInt(naa) << 60n) | (BigInt(oui) << 36n) | BigInt(id);
    if (v === 0n || v >= 1n << 64n) return null;
    return v.toString(16).padStart(16, '0');
  } catch {
    return null;
  }
}

/**
 * One device's `smartctl --json --info --health --attributes … DEV` output. A non-zero exit status is decoded, not
 * taken as a failed read: bits 2–7 describe a disk that was read (and may be failing).
 */
export function parseSmartctlDevice(text: string, processExitCode: number | null = null): DiskReport {
  const report: DiskReport = {
    state: 'unreadable',
    kind: 'unknown',
    reason: null,
    permissionDenied: false,
    exit: decodeExitStatus(processExitCode ?? 0),
    device: { name: null, type: null, protocol: null },
    serial: null,
    model: null,
    family: null,
    firmware: null,
    capacityBytes: null,
    wwn: null,
    messages: [],
    metrics: {},
    problems: [],
  };
  const { value: root, problem } = parseJsonObject(text);
  if (!root) {
    report.reason = problem;
    return report;
  }
  const format = Array.isArray(root.json_format_version) ? root.json_format_version : null;
  if (format && format[0] !== SMARTCTL_JSON_FORMAT_MAJOR) {
    report.problems.push(`json_format_version ${format.join('.')}: this parser reads ${SMARTCTL_JSON_FORMAT_MAJOR}.x`);
  }
  const exitRaw = num(obj(root.smartctl).exit_status);
  if (exitRaw !== null && Number.isInteger(exitRaw) && exitRaw >= 0) report.exit = decodeExitStatus(exitRaw);
  else if (obj(root.smartctl).exit_status !== undefined) report.problems.push('smartctl.exit_status is not a number');
  report.messages = messagesOf(root);
  report.device = deviceOf(root);
  report.kind = kindOf(root, report.device);
  report.serial = str(root.serial_number);
  report.model = str(root.model_name) ?? str(root.scsi_model_name);
  report.family = str(root.model_family);
  report.firmware = str(root.firmware_version);
  report.capacityBytes = count(obj(root.user_capacity).bytes);
  report.wwn = wwnOf(root);

  const errors = report.messages.filter((m) => m.severity === 'error');
  if (report.exit.unreadable) {
    const lowPower = report.messages.find((m) => LOW_POWER.test(m.text)) ?? (isObject(root.power_mode) ? { text: 'device is in a low-power mode' } : null);
    if (report.exit.openFailed && !report.exit.commandLine && (lowPower || (errors.length === 0 && !report.serial))) {
      report.state = 'standby';
      report.reason = lowPower?.text ?? 'device in a low-power mode (smartctl --nocheck=standby skipped it)';
      return report;
    }
    report.permissionDenied = errors.some((m) => PERMISSION.test(m.text));
    report.reason =
      errors[0]?.text ??
      report.messages[0]?.text ??
      `smartctl exit status ${report.exit.raw} (${report.exit.commandLine ? 'command line or internal error' : 'device open failed'})`;
    return report;
  }
  if (!report.serial && report.kind === 'unknown') {
    report.reason = errors[0]?.text ?? 'no device data in smartctl output';
    return report;
  }

  report.state = 'ok';
  collectCommon(root, report);
  if (report.kind === 'ata') collectAta(root, report);
  if (report.kind === 'nvme') collectNvme(root, report);
  if (report.kind === 'scsi') {
    const defects = count(root.scsi_grown_defect_list);
    if (defects !== null) report.metrics['scsi.grown_defect_list'] = defects;
  }
  // Fallbacks that need the protocol-specific sections.
  const m = report.metrics;
  if (m['disk.temperature_c'] === undefined) {
    const t = m['smart.194.raw'] ?? m['smart.190.raw'] ?? m['nvme.temperature_c'];
    if (t !== undefined && plausibleCelsius(t)) m['disk.temperature_c'] = t;
  }
  if (m['disk.power_on_hours'] === undefined) {
    const h = m['smart.9.raw'] ?? m['nvme.power_on_hours'];
    if (h !== undefined) m['disk.power_on_hours'] = h;
  }
  if (Object.keys(m).length === 1 && m['disk.smartctl_exit_status'] !== undefined && report.kind === 'unknown') {
    report.problems.push('no SMART values in smartctl output');
  }
  return report;
}

function plausibleCelsius(t: number): boolean {
  return t > -60 && t < 200;
}

function collectCommon(root: Json, report: DiskReport): void {
  const m = report.metrics;
  m['disk.smartctl_exit_status'] = report.exit.raw;
  const passed = obj(root.smart_status).passed;
  if (typeof passed === 'boolean') m['smart.passed'] = passed ? 1 : 0;
  else if (passed !== undefined) report.problems.push('smart_status.passed is not a boolean');
  const temp = num(obj(root.temperature).current);
  if (temp !== null && plausibleCelsius(temp)) m['disk.temperature_c'] = temp;
  else if (obj(root.temperature).current !== undefined) report.problems.push('temperature.current is not a plausible temperature');
  const hours = count(obj(root.power_on_time).hours);
  if (hours !== null) m['disk.power_on_hours'] = hours;
  else if (obj(root.power_on_time).hours !== undefined) report.problems.push('power_on_time.hours is not a count');
}

function collectAta(root: Json, report: DiskReport): void {
  const m = report.metrics;
  const table = obj(root.ata_smart_attributes).table;
  if (table !== undefined && !Array.isArray(table)) report.problems.push('ata_smart_attributes.table is not an array');
  const seen = new Set<number>();
  for (const [i, row] of (Array.isArray(table) ? table : []).entries()) {
    const a = obj(row);
    const id = num(a.id);
    if (id === null || !Number.isInteger(id) || id < 1 || id > 255) {
      report.problems.push(`attribute row ${i}: no valid id`);
      continue;
    }
    if (seen.has(id)) {
      report.problems.push(`attribute ${id}: listed twice, first kept`);
      continue;
    }
    seen.add(id);
    const raw = interpretRaw(id, a.raw);
    if (raw !== null) m[`smart.${id}.raw`] = raw;
    else report.problems.push(`attribute ${id}: raw value missing or not a number`);
    if (PREDICTIVE_ATTRIBUTE_IDS.includes(id)) {
      const v = count(a.value);
      if (v !== null && v <= 255) m[`smart.${id}.value`] = v;
      else report.problems.push(`attribute ${id}: normalized value missing or out of range`);
    }
  }
  if (m['disk.power_on_hours'] === undefined && m['smart.9.raw'] !== undefined) m['disk.power_on_hours'] = m['smart.9.raw'];
  const errCount = count(obj(obj(root.ata_smart_error_log).summary).count);
  if (errCount !== null) m['disk.ata_error_log_count'] = errCount;
}

function collectNvme(root: Json, report: DiskReport): void {
  const log = root.nvme_smart_health_information_log;
  if (!isObject(log)) {
    if (log !== undefined) report.problems.push('nvme_smart_health_information_log is not an object');
    return;
  }
  for (const [field, metric] of NVME_FIELDS) {
    if (log[field] === undefined) continue;
    const v = field === 'temperature' ? num(log[field]) : count(log[field]);
    if (v === null || (field === 'temperature' && !plausibleCelsius(v))) {
      report.problems.push(`nvme ${field}: not a valid number`);
      continue;
    }
    report.metrics[metric] = v;
  }
}

/** Makes a serial number safe as part of an asset name: letters, digits, `.`, `_`, `-`. */
export function assetSafe(s: string): string {
  const out = s.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '');
  return out === '' ? 'unknown' : out.slice(0, 64);
}

/** The asset a disk's readings are filed under: `disk-<serial>`, else `disk-wwn-<wwn>`, else `disk-dev-<name>`. */
export function diskAsset(report: Pick<DiskReport, 'serial' | 'wwn' | 'device'>, devicePath: string): string {
  if (report.serial) return `disk-${assetSafe(report.serial)}`;
  if (report.wwn) return `disk-wwn-${report.wwn}`;
  return `disk-dev-${assetSafe((report.device.name ?? devicePath).replace(/^\/dev\//, ''))}`;
}
