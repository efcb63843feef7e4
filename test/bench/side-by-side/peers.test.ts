import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { buildConfig } from '../../../agent/src/config/load-config.js';
import { startMosquitto } from '../../helpers/mosquitto.js';
import { agentConfig, nodeFloorArgs } from './peers.js';

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

describe('the node floor (scripts/node-floor.mjs)', () => {
  it("commits and publishes at QoS 1 one reading of about the agent's size per interval, on the grid it was given, and stops on SIGTERM", async () => {
    const broker = await startMosquitto();
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-node-floor-'));
    const sub = await mqtt.connectAsync(broker.url);
    try {
      const got: Array<{ body: { seq: number; ts: number; metrics: Record<string, number> } }> = [];
      sub.on('message', (_t, payload) => got.push({ body: JSON.parse(String(payload)) }));
      await sub.subscribeAsync('floor/+/telemetry', { qos: 1 });
      const gridAt = Date.now() + 1000;
      const floor = spawn(process.execPath, nodeFloorArgs({ brokerUrl: broker.url, dir, intervalMs: 500, gridAt }), { stdio: 'inherit' });
      while (got.length < 4) await new Promise((r) => setTimeout(r, 50));
      floor.kill('SIGTERM');
      const code = await new Promise((r) => floor.once('exit', r));
      expect(code).toBe(0);
      expect(got.slice(0, 4).map((m) => m.body.seq)).toEqual([1, 2, 3, 4]);
      for (const m of got) {
        // On its grid: a multiple of 500 ms after gridAt, give or take a late timer (its ts is taken as it starts).
        expect((((m.body.ts - gridAt) % 500) + 500) % 500).toBeLessThan(200);
        // About the host-only agent's reading: 41 values, 1.2 kB on the development VM.
        expect(Object.keys(m.body.metrics).length).toBeGreaterThanOrEqual(40);
      }
      // Every published reading was committed first.
      const db = new Database(path.join(dir, 'floor.db'), { readonly: true });
      const seqs = (db.prepare('SELECT seq FROM readings ORDER BY seq').all() as Array<{ seq: number }>).map((r) => r.seq);
      db.close();
      expect(seqs.slice(0, got.length)).toEqual(got.map((m) => m.body.seq));
    } finally {
      await sub.endAsync();
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
