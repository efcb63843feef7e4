// Fleet SLOs: each objective with its indicator over its window, the error budget left and its daily trend, and
// the burn rate of each alert tier (docs/slo.md). `/slo/:name` adds the breakdown per group, agent and asset.

import { api } from '../api.js';
import { timeChart } from '../charts.js';
import { fill, h } from '../dom.js';
import { fmtNum, label } from '../format.js';
import { errorBox, panel, table } from '../widgets.js';

export const title = 'SLOs';

const pct = (v, digits = 3) => (v === null || v === undefined ? '—' : `${fmtNum(v * 100, digits)} %`);
const enc = encodeURIComponent;

/** The budget left as a word for its chip: spent below 0, low under a quarter. */
function budgetState(remaining) {
  if (remaining < 0) return 'alarm';
  if (remaining < 0.25) return 'warning';
  return 'healthy';
}

function budgetChip(remaining) {
  const st = budgetState(remaining);
  return h('span', { class: `chip state-${st}`, 'data-state': st }, h('span', { class: 'chip-dot', 'aria-hidden': 'true' }), `${pct(remaining, 3)} left`);
}

function burnTable(o) {
  return table(
    `Burn rates of ${o.name}`,
    [
      { label: 'Tier' },
      { label: 'Severity' },
      { label: 'Fires at', cls: 'num' },
      { label: 'Long window', cls: 'num' },
      { label: 'Short window', cls: 'num' },
      { label: 'State' },
    ],
    o.burnRates.map((b) =>
      h(
        'tr',
        { 'data-tier': b.tier, 'data-firing': String(b.firing) },
        h('td', null, b.tier),
        h('td', null, h('span', { class: `sev sev-${b.severity}` }, label(b.severity))),
        h('td', { class: 'num' }, `${fmtNum(b.factor, 3)}×`),
        h('td', { class: 'num' }, `${fmtNum(b.longRate, 3)}× / ${b.longWindow}`),
        h('td', { class: 'num' }, `${fmtNum(b.shortRate, 3)}× / ${b.shortWindow}`),
        h('td', null, b.firing ? h('span', { class: 'chip state-alarm', 'data-state': 'alarm' }, 'burning') : h('span', { class: 'muted' }, 'ok')),
      ),
    ),
  );
}

function trendChart(o) {
  const pts = o.trend.map((p) => ({ t: p.ts, v: p.remaining }));
  const from = pts.length ? pts[0].t - 86_400_000 : Date.now() - 86_400_000;
  const to = pts.length ? pts[pts.length - 1].t : Date.now();
  return timeChart({
    series: [{ name: 'budget left', points: pts }],
    from,
    to,
    threshold: { value: 0, label: 'budget spent', worse: 'below' },
    height: 150,
    unit: '',
    label: `Error budget left of ${o.name}, one point per day`,
    emptyText: 'No days counted yet',
  });
}

const fact = (term, ...value) => h('div', null, h('dt', null, term), h('dd', null, ...value));

function objectivePanel(o) {
  return h(
    'section',
    { class: 'panel slo-objective', 'data-slo': o.name, 'aria-labelledby': `slo-${o.name}` },
    h(
      'div',
      { class: 'page-head' },
      h('h2', { id: `slo-${o.name}`, class: 'panel-title' }, h('a', { href: `/slo/${enc(o.name)}` }, o.name)),
      budgetChip(o.errorBudgetRemaining),
    ),
    o.description ? h('p', { class: 'muted' }, o.description) : null,
    h(
      'dl',
      { class: 'facts' },
      fact('Indicator', o.sli, o.thresholdSeconds !== undefined ? ` (≤ ${o.thresholdSeconds} s)` : ''),
      fact('Group', o.group),
      fact('Target', `${pct(o.target, 4)} over ${o.window}`),
      h(
        'div',
        null,
        h('dt', null, 'Now'),
        h(
          'dd',
          { class: 'slo-value', 'data-value': o.value === null ? '' : String(o.value) },
          pct(o.value, 4),
          h('span', { class: 'muted' }, ` (${o.good} good of ${o.total})`),
        ),
      ),
      h(
        'div',
        null,
        h('dt', null, 'Budget left'),
        h('dd', { class: 'slo-budget', 'data-remaining': String(o.errorBudgetRemaining) }, pct(o.errorBudgetRemaining, 3)),
      ),
    ),
    trendChart(o),
    burnTable(o),
  );
}

