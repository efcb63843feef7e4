/**
 * The BMC through ipmitool on the local IPMI device (/dev/ipmi0, from the ipmi_si + ipmi_devintf modules): sensor
 * readings (temperatures, fans, voltages, power supplies) as a Reading, and new System Event Log entries as
 * HealthEvents of type `bmc.sel`.
 *
 * Each sample runs `ipmitool sdr elist full` (falling back to `ipmitool sdr` once if elist gives nothing usable) and,
 * unless `sel` is off, `ipmitool sel elist`. Metric names are in ipmitool-parsers.ts, plus
 *   bmc.sel_entries     how many records the SEL holds (a full SEL stops logging)
 *
 * SEL entries are emitted once: the source remembers the last record it saw (id and content). On the first read after
 * start the existing entries are counted and logged, not replayed as new. A cleared log (the remembered record gone, or
 * its id now holding a different record) makes every entry in it new.
 *
 * No IPMI device node or no ipmitool makes the source unavailable (logged once); so does a device node the agent may
 * not open (it needs root, or read-write access to /dev/ipmi0 through a udev rule or group).
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Logger } from '../../core/logger.js';
import type { EventSink, HealthEvent, Reading, ReadingSink } from '../../core/types.js';
import { type ToolResult, runTool } from '../run-tool.js';
import { IntervalSource, SourceUnavailableError } from '../interval-source.js';
import { type SelEntry, newSelEntries, parseSdr, parseSelElist, sdrMetrics, selFingerprint } from './ipmitool-parsers.js';

export interface IpmiSourceConfig {
  enabled: boolean;
  /** Default 60000. */
  intervalMs: number;
  /** Limit for one ipmitool run. Default 30000: a busy BMC can take many seconds to list its SDR. */
  timeoutMs: number;
  /** The ipmitool executable. Default `ipmitool`. */
  binary: string;
  /** Device nodes of the in-band interface; the source is unavailable when none exists. */
  devicePaths: string[];
  /** Read the System Event Log too. Default true. */
  sel: boolean;
  /** The asset readings and events are filed under; empty: the host name. */
  asset: string;
}

export const DEFAULT_IPMI_SOURCE_CONFIG: Readonly<IpmiSourceConfig> = Object.freeze({
  enabled: true,
  intervalMs: 60_000,
  timeoutMs: 30_000,
  binary: 'ipmitool',
  devicePaths: ['/dev/ipmi0', '/dev/ipmi/0', '/dev/ipmidev/0'],
  sel: true,
  asset: '',
});

export const IPMITOOL_SDR_ARGS: readonly string[] = ['sdr', 'elist', 'full'];
export const IPMITOOL_SDR_FALLBACK_ARGS: readonly string[] = ['sdr'];
export const IPMITOOL_SEL_ARGS: readonly string[] = ['sel', 'elist'];

const NO_DEVICE = /could not open device|no such file or directory|unable to open|no such device/i;
const DENIED = /permission denied|operation not permitted/i;

export class IpmiSource extends IntervalSource {
  private readonly cfg: IpmiSourceConfig;
  private readonly asset: string;
  private sdrArgs: readonly string[] = IPMITOOL_SDR_ARGS;
  /** The last SEL record seen; undefined until the first SEL read. */
  private lastSel: { id: number; fingerprint: string } | null | undefined = undefined;
  private readonly reported = new Set<string>();

  constructor(
    cfg: Partial<IpmiSourceConfig>,
    sink: ReadingSink,
    private readonly events: EventSink,
    log: Logger,
    private readonly env?: NodeJS.ProcessEnv,
  ) {
    const full = { ...DEFAULT_IPMI_SOURCE_CONFIG, ...cfg };
    super('ipmi', full.intervalMs, sink, log);
    this.cfg = full;
    this.asset = full.asset || hostname();
  }

  protected async sample(now: number): Promise<Reading[]> {
    return (await this.collect(now)).readings;
  }

  /** One pass: sensors, then the SEL. Events are sent to the event sink as they are found. */
  async collect(now: number): Promise<{ readings: Reading[]; events: HealthEvent[] }> {
    if (!this.cfg.devicePaths.some((p) => existsSync(p))) {
      throw new SourceUnavailableError(
        `no IPMI device (${this.cfg.devicePaths.join(', ')}): the host has no BMC, or the ipmi_si and ipmi_devintf modules are not loaded`,
      );
    }
    const metrics = await this.readSensors();
    const events: HealthEvent[] = [];
    if (this.cfg.sel) {
      const sel = await this.readSel(now);
      if (sel) {
        metrics['bmc.sel_entries'] = sel.count;
        events.push(...sel.events);
      }
    }
    for (const e of events) this.events(e);
    if (!Object.keys(metrics).length) throw new Error('ipmitool listed no sensor with a reading or status');
    return { readings: [{ ts: now, source: this.name, asset: this.asset, metrics }], events };
  }

