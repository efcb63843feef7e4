import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import mqtt from 'mqtt';
import { freePort, startMosquitto } from '../../helpers/mosquitto.js';
import { runCli, writeAgentConfig } from '../../helpers/agent-process.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { tmpfsForTest } from '../../helpers/tmpfs.js';
import { makePki, type Pki } from '../../helpers/tls-certs.js';
import type { DoctorReport } from '../../../agent/src/cli/doctor.js';

/** `forewarn doctor`, the real CLI, against a real mosquitto and this host. */

const cleanup = cleanupAfterEach();

/** Hardware sources off: what this host has is not what these tests are about. */
const NO_HARDWARE = { gpu: { enabled: false }, smart: { enabled: false }, edac: { enabled: false }, pcieAer: { enabled: false }, ipmi: { enabled: false } };

async function doctor(config: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; report: DoctorReport; text: string }> {
  const { dir, file } = writeAgentConfig(config);
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const json = await runCli(['doctor', '--config', file, '--json'], { cwd: dir, env });
  const text = await runCli(['doctor', '--config', file], { cwd: dir, env });
  expect(text.code).toBe(json.code);
  return { code: json.code, report: JSON.parse(json.stdout) as DoctorReport, text: text.stdout };
}

const check = (r: DoctorReport, name: string) => {
  const c = r.checks.find((x) => x.name === name);
  if (!c) throw new Error(`no check ${name} in ${JSON.stringify(r.checks)}`);
  return c;
};

let pki: Pki;
beforeAll(async () => {
  pki = await makePki(undefined, { clients: ['agent-a'] });
});
afterAll(() => rmSync(pki.dir, { recursive: true, force: true }));

