import { ForewarnError, type ErrorCode } from '../core/errors.js';
import { parseWithUnit } from '../core/schema-node.js';

/**
 * A `--since`/`--until` of central's report commands: an ISO date or date-time, or a duration back from `now`
 * (30d, 12h, 1h30m). A bare number is refused: it would be ambiguous between a date and a duration.
 */
export function parseWhen(option: string, raw: string, now: number, code: ErrorCode = 'FW_ERR_USAGE'): number {
  const text = raw.trim();
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) {
    const ts = Date.parse(text);
    if (Number.isFinite(ts)) return ts;
  } else if (/^\d/.test(text) && !/^\d+(\.\d+)?$/.test(text)) {
    try {
      const ms = parseWithUnit(text, 'ms');
      if (typeof ms === 'number' && Number.isFinite(ms) && ms > 0) return now - ms;
    } catch {
      // reported below
    }
  }
  throw new ForewarnError(code, `--${option}: "${raw}" is neither an ISO date (2026-01-31, 2026-01-31T08:00:00Z) nor a duration back from now (30d, 12h)`);
}
