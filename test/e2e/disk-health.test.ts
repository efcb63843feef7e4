import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { contractErrors } from '../helpers/contract.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { ROOT, startAgent, type AgentProcess } from '../helpers/agent-process.js';
import { waitFor } from '../helpers/wait.js';
import { cleanupAfterEach } from '../helpers/cleanup.js';

/**
 * Disk health end to end: the real agent reads a server's disks through a fake smartctl that replays recorded
 * output (the production spawn-and-parse path), scores every disk with the disk-failure model, raises the
 * SMART health alerts, and publishes both to a real mosquitto.
 */

const cleanup = cleanupAfterEach();

const kill = (agent: AgentProcess) => async () => {
  if (agent.proc.exitCode === null && agent.proc.signalCode === null) {
    agent.proc.kill('SIGKILL');
    await agent.exited;
  }
};

describe('disk health, end to end', () => {
  it('scores every readable disk and alerts on the failing one', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const messages: Array<{ topic: string; payload: Record<string, unknown> }> = [];
    const sub = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `disk-e2e-${process.pid}` });
    sub.on('message', (topic, payload) => messages.push({ topic, payload: JSON.parse(String(payload)) as Record<string, unknown> }));
    await sub.subscribeAsync('forewarn/v1/disk-e2e/#', { qos: 1 });
    cleanup.push(() => sub.endAsync());

    const agent = startAgent(
      {
        agent: { id: 'disk-e2e', view: 'off' },
        broker: { url: broker.url, flushIntervalMs: 100 },
        // The disk model's alert at its first at-risk score: by default (`forMs` 2 s) it waits for the next SMART read.
        alerts: { risk: { forMs: 0 } },
        sources: {
          simulator: { enabled: false },
          gpu: { enabled: false },
          smart: { binary: `${ROOT}/test/agent/sources/smart/fake-smartctl.mjs`, intervalMs: 60_000 },
        },
      },
      { FAKE_SMARTCTL_SET: 'server' },
    );
    cleanup.push(kill(agent));

    const risk = await waitFor(
      () => {
        const r = messages.filter((m) => m.topic.endsWith('/risk')).flatMap((m) => m.payload.records as Array<Record<string, unknown>>);
        return r.length >= 5 ? r : null;
      },
      `disk risk records; agent output:\n${agent.output()}`,
      30_000,
    );
    const alerts = await waitFor(() => {
      const a = messages.filter((m) => m.topic.endsWith('/alerts')).flatMap((m) => m.payload.records as Array<Record<string, unknown>>);
      return a.some((x) => x.rule === 'disk.smart.failed') ? a : null;
    }, 'the SMART alerts');
    for (const m of messages) expect(contractErrors(m.topic, m.payload), m.topic).toEqual([]);

    const byAsset = new Map(risk.map((r) => [r.asset as string, r]));
    // Five readable disks (three ATA, one failing ATA, one NVMe); the USB bridge and the sleeping disk are not read.
    expect([...byAsset.keys()].every((a) => a.startsWith('disk-'))).toBe(true);
    const failing = byAsset.get('disk-9VMQ2X1B')!;
    expect(failing).toMatchObject({ model: 'disk-failure', atRisk: true });
    const healthy = [...byAsset.values()].filter((r) => r.asset !== 'disk-9VMQ2X1B');
    expect(healthy.every((r) => (r.score as number) < (failing.score as number))).toBe(true);
    expect(alerts.filter((a) => a.asset === 'disk-9VMQ2X1B').map((a) => a.rule)).toEqual(
      expect.arrayContaining(['disk.smart.failed', 'disk.smart.pending', 'risk.threshold']),
    );
    expect(alerts.find((a) => a.rule === 'disk.smart.failed')).toMatchObject({ severity: 'critical', state: 'raised' });
  });
});
