import { describe, expect, it } from 'vitest';
import { type CborValue, DecimalFraction, decodeCbor, encodeCbor } from '../../../firmware-bridge/src/node-protocol/cbor.js';
import {
  type BlockChunk,
  type BlockInput,
  BlockAssembler,
  CHUNK_KEY as K,
  chunkCount,
  chunkToCbor,
  parseChunk,
} from '../../../firmware-bridge/src/node-protocol/block-assembler.js';
import { Prng } from '../../../firmware-bridge/src/simulators/prng.js';

const NOW = 1_700_000_100;

function block(id: number, n: number, seed = id): BlockInput {
  const rng = new Prng(seed);
  return {
    blockId: id,
    name: 'node:vib.x',
    unit: 'm/s2',
    time: new DecimalFraction(-3, 1_700_000_000_250),
    period: new DecimalFraction(-6, 100),
    scale: new DecimalFraction(-3, 2),
    samples: Int16Array.from({ length: n }, () => rng.int(-32768, 32767)),
  };
}

/** The chunks of a block as a receiver sees them: encoded, decoded and parsed. */
function chunks(b: BlockInput, perChunk: number): BlockChunk[] {
  return Array.from({ length: chunkCount(b.samples.length, perChunk) }, (_, i) => {
    const d = decodeCbor(encodeCbor(chunkToCbor(b, i, perChunk)));
    if (!d.ok) throw new Error(d.error);
    const p = parseChunk(d.value, NOW);
    if (!p.ok) throw new Error(p.error);
    return p.chunk;
  });
}

describe('chunk format', () => {
  it('carries the header in chunk 0 only, and resolves it', () => {
    const cs = chunks(block(7, 1000), 400);
    expect(cs.map((c) => [c.index, c.count, c.samples.length, c.header !== undefined])).toEqual([
      [0, 3, 400, true],
      [1, 3, 400, false],
      [2, 3, 200, false],
    ]);
    expect(cs[0]!.header).toEqual({ name: 'node:vib.x', unit: 'm/s2', baseTime: 1_700_000_000.25, period: 0.0001, scale: 0.002, totalSamples: 1000 });
  });

  it('resolves a relative base time against now', () => {
    const b = { ...block(1, 10), time: -1.5 };
    expect(chunks(b, 10)[0]!.header!.baseTime).toBe(NOW - 1.5);
  });

  it('ignores unknown keys (a newer minor version may add some)', () => {
    const m = chunkToCbor(block(1, 10), 0, 10) as Map<number, CborValue>;
    m.set(42, 'future');
    expect(parseChunk(m, NOW).ok).toBe(true);
  });

  const broken: Array<[string, (m: Map<number, CborValue>) => void]> = [
    ['no block id', (m) => m.delete(K.blockId)],
    ['a block id above 65535', (m) => m.set(K.blockId, 65536)],
    ['chunk count 0', (m) => m.set(K.count, 0)],
    ['more than 1024 chunks', (m) => m.set(K.count, 1025)],
    ['an index at the count', (m) => m.set(K.index, 1)],
    ['samples as a plain byte string (no tag 77)', (m) => m.set(K.samples, new Uint8Array(4))],
    ['no samples', (m) => m.set(K.samples, new Int16Array(0))],
    ['chunk 0 without a name', (m) => m.delete(K.name)],
    ['an invalid name', (m) => m.set(K.name, 'bad name')],
    ['no unit', (m) => m.delete(K.unit)],
    ['no base time', (m) => m.delete(K.time)],
    ['a zero period', (m) => m.set(K.period, 0)],
    ['a text scale', (m) => m.set(K.scale, '2')],
    ['no total', (m) => m.delete(K.total)],
    ['a total above 65536', (m) => m.set(K.total, 65537)],
  ];
  it.each(broken)('rejects a chunk with %s', (_what, mutate) => {
    const m = chunkToCbor(block(1, 10), 0, 10) as Map<number, CborValue>;
    mutate(m);
    expect(parseChunk(m, NOW).ok).toBe(false);
  });

  it('rejects a chunk that is not a map', () => {
    expect(parseChunk([1, 2], NOW).ok).toBe(false);
  });
});

