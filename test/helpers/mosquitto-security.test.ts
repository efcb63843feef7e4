import { readFileSync, rmSync } from 'node:fs';
import mqtt, { ErrorWithReasonCode, type IClientOptions, type Packet } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAfterEach } from './cleanup.js';
import { startMosquitto, type MosquittoOptions, type TlsBroker } from './mosquitto.js';
import { makePki, type Pki } from './tls-certs.js';
import { waitFor } from './wait.js';

/**
 * Proves the broker-security options of startMosquitto and the PKI of makePki against a real mosquitto and a plain
 * MQTT.js v5 client, and pins down what MQTT.js reports for each refusal, so that the agent's handling of them
 * can be written against observed behaviour (observed with mosquitto 2.0.11 and MQTT.js 5.16).
 */

const cleanup = cleanupAfterEach();

let pki: Pki;
beforeAll(async () => {
  pki = await makePki(undefined, { clients: ['agent-a', 'agent-b'], wrongCaClients: ['agent-a'] });
});
afterAll(() => rmSync(pki.dir, { recursive: true, force: true }));

const ACL = ['pattern write forewarn/v1/%u/#', 'user central', 'topic read forewarn/v1/#'];

async function tlsBroker(tls: { requireCertificate?: boolean; useIdentityAsUsername?: boolean } = {}, more: MosquittoOptions = {}): Promise<TlsBroker> {
  const broker = await startMosquitto({ ...more, tls: { caFile: pki.ca.cert, certFile: pki.server.cert, keyFile: pki.server.key, ...tls } });
  cleanup.push(() => broker.stop());
  return broker;
}

const read = (file: string) => readFileSync(file);
const clientCert = (pair: { cert: string; key: string }) => ({ cert: read(pair.cert), key: read(pair.key) });

/** A client with reconnecting off that records every event, for looking at how a connection fails. */
function watch(url: string, options: IClientOptions = {}) {
  const events: Array<{ event: string; arg?: unknown }> = [];
  const c = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, clientId: `sec-${Math.random()}`, ...options });
  for (const event of ['connect', 'error', 'close', 'offline', 'reconnect', 'disconnect', 'end'] as const) {
    c.on(event, (arg?: unknown) => events.push({ event, arg }));
  }
  cleanup.push(() => c.end(true));
  const errors = () => events.filter((e) => e.event === 'error').map((e) => e.arg as Error & { code?: unknown });
  const names = () => events.map((e) => e.event);
  return { c, events, errors, names };
}

