import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { HealthEvent, Reading } from '../../../../agent/src/core/types.js';
import {
  DEFAULT_IPMI_SOURCE_CONFIG,
  IPMITOOL_SDR_ARGS,
  IPMITOOL_SEL_ARGS,
  IpmiSource,
  type IpmiSourceConfig,
} from '../../../../agent/src/sources/ipmi/ipmi-source.js';
import { SourceUnavailableError } from '../../../../agent/src/sources/interval-source.js';
import { captureLogger } from '../../../helpers/capture-logger.js';

const FAKE = fileURLToPath(new URL('./fake-ipmitool.mjs', import.meta.url));
const T0 = 1_700_000_000_000;

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function setup(set: string, cfg: Partial<IpmiSourceConfig> = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-ipmi-'));
  dirs.push(dir);
  const devNode = path.join(dir, 'ipmi0'); // stands in for /dev/ipmi0: the source only checks that it exists
  writeFileSync(devNode, '');
  const argvLog = path.join(dir, 'argv.jsonl');
  const env: NodeJS.ProcessEnv = { ...process.env, FAKE_IPMITOOL_SET: set, FAKE_IPMITOOL_ARGV_LOG: argvLog };
  const sunk: Reading[] = [];
  const events: HealthEvent[] = [];
  const logs = captureLogger();
  const src = new IpmiSource(
    { binary: FAKE, devicePaths: [devNode], asset: 'edge-7', timeoutMs: 10_000, ...cfg },
    (r) => sunk.push(r),
    (e) => events.push(e),
    logs.log,
    env,
  );
  const argv = (): string[][] => {
    try {
      return readFileSync(argvLog, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as string[]);
    } catch {
      return [];
    }
  };
  return { src, sunk, events, logs, env, argv };
}

