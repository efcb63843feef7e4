import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startMosquitto } from '../../helpers/mosquitto.js';
import { runCli, writeAgentConfig } from '../../helpers/agent-process.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
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

  it('reports a TLS error when the broker\'s certificate is not trusted, and passes with the right CA', async () => {
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

  it('fails on an invalid configuration and says why', async () => {
    const { code, report } = await doctor({ broker: { url: 'mqtt://127.0.0.1:1883', qos: 7 }, sources: NO_HARDWARE });
    expect(code).toBe(1);
    expect(check(report, 'config').status).toBe('fail');
    expect(check(report, 'config').message).toMatch(/qos/);
  });
});
