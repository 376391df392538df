#!/usr/bin/env node
// Conformance scenarios written with amqplib (promise API).
//
//     node amqplib_scenarios.js URL SCENARIO|all|list
//
// Prints one JSON line per scenario: {"scenario", "status": pass|fail|skip, "detail"}.
'use strict';

const {
  amqp, defs, crypto, util, scenario, check, show, eq, sleep, waitUntil, unique, escapeRe,
  withWorld, collect, expectChannelError, stillUsable, gone, drain, main,
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

// ------------------------------------------------------------------ publish / consume

// name -> [value sent, value amqplib decodes]
const HEADERS = {
  str: ['value', 'value'],
  empty: ['', ''],
  unicode: ['h\u00e9llo \u2603', 'h\u00e9llo \u2603'],
  byte: [42, 42],
  short: [1000, 1000],
  int: [100000, 100000],
  long: [2 ** 40, 2 ** 40],
  neg: [-7, -7],
  bool_t: [true, true],
  bool_f: [false, false],
  double: [1.5, 1.5],
  float: [{ '!': 'float', value: 0.5 }, 0.5],
  decimal: [{ '!': 'decimal', value: { places: 2, digits: 314 } }, { '!': 'decimal', value: { places: 2, digits: 314 } }],
  ts: [{ '!': 'timestamp', value: 1577934245 }, { '!': 'timestamp', value: 1577934245 }],
  table: [{ nested: 'yes', n: 1 }, { nested: 'yes', n: 1 }],
  array: [[1, 'two', true, { x: 'y' }], [1, 'two', true, { x: 'y' }]],
  void: [null, null],
  bytes: [Buffer.from([0, 1, 255]), Buffer.from([0, 1, 255])],
};

scenario('publish_consume_properties', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-props');
  const headers = {};
  for (const [k, [sent]] of Object.entries(HEADERS)) headers[k] = sent;
  const props = {
    contentType: 'application/json', contentEncoding: 'utf-8', headers, deliveryMode: 2, priority: 5,
    correlationId: 'corr-1', replyTo: 'reply.q', expiration: '60000', messageId: 'msg-1',
    timestamp: 1700000000, type: 't.kind', userId: 'guest', appId: 'conformance',
  };
  const body = Buffer.from('{"hello": "world"}');
  await w.publish('', q, body, props);
  let { msgs } = await collect(w.ch, q, 1);
  eq(msgs.length, 1, 'deliveries');
  const m = msgs[0];
  eq(m.content, body, 'body');
  eq([m.fields.exchange, m.fields.routingKey, m.fields.redelivered], ['', q, false], 'deliver fields');
  const p = m.properties;
  for (const f of ['contentType', 'contentEncoding', 'deliveryMode', 'priority', 'correlationId', 'replyTo',
    'expiration', 'messageId', 'timestamp', 'type', 'userId', 'appId']) {
    eq(p[f], props[f], `property ${f}`);
  }
  eq(Object.keys(p.headers).sort(), Object.keys(HEADERS).sort(), 'header names');
  for (const [k, [, want]] of Object.entries(HEADERS)) eq(p.headers[k], want, `header ${k}`);
  await w.publish('', q, 'bare');
  ({ msgs } = await collect(w.ch, q, 1));
  const bp = msgs[0].properties;
  for (const f of ['contentType', 'deliveryMode', 'priority', 'timestamp', 'expiration']) {
    eq(bp[f], undefined, `bare message property ${f}`);
  }
  // amqplib decodes absent headers as {}
  eq(bp.headers, {}, 'bare message headers');
}));

scenario('basic_get', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-get');
  for (let i = 0; i < 3; i++) await w.publish('', q, `m${i}`);
  eq(await w.count(q), 3, 'message_count');
  for (let i = 0; i < 3; i++) {
    const m = await w.ch.get(q, { noAck: true });
    check(m, `get ${i} returned get-empty`);
    eq(m.content.toString(), `m${i}`, `body ${i}`);
    eq(m.fields.messageCount, 2 - i, `get-ok message_count ${i}`);
    eq([m.fields.redelivered, m.fields.exchange, m.fields.routingKey], [false, '', q], `get-ok fields ${i}`);
  }
  eq(await w.ch.get(q, { noAck: true }), false, 'basic.get on an empty queue (get-empty)');
}));

