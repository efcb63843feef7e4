/**
 * Disk health from smartctl (smartmontools ≥ 7.0, for `--json`), polled slowly: SMART data changes over hours,
 * and every read costs the disk a few commands.
 *
 * Each sample: discover disks with `smartctl --scan-open --json` (unless `devices` lists them; discovery is cached for
 * `rescanIntervalMs`), then read each disk, one at a time and each with a timeout, with
 *   smartctl --json --info --health --attributes --tolerance=verypermissive --nocheck=standby --log=error --device=TYPE DEV
 * (the command prometheus-community/smartctl_exporter runs). `--nocheck=standby` leaves sleeping disks asleep.
 *
 * One Reading per readable disk, asset `disk-<serial>`; metric names in smartctl-parsers.ts. A disk that is asleep,
 * unreadable (USB bridge without SAT pass-through, permissions, timeout) or gone is a partial failure: the other disks'
 * readings still go out, the failures are counted in `lastSummary`, and one log line is written per disk whose state
 * changed, not one per sample. The source as a whole is `unavailable` when smartctl is absent, finds no disks, or is
 * denied every disk for lack of root / CAP_SYS_RAWIO.
 */
import { type ToolResult, runTool } from '../run-tool.js';
import { readFileSync } from 'node:fs';
import type { Logger } from '../../core/logger.js';
import type { Reading, ReadingSink } from '../../core/types.js';
import { IntervalSource, SourceUnavailableError } from '../interval-source.js';
import { type DiskReport, type ScanDevice, diskAsset, parseScan, parseSmartctlDevice } from './smartctl-parsers.js';

export interface SmartSourceConfig {
  enabled: boolean;
  /** How often to read every disk. Default 600000 (10 min). */
  intervalMs: number;
  /** Limit for one smartctl run (a scan or one disk). Default 30000. */
  timeoutMs: number;
  /** The smartctl executable: a name looked up on PATH, or a path. Default `smartctl`. */
  binary: string;
  /**
   * Disks to read instead of scanning: `/dev/sda`, or with a type as smartctl's scan prints it, `/dev/sda -d sat`
   * (also `/dev/sda;sat`, `/dev/bus/0 -d megaraid,1`). Empty: discover with `smartctl --scan-open`.
   */
  devices: string[];
  /** How long a scan result is reused. Default 3600000 (1 h); a disk that appears later is read from the next scan on. */
  rescanIntervalMs: number;
}

export const DEFAULT_SMART_SOURCE_CONFIG: Readonly<SmartSourceConfig> = Object.freeze({
  enabled: true,
  intervalMs: 600_000,
  timeoutMs: 30_000,
  binary: 'smartctl',
  devices: [],
  rescanIntervalMs: 3_600_000,
});

/** The per-disk arguments, before `--device=TYPE DEV`. Checked against `smartctl --help` of 7.3 in the tests. */
export const SMARTCTL_READ_ARGS: readonly string[] = [
  '--json',
  '--info',
  '--health',
  '--attributes',
  '--tolerance=verypermissive',
  '--nocheck=standby',
  '--log=error',
];
export const SMARTCTL_SCAN_ARGS: readonly string[] = ['--scan-open', '--json'];

/** What one sample found. */
export interface SmartSummary {
  ts: number;
  /** Disks tried (scanned or configured). */
  devices: number;
  readable: number;
  /** Asleep, skipped by `--nocheck=standby`: not a failure. */
  standby: number;
  /** Unreadable this sample (open failed, unknown USB bridge, permission, timeout, garbage output). */
  failed: number;
  /** Per disk: its state and, when not `ok`, why. */
  perDevice: Array<{ device: string; state: DiskReport['state']; reason: string | null; asset: string | null }>;
}

