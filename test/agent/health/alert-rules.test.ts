/**
 * Every alert rule of the catalogue (health-rules.ts and the model, drift and quality rules of health-monitor.ts)
 * raised from source input and cleared: recorded tool output (nvidia-smi, smartctl JSON) through the real sources
 * and their parsers, sysfs trees (EDAC, AER) through their readers, then the quality stage and the HealthMonitor as
 * the agent wires them (health reads the clean readings). Each raising test adds its rule ids to `covered`; the
 * last test fails for any rule of the catalogue that no test here raised and cleared.
 */
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { buildConfig, type AlertsConfig } from '../../../agent/src/config/load-config.js';
import type { HealthEvent, Reading, RiskRecord } from '../../../agent/src/core/types.js';
import { DataQuality } from '../../../agent/src/health/data-quality.js';
import { ANOMALY_RULE, DRIFT_RULE, HealthMonitor, QUALITY_RULE, RISK_RULE, type AlertRecord } from '../../../agent/src/health/health-monitor.js';
import { HEALTH_RULES } from '../../../agent/src/health/health-rules.js';
import { QualityStage } from '../../../agent/src/health/quality-stage.js';
import { DriftMonitor } from '../../../agent/src/scoring/drift-monitor.js';
import { RiskScorer } from '../../../agent/src/scoring/risk-scorer.js';
import type { ModelManifest } from '../../../agent/src/scoring/model-manifest.js';
import { EdacSource } from '../../../agent/src/sources/edac/edac-source.js';
import { NVIDIA_GPU_DEFAULTS, NvidiaGpuSource } from '../../../agent/src/sources/gpu/nvidia-gpu-source.js';
import { PcieAerSource } from '../../../agent/src/sources/pcie-aer/pcie-aer-source.js';
import { SmartSource } from '../../../agent/src/sources/smart/smart-source.js';
import { DEFAULT_NODE_STREAM_CONFIG, NodeStreamSource } from '../../../agent/src/sources/node-stream/node-stream-source.js';
import { iso10816Boundaries } from '../../../firmware-bridge/src/node-protocol/vibration-severity.js';
import { SensorNodeServer } from '../../../firmware-bridge/src/simulators/sensor-node-server.js';
import { RecordStore } from '../../../agent/src/store/record-store.js';
import { MillingMachineSimulator, millingSignals } from '../../../firmware-bridge/src/simulators/milling-machine.js';
import { ROOT } from '../../helpers/agent-process.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { waitFor } from '../../helpers/wait.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const SOURCES = fileURLToPath(new URL('../sources/', import.meta.url));
const QUALITY_CHECKS = ['range', 'step', 'flatline', 'stale'] as const;

/** Rule ids a test below raised from source input and then saw cleared. */
const covered = new Set<string>();
/** A metric name from real source output that raised each metric rule (for the anchoring test at the end). */
const raisedBy = new Map<string, { metric: string; reading: Record<string, number> }>();
const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `fw-rules-${name}-`));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Sources → quality stage → health monitor, as pipeline/agent.ts wires them, with the default configuration; the alert
 * lifecycle immediate (every condition raises and clears at once) unless `lifecycle` is given.
 */
async function pipeline(lifecycle?: AlertsConfig) {
  const store = new RecordStore({ dir: tempDir('store') });
  cleanup.push(() => store.close());
  const { log } = captureLogger();
  const monitor = new HealthMonitor(store, () => undefined, log, HEALTH_RULES, Date.now, lifecycle);
  await monitor.start();
  cleanup.push(() => monitor.stop());
  const config = buildConfig(null, {});
  const stage = new QualityStage(new DataQuality(config.quality), { telemetry: { consumeRecords: () => undefined }, readings: [monitor], issues: monitor });
  const alerts = () => store.pending('alerts').map((r) => r.payload as unknown as AlertRecord);
  const states = (rule: string) => alerts().filter((a) => a.rule === rule);
  /** Asserts the rule was raised and then cleared (on `asset` and `subject` when given), and counts it as covered. */
  const raisedThenCleared = (rule: string, where: { asset?: string; subject?: string } = {}) => {
    const seen = states(rule).filter(
      (a) => (where.asset === undefined || a.asset === where.asset) && (where.subject === undefined || a.subject === where.subject),
    );
    const raised = seen.findIndex((a) => a.state === 'raised');
    expect(raised, `${rule} raised`).toBeGreaterThanOrEqual(0);
    expect(
      seen.slice(raised).some((a) => a.state === 'cleared'),
      `${rule} cleared after it was raised`,
    ).toBe(true);
    covered.add(rule);
    const { metric, threshold } = seen[raised]!.evidence;
    if (typeof metric === 'string') raisedBy.set(rule, { metric, reading: typeof threshold === 'number' ? { threshold } : {} });
  };
  return {
    monitor,
    reading: (r: Reading) => stage.consumeReading(r),
    event: (e: HealthEvent) => monitor.consumeEvent(e),
    stage,
    alerts,
    active: (rule: string) => monitor.activeAlerts().filter((a) => a.rule === rule),
    raisedThenCleared,
  };
}

