/**
 * One time grid for the whole process. Every periodic timer of the agent fires on multiples of its interval
 * counted from one origin (Telegraf's `round_interval`, with the process start as origin so that a fleet's agents
 * do not all tick at once). Timers due at the same grid instant run from one Node timer, in one wake-up: at a 5 s
 * interval the sources' tick, storage housekeeping, the sync's retry tick, the status check and the model registry
 * check wake the process once instead of five times, and each wake-up of an idle process runs cold
 * (docs/benchmarks.md). Separate Node timers for the same instant would not be enough: each one's expiry is taken
 * from the event loop's cached clock when it is armed, so two of them can fall either side of a millisecond.
 */
// On the monotonic clock: a wall clock stepped back (NTP, a dead RTC) must not stall the timers.
const GRID_ORIGIN = performance.now();
/** Node's timers run up to a millisecond before their instant on performance.now()'s clock (the loop's clock is cached). */
const EARLY_MS = 1;

/** The next instant on the grid of `intervalMs` strictly after `now` (monotonic milliseconds). */
export function nextGridTick(now: number, intervalMs: number, origin = GRID_ORIGIN): number {
  const next = origin + (Math.floor((now - origin) / intervalMs) + 1) * intervalMs;
  // Rounding: for `now` exactly on an instant, (now - origin) / intervalMs can come out a hair below the whole
  // number, and the instant found is `now` itself; a timer re-armed with it would run twice for one instant.
  return next > now ? next : next + intervalMs;
}

interface Entry {
  due: number;
  fn: () => void;
  referenced: boolean;
  /** Cleared: also when that happens while the calls due with it run. */
  cleared: boolean;
}

/** What is due, and the one Node timer for the earliest of it. */
const entries = new Set<Entry>();
let timer: NodeJS.Timeout | null = null;
let timerDue = Infinity;
/** While the due calls run: what they arm is timed once, after the last of them. */
let firing = false;

function rearm(): void {
  if (firing) return;
  let next = Infinity;
  let referenced = false;
  for (const e of entries) {
    if (e.due < next) next = e.due;
    referenced ||= e.referenced;
  }
  if (timer && next === timerDue) {
    // Only what is still waiting keeps the process alive.
    if (referenced) timer.ref();
    else timer.unref();
    return;
  }
  if (timer) clearTimeout(timer);
  timer = null;
  timerDue = next;
  if (next === Infinity) return;
  timer = setTimeout(fire, Math.max(0, next - performance.now()));
  if (!referenced) timer.unref();
}

function fire(): void {
  timer = null;
  timerDue = Infinity;
  const now = performance.now();
  const due: Entry[] = [];
  for (const e of entries) if (e.due <= now + EARLY_MS) due.push(e);
  for (const e of due) entries.delete(e);
  let failure: { err: unknown } | null = null;
  firing = true;
  for (const e of due) {
    if (e.cleared) continue;
    try {
      e.fn();
    } catch (err) {
      // The others still run; the first error is thrown afterwards, as an uncaught one from setTimeout would be.
      failure ??= { err };
    }
  }
  firing = false;
  rearm();
  if (failure) throw failure.err;
}

/** A one-off call at the grid instant `due` (from nextGridTick), run with everything else due then. */
export class GridTimeout {
  private readonly entry: Entry;

  constructor(due: number, fn: () => void) {
    this.entry = { due, fn, referenced: true, cleared: false };
    entries.add(this.entry);
    rearm();
  }

  /** As Timeout.unref(): this call alone does not keep the process alive. */
  unref(): this {
    this.entry.referenced = false;
    rearm();
    return this;
  }

  clear(): void {
    this.entry.cleared = true;
    if (entries.delete(this.entry)) rearm();
  }
}

/**
 * setInterval on the grid: `fn` runs at every grid instant of `intervalMs`, the first one strictly after now (so
 * sooner than a whole interval after the start). A late timer or a slow `fn` does not shift the grid; an instant
 * that passed while the process was busy is skipped, not caught up.
 */
export class GridInterval {
  private current: GridTimeout | null = null;
  private due = 0;
  private referenced = true;

  constructor(
    private readonly fn: () => void,
    private readonly intervalMs: number,
  ) {
    if (!(intervalMs > 0)) throw new RangeError(`a grid interval must be a positive number of milliseconds (got ${intervalMs})`);
    this.arm();
  }

  unref(): this {
    this.referenced = false;
    this.current?.unref();
    return this;
  }

  clear(): void {
    this.current?.clear();
    this.current = null;
  }

  private arm(): void {
    // max(): a call that ran a fraction of a millisecond before its instant must not be armed for it again.
    this.due = nextGridTick(Math.max(performance.now(), this.due), this.intervalMs);
    this.current = new GridTimeout(this.due, () => {
      // Armed before `fn` runs, so that a throwing `fn` does not end the interval (as with setInterval), and so
      // that `fn` may clear it.
      this.arm();
      this.fn();
    });
    if (!this.referenced) this.current.unref();
  }
}

/** `new GridInterval(fn, intervalMs)`, read as `setInterval(fn, intervalMs)` is. */
export function everyOnGrid(fn: () => void, intervalMs: number): GridInterval {
  return new GridInterval(fn, intervalMs);
}
