/**
 * High-rate sample blocks (e.g. 10 kHz vibration) split into chunks, one chunk per frame, and their
 * reassembly. The chunk is a CBOR map with small integer keys (docs/firmware-protocol.md, "Sample blocks"):
 *
 *   every chunk   0 block id (0…65535)   1 chunk index   2 chunk count   3 samples: tag 77 (RFC 8746 sint16
 *                 little-endian typed array) around a byte string
 *   chunk 0 only  4 name (SenML name)   5 unit (SenML unit)   6 base time of sample 0 (SenML time, s)
 *                 7 sample period (s)   8 scale (physical = raw × scale; default 1)   9 total samples
 *
 * Unknown keys are ignored; header keys in chunks other than 0 are ignored. A lost chunk loses its block
 * only: the assembler drops a block that is not complete within its timeout.
 */
import { type CborValue, DecimalFraction } from './cbor.js';
import { SENML_RELATIVE_TIME_LIMIT, isValidSenmlName, type SenmlNumber } from './senml.js';

export const CHUNK_KEY = { blockId: 0, index: 1, count: 2, samples: 3, name: 4, unit: 5, time: 6, period: 7, scale: 8, total: 9 } as const;

/** Protocol limits a decoder enforces (docs/firmware-protocol.md). */
export const MAX_CHUNKS_PER_BLOCK = 1024;
export const MAX_SAMPLES_PER_BLOCK = 65_536;

export interface BlockHeader {
  name: string;
  unit: string;
  /** Time of sample 0, seconds since the Unix epoch (relative times resolved at decoding). */
  baseTime: number;
  /** Seconds between samples. */
  period: number;
  /** Physical value = raw × scale. */
  scale: number;
  totalSamples: number;
}

export interface BlockChunk {
  blockId: number;
  index: number;
  count: number;
  samples: Int16Array;
  /** Present on chunk 0. */
  header?: BlockHeader;
}

export interface SampleBlock extends BlockHeader {
  blockId: number;
  sampleRateHz: number;
  chunkCount: number;
  samples: Int16Array;
}

/** A block as a node writes it (numbers may be decimal fractions, as the C encoder writes them). */
export interface BlockInput {
  blockId: number;
  name: string;
  unit: string;
  time: SenmlNumber;
  period: SenmlNumber;
  scale: SenmlNumber;
  samples: Int16Array;
}

/** Number of chunks a block of `samples` takes at `samplesPerChunk`. */
export function chunkCount(samples: number, samplesPerChunk: number): number {
  return Math.max(1, Math.ceil(samples / samplesPerChunk));
}

/** Chunk `index` of a block as CBOR, as fw_write_block_chunk writes it. */
export function chunkToCbor(block: BlockInput, index: number, samplesPerChunk: number): CborValue {
  const count = chunkCount(block.samples.length, samplesPerChunk);
  if (!Number.isInteger(index) || index < 0 || index >= count) throw new RangeError(`chunk index ${index} outside 0…${count - 1}`);
  const m = new Map<number, CborValue>([
    [CHUNK_KEY.blockId, block.blockId],
    [CHUNK_KEY.index, index],
    [CHUNK_KEY.count, count],
    [CHUNK_KEY.samples, block.samples.subarray(index * samplesPerChunk, (index + 1) * samplesPerChunk)],
  ]);
  if (index === 0) {
    m.set(CHUNK_KEY.name, block.name);
    m.set(CHUNK_KEY.unit, block.unit);
    m.set(CHUNK_KEY.time, block.time);
    m.set(CHUNK_KEY.period, block.period);
    m.set(CHUNK_KEY.scale, block.scale);
    m.set(CHUNK_KEY.total, block.samples.length);
  }
  return m;
}

function num(x: CborValue | undefined): number | undefined {
  if (typeof x === 'number') return Number.isFinite(x) ? x : undefined;
  if (typeof x === 'bigint') return Number(x);
  if (x instanceof DecimalFraction) return x.toNumber();
  return undefined;
}

const isUint = (x: CborValue | undefined, max: number): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= max;

/** Validates a decoded chunk map. `now` (seconds since the epoch) resolves a relative base time. */
export function parseChunk(value: CborValue, now: number): { ok: true; chunk: BlockChunk } | { ok: false; error: string } {
  if (!(value instanceof Map)) return { ok: false, error: 'chunk is not a map' };
  const get = (k: number) => value.get(k);
  const blockId = get(CHUNK_KEY.blockId);
  const index = get(CHUNK_KEY.index);
  const count = get(CHUNK_KEY.count);
  const samples = get(CHUNK_KEY.samples);
  if (!isUint(blockId, 0xffff)) return { ok: false, error: 'block id is not an integer 0…65535' };
  if (!isUint(count, MAX_CHUNKS_PER_BLOCK) || count === 0) return { ok: false, error: `chunk count is not an integer 1…${MAX_CHUNKS_PER_BLOCK}` };
  if (!isUint(index, count - 1)) return { ok: false, error: 'chunk index is not below the chunk count' };
  if (!(samples instanceof Int16Array) || samples.length === 0) return { ok: false, error: 'samples are not a non-empty sint16 typed array (tag 77)' };
  const chunk: BlockChunk = { blockId, index, count, samples };
  if (index !== 0) return { ok: true, chunk };
  const name = get(CHUNK_KEY.name);
  const unit = get(CHUNK_KEY.unit);
  let baseTime = num(get(CHUNK_KEY.time));
  const period = num(get(CHUNK_KEY.period));
  const scaleRaw = get(CHUNK_KEY.scale);
  const scale = scaleRaw === undefined ? 1 : num(scaleRaw);
  const total = get(CHUNK_KEY.total);
  if (typeof name !== 'string' || !isValidSenmlName(name)) return { ok: false, error: 'block name is missing or not a valid SenML name' };
  if (typeof unit !== 'string') return { ok: false, error: 'block unit is missing' };
  if (baseTime === undefined) return { ok: false, error: 'block base time is missing' };
  if (period === undefined || !(period > 0)) return { ok: false, error: 'sample period is missing or not positive' };
  if (scale === undefined) return { ok: false, error: 'scale is not a number' };
  if (!isUint(total, MAX_SAMPLES_PER_BLOCK) || total === 0) return { ok: false, error: `total samples is not an integer 1…${MAX_SAMPLES_PER_BLOCK}` };
  if (baseTime < SENML_RELATIVE_TIME_LIMIT) baseTime += now;
  chunk.header = { name, unit, baseTime, period, scale, totalSamples: total };
  return { ok: true, chunk };
}

