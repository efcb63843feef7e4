import { describe, expect, it } from 'vitest';
import { contractErrors } from '../helpers/contract.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { runCli, startAgent, killAgent } from '../helpers/agent-process.js';
import { waitFor } from '../helpers/wait.js';
import { cleanupAfterEach } from '../helpers/cleanup.js';
import { listen as listenTo } from '../helpers/mqtt-listener.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ReferenceSubscriber } from '../../agent/src/central/ingest-worker.js';
import { captureLogger } from '../helpers/capture-logger.js';

/**
 * The real agent process, compiled, against a real mosquitto: it collects host telemetry, runs the simulated
 * milling machine, scores it with the real ONNX model, buffers in SQLite and publishes the contract.
 */

const cleanup = cleanupAfterEach();

const baseConfig = (url: string, id: string) => ({
  agent: { id, view: 'off', logLevel: 'info' },
  broker: { url, flushIntervalMs: 100, reconnectMinMs: 100, reconnectMaxMs: 500 },
  sources: { host: { intervalMs: 500 }, simulator: { speedup: 600 } },
  // Every risk alert raised and cleared at once (no `for`, no hysteresis, no flapping hold), so a pair comes within
  // seconds; the defaults are tested on the demo in test/agent/health/default-demo-alerts.test.ts.
  alerts: { risk: { forMs: 0, clearForMs: 0, hysteresis: 0 }, flapping: { maxChanges: 0 } },
});

const listen = (url: string, filter: string) => listenTo(url, filter, (undo) => cleanup.push(undo));

