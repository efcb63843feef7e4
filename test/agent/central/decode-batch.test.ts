import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { isForewarnError } from '../../../agent/src/core/errors.js';
import {
  MAX_DECODED_BYTES,
  PAYLOAD_ERROR,
  decodeBatch,
  decodeStatus,
  parseStorageRecovered,
  parseTopic,
  parseUnavailable,
} from '../../../agent/src/central/decode-batch.js';
import { contractErrors } from '../../helpers/contract.js';

const TOPIC = 'forewarn/v1/press-7/telemetry';
const batch = (over: Record<string, unknown> = {}) => ({
  schemaVersion: 1,
  agentId: 'press-7',
  stream: 'telemetry',
  bootSeq: 3,
  records: [
    { seq: 1, ts: 1_700_000_000_000, asset: 'm1', metrics: { x: 1 } },
    { seq: 2, ts: 1_700_000_000_001, asset: 'm1', metrics: { x: 2 }, newField: 'kept' },
  ],
  ...over,
});
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

function rejects(fn: () => unknown, message: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(isForewarnError(caught, PAYLOAD_ERROR), `expected ${PAYLOAD_ERROR}, got ${String(caught)}`).toBe(true);
  expect((caught as Error).message).toMatch(message);
}

describe('parseTopic', () => {
  it('tells batches, statuses and other topics apart', () => {
    expect(parseTopic('forewarn/v1/a/risk')).toEqual({ kind: 'batch', agentId: 'a', stream: 'risk' });
    expect(parseTopic('forewarn/v1/a/events')).toEqual({ kind: 'batch', agentId: 'a', stream: 'events' });
    expect(parseTopic('forewarn/v1/a/status')).toEqual({ kind: 'status', agentId: 'a' });
    expect(parseTopic('forewarn/v1/a/risk/current/m1/mf')).toEqual({ kind: 'other' });
    expect(parseTopic('forewarn/v1/a/unknown')).toEqual({ kind: 'other' });
    expect(parseTopic('forewarn/v2/a/risk')).toEqual({ kind: 'other' });
  });
});

