import http from 'node:http';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { startMosquitto, freePort } from '../../helpers/mosquitto.js';
import { startAgent, type AgentProcess, killAgent } from '../../helpers/agent-process.js';
import { waitFor } from '../../helpers/wait.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { parseExposition, sampleValue, type ParsedFamily } from '../../helpers/prometheus.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ReferenceSubscriber } from '../../../agent/src/central/ingest-worker.js';
import { captureLogger } from '../../helpers/capture-logger.js';

/** The real agent process serves /metrics and /healthz; we scrape it as Prometheus would. */

const cleanup = cleanupAfterEach();

function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
      })
      .on('error', reject);
  });
}

/** The port the agent logged (configured with port 0). */
async function metricsPort(agent: AgentProcess): Promise<number> {
  const line = await waitFor(
    () => agent.logs().find((l) => l.msg === 'serving /metrics and /healthz'),
    `the metrics server; agent output:\n${agent.output()}`,
    30_000,
  );
  return line.port as number;
}

async function scrape(port: number): Promise<Map<string, ParsedFamily>> {
  const res = await get(port, '/metrics');
  expect(res.status).toBe(200);
  expect(res.type).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parseExposition(res.body);
}

const config = (url: string, id: string) => ({
  agent: { id, view: 'off', logLevel: 'info' },
  broker: { url, flushIntervalMs: 100, reconnectMinMs: 100, reconnectMaxMs: 500 },
  sources: { host: { intervalMs: 500 }, simulator: { speedup: 600 }, gpu: { enabled: false }, smart: { enabled: false } },
  metrics: { port: 0 },
});

const EXPECTED = [
  'forewarn_build_info',
  'forewarn_outbox_pending_records',
  'forewarn_outbox_unconfirmed_records',
  'forewarn_records_resent_total',
  'forewarn_outbox_oldest_pending_age_seconds',
  'forewarn_records_sent_total',
  'forewarn_records_dropped_total',
  'forewarn_mqtt_publish_rejections_total',
  'forewarn_mqtt_published_bytes_total',
  'forewarn_mqtt_published_messages_total',
  'forewarn_broker_connected',
  'forewarn_broker_reconnects_total',
  'forewarn_scoring_batch_duration_seconds',
  'forewarn_source_errors_total',
  'forewarn_source_samples_total',
  'forewarn_model_info',
  'forewarn_model_drift_state',
  'forewarn_alerts_active',
  'forewarn_alerts_pending',
  'forewarn_alerts_flapping',
  'forewarn_alert_changes_total',
  'forewarn_storage_used_bytes',
  'forewarn_storage_filesystem_free_bytes',
  'process_resident_memory_bytes',
  'process_cpu_seconds_total',
  'process_start_time_seconds',
  'forewarn_event_loop_delay_seconds',
];