export interface BlockAssemblerOptions {
  /** A block not complete this long after its first chunk is dropped. Default 5,000 ms. */
  timeoutMs?: number;
  /** Blocks in progress at once; a new block beyond it evicts the oldest. Default 4. */
  maxBlocksInProgress?: number;
  /** Largest block accepted. Default MAX_SAMPLES_PER_BLOCK. */
  maxSamplesPerBlock?: number;
}

export interface BlockAssemblerStats {
  chunks: number;
  completed: number;
  /** Dropped incomplete after the timeout (a chunk was lost). */
  timedOut: number;
  /** Dropped incomplete to make room for a newer block. */
  evicted: number;
  /** Dropped because a chunk disagreed with the block (count, size, header) or reused its id. */
  invalid: number;
  /** Exact repeats of a chunk already held, ignored. */
  duplicates: number;
}

interface Pending {
  startedMs: number;
  count: number;
  parts: Array<Int16Array | undefined>;
  received: number;
  samples: number;
  header?: BlockHeader;
}

const sameSamples = (a: Int16Array, b: Int16Array) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Reassembles chunks into blocks. Memory is bounded by maxBlocksInProgress × maxSamplesPerBlock samples.
 * Time is the caller's (`nowMs`), so the assembler works on simulated and real clocks alike.
 */
export class BlockAssembler {
  private readonly timeoutMs: number;
  private readonly maxInProgress: number;
  private readonly maxSamples: number;
  private readonly pending = new Map<number, Pending>();
  readonly stats: BlockAssemblerStats = { chunks: 0, completed: 0, timedOut: 0, evicted: 0, invalid: 0, duplicates: 0 };

  constructor(options: BlockAssemblerOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.maxInProgress = Math.max(1, options.maxBlocksInProgress ?? 4);
    this.maxSamples = Math.min(options.maxSamplesPerBlock ?? MAX_SAMPLES_PER_BLOCK, MAX_SAMPLES_PER_BLOCK);
  }

  get inProgress(): number {
    return this.pending.size;
  }

  /** Samples held in incomplete blocks. */
  get bufferedSamples(): number {
    let n = 0;
    for (const p of this.pending.values()) n += p.samples;
    return n;
  }

  /** Drops blocks older than the timeout; returns how many. */
  expire(nowMs: number): number {
    let n = 0;
    for (const [id, p] of this.pending) {
      if (nowMs - p.startedMs >= this.timeoutMs) {
        this.pending.delete(id);
        n++;
      }
    }
    this.stats.timedOut += n;
    return n;
  }

  /** Adds a chunk; returns the block it completes, or null. */
  push(chunk: BlockChunk, nowMs: number): SampleBlock | null {
    this.stats.chunks++;
    this.expire(nowMs);
    let p = this.pending.get(chunk.blockId);
    if (p) {
      const held = p.parts[chunk.index];
      if (p.count === chunk.count && held && sameSamples(held, chunk.samples)) {
        this.stats.duplicates++;
        return null;
      }
      if (p.count !== chunk.count || held) {
        // The id was reused (the node restarted, or wrapped around) while the old block was incomplete.
        this.pending.delete(chunk.blockId);
        this.stats.invalid++;
        p = undefined;
      }
    }
    if (!p) {
      if (this.pending.size >= this.maxInProgress) {
        const oldest = this.pending.keys().next().value as number;
        this.pending.delete(oldest);
        this.stats.evicted++;
      }
      p = { startedMs: nowMs, count: chunk.count, parts: new Array<Int16Array | undefined>(chunk.count), received: 0, samples: 0 };
      this.pending.set(chunk.blockId, p);
    }
    p.parts[chunk.index] = chunk.samples;
    p.received++;
    p.samples += chunk.samples.length;
    if (chunk.header) p.header = chunk.header;
    const total = p.header?.totalSamples;
    if (p.samples > this.maxSamples || (total !== undefined && (total > this.maxSamples || p.samples > total))) {
      this.pending.delete(chunk.blockId);
      this.stats.invalid++;
      return null;
    }
    if (p.received < p.count || !p.header) return null;
    this.pending.delete(chunk.blockId);
    if (p.samples !== p.header.totalSamples) {
      this.stats.invalid++;
      return null;
    }
    const samples = new Int16Array(p.samples);
    let o = 0;
    for (const part of p.parts) {
      samples.set(part!, o);
      o += part!.length;
    }
    this.stats.completed++;
    return { ...p.header, blockId: chunk.blockId, sampleRateHz: 1 / p.header.period, chunkCount: p.count, samples };
  }
}