describe('decodeBatch', () => {
  it('decodes a JSON batch and keeps fields it does not know', () => {
    const b = decodeBatch(json(batch()), TOPIC, 'application/json');
    expect(b).toMatchObject({ agentId: 'press-7', stream: 'telemetry', bootSeq: 3, historical: false });
    expect(b.records.map((r) => r.seq)).toEqual([1, 2]);
    expect(b.records[1]!.newField).toBe('kept');
  });

  it('decodes gzip by its magic bytes, with or without the contentType property', () => {
    const gz = gzipSync(json(batch({ historical: true })));
    expect(decodeBatch(gz, TOPIC, 'application/gzip').historical).toBe(true);
    expect(decodeBatch(gz, TOPIC).records).toHaveLength(2);
    // a bridge that rewrote the property does not fool it either
    expect(decodeBatch(gz, TOPIC, 'application/json').records).toHaveLength(2);
  });

  it('refuses a gzip bomb instead of inflating it', () => {
    const bomb = gzipSync(Buffer.alloc(MAX_DECODED_BYTES + 1024, 0x20));
    rejects(() => decodeBatch(bomb, TOPIC), /expands beyond/);
  });

  it('names what is wrong, prefixed by the topic', () => {
    rejects(() => decodeBatch(Buffer.from('{nope'), TOPIC), /^forewarn\/v1\/press-7\/telemetry: payload is not valid JSON/);
    rejects(() => decodeBatch(Buffer.from([0xc3, 0x28]), TOPIC), /not valid UTF-8/);
    rejects(() => decodeBatch(json(batch()), TOPIC, 'application/gzip'), /not gzip/);
    rejects(() => decodeBatch(Buffer.from([0x1f, 0x8b, 1, 2, 3]), TOPIC), /invalid gzip/);
    rejects(() => decodeBatch(json([1, 2]), TOPIC), /not a JSON object/);
    rejects(() => decodeBatch(json(batch({ schemaVersion: 2 })), TOPIC), /schemaVersion 2 is not supported/);
    rejects(() => decodeBatch(json(batch({ agentId: 'other' })), TOPIC), /agentId "other" does not match/);
    rejects(() => decodeBatch(json(batch({ stream: 'risk' })), TOPIC), /stream "risk" does not match/);
    rejects(() => decodeBatch(json(batch({ bootSeq: -1 })), TOPIC), /bootSeq/);
    rejects(() => decodeBatch(json(batch({ historical: 'yes' })), TOPIC), /historical must be a boolean/);
    rejects(() => decodeBatch(json(batch({ records: {} })), TOPIC), /records must be an array/);
    rejects(() => decodeBatch(json(batch({ records: [7] })), TOPIC), /records\[0\] is not an object/);
    rejects(() => decodeBatch(json(batch({ records: [{ seq: 0, ts: 1 }] })), TOPIC), /records\[0\]\.seq must be a positive integer \(got 0\)/);
    rejects(() => decodeBatch(json(batch({ records: [{ seq: 1.5, ts: 1 }] })), TOPIC), /seq must be a positive integer/);
    rejects(() => decodeBatch(json(batch({ records: [{ seq: 1, ts: 1 }, { seq: 2 }] })), TOPIC), /records\[1\]\.ts must be a number/);
    // Beyond 2^53 no store can hold it (PostgreSQL BIGINT): refused, not retried forever as a failing write.
    rejects(() => decodeBatch(json(batch({ records: [{ seq: 1, ts: 1e300 }] })), TOPIC), /records\[0\]\.ts must be a number/);
    rejects(() => decodeBatch(json(batch()), 'forewarn/v1/press-7/status'), /not a batch topic/);
  });

  it('checks records-dropped events, since a wrong range would hide real losses', () => {
    const topic = 'forewarn/v1/press-7/events';
    const event = (over: Record<string, unknown>) =>
      json(
        batch({
          stream: 'events',
          records: [{ seq: 1, ts: 1, type: 'records-dropped', stream: 'telemetry', count: 3, ranges: [[4, 6]], reason: 'quota', ...over }],
        }),
      );
    expect(decodeBatch(event({}), topic).records[0]).toMatchObject({ ranges: [[4, 6]] });
    rejects(() => decodeBatch(event({ ranges: [[6, 4]] }), topic), /ranges\[0\] must be \[from, to\]/);
    rejects(() => decodeBatch(event({ ranges: [] }), topic), /ranges must be a non-empty array/);
    rejects(() => decodeBatch(event({ stream: 5 }), topic), /stream must be a stream name/);
    // other event types are stored as they are
    expect(decodeBatch(json(batch({ stream: 'events', records: [{ seq: 1, ts: 1, type: 'storage-recovered' }] })), topic).records).toHaveLength(1);
  });

  it('checks records-unavailable events the same way, and they follow the contract', () => {
    const topic = 'forewarn/v1/press-7/events';
    const record = {
      seq: 1,
      ts: 1,
      type: 'records-unavailable',
      stream: 'telemetry',
      ranges: [
        [4, 6],
        [9, 9],
      ],
      reason: 'purged',
    };
    const event = (over: Record<string, unknown>) => json(batch({ stream: 'events', records: [{ ...record, ...over }] }));
    expect(parseUnavailable(decodeBatch(event({}), topic).records[0]!)).toEqual({
      stream: 'telemetry',
      ranges: [
        [4, 6],
        [9, 9],
      ],
      reason: 'purged',
    });
    expect(contractErrors(topic, { schemaVersion: 1, agentId: 'press-7', stream: 'events', bootSeq: 3, records: [record] })).toEqual([]);
    rejects(() => decodeBatch(event({ ranges: [[0, 4]] }), topic), /records-unavailable ranges\[0\] must be \[from, to\]/);
    rejects(() => decodeBatch(event({ ranges: [[5, 4]] }), topic), /records-unavailable ranges\[0\]/);
    rejects(() => decodeBatch(event({ ranges: 'all' }), topic), /records-unavailable ranges must be a non-empty array/);
    rejects(() => decodeBatch(event({ stream: '' }), topic), /records-unavailable stream must be a stream name/);
    expect(parseUnavailable({ seq: 1, ts: 1, type: 'records-dropped' })).toBeUndefined();
  });

  it('reads why a fresh agent database started and how many records it carried, defaulting what older agents leave out', () => {
    const recovered = {
      seq: 2_000_000,
      ts: 1,
      type: 'storage-recovered',
      cause: 'removed',
      reason: 'the database file was deleted',
      setAside: '',
      firstSeq: 2_000_000,
      carried: 12,
    };
    expect(parseStorageRecovered(recovered)).toEqual({ firstSeq: 2_000_000, setAside: '', cause: 'removed', carried: 12, carriedRanges: new Map() });
    // The carried seqs per stream, as far as they are well-formed and below firstSeq.
    const withRanges = {
      ...recovered,
      carriedRanges: {
        telemetry: [
          [5, 9],
          [12, 20],
        ],
        risk: [[1, 1]],
      },
    };
    expect(
      parseStorageRecovered({
        ...withRanges,
        carriedRanges: {
          ...withRanges.carriedRanges,
          events: [[3, 2]],
          telemetry: [
            [5, 9],
            [12, 20],
            [1, 2_000_000],
          ],
          nope: [[1, 2]],
        },
      })!.carriedRanges,
    ).toEqual(
      new Map([
        [
          'telemetry',
          [
            [5, 9],
            [12, 20],
          ],
        ],
        ['risk', [[1, 1]]],
      ]),
    );
    expect(contractErrors('forewarn/v1/press-7/events', { schemaVersion: 1, agentId: 'press-7', stream: 'events', bootSeq: 3, records: [withRanges] })).toEqual(
      [],
    );
    expect(contractErrors('forewarn/v1/press-7/events', { schemaVersion: 1, agentId: 'press-7', stream: 'events', bootSeq: 3, records: [recovered] })).toEqual(
      [],
    );
    expect(parseStorageRecovered({ seq: 9, ts: 1, type: 'storage-recovered', reason: 'SQLITE_CORRUPT', setAside: '/x.bad', firstSeq: 9 })).toEqual({
      firstSeq: 9,
      setAside: '/x.bad',
      cause: 'unknown',
      carried: 0,
      carriedRanges: new Map(),
    });
    expect(parseStorageRecovered({ seq: 9, ts: 1, type: 'storage-recovered', firstSeq: 0 })).toBeUndefined();
    expect(
      contractErrors('forewarn/v1/press-7/events', {
        schemaVersion: 1,
        agentId: 'press-7',
        stream: 'events',
        bootSeq: 3,
        records: [{ ...recovered, cause: 'gone' }],
      }),
    ).not.toEqual([]);
  });
});

describe('decodeStatus', () => {
  const topic = 'forewarn/v1/press-7/status';
  const status = { schemaVersion: 1, agentId: 'press-7', state: 'online', ts: 5, bootSeq: 2, agentVersion: '0.1.0' };

  it('decodes a status and treats an empty retained payload as cleared', () => {
    expect(decodeStatus(json(status), topic)).toMatchObject({ agentId: 'press-7', state: 'online', bootSeq: 2, ts: 5 });
    expect(decodeStatus(Buffer.alloc(0), topic)).toBeNull();
  });

  it('rejects a status with a wrong state or agent id', () => {
    rejects(() => decodeStatus(json({ ...status, state: 'maybe' }), topic), /state must be/);
    rejects(() => decodeStatus(json({ ...status, agentId: 'x' }), topic), /agentId "x" does not match/);
  });
});
