// One asset: its state, the risk (or remaining-useful-life) trend of each model with the threshold, the drivers
// of the latest scores and how they moved, telemetry of the driving signals (and any other), data quality and
// drift, and the alert timeline with its workflow. Ranges 1 h (raw points) and 24 h / 7 d / 30 d (hourly
// rollups). Live: a fleet event refetches the state, the latest scores and the alerts.

import { ApiError, api, assetPath } from '../api.js';
import { timeChart } from '../charts.js';
import { fill, h, s } from '../dom.js';
import { fmtDay, fmtNum, fmtTime } from '../format.js';
import { alertList } from '../alert-view.js';
import { liveLoader } from '../live.js';
import { setQuery } from '../router.js';
import { errorBox, panel, severityBadge, stateChip, table, when } from '../widgets.js';

export const title = 'Asset';

const HOUR = 3_600_000;
const RANGES = [
  { id: '1h', label: '1 h', ms: HOUR, resolution: 'raw' },
  { id: '24h', label: '24 h', ms: 24 * HOUR, resolution: 'hour' },
  { id: '7d', label: '7 d', ms: 7 * 24 * HOUR, resolution: 'hour' },
  { id: '30d', label: '30 d', ms: 30 * 24 * HOUR, resolution: 'hour' },
];
const MAX_DEFAULT_SIGNALS = 4;

/** Series points for the chart: raw `{ts, score|value}` or hourly `{ts, mean, min, max, lastTs}`. */
function toPoints(points, field) {
  return points.map((p) =>
    p.mean !== undefined
      ? // An hour's point sits mid-hour, never after its last sample (the current hour is still filling).
        { t: Math.min(p.ts + HOUR / 2, p.lastTs ?? p.ts + HOUR / 2), v: p.mean, lo: p.min, hi: p.max }
      : { t: p.ts, v: p[field] },
  );
}

/**
 * When a remaining useful life runs out: the least-squares slope of the RUL over the shown points (model units
 * per ms) projects the latest RUL, and its interval's bounds, onto the calendar. Null when the RUL is not falling.
 */
export function projectRul(points, latest) {
  const pts = points.filter((p) => Number.isFinite(p.v));
  if (pts.length < 3) return null;
  const n = pts.length;
  const mt = pts.reduce((a, p) => a + p.t, 0) / n;
  const mv = pts.reduce((a, p) => a + p.v, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of pts) {
    num += (p.t - mt) * (p.v - mv);
    den += (p.t - mt) ** 2;
  }
  const slope = den > 0 ? num / den : 0;
  if (!(slope < 0)) return null;
  const at = (units) => latest.ts + units / -slope;
  const iv = latest.interval;
  return { date: at(latest.score), lower: iv ? at(iv.lower) : null, upper: iv ? at(iv.upper) : null, level: iv ? iv.level : null, perDay: -slope * 86_400_000 };
}

function driverTrend(history, feature) {
  // A 60×16 sparkline of one driver's contribution over the records in `history` (oldest first).
  const vals = history.map((r) => (r.drivers.find((d) => d.feature === feature) ?? {}).contribution).map((v) => (Number.isFinite(v) ? v : null));
  const known = vals.filter((v) => v !== null);
  if (known.length < 2) return null;
  const lo = Math.min(0, ...known);
  const hi = Math.max(...known, lo + 1e-9);
  const pts = vals
    .map((v, i) => (v === null ? null : `${((i / (vals.length - 1)) * 58 + 1).toFixed(1)},${(15 - ((v - lo) / (hi - lo)) * 14).toFixed(1)}`))
    .filter(Boolean);
  return s('svg', { class: 'spark', width: 60, height: 16, viewBox: '0 0 60 16', 'aria-hidden': 'true' }, s('polyline', { points: pts.join(' ') }));
}

