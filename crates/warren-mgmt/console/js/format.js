// Number, byte, rate and time formatting for the console.

const nf = new Intl.NumberFormat('en-US');

/** 12345 → "12,345"; missing → "". */
export function num(v) {
  return v === undefined || v === null ? '' : nf.format(v);
}

/** A rate per second with one decimal: "3.2/s". */
export function rate(details) {
  const r = details && typeof details.rate === 'number' ? details.rate : null;
  return r === null ? '' : `${r.toFixed(r >= 100 ? 0 : 1)}/s`;
}

/** Bytes as B, KiB, MiB, GiB. */
export function bytes(v) {
  if (v === undefined || v === null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  let x = v;
  while (x >= 1024 && u < units.length - 1) {
    x /= 1024;
    u += 1;
  }
  return `${u ? x.toFixed(1) : x} ${units[u]}`;
}

/** Milliseconds as "3d 4h", "5m 2s". */
export function duration(ms) {
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const hh = Math.floor(s / 3600);
  s -= hh * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

/** A millisecond timestamp as local "YYYY-MM-DD hh:mm:ss". */
export function when(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** An arguments/properties object as "k: v" lines. */
export function args(obj) {
  if (!obj || typeof obj !== 'object') return '';
  return Object.entries(obj).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join('\n');
}

/** Feature letters as RabbitMQ shows them: D durable, AD auto-delete, Excl exclusive, I internal. */
export function features(o) {
  const f = [];
  if (o.durable) f.push('D');
  if (o.auto_delete) f.push('AD');
  if (o.exclusive) f.push('Excl');
  if (o.internal) f.push('I');
  if (o.arguments && Object.keys(o.arguments).length) f.push('Args');
  return f.join(' ');
}
