import { describe, expect, it } from 'vitest';
import { checkHealth, type LoopDelay } from '../../../agent/src/metrics/metrics-server.js';
import type { AgentView } from '../../../agent/src/snapshot/agent-view.js';

/** What /healthz calls healthy, on a stand-in for the agent's state (the real process is in metrics-server.test.ts). */

const calm: LoopDelay = { p50: 0.0001, p99: 0.002, max: 0.01, windowSeconds: 30 };

function fakeAgent(
  over: {
    broker?: string;
    lastCommitTs?: number | null;
    lastWriteErrorTs?: number | null;
    sourceState?: string;
    storeFails?: boolean;
    freeBytes?: number;
  } = {},
): AgentView {
  return {
    config: { agent: { id: 'a1' }, storage: { minFreeBytes: 1000 } },
    stats: { startedAt: 0, lost: 3, lastCommitTs: over.lastCommitTs ?? null, lastWriteErrorTs: over.lastWriteErrorTs ?? null },
    store: {
      pendingTotal: () => {
        if (over.storeFails) throw new Error('SQLITE_IOERR');
        return 5;
      },
      usage: () => ({ freeBytes: over.freeBytes ?? 1e9 }),
    },
    sync: { stats: { state: over.broker ?? 'online', since: 0, lastError: over.broker && over.broker !== 'online' ? 'connect ECONNREFUSED' : null } },
    sources: [{ stats: { name: 'gpu', state: over.sourceState ?? 'running', lastError: 'nvidia-smi not found' } }],
    drift: null,
  } as unknown as AgentView;
}

describe('/healthz semantics', () => {
  it('is ok with the broker down, a source unavailable and the disk under its floor, and says so in notes', () => {
    const r = checkHealth(fakeAgent({ broker: 'offline', sourceState: 'unavailable', freeBytes: 10, lastCommitTs: 2 }), '1.0.0', calm, 10_000);
    expect(r.status).toBe('ok');
    expect(r.reasons).toEqual([]);
    expect(r.notes.join('\n')).toMatch(/broker offline .*buffered locally/);
    expect(r.notes.join('\n')).toMatch(/source gpu is unavailable: nvidia-smi not found/);
    expect(r.notes.join('\n')).toMatch(/below storage.minFreeBytes/);
    expect(r.broker.connected).toBe(false);
    expect(r.storage.pending).toBe(5);
  });

  it('is unhealthy when the last database write failed, and healthy again once a commit succeeds', () => {
    const failed = checkHealth(fakeAgent({ lastCommitTs: 100, lastWriteErrorTs: 200 }), '1.0.0', calm, 1000);
    expect(failed.status).toBe('unhealthy');
    expect(failed.reasons[0]).toMatch(/last database write failed.*3 records lost/);
    expect(checkHealth(fakeAgent({ lastCommitTs: 300, lastWriteErrorTs: 200 }), '1.0.0', calm, 1000).status).toBe('ok');
    expect(checkHealth(fakeAgent({ lastCommitTs: null, lastWriteErrorTs: 200 }), '1.0.0', calm, 1000).status).toBe('unhealthy');
  });

  it('is unhealthy when the database cannot be read', () => {
    const r = checkHealth(fakeAgent({ storeFails: true }), '1.0.0', calm, 1000);
    expect(r.status).toBe('unhealthy');
    expect(r.reasons[0]).toMatch(/database cannot be read: SQLITE_IOERR/);
  });

  it('is unhealthy when the event loop is persistently slow or stalled', () => {
    expect(checkHealth(fakeAgent(), '1.0.0', { ...calm, p99: 1.5, max: 2 }, 1000).reasons[0]).toMatch(/event loop delay p99 1.50 s/);
    expect(checkHealth(fakeAgent(), '1.0.0', { ...calm, max: 12 }, 1000).reasons[0]).toMatch(/event loop stalled for 12.0 s/);
    expect(checkHealth(fakeAgent(), '1.0.0', { ...calm, max: 5 }, 1000).status).toBe('ok');
  });
});
