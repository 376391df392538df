// amqplib scenarios (issue 6): message TTL, queue expiry (x-expires), length limits.
// Expected behaviour: conformance/reference/queue-features.md (RabbitMQ 3.10).
'use strict';

const {
  scenario, check, eq, sleep, waitUntil, unique, escapeRe, withWorld, collect, expectChannelError,
  drain, publishOutcome, waitCount, queueGone,
} = require('./amqplib_common');

const bodies = (msgs) => msgs.map((m) => m.content.toString());

// ------------------------------------------------------------------ message TTL

scenario('ttl_queue_message_ttl', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-ttl', { arguments: { 'x-message-ttl': 400 } });
  const t0 = Date.now();
  for (let i = 0; i < 3; i++) await w.publish('', q, `m${i}`);
  const n = await w.count(q);
  if (Date.now() - t0 < 300) eq(n, 3, 'message_count right after the publishes');
  eq(await waitCount(w, q, 0, 5000), 0, 'message_count 5 s after a 400 ms TTL');
  const elapsed = Date.now() - t0;
  check(elapsed >= 350, `messages gone after ${elapsed} ms, before their 400 ms TTL`);
  const { msgs } = await collect(w.ch, q, 1, { timeout: 300 });
  eq(msgs.length, 0, 'deliveries after expiry');
  eq(await w.ch.get(q), false, 'basic.get after expiry');
  return `expired after ${elapsed} ms`;
}));

scenario('ttl_per_message_lower_wins', (url) => withWorld(url, async (w) => {
  const longQ = await w.queue('q-ttl-long', { arguments: { 'x-message-ttl': 60000 } });
  const shortQ = await w.queue('q-ttl-short', { arguments: { 'x-message-ttl': 300 } });
  const plain = await w.queue('q-ttl-none');
  const t0 = Date.now();
  await w.publish('', longQ, 'short', { expiration: '300' });
  await w.publish('', shortQ, 'long', { expiration: '60000' });
  await w.publish('', plain, 'kept', { expiration: '60000' });
  eq(await waitCount(w, longQ, 0, 5000), 0, 'queue TTL 60 s, expiration 300: message_count');
  eq(await waitCount(w, shortQ, 0, 5000), 0, 'queue TTL 300, expiration 60 s: message_count');
  check(Date.now() - t0 >= 250, `expired after ${Date.now() - t0} ms, before 300 ms`);
  eq(await w.count(plain), 1, 'message with expiration 60 s in a queue without TTL');
  const m = await w.ch.get(plain, { noAck: true });
  eq([m.content.toString(), m.properties.expiration], ['kept', '60000'], 'delivered body and expiration');
}));

scenario('ttl_expired_only_at_head', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-ttl-head');
  await w.publish('', q, 'long', { expiration: '5000' });
  await w.publish('', q, 'short', { expiration: '50' });
  await w.publish('', q, 'none');
  await sleep(300);
  eq(await w.count(q), 3, 'message_count with an expired message behind a live one');
  let m = await w.ch.get(q, { noAck: true });
  eq([m.content.toString(), m.properties.expiration, m.fields.messageCount], ['long', '5000', 1],
    'first get-ok (body, expiration, message_count: the expired one is dropped)');
  m = await w.ch.get(q, { noAck: true });
  eq([m.content.toString(), m.fields.messageCount], ['none', 0], 'second get-ok');
  eq(await w.ch.get(q), false, 'third basic.get');
}));

scenario('ttl_zero', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-ttl0', { arguments: { 'x-message-ttl': 0 } });
  await w.publish('', q, 'a');
  eq(await w.count(q), 0, 'TTL 0 without a consumer: message_count');
  eq(await w.ch.get(q), false, 'TTL 0 without a consumer: basic.get');
  const got = [];
  const { consumerTag } = await w.ch.consume(q, (m) => got.push([m.content.toString(), m.properties.expiration]), { noAck: true });
  await w.publish('', q, 'b');
  await waitUntil(() => got.length, 3000);
  eq(got, [['b', undefined]], 'TTL 0 with a ready consumer: deliveries (body, expiration)');
  await w.ch.cancel(consumerTag);
  const ch2 = await w.channel();
  await ch2.prefetch(1);
  const got2 = [];
  await ch2.consume(q, (m) => got2.push(m), { noAck: false });
  await w.publish('', q, 'c');
  await w.publish('', q, 'd');
  await sleep(300);
  eq(bodies(got2), ['c'], 'TTL 0, consumer with prefetch 1: deliveries');
  eq(await w.count(q), 0, 'TTL 0, consumer busy: message_count');
  ch2.ack(got2[0]);
  await sleep(300);
  eq(bodies(got2), ['c'], 'deliveries after the ack (the expired one never comes)');
  const plain = await w.queue('q-exp0');
  await w.publish('', plain, 'e', { expiration: '0' });
  eq(await w.count(plain), 0, 'expiration 0 without a consumer: message_count');
  const got3 = [];
  await w.ch.consume(plain, (m) => got3.push([m.content.toString(), m.properties.expiration]), { noAck: true });
  await w.publish('', plain, 'f', { expiration: '0' });
  await waitUntil(() => got3.length, 3000);
  eq(got3, [['f', '0']], 'expiration 0 with a ready consumer: deliveries');
}));

