// amqplib scenarios (issue 6): priority queues, consumer priorities, single active consumer,
// direct reply-to. Expected behaviour: conformance/reference/queue-features.md (RabbitMQ 3.10).
'use strict';

const {
  scenario, check, eq, sleep, waitUntil, unique, escapeRe, withWorld, expectChannelError,
} = require('./amqplib_common');

const PRIORITY_MESSAGES = [['a', undefined], ['b', 1], ['c', 5], ['d', 3], ['e', 9], ['f', 5], ['g', 0],
  ['h', 3], ['i', 255]];
const PRIORITY_ORDER = ['c', 'e', 'f', 'i', 'd', 'h', 'b', 'a', 'g'];

scenario('priority_queue', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-prio', { arguments: { 'x-max-priority': 5 } });
  const publishAll = async () => {
    for (const [b, p] of PRIORITY_MESSAGES) await w.publish('', q, b, p === undefined ? {} : { priority: p });
  };
  await publishAll();
  const sent = new Map(PRIORITY_MESSAGES);
  const got = [];
  for (let i = 0; i < PRIORITY_MESSAGES.length; i++) {
    const m = await w.ch.get(q, { noAck: true });
    check(m, 'unexpected get-empty');
    got.push([m.content.toString(), m.properties.priority, m.fields.messageCount]);
  }
  eq(got, PRIORITY_ORDER.map((b, i) => [b, sent.get(b), PRIORITY_MESSAGES.length - 1 - i]),
    'basic.get order (body, priority property unchanged, message_count)');
  await publishAll();
  const order = [];
  await w.ch.consume(q, (m) => order.push(m.content.toString()), { noAck: true });
  await waitUntil(() => order.length >= 9, 3000);
  eq(order, PRIORITY_ORDER, 'delivery order');
  const plain = await w.queue('q-noprio');
  await w.publish('', plain, 'x', { priority: 1 });
  await w.publish('', plain, 'y', { priority: 9 });
  const x = await w.ch.get(plain, { noAck: true });
  const y = await w.ch.get(plain, { noAck: true });
  eq([x.content.toString(), y.content.toString()], ['x', 'y'], 'order in a queue without x-max-priority');
}));

async function consumers(w, q, specs, n) {
  const got = [];
  const chans = [];
  for (const [name, opts, prefetch] of specs) {
    const ch = await w.channel();
    if (prefetch) await ch.prefetch(prefetch);
    await ch.consume(q, (m) => got.push([name, m.content.toString()]), opts);
    chans.push(ch);
  }
  return { got, chans };
}

scenario('consumer_priority', (url) => withWorld(url, async (w) => {
  let q = await w.queue('q-cprio');
  let { got } = await consumers(w, q, [['low', { noAck: false }, 10],
    ['high', { noAck: false, arguments: { 'x-priority': 10 } }, 2]]);
  for (let i = 0; i < 6; i++) await w.publish('', q, `m${i}`);
  await waitUntil(() => got.length >= 6, 3000);
  await sleep(200);
  eq(got.filter(([c]) => c === 'high').map(([, b]) => b).sort(), ['m0', 'm1'],
    'high-priority consumer (prefetch 2) gets the first two');
  eq(got.filter(([c]) => c === 'low').map(([, b]) => b).sort(), ['m2', 'm3', 'm4', 'm5'],
    'low-priority consumer gets the rest');
  q = await w.queue('q-cprio-neg');
  ({ got } = await consumers(w, q, [['neg', { noAck: true, priority: -5 }], ['zero', { noAck: true }]]));
  for (let i = 0; i < 4; i++) await w.publish('', q, `n${i}`);
  await waitUntil(() => got.length >= 4, 3000);
  await sleep(200);
  eq(got.sort(), [0, 1, 2, 3].map((i) => ['zero', `n${i}`]), 'x-priority -5 against a default consumer');
  q = await w.queue('q-cprio-rr');
  ({ got } = await consumers(w, q, [['a', { noAck: true, priority: 3 }], ['b', { noAck: true, priority: 3 }]]));
  for (let i = 0; i < 4; i++) await w.publish('', q, `r${i}`);
  await waitUntil(() => got.length >= 4, 3000);
  eq(got.sort(), [['a', 'r0'], ['a', 'r2'], ['b', 'r1'], ['b', 'r3']], 'two consumers with x-priority 3 (round-robin)');
}));

scenario('single_active_consumer', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-sac', { arguments: { 'x-single-active-consumer': true } });
  const got = [];
  const chans = [];
  const tags = [];
  for (let i = 0; i < 2; i++) {
    const ch = await w.channel();
    await ch.prefetch(10);
    const { consumerTag } = await ch.consume(q, (m) => got.push([`c${i + 1}`, m]), { noAck: false });
    chans.push(ch);
    tags.push(consumerTag);
  }
  eq((await w.ch.checkQueue(q)).consumerCount, 2, 'declare-ok consumer_count (all consumers count)');
  for (let i = 0; i < 3; i++) await w.publish('', q, `a${i}`);
  await waitUntil(() => got.length >= 3, 3000);
  await sleep(200);
  const view = () => got.map(([c, m]) => [c, m.content.toString()]);
  eq(view(), [['c1', 'a0'], ['c1', 'a1'], ['c1', 'a2']], 'deliveries: only the first consumer is active');
  chans[0].ack(got[2][1], true);
  await chans[0].cancel(tags[0]);
  got.length = 0;
  for (let i = 0; i < 2; i++) await w.publish('', q, `b${i}`);
  await waitUntil(() => got.length >= 2, 3000);
  eq(view(), [['c2', 'b0'], ['c2', 'b1']], 'after the active consumer cancelled, the next one takes over');
  const ch3 = await w.channel();
  await ch3.consume(q, (m) => got.push(['c3', m]), { noAck: true });
  await w.publish('', q, 'c0');
  await waitUntil(() => got.length >= 3, 3000);
  eq(view()[2], ['c2', 'c0'], 'delivery after a third consumer joined');
  got.length = 0;
  await chans[1].close();
  await waitUntil(() => got.length >= 3, 3000);
  eq(got.map(([c, m]) => [c, m.content.toString(), m.fields.redelivered]),
    [['c3', 'b0', true], ['c3', 'b1', true], ['c3', 'c0', true]],
    "after the active consumer's channel closed (consumer, body, redelivered)");
  await expectChannelError(w, (ch) => ch.consume(q, () => {}, { exclusive: true }), 403,
    escapeRe(`ACCESS_REFUSED - queue '${q}' in vhost '/' in exclusive use`));
}));

