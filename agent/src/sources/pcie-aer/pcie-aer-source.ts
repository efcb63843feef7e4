/**
 * PCIe Advanced Error Reporting counters from sysfs (Linux ≥ 4.19, drivers/pci/pcie/aer.c), no vendor tools. A GPU or
 * NIC whose correctable errors climb has a marginal link (riser, slot, cable); fatal errors take it off the bus.
 *
 *   /sys/bus/pci/devices/<BDF>/aer_dev_correctable   lines `RxErr 0` … `TOTAL_ERR_COR 3`
 *   /sys/bus/pci/devices/<BDF>/aer_dev_fatal         lines `Undefined 0` … `TOTAL_ERR_FATAL 0`
 *   /sys/bus/pci/devices/<BDF>/aer_dev_nonfatal      lines `Undefined 0` … `TOTAL_ERR_NONFATAL 0`
 *   /sys/bus/pci/devices/<BDF>/aer_rootport_total_err_{cor,fatal,nonfatal}   root ports only: one number
 *
 * Errors may be counted at the root port rather than at the faulty device (the root port receives the message), so
 * both are published.
 *
 * ## Metric names (one Reading, asset = the host)
 *
 *   pcie.<bdf>.aer.correctable_total  .fatal_total  .nonfatal_total        the TOTAL_ERR_* lines
 *   pcie.<bdf>.aer.correctable.<error>  pcie.<bdf>.aer.fatal.<error>  pcie.<bdf>.aer.nonfatal.<error>
 *       <error>: the kernel's name in snake case (`RxErr` → `rx_err`, `BadTLP` → `bad_tlp`, `CmpltTO` → `cmplt_to`,
 *       an unnamed bit `dev_cor_errs_bit[1]` → `dev_cor_errs_bit_1`)
 *   pcie.<bdf>.aer.rootport_total_err_cor  .rootport_total_err_fatal  .rootport_total_err_nonfatal
 *   <bdf>: `0000:3b:00.0` → `0000_3b_00_0` (a key segment has no dots or colons).
 *
 * Only devices that have at least one aer_* file are read. None at all (no PCI bus, a kernel without AER statistics,
 * no AER-capable device) makes the source unavailable, logged once.
 */
import { hostname } from 'node:os';
import path from 'node:path';
import type { Logger } from '../../core/logger.js';
import type { Reading, ReadingSink } from '../../core/types.js';
import { metricLabel } from '../host/proc-parsers.js';
import { IntervalSource, SourceUnavailableError } from '../interval-source.js';
import { NODE_FS, type SysfsReader } from '../sysfs-reader.js';

export interface PcieAerSourceConfig {
  enabled: boolean;
  /** Default 60000. */
  intervalMs: number;
  /** Limit for one pass over the devices. Default 5000. */
  timeoutMs: number;
  /** The asset the reading is filed under; empty: the host name. */
  asset: string;
  /** The sysfs mount. Default `/sys`; tests point it at a fixture tree. */
  sysRoot: string;
}

export const DEFAULT_PCIE_AER_SOURCE_CONFIG: Readonly<PcieAerSourceConfig> = Object.freeze({
  enabled: true,
  intervalMs: 60_000,
  timeoutMs: 5_000,
  asset: '',
  sysRoot: '/sys',
});

const AER_FILES = [
  ['aer_dev_correctable', 'correctable', 'TOTAL_ERR_COR'],
  ['aer_dev_fatal', 'fatal', 'TOTAL_ERR_FATAL'],
  ['aer_dev_nonfatal', 'nonfatal', 'TOTAL_ERR_NONFATAL'],
] as const;
const ROOTPORT_FILES = ['aer_rootport_total_err_cor', 'aer_rootport_total_err_fatal', 'aer_rootport_total_err_nonfatal'] as const;

/** `RxErr` → `rx_err`, `BadTLP` → `bad_tlp`, `dev_cor_errs_bit[1]` → `dev_cor_errs_bit_1`. */
export function aerErrorName(kernelName: string): string {
  return metricLabel(kernelName.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2'));
}

/** `0000:3b:00.0` → `0000_3b_00_0`. */
export function bdfLabel(bdf: string): string {
  return metricLabel(bdf);
}

export interface AerCounters {
  /** Kernel name → count, in file order, without the TOTAL line. */
  counters: Array<[string, number]>;
  total: number | null;
  /** Lines that are not `NAME COUNT`. */
  malformed: number;
}

/** One aer_dev_* file. `totalName` is the line that carries the total (`TOTAL_ERR_COR`, …). */
export function parseAerCounters(text: string, totalName: string): AerCounters {
  const out: AerCounters = { counters: [], total: null, malformed: 0 };
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const m = /^\s*([A-Za-z][A-Za-z0-9_]*(?:\[\d+\])?)\s+(\d{1,18})\s*$/.exec(line);
    if (!m?.[1] || m[2] === undefined) {
      out.malformed++;
      continue;
    }
    const n = Number(m[2]);
    if (!Number.isSafeInteger(n)) {
      out.malformed++;
      continue;
    }
    if (m[1] === totalName) out.total = n;
    else if (!seen.has(m[1])) {
      seen.add(m[1]);
      out.counters.push([m[1], n]);
    }
  }
  return out;
}

