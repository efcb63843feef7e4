// The console's entry: restores the session (or shows the login page), draws the header, starts the live stream
// and the router. Pages load as ES modules on first use.

import { currentUser, logout, restoreSession, setUnauthorizedHandler } from './api.js';
import { h, fill } from './dom.js';
import { label } from './format.js';
import { onLiveStatus, startLive, stopLive } from './live.js';
import { navigate, route, startRouter } from './router.js';

route('/login', () => import('./pages/login.js'));
route('/', () => import('./pages/overview.js'));
route('/assets/:agent/:asset', () => import('./pages/asset.js'));
route('/agents/:agent', () => import('./pages/agent.js'));
route('/alerts', () => import('./pages/alerts.js'));
route('/audit', () => import('./pages/audit.js'));
route('/gpu-cost', () => import('./pages/gpu-cost.js'));

const main = document.getElementById('main');
const nav = document.getElementById('mainnav');
const right = document.getElementById('topbar-right');

let routing = false;

function toLogin() {
  if (location.pathname === '/login') return;
  stopLive();
  drawHeader();
  const to = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
  if (routing) void navigate(to, { replace: true });
  else history.replaceState(null, '', to);
}
setUnauthorizedHandler(toLogin);
// Signing in or out (login page, header button) redraws the header.
window.addEventListener('fw-session', () => drawHeader());

let badge = null;

function liveBadge() {
  const badge = h('span', { class: 'live-badge', role: 'status', 'aria-live': 'polite', id: 'live-status' });
  onLiveStatus((st) => {
    badge.dataset.state = st;
    fill(badge, h('span', { class: 'live-dot', 'aria-hidden': 'true' }), st === 'live' ? 'Live' : st === 'reconnecting' ? 'Reconnecting…' : 'Connecting…');
    badge.title = st === 'live' ? 'Updates arrive as central stores them' : 'The update stream is down; the browser reconnects by itself';
  });
  return badge;
}

/** The header follows the session: navigation, live state and the user only when signed in. */
function drawHeader() {
  const user = currentUser();
  nav.hidden = !user;
  if (!user) {
    right.replaceChildren();
    return;
  }
  fill(
    right,
    (badge ??= liveBadge()),
    h('span', { class: 'user', title: `Signed in as ${user.username} (${user.role})` }, user.username, h('span', { class: 'role' }, label(user.role))),
    h(
      'button',
      {
        type: 'button',
        class: 'btn btn-quiet',
        onclick: async () => {
          stopLive();
          await logout().catch(() => undefined);
          void navigate('/login', { replace: true });
        },
      },
      'Sign out',
    ),
  );
  startLive();
}

function markNav(path) {
  const section = path === '/' || path.startsWith('/assets/') || path.startsWith('/agents/') ? 'overview' : path.slice(1).split('/')[0];
  for (const a of nav.querySelectorAll('a[data-nav]')) {
    if (a.dataset.nav === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function boot() {
  // The login page asks for no session: without one the request would only fail (and log a 401).
  if (location.pathname !== '/login') {
    try {
      await restoreSession();
    } catch (err) {
      // A 401 moved to the login page already; anything else is shown where the page would be.
      if (!err || err.status !== 401) {
        fill(main, h('p', { class: 'error-box', role: 'alert' }, `Cannot reach central: ${err ? err.message : 'unknown error'}`));
        return;
      }
    }
  }
  drawHeader();
  routing = true;
  await startRouter(main, onPage);
}

function onPage(path, page) {
  markNav(path);
  document.title = page && page.title ? `${page.title} · Forewarn` : 'Forewarn console';
}

void boot();
