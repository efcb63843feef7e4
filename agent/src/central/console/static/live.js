// Live updates: one EventSource on /api/v1/events for the whole console. Central sends `fleet` on connect and
// whenever the store changed; pages subscribe and refetch what they show. The header shows whether the stream is
// live or reconnecting (EventSource reconnects by itself).

const listeners = new Set();
const statusListeners = new Set();
let source = null;
let status = 'connecting';
let lastFleet = null;

function setStatus(s) {
  if (s === status) return;
  status = s;
  for (const fn of statusListeners) fn(s);
}

export function startLive() {
  if (source) return;
  source = new EventSource('/api/v1/events');
  source.addEventListener('open', () => setStatus('live'));
  source.addEventListener('error', () => setStatus(source && source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting'));
  source.addEventListener('fleet', (ev) => {
    setStatus('live');
    let data = null;
    try {
      data = JSON.parse(ev.data);
    } catch {
      return;
    }
    lastFleet = data;
    for (const fn of listeners) fn(data);
  });
}

export function stopLive() {
  if (source) source.close();
  source = null;
  setStatus('connecting');
}

/** Calls `fn({summary, token})` on every fleet change; returns the unsubscribe function. */
export function onFleet(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function lastFleetEvent() {
  return lastFleet;
}

export function onLiveStatus(fn) {
  statusListeners.add(fn);
  fn(status);
  return () => statusListeners.delete(fn);
}

/**
 * Runs `load` now and again on each fleet event, never two at once: an event that arrives while one runs queues
 * exactly one more run. Returns the stop function.
 */
export function liveLoader(load) {
  let running = false;
  let again = false;
  let stopped = false;
  const run = async () => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await load();
    } catch {
      // the page shows its own errors; the next event tries again
    } finally {
      running = false;
      if (again && !stopped) {
        again = false;
        void run();
      }
    }
  };
  const off = onFleet(() => void run());
  return {
    run,
    stop() {
      stopped = true;
      off();
    },
  };
}
