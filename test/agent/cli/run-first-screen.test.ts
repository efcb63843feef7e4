import { describe, expect, it } from 'vitest';
import { freePort } from '../../helpers/mosquitto.js';
import { startAgent, killAgent } from '../../helpers/agent-process.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { waitFor } from '../../helpers/wait.js';

/**
 * What a new user sees in the first seconds of `forewarn run` on a machine without a broker or server hardware
 * (this VM has no GPU, BMC, EDAC, AER or SMART disk): no configuration dump, one info line per absent source,
 * and the outage said once with the time of the next try.
 */

const cleanup = cleanupAfterEach();

describe('forewarn run: the first screen', () => {
  it('is quiet: no configuration dump, absent hardware at info once per source, the outage once with its next try', async () => {
    const port = await freePort();
    const agent = startAgent({
      agent: { id: 'first-1', view: 'off', logLevel: 'info' },
      broker: { url: `mqtt://127.0.0.1:${port}`, reconnectMinMs: 200, reconnectMaxMs: 400 },
      metrics: { enabled: false },
      // Absent here whatever the test host has; the other hardware sources are off so that no host's own hardware
      // (a SMART disk this user cannot read) adds a line this test does not expect.
      sources: {
        host: { intervalMs: 250 },
        gpu: { binary: '/nonexistent/nvidia-smi' },
        edac: { sysRoot: '/nonexistent' },
        pcieAer: { sysRoot: '/nonexistent' },
        smart: { enabled: false },
        ipmi: { enabled: false },
      },
    });
    cleanup.push(() => killAgent(agent));
    await waitFor(() => agent.logs().some((l) => String(l.msg).startsWith('broker unreachable')), 'the outage to be said');
    // Several reconnect attempts (every 0.2–0.4 s) and source rounds later:
    await new Promise((r) => setTimeout(r, 3000));
    const logs = agent.logs();

    expect(logs.find((l) => l.msg === 'configuration loaded')).toMatchObject({ level: 30, agentId: 'first-1' });
    expect(logs.some((l) => 'config' in l)).toBe(false);
    // The sources this host lacks: one info line each, no warning, details only at debug.
    const absent = logs.filter((l) => l.code === 'FW_ERR_SOURCE_UNAVAILABLE');
    expect(absent.every((l) => l.level === 30 && !('err' in l))).toBe(true);
    expect(new Set(absent.map((l) => l.source)).size).toBe(absent.length);
    expect(absent.map((l) => l.source).sort()).toEqual(['edac', 'nvidia-gpu', 'pcie-aer']);
    // The broker: said once, with when the next attempt comes, although the agent kept retrying.
    const outage = logs.filter((l) => l.level === 40);
    expect(outage.map((l) => l.msg)).toEqual(['broker unreachable; buffering locally and retrying with backoff']);
    expect(Date.parse(String(outage[0]!.nextTryAt))).toBeGreaterThan(Number(outage[0]!.time));
    expect(Date.parse(String(outage[0]!.nextTryAt))).toBeLessThanOrEqual(Number(outage[0]!.time) + 400);

    agent.proc.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
  }, 30_000);
});
