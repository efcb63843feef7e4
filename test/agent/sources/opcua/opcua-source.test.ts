/**
 * The OPC UA source against a real node-opcua server serving the simulated milling machine. Certificates are
 * slow to make, so the agent's store and the main server are created once for the file.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reading } from '../../../../agent/src/core/types.js';
import { OPCUA_ENDPOINT_DEFAULTS, type OpcuaEndpointConfig, type OpcuaNodeConfig } from '../../../../agent/src/sources/opcua/opcua-config.js';
import { OpcuaPki } from '../../../../agent/src/sources/opcua/opcua-pki.js';
import { OpcuaSource } from '../../../../agent/src/sources/opcua/opcua-source.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { cleanupAfterEach } from '../../../helpers/cleanup.js';
import { MillOpcuaServer } from '../../../helpers/opcua-server.js';
import { startTcpProxy } from '../../../helpers/tcp-proxy.js';
import { waitFor } from '../../../helpers/wait.js';

const cleanup = cleanupAfterEach();
let dir: string;
let pki: OpcuaPki;
let userPki: OpcuaPki;
let server: MillOpcuaServer;
const PASSWORD = 'mill-operator-secret-42';

/** Makes `server` and the agent trust each other, as an operator would by copying the two certificates. */
async function trustEachOther(s: MillOpcuaServer): Promise<void> {
  copyFileSync(s.certificateFile, path.join(pki.trustedFolder, `server-${s.port}.pem`));
  await pki.reload();
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'fw-opcua-'));
  pki = new OpcuaPki(path.join(dir, 'agent-pki'), 'test-agent');
  const { log } = captureLogger();
  await pki.open(log);
  server = new MillOpcuaServer({ dir: path.join(dir, 'server'), users: { operator: PASSWORD } });
  // An X.509 user identity (a certificate and key of its own), trusted by the server as a user.
  userPki = new OpcuaPki(path.join(dir, 'user-pki'), 'operator-cert');
  await userPki.open(log);
  mkdirSync(server.userTrustedFolder, { recursive: true });
  copyFileSync(path.join(userPki.dir, 'own', 'certs', 'forewarn.pem'), path.join(server.userTrustedFolder, 'operator.pem'));
  // The server trusts the agent's application certificate before it starts.
  mkdirSync(server.trustedFolder, { recursive: true });
  copyFileSync(path.join(pki.dir, 'own', 'certs', 'forewarn.pem'), path.join(server.trustedFolder, 'forewarn.pem'));
  await server.start();
  await trustEachOther(server);
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await pki?.release();
  await userPki?.release();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function endpoint(s: MillOpcuaServer, over: Partial<OpcuaEndpointConfig> = {}, nodes: OpcuaNodeConfig[] = s.nodes()): OpcuaEndpointConfig {
  return {
    ...OPCUA_ENDPOINT_DEFAULTS,
    name: 'mill',
    url: s.url,
    identity: { type: 'anonymous', userName: '', passwordFile: '', passwordEnv: '', certificateFile: '', privateKeyFile: '' },
    publishingIntervalMs: 50,
    samplingIntervalMs: 0,
    reconnectMinMs: 100,
    reconnectMaxMs: 500,
    timeoutMs: 3000,
    nodes,
    ...over,
  };
}

async function source(cfg: OpcuaEndpointConfig) {
  const readings: Reading[] = [];
  const captured = captureLogger();
  const src = new OpcuaSource(cfg, pki, (r) => readings.push(r), captured.log);
  await src.start();
  cleanup.push(() => src.stop());
  const logged = (code: string) => captured.lines.filter((l) => l.code === code);
  return { src, readings, ...captured, logged };
}

/**
 * One machining process on the server, and the reading it becomes. Subscriptions report by exception: the reading
 * holds exactly the signals whose value changed, all with the values the server now holds.
 */
