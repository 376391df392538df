// The Exchanges tab: the list with a declare form, and one exchange's page (bindings from and
// to it, add and remove bindings, publish a message, delete). Also exports the publish and
// bindings pieces the queue page reuses.

import { get, put, post, del, seg } from './api.js';
import { h, replace, facts, section, table } from './dom.js';
import { rate, features, args } from './format.js';
import { pagedList } from './list.js';
import { field, vhostField, argumentsEditor, form, dangerButton } from './forms.js';

/** The API's path name of an exchange (the default exchange is `amq.default`). */
export const apiName = (name) => name || 'amq.default';
const display = (name) => name || '(AMQP default)';
const exLink = (vhost, name) => h('a', { href: `#/exchanges/${seg(vhost)}/${seg(apiName(name))}`, 'data-key': `ex-${vhost}-${name}` }, display(name));
const qLink = (vhost, name) => h('a', { href: `#/queues/${seg(vhost)}/${seg(name)}`, 'data-key': `q-${vhost}-${name}` }, name);

/** A "Publish message" form for `exchange` in `vhost`; `routingKey` fixes the key (queue page). */
export function publishForm(vhost, exchange, routingKey) {
  const key = field('Routing key', { name: 'routing_key', value: routingKey ?? '', readonly: routingKey !== undefined });
  const mode = field('Delivery mode', { name: 'delivery_mode' }, 'select', [['1', '1 - non-persistent'], ['2', '2 - persistent']]);
  const headers = argumentsEditor('Headers');
  const props = argumentsEditor('Properties', ['content_type', 'correlation_id', 'reply_to', 'expiration', 'message_id', 'type', 'priority']);
  const payload = field('Payload', { name: 'payload', rows: 4 }, 'textarea');
  return form(null, [key.el, mode.el, headers.el, props.el, payload.el], async () => {
    const properties = { ...props.value(), delivery_mode: Number(mode.input.value) };
    const hs = headers.value();
    if (Object.keys(hs).length) properties.headers = hs;
    return post(`/exchanges/${seg(vhost)}/${seg(apiName(exchange))}/publish`, {
      properties, routing_key: key.input.value, payload: payload.input.value, payload_encoding: 'string',
    });
  }, (r) => (r && r.routed ? 'Message published.' : 'Message published, but not routed to any queue.'), null, 'Publish message');
}

/** A bindings table with an Unbind button per row; `after` re-reads it. */
export function bindingsTable(vhost, list, after, caption) {
  return table(caption, [
    ['From', (b) => exLink(vhost, b.source)],
    ['To', (b) => (b.destination_type === 'queue' ? qLink(vhost, b.destination) : exLink(vhost, b.destination))],
    ['Routing key', (b) => b.routing_key],
    ['Arguments', (b) => h('pre', {}, args(b.arguments))],
    ['Actions', (b) => (b.source === '' ? h('span', { class: 'muted' }, 'default binding') : dangerButton('Unbind', `Remove the binding from ${display(b.source)} to ${b.destination} (${b.routing_key})?`,
      () => del(`/bindings/${seg(vhost)}/e/${seg(b.source)}/${b.destination_type === 'queue' ? 'q' : 'e'}/${seg(b.destination)}/${seg(b.properties_key)}`),
      'Binding removed.', after))],
  ], list, 'No bindings.');
}

/** An "Add binding" form: from `fixedSource` to a named destination, or from a named source to `fixedQueue`. */
export function bindForm(vhost, { fixedSource, fixedQueue }, after) {
  const kind = field('Destination type', { name: 'kind' }, 'select', [['q', 'Queue'], ['e', 'Exchange']]);
  const other = field(fixedQueue !== undefined ? 'From exchange' : 'To', { name: 'other', required: true });
  const key = field('Routing key', { name: 'routing_key' });
  const a = argumentsEditor('Arguments');
  return form('Add binding', [fixedQueue !== undefined ? null : kind.el, other.el, key.el, a.el], () => {
    const body = { routing_key: key.input.value, arguments: a.value() };
    if (fixedQueue !== undefined) return post(`/bindings/${seg(vhost)}/e/${seg(other.input.value)}/q/${seg(fixedQueue)}`, body);
    return post(`/bindings/${seg(vhost)}/e/${seg(fixedSource)}/${kind.input.value}/${seg(other.input.value)}`, body);
  }, 'Binding added.', after, 'Bind');
}

