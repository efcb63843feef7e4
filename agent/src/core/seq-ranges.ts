/** Seq ranges as the contract carries them: inclusive [from, to] pairs. */
export type SeqRange = [number, number];

/** Inclusive ranges sorted and joined where they touch or overlap. */
export function mergeRanges(ranges: readonly SeqRange[]): SeqRange[] {
  const out: SeqRange[] = [];
  for (const [a, b] of [...ranges].sort((x, y) => x[0] - y[0])) {
    const last = out[out.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** Sorted seqs as inclusive [from, to] ranges. */
export function seqRanges(seqs: readonly number[]): SeqRange[] {
  const out: SeqRange[] = [];
  for (const q of seqs) {
    const last = out[out.length - 1];
    if (last && q === last[1] + 1) last[1] = q;
    else out.push([q, q]);
  }
  return out;
}

/** The parts of [from, to] outside `cover` (sorted, disjoint ranges, as mergeRanges returns them). */
export function subtractRanges(from: number, to: number, cover: readonly SeqRange[]): SeqRange[] {
  const out: SeqRange[] = [];
  let next = from;
  for (const [a, b] of cover) {
    if (b < next) continue;
    if (a > to) break;
    if (a > next) out.push([next, a - 1]);
    next = b + 1;
  }
  if (next <= to) out.push([next, to]);
  return out;
}
