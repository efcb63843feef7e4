import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfig, type QualityConfig } from '../../../agent/src/config/load-config.js';
import { Agent, type Source } from '../../../agent/src/pipeline/agent.js';
import { StorageKeeper } from '../../../agent/src/pipeline/storage-keeper.js';
import { DataQuality } from '../../../agent/src/health/data-quality.js';
import { QualityStage } from '../../../agent/src/health/quality-stage.js';
import { riskFanOut, type Reading, type RiskRecord } from '../../../agent/src/core/types.js';
import type { NewRecord } from '../../../agent/src/store/outbox.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { contractErrors } from '../../helpers/contract.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { tempDir } from '../../helpers/model-fixtures.js';
import { RESERVE_FILE } from '../../../agent/src/store/space-reserve.js';
import { fillUp, tmpfsForTest } from '../../helpers/tmpfs.js';
import { waitFor } from '../../helpers/wait.js';

/**
 * The composition root (pipeline/agent.ts) and the seams it wires: a component that fails to start leaves the
 * others running, the quality stage hands telemetry and clean readings to its consumers without naming them,
 * and the storage keeper commits what one tick produces in one transaction.
 */

const cleanup = cleanupAfterEach();

function agentConfig(extra: Record<string, unknown> = {}) {
  const dir = tempDir('fw-agent-');
  const file = path.join(dir, 'forewarn.yaml');
  const raw = {
    agent: { id: 'agent-test', view: 'off', logLevel: 'info' },
    storage: { dir: path.join(dir, 'data') },
    // Nothing listens there: the sync stays offline and the records wait in the outbox.
    broker: { url: 'mqtt://127.0.0.1:1', reconnectMinMs: 100, reconnectMaxMs: 400 },
    sources: { host: { enabled: false }, simulator: { enabled: true, transport: 'direct', speedup: 600 } },
    metrics: { enabled: false },
    scoring: { enabled: false },
    commands: { enabled: false },
    ...extra,
  };
  writeFileSync(file, stringify(raw));
  return loadConfig(file, {}).config;
}

/** A real source of readings that cannot start (its device is missing). */
function brokenSource(): Source {
  return {
    name: 'broken',
    stats: { name: 'broken', state: 'idle', samples: 0, errors: 0, lastError: null, lastSampleTs: null },
    start: async () => {
      throw new Error('no such device: /dev/broken0');
    },
    stop: async () => {},
  };
}

describe('Agent (the composition root)', () => {
  it('logs a component whose start() throws and carries on: the others run and telemetry is committed', async () => {
    const { log, lines } = captureLogger('debug');
    const agent = new Agent(agentConfig(), log, '0.0.0-test');
    // The broken source starts before the simulator: its failure must not keep the simulator from starting.
    agent.sources.unshift(brokenSource());
    cleanup.push(() => agent.stop());
    await agent.start();

    const failed = lines.filter((l) => l.msg === 'component failed to start; the others carry on');
    expect(failed).toEqual([expect.objectContaining({ component: 'broken', err: expect.stringContaining('no such device') })]);
    await waitFor(
      () => agent.stats.lastCommitTs !== null && (agent.store.counts().find((c) => c.stream === 'telemetry')?.pending ?? 0) > 0,
      'committed telemetry',
    );
    expect(agent.stats.collected).toBeGreaterThan(0);

    await agent.stop();
    await agent.stop(); // idempotent
    expect(lines.filter((l) => l.msg === 'agent stopped')).toHaveLength(1);
    const collected = agent.stats.collected;
    // Stopped: intake is closed.
    await new Promise((r) => setTimeout(r, 50));
    expect(agent.stats.collected).toBe(collected);
  });
});

