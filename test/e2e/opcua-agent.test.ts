/**
 * The agent process with OPC UA endpoints, against a real OPC UA server serving the milling machine: telemetry is
 * committed with the server's Uncertain value flagged, the per-endpoint counters are in /metrics, and an endpoint
 * that cannot be reached fails alone while the agent and the other endpoint carry on.
 */
import http from 'node:http';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RecordStore } from '../../agent/src/store/record-store.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAgent, startAgent } from '../helpers/agent-process.js';
import { cleanupAfterEach } from '../helpers/cleanup.js';
import { freePort } from '../helpers/mosquitto.js';
import { MillOpcuaServer } from '../helpers/opcua-server.js';
import { parseExposition, sampleValue } from '../helpers/prometheus.js';
import { waitFor } from '../helpers/wait.js';

const cleanup = cleanupAfterEach();
let dir: string;
let server: MillOpcuaServer;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'fw-opcua-agent-'));
  server = new MillOpcuaServer({ dir: path.join(dir, 'server') });
  await server.start();
}, 60_000);

afterAll(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

describe('the agent with OPC UA endpoints', () => {
  it('commits telemetry with Uncertain flagged, counts per endpoint in /metrics, and an unreachable endpoint fails alone', { timeout: 90_000 }, async () => {
    server.setStatus('torque', 'UncertainLastUsableValue', 44.4);
    const deadPort = await freePort();
    const endpoint = {
      securityMode: 'None',
      securityPolicy: 'None',
      publishingIntervalMs: 100,
      samplingIntervalMs: 0,
      reconnectMinMs: 200,
      reconnectMaxMs: 1000,
    };
    const agent = startAgent({
      agent: { id: 'opcua-e2e', view: 'off', logLevel: 'info' },
      broker: { url: 'mqtt://127.0.0.1:9' },
      metrics: { port: 0 },
      sources: {
        simulator: { enabled: false },
        host: { intervalMs: 60_000 },
        gpu: { enabled: false },
        smart: { enabled: false },
        opcua: {
          endpoints: [
            { ...endpoint, name: 'mill', url: server.url, nodes: server.nodes() },
            { ...endpoint, name: 'dead', url: `opc.tcp://127.0.0.1:${deadPort}`, nodes: [{ nodeId: 'ns=1;s=x', asset: 'nowhere', signal: 'x' }] },
          ],
        },
      },
    });
    cleanup.push(() => killAgent(agent));
    const port = (await waitFor(() => agent.logs().find((l) => l.msg === 'serving /metrics and /healthz'), `metrics; output:\n${agent.output()}`, 30_000))
      .port as number;

    // Through the store (a read-only handle, as `forewarn status` opens it): telemetry payloads are stored deflated.
    const telemetry = () => {
      let store: RecordStore | undefined;
      try {
        store = new RecordStore({ dir: path.join(agent.dir, 'data'), readonly: true });
        return store
          .recordsAfter('telemetry', 0, 100_000)
          .filter((r) => r.asset === server.asset)
          .map((r) => JSON.parse(r.json) as { source: string; metrics: Record<string, number>; quality?: Record<string, string> });
      } catch {
        return [];
      } finally {
        store?.close();
      }
    };
    const flagged = await waitFor(() => telemetry().find((p) => p.quality?.torque === 'uncertain'), 'the uncertain torque committed', 45_000, 200);
    expect(flagged.source).toBe('opcua:mill');
    // Written on its own (its own source timestamp), so a reading of its own; the others arrive unflagged.
    expect(flagged.metrics).toEqual({ torque: 44.4 });
    expect(flagged.quality).toEqual({ torque: 'uncertain' });
    const others = telemetry().find((p) => p.metrics.air_temperature !== undefined)!;
    expect(others.metrics.air_temperature).toBe(server.truth().air_temperature);
    expect(others.quality).toBeUndefined();

    const metrics = await waitFor(
      async () => {
        const f = parseExposition(await scrape(port));
        return (sampleValue(f, 'forewarn_source_protocol_events_total', { source: 'opcua:dead', counter: 'connectFailures' }) ?? 0) >= 2 ? f : null;
      },
      'the dead endpoint retried',
      30_000,
      200,
    );
    const count = (source: string, counter: string) => sampleValue(metrics, 'forewarn_source_protocol_events_total', { source, counter });
    expect(count('opcua:mill', 'connects')).toBe(1);
    expect(count('opcua:mill', 'uncertain')).toBe(1);
    expect(count('opcua:mill', 'good')).toBeGreaterThanOrEqual(5);
    expect(count('opcua:dead', 'connects')).toBe(0);
    expect(sampleValue(metrics, 'forewarn_source_state', { source: 'opcua:dead', state: 'failing' })).toBe(1);
    expect(sampleValue(metrics, 'forewarn_source_state', { source: 'opcua:mill', state: 'running' })).toBe(1);
    // The agent's application certificate was created on first start, in the state directory, its key private.
    expect(statSync(path.join(agent.dir, 'data', 'opcua-pki', 'own', 'private', 'private_key.pem')).mode & 0o777).toBe(0o600);
    expect(agent.proc.exitCode).toBeNull();
  });
});