async function getN(ch, q, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const m = await ch.get(q, { noAck: false });
    check(m, 'unexpected get-empty');
    out.push(m);
  }
  return out;
}

scenario('ack', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-ack');
  for (let i = 0; i < 2; i++) await w.publish('', q, `m${i}`);
  const ch = await w.channel();
  const [m0, m1] = await getN(ch, q, 2);
  eq([m0.fields.deliveryTag, m1.fields.deliveryTag], [1, 2], 'delivery tags');
  ch.ack(m0);
  await ch.close();
  const m = await w.ch.get(q, { noAck: true });
  eq([m.content.toString(), m.fields.redelivered], ['m1', true], 'unacked message requeued on channel close');
  eq(await w.ch.get(q), false, 'acked message must not come back');
}));

scenario('ack_multiple', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-ackm');
  for (let i = 0; i < 5; i++) await w.publish('', q, `m${i}`);
  const ch = await w.channel();
  const got = await getN(ch, q, 5);
  eq(got.map((m) => m.fields.deliveryTag), [1, 2, 3, 4, 5], 'delivery tags');
  ch.ack(got[2], true);
  await ch.close();
  const back = (await drain(w.ch, q)).map((m) => [m.content.toString(), m.fields.redelivered]);
  eq(back, [['m3', true], ['m4', true]], 'requeued after ack(3, multiple)');
}));

async function nackOrReject(url, kind, requeue) {
  return withWorld(url, async (w) => {
    const q = await w.queue('q-' + kind);
    for (let i = 0; i < 3; i++) await w.publish('', q, `m${i}`);
    const ch = await w.channel();
    const got = await getN(ch, q, 3);
    if (kind === 'nack') ch.nack(got[1], true, requeue);
    else { ch.reject(got[0], requeue); ch.reject(got[1], requeue); }
    ch.ack(got[2]);
    if (requeue) {
      let m = await ch.get(q, { noAck: true });
      eq([m.content.toString(), m.fields.redelivered], ['m0', true], 'first requeued message');
      m = await ch.get(q, { noAck: true });
      eq([m.content.toString(), m.fields.redelivered], ['m1', true], 'second requeued message');
    }
    eq(await ch.get(q), false, 'queue empty at the end');
    await ch.close();
    eq(await w.count(q), 0, 'nothing left after channel close');
  });
}

scenario('nack_requeue', (url) => nackOrReject(url, 'nack', true));
scenario('nack_discard', (url) => nackOrReject(url, 'nack', false));
scenario('reject_requeue', (url) => nackOrReject(url, 'reject', true));
scenario('reject_discard', (url) => nackOrReject(url, 'reject', false));

scenario('prefetch', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-prefetch');
  for (let i = 0; i < 10; i++) await w.publish('', q, `m${i}`);
  const ch = await w.channel();
  await ch.prefetch(3);
  const { msgs } = await collect(ch, q, 3, { noAck: false, settle: 500 });
  eq(msgs.length, 3, 'unacked deliveries with prefetch 3');
  ch.ack(msgs[0]);
  await sleep(500);
  eq(msgs.length, 4, 'deliveries after one ack');
  ch.ack(msgs[msgs.length - 1], true);
  await sleep(500);
  eq(msgs.length, 7, 'deliveries after ack multiple');
  ch.ack(msgs[msgs.length - 1], true);
  await sleep(500);
  eq(msgs.length, 10, 'all deliveries');
  eq(msgs.map((m) => m.content.toString()), Array.from({ length: 10 }, (_, i) => `m${i}`), 'order');
}));

