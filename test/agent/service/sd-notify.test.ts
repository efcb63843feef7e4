import { writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import { stringify } from 'yaml';
import { describe, expect, it, vi } from 'vitest';
import { MIN_WATCHDOG_PING_MS, SdNotify, watchdogIntervalMs } from '../../../agent/src/service/sd-notify.js';
import { startAgent, killAgent } from '../../helpers/agent-process.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { startMosquitto } from '../../helpers/mosquitto.js';
import { startNotifyListener, systemdNotifyBinary } from '../../helpers/notify-listener.js';
import { waitFor } from '../../helpers/wait.js';

/**
 * sd_notify for `Type=notify` (agent/src/service/sd-notify.ts): against a real unix datagram socket standing in for
 * systemd, then with the real agent process against a real mosquitto. No timing is asserted, only what arrives and
 * in which order.
 */

const cleanup = cleanupAfterEach();

const NO_SYSTEMD_NOTIFY = systemdNotifyBinary() ? '' : 'systemd-notify is not installed (Debian package systemd): the agent sends through it';
const withNotify = (name: string) => `${name}${NO_SYSTEMD_NOTIFY ? ` — skipped: ${NO_SYSTEMD_NOTIFY}` : ''}`;

function quietLog() {
  return { warn: vi.fn(), debug: vi.fn() };
}

const agentConfig = (url: string, id: string) => ({
  agent: { id, view: 'off', logLevel: 'info' },
  broker: { url, flushIntervalMs: 100, reconnectMinMs: 100, reconnectMaxMs: 500 },
  sources: { host: { intervalMs: 500 }, simulator: { speedup: 600 } },
});

describe('watchdogIntervalMs', () => {
  it('is half of WATCHDOG_USEC, for this process only, and null without a watchdog', () => {
    expect(watchdogIntervalMs({}, 42)).toBeNull();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 42)).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42)).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '43' }, 42)).toBeNull();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '0' }, 42)).toBeNull();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: 'soon' }, 42)).toBeNull();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '10' }, 42)).toBe(MIN_WATCHDOG_PING_MS);
  });
});

describe('SdNotify without NOTIFY_SOCKET', () => {
  it('does nothing at all: no process is run, nothing fails, no watchdog', async () => {
    const log = quietLog();
    // A binary that does not exist: any attempt to send would be logged as a failure.
    const n = new SdNotify({ env: { WATCHDOG_USEC: '100000' }, binary: '/nonexistent/systemd-notify', log });
    expect(n.enabled).toBe(false);
    expect(n.watchdogMs).toBeNull();
    await n.ready('running');
    await n.status('still running');
    await n.stopping('stopping');
    n.close();
    expect(log.warn).not.toHaveBeenCalled();
    expect(log.debug).not.toHaveBeenCalled();
  });
});

