import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { Reading } from '../../../../agent/src/core/types.js';
import {
  DEFAULT_SMART_SOURCE_CONFIG,
  SMARTCTL_READ_ARGS,
  SMARTCTL_SCAN_ARGS,
  SmartSource,
  type SmartSourceConfig,
  hasCapability,
  parseDeviceSpec,
} from '../../../../agent/src/sources/smart/smart-source.js';
import { SMARTCTL_JSON_FORMAT_MAJOR, parseSmartctlDevice } from '../../../../agent/src/sources/smart/smartctl-parsers.js';
import { runTool } from '../../../../agent/src/sources/run-tool.js';
import { SourceUnavailableError } from '../../../../agent/src/sources/interval-source.js';
import { captureLogger } from '../../../helpers/capture-logger.js';

const FAKE = fileURLToPath(new URL('./fake-smartctl.mjs', import.meta.url));
const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const T0 = 1_700_000_000_000;

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function setup(set: string, cfg: Partial<SmartSourceConfig> = {}, deps: { euid?: number; hasRawIo?: boolean | null } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-smart-'));
  dirs.push(dir);
  const argvLog = path.join(dir, 'argv.jsonl');
  const env: NodeJS.ProcessEnv = { ...process.env, FAKE_SMARTCTL_SET: set, FAKE_SMARTCTL_ARGV_LOG: argvLog };
  const sunk: Reading[] = [];
  const logs = captureLogger();
  const src = new SmartSource({ binary: FAKE, timeoutMs: 10_000, ...cfg }, (r) => sunk.push(r), logs.log, { env, ...deps });
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
  return { src, sunk, logs, env, argv };
}

