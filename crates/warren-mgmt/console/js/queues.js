// The Queues tab: the server-paginated list (filter, sort, page) and the declare form with
// arguments.

import { put, seg } from './api.js';
import { h, replace, section } from './dom.js';
import { num, rate, features } from './format.js';
import { pagedList } from './list.js';
import { field, vhostField, argumentsEditor, form } from './forms.js';

/** The x-arguments RabbitMQ's console offers as shortcuts. */
export const QUEUE_ARGUMENTS = ['x-message-ttl', 'x-expires', 'x-max-length', 'x-max-length-bytes', 'x-overflow',
  'x-dead-letter-exchange', 'x-dead-letter-routing-key', 'x-max-priority', 'x-single-active-consumer', 'x-queue-mode', 'x-queue-type'];

function declareForm(ctx, after) {
  const vh = vhostField(ctx.vhosts, ctx.vhost || ctx.vhosts[0]);
  const name = field('Name', { name: 'name', required: true });
  const durable = field('Durability', { name: 'durable' }, 'select', [['true', 'Durable'], ['false', 'Transient']]);
  const auto = field('Auto delete', { name: 'auto_delete' }, 'select', [['false', 'No'], ['true', 'Yes']]);
  const a = argumentsEditor('Arguments', QUEUE_ARGUMENTS);
  return form(null, [vh.el, name.el, durable.el, auto.el, a.el], () => put(`/queues/${seg(vh.input.value)}/${seg(name.input.value)}`, {
    durable: durable.input.value === 'true', auto_delete: auto.input.value === 'true', arguments: a.value(),
  }), () => `Queue ${name.input.value} declared.`, after, 'Add queue');
}

/** Mounts the queue list. */
export function mount(el, _route, ctx) {
  const l = pagedList({
    id: 'queues',
    noun: 'queues',
    path: () => (ctx.vhost ? `/queues/${seg(ctx.vhost)}` : '/queues'),
    // Only what the table shows: at 500 rows per page the reply stays small.
    apiColumns: 'name,vhost,type,durable,auto_delete,exclusive,arguments,policy,state,messages,messages_ready,messages_unacknowledged,consumers,message_stats.publish_details,message_stats.deliver_get_details,message_stats.ack_details',
    columns: [
      { title: 'Virtual host', cell: (q) => q.vhost, sort: 'vhost' },
      { title: 'Name', cell: (q) => h('a', { href: `#/queues/${seg(q.vhost)}/${seg(q.name)}`, 'data-key': `q-${q.vhost}-${q.name}` }, q.name), sort: 'name' },
      { title: 'Type', cell: (q) => q.type },
      { title: 'Features', cell: (q) => features(q) },
      { title: 'Policy', cell: (q) => q.policy || '', sort: 'policy' },
      { title: 'State', cell: (q) => q.state, sort: 'state' },
      { title: 'Ready', cell: (q) => num(q.messages_ready), sort: 'messages_ready', cls: 'num' },
      { title: 'Unacked', cell: (q) => num(q.messages_unacknowledged), sort: 'messages_unacknowledged', cls: 'num' },
      { title: 'Total', cell: (q) => num(q.messages), sort: 'messages', cls: 'num' },
      { title: 'Consumers', cell: (q) => num(q.consumers), sort: 'consumers', cls: 'num' },
      { title: 'Incoming', cell: (q) => rate(q.message_stats && q.message_stats.publish_details), sort: 'message_stats.publish_details.rate', cls: 'num' },
      { title: 'Deliver / get', cell: (q) => rate(q.message_stats && q.message_stats.deliver_get_details), sort: 'message_stats.deliver_get_details.rate', cls: 'num' },
      { title: 'Ack', cell: (q) => rate(q.message_stats && q.message_stats.ack_details), sort: 'message_stats.ack_details.rate', cls: 'num' },
    ],
  });
  replace(el, h('h1', {}, 'Queues'), l.el, section('Add a new queue', true, declareForm(ctx, l.refresh)));
  return { refresh: l.refresh };
}