describe('BlockAssembler', () => {
  it('reassembles a block from chunks in any order', () => {
    const b = block(3, 4096);
    const cs = chunks(b, 400);
    for (const order of [cs, [...cs].reverse(), [...cs].sort((x, y) => ((x.index * 7) % 11) - ((y.index * 7) % 11))]) {
      const a = new BlockAssembler();
      const done = order.map((c) => a.push(c, 0)).filter((x) => x !== null);
      expect(done).toHaveLength(1);
      expect(done[0]!.samples).toEqual(b.samples);
      expect(done[0]!).toMatchObject({ blockId: 3, sampleRateHz: 10000, chunkCount: 11, name: 'node:vib.x' });
      expect(a.inProgress).toBe(0);
    }
  });

  it('drops only the block that lost a chunk, after the timeout', () => {
    const a = new BlockAssembler({ timeoutMs: 1000 });
    const lossy = chunks(block(1, 1000), 400);
    lossy.splice(1, 1);
    for (const c of lossy) expect(a.push(c, 0)).toBeNull();
    const next = chunks(block(2, 1000), 400).map((c) => a.push(c, 500));
    expect(next[2]?.blockId).toBe(2);
    expect(a.inProgress).toBe(1);
    expect(a.expire(1000)).toBe(1);
    expect(a.stats).toMatchObject({ completed: 1, timedOut: 1, evicted: 0, invalid: 0 });
  });

  it('ignores an exact duplicate chunk', () => {
    const a = new BlockAssembler();
    const cs = chunks(block(1, 800), 400);
    a.push(cs[0]!, 0);
    a.push(cs[0]!, 0);
    expect(a.push(cs[1]!, 0)?.samples).toHaveLength(800);
    expect(a.stats.duplicates).toBe(1);
  });

  it('starts over when a block id is reused while incomplete (node restart)', () => {
    const a = new BlockAssembler();
    const old = chunks(block(5, 1200), 400);
    a.push(old[0]!, 0);
    const fresh = chunks(block(5, 800, 99), 400);
    a.push(fresh[0]!, 0);
    const done = a.push(fresh[1]!, 0);
    expect(done?.samples).toEqual(block(5, 800, 99).samples);
    expect(a.stats.invalid).toBe(1);
  });

  it('evicts the oldest block beyond maxBlocksInProgress, bounding memory', () => {
    const a = new BlockAssembler({ maxBlocksInProgress: 3 });
    for (let id = 0; id < 10; id++) a.push(chunks(block(id, 65536), 1024)[0]!, 0);
    expect(a.inProgress).toBe(3);
    expect(a.bufferedSamples).toBe(3 * 1024);
    expect(a.stats.evicted).toBe(7);
  });

  it('drops a block whose samples disagree with its header', () => {
    const a = new BlockAssembler();
    const cs = chunks(block(1, 800), 400);
    const short: BlockChunk = { ...cs[1]!, samples: cs[1]!.samples.subarray(0, 10) };
    a.push(cs[0]!, 0);
    expect(a.push(short, 0)).toBeNull();
    expect(a.stats.invalid).toBe(1);
    expect(a.inProgress).toBe(0);
  });

  it('drops a block larger than maxSamplesPerBlock', () => {
    const a = new BlockAssembler({ maxSamplesPerBlock: 1000 });
    const cs = chunks(block(1, 2000), 400);
    for (const c of cs) expect(a.push(c, 0)).toBeNull();
    expect(a.stats.invalid).toBeGreaterThanOrEqual(1);
    expect(a.bufferedSamples).toBeLessThanOrEqual(1000);
  });
});
