// The Overview tab: totals, queued-message and message-rate charts over the last minutes, the
// node (memory, file descriptors, alarms), listeners, and for administrators definitions
// export and import.

import { get, post } from './api.js';
import { h, replace, facts, section, table, flash } from './dom.js';
import { num, bytes, duration } from './format.js';
import { lineChart } from './chart.js';
import { record, series, depthSamples, rateSamples } from './history.js';

const AGE = { lengths_age: 600, lengths_incr: 5, msg_rates_age: 600, msg_rates_incr: 5 };

/** Chart series from the API's samples when it sends them, else from this tab's history. */
export function chartSeries(key, stats, spec) {
  const fromApi = {};
  let complete = true;
  for (const [name, details, kind] of spec(stats)) {
    const s = kind === 'rate' ? rateSamples(details) : depthSamples(details);
    if (!s) complete = false;
    fromApi[name] = s;
  }
  if (complete) return fromApi;
  const now = Date.now();
  const values = {};
  for (const [name, details, kind, value] of spec(stats)) {
    values[name] = kind === 'rate' ? (details && typeof details.rate === 'number' ? details.rate : 0) : (value ?? 0);
  }
  record(key, now, values);
  return series(key, Object.keys(values));
}

function definitionsBox() {
  const download = h('button', {
    type: 'button',
    onclick: async () => {
      const defs = await get('/definitions');
      const blob = new Blob([JSON.stringify(defs, null, 2)], { type: 'application/json' });
      const a = h('a', { href: URL.createObjectURL(blob), download: 'warren-definitions.json' });
      document.body.appendChild(a);
      a.click();
      a.remove();
      flash('Definitions exported.');
    },
  }, 'Download broker definitions');
  const file = h('input', { id: 'defs-file', type: 'file', accept: 'application/json,.json' });
  const upload = h('form', {
    class: 'action',
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        if (!file.files.length) throw new Error('Choose a definitions file first.');
        const defs = JSON.parse(await file.files[0].text());
        await post('/definitions', defs);
        flash('Definitions imported.');
      } catch (err) {
        flash(err.message, 'error');
      }
    },
  }, h('p', { class: 'field' }, h('label', { for: file.id }, 'Definitions file'), file),
  h('p', {}, h('button', { type: 'submit' }, 'Upload broker definitions')));
  return section('Export and import definitions', true,
    h('div', { class: 'cols' },
      h('div', {}, h('h3', {}, 'Export'), h('p', {}, 'Users, vhosts, permissions, policies, queues, exchanges and bindings as RabbitMQ writes them.'), download),
      h('div', {}, h('h3', {}, 'Import'), upload)));
}

/** Mounts the page into `el`; answers {refresh}. */
export function mount(el, _route, ctx) {
  const totals = h('div');
  const charts = h('div', { class: 'charts' });
  const node = h('div');
  const listeners = h('div');
  replace(el, h('h1', {}, 'Overview'),
    section('Totals', true, totals, charts),
    ctx.can('monitoring') ? section('Node', true, node) : null,
    section('Listeners', true, listeners),
    ctx.can('administrator') ? definitionsBox() : null);

  async function refresh() {
    const o = await get('/overview', AGE);
    const ms = o.message_stats || {};
    const qt = o.queue_totals || {};
    const ot = o.object_totals || {};
    replace(totals, facts([
      ['Connections', num(ot.connections)], ['Channels', num(ot.channels)],
      ['Exchanges', num(ot.exchanges)], ['Queues', num(ot.queues)], ['Consumers', num(ot.consumers)],
      ['Messages ready', num(qt.messages_ready)], ['Messages unacknowledged', num(qt.messages_unacknowledged)],
      ['Messages total', num(qt.messages)],
    ]));
    const queued = chartSeries('overview-queued', qt, (q) => [
      ['Ready', q.messages_ready_details, 'depth', q.messages_ready],
      ['Unacked', q.messages_unacknowledged_details, 'depth', q.messages_unacknowledged],
      ['Total', q.messages_details, 'depth', q.messages]]);
    const rates = chartSeries('overview-rates', ms, (m) => [
      ['Publish', m.publish_details, 'rate'],
      ['Deliver / get', m.deliver_get_details, 'rate'],
      ['Ack', m.ack_details, 'rate']]);
    replace(charts, lineChart('Queued messages', queued), lineChart('Message rates', rates, '/s'));
    replace(listeners, table('Listeners', [
      ['Protocol', (l) => l.protocol], ['Bound to', (l) => l.ip_address], ['Port', (l) => String(l.port), 'num']], o.listeners || []));
    if (ctx.can('monitoring')) {
      const [n] = await get('/nodes');
      if (n) {
        const alarms = [n.mem_alarm ? 'memory' : null, n.disk_free_alarm ? 'disk' : null].filter(Boolean);
        replace(node, facts([
          ['Name', n.name],
          ['Uptime', duration(n.uptime || 0)],
          ['Memory used', n.mem_limit ? `${bytes(n.mem_used)} of ${bytes(n.mem_limit)} high watermark` : bytes(n.mem_used)],
          ['File descriptors', n.fd_total ? `${num(n.fd_used)} of ${num(n.fd_total)}` : num(n.fd_used)],
          ['Processors', num(n.processors)],
          ['Alarms', alarms.length ? h('strong', { class: 'alarm' }, `${alarms.join(' and ')} alarm in effect: publishers are blocked`) : 'None'],
        ]));
      }
    }
  }
  return { refresh };
}