function declareForm(ctx, after) {
  const vh = vhostField(ctx.vhosts, ctx.vhost || ctx.vhosts[0]);
  const name = field('Name', { name: 'name', required: true });
  const type = field('Type', { name: 'type' }, 'select', ['direct', 'fanout', 'topic', 'headers'].map((t) => [t, t]));
  const durable = field('Durable', { name: 'durable' }, 'select', [['true', 'Durable'], ['false', 'Transient']]);
  const auto = field('Auto delete', { name: 'auto_delete' }, 'select', [['false', 'No'], ['true', 'Yes']]);
  const internal = field('Internal', { name: 'internal' }, 'select', [['false', 'No'], ['true', 'Yes']]);
  const a = argumentsEditor('Arguments', ['alternate-exchange']);
  return form(null, [vh.el, name.el, type.el, durable.el, auto.el, internal.el, a.el], () => put(`/exchanges/${seg(vh.input.value)}/${seg(name.input.value)}`, {
    type: type.input.value, durable: durable.input.value === 'true', auto_delete: auto.input.value === 'true',
    internal: internal.input.value === 'true', arguments: a.value(),
  }), 'Exchange declared.', after, 'Add exchange');
}

function list(el, ctx) {
  const l = pagedList({
    id: 'exchanges',
    noun: 'exchanges',
    path: () => (ctx.vhost ? `/exchanges/${seg(ctx.vhost)}` : '/exchanges'),
    apiColumns: 'name,vhost,type,durable,auto_delete,internal,arguments,policy,message_stats',
    columns: [
      { title: 'Virtual host', cell: (x) => x.vhost, sort: 'vhost' },
      { title: 'Name', cell: (x) => exLink(x.vhost, x.name), sort: 'name' },
      { title: 'Type', cell: (x) => x.type, sort: 'type' },
      { title: 'Features', cell: (x) => features(x) },
      { title: 'Policy', cell: (x) => x.policy || '' },
      { title: 'Rate in', cell: (x) => rate(x.message_stats && x.message_stats.publish_in_details), cls: 'num' },
      { title: 'Rate out', cell: (x) => rate(x.message_stats && x.message_stats.publish_out_details), cls: 'num' },
    ],
  });
  replace(el, h('h1', {}, 'Exchanges'), l.el, section('Add a new exchange', false, declareForm(ctx, l.refresh)));
  return { refresh: l.refresh };
}

function detail(el, vhost, name) {
  const exchange = name === 'amq.default' ? '' : name;
  const info = h('div');
  const source = h('div');
  const dest = h('div');
  const refreshBindings = async () => {
    const [s, d] = await Promise.all([
      get(`/exchanges/${seg(vhost)}/${seg(name)}/bindings/source`),
      get(`/exchanges/${seg(vhost)}/${seg(name)}/bindings/destination`),
    ]);
    replace(source, bindingsTable(vhost, s, refreshBindings, 'Bindings from this exchange'));
    replace(dest, bindingsTable(vhost, d, refreshBindings, 'Bindings to this exchange'));
  };
  const builtIn = exchange === '' || exchange.startsWith('amq.');
  replace(el, h('p', { class: 'crumbs' }, h('a', { href: '#/exchanges' }, 'Exchanges'), ` › virtual host ${vhost}`),
    h('h1', {}, 'Exchange ', h('span', { class: 'name' }, display(exchange))),
    section('Details', true, info),
    section('Bindings', true, h('h3', {}, 'From this exchange'), source, h('h3', {}, 'To this exchange'), dest,
      exchange === '' ? null : bindForm(vhost, { fixedSource: exchange }, refreshBindings)),
    section('Publish message', true, publishForm(vhost, exchange)),
    builtIn ? null : section('Delete this exchange', false,
      dangerButton('Delete', `Delete exchange ${exchange}?`, () => del(`/exchanges/${seg(vhost)}/${seg(exchange)}`),
        'Exchange deleted.', () => { location.hash = '#/exchanges'; })));

  async function refresh() {
    const x = await get(`/exchanges/${seg(vhost)}/${seg(name)}`);
    replace(info, facts([
      ['Virtual host', x.vhost], ['Type', x.type], ['Features', features(x) || 'none'],
      ['Policy', x.policy || 'none'], ['Arguments', h('pre', {}, args(x.arguments) || 'none')],
      ['Rate in', rate(x.message_stats && x.message_stats.publish_in_details) || '0.0/s'],
      ['Rate out', rate(x.message_stats && x.message_stats.publish_out_details) || '0.0/s'],
    ]));
    await refreshBindings();
  }
  return { refresh };
}

/** Mounts the list, or one exchange when the route names vhost and exchange. */
export function mount(el, route, ctx) {
  return route.length >= 2 ? detail(el, route[0], route[1]) : list(el, ctx);
}