describe('Agent on a disk full to the last block (tmpfs)', () => {
  it('reports unhealthy on /healthz while writes fail, keeps collecting, and is healthy again once a write succeeds', async (ctx) => {
    const fsDir = tmpfsForTest(ctx, 16, cleanup);
    const { log, lines } = captureLogger('debug');
    const base = agentConfig();
    const config = agentConfig({
      storage: { dir: path.join(fsDir, 'data'), checkIntervalMs: 200, minFreeBytes: 0 },
      metrics: { enabled: true, host: '127.0.0.1', port: 0 },
      agent: { ...base.agent, id: 'agent-full' },
    });
    const agent = new Agent(config, log, '0.0.0-test');
    cleanup.push(() => agent.stop());
    await agent.start();
    const healthz = async () => {
      const res = await fetch(`http://127.0.0.1:${agent.metrics.port}/healthz`);
      return { status: res.status, body: (await res.json()) as { status: string; reasons: string[] } };
    };
    await waitFor(() => agent.stats.lastCommitTs !== null, 'a first commit');
    expect((await healthz()).body.status).toBe('ok');

    // Another program takes every block, the agent's reserve file included, and keeps what the agent frees.
    const fillers: string[] = [];
    const grab = () => fillers.push(fillUp(fsDir, `filler-${fillers.length}.bin`));
    rmSync(path.join(config.storage.dir, RESERVE_FILE), { force: true });
    grab();
    const unhealthy = await waitFor(async () => {
      grab();
      const h = await healthz();
      return h.body.status === 'unhealthy' ? h : null;
    }, '/healthz to report the failed write');
    expect(unhealthy.status).toBe(503);
    expect(unhealthy.body.reasons).toEqual([
      expect.stringMatching(/^the last database write failed \(.+\); \d+ records lost this run — see FW_ERR_STORAGE_WRITE in the log$/),
    ]);
    const collected = agent.stats.collected;
    await waitFor(() => agent.stats.collected > collected + 5, 'collection to go on while the disk refuses writes');

    for (const f of fillers) rmSync(f, { force: true });
    await waitFor(async () => (await healthz()).body.status === 'ok', '/healthz to be ok again');
    expect(agent.stats.lastCommitTs!).toBeGreaterThan(agent.stats.lastWriteErrorTs!);
    // Said once a minute at most, not per failed write.
    expect(lines.filter((l) => l.code === 'FW_ERR_STORAGE_WRITE')).toHaveLength(1);
  });
});

describe('QualityStage (the reading seam)', () => {
  const config: QualityConfig = { enabled: true, staleAfterIntervals: 3, flatlineSamples: 5, stepFactor: 10, analogSignals: ['temp.*.celsius'] };

  it('hands telemetry with the failed values flagged to the record consumer, clean readings to the reading consumers, and tells them to forget a failing signal', () => {
    const telemetry: NewRecord[] = [];
    const seen: string[] = [];
    const forgotten: string[] = [];
    const issues: string[] = [];
    const consumer = (name: string) => ({
      consumeReading: (r: Reading) => seen.push(`${name}:${Object.keys(r.metrics).join(',')}`),
      forgetSignal: (asset: string, signal: string) => forgotten.push(`${name}:${asset}/${signal}`),
    });
    const stage = new QualityStage(new DataQuality(config), {
      telemetry: { consumeRecords: (r) => telemetry.push(...r) },
      readings: [consumer('a'), consumer('b'), { consumeReading: (r) => seen.push(`plain:${Object.keys(r.metrics).join(',')}`) }],
      issues: { consumeQuality: (q) => issues.push(...q.map((i) => `${i.signal}:${i.check}:${i.failing}`)) },
    });
    stage.consumeReading({ ts: 1, source: 's', asset: 'm', metrics: { 'temp.cpu.celsius': 900, 'memory.used_pct': 40 } });

    expect(telemetry).toEqual([
      {
        stream: 'telemetry',
        ts: 1,
        asset: 'm',
        payload: { ts: 1, source: 's', asset: 'm', metrics: { 'temp.cpu.celsius': 900, 'memory.used_pct': 40 }, quality: { 'temp.cpu.celsius': 'range' } },
      },
    ]);
    expect(seen).toEqual(['a:memory.used_pct', 'b:memory.used_pct', 'plain:memory.used_pct']);
    // Once for the flag and once for the failing issue, as the agent always did.
    expect(forgotten).toEqual(['a:m/temp.cpu.celsius', 'b:m/temp.cpu.celsius', 'a:m/temp.cpu.celsius', 'b:m/temp.cpu.celsius']);
    expect(issues).toEqual(['temp.cpu.celsius:range:true']);
  });

  it('fans risk out to every consumer in order', () => {
    const got: string[] = [];
    const fan = riskFanOut([{ consumeRisk: (r) => got.push(`store:${r.length}`) }, null, { consumeRisk: (r) => got.push(`health:${r.length}`) }]);
    fan.consumeRisk([{ ts: 1, asset: 'm', model: 'x' } as RiskRecord]);
    expect(got).toEqual(['store:1', 'health:1']);
  });
});