describe('the agent, end to end', () => {
  it('publishes contract-valid risk records for the simulated machine, and stops cleanly on SIGTERM', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const messages = await listen(broker.url, 'forewarn/v1/e2e-1/#');
    // Credentials from the environment; mosquitto here accepts any, and the password must never reach a log line.
    // The central side confirms what it stored (the default broker.ack: central releases records on that).
    const central = new ReferenceSubscriber({
      url: broker.url,
      clientId: 'central-e2e',
      store: path.join(mkdtempSync(path.join(tmpdir(), 'fw-central-')), 'c.db'),
      log: captureLogger().log,
    });
    await central.start();
    cleanup.push(() => central.stop());
    const agent = startAgent(baseConfig(broker.url, 'e2e-1'), { FOREWARN_BROKER_USERNAME: 'e2e-1', FOREWARN_BROKER_PASSWORD: 'pw-7f3a9c-never-logged' });
    cleanup.push(() => killAgent(agent));

    const riskBatches = await waitFor(
      () => {
        const r = messages.filter((m) => m.topic === 'forewarn/v1/e2e-1/risk');
        return r.length >= 3 ? r : null;
      },
      `risk batches on the broker; agent output:\n${agent.output()}`,
      30_000,
    );
    await waitFor(
      () =>
        messages.some((m) => m.topic === 'forewarn/v1/e2e-1/telemetry' && (m.payload.records as Array<{ source: string }>).some((r) => r.source === 'host')),
      'host telemetry',
    );
    // The simulated machine (seed 1) fails within its first dozen processes, and the model catches it:
    // a risk alert is raised, then cleared when the next process scores low again (with this test's immediate lifecycle).
    const alerts = await waitFor(
      () => {
        const a = messages.filter((m) => m.topic === 'forewarn/v1/e2e-1/alerts').flatMap((m) => m.payload.records as Array<Record<string, unknown>>);
        return a.some((r) => r.state === 'cleared') ? a : null;
      },
      'a risk alert raised and cleared',
      30_000,
    );
    expect(alerts[0]).toMatchObject({ rule: 'risk.threshold', asset: 'sim-mill-1', subject: 'machine-failure', state: 'raised' });
    expect(alerts.find((a) => a.state === 'cleared')!.alertId).toBe(alerts[0]!.alertId);

    for (const m of messages) expect(contractErrors(m.topic, m.payload), `${m.topic} ${JSON.stringify(m.payload).slice(0, 300)}`).toEqual([]);
    const records = riskBatches.flatMap((m) => m.payload.records as Array<Record<string, unknown>>);
    expect(records[0]).toMatchObject({ asset: 'sim-mill-1', model: 'machine-failure', kind: 'probability' });
    for (const r of records) {
      expect(r.score as number).toBeGreaterThanOrEqual(0);
      expect(r.score as number).toBeLessThanOrEqual(1);
    }
    // Sequence numbers are contiguous from the fresh database's first seq, announced in its storage-recovered event:
    // nothing was skipped on the way.
    const created = await waitFor(
      () =>
        messages
          .filter((m) => m.topic === 'forewarn/v1/e2e-1/events')
          .flatMap((m) => m.payload.records as Array<Record<string, unknown>>)
          .find((e) => e.type === 'storage-recovered'),
      'the fresh database announced',
    );
    expect(created).toMatchObject({ cause: 'created', seq: created.firstSeq });
    const seqs = records.map((r) => r.seq as number).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => (created.firstSeq as number) + i));
    const bootSeq = Number(agent.logs().find((l) => l.msg === 'agent starting')!.bootSeq);
    expect(messages.find((m) => m.topic === 'forewarn/v1/e2e-1/status')?.payload).toMatchObject({ state: 'online', bootSeq });
    // The retained status follows the sources: once sampling, the simulator shows as running.
    await waitFor(
      () =>
        messages.some(
          (m) =>
            m.topic.endsWith('/status') &&
            (m.payload.sources as Array<{ name: string; state: string }> | undefined)?.some((s) => s.name === 'simulator' && s.state === 'running'),
        ),
      'a status with the simulator running',
    );

    agent.proc.kill('SIGTERM');
    const exit = await agent.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(agent.output()).not.toContain('pw-7f3a9c-never-logged');
    // JSON lines on stdout when not on a terminal, each one parseable.
    expect(agent.logs().length).toBeGreaterThan(3);
    await waitFor(() => messages.some((m) => m.topic.endsWith('/status') && m.payload.state === 'offline'), 'offline status');
    expect(messages.filter((m) => m.topic.endsWith('/status')).at(-1)!.payload).toMatchObject({ state: 'offline', reason: 'shutdown' });

    // What was buffered and sent is readable after the agent stopped.
    const status = await runCli(['status', '--config', agent.configFile, '--json']);
    expect(status.code).toBe(0);
    const report = JSON.parse(status.stdout) as {
      streams: Array<{ stream: string; pending: number; sentTotal: number }>;
      latestRisk: Array<{ asset: string }>;
    };
    // Acknowledged by the centre, which stored them, or still buffered for the next run: a confirmation still on its
    // way when the agent stopped (the stop waits for the broker's PUBACKs, not for the centre) leaves the row pending.
    const risk = report.streams.find((s) => s.stream === 'risk')!;
    expect(risk.sentTotal + risk.pending).toBeGreaterThanOrEqual(records.length);
    expect((await central.store.receivedSeqs('e2e-1', 'risk')).length).toBeGreaterThanOrEqual(report.streams.find((s) => s.stream === 'risk')!.sentTotal);
    expect(report.latestRisk.map((r) => r.asset)).toContain('sim-mill-1');
  });

  it('buffers with no broker, says so once, and delivers everything when the broker appears', async () => {
    // The broker stays out of the agent's reach behind our TCP proxy until the listener is subscribed, so the
    // listener cannot miss the backlog however fast the agent reconnects.
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const proxy = await startTcpProxy(broker.port);
    cleanup.push(() => proxy.stop());
    proxy.cut();
    // A plain MQTT listener, no central subscriber: the broker's acknowledgement is what releases records here.
    const agent = startAgent({ ...baseConfig(proxy.url, 'e2e-2'), broker: { ...baseConfig(proxy.url, 'e2e-2').broker, ack: 'broker' } });
    cleanup.push(() => killAgent(agent));
    await waitFor(() => agent.logs().some((l) => l.msg === 'model loaded' && l.model === 'machine-failure'), 'the model to load');
    await new Promise((r) => setTimeout(r, 2500));
    expect(agent.logs().filter((l) => String(l.msg).includes('broker unreachable'))).toHaveLength(1);

    const messages = await listen(broker.url, 'forewarn/v1/e2e-2/risk');
    proxy.restore();
    await waitFor(() => messages.length > 0, 'risk after the broker came up');
    agent.proc.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
    // Every risk record the agent committed reached the broker, the backlog included.
    const status = JSON.parse((await runCli(['status', '--config', agent.configFile, '--json'])).stdout) as {
      streams: Array<{ stream: string; firstSeq: number; lastSeq: number; pending: number }>;
    };
    const risk = status.streams.find((s) => s.stream === 'risk')!;
    const seen = () => new Set(messages.flatMap((m) => (m.payload.records as Array<{ seq: number }>).map((r) => r.seq)));
    // The last acknowledged batches may still be on their way from the broker to this listener.
    await waitFor(() => seen().size >= risk.lastSeq - risk.firstSeq + 1 - risk.pending, 'every acknowledged risk record at the listener');
    expect(seen().size).toBe(risk.lastSeq - risk.firstSeq + 1 - risk.pending);
    expect(Math.min(...seen())).toBe(risk.firstSeq);
  });

  it('leaves a Will that marks the agent offline when it dies without a goodbye', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const messages = await listen(broker.url, 'forewarn/v1/e2e-3/status');
    const agent = startAgent(baseConfig(broker.url, 'e2e-3'));
    cleanup.push(() => killAgent(agent));
    await waitFor(() => messages.some((m) => m.payload.state === 'online'), 'online status');
    agent.proc.kill('SIGKILL');
    await agent.exited;
    await waitFor(() => messages.some((m) => m.payload.state === 'offline'), 'the Will', 10_000);
    const will = messages.find((m) => m.payload.state === 'offline')!;
    expect(will.payload).toMatchObject({ reason: 'connection-lost', agentId: 'e2e-3' });
    expect(contractErrors(will.topic, will.payload)).toEqual([]);
  });

  // Signals (a second SIGTERM finishes the stop, a third exits at once; SIGHUP reloads): test/agent/cli/run-signals.test.ts.

  it('exits with code 2 and `path: message` lines on an invalid configuration', async () => {
    const agent = startAgent({ broker: { url: 'http://nope', keepaliveSeconds: 'x', maxInflight: 'x' } });
    const exit = await agent.exited;
    expect(exit.code).toBe(2);
    expect(agent.output()).toContain('broker.url: ');
    expect(agent.output()).toContain('broker.keepaliveSeconds: "x" is not a duration: seconds, or numbers with ms, s, m, h, d');
    expect(agent.output()).toContain('broker.maxInflight: must be integer');
  });
});