function driversTable(model, history, fallbackDrivers) {
  const latest = history.length ? history[history.length - 1] : { ts: null, drivers: fallbackDrivers ?? [] };
  const first = history.length > 1 ? history[0] : null;
  if (!latest.drivers || !latest.drivers.length) return h('p', { class: 'muted' }, `${model}: no drivers reported.`);
  const rows = latest.drivers.map((d) => {
    const before = first ? first.drivers.find((x) => x.feature === d.feature) : null;
    const delta = before && Number.isFinite(before.contribution) ? d.contribution - before.contribution : null;
    const dir = delta === null ? '' : delta > 1e-9 ? 'up' : delta < -1e-9 ? 'down' : 'flat';
    return [
      h('span', { class: 'feature' }, d.feature),
      fmtNum(d.value, 4),
      h('span', { class: d.contribution > 0 ? 'contrib pos' : 'contrib' }, fmtNum(d.contribution, 3)),
      delta === null
        ? h('span', { class: 'muted' }, first ? 'new' : '—')
        : h(
            'span',
            { class: `move move-${dir}`, title: `from ${fmtNum(before.contribution, 3)} at ${fmtTime(first.ts)}` },
            `${dir === 'up' ? '▲' : dir === 'down' ? '▼' : '■'} ${fmtNum(delta, 2)}`,
          ),
      driverTrend(history, d.feature),
    ];
  });
  return h(
    'div',
    { class: 'drivers-block', 'data-model': model },
    h(
      'h3',
      null,
      model,
      ' ',
      h(
        'span',
        { class: 'muted small' },
        latest.ts ? `latest score ${fmtTime(latest.ts)}${first ? `, moved since ${fmtTime(first.ts)} (${history.length} records)` : ''}` : '',
      ),
    ),
    table(
      `Drivers of ${model}`,
      [{ label: 'Input' }, { label: 'Value', cls: 'num' }, { label: 'Contribution', cls: 'num' }, { label: 'Moved', cls: 'num' }, { label: 'Trend' }],
      rows,
      { cls: 'compact' },
    ),
  );
}