  private async run(args: readonly string[]): Promise<ToolResult> {
    const res = await runTool(this.cfg.binary, args, { timeoutMs: this.cfg.timeoutMs, env: this.env });
    if (res.spawnError) {
      if (res.spawnError.code === 'ENOENT') throw new SourceUnavailableError(`ipmitool not found ("${this.cfg.binary}"): install ipmitool`);
      if (res.spawnError.code === 'EACCES') throw new SourceUnavailableError(`ipmitool ("${this.cfg.binary}") is not executable by this user`);
      throw new Error(`cannot run ipmitool: ${res.spawnError.message}`);
    }
    if (res.timedOut) throw new Error(`ipmitool ${args.join(' ')} timed out after ${this.cfg.timeoutMs} ms`);
    if (res.code !== 0) {
      const msg = (res.stderr.trim() || res.stdout.trim()).split('\n')[0]?.slice(0, 300) ?? '';
      if (DENIED.test(msg)) {
        throw new SourceUnavailableError(
          `ipmitool may not open the IPMI device (${msg}): run as root, or give the agent's user read-write access to /dev/ipmi0`,
        );
      }
      if (NO_DEVICE.test(msg)) throw new SourceUnavailableError(`ipmitool cannot reach the BMC: ${msg}`);
    }
    return res;
  }

  private async readSensors(): Promise<Record<string, number>> {
    let res = await this.run(this.sdrArgs);
    let parsed = parseSdr(res.stdout);
    if (!parsed.rows.length && this.sdrArgs === IPMITOOL_SDR_ARGS) {
      // Old ipmitool or an odd BMC: the plain listing.
      const fallback = await this.run(IPMITOOL_SDR_FALLBACK_ARGS);
      const p2 = parseSdr(fallback.stdout);
      if (p2.rows.length) {
        this.sdrArgs = IPMITOOL_SDR_FALLBACK_ARGS;
        this.log.info({ source: this.name }, '"ipmitool sdr elist full" listed nothing; using "ipmitool sdr"');
        res = fallback;
        parsed = p2;
      }
    }
    if (!parsed.rows.length) {
      const why = (res.stderr.trim() || res.stdout.trim()).split('\n')[0]?.slice(0, 200) || `exit ${res.code}`;
      throw new Error(`ipmitool ${this.sdrArgs.join(' ')} gave no sensor: ${why}`);
    }
    if (parsed.malformed) this.reportOnce(`ipmitool ${this.sdrArgs.join(' ')}: ${parsed.malformed} line(s) not understood`);
    return sdrMetrics(parsed.rows);
  }

  private async readSel(now: number): Promise<{ count: number; events: HealthEvent[] } | null> {
    let res: ToolResult;
    try {
      res = await this.run(IPMITOOL_SEL_ARGS);
    } catch (err) {
      if (err instanceof SourceUnavailableError) throw err;
      this.reportOnce(`SEL not read: ${err instanceof Error ? err.message : String(err)}`);
      return null;
    }
    const { entries, malformed } = parseSelElist(res.stdout);
    if (res.code !== 0 && !entries.length) {
      this.reportOnce(`ipmitool sel elist failed (exit ${res.code}): ${(res.stderr.trim() || res.stdout.trim()).slice(0, 200)}`);
      return null;
    }
    if (malformed) this.reportOnce(`ipmitool sel elist: ${malformed} line(s) not understood`);
    const last = entries.at(-1);
    const first = this.lastSel === undefined;
    const fresh = first ? [] : newSelEntries(entries, this.lastSel ?? null);
    this.lastSel = last ? { id: last.id, fingerprint: selFingerprint(last) } : null;
    if (first) {
      this.log.info(
        { source: this.name, asset: this.asset, entries: entries.length, lastId: last?.idText ?? null },
        'BMC event log read; existing entries counted, not replayed',
      );
    }
    return { count: entries.length, events: fresh.map((e) => this.toEvent(e, now)) };
  }

  private toEvent(e: SelEntry, now: number): HealthEvent {
    const attributes: HealthEvent['attributes'] = {
      sensor: e.sensor,
      event: e.event,
      direction: e.direction,
      selId: e.idText,
      bmcTime: `${e.date} ${e.time}`.trim(),
    };
    if (e.detail) attributes.detail = e.detail;
    return {
      ts: now,
      source: this.name,
      asset: this.asset,
      type: 'bmc.sel',
      message: `${e.sensor}: ${e.event}${e.direction ? ` (${e.direction})` : ''}${e.detail ? `, ${e.detail}` : ''}`,
      attributes,
    };
  }

  private reportOnce(problem: string): void {
    if (this.reported.has(problem) || this.reported.size >= 256) return;
    this.reported.add(problem);
    this.stats.errors++;
    this.log.warn({ source: this.name, err: problem }, 'part of the ipmitool output unusable');
  }
}
