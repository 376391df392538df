// Line charts drawn as SVG by hand: a few polylines over a time axis. No library.

import { h } from './dom.js';
import { SPAN_MS } from './history.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 560;
const H = 160;
const PAD = { l: 48, r: 8, t: 8, b: 20 };

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  return el;
}

/** The smallest "nice" number (1, 2, 5 × 10^n) at least `v`. */
function nice(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function label(v) {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e4) return `${(v / 1e3).toFixed(0)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

/**
 * A chart of `series` ({name: [[t_ms, value], ...]}) over the last ten minutes. `unit` is shown
 * after values ("/s" for rates). The legend is a table with each series' latest value, so the
 * numbers are readable without the picture.
 */
export function lineChart(title, series, unit = '') {
  const names = Object.keys(series);
  const now = Date.now();
  const t0 = now - SPAN_MS;
  let max = 0;
  for (const n of names) for (const [t, v] of series[n]) if (t >= t0 && v > max) max = v;
  const top = nice(max);
  const x = (t) => PAD.l + ((t - t0) / SPAN_MS) * (W - PAD.l - PAD.r);
  const y = (v) => H - PAD.b - (v / top) * (H - PAD.t - PAD.b);
  const latest = (n) => {
    const s = series[n];
    return s.length ? s[s.length - 1][1] : null;
  };
  const summary = names.map((n) => `${n} ${latest(n) === null ? 'no data' : label(latest(n)) + unit}`).join(', ');
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title}: ${summary}` },
    ...[0, 0.5, 1].map((f) => svg('line', { x1: PAD.l, x2: W - PAD.r, y1: y(top * f), y2: y(top * f), class: 'grid' })),
    ...[0, 0.5, 1].map((f) => svg('text', { x: PAD.l - 4, y: y(top * f) + 4, class: 'axis', 'text-anchor': 'end' }, label(top * f))),
    svg('text', { x: PAD.l, y: H - 4, class: 'axis' }, '-10 min'),
    svg('text', { x: W - PAD.r, y: H - 4, class: 'axis', 'text-anchor': 'end' }, 'now'),
    ...names.map((n, i) => {
      const pts = series[n].filter(([t]) => t >= t0).map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
      // One point is drawn as a short dash so a fresh chart is not blank.
      if (pts.length === 1) {
        const [px, py] = pts[0].split(',').map(Number);
        pts.unshift(`${(px - 8).toFixed(1)},${py.toFixed(1)}`);
      }
      return svg('polyline', { points: pts.join(' '), class: `line s${i}` });
    }));
  return h('figure', { class: 'chart-box' },
    h('figcaption', {}, title),
    chart,
    h('table', { class: 'legend' },
      h('tbody', {}, names.map((n, i) => h('tr', {},
        h('th', { scope: 'row' }, h('span', { class: `swatch s${i}`, 'aria-hidden': 'true' }), n),
        h('td', { class: 'num' }, latest(n) === null ? '–' : `${label(latest(n))}${unit}`))))));
}
