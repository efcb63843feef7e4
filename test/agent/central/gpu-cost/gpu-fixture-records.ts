import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BatchRecord, DecodedBatch } from '../../../../agent/src/central/decode-batch.js';
import {
  parseHelpQueryGpu,
  parseKernelLog,
  parseQueryLine,
  parseRemappedRows,
  planQuery,
  type XidEvent,
} from '../../../../agent/src/sources/gpu/nvidia-smi-parsers.js';

/**
 * Telemetry records made from the GPU source's recorded nvidia-smi output (test/agent/sources/gpu/fixtures) the way
 * the source makes them: each line of a `--query-gpu` sample through `parseQueryLine` with the plan the driver's
 * `--help-query-gpu` gives, the slow `--query-remapped-rows` values merged in, Xid counts per GPU and code from
 * kernel log lines (`gpu.xid.<code>.count`), asset `gpu-<bus id>`, one timestamp per sample.
 */

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../sources/gpu/fixtures');
export const fixture = (rel: string) => readFileSync(path.join(FIXTURES, rel), 'utf8');
const sets = JSON.parse(fixture('sets.json')) as Record<string, { help: string; dir?: string; query?: string }>;

/** The sample blocks of a set's query CSV (or of another CSV of the fixtures), as lines. */
export function samplesOf(set: string, csv?: string): string[][] {
  const s = sets[set]!;
  const text = fixture(csv ?? s.query ?? `${s.dir ?? set}/query-gpu.csv`);
  return text
    .split(/\n\s*\n/)
    .map((block) => block.split('\n').filter((l) => l.trim() && !l.startsWith('#')))
    .filter((b) => b.length);
}

export class GpuFixtureHost {
  private readonly plan;
  private readonly remapped: Map<string, Record<string, number>>;
  private readonly xids = new Map<string, Map<number, number>>();
  private seq = 0;
  problems = 0;

  constructor(
    readonly agentId: string,
    set: string,
  ) {
    const s = sets[set]!;
    this.plan = planQuery(parseHelpQueryGpu(fixture(s.help)).fields);
    this.remapped = parseRemappedRows(fixture(`${s.dir ?? set}/remapped-rows.csv`)).byBus;
  }

  /** Kernel log Xid events, counted per GPU as the source counts them (from now on in every sample of that GPU). */
  xid(events: readonly XidEvent[]): void {
    for (const x of events) {
      const perGpu = this.xids.get(x.pciAddress) ?? new Map<number, number>();
      perGpu.set(x.code, (perGpu.get(x.code) ?? 0) + 1);
      this.xids.set(x.pciAddress, perGpu);
    }
  }

  /** One sample block at `ts` → one telemetry record per GPU row that parsed (a row without index or bus id is dropped). */
  sample(lines: readonly string[], ts: number): BatchRecord[] {
    const out: BatchRecord[] = [];
    for (const line of lines) {
      const { row, problems } = parseQueryLine(line, this.plan);
      this.problems += problems.length;
      if (!row) continue;
      const metrics: Record<string, number> = { ...row.metrics, ...(this.remapped.get(row.busId) ?? {}) };
      for (const [code, n] of this.xids.get(row.busId) ?? []) metrics[`gpu.xid.${code}.count`] = n;
      out.push({ seq: ++this.seq, ts, source: 'nvidia-gpu', asset: `gpu-${row.busId}`, metrics });
    }
    return out;
  }

  batch(records: BatchRecord[], bootSeq = 1): DecodedBatch {
    return { agentId: this.agentId, stream: 'telemetry', bootSeq, historical: false, records };
  }
}

export function kernelXids(rel: string, bus: string): XidEvent[] {
  return parseKernelLog(fixture(rel)).events.filter((e) => e.pciAddress === bus);
}
