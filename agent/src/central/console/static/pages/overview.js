// The fleet at a glance: counts, the assets sorted by risk (filter by state, search, pages) and the agents.
// Follows the live stream: each `fleet` event refetches what is on screen, without a reload.

import { api, assetPath } from '../api.js';
import { riskBar } from '../charts.js';
import { debounce, fill, h } from '../dom.js';
import { ASSET_STATES, SEVERITIES, fmtCount, fmtNum, fmtTimeSec, label } from '../format.js';
import { liveLoader } from '../live.js';
import { setQuery } from '../router.js';
import { Pager, errorBox, panel, severityBadge, stateChip, table, when } from '../widgets.js';

export const title = 'Fleet overview';
const PAGE = 50;

function summaryCards(summary, selected, toggle) {
  const a = summary.agents;
  const card = (key, title, value, cls, attrs = {}) =>
    h(
      attrs.onclick ? 'button' : 'div',
      { class: ['stat', cls], 'data-stat': key, ...attrs },
      h('span', { class: 'stat-value' }, fmtCount(value)),
      h('span', { class: 'stat-label' }, title),
    );
  return [
    h(
      'div',
      { class: 'stat-group', role: 'group', 'aria-label': 'Agents' },
      h('span', { class: 'stat-group-title' }, 'Agents'),
      card('agents-online', 'online', a.online, 'state-online'),
      card('agents-offline', 'offline', a.offline, a.offline ? 'state-offline' : 'state-zero'),
      a.unknown ? card('agents-unknown', 'unknown', a.unknown, 'state-unknown') : null,
    ),
    h(
      'div',
      { class: 'stat-group', role: 'group', 'aria-label': 'Assets by state (select to filter)' },
      h('span', { class: 'stat-group-title' }, `Assets · ${fmtCount(summary.assets.total)}`),
      ASSET_STATES.map((st) =>
        card(`assets-${st}`, label(st).toLowerCase(), summary.assets[st] ?? 0, [`state-${st}`, !summary.assets[st] && 'state-zero'], {
          type: 'button',
          'aria-pressed': selected.has(st) ? 'true' : 'false',
          title: `Show only ${label(st).toLowerCase()} assets`,
          onclick: () => toggle(st),
        }),
      ),
    ),
    h(
      'div',
      { class: 'stat-group', role: 'group', 'aria-label': 'Active alerts by severity' },
      h('span', { class: 'stat-group-title' }, 'Active alerts'),
      SEVERITIES.map((sv) =>
        card(`alerts-${sv}`, label(sv).toLowerCase(), summary.activeAlerts.bySeverity[sv] ?? 0, [
          `sev-card-${sv}`,
          !summary.activeAlerts.bySeverity[sv] && 'state-zero',
        ]),
      ),
    ),
  ];
}

function topModel(a) {
  if (!a.models.length) return h('span', { class: 'muted' }, 'no model');
  const m = [...a.models].sort((x, y) => y.relativeRisk - x.relativeRisk)[0];
  return h(
    'span',
    { class: 'model-cell', title: `${m.model} (${m.kind}): score ${m.score}${m.threshold !== null ? `, threshold ${m.threshold}` : ''}` },
    h('span', { class: 'model-name' }, m.model),
    ' ',
    h('span', { class: m.atRisk ? 'score at-risk' : 'score' }, fmtNum(m.score)),
    m.threshold !== null ? h('span', { class: 'muted' }, ` / ${fmtNum(m.threshold)}`) : null,
  );
}

function alertCell(counts) {
  const parts = SEVERITIES.filter((sv) => counts[sv]).map((sv) => severityBadge(sv, counts[sv]));
  return parts.length ? parts : h('span', { class: 'muted' }, '—');
}

function backlog(agent) {
  const streams = Object.entries(agent.streams ?? {});
  const missing = streams.reduce((n, [, st]) => n + (st.missing ?? 0), 0);
  const detail = streams.map(([name, st]) => `${name}: ${st.missing ?? 0} missing in ${st.gaps ?? 0} gaps, highest seq ${st.highestSeq ?? '—'}`).join('\n');
  return h(
    'span',
    { class: missing ? 'backlog has-backlog' : 'backlog', title: detail || 'no streams yet' },
    missing ? `${fmtCount(missing)} missing` : 'none',
  );
}