export function render(root, params, query) {
  const { agent, asset } = params;
  document.title = `${asset} · ${agent} · Forewarn`;
  let range = RANGES.find((r) => r.id === query.get('range')) ?? RANGES[1];
  const extra = new Set((query.get('metrics') ?? '').split(',').filter(Boolean));
  let detail = null;
  let health = null;
  let healthError = null;
  let stopped = false;

  const head = h('div', { class: 'asset-head', id: 'asset-head' });
  const rangeBar = h('div', { class: 'range-buttons', role: 'group', 'aria-label': 'Time range' });
  const rangeNote = h('span', { class: 'muted small', id: 'range-note' });
  let chartsDrawnFor = null;
  const alertsBox = h('div', { id: 'asset-alerts' });
  const riskBox = h('div', { class: 'model-grid', id: 'risk-charts' });
  const driversBox = h('div', { id: 'asset-drivers' });
  const teleBox = h('div', { class: 'tele-grid', id: 'telemetry-charts' });
  const qualityBox = h('div', { id: 'asset-quality' });
  const timelineBox = h('div', { id: 'alert-timeline' });
  const metricInput = h('input', {
    id: 'metric-picker',
    list: 'metric-options',
    placeholder: 'metric name, e.g. torque',
    'aria-label': 'Add a telemetry chart for a metric',
    autocomplete: 'off',
  });
  const metricOptions = h('datalist', { id: 'metric-options' });
  const picker = h(
    'form',
    {
      class: 'metric-picker',
      onsubmit: (ev) => {
        ev.preventDefault();
        const m = metricInput.value.trim();
        if (!m) return;
        extra.add(m);
        metricInput.value = '';
        setQuery({ metrics: [...extra].join(',') });
        void drawTelemetry();
      },
    },
    h('label', { for: 'metric-picker' }, 'Chart another metric'),
    metricInput,
    metricOptions,
    h('button', { type: 'submit', class: 'btn btn-small' }, 'Add'),
  );

  const drawRange = () =>
    fill(
      rangeBar,
      RANGES.map((r) =>
        h(
          'button',
          {
            type: 'button',
            class: 'btn btn-small range-btn',
            'aria-pressed': r.id === range.id ? 'true' : 'false',
            'data-range': r.id,
            title: r.resolution === 'raw' ? 'Every record' : 'Hourly rollups: mean, with the hour’s minimum and maximum as a band',
            onclick: () => {
              range = r;
              chartsDrawnFor = r.id;
              setQuery({ range: r.id === '24h' ? '' : r.id });
              drawRange();
              void drawCharts();
            },
          },
          r.label,
        ),
      ),
    );
  drawRange();

  root.append(
    h(
      'nav',
      { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: '/' }, 'Overview'),
      ' › ',
      h('a', { href: `/agents/${encodeURIComponent(agent)}` }, agent),
      ' › ',
      h('span', { 'aria-current': 'page' }, asset),
    ),
    head,
    alertsBox,
    panel('Risk', { id: 'risk-panel' }, h('div', { class: 'toolbar' }, rangeBar, rangeNote), riskBox),
    h('div', { class: 'two-col' }, panel('Drivers', { id: 'drivers-panel' }, driversBox), panel('Data quality and drift', { id: 'quality-panel' }, qualityBox)),
    panel('Telemetry', { id: 'telemetry-panel' }, picker, teleBox),
    panel('Alert timeline', { id: 'timeline-panel' }, timelineBox),
  );

  const drawHead = () => {
    const d = detail;
    fill(
      head,
      h('h1', null, asset, ' ', stateChip(d.state)),
      h(
        'dl',
        { class: 'facts' },
        h(
          'div',
          null,
          h('dt', null, 'Risk'),
          h('dd', { title: 'Highest risk of its models relative to their thresholds (1 = at the threshold)' }, `${fmtNum(d.risk, 2)}× threshold`),
        ),
        h('div', null, h('dt', null, 'Agent'), h('dd', null, h('a', { href: `/agents/${encodeURIComponent(agent)}` }, agent))),
        h('div', null, h('dt', null, 'Last reading'), h('dd', null, when(d.lastReadingTs))),
        h('div', null, h('dt', null, 'First seen'), h('dd', null, fmtDay(d.firstSeenTs))),
        h(
          'div',
          null,
          h('dt', null, 'Active alerts'),
          h('dd', null, Object.keys(d.activeAlerts).length ? Object.entries(d.activeAlerts).map(([sv, n]) => severityBadge(sv, n)) : 'none'),
        ),
      ),
    );
  };

  const refreshAll = () => void loader.run();

  const drawAlerts = async () => {
    const r = await api.get('/alerts', { agent, asset, limit: 100 });
    if (stopped) return;
    const active = r.alerts.filter((a) => a.state === 'active' || (a.workflow && (a.workflow.state === 'acknowledged' || a.workflow.state === 'maintenance')));
    const open = active.filter((a) => !(a.workflow && (a.workflow.state === 'resolved' || a.workflow.state === 'false_alarm')));
    fill(alertsBox, open.length ? panel('Active alerts', { id: 'active-alerts', class: 'panel panel-alerts' }, alertList(open, refreshAll)) : null);
    // The timeline offers actions only on alerts the panel above does not show (cleared by the agent, unlabelled).
    const shown = new Set(open.map((a) => a.alertKey));
    fill(timelineBox, alertList(r.alerts, refreshAll, { empty: 'No alert on this asset so far.', noActions: shown }));
  };

  // Charts depend on the range; the latest detail gives the models, their thresholds and kinds.
  const drawCharts = async () => {
    if (!detail) return;
    const to = Date.now();
    const from = to - range.ms;
    fill(rangeNote, range.resolution === 'raw' ? 'every record' : 'hourly rollups (mean; band: min–max)');
    const models = detail.models;
    if (!models.length) {
      fill(riskBox, h('p', { class: 'muted' }, 'No risk model scores this asset.'));
    } else {
      const series = await Promise.all(
        models.map(async (m) => {
          try {
            const r = await api.get(assetPath(agent, asset, 'risk'), { model: m.model, from, to, resolution: range.resolution });
            // A remaining life is projected from at least a day of hourly means: an hour of raw scores is mostly noise.
            let basis = r;
            if (m.kind === 'rul' && range.ms < 24 * HOUR)
              basis = await api.get(assetPath(agent, asset, 'risk'), { model: m.model, from: to - 24 * HOUR, to, resolution: 'hour' });
            return { m, r, basis };
          } catch (err) {
            return { m, err };
          }
        }),
      );
      if (stopped) return;
      fill(
        riskBox,
        series.map(({ m, r, basis, err }) => modelCard(m, r, basis, err, from, to)),
      );
    }
    await drawTelemetry();
  };

  const latestHistoryEntry = (model) => {
    const list = health && Array.isArray(health.drivers) ? health.drivers.filter((d) => d.model === model) : [];
    return list.length ? list[list.length - 1] : null;
  };

  const modelCard = (m, r, basis, err, from, to) => {
    const rul = m.kind === 'rul';
    const pts = r ? toPoints(r.points, 'score') : [];
    const latestEntry = latestHistoryEntry(m.model);
    const interval = m.interval ?? (latestEntry && latestEntry.interval) ?? null;
    let projection = null;
    if (rul && basis) projection = projectRul(toPoints(basis.points, 'score'), { ts: m.ts, score: m.score, interval });
    const unit = rul ? 'units' : '';
    return h(
      'article',
      { class: `model-card ${m.atRisk ? 'at-risk' : ''}`, 'data-model': m.model },
      h(
        'header',
        { class: 'model-head' },
        h('h3', null, m.model, ' ', h('span', { class: 'muted small' }, `${m.kind} · v${m.modelVersion ?? '?'}`)),
        h(
          'div',
          { class: 'model-latest' },
          h('span', { class: m.atRisk ? 'big-score at-risk' : 'big-score' }, fmtNum(m.score, 3)),
          m.threshold !== null ? h('span', { class: 'muted' }, ` threshold ${fmtNum(m.threshold, 3)}`) : null,
          m.atRisk ? h('span', { class: 'sev sev-critical' }, 'at risk') : null,
          h('span', { class: 'muted small' }, ' · ', when(m.ts)),
        ),
      ),
      rul
        ? h(
            'p',
            { class: 'rul-projection', 'data-projection': projection ? 'yes' : 'no' },
            interval
              ? `Remaining life ${fmtNum(m.score, 3)} (${Math.round(interval.level * 100)} % interval ${fmtNum(interval.lower, 3)}–${fmtNum(interval.upper, 3)}). `
              : `Remaining life ${fmtNum(m.score, 3)}. `,
            projection
              ? [
                  'Projected end of life ',
                  h('strong', null, fmtTime(projection.date)),
                  projection.lower !== null ? ` (${Math.round(projection.level * 100)} %: ${fmtTime(projection.lower)} – ${fmtTime(projection.upper)})` : '',
                  `, from the trend of ${range.ms < 24 * HOUR ? 'the last 24 h' : `the last ${range.label}`} (${fmtNum(projection.perDay, 3)} per day).`,
                ]
              : 'No projected date: the remaining life is not falling.',
          )
        : null,
      err
        ? errorBox(err)
        : timeChart({
            series: [{ name: m.model, points: pts }],
            from,
            to,
            threshold: m.threshold !== null ? { value: m.threshold, label: 'threshold', worse: rul ? 'below' : 'above' } : null,
            yDomain: m.kind === 'probability' ? [0, 1] : null,
            zeroBased: rul,
            unit,
            label: `${m.model} ${rul ? 'remaining useful life' : 'risk'} over the last ${range.label}${m.threshold !== null ? `, threshold ${m.threshold}` : ''}`,
            emptyText: `No ${m.model} scores in the last ${range.label}`,
          }),
      r && r.truncated ? h('p', { class: 'muted small' }, `Only the first ${r.points.length} points of this range are drawn.`) : null,
    );
  };

  const signals = () => {
    const fromDrivers = [];
    for (const m of detail ? detail.models : []) {
      const entry = latestHistoryEntry(m.model);
      for (const d of (entry ? entry.drivers : m.drivers) ?? []) if (d && d.feature && !fromDrivers.includes(d.feature)) fromDrivers.push(d.feature);
    }
    return fromDrivers;
  };

  const drawTelemetry = async () => {
    const driving = signals().slice(0, MAX_DEFAULT_SIGNALS);
    const metrics = [...driving, ...[...extra].filter((m) => !driving.includes(m))];
    const known = new Set([...signals(), ...(health && Array.isArray(health.quality) ? health.quality.map((q) => q.metric) : [])]);
    fill(
      metricOptions,
      [...known].map((m) => h('option', { value: m })),
    );
    if (!metrics.length) {
      fill(teleBox, h('p', { class: 'muted' }, 'No driving signals known yet; add a metric to chart it.'));
      return;
    }
    const to = Date.now();
    const from = to - range.ms;
    const charts = await Promise.all(
      metrics.map(async (metric) => {
        try {
          let r = await api.get(assetPath(agent, asset, 'telemetry'), { metric, from, to, resolution: range.resolution });
          let note = range.resolution === 'hour' ? 'hourly rollups' : 'every reading';
          // A metric without hourly rollups (central rolls up only the metrics it is told to): its raw readings.
          if (range.resolution === 'hour' && !r.points.length) {
            r = await api.get(assetPath(agent, asset, 'telemetry'), { metric, from, to, resolution: 'raw' });
            note = r.truncated ? 'raw readings (not rolled up; the first 5,000)' : 'raw readings (not rolled up)';
          }
          return { metric, r, note, driving: driving.includes(metric) };
        } catch (err) {
          return { metric, err, driving: driving.includes(metric) };
        }
      }),
    );
    if (stopped) return;
    fill(
      teleBox,
      charts.map(({ metric, r, err, note, driving: drives }) =>
        h(
          'article',
          { class: 'tele-card', 'data-metric': metric },
          h(
            'header',
            { class: 'model-head' },
            h('h3', null, metric, ' ', h('span', { class: 'muted small' }, drives ? 'drives the risk' : 'chosen')),
            drives
              ? null
              : h(
                  'button',
                  {
                    type: 'button',
                    class: 'btn btn-small btn-quiet',
                    'aria-label': `Remove the chart of ${metric}`,
                    onclick: () => {
                      extra.delete(metric);
                      setQuery({ metrics: [...extra].join(',') });
                      void drawTelemetry();
                    },
                  },
                  '✕',
                ),
          ),
          err
            ? errorBox(err)
            : timeChart({
                series: [{ name: metric, points: toPoints(r.points, 'value'), cls: 'series-tele' }],
                from,
                to,
                height: 150,
                label: `${metric} over the last ${range.label}`,
                emptyText: `No ${metric} readings in the last ${range.label}`,
              }),
          note && !err ? h('p', { class: 'muted small' }, note) : null,
        ),
      ),
    );
  };

  const drawDriversAndQuality = () => {
    const models = detail ? detail.models : [];
    const hist = (model) =>
      health && Array.isArray(health.drivers) ? health.drivers.filter((d) => d.model === model && Array.isArray(d.drivers)).sort((a, b) => a.ts - b.ts) : [];
    fill(
      driversBox,
      models.length
        ? models.map((m) => driversTable(m.model, hist(m.model), Array.isArray(m.drivers) ? m.drivers : []))
        : h('p', { class: 'muted' }, 'No model scores this asset.'),
      healthError ? h('p', { class: 'muted small' }, 'How the drivers moved is not available: ', healthError) : null,
    );
    if (!health) {
      fill(qualityBox, h('p', { class: 'muted' }, healthError ? `Data quality and drift are not available: ${healthError}` : 'Loading…'));
      return;
    }
    const quality = Array.isArray(health.quality) ? health.quality : [];
    const drift = Array.isArray(health.drift) ? health.drift : [];
    fill(
      qualityBox,
      h('h3', null, 'Drift'),
      drift.length
        ? table(
            'Drift per model',
            [{ label: 'Model' }, { label: 'State' }, { label: 'PSI', cls: 'num' }, { label: 'Since' }],
            drift.map((d) => [
              d.model,
              stateChip(d.state === 'drift' ? 'warning' : d.state === 'watch' ? 'watch' : 'healthy', d.state),
              fmtNum(d.psi ?? d.driftPsi, 3),
              when(d.ts ?? d.sinceTs ?? null),
            ]),
            { cls: 'compact' },
          )
        : h('p', { class: 'muted' }, 'No drift reported for this asset’s models.'),
      h('h3', null, 'Data-quality flags'),
      quality.length
        ? table(
            'Data-quality flags',
            [{ label: 'When' }, { label: 'Metric' }, { label: 'Issue' }, { label: 'Detail' }],
            quality
              .slice(0, 50)
              .map((q) => [
                when(q.ts),
                q.metric,
                h('span', { class: 'sev sev-info' }, q.issue),
                q.detail === undefined || q.detail === null ? '' : typeof q.detail === 'object' ? JSON.stringify(q.detail) : String(q.detail),
              ]),
            { cls: 'compact' },
          )
        : h('p', { class: 'muted' }, 'No data-quality flags in the records central holds.'),
    );
  };

  const load = async () => {
    try {
      detail = await api.get(assetPath(agent, asset));
    } catch (err) {
      if (stopped) return;
      fill(
        head,
        h('h1', null, asset),
        errorBox(err instanceof ApiError && err.status === 404 ? new Error(`Central has not heard of ${agent} / ${asset}.`) : err),
      );
      return;
    }
    if (stopped) return;
    drawHead();
    const [hr] = await Promise.allSettled([api.get(assetPath(agent, asset, 'health')), drawAlerts()]);
    if (stopped) return;
    if (hr.status === 'fulfilled') {
      health = hr.value;
      healthError = null;
    } else {
      healthError = hr.reason && hr.reason.status === 404 ? 'this central has no asset health route yet' : hr.reason.message;
    }
    drawDriversAndQuality();
    // The charts are drawn once per range, and on live updates at most every 5 s (a fleet event can come every
    // 2 s; a chart redrawn that often only flickers).
    if (chartsDrawnFor !== range.id) {
      chartsDrawnFor = range.id;
      await drawCharts();
    } else redrawSoon();
  };
  let redrawTimer = null;
  const redrawSoon = () => {
    redrawTimer ??= setTimeout(() => {
      redrawTimer = null;
      if (!stopped) void drawCharts();
    }, 5_000);
  };
  const loader = liveLoader(load);
  void loader.run();
  return () => {
    stopped = true;
    clearTimeout(redrawTimer);
    loader.stop();
  };
}