scenario('ttl_invalid_expiration', (url) => withWorld(url, async (w) => {
  const out = [];
  for (const [value, why] of [['-1', '{value_negative,-1}'], ['abc', 'no_integer'],
    ['1.5', '{leftover_string,".5"}']]) {
    out.push(await expectChannelError(w, async (ch) => {
      ch.publish('amq.direct', 'nowhere', Buffer.from('x'), { expiration: value });
      await ch.assertQueue('', { exclusive: true });
    }, 406, escapeRe(`PRECONDITION_FAILED - invalid expiration '${value}': ${why}`)));
  }
  return out[0];
}));

// ------------------------------------------------------------------ queue expiry

scenario('queue_expires', (url) => withWorld(url, async (w) => {
  const idle = await w.queue('q-expires-idle', { arguments: { 'x-expires': 300 } });
  const used = await w.queue('q-expires-used', { arguments: { 'x-expires': 300 } });
  await w.publish('', idle, 'not a use');
  const { consumerTag } = await w.ch.consume(used, () => {}, { noAck: true });
  await sleep(800);
  eq(await queueGone(w, idle), [404, `NOT_FOUND - no queue '${idle}' in vhost '/'`],
    'passive declare of a queue unused for 800 ms (x-expires 300)');
  eq(await queueGone(w, used), false, 'queue with a consumer after 800 ms');
  await w.ch.cancel(consumerTag);
  const t0 = Date.now();
  const res = await waitUntil(() => queueGone(w, used), 5000, 600);
  check(res, 'queue still there 5 s after its last consumer cancelled (x-expires 300)');
  eq(res[0], 404, 'passive declare reply code');
  return `gone ${((Date.now() - t0) / 1000).toFixed(1)} s after the cancel`;
}));

// ------------------------------------------------------------------ length limits

async function outcomes(w, ex, q, list) {
  const out = [];
  for (const b of list) out.push(await publishOutcome(w.ch, ex, q, b));
  return out;
}

const drained = async (w, q) => bodies(await drain(w.ch, q));

scenario('maxlen_drop_head', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-maxlen', { arguments: { 'x-max-length': 2 } });
  eq(await outcomes(w, '', q, ['m0', 'm1', 'm2', 'm3']), ['ack', 'ack', 'ack', 'ack'], 'confirms');
  eq(await drained(w, q), ['m2', 'm3'], 'messages kept (the oldest are dropped)');
  const qb = await w.queue('q-maxbytes', { arguments: { 'x-max-length-bytes': 10, 'x-overflow': 'drop-head' } });
  eq(await outcomes(w, '', qb, ['12345', '67890', 'abc', '']), ['ack', 'ack', 'ack', 'ack'], 'confirms (bytes)');
  eq(await drained(w, qb), ['67890', 'abc', ''], 'messages kept (body bytes only count)');
  const q1 = await w.queue('q-maxlen1', { arguments: { 'x-max-length': 1 } });
  await w.publish('', q1, 'first');
  const m = await w.ch.get(q1, { noAck: false });
  eq(await publishOutcome(w.ch, '', q1, 'second'), 'ack', 'publish while first is unacked');
  eq(await w.count(q1), 1, 'message_count (unacked ones do not count)');
  w.ch.nack(m, false, true);
  eq(await drained(w, q1), ['second'], 'after requeue of first beyond the limit');
}));

