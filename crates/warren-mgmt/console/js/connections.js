// The Connections tab: the list (with rates and channel counts) and one connection's page
// (its channels, and "Force close" for whoever may close it).

import { get, del, seg } from './api.js';
import { h, replace, facts, section, table } from './dom.js';
import { num, bytes, rate, when } from './format.js';
import { pagedList } from './list.js';
import { form, field } from './forms.js';

const link = (c) => h('a', { href: `#/connections/${seg(c.name)}`, 'data-key': `conn-${c.name}` }, c.name);

function list(el, ctx) {
  const l = pagedList({
    id: 'connections',
    noun: 'connections',
    path: () => (ctx.vhost ? `/vhosts/${seg(ctx.vhost)}/connections` : '/connections'),
    apiColumns: 'name,vhost,user,state,channels,recv_oct_details,send_oct_details,peer_host,peer_port,connected_at,protocol',
    columns: [
      { title: 'Name', cell: link, sort: 'name' },
      { title: 'Virtual host', cell: (c) => c.vhost, sort: 'vhost' },
      { title: 'User', cell: (c) => c.user, sort: 'user' },
      { title: 'State', cell: (c) => c.state, sort: 'state' },
      { title: 'Channels', cell: (c) => num(c.channels), sort: 'channels', cls: 'num' },
      { title: 'From client', cell: (c) => rate(c.recv_oct_details).replace('/s', ' B/s'), sort: 'recv_oct_details.rate', cls: 'num' },
      { title: 'To client', cell: (c) => rate(c.send_oct_details).replace('/s', ' B/s'), sort: 'send_oct_details.rate', cls: 'num' },
      { title: 'Connected at', cell: (c) => when(c.connected_at), sort: 'connected_at' },
    ],
  });
  replace(el, h('h1', {}, 'Connections'), l.el);
  return { refresh: l.refresh };
}

function detail(el, name) {
  const info = h('div');
  const chans = h('div');
  const reason = field('Reason', { name: 'reason', value: 'Closed via management plugin' });
  replace(el, h('p', { class: 'crumbs' }, h('a', { href: '#/connections' }, 'Connections'), ' ›'),
    h('h1', {}, 'Connection ', h('span', { class: 'name' }, name)),
    section('Details', true, info),
    section('Channels', true, chans),
    section('Close this connection', true,
      form(null, reason.el, async () => {
        // RabbitMQ's console sends the reason in `X-Reason`; the client sees it in connection.close.
        await del(`/connections/${seg(name)}`, { 'x-reason': reason.input.value });
      }, 'Connection closed.', () => { location.hash = '#/connections'; }, 'Force close')));

  async function refresh() {
    const c = await get(`/connections/${seg(name)}`);
    replace(info, facts([
      ['Virtual host', c.vhost], ['User', c.user], ['State', c.state], ['Protocol', c.protocol],
      ['Client', `${c.peer_host}:${c.peer_port}`], ['Connected at', when(c.connected_at)],
      ['Received', `${bytes(c.recv_oct)} (${rate(c.recv_oct_details).replace('/s', ' B/s')})`],
      ['Sent', `${bytes(c.send_oct)} (${rate(c.send_oct_details).replace('/s', ' B/s')})`],
      ['Channels', num(c.channels)],
    ]));
    const cs = await get(`/connections/${seg(name)}/channels`);
    replace(chans, table('Channels of this connection', [
      ['Channel', (ch) => String(ch.number), 'num'],
      ['Prefetch', (ch) => num(ch.prefetch_count), 'num'],
      ['Unacked', (ch) => num(ch.messages_unacknowledged), 'num'],
      ['Unconfirmed', (ch) => num(ch.messages_unconfirmed), 'num'],
      ['Consumers', (ch) => num(ch.consumer_count), 'num'],
      ['State', (ch) => ch.state],
    ], cs, 'No channels open.'));
  }
  return { refresh };
}

/** Mounts the list, or one connection when the route names it. */
export function mount(el, route, ctx) {
  return route.length ? detail(el, route[0]) : list(el, ctx);
}

