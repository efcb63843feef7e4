import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { cleanupAfterEach } from './cleanup.js';
import { startMosquitto, type Broker } from './mosquitto.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';
import { waitFor } from './wait.js';

const cleanup = cleanupAfterEach();

async function setup(): Promise<{ broker: Broker; proxy: TcpProxy }> {
  const broker = await startMosquitto();
  cleanup.push(() => broker.stop());
  const proxy = await startTcpProxy(broker.port);
  cleanup.push(() => proxy.stop());
  return { broker, proxy };
}

/** An MQTT.js v5 client that records its events. */
function client(url: string, options: IClientOptions = {}) {
  const events: Array<{ event: string; error?: Error }> = [];
  const c = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 200, connectTimeout: 2000, clientId: `px-${Math.random()}`, ...options });
  for (const event of ['connect', 'close', 'offline', 'reconnect', 'error'] as const) {
    c.on(event, (arg?: unknown) => events.push({ event, ...(arg instanceof Error ? { error: arg } : {}) }));
  }
  cleanup.push(() => c.end(true));
  const count = (event: string) => events.filter((e) => e.event === event).length;
  return { c, events, count };
}

async function subscriber(broker: Broker, filter: string) {
  const got: string[] = [];
  const sub: MqttClient = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `sub-${Math.random()}` });
  cleanup.push(() => sub.endAsync());
  sub.on('message', (_topic, payload) => got.push(String(payload)));
  await sub.subscribeAsync(filter, { qos: 1 });
  return got;
}

describe('startTcpProxy between MQTT.js and a real mosquitto', () => {
  it('forwards both ways and counts connections and bytes', async () => {
    const { broker, proxy } = await setup();
    expect(proxy.url).toBe(`mqtt://127.0.0.1:${proxy.port}`);
    const got = await subscriber(broker, 't/#');
    const { c } = client(proxy.url);
    await waitFor(() => c.connected, 'a connection through the proxy');
    await c.publishAsync('t/1', 'hello', { qos: 1 });
    await waitFor(() => got.includes('hello'), 'the message at the subscriber');
    expect(proxy.connections()).toBe(1);
    expect(proxy.openConnections()).toBe(1);
    const { up, down } = proxy.bytesForwarded();
    expect(up).toBeGreaterThan(0); // CONNECT + PUBLISH
    expect(down).toBeGreaterThan(0); // CONNACK + PUBACK
    expect(proxy.bytesDropped()).toEqual({ up: 0, down: 0 });
  });

  it('cut() closes the client at once and refuses new connections until restore()', async () => {
    const { proxy } = await setup();
    const { c, count } = client(proxy.url);
    await waitFor(() => c.connected, 'connected');
    proxy.cut();
    expect(proxy.state()).toBe('cut');
    await waitFor(() => count('close') >= 1, "the client's close");
    expect(c.connected).toBe(false);
    // Reconnect attempts are accepted and dropped at once, so the client never gets a CONNACK.
    await waitFor(() => proxy.refused() >= 2, 'refused reconnect attempts');
    expect(count('connect')).toBe(1);
    expect(proxy.connections()).toBe(1);

    proxy.restore();
    await waitFor(() => count('connect') === 2, 'the reconnect after restore');
    expect(proxy.connections()).toBe(2);
  });

  it('halfOpen() black-holes the link: the client notices only through its keepalive, and restore() lets it reconnect', async () => {
    const { broker, proxy } = await setup();
    const got = await subscriber(broker, 't/#');
    const { c, events, count } = client(proxy.url, { keepalive: 1 });
    await waitFor(() => c.connected, 'connected');
    proxy.halfOpen();
    const forwardedAtCut = proxy.bytesForwarded();
    // QoS 0: written to the socket and gone; MQTT.js keeps nothing to resend.
    c.publish('t/lost', 'during the outage', { qos: 0 });
    await waitFor(() => count('close') >= 1, 'the client to give up on the half-open connection');
    // MQTT.js's keepalive gives up with an 'error' (a plain Error, message 'Keepalive timeout') before 'close'.
    const keepalive = events.find((e) => e.event === 'error');
    expect(keepalive?.error?.message).toBe('Keepalive timeout');
    expect(proxy.bytesForwarded()).toEqual(forwardedAtCut);
    expect(proxy.bytesDropped().up).toBeGreaterThan(0);
    // Reconnect attempts while half-open are accepted but never answered.
    await waitFor(() => proxy.connections() >= 2, 'a reconnect attempt into the black hole');
    expect(count('connect')).toBe(1);

    proxy.restore();
    await waitFor(() => count('connect') === 2, 'the reconnect after restore');
    await c.publishAsync('t/marker', 'after', { qos: 1 });
    await waitFor(() => got.includes('after'), 'the message sent after restore');
    // Nothing from the half-open period is delivered late.
    expect(got).toEqual(['after']);
  });

  it('restore() destroys connections that were black-holed, so nothing stale is delivered on them later', async () => {
    const { proxy } = await setup();
    // A long keepalive: the client would not notice the half-open link by itself for a minute.
    const { c, count } = client(proxy.url, { keepalive: 60 });
    await waitFor(() => c.connected, 'connected');
    proxy.halfOpen();
    expect(proxy.openConnections()).toBe(1);
    proxy.restore();
    await waitFor(() => count('close') >= 1, 'the stale connection to be closed on restore');
    await waitFor(() => count('connect') === 2, 'a fresh connection');
    expect(proxy.openConnections()).toBe(1);
  });

  it('stop() closes everything', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const proxy = await startTcpProxy(broker.port);
    const { c, count } = client(proxy.url, { reconnectPeriod: 0 });
    await waitFor(() => c.connected, 'connected');
    await proxy.stop();
    await waitFor(() => count('close') >= 1, 'close after stop');
    expect(proxy.openConnections()).toBe(0);
  });
});