describe('forewarn doctor', () => {
  it('passes against a running broker, with the models loading and the storage checked', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const { code, report, text } = await doctor({ broker: { url: broker.url }, sources: NO_HARDWARE });
    expect(code, text).toBe(0);
    expect(report.ok).toBe(true);
    expect(check(report, 'config').status).toBe('ok');
    expect(check(report, 'broker')).toMatchObject({ status: 'ok' });
    expect(check(report, 'broker').message).toMatch(/CONNACK Success \(0x00\)/);
    expect(check(report, 'model machine-failure')).toMatchObject({ status: 'ok' });
    expect(check(report, 'storage.space').status).toBe('ok');
    expect(check(report, 'storage.dir').status).toBe('ok');
    expect(text).toMatch(/\[ ok \] broker: /);
    expect(text).toMatch(/0 failure\(s\)/);
  });

  it('says whether a central subscriber acknowledges this agent (broker.ack: central), and what broker.ack: broker means', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const none = await doctor({ agent: { id: 'doc-ack' }, broker: { url: broker.url }, sources: NO_HARDWARE });
    expect(check(none.report, 'broker.ack')).toMatchObject({ status: 'warn' });
    expect(check(none.report, 'broker.ack').message).toMatch(/no acknowledgement from a central subscriber on forewarn\/v1\/doc-ack\/ack/);
    // The centre's retained acknowledgement, as `forewarn subscribe` writes it.
    const c = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    await c.publishAsync(
      'forewarn/v1/doc-ack/ack',
      JSON.stringify({ schemaVersion: 1, agentId: 'doc-ack', ts: Date.UTC(2026, 11, 6), streams: { telemetry: { through: 41, highest: 41 } } }),
      { qos: 1, retain: true },
    );
    const seen = await doctor({ agent: { id: 'doc-ack' }, broker: { url: broker.url }, sources: NO_HARDWARE });
    expect(check(seen.report, 'broker.ack')).toMatchObject({ status: 'ok' });
    expect(check(seen.report, 'broker.ack').message).toMatch(/acknowledged at 2026-12-06T00:00:00.000Z \(telemetry through 41\)/);
    // Another agent's id reads nothing there; in broker mode that is fine and said so.
    const plain = await doctor({ agent: { id: 'doc-other' }, broker: { url: broker.url, ack: 'broker' }, sources: NO_HARDWARE });
    expect(check(plain.report, 'broker.ack')).toMatchObject({ status: 'ok' });
    expect(check(plain.report, 'broker.ack').message).toMatch(/released on the broker's PUBACK/);
    await c.endAsync();
  });

  it('fails with a clear message when nothing listens on the broker port', async () => {
    const port = await freePort();
    const { code, report, text } = await doctor({ broker: { url: `mqtt://127.0.0.1:${port}` }, sources: NO_HARDWARE });
    expect(code).toBe(1);
    expect(report.ok).toBe(false);
    const b = check(report, 'broker');
    expect(b.status).toBe('fail');
    expect(b.message).toContain('ECONNREFUSED');
    expect(b.fix).toMatch(/nothing listens there/);
    expect(text).toMatch(/\[FAIL\] broker: .*ECONNREFUSED/);
    expect(text).toMatch(/fix: nothing listens there/);
  });

  it('reports the CONNACK reason when the broker refuses the credentials', async () => {
    const broker = await startMosquitto({ passwords: { agent: 'right' } });
    cleanup.push(() => broker.stop());
    const { code, report } = await doctor({ broker: { url: broker.url, username: 'agent', password: 'wrong' }, sources: NO_HARDWARE });
    expect(code).toBe(1);
    const b = check(report, 'broker');
    expect(b.status).toBe('fail');
    expect(b.message).toMatch(/CONNACK .*\(0x8[67]\)/);
    expect(b.fix).toMatch(/username and broker.password/);
  });

  it("reports a TLS error when the broker's certificate is not trusted, and passes with the right CA", async () => {
    const broker = await startMosquitto({ tls: { caFile: pki.ca.cert, certFile: pki.server.cert, keyFile: pki.server.key } });
    cleanup.push(() => broker.stop());
    const untrusted = await doctor({ broker: { url: broker.tlsUrl, tls: { caFile: pki.wrongCa.cert } }, sources: NO_HARDWARE });
    expect(untrusted.code).toBe(1);
    expect(check(untrusted.report, 'broker').message).toMatch(/TLS error/);
    expect(check(untrusted.report, 'broker').fix).toMatch(/broker.tls.caFile/);
    const trusted = await doctor({ broker: { url: broker.tlsUrl, tls: { caFile: pki.ca.cert } }, sources: NO_HARDWARE });
    expect(check(trusted.report, 'broker').status, JSON.stringify(trusted.report)).toBe('ok');
    expect(check(trusted.report, 'broker').message).toMatch(/TLS ok/);
    expect(check(trusted.report, 'broker.tls.caFile').status).toBe('ok');
  });

  it('names a missing tool: a configured path is a failure, a default name missing from PATH a warning', async () => {
    const port = await freePort();
    const emptyPath = mkdtempSync(path.join(tmpdir(), 'fw-nopath-'));
    cleanup.push(() => rmSync(emptyPath, { recursive: true, force: true }));
    const { report } = await doctor(
      {
        broker: { url: `mqtt://127.0.0.1:${port}` },
        sources: { ...NO_HARDWARE, gpu: { enabled: true, binary: '/nonexistent/bin/nvidia-smi', xid: false }, smart: { enabled: true } },
      },
      { PATH: emptyPath },
    );
    const gpu = check(report, 'sources.gpu');
    expect(gpu.status).toBe('fail');
    expect(gpu.message).toContain('/nonexistent/bin/nvidia-smi not found');
    const smart = check(report, 'sources.smart');
    expect(smart.status).toBe('warn');
    expect(smart.message).toContain('smartctl not found on PATH');
    expect(smart.fix).toMatch(/install smartmontools/);
  });

  it('fails storage.limits on an explicit floor above half the disk; warns on a quota larger than the disk', async () => {
    const port = await freePort();
    const floor = await doctor({ broker: { url: `mqtt://127.0.0.1:${port}` }, sources: NO_HARDWARE, storage: { minFreeBytes: 2 ** 50 } });
    expect(floor.code).toBe(1);
    expect(check(floor.report, 'storage.limits')).toMatchObject({
      status: 'fail',
      message: expect.stringMatching(/^storage\.minFreeBytes: 1 PiB is more than half of the .* file system/),
    });
    expect(floor.text).toMatch(/\[FAIL\] storage\.limits: storage\.minFreeBytes: /);
    const quota = await doctor({ broker: { url: `mqtt://127.0.0.1:${port}` }, sources: NO_HARDWARE, storage: { maxBytes: 2 ** 50, minFreeBytes: 0 } });
    expect(check(quota.report, 'storage.limits')).toMatchObject({
      status: 'warn',
      message: expect.stringMatching(/^storage\.maxBytes: 1 PiB is larger than the .* file system/),
    });
  });

  it('on a real 16 MiB file system: warns that the default floor is clamped, and judges free space by the clamped floor', async (ctx: TestContext) => {
    const fs = tmpfsForTest(ctx, 16, cleanup);
    const port = await freePort();
    const { report } = await doctor({ broker: { url: `mqtt://127.0.0.1:${port}` }, sources: NO_HARDWARE, storage: { dir: path.join(fs, 'data') } });
    const limits = check(report, 'storage.limits');
    expect(limits.status).toBe('warn');
    expect(limits.message).toContain(`storage.minFreeBytes: the default 256 MiB is more than half of the 16 MiB file system at ${fs}; clamped to 1.6 MiB`);
    // 16 MiB free is below the default 256 MiB floor, but not below the 1.6 MiB the agent runs with.
    expect(check(report, 'storage.space').status).not.toBe('fail');
    const explicit = await doctor({
      broker: { url: `mqtt://127.0.0.1:${port}` },
      sources: NO_HARDWARE,
      storage: { dir: path.join(fs, 'data'), minFreeBytes: 12 * 2 ** 20 },
    });
    expect(check(explicit.report, 'storage.limits')).toMatchObject({
      status: 'fail',
      message: expect.stringContaining('storage.minFreeBytes: 12 MiB is more than half of the 16 MiB file system'),
    });
  });

  it('fails on an invalid configuration and says why', async () => {
    const { code, report } = await doctor({ broker: { url: 'mqtt://127.0.0.1:1883', qos: 7 }, sources: NO_HARDWARE });
    expect(code).toBe(1);
    expect(check(report, 'config').status).toBe('fail');
    expect(check(report, 'config').message).toMatch(/qos/);
  });
});
