import { describe, expect, it } from 'vitest';
import { mergeRanges, seqRanges, subtractRanges } from '../../../agent/src/core/seq-ranges.js';

describe('seq ranges', () => {
  it('mergeRanges sorts, joins touching and overlapping ranges, and keeps gaps apart', () => {
    expect(mergeRanges([])).toEqual([]);
    expect(
      mergeRanges([
        [10, 12],
        [1, 3],
        [4, 5],
        [7, 8],
        [8, 9],
        [11, 20],
      ]),
    ).toEqual([
      [1, 5],
      [7, 20],
    ]);
    // A range inside the previous one does not shrink it; a gap of one seq stays a gap.
    expect(
      mergeRanges([
        [1, 10],
        [2, 3],
        [12, 12],
      ]),
    ).toEqual([
      [1, 10],
      [12, 12],
    ]);
  });

  it('mergeRanges does not modify its input', () => {
    const input: Array<[number, number]> = [
      [5, 6],
      [1, 2],
      [2, 4],
    ];
    const copy = structuredClone(input);
    mergeRanges(input);
    expect(input).toEqual(copy);
  });

  it('seqRanges turns sorted seqs into inclusive runs', () => {
    expect(seqRanges([])).toEqual([]);
    expect(seqRanges([7])).toEqual([[7, 7]]);
    expect(seqRanges([1, 2, 3, 5, 7, 8, 10])).toEqual([
      [1, 3],
      [5, 5],
      [7, 8],
      [10, 10],
    ]);
  });

  it('subtractRanges returns the parts of [from, to] that the cover leaves open', () => {
    expect(subtractRanges(1, 10, [])).toEqual([[1, 10]]);
    expect(subtractRanges(1, 10, [[1, 10]])).toEqual([]);
    expect(subtractRanges(1, 10, [[0, 20]])).toEqual([]);
    expect(
      subtractRanges(1, 10, [
        [3, 4],
        [7, 7],
      ]),
    ).toEqual([
      [1, 2],
      [5, 6],
      [8, 10],
    ]);
    // Cover entirely below or above the window is ignored; a cover ending at `to` leaves nothing after it.
    expect(
      subtractRanges(5, 9, [
        [1, 2],
        [6, 9],
        [12, 14],
      ]),
    ).toEqual([[5, 5]]);
    expect(subtractRanges(5, 9, [[1, 4]])).toEqual([[5, 9]]);
    expect(subtractRanges(5, 9, [[10, 11]])).toEqual([[5, 9]]);
    expect(subtractRanges(5, 9, [[5, 5]])).toEqual([[6, 9]]);
    expect(subtractRanges(5, 9, [[9, 12]])).toEqual([[5, 8]]);
    expect(subtractRanges(5, 5, [[4, 4]])).toEqual([[5, 5]]);
    expect(subtractRanges(5, 4, [])).toEqual([]);
  });
});