describe.skipIf(!!NO_SYSTEMD_NOTIFY)(withNotify('SdNotify against a unix datagram socket'), () => {
  it('sends READY=1 with a status, WATCHDOG=1 repeatedly, then STOPPING=1 (path socket)', async () => {
    const listener = await startNotifyListener();
    cleanup.push(() => listener.stop());
    const log = quietLog();
    const n = new SdNotify({ env: { NOTIFY_SOCKET: listener.socket, WATCHDOG_USEC: '100000' }, log });
    cleanup.push(() => n.close());
    expect(n.watchdogMs).toBe(50);
    await n.ready('running: 3 source(s)');
    expect(listener.messages()[0]).toBe('READY=1\nSTATUS=running: 3 source(s)');
    await waitFor(() => listener.assignments().filter((a) => a === 'WATCHDOG=1').length >= 3, 'three watchdog pings');
    await n.stopping('stopping (SIGTERM)');
    const sent = listener.assignments().filter((a) => a !== 'BARRIER=1');
    expect(sent.slice(-2)).toEqual(['STOPPING=1', 'STATUS=stopping (SIGTERM)']);
    // Nothing after STOPPING=1, not even a late READY=1.
    await n.ready();
    await n.status('x');
    expect(listener.assignments().filter((a) => a !== 'BARRIER=1')).toEqual(sent);
    expect(log.warn).not.toHaveBeenCalled();
  });

  it('works with an abstract-namespace socket (@name)', async () => {
    const listener = await startNotifyListener({ abstract: true });
    cleanup.push(() => listener.stop());
    expect(listener.socket.startsWith('@')).toBe(true);
    const log = quietLog();
    const n = new SdNotify({ env: { NOTIFY_SOCKET: listener.socket }, log });
    cleanup.push(() => n.close());
    expect(n.watchdogMs).toBeNull();
    await n.ready();
    await n.status('multi\nline');
    expect(listener.assignments().filter((a) => a !== 'BARRIER=1')).toEqual(['READY=1', 'STATUS=multi line']);
    expect(log.warn).not.toHaveBeenCalled();
  });

  it('feeds no watchdog meant for another process (WATCHDOG_PID)', () => {
    const n = new SdNotify({ env: { NOTIFY_SOCKET: '@unused', WATCHDOG_USEC: '100000', WATCHDOG_PID: String(process.pid + 1) } });
    expect(n.enabled).toBe(true);
    expect(n.watchdogMs).toBeNull();
  });

  it('takes the variables out of process.env, so that the tools the agent runs do not inherit them', () => {
    const saved = { ...process.env };
    cleanup.push(() => {
      for (const k of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    });
    process.env.NOTIFY_SOCKET = '@unused';
    process.env.WATCHDOG_USEC = '30000000';
    process.env.WATCHDOG_PID = String(process.pid);
    const n = new SdNotify();
    expect(n.socket).toBe('@unused');
    expect(n.watchdogMs).toBe(15_000);
    expect(process.env.NOTIFY_SOCKET).toBeUndefined();
    expect(process.env.WATCHDOG_USEC).toBeUndefined();
    expect(process.env.WATCHDOG_PID).toBeUndefined();
  });

  it('logs one warning, and does not throw, when the message cannot be delivered', async () => {
    const log = quietLog();
    const n = new SdNotify({ env: { NOTIFY_SOCKET: `@forewarn-nobody-listens-${process.pid}` }, log });
    await n.ready();
    await n.status('x');
    expect(log.warn).toHaveBeenCalledTimes(1);
  });
});

describe.skipIf(!!NO_SYSTEMD_NOTIFY)(withNotify('the agent under a stand-in for systemd'), () => {
  it('sends READY=1 after starting, then WATCHDOG=1 repeatedly, then STOPPING=1 on SIGTERM', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const listener = await startNotifyListener({ abstract: true });
    cleanup.push(() => listener.stop());
    // WatchdogSec=400ms: a ping every 200 ms.
    const agent = startAgent(agentConfig(broker.url, 'notify-1'), { NOTIFY_SOCKET: listener.socket, WATCHDOG_USEC: '400000', WATCHDOG_PID: undefined });
    cleanup.push(() => killAgent(agent));

    const sent = () => listener.assignments().filter((a) => a !== 'BARRIER=1');
    await waitFor(() => sent().includes('READY=1'), `READY=1; agent output:\n${agent.output()}`, 30_000);
    expect(sent()[0]).toBe('READY=1');
    expect(sent()[1]).toMatch(/^STATUS=running: \d+ source\(s\)$/);
    await waitFor(() => sent().filter((a) => a === 'WATCHDOG=1').length >= 3, 'three watchdog pings');
    const beforeStop = sent().length;

    agent.proc.kill('SIGTERM');
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    const all = sent();
    const stopping = all.indexOf('STOPPING=1');
    expect(stopping, all.join(' | ')).toBeGreaterThanOrEqual(beforeStop);
    expect(all[stopping + 1]).toBe('STATUS=stopping (SIGTERM)');
    expect(all.indexOf('READY=1')).toBe(0);
    expect(agent.output()).not.toContain('cannot notify systemd');
  });

  it('sends RELOADING=1 and then READY=1 again when SIGHUP reloads the configuration', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const listener = await startNotifyListener({ abstract: true });
    cleanup.push(() => listener.stop());
    const config = agentConfig(broker.url, 'notify-3');
    const agent = startAgent(config, { NOTIFY_SOCKET: listener.socket, WATCHDOG_USEC: undefined, WATCHDOG_PID: undefined });
    cleanup.push(() => killAgent(agent));
    const sent = () => listener.assignments().filter((a) => a !== 'BARRIER=1');
    await waitFor(() => sent().includes('READY=1'), 'READY=1', 30_000);
    writeFileSync(
      agent.configFile,
      stringify({ ...config, storage: { dir: path.join(agent.dir, 'data') }, sources: { ...config.sources, host: { intervalMs: 600 } } }),
    );
    agent.proc.kill('SIGHUP');
    await waitFor(() => sent().filter((a) => a === 'READY=1').length === 2, 'READY=1 after the reload');
    const all = sent();
    const reloading = all.indexOf('RELOADING=1');
    expect(reloading, all.join(' | ')).toBeGreaterThan(0);
    // MONOTONIC_USEC, for Type=notify-reload units: the monotonic clock in microseconds.
    expect(all[reloading + 1]).toMatch(/^MONOTONIC_USEC=\d+$/);
    expect(all.lastIndexOf('READY=1')).toBeGreaterThan(reloading);
    agent.proc.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
  });

  it('sends nothing, and runs and stops as usual, without NOTIFY_SOCKET', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const listener = await startNotifyListener();
    cleanup.push(() => listener.stop());
    const status: Array<Record<string, unknown>> = [];
    const client = await mqtt.connectAsync(broker.url, { clientId: `notify-sub-${process.pid}` });
    cleanup.push(() => client.endAsync());
    client.on('message', (_t, payload) => status.push(JSON.parse(String(payload)) as Record<string, unknown>));
    await client.subscribeAsync('forewarn/v1/notify-2/status', { qos: 1 });
    // A watchdog asked for, but no socket: there is no one to tell.
    const agent = startAgent(agentConfig(broker.url, 'notify-2'), { NOTIFY_SOCKET: undefined, WATCHDOG_USEC: '400000', WATCHDOG_PID: undefined });
    cleanup.push(() => killAgent(agent));

    await waitFor(() => status.some((s) => s.state === 'online'), `the agent online; agent output:\n${agent.output()}`, 30_000);
    agent.proc.kill('SIGTERM');
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    expect(listener.messages()).toEqual([]);
    expect(agent.output()).not.toContain('cannot notify systemd');
  });
});