/**
 * An executable that runs a fake tool script with this node: the fakes' own exec bit and `#!/usr/bin/env node` line
 * are not needed (Stryker's sandbox copies lose the bit).
 */
function toolWrapper(name: string, script: string): string {
  const file = join(tempDir(name), name);
  writeFileSync(file, `#!/bin/sh\nexec '${process.execPath}' '${join(SOURCES, script)}' "$@"\n`, { mode: 0o755 });
  return file;
}

/** Replaces the first occurrence of `from` in a file (the first GPU's block), failing loudly when it is absent. */
function edit(file: string, from: string | RegExp, to: string): void {
  const text = readFileSync(file, 'utf8');
  const next = text.replace(from, to);
  if (next === text) throw new Error(`${file}: ${String(from)} not found`);
  writeFileSync(file, next);
}

describe('every alert rule, raised from source input and cleared', () => {
  it('GPU rules from recorded nvidia-smi output (A100 pair) and a kernel Xid line, through NvidiaGpuSource', async () => {
    const p = await pipeline();
    // A copy of the recorded fixtures that the test edits between samples; the fake replays what it finds there.
    const fixtures = join(tempDir('gpu'), 'fixtures');
    cpSync(join(SOURCES, 'gpu/fixtures'), fixtures, { recursive: true });
    const a100 = join(fixtures, 'a100');
    // The fast loop cycles through blank-line separated samples: healthy, then GPU 0 hot (hardware thermal slowdown)
    // with uncorrectable volatile ECC errors, then GPU 1 throttled by the driver's thermal slowdown, and again.
    const query = readFileSync(join(a100, 'query-gpu.csv'), 'utf8').trimEnd();
    const lines = query.split('\n');
    const gpu0 = lines[1]!.split(', ');
    gpu0[18] = 'Active'; // clocks_event_reasons.hw_thermal_slowdown
    gpu0[23] = '2'; // ecc.errors.uncorrected.volatile.total
    const gpu1 = lines[2]!.split(', ');
    gpu1[20] = 'Active'; // clocks_event_reasons.sw_thermal_slowdown
    writeFileSync(join(a100, 'query-gpu.csv'), `${query}\n\n${lines[0]}\n${gpu0.join(', ')}\n${lines[2]}\n\n${lines[0]}\n${lines[1]}\n${gpu1.join(', ')}\n`);
    const kmsg = join(fixtures, 'kmsg');
    writeFileSync(kmsg, '');

    const asset = 'gpu-0000:2f:00.0';
    let last: Reading | undefined;
    const { log } = captureLogger();
    const source = new NvidiaGpuSource(
      {
        ...NVIDIA_GPU_DEFAULTS,
        intervalMs: 100,
        slowIntervalMs: 200,
        timeoutMs: 5000,
        binary: toolWrapper('nvidia-smi', 'gpu/fake-nvidia-smi.mjs'),
        kernelLog: 'kmsg',
      },
      (r) => {
        if (r.asset === asset) last = r;
        p.reading(r);
      },
      (e) => p.event(e),
      log,
      {
        env: { FAKE_NVIDIA_SMI_SET: 'a100', FAKE_NVIDIA_SMI_FIXTURES: fixtures },
        kmsgPath: kmsg,
        kmsgPollMs: 20,
      },
    );
    cleanup.push(() => source.stop());
    await source.start();
    // The slow counters' first values are the baseline growth is measured from.
    await waitFor(
      () => last?.metrics['gpu.pcie.replays'] === 0 && last.metrics['gpu.nvlink.0.crc_errors'] === 0 && source.stats.kernelLog === 'kmsg',
      'a reading with the slow counters, and the kernel log followed',
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}; source: ${JSON.stringify(source.stats)}; last reading: ${JSON.stringify(last?.metrics)}`);
    });
    expect(p.active('gpu.pcie.replays')).toEqual([]);
    expect(p.active('gpu.remapped_rows.pending')).toEqual([]);

    // The first GPU now reports a pending and a failed row remap, a pending page retirement, PCIe replays and NVLink
    // CRC errors growing, and an Xid 79 in the kernel log.
    edit(join(a100, 'remapped-rows.csv'), '00000000:2F:00.0, 0, 0, No, No', '00000000:2F:00.0, 0, 3, Yes, Yes');
    const q = join(a100, 'q.txt');
    edit(q, /(Replays Since Reset\s+:) 0/, '$1 12');
    edit(q, /(Pending Page Blacklist\s+:) N\/A/, '$1 Yes');
    edit(q, /(Uncorrectable Error\s+:) 0\n(\s+Pending\s+:) No\n(\s+Remapping Failure Occurred\s+:) No/, '$1 3\n$2 Yes\n$3 Yes');
    edit(join(a100, 'nvlink-e.txt'), /(Link 0: CRC Errors:) 0/, '$1 7');
    edit(join(a100, 'nvlink-e.txt'), /(Link 1: Replay Errors:) 0/, '$1 2');
    edit(join(a100, 'nvlink-e.txt'), /(Link 2: Recovery Errors:) 0/, '$1 1');
    appendFileSync(kmsg, '3,2400,164500999999,-;NVRM: Xid (PCI:0000:2f:00): 79, pid=1234, name=python3, GPU has fallen off the bus.\n');
    const raisedNow = [
      'gpu.remapped_rows.failure',
      'gpu.remapped_rows.pending',
      'gpu.retired_pages.pending',
      'gpu.pcie.replays',
      'gpu.nvlink.errors',
      'gpu.xid',
    ];
    await waitFor(() => raisedNow.every((rule) => p.active(rule).length > 0), `${raisedNow.join(', ')} raised`);
    await waitFor(() => p.raisedThenCleared('gpu.thermal_slowdown', { asset, subject: 'hw_thermal_slowdown' }) ?? true, 'thermal slowdown raised and cleared');
    await waitFor(
      () => p.raisedThenCleared('gpu.thermal_slowdown', { asset: 'gpu-0000:35:00.0', subject: 'sw_thermal_slowdown' }) ?? true,
      'software thermal slowdown on the second GPU raised and cleared',
    );
    await waitFor(() => p.raisedThenCleared('gpu.ecc.uncorrected', { asset }) ?? true, 'uncorrected ECC raised and cleared');
    // CRC errors on link 0, replays on link 1, recoveries on link 2: one alert per link.
    await waitFor(() => p.active('gpu.nvlink.errors').length === 3, 'NVLink alerts on three links');
    expect(p.active('gpu.nvlink.errors').map((a) => [a.asset, a.subject, a.evidence.metric])).toEqual([
      [asset, '0', 'gpu.nvlink.0.crc_errors'],
      [asset, '1', 'gpu.nvlink.1.replay_errors'],
      [asset, '2', 'gpu.nvlink.2.recovery_errors'],
    ]);
    expect(p.active('gpu.xid').map((a) => [a.asset, a.subject, a.severity])).toEqual([[asset, '79', 'critical']]);
    expect(p.active('gpu.remapped_rows.failure')[0]!.severity).toBe('critical');

    // After a GPU reset: nothing pending, no failure; the counters stay where they were (no further growth).
    edit(join(a100, 'remapped-rows.csv'), '00000000:2F:00.0, 0, 3, Yes, Yes', '00000000:2F:00.0, 0, 3, No, No');
    edit(q, /(Pending Page Blacklist\s+:) Yes/, '$1 No');
    edit(q, /(\s+Pending\s+:) Yes\n(\s+Remapping Failure Occurred\s+:) Yes/, '$1 No\n$2 No');
    const levels = ['gpu.remapped_rows.failure', 'gpu.remapped_rows.pending', 'gpu.retired_pages.pending'];
    await waitFor(() => levels.every((rule) => p.active(rule).length === 0), 'the level alerts cleared');
    await source.stop();
    // Growth and event alerts clear after their quiet time without a recurrence.
    p.monitor.clearQuiet(Date.now() + HOUR + 1);
    expect(p.active('gpu.xid')).toEqual([]);
    expect(p.active('gpu.pcie.replays')).toHaveLength(1);
    p.monitor.clearQuiet(Date.now() + DAY + 1);
    for (const rule of [...levels, 'gpu.pcie.replays', 'gpu.nvlink.errors', 'gpu.xid']) p.raisedThenCleared(rule, { asset });
  });

  it('disk rules from recorded smartctl JSON (an ATA disk and an NVMe drive), through SmartSource', async () => {
    const p = await pipeline();
    const fixtures = join(tempDir('smart'), 'fixtures');
    cpSync(join(SOURCES, 'smart/fixtures'), fixtures, { recursive: true });
    writeFileSync(
      join(fixtures, 'sets.json'),
      JSON.stringify({
        rules: { devices: { '/dev/sda': 'ata-seagate-st3500418as.json', '/dev/sdb': 'ata-wdc-wd20efrx.json', '/dev/nvme0': 'nvme-samsung-970-evo-plus.json' } },
      }),
    );
    const ataFile = join(fixtures, 'ata-seagate-st3500418as.json');
    const nvmeFile = join(fixtures, 'nvme-samsung-970-evo-plus.json');
    const ata = JSON.parse(readFileSync(ataFile, 'utf8'));
    const wdcFile = join(fixtures, 'ata-wdc-wd20efrx.json');
    const wdc = JSON.parse(readFileSync(wdcFile, 'utf8'));
    const nvme = JSON.parse(readFileSync(nvmeFile, 'utf8'));
    const attr = (id: number) => ata.ata_smart_attributes.table.find((a: { id: number }) => a.id === id);
    const write = () => {
      writeFileSync(ataFile, JSON.stringify(ata));
      writeFileSync(wdcFile, JSON.stringify(wdc));
      writeFileSync(nvmeFile, JSON.stringify(nvme));
    };
    const { log } = captureLogger();
    const source = new SmartSource(
      { binary: toolWrapper('smartctl', 'smart/fake-smartctl.mjs'), timeoutMs: 10_000, devices: ['/dev/sda', '/dev/sdb', '/dev/nvme0'] },
      () => undefined,
      log,
      { env: { ...process.env, FAKE_SMARTCTL_SET: 'rules', FAKE_SMARTCTL_FIXTURES: fixtures } },
    );
    let now = Date.now();
    const sample = async () => {
      const { readings, summary } = await source.collect((now += 600_000));
      expect(summary.readable).toBe(3);
      for (const r of readings) p.reading({ ...r, ts: now });
    };
    const ataAsset = 'disk-9VMQ4K7A';
    const nvmeAsset = 'disk-S4EUNX0N912345D';
    const wdcAsset = 'disk-WD-WCC4M3KJ7Y1H';
    await sample(); // the baseline
    expect(p.alerts()).toEqual([]);

    // The Seagate fails its self-assessment, its reallocated, pending and reported-uncorrectable (187) counts rise;
    // the WD's offline uncorrectable count (198) rises; the NVMe drive raises a critical warning (spare below threshold) with its spare
    // under the threshold.
    ata.smart_status.passed = false;
    attr(5).raw.value = 40;
    attr(197).raw.value = 8;
    attr(187).raw.value = 3;
    wdc.ata_smart_attributes.table.find((a: { id: number }) => a.id === 198).raw.value = 2;
    nvme.nvme_smart_health_information_log.critical_warning = 1;
    nvme.nvme_smart_health_information_log.available_spare = 5;
    write();
    await sample();
    const byRule = (rule: string) => p.active(rule).map((a) => a.asset);
    expect(byRule('disk.smart.failed')).toEqual([ataAsset]);
    expect(byRule('disk.smart.reallocated_growing')).toEqual([ataAsset]);
    expect(byRule('disk.smart.pending')).toEqual([ataAsset]);
    expect(byRule('disk.smart.offline_uncorrectable_growing').sort()).toEqual([ataAsset, wdcAsset]);
    expect(byRule('disk.nvme.critical_warning')).toEqual([nvmeAsset]);
    expect(byRule('disk.nvme.spare_low')).toEqual([nvmeAsset]);
    expect(p.active('disk.nvme.spare_low')[0]!.evidence).toMatchObject({ value: 5, threshold: 10 });

    // Replaced and rewritten: level conditions false again, counters flat.
    ata.smart_status.passed = true;
    attr(197).raw.value = 0;
    nvme.nvme_smart_health_information_log.critical_warning = 0;
    nvme.nvme_smart_health_information_log.available_spare = 100;
    write();
    await sample();
    for (const rule of ['disk.smart.failed', 'disk.smart.pending', 'disk.nvme.critical_warning', 'disk.nvme.spare_low']) expect(p.active(rule)).toEqual([]);
    expect(byRule('disk.smart.offline_uncorrectable_growing').sort()).toEqual([ataAsset, wdcAsset]);
    p.monitor.clearQuiet(now + 7 * DAY + 1);
    for (const rule of ['disk.smart.failed', 'disk.smart.reallocated_growing', 'disk.smart.pending', 'disk.smart.offline_uncorrectable_growing'])
      p.raisedThenCleared(rule, { asset: ataAsset });
    for (const rule of ['disk.nvme.critical_warning', 'disk.nvme.spare_low']) p.raisedThenCleared(rule, { asset: nvmeAsset });
    p.raisedThenCleared('disk.smart.offline_uncorrectable_growing', { asset: wdcAsset });
  });

  it('memory ECC rules from a Skylake EDAC sysfs tree, through EdacSource', async () => {
    const p = await pipeline();
    const root = tempDir('edac');
    cpSync(join(SOURCES, 'sysfs-fixtures/edac-skx'), root, { recursive: true });
    const mc1 = join(root, 'devices/system/edac/mc/mc1');
    const source = new EdacSource({ sysRoot: root, asset: 'node-7' }, () => undefined, captureLogger().log);
    let now = Date.now();
    const sample = async () => {
      for (const r of (await source.collect((now += 60_000))).readings) p.reading(r);
    };
    await sample();
    expect(p.alerts()).toEqual([]);
    writeFileSync(join(mc1, 'ue_count'), '1\n');
    writeFileSync(join(mc1, 'dimm2/dimm_ce_count'), '17\n');
    await sample();
    const label = readFileSync(join(mc1, 'dimm2/dimm_label'), 'utf8').trim();
    expect(p.active('memory.ecc.uncorrected').map((a) => [a.asset, a.subject, a.severity])).toEqual([['node-7', 'mc1', 'critical']]);
    const dimm = p.active('memory.ecc.corrected_growing');
    expect(dimm).toHaveLength(1);
    expect(String(dimm[0]!.evidence.metric)).toMatch(/^edac\.dimm\..+\.ce_count$/);
    expect(label).toMatch(/MC#1_Chan#\d_DIMM#\d/);
    await sample(); // flat counters keep the alerts until the quiet time passes
    expect(p.active('memory.ecc.uncorrected')).toHaveLength(1);
    p.monitor.clearQuiet(now + DAY + 1);
    expect(p.active('memory.ecc.corrected_growing')).toEqual([]);
    expect(p.active('memory.ecc.uncorrected')).toHaveLength(1); // a week for an uncorrectable error
    p.monitor.clearQuiet(now + 7 * DAY + 1);
    p.raisedThenCleared('memory.ecc.uncorrected', { asset: 'node-7', subject: 'mc1' });
    p.raisedThenCleared('memory.ecc.corrected_growing', { asset: 'node-7' });
  });

  it('PCIe AER rule from a server sysfs tree (fatal and non-fatal counts), through PcieAerSource', async () => {
    const p = await pipeline();
    const root = tempDir('aer');
    cpSync(join(SOURCES, 'sysfs-fixtures/aer-server'), root, { recursive: true });
    const dev = join(root, 'bus/pci/devices/0000:17:00.0');
    const source = new PcieAerSource({ sysRoot: root, asset: 'node-7' }, () => undefined, captureLogger().log);
    let now = Date.now();
    const sample = async () => {
      for (const r of (await source.collect((now += 60_000))).readings) p.reading(r);
    };
    await sample();
    expect(p.alerts()).toEqual([]);
    edit(join(dev, 'aer_dev_fatal'), /MalfTLP 0\n/, 'MalfTLP 1\n');
    edit(join(dev, 'aer_dev_fatal'), /TOTAL_ERR_FATAL 0/, 'TOTAL_ERR_FATAL 1');
    const nic = join(root, 'bus/pci/devices/0000:31:00.0');
    edit(join(nic, 'aer_dev_nonfatal'), /TOTAL_ERR_NONFATAL 0/, 'TOTAL_ERR_NONFATAL 2');
    await sample();
    // A fatal error on one device and non-fatal ones on another: one alert each, the device as subject.
    const aer = p.active('pcie.aer.fatal');
    expect(aer.map((a) => [a.asset, a.severity, a.evidence.metric])).toEqual([
      ['node-7', 'critical', `pcie.${aer[0]?.subject}.aer.fatal_total`],
      ['node-7', 'critical', `pcie.${aer[1]?.subject}.aer.nonfatal_total`],
    ]);
    expect(aer[0]!.subject).toContain('17');
    expect(aer[1]!.subject).toContain('31');
    p.monitor.clearQuiet(now + DAY + 1);
    p.raisedThenCleared('pcie.aer.fatal', { asset: 'node-7' });
  });

  it('quality rules from a CPU temperature sensor (an analog signal by default), through the quality stage', async () => {
    const p = await pipeline();
    let ts = Date.now();
    let i = 0;
    // A living sensor: a slow wave with a little jitter, never the same value twice.
    const temp = () => 50 + 3 * Math.sin(i / 7) + 0.1 * ((i * 7919) % 13);
    const read = (value: number | null = temp()) => {
      i++;
      ts += 1000;
      p.reading({ ts, source: 'host', asset: 'node-7', metrics: value === null ? { 'memory.used_pct': 40 } : { 'temp.cpu.celsius': value } });
    };
    for (let n = 0; n < 40; n++) read();
    expect(p.alerts()).toEqual([]);
    read(900); // a broken probe: outside the physical range
    read();
    const { flatlineSamples } = buildConfig(null, {}).quality;
    for (let n = 0; n <= flatlineSamples; n++) read(47.5); // stuck
    for (let n = 0; n < 3; n++) read();
    read(temp() + 60); // a jump no usual change explains
    for (let n = 0; n < 6; n++) read();
    p.stage.checkStale(ts + 60_000); // the sensor stops arriving
    for (let n = 0; n < 3; n++) read();
    for (const check of QUALITY_CHECKS) p.raisedThenCleared(`${QUALITY_RULE.id}.${check}`, { asset: 'node-7', subject: 'temp.cpu.celsius' });
  });

  it('model drift from simulated readings against the shipped machine-failure manifest, through DriftMonitor', async () => {
    const p = await pipeline();
    const manifest = JSON.parse(readFileSync(join(ROOT, 'models/machine-failure/manifest.json'), 'utf8')) as ModelManifest;
    const drift = new DriftMonitor({ windowSize: 500, minSamples: 200, evaluateEvery: 50, watchPsi: 0.1, alertPsi: 0.25, outsideShare: 0.2 }, (h) =>
      p.monitor.onDrift(h),
    );
    const sim = new MillingMachineSimulator({ seed: 1 });
    const row = (s: Record<string, number>) => manifest.inputs.features.map((f) => s[f.signal]!);
    for (let i = 0; i < 600; i++) drift.observe(manifest, 'mill', row(millingSignals(sim.next())));
    expect(p.active(DRIFT_RULE.id)).toEqual([]);
    for (let i = 0; i < 300; i++) {
      const s = millingSignals(sim.next());
      drift.observe(manifest, 'mill', row({ ...s, torque: s.torque! * 1.4 }));
    }
    expect(p.active(DRIFT_RULE.id).map((a) => a.evidence.feature1)).toEqual([expect.stringMatching(/^torque PSI/)]);
    for (let i = 0; i < 600; i++) drift.observe(manifest, 'mill', row(millingSignals(sim.next())));
    p.raisedThenCleared(DRIFT_RULE.id, { asset: 'mill', subject: manifest.name });
  });

  it('risk threshold from recorded C-MAPSS windows scored by the shipped turbofan-rul model, through RiskScorer', async () => {
    const p = await pipeline();
    const models = join(ROOT, 'models');
    const manifest = JSON.parse(readFileSync(join(models, 'turbofan-rul/manifest.json'), 'utf8')) as ModelManifest;
    const golden = JSON.parse(readFileSync(join(models, 'turbofan-rul/golden.json'), 'utf8')) as { inputs: number[][][]; notes: string[] };
    const window = (pattern: RegExp) => golden.inputs[golden.notes.findIndex((n) => pattern.test(n))]!;
    const scorer = new RiskScorer(
      { modelsDir: models, threads: 1, bindings: [{ model: 'turbofan-rul', assets: ['engine-*'] }] },
      (r) => p.monitor.consumeRisk(r),
      captureLogger().log,
    );
    cleanup.push(() => scorer.stop());
    await scorer.start();
    let ts = Date.now();
    const feed = async (rows: number[][]) => {
      for (const row of rows)
        scorer.accept({
          ts: ++ts,
          source: 'cmapss',
          asset: 'engine-8',
          metrics: Object.fromEntries(manifest.inputs.features.map((f, j) => [f.signal, row[j]!])),
        });
      await scorer.flush();
    };
    await feed(window(/^holdout engine 8, last cycle 150 /)); // at failure: predicted RUL about 5 cycles
    expect(p.active(RISK_RULE.id).map((a) => [a.asset, a.subject])).toEqual([['engine-8', 'turbofan-rul']]);
    await feed(window(/^holdout engine 55 truncated at cycle 62 /)); // a young engine's window fills it: RUL about 121
    p.raisedThenCleared(RISK_RULE.id, { asset: 'engine-8', subject: 'turbofan-rul' });
  });

  it('ISO 10816-3 zones C and D from the emulated bearing through NodeStreamSource, with the default lifecycle: once per episode each, cleared after the repair', async () => {
    // The default alert lifecycle, not the immediate one: a minute in the zone before raising, five minutes 10 % under
    // the boundary before clearing. Time is the node's clock (block timestamps), which runs 200× fast here.
    const p = await pipeline(structuredClone(buildConfig(null, {}).alerts));
    const asset = 'mac-0024befffe804ff1';
    const server = new SensorNodeServer({ transport: 'tcp', speedup: 200, node: { seed: 4, lifetimeS: 40, defectAccelMs2: 10 } });
    await server.start();
    cleanup.push(() => server.stop());
    const velocities: number[] = [];
    const source = new NodeStreamSource(
      {
        enabled: true,
        transport: 'tcp',
        host: '127.0.0.1',
        port: server.port,
        iso10816: { ...DEFAULT_NODE_STREAM_CONFIG.iso10816, assets: { [asset]: { machineGroup: 1, foundation: 'rigid' } } },
      },
      (r) => {
        if (r.metrics['vib.x.velocity_rms'] !== undefined) velocities.push(r.metrics['vib.x.velocity_rms']);
        p.reading(r);
      },
      () => undefined,
      captureLogger().log,
    );
    cleanup.push(() => source.stop());
    await source.start();
    const b = iso10816Boundaries(1, 'rigid');
    // The defect grows for 40 s and stays: zone D (about 11 mm/s) is raised once it has held a minute.
    await waitFor(() => p.active('vibration.iso10816.zone_d').length === 1, 'zone D raised', 60_000);
    const raised = (rule: string) => p.alerts().filter((a) => a.rule === rule && a.state === 'raised');
    expect(raised('vibration.iso10816.zone_c')).toHaveLength(1);
    expect(raised('vibration.iso10816.zone_d')).toHaveLength(1);
    expect(raised('vibration.iso10816.zone_c')[0]).toMatchObject({
      asset,
      subject: 'vib.x',
      severity: 'warning',
      evidence: { axis: 'vib.x', metric: 'vib.x.velocity_rms', threshold: b.bc, clearThreshold: 4.05, unit: 'mm/s' },
    });
    const d = raised('vibration.iso10816.zone_d')[0]!;
    expect(d).toMatchObject({ severity: 'critical', evidence: { axis: 'vib.x', threshold: b.cd, clearThreshold: 6.39 } });
    expect(d.value).toBeGreaterThan(b.cd);
    expect(d.raisedTs - d.pendingSinceTs!).toBeGreaterThanOrEqual(60_000);
    expect(Math.min(...velocities.slice(0, 5))).toBeLessThan(b.ab); // it started in zone A
    // The bearing is replaced (the node restarts with a new one): back to about 1.9 mm/s; both clear after five minutes
    // 10 % under their boundaries (node time: the restarted node's clock starts over from the wall clock).
    server.restart({ node: { lifetimeS: 1e9 } }); // its defect does not grow in any time this test runs
    await waitFor(() => p.active('vibration.iso10816.zone_c').length === 0 && p.active('vibration.iso10816.zone_d').length === 0, 'both cleared', 60_000);
    p.raisedThenCleared('vibration.iso10816.zone_c', { asset, subject: 'vib.x' });
    p.raisedThenCleared('vibration.iso10816.zone_d', { asset, subject: 'vib.x' });
    const cleared = p.alerts().find((a) => a.rule === 'vibration.iso10816.zone_c' && a.state === 'cleared')!;
    expect(cleared.value).toBeLessThan(4.05);
    expect(raised('vibration.iso10816.zone_c')).toHaveLength(1);
  }, 120_000); // minutes of node time: seconds here, more on a loaded machine

  it('anomaly from flagged records (the anomaly scorer output contract: kind anomaly, atRisk above its threshold)', async () => {
    const p = await pipeline();
    const base = { asset: 'mill', modelVersion: '1.0.0', readingTs: 1, model: 'anomaly', kind: 'anomaly' as const, threshold: 3.4 };
    const anomaly = (ts: number, score: number): RiskRecord => ({
      ...base,
      ts,
      score,
      atRisk: score > 3.4,
      drivers: [{ feature: 'torque', value: 61, contribution: score }],
    });
    const t0 = Date.now();
    p.monitor.consumeRisk([anomaly(t0, 1), anomaly(t0 + 1, 7.5), anomaly(t0 + 2, 1)]);
    expect(p.active(ANOMALY_RULE.id)).toHaveLength(1);
    p.monitor.clearQuiet(t0 + 1 + ANOMALY_RULE.quietMs);
    p.raisedThenCleared(ANOMALY_RULE.id, { asset: 'mill' });
  });
});

describe('the alert catalogue', () => {
  // Runs after the tests above (vitest runs a file's tests in order): a rule added to the catalogue without a
  // raising test here fails this test, and so does a raising test that was skipped or failed.
  it('has a test above that raises and clears every rule', () => {
    const catalogue = [...HEALTH_RULES.map((r) => r.id), RISK_RULE.id, ANOMALY_RULE.id, DRIFT_RULE.id, ...QUALITY_CHECKS.map((c) => `${QUALITY_RULE.id}.${c}`)];
    expect(catalogue.filter((id) => !covered.has(id))).toEqual([]);
  });

  it('matches only the metric names it is meant for, and holds strictly past its value', async () => {
    const p = await pipeline();
    let ts = Date.now();
    const feed = (metrics: Record<string, number>) => p.monitor.consumeReading({ ts: ++ts, source: 'test', asset: 'near-miss', metrics });
    for (const rule of HEALTH_RULES) {
      if (rule.kind === 'event') continue;
      const seen = raisedBy.get(rule.id);
      expect(seen, `${rule.id}: a metric that raised it`).toBeDefined();
      const { metric } = seen!;
      // A name that only contains the real one (another prefix, another suffix) is another metric.
      const near = [`x.${metric}`, `${metric}_x`, `${metric}.x`];
      if (rule.kind === 'growth') {
        feed(Object.fromEntries(near.map((m) => [m, 1])));
        feed(Object.fromEntries(near.map((m) => [m, 2])));
      } else {
        const raising = rule.op === '>' ? rule.value + 1 : rule.op === '<' ? rule.value - 1 : rule.op === '!=' ? rule.value + 1 : rule.value;
        const other = rule.against ? { [rule.against(metric)]: 10, ...Object.fromEntries(near.map((m) => [rule.against!(m), 10])) } : {};
        feed({ ...other, ...Object.fromEntries(near.map((m) => [m, rule.against ? 5 : raising])) });
        // At the boundary a strict comparison does not hold.
        if (rule.op === '>' || rule.op === '<') feed({ ...other, [metric]: rule.against ? 10 : rule.value });
      }
      expect(p.alerts(), rule.id).toEqual([]);
    }
  });
});
