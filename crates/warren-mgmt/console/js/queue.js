// One queue's page: details, depth and rate charts, consumers, bindings (add, remove), publish
// to it through the default exchange, get messages, purge and delete.

import { get, post, del, seg } from './api.js';
import { h, replace, facts, section, table } from './dom.js';
import { num, bytes, rate, features, args } from './format.js';
import { lineChart } from './chart.js';
import { chartSeries } from './overview.js';
import { publishForm, bindingsTable, bindForm } from './exchanges.js';
import { field, form, dangerButton } from './forms.js';

function getForm(vhost, name, out) {
  const mode = field('Ack mode', { name: 'ackmode' }, 'select', [
    ['ack_requeue_true', 'Nack message requeue true'], ['reject_requeue_true', 'Reject requeue true'],
    ['ack_requeue_false', 'Automatic ack'], ['reject_requeue_false', 'Reject requeue false']]);
  const encoding = field('Encoding', { name: 'encoding' }, 'select', [['auto', 'Auto string / base64'], ['base64', 'base64']]);
  const count = field('Messages', { name: 'count', type: 'number', min: 1, value: 1 });
  return form(null, [h('p', { class: 'warning' }, 'Getting messages from a queue is a destructive action: acked or rejected messages are gone.'), mode.el, encoding.el, count.el], () => post(`/queues/${seg(vhost)}/${seg(name)}/get`, {
    count: Number(count.input.value), ackmode: mode.input.value, encoding: encoding.input.value, truncate: 50000,
  }), (msgs) => (msgs.length ? `Got ${msgs.length} message${msgs.length === 1 ? '' : 's'}.` : 'Queue is empty.'), (msgs) => {
    replace(out, msgs.length ? msgs.map((m, i) => h('div', { class: 'message' },
      h('h4', {}, `Message ${i + 1}`),
      facts([
        ['Exchange', m.exchange || '(AMQP default)'], ['Routing key', m.routing_key], ['Redelivered', String(m.redelivered)],
        ['Messages left in the queue', num(m.message_count)],
        ['Properties', h('pre', {}, args(m.properties))],
        ['Payload', h('div', {}, h('span', { class: 'muted' }, `${m.payload_bytes} bytes, encoding: ${m.payload_encoding}`), h('pre', { class: 'payload' }, m.payload))],
      ]))) : h('p', {}, 'Queue is empty.'));
  }, 'Get messages');
}

/** Mounts the page of queue `route[1]` in vhost `route[0]`. */
export function mount(el, route) {
  const [vhost, name] = route;
  const path = `/queues/${seg(vhost)}/${seg(name)}`;
  const info = h('div');
  const charts = h('div', { class: 'charts' });
  const consumers = h('div');
  const bindings = h('div');
  const got = h('div', { class: 'got', 'aria-live': 'polite' });
  const refreshBindings = async () => replace(bindings, bindingsTable(vhost, await get(`${path}/bindings`), refreshBindings, 'Bindings of this queue'));
  replace(el, h('p', { class: 'crumbs' }, h('a', { href: '#/queues' }, 'Queues'), ` › virtual host ${vhost}`),
    h('h1', {}, 'Queue ', h('span', { class: 'name' }, name)),
    section('Overview', true, info, charts),
    section('Consumers', true, consumers),
    section('Bindings', true, bindings, bindForm(vhost, { fixedQueue: name }, refreshBindings)),
    section('Publish message', true, h('p', { class: 'muted' }, 'Published to the default exchange with the queue name as routing key.'), publishForm(vhost, '', name)),
    section('Get messages', true, getForm(vhost, name, got), got),
    section('Purge or delete', true, h('div', { class: 'row' },
      dangerButton('Purge messages', `Purge every ready message of ${name}?`, () => del(`${path}/contents`), 'Queue purged.'),
      dangerButton('Delete queue', `Delete queue ${name}?`, () => del(path), 'Queue deleted.', () => { location.hash = '#/queues'; }))));

  async function refresh() {
    const q = await get(path, { lengths_age: 600, lengths_incr: 5, msg_rates_age: 600, msg_rates_incr: 5 });
    const ms = q.message_stats || {};
    replace(info, facts([
      ['Virtual host', q.vhost], ['Type', q.type], ['Features', features(q) || 'none'], ['State', q.state],
      ['Policy', q.policy || 'none'], ['Arguments', h('pre', {}, args(q.arguments) || 'none')],
      ['Ready', h('span', { class: 'ready' }, num(q.messages_ready))], ['Unacked', num(q.messages_unacknowledged)],
      ['Total', h('span', { class: 'total' }, num(q.messages))], ['Message bytes', bytes(q.message_bytes)],
      ['Consumers', num(q.consumers)], ['Consumer utilisation', q.consumer_utilisation === undefined ? '' : `${Math.round(q.consumer_utilisation * 100)}%`],
    ]));
    const key = `queue ${vhost} ${name}`;
    const depth = chartSeries(`${key} depth`, q, (x) => [
      ['Ready', x.messages_ready_details, 'depth', x.messages_ready],
      ['Unacked', x.messages_unacknowledged_details, 'depth', x.messages_unacknowledged],
      ['Total', x.messages_details, 'depth', x.messages]]);
    const rates = chartSeries(`${key} rates`, ms, (m) => [
      ['Publish', m.publish_details, 'rate'], ['Deliver / get', m.deliver_get_details, 'rate'], ['Ack', m.ack_details, 'rate']]);
    replace(charts, lineChart('Queued messages', depth), lineChart('Message rates', rates, '/s'));
    replace(consumers, table('Consumers of this queue', [
      ['Channel', (c) => h('a', { href: `#/connections/${seg(c.channel_details.connection_name)}` }, `${c.channel_details.connection_name} (${c.channel_details.number})`)],
      ['Consumer tag', (c) => c.consumer_tag],
      ['Ack required', (c) => String(c.ack_required)], ['Exclusive', (c) => String(c.exclusive)],
      ['Prefetch', (c) => num(c.prefetch_count), 'num'], ['Arguments', (c) => h('pre', {}, args(c.arguments))],
    ], q.consumer_details || [], 'No consumers.'));
    await refreshBindings();
  }
  return { refresh };
}
