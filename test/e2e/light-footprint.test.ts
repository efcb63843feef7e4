import { readFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { killAgent, startAgent, type AgentProcess } from '../helpers/agent-process.js';
import { cleanupAfterEach } from '../helpers/cleanup.js';
import { waitFor } from '../helpers/wait.js';

/**
 * What the agent loads is what its configuration uses: onnxruntime (its native library, 15–25 MiB) only once an
 * asset bound to a model reports. Checked on the real process through /proc/PID/maps; the memory figures
 * themselves are measured by `npm run bench`, not asserted here.
 */
const cleanup = cleanupAfterEach();

const HOST_ONLY = {
  simulator: { enabled: false },
  gpu: { enabled: false },
  smart: { enabled: false },
  edac: { enabled: false },
  pcieAer: { enabled: false },
  ipmi: { enabled: false },
};

function run(sources: Record<string, unknown>): AgentProcess {
  const agent = startAgent({ agent: { id: 'light', view: 'off' }, broker: { url: 'mqtt://127.0.0.1:9' }, metrics: { enabled: false }, sources });
  cleanup.push(() => killAgent(agent));
  return agent;
}

function rows(agent: AgentProcess, stream: string): number {
  const db = new Database(path.join(agent.dir, 'data', 'forewarn.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM records WHERE stream = ?').get(stream) as { n: number }).n;
  } finally {
    db.close();
  }
}

const mapsOnnxruntime = (agent: AgentProcess) => readFileSync(`/proc/${agent.proc.pid}/maps`, 'utf8').includes('libonnxruntime');

describe.skipIf(process.platform !== 'linux')('the agent loads only what it uses', () => {
  it('with no bound asset reporting, collects and commits without ever loading onnxruntime', { timeout: 60_000 }, async () => {
    const agent = run({ ...HOST_ONLY, host: { intervalMs: 1000 } });
    await waitFor(() => rows(agent, 'telemetry') >= 3, 'three host readings committed', 45_000, 200);
    // The default bindings (the simulated mill) are configured, but the mill never reports.
    expect(agent.logs().some((l) => l.msg === 'model loaded')).toBe(false);
    expect(mapsOnnxruntime(agent)).toBe(false);
  });

  it('loads onnxruntime and the model on the first reading of a bound asset, and scores it', { timeout: 90_000 }, async () => {
    const agent = run({ ...HOST_ONLY, host: { intervalMs: 60_000 }, simulator: { speedup: 600 } });
    await waitFor(() => rows(agent, 'risk') >= 1, 'a risk record from the simulated mill', 60_000, 200);
    expect(agent.logs().some((l) => l.msg === 'model loaded')).toBe(true);
    expect(mapsOnnxruntime(agent)).toBe(true);
  });
});
