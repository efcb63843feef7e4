// The audit log: every action people took (sign-ins, alert workflow, user changes), newest first.

import { api } from '../api.js';
import { fill, h } from '../dom.js';
import { fmtTimeSec } from '../format.js';
import { setQuery } from '../router.js';
import { Pager, errorBox, panel, table } from '../widgets.js';

export const title = 'Audit log';
const PAGE = 100;

function details(d) {
  if (d === null || d === undefined) return '';
  if (typeof d !== 'object') return String(d);
  return h(
    'span',
    { class: 'kv' },
    Object.entries(d).map(([k, v]) =>
      h('span', { class: 'kv-item' }, h('span', { class: 'kv-k' }, k), ' ', v === null ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v)),
    ),
  );
}

export function render(root, _params, query) {
  let target = query.get('target') ?? '';
  const body = h('div', { class: 'table-wrap', id: 'audit-table' });
  const pager = new Pager(() => void load());
  const targetInput = h('input', {
    type: 'search',
    id: 'audit-target',
    value: target,
    placeholder: 'target, e.g. an alert key',
    'aria-label': 'Show entries of one target',
  });
  const form = h(
    'form',
    {
      class: 'toolbar',
      onsubmit: (ev) => {
        ev.preventDefault();
        target = targetInput.value.trim();
        setQuery({ target });
        pager.reset();
        void load();
      },
    },
    h('div', { class: 'toolbar-right' }, targetInput, h('button', { type: 'submit', class: 'btn btn-small' }, 'Filter')),
  );
  root.append(h('div', { class: 'page-head' }, h('h1', null, 'Audit log')), panel('Entries', { id: 'audit-panel' }, form, body, pager.el));
  const load = async () => {
    try {
      const r = await api.get('/audit', { limit: PAGE, cursor: pager.cursor, target });
      fill(
        body,
        table(
          'Audit log',
          [{ label: 'When' }, { label: 'User' }, { label: 'Action' }, { label: 'Target' }, { label: 'Details' }, { label: 'From' }],
          r.entries.map((e) =>
            h(
              'tr',
              { 'data-audit-action': e.action },
              h('td', { class: 'nowrap' }, h('time', { datetime: new Date(e.ts).toISOString() }, fmtTimeSec(e.ts))),
              h('td', null, e.username ?? '—'),
              h('td', null, h('span', { class: 'audit-action' }, e.action)),
              h('td', { class: 'target' }, e.target ?? ''),
              h('td', null, details(e.details)),
              h('td', { class: 'muted' }, e.remoteAddr ?? e.remote_addr ?? ''),
            ),
          ),
          { empty: 'No entries.' },
        ),
      );
      pager.update(r.nextCursor);
    } catch (err) {
      fill(body, errorBox(err));
    }
  };
  void load();
}
