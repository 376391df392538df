// amqplib scenarios: publish and consume, basic.get, acknowledgements, prefetch,
// round-robin, routing.
'use strict';

const {
  util, scenario, check, show, eq, sleep, waitUntil, withWorld, collect, drain,
} = require('./amqplib_common');

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
