/**
 * Memory ECC error counters from the kernel's EDAC sysfs tree (no vendor tools): corrected errors that climb on one
 * DIMM are the classic early sign of a DIMM that will fail, uncorrected ones a failure.
 *
 *   /sys/devices/system/edac/mc/mc<N>/{ce_count,ue_count,ce_noinfo_count,ue_noinfo_count,mc_name,size_mb}
 *   /sys/devices/system/edac/mc/mc<N>/{dimm,rank}<M>/{dimm_ce_count,dimm_ue_count,dimm_label,dimm_location,size}
 *   /sys/devices/system/edac/mc/mc<N>/csrow<M>/{ce_count,ue_count,ch<K>_ce_count,ch<K>_dimm_label}   (legacy layout)
 *
 * ## Metric names (one Reading, asset = the host)
 *
 *   edac.mc<N>.ce_count  .ue_count  .ce_noinfo_count  .ue_noinfo_count   per memory controller
 *   edac.dimm.<label>.ce_count  .ue_count     per DIMM (`dimm*`, or `rank*` on chip-select based controllers such as
 *       amd64_edac). <label> is `dimm_label` sanitised (`CPU_SrcID#0_MC#0_Chan#0_DIMM#0` →
 *       `cpu_srcid_0_mc_0_chan_0_dimm_0`), or `mc<N>_dimm<M>` / `mc<N>_rank<M>` when the BIOS left it blank; two DIMMs
 *       whose labels sanitise alike get `_2`, `_3`, …
 *   edac.mc<N>.csrow<M>.ce_count  .ue_count  and  edac.mc<N>.csrow<M>.ch<K>.ce_count     the legacy csrow layout
 *   edac.ce_count_total  edac.ue_count_total     sums over the controllers
 *
 * Counters are cumulative since boot (or since `reset_counters`); rates are the consumer's business. A file that cannot
 * be read or parsed leaves its metric absent and is reported once. No EDAC directory, or no controller in it, means the
 * host has no EDAC driver loaded (or no ECC memory): the source is unavailable, logged once.
 */
import { hostname } from 'node:os';
import path from 'node:path';
import type { Logger } from '../../core/logger.js';
import type { Reading, ReadingSink } from '../../core/types.js';
import { LabelAllocator, metricLabel } from '../host/proc-parsers.js';
import { IntervalSource, SourceUnavailableError } from '../interval-source.js';
import { NODE_FS, type SysfsReader } from '../sysfs-reader.js';

export interface EdacSourceConfig {
  enabled: boolean;
  /** Default 60000: the counters only move when an error happens; a minute is plenty. */
  intervalMs: number;
  /** Limit for one pass over the tree. Default 5000. */
  timeoutMs: number;
  /** The asset the reading is filed under; empty: the host name. */
  asset: string;
  /** The sysfs mount. Default `/sys`; tests point it at a fixture tree. */
  sysRoot: string;
}

export const DEFAULT_EDAC_SOURCE_CONFIG: Readonly<EdacSourceConfig> = Object.freeze({
  enabled: true,
  intervalMs: 60_000,
  timeoutMs: 5_000,
  asset: '',
  sysRoot: '/sys',
});

/** A sysfs counter: one non-negative integer, possibly followed by a newline. */
export function parseCounter(text: string): number | null {
  const t = text.trim();
  if (!/^\d{1,18}$/.test(t)) return null;
  const n = Number(t);
  return Number.isSafeInteger(n) ? n : null;
}

export interface EdacSample {
  metrics: Record<string, number>;
  /** What could not be read, one stable line each. */
  problems: string[];
  /** Per controller and DIMM, for the inventory log. */
  inventory: Array<Record<string, string | number | null>>;
}

/** The two file-system calls the readers make; tests substitute an in-memory tree. */
export { NODE_FS, type SysfsReader } from '../sysfs-reader.js';

function byIndex(prefix: string, names: string[]): Array<{ name: string; index: number }> {
  const re = new RegExp(`^${prefix}(\\d+)$`);
  return names
    .map((name) => ({ name, m: re.exec(name) }))
    .filter((x): x is { name: string; m: RegExpExecArray } => x.m !== null)
    .map((x) => ({ name: x.name, index: Number(x.m[1]) }))
    .sort((a, b) => a.index - b.index);
}

/** Reads the EDAC tree under `sysRoot`. Throws SourceUnavailableError when there is no EDAC controller. */
export class EdacReader {
  private readonly labels = new LabelAllocator();

  constructor(
    private readonly sysRoot: string,
    private readonly fs: SysfsReader = NODE_FS,
  ) {}

  private async readText(file: string): Promise<string | null> {
    try {
      return await this.fs.readFile(file);
    } catch {
      return null;
    }
  }

  private async listDir(dir: string): Promise<string[] | null> {
    try {
      return await this.fs.readdir(dir);
    } catch {
      return null;
    }
  }

  get mcDir(): string {
    return path.join(this.sysRoot, 'devices/system/edac/mc');
  }

