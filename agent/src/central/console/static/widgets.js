// Small pieces the pages share: state chips, panels, tables, pagers, error boxes.

import { h } from './dom.js';
import { fmtAgo, fmtTime, label } from './format.js';

export function stateChip(state, extra) {
  return h('span', { class: `chip state-${state}`, 'data-state': state }, h('span', { class: 'chip-dot', 'aria-hidden': 'true' }), extra ?? label(state));
}

export function severityBadge(sev, n) {
  return h('span', { class: `sev sev-${sev}`, title: `${n ?? ''} ${label(sev)}`.trim() }, n === undefined ? label(sev) : `${n} ${label(sev).toLowerCase()}`);
}

export function when(ts) {
  return h('time', { datetime: ts ? new Date(ts).toISOString() : null, title: fmtTime(ts) }, fmtAgo(ts));
}

export function panel(title, attrs, ...children) {
  const id = `p-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return h('section', { class: 'panel', 'aria-labelledby': id, ...attrs }, h('h2', { id, class: 'panel-title' }, title), ...children);
}

export function errorBox(err) {
  return h('p', { class: 'error-box', role: 'alert' }, err && err.message ? err.message : String(err));
}

/** A table with a caption for screen readers; `cols`: [{ label, cls? }]; `rows`: arrays of cells (or null). */
export function table(caption, cols, rows, { empty = 'Nothing to show', cls = '' } = {}) {
  return h(
    'table',
    { class: `grid ${cls}` },
    h('caption', { class: 'sr-only' }, caption),
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        cols.map((c) => h('th', { scope: 'col', class: c.cls }, c.label)),
      ),
    ),
    h(
      'tbody',
      null,
      rows.length
        ? rows.map((r) =>
            r instanceof Node
              ? r
              : h(
                  'tr',
                  null,
                  r.map((cell, i) => h('td', { class: cols[i] && cols[i].cls }, cell)),
                ),
          )
        : h('tr', { class: 'empty' }, h('td', { colspan: cols.length }, empty)),
    ),
  );
}

/**
 * Cursor paging (the API's nextCursor): keeps the cursors of the pages seen so "previous" works. `onPage` is
 * called with the cursor to load.
 */
export class Pager {
  constructor(onPage) {
    this.onPage = onPage;
    this.stack = [null];
    this.next = null;
    this.el = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  }
  get cursor() {
    return this.stack[this.stack.length - 1];
  }
  reset() {
    this.stack = [null];
  }
  update(nextCursor, text) {
    this.next = nextCursor;
    const prev = h(
      'button',
      { type: 'button', class: 'btn btn-small', disabled: this.stack.length <= 1, onclick: () => (this.stack.pop(), this.onPage()) },
      '‹ Previous',
    );
    const next = h(
      'button',
      { type: 'button', class: 'btn btn-small', disabled: !nextCursor, onclick: () => (this.stack.push(this.next), this.onPage()) },
      'Next ›',
    );
    this.el.replaceChildren(h('span', { class: 'pager-text' }, text ?? `Page ${this.stack.length}`), prev, next);
  }
}
