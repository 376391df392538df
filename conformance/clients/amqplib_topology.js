// amqplib scenarios: connection, exchanges, queues and bindings.
'use strict';

const {
  amqp, scenario, check, show, eq, sleep, waitUntil, unique, escapeRe, withWorld,
  expectChannelError, stillUsable, gone, drain,
} = require('./amqplib_common');

// ------------------------------------------------------------------ connection

scenario('connect_heartbeat', async (url) => {
  // heartbeat=0 from the client: amqplib takes the server's proposal
  const probe = await amqp.connect(url);
  probe.on('error', () => {});
  const serverHb = probe.connection.heartbeat;
  await probe.close();
  eq(serverHb, 60, "server's proposed heartbeat (connection.tune)");
  return withWorld(url, async (w) => {
    const c = w.conn.connection;
    const caps = c.serverProperties.capabilities || {};
    for (const cap of ['publisher_confirms', 'exchange_exchange_bindings', 'basic.nack',
      'consumer_cancel_notify', 'connection.blocked', 'authentication_failure_close', 'per_consumer_qos']) {
      check(caps[cap] === true, `server capability ${cap} = ${show(caps[cap])}`);
    }
    eq(c.heartbeat, 2, 'negotiated heartbeat');
    eq(c.frameMax, 4096, 'negotiated frame_max (amqplib proposes 4096)');
    eq(c.channelMax, 2047, 'negotiated channel_max (server proposes 2047)');
    let closed = null;
    w.conn.on('close', (e) => { closed = e || 'closed'; });
    await sleep(6000); // amqplib closes the connection when 2 heartbeats are missed
    check(!closed, `connection closed while idle with heartbeat 2: ${closed}`);
    await stillUsable(w);
    return `server heartbeat ${serverHb}, frame_max ${c.frameMax}`;
  }, { urlSuffix: '?heartbeat=2' });
});

// ------------------------------------------------------------------ exchanges

scenario('exchange_declare_types', (url) => withWorld(url, async (w) => {
  for (const t of ['direct', 'fanout', 'topic', 'headers']) {
    const name = await w.exchange('ex-' + t, t);
    await w.ch.assertExchange(name, t);
    await w.ch.checkExchange(name);
    await w.ch.deleteExchange(name);
    await expectChannelError(w, (ch) => ch.checkExchange(name), 404,
      `NOT_FOUND - no exchange '${escapeRe(name)}' in vhost '/'`);
  }
  for (const [b, t] of [['amq.direct', 'direct'], ['amq.fanout', 'fanout'], ['amq.topic', 'topic'],
    ['amq.headers', 'headers'], ['amq.match', 'headers']]) {
    await w.ch.checkExchange(b);
    await w.ch.assertExchange(b, t, { durable: true });
  }
}));

// ------------------------------------------------------------------ queues

scenario('queue_declare_named', (url) => withWorld(url, async (w) => {
  const name = unique('q-named');
  let ok = await w.ch.assertQueue(name);
  w.queues.push(name);
  eq([ok.queue, ok.messageCount, ok.consumerCount], [name, 0, 0], 'declare-ok');
  await w.publish('', name, 'x');
  ok = await w.ch.assertQueue(name);
  eq(ok.messageCount, 1, 'redeclare message_count');
  ok = await w.ch.checkQueue(name);
  eq(ok.messageCount, 1, 'passive message_count');
  ok = await w.ch.deleteQueue(name);
  eq(ok.messageCount, 1, 'delete-ok message_count');
}));

scenario('queue_declare_server_named', (url) => withWorld(url, async (w) => {
  const q = (await w.ch.assertQueue('', { exclusive: true })).queue;
  check(q.startsWith('amq.gen-'), `server-named queue ${q} does not start with amq.gen-`);
  await w.publish('', q, 'hello');
  const m = await w.ch.get(q, { noAck: true });
  eq(m && m.content.toString(), 'hello', 'body via server-named queue');
  return q;
}));

scenario('queue_declare_exclusive', (url) => withWorld(url, async (w) => {
  const c2 = await w.connect();
  const ch2 = await w.channel(false, c2);
  const name = unique('q-excl');
  await ch2.assertQueue(name, { exclusive: true });
  await ch2.checkQueue(name);
  await c2.close();
  check(await waitUntil(() => gone(w, name), 5000), 'exclusive queue still exists after its connection closed');
}));

scenario('queue_declare_auto_delete', (url) => withWorld(url, async (w) => {
  const name = unique('q-autodel');
  await w.ch.assertQueue(name, { autoDelete: true });
  w.queues.push(name);
  await w.ch.checkQueue(name);
  const { consumerTag } = await w.ch.consume(name, () => {}, { noAck: true });
  await w.ch.cancel(consumerTag);
  check(await waitUntil(() => gone(w, name), 5000), 'auto-delete queue still exists after its last consumer left');
}));

scenario('queue_declare_durable', (url) => withWorld(url, async (w) => {
  const name = await w.queue('q-durable', { durable: true });
  await w.ch.assertQueue(name, { durable: true });
  await w.ch.checkQueue(name);
  await w.publish('', name, 'p', { persistent: true });
  eq(await w.count(name), 1, 'message_count');
  eq((await w.ch.deleteQueue(name)).messageCount, 1, 'delete-ok message_count');
}));

// ------------------------------------------------------------------ bindings

scenario('bind_unbind', (url) => withWorld(url, async (w) => {
  const ex = await w.exchange('ex-bind', 'direct');
  const q = await w.queue('q-bind');
  await w.ch.bindQueue(q, ex, 'k1');
  await w.ch.bindQueue(q, ex, 'k1');
  await w.ch.bindQueue(q, ex, 'k2');
  for (const k of ['k1', 'k2', 'k3']) await w.publish(ex, k, k);
  eq(await w.count(q), 2, 'messages routed with bindings k1,k2');
  await w.ch.unbindQueue(q, ex, 'k1');
  for (const k of ['k1', 'k2']) await w.publish(ex, k, k);
  eq(await w.count(q), 3, 'messages after unbind of k1');
  await w.ch.unbindQueue(q, ex, 'never-bound');
  eq((await drain(w.ch, q)).map((m) => m.content.toString()), ['k1', 'k2', 'k2'], 'bodies');
}));

scenario('exchange_to_exchange_bind', (url) => withWorld(url, async (w) => {
  const src = await w.exchange('ex-src', 'topic');
  const dst = await w.exchange('ex-dst', 'fanout');
  const q = await w.queue('q-e2e');
  await w.ch.bindQueue(q, dst, '');
  await w.ch.bindExchange(dst, src, 'a.*');
  await w.publish(src, 'a.b', '1');
  await w.publish(src, 'x.b', '2');
  eq(await w.count(q), 1, 'messages routed through e2e binding');
  await w.ch.unbindExchange(dst, src, 'a.*');
  await w.publish(src, 'a.b', '3');
  eq(await w.count(q), 1, 'messages after exchange.unbind');
  const m = await w.ch.get(q, { noAck: true });
  eq([m.fields.exchange, m.fields.routingKey, m.content.toString()], [src, 'a.b', '1'], 'exchange/routing key/body');
}));
