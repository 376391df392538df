// amqplib scenarios (issue 12): RabbitMQ 3.10's regrouping of an x-death array with several
// entries (see pika_x_death.py): the groups come back in reverse order before the new death is
// put first, and old per-death entries are merged per (queue, reason).
'use strict';

const { scenario, eq, withWorld, waitCount } = require('./amqplib_common');

async function chain(w, tags) {
  const names = tags.map((t) => w.queueName(t));
  for (let i = 0; i < names.length; i += 1) {
    const args = i + 1 < names.length
      ? { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': names[i + 1] } : {};
    await w.ch.assertQueue(names[i], { arguments: args });
  }
  return names;
}

async function rejectOne(w, q) {
  const m = await w.ch.get(q, { noAck: false });
  w.ch.reject(m, false);
}

const deaths = (m) => (m.properties.headers['x-death'] || [])
  .map((e) => [e.queue, e.reason, e.count]);

scenario('x_death_third_death_order', (url) => withWorld(url, async (w) => {
  const [a, b, c, d] = await chain(w, ['xd-a', 'xd-b', 'xd-c', 'xd-d']);
  await w.ch.sendToQueue(a, Buffer.from('m'));
  for (const [src, dst] of [[a, b], [b, c], [c, d]]) {
    await waitCount(w, src, 1);
    await rejectOne(w, src);
    await waitCount(w, dst, 1);
  }
  const m = await w.ch.get(d, { noAck: true });
  eq(deaths(m), [[c, 'rejected', 1], [a, 'rejected', 1], [b, 'rejected', 1]], 'x-death after three deaths');
}));

scenario('x_death_old_entries_are_merged', (url) => withWorld(url, async (w) => {
  const [a, b] = await chain(w, ['xd-old-a', 'xd-old-b']);
  const old = [
    { queue: 'old', reason: 'expired', count: 1 },
    { queue: 'old', reason: 'expired' },
    { queue: 'other', reason: 'rejected' },
    { queue: 'other', reason: 'rejected' },
    { queue: 'third', reason: 'maxlen', count: 5 },
  ];
  await w.ch.sendToQueue(a, Buffer.from('m'), { headers: { 'x-death': old } });
  await waitCount(w, a, 1);
  await rejectOne(w, a);
  await waitCount(w, b, 1);
  const m = await w.ch.get(b, { noAck: true });
  eq(deaths(m), [[a, 'rejected', 1], ['third', 'maxlen', 5], ['other', 'rejected', 2], ['old', 'expired', 1]],
    'x-death merged');
}));
