// Sign in: POST /api/v1/session. The cookie is set by the server (HttpOnly); the CSRF token stays in memory.

import { login } from '../api.js';
import { h } from '../dom.js';
import { navigate } from '../router.js';

export const title = 'Sign in';

/** Only a path on this console may be the place to go back to (never another origin). */
function safeNext(query) {
  const next = query.get('next');
  return next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/login') ? next : '/';
}

export function render(root, _params, query) {
  const error = h('p', { class: 'form-error', role: 'alert', id: 'login-error', hidden: true });
  const user = h('input', {
    id: 'login-username',
    name: 'username',
    autocomplete: 'username',
    required: true,
    autofocus: true,
    autocapitalize: 'off',
    spellcheck: 'false',
  });
  const pass = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'login-form', 'aria-describedby': 'login-error', novalidate: true },
    h('h1', null, 'Sign in to the fleet console'),
    h('label', { for: 'login-username' }, 'User name'),
    user,
    h('label', { for: 'login-password' }, 'Password'),
    pass,
    error,
    submit,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    if (!user.value || !pass.value) {
      error.textContent = 'Enter your user name and password.';
      error.hidden = false;
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      await login(user.value, pass.value);
      await navigate(safeNext(query), { replace: true });
    } catch (err) {
      error.textContent =
        err.code === 'FW_ERR_CONSOLE_RATE_LIMIT'
          ? `Too many failed sign-ins: ${err.message}`
          : err.code === 'FW_ERR_CONSOLE_LOGIN'
            ? 'Wrong user name or password.'
            : `Cannot sign in: ${err.message}`;
      error.hidden = false;
      pass.value = '';
      pass.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  });
  root.append(
    h('div', { class: 'login-wrap' }, form, h('p', { class: 'muted login-note' }, 'Accounts are created on the central host: forewarn central user add.')),
  );
  queueMicrotask(() => user.focus());
}