describe('startMosquitto with a TLS listener (makePki certificates)', () => {
  it('accepts a client that trusts the server CA, on 127.0.0.1 and on localhost, and keeps the plain listener', async () => {
    const broker = await tlsBroker();
    expect(broker.tlsUrl).toBe(`mqtts://127.0.0.1:${broker.tlsPort}`);
    expect(broker.tlsPort).not.toBe(broker.port);
    const viaIp = await mqtt.connectAsync(broker.tlsUrl, { protocolVersion: 5, ca: read(pki.ca.cert), reconnectPeriod: 0 });
    cleanup.push(() => viaIp.endAsync());
    const viaName = await mqtt.connectAsync(broker.tlsUrl.replace('127.0.0.1', 'localhost'), { protocolVersion: 5, ca: read(pki.ca.cert), reconnectPeriod: 0 });
    cleanup.push(() => viaName.endAsync());
    const plain = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
    cleanup.push(() => plain.endAsync());
    expect([viaIp.connected, viaName.connected, plain.connected]).toEqual([true, true, true]);
  });

  it('fails with a certificate error when the client trusts another CA (or only the system roots)', async () => {
    const broker = await tlsBroker();
    for (const ca of [read(pki.wrongCa.cert), undefined]) {
      const w = watch(broker.tlsUrl, ca ? { ca } : {});
      await waitFor(() => w.names().includes('close'), 'the failed connection to close');
      expect(w.names()).not.toContain('connect');
      // A plain Error from Node's TLS layer. The server sends its chain up to the CA, so Node says
      // SELF_SIGNED_CERT_IN_CHAIN (UNABLE_TO_VERIFY_LEAF_SIGNATURE where a server sends only its own certificate).
      // MQTT.js emits it twice: once from its TLS stream builder, once from the stream's error handler.
      const errors = w.errors();
      expect(errors.length).toBeGreaterThanOrEqual(1);
      for (const err of errors) {
        expect(err).not.toBeInstanceOf(ErrorWithReasonCode);
        expect(['SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE']).toContain(err.code);
      }
      expect(errors[0]!.code).toBe('SELF_SIGNED_CERT_IN_CHAIN');
      expect(errors[0]!.message).toBe('self-signed certificate in certificate chain');
    }
  });

  it('with require_certificate refuses a client without a certificate, or with one from another CA, in the TLS handshake', async () => {
    const broker = await tlsBroker({ requireCertificate: true, useIdentityAsUsername: true });

    const none = watch(broker.tlsUrl, { ca: read(pki.ca.cert) });
    await waitFor(() => none.names().includes('close'), 'the refused connection to close');
    expect(none.names()).not.toContain('connect');
    // TLS 1.3: the server's alert arrives after the client's handshake finished, as an SSL error on read.
    expect(none.errors().map((e) => e.code)).toEqual(['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED']);
    expect(none.errors()[0]).toMatchObject({ library: 'SSL routines', reason: 'tlsv13 alert certificate required' });

    const foreign = watch(broker.tlsUrl, { ca: read(pki.ca.cert), ...clientCert(pki.wrongCaClients['agent-a']!) });
    await waitFor(() => foreign.names().includes('close'), 'the refused connection to close');
    expect(foreign.names()).not.toContain('connect');
    expect(foreign.errors().map((e) => e.code)).toEqual(['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA']);
    expect(foreign.errors()[0]).toMatchObject({ library: 'SSL routines', reason: 'tlsv1 alert unknown ca' });
  });

  it('with use_identity_as_username makes the certificate CN the username, which the ACL pattern %u then scopes', async () => {
    // Password file and ACL are global (per_listener_settings false): "central" logs in with a password on the
    // plain listener; "agent-a" has no password entry and logs in with its certificate on the TLS listener.
    const broker = await tlsBroker({ requireCertificate: true, useIdentityAsUsername: true }, { passwords: { central: 'central-pw' }, acl: ACL });
    const seen: string[] = [];
    const central = await mqtt.connectAsync(broker.url, { protocolVersion: 5, username: 'central', password: 'central-pw', reconnectPeriod: 0 });
    cleanup.push(() => central.endAsync());
    central.on('message', (topic) => seen.push(topic));
    await central.subscribeAsync('forewarn/v1/#', { qos: 1 });

    const agent = await mqtt.connectAsync(broker.tlsUrl, {
      protocolVersion: 5,
      ca: read(pki.ca.cert),
      ...clientCert(pki.clients['agent-a']!),
      reconnectPeriod: 0,
    });
    cleanup.push(() => agent.endAsync());
    expect(broker.log()).toContain("u'agent-a'");
    const acks: Packet[] = [];
    agent.on('packetreceive', (p) => p.cmd === 'puback' && acks.push(p));

    const publish = (topic: string) =>
      new Promise<{ err: (Error & { code?: unknown }) | undefined; packet: Packet | undefined }>((resolve) =>
        agent.publish(topic, '{}', { qos: 1 }, (err, packet) => resolve({ err: err as (Error & { code?: unknown }) | undefined, packet })),
      );

    const own = await publish('forewarn/v1/agent-a/telemetry');
    // Success: no error, and the callback gets the PUBLISH packet that was sent, not the PUBACK.
    expect(own.err).toBeFalsy();
    expect(own.packet).toMatchObject({ cmd: 'publish', topic: 'forewarn/v1/agent-a/telemetry', qos: 1 });
    expect(acks.at(-1)).toMatchObject({ cmd: 'puback', reasonCode: 0 });

    const other = await publish('forewarn/v1/agent-b/telemetry');
    // Refusal (PUBACK reason 0x87): an ErrorWithReasonCode with the reason code as a number in `code`, and the
    // callback's second argument is the PUBACK itself. The connection stays up.
    expect(other.err).toBeInstanceOf(ErrorWithReasonCode);
    expect(other.err).toMatchObject({ name: 'ErrorWithReasonCode', message: 'Publish error: Not authorized', code: 0x87 });
    expect(Object.keys(other.err!)).toEqual(['code']);
    expect(other.packet).toMatchObject({ cmd: 'puback', reasonCode: 0x87 });
    expect(acks.at(-1)).toMatchObject({ cmd: 'puback', reasonCode: 0x87 });
    expect(agent.connected).toBe(true);
    // publishAsync rejects with the same error; QoS 2 (PUBREC 0x87) likewise.
    await expect(agent.publishAsync('forewarn/v1/agent-b/telemetry', '{}', { qos: 1 })).rejects.toMatchObject({
      code: 0x87,
      message: 'Publish error: Not authorized',
    });
    await expect(agent.publishAsync('forewarn/v1/agent-b/telemetry', '{}', { qos: 2 })).rejects.toMatchObject({
      code: 0x87,
      message: 'Publish error: Not authorized',
    });

    // The subscriber saw only what the ACL let through (an in-order marker proves nothing else is on its way).
    await agent.publishAsync('forewarn/v1/agent-a/marker', '{}', { qos: 1 });
    await waitFor(() => seen.includes('forewarn/v1/agent-a/marker'), 'the marker at the subscriber');
    expect(seen).toEqual(['forewarn/v1/agent-a/telemetry', 'forewarn/v1/agent-a/marker']);
  });
});

