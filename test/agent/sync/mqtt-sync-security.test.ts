import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig } from '../../../agent/src/config/load-config.js';
import { RecordStore } from '../../../agent/src/store/record-store.js';
import { MqttSync } from '../../../agent/src/sync/mqtt-sync.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { startMosquitto, type Broker, type MosquittoOptions, type MosquittoTls } from '../../helpers/mosquitto.js';
import { makePki, type Pki } from '../../helpers/tls-certs.js';
import { waitFor } from '../../helpers/wait.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';

/**
 * The agent's side of broker security, against a real mosquitto: TLS with a server CA, mutual TLS with
 * `require_certificate`, a password from a file or the environment, and an ACL that confines each agent to its
 * own subtree — where a denied publish must be seen, reported, and cost no record.
 */

const cleanup = cleanupAfterEach();
let pki: Pki;
beforeAll(async () => {
  pki = await makePki(undefined, { clients: ['agent-a', 'agent-b', 'central'] });
});
afterAll(() => rmSync(pki.dir, { recursive: true, force: true }));

/** The fleet ACL from docs/mqtt.md: each agent writes only under its own id; the centre reads everything. */
const FLEET_ACL = ['pattern write forewarn/v1/%u/#', 'pattern read forewarn/v1/%u/cmd/#', 'user central', 'topic read forewarn/v1/#'];

async function broker(options: Omit<MosquittoOptions, 'tls'> & { tls?: Partial<MosquittoTls> } = {}): Promise<Broker> {
  const { tls, ...rest } = options;
  const b = await startMosquitto({
    ...rest,
    ...(tls ? { tls: { ...tls, caFile: pki.ca.cert, certFile: pki.server.cert, keyFile: pki.server.key } } : {}),
  });
  cleanup.push(() => b.stop());
  return b;
}

function agent(id: string, broker: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-sec-'));
  const config = buildConfig(
    stringify({ agent: { id }, storage: { dir }, broker: { ack: 'broker', reconnectMinMs: 100, reconnectMaxMs: 400, flushIntervalMs: 50, ...broker } }),
    env,
  );
  const store = new RecordStore({ dir });
  const { log, lines } = captureLogger();
  const sync = new MqttSync(config, store, { bootSeq: 1, agentVersion: '0.0.0-test', models: () => [], sources: () => [] }, log);
  cleanup.push(() => store.close());
  cleanup.push(() => sync.stop());
  store.append(
    Array.from({ length: 5 }, (_, i) => ({ stream: 'telemetry' as const, ts: i, asset: 'm', payload: { ts: i, source: 't', asset: 'm', metrics: { x: i } } })),
  );
  return { store, sync, lines, dir };
}

/** The centre, reading everything as user `central` over mutual TLS. */
async function central(b: Broker): Promise<Array<{ topic: string; seqs: number[] }>> {
  const got: Array<{ topic: string; seqs: number[] }> = [];
  const c = await mqtt.connectAsync(b.tlsUrl!, {
    protocolVersion: 5,
    clientId: `central-${Math.random()}`,
    ca: readPem(pki.ca.cert),
    cert: readPem(pki.clients.central!.cert),
    key: readPem(pki.clients.central!.key),
  });
  c.on('message', (topic, payload) => {
    const body = JSON.parse(String(payload)) as { records?: Array<{ seq: number }> };
    if (body.records) got.push({ topic, seqs: body.records.map((r) => r.seq) });
  });
  await c.subscribeAsync('forewarn/v1/#', { qos: 1 });
  cleanup.push(() => c.endAsync());
  return got;
}

const readPem = (f: string) => readFileSync(f);

