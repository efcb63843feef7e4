import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { killAgent, spawnAgent, startAgent, type AgentProcess } from '../helpers/agent-process.js';
import { parseExposition, sampleValue } from '../helpers/prometheus.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { SparkplugHost } from '../helpers/sparkplug-host.js';
import { waitFor } from '../helpers/wait.js';
import { cleanupAfterEach } from '../helpers/cleanup.js';

/**
 * The real agent as a Sparkplug B edge node, followed by a reference host application (Eclipse Tahu's decoder,
 * test/helpers/sparkplug-host.ts) acting as the primary host: a rebirth request, a broker restart (mosquitto with
 * persistence) and an agent SIGKILL, with node and device state checked after each.
 */

const cleanup = cleanupAfterEach();

/** The agent's /metrics, parsed. */
async function scrape(agent: AgentProcess) {
  const line = await waitFor(() => agent.logs().find((l) => l.msg === 'serving /metrics and /healthz'), 'the metrics server');
  const body = await new Promise<string>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: line.port as number, path: '/metrics' }, (res) => {
        let text = '';
        res.on('data', (d) => (text += String(d)));
        res.on('end', () => resolve(text));
      })
      .on('error', reject);
  });
  return parseExposition(body);
}

describe('the agent as a Sparkplug B edge node', () => {
  it('follows births, a rebirth request, a broker restart and a SIGKILL as a primary host sees them', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const host = new SparkplugHost(broker.url, 'plant-a', 'edge-1', 'scada-1');
    cleanup.push(() => host.close());
    await host.connect();
    const config = {
      agent: { id: 'spb-e2e', view: 'off', logLevel: 'info' },
      broker: { url: broker.url, ack: 'broker', flushIntervalMs: 100, reconnectMinMs: 100, reconnectMaxMs: 500 },
      sources: { host: { enabled: false }, simulator: { speedup: 600 } },
      sparkplug: { enabled: true, groupId: 'plant-a', edgeNodeId: 'edge-1', primaryHostId: 'scada-1' },
      metrics: { port: 0 },
    };
    let agent = startAgent(config);
    cleanup.push(() => killAgent(agent));
    const out = () => agent.output().slice(-3000);

    // Births, then the machine's signals, its risk score and its alert states as metrics of device sim-mill-1.
    await waitFor(() => host.node.online, `NBIRTH; agent output:\n${out()}`, 30_000);
    const bd0 = host.node.bdSeq!;
    await waitFor(() => host.node.devices.get('sim-mill-1'), `DBIRTH of sim-mill-1; agent output:\n${out()}`, 30_000);
    // A metric first seen (the first score) births the device again: the host replaces its state on each DBIRTH.
    const mill = await waitFor(
      () => {
        const d = host.node.devices.get('sim-mill-1')!;
        return d.values.has('risk/machine-failure/score') ? d : null;
      },
      'the risk score as a metric',
      30_000,
    );
    await waitFor(() => host.of('DDATA').length >= 5, 'DDATA');
    expect([...mill.values.keys()]).toEqual(expect.arrayContaining(['air_temperature', 'rotational_speed', 'risk/machine-failure/atRisk']));

    // A rebirth request: NBIRTH again with the same bdSeq, and the device born again.
    const dbirths = host.of('DBIRTH').length;
    await host.requestRebirth();
    await waitFor(() => host.node.births === 2 && host.of('DBIRTH').length > dbirths, 'NBIRTH and DBIRTH after the rebirth request');
    expect(host.node.bdSeq).toBe(bd0);
    const metrics = await scrape(agent);
    expect(sampleValue(metrics, 'forewarn_sparkplug_births_total')).toBe(2);
    expect(sampleValue(metrics, 'forewarn_sparkplug_bdseq')).toBe(bd0);
    expect(sampleValue(metrics, 'forewarn_sparkplug_connected')).toBe(1);

    // The broker restarts: the node reconnects with the next bdSeq, waits for the host's STATE, births again, and
    // sends what it committed while the broker was away as history.
    await broker.restart({ downMs: 1500 });
    await waitFor(() => host.node.births >= 3 && host.node.online, `NBIRTH after the broker restart; agent output:\n${out()}`, 30_000);
    expect(host.node.bdSeq).toBeGreaterThan(bd0);
    await waitFor(() => host.node.devices.get('sim-mill-1')!.historical > 0, 'the readings of the outage, as history', 30_000);
    const bd1 = host.node.bdSeq!;

    // SIGKILL: the broker publishes the Will (NDEATH with the current bdSeq); the host marks node and devices offline.
    const deaths = host.node.deaths;
    agent.proc.kill('SIGKILL');
    await agent.exited;
    await waitFor(() => host.node.deaths === deaths + 1, 'NDEATH from the Will after SIGKILL', 30_000);
    const will = host.of('NDEATH').at(-1)!;
    expect(will.payload.metrics!.map((m) => [m.name, Number(m.value)])).toEqual([['bdSeq', bd1]]);
    expect(host.node.online).toBe(false);
    expect([...host.node.devices.values()].every((d) => !d.online)).toBe(true);

    // Back up: a new NBIRTH with the next bdSeq (persisted across the restart), then the device again.
    const births = host.node.births;
    agent = spawnAgent(['run', '--config', agent.configFile], agent.dir, agent.configFile);
    await waitFor(() => host.node.births > births && host.node.online, `NBIRTH after the restart; agent output:\n${out()}`, 30_000);
    expect(host.node.bdSeq).toBe((bd1 + 1) % 256);
    await waitFor(() => host.node.devices.get('sim-mill-1')?.online, 'DBIRTH of sim-mill-1 after the restart', 30_000);
    expect(host.violations).toEqual([]);

    // A clean stop says goodbye itself: DDEATH, then NDEATH with the current bdSeq.
    agent.proc.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
    await waitFor(() => !host.node.online, 'NDEATH at a clean stop');
    expect(host.violations).toEqual([]);
  }, 120_000);
});
