import { describe, expect, it } from 'vitest';
import { parseAck } from '../../../agent/src/sync/central-ack.js';
import { ACK_MAX_RANGES } from '../../../agent/src/contract/topics.js';

const AGENT = 'edge-1';
const ack = (v: unknown) => parseAck(Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)), AGENT);
const stream = (st: unknown, name = 'telemetry') => ack({ agentId: AGENT, ts: 5, streams: { [name]: st } });

describe('parseAck (the centre acknowledgement, checked field by field)', () => {
  it('takes a well-formed acknowledgement, with its gaps, for every stream it knows', () => {
    const out = ack({
      agentId: AGENT,
      ts: 1234,
      streams: {
        telemetry: {
          through: 10,
          highest: 20,
          missing: [
            [12, 13],
            [15, 15],
          ],
        },
        alerts: { through: 0, highest: 0 },
        risk: { through: 7, highest: 7, missing: [] },
      },
    });
    expect(typeof out).toBe('object');
    if (typeof out === 'string') return;
    expect(out.ts).toBe(1234);
    expect([...out.streams.entries()]).toEqual([
      [
        'telemetry',
        {
          through: 10,
          highest: 20,
          missing: [
            [12, 13],
            [15, 15],
          ],
        },
      ],
      ['alerts', { through: 0, highest: 0, missing: [] }],
      ['risk', { through: 7, highest: 7, missing: [] }],
    ]);
  });

  it('ignores a stream a newer contract added instead of rejecting the whole acknowledgement', () => {
    const out = ack({ agentId: AGENT, ts: 1, streams: { future: 'anything', events: { through: 3, highest: 4 } } });
    if (typeof out === 'string') throw new Error(out);
    expect([...out.streams.keys()]).toEqual(['events']);
  });

  it('keeps at most ACK_MAX_RANGES gaps and checks only those', () => {
    const missing = Array.from({ length: ACK_MAX_RANGES + 3 }, (_, i) => [100 + 2 * i, 100 + 2 * i]);
    missing[ACK_MAX_RANGES + 1] = [1, 0]; // malformed, but beyond the limit: not read
    const out = stream({ through: 50, highest: 500, missing });
    if (typeof out === 'string') throw new Error(out);
    expect(out.streams.get('telemetry')!.missing).toHaveLength(ACK_MAX_RANGES);
    expect(out.streams.get('telemetry')!.missing.at(-1)).toEqual([100 + 2 * (ACK_MAX_RANGES - 1), 100 + 2 * (ACK_MAX_RANGES - 1)]);
  });

  it.each([
    ['an empty payload', '', 'empty payload (a retained acknowledgement being cleared)'],
    ['text that is not JSON', '{nope', 'not JSON'],
    ['a JSON array', '[]', 'not a JSON object'],
    ['JSON null', 'null', 'not a JSON object'],
    ['a JSON number', '3', 'not a JSON object'],
  ])('rejects %s', (_what, payload, reason) => {
    expect(parseAck(Buffer.from(payload), AGENT)).toBe(reason);
  });

  it("rejects another agent's acknowledgement, a missing ts and bad streams", () => {
    expect(ack({ agentId: 'edge-2', ts: 1, streams: {} })).toBe('agentId "edge-2" is not this agent\'s');
    expect(ack({ ts: 1, streams: {} })).toBe("agentId undefined is not this agent's");
    expect(ack({ agentId: AGENT, ts: '1', streams: {} })).toBe('ts must be a number');
    expect(ack({ agentId: AGENT, ts: 1 })).toBe('streams must be an object');
    expect(ack({ agentId: AGENT, ts: 1, streams: [] })).toBe('streams must be an object');
    expect(ack({ agentId: AGENT, ts: 1, streams: 'x' })).toBe('streams must be an object');
  });

  it.each([
    [null, 'streams.telemetry must be an object'],
    [7, 'streams.telemetry must be an object'],
    [{ highest: 3 }, 'streams.telemetry.through must be a non-negative integer'],
    [{ through: -1, highest: 3 }, 'streams.telemetry.through must be a non-negative integer'],
    [{ through: 1.5, highest: 3 }, 'streams.telemetry.through must be a non-negative integer'],
    [{ through: '1', highest: 3 }, 'streams.telemetry.through must be a non-negative integer'],
    [{ through: 2 ** 53, highest: 2 ** 53 }, 'streams.telemetry.through must be a non-negative integer'],
    [{ through: 3 }, 'streams.telemetry.highest must be an integer at least through'],
    [{ through: 3, highest: 2 }, 'streams.telemetry.highest must be an integer at least through'],
    [{ through: 3, highest: 3.5 }, 'streams.telemetry.highest must be an integer at least through'],
    [{ through: 3, highest: 9, missing: 'x' }, 'streams.telemetry.missing must be an array'],
    [{ through: 3, highest: 9, missing: [[5]] }, 'streams.telemetry.missing holds a range that is not [from, to] above through'],
    [{ through: 3, highest: 9, missing: [[5, 6, 7]] }, 'streams.telemetry.missing holds a range that is not [from, to] above through'],
    [{ through: 3, highest: 9, missing: ['5-6'] }, 'streams.telemetry.missing holds a range that is not [from, to] above through'],
    [{ through: 3, highest: 9, missing: [[6, 5]] }, 'streams.telemetry.missing holds a range that is not [from, to] above through'],
    [{ through: 3, highest: 9, missing: [[3, 5]] }, 'streams.telemetry.missing holds a range that is not [from, to] above through'],
    [{ through: 3, highest: 9, missing: [[-1, 5]] }, 'streams.telemetry.missing holds a range that is not [from, to] above through'],
    [{ through: 3, highest: 9, missing: [[4, 5.5]] }, 'streams.telemetry.missing holds a range that is not [from, to] above through'],
  ])('rejects the stream entry %j', (st, reason) => {
    expect(stream(st)).toBe(reason);
  });

  it('accepts the edge cases of the rules: highest equal to through, a one-seq gap right above through', () => {
    const out = stream({ through: 3, highest: 3, missing: [[4, 4]] });
    if (typeof out === 'string') throw new Error(out);
    expect(out.streams.get('telemetry')).toEqual({ through: 3, highest: 3, missing: [[4, 4]] });
    const zero = stream({ through: 0, highest: 0 });
    expect(typeof zero).toBe('object');
  });
});
