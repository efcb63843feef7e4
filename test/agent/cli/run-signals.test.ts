import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { startMosquitto } from '../../helpers/mosquitto.js';
import { listen as listenTo } from '../../helpers/mqtt-listener.js';
import { runCli, startAgent, killAgent } from '../../helpers/agent-process.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { waitFor } from '../../helpers/wait.js';

/**
 * `forewarn run` as its own process, with real signals: SIGHUP reloads the configuration file (a bad one keeps the
 * running configuration), and a second SIGTERM does not cut the graceful stop short.
 */

const cleanup = cleanupAfterEach();

const config = (url: string, id: string) => ({
  agent: { id, view: 'off', logLevel: 'info' },
  broker: { url, ack: 'broker', flushIntervalMs: 100, reconnectMinMs: 100, reconnectMaxMs: 500 },
  sources: { host: { intervalMs: 400 }, simulator: { enabled: false }, gpu: { enabled: false }, smart: { enabled: false }, ipmi: { enabled: false } },
  scoring: { enabled: false },
  metrics: { enabled: false },
});

const seqs = (messages: Array<{ payload: Record<string, unknown> }>) =>
  messages.flatMap((m) => (m.payload.records as Array<{ seq: number }>).map((r) => r.seq));

describe('forewarn run: signals', () => {
  it('reloads the configuration on SIGHUP, keeps the running one on a bad file, and loses no committed record', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const telemetry = await listenTo(broker.url, 'forewarn/v1/sig-1/telemetry', (undo) => cleanup.push(undo));
    const agent = startAgent(config(broker.url, 'sig-1'));
    cleanup.push(() => killAgent(agent));
    await waitFor(() => telemetry.length >= 2, `telemetry before the reload; agent output:\n${agent.output()}`);

    // A good file: a live change (the host interval), and one that needs a restart (storage), named as such.
    const raw = parse(readFileSync(agent.configFile, 'utf8')) as Record<string, Record<string, unknown>>;
    const good: Record<string, Record<string, unknown>> = {
      ...raw,
      sources: { ...raw.sources, host: { intervalMs: 250 } },
      storage: { ...raw.storage, retentionHours: 5 },
    };
    writeFileSync(agent.configFile, stringify(good));
    agent.proc.kill('SIGHUP');
    const reloaded = await waitFor(() => agent.logs().find((l) => l.msg === 'configuration reloaded'), 'the reload').catch((err: Error) => {
      throw new Error(`${err.message}; agent output:\n${agent.output()}`);
    });
    expect(reloaded).toMatchObject({
      trigger: 'SIGHUP',
      applied: ['sources.host.intervalMs'],
      restartNeeded: ['storage.retentionHours'],
      pipelineRestart: true,
    });
    // Logged right after the reload line; the pipe may hand it over a moment later.
    await waitFor(
      () => agent.logs().some((l) => l.level === 40 && String(l.msg).startsWith('storage.retentionHours: cannot change while the agent runs')),
      'the restart-only option named',
    );
    await waitFor(() => agent.logs().some((l) => l.msg === 'pipeline restarted with the reloaded configuration'), 'the new pipeline');
    const before = telemetry.length;
    await waitFor(() => telemetry.length >= before + 3, 'telemetry flowing after the reload');

    // A bad file: said why, as `path: message`, and the agent goes on with what it runs.
    writeFileSync(agent.configFile, stringify({ ...good, broker: { ...good.broker, keepaliveSeconds: 'often' } }));
    agent.proc.kill('SIGHUP');
    const refused = await waitFor(() => agent.logs().find((l) => String(l.msg).startsWith('configuration not reloaded')), 'the refusal');
    const why = 'broker.keepaliveSeconds: "often" is not a duration';
    expect(refused).toMatchObject({ level: 50, code: 'FW_ERR_CONFIG_INVALID', problems: [expect.stringContaining(why)] });
    expect(String(refused.msg)).toContain(why);
    const after = telemetry.length;
    await waitFor(() => telemetry.length >= after + 3, 'telemetry still flowing after the bad file');
    expect(agent.proc.exitCode).toBeNull();
    expect(agent.logs().filter((l) => l.msg === 'configuration reloaded')).toHaveLength(1);

    agent.proc.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
    writeFileSync(agent.configFile, stringify(good));
    // Everything committed across both pipelines went out once, in order, with no gap: the outbox carried over.
    const status = JSON.parse((await runCli(['status', '--config', agent.configFile, '--json'])).stdout) as {
      streams: Array<{ stream: string; firstSeq: number; lastSeq: number; pending: number }>;
    };
    const t = status.streams.find((s) => s.stream === 'telemetry')!;
    expect(t.pending).toBe(0);
    await waitFor(() => new Set(seqs(telemetry)).size === t.lastSeq - t.firstSeq + 1, 'every telemetry record at the listener');
    expect(Math.min(...seqs(telemetry))).toBe(t.firstSeq);
    expect(Math.max(...seqs(telemetry))).toBe(t.lastSeq);
  }, 60_000);

  it('finishes the graceful stop on a second SIGTERM and exits at once only on a third', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const first = startAgent(config(broker.url, 'sig-2'));
    cleanup.push(() => killAgent(first));
    await waitFor(() => first.logs().some((l) => l.msg === 'connected to the broker'), 'the connection');
    // A frozen broker: the graceful stop waits for PUBACKs, long enough to send more signals into it.
    broker.pause();
    cleanup.push(() => broker.resume());
    await new Promise((r) => setTimeout(r, 300));
    first.proc.kill('SIGTERM');
    await waitFor(() => first.logs().some((l) => l.msg === 'stopping'), 'the first signal to be handled');
    first.proc.kill('SIGTERM');
    await waitFor(() => first.logs().some((l) => String(l.msg).startsWith('already stopping')), 'the second signal to be handled');
    broker.resume();
    const exit = await first.exited;
    // The stop ran to its end: the database was closed (the last line of a stop), no forced exit.
    expect(exit.code).toBe(0);
    expect(first.logs().some((l) => l.msg === 'agent stopped')).toBe(true);
    expect(first.logs().some((l) => String(l.msg).startsWith('third signal'))).toBe(false);

    const second = startAgent(config(broker.url, 'sig-3'));
    cleanup.push(() => killAgent(second));
    await waitFor(() => second.logs().some((l) => l.msg === 'connected to the broker'), 'the connection');
    broker.pause();
    await new Promise((r) => setTimeout(r, 300));
    second.proc.kill('SIGTERM');
    await waitFor(() => second.logs().some((l) => l.msg === 'stopping'), 'the first signal to be handled');
    second.proc.kill('SIGTERM');
    await waitFor(() => second.logs().some((l) => String(l.msg).startsWith('already stopping')), 'the second signal to be handled');
    second.proc.kill('SIGINT');
    const forced = await second.exited;
    broker.resume();
    expect(forced.code).toBe(130);
    expect(second.logs().find((l) => String(l.msg).startsWith('third signal'))).toMatchObject({ signal: 'SIGINT', signals: 3 });
    expect(second.logs().some((l) => l.msg === 'agent stopped')).toBe(false);
  }, 60_000);
});
