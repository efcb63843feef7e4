// Formatting of times, numbers and states, one place for the whole console.

const dateTime = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit' });
const dateTimeSec = new Intl.DateTimeFormat(undefined, { month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dayOnly = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: '2-digit' });

export function fmtTime(ts) {
  return ts === null || ts === undefined ? '—' : dateTime.format(new Date(ts));
}

export function fmtTimeSec(ts) {
  return ts === null || ts === undefined ? '—' : dateTimeSec.format(new Date(ts));
}

export function fmtDay(ts) {
  return ts === null || ts === undefined ? '—' : dayOnly.format(new Date(ts));
}

/** "42 s ago", "3 min ago", "5 h ago", "2 d ago"; future times read "in …". */
export function fmtAgo(ts, now = Date.now()) {
  if (ts === null || ts === undefined) return 'never';
  const d = now - ts;
  const a = Math.abs(d);
  let text;
  if (a < 45_000) text = `${Math.round(a / 1000)} s`;
  else if (a < 3_600_000) text = `${Math.round(a / 60_000)} min`;
  else if (a < 172_800_000) text = `${Math.round(a / 3_600_000)} h`;
  else text = `${Math.round(a / 86_400_000)} d`;
  return d >= 0 ? `${text} ago` : `in ${text}`;
}

/** A number with at most `digits` significant digits, without a trailing exponent for ordinary values. */
export function fmtNum(v, digits = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(digits - 1);
  if (a >= 10 ** digits) return Math.round(v).toLocaleString();
  return Number(v.toPrecision(digits)).toString();
}

export function fmtCount(n) {
  return (n ?? 0).toLocaleString();
}

/** Every state an asset can be in, worst first as the overview lists them. */
export const ASSET_STATES = ['alarm', 'warning', 'watch', 'acknowledged', 'maintenance', 'healthy'];

export const STATE_LABELS = {
  healthy: 'Healthy',
  watch: 'Watch',
  warning: 'Warning',
  alarm: 'Alarm',
  acknowledged: 'Acknowledged',
  maintenance: 'In maintenance',
  online: 'Online',
  offline: 'Offline',
  unknown: 'Unknown',
  active: 'Active',
  resolved: 'Resolved',
  critical: 'Critical',
  info: 'Info',
  false_alarm: 'False alarm',
  viewer: 'Viewer',
  operator: 'Operator',
  admin: 'Admin',
};

export const SEVERITIES = ['critical', 'warning', 'info'];

export function label(state) {
  return STATE_LABELS[state] ?? String(state);
}
