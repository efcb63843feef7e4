import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../agent/src/config/load-config.js';
import { Agent } from '../../../agent/src/pipeline/agent.js';
import { AgentRunner } from '../../../agent/src/pipeline/agent-runner.js';
import { buildCommandRequest, sendCommand, type CommandRequest } from '../../../agent/src/commands/command-client.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { contractErrors } from '../../helpers/contract.js';
import { startMosquitto, type Broker } from '../../helpers/mosquitto.js';
import { waitFor } from '../../helpers/wait.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { bundleFile, machineFailureAt, signingKey, tempDir, type SigningKey } from '../../helpers/model-fixtures.js';

/**
 * Remote commands against a real mosquitto and a real Agent (in this process): request/response with MQTT 5
 * response topic and correlation data, signatures, expiry, replay, refusals, and the `command` events.
 */

const cleanup = cleanupAfterEach();
const ID = 'cmd-test';

interface Seen {
  topic: string;
  payload: Record<string, unknown>;
  correlationData?: Buffer;
}

async function centre(broker: Broker, options: mqtt.IClientOptions = {}): Promise<{ client: MqttClient; seen: Seen[] }> {
  const seen: Seen[] = [];
  const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `centre-${Math.random()}`, ...options });
  client.on('message', (topic, payload, packet) => {
    if (topic.includes('/cmd/')) return;
    try {
      const corr = packet.properties?.correlationData;
      seen.push({ topic, payload: JSON.parse(String(payload)) as Record<string, unknown>, ...(corr ? { correlationData: corr } : {}) });
    } catch {
      // not ours
    }
  });
  await client.subscribeAsync(`forewarn/v1/${ID}/#`, { qos: 1 });
  cleanup.push(() => client.endAsync());
  return { client, seen };
}

async function startAgent(broker: Broker, key: SigningKey | null, extra: Record<string, unknown> = {}) {
  const dir = tempDir('fw-cmd-');
  const file = path.join(dir, 'forewarn.yaml');
  const raw = {
    agent: { id: ID, view: 'off', logLevel: 'info' },
    storage: { dir: path.join(dir, 'data') },
    broker: { url: broker.url, flushIntervalMs: 50, reconnectMinMs: 100, reconnectMaxMs: 400 },
    sources: { host: { enabled: false }, simulator: { enabled: false } },
    metrics: { enabled: false },
    scoring: { trustedKeys: key ? [key.publicFile] : [], shadow: { samples: 0 }, updateCheckIntervalMs: 300, anomaly: { enabled: false } },
    commands: { trustedKeys: key ? [key.publicFile] : [] },
    ...extra,
  };
  writeFileSync(file, stringify(raw));
  const loaded = loadConfig(file, {});
  const { log, lines } = captureLogger('debug');
  // The daemon's runner: `reload-config` takes the same path as SIGHUP (pipeline/agent-runner.ts).
  const runner = new AgentRunner(loaded, log, '0.0.0-test', { env: {} });
  const agent = runner.agent;
  await runner.start();
  cleanup.push(() => runner.stop());
  await waitFor(() => lines.some((l) => l.msg === 'subscribed to remote commands'), 'the command subscription');
  return { agent, runner, lines, file, raw, log };
}

const events = (seen: Seen[]) =>
  seen
    .filter((m) => m.topic === `forewarn/v1/${ID}/events`)
    .flatMap((m) => m.payload.records as Array<Record<string, unknown>>)
    .filter((e) => e.type === 'command');

/** Publishes raw bytes as a request and waits for the reply on a topic of its own. */
async function rawRequest(client: MqttClient, seen: Seen[], command: string, payload: string | Buffer, tag: string) {
  const responseTopic = `forewarn/v1/${ID}/reply/${tag}`;
  const correlationData = Buffer.from(tag);
  await client.publishAsync(`forewarn/v1/${ID}/cmd/${command}`, payload, { qos: 1, properties: { responseTopic, correlationData } });
  const m = await waitFor(() => seen.find((s) => s.topic === responseTopic), `a reply on ${responseTopic}`);
  expect(m.correlationData?.equals(correlationData)).toBe(true);
  return m.payload;
}

function checkContract(seen: Seen[]) {
  for (const m of seen) expect(contractErrors(m.topic, m.payload), `${m.topic} ${JSON.stringify(m.payload).slice(0, 300)}`).toEqual([]);
}