function breakdown(d) {
  const rows = (list, withAsset) =>
    list.map((r) =>
      h(
        'tr',
        null,
        h('td', null, h('a', { href: `/agents/${enc(r.agentId)}` }, r.agentId)),
        withAsset ? h('td', null, h('a', { href: `/assets/${enc(r.agentId)}/${enc(r.asset)}` }, r.asset)) : null,
        h('td', { class: 'num' }, pct(r.value, 4)),
        h('td', { class: 'num' }, `${r.good} / ${r.total}`),
      ),
    );
  const clockRows = d.clocks.map((c) =>
    h(
      'tr',
      null,
      h('td', null, c.agentId),
      h('td', { class: 'num' }, `${fmtNum(c.estimatedSkewMs / 1000, 3)} s`),
      h('td', { class: 'num' }, `${fmtNum(c.appliedSkewMs / 1000, 3)} s`),
      h('td', { class: 'num' }, String(c.samples)),
    ),
  );
  return [
    panel(
      'Groups',
      { id: 'slo-groups' },
      table(
        'Groups',
        [{ label: 'Group' }, { label: 'Indicator', cls: 'num' }, { label: 'Good / all', cls: 'num' }],
        d.groups.map((g) => [g.group, pct(g.value, 4), `${g.good} / ${g.total}`]),
      ),
    ),
    panel(
      'Agents, worst first',
      { id: 'slo-agents' },
      table('Agents', [{ label: 'Agent' }, { label: 'Indicator', cls: 'num' }, { label: 'Good / all', cls: 'num' }], rows(d.agents, false), {
        empty: 'No events yet.',
      }),
    ),
    d.assets.length
      ? panel(
          'Assets, worst first',
          { id: 'slo-assets' },
          table(
            'Assets',
            [{ label: 'Agent' }, { label: 'Asset' }, { label: 'Indicator', cls: 'num' }, { label: 'Good / all', cls: 'num' }],
            rows(d.assets, true),
          ),
        )
      : null,
    panel(
      'Agent clocks',
      { id: 'slo-clocks' },
      h('p', { class: 'muted small' }, 'Offset ahead of central, estimated from status messages (least delay); latencies are corrected by the applied offset.'),
      table(
        'Agent clocks',
        [{ label: 'Agent' }, { label: 'Estimated', cls: 'num' }, { label: 'Applied', cls: 'num' }, { label: 'Samples', cls: 'num' }],
        clockRows,
        {
          empty: 'No status messages yet.',
        },
      ),
    ),
  ];
}

export function render(root, params) {
  const body = h('div', { id: 'slo-body' }, h('p', { class: 'loading' }, 'Loading…'));
  root.append(
    h(
      'div',
      { class: 'page-head' },
      h('h1', null, params.name ? `SLO ${params.name}` : 'Service-level objectives'),
      params.name ? h('a', { href: '/slo' }, 'All SLOs') : null,
    ),
    body,
  );
  const load = async () => {
    try {
      if (params.name) {
        const d = await api.get(`/slo/${enc(params.name)}`);
        fill(body, objectivePanel(d), ...breakdown(d));
        return;
      }
      const r = await api.get('/slo');
      fill(
        body,
        r.objectives.length
          ? r.objectives.map(objectivePanel)
          : h('p', { class: 'notice' }, 'No objectives configured: add them under slo.objectives in central’s --config file (docs/slo.md).'),
      );
    } catch (err) {
      fill(body, errorBox(err));
    }
  };
  void load();
}
