// The console's one door to central's JSON API (/api/v1). The session cookie is HttpOnly and travels by itself;
// the CSRF token lives only in memory (here) and goes out as X-CSRF-Token on every change.

const PREFIX = '/api/v1';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

const session = { user: null, csrfToken: null };
let onUnauthorized = () => {};

/** Called when the session is gone (401 on anything but the login itself): the console goes to the login page. */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export function currentUser() {
  return session.user;
}

/** True when the signed-in user may act on alerts (the server checks again). */
export function canAct() {
  return session.user !== null && (session.user.role === 'operator' || session.user.role === 'admin');
}

function url(path, query) {
  const u = new URL(PREFIX + path, location.origin);
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v === null || v === undefined || v === '') continue;
    u.searchParams.set(k, String(v));
  }
  return u;
}

async function request(method, path, { query, body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && session.csrfToken) headers['X-CSRF-Token'] = session.csrfToken;
  let res;
  try {
    res = await fetch(url(path, query), { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', signal });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'FW_ERR_NETWORK', 'central did not answer (network error); retrying on the next update');
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const e = data && data.error ? data.error : { code: `HTTP_${res.status}`, message: `${method} ${path}: HTTP ${res.status}` };
    if (res.status === 401 && !(path === '/session' && method === 'POST')) {
      session.user = null;
      session.csrfToken = null;
      onUnauthorized();
    }
    throw new ApiError(res.status, e.code, e.message);
  }
  return data;
}

export const api = {
  get: (path, query, opts) => request('GET', path, { ...opts, query }),
  post: (path, body, opts) => request('POST', path, { ...opts, body }),
  del: (path, opts) => request('DELETE', path, opts),
};

/** Signs in; keeps the user and the CSRF token for this page's life. */
export async function login(username, password) {
  const r = await api.post('/session', { username, password });
  session.user = r.user;
  session.csrfToken = r.csrfToken;
  window.dispatchEvent(new Event('fw-session'));
  return r.user;
}

/** Restores the session after a page load: the cookie is there, the token is asked for again. */
export async function restoreSession() {
  const r = await api.get('/session');
  session.user = r.user;
  session.csrfToken = r.csrfToken;
  return r.user;
}

export async function logout() {
  try {
    await api.del('/session');
  } finally {
    session.user = null;
    session.csrfToken = null;
    window.dispatchEvent(new Event('fw-session'));
  }
}

/** Path segments of the API are user data (agent and asset names): always encoded. */
export function assetPath(agentId, asset, leaf = '') {
  return `/assets/${encodeURIComponent(agentId)}/${encodeURIComponent(asset)}${leaf ? `/${leaf}` : ''}`;
}