async function nextProcess(
  s: MillOpcuaServer,
  readings: Reading[],
): Promise<{ truth: Record<string, number>; changed: Record<string, number>; reading: Reading }> {
  const before = s.truth();
  const truth = s.advance();
  const changed = Object.fromEntries(Object.entries(truth).filter(([k, v]) => before[k] !== v));
  const keys = Object.keys(changed);
  expect(keys.length).toBeGreaterThan(0);
  const reading = await waitFor(() => readings.find((r) => keys.every((k) => r.metrics[k] === changed[k])), 'the new process values');
  return { truth, changed, reading };
}

describe('OpcuaSource against a real OPC UA server', () => {
  it('created the application certificate in the PKI folder once, its key private (0600)', () => {
    const key = path.join(pki.dir, 'own', 'private', 'private_key.pem');
    expect(existsSync(path.join(pki.dir, 'own', 'certs', 'forewarn.pem'))).toBe(true);
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(statSync(pki.dir).mode & 0o077).toBe(0);
  });

  it.each([
    ['None', 'None'],
    ['Sign', 'Basic256Sha256'],
    ['SignAndEncrypt', 'Basic256Sha256'],
  ] as const)('security mode %s (%s): every process arrives as one reading with the values the server holds', async (securityMode, securityPolicy) => {
    const { src, readings } = await source(endpoint(server, { securityMode, securityPolicy }));
    await waitFor(() => src.connected, 'the subscription');
    for (let i = 0; i < 3; i++) {
      const { changed, reading } = await nextProcess(server, readings);
      expect(reading.asset).toBe(server.asset);
      expect(reading.source).toBe('opcua:mill');
      expect(reading.metrics).toEqual(changed);
      expect(reading.uncertain).toBeUndefined();
    }
    expect(src.counters.connects).toBe(1);
    expect(src.counters.bad).toBe(0);
    expect(src.stats.state).toBe('running');
  });

  it('user name and password over SignAndEncrypt: accepted; a wrong password is FW_ERR_OPCUA_REJECTED, never logged, and retried', async () => {
    const pwFile = path.join(dir, 'password');
    writeFileSync(pwFile, `${PASSWORD}\n`, { mode: 0o600 });
    const good = await source(
      endpoint(server, {
        identity: { type: 'userName', userName: 'operator', passwordFile: pwFile, passwordEnv: '', certificateFile: '', privateKeyFile: '' },
      }),
    );
    await waitFor(() => good.src.connected, 'the subscription with a password');
    await nextProcess(server, good.readings);

    process.env.FW_TEST_OPCUA_PW = 'wrong-password-123';
    cleanup.push(() => delete process.env.FW_TEST_OPCUA_PW);
    const bad = await source(
      endpoint(server, {
        name: 'wrong',
        identity: { type: 'userName', userName: 'operator', passwordFile: '', passwordEnv: 'FW_TEST_OPCUA_PW', certificateFile: '', privateKeyFile: '' },
      }),
    );
    await waitFor(() => bad.src.counters.connectFailures >= 2, 'two refused attempts');
    expect(bad.logged('FW_ERR_OPCUA_REJECTED')).toHaveLength(1);
    expect(bad.src.stats.state).toBe('failing');
    expect(bad.text()).not.toContain('wrong-password-123');
    expect(good.text()).not.toContain(PASSWORD);
  });

  it('certificate identity: a user certificate the server trusts is accepted; one it does not know is FW_ERR_OPCUA_REJECTED', async () => {
    const identity = (owner: OpcuaPki) => ({
      type: 'certificate' as const,
      userName: '',
      passwordFile: '',
      passwordEnv: '',
      certificateFile: path.join(owner.dir, 'own', 'certs', 'forewarn.pem'),
      privateKeyFile: path.join(owner.dir, 'own', 'private', 'private_key.pem'),
    });
    const good = await source(endpoint(server, { identity: identity(userPki) }));
    await waitFor(() => good.src.connected, 'the subscription with a user certificate');
    await nextProcess(server, good.readings);
    // The agent's application certificate is not a user the server knows.
    const bad = await source(endpoint(server, { name: 'stranger-user', identity: identity(pki) }));
    await waitFor(() => bad.src.counters.connectFailures >= 1, 'a refused attempt');
    expect(bad.logged('FW_ERR_OPCUA_REJECTED')).toHaveLength(1);
    expect(bad.src.connected).toBe(false);
  });

  it('an untrusted server: FW_ERR_OPCUA_UNTRUSTED, its certificate in rejected/, the other endpoint unaffected; trusted by hand, it connects without a restart', async () => {
    // A server the agent has never seen (it trusts the agent: only the agent's side refuses).
    const stranger = new MillOpcuaServer({ dir: path.join(dir, 'stranger'), asset: 'mill-2' });
    mkdirSync(stranger.trustedFolder, { recursive: true });
    copyFileSync(path.join(pki.dir, 'own', 'certs', 'forewarn.pem'), path.join(stranger.trustedFolder, 'forewarn.pem'));
    await stranger.start();
    cleanup.push(() => stranger.stop());
    const good = await source(endpoint(server));
    const bad = await source(endpoint(stranger, { name: 'stranger' }));
    await waitFor(() => bad.src.counters.connectFailures >= 2, 'refused attempts');
    expect(bad.logged('FW_ERR_OPCUA_UNTRUSTED')).toHaveLength(1);
    expect(String(bad.logged('FW_ERR_OPCUA_UNTRUSTED')[0]!.err)).toContain(pki.trustedFolder);
    expect(bad.src.connected).toBe(false);
    expect(bad.readings).toHaveLength(0);
    await waitFor(() => good.src.connected, 'the trusted endpoint');
    await nextProcess(server, good.readings);

    // The operator inspects the refused certificate and trusts it: the next attempt uses it.
    const rejected = await waitFor(() => readdirSync(pki.rejectedFolder).find((f) => f.endsWith('.pem')), 'the refused certificate');
    renameSync(path.join(pki.rejectedFolder, rejected), path.join(pki.trustedFolder, rejected));
    // Generous bounds: the next attempt waits out the reconnect backoff and then a SignAndEncrypt handshake, which
    // took over 20 s on a loaded two-core machine.
    await waitFor(() => bad.src.connected, 'the now trusted endpoint', 60_000);
    const { changed, reading } = await nextProcess(stranger, bad.readings);
    expect(reading.asset).toBe('mill-2');
    expect(reading.metrics).toEqual(changed);
  }, 90_000);

  it('Uncertain values are kept and flagged, Bad ones are missing (never a number), Good again clears both', async () => {
    const { src, readings, lines } = await source(endpoint(server, { securityMode: 'None', securityPolicy: 'None' }));
    await waitFor(() => src.connected, 'the subscription');
    await nextProcess(server, readings);
    server.setStatus('torque', 'UncertainLastUsableValue', 55.5);
    const uncertain = await waitFor(() => readings.find((r) => r.uncertain?.includes('torque')), 'an uncertain torque');
    expect(uncertain.metrics).toEqual({ torque: 55.5 });
    server.setStatus('rotational_speed', 'BadSensorFailure', 0);
    await waitFor(() => src.counters.bad >= 1, 'a Bad value');
    expect(readings.some((r) => 'rotational_speed' in r.metrics && r.metrics.rotational_speed === 0)).toBe(false);
    expect(lines.some((l) => l.status === 'BadSensorFailure (0x808b0000)' || String(l.status).startsWith('BadSensorFailure'))).toBe(true);
    const { reading } = await nextProcess(server, readings);
    expect(reading.uncertain).toBeUndefined();
    // Good again: both signals are back, as numbers (their status change is reported even where the value is not).
    expect(reading.metrics.torque).toBe(server.truth().torque);
    expect(reading.metrics.rotational_speed).toBe(server.truth().rotational_speed);
    expect(src.counters.uncertain).toBe(1);
  });

  it('a node unknown at start and a node removed while running: FW_ERR_OPCUA_NODE once each, the other nodes go on', async () => {
    const nodes = [...server.nodes(), { nodeId: `ns=${server.namespaceIndex};s=mill-1.NoSuchSignal`, asset: server.asset, signal: 'ghost' }];
    const { src, readings, logged } = await source(endpoint(server, { securityMode: 'None', securityPolicy: 'None' }, nodes));
    await waitFor(() => src.connected, 'the subscription');
    expect(logged('FW_ERR_OPCUA_NODE').map((l) => l.nodeId)).toEqual([nodes.at(-1)!.nodeId]);
    await nextProcess(server, readings);
    server.removeNode('tool_wear');
    await waitFor(() => logged('FW_ERR_OPCUA_NODE').length === 2, 'the removal');
    expect(logged('FW_ERR_OPCUA_NODE')[1]!.signal).toBe('tool_wear');
    readings.length = 0;
    const truth = server.advance();
    const after = await waitFor(() => readings.find((r) => r.metrics.torque === truth.torque), 'values after the removal');
    expect(after.metrics.tool_wear).toBeUndefined();
    expect(after.metrics.rotational_speed).toBe(truth.rotational_speed);
    expect(src.stats.state).toBe('running');
  });

  it('EngineeringUnits are checked: the configured units match; a wrong one is FW_ERR_OPCUA_UNIT and the value still flows', async () => {
    const nodes = server.nodes().map((n) => (n.signal === 'torque' ? { ...n, unit: 'K' } : n));
    const { src, readings, logged } = await source(endpoint(server, { securityMode: 'None', securityPolicy: 'None' }, nodes));
    await waitFor(() => src.connected, 'the subscription');
    await waitFor(() => src.counters.unitMismatches === 1, 'the unit check');
    const warned = logged('FW_ERR_OPCUA_UNIT');
    expect(warned.map((l) => [l.signal, l.configured])).toEqual([['torque', 'K']]);
    expect(String(warned[0]!.server)).toBe('N·m (NU)');
    const { reading } = await nextProcess(server, readings);
    expect(reading.metrics.torque).toBe(server.truth().torque);
  });
});