describe('IpmiSource through a fake ipmitool answering from recorded fixtures', () => {
  it('sensors as one Reading; the SEL already there is counted, not replayed', async () => {
    const { src, events, logs, argv } = setup('supermicro-t0');
    const { readings, events: emitted } = await src.collect(T0);
    expect(readings).toHaveLength(1);
    expect(readings[0]).toMatchObject({ ts: T0, source: 'ipmi', asset: 'edge-7' });
    expect(readings[0]?.metrics).toMatchObject({ 'bmc.cpu1_temp.celsius': 33, 'bmc.fan4.ok': 0, 'bmc.ps2_status.ok': 0, 'bmc.sel_entries': 10 });
    expect(emitted).toEqual([]);
    expect(events).toEqual([]);
    expect(argv()).toEqual([[...IPMITOOL_SDR_ARGS], [...IPMITOOL_SEL_ARGS]]);
    const note = logs.lines.find((l) => l.msg === 'BMC event log read; existing entries counted, not replayed');
    expect(note).toMatchObject({ entries: 10, lastId: 'a' });
  });

  it('new SEL entries become bmc.sel HealthEvents, each once', async () => {
    const { src, events, env } = setup('supermicro-t0');
    await src.collect(T0);
    env.FAKE_IPMITOOL_SET = 'supermicro-t1';
    await src.collect(T0 + 60_000);
    expect(events).toEqual([
      {
        ts: T0 + 60_000,
        source: 'ipmi',
        asset: 'edge-7',
        type: 'bmc.sel',
        message: 'Memory #0x87: Correctable ECC (P1-DIMMB1) (Asserted)',
        attributes: { sensor: 'Memory #0x87', event: 'Correctable ECC (P1-DIMMB1)', direction: 'Asserted', selId: 'b', bmcTime: '03/02/2021 04:17:55' },
      },
      {
        ts: T0 + 60_000,
        source: 'ipmi',
        asset: 'edge-7',
        type: 'bmc.sel',
        message: 'Temperature CPU1 Temp: Upper Critical going high (Asserted), Reading 96 > Threshold 95 degrees C',
        attributes: {
          sensor: 'Temperature CPU1 Temp',
          event: 'Upper Critical going high',
          direction: 'Asserted',
          selId: 'c',
          bmcTime: '03/02/2021 04:18:40',
          detail: 'Reading 96 > Threshold 95 degrees C',
        },
      },
      {
        ts: T0 + 60_000,
        source: 'ipmi',
        asset: 'edge-7',
        type: 'bmc.sel',
        message: 'Power Supply PS2 Status: Power Supply AC lost (Asserted)',
        attributes: { sensor: 'Power Supply PS2 Status', event: 'Power Supply AC lost', direction: 'Asserted', selId: 'd', bmcTime: '03/02/2021 04:21:13' },
      },
    ]);
    await src.collect(T0 + 120_000);
    await src.collect(T0 + 180_000);
    expect(events).toHaveLength(3);
    // Cleared: the new log's records are all new.
    env.FAKE_IPMITOOL_SET = 'supermicro-cleared';
    await src.collect(T0 + 240_000);
    expect(events.slice(3).map((e) => e.message)).toEqual([
      'Event Logging Disabled SEL Fullness: Log area reset/cleared (Asserted)',
      'Memory #0x87: Uncorrectable ECC (P1-DIMMB1) (Asserted)',
    ]);
    await src.collect(T0 + 300_000);
    expect(events).toHaveLength(5);
  });

  it('an empty SEL at start, then entries: all of them are new', async () => {
    const { src, events, env } = setup('supermicro-empty-sel');
    const first = await src.collect(T0);
    expect(first.readings[0]?.metrics['bmc.sel_entries']).toBe(0);
    env.FAKE_IPMITOOL_SET = 'supermicro-t0';
    await src.collect(T0 + 1);
    expect(events).toHaveLength(10);
  });

  it('an ipmitool without `sdr elist` falls back to `ipmitool sdr`, once and for good', async () => {
    const { src, argv, logs } = setup('old-ipmitool');
    const a = await src.collect(T0);
    expect(a.readings[0]?.metrics).toMatchObject({ 'bmc.power_supply_2.watts': 155, 'bmc.fan_6.pct': 13.72, 'bmc.sel_entries': 2 });
    await src.collect(T0 + 1);
    expect(argv().map((x) => x.join(' '))).toEqual(['sdr elist full', 'sdr', 'sel elist', 'sdr', 'sel elist']);
    expect(logs.lines.filter((l) => String(l.msg).includes('using "ipmitool sdr"'))).toHaveLength(1);
  });

  it('garbage lines: the rest is read, the problem reported once', async () => {
    const { src, logs } = setup('garbage');
    for (let i = 0; i < 3; i++) {
      const { readings } = await src.collect(T0 + i);
      expect(readings[0]?.metrics).toMatchObject({ 'bmc.cpu1_temp.celsius': 33, 'bmc.sel_entries': 2 });
    }
    expect(logs.lines.filter((l) => l.msg === 'part of the ipmitool output unusable').map((l) => l.err)).toEqual([
      'ipmitool sdr elist full: 5 line(s) not understood',
      'ipmitool sel elist: 3 line(s) not understood',
    ]);
  });

  it('binary noise from ipmitool is a failed sample, not a crash', async () => {
    const { src } = setup('noise');
    const err = await src.collect(T0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(SourceUnavailableError);
    expect((err as Error).message).toMatch(/gave no sensor/);
  });

  it('a SEL that cannot be read does not cost the sensor reading', async () => {
    const { src, logs } = setup('sel-broken');
    const { readings } = await src.collect(T0);
    expect(readings[0]?.metrics).toMatchObject({ 'bmc.ambient_temp_7_1.celsius': 19 });
    expect(readings[0]?.metrics['bmc.sel_entries']).toBeUndefined();
    expect(logs.lines.some((l) => String(l.err).includes('Get SEL Info command failed'))).toBe(true);
  });

  it('unavailable: no device node, no binary, a driver that does not answer, or no permission', async () => {
    await expect(setup('supermicro-t0', { devicePaths: ['/nonexistent/ipmi0'] }).src.collect(T0)).rejects.toThrow(/no IPMI device/);
    await expect(setup('supermicro-t0', { binary: '/nonexistent/ipmitool' }).src.collect(T0)).rejects.toThrow(/ipmitool not found/);
    const noDev = await setup('no-device')
      .src.collect(T0)
      .catch((e: unknown) => e);
    expect(noDev).toBeInstanceOf(SourceUnavailableError);
    const denied = await setup('denied')
      .src.collect(T0)
      .catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(SourceUnavailableError);
    expect((denied as Error).message).toMatch(/run as root, or give the agent's user read-write access to \/dev\/ipmi0/);
  });

  it('a hung ipmitool is killed at timeoutMs', async () => {
    const { src } = setup('hung', { timeoutMs: 500 });
    const started = Date.now();
    await expect(src.collect(T0)).rejects.toThrow(/timed out after 500 ms/);
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('unavailable is logged once under the scheduler; this VM has no /dev/ipmi0', async () => {
    const { src, logs, sunk } = setup('supermicro-t0', { devicePaths: DEFAULT_IPMI_SOURCE_CONFIG.devicePaths, intervalMs: 5 });
    await src.start();
    await new Promise((r) => setTimeout(r, 200));
    await src.stop();
    expect(sunk).toEqual([]);
    expect(src.stats.state).toBe('stopped');
    expect(logs.lines.filter((l) => l.code === 'FW_ERR_SOURCE_UNAVAILABLE')).toHaveLength(1);
  });

  it('runs under the scheduler: readings to the sink', async () => {
    const { src, sunk } = setup('supermicro-t0', { intervalMs: 60_000 });
    await src.start();
    for (let i = 0; i < 100 && !sunk.length; i++) await new Promise((r) => setTimeout(r, 20));
    await src.stop();
    expect(sunk).toHaveLength(1);
    expect(sunk[0]?.metrics['bmc.cpu1_temp.celsius']).toBe(33);
  });

  it('the default configuration', () => {
    expect(DEFAULT_IPMI_SOURCE_CONFIG).toEqual({
      enabled: true,
      intervalMs: 60_000,
      timeoutMs: 30_000,
      binary: 'ipmitool',
      devicePaths: ['/dev/ipmi0', '/dev/ipmi/0', '/dev/ipmidev/0'],
      sel: true,
      asset: '',
    });
  });
});