scenario('round_robin', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-rr');
  const ch1 = await w.channel();
  const ch2 = await w.channel();
  const order = [];
  await ch1.consume(q, (m) => order.push(['c1', m.content.toString()]), { noAck: true });
  await ch2.consume(q, (m) => order.push(['c2', m.content.toString()]), { noAck: true });
  for (let i = 0; i < 10; i++) await w.publish('', q, `m${i}`);
  await waitUntil(() => order.length >= 10, 5000);
  eq(order.length, 10, 'deliveries');
  const c1 = order.filter(([c]) => c === 'c1').map(([, b]) => b);
  const c2 = order.filter(([c]) => c === 'c2').map(([, b]) => b);
  eq([c1.length, c2.length], [5, 5], 'deliveries per consumer');
  const evens = [0, 2, 4, 6, 8].map((i) => `m${i}`);
  const odds = [1, 3, 5, 7, 9].map((i) => `m${i}`);
  check((util.isDeepStrictEqual(c1, evens) && util.isDeepStrictEqual(c2, odds))
    || (util.isDeepStrictEqual(c1, odds) && util.isDeepStrictEqual(c2, evens)),
  `not alternating: c1=${c1} c2=${c2}`);
}));

scenario('fanout_many', (url) => withWorld(url, async (w) => {
  const ex = await w.exchange('ex-fan', 'fanout');
  const qs = [];
  for (let i = 0; i < 20; i++) qs.push(await w.queue(`q-fan${i}`));
  for (const q of qs) await w.ch.bindQueue(q, ex, 'ignored');
  for (let i = 0; i < 3; i++) await w.publish(ex, `any${i}`, `m${i}`);
  for (const q of qs) {
    const got = await drain(w.ch, q);
    eq(got.map((m) => m.content.toString()), ['m0', 'm1', 'm2'], `queue ${q}`);
    eq(got.map((m) => m.fields.routingKey), ['any0', 'any1', 'any2'], 'routing keys');
  }
}));

const TOPIC_PATTERNS = ['a.b.c', 'a.*.c', 'a.#', '#', '*', '*.b.*', '#.c', '', 'a.#.c', '*.*', 'a.*.#'];
const TOPIC_KEYS = ['a.b.c', 'a.x.c', 'a', 'a.b', 'a.b.c.d', '', 'b', 'x.b.y', 'c', 'a.c', 'a.b.b.c'];
const TOPIC_EXPECTED = {
  'a.b.c': ['a.b.c', 'a.*.c', 'a.#', '#', '*.b.*', '#.c', 'a.#.c', 'a.*.#'],
  'a.x.c': ['a.*.c', 'a.#', '#', '#.c', 'a.#.c', 'a.*.#'],
  a: ['a.#', '#', '*'],
  'a.b': ['a.#', '#', '*.*', 'a.*.#'],
  'a.b.c.d': ['a.#', '#', 'a.*.#'],
  '': ['#', ''],
  b: ['#', '*'],
  'x.b.y': ['#', '*.b.*'],
  c: ['#', '*', '#.c'],
  'a.c': ['a.#', '#', '#.c', 'a.#.c', '*.*', 'a.*.#'],
  'a.b.b.c': ['a.#', '#', '#.c', 'a.#.c', 'a.*.#'],
};

scenario('topic_routing', (url) => withWorld(url, async (w) => {
  const ex = await w.exchange('ex-topic', 'topic');
  const qs = {};
  for (const pat of TOPIC_PATTERNS) {
    qs[pat] = await w.queue('q-topic');
    await w.ch.bindQueue(qs[pat], ex, pat);
  }
  for (const key of TOPIC_KEYS) await w.publish(ex, key, key);
  const errors = [];
  for (const pat of TOPIC_PATTERNS) {
    const got = (await drain(w.ch, qs[pat])).map((m) => m.content.toString());
    const want = TOPIC_KEYS.filter((k) => TOPIC_EXPECTED[k].includes(pat));
    if (!util.isDeepStrictEqual(got, want)) errors.push(`pattern '${pat}': got ${show(got)}, want ${show(want)}`);
  }
  check(!errors.length, errors.join('; '));
}));