const REPLY_TO = 'amq.rabbitmq.reply-to';

scenario('direct_reply_to', (url) => withWorld(url, async (w) => {
  const server = await w.channel(true);
  const rpc = await w.queue('q-rpc', {}, server);
  const client = await w.channel();
  const replies = [];
  const { consumerTag } = await client.consume(REPLY_TO, (m) => replies.push(m), { noAck: true });
  client.publish('', rpc, Buffer.from('request'), { replyTo: REPLY_TO, correlationId: 'c1' });
  const req = await waitUntil(() => server.get(rpc, { noAck: true }), 3000, 50);
  check(req, 'request not received');
  eq([req.content.toString(), req.properties.correlationId], ['request', 'c1'], 'request body and correlation_id');
  const address = req.properties.replyTo;
  check(address.startsWith(`${REPLY_TO}.`) && address.length > REPLY_TO.length + 1, `reply_to seen by the server: ${address}`);
  const ok = await server.checkQueue(address);
  eq([ok.queue, ok.messageCount, ok.consumerCount], [address, 0, 1], 'passive declare of the reply address');
  await w.publish('', address, 'reply', { correlationId: 'c1', headers: { h: 1 } }, server);
  await w.publish('amq.direct', address, 'not via amq.direct', {}, server);
  await waitUntil(() => replies.length, 3000);
  await sleep(300);
  eq(replies.length, 1, 'replies received');
  const m = replies[0];
  eq([m.content.toString(), m.properties.correlationId, m.properties.headers], ['reply', 'c1', { h: 1 }],
    'reply body and properties');
  eq([m.fields.exchange, m.fields.routingKey, m.fields.consumerTag, m.fields.deliveryTag, m.fields.redelivered],
    ['', address, consumerTag, 1, false], 'reply delivery fields');
  const ok2 = await server.checkQueue(REPLY_TO);
  eq([ok2.queue, ok2.messageCount, ok2.consumerCount], [REPLY_TO, 0, 1], 'passive declare of amq.rabbitmq.reply-to');
  await client.cancel(consumerTag);
  const returned = [];
  server.on('return', (r) => returned.push(r));
  await w.publish('', address, 'late', { mandatory: true }, server);
  await waitUntil(() => returned.length, 3000);
  eq(returned.map((r) => [r.fields.replyCode, r.fields.replyText, r.fields.routingKey]), [[312, 'NO_ROUTE', address]],
    'basic.return of a late reply');
  await expectChannelError(w, (ch) => ch.checkQueue(address), 404,
    escapeRe(`NOT_FOUND - no queue '${address}' in vhost '/'`));
  return `reply address of ${address.length} characters`;
}));

scenario('direct_reply_to_errors', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-rpc');
  const out = [];
  out.push(await expectChannelError(w, async (ch) => {
    ch.publish('', q, Buffer.from('x'), { replyTo: REPLY_TO });
    await ch.assertQueue('', { exclusive: true });
  }, 406, 'PRECONDITION_FAILED - fast reply consumer does not exist'));
  out.push(await expectChannelError(w, (ch) => ch.consume(REPLY_TO, () => {}, { noAck: false }), 406,
    'PRECONDITION_FAILED - reply consumer cannot acknowledge'));
  out.push(await expectChannelError(w, async (ch) => {
    await ch.consume(REPLY_TO, () => {}, { noAck: true });
    await ch.consume(REPLY_TO, () => {}, { noAck: true });
  }, 406, 'PRECONDITION_FAILED - reply consumer already set'));
  // amqplib rejects get() without the close's code: read it from the channel's 'error' event
  await expectChannelError(w, (ch) => ch.get(REPLY_TO).catch(() => {}), 404,
    escapeRe(`NOT_FOUND - no queue '${REPLY_TO}' in vhost '/'`));
  const name = `${REPLY_TO}.${unique('x')}`;
  await expectChannelError(w, (ch) => ch.assertQueue(name), 404, escapeRe(`NOT_FOUND - no queue '${name}' in vhost '/'`));
  const returned = [];
  w.ch.on('return', (r) => returned.push(r));
  await w.publish('', name, 'x');
  await w.publish('', name, 'x', { mandatory: true });
  await waitUntil(() => returned.length, 3000);
  eq(returned.map((r) => r.fields.replyCode), [312], 'basic.return of a mandatory publish to an unknown reply address');
  return out.join('; ');
}));
