// The alert workflow from the console: acknowledge, maintenance, resolve (failure mode and action taken), false
// alarm. Each opens a dialog, posts POST /api/v1/alerts/actions with the CSRF token (api.js), and calls `done`
// with the alert as the server returns it. Shown only to operators and admins; the server refuses the others.

import { api, canAct } from './api.js';
import { fill, h } from './dom.js';
import { label } from './format.js';

export const ACTIONS = {
  acknowledge: {
    title: 'Acknowledge',
    verb: 'Acknowledge',
    help: 'You have seen the alert and someone is on it. Alertmanager stops notifying until it is resolved.',
  },
  maintenance: {
    title: 'Mark in maintenance',
    verb: 'Start maintenance',
    help: 'The asset is being worked on until the time below; its alerts are silenced in Alertmanager until then.',
  },
  resolve: { title: 'Resolve', verb: 'Resolve', help: 'What failed and what was done: this closes the alert and becomes a training label for the next model.' },
  'false-alarm': {
    title: 'Mark as false alarm',
    verb: 'Mark false alarm',
    help: 'Nothing was wrong with the asset: this closes the alert and teaches the next model.',
  },
};

/** Which actions make sense for an alert, from its state and its workflow. */
export function actionsFor(alert) {
  const wf = alert.workflow ? alert.workflow.state : null;
  if (wf === 'resolved' || wf === 'false_alarm') return [];
  if (alert.state !== 'active') return ['resolve', 'false-alarm'];
  const out = [];
  if (!wf) out.push('acknowledge');
  if (wf !== 'maintenance') out.push('maintenance');
  out.push('resolve', 'false-alarm');
  return out;
}

/** The action buttons of one alert, or nothing for viewers. */
export function actionButtons(alert, done) {
  if (!canAct()) return null;
  const list = actionsFor(alert);
  if (!list.length) return null;
  return h(
    'div',
    { class: 'alert-actions', role: 'group', 'aria-label': `Actions on ${alert.title}` },
    list.map((a) =>
      h('button', { type: 'button', class: `btn btn-small action-${a}`, 'data-action': a, onclick: () => void openAction(alert, a, done) }, ACTIONS[a].title),
    ),
  );
}

function localInput(ts) {
  const d = new Date(ts - new Date(ts).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

const modesCache = new Map();
async function failureModes(alert) {
  const key = `${alert.agentId ?? ''}\u0000${alert.asset ?? ''}`;
  if (!modesCache.has(key))
    modesCache.set(
      key,
      api.get('/failure-modes', { agent: alert.agentId, asset: alert.asset }).catch((err) => (modesCache.delete(key), Promise.reject(err))),
    );
  return modesCache.get(key);
}

let seq = 0;

/** Opens the dialog of one action; resolves when it is closed. */
export async function openAction(alert, action, done) {
  const spec = ACTIONS[action];
  const id = `act-${++seq}`;
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const fields = [];
  const note = h('textarea', { id: `${id}-note`, name: 'note', rows: 3, maxlength: 2000 });
  let until = null;
  let mode = null;
  let other = null;
  let taken = null;
  if (action === 'maintenance') {
    until = h('input', { id: `${id}-until`, name: 'until', type: 'datetime-local', required: true, value: localInput(Date.now() + 4 * 3_600_000) });
    fields.push(h('label', { for: until.id }, 'In maintenance until'), until);
  }
  if (action === 'resolve') {
    mode = h('select', { id: `${id}-mode`, name: 'failureMode', required: true }, h('option', { value: '' }, 'Loading failure modes…'));
    other = h('input', { id: `${id}-other`, name: 'other', maxlength: 200, placeholder: 'What failed' });
    const otherRow = h('div', { class: 'field', hidden: true }, h('label', { for: other.id }, 'Describe the failure'), other);
    mode.addEventListener('change', () => {
      otherRow.hidden = mode.value !== 'other';
    });
    taken = h('input', { id: `${id}-taken`, name: 'actionTaken', maxlength: 500, required: true, placeholder: 'e.g. replaced the spindle bearing' });
    fields.push(h('label', { for: mode.id }, 'Failure mode'), mode, otherRow, h('label', { for: taken.id }, 'Action taken'), taken);
    failureModes(alert).then(
      (r) => {
        fill(
          mode,
          h('option', { value: '' }, `Choose (${r.kind} failure modes)`),
          r.modes.map((m) => h('option', { value: m.id }, m.label)),
        );
      },
      (err) => {
        mode.replaceChildren(h('option', { value: 'other' }, 'Other'));
        otherRow.hidden = false;
        error.textContent = `The list of failure modes did not load (${err.message}); describe the failure instead.`;
        error.hidden = false;
      },
    );
  }
  fields.push(h('label', { for: note.id }, action === 'false-alarm' ? 'Why is it a false alarm? (note)' : 'Note'), note);

  const submit = h('button', { type: 'submit', class: `btn btn-primary action-submit`, 'data-submit': action }, spec.verb);
  const cancel = h('button', { type: 'button', class: 'btn', value: 'cancel' }, 'Cancel');
  const form = h(
    'form',
    { method: 'dialog', class: 'action-form' },
    h('h2', { id: `${id}-title` }, `${spec.title}: ${alert.title}`),
    h('p', { class: 'muted' }, `${label(alert.severity)} · ${alert.agentId ?? ''}${alert.asset ? ` / ${alert.asset}` : ''}`),
    h('p', { class: 'help' }, spec.help),
    fields,
    error,
    h('div', { class: 'form-buttons' }, cancel, submit),
  );
  const dialog = h('dialog', { class: 'action-dialog', 'aria-labelledby': `${id}-title`, 'data-dialog': action }, form);
  document.body.append(dialog);
  cancel.addEventListener('click', () => dialog.close());
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const body = { alertKey: alert.alertKey, action };
    let text = note.value.trim();
    if (action === 'maintenance') {
      const t = until.value ? new Date(until.value).getTime() : NaN;
      if (!Number.isFinite(t) || t <= Date.now()) return fail('Pick a time in the future for the end of the maintenance.');
      body.untilTs = t;
    }
    if (action === 'resolve') {
      if (!mode.value) return fail('Choose a failure mode.');
      if (!taken.value.trim()) return fail('Say what was done.');
      body.failureMode = mode.value;
      body.actionTaken = taken.value.trim();
      // `other` is described in the note (the catalogue's convention), first line.
      if (mode.value === 'other') {
        if (!other.value.trim()) return fail('Describe the failure.');
        text = text ? `${other.value.trim()}\n${text}` : other.value.trim();
      }
    }
    if (text) body.note = text;
    submit.disabled = true;
    try {
      const r = await api.post('/alerts/actions', body);
      dialog.close();
      if (done) done(r && r.alert ? r.alert : null, action);
    } catch (err) {
      fail(err.code === 'FW_ERR_CONSOLE_FORBIDDEN' ? 'Your role may not act on alerts.' : err.message);
    } finally {
      submit.disabled = false;
    }
  });
  function fail(msg) {
    error.textContent = msg;
    error.hidden = false;
  }
  const closed = new Promise((resolve) => dialog.addEventListener('close', () => (dialog.remove(), resolve()), { once: true }));
  dialog.showModal();
  (mode ?? until ?? note).focus();
  return closed;
}