const HEADER_BINDINGS = {
  all: { 'x-match': 'all', format: 'pdf', type: 'report' },
  any: { 'x-match': 'any', format: 'pdf', type: 'report' },
  default_all: { format: 'zip' },
  all_empty: { 'x-match': 'all' },
  any_empty: { 'x-match': 'any' },
};
const HEADER_MESSAGES = [
  ['both', { format: 'pdf', type: 'report' }, ['all', 'any', 'all_empty']],
  ['both_plus', { format: 'pdf', type: 'report', extra: '1' }, ['all', 'any', 'all_empty']],
  ['format_only', { format: 'pdf' }, ['any', 'all_empty']],
  ['type_only', { type: 'report' }, ['any', 'all_empty']],
  ['wrong_value', { format: 'zip', type: 'log' }, ['default_all', 'all_empty']],
  ['none', undefined, ['all_empty']],
];

scenario('headers_routing', (url) => withWorld(url, async (w) => {
  const ex = await w.exchange('ex-headers', 'headers');
  const qs = {};
  for (const [name, args] of Object.entries(HEADER_BINDINGS)) {
    qs[name] = await w.queue('q-hdr-' + name);
    await w.ch.bindQueue(qs[name], ex, '', args);
  }
  for (const [tag, headers] of HEADER_MESSAGES) await w.publish(ex, 'rk', tag, headers ? { headers } : {});
  const errors = [];
  for (const name of Object.keys(HEADER_BINDINGS)) {
    const got = (await drain(w.ch, qs[name])).map((m) => m.content.toString());
    const want = HEADER_MESSAGES.filter(([, , r]) => r.includes(name)).map(([t]) => t);
    if (!util.isDeepStrictEqual(got, want)) errors.push(`binding ${name}: got ${show(got)}, want ${show(want)}`);
  }
  check(!errors.length, errors.join('; '));
}));

scenario('mandatory_return', (url) => withWorld(url, async (w) => {
  const ex = await w.exchange('ex-mand', 'direct');
  const ch = await w.channel();
  const returned = [];
  ch.on('return', (m) => returned.push(m));
  ch.publish(ex, 'nowhere', Buffer.from('lost'), { mandatory: true, messageId: 'm1' });
  ch.publish(ex, 'nowhere', Buffer.from('dropped'));
  await waitUntil(() => returned.length, 5000);
  await sleep(300);
  eq(returned.length, 1, 'basic.return count');
  const m = returned[0];
  eq([m.fields.replyCode, m.fields.replyText, m.fields.exchange, m.fields.routingKey],
    [312, 'NO_ROUTE', ex, 'nowhere'], 'basic.return fields');
  eq([m.content.toString(), m.properties.messageId], ['lost', 'm1'], 'returned body/properties');
  // in confirm mode: the return comes before the ack, and the message is still acked
  const events = [];
  w.ch.on('return', () => events.push('return'));
  await w.publish(ex, 'nowhere', 'lost2', { mandatory: true });
  events.push('ack');
  eq(events, ['return', 'ack'], 'confirm-mode mandatory publish: return then ack');
}));

scenario('publisher_confirms', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-confirm');
  const acks = [];
  for (let i = 0; i < 50; i++) {
    w.ch.publish('', q, Buffer.from(`m${i}`), {}, (err) => acks.push(err ? 'nack' : 'ack'));
  }
  await w.ch.waitForConfirms();
  eq(acks.length, 50, 'confirm callbacks');
  check(acks.every((a) => a === 'ack'), `nacks: ${acks}`);
  await w.publish('amq.direct', 'nobody-' + q, 'x'); // unroutable, not mandatory: acked
  eq(await w.count(q), 50, 'messages in queue after confirmed publishes');
}));