describe('OpcuaSource across a cut link', () => {
  it('reconnects on its own, keeps its session and subscription, and delivers the latest values written meanwhile', async () => {
    const proxy = await startTcpProxy(server.port);
    cleanup.push(() => proxy.stop());
    const { src, readings } = await source(endpoint(server, { url: server.url.replace(`:${server.port}/`, `:${proxy.port}/`), queueSize: 10 }));
    await waitFor(() => src.connected, 'the subscription');
    await nextProcess(server, readings);
    proxy.cut();
    await waitFor(() => src.counters.disconnects >= 1, 'the cut noticed');
    server.advance();
    const last = server.advance();
    proxy.restore();
    await waitFor(() => readings.find((r) => r.metrics.tool_wear === last.tool_wear && r.metrics.torque === last.torque), 'the values written during the cut');
    // Repaired inside node-opcua (new secure channel, the same session moved onto it): no new connection here.
    expect(src.counters.reconnects).toBeGreaterThanOrEqual(1);
    expect(src.counters.sessionRecoveries).toBeGreaterThanOrEqual(1);
    expect(src.counters.connects).toBe(1);
    await nextProcess(server, readings);
    expect(src.stats.state).toBe('running');
  });
});

describe('OpcuaSource across a server restart', () => {
  it('recovers by itself after the server comes back on the same port, with a new address space', async () => {
    const local = new MillOpcuaServer({ dir: path.join(dir, 'server') });
    // Same PKI folder as the main server: the same certificate, already trusted both ways.
    await local.start();
    cleanup.push(() => local.stop());
    const { src, readings, logged } = await source(endpoint(local, { securityMode: 'SignAndEncrypt' }));
    await waitFor(() => src.connected, 'the subscription');
    await nextProcess(local, readings);
    await local.restart(300);
    await waitFor(() => src.counters.disconnects >= 1, 'the loss noticed');
    const { changed, reading } = await nextProcess(local, readings);
    expect(reading.metrics).toEqual(changed);
    expect(src.stats.state).toBe('running');
    expect(logged('FW_ERR_SOURCE_FAILED').length).toBeGreaterThanOrEqual(1);
    // node-opcua repaired it: a new secure channel, a new session (the old one died with the server), the
    // subscription and its monitored items created again.
    expect(src.counters.reconnects).toBeGreaterThanOrEqual(1);
    expect(src.counters.sessionRecoveries).toBeGreaterThanOrEqual(1);
  }, 40_000);
});
