import { describe, expect, it } from 'vitest';
import { renderPanel, type PanelInput } from '../../../agent/src/view/live-view.js';

const input: PanelInput = {
  agentId: 'press-7',
  bootSeq: 3,
  uptimeMs: 3_723_000,
  broker: { url: 'mqtt://central:1883', state: 'offline', sinceMs: 65_000, sent: 120, rejected: 2, lastError: 'connect ECONNREFUSED' },
  sources: [
    { name: 'host', state: 'running', samples: 10, errors: 0 },
    { name: 'simulator', state: 'failing', samples: 5, errors: 1 },
    { name: 'nvidia-gpu', state: 'unavailable', samples: 0, errors: 1 },
  ],
  collected: 15,
  scored: 5,
  lastBatchMs: 0.42,
  buffered: [
    { stream: 'risk', pending: 4 },
    { stream: 'telemetry', pending: 9 },
  ],
  risks: [{ asset: 'mill-1', model: 'machine-failure', score: 0.91, threshold: 0.48, atRisk: true, drivers: [{ feature: 'tool_wear', contribution: 0.5 }] }],
  alerts: [
    { severity: 'info', title: 'Signal failed a data-quality check (range)', asset: 'host', subject: 'temp.x.celsius' },
    { severity: 'critical', title: 'GPU memory row remapping failed', asset: 'gpu-0000:3b:00.0' },
  ],
};

describe('live view panel', () => {
  it('shows what was collected, scored, buffered and sent, and the risk per asset', () => {
    const lines = renderPanel(input, 200);
    expect(lines[0]).toContain('press-7 · boot #3 · up 01:02:03');
    expect(lines[1]).toBe('broker    offline mqtt://central:1883 for 00:01:05 (connect ECONNREFUSED)');
    // Every count says what it counts.
    expect(lines[2]).toBe('collected 15 readings from host (ok, 10 samples), simulator (failing, 5 samples, 1 errors)');
    expect(lines[3]).toBe('absent    nvidia-gpu (no tool or device here)');
    expect(lines[4]).toBe('scored    5 risk records, last batch scored in 0.42 ms');
    expect(lines[5]).toBe('buffered  13 records (risk 4, telemetry 9)');
    expect(lines[6]).toBe('sent      120 records this run, 2 publishes refused by the broker');
    expect(lines[7]).toBe('risk      mill-1 machine-failure score 0.910 (threshold 0.480) AT RISK  drivers: tool_wear +0.500');
    expect(lines[8]).toBe('alerts    2 active: 1 critical, 0 warning, 1 info');
    // Most severe first.
    expect(lines[9]).toBe('  critical gpu-0000:3b:00.0  GPU memory row remapping failed');
  });

  it("shows a RUL record's calibrated interval next to its score", () => {
    const lines = renderPanel(
      {
        ...input,
        risks: [
          {
            asset: 'engine-8',
            model: 'turbofan-rul',
            score: 42.5,
            interval: { level: 0.9, lower: 31.39, upper: 55.93 },
            threshold: 30,
            atRisk: false,
            drivers: [],
          },
        ],
      },
      200,
    );
    expect(lines[7]).toBe('risk      engine-8 turbofan-rul score 42.500 [90%: 31.4–55.9] (threshold 30.000) ok');
  });

  it('fits the terminal width', () => {
    for (const line of renderPanel(input, 30)) expect(line.length).toBeLessThanOrEqual(30);
  });
});