  async read(): Promise<EdacSample> {
    const names = await this.listDir(this.mcDir);
    if (names === null) throw new SourceUnavailableError(`no EDAC in this kernel or no EDAC driver loaded (${this.mcDir} is absent)`);
    const mcs = byIndex('mc', names);
    if (!mcs.length) throw new SourceUnavailableError(`no EDAC memory controller under ${this.mcDir} (no ECC memory, or its EDAC driver is not loaded)`);
    const out: EdacSample = { metrics: {}, problems: [], inventory: [] };
    let ceTotal: number | null = null;
    let ueTotal: number | null = null;
    for (const mc of mcs) {
      const dir = path.join(this.mcDir, mc.name);
      const key = `edac.mc${mc.index}`;
      const counters = await this.counters(dir, ['ce_count', 'ue_count', 'ce_noinfo_count', 'ue_noinfo_count'], key, out);
      if (counters.ce_count !== undefined) ceTotal = (ceTotal ?? 0) + counters.ce_count;
      if (counters.ue_count !== undefined) ueTotal = (ueTotal ?? 0) + counters.ue_count;
      out.inventory.push({
        mc: mc.name,
        name: (await this.readText(path.join(dir, 'mc_name')))?.trim() ?? null,
        sizeMb: parseCounter((await this.readText(path.join(dir, 'size_mb'))) ?? ''),
      });
      const entries = (await this.listDir(dir)) ?? [];
      for (const kind of ['dimm', 'rank'] as const) {
        for (const d of byIndex(kind, entries)) await this.dimm(path.join(dir, d.name), mc.index, kind, d.index, out);
      }
      for (const cs of byIndex('csrow', entries)) await this.csrow(path.join(dir, cs.name), `${key}.csrow${cs.index}`, out);
    }
    if (ceTotal !== null) out.metrics['edac.ce_count_total'] = ceTotal;
    if (ueTotal !== null) out.metrics['edac.ue_count_total'] = ueTotal;
    return out;
  }

  private async counters(
    dir: string,
    files: string[],
    key: string,
    out: EdacSample,
    rename: (f: string) => string = (f) => f,
  ): Promise<Record<string, number>> {
    const got: Record<string, number> = {};
    for (const f of files) {
      const text = await this.readText(path.join(dir, f));
      if (text === null) continue; // not every driver has every file (noinfo counters, csrow channels)
      const v = parseCounter(text);
      if (v === null) {
        out.problems.push(`${path.join(dir, f)}: not a counter`);
        continue;
      }
      got[f] = v;
      out.metrics[`${key}.${rename(f)}`] = v;
    }
    return got;
  }

  private async dimm(dir: string, mc: number, kind: 'dimm' | 'rank', index: number, out: EdacSample): Promise<void> {
    const rawLabel = ((await this.readText(path.join(dir, 'dimm_label'))) ?? '').trim();
    const fallback = `mc${mc}_${kind}${index}`;
    const label = this.labels.label(`mc${mc}/${kind}${index}`, rawLabel ? metricLabel(rawLabel) : fallback);
    const got = await this.counters(dir, ['dimm_ce_count', 'dimm_ue_count'], `edac.dimm.${label}`, out, (f) => f.replace(/^dimm_/, ''));
    if (!Object.keys(got).length && (await this.readText(path.join(dir, 'dimm_ce_count'))) === null) out.problems.push(`${dir}: no dimm_ce_count`);
    out.inventory.push({
      dimm: `mc${mc}/${kind}${index}`,
      label: rawLabel || null,
      metricLabel: label,
      location: ((await this.readText(path.join(dir, 'dimm_location'))) ?? '').trim() || null,
      sizeMb: parseCounter((await this.readText(path.join(dir, 'size'))) ?? ''),
      memType: ((await this.readText(path.join(dir, 'dimm_mem_type'))) ?? '').trim() || null,
    });
  }

  private async csrow(dir: string, key: string, out: EdacSample): Promise<void> {
    await this.counters(dir, ['ce_count', 'ue_count'], key, out);
    const names = (await this.listDir(dir)) ?? [];
    const channels = names
      .map((n) => /^ch(\d+)_ce_count$/.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    for (const ch of channels) await this.counters(dir, [`ch${ch}_ce_count`], key, out, () => `ch${ch}.ce_count`);
  }
}

export class EdacSource extends IntervalSource {
  private readonly reader: EdacReader;
  private readonly asset: string;
  private readonly timeoutMs: number;
  private readonly reported = new Set<string>();
  private inventoried = false;

  constructor(cfg: Partial<EdacSourceConfig>, sink: ReadingSink, log: Logger) {
    const full = { ...DEFAULT_EDAC_SOURCE_CONFIG, ...cfg };
    super('edac', full.intervalMs, sink, log);
    this.reader = new EdacReader(full.sysRoot);
    this.asset = full.asset || hostname();
    this.timeoutMs = full.timeoutMs;
  }

  protected async sample(now: number): Promise<Reading[]> {
    return (await this.collect(now)).readings;
  }

  async collect(now: number): Promise<{ readings: Reading[]; problems: string[] }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`reading ${this.reader.mcDir} took longer than ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    const s = await Promise.race([this.reader.read(), timeout]).finally(() => clearTimeout(timer));
    if (!this.inventoried) {
      this.inventoried = true;
      this.log.info({ source: this.name, asset: this.asset, inventory: s.inventory }, 'EDAC memory controllers');
    }
    for (const p of s.problems) {
      if (this.reported.has(p) || this.reported.size >= 256) continue;
      this.reported.add(p);
      this.stats.errors++;
      this.log.warn({ source: this.name, err: p }, 'part of the EDAC tree unreadable');
    }
    if (!Object.keys(s.metrics).length) throw new Error(s.problems[0] ?? 'no EDAC counter could be read');
    return { readings: [{ ts: now, source: this.name, asset: this.asset, metrics: s.metrics }], problems: s.problems };
  }
}
