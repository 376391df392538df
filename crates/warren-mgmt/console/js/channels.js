// The Channels tab: every channel the user may see, with prefetch, unacknowledged and
// unconfirmed counts, consumers and message rates.

import { seg } from './api.js';
import { h, replace } from './dom.js';
import { num, rate } from './format.js';
import { pagedList } from './list.js';

/** Mounts the channel list. */
export function mount(el) {
  const l = pagedList({
    id: 'channels',
    noun: 'channels',
    // The API has no per-vhost channel list yet, so this tab always shows every vhost's.
    path: () => '/channels',
    columns: [
      { title: 'Channel', cell: (c) => h('a', { href: `#/connections/${seg(c.connection_details.name)}`, 'data-key': `chan-${c.name}` }, c.name), sort: 'name' },
      { title: 'Virtual host', cell: (c) => c.vhost, sort: 'vhost' },
      { title: 'User', cell: (c) => c.user, sort: 'user' },
      { title: 'State', cell: (c) => c.state, sort: 'state' },
      { title: 'Prefetch', cell: (c) => num(c.prefetch_count), sort: 'prefetch_count', cls: 'num' },
      { title: 'Unacked', cell: (c) => num(c.messages_unacknowledged), sort: 'messages_unacknowledged', cls: 'num' },
      { title: 'Unconfirmed', cell: (c) => num(c.messages_unconfirmed), sort: 'messages_unconfirmed', cls: 'num' },
      { title: 'Consumers', cell: (c) => num(c.consumer_count), sort: 'consumer_count', cls: 'num' },
      { title: 'Publish', cell: (c) => rate(c.message_stats && c.message_stats.publish_details), cls: 'num' },
      { title: 'Deliver / get', cell: (c) => rate(c.message_stats && c.message_stats.deliver_get_details), cls: 'num' },
      { title: 'Ack', cell: (c) => rate(c.message_stats && c.message_stats.ack_details), cls: 'num' },
    ],
  });
  replace(el, h('h1', {}, 'Channels'), h('p', { class: 'muted' }, 'Channels of every virtual host you can see.'), l.el);
  return { refresh: l.refresh };
}