describe('remote commands over MQTT 5', () => {
  it('answers ping and status with the correlation data, and refuses malformed, unknown, expired, unsigned and replayed requests without stopping', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const key = signingKey();
    const { client, seen } = await centre(broker);
    const { agent, log } = await startAgent(broker, key);

    const pong = await sendCommand(client, ID, 'ping', buildCommandRequest(ID, 'ping'), { requester: 'ops-console' });
    expect(pong).toMatchObject({ status: 'ok', command: 'ping', agentId: ID, data: { pong: true } });
    const reply = seen.find((m) => m.topic.startsWith(`forewarn/v1/${ID}/reply/`));
    expect(reply?.correlationData?.length).toBeGreaterThan(0);

    const status = await sendCommand(client, ID, 'status', buildCommandRequest(ID, 'status'));
    expect(status.status).toBe('ok');
    expect(status.data).toMatchObject({ agentId: ID, broker: { state: 'online' }, drain: { pending: expect.any(Number) }, logLevel: 'debug' });
    expect((status.data as { models: Array<{ name: string }> }).models.map((m) => m.name)).toContain('machine-failure');

    // Malformed and unknown: a coded error reply, and the agent carries on.
    expect(await rawRequest(client, seen, 'ping', '{not json', 'bad-json')).toMatchObject({
      status: 'error',
      error: { code: 'FW_ERR_COMMAND_MALFORMED' },
      command: 'ping',
    });
    expect(await rawRequest(client, seen, 'ping', JSON.stringify({ id: 'x1' }), 'no-issued')).toMatchObject({ error: { code: 'FW_ERR_COMMAND_MALFORMED' } });
    expect(await rawRequest(client, seen, 'reboot', JSON.stringify({ issuedAt: Date.now() }), 'unknown')).toMatchObject({
      error: { code: 'FW_ERR_COMMAND_UNKNOWN' },
      command: 'reboot',
    });

    // Expired: by expiresAt, and by issuedAt older than commands.maxAgeSeconds (300 s + 30 s skew).
    const expired = buildCommandRequest(ID, 'ping', { issuedAt: Date.now() - 120_000, expiresInSeconds: 60 });
    expect(await sendCommand(client, ID, 'ping', expired)).toMatchObject({ status: 'error', error: { code: 'FW_ERR_COMMAND_EXPIRED' } });
    const old = buildCommandRequest(ID, 'ping', { issuedAt: Date.now() - 3_600_000, expiresInSeconds: 0 });
    expect(await sendCommand(client, ID, 'ping', old)).toMatchObject({ error: { code: 'FW_ERR_COMMAND_EXPIRED' } });

    // set-log-level: unsigned refused, signed by another key refused, signed by the trusted key applied.
    const unsigned = await sendCommand(client, ID, 'set-log-level', buildCommandRequest(ID, 'set-log-level', { args: { level: 'debug' } }));
    expect(unsigned).toMatchObject({ status: 'error', error: { code: 'FW_ERR_COMMAND_UNAUTHORIZED' } });
    const stranger = signingKey();
    const wrongKey = await sendCommand(
      client,
      ID,
      'set-log-level',
      buildCommandRequest(ID, 'set-log-level', { args: { level: 'debug' }, privateKey: stranger.privateKey }),
    );
    expect(wrongKey.error?.code).toBe('FW_ERR_COMMAND_UNAUTHORIZED');
    // A signature over other args does not verify.
    const tampered = buildCommandRequest(ID, 'set-log-level', { args: { level: 'warn' }, privateKey: key.privateKey });
    tampered.args = { level: 'trace' };
    expect((await sendCommand(client, ID, 'set-log-level', tampered)).error?.code).toBe('FW_ERR_COMMAND_UNAUTHORIZED');
    expect(log.level).toBe('debug');

    const signed = buildCommandRequest(ID, 'set-log-level', { args: { level: 'warn' }, privateKey: key.privateKey });
    expect(await sendCommand(client, ID, 'set-log-level', signed)).toMatchObject({ status: 'ok', data: { level: 'warn', previous: 'debug' } });
    expect(log.level).toBe('warn');

    // The same request again (same id): a replay.
    const again = await sendCommand(client, ID, 'set-log-level', { ...signed }, { responseTopic: `forewarn/v1/${ID}/reply/replay` });
    expect(again).toMatchObject({ status: 'error', error: { code: 'FW_ERR_COMMAND_REPLAY' } });

    // No response topic: nothing replied, but still an event.
    await client.publishAsync(`forewarn/v1/${ID}/cmd/ping`, JSON.stringify({ id: 'silent-1', issuedAt: Date.now() }), { qos: 1 });

    // Still running and answering.
    expect((await sendCommand(client, ID, 'ping', buildCommandRequest(ID, 'ping'))).status).toBe('ok');
    const flushed = await sendCommand(client, ID, 'flush', buildCommandRequest(ID, 'flush'));
    expect(flushed).toMatchObject({ status: 'ok', data: { broker: 'online' } });
    const diag = await sendCommand(client, ID, 'diagnostics', buildCommandRequest(ID, 'diagnostics'));
    expect(diag.status).toBe('ok');
    const d = diag.data as { config: { broker: { url: string } }; versions: { node: string }; recentErrors: Array<{ code: string }> };
    expect(d.versions.node).toBe(process.versions.node);
    expect(d.recentErrors.map((e) => e.code)).toContain('FW_ERR_COMMAND_REPLAY');
    expect(agent.sync.stats.state).toBe('online');

    const evts = await waitFor(() => {
      const e = events(seen);
      return e.some((x) => x.id === 'silent-1') && e.some((x) => x.command === 'diagnostics') ? e : null;
    }, 'command events for every request');
    expect(evts.find((e) => e.command === 'ping' && e.requester === 'ops-console')).toMatchObject({ outcome: 'ok', replied: true });
    expect(evts.find((e) => e.id === 'silent-1')).toMatchObject({ command: 'ping', outcome: 'ok', replied: false });
    expect(evts.find((e) => e.command === 'reboot')).toMatchObject({ outcome: 'refused', code: 'FW_ERR_COMMAND_UNKNOWN' });
    expect(evts.find((e) => e.command === 'set-log-level' && e.outcome === 'ok')).toMatchObject({ keyId: key.keyId, id: signed.id });
    expect(evts.filter((e) => e.code === 'FW_ERR_COMMAND_UNAUTHORIZED')).toHaveLength(3);
    expect(evts.filter((e) => e.code === 'FW_ERR_COMMAND_EXPIRED')).toHaveLength(2);
    expect(evts.filter((e) => e.code === 'FW_ERR_COMMAND_REPLAY')).toHaveLength(1);
    checkContract(seen);
  }, 60_000);

  it('refuses commands that change the agent when no trusted key is configured, and reloads the configuration', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const key = signingKey();
    const { client, seen } = await centre(broker);
    const { file, raw, log, runner } = await startAgent(broker, key);
    const first = runner.agent;

    // reload-config: validated, applied (the pipeline restarts in-process on the same outbox); storage needs a restart.
    writeFileSync(
      file,
      stringify({
        ...raw,
        agent: { ...raw.agent, logLevel: 'error' },
        broker: { ...raw.broker, keepaliveSeconds: 45 },
        storage: { ...raw.storage, retentionHours: 5 },
        // On by choice: with no trusted key and an anonymous broker, `auto` would turn commands off altogether.
        commands: { enabled: 'on', trustedKeys: [] },
      }),
    );
    const reload = await sendCommand(client, ID, 'reload-config', buildCommandRequest(ID, 'reload-config', { privateKey: key.privateKey }));
    expect(reload).toMatchObject({
      status: 'ok',
      data: {
        applied: ['agent.logLevel', 'broker.keepaliveSeconds', 'commands.enabled', 'commands.trustedKeys'],
        restartNeeded: ['storage.retentionHours'],
        pipelineRestart: true,
      },
    });
    // The new pipeline subscribes again; its commands see the reloaded (empty) trusted keys.
    await waitFor(() => runner.agent !== first && runner.agent.sync.stats.state === 'online', 'the reloaded pipeline online');
    expect(runner.agent.config.broker.keepaliveSeconds).toBe(45);
    expect(runner.agent.config.storage.retentionHours).toBe(24);
    await new Promise((r) => setTimeout(r, 300));
    expect(log.level).toBe('error');
    // commands.trustedKeys is now empty: signed commands are refused.
    const refused = await sendCommand(
      client,
      ID,
      'set-log-level',
      buildCommandRequest(ID, 'set-log-level', { args: { level: 'info' }, privateKey: key.privateKey }),
    );
    expect(refused.error?.code).toBe('FW_ERR_COMMAND_UNAUTHORIZED');
    expect(refused.error?.message).toContain('no trusted key');
    expect(log.level).toBe('error');
    checkContract(seen);
  }, 60_000);

  it('installs a signed model bundle sent as a command and promotes it', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const key = signingKey();
    const { client, seen } = await centre(broker);
    await startAgent(broker, key);
    const bundle = readFileSync(bundleFile(machineFailureAt('1.1.0'), key)).toString('base64');

    const request: CommandRequest = buildCommandRequest(ID, 'install-model', { args: { bundle }, privateKey: key.privateKey });
    const reply = await sendCommand(client, ID, 'install-model', request, { timeoutMs: 30_000 });
    expect(reply).toMatchObject({
      status: 'ok',
      data: { model: 'machine-failure', version: '1.1.0', keyId: key.keyId, outcome: 'promoted', currentVersion: '1.0.0' },
    });

    // A bundle the model key did not sign (the command is signed, the bundle is not trusted): the bundle's own code.
    const stranger = signingKey();
    const other = readFileSync(bundleFile(machineFailureAt('1.2.0'), stranger)).toString('base64');
    const bad = await sendCommand(
      client,
      ID,
      'install-model',
      buildCommandRequest(ID, 'install-model', { args: { bundle: other }, privateKey: key.privateKey }),
    );
    expect(bad).toMatchObject({ status: 'error', error: { code: 'FW_ERR_MODEL_UNTRUSTED' } });

    const all = await waitFor(() => {
      const recs = seen.filter((m) => m.topic === `forewarn/v1/${ID}/events`).flatMap((m) => m.payload.records as Array<Record<string, unknown>>);
      return recs.some((e) => e.type === 'model-promoted') && recs.filter((e) => e.type === 'command').length >= 2 ? recs : null;
    }, 'model-promoted and command events');
    expect(all.find((e) => e.type === 'model-promoted')).toMatchObject({ model: 'machine-failure', version: '1.1.0', previousVersion: '1.0.0' });
    expect(all.filter((e) => e.type === 'command').map((e) => [e.outcome, e.code ?? null])).toEqual([
      ['ok', null],
      ['failed', 'FW_ERR_MODEL_UNTRUSTED'],
    ]);
    await waitFor(
      () =>
        seen.some(
          (m) =>
            m.topic.endsWith('/status') &&
            (m.payload.models as Array<{ name: string; version: string }> | undefined)?.some((x) => x.name === 'machine-failure' && x.version === '1.1.0'),
        ),
      'the retained status naming the new version',
    );
    checkContract(seen);
  }, 90_000);

  it('leaves the agent as before when commands are disabled: no subscription, no reply', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const { client, seen } = await centre(broker);
    const dir = tempDir('fw-cmd-off-');
    const { config } = loadConfig(undefined, {});
    const cfg = structuredClone(config);
    const built = {
      ...cfg,
      agent: { ...cfg.agent, id: ID, view: 'off' as const },
      storage: { ...cfg.storage, dir },
      broker: { ...cfg.broker, url: broker.url, flushIntervalMs: 50 },
      sources: { ...cfg.sources, host: { ...cfg.sources.host, enabled: false }, simulator: { ...cfg.sources.simulator, enabled: false } },
      metrics: { ...cfg.metrics, enabled: false },
      scoring: { ...cfg.scoring, enabled: false },
      commands: { ...cfg.commands, enabled: 'off' as const },
    };
    const { log, lines } = captureLogger('debug');
    const agent = new Agent(built, log, '0.0.0-test');
    expect(agent.commands).toBeNull();
    await agent.start();
    cleanup.push(() => agent.stop());
    await waitFor(() => agent.sync.stats.state === 'online', 'online');
    await expect(sendCommand(client, ID, 'ping', buildCommandRequest(ID, 'ping'), { timeoutMs: 1500 })).rejects.toThrow(/no reply/);
    expect(lines.some((l) => l.msg === 'subscribed to remote commands')).toBe(false);
    expect(seen.some((m) => m.topic.includes('/reply/'))).toBe(false);
  }, 30_000);

  it('are off by default with an anonymous broker and no trusted keys: the start log says why and how to turn them on', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const { client, seen } = await centre(broker);
    const dir = tempDir('fw-cmd-auto-');
    const file = path.join(dir, 'forewarn.yaml');
    writeFileSync(
      file,
      stringify({
        agent: { id: ID, view: 'off' },
        storage: { dir: path.join(dir, 'data') },
        broker: { url: broker.url, flushIntervalMs: 50 },
        sources: { host: { enabled: false }, simulator: { enabled: false } },
        metrics: { enabled: false },
        scoring: { enabled: false },
      }),
    );
    const { config } = loadConfig(file, {});
    expect(config.commands.enabled).toBe('auto');
    const { log, lines } = captureLogger('debug');
    const agent = new Agent(config, log, '0.0.0-test');
    expect(agent.commands).toBeNull();
    const said = lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('remote commands off'));
    expect(said?.level).toBe(30);
    expect(said?.msg).toMatch(/the broker connection is anonymous and no commands\.trustedKeys are set/);
    expect(said?.msg).toMatch(/to enable: set commands\.trustedKeys, broker\.username .* or commands\.enabled: on \(docs\/commands\.md\)/);
    await agent.start();
    cleanup.push(() => agent.stop());
    await waitFor(() => agent.sync.stats.state === 'online', 'online');
    // Any client of this broker would have been answered before: `diagnostics` now gets no reply.
    await expect(sendCommand(client, ID, 'diagnostics', buildCommandRequest(ID, 'diagnostics'), { timeoutMs: 1500 })).rejects.toThrow(/no reply/);
    expect(lines.some((l) => l.msg === 'subscribed to remote commands')).toBe(false);
    expect(seen.some((m) => m.topic.includes('/reply/'))).toBe(false);
    // No warning for a default the operator need not act on.
    expect(lines.filter((l) => (l.level as number) >= 40 && /command/.test(String(l.msg)))).toEqual([]);
  }, 30_000);

  it("the fleet ACL: another agent cannot publish to this agent's command topics; the centre can", async () => {
    const ACL = [
      'pattern write forewarn/v1/%u/#',
      'pattern read forewarn/v1/%u/cmd/#',
      'user central',
      'topic read forewarn/v1/#',
      'topic write forewarn/v1/+/cmd/#',
    ];
    const broker = await startMosquitto({ passwords: { [ID]: 'a-pass', 'agent-b': 'b-pass', central: 'c-pass' }, acl: ACL });
    cleanup.push(() => broker.stop());
    const { client, seen } = await centre(broker, { username: 'central', password: 'c-pass' });
    // No trusted key: `commands.enabled: auto` turns them on because the broker knows the agent as a user.
    const { lines } = await startAgent(broker, null, {
      broker: { url: broker.url, username: ID, password: 'a-pass', flushIntervalMs: 50, reconnectMinMs: 100, reconnectMaxMs: 400 },
    });
    expect(lines.find((l) => String(l.msg).startsWith('remote commands on'))?.msg).toBe(`remote commands on: the broker knows this agent as user ${ID}`);

    // The centre's request is answered (the agent may write its reply under its own subtree).
    expect((await sendCommand(client, ID, 'ping', buildCommandRequest(ID, 'ping'))).status).toBe('ok');

    // agent-b's publish is refused by the broker (PUBACK 0x87) and never reaches the agent.
    const b = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'agent-b', username: 'agent-b', password: 'b-pass' });
    cleanup.push(() => b.endAsync());
    const err = await b.publishAsync(`forewarn/v1/${ID}/cmd/ping`, JSON.stringify({ id: 'from-b', issuedAt: Date.now() }), { qos: 1 }).then(
      () => null,
      (e: unknown) => e as { code?: number },
    );
    expect(err?.code).toBe(0x87);
    // A marker from the centre after it: once it is handled, b's request would have been too.
    await sendCommand(client, ID, 'ping', buildCommandRequest(ID, 'ping', { id: 'marker' }));
    await waitFor(() => events(seen).some((e) => e.id === 'marker'), 'the marker event');
    expect(lines.some((l) => l.id === 'from-b')).toBe(false);
    expect(events(seen).some((e) => e.id === 'from-b')).toBe(false);
  }, 60_000);
});