describe('MqttSync and broker security', () => {
  it('connects over TLS, checking the broker against the configured CA', async () => {
    const b = await broker({ tls: {} });
    const a = agent('agent-a', { url: b.tlsUrl, tls: { caFile: pki.ca.cert } });
    await a.sync.start();
    await waitFor(() => a.store.pendingTotal() === 0, 'delivery over TLS');
    expect(a.sync.stats.sent).toBe(5);
  });

  it('refuses a broker whose certificate the configured CA did not sign, and says why once', async () => {
    const b = await broker({ tls: {} });
    const a = agent('agent-a', { url: b.tlsUrl, tls: { caFile: pki.wrongCa.cert } });
    await a.sync.start();
    await waitFor(() => a.sync.stats.reconnects >= 2, 'a few attempts');
    expect(a.sync.stats.lastError).toMatch(/self-signed certificate in certificate chain/);
    expect(a.lines.filter((l) => String(l.msg).includes('broker unreachable'))).toHaveLength(1);
    expect(a.store.pendingTotal()).toBe(5);
  });

  it('with mutual TLS and the fleet ACL, delivers under its own id and reports a denied publish outside it, losing nothing', async () => {
    const b = await broker({ tls: { requireCertificate: true, useIdentityAsUsername: true }, acl: FLEET_ACL, allowAnonymous: false });
    const got = await central(b);
    const mtls = (who: 'agent-a' | 'agent-b') => ({ caFile: pki.ca.cert, certFile: pki.clients[who]!.cert, keyFile: pki.clients[who]!.key });
    const good = agent('agent-a', { url: b.tlsUrl, tls: mtls('agent-a') });
    // agent-b's certificate, but configured as agent-a's twin "agent-c": it may not write under forewarn/v1/agent-c.
    const stray = agent('agent-c', { url: b.tlsUrl, tls: mtls('agent-b') });
    await good.sync.start();
    await stray.sync.start();
    await waitFor(() => good.store.pendingTotal() === 0, 'the permitted agent delivered');
    await waitFor(() => stray.sync.stats.rejected >= 1, 'the denied publish seen');

    const denied = stray.lines.filter((l) => l.code === 'FW_ERR_BROKER_PUBLISH');
    expect(denied).toHaveLength(1); // said once, not per retry
    expect(denied[0]).toMatchObject({ reasonCode: '0x87', stream: 'telemetry', topic: 'forewarn/v1/agent-c/telemetry' });
    expect(String(denied[0]!.msg)).toMatch(/not authorized.*ACL.*forewarn\/v1\/agent-c\/#/);
    expect(stray.sync.stats.rejectedByReason['0x87']).toBeGreaterThanOrEqual(1);
    expect(stray.store.pendingTotal()).toBe(5);
    await waitFor(() => got.some((g) => g.topic === 'forewarn/v1/agent-a/telemetry'), 'the centre to see agent-a');
    expect(got.filter((g) => g.topic.startsWith('forewarn/v1/agent-c/'))).toEqual([]);

    // The operator fixes the ACL; the held-back stream is retried and arrives whole and in order.
    await b.setAcl([...FLEET_ACL, 'user agent-b', 'topic write forewarn/v1/agent-c/#']);
    await waitFor(() => stray.store.pendingTotal() === 0, 'the stray agent delivered after the ACL fix');
    await waitFor(() => got.some((g) => g.topic === 'forewarn/v1/agent-c/telemetry'), 'the centre to see agent-c');
    expect(got.filter((g) => g.topic === 'forewarn/v1/agent-c/telemetry').flatMap((g) => g.seqs)).toEqual([1, 2, 3, 4, 5]);
  });

  it('refuses mutual TLS without a client certificate', async () => {
    const b = await broker({ tls: { requireCertificate: true, useIdentityAsUsername: true }, acl: FLEET_ACL, allowAnonymous: false });
    const a = agent('agent-a', { url: b.tlsUrl, tls: { caFile: pki.ca.cert } });
    await a.sync.start();
    await waitFor(() => a.sync.stats.reconnects >= 2, 'a few attempts');
    expect(a.sync.stats.lastError).toMatch(/certificate required/i);
    expect(a.store.pendingTotal()).toBe(5);
  });

  it('takes the password from a file or the environment, and never logs it', async () => {
    const b = await broker({ passwords: { 'agent-a': 's3cret-from-file', 'agent-b': 's3cret-from-env' }, acl: FLEET_ACL });
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'fw-pw-')), 'password');
    writeFileSync(file, 's3cret-from-file\n', { mode: 0o600 });
    const fromFile = agent('agent-a', { url: b.url, username: 'agent-a', passwordFile: file });
    const fromEnv = agent('agent-b', { url: b.url, username: 'agent-b' }, { FOREWARN_BROKER_PASSWORD: 's3cret-from-env' });
    const wrong = agent('agent-a', { url: b.url, username: 'agent-a', clientId: 'wrong-one' }, { FOREWARN_BROKER_PASSWORD: 'not-it' });
    await Promise.all([fromFile.sync.start(), fromEnv.sync.start(), wrong.sync.start()]);
    await waitFor(() => fromFile.store.pendingTotal() === 0 && fromEnv.store.pendingTotal() === 0, 'both delivered');
    await waitFor(() => wrong.lines.some((l) => l.code === 'FW_ERR_BROKER_REFUSED'), 'the wrong password refused');
    expect(wrong.store.pendingTotal()).toBe(5);
    const everything = JSON.stringify([...fromFile.lines, ...fromEnv.lines, ...wrong.lines]);
    for (const secret of ['s3cret-from-file', 's3cret-from-env', 'not-it']) expect(everything).not.toContain(secret);
  });
});