describe('SmartSource through a fake smartctl answering from recorded fixtures', () => {
  it("scans, reads each disk with the exporter's flags, and files one Reading per readable disk", async () => {
    const { src, logs, argv } = setup('server');
    const { readings, summary } = await src.collect(T0);
    expect(readings.map((r) => r.asset)).toEqual(['disk-9VMQ4K7A', 'disk-WD-WCC4M3KJ7Y1H', 'disk-S1E7NEAD600123', 'disk-9VMQ2X1B', 'disk-S4EUNX0N912345D']);
    expect(readings.every((r) => r.ts === T0 && r.source === 'smart')).toBe(true);
    expect(readings[3]?.metrics).toMatchObject({ 'smart.passed': 0, 'smart.5.raw': 3992, 'smart.197.raw': 48, 'disk.smartctl_exit_status': 88 });
    expect(readings[4]?.metrics).toMatchObject({ 'nvme.num_err_log_entries': 22, 'disk.temperature_c': 35 });
    expect(summary).toMatchObject({ devices: 8, readable: 5, standby: 1, failed: 2 });
    expect(summary.perDevice.filter((d) => d.state !== 'ok')).toEqual([
      { device: '/dev/sde', state: 'unreadable', reason: 'Read Device Identity failed: scsi error unsupported field in scsi command', asset: null },
      { device: '/dev/sdf', state: 'standby', reason: 'Device is in STANDBY mode, exit(2)', asset: null },
      { device: '/dev/sdg', state: 'unreadable', reason: 'smartctl --scan-open could not open it: Unknown USB bridge [0x152d:0x0578 (0x214)]', asset: null },
    ]);
    // The device that failed --scan-open is not read again; everything else exactly once, with the documented flags.
    const calls = argv();
    expect(calls[0]).toEqual([...SMARTCTL_SCAN_ARGS]);
    expect(calls.slice(1)).toEqual(
      ['sda', 'sdb', 'sdc', 'sdd', 'sde', 'sdf']
        .map((d) => [...SMARTCTL_READ_ARGS, '--device=sat', `/dev/${d}`])
        .concat([[...SMARTCTL_READ_ARGS, '--device=nvme', '/dev/nvme0']]),
    );
    // Inventory once per disk; one line per disk that is not ok.
    const inventory = logs.lines.filter((l) => l.msg === 'disk inventory');
    expect(inventory.map((l) => [l.device, l.model])).toEqual([
      ['/dev/sda', 'ST3500418AS'],
      ['/dev/sdb', 'WDC WD20EFRX-68EUZN0'],
      ['/dev/sdc', 'SAMSUNG MZ7WD240HAFV-00003'],
      ['/dev/sdd', 'ST3500418AS'],
      ['/dev/nvme0', 'Samsung SSD 970 EVO Plus 250GB'],
    ]);
    expect(logs.lines.filter((l) => l.msg?.toString().startsWith('disk unreadable')).map((l) => l.device)).toEqual(['/dev/sde', '/dev/sdg']);
    expect(logs.lines.filter((l) => l.msg?.toString().startsWith('disk asleep')).map((l) => l.device)).toEqual(['/dev/sdf']);
  });

  it('reuses the scan until rescanIntervalMs has passed; logs nothing new when nothing changed', async () => {
    const { src, logs, argv } = setup('server', { rescanIntervalMs: 60_000 });
    await src.collect(T0);
    const linesAfterFirst = logs.lines.length;
    await src.collect(T0 + 30_000);
    expect(argv().filter((a) => a.includes('--scan-open'))).toHaveLength(1);
    expect(logs.lines.length).toBe(linesAfterFirst);
    await src.collect(T0 + 61_000);
    expect(argv().filter((a) => a.includes('--scan-open'))).toHaveLength(2);
  });

  it('3 of 4 disks readable: 3 readings, 1 failure counted, logged once, not an error of the source', async () => {
    const { src, logs } = setup('three-of-four', { devices: ['/dev/sda -d sat', '/dev/sdb;sat', '/dev/sde -d sat', '/dev/nvme0 -d nvme'] });
    const first = await src.collect(T0);
    expect(first.readings).toHaveLength(3);
    expect(first.summary).toMatchObject({ devices: 4, readable: 3, standby: 0, failed: 1 });
    expect(src.stats.errors).toBe(1);
    const second = await src.collect(T0 + 1);
    expect(second.readings).toHaveLength(3);
    expect(second.summary.failed).toBe(1);
    expect(src.stats.errors).toBe(1); // the same failure is not counted or logged again
    expect(logs.lines.filter((l) => l.msg?.toString().startsWith('disk unreadable'))).toHaveLength(1);
  });

  it('logs a disk that changes state, once per change', async () => {
    const { src, logs, env } = setup('three-of-four', { devices: ['/dev/sda', '/dev/sde', '/dev/nvme0'] });
    await src.collect(T0);
    env.FAKE_SMARTCTL_SET = 'four-of-four';
    const back = await src.collect(T0 + 1);
    expect(back.readings.map((r) => r.asset)).toEqual(['disk-9VMQ4K7A', 'disk-S1E7NEAD600123', 'disk-S4EUNX0N912345D']);
    env.FAKE_SMARTCTL_SET = 'three-of-four-standby';
    const asleep = await src.collect(T0 + 2);
    expect(asleep.summary).toMatchObject({ readable: 2, standby: 1, failed: 0 });
    await src.collect(T0 + 3);
    const sde = logs.lines.filter((l) => l.device === '/dev/sde').map((l) => l.msg);
    expect(sde).toEqual([
      'disk unreadable; the other disks are still read',
      'disk inventory',
      'disk readable again',
      'disk asleep; not woken, skipped this time',
    ]);
  });

  it('garbage from smartctl: the disks that parse are read, the rest counted, nothing thrown', async () => {
    const { src } = setup('garbage', { devices: ['/dev/sda', '/dev/sdb', '/dev/sdc', '/dev/sdd', '/dev/sde', '/dev/sdf', '/dev/nvme0'] });
    const { readings, summary } = await src.collect(T0);
    expect(summary).toMatchObject({ devices: 7, readable: 2, failed: 5 });
    // wrong-types.json has no usable serial: filed under the device name.
    expect(readings.map((r) => r.asset)).toEqual(['disk-dev-sde', 'disk-S4EUNX0N912345D']);
    for (const r of readings) for (const v of Object.values(r.metrics)) expect(Number.isFinite(v)).toBe(true);
  });

  it('a hung smartctl is killed at timeoutMs and counted; the next disk is still read', async () => {
    const { src } = setup('hung', { devices: ['/dev/sda', '/dev/nvme0'], timeoutMs: 700 });
    const started = Date.now();
    const { readings, summary } = await src.collect(T0);
    expect(Date.now() - started).toBeLessThan(4000);
    expect(readings.map((r) => r.asset)).toEqual(['disk-S4EUNX0N912345D']);
    expect(summary.perDevice[0]).toMatchObject({ state: 'unreadable', reason: 'smartctl timed out after 700 ms' });
  });

  it('every disk denied to a non-root agent: unavailable, saying what to grant', async () => {
    const { src } = setup('permission-denied', { devices: ['/dev/sda', '/dev/sdb'] }, { euid: 1000, hasRawIo: false });
    const err = await src.collect(T0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceUnavailableError);
    expect(String((err as Error).message)).toMatch(/permission denied\) running as uid 1000 without CAP_SYS_RAWIO: SMART needs root, or CAP_SYS_RAWIO/);
    expect(src.lastSummary?.perDevice[0]?.reason).toBe(
      'Smartctl open device: /dev/sda [SAT] failed: Permission denied (not root: needs CAP_SYS_RAWIO and read access to /dev/sda)',
    );
  });

  it('no disks at all (the real scan recorded on this VM) is unavailable; an unreadable scan is a failure', async () => {
    await expect(setup('vm-empty').src.collect(T0)).rejects.toBeInstanceOf(SourceUnavailableError);
    const err = await setup('scan-garbage')
      .src.collect(T0)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(SourceUnavailableError);
    expect((err as Error).message).toMatch(/no usable output/);
  });

  it('smartctl absent: unavailable, logged once however many times the scheduler retries', async () => {
    const { src, logs, sunk } = setup('server', { binary: '/nonexistent/smartctl', intervalMs: 5 });
    await expect(src.collect(T0)).rejects.toThrow(/smartctl not found/);
    await src.start();
    await new Promise((r) => setTimeout(r, 250));
    await src.stop();
    expect(src.stats.state).toBe('stopped');
    expect(src.stats.errors).toBeGreaterThanOrEqual(2); // retried now and then …
    expect(logs.lines.filter((l) => l.code === 'FW_ERR_SOURCE_UNAVAILABLE')).toHaveLength(1); // … reported once
    expect(sunk).toEqual([]);
  });

  it('runs under the IntervalSource scheduler and pushes readings to the sink', async () => {
    const { src, sunk } = setup('four-of-four', { devices: ['/dev/sda', '/dev/nvme0'], intervalMs: 60_000 });
    await src.start();
    for (let i = 0; i < 100 && sunk.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    await src.stop();
    expect(sunk.map((r) => r.asset)).toEqual(['disk-9VMQ4K7A', 'disk-S4EUNX0N912345D']);
    expect(src.stats.samples).toBe(1);
  });
});

