import { describe, expect, it } from 'vitest';
import { deviceId, recordMetrics, unitOf } from '../../../../agent/src/sync/sparkplug/sparkplug-metrics.js';
import { DataType } from '../../../../agent/src/sync/sparkplug/sparkplug-codec.js';

describe('Sparkplug metrics from outbox records', () => {
  const rec = (stream: 'telemetry' | 'risk' | 'alerts' | 'events', payload: unknown) => ({ stream, ts: 42, json: JSON.stringify(payload) });

  it('maps telemetry signals to Doubles with units, skipping non-finite values', () => {
    const out = recordMetrics(rec('telemetry', { ts: 10, metrics: { spindle_speed: 1500, air_temp_k: 300, odd: 'x', gpu0_temp_c: 61 } }), {
      spindle_speed: 'rpm',
    });
    expect(out).toEqual([
      { name: 'spindle_speed', datatype: DataType.Double, value: 1500, ts: 10, unit: 'rpm' },
      { name: 'air_temp_k', datatype: DataType.Double, value: 300, ts: 10, unit: 'K' },
      { name: 'gpu0_temp_c', datatype: DataType.Double, value: 61, ts: 10, unit: '°C' },
    ]);
  });

  it('maps risk to score or RUL plus atRisk, and an alert to a Boolean per rule and subject', () => {
    expect(recordMetrics(rec('risk', { ts: 1, model: 'turbofan-rul', kind: 'rul', score: 87, atRisk: false }), {})).toEqual([
      { name: 'risk/turbofan-rul/rul', datatype: DataType.Double, value: 87, ts: 1, unit: 'cycles' },
      { name: 'risk/turbofan-rul/atRisk', datatype: DataType.Boolean, value: false, ts: 1 },
    ]);
    expect(recordMetrics(rec('alerts', { ts: 2, rule: 'smart-reallocated', subject: 'sda', state: 'raised' }), {})).toEqual([
      { name: 'alerts/smart-reallocated/sda', datatype: DataType.Boolean, value: true, ts: 2 },
    ]);
    expect(recordMetrics(rec('alerts', { ts: 3, rule: 'x', state: 'cleared' }), {})[0]!.value).toBe(false);
  });

  it('maps nothing from events or malformed payloads', () => {
    expect(recordMetrics(rec('events', { type: 'storage-recovered' }), {})).toEqual([]);
    expect(recordMetrics({ stream: 'telemetry', ts: 1, json: '{not json' }, {})).toEqual([]);
    expect(recordMetrics(rec('risk', { model: 'm' }), {})).toEqual([]);
  });

  it('keeps MQTT wildcards and separators out of device ids, and names an empty asset', () => {
    expect(deviceId('line/1+a#')).toBe('line_1_a_');
    expect(deviceId('')).toBe('agent');
    expect(unitOf('vibration_mm_s', {})).toBe('mm/s');
    expect(unitOf('load.1m', {})).toBeUndefined();
  });
});
