import { describe, expect, it } from 'vitest';
import { isForewarnError } from '../../../agent/src/core/errors.js';
import { parseWhen } from '../../../agent/src/central/parse-when.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

describe("parseWhen (--since/--until of central's reports)", () => {
  const NOW = Date.UTC(2026, 5, 1);
  it('takes --since as an ISO date or time, or a duration back from now', () => {
    expect(parseWhen('since', '2026-01-31', NOW)).toBe(Date.UTC(2026, 0, 31));
    expect(parseWhen('since', '2026-01-31T08:00:00Z', NOW)).toBe(Date.UTC(2026, 0, 31, 8));
    expect(parseWhen('since', '30d', NOW)).toBe(NOW - 30 * 24 * HOUR);
    expect(parseWhen('since', '1h30m', NOW)).toBe(NOW - 90 * MIN);
    for (const bad of ['30', 'yesterday', '2026-13-45', '-5d']) expect(() => parseWhen('since', bad, NOW), bad).toThrow(/--since: .* is neither/);
  });

  it('throws the code the command asks for, usage by default', () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return isForewarnError(err) ? err.code : 'not coded';
      }
      return 'no error';
    };
    expect(code(() => parseWhen('since', 'soon', NOW))).toBe('FW_ERR_USAGE');
    expect(code(() => parseWhen('until', 'soon', NOW, 'FW_ERR_LABELS_EXPORT'))).toBe('FW_ERR_LABELS_EXPORT');
  });
});