describe('/metrics and /healthz', () => {
  it('serves a valid exposition with every family, counts what the centre confirmed, and says healthy', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    // The reference subscriber confirms what it stores: with the default broker.ack (central) that is what counts as sent.
    const central = new ReferenceSubscriber({
      url: broker.url,
      clientId: 'central-metrics',
      store: path.join(mkdtempSync(path.join(tmpdir(), 'fw-central-')), 'c.db'),
      log: captureLogger().log,
    });
    await central.start();
    cleanup.push(() => central.stop());
    const agent = startAgent(config(broker.url, 'metrics-1'));
    cleanup.push(() => killAgent(agent));
    const port = await metricsPort(agent);

    // Wait until something has been sent and scored.
    const m = await waitFor(
      async () => {
        const f = await scrape(port);
        return (sampleValue(f, 'forewarn_records_sent_total', { stream: 'risk' }) ?? 0) > 0 &&
          (sampleValue(f, 'forewarn_scoring_batch_duration_seconds_count') ?? 0) > 0
          ? f
          : null;
      },
      `risk records sent and scored; agent output:\n${agent.output()}`,
      30_000,
    );

    for (const name of EXPECTED) expect(m.has(name), name).toBe(true);
    for (const f of m.values()) {
      expect(f.help.length, f.name).toBeGreaterThan(0);
      if (f.type === 'counter') expect(f.name, 'counters end in _total').toMatch(/_total$/);
      for (const s of f.samples)
        if (!s.name.endsWith('_bucket') || s.labels.le !== '+Inf') expect(Number.isFinite(s.value), `${s.name} ${JSON.stringify(s.labels)}`).toBe(true);
    }
    expect(sampleValue(m, 'forewarn_build_info', { agent_id: 'metrics-1' })).toBe(1);
    expect(sampleValue(m, 'forewarn_broker_connected')).toBe(1);
    expect(sampleValue(m, 'forewarn_mqtt_published_messages_total')).toBeGreaterThan(0);
    expect(sampleValue(m, 'forewarn_mqtt_published_bytes_total')).toBeGreaterThan(0);
    expect(sampleValue(m, 'forewarn_central_ack_age_seconds')).toBeGreaterThanOrEqual(0);
    expect(sampleValue(m, 'forewarn_outbox_unconfirmed_records')).toBeGreaterThanOrEqual(0);
    expect(sampleValue(m, 'forewarn_model_info', { model: 'machine-failure', asset: 'sim-mill-1' })).toBe(1);
    expect(m.get('forewarn_model_info')!.samples.find((s) => s.labels.model === 'machine-failure')!.labels.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(sampleValue(m, 'forewarn_source_samples_total', { source: 'simulator' })).toBeGreaterThan(0);
    expect(sampleValue(m, 'forewarn_source_state', { source: 'host', state: 'running' })).toBe(1);
    expect(sampleValue(m, 'forewarn_storage_used_bytes')).toBeGreaterThan(0);
    expect(sampleValue(m, 'process_resident_memory_bytes')).toBeGreaterThan(1024 * 1024);
    // Histogram buckets are cumulative and end at +Inf = _count.
    const buckets = m.get('forewarn_scoring_batch_duration_seconds')!.samples.filter((s) => s.name.endsWith('_bucket'));
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
    expect(buckets.at(-1)!.labels.le).toBe('+Inf');
    expect(buckets.at(-1)!.value).toBe(sampleValue(m, 'forewarn_scoring_batch_duration_seconds_count'));
    // Every stream is listed, and none is dropped.
    expect(
      m
        .get('forewarn_outbox_pending_records')!
        .samples.map((s) => s.labels.stream)
        .sort(),
    ).toEqual(['alerts', 'events', 'risk', 'telemetry']);
    for (const s of m.get('forewarn_records_dropped_total')!.samples) expect(s.value).toBe(0);

    const health = await get(port, '/healthz');
    expect(health.status).toBe(200);
    const body = JSON.parse(health.body) as { status: string; reasons: string[]; broker: { connected: boolean }; agentId: string };
    expect(body).toMatchObject({ status: 'ok', reasons: [], agentId: 'metrics-1', broker: { connected: true } });
    expect((await get(port, '/nope')).status).toBe(404);

    // SIGTERM: the server closes with the agent.
    agent.proc.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
  });

  it('with the broker down: pending and lag grow, the broker is reported down, and the agent is still healthy', async () => {
    const closed = await freePort();
    const agent = startAgent(config(`mqtt://127.0.0.1:${closed}`, 'metrics-2'));
    cleanup.push(() => killAgent(agent));
    const port = await metricsPort(agent);

    const first = await waitFor(
      async () => {
        const f = await scrape(port);
        return (sampleValue(f, 'forewarn_outbox_pending_records', { stream: 'telemetry' }) ?? 0) > 0 ? f : null;
      },
      'telemetry pending',
      30_000,
    );
    const before = sampleValue(first, 'forewarn_outbox_pending_records', { stream: 'telemetry' })!;
    const later = await waitFor(
      async () => {
        const f = await scrape(port);
        return sampleValue(f, 'forewarn_outbox_pending_records', { stream: 'telemetry' })! > before &&
          (sampleValue(f, 'forewarn_broker_reconnects_total') ?? 0) > 0
          ? f
          : null;
      },
      'pending to grow while the broker is down',
      30_000,
    );
    expect(sampleValue(later, 'forewarn_broker_connected')).toBe(0);
    expect(sampleValue(later, 'forewarn_broker_state', { state: 'online' })).toBe(0);
    expect(sampleValue(later, 'forewarn_outbox_oldest_pending_age_seconds', { stream: 'telemetry' })).toBeGreaterThan(0);
    expect(sampleValue(later, 'forewarn_records_sent_total', { stream: 'telemetry' })).toBe(0);

    const health = await get(port, '/healthz');
    expect(health.status).toBe(200);
    const body = JSON.parse(health.body) as { status: string; notes: string[]; broker: { connected: boolean }; storage: { pending: number } };
    expect(body.status).toBe('ok');
    expect(body.broker.connected).toBe(false);
    expect(body.storage.pending).toBeGreaterThan(0);
    expect(body.notes.some((n) => /broker .*buffered locally/.test(n))).toBe(true);
  });

  it('a port in use is logged and the agent carries on', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const taken = (blocker.address() as net.AddressInfo).port;
    const closed = await freePort();
    const agent = startAgent({ ...config(`mqtt://127.0.0.1:${closed}`, 'metrics-3'), metrics: { port: taken } });
    cleanup.push(() => killAgent(agent));
    await waitFor(
      () => agent.logs().find((l) => l.component === 'metrics' && l.level === 40 && String(l.err).includes('EADDRINUSE')),
      `a warning about the port; output:\n${agent.output()}`,
      30_000,
    );
    // It runs on: the sources start after the metrics server, and it stops cleanly.
    await waitFor(
      () => agent.logs().some((l) => l.msg === 'simulated machine running' || l.component === 'source'),
      `the sources starting; output:\n${agent.output()}`,
      30_000,
    );
    expect(agent.proc.exitCode).toBeNull();
    expect(agent.logs().filter((l) => (l.level as number) >= 60)).toEqual([]);
    agent.proc.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
  });
});