scenario('maxlen_reject_publish', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-rejpub', { arguments: { 'x-max-length': 2, 'x-overflow': 'reject-publish' } });
  eq(await outcomes(w, '', q, ['m0', 'm1', 'm2', 'm3']), ['ack', 'ack', 'nack', 'nack'], 'confirms');
  eq(await drained(w, q), ['m0', 'm1'], 'messages kept (the newest are refused)');
  const qb = await w.queue('q-rejpub-bytes', { arguments: { 'x-max-length-bytes': 10, 'x-overflow': 'reject-publish' } });
  eq(await outcomes(w, '', qb, ['12345', '67890', 'abc', '']), ['ack', 'ack', 'nack', 'ack'], 'confirms (bytes)');
  eq(await drained(w, qb), ['12345', '67890', ''], 'messages kept');
  const q1 = await w.queue('q-rejpub1', { arguments: { 'x-max-length': 1, 'x-overflow': 'reject-publish' } });
  await w.publish('', q1, 'first');
  const m = await w.ch.get(q1, { noAck: false });
  eq(await publishOutcome(w.ch, '', q1, 'second'), 'ack', 'publish while first is unacked');
  w.ch.nack(m, false, true);
  eq(await drained(w, q1), ['first', 'second'], 'after requeue of first');
  const ex = await w.exchange('ex-rejpub', 'fanout');
  const full = await w.queue('q-rejpub-full', { arguments: { 'x-max-length': 1, 'x-overflow': 'reject-publish' } });
  const other = await w.queue('q-rejpub-other');
  await w.ch.bindQueue(full, ex, '');
  await w.ch.bindQueue(other, ex, '');
  eq(await outcomes(w, ex, '', ['f0', 'f1']), ['ack', 'nack'], 'fanout confirms with one full queue');
  eq([await w.count(full), await w.count(other)], [1, 2], 'message counts (full, other)');
  const ch = await w.channel();
  const returned = [];
  ch.on('return', (r) => returned.push(r));
  ch.publish(ex, '', Buffer.from('f2'), { mandatory: true });
  await sleep(300);
  eq(returned.length, 0, 'basic.return for a publish refused by reject-publish');
  eq(await w.count(other), 3, 'other queue after a publish without confirms');
}));

scenario('maxlen_reject_publish_dlx', (url) => withWorld(url, async (w) => {
  const dead = await w.queue('q-dead');
  const q = await w.queue('q-rejdlx', { arguments: {
    'x-max-length': 1, 'x-overflow': 'reject-publish-dlx', 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': dead } });
  eq(await outcomes(w, '', q, ['m0', 'm1', 'm2']), ['ack', 'nack', 'nack'], 'confirms');
  eq(await drained(w, q), ['m0'], 'messages kept');
  eq(await waitCount(w, dead, 2), 2, 'dead-lettered messages');
  const got = (await drain(w.ch, dead)).map((m) => {
    const d = m.properties.headers['x-death'][0];
    return [m.content.toString(), m.fields.exchange, m.fields.routingKey, d.reason, d.queue, d.count];
  });
  eq(got, [['m1', '', dead, 'maxlen', q, 1], ['m2', '', dead, 'maxlen', q, 1]],
    'dead-lettered (body, exchange, routing key, x-death reason, queue, count)');
}));

scenario('queue_feature_args', (url) => withWorld(url, async (w) => {
  // amqplib encodes small integers as byte ('b'), so RabbitMQ names that type
  const cases = [
    ['x-message-ttl', -1, '{value_negative,-1}'],
    ['x-message-ttl', 'abc', '"expected integer, got longstr"'],
    ['x-expires', 0, '{value_zero,0}'],
    ['x-max-length', -1, '{value_negative,-1}'],
    ['x-overflow', 'bogus', 'invalid_overflow'],
    ['x-max-priority', 256, '{max_value_exceeded,256}'],
    ['x-single-active-consumer', 'yes', '{unacceptable_type,longstr}'],
    ['x-single-active-consumer', 1, '{unacceptable_type,byte}'],
  ];
  for (const [key, value, why] of cases) {
    const name = unique('q-badarg');
    await expectChannelError(w, (ch) => ch.assertQueue(name, { arguments: { [key]: value } }), 406,
      escapeRe(`PRECONDITION_FAILED - invalid arg '${key}' for queue '${name}' in vhost '/': ${why}`));
  }
  const name = unique('q-badarg');
  await expectChannelError(w, (ch) => ch.assertQueue(name, { arguments: { 'x-dead-letter-routing-key': 'k' } }), 406,
    escapeRe(`PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue '${name}' in vhost '/': routing_key_but_no_dlx_defined`));
  const q = await w.queue('q-args', { arguments: { 'x-message-ttl': 1000, 'x-max-priority': 10 } });
  await expectChannelError(w, (ch) => ch.assertQueue(q, { arguments: { 'x-message-ttl': 2000, 'x-max-priority': 10 } }), 406,
    escapeRe(`PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '${q}' in vhost '/': received '2000' but current is '1000'`));
  await w.ch.assertQueue(q, { arguments: { 'x-message-ttl': 1000, 'x-max-priority': 10 } });
  const lazy = await w.queue('q-lazy', { arguments: { 'x-queue-mode': 'lazy', 'x-queue-type': 'classic' } });
  await w.ch.assertQueue(lazy, { arguments: { 'x-queue-mode': 'lazy', 'x-queue-type': 'classic' } });
}));
