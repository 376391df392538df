// amqplib scenarios (issue 6): dead-lettering and the x-death header.
// Expected behaviour: conformance/reference/queue-features.md (RabbitMQ 3.10). amqplib keeps the
// key order of tables and decodes timestamps as {'!': 'timestamp', value}, so both are checked.
'use strict';

const {
  scenario, check, show, eq, sleep, withWorld, drain, waitCount,
} = require('./amqplib_common');

const FIRST_ENTRY_KEYS = ['count', 'reason', 'queue', 'time', 'exchange', 'routing-keys'];
const SORTED_ENTRY_KEYS = ['count', 'exchange', 'queue', 'reason', 'routing-keys', 'time'];

// x-death entries without 'time' (checked: a timestamp in seconds, near now) + other headers.
function xDeath(m, what) {
  const h = m.properties.headers || {};
  check(Array.isArray(h['x-death']), `${what}: no x-death array in ${show(h)}`);
  const entries = h['x-death'].map((e, i) => {
    const t = e.time;
    check(t && t['!'] === 'timestamp' && Math.abs(t.value - Date.now() / 1000) < 300,
      `${what}: x-death[${i}].time ${show(t)} is not a timestamp of now in seconds`);
    const copy = { ...e };
    delete copy.time;
    return copy;
  });
  const rest = { ...h };
  delete rest['x-death'];
  return { entries, rest, raw: h['x-death'] };
}

const firstDeath = (reason, queue, exchange) => ({
  'x-first-death-reason': reason, 'x-first-death-queue': queue, 'x-first-death-exchange': exchange });

scenario('dlx_reject_nack', (url) => withWorld(url, async (w) => {
  const ex = await w.exchange('ex-src', 'direct');
  const dlx = await w.exchange('ex-dlx', 'topic');
  const src = await w.queue('q-src', { arguments: { 'x-dead-letter-exchange': dlx } });
  const dead = await w.queue('q-dead');
  await w.ch.bindQueue(src, ex, 'rk');
  await w.ch.bindQueue(dead, dlx, '#');
  const props = { messageId: 'id', deliveryMode: 2, expiration: '60000', headers: { CC: ['cc1'], mine: 'x' } };
  for (let i = 0; i < 4; i++) await w.publish(ex, 'rk', `m${i}`, props);
  const ch = await w.channel();
  const got = [];
  for (let i = 0; i < 4; i++) got.push(await ch.get(src, { noAck: false }));
  ch.reject(got[0], false);
  ch.nack(got[2], true, false);
  ch.nack(got[3], false, true);
  eq(await waitCount(w, dead, 3), 3, 'dead-lettered messages');
  eq(await w.count(src), 1, 'messages left in the source queue');
  const msgs = await drain(w.ch, dead);
  msgs.forEach((m, i) => {
    const what = `dead-lettered m${i}`;
    eq([m.content.toString(), m.fields.exchange, m.fields.routingKey, m.fields.redelivered],
      [`m${i}`, dlx, 'rk', false], `${what}: body, exchange, routing key, redelivered`);
    eq([m.properties.expiration, m.properties.messageId, m.properties.deliveryMode], [undefined, 'id', 2],
      `${what}: expiration (removed), message_id, delivery_mode`);
    const { entries, rest } = xDeath(m, what);
    eq(entries, [{ count: 1, reason: 'rejected', queue: src, exchange: ex, 'routing-keys': ['rk', 'cc1'],
      'original-expiration': '60000' }], `${what}: x-death`);
    eq(rest, { CC: ['cc1'], mine: 'x', ...firstDeath('rejected', src, ex) }, `${what}: other headers`);
  });
  await ch.close();
  eq([await w.count(src), await w.count(dead)], [1, 0], 'counts (source, dead) after channel close');
}));

scenario('dlx_routing_keys', (url) => withWorld(url, async (w) => {
  const ex = await w.exchange('ex-src', 'direct');
  const dlx = await w.exchange('ex-dlx', 'direct');
  const byKey = await w.queue('q-src-keys', { arguments: { 'x-dead-letter-exchange': dlx } });
  const override = await w.queue('q-src-override', { arguments: { 'x-dead-letter-exchange': dlx, 'x-dead-letter-routing-key': 'dl' } });
  const deadRk = await w.queue('q-dead-rk');
  const deadCc = await w.queue('q-dead-cc');
  const deadDl = await w.queue('q-dead-dl');
  for (const q of [byKey, override]) await w.ch.bindQueue(q, ex, 'rk');
  await w.ch.bindQueue(deadRk, dlx, 'rk');
  await w.ch.bindQueue(deadCc, dlx, 'cc1');
  await w.ch.bindQueue(deadDl, dlx, 'dl');
  await w.publish(ex, 'rk', 'm', { headers: { CC: ['cc1'] } });
  for (const q of [byKey, override]) {
    const m = await w.ch.get(q, { noAck: false });
    w.ch.reject(m, false);
  }
  eq(await waitCount(w, deadCc, 1), 1, 'copy routed to the DLX by the CC key');
  eq(await waitCount(w, deadRk, 1), 1, 'copy routed to the DLX by the original key');
  eq(await waitCount(w, deadDl, 1), 1, 'copies routed by the dead-letter routing key');
  for (const [q, key, cc] of [[deadCc, 'rk', true], [deadDl, 'dl', false]]) {
    const m = await w.ch.get(q, { noAck: true });
    eq([m.fields.exchange, m.fields.routingKey], [dlx, key], `delivery from ${q}: exchange, routing key`);
    const { entries, rest } = xDeath(m, `dead-lettered into ${q}`);
    eq(entries[0]['routing-keys'], ['rk', 'cc1'], 'x-death routing-keys');
    eq(rest.CC, cc ? ['cc1'] : undefined, 'CC header after dead-lettering');
  }
}));