describe('helpers', () => {
  it("parseDeviceSpec accepts what --scan prints and the exporter's dev;type form", () => {
    expect(parseDeviceSpec('/dev/sda')).toEqual({ name: '/dev/sda', type: 'auto', protocol: null, openError: null });
    expect(parseDeviceSpec('/dev/sda -d sat # /dev/sda [SAT], ATA device')?.type).toBe('sat');
    expect(parseDeviceSpec('/dev/bus/0 -d megaraid,1')).toMatchObject({ name: '/dev/bus/0', type: 'megaraid,1' });
    expect(parseDeviceSpec('/dev/sdb;sat')?.type).toBe('sat');
    expect(parseDeviceSpec('/dev/sdb --device=nvme')?.type).toBe('nvme');
    expect(parseDeviceSpec('sda')).toBeNull();
    expect(parseDeviceSpec('')).toBeNull();
  });

  it('hasCapability reads CapEff', () => {
    expect(hasCapability(17, 'Name:\tx\nCapEff:\t000001ffffffffff\n')).toBe(true);
    expect(hasCapability(17, 'CapEff:\t0000000000000000\n')).toBe(false);
    expect(hasCapability(17, 'nothing here')).toBeNull();
  });

  it('runTool reports a missing binary instead of rejecting', async () => {
    const r = await runTool('/nonexistent/tool', [], { timeoutMs: 1000 });
    expect(r.spawnError?.code).toBe('ENOENT');
  });

  it('the default configuration is the documented one', () => {
    expect(DEFAULT_SMART_SOURCE_CONFIG).toEqual({
      enabled: true,
      intervalMs: 600_000,
      timeoutMs: 30_000,
      binary: 'smartctl',
      devices: [],
      rescanIntervalMs: 3_600_000,
    });
  });
});

