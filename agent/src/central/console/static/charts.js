// Time-series charts, hand-written SVG (no library: a few kilobytes, no build step, nothing from a CDN).
// A chart has a time axis with calendar-aware ticks, a value axis with round ticks, an optional threshold line
// (with the at-risk side shaded), a band for hourly rollups (min to max) around the line, breaks where data is
// missing, and a read-out that follows the pointer or the arrow keys.

import { h, s } from './dom.js';
import { fmtNum } from './format.js';

const MARGIN = { top: 12, right: 16, bottom: 26, left: 52 };
const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const TIME_STEPS = [MIN, 5 * MIN, 15 * MIN, 30 * MIN, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY];

const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const day = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const full = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });

/** Round value ticks (1, 2, 5 × 10^n) covering [lo, hi]. */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) {
    const pad = Math.abs(lo) * 0.1 || 1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((x) => x >= raw) ?? 10 * mag;
  const start = Math.floor(lo / step) * step;
  const end = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let v = start; v <= end + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  return { lo: start, hi: end, ticks, step };
}

/** A tick's label with as many decimals as the step needs (48.25 and 48.5, never 48.3 twice). */
function tickText(v, step) {
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9) + (step / 10 ** Math.floor(Math.log10(step)) === 2.5 ? 1 : 0)));
  return Math.abs(v) >= 1e6 ? fmtNum(v) : v.toLocaleString(undefined, { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

/** Time ticks at local-calendar boundaries, about `count` of them over [from, to]. */
export function timeTicks(from, to, count = 6) {
  const span = to - from;
  const step = TIME_STEPS.find((x) => span / x <= count) ?? TIME_STEPS[TIME_STEPS.length - 1];
  const offset = new Date(from).getTimezoneOffset() * MIN;
  // Steps of a day or more start at local midnight; shorter ones at round local times.
  let t = Math.ceil((from - offset) / Math.min(step, DAY)) * Math.min(step, DAY) + offset;
  if (step > DAY) t = Math.ceil((t - offset) / step) * step + offset;
  const ticks = [];
  for (; t <= to; t += step) ticks.push(t);
  return { step, ticks };
}

function tickLabel(t, step) {
  const d = new Date(t);
  if (step >= DAY || (d.getHours() === 0 && d.getMinutes() === 0)) return day.format(d);
  return clock.format(d);
}

/**
 * A time chart. `series`: [{ name, points: [{ t, v, lo?, hi? }], cls? }], oldest first; `lo`/`hi` draw a band
 * (hourly min and max). Options: from, to (the window), threshold ({ value, label, worse: 'above' | 'below' }),
 * yDomain ([lo, hi] fixed, e.g. [0, 1] for probabilities), unit (read-out suffix), height, label (for screen
 * readers), gapMs (a longer pause between points breaks the line; default: 3.5 × the median spacing).
 */
export function timeChart(opts) {
  const figure = h('figure', { class: 'chart' });
  const readout = h('div', { class: 'chart-readout', 'aria-live': 'polite' }, '\u00a0');
  const holder = h('div', { class: 'chart-svg' });
  const legend =
    opts.series.length > 1 || opts.threshold
      ? h(
          'div',
          { class: 'chart-legend' },
          opts.series.map((se, i) =>
            h('span', { class: `legend-item ${se.cls ?? `series-${i}`}` }, h('span', { class: 'swatch', 'aria-hidden': 'true' }), se.name),
          ),
          opts.threshold
            ? h('span', { class: 'legend-item threshold' }, h('span', { class: 'swatch', 'aria-hidden': 'true' }), opts.threshold.label ?? 'threshold')
            : null,
        )
      : null;
  figure.append(holder, h('div', { class: 'chart-foot' }, legend, readout));
  let lastWidth = 0;
  const draw = () => {
    const width = Math.max(280, Math.floor(holder.clientWidth || 640));
    if (width === lastWidth) return;
    lastWidth = width;
    holder.replaceChildren(render(opts, width, readout));
  };
  // Drawn at the width it gets, again when that changes (window resized, tablet turned).
  if (typeof ResizeObserver === 'function') {
    const ro = new ResizeObserver(() => draw());
    ro.observe(holder);
  }
  queueMicrotask(draw);
  return figure;
}

function medianStep(points) {
  if (points.length < 3) return Infinity;
  const d = [];
  for (let i = 1; i < points.length; i++) d.push(points[i].t - points[i - 1].t);
  d.sort((a, b) => a - b);
  return d[Math.floor(d.length / 2)];
}

function render(opts, width, readout) {
  const height = opts.height ?? 200;
  const w = width - MARGIN.left - MARGIN.right;
  const ih = height - MARGIN.top - MARGIN.bottom;
  const from = opts.from;
  const to = opts.to;
  const all = opts.series.flatMap((se) => se.points);
  const svg = s('svg', {
    class: 'chart-plot',
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': opts.label ?? 'time chart',
    tabindex: all.length ? '0' : null,
    focusable: 'true',
  });
  let lo;
  let hi;
  if (opts.yDomain) [lo, hi] = opts.yDomain;
  else {
    const vals = [];
    for (const p of all) {
      vals.push(p.v);
      if (p.lo !== undefined) vals.push(p.lo, p.hi);
    }
    if (opts.threshold && Number.isFinite(opts.threshold.value)) vals.push(opts.threshold.value);
    lo = vals.length ? Math.min(...vals) : 0;
    hi = vals.length ? Math.max(...vals) : 1;
    if (opts.zeroBased && lo > 0) lo = 0;
  }
  const nice = niceTicks(lo, hi, 4);
  const yt = opts.yDomain ? { lo, hi, step: nice.step, ticks: nice.ticks.filter((t) => t >= lo && t <= hi) } : nice;
  const x = (t) => MARGIN.left + ((t - from) / (to - from)) * w;
  const y = (v) => MARGIN.top + ih - ((v - yt.lo) / (yt.hi - yt.lo || 1)) * ih;

  const grid = s('g', { class: 'chart-grid', 'aria-hidden': 'true' });
  for (const v of yt.ticks) {
    grid.append(
      s('line', { x1: MARGIN.left, x2: MARGIN.left + w, y1: y(v), y2: y(v) }),
      s('text', { x: MARGIN.left - 6, y: y(v), class: 'tick-y', 'text-anchor': 'end', 'dominant-baseline': 'middle' }, tickText(v, yt.step)),
    );
  }
  const tt = timeTicks(from, to, Math.max(3, Math.floor(w / 80)));
  for (const t of tt.ticks) {
    grid.append(
      s('line', { class: 'tick-x-line', x1: x(t), x2: x(t), y1: MARGIN.top, y2: MARGIN.top + ih }),
      s('text', { x: x(t), y: height - 8, class: 'tick-x', 'text-anchor': 'middle' }, tickLabel(t, tt.step)),
    );
  }
  grid.append(s('rect', { class: 'chart-frame', x: MARGIN.left, y: MARGIN.top, width: w, height: ih }));
  svg.append(grid);

  if (opts.threshold && Number.isFinite(opts.threshold.value)) {
    const ty = Math.max(MARGIN.top, Math.min(MARGIN.top + ih, y(opts.threshold.value)));
    const zone = opts.threshold.worse === 'below' ? { y: ty, height: MARGIN.top + ih - ty } : { y: MARGIN.top, height: ty - MARGIN.top };
    svg.append(
      s('rect', { class: 'threshold-zone', x: MARGIN.left, width: w, ...zone, 'aria-hidden': 'true' }),
      s('line', { class: 'threshold-line', x1: MARGIN.left, x2: MARGIN.left + w, y1: ty, y2: ty, 'data-threshold': opts.threshold.value }),
      s(
        'text',
        { class: 'threshold-label', x: MARGIN.left + w - 4, y: ty - 4, 'text-anchor': 'end' },
        `${opts.threshold.label ?? 'threshold'} ${fmtNum(opts.threshold.value)}`,
      ),
    );
  }

  const clipId = `clip-${Math.random().toString(36).slice(2)}`;
  svg.append(s('clipPath', { id: clipId }, s('rect', { x: MARGIN.left, y: MARGIN.top - 2, width: w, height: ih + 4 })));
  const plot = s('g', { 'clip-path': `url(#${clipId})` });
  opts.series.forEach((se, i) => {
    const cls = se.cls ?? `series-${i}`;
    const pts = se.points.filter((p) => Number.isFinite(p.v) && p.t >= from - DAY && p.t <= to + DAY);
    const gap = opts.gapMs ?? 3.5 * medianStep(pts);
    const runs = [];
    let run = [];
    for (const p of pts) {
      if (run.length && p.t - run[run.length - 1].t > gap) {
        runs.push(run);
        run = [];
      }
      run.push(p);
    }
    if (run.length) runs.push(run);
    for (const r of runs) {
      if (r[0].lo !== undefined) {
        const top = r.map((p) => `${x(p.t).toFixed(1)},${y(p.hi).toFixed(1)}`);
        const bottom = r.map((p) => `${x(p.t).toFixed(1)},${y(p.lo).toFixed(1)}`).reverse();
        plot.append(s('polygon', { class: `band ${cls}`, points: [...top, ...bottom].join(' ') }));
      }
      if (r.length === 1) plot.append(s('circle', { class: `dot ${cls}`, cx: x(r[0].t), cy: y(r[0].v), r: 2.5 }));
      else plot.append(s('polyline', { class: `line ${cls}`, points: r.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ') }));
    }
  });
  svg.append(plot);

  if (!all.length) {
    svg.append(
      s('text', { class: 'chart-empty', x: MARGIN.left + w / 2, y: MARGIN.top + ih / 2, 'text-anchor': 'middle' }, opts.emptyText ?? 'No data in this range'),
    );
    return svg;
  }

  // The read-out: nearest point of each series to the pointer (or the keyboard cursor).
  const cursor = s('g', { class: 'chart-cursor', visibility: 'hidden', 'aria-hidden': 'true' });
  const rule = s('line', { y1: MARGIN.top, y2: MARGIN.top + ih });
  cursor.append(rule);
  const dots = opts.series.map((se, i) => {
    const c = s('circle', { class: `cursor-dot ${se.cls ?? `series-${i}`}`, r: 3.5 });
    cursor.append(c);
    return c;
  });
  svg.append(cursor);
  const times = [...new Set(all.map((p) => p.t))].sort((a, b) => a - b);
  const nearest = (points, t) => {
    let best = null;
    for (const p of points) if (best === null || Math.abs(p.t - t) < Math.abs(best.t - t)) best = p;
    return best;
  };
  let keyIndex = times.length - 1;
  const show = (t) => {
    const parts = [];
    let tx = null;
    opts.series.forEach((se, i) => {
      const p = nearest(se.points, t);
      if (!p) {
        dots[i].setAttribute('visibility', 'hidden');
        return;
      }
      tx ??= p.t;
      dots[i].setAttribute('visibility', 'visible');
      dots[i].setAttribute('cx', x(p.t));
      dots[i].setAttribute('cy', y(p.v));
      const range = p.lo !== undefined ? ` (${fmtNum(p.lo)}–${fmtNum(p.hi)})` : '';
      parts.push(`${opts.series.length > 1 ? `${se.name} ` : ''}${fmtNum(p.v)}${opts.unit ? ` ${opts.unit}` : ''}${range}`);
    });
    if (tx === null) return;
    rule.setAttribute('x1', x(tx));
    rule.setAttribute('x2', x(tx));
    cursor.setAttribute('visibility', 'visible');
    readout.textContent = `${full.format(new Date(tx))} · ${parts.join(' · ')}`;
  };
  const hide = () => {
    cursor.setAttribute('visibility', 'hidden');
    readout.textContent = '\u00a0';
  };
  const overlay = s('rect', { class: 'chart-overlay', x: MARGIN.left, y: MARGIN.top, width: w, height: ih });
  overlay.addEventListener('pointermove', (ev) => {
    const box = svg.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * width;
    show(from + ((px - MARGIN.left) / w) * (to - from));
  });
  overlay.addEventListener('pointerleave', hide);
  svg.addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowLeft') keyIndex = Math.max(0, keyIndex - 1);
    else if (ev.key === 'ArrowRight') keyIndex = Math.min(times.length - 1, keyIndex + 1);
    else if (ev.key === 'Home') keyIndex = 0;
    else if (ev.key === 'End') keyIndex = times.length - 1;
    else if (ev.key === 'Escape') return hide();
    else return;
    ev.preventDefault();
    show(times[keyIndex]);
  });
  svg.addEventListener('focus', () => show(times[keyIndex]));
  svg.addEventListener('blur', hide);
  svg.append(overlay);
  return svg;
}

/** A small inline bar for a relative risk (1 = at the threshold), for tables. */
export function riskBar(relative) {
  const v = Number.isFinite(relative) ? relative : 0;
  const pct = Math.max(0, Math.min(100, (v / 1.5) * 100));
  const level = v >= 1 ? 'over' : v >= 0.8 ? 'near' : 'under';
  return s(
    'svg',
    { class: `risk-bar ${level}`, width: 60, height: 8, viewBox: '0 0 60 8', 'aria-hidden': 'true' },
    s('rect', { class: 'risk-bar-track', x: 0, y: 0, width: 60, height: 8, rx: 2 }),
    s('rect', { class: 'risk-bar-fill', x: 0, y: 0, width: (pct * 60) / 100, height: 8, rx: 2 }),
    s('line', { class: 'risk-bar-mark', x1: 40, x2: 40, y1: 0, y2: 8 }),
  );
}
