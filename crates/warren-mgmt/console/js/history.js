// Client-side history of polled values, for charts over the last minutes when the API does not
// send samples (`msg_rates_age`/`lengths_age`). Kept in memory for this tab only.

/** How far back charts reach, in milliseconds. */
export const SPAN_MS = 10 * 60 * 1000;

const store = new Map();

/** Appends the values (an object of series name → number) polled at time `t` under `key`. */
export function record(key, t, values) {
  let list = store.get(key);
  if (!list) {
    list = [];
    store.set(key, list);
  }
  // Two polls in the same instant (a re-render) would draw a vertical step: keep the newer.
  if (list.length && t - list[list.length - 1].t < 250) list.pop();
  list.push({ t, values });
  while (list.length && list[0].t < t - SPAN_MS) list.shift();
}

/** The series under `key` as {name: [[t, v], ...]} for the given names. */
export function series(key, names) {
  const list = store.get(key) || [];
  const out = {};
  for (const n of names) {
    out[n] = list.filter((p) => typeof p.values[n] === 'number').map((p) => [p.t, p.values[n]]);
  }
  return out;
}

/** The API's `samples` ([{sample, timestamp}], newest first) of a depth as [[t, v]], oldest first. */
export function depthSamples(details) {
  if (!details || !Array.isArray(details.samples)) return null;
  return details.samples.map((s) => [s.timestamp, s.sample]).reverse();
}

/** The API's `samples` of a cumulative count as per-second rates [[t, rate]], oldest first. */
export function rateSamples(details) {
  const d = depthSamples(details);
  if (!d) return null;
  const out = [];
  for (let i = 1; i < d.length; i += 1) {
    const dt = (d[i][0] - d[i - 1][0]) / 1000;
    if (dt > 0) out.push([d[i][0], Math.max(0, (d[i][1] - d[i - 1][1]) / dt)]);
  }
  return out;
}