describe('StorageKeeper (the outbox writer)', () => {
  it('commits once the work in flight settles, in one transaction, at most once per storage.commitDelayMs, and closes the database and the lock', async () => {
    const config = agentConfig();
    const { log } = captureLogger('debug');
    const stats = { storageErrors: 0, dropped: { alerts: 0, risk: 0, events: 0, telemetry: 0 }, lost: 0, held: 0, lastCommitTs: null, lastWriteErrorTs: null };
    const keeper = new StorageKeeper(config.storage, log, stats);
    let closed = false;
    cleanup.push(() => {
      if (!closed) keeper.close();
    });
    expect(keeper.firstBootSeq()).toBeGreaterThan(0);
    let busy = false;
    let notified = 0;
    keeper.attach({
      sync: { inflightCursors: () => new Map(), noteDropped: () => undefined, storeReplaced: () => undefined, notify: () => notified++ },
      onHousekeeping: () => undefined,
      busy: () => busy,
    });
    const appended: number[] = [];
    const append = keeper.store.append.bind(keeper.store);
    keeper.store.append = ((items: NewRecord[]) => {
      appended.push(items.length);
      return append(items);
    }) as typeof keeper.store.append;
    const rec = (ts: number): NewRecord => ({ stream: 'telemetry', ts, asset: 'm', payload: { ts } });
    const endOfTurn = () => new Promise((r) => setImmediate(r));
    const window = config.storage.commitDelayMs;
    expect(window).toBeGreaterThanOrEqual(20);

    // A sample or a score still in flight: what arrives meanwhile waits for it, over several turns.
    busy = true;
    keeper.consumeRecords([rec(1)]);
    keeper.consumeRecords([rec(2)]);
    await endOfTurn();
    await new Promise((r) => setTimeout(r, window / 5));
    expect(appended).toEqual([]);
    // The last of that work settles and hands over its records: committed at the end of that turn, all together,
    // and the sync told at once.
    busy = false;
    keeper.consumeRecords([rec(3)]);
    expect(appended).toEqual([]);
    await endOfTurn();
    expect(appended).toEqual([3]);
    expect(notified).toBe(1);

    // Right after a commit, records still wait for the window (a source that pushes in quick succession gets
    // one commit per window), and then go together.
    keeper.consumeRecords([rec(4)]);
    await endOfTurn();
    keeper.consumeRecords([rec(5)]);
    await endOfTurn();
    expect(appended).toEqual([3]);
    await new Promise((r) => setTimeout(r, window * 2));
    expect(appended).toEqual([3, 2]);

    // Work that never settles (a hung tool) holds a commit up for one window at most.
    busy = true;
    keeper.consumeRecords([rec(6)]);
    await new Promise((r) => setTimeout(r, window * 2));
    expect(appended).toEqual([3, 2, 1]);
    busy = false;

    // Nothing in flight, and the window since the last commit passed: committed in the turn it arrived in.
    await new Promise((r) => setTimeout(r, window + 5));
    keeper.consumeRecords([rec(7)]);
    await endOfTurn();
    expect(appended).toEqual([3, 2, 1, 1]);
    expect(stats.lastCommitTs).not.toBeNull();
    expect(keeper.store.counts().find((c) => c.stream === 'telemetry')?.pending).toBe(7);
    await keeper.stop();
    keeper.close();
    closed = true;
    // The lock is released: a second keeper opens the same directory.
    const again = new StorageKeeper(config.storage, log, { ...stats });
    again.close();
  });
});

describe('Agent: events a source marks for publishing', () => {
  it("records the GPU source's gpu.identity events on the events stream, without the publish flag", async () => {
    const fake = path.resolve('test/agent/sources/gpu/fake-nvidia-smi.mjs');
    const { log } = captureLogger('info');
    const config = agentConfig({
      sources: {
        host: { enabled: false },
        simulator: { enabled: false },
        gpu: { enabled: true, binary: fake, intervalMs: 200, slowIntervalMs: 60000, kernelLog: 'off' },
      },
    });
    const agent = new Agent(config, log, '0.0.0-test');
    cleanup.push(() => agent.stop());
    await agent.start();
    const identities = () => agent.store.pending('events').filter((r) => r.payload.type === 'gpu.identity');
    await waitFor(() => identities().length === 8, 'eight gpu.identity events committed');
    const first = identities()[0]!;
    expect(first.asset).toBe('gpu-0000:18:00.0');
    expect(first.payload).toMatchObject({
      type: 'gpu.identity',
      source: 'nvidia-gpu',
      asset: 'gpu-0000:18:00.0',
      attributes: { name: 'NVIDIA H100 80GB HBM3', uuid: 'GPU-b42dd28e-ffdd-8720-1df0-98bd8cdc05b1', change: 'first' },
    });
    expect(first.payload).not.toHaveProperty('publish');
    // As the sync publishes it ({ seq, ...payload }), it follows the contract's GpuIdentity schema.
    const batch = { schemaVersion: 1, agentId: 'agent-test', stream: 'events', bootSeq: 1, records: identities().map((r) => ({ seq: r.seq, ...r.payload })) };
    expect(contractErrors('forewarn/v1/agent-test/events', batch)).toEqual([]);
    const broken = { ...batch, records: [{ ...batch.records[0], attributes: { ...(first.payload.attributes as object), change: 'swapped' } }] };
    expect(contractErrors('forewarn/v1/agent-test/events', broken)).not.toEqual([]);
  });
});
