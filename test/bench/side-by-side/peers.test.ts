import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { buildConfig } from '../../../agent/src/config/load-config.js';
import { agentConfig } from './peers.js';

/** The side-by-side benchmark's agent configurations, as the agent reads them. */

const read = (profile: 'host-only' | 'defaults', intervalMs: number) =>
  buildConfig(stringify(agentConfig(profile, { id: 'bench', dir: '/tmp/fw-bench', brokerUrl: 'mqtt://127.0.0.1:1883', intervalMs })), {});

describe('agentConfig', () => {
  it('runs every source of the defaults at the interval of the phase, as collectd does, and at 1 s is the defaults as shipped', () => {
    const shipped = buildConfig(null, {}).sources;
    for (const intervalMs of [1000, 5000]) {
      const { sources } = read('defaults', intervalMs);
      expect(sources.host.intervalMs).toBe(intervalMs);
      // One simulated machining process per interval.
      expect((sources.simulator.processSeconds * 1000) / sources.simulator.speedup).toBe(intervalMs);
    }
    expect(read('defaults', 1000).sources.simulator).toEqual(shipped.simulator);
  });

  it('turns off every source but the host sampler in host-only, and binds no model', () => {
    const cfg = read('host-only', 5000);
    expect(cfg.sources.host.intervalMs).toBe(5000);
    for (const s of ['simulator', 'gpu', 'smart', 'edac', 'pcieAer', 'ipmi'] as const) expect(cfg.sources[s].enabled, s).toBe(false);
    expect(cfg.scoring.bindings).toEqual([]);
  });
});