scenario('dlx_expired', (url) => withWorld(url, async (w) => {
  const dead = await w.queue('q-dead');
  const q = await w.queue('q-ttl', { arguments: { 'x-message-ttl': 200, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': dead } });
  await w.publish('', q, 'queue-ttl');
  eq(await waitCount(w, dead, 1), 1, 'dead-lettered after the queue TTL');
  await w.publish('', q, 'message-ttl', { expiration: '100' });
  eq(await waitCount(w, dead, 2), 2, 'dead-lettered after the message TTL');
  for (const [body, extra] of [['queue-ttl', {}], ['message-ttl', { 'original-expiration': '100' }]]) {
    const m = await w.ch.get(dead, { noAck: true });
    eq([m.content.toString(), m.fields.exchange, m.fields.routingKey, m.properties.expiration],
      [body, '', dead, undefined], 'body, exchange, routing key, expiration');
    const { entries, rest } = xDeath(m, body);
    eq(entries, [{ count: 1, reason: 'expired', queue: q, exchange: '', 'routing-keys': [q], ...extra }], `${body}: x-death`);
    eq(rest, firstDeath('expired', q, ''), `${body}: other headers`);
  }
}));

scenario('dlx_maxlen', (url) => withWorld(url, async (w) => {
  const dead = await w.queue('q-dead');
  const q = await w.queue('q-maxlen', { arguments: { 'x-max-length': 1, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': dead } });
  await w.publish('', q, 'a', { expiration: '5000' });
  await w.publish('', q, 'b');
  await w.publish('', q, 'c');
  eq((await drain(w.ch, q)).map((m) => m.content.toString()), ['c'], 'messages kept');
  eq(await waitCount(w, dead, 2), 2, 'dead-lettered messages');
  for (const [body, extra] of [['a', { 'original-expiration': '5000' }], ['b', {}]]) {
    const m = await w.ch.get(dead, { noAck: true });
    eq(m.content.toString(), body, 'dead-lettered body (oldest first)');
    const { entries, rest } = xDeath(m, body);
    eq(entries, [{ count: 1, reason: 'maxlen', queue: q, exchange: '', 'routing-keys': [q], ...extra }], `${body}: x-death`);
    eq(rest, firstDeath('maxlen', q, ''), `${body}: other headers`);
  }
}));

scenario('dlx_not_dead_lettered', (url) => withWorld(url, async (w) => {
  const dead = await w.queue('q-dead');
  const q = await w.queue('q-src', { arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': dead } });
  for (let i = 0; i < 2; i++) await w.publish('', q, `m${i}`);
  const m = await w.ch.get(q, { noAck: false });
  w.ch.reject(m, true);
  eq((await w.ch.purgeQueue(q)).messageCount, 2, 'purge-ok message_count');
  await w.publish('', q, 'deleted');
  await w.ch.deleteQueue(q);
  const missing = await w.queue('q-src-missing', { arguments: { 'x-dead-letter-exchange': 'conf.no-such-x' } });
  await w.publish('', missing, 'lost');
  const m2 = await w.ch.get(missing, { noAck: false });
  w.ch.reject(m2, false);
  await sleep(300);
  eq([await w.count(missing), await w.count(dead)], [0, 0], 'counts after requeue, purge, delete and a missing DLX');
}));

scenario('dlx_x_death_wire_layout', (url) => withWorld(url, async (w) => {
  const a = w.queueName('q-a');
  const b = w.queueName('q-b');
  await w.ch.assertQueue(a, { arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': b } });
  await w.ch.assertQueue(b, { arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': a } });
  await w.publish('', a, 'm', { expiration: '60000', headers: { z: 1, a: 's' } });
  async function bounce(src, dst) {
    const m = await w.ch.get(src, { noAck: false });
    w.ch.reject(m, false);
    eq(await waitCount(w, dst, 1), 1, `message dead-lettered into ${dst}`);
    const d = await w.ch.get(dst, { noAck: false });
    w.ch.reject(d, true);
    return d.properties.headers;
  }
  let h = await bounce(a, b);
  eq(Object.keys(h), ['a', 'x-death', 'x-first-death-exchange', 'x-first-death-queue', 'x-first-death-reason', 'z'],
    'header order after the first death');
  const [e1] = h['x-death'];
  eq(Object.keys(e1), [...FIRST_ENTRY_KEYS, 'original-expiration'], 'first entry: key order');
  eq({ ...e1, time: undefined }, { count: 1, reason: 'rejected', queue: a, time: undefined, exchange: '',
    'routing-keys': [a], 'original-expiration': '60000' }, 'first entry');
  await sleep(1100);
  h = await bounce(b, a);
  let entries = h['x-death'];
  eq(entries.length, 2, 'entries after the second death');
  eq(Object.keys(entries[0]), SORTED_ENTRY_KEYS, 'new entry: key order');
  eq(entries[1], e1, 'old entry unchanged');
  check(entries[0].time.value > e1.time.value, `time of the second death ${show(entries[0].time)} not after ${show(e1.time)}`);
  const e2 = entries[0];
  h = await bounce(a, b);
  entries = h['x-death'];
  eq(entries.length, 2, 'entries after the third death');
  eq(Object.keys(entries[0]), ['count', 'exchange', 'original-expiration', 'queue', 'reason', 'routing-keys', 'time'],
    'incremented entry: key order');
  eq(entries[0], { ...e1, count: 2 }, 'incremented entry (count 2, time of the first death)');
  eq(entries[1], e2, 'entry of the second death');
  eq(h['x-first-death-queue'], a, 'x-first-death-queue');
}));

scenario('dlx_cycles', (url) => withWorld(url, async (w) => {
  const selfKey = await w.queue('q-self', { arguments: { 'x-message-ttl': 100, 'x-dead-letter-exchange': '' } });
  const selfRk = w.queueName('q-self-rk');
  await w.ch.assertQueue(selfRk, { arguments: { 'x-message-ttl': 100, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': selfRk } });
  const q1 = w.queueName('q-loop1');
  const q2 = w.queueName('q-loop2');
  await w.ch.assertQueue(q1, { arguments: { 'x-message-ttl': 100, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': q2 } });
  await w.ch.assertQueue(q2, { arguments: { 'x-message-ttl': 500, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': q1 } });
  for (const q of [selfKey, selfRk, q1]) await w.publish('', q, 'cycle');
  eq(await waitCount(w, q2, 1, 3000), 1, 'the message reached the second queue of the loop');
  for (const q of [selfKey, selfRk, q1, q2]) eq(await waitCount(w, q, 0), 0, `message_count of ${q}`);
  const got = [];
  for (const q of [selfKey, selfRk, q1, q2]) await w.ch.consume(q, (m) => got.push(m), { noAck: true });
  await sleep(600);
  eq(got.length, 0, 'deliveries from the cycling queues after the drop');
  const rej = await w.queue('q-rej-self', { arguments: { 'x-dead-letter-exchange': '' } });
  await w.publish('', rej, 'r');
  for (let i = 0; i < 3; i++) {
    const m = await w.ch.get(rej, { noAck: false });
    check(m, `rejected message not back after reject ${i}`);
    w.ch.reject(m, false);
    await waitCount(w, rej, 1);
  }
  const m = await w.ch.get(rej, { noAck: true });
  eq(xDeath(m, 'after 3 rejects').entries,
    [{ count: 3, exchange: '', queue: rej, reason: 'rejected', 'routing-keys': [rej] }], 'x-death after 3 rejects into itself');
}));

scenario('dlx_retry_with_delay', (url) => withWorld(url, async (w) => {
  const work = w.queueName('q-work');
  const retry = w.queueName('q-retry');
  await w.ch.assertQueue(work, { arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': retry } });
  await w.ch.assertQueue(retry, { arguments: { 'x-message-ttl': 100, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': work } });
  await w.publish('', work, 'job', { headers: { attempt: 'x' } });
  for (let i = 0; i < 2; i++) {
    const m = await w.ch.get(work, { noAck: false });
    check(m, `job not back in the work queue (round ${i})`);
    w.ch.reject(m, false);
    eq(await waitCount(w, work, 1), 1, `job back in the work queue after round ${i + 1}`);
  }
  const m = await w.ch.get(work, { noAck: true });
  const { entries, rest, raw } = xDeath(m, 'after two rounds');
  eq(entries, [
    { count: 2, exchange: '', queue: retry, reason: 'expired', 'routing-keys': [retry] },
    { count: 2, exchange: '', queue: work, reason: 'rejected', 'routing-keys': [work] },
  ], 'x-death after two reject/expire rounds');
  eq(raw.map((e) => Object.keys(e)), [SORTED_ENTRY_KEYS, SORTED_ENTRY_KEYS], 'key order of both entries');
  eq(rest, { attempt: 'x', ...firstDeath('rejected', work, '') }, 'other headers');
}));