// amqplib has no transaction API: tx.* go through its generic channel.rpc().
async function tx(ch, what) {
  const m = { select: [defs.TxSelect, defs.TxSelectOk], commit: [defs.TxCommit, defs.TxCommitOk],
    rollback: [defs.TxRollback, defs.TxRollbackOk] }[what];
  return ch.rpc(m[0], {}, m[1]);
}

scenario('tx_commit', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-tx');
  const ch = await w.channel();
  await tx(ch, 'select');
  for (let i = 0; i < 3; i++) ch.publish('', q, Buffer.from(`m${i}`));
  eq(await w.count(q), 0, 'messages visible before commit');
  await tx(ch, 'commit');
  eq(await w.count(q), 3, 'messages after commit');
  let m = await ch.get(q, { noAck: false });
  ch.ack(m);
  await tx(ch, 'commit');
  m = await ch.get(q, { noAck: false });
  ch.ack(m);
  await tx(ch, 'rollback');
  await ch.close();
  eq(await w.count(q), 2, 'ready messages after committed ack + rolled back ack + channel close');
  m = await w.ch.get(q, { noAck: true });
  eq([m.content.toString(), m.fields.redelivered], ['m1', true], 'message whose ack was rolled back');
  return 'tx.* sent with channel.rpc (amqplib has no tx API)';
}));

scenario('tx_rollback', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-txrb');
  const ch = await w.channel();
  await tx(ch, 'select');
  for (let i = 0; i < 3; i++) ch.publish('', q, Buffer.from(`m${i}`));
  await tx(ch, 'rollback');
  eq(await w.count(q), 0, 'messages after rollback');
  ch.publish('', q, Buffer.from('after'));
  await tx(ch, 'commit');
  eq(await w.count(q), 1, 'messages after publish+commit following rollback');
  const m = await w.ch.get(q, { noAck: true });
  eq(m.content.toString(), 'after', 'body');
  return 'tx.* sent with channel.rpc (amqplib has no tx API)';
}));

scenario('purge', (url) => withWorld(url, async (w) => {
  const q = await w.queue('q-purge');
  for (let i = 0; i < 5; i++) await w.publish('', q, 'x');
  eq((await w.ch.purgeQueue(q)).messageCount, 5, 'purge-ok message_count');
  eq(await w.count(q), 0, 'messages after purge');
  eq((await w.ch.purgeQueue(q)).messageCount, 0, 'second purge-ok message_count');
}));

function bodySize(sizeFn) {
  return (url) => withWorld(url, async (w) => {
    const q = await w.queue('q-size');
    const fm = w.conn.connection.frameMax;
    const size = sizeFn(fm);
    const body = crypto.randomBytes(size);
    await w.publish('', q, body, { messageId: 'sz' });
    const { msgs } = await collect(w.ch, q, 1, { timeout: 15000 });
    eq(msgs.length, 1, 'deliveries');
    eq(msgs[0].content.length, size, 'body length');
    check(msgs[0].content.equals(body), 'body bytes differ');
    return `${size} bytes (frame_max ${fm})`;
  });
}

scenario('body_0b', bodySize(() => 0));
scenario('body_1b', bodySize(() => 1));
scenario('body_frame_max_minus_1', bodySize((fm) => fm - 1));
scenario('body_10mib', bodySize(() => 10 * 1024 * 1024));

scenario('many_channels', (url) => withWorld(url, async (w) => {
  const chans = [];
  for (let i = 0; i < 50; i++) chans.push(await w.channel());
  eq(new Set(chans.map((c) => c.ch)).size, 50, 'distinct channel numbers');
  for (let i = 0; i < chans.length; i++) {
    const c = chans[i];
    const q = (await c.assertQueue('', { exclusive: true })).queue;
    c.sendToQueue(q, Buffer.from(`c${i}`));
    const m = await waitUntil(() => c.get(q, { noAck: true }), 3000);
    eq(m && m.content.toString(), `c${i}`, `body on channel ${c.ch}`);
  }
  for (const c of chans) await c.close();
  await stillUsable(w);
}));