describe('the flags against smartctl itself', () => {
  const recordedHelp = readFileSync(path.join(FIXTURES, 'smartctl-7.3-help.txt'), 'utf8');
  const helpFlags = (help: string) => new Set([...help.matchAll(/--[a-z-]+/g)].map((m) => m[0]));

  it("every flag the source passes is in smartctl 7.3's --help (recorded on the VM)", () => {
    const known = helpFlags(recordedHelp);
    for (const arg of [...SMARTCTL_READ_ARGS, ...SMARTCTL_SCAN_ARGS, '--device=sat']) expect(known, arg).toContain(arg.split('=')[0]);
    expect(recordedHelp).toMatch(/Tolerance: normal, conservative, permissive, verypermissive/);
    expect(recordedHelp).toMatch(/No check if: never, sleep, standby, idle/);
  });

  let realSmartctl: string | null = null;
  try {
    realSmartctl = execFileSync('sh', ['-c', 'command -v smartctl'], { encoding: 'utf8' }).trim() || null;
  } catch {
    realSmartctl = null;
  }

  it.skipIf(!realSmartctl)('the installed smartctl accepts the read flags and its scan parses', async () => {
    const help = await runTool(realSmartctl!, ['--help'], { timeoutMs: 10_000 });
    const known = helpFlags(help.stdout);
    for (const arg of SMARTCTL_READ_ARGS) expect(known, arg).toContain(arg.split('=')[0]);
    // A device that does not exist: smartctl parses the whole command line and fails at the open (bit 1), not bit 0.
    const res = await runTool(realSmartctl!, [...SMARTCTL_READ_ARGS, '--device=sat', '/dev/fw-no-such-disk'], { timeoutMs: 10_000 });
    const parsed = JSON.parse(res.stdout) as { smartctl: { exit_status: number } };
    expect(parsed.smartctl.exit_status & 1).toBe(0);
    expect(parsed.smartctl.exit_status & 2).toBe(2);
    const scan = await runTool(realSmartctl!, SMARTCTL_SCAN_ARGS, { timeoutMs: 10_000 });
    expect(() => JSON.parse(scan.stdout)).not.toThrow();
  });

  it.skipIf(!realSmartctl)("the installed smartctl writes the JSON format this parser reads (json_format_version's major)", async () => {
    const res = await runTool(realSmartctl!, ['--json', '--version'], { timeoutMs: 10_000 });
    const doc = JSON.parse(res.stdout) as { json_format_version: [number, number]; smartctl: { version: [number, number] } };
    expect(doc.json_format_version[0]).toBe(SMARTCTL_JSON_FORMAT_MAJOR);
    expect(doc.smartctl.version[0]).toBeGreaterThanOrEqual(7);
  });

  it.skipIf(!realSmartctl || process.getuid?.() !== 0)(
    'reads a file-backed loop device with the real smartctl: no SMART, said clearly, no crash (root)',
    async (ctx) => {
      const dir = mkdtempSync(path.join(tmpdir(), 'fw-smart-loop-'));
      const image = path.join(dir, 'disk.img');
      execFileSync('truncate', ['-s', '8M', image]);
      let loop: string;
      try {
        loop = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim();
      } catch (err) {
        rmSync(dir, { recursive: true, force: true });
        return ctx.skip(`cannot attach a loop device here: ${String(err).split('\n')[0]}`);
      }
      try {
        const res = await runTool(realSmartctl!, [...SMARTCTL_READ_ARGS, loop], { timeoutMs: 10_000 });
        const report = parseSmartctlDevice(res.stdout, res.code);
        expect(report.problems).toEqual([]);
        expect(report.state).toBe('unreadable');
        expect(report.reason).toMatch(new RegExp(`^${loop}: `));
        expect(report.exit.raw & 2 || report.exit.raw & 1).toBeTruthy();
      } finally {
        execFileSync('losetup', ['-d', loop]);
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
