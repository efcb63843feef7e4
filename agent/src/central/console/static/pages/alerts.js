// Every alert central knows, newest first: filter active / resolved and by severity, act on them (operators).

import { api } from '../api.js';
import { alertList } from '../alert-view.js';
import { fill, h } from '../dom.js';
import { SEVERITIES, label } from '../format.js';
import { liveLoader } from '../live.js';
import { setQuery } from '../router.js';
import { Pager, errorBox, panel } from '../widgets.js';

export const title = 'Alerts';
const PAGE = 50;

export function render(root, _params, query) {
  let state = ['active', 'resolved'].includes(query.get('state')) ? query.get('state') : 'active';
  let severity = SEVERITIES.includes(query.get('severity')) ? query.get('severity') : '';
  const body = h('div', { id: 'alerts-list' });
  const pager = new Pager(() => void loader.run());
  const filters = h('div', { class: 'toolbar' });
  const drawFilters = () =>
    fill(
      filters,
      h(
        'div',
        { class: 'chips', role: 'group', 'aria-label': 'Alert state' },
        [
          ['active', 'Active'],
          ['resolved', 'Resolved'],
          ['', 'All'],
        ].map(([v, text]) =>
          h(
            'button',
            {
              type: 'button',
              class: 'chip chip-toggle',
              'aria-pressed': state === v ? 'true' : 'false',
              'data-filter-state': v || 'all',
              onclick: () => ((state = v), changed()),
            },
            text,
          ),
        ),
      ),
      h(
        'div',
        { class: 'chips', role: 'group', 'aria-label': 'Severity' },
        ['', ...SEVERITIES].map((v) =>
          h(
            'button',
            {
              type: 'button',
              class: `chip chip-toggle ${v ? `sev-chip-${v}` : ''}`,
              'aria-pressed': severity === v ? 'true' : 'false',
              'data-filter-severity': v || 'all',
              onclick: () => ((severity = v), changed()),
            },
            v ? label(v) : 'Any severity',
          ),
        ),
      ),
    );
  const changed = () => {
    setQuery({ state: state === 'active' ? '' : state || 'all', severity });
    pager.reset();
    drawFilters();
    void loader.run();
  };
  if (query.get('state') === 'all') state = '';
  drawFilters();
  root.append(h('div', { class: 'page-head' }, h('h1', null, 'Alerts')), panel('Alerts', { id: 'alerts-panel' }, filters, body, pager.el));
  const load = async () => {
    try {
      const r = await api.get('/alerts', { state, severity, limit: PAGE, cursor: pager.cursor });
      fill(
        body,
        alertList(r.alerts, () => void loader.run(), { showAsset: true, empty: 'No alert matches these filters.' }),
      );
      pager.update(r.nextCursor);
    } catch (err) {
      fill(body, errorBox(err));
    }
  };
  const loader = liveLoader(load);
  void loader.run();
  return () => loader.stop();
}