// ------------------------------------------------------------------ errors

scenario('error_404_passive_missing_queue', (url) => withWorld(url, async (w) => {
  const name = unique('q-missing');
  const d = await expectChannelError(w, (ch) => ch.checkQueue(name), 404,
    `NOT_FOUND - no queue '${escapeRe(name)}' in vhost '/'`);
  await stillUsable(w);
  return d;
}));

scenario('error_406_queue_redeclare', (url) => withWorld(url, async (w) => {
  const name = await w.queue('q-redecl', { durable: false });
  const d = await expectChannelError(w, (ch) => ch.assertQueue(name, { durable: true }), 406,
    `PRECONDITION_FAILED - inequivalent arg 'durable' for queue '${escapeRe(name)}' in vhost '/': received 'true' but current is 'false'`);
  await stillUsable(w);
  return d;
}));

scenario('error_406_exchange_redeclare', (url) => withWorld(url, async (w) => {
  const name = await w.exchange('ex-redecl', 'direct');
  const d = await expectChannelError(w, (ch) => ch.assertExchange(name, 'fanout'), 406,
    `PRECONDITION_FAILED - inequivalent arg 'type' for exchange '${escapeRe(name)}' in vhost '/': received 'fanout' but current is 'direct'`);
  await stillUsable(w);
  return d;
}));

scenario('error_405_exclusive_other_connection', (url) => withWorld(url, async (w) => {
  const name = unique('q-locked');
  await w.ch.assertQueue(name, { exclusive: true });
  const c2 = await w.connect();
  const text = `RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '${escapeRe(name)}' in vhost '/'\\. `
    + 'It could be originally declared on another connection or the exclusive property value does not match '
    + 'that of the original declaration\\.';
  const d = await expectChannelError(w, (ch) => ch.consume(name, () => {}), 405, text, c2);
  await expectChannelError(w, (ch) => ch.checkQueue(name), 405, text, c2);
  await expectChannelError(w, (ch) => ch.assertQueue(name, { exclusive: true }), 405, text, c2);
  return d;
}));

scenario('error_403_amq_prefix', (url) => withWorld(url, async (w) => {
  const name = 'amq.' + unique('x');
  const d = await expectChannelError(w, (ch) => ch.assertExchange(name, 'direct'), 403,
    `ACCESS_REFUSED - exchange name '${escapeRe(name)}' contains reserved prefix 'amq\\.\\*'`);
  await stillUsable(w);
  return d;
}));

scenario('error_406_unknown_delivery_tag', (url) => withWorld(url, async (w) => {
  const d = await expectChannelError(w, async (ch) => {
    ch.ack({ fields: { deliveryTag: 999 } });
    await ch.assertQueue('', { exclusive: true });
    await sleep(500);
    await ch.assertQueue('', { exclusive: true });
  }, 406, 'PRECONDITION_FAILED - unknown delivery tag 999');
  await stillUsable(w);
  return d;
}));

scenario('consumer_cancel_on_delete', (url) => withWorld(url, async (w) => {
  const q = unique('q-cancel');
  await w.ch.assertQueue(q);
  const ch = await w.channel();
  const events = [];
  const { consumerTag } = await ch.consume(q, (m) => events.push(m === null ? 'cancel' : 'msg'), { noAck: true });
  await w.ch.deleteQueue(q);
  await waitUntil(() => events.length, 5000);
  eq(events, ['cancel'], 'basic.cancel from the server (amqplib calls the consumer with null)');
  await ch.assertQueue('', { exclusive: true }); // channel still open
  return `cancelled ${consumerTag}`;
}));

// Issue 6 queue features, in their own modules (registered on require, listed after the above).
require('./amqplib_ttl_limits');
require('./amqplib_dead_letter');
require('./amqplib_consumers');

process.on('unhandledRejection', (e) => { console.error('unhandled rejection:', e); });
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
