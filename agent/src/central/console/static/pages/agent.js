// One agent: its state, version and the ledger's bookkeeping per stream, its assets and its alerts.

import { api, assetPath } from '../api.js';
import { riskBar } from '../charts.js';
import { fill, h } from '../dom.js';
import { fmtCount, fmtNum, fmtTime } from '../format.js';
import { alertList } from '../alert-view.js';
import { liveLoader } from '../live.js';
import { errorBox, panel, stateChip, table, when } from '../widgets.js';

export const title = 'Agent';

export function render(root, params) {
  const { agent } = params;
  document.title = `${agent} · Forewarn`;
  const head = h('div', { class: 'asset-head' });
  const streams = h('div', { class: 'table-wrap' });
  const assets = h('div', { class: 'table-wrap' });
  const alerts = h('div');
  root.append(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '/' }, 'Overview'), ' › ', h('span', { 'aria-current': 'page' }, agent)),
    head,
    h('div', { class: 'two-col' }, panel('Streams', { id: 'streams-panel' }, streams), panel('Assets', { id: 'agent-assets-panel' }, assets)),
    panel('Alerts', { id: 'agent-alerts-panel' }, alerts),
  );
  const load = async () => {
    const [ag, as, al] = await Promise.allSettled([
      findAgent(agent),
      api.get('/assets', { agent, sort: 'risk', limit: 200 }),
      api.get('/alerts', { agent, limit: 50 }),
    ]);
    if (ag.status === 'fulfilled' && ag.value) {
      const a = ag.value;
      fill(
        head,
        h('h1', null, agent, ' ', stateChip(a.state)),
        h(
          'dl',
          { class: 'facts' },
          h('div', null, h('dt', null, 'Last seen'), h('dd', null, when(a.lastSeenTs))),
          h('div', null, h('dt', null, 'Version'), h('dd', null, a.version ?? '—')),
          h('div', null, h('dt', null, 'Boot'), h('dd', null, a.bootSeq ?? '—')),
          h('div', null, h('dt', null, 'State since'), h('dd', null, fmtTime(a.stateTs), a.reason ? ` (${a.reason})` : '')),
          h('div', null, h('dt', null, 'First seen'), h('dd', null, fmtTime(a.firstSeenTs))),
        ),
      );
      fill(
        streams,
        table(
          'Streams',
          [
            { label: 'Stream' },
            { label: 'Highest seq', cls: 'num' },
            { label: 'Received', cls: 'num' },
            { label: 'Missing', cls: 'num' },
            { label: 'Gaps', cls: 'num' },
          ],
          Object.entries(a.streams).map(([name, st]) => [
            name,
            fmtCount(st.highestSeq),
            fmtCount(st.received),
            h('span', { class: st.missing ? 'has-backlog' : '' }, fmtCount(st.missing)),
            fmtCount(st.gaps),
          ]),
          { cls: 'compact', empty: 'No records yet.' },
        ),
      );
    } else
      fill(head, h('h1', null, agent), ag.status === 'rejected' ? errorBox(ag.reason) : h('p', { class: 'muted' }, 'Central has no status from this agent.'));
    if (as.status === 'fulfilled')
      fill(
        assets,
        table(
          'Assets',
          [{ label: 'State' }, { label: 'Asset' }, { label: 'Risk', cls: 'num' }, { label: 'Last reading' }],
          as.value.assets.map((x) => [
            stateChip(x.state),
            h('a', { href: assetPath(x.agentId, x.asset) }, x.asset),
            h('span', { class: 'risk-cell' }, riskBar(x.risk), `${fmtNum(x.risk, 2)}×`),
            when(x.lastReadingTs),
          ]),
          { cls: 'compact', empty: 'No assets.' },
        ),
      );
    else fill(assets, errorBox(as.reason));
    if (al.status === 'fulfilled')
      fill(
        alerts,
        alertList(al.value.alerts, () => void loader.run(), { showAsset: true, empty: 'No alerts from this agent.' }),
      );
    else fill(alerts, errorBox(al.reason));
  };
  const loader = liveLoader(load);
  void loader.run();
  return () => loader.stop();
}

/**
 * The agent's row from the agents list (the API has no single-agent route): pages of 1,000 in id order, stopping
 * at the page that passes the id. One request for fleets up to 1,000 agents.
 */
async function findAgent(agentId) {
  let page = await api.get('/agents', { limit: 1000 });
  for (;;) {
    const hit = page.agents.find((a) => a.agentId === agentId);
    if (hit) return hit;
    if (!page.nextCursor || page.agents[page.agents.length - 1].agentId > agentId) return null;
    page = await api.get('/agents', { limit: 1000, cursor: page.nextCursor });
  }
}
