import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatStatus, readStatus } from '../../../agent/src/cli/status-report.js';
import { RecordStore } from '../../../agent/src/store/record-store.js';
import { MODEL_HEALTH_META_KEY } from '../../../agent/src/scoring/drift-monitor.js';
import { DRAIN_META_KEY } from '../../../agent/src/sync/drain-progress.js';

describe('forewarn status report', () => {
  it('shows drops per stream, the backlog being drained, storage use and model health from the database', () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'fw-status-')), 'data');
    const store = new RecordStore({ dir });
    store.append(Array.from({ length: 3000 }, (_, i) => ({ stream: 'telemetry' as const, ts: i, asset: 'a', payload: { pad: 'x'.repeat(300) } })));
    store.enforceQuota({ maxBytes: Math.floor(store.usage().usedBytes / 2), minFreeBytes: 0 });
    store.setMeta(DRAIN_META_KEY, JSON.stringify({ ts: Date.now(), left: 1500, ratePerSec: 5000, bytesPerSec: 2_000_000, etaSeconds: 0 }));
    store.setMeta(
      MODEL_HEALTH_META_KEY,
      JSON.stringify([
        {
          model: 'mf',
          version: '1.0.0',
          asset: 'mill',
          state: 'drift',
          samples: 500,
          psiMax: 0.91,
          ts: 1,
          top: [{ feature: 'torque', psi: 0.91, chance: 0.02, outside: 0 }],
        },
        // What the default demo shows: a slow input's raw PSI is large while the state, judged on the figures shown, is ok.
        {
          model: 'mf',
          version: '1.0.0',
          asset: 'mill-2',
          state: 'ok',
          samples: 500,
          psiMax: 4.01,
          driftPsi: 0.003,
          outsideMax: 0.004,
          ts: 1,
          top: [{ feature: 'air_temperature', psi: 4.01, chance: 0.5, outside: 0.004, narrow: true }],
        },
      ]),
    );
    store.close();
    const report = readStatus(dir);
    const t = report.streams.find((s) => s.stream === 'telemetry')!;
    expect(t.droppedTotal).toBeGreaterThan(0);
    expect(report.drain).toMatchObject({ left: 1500, ratePerSec: 5000 });
    const text = formatStatus(report);
    expect(text).toMatch(/backlog +1500 records left, 5000 records\/s \(1\.9 MiB\/s\)/);
    expect(text).toMatch(new RegExp(`telemetry +${t.pending} +0 +${t.droppedTotal} +3000`));
    // A status saved by an older agent has only the raw figure, and says so.
    expect(text).toMatch(/mill +mf@1\.0\.0 +DRIFT +max raw PSI 0\.910 over 500 rows +\(torque PSI 0\.910, outside 0\.0%\)/);
    expect(text).toMatch(/mill-2 +mf@1\.0\.0 +OK +drift PSI 0\.003, outside 0\.4% over 500 rows +\(air_temperature slow, raw PSI 4\.010, outside 0\.4%\)/);
    expect(text).toMatch(/storage +[\d.]+ MiB used/);
  });

  it("shows no backlog when the agent's progress note is stale or nothing is pending", () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'fw-status-')), 'data');
    const store = new RecordStore({ dir });
    store.append([{ stream: 'telemetry', ts: 1, asset: 'a', payload: {} }]);
    store.setMeta(DRAIN_META_KEY, JSON.stringify({ ts: Date.now() - 3_600_000, left: 1, ratePerSec: 0, bytesPerSec: 0, etaSeconds: null }));
    store.close();
    expect(readStatus(dir).drain).toBeNull();
    expect(formatStatus(readStatus(dir))).toMatch(/backlog +none/);
  });
});
