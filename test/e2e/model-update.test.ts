import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { contractErrors } from '../helpers/contract.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { runCli, startAgent, killAgent } from '../helpers/agent-process.js';
import { waitFor } from '../helpers/wait.js';
import { cleanupAfterEach } from '../helpers/cleanup.js';
import { listen as listenTo, type ReceivedMessage as Msg } from '../helpers/mqtt-listener.js';
import { machineFailureAt, tempDir } from '../helpers/model-fixtures.js';

/**
 * Safe model updates end to end: the compiled CLI signs a model and installs it while the real agent runs against
 * a real mosquitto; the agent shadow-scores it on the simulated machine, promotes it, and from then on publishes
 * risk records carrying the new version, with the lifecycle on the events stream.
 */

const cleanup = cleanupAfterEach();

const listen = (url: string, filter: string) => listenTo(url, filter, (undo) => cleanup.push(undo));

const records = (messages: Msg[], stream: string) =>
  messages.filter((m) => m.topic === `forewarn/v1/e2e-mu/${stream}`).flatMap((m) => m.payload.records as Array<Record<string, unknown>>);

describe('model updates, end to end', () => {
  it('installs a signed bundle with the CLI while the agent runs: shadowed, promoted, and the broker sees the new version', async () => {
    const dir = tempDir('fw-e2e-model-');
    const gen = await runCli(['model', 'keygen', '--out', path.join(dir, 'keys'), '--json']);
    expect(gen.code).toBe(0);
    const key = JSON.parse(gen.stdout) as { privateFile: string; publicFile: string; keyId: string };
    const bundle = path.join(dir, 'machine-failure-1.1.0.fwm');
    expect((await runCli(['model', 'bundle', machineFailureAt('1.1.0'), '--key', key.privateFile, '--out', bundle])).code).toBe(0);

    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const messages = await listen(broker.url, 'forewarn/v1/e2e-mu/#');
    const agent = startAgent({
      agent: { id: 'e2e-mu', view: 'off', logLevel: 'info' },
      broker: { url: broker.url, flushIntervalMs: 100, reconnectMinMs: 100, reconnectMaxMs: 500 },
      sources: { host: { intervalMs: 500 }, simulator: { speedup: 600 } },
      scoring: { trustedKeys: [key.publicFile], updateCheckIntervalMs: 300, shadow: { samples: 30 } },
    });
    cleanup.push(() => killAgent(agent));
    await waitFor(
      () => records(messages, 'risk').some((r) => r.modelVersion === '1.0.0'),
      `risk from the shipped model; agent output:\n${agent.output()}`,
      30_000,
    );

    const install = await runCli(['model', 'install', bundle, '--config', agent.configFile]);
    expect(install.stderr).toBe('');
    expect(install.code).toBe(0);
    expect(install.stdout).toContain('installed as candidate beside 1.0.0; the running agent (pid');

    const promoted = await waitFor(
      () => records(messages, 'events').find((e) => e.type === 'model-promoted'),
      `a model-promoted event; agent output:\n${agent.output().slice(-3000)}`,
      30_000,
    );
    expect(promoted).toMatchObject({ model: 'machine-failure', version: '1.1.0', previousVersion: '1.0.0', shadow: { samples: 30, disagreements: 0 } });
    expect(records(messages, 'events').find((e) => e.type === 'model-candidate')).toMatchObject({
      model: 'machine-failure',
      version: '1.1.0',
      keyId: key.keyId,
      shadowSamples: 30,
    });
    await waitFor(() => records(messages, 'risk').some((r) => r.modelVersion === '1.1.0'), 'risk records from the promoted version', 15_000);
    await waitFor(
      () =>
        messages.some(
          (m) =>
            m.topic.endsWith('/status') &&
            (m.payload.models as Array<{ name: string; version: string }> | undefined)?.some((x) => x.name === 'machine-failure' && x.version === '1.1.0'),
        ),
      'the retained status naming the new version',
    );
    // The swap is clean: once the new version scores, the old one never publishes again.
    const risk = records(messages, 'risk')
      .filter((r) => r.model === 'machine-failure')
      .sort((a, b) => (a.seq as number) - (b.seq as number));
    const first = risk.findIndex((r) => r.modelVersion === '1.1.0');
    expect(risk.slice(first).every((r) => r.modelVersion === '1.1.0')).toBe(true);
    expect(agent.logs().some((l) => l.msg === 'shadow-scoring candidate model' && l.version === '1.1.0')).toBe(true);

    for (const m of messages) expect(contractErrors(m.topic, m.payload), `${m.topic} ${JSON.stringify(m.payload).slice(0, 300)}`).toEqual([]);

    agent.proc.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
    const list = JSON.parse((await runCli(['model', 'list', '--config', agent.configFile, '--json'])).stdout) as {
      models: Array<{ name: string; current: string | null; candidate: string | null }>;
    };
    expect(list.models.find((m) => m.name === 'machine-failure')).toMatchObject({ current: '1.1.0', candidate: null });
  });
});
