import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NVIDIA_GPU_DEFAULTS, NvidiaGpuSource, type NvidiaGpuConfig, type NvidiaGpuOptions } from '../../../../agent/src/sources/gpu/nvidia-gpu-source.js';
import type { HealthEvent, Reading } from '../../../../agent/src/core/types.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { waitFor } from '../../../helpers/wait.js';

const FAKE = fileURLToPath(new URL('./fake-nvidia-smi.mjs', import.meta.url));
const fixture = (rel: string) => readFileSync(new URL(`./fixtures/${rel}`, import.meta.url), 'utf8');
const H100_ASSETS = ['0000:18:00.0', '0000:2a:00.0', '0000:3a:00.0', '0000:5d:00.0', '0000:9a:00.0', '0000:ab:00.0', '0000:ba:00.0', '0000:db:00.0'].map(
  (b) => `gpu-${b}`,
);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let tmp: string;
let source: NvidiaGpuSource | undefined;

beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'fw-gpu-'));
});

afterEach(async () => {
  await source?.stop();
  source = undefined;
  rmSync(tmp, { recursive: true, force: true });
});

function make(cfg: Partial<NvidiaGpuConfig> = {}, env: Record<string, string> = {}, opts: NvidiaGpuOptions = {}) {
  const readings: Reading[] = [];
  const events: HealthEvent[] = [];
  /** `gpu.identity` events, kept apart from the Xid events the older tests count. */
  const identities: HealthEvent[] = [];
  const { log, lines } = captureLogger('debug');
  source = new NvidiaGpuSource(
    { ...NVIDIA_GPU_DEFAULTS, intervalMs: 100, slowIntervalMs: 300, timeoutMs: 5000, binary: FAKE, kernelLog: 'off', ...cfg },
    (r) => readings.push(r),
    (e) => (e.type === 'gpu.identity' ? identities : events).push(e),
    log,
    {
      // The fake is a `#!/usr/bin/env node` script: keep this node on the children's PATH.
      env: { FAKE_NVIDIA_SMI_LOG: join(tmp, 'calls.log'), PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, ...env },
      restartBackoffMs: { initial: 200, max: 5000 },
      unavailableRetryMs: 100,
      kmsgPollMs: 20,
      ...opts,
    },
  );
  return { src: source, readings, events, identities, lines };
}

/** Invocations of the fake, from its log. */
function calls(): Array<{ t: number; pid: number; args: string[] }> {
  const file = join(tmp, 'calls.log');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { t: number; pid: number; args: string[] });
}
const loopCalls = () => calls().filter((c) => c.args.includes('-lms'));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function bySample(readings: Reading[]): Map<number, Reading[]> {
  const out = new Map<number, Reading[]>();
  for (const r of readings) out.set(r.ts, [...(out.get(r.ts) ?? []), r]);
  return out;
}

