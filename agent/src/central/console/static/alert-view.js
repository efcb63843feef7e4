// How an alert reads in the console (the asset page's timeline and the alerts page): what was raised, its
// evidence and remedy, what people did about it (the workflow) and the actions still open.

import { actionButtons } from './actions.js';
import { h } from './dom.js';
import { fmtNum, fmtTime } from './format.js';
import { severityBadge, stateChip, when } from './widgets.js';

const WORKFLOW_WORDS = { acknowledged: 'Acknowledged', maintenance: 'In maintenance', resolved: 'Resolved', false_alarm: 'Marked false alarm' };

export function workflowLine(wf) {
  if (!wf) return null;
  return h(
    'div',
    { class: `workflow workflow-${wf.state}`, 'data-workflow': wf.state },
    h('strong', null, WORKFLOW_WORDS[wf.state] ?? wf.state),
    ' by ',
    h('span', { class: 'who' }, wf.by ?? '?'),
    ' ',
    when(wf.ts),
    wf.state === 'maintenance' && wf.until ? [' until ', h('time', { datetime: new Date(wf.until).toISOString() }, fmtTime(wf.until))] : null,
    wf.failureMode ? h('div', null, 'Failure mode: ', h('span', { class: 'failure-mode' }, wf.failureMode)) : null,
    wf.actionTaken ? h('div', null, 'Action taken: ', wf.actionTaken) : null,
    wf.note ? h('div', { class: 'note' }, wf.note) : null,
  );
}

function evidence(ev) {
  if (!ev || typeof ev !== 'object') return ev ? h('p', { class: 'evidence' }, String(ev)) : null;
  const entries = Object.entries(ev).slice(0, 8);
  if (!entries.length) return null;
  return h(
    'dl',
    { class: 'evidence' },
    entries.map(([k, v]) => [h('dt', null, k), h('dd', null, typeof v === 'number' ? fmtNum(v, 4) : typeof v === 'object' ? JSON.stringify(v) : String(v))]),
  );
}

/** One alert as an item of a list; `onChanged` after an action succeeded. */
export function alertItem(a, onChanged, { showAsset = false, noActions = null } = {}) {
  return h(
    'li',
    { class: `alert-item sev-border-${a.severity} ${a.state}`, 'data-alert': a.alertKey, 'data-state': a.state },
    h(
      'div',
      { class: 'alert-head' },
      severityBadge(a.severity),
      h('span', { class: 'alert-title' }, a.title),
      stateChip(a.state === 'active' ? 'active' : 'resolved'),
      showAsset && a.agentId
        ? h(
            'span',
            { class: 'alert-where' },
            a.asset
              ? h('a', { href: `/assets/${encodeURIComponent(a.agentId)}/${encodeURIComponent(a.asset)}` }, `${a.agentId} / ${a.asset}`)
              : h('a', { href: `/agents/${encodeURIComponent(a.agentId)}` }, a.agentId),
          )
        : null,
    ),
    h(
      'div',
      { class: 'alert-times muted' },
      'Raised ',
      when(a.raisedTs),
      a.resolvedTs ? [' · cleared ', when(a.resolvedTs)] : null,
      a.value !== null && a.value !== undefined ? ` · value ${fmtNum(a.value, 4)}` : null,
      ` · ${a.rule}`,
      a.origin === 'fleet' ? ' · fleet rule' : null,
    ),
    evidence(a.evidence),
    a.remedy ? h('details', { class: 'remedy' }, h('summary', null, 'What to do'), h('p', null, a.remedy)) : null,
    workflowLine(a.workflow),
    noActions && noActions.has(a.alertKey) ? null : actionButtons(a, onChanged),
  );
}

export function alertList(alerts, onChanged, opts) {
  if (!alerts.length) return h('p', { class: 'muted empty-note' }, opts && opts.empty ? opts.empty : 'No alerts.');
  return h(
    'ol',
    { class: 'alert-list' },
    alerts.map((a) => alertItem(a, onChanged, opts)),
  );
}
