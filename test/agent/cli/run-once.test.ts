import { existsSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatOnceTable, type OnceLine } from '../../../agent/src/cli/run-once.js';
import { runCli, writeAgentConfig } from '../../helpers/agent-process.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';

/**
 * `forewarn run --once`: one round from every enabled source, scored, printed as JSON lines, exit 0; nothing is
 * written under storage.dir and no connection reaches the broker (a plain TCP server stands where it would be).
 */

const cleanup = cleanupAfterEach();

/** A listener on the broker's address that counts every connection made to it. */
async function brokerStandIn(): Promise<{ url: string; connections: () => number }> {
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => new Promise((resolve) => server.close(resolve)));
  return { url: `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`, connections: () => connections };
}

describe('forewarn run --once', () => {
  it('prints one round of readings, risk scores and drivers as JSON lines, touching neither the broker nor the database', async () => {
    const broker = await brokerStandIn();
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-once-'));
    const storageDir = path.join(dir, 'data');
    const { file } = writeAgentConfig(
      {
        storage: { dir: storageDir },
        agent: { id: 'once-1' },
        broker: { url: broker.url },
        sources: { host: { intervalMs: 60_000 }, gpu: { enabled: false }, smart: { enabled: false }, ipmi: { enabled: false }, edac: { sysRoot: dir } },
        metrics: { port: 1 },
      },
      dir,
    );
    const r = await runCli(['run', '--once', '--config', file]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as OnceLine);

    const readings = lines.filter((l) => l.type === 'reading');
    expect(readings.find((l) => l.source === 'host')).toMatchObject({ asset: 'once-1', metrics: { 'cpu.count': expect.any(Number) } });
    const mill = readings.find((l) => l.asset === 'sim-mill-1');
    expect(mill?.metrics).toMatchObject({ torque: expect.any(Number), tool_wear: expect.any(Number) });
    // The simulated machine's reading scored by the shipped model, with the features that drove the score.
    const risk = lines.find((l): l is Extract<OnceLine, { type: 'risk' }> => l.type === 'risk' && l.asset === 'sim-mill-1');
    expect(risk).toMatchObject({ model: 'machine-failure', kind: 'probability', score: expect.any(Number), atRisk: expect.any(Boolean) });
    expect(risk!.drivers.length).toBeGreaterThan(0);
    expect(risk!.drivers[0]).toMatchObject({ feature: expect.any(String), value: expect.any(Number), contribution: expect.any(Number) });
    // Every enabled source says what it did this round; one whose hardware is absent says so.
    const sources = lines.filter((l) => l.type === 'source');
    expect(sources.find((s) => s.name === 'host')).toMatchObject({ state: 'ok', samples: 1 });
    expect(sources.find((s) => s.name === 'edac')).toMatchObject({ state: 'unavailable', samples: 0, error: expect.stringContaining('EDAC') });
    expect(sources.map((s) => s.name)).not.toContain('nvidia-gpu');

    // Nothing stored, nothing sent.
    expect(existsSync(storageDir)).toBe(false);
    expect(broker.connections()).toBe(0);
  }, 60_000);

  it('reads as a table on a terminal: readings per asset, risk with its drivers, each source', () => {
    const text = formatOnceTable([
      { type: 'reading', ts: 1, source: 'simulator', asset: 'mill', metrics: { torque: 41.25, tool_wear: 12 } },
      {
        type: 'risk',
        ts: 1,
        asset: 'mill',
        model: 'machine-failure',
        modelVersion: '1.0.0',
        kind: 'probability',
        score: 0.0123,
        threshold: 0.5,
        atRisk: false,
        readingTs: 1,
        drivers: [{ feature: 'torque', value: 41.25, contribution: 0.2 }],
      },
      { type: 'source', name: 'ipmi', state: 'unavailable', samples: 0, error: 'no BMC' },
    ]);
    expect(text).toContain('  mill  (simulator)\n    tool_wear  12\n    torque     41.25\n');
    expect(text).toContain('  mill  machine-failure@1.0.0  probability 0.01230 (threshold 0.5000)  ok\n    driver torque = 41.25  contribution +0.200');
    expect(text).toMatch(/ipmi +unavailable +0 sample\(s\) {2}no BMC/);
  });
});