describe('NvidiaGpuSource against the fake nvidia-smi', () => {
  it('emits one reading per H100 per sample, with stable bus-id assets and slow counters merged in', async () => {
    const { src, readings } = make();
    await src.start();
    const latest = (asset: string) => [...readings].reverse().find((r) => r.asset === asset);
    await waitFor(
      () => bySample(readings).size >= 3 && latest('gpu-0000:ba:00.0')?.metrics['gpu.nvlink.3.crc_errors'] !== undefined,
      'three samples with slow counters',
    );

    const samples = [...bySample(readings).values()];
    for (const sample of samples) {
      expect(sample.map((r) => r.asset)).toEqual(H100_ASSETS);
      expect(sample.map((r) => r.metrics['gpu.index'])).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(sample.every((r) => r.source === 'nvidia-gpu')).toBe(true);
    }
    const gpu0 = latest('gpu-0000:18:00.0')!;
    expect(gpu0.metrics).toMatchObject({
      'gpu.temperature_c': 30,
      'gpu.memory_temperature_c': 36,
      'gpu.power.draw_w': 100.89,
      'gpu.power.limit_w': 700,
      'gpu.memory.used_bytes': 1048576,
      'gpu.pstate': 0,
      'gpu.throttle.hw_slowdown': 0,
      'gpu.ecc.aggregate.uncorrected': 0,
      'gpu.lost': 0,
      'gpu.pcie.replays': 7,
      'gpu.remapped_rows.pending': 0,
      'gpu.recovery_action': 0,
      'gpu.nvlink.17.recovery_errors': 1,
    });
    expect(gpu0.metrics).not.toHaveProperty('gpu.fan_pct');
    expect(latest('gpu-0000:ba:00.0')!.metrics).toMatchObject({
      'gpu.index': 6,
      'gpu.pcie.replays': 15,
      'gpu.nvlink.3.crc_errors': 12,
      'gpu.nvlink.crc_errors_total': 12,
    });
    expect(Object.values(gpu0.metrics).every(Number.isFinite)).toBe(true);
    expect(src.stats).toMatchObject({ state: 'running', gpus: 8, restarts: 0, partialFailures: 0, problems: 0, errors: 0 });

    // One help call, then ONE long-lived -lms child asking exactly for the fields this driver knows.
    expect(calls().filter((c) => c.args.includes('--help-query-gpu'))).toHaveLength(1);
    const [loop] = loopCalls();
    expect(loopCalls()).toHaveLength(1);
    expect(loop!.args.slice(1)).toEqual(['--format=csv,noheader,nounits', '-lms', '100']);
    expect(loop!.args[0]).toContain('clocks_event_reasons.hw_slowdown');
    expect(calls().some((c) => c.args[0] === 'nvlink' && c.args[1] === '-e')).toBe(true);
    expect(calls().some((c) => c.args.includes('-q'))).toBe(true);

    await src.stop();
    await waitFor(() => !alive(loop!.pid), 'the -lms child to be gone after stop()', 3000);
    const n = readings.length;
    await sleep(300);
    expect(readings.length).toBe(n);
    expect(src.stats.state).toBe('stopped');
  });

  it('asks an older driver for clocks_throttle_reasons.* (the fake rejects unknown fields, as nvidia-smi does)', async () => {
    const { src, readings } = make({}, { FAKE_NVIDIA_SMI_SET: 'v100' });
    await src.start();
    await waitFor(() => readings.find((r) => r.metrics['gpu.pcie.replays'] !== undefined), 'a V100 reading with -q counters');
    const r = readings.at(-1)!;
    expect(r.asset).toBe('gpu-0000:d8:00.0');
    expect(r.metrics).toMatchObject({
      'gpu.throttle.hw_slowdown': 0,
      'gpu.retired_pages.sbe': 1,
      'gpu.retired_pages.dbe': 1,
      'gpu.pcie.replays': 3,
      'gpu.pcie.link_gen': 3,
    });
    expect(r.metrics).not.toHaveProperty('gpu.remapped_rows.pending'); // [N/A] on V100
    expect(loopCalls()[0]!.args[0]).toContain('clocks_throttle_reasons.hw_slowdown');
    expect(loopCalls()[0]!.args[0]).not.toContain('clocks_event_reasons');
    expect(src.stats).toMatchObject({ state: 'running', restarts: 0, problems: 0 });
  });

  it("finds nvidia-smi on PATH; a consumer card's [Not Supported] fields are absent, not zero", async () => {
    const bin = join(tmp, 'bin');
    mkdirSync(bin);
    symlinkSync(FAKE, join(bin, 'nvidia-smi'));
    const { src, readings } = make(
      { binary: 'nvidia-smi' },
      { FAKE_NVIDIA_SMI_SET: 'rtx4090', PATH: `${bin}:${dirname(process.execPath)}:${process.env.PATH ?? ''}` },
    );
    await src.start();
    await waitFor(() => readings.filter((r) => r.asset === 'gpu-0000:23:00.0').length >= 2, 'readings from the second RTX 4090');
    const busy = readings.filter((r) => r.asset === 'gpu-0000:23:00.0').at(-1)!;
    expect(busy.metrics).toMatchObject({ 'gpu.utilization_pct': 97, 'gpu.throttle.sw_power_cap': 1, 'gpu.ecc.mode': 0 });
    for (const m of ['gpu.ecc.volatile.corrected', 'gpu.ecc.aggregate.uncorrected', 'gpu.retired_pages.pending', 'gpu.memory_temperature_c'])
      expect(busy.metrics).not.toHaveProperty(m);
  });

  it('restarts the -lms child with exponential backoff each time it dies', async () => {
    const { src, readings, lines } = make({}, { FAKE_NVIDIA_SMI_SET: 't4', FAKE_NVIDIA_SMI_DIE_AFTER: '2' });
    await src.start();
    await waitFor(() => loopCalls().length >= 4, 'four -lms starts', 20_000);
    const delays = lines.filter((l) => l.msg === 'restarting nvidia-smi -lms').map((l) => l.delayMs);
    expect(delays.slice(0, 3)).toEqual([200, 400, 800]);
    const starts = loopCalls().map((c) => c.t);
    for (let i = 1; i < 4; i++) expect(starts[i]! - starts[i - 1]!).toBeGreaterThanOrEqual(delays[i - 1] as number);
    expect(src.stats.restarts).toBeGreaterThanOrEqual(3);
    // Each child still delivered its samples.
    expect(new Set(readings.map((r) => r.ts)).size).toBeGreaterThanOrEqual(6);
    expect(lines.filter((l) => l.code === 'FW_ERR_SOURCE_FAILED').length).toBeGreaterThanOrEqual(1);
  });

  it('kills and restarts a child that stops printing for 3 intervals', async () => {
    const { src, lines } = make({}, { FAKE_NVIDIA_SMI_SET: 't4', FAKE_NVIDIA_SMI_HANG_AFTER: '1' });
    await src.start();
    await waitFor(() => loopCalls().length >= 2, 'a second -lms start after the first hung', 10_000);
    const hung = loopCalls()[0]!;
    await waitFor(() => !alive(hung.pid), 'the hung child to be killed', 3000);
    expect(lines.some((l) => l.msg === 'nvidia-smi -lms produced no output for 3 intervals; restarting it')).toBe(true);
    expect(src.stats.restarts).toBeGreaterThanOrEqual(1);
  });

  it('reports a missing binary as unavailable once, retries rarely, and recovers when it appears', async () => {
    const binary = join(tmp, 'later', 'nvidia-smi');
    const { src, readings, lines } = make({ binary });
    await src.start();
    await waitFor(() => src.stats.errors >= 4, 'several retries');
    expect(src.stats.state).toBe('unavailable');
    expect(src.stats.lastError).toMatch(/ENOENT/);
    expect(lines.filter((l) => l.code === 'FW_ERR_SOURCE_UNAVAILABLE')).toHaveLength(1);
    expect(readings).toEqual([]);

    mkdirSync(dirname(binary));
    symlinkSync(FAKE, binary);
    await waitFor(() => readings.length >= 8, 'readings once nvidia-smi is installed');
    expect(src.stats.state).toBe('running');
    expect(lines.some((l) => l.msg === 'source recovered')).toBe(true);
    expect(lines.filter((l) => l.code === 'FW_ERR_SOURCE_UNAVAILABLE')).toHaveLength(1);
  });

  it('treats permission denied and a missing driver as unavailable too', async () => {
    const binary = join(tmp, 'nvidia-smi');
    copyFileSync(FAKE, binary);
    chmodSync(binary, 0o644);
    const denied = make({ binary });
    await denied.src.start();
    await waitFor(() => denied.src.stats.errors >= 2, 'retries');
    expect(denied.src.stats.state).toBe('unavailable');
    expect(denied.src.stats.lastError).toMatch(/EACCES/);
    expect(denied.lines.filter((l) => l.code === 'FW_ERR_SOURCE_UNAVAILABLE')).toHaveLength(1);
    await denied.src.stop();

    const noDriver = make({}, { FAKE_NVIDIA_SMI_NO_DRIVER: '1' });
    await noDriver.src.start();
    await waitFor(() => noDriver.src.stats.errors >= 2, 'retries');
    expect(noDriver.src.stats.state).toBe('unavailable');
    expect(noDriver.src.stats.lastError).toMatch(/couldn't communicate with the NVIDIA driver/);
    expect(noDriver.lines.filter((l) => l.code === 'FW_ERR_SOURCE_UNAVAILABLE')).toHaveLength(1);
  });

  it('survives a binary name that spawn rejects outright', async () => {
    const { src, lines } = make({ binary: '' });
    await src.start();
    await waitFor(() => src.stats.errors >= 2, 'retries with backoff');
    expect(src.stats.state).toBe('failing');
    expect(lines.filter((l) => l.code === 'FW_ERR_SOURCE_FAILED')).toHaveLength(1);
  });

  it('counts a failing slow command as a partial failure, logs it once, and keeps sampling', async () => {
    const { src, readings, lines } = make({ slowIntervalMs: 200 }, { FAKE_NVIDIA_SMI_FAIL: 'nvlink' });
    await src.start();
    await waitFor(() => src.stats.partialFailures >= 3, 'three failed nvlink -e runs');
    const r = readings.filter((x) => x.asset === 'gpu-0000:18:00.0').at(-1)!;
    expect(r.metrics['gpu.pcie.replays']).toBe(7);
    expect(Object.keys(r.metrics).some((k) => k.startsWith('gpu.nvlink.'))).toBe(false);
    expect(src.stats.state).toBe('running');
    expect(src.stats.lastError).toMatch(/^nvlink: /);
    expect(lines.filter((l) => l.msg === 'part of the GPU sample unavailable')).toHaveLength(1);
  });

  it('keeps sampling through unparseable output, flags a lost GPU, and logs the problem once', async () => {
    const { src, readings, lines } = make({}, { FAKE_NVIDIA_SMI_SET: 'h100-broken' });
    await src.start();
    await waitFor(() => new Set(readings.map((r) => r.ts)).size >= 5, 'five samples');
    const sample = [...bySample(readings).values()].at(-1)!;
    // The line whose index reads ERR! cannot be placed; the others are kept.
    expect(sample.map((r) => r.asset)).toEqual(['gpu-0000:18:00.0', 'gpu-0000:2a:00.0', 'gpu-0000:3a:00.0', 'gpu-0000:9a:00.0']);
    expect(sample[1]!.metrics).toMatchObject({ 'gpu.index': 1, 'gpu.lost': 1 });
    expect(sample[1]!.metrics).not.toHaveProperty('gpu.temperature_c');
    expect(sample[0]!.metrics).not.toHaveProperty('gpu.utilization_pct');
    expect(Object.values(sample[3]!.metrics).every(Number.isFinite)).toBe(true);
    expect(src.stats.problems).toBeGreaterThanOrEqual(5 * 6);
    expect(lines.filter((l) => l.msg === 'unparseable nvidia-smi output' && l.kind === 'query')).toHaveLength(1);
    expect(src.stats.state).toBe('running');
  });

  it('groups lines into samples even when a GPU vanishes and comes back', async () => {
    const { src, readings } = make({}, { FAKE_NVIDIA_SMI_SET: 'h100-gpu-vanishes' });
    await src.start();
    await waitFor(() => bySample(readings).size >= 7, 'seven samples');
    const sizes = [...bySample(readings).values()].map((sample) => {
      expect(sample.map((r) => r.asset)).toEqual(H100_ASSETS.slice(0, sample.length));
      return sample.length;
    });
    // Every sample is whole (8, or 7 while GPU 7 is gone); none is split in pieces.
    expect(new Set(sizes)).toEqual(new Set([8, 7]));
    expect(src.stats.samples).toBe(sizes.length);
  });

  it('does nothing when disabled', async () => {
    const { src, readings } = make({ enabled: false });
    await src.start();
    await sleep(300);
    expect(calls()).toEqual([]);
    expect(readings).toEqual([]);
    expect(src.stats.state).toBe('idle');
  });
});

describe('Xid events from the kernel log', () => {
  it('follows a kmsg-style stream, skips the backlog, emits events and counts them per GPU', async () => {
    const kmsg = join(tmp, 'kmsg');
    writeFileSync(kmsg, '4,100,5000000,-;NVRM: Xid (PCI:0000:18:00): 48, pid=1, old event from before the agent started\n');
    const { src, readings, events } = make({ kernelLog: 'kmsg' }, {}, { kmsgPath: kmsg });
    await src.start();
    await waitFor(() => src.stats.kernelLog === 'kmsg', 'the kernel log to be followed');
    appendFileSync(kmsg, fixture('kernel/kmsg-raw.txt'));
    await waitFor(() => events.length >= 4, 'four Xid events');
    expect(events.map((e) => [e.code, e.asset])).toEqual([
      [13, 'gpu-0000:18:00.0'],
      [43, 'gpu-0000:18:00.0'],
      [79, 'gpu-0000:9a:00.0'],
      [119, 'gpu-0000:3a:00.0'],
    ]);
    expect(events[2]).toMatchObject({
      source: 'nvidia-gpu',
      type: 'gpu.xid',
      code: 79,
      message: 'Xid 79 (GPU has fallen off the bus) on 0000:9a:00.0: GPU has fallen off the bus.',
      attributes: { pciAddress: '0000:9a:00.0', name: 'GPU has fallen off the bus', severity: 'critical', pid: 1234, process: 'python3' },
    });
    expect(events[1]!.attributes.severity).toBe('info');
    expect(events[3]!.attributes).toMatchObject({ severity: 'critical', process: 'nvc:[driver]', pid: 1582259 });

    const after = (asset: string, metric: string, n: number) => readings.find((r) => r.asset === asset && r.metrics[metric] === n);
    await waitFor(
      () => after('gpu-0000:18:00.0', 'gpu.xid.13.count', 1) && after('gpu-0000:9a:00.0', 'gpu.xid.79.count', 1),
      'Xid counts on the next readings',
    );
    expect(readings.at(-1)!.metrics).not.toHaveProperty('gpu.xid.48.count'); // the backlog was skipped
    appendFileSync(kmsg, '3,2400,164500999999,-;NVRM: Xid (PCI:0000:9a:00): 79, pid=1234, name=python3, GPU has fallen off the bus.\n');
    await waitFor(() => after('gpu-0000:9a:00.0', 'gpu.xid.79.count', 2), 'a count of 2 after a second Xid 79');
    const gpu18 = readings.filter((r) => r.asset === 'gpu-0000:18:00.0').at(-1)!;
    expect(gpu18.metrics).toMatchObject({ 'gpu.xid.13.count': 1, 'gpu.xid.43.count': 1 });
    expect(src.stats.xidEvents).toBe(5);
  });

  it('falls back to journalctl in auto mode when kmsg is unreadable (here: a tail -F command)', async () => {
    const log = join(tmp, 'journal.log');
    writeFileSync(log, '');
    const { src, events } = make({ kernelLog: 'auto' }, {}, { kmsgPath: join(tmp, 'no-kmsg'), journalctlCommand: ['tail', '-n', '0', '-F', log] });
    await src.start();
    await waitFor(() => src.stats.kernelLog === 'journalctl', 'the journalctl fallback');
    await sleep(500); // let tail open the file
    appendFileSync(log, fixture('kernel/journal-short-iso.txt'));
    await waitFor(() => events.length >= 5, 'five Xid events');
    expect(events.map((e) => `${e.code}@${e.asset}`)).toEqual([
      '74@gpu-0000:ba:00.0',
      '154@gpu-0000:ba:00.0',
      '119@gpu-0000:3a:00.0',
      '119@gpu-0000:3a:00.0',
      '79@gpu-0000:db:00.0',
    ]);
    expect(events[0]!.ts).toBe(Date.UTC(2024, 10, 14, 7, 3, 11));
    expect(events[1]!.attributes.severity).toBe('critical');
    expect(events[2]!.attributes).toMatchObject({ name: 'GSP RPC timeout', process: 'nv-hostengine', pid: 123417 });
  });

  it('reports an unreadable kmsg once and keeps the GPU readings going', async () => {
    const { src, readings, lines } = make({ kernelLog: 'kmsg' }, {}, { kmsgPath: join(tmp, 'missing') });
    await src.start();
    await waitFor(() => src.stats.kernelLog === 'unavailable' && readings.length >= 16, 'kmsg unavailable and readings flowing');
    expect(lines.filter((l) => l.msg === 'kernel log unreadable; GPU Xid events will not be reported')).toHaveLength(1);
    expect(src.stats.state).toBe('running');
  });

  it('reports a missing journalctl once, however often it looks again', async () => {
    const { src, lines } = make({ kernelLog: 'journalctl' }, {}, { journalctlCommand: [join(tmp, 'no-journalctl')] });
    await src.start();
    await waitFor(() => src.stats.kernelLog === 'unavailable', 'journalctl unavailable');
    await sleep(600); // several 100 ms retries
    expect(lines.filter((l) => l.msg === 'kernel log unreadable; GPU Xid events will not be reported')).toHaveLength(1);
  });

  it('follows nothing when Xid reporting is off', async () => {
    const { src, readings } = make({ xid: false, kernelLog: 'auto' }, {}, { journalctlCommand: ['false'] });
    await src.start();
    await waitFor(() => readings.length >= 8, 'readings');
    expect(src.stats.kernelLog).toBe('off');
  });
});

describe('GPU identity events', () => {
  const identityCalls = () => calls().filter((c) => c.args.some((a) => a.startsWith('--query-gpu=index,pci.bus_id,name,')));

  it("publishes each H100's recorded identity once, not at every slow run, and again when a board is swapped", async () => {
    const idFile = join(tmp, 'identity.csv');
    copyFileSync(new URL('./fixtures/h100x8/identity.csv', import.meta.url), idFile);
    const { src, identities: events, lines } = make({ slowIntervalMs: 150 }, { FAKE_NVIDIA_SMI_IDENTITY: idFile });
    await src.start();
    await waitFor(() => identityCalls().length >= 3, 'three identity queries');
    const first = events;
    expect(first.map((e) => e.asset)).toEqual(H100_ASSETS);
    expect(identityCalls()[0]!.args[0]).toBe('--query-gpu=index,pci.bus_id,name,uuid,serial,vbios_version,driver_version,memory.total');
    expect(first[0]).toMatchObject({
      source: 'nvidia-gpu',
      publish: true,
      message: 'GPU 0000:18:00.0 is NVIDIA H100 80GB HBM3 GPU-b42dd28e-ffdd-8720-1df0-98bd8cdc05b1 serial 1654423001593',
      attributes: {
        pciAddress: '0000:18:00.0',
        index: 0,
        name: 'NVIDIA H100 80GB HBM3',
        uuid: 'GPU-b42dd28e-ffdd-8720-1df0-98bd8cdc05b1',
        serial: '1654423001593',
        vbios: '96.00.74.00.01',
        driverVersion: '565.57.01',
        memoryTotalBytes: 81559 * 1024 * 1024,
        change: 'first',
      },
    });
    // GPU 1's serial and VBIOS were not in the recording ([N/A]): absent, not empty.
    expect(first[1]!.attributes).not.toHaveProperty('serial');
    expect(first[1]!.attributes).not.toHaveProperty('vbios');

    // The board behind 0000:5d:00.0 is replaced (the fake reads the file at every call).
    copyFileSync(new URL('./fixtures/h100x8/identity-swapped.csv', import.meta.url), idFile);
    await waitFor(() => events.length === 9, 'the swapped board');
    const n = identityCalls().length;
    await waitFor(() => identityCalls().length >= n + 2, 'two more identity queries');
    expect(events).toHaveLength(9);
    expect(events[8]).toMatchObject({
      asset: 'gpu-0000:5d:00.0',
      message: expect.stringContaining('GPU 0000:5d:00.0 changed board: GPU-d1838e76-90e6-4408-711d-aeeaa2e1fd14 → '),
      attributes: {
        uuid: 'GPU-0e6f4a21-5c3b-47d2-9a8e-3f1c2b7d9e40',
        serial: '1654423009981',
        change: 'changed',
        previousUuid: 'GPU-d1838e76-90e6-4408-711d-aeeaa2e1fd14',
      },
    });
    expect(lines.filter((l) => l.previousUuid === 'GPU-d1838e76-90e6-4408-711d-aeeaa2e1fd14')).toHaveLength(1);
    expect(src.stats).toMatchObject({ problems: 0, partialFailures: 0 });
  });

  it("reads an older driver's identity: a GPU without a uuid is still named", async () => {
    const v100 = make({}, { FAKE_NVIDIA_SMI_SET: 'v100' });
    await v100.src.start();
    await waitFor(() => v100.identities.length === 1, 'the V100 identity');
    expect(v100.identities[0]!.attributes).toEqual({
      pciAddress: '0000:d8:00.0',
      index: 0,
      name: 'Tesla V100-PCIE-32GB',
      driverVersion: '470.103.01',
      memoryTotalBytes: 32510 * 1024 * 1024,
      change: 'first',
    });
    await v100.src.stop();
  });
});
