import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sparkplug from 'sparkplug-payload';
import { describe, expect, it } from 'vitest';
import { DataType, loadSparkplugCodec } from '../../../../agent/src/sync/sparkplug/sparkplug-codec.js';
import { num } from '../../../helpers/sparkplug-host.js';

/** Our protobufjs encoder, checked against Eclipse Tahu's own decoder (sparkplug-payload), and the other way round. */

const tahu = sparkplug.get('spBv1.0')!;

describe('Sparkplug B codec', () => {
  it('encodes what Tahu decodes field for field: types, aliases, timestamps, historical flag, properties', async () => {
    const codec = await loadSparkplugCodec();
    const bytes = codec.encode({
      timestamp: 1_700_000_000_123,
      seq: 255,
      metrics: [
        { name: 'bdSeq', timestamp: 1_700_000_000_000, datatype: DataType.Int64, value: 17 },
        { name: 'Node Control/Rebirth', timestamp: 1, datatype: DataType.Boolean, value: false },
        { name: 'air_temp_k', alias: 7, timestamp: 2, datatype: DataType.Double, value: 300.25, properties: { engUnit: 'K' } },
        { alias: 8, timestamp: 3, datatype: DataType.Double, value: -1.5, isHistorical: true },
        { name: 'Properties/Agent version', timestamp: 4, datatype: DataType.String, value: '1.2.3' },
      ],
    });
    const p = tahu.decodePayload(bytes);
    expect(num(p.timestamp)).toBe(1_700_000_000_123);
    expect(num(p.seq)).toBe(255);
    const [bd, rebirth, temp, hist, version] = p.metrics!;
    expect(bd).toMatchObject({ name: 'bdSeq', type: 'Int64' });
    expect(num(bd!.value)).toBe(17);
    expect(num(bd!.timestamp)).toBe(1_700_000_000_000);
    expect(rebirth).toMatchObject({ name: 'Node Control/Rebirth', type: 'Boolean', value: false });
    expect(rebirth!.alias ?? null).toBeNull();
    expect(temp).toMatchObject({ name: 'air_temp_k', type: 'Double', value: 300.25, properties: { engUnit: { type: 'String', value: 'K' } } });
    expect(num(temp!.alias)).toBe(7);
    expect(hist).toMatchObject({ type: 'Double', value: -1.5, isHistorical: true });
    expect(hist!.name ?? null).toBeNull();
    expect(version).toMatchObject({ type: 'String', value: '1.2.3' });
  });

  it('leaves seq out when asked (NDEATH) and reads an NCMD that Tahu encoded', async () => {
    const codec = await loadSparkplugCodec();
    const death = tahu.decodePayload(codec.encode({ timestamp: 5, metrics: [{ name: 'bdSeq', datatype: DataType.Int64, value: 3 }] }));
    expect(death.seq ?? null).toBeNull();
    const ncmd = codec.decode(tahu.encodePayload({ timestamp: 9, metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }] }));
    expect(ncmd.timestamp).toBe(9);
    expect(ncmd.metrics).toEqual([{ name: 'Node Control/Rebirth', alias: null, datatype: DataType.Boolean, value: true }]);
  });

  it('refuses garbage with a decode error, and a missing schema with FW_ERR_SPARKPLUG_PROTO', async () => {
    const codec = await loadSparkplugCodec();
    expect(() => codec.decode(Buffer.from([0x0a, 0xff, 0xff, 0xff]))).toThrow();
    await expect(loadSparkplugCodec('/nonexistent/sparkplug_b.proto')).rejects.toMatchObject({ code: 'FW_ERR_SPARKPLUG_PROTO' });
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-proto-'));
    writeFileSync(path.join(dir, 'bad.proto'), 'syntax = "proto2"; message {');
    await expect(loadSparkplugCodec(path.join(dir, 'bad.proto'))).rejects.toMatchObject({ code: 'FW_ERR_SPARKPLUG_PROTO' });
  });
});