export interface AerSample {
  metrics: Record<string, number>;
  problems: string[];
  /** The devices read, with what sysfs says they are. */
  devices: Array<{ bdf: string; vendor: string | null; device: string | null; class: string | null }>;
}

/** Reads AER counters of every PCI device under `sysRoot`. Throws SourceUnavailableError when no device has any. */
export async function readAer(sysRoot: string, fs: SysfsReader = NODE_FS): Promise<AerSample> {
  const readText = async (file: string): Promise<string | null> => {
    try {
      return await fs.readFile(file);
    } catch {
      return null;
    }
  };
  const dir = path.join(sysRoot, 'bus/pci/devices');
  let bdfs: string[];
  try {
    bdfs = (await fs.readdir(dir)).sort();
  } catch {
    throw new SourceUnavailableError(`no PCI bus in sysfs (${dir} is absent)`);
  }
  const out: AerSample = { metrics: {}, problems: [], devices: [] };
  for (const bdf of bdfs) {
    const devDir = path.join(dir, bdf);
    const key = `pcie.${bdfLabel(bdf)}.aer`;
    let any = false;
    for (const [file, kind, totalName] of AER_FILES) {
      const text = await readText(path.join(devDir, file));
      if (text === null) continue;
      any = true;
      const parsed = parseAerCounters(text, totalName);
      if (parsed.malformed) out.problems.push(`${bdf}/${file}: ${parsed.malformed} malformed line(s)`);
      if (parsed.total !== null) out.metrics[`${key}.${kind}_total`] = parsed.total;
      else out.problems.push(`${bdf}/${file}: no ${totalName} line`);
      for (const [name, n] of parsed.counters) out.metrics[`${key}.${kind}.${aerErrorName(name)}`] = n;
    }
    for (const file of ROOTPORT_FILES) {
      const text = await readText(path.join(devDir, file));
      if (text === null) continue;
      any = true;
      const t = text.trim();
      if (/^\d{1,18}$/.test(t) && Number.isSafeInteger(Number(t))) out.metrics[`${key}.${file.replace(/^aer_/, '')}`] = Number(t);
      else out.problems.push(`${bdf}/${file}: not a counter`);
    }
    if (!any) continue;
    const attr = async (f: string) => (await readText(path.join(devDir, f)))?.trim() || null;
    out.devices.push({ bdf, vendor: await attr('vendor'), device: await attr('device'), class: await attr('class') });
  }
  if (!out.devices.length) {
    throw new SourceUnavailableError(`no PCI device exposes AER counters under ${dir} (kernel without AER statistics, or no AER-capable device)`);
  }
  return out;
}

export class PcieAerSource extends IntervalSource {
  private readonly cfg: PcieAerSourceConfig;
  private readonly asset: string;
  private readonly reported = new Set<string>();
  private readonly inventoried = new Set<string>();

  constructor(cfg: Partial<PcieAerSourceConfig>, sink: ReadingSink, log: Logger) {
    const full = { ...DEFAULT_PCIE_AER_SOURCE_CONFIG, ...cfg };
    super('pcie-aer', full.intervalMs, sink, log);
    this.cfg = full;
    this.asset = full.asset || hostname();
  }

  protected async sample(now: number): Promise<Reading[]> {
    return (await this.collect(now)).readings;
  }

  async collect(now: number): Promise<{ readings: Reading[]; problems: string[] }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`reading PCIe AER counters took longer than ${this.cfg.timeoutMs} ms`)), this.cfg.timeoutMs);
    });
    const s = await Promise.race([readAer(this.cfg.sysRoot), timeout]).finally(() => clearTimeout(timer));
    const fresh = s.devices.filter((d) => !this.inventoried.has(d.bdf));
    if (fresh.length) {
      for (const d of fresh) this.inventoried.add(d.bdf);
      this.log.info({ source: this.name, asset: this.asset, devices: fresh }, 'PCIe devices with AER counters');
    }
    for (const p of s.problems) {
      if (this.reported.has(p) || this.reported.size >= 256) continue;
      this.reported.add(p);
      this.stats.errors++;
      this.log.warn({ source: this.name, err: p }, 'part of the AER counters unreadable');
    }
    if (!Object.keys(s.metrics).length) throw new Error(s.problems[0] ?? 'no AER counter could be read');
    return { readings: [{ ts: now, source: this.name, asset: this.asset, metrics: s.metrics }], problems: s.problems };
  }
}
