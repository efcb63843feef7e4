// GPU cost: the daily cost of idle hours, failure downtime and energy (trend), the breakdown by host, fleet group
// or GPU model, the GPUs idle now and the costliest downtime, and the same report as CSV. docs/gpu-cost.md.

import { api } from '../api.js';
import { timeChart } from '../charts.js';
import { fill, h } from '../dom.js';
import { fmtNum, fmtTime } from '../format.js';
import { setQuery } from '../router.js';
import { errorBox, panel, table } from '../widgets.js';

export const title = 'GPU cost';
const DAY = 86_400_000;
const RANGES = { '7d': 7, '30d': 30, '90d': 90 };
const BY = { host: 'Host', group: 'Group', model: 'GPU model' };

const money = (v, currency) => `${v.toFixed(2)} ${currency}`;
const hours = (v) => `${fmtNum(v, 3)} h`;

export function render(root, _params, query) {
  let range = RANGES[query.get('range')] ? query.get('range') : '30d';
  let by = BY[query.get('by')] ? query.get('by') : 'host';
  const trend = h('div', { id: 'gpu-cost-trend' });
  const breakdown = h('div', { class: 'table-wrap', id: 'gpu-cost-breakdown' });
  const idle = h('div', { class: 'table-wrap', id: 'gpu-cost-idle' });
  const downtime = h('div', { class: 'table-wrap', id: 'gpu-cost-downtime' });
  const summary = h('p', { class: 'muted', id: 'gpu-cost-summary' });
  const csv = h('a', { class: 'btn btn-small', id: 'gpu-cost-csv', download: '' }, 'Download CSV');
  const select = (id, label, options, value, onChange) =>
    h(
      'label',
      { class: 'field-inline' },
      `${label} `,
      h(
        'select',
        { id, onchange: (ev) => onChange(ev.target.value) },
        Object.entries(options).map(([k, text]) => h('option', { value: k, selected: k === value ? '' : null }, text)),
      ),
    );
  const toolbar = h(
    'div',
    { class: 'toolbar' },
    select('gpu-cost-range', 'Last', { '7d': '7 days', '30d': '30 days', '90d': '90 days' }, range, (v) => {
      range = v;
      setQuery({ range });
      void load();
    }),
    select('gpu-cost-by', 'By', BY, by, (v) => {
      by = v;
      setQuery({ by });
      void load();
    }),
    h('div', { class: 'toolbar-right' }, csv),
  );
  root.append(
    h('div', { class: 'page-head' }, h('h1', null, 'GPU cost')),
    toolbar,
    summary,
    panel('Daily cost', { id: 'gpu-cost-trend-panel' }, trend),
    panel('Breakdown', { id: 'gpu-cost-breakdown-panel' }, breakdown),
    panel('Idle GPUs', { id: 'gpu-cost-idle-panel' }, idle),
    panel('Costliest downtime', { id: 'gpu-cost-downtime-panel' }, downtime),
  );

  const load = async () => {
    // Whole UTC days up to the end of today.
    const to = Math.ceil(Date.now() / DAY) * DAY;
    const from = to - RANGES[range] * DAY;
    const q = { from, to, by };
    csv.href = `/api/v1/gpu-cost?${new URLSearchParams({ ...q, format: 'csv' })}`;
    try {
      const [r, now] = await Promise.all([api.get('/gpu-cost', q), api.get('/gpu-cost/now')]);
      const c = r.currency;
      fill(
        summary,
        `${fmtTime(r.from)} – ${fmtTime(r.to)}: ${r.fleet.gpus} GPUs, idle ${hours(r.fleet.idleHours)}, down ${hours(r.fleet.downHours)}, `,
        `${fmtNum(r.fleet.energyKwh, 4)} kWh; cost `,
        h('strong', { id: 'gpu-cost-total' }, money(r.fleet.totalCost, c)),
      );
      const point = (d, k) => ({ t: Date.parse(`${d.day}T12:00:00Z`), v: d[k] });
      fill(
        trend,
        r.daily.length
          ? timeChart({
              from: r.from,
              to: r.to,
              series: [
                { name: 'idle', points: r.daily.map((d) => point(d, 'idleCost')) },
                { name: 'downtime', points: r.daily.map((d) => point(d, 'downtimeCost')) },
                { name: 'energy', points: r.daily.map((d) => point(d, 'energyCost')) },
              ],
              unit: ` ${c}`,
              label: `GPU cost per day in ${c}`,
              gapMs: 1.5 * DAY,
            })
          : h('p', { class: 'muted' }, 'No GPU telemetry in this window.'),
      );
      fill(
        breakdown,
        table(
          `GPU cost by ${BY[by]}`,
          [
            { label: BY[by] },
            { label: 'GPUs', cls: 'num' },
            { label: 'Busy', cls: 'num' },
            { label: 'Idle', cls: 'num' },
            { label: 'Down', cls: 'num' },
            { label: 'No data', cls: 'num' },
            { label: 'kWh', cls: 'num' },
            { label: 'Idle cost', cls: 'num' },
            { label: 'Downtime cost', cls: 'num' },
            { label: 'Energy cost', cls: 'num' },
            { label: 'Total', cls: 'num' },
          ],
          r.totals.map((t) => [
            t.key,
            String(t.gpus),
            hours(t.busyHours),
            hours(t.idleHours),
            hours(t.downHours),
            hours(t.gapHours),
            fmtNum(t.energyKwh, 4),
            money(t.idleCost, c),
            money(t.downtimeCost, c),
            money(t.energyCost, c),
            money(t.totalCost, c),
          ]),
          { empty: 'No GPU telemetry in this window' },
        ),
      );
      const gpuLink = (g) => h('a', { href: `/assets/${encodeURIComponent(g.agentId)}/${encodeURIComponent(g.asset)}` }, `${g.agentId} / ${g.asset}`);
      fill(
        idle,
        table(
          'GPUs idle now',
          [{ label: 'GPU' }, { label: 'Model' }, { label: 'Idle since' }, { label: 'Idle', cls: 'num' }, { label: 'Cost so far', cls: 'num' }],
          now.idle.map((g) => [gpuLink(g), g.model, fmtTime(g.idleSince), hours(g.idleHours), money(g.idleCost, c)]),
          { empty: 'No GPU is idle now' },
        ),
      );
      fill(
        downtime,
        table(
          `Costliest downtime over ${Math.round(now.downtimeWindowMs / 3_600_000)} h`,
          [{ label: 'GPU' }, { label: 'Model' }, { label: 'Down', cls: 'num' }, { label: 'Fatal Xids', cls: 'num' }, { label: 'Cost', cls: 'num' }],
          now.downtime.map((g) => [gpuLink(g), g.model, hours(g.downHours), String(g.xids), money(g.downtimeCost, c)]),
          { empty: 'No GPU was down' },
        ),
      );
    } catch (err) {
      fill(summary, errorBox(err));
    }
  };
  void load();
}
