// Client-side routing with history.pushState: the server answers every page path with index.html, and this maps
// the path to a page module. A page is `{ title, render(root, params, query) → optional cleanup }`.

const routes = [];
let current = null;
let root = null;
let onChange = () => {};

export function route(pattern, load) {
  const names = [];
  const re = new RegExp(
    `^${pattern.replace(/\/:([a-z]+)/gi, (_m, name) => {
      names.push(name);
      return '/([^/]+)';
    })}/?$`,
  );
  routes.push({ re, names, load });
}

export function startRouter(rootEl, changed) {
  root = rootEl;
  onChange = changed;
  window.addEventListener('popstate', () => void render());
  // Same-origin links navigate without a reload; modified clicks (new tab) keep the browser's behaviour.
  document.addEventListener('click', (ev) => {
    const a = ev.target instanceof Element ? ev.target.closest('a[href]') : null;
    if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    if (a.target || a.hasAttribute('download')) return;
    const u = new URL(a.href, location.href);
    if (u.origin !== location.origin || u.pathname.startsWith('/api/') || u.pathname.startsWith('/static/')) return;
    ev.preventDefault();
    navigate(u.pathname + u.search);
  });
  return render();
}

export function navigate(to, { replace = false } = {}) {
  if (to === location.pathname + location.search) return render();
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  return render();
}

/** Updates the query string of the current page without rendering it again (filters, ranges). */
export function setQuery(params) {
  const u = new URL(location.href);
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === '') u.searchParams.delete(k);
    else u.searchParams.set(k, String(v));
  }
  history.replaceState(null, '', u.pathname + u.search);
}

let generation = 0;

async function render() {
  const gen = ++generation;
  const path = location.pathname;
  let match = null;
  for (const r of routes) {
    const m = r.re.exec(path);
    if (m) {
      const params = {};
      r.names.forEach((n, i) => {
        params[n] = decodeURIComponent(m[i + 1]);
      });
      match = { r, params };
      break;
    }
  }
  const cleanup = current;
  current = null;
  if (typeof cleanup === 'function') {
    try {
      cleanup();
    } catch {
      // a page's cleanup failing must not stop the next page
    }
  }
  // Each render draws into its own view: a slow page that finishes after the user moved on writes nowhere visible.
  const view = document.createElement('div');
  view.className = 'view';
  root.replaceChildren(view);
  const query = new URLSearchParams(location.search);
  const page = match ? await match.r.load() : await import('./pages/not-found.js');
  if (gen !== generation) return;
  onChange(path, page);
  const done = (await page.render(view, match ? match.params : { path }, query)) ?? null;
  if (gen !== generation) {
    if (typeof done === 'function') done();
    return;
  }
  current = done;
  root.focus({ preventScroll: true });
}