export function render(root, _params, query) {
  const selected = new Set((query.get('state') ?? '').split(',').filter((s) => ASSET_STATES.includes(s)));
  let search = query.get('q') ?? '';
  let sort = query.get('sort') === 'name' ? 'name' : 'risk';
  let agentState = query.get('agents') ?? '';
  let summary = null;

  const stats = h('div', { class: 'stats', id: 'fleet-stats', 'aria-live': 'off' });
  const assetsBody = h('div', { class: 'table-wrap', id: 'assets-table' });
  const agentsBody = h('div', { class: 'table-wrap', id: 'agents-table' });
  const assetPager = new Pager(() => void loader.run());
  const agentPager = new Pager(() => void loader.run());
  const updated = h('span', { class: 'muted updated', id: 'overview-updated' });

  const chips = h('div', { class: 'chips', role: 'group', 'aria-label': 'Filter by state' });
  const drawChips = () =>
    fill(
      chips,
      ASSET_STATES.map((st) =>
        h(
          'button',
          {
            type: 'button',
            class: `chip chip-toggle state-${st}`,
            'aria-pressed': selected.has(st) ? 'true' : 'false',
            'data-filter': st,
            onclick: () => toggle(st),
          },
          h('span', { class: 'chip-dot', 'aria-hidden': 'true' }),
          label(st),
        ),
      ),
      selected.size ? h('button', { type: 'button', class: 'btn btn-small btn-quiet', onclick: () => (selected.clear(), changed()) }, 'Clear') : null,
    );
  const changed = () => {
    setQuery({ state: [...selected].join(','), q: search, sort: sort === 'risk' ? '' : sort, agents: agentState });
    assetPager.reset();
    drawChips();
    if (summary) fill(stats, summaryCards(summary, selected, toggle));
    void loader.run();
  };
  const toggle = (st) => {
    if (selected.has(st)) selected.delete(st);
    else selected.add(st);
    changed();
  };
  const searchBox = h('input', {
    type: 'search',
    id: 'asset-search',
    placeholder: 'Search asset or agent',
    value: search,
    'aria-label': 'Search assets by asset or agent name',
    oninput: debounce((ev) => {
      search = ev.target.value.trim();
      changed();
    }, 250),
  });
  const sortSelect = h(
    'select',
    {
      id: 'asset-sort',
      'aria-label': 'Sort assets',
      onchange: (ev) => {
        sort = ev.target.value;
        changed();
      },
    },
    h('option', { value: 'risk', selected: sort === 'risk' }, 'Highest risk first'),
    h('option', { value: 'name', selected: sort === 'name' }, 'By agent and asset name'),
  );
  const agentFilter = h(
    'select',
    {
      id: 'agent-state',
      'aria-label': 'Show agents',
      onchange: (ev) => {
        agentState = ev.target.value;
        agentPager.reset();
        changed();
      },
    },
    h('option', { value: '', selected: agentState === '' }, 'All agents'),
    h('option', { value: 'offline', selected: agentState === 'offline' }, 'Offline only'),
    h('option', { value: 'online', selected: agentState === 'online' }, 'Online only'),
  );
  drawChips();

  root.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Fleet overview'), updated),
    stats,
    panel(
      'Assets',
      { id: 'assets-panel' },
      h('div', { class: 'toolbar' }, chips, h('div', { class: 'toolbar-right' }, searchBox, sortSelect)),
      assetsBody,
      assetPager.el,
    ),
    panel('Agents', { id: 'agents-panel' }, h('div', { class: 'toolbar' }, h('div', { class: 'toolbar-right' }, agentFilter)), agentsBody, agentPager.el),
  );

  const load = async () => {
    const [fleet, assets, agents] = await Promise.allSettled([
      api.get('/fleet'),
      api.get('/assets', { sort, state: [...selected].join(','), q: search, limit: PAGE, cursor: assetPager.cursor }),
      api.get('/agents', { state: agentState, limit: PAGE, cursor: agentPager.cursor }),
    ]);
    if (fleet.status === 'fulfilled') {
      summary = fleet.value;
      fill(stats, summaryCards(summary, selected, toggle));
    } else fill(stats, errorBox(fleet.reason));
    if (assets.status === 'fulfilled') {
      const r = assets.value;
      const rows = r.assets.map((a) =>
        h(
          'tr',
          { 'data-asset': `${a.agentId}/${a.asset}`, 'data-state': a.state },
          h('td', null, stateChip(a.state)),
          h('td', null, h('a', { href: assetPath(a.agentId, a.asset), class: 'asset-link' }, a.asset)),
          h('td', null, h('a', { href: `/agents/${encodeURIComponent(a.agentId)}`, class: 'agent-link' }, a.agentId)),
          h(
            'td',
            { class: 'num' },
            h(
              'span',
              { class: 'risk-cell', title: 'Highest risk of its models relative to their thresholds (1 = at the threshold)' },
              riskBar(a.risk),
              `${fmtNum(a.risk, 2)}×`,
            ),
          ),
          h('td', null, topModel(a)),
          h('td', null, alertCell(a.activeAlerts)),
          h('td', null, when(a.lastReadingTs ?? a.lastSeenTs)),
        ),
      );
      fill(
        assetsBody,
        table(
          'Assets',
          [
            { label: 'State' },
            { label: 'Asset' },
            { label: 'Agent' },
            { label: 'Risk', cls: 'num' },
            { label: 'Top model: score / threshold' },
            { label: 'Active alerts' },
            { label: 'Last reading' },
          ],
          rows,
          { empty: selected.size || search ? 'No asset matches these filters.' : 'No assets yet: central has not received any record.' },
        ),
      );
      const first = (assetPager.stack.length - 1) * PAGE;
      assetPager.update(r.nextCursor, r.total ? `${fmtCount(first + 1)}–${fmtCount(first + r.assets.length)} of ${fmtCount(r.total)}` : '0 assets');
    } else fill(assetsBody, errorBox(assets.reason));
    if (agents.status === 'fulfilled') {
      const r = agents.value;
      fill(
        agentsBody,
        table(
          'Agents',
          [{ label: 'State' }, { label: 'Agent' }, { label: 'Last seen' }, { label: 'Version' }, { label: 'Backlog (missing records)' }],
          r.agents.map((a) =>
            h(
              'tr',
              { 'data-agent': a.agentId, 'data-state': a.state },
              h('td', null, stateChip(a.state)),
              h('td', null, h('a', { href: `/agents/${encodeURIComponent(a.agentId)}` }, a.agentId)),
              h('td', null, when(a.lastSeenTs)),
              h('td', null, a.version ?? h('span', { class: 'muted' }, '—')),
              h('td', null, backlog(a)),
            ),
          ),
          { empty: 'No agents yet.' },
        ),
      );
      agentPager.update(r.nextCursor);
    } else fill(agentsBody, errorBox(agents.reason));
    fill(updated, `Updated ${fmtTimeSec(Date.now())}`);
  };
  const loader = liveLoader(load);
  void loader.run();
  return () => loader.stop();
}