describe('startMosquitto with a password file', () => {
  it('lets the right password in and refuses a wrong one, an unknown user and an anonymous client with CONNACK 0x87', async () => {
    const broker = await startMosquitto({ passwords: { central: 'central-pw', 'agent-b': 'b-pw' } });
    cleanup.push(() => broker.stop());
    const ok = await mqtt.connectAsync(broker.url, { protocolVersion: 5, username: 'agent-b', password: 'b-pw', reconnectPeriod: 0 });
    cleanup.push(() => ok.endAsync());

    for (const credentials of [{ username: 'central', password: 'wrong' }, { username: 'nobody', password: 'x' }, {}]) {
      const w = watch(broker.url, credentials);
      await waitFor(() => w.names().includes('close'), 'the refused connection to close');
      // mosquitto 2.0.11 answers every failed login with 0x87 Not authorized (not 0x86 Bad user name or password).
      // MQTT.js emits exactly one 'error' (ErrorWithReasonCode, `code` = the reason code as a number), then 'close'.
      expect(w.names()).toEqual(['error', 'close']);
      const [err] = w.errors();
      expect(err).toBeInstanceOf(ErrorWithReasonCode);
      expect(err).toMatchObject({ name: 'ErrorWithReasonCode', message: 'Connection refused: Not authorized', code: 0x87 });
    }
    // connectAsync rejects with that error.
    await expect(mqtt.connectAsync(broker.url, { protocolVersion: 5, username: 'central', password: 'wrong', reconnectPeriod: 0 })).rejects.toMatchObject({
      code: 0x87,
      message: 'Connection refused: Not authorized',
    });
    // MQTT 3.1.1: the same error class with the v3 return code 5.
    await expect(mqtt.connectAsync(broker.url, { protocolVersion: 4, username: 'central', password: 'wrong', reconnectPeriod: 0 })).rejects.toMatchObject({
      code: 5,
      message: 'Connection refused: Not authorized',
    });
  });

  it('a refused CONNACK suppresses MQTT.js reconnecting, even with a reconnectPeriod, unless reconnectOnConnackError is set', async () => {
    const broker = await startMosquitto({ passwords: { central: 'central-pw' } });
    cleanup.push(() => broker.stop());
    const suppressed = watch(broker.url, { username: 'central', password: 'wrong', reconnectPeriod: 50 });
    const retrying = watch(broker.url, { username: 'central', password: 'wrong', reconnectPeriod: 50, reconnectOnConnackError: true });
    await waitFor(() => retrying.names().filter((n) => n === 'reconnect').length >= 3, 'reconnectOnConnackError to retry');
    await waitFor(() => suppressed.names().includes('close'), 'the refused connection to close');
    expect(suppressed.names()).not.toContain('reconnect');
    expect(suppressed.c.reconnecting).toBe(false);
    expect(retrying.errors().every((e) => e instanceof ErrorWithReasonCode && e.code === 0x87)).toBe(true);
  });
});

describe('a second MQTT 5 client with the same client id', () => {
  it('takes the session over: mosquitto drops the first connection; MQTT.js sees a plain close, without error', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const first = watch(broker.url, { clientId: 'same-id' });
    await waitFor(() => first.c.connected, 'the first client');
    const second = watch(broker.url, { clientId: 'same-id' });
    await waitFor(() => second.c.connected, 'the second client');
    await waitFor(() => first.names().includes('close'), 'the first client to be dropped');
    expect(broker.log()).toContain('Client same-id already connected, closing old connection.');
    // mosquitto 2.0.11 sends no DISCONNECT (0x8E Session taken over) before closing; a broker that does would
    // show up as MQTT.js's 'disconnect' event with that packet. Either way there is no 'error'.
    const disconnects = first.events.filter((e) => e.event === 'disconnect').map((e) => e.arg as { reasonCode?: number });
    expect(disconnects.every((d) => d.reasonCode === 0x8e)).toBe(true);
    expect(disconnects).toEqual([]);
    expect(first.errors()).toEqual([]);
    expect(first.names()).toEqual(['connect', 'close']);
    expect(second.c.connected).toBe(true);
  });
});