/** `/dev/sda`, `/dev/sda -d sat`, `/dev/sda;sat`, `/dev/bus/0 -d megaraid,1` → name and type (`auto` if none). */
export function parseDeviceSpec(spec: string): ScanDevice | null {
  const s = spec.trim();
  const m = /^([^\s;#]+)(?:\s+(?:-d|--device)[\s=]+([^\s#]+)|;([^\s#]+))?\s*(?:#.*)?$/.exec(s);
  if (!m?.[1] || !m[1].startsWith('/')) return null;
  return { name: m[1], type: m[2] ?? m[3] ?? 'auto', protocol: null, openError: null };
}

/** Whether this process holds a capability, from /proc/self/status CapEff (null when that cannot be read). */
export function hasCapability(bit: number, statusText?: string): boolean | null {
  try {
    const text = statusText ?? readFileSync('/proc/self/status', 'utf8');
    const m = /^CapEff:\s*([0-9a-f]+)$/im.exec(text);
    if (!m?.[1]) return null;
    return (BigInt(`0x${m[1]}`) & (1n << BigInt(bit))) !== 0n;
  } catch {
    return null;
  }
}
const CAP_SYS_RAWIO = 17;

/** Options the tests (and only they) change. */
export interface SmartSourceDeps {
  env?: NodeJS.ProcessEnv;
  /** Effective uid; defaults to process.geteuid(). */
  euid?: number;
  /** Whether CAP_SYS_RAWIO is held; defaults to reading /proc/self/status. */
  hasRawIo?: boolean | null;
}

export class SmartSource extends IntervalSource {
  /** The last sample's outcome, for status reports and tests. */
  lastSummary: SmartSummary | null = null;
  private readonly cfg: SmartSourceConfig;
  private scanned: { at: number; devices: ScanDevice[] } | null = null;
  private readonly states = new Map<string, string>();
  private readonly inventoried = new Set<string>();
  private readonly reportedProblems = new Set<string>();

  constructor(
    cfg: Partial<SmartSourceConfig>,
    sink: ReadingSink,
    log: Logger,
    private readonly deps: SmartSourceDeps = {},
  ) {
    const full = { ...DEFAULT_SMART_SOURCE_CONFIG, ...cfg };
    super('smart', full.intervalMs, sink, log);
    this.cfg = full;
  }

  protected async sample(now: number): Promise<Reading[]> {
    return (await this.collect(now)).readings;
  }

  /** One pass over every disk. Throws SourceUnavailableError / Error only when the whole source failed. */
  async collect(now: number): Promise<{ readings: Reading[]; summary: SmartSummary }> {
    const devices = await this.discover(now);
    const readings: Reading[] = [];
    const summary: SmartSummary = { ts: now, devices: devices.length, readable: 0, standby: 0, failed: 0, perDevice: [] };
    const denied: string[] = [];
    for (const dev of devices) {
      const { report, asset } = await this.readOne(dev);
      summary.perDevice.push({ device: dev.name, state: report.state, reason: report.reason, asset });
      this.noteState(dev, report, asset);
      if (report.state === 'ok' && asset) {
        summary.readable++;
        readings.push({ ts: now, source: this.name, asset, metrics: report.metrics });
      } else if (report.state === 'standby') {
        summary.standby++;
      } else {
        summary.failed++;
        if (report.permissionDenied) denied.push(dev.name);
      }
    }
    this.lastSummary = summary;
    if (summary.failed > 0 && summary.failed === summary.devices) {
      if (denied.length === summary.devices) throw new SourceUnavailableError(this.permissionHint(denied));
      const first = summary.perDevice.find((d) => d.state === 'unreadable');
      throw new Error(`smartctl could read none of ${summary.devices} disk(s); ${first?.device}: ${first?.reason ?? 'unreadable'}`);
    }
    return { readings, summary };
  }

  private permissionHint(devices: string[]): string {
    const euid = this.deps.euid ?? process.geteuid?.() ?? 0;
    const rawIo = this.deps.hasRawIo !== undefined ? this.deps.hasRawIo : hasCapability(CAP_SYS_RAWIO);
    const who = euid === 0 ? 'as root' : `as uid ${euid} ${rawIo ? 'with' : 'without'} CAP_SYS_RAWIO`;
    return (
      `smartctl was denied ${devices.join(', ')} (permission denied) running ${who}: SMART needs root, or ` +
      `CAP_SYS_RAWIO (ATA/SCSI pass-through; CAP_SYS_ADMIN for NVMe) plus read access to the device nodes ` +
      `(e.g. group "disk"); the systemd unit grants these with AmbientCapabilities=`
    );
  }

  private async discover(now: number): Promise<ScanDevice[]> {
    if (this.cfg.devices.length) {
      const out: ScanDevice[] = [];
      for (const spec of this.cfg.devices) {
        const d = parseDeviceSpec(spec);
        if (d) out.push(d);
        else this.reportOnce(`device "${spec}" in the configuration is not "/dev/NAME [-d TYPE]"; ignored`);
      }
      if (!out.length) throw new SourceUnavailableError('no usable device in the smart source\'s "devices" list');
      return out;
    }
    if (this.scanned && now - this.scanned.at < this.cfg.rescanIntervalMs) return this.scanned.devices;
    const res = await this.run(SMARTCTL_SCAN_ARGS);
    if (res.timedOut) throw new Error(`smartctl --scan-open timed out after ${this.cfg.timeoutMs} ms`);
    const scan = parseScan(res.stdout);
    for (const p of scan.problems) this.reportOnce(p);
    if (!scan.exit && !scan.devices.length) {
      throw new Error(`smartctl --scan-open gave no usable output (exit ${res.code}): ${scan.problems[0] ?? ''} ${res.stderr.trim().slice(0, 200)}`.trim());
    }
    if (!scan.devices.length) throw new SourceUnavailableError('smartctl --scan-open found no disks it can read SMART data from');
    this.scanned = { at: now, devices: scan.devices };
    return scan.devices;
  }

  private async run(args: readonly string[]): Promise<ToolResult> {
    const res = await runTool(this.cfg.binary, args, { timeoutMs: this.cfg.timeoutMs, env: this.deps.env });
    if (res.spawnError) {
      const code = res.spawnError.code;
      if (code === 'ENOENT') throw new SourceUnavailableError(`smartctl not found ("${this.cfg.binary}"): install smartmontools (7.0 or later)`);
      if (code === 'EACCES') throw new SourceUnavailableError(`smartctl ("${this.cfg.binary}") is not executable by this user`);
      throw new Error(`cannot run smartctl: ${res.spawnError.message}`);
    }
    return res;
  }

  private async readOne(dev: ScanDevice): Promise<{ report: DiskReport; asset: string | null }> {
    if (dev.openError) {
      const report = parseSmartctlDevice('');
      report.reason = `smartctl --scan-open could not open it: ${dev.openError}`;
      report.permissionDenied = /permission denied|operation not permitted/i.test(dev.openError);
      return { report, asset: null };
    }
    const res = await this.run([...SMARTCTL_READ_ARGS, `--device=${dev.type}`, dev.name]);
    if (res.timedOut) {
      const report = parseSmartctlDevice('');
      report.reason = `smartctl timed out after ${this.cfg.timeoutMs} ms`;
      return { report, asset: null };
    }
    const report = parseSmartctlDevice(res.stdout, res.code);
    if (report.state === 'unreadable' && !report.reason) report.reason = res.stderr.trim().slice(0, 200) || `exit ${res.code}`;
    if (report.permissionDenied && (this.deps.euid ?? process.geteuid?.() ?? 0) !== 0) {
      report.reason = `${report.reason} (not root: needs CAP_SYS_RAWIO and read access to ${dev.name})`;
    }
    for (const p of report.problems) this.reportOnce(`${dev.name}: ${p}`);
    return { report, asset: report.state === 'ok' ? diskAsset(report, dev.name) : null };
  }

  /** Logs a disk once when first read (its inventory) and once each time its state changes. */
  private noteState(dev: ScanDevice, report: DiskReport, asset: string | null): void {
    if (report.state === 'ok' && asset && !this.inventoried.has(`${dev.name} ${asset}`)) {
      this.inventoried.add(`${dev.name} ${asset}`);
      this.log.info(
        {
          source: this.name,
          asset,
          device: dev.name,
          type: dev.type,
          protocol: report.kind,
          model: report.model,
          family: report.family,
          serial: report.serial,
          firmware: report.firmware,
          capacityBytes: report.capacityBytes,
          wwn: report.wwn,
        },
        'disk inventory',
      );
    }
    const state = report.state === 'ok' ? 'ok' : `${report.state}: ${report.reason ?? ''}`;
    const before = this.states.get(dev.name);
    if (before === state) return;
    this.states.set(dev.name, state);
    if (report.state === 'unreadable') {
      this.stats.errors++;
      this.log.warn(
        { source: this.name, device: dev.name, err: report.reason, code: 'FW_ERR_SOURCE_FAILED' },
        'disk unreadable; the other disks are still read',
      );
    } else if (report.state === 'standby') {
      this.log.info({ source: this.name, device: dev.name, reason: report.reason }, 'disk asleep; not woken, skipped this time');
    } else if (before !== undefined) {
      this.log.info({ source: this.name, device: dev.name, asset }, 'disk readable again');
    }
  }

  private reportOnce(problem: string): void {
    if (this.reportedProblems.has(problem) || this.reportedProblems.size >= 256) return;
    this.reportedProblems.add(problem);
    this.log.warn({ source: this.name, err: problem }, 'part of the smartctl output skipped as malformed');
  }
}
